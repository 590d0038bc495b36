#!/usr/bin/env bash
# Runs bench/decode (the table, then --ab: the PNG fast path against libpng
# alone) and appends both to bench/RESULTS.md with the date, the machine and
# the exact commands.
set -euo pipefail
build=${1:-build}
n=${FX_BENCH_N:-24}
reps=${FX_BENCH_REPS:-3}
cmd="$build/bench/decode --n $n --size 2048 --reps $reps"
echo "running: $cmd"
table=$($cmd)
echo "$table"
abcmd="$build/bench/decode --ab --n $n --size 2048"
ab=$($abcmd | tail -1)
echo "$ab"
res="$(dirname "$0")/RESULTS.md"
[ -f "$res" ] || printf '# Benchmark results\n\nEach section: date, machine, exact command, then the figures measured in that run.\n' >"$res"
{
  echo
  echo "## decode: $(date -u +%Y-%m-%d) on $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo
  echo "Command: \`make bench\` (\`$cmd\`), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo "Files: synthetic 2048x2048 16-bit radiographs (fxscreen synth, 12-bit values), generated once; page cache warm."
  echo "'vs bare' is pool time / bare-decode time on the same files (1.00 = no overhead); the pool also preprocesses to 256x256."
  echo
  echo "$table"
  echo
  echo "PNG decoders alone, in memory, alternating (\`$abcmd\`): $ab"
} >>"$res"
echo "appended to $res"
