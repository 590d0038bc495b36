#!/usr/bin/env bash
# make demo: synthetic radiographs -> fxscreen prep, then where the outputs are.
# (The model, `fxscreen run` and eval join this demo with the engine issues.)
set -euo pipefail
build=${1:-build}
fx="$build/fxscreen"
out=${FX_DEMO_OUT:-demo-out}
rm -rf "$out"
echo "== fxscreen synth: 200 synthetic 16-bit radiographs (512 px) with ground truth"
"$fx" synth --out "$out/images" --n 200 --seed 2026 --size 512 --bits 16 --format png
echo "== fxscreen prep: decode + preprocess into a model-ready cache"
"$fx" prep "$out/images" --out "$out/prep" --config configs/default.yaml --quiet
echo
echo "outputs:"
echo "  $out/images/            200 PNG radiographs + labels.csv (path,label,cx,cy,x0,y0,x1,y1)"
echo "  $out/prep/prep.h5       /images (N,C,H,W float16), /path, /status, /error, /original_size, /bit_depth"
echo "  $out/prep/summary.csv   one row per input: status, size, bit depth, min/max/mean, error"
ok=$(awk -F, 'NR>1 && $2=="ok"' "$out/prep/summary.csv" | wc -l)
echo "  $ok of 200 inputs prepared; fractured: $(awk -F, 'NR>1 && $2==1' "$out/images/labels.csv" | wc -l)"
