# shellcheck shell=bash
# Sourced by the bench scripts: bench_venv BUILD_DIR WHO prints the python of
# BUILD_DIR/venv-bench, a venv that sees Debian's packages (torch, numpy,
# h5py, Pillow, onnx: --system-site-packages) and gets onnxruntime from PyPI.
# If pip fails, WHO says so on stderr and the caller benchmarks without it.
bench_venv() {
  local venv="$1/venv-bench"
  if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv" >&2
  fi
  if ! "$venv/bin/python" -c 'import onnxruntime' 2>/dev/null; then
    if ! "$venv/bin/pip" install -q onnxruntime >&2; then
      echo "$2: pip install onnxruntime failed: benchmarking without onnxruntime" >&2
    fi
  fi
  echo "$venv/bin/python"
}
