#!/usr/bin/env python3
"""fxscreen eval --faithfulness (ROAD) against pytorch-grad-cam's ROAD metrics
on the same inputs and maps.

A real run of the demo model over 5 synthetic radiographs, then `eval
--faithfulness=all --faith-noise 0 --faith-inputs` writes faithfulness.h5
with each preprocessed input, its CAM map (results.h5 /heatmap / 255) and a
random map.  tests/py/faith_ref.py (build/venv-gradcam: pytorch-grad-cam
1.5.7 over Debian's torch) computes PerturbationConfidenceMetric with
RemoveMostRelevantFirst / RemoveLeastRelevantFirst and NoisyLinearImputer
(noise 0) on those inputs and maps, the model behind a torch module that
calls `fxscreen model run` (the forward pass is checked against PyTorch and
onnxruntime elsewhere; what this compares is ROAD: masks, imputation,
scores).  Every per-image, per-percentile change must agree within 1e-4,
except where ours is NaN (every pixel removed: pytorch-grad-cam's singular
solve returns a number there), which must be exactly the images whose map
has at least p% of its values at its minimum.  Then the noisy default
(0.01) against pytorch-grad-cam with its own noise: the means within 0.03.
Also: eval.json's section, the map in faithfulness.h5 equal to results.h5's,
refusals (no --model, another model, bad percentiles), and ASan."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import FX, check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.abspath(os.path.join(HERE, "..", "..", "models", "fxdemo.onnx"))
VENV = os.path.abspath(os.path.join(su.BUILD, "venv-gradcam", "bin", "python"))
PCT = [20, 50, 80]


def fx(*args, binary=FX, **kw):
    return subprocess.run([binary] + [str(a) for a in args], capture_output=True, text=True, **kw)


def reference(work, h5, noise):
    out = os.path.join(work, "ref-%s.npz" % noise)
    wd = os.path.join(work, "ref-%s" % noise)
    os.makedirs(wd, exist_ok=True)
    p = subprocess.run([VENV, os.path.join(HERE, "faith_ref.py"), h5, MODEL, os.path.abspath(FX), wd, str(noise), out],
                       capture_output=True, text=True, timeout=900)
    if not check("pytorch-grad-cam's ROAD (noise %s) ran" % noise, p.returncode == 0, p.stderr[-1500:]):
        return None
    return np.load(out)


def cases(work):
    if not check("pytorch-grad-cam venv present (%s; run `make deps`)" % VENV, os.path.exists(VENV)):
        return
    src = os.path.join(work, "img")
    su.synth(src, 5, size=256, bits=16, seed=31)
    run = os.path.join(work, "run")
    p = fx("run", "--model", MODEL, "--out", run, "--quiet", src)
    if not check("run on 5 radiographs", p.returncode == 0, p.stderr[-300:]):
        return
    labels = os.path.join(src, "labels.csv")
    ej = os.path.join(work, "e0.json")
    p = fx("eval", "--results", run, "--labels", labels, "--faithfulness=all", "--model", MODEL,
           "--faith-noise", "0", "--faith-inputs", "--faith-percentiles", ",".join(map(str, PCT)), "--json", ej)
    if not check("eval --faithfulness (noise 0) exits 0 and prints the ROAD table",
                 p.returncode == 0 and "ROAD combined: CAM" in p.stdout, (p.returncode, p.stderr[-500:])):
        return
    fj = json.load(open(ej))["faithfulness"]
    check("eval.json: the faithfulness section (images, percentiles, cam and random, combined)",
          fj["images"] == 5 and fj["percentiles"] == PCT and fj["noise"] == 0
          and set(fj["cam"]) >= {"morf", "lerf", "morf_mean", "lerf_mean", "combined", "morf_valid"}
          and set(fj["random"]) >= {"morf", "lerf", "combined"}, fj)
    fh = os.path.join(run, "faithfulness.h5")
    with h5py.File(fh, "r") as f, h5py.File(os.path.join(run, "results.h5"), "r") as r:
        rows = f["row"][()]
        ours = {k: f[k][()] for k in ("morf", "lerf", "random_morf", "random_lerf")}
        maps, before = f["map"][()], f["probability"][()]
        x = f["input"][()]
        heat, prob = r["heatmap"][()][rows], r["probability"][()][rows]
        check("faithfulness.h5: one row per image, percentiles attribute",
              len(rows) == 5 and list(f.attrs["percentiles"]) == PCT and x.shape == (5, 1, 256, 256), x.shape)
    check("the maps are results.h5's heat maps / 255", np.array_equal(maps, heat.astype(np.float32) / np.float32(255)))
    check("the probability before removal equals the run's (same model, same preprocessing)",
          np.abs(before - prob).max() < 1e-5, np.abs(before - prob).max())
    ref = reference(work, fh, 0)
    if ref is None:
        return
    check("pytorch-grad-cam's probability before removal equals ours", np.abs(ref["before"] - before).max() < 1e-5,
          np.abs(ref["before"] - before).max())
    for k in ("morf", "lerf", "random_morf", "random_lerf"):
        a, b = ours[k], ref[k]
        nan = np.isnan(a)
        d = np.abs(a[~nan] - b[~nan]).max()
        check("%s: every image and percentile within 1e-4 of pytorch-grad-cam (max %.2g, %d NaN)" % (k, d, nan.sum()),
              d < 1e-4, d)
        # NaN exactly where every pixel goes: at least p% of the map at its minimum (MoRF) or
        # maximum (LeRF), so no value lies below the threshold.
        m = maps if not k.startswith("random") else None
        if m is not None:
            want = np.zeros_like(nan)
            for i in range(len(m)):
                v = m[i].ravel() if k == "morf" else (np.float32(1) - m[i].ravel())
                for j, pc in enumerate(PCT):
                    want[i, j] = not (v < np.percentile(v, pc)).any()
            check("%s: NaN exactly where nothing would be kept" % k, np.array_equal(nan, want), (nan, want))
        else:
            check("%s: no NaN for a random map" % k, not nan.any())
    # The default noise against pytorch-grad-cam's own noise.
    ej1 = os.path.join(work, "e1.json")
    p = fx("eval", "--results", run, "--labels", labels, "--faithfulness=all", "--model", MODEL, "--faith-inputs",
           "--faith-percentiles", ",".join(map(str, PCT)), "--json", ej1)
    if not check("eval --faithfulness (default noise 0.01) exits 0", p.returncode == 0, p.stderr[-300:]):
        return
    with h5py.File(fh, "r") as f:
        noisy = {k: f[k][()] for k in ("morf", "lerf", "random_morf", "random_lerf")}
    ref1 = reference(work, fh, 0.01)
    if ref1 is not None:
        for k in noisy:
            a, b = noisy[k], ref1[k]
            ok = ~np.isnan(a)
            d = abs(a[ok].mean() - b[ok].mean())
            check("%s with noise 0.01: mean within 0.03 of pytorch-grad-cam's (|diff| %.4f)" % (k, d), d < 0.03, d)
    f1 = json.load(open(ej1))["faithfulness"]
    check("same seed, same numbers: a second noisy eval repeats the first",
          fx("eval", "--results", run, "--labels", labels, "--faithfulness=all", "--model", MODEL,
             "--faith-percentiles", ",".join(map(str, PCT)), "--json", os.path.join(work, "e2.json")).returncode == 0
          and json.load(open(os.path.join(work, "e2.json")))["faithfulness"]["cam"] == f1["cam"])

    # A run whose inputs are archive members: ROAD reads them again from the tar, in memory.
    tar = os.path.join(work, "shard.tar")
    names = sorted(f for f in os.listdir(src) if f.endswith(".png"))[:3]
    subprocess.run(["tar", "cf", tar, "-C", src] + names, check=True)
    run_t = os.path.join(work, "run_tar")
    p = fx("run", "--model", MODEL, "--out", run_t, "--quiet", tar)
    p2 = fx("eval", "--results", run_t, "--labels", labels, "--faithfulness=all", "--model", MODEL,
            "--faith-noise", "0", "--faith-percentiles", ",".join(map(str, PCT)), "--json", os.path.join(work, "et.json"))
    ft = json.load(open(os.path.join(work, "et.json")))["faithfulness"] if p2.returncode == 0 else {}
    check("a tar's members: all 3 measured, none skipped", p.returncode == 0 and ft.get("images") == 3
          and ft.get("skipped") == 0, (p.stderr[-300:], p2.stderr[-300:], ft.get("images")))
    if ft:
        with h5py.File(os.path.join(run_t, "faithfulness.h5"), "r") as f:
            tpaths = [v.decode() if isinstance(v, bytes) else v for v in f["path"][()]]
            tmorf = f["lerf"][()]
        with h5py.File(fh, "r") as f:
            fpaths = [os.path.basename(v.decode() if isinstance(v, bytes) else v) for v in f["path"][()]]
        same = [np.allclose(tmorf[i], ours["lerf"][fpaths.index(t.split("!/")[1])], atol=1e-6, equal_nan=True)
                for i, t in enumerate(tpaths)]
        check("a member's ROAD changes equal its folder copy's", all(same) and len(same) == 3, same)

    # Refusals.
    p = fx("eval", "--results", run, "--labels", labels, "--faithfulness")
    check("--faithfulness without --model: exit 2 naming the fix", p.returncode == 2 and "--model" in p.stderr, p.stderr)
    p = fx("eval", "--results", run, "--labels", labels, "--faithfulness", "--model", MODEL, "--faith-percentiles", "0,50")
    check("a percentile of 0: exit 2", p.returncode == 2 and "(0, 100)" in p.stderr, p.stderr)
    import onnx
    m = onnx.load(MODEL)
    init = max(m.graph.initializer, key=lambda t: len(t.raw_data))
    w = np.frombuffer(init.raw_data, dtype=np.float32).copy()
    w[0] += 0.5
    init.raw_data = w.tobytes()
    other = os.path.join(work, "other.onnx")
    onnx.save(m, other)
    p = fx("eval", "--results", run, "--labels", labels, "--faithfulness=2", "--model", other)
    check("another model than the run's: exit 2, ROAD refused", p.returncode == 2 and "not the model of this run" in p.stderr,
          p.stderr[-300:])
    asan = os.path.abspath(os.path.join(su.BUILD, "asan", "fxscreen"))
    if os.path.exists(asan):
        env = su.sanitizer_env()
        p = fx("eval", "--results", run, "--labels", labels, "--faithfulness=2", "--model", MODEL,
               "--faith-percentiles", "30,90", "--json", os.path.join(work, "ea.json"), binary=asan, env=env)
        check("ASan+UBSan+LSan: eval --faithfulness runs clean", p.returncode == 0 and "Sanitizer" not in p.stderr,
              p.stderr[-1500:])


if __name__ == "__main__":
    sys.exit(su.run_tests("fx_faith_", cases))
