#!/usr/bin/env bash
# Runs bench/infer.py (fxscreen vs PyTorch CPU vs onnxruntime CPU, images/s
# and peak RSS) and appends its table to bench/RESULTS.md with the date, the
# machine and the exact command.
#   bench/infer.sh BUILD_DIR [--quick] [other bench/infer.py options]
# The venv BUILD_DIR/venv-bench sees Debian's torch (--system-site-packages)
# and gets onnxruntime from PyPI; if pip fails the bench runs without it.
set -euo pipefail
build=${1:-build}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/venv.sh
. "$root/bench/venv.sh"
py=$(bench_venv "$build" infer.sh)
cmd="$py bench/infer.py --build $build $*"
echo "running: $cmd"
table=$(cd "$root" && $cmd)
echo "$table"
res="$root/bench/RESULTS.md"
[ -f "$res" ] || printf '# Benchmark results\n\nEach section: date, machine, exact command, then the figures measured in that run.\n' >"$res"
ortv=$("$py" -c 'import onnxruntime as o; print(o.__version__)' 2>/dev/null || echo 'not installed')
torchv=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?')
{
  echo
  echo "## infer: $(date -u +%Y-%m-%d) on $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo
  echo "Command: \`make bench-infer\` (\`$cmd\`), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo "torchvision models, 2 classes, random weights, 224x224, float32; PyTorch $torchv (Debian, eager), onnxruntime $ortv (PyPI, CPU EP)."
  echo "images/s: the median over interleaved rounds of each round's median timed run after warm-up; RSS is each engine's own process peak (ru_maxrss), the largest over rounds."
  echo
  echo "$table"
} >>"$res"
echo "appended to $res"
