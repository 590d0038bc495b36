#!/usr/bin/env bash
# Fuzz smoke test: tests/fuzz/smoke.sh FUZZER CORPUS_DIR CRASHERS_DIR
# Runs FUZZER once over every file in CRASHERS_DIR (each must not crash), then
# fuzzes for about 15 s from a temporary copy of CORPUS_DIR (the repo is not
# modified).  Prints "PASS fuzz-smoke-NAME" or "FAIL fuzz-smoke-NAME: why".
# FX_FUZZ_SECONDS overrides the 15 s.
set -u
fuzzer=$1 corpus=$2 crashers=$3
name=$(basename "$fuzzer"); name=${name#fuzz_}
secs=${FX_FUZZ_SECONDS:-15}
work=$(mktemp -d "${TMPDIR:-/tmp}/fx_fuzz_${name}_XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
[ -d "$corpus" ] && cp "$corpus"/* "$work/corpus/" 2>/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# GDCM (uninstrumented, C++) leaks a little on some of its own error paths;
# full stacks let the suppression name it, so our leaks still count.
if [ "$name" = dicom ]; then
    export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
    export LSAN_OPTIONS="suppressions=$(dirname "$0")/lsan_gdcm.supp"
fi
opts=(-rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/artifacts/")

# 1. every crasher, once
files=()
for f in "$crashers"/*; do
    [ -f "$f" ] || continue
    case "$f" in *.py|*.md) continue ;; esac
    files+=("$f")
done
if [ ${#files[@]} -gt 0 ]; then
    if ! "$fuzzer" "${opts[@]}" "${files[@]}" >"$work/crashers.log" 2>&1; then
        echo "FAIL fuzz-crashers-$name: see below"; tail -40 "$work/crashers.log"; exit 1
    fi
fi
echo "PASS fuzz-crashers-$name"

# 2. a short fuzzing run from the seed corpus
if ! "$fuzzer" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
        "$work/corpus" >"$work/fuzz.log" 2>&1; then
    echo "FAIL fuzz-smoke-$name: see below"; tail -60 "$work/fuzz.log"
    ls "$work/artifacts"
    exit 1
fi
grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/fuzz.log" | tail -2
echo "PASS fuzz-smoke-$name"
