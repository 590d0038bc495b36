#!/usr/bin/env bash
# bench/run: end-to-end images/s of `fxscreen run` (demo model, default batch, no
# overlays) on 2048x2048 16-bit PNGs at 1 reader thread and at all cores, once more
# with `--overlays all`, and the same job in Python (bench/run_peer.py: Pillow, NumPy,
# onnxruntime, h5py) as the peer, measured in the same run; the share of time in
# decode, preprocess, inference, CAM, writing (and overlays); the table is appended
# to bench/RESULTS.md with the date, the machine and the exact command.
#   bench/run.sh [BUILD_DIR]        (make bench-run)
# Environment:
#   FX_BENCH_N=32        images (generated once by fxscreen synth into BUILD/bench-run/)
#   FX_BENCH_REPS=3      timed repetitions of every configuration (median wall time)
#   FX_BENCH_SEED=7      synth seed of the image set
#   FX_BENCH_RESULTS=F   where the section goes (default bench/RESULTS.md; relative to the repo root)
# Before timing, one untimed run of each (all cores) checks that fxscreen and the peer
# did the same work: max |probability difference| on the same files (also warms the
# page cache).  The venv BUILD/venv-bench is bench/infer.sh's: Debian's numpy, h5py,
# Pillow, onnx, PyYAML (--system-site-packages) and onnxruntime from PyPI; without
# onnxruntime the peer is skipped and the table says so.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${FX_BENCH_N:-32}
reps=${FX_BENCH_REPS:-3}
seed=${FX_BENCH_SEED:-7}
res=${FX_BENCH_RESULTS:-bench/RESULTS.md}
cores=$(nproc)
load=$(cut -d' ' -f1-3 /proc/loadavg)
fx=$build/fxscreen
model=models/fxdemo.onnx
work=$build/bench-run
set_dir=$work/png16-2048-s$seed-n$n
out=$work/out
[ -x "$fx" ] || { echo "run.sh: $fx not built (make)" >&2; exit 2; }

# ---- the image set: generated once, reused while it holds exactly n PNGs ----------
have=0
[ -d "$set_dir" ] && have=$(find "$set_dir" -maxdepth 1 -name '*.png' | wc -l)
if [ "$have" -ne "$n" ]; then
  echo "generating $n synthetic 2048x2048 16-bit PNGs into $set_dir (about 1 s each per core)"
  rm -rf "$set_dir" "$set_dir.tmp"
  "$fx" synth --out "$set_dir.tmp" --n "$n" --seed "$seed" --size 2048 --bits 16 --format png
  mv "$set_dir.tmp" "$set_dir"
fi
bytes=$(find "$set_dir" -maxdepth 1 -name '*.png' -printf '%s\n' | awk '{s += $1} END {print s}')

# ---- the peer's venv ----------------------------------------------------------------
# shellcheck source=bench/venv.sh
. "$(dirname "$0")/venv.sh"
py=$(bench_venv "$build" run.sh)
peer_ok=1
"$py" -c 'import onnxruntime, onnx, h5py, PIL, numpy, yaml' 2>/dev/null || peer_ok=0

threads="1"
[ "$cores" -gt 1 ] && threads="1 $cores"
rm -rf "$out"
mkdir -p "$out"
raw=$out/raw.tsv
: >"$raw"

# The command lines, into the array cmd: ENGINE THREADS OVERLAYS(none|all|full) OUTDIR
# (the peer writes no overlays; all: --overlays all at the default --overlay-size,
# 1024 px; full: --overlays all --overlay-size full, the originals' size).
set_cmd() {
  if [ "$1" = fxscreen ]; then
    cmd=("$fx" run --model "$model" --out "$4" --threads "$2")
    if [ "$3" = all ]; then cmd+=(--overlays all); fi
    if [ "$3" = full ]; then cmd+=(--overlays all --overlay-size full); fi
  else
    cmd=("$py" bench/run_peer.py --model "$model" --out "$4" --threads "$2" --intra "$cores")
  fi
  cmd+=("$set_dir")
}

# one run: engine threads overlays rep; appends a row to raw.tsv
one() {
  local eng=$1 t=$2 ov=$3 rep=$4 dir=$out/$1-t$2-$3-r$4
  set_cmd "$eng" "$t" "$ov" "$dir"
  rm -rf "$dir"
  local t0 t1
  t0=$(date +%s.%N)
  if ! "${cmd[@]}" >"$dir.stdout" 2>"$dir.stderr"; then
    echo "run.sh: failed: ${cmd[*]}" >&2
    cat "$dir.stderr" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  local own stages
  own=$(sed -n 's/^run: \([0-9]*\) images (\([0-9]*\) ok, 0 errors) in \([0-9.]*\) s.*/\1 \2 \3/p' "$dir.stderr")
  stages=$(sed -n 's/^run: per image (ms, summed over threads): decode \([0-9.]*\), preprocess \([0-9.]*\), inference \([0-9.]*\), CAM \([0-9.]*\), write \([0-9.]*\), overlays \([0-9.]*\)$/\1 \2 \3 \4 \5 \6/p' "$dir.stderr")
  read -r -a f <<<"$own"
  if [ "${#f[@]}" -ne 3 ] || [ "${f[0]}" != "$n" ] || [ "${f[1]}" != "$n" ] || [ -z "$stages" ]; then
    echo "run.sh: ${cmd[*]}: expected '$n images ($n ok, 0 errors)' and the per-image line:" >&2
    cat "$dir.stderr" >&2
    exit 1
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$eng" "$t" "$ov" "$rep" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}')" "${f[2]}" "${stages// /$'\t'}" >>"$raw"
  printf '  %-8s threads %s overlays %-4s rep %s: %6.2f s\n' "$eng" "$t" "$ov" "$rep" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" >&2
  rm -rf "$dir" # keep the disk small; the check run's outputs stay
}

# ---- untimed check: same files, same work? -------------------------------------------
check='{"error": "peer not run (onnxruntime, onnx, h5py, Pillow or PyYAML missing)"}'
set_cmd fxscreen "$cores" none "$out/check-fx"
echo "check run (untimed): ${cmd[*]}"
"${cmd[@]}" 2>"$out/check-fx.stderr" || { cat "$out/check-fx.stderr" >&2; exit 1; }
if [ "$peer_ok" = 1 ]; then
  set_cmd peer "$cores" none "$out/check-peer"
  echo "check run (untimed): ${cmd[*]}"
  "${cmd[@]}" >"$out/check-peer.stdout" 2>"$out/check-peer.stderr" ||
    { cat "$out/check-peer.stderr" >&2; exit 1; }
  check=$("$py" bench/run_peer.py --compare "$out/check-fx" "$out/check-peer")
fi
echo "agreement: $check"

# ---- timed runs: configurations interleaved within each repetition --------------------
echo "timed: $reps repetitions x (fxscreen and peer at threads $threads, fxscreen --overlays all at $cores, at 1024 px and full size)"
for rep in $(seq 1 "$reps"); do
  for t in $threads; do
    one fxscreen "$t" none "$rep"
    if [ "$peer_ok" = 1 ]; then one peer "$t" none "$rep"; fi
  done
  one fxscreen "$cores" all "$rep"
  one fxscreen "$cores" full "$rep"
done

ortv=$("$py" -c 'import onnxruntime as o; print(o.__version__)' 2>/dev/null || echo 'not installed')
libv=$("$py" -c 'import numpy, PIL, h5py; print("NumPy %s, Pillow %s, h5py %s" % (numpy.__version__, PIL.__version__, h5py.__version__))' 2>/dev/null || echo '?')

table=$(/usr/bin/python3 - "$raw" "$n" "$bytes" "$reps" "$cores" "$check" <<'EOF'
import json, statistics as S, sys
raw, n, nbytes, reps, cores, check = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6])
rows = {}
for line in open(raw):
    e, t, ov, rep, wall, own, *st = line.split("\t")
    rows.setdefault((e, int(t), ov), []).append((float(wall), float(own), [float(x) for x in st]))
STAGES = ["decode", "preprocess", "inference", "CAM", "write", "overlays"]
NAME = {"fxscreen": "fxscreen run", "peer": "peer (Python)"}
order = sorted(rows, key=lambda k: (k[2] != "none", k[1], k[0] != "fxscreen"))
ips = {k: n / S.median(w for w, _, _ in rows[k]) for k in rows}

print("| engine | reader threads | overlays | images/s | MB/s (PNG) | wall s: median of %d (min-max) | own clock s | fxscreen / peer |" % reps)
print("|---|---|---|---|---|---|---|---|")
for k in order:
    e, t, ov = k
    w = [x[0] for x in rows[k]]
    peer = ("peer", t, "none")
    ratio = "%.2f" % (ips[k] / ips[peer]) if e == "fxscreen" and ov == "none" and peer in rows else ""
    if ov != "none" and ("fxscreen", t, "none") in rows:
        ratio = "(%.2fx of no overlays)" % (ips[k] / ips[("fxscreen", t, "none")])
    print("| %s | %d | %s | %.2f | %.1f | %.2f (%.2f-%.2f) | %.2f | %s |" % (
        NAME[e], t, ov, ips[k], nbytes / 1e6 * ips[k] / n, S.median(w), min(w), max(w),
        S.median(x[1] for x in rows[k]), ratio))
print()
print("Per image, ms summed over threads (median of %d) and share of the summed stage time; "
      "bound = the largest per-thread budget (readers: (decode+preprocess)/threads; consumer: "
      "inference+CAM, the peer's main thread also writes; fxscreen's writer: write+overlays)." % reps)
print()
print("| engine | reader threads | overlays | " + " | ".join(STAGES) + " | sum | bound (ms/image) |")
print("|---|---|---|" + "---|" * (len(STAGES) + 2))
for k in order:
    e, t, ov = k
    med = [S.median(x[2][i] for x in rows[k]) for i in range(len(STAGES))]
    tot = sum(med) or 1.0
    d, p, inf, cam, wr, o = med
    budget = {"readers": (d + p) / t}
    if e == "fxscreen":
        budget["consumer"], budget["writer"] = inf + cam, wr + o
    else:
        budget["consumer"] = inf + cam + wr
    b = max(budget, key=budget.get)
    print("| %s | %d | %s | %s | %.1f | %s |" % (
        NAME[e], t, ov, " | ".join("%.1f (%.0f%%)" % (v, 100 * v / tot) for v in med), tot,
        ", ".join(("**%s %.1f**" if s == b else "%s %.1f") % (s, v) for s, v in budget.items())))
print()
if n % 8:
    print("Note: %d images is not a multiple of the batch (8): fxscreen runs its last batch padded to 8 rows "
          "(one plan), which inflates its inference and CAM per image; the peer runs the short batch as is." % n)
if "error" in check:
    print("Agreement check: %s." % check["error"])
else:
    warn = "" if check["max_abs_prob"] <= 1e-3 else " OVER 1e-3: the two do not do the same work, do not quote the ratio"
    print("Agreement (untimed run before timing, %d files, %d threads): max |probability fxscreen - peer| = %.2g%s; "
          "predictions agree %d/%d; heatmap |difference| max %d/255, mean %.2g/255; peak max %.1f px apart." % (
              check["n"], cores, check["max_abs_prob"], warn, check["pred_agree"], check["n"],
              check["heat_max"], check["heat_mean"], check["peak_max_px"]))
EOF
)
echo
echo "$table"

set_cmd fxscreen T none DIR
fxrun="${cmd[*]}"
set_cmd peer T none DIR
peerrun="${cmd[*]}"
[ -f "$res" ] || printf '# Benchmark results\n\nEach section: date, machine, exact command, then the figures measured in that run.\n' >"$res"
{
  echo
  echo "## run: $(date -u +%Y-%m-%d) on $cores cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo
  echo "Command: \`make bench-run\` (\`FX_BENCH_N=$n FX_BENCH_REPS=$reps bench/run.sh $build\`), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include bench 2>/dev/null || echo ' with uncommitted changes in src/, include/ or bench/')."
  echo "Runs: \`$fxrun\` (and with \`--overlays all\`, then \`--overlays all --overlay-size full\`, at T = $cores) and the peer \`$peerrun\`, T = ${threads// / and }; each configuration run $reps time(s), interleaved, after one untimed check run; images/s = $n / median process wall time (start-up, model load and final flush included; 'own clock' is what each prints: fxscreen from the reader pool's start to the last batch, the peer from its first decode to the last batch)."
  echo "Files: $n synthetic 2048x2048 16-bit PNGs (fxscreen synth --seed $seed, 12-bit values), $(awk -v b="$bytes" -v n="$n" 'BEGIN {printf "%.1f MB in all, %.2f MB each", b / 1e6, b / 1e6 / n}'), generated once; page cache warm. Load average at the start: $load."
  echo "Model: $model (demo, 1x256x256 input, CAM layer /features/block5/relu/Relu_output_0), batch 8, fxscreen's engine on OpenMP over all cores. Peer: $libv, onnxruntime $ortv (PyPI, CPU EP, intra-op threads = $cores), decode+preprocess in a ThreadPoolExecutor of T workers, inference+CAM+writing on the main thread."
  echo
  echo "$table"
} >>"$res"
echo "appended to $res"
