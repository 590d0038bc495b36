#!/usr/bin/env bash
# GPU tests, for a machine with a CUDA device (`make test-gpu`).
#   scripts/test-gpu.sh [BUILD_DIR]
# Runs each GPU test binary, then again under compute-sanitizer memcheck when
# it is installed, and prints one summary line per run plus a total.
# Exit 0 when nothing failed (skips are not failures), 1 otherwise.
set -u
build=${1:-build}
tests=("$build/tests/test_prep_gpu")
logdir="$build/test-logs"
mkdir -p "$logdir"
sanitizer=$(command -v compute-sanitizer || { test -x /usr/local/cuda/bin/compute-sanitizer && echo /usr/local/cuda/bin/compute-sanitizer; } || true)
pass=0 fail=0 skip=0

summarise() { # label, log, rc
    local p f s v=ok
    p=$(grep -c '^PASS ' "$2"); f=$(grep -c '^FAIL ' "$2"); s=$(grep -c '^SKIP ' "$2")
    if [ "$3" -ne 0 ] && [ "$3" -ne 77 ] && [ "$f" -eq 0 ]; then f=1; fi
    [ "$f" -gt 0 ] && v=FAILED
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    printf '%-40s %3d passed %2d failed %2d skipped  %s\n' "$1" "$p" "$f" "$s" "$v"
    [ "$f" -gt 0 ] && grep -E '^FAIL |^=+ |ERROR SUMMARY' "$2" | head -20 | sed 's/^/    /'
    grep -h '^SKIP ' "$2" | head -3 | sed 's/^/    /'
    return 0
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
for t in "${tests[@]}"; do
    name=$(basename "$t")
    if [ ! -x "$t" ]; then
        echo "$name: not built (run make $t)"; fail=$((fail + 1)); continue
    fi
    log="$logdir/gpu_$name.log"
    "$t" >"$log" 2>&1; rc=$?
    summarise "gpu/$name" "$log" "$rc"
    if [ -n "$sanitizer" ] && [ "$rc" -ne 77 ]; then
        slog="$logdir/gpu_${name}_memcheck.log"
        "$sanitizer" --tool memcheck --leak-check full --error-exitcode 3 "$t" >"$slog" 2>&1; src=$?
        # Count the memcheck run as one case: the inner PASS lines were counted above.
        errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$slog" | tail -1)
        if [ "$src" -eq 0 ]; then
            echo "PASS memcheck_$name" >"$slog.sum"
        else
            echo "FAIL memcheck_$name: exit $src, ${errs:-?} errors (log $slog)" >"$slog.sum"
        fi
        summarise "memcheck/$name" "$slog.sum" 0
    elif [ -z "$sanitizer" ]; then
        echo "memcheck/$name: compute-sanitizer not found, skipped"
    fi
done
echo "gpu: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
