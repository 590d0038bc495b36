#!/usr/bin/env bash
# GPU checks, for a machine with a CUDA device (`make test-gpu`).
#   scripts/test-gpu.sh [BUILD_DIR]
# On a GPU machine without Debian's libraries: `make gpu-bundle` on a build
# machine, carry build-gpu.tar.xz, and there run
#   tar xJf build-gpu.tar.xz && bash scripts/test-gpu.sh build-gpu
#
# 1. tests/test_prep_gpu, and tests/test_engine_gpu: every op on random odd
#    shapes at fp32, tf32, fp16 and bf16, then whole models against the CPU
#    engine: the demo model and, where python3 has torch, torchvision and
#    onnx, the five conformance models (exported here once by
#    tests/py/gen_conformance.py into BUILD/conformance/).
#    Both also compare the backward (dL/dA) and the Grad-CAM maps of every
#    method with the CPU engine's (test_engine_gpu: Pearson r, peak cells).
# 2. tests/py/gpu_checks.py: fxscreen run on both devices (same
#    predictions), a GPU run killed with SIGKILL three times and resumed
#    (every input once), model cam on both devices for every method.
# 3. compute-sanitizer memcheck (leaks too) and racecheck over
#    `fxscreen model run --device cuda` on two models (the demo model and
#    resnet18), memcheck over test_prep_gpu and over a whole `fxscreen run`.
# One summary line per run and a total "gpu: N passed, N failed, N skipped";
# exit 0 when nothing failed (skips are not failures), 1 otherwise.
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/gpu-env.sh
. "$root/scripts/gpu-env.sh"
fx_gpu_env "$build"
logdir="$build/test-logs"
mkdir -p "$logdir"
sanitizer=$(command -v compute-sanitizer || { test -x /usr/local/cuda/bin/compute-sanitizer && echo /usr/local/cuda/bin/compute-sanitizer; } || true)
pass=0 fail=0 skip=0
t_start=$SECONDS

summarise() { # label, log, rc
    local p f s v=ok
    p=$(grep -c '^PASS ' "$2"); f=$(grep -c '^FAIL ' "$2"); s=$(grep -c '^SKIP ' "$2")
    if [ "$3" -ne 0 ] && [ "$3" -ne 77 ] && [ "$f" -eq 0 ]; then f=1; fi
    [ "$f" -gt 0 ] && v=FAILED
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    printf '%-40s %3d passed %2d failed %2d skipped  %4ds  %s\n' "$1" "$p" "$f" "$s" $((SECONDS - t_start)) "$v"
    [ "$f" -gt 0 ] && grep -E '^FAIL |^=+ |ERROR SUMMARY|error' "$2" | head -20 | sed 's/^/    /'
    grep -h '^SKIP ' "$2" | head -3 | sed 's/^/    /'
    return 0
}

# Runs a command under a compute-sanitizer tool and records one case.
sanitize() { # tool, label, command...
    local tool=$1 label=$2; shift 2
    local slog="$logdir/gpu_${label}_$tool.log" extra=()
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    "$sanitizer" --tool "$tool" "${extra[@]}" --error-exitcode 3 "$@" >"$slog" 2>&1
    local src=$?
    local errs
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$slog" | tail -1)
    if [ "$src" -eq 0 ]; then
        echo "PASS ${tool}_$label" >"$slog.sum"
    else
        echo "FAIL ${tool}_$label: exit $src, ${errs:-?} errors (log $slog)" >"$slog.sum"
    fi
    summarise "$tool/$label" "$slog.sum" 0
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
for b in "$build/fxscreen" "$build/tests/test_engine_gpu"; do
    missing=$(fx_missing_libs "$b")
    [ -n "$missing" ] && echo "$b: shared libraries not found: $missing (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
done

# The conformance models, exported here by PyTorch (cached per script version).
models=("$root/models/fxdemo.onnx@256x256")
if python3 -c 'import torch, torchvision, onnx, h5py' 2>/dev/null; then
    FX_BUILD="$build" python3 "$root/tests/py/gen_conformance.py" --sizes 224x224 \
        >"$logdir/gen_conformance.log" 2>&1 || echo "gen_conformance failed (log $logdir/gen_conformance.log)"
    for m in "$build"/conformance/*/*@224x224/model.onnx; do
        [ -f "$m" ] && models+=("$m@224x224")
    done
else
    echo "python3 lacks torch/torchvision/onnx/h5py: conformance models not exported, demo model only"
fi

for t in test_prep_gpu test_engine_gpu; do
    bin="$build/tests/$t"
    if [ ! -x "$bin" ]; then
        echo "$t: not built (make $bin, or make gpu-bundle)"; fail=$((fail + 1)); continue
    fi
    log="$logdir/gpu_$t.log"
    args=()
    [ "$t" = test_engine_gpu ] && args=("${models[@]}")
    "$bin" "${args[@]}" >"$log" 2>&1; rc=$?
    summarise "gpu/$t" "$log" "$rc"
    grep -h ' model ' "$log" | sed 's/^/    /'
done

# The whole program on the GPU: run on both devices, SIGKILL and resume on
# the GPU, model cam on both devices (tests/py/gpu_checks.py).
if python3 -c 'import h5py, numpy' 2>/dev/null; then
    r18=$(ls -d "$build"/conformance/*/resnet18@224x224 2>/dev/null | head -1)
    log="$logdir/gpu_checks.log"
    FX_BUILD="$build" python3 "$root/tests/py/gpu_checks.py" ${r18:+"$r18"} >"$log" 2>&1; rc=$?
    summarise "gpu/gpu_checks" "$log" "$rc"
else
    echo "python3 lacks h5py/numpy: gpu_checks skipped"; skip=$((skip + 1))
fi

if [ -z "$sanitizer" ]; then
    echo "compute-sanitizer not found: memcheck and racecheck skipped"; skip=$((skip + 1))
else
    sanitize memcheck test_prep_gpu "$build/tests/test_prep_gpu"
    # Inputs for model run: the demo model's (1 x 256 x 256) and resnet18's.
    demo_in="$logdir/demo_in.h5"
    python3 -c "import h5py, numpy as np; h5py.File('$demo_in', 'w')['input'] = np.random.default_rng(1).random((2, 1, 256, 256), dtype=np.float32)" 2>/dev/null
    r18=$(ls -d "$build"/conformance/*/resnet18@224x224 2>/dev/null | head -1)
    for tool in memcheck racecheck; do
        if [ -f "$demo_in" ]; then
            sanitize "$tool" model_run_fxdemo "$build/fxscreen" model run "$root/models/fxdemo.onnx" \
                --input "$demo_in" --output "$logdir/san_fxdemo.h5" --device cuda
        fi
        if [ -n "$r18" ]; then
            sanitize "$tool" model_run_resnet18 "$build/fxscreen" model run "$r18/model.onnx" \
                --input "$r18/in.h5" --output "$logdir/san_r18.h5" --device cuda --precision fp16
        fi
    done
    # A whole run: the reader pool, the GPU engine with its backward, the writer.
    "$build/fxscreen" synth --out "$logdir/san_images" --n 8 --size 512 --bits 16 --seed 3 >/dev/null 2>&1
    rm -rf "$logdir/san_run"
    sanitize memcheck run_fxdemo "$build/fxscreen" run --model "$root/models/fxdemo.onnx" \
        --out "$logdir/san_run" --device cuda --batch 4 --quiet "$logdir/san_images"
fi
echo "gpu: $pass passed, $fail failed, $skip skipped ($((SECONDS - t_start)) s)"
[ "$fail" -eq 0 ]
