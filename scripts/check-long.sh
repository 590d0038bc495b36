#!/usr/bin/env bash
# make check-long: what is too slow for `make test`.
#  - each decoder's fuzzer for 5 minutes (FX_FUZZ_SECONDS), seeded with its corpus
#  - fxscreen run on 5,000 images killed (SIGKILL) at 12 random moments, resumed each time
#  - the memory-flatness soak: prep on 1,000 vs 10,000 images
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${FX_FUZZ_SECONDS:-300}
fail=0
for f in "$build"/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f"); corpus="$root/tests/fuzz/corpus_${name#fuzz_}"
  work=$(mktemp -d); cp -r "$corpus"/. "$work"/ 2>/dev/null
  echo "== $name for ${secs}s"
  if "$f" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 "$work" >"$work.log" 2>&1; then
    echo "PASS $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$work.log" || tail -1 "$work.log"))"
  else
    echo "FAIL $name: see $work.log"; fail=1
  fi
done
echo "== fxscreen run: 5,000 images, SIGKILL at 12 random moments, --resume each time"
FX_BUILD="$build" FX_RUN_N=5000 FX_RUN_KILLS=12 /usr/bin/python3 "$root/tests/py/test_run.py" || fail=1
echo "== memory soak: 1,000 vs 10,000 images"
FX_BUILD="$build" FX_MEM_SMALL=1000 FX_MEM_LARGE=10000 /usr/bin/python3 "$root/tests/py/test_memory.py" || fail=1
exit $fail
