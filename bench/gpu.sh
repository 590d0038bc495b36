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
# Model + Grad-CAM (issue 12), batch 64, fp32 and fp16: bench/infer_fx --cam
# gradcam (upload, forward, targets, gradient by the exact shortcut, and once
# more by the backward pass, the maps, upsampling, uint8 heat and peaks, all
# on the GPU; heat and peaks copied back) beside PyTorch eager with an
# autograd Grad-CAM on the same layer doing the same steps, the same with
# body and head under torch.compile, and pytorch-grad-cam's GradCAM (its
# post-processing on the CPU; skipped with the reason when not installed).
# Targets: >= 2x eager + autograd and ahead of torch.compile.
# End to end (issue 12): `fxscreen run` (resnet50 at 224, batch 64, fp32,
# 16 readers) over FX_GPU_E2E_N (384) synthetic 2048x2048 16-bit PNGs, beside
# the readers alone (`fxscreen prep`, 16 threads: decode + preprocess, the
# run's ceiling on the CPU side) and a PyTorch DataLoader job (16 workers,
# the same decode, preprocessing, weights, Grad-CAM and HDF5 writes:
# bench/gpu_run_peer.py).  Targets: >= 90% of min(readers, model + CAM) and
# >= 2x the DataLoader job.
# FX_GPU_BENCH_PARTS=forward,cam,e2e (default all three) picks the parts.
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
parts=",${FX_GPU_BENCH_PARTS:-forward,cam,e2e},"
part() { case "$parts" in *",$1,"*) return 0 ;; esac; return 1; }
mkdir -p "$work"
t0=$SECONDS
raw="$work/raw.jsonl"
: >"$raw"

[ -f "$work/resnet50.onnx" ] || python3 "$root/bench/gpu_torch.py" export "$work" || exit 1
python3 "$root/bench/gpu_torch.py" ceilings >"$work/ceilings.json" || exit 1
echo "ceilings: $(cat "$work/ceilings.json") ($((SECONDS - t0)) s)"

for spec in densenet121:320x320 resnet50:224x224 efficientnet_b0:320x320; do
    part forward || break
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

# ---- model + Grad-CAM ------------------------------------------------------------
camraw="$work/cam.jsonl"
: >"$camraw"
for spec in densenet121:320x320 resnet50:224x224 efficientnet_b0:320x320; do
    part cam || break
    m=${spec%%:*} size=${spec#*:}
    for p in fp32 fp16; do
        for mode in shortcut backward; do
            extra=()
            [ "$mode" = backward ] && extra=(--no-shortcut)
            line=$("$build/bench/infer_fx" "$work/$m.onnx" --batch 64 --size "$size" --device cuda \
                --precision "$p" --cam gradcam "${extra[@]}" --warmup 2 --reps 10 --min-seconds 0.5 \
                2>"$work/err.txt")
            [ -z "$line" ] && { echo "infer_fx --cam $m $p $mode failed: $(head -3 "$work/err.txt")"; line='{"ips": 0, "error": 1}'; }
            echo "{\"model\": \"$m\", \"precision\": \"$p\", \"mode\": \"$mode\", \"fx\": $line}" >>"$camraw"
        done
        python3 "$root/bench/gpu_torch.py" cam "$work" "$m" "$size" --batch 64 --precision "$p" |
            sed 's/^/{"torch": 1, "row": /; s/$/}/' >>"$camraw"
    done
    echo "model+CAM $m done ($((SECONDS - t0)) s)"
done
camtable=$(python3 - "$camraw" <<'PY'
import json, sys
fx, pt, errs = {}, {}, {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "torch" in r:
        t = r["row"]; pt[(t["model"], t["precision"], t["engine"])] = t["ips"]
        if t.get("error"): errs[(t["model"], t["precision"], t["engine"])] = t["error"]
    else:
        fx[(r["model"], r["precision"], r["mode"])] = r["fx"]
if not fx:
    sys.exit(0)
print("| model | precision | fxscreen (shortcut) img/s | fxscreen (backward) | backward on | eager+autograd | torch.compile | pytorch-grad-cam | fx/eager | fx/compile |")
print("|---|---|---|---|---|---|---|---|---|---|")
verdicts = []
for (m, p) in sorted({(k[0], k[1]) for k in fx}):
    s, b = fx.get((m, p, "shortcut"), {}), fx.get((m, p, "backward"), {})
    e, c, g = (pt.get((m, p, k)) for k in ("torch-cam-eager", "torch-cam-compile", "pytorch-grad-cam"))
    f = lambda v: "%.1f" % v if v else "-"
    r = lambda v: "%.2f" % (s.get("ips", 0) / v) if v and s.get("ips") else "-"
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (m, p, f(s.get("ips")), f(b.get("ips")),
          b.get("backward", "?"), f(e), f(c), f(g), r(e), r(c)))
    if e:
        verdicts.append("%s %s model+CAM: %.2fx eager+autograd (target 2) %s; %s torch.compile %s" % (
            m, p, s.get("ips", 0) / e, "HOLDS" if s.get("ips", 0) >= 2 * e else "MISSED",
            "%.2fx" % (s.get("ips", 0) / c) if c else "no", "HOLDS" if c and s.get("ips", 0) >= c else "MISSED"))
print()
for v in verdicts:
    print("- " + v)
for k, v in sorted(errs.items()):
    print("- %s %s %s: %s" % (k[0], k[1], k[2], v))
PY
)

# ---- end to end --------------------------------------------------------------------
e2etable=""
if part e2e; then
    n=${FX_GPU_E2E_N:-384}
    imgs="$work/e2e_png"
    if [ "$(ls "$imgs" 2>/dev/null | grep -c '\.png$')" -ne "$n" ]; then
        rm -rf "$imgs"
        "$build/fxscreen" synth --out "$imgs" --n "$n" --size 2048 --bits 16 --seed 5 --format png >/dev/null
    fi
    cfg="$work/e2e.yaml"
    printf 'input: {height: 224, width: 224, channels: 3}\nnormalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\nmodel: {positive: 1}\n' >"$cfg"
    cat "$imgs"/*.png >/dev/null # the page cache, for every contender alike
    secs() { python3 -c 'import sys, time; print("%.3f" % (time.time() - float(sys.argv[1])))' "$1"; }
    s0=$(date +%s.%N)
    rm -rf "$work/e2e_prep"
    "$build/fxscreen" prep "$imgs" --out "$work/e2e_prep" --config "$cfg" --threads 16 --store uint8 --quiet
    t_prep=$(secs "$s0")
    rm -rf "$work/e2e_run" "$work/e2e_run_gp"
    s0=$(date +%s.%N)
    "$build/fxscreen" run --model "$work/resnet50.onnx" --config "$cfg" --out "$work/e2e_run" --threads 16 \
        --batch 64 --device cuda --precision fp32 --quiet "$imgs" 2>"$work/e2e_run.txt"
    t_run=$(secs "$s0")
    s0=$(date +%s.%N) # the same with the readers' preprocessing on the GPU
    "$build/fxscreen" run --model "$work/resnet50.onnx" --config "$cfg" --out "$work/e2e_run_gp" --threads 16 \
        --batch 64 --device cuda --precision fp32 --prep-device cuda --quiet "$imgs" 2>"$work/e2e_run_gp.txt"
    t_run_gp=$(secs "$s0")
    peer=$(python3 "$root/bench/gpu_run_peer.py" --work "$work" --model resnet50 --size 224x224 \
        --workers 16 --batch 64 --out "$work/e2e_peer.h5" "$imgs" 2>"$work/e2e_peer.txt" || echo '{}')
    mc=$("$build/bench/infer_fx" "$work/resnet50.onnx" --batch 64 --size 224x224 --device cuda \
        --precision fp32 --cam gradcam --warmup 2 --reps 10 --min-seconds 0.5 2>/dev/null || echo '{}')
    e2etable=$(python3 - "$n" "$t_prep" "$t_run" "$peer" "$mc" "$t_run_gp" <<'PY'
import json, sys
n, tp, tr = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
peer, mc = json.loads(sys.argv[4] or "{}"), json.loads(sys.argv[5] or "{}")
tg = float(sys.argv[6])
readers, run, camr, pips = n / tp, n / tr, mc.get("ips", 0), peer.get("ips", 0)
bound = min(readers, camr) if camr else readers
print("| images | readers alone (prep, 16 threads) img/s | model+CAM img/s | fxscreen run img/s | run / min(readers, model+CAM) | DataLoader job img/s | run / DataLoader |")
print("|---|---|---|---|---|---|---|")
print("| %d | %.1f | %.1f | %.1f | %.2f | %s | %s |" % (n, readers, camr, run, run / bound if bound else 0,
      "%.1f" % pips if pips else "-", "%.2f" % (run / pips) if pips else "-"))
print()
print("- preprocessing on the GPU (--prep-device cuda): %.1f img/s, %.2fx the CPU's; %s" % (
    n / tg, tr / tg, "faster: a case for making it the default" if tg < tr else "not faster: the CPU stays the default"))
print("- end to end: %.0f%% of min(readers, model+CAM) (target 90%%) %s; %s the DataLoader job (target 2x) %s" % (
    100 * run / bound if bound else 0, "HOLDS" if bound and run >= 0.9 * bound else "MISSED",
    "%.2fx" % (run / pips) if pips else "no", "HOLDS" if pips and run >= 2 * pips else "MISSED"))
PY
)
    echo "end to end done ($((SECONDS - t0)) s)"
fi

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
echo "$camtable"
echo "$e2etable"
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
    if [ -n "$camtable" ]; then
        echo
        echo "Model + Grad-CAM, batch 64 (fxscreen: bench/infer_fx --cam gradcam, upload to heat and peaks on the host; PyTorch: the same steps, CUDA events, median):"
        echo
        echo "$camtable"
    fi
    if [ -n "$e2etable" ]; then
        echo
        echo "End to end, 2048x2048 16-bit PNGs, resnet50 at 224, batch 64, fp32, 16 readers (wall time of each command, page cache warm):"
        echo
        echo "$e2etable"
    fi
} >>"$res"
echo "appended to $res ($((SECONDS - t0)) s)"
