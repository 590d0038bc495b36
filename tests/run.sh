#!/usr/bin/env bash
# Runs every test program and counts its PASS/FAIL/SKIP lines.
#   tests/run.sh BUILD_DIR [ASAN_BUILD_DIR]
# A program that prints "PASS name"/"FAIL name"/"SKIP name: why" lines is
# counted per line; one that exits non-zero without a FAIL line counts as one
# failure (a crash), one that exits 77 without lines counts as one skip.
# Ends with the line "N passed, N failed, N skipped".
set -u
build=${1:-build}
asan=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
logdir="$build/test-logs"
mkdir -p "$logdir"
pass=0 fail=0 skip=0
failed_names=()

run_one() { # label, command...
    local label=$1; shift
    local log="$logdir/$(echo "$label" | tr '/ ' '__').log"
    local t0=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local p f s
    p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
    if [ "$rc" -eq 77 ] && [ "$p$f$s" = "000" ]; then s=1; fi
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $label (exit $rc)" >>"$log"; fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    local verdict=ok
    [ "$f" -gt 0 ] && { verdict=FAILED; failed_names+=("$label"); }
    printf '%-44s %3d passed %2d failed %2d skipped  %3ds  %s\n' "$label" "$p" "$f" "$s" $((SECONDS - t0)) "$verdict"
    if [ "$f" -gt 0 ]; then grep -E '^FAIL |^  ' "$log" | head -30 | sed 's/^/    /'; fi
}

for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d|*.o) continue ;; esac
    run_one "unit/$(basename "$t")" "$t"
done
if [ -n "$asan" ]; then
    for t in "$asan"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.d|*.o) continue ;; esac
        run_one "asan/$(basename "$t")" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$t"
    done
fi
# Debian's python3 with the tests' PyPI packages (scripts/venv.sh), when made.
py=/usr/bin/python3
[ -x "$build/venv/bin/python" ] && py=$build/venv/bin/python
for t in "$root"/tests/py/test_*.py; do
    [ -f "$t" ] || continue
    run_one "py/$(basename "$t")" env FX_BUILD="$build" "$py" "$t"
done
for t in "$root"/tests/integ/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "integ/$(basename "$t")" env FX_BUILD="$build" bash "$t"
done
for t in "$build"/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    corpus="$root/tests/fuzz/corpus_${name#fuzz_}"
    run_one "fuzz/$name" bash "$root/tests/fuzz/smoke.sh" "$t" "$corpus" "$root/tests/crashers"
done

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed: ${failed_names[*]} (logs in $logdir)"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
