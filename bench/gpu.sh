#!/usr/bin/env bash
# The GPU forward benchmark: fxscreen's CUDA engine beside PyTorch, on the
# same weights, in one run.
#   bench/gpu.sh [BUILD_DIR]          (BUILD_DIR: build, or build-gpu from make gpu-bundle)
# Models (torchvision, random weights, exported by bench/gpu_torch.py):
# densenet121 at 320x320, resnet50 at 224x224, efficientnet_b0 at 320x320;
# batch 1, 16 and 128; precision fp32 (TF32 off), tf32, fp16, bf16.
#   fxscreen: bench/infer_fx --device cuda --forward-only (the forward alone:
#             the input stays on the GPU, the CUDA graph replayed), median run;
#   PyTorch:  eager (channels_last, autocast for fp16 / bf16), eager captured
#             in a CUDA graph, and torch.compile at batch 128 fp16 (the target).
# Also: the measured ceilings (an 8192^3 matrix product per precision, a
# device-to-device copy), the fraction of that ceiling reached from the
# models' MACs (fxscreen model info), and a per-op profile of the plan at
# batch 128 fp16 (every node synchronised, so shares, not absolute times).
# Targets (issue 11): batch 128 fp16 >= 1.3x eager and >= torch.compile on
# every model; batch 1 >= 2x eager.
# Appends a section to ${FX_BENCH_RESULTS:-bench/RESULTS.md} with the GPU,
# driver, date and command; raw lines stay in ${FX_BENCH_WORK:-BUILD/bench-gpu}.
# FX_GPU_BENCH_QUICK=1: batch 1 and 128, fp32 and fp16 only.
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/gpu-env.sh
. "$root/scripts/gpu-env.sh"
fx_gpu_env "$build"
res=${FX_BENCH_RESULTS:-$root/bench/RESULTS.md}
work=${FX_BENCH_WORK:-$build/bench-gpu}
batches="1 16 128" precs="fp32 tf32 fp16 bf16"
if [ "${FX_GPU_BENCH_QUICK:-0}" = 1 ]; then batches="1 128" precs="fp32 fp16"; fi
mkdir -p "$work"
t0=$SECONDS
raw="$work/raw.jsonl"
: >"$raw"

[ -f "$work/resnet50.onnx" ] || python3 "$root/bench/gpu_torch.py" export "$work" || exit 1
python3 "$root/bench/gpu_torch.py" ceilings >"$work/ceilings.json" || exit 1
echo "ceilings: $(cat "$work/ceilings.json") ($((SECONDS - t0)) s)"

for spec in densenet121:320x320 resnet50:224x224 efficientnet_b0:320x320; do
    m=${spec%%:*} size=${spec#*:}
    onnx="$work/$m.onnx"
    macs=$("$build/fxscreen" model info "$onnx" --input-size "$size" --batch 1 |
        sed -n 's/^total: .*parameters ([^)]*), \([0-9]*\) MACs.*/\1/p')
    for b in $batches; do
        for p in $precs; do
            line=$("$build/bench/infer_fx" "$onnx" --batch "$b" --size "$size" --device cuda \
                --precision "$p" --forward-only --warmup 3 --reps 20 --min-seconds 0.5 2>"$work/err.txt")
            if [ -z "$line" ]; then
                echo "infer_fx $m b$b $p failed: $(head -3 "$work/err.txt")"
                line='{"engine": "fxscreen", "ips": 0, "median_ms": 0, "error": 1}'
            fi
            echo "{\"model\": \"$m\", \"size\": \"$size\", \"macs\": ${macs:-0}, \"batch\": $b, \"precision\": \"$p\", \"fx\": $line}" >>"$raw"
        done
    done
    echo "fxscreen $m done ($((SECONDS - t0)) s)"
    python3 "$root/bench/gpu_torch.py" time "$work" "$m" "$size" --batches "${batches// /,}" \
        --precisions "${precs// /,}" --compile-at 128:fp16 | sed 's/^/{"torch": 1, "row": /; s/$/}/' >>"$raw"
    echo "pytorch $m done ($((SECONDS - t0)) s)"
    "$build/bench/infer_fx" "$onnx" --batch 128 --size "$size" --device cuda --precision fp16 \
        --warmup 1 --reps 3 --min-seconds 0 --profile >/dev/null 2>"$work/profile_$m.txt"
done

table=$(python3 - "$raw" "$work/ceilings.json" "$work" <<'PY'
import json, sys, os
raw, ceil, work = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
fx, pt = {}, {}
for line in open(raw):
    r = json.loads(line)
    if "torch" in r:
        t = r["row"]; pt[(t["model"], t["batch"], t["precision"], t["engine"])] = t["ips"]
    else:
        fx[(r["model"], r["batch"], r["precision"])] = (r["fx"]["ips"], r["macs"])
print("| model | batch | precision | fxscreen img/s | eager | eager+graphs | compile | fx/eager | fx/compile | % of ceiling |")
print("|---|---|---|---|---|---|---|---|---|---|")
verdicts = []
for (m, b, p), (ips, macs) in fx.items():
    e = pt.get((m, b, p, "torch-eager")); g = pt.get((m, b, p, "torch-eager-graphs"))
    c = pt.get((m, b, p, "torch-compile"))
    ceiling = ceil.get("matmul_tflops_" + p, 0) * 1e12
    frac = 100 * 2 * macs * ips / ceiling if ceiling and ips else 0
    f = lambda v: "%.1f" % v if v else "-"
    ratio = lambda v: "%.2f" % (ips / v) if v and ips else "-"
    print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %.1f |" % (m, b, p, f(ips), f(e), f(g), f(c), ratio(e), ratio(c), frac))
    if b == 128 and p == "fp16":
        verdicts.append("%s b128 fp16: %.2fx eager (target 1.3) %s; %s torch.compile %s" % (
            m, ips / e if e else 0, "HOLDS" if e and ips >= 1.3 * e else "MISSED",
            "%.2fx" % (ips / c) if c else "no", "HOLDS" if c and ips >= c else "MISSED"))
    if b == 1:
        verdicts.append("%s b1 %s: %.2fx eager (target 2) %s" % (m, p, ips / e if e else 0, "HOLDS" if e and ips >= 2 * e else "MISSED"))
print()
for v in verdicts:
    print("- " + v)
for m in ("densenet121", "resnet50", "efficientnet_b0"):
    path = os.path.join(work, "profile_%s.txt" % m)
    if os.path.exists(path):
        print("\nPer-op profile, %s batch 128 fp16 (each node synchronised):\n```" % m)
        print("".join(open(path).readlines()[:16]).rstrip())
        print("```")
PY
)
echo "$table"
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
{
    echo
    echo "## gpu: $(date -u +%Y-%m-%d), ${gpu:-unknown GPU}"
    echo
    echo "Command: \`bench/gpu.sh $build\`, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'); $((SECONDS - t0)) s."
    echo "Ceilings measured in the same run: $(cat "$work/ceilings.json")."
    echo "img/s from the median timed run; fxscreen: the forward alone (fx_plan_rerun, CUDA graph); PyTorch: CUDA events, median."
    echo
    echo "$table"
} >>"$res"
echo "appended to $res ($((SECONDS - t0)) s)"
