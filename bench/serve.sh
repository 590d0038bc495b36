#!/usr/bin/env bash
# bench/serve: `fxscreen serve` under load beside the design it grew from, a
# Flask + PyTorch server (bench/serve_peer.py: same decode, preprocessing,
# weights and autograd Grad-CAM), measured in the same run with wrk (Debian)
# posting one 2,048 x 2,048 16-bit PNG at 1, 8 and 64 connections: requests/s,
# p50 and p99 latency, non-2xx answers, and fxscreen's mean engine batch (from
# /metrics).  Appends a section to bench/RESULTS.md with the date, the machine
# and the command.
#   bench/serve.sh [BUILD_DIR]        (make bench-serve)
# Environment:
#   FX_BENCH_SECONDS=20   wrk duration per level and server
#   FX_BENCH_CONNS="1 8 64"
#   FX_BENCH_RESULTS=F    where the section goes (default bench/RESULTS.md)
# Needs wrk and python3-flask (apt-get install wrk python3-flask); the rest
# is make deps.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${FX_BENCH_SECONDS:-20}
conns=${FX_BENCH_CONNS:-1 8 64}
res=${FX_BENCH_RESULTS:-bench/RESULTS.md}
fx=$build/fxscreen
model=models/fxdemo.onnx
config=models/fxdemo.yaml
work=$build/bench-serve
cores=$(nproc)
[ -x "$fx" ] || { echo "serve.sh: $fx not built (make)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "serve.sh: wrk is missing: apt-get install wrk" >&2; exit 2; }
/usr/bin/python3 -c 'import flask, torch' 2>/dev/null ||
  { echo "serve.sh: Flask or PyTorch is missing: apt-get install python3-flask python3-torch" >&2; exit 2; }
mkdir -p "$work"
img=$work/img.png
if [ ! -f "$img" ]; then
  "$fx" synth --out "$work/set" --n 2 --seed 5 --size 2048 --bits 16 --format png >/dev/null
  cp "$work/set/img_000001.png" "$img"
fi
cat >"$work/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("FX_BENCH_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "image/png"
EOF

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_health() { # port
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$1/api/health" >/dev/null && return 0
    sleep 0.2
  done
  echo "serve.sh: nothing answers on port $1" >&2
  return 1
}

fx_port=18931 peer_port=18932
fx_cmd=("$fx" serve --model "$model" --listen "127.0.0.1:$fx_port" --max-batch 8 --max-wait-ms 5)
peer_cmd=(/usr/bin/python3 bench/serve_peer.py --model "$model" --config "$config" --port "$peer_port")
"${fx_cmd[@]}" >"$work/fx.log" 2>&1 &
pids+=($!)
"${peer_cmd[@]}" >"$work/peer.log" 2>&1 &
pids+=($!)
wait_health $fx_port
wait_health $peer_port

# Same answer from both on the image (and a warm-up).
a=$(curl -s -H 'Content-Type: image/png' --data-binary @"$img" "http://127.0.0.1:$fx_port/api/predict")
b=$(curl -s -H 'Content-Type: image/png' --data-binary @"$img" "http://127.0.0.1:$peer_port/api/predict")
agree=$(/usr/bin/python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print("|probability difference| %.1e, peak %s vs %s, same prediction: %s" % (abs(a["probability"]-b["probability"]), a["peak"], b["peak"], a["prediction"]==b["prediction"]))' "$a" "$b")
echo "agreement: $agree"

batches() { # port -> "images batches" from one read of /metrics
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '$1 == "fxscreen_batch_size_sum" {s = $2} $1 == "fxscreen_batch_size_count" {n = $2} END {print s, n}'
}
raw=$work/raw.tsv
: >"$raw"
for c in $conns; do
  for who in fxscreen peer; do
    port=$fx_port
    [ "$who" = peer ] && port=$peer_port
    s0=0 n0=0
    [ "$who" = fxscreen ] && read -r s0 n0 < <(batches $port)
    t=$(( c < cores ? c : cores ))
    out=$(FX_BENCH_FILE="$img" wrk -t "$t" -c "$c" -d "${secs}s" --timeout 120s --latency \
          -s "$work/post.lua" "http://127.0.0.1:$port/api/predict")
    echo "$out" >"$work/wrk-$who-$c.txt"
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    mb=""
    if [ "$who" = fxscreen ]; then
      sleep 1 # the requests wrk left in flight finish
      read -r s1 n1 < <(batches $port)
      mb=$(awk -v a="$s0" -v b="$s1" -v c="$n0" -v d="$n1" 'BEGIN {if (d > c) printf "%.2f", (b - a) / (d - c)}')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$who" "$c" "$rps" "$p50" "$p99" "$n" "${bad:-0}" "$mb" >>"$raw"
    echo "$who c=$c: $rps req/s, p50 $p50, p99 $p99, $n requests, non-2xx ${bad:-0}${mb:+, mean batch $mb}"
  done
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
git diff --quiet HEAD -- src include kernels bench 2>/dev/null || dirty=" with uncommitted changes"
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | awk '{print $1, $2, $3}')
table=$(/usr/bin/python3 - "$raw" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {(r[0], r[1]): r for r in rows}
def ms(s):
    return float(s[:-2]) if s.endswith("ms") else float(s[:-1]) * 1000 if s.endswith("s") else float(s[:-2]) / 1000
print("| server | connections | requests/s | p50 | p99 | requests | non-2xx | mean batch | fxscreen / peer (req/s) | p99 fxscreen / peer |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    ratio = p99r = ""
    if r[0] == "fxscreen" and ("peer", r[1]) in by:
        q = by[("peer", r[1])]
        ratio = "%.2fx" % (float(r[2]) / float(q[2])) if float(q[2]) > 0 else "n/a"
        p99r = "%.2f" % (ms(r[4]) / ms(q[4]))
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        "fxscreen serve" if r[0] == "fxscreen" else "Flask + PyTorch", r[1], r[2], r[3], r[4], r[5], r[6],
        r[7] or "-", ratio, p99r))
EOF
)
[ -f "$res" ] || printf '# Benchmark results\n\n' >"$res"
{
  echo
  echo "## serve: $(date -u +%F) on $cores cores, $cpu"
  echo
  echo "Command: \`make bench-serve\` (\`FX_BENCH_SECONDS=$secs bench/serve.sh $build\`), commit $commit$dirty."
  echo "Servers: \`${fx_cmd[*]}\` and the peer \`${peer_cmd[*]}\` (Flask $(/usr/bin/python3 -c 'import flask; print(flask.__version__)' 2>/dev/null || echo ?), PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), Werkzeug threaded server, torch threads = $cores), both on this machine with wrk."
  echo "Load: \`wrk -t min(C,$cores) -c C -d ${secs}s --timeout 120s --latency -s post.lua\` posting one 2048x2048 16-bit PNG ($(stat -c %s "$img") bytes, fxscreen synth --seed 5) to /api/predict; the servers measured one after the other at each level. wrk shares the $cores cores with the server under test."
  echo "Agreement on the image: $agree."
  echo
  echo "$table"
} >>"$res"
echo "appended to $res"
