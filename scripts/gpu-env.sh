# Sourced by scripts/test-gpu.sh and bench/gpu.sh: makes the CUDA libraries
# the binaries link (libcudart, libcublas, libcudnn) findable on a GPU
# machine whose cuDNN / cuBLAS come from Python wheels rather than from
# /usr/local/cuda (the nvidia-* packages that PyTorch installs).
fx_gpu_env() { # [BUILD_DIR]: its lib/ too (make gpu-bundle puts libcjson there)
    local py dirs d
    if [ -n "${1:-}" ] && [ -d "$1/lib" ]; then
        d=$(cd "$1/lib" && pwd)
        LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    py=$(command -v python3 || true)
    if [ -n "$py" ]; then
        dirs=$("$py" - <<'PY' 2>/dev/null
import importlib, os
for m in ("nvidia.cudnn", "nvidia.cublas", "nvidia.cuda_runtime", "nvidia.cu13"):
    try:
        mod = importlib.import_module(m)
    except Exception:
        continue
    for p in getattr(mod, "__path__", []):
        for sub in ("lib", "lib64"):
            if os.path.isdir(os.path.join(p, sub)):
                print(os.path.join(p, sub))
PY
)
        for d in $dirs; do
            case ":${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d" ;; esac
        done
    fi
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -d "$d" ] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
    done
    export LD_LIBRARY_PATH
}

# Prints each shared library a binary cannot find (empty when all resolve).
fx_missing_libs() {
    ldd "$1" 2>/dev/null | sed -n 's/^\s*\(\S*\) => not found$/\1/p'
}
