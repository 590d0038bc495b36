#!/usr/bin/env python3
"""GPU checks of the whole program (scripts/test-gpu.sh; needs a CUDA device).

  FX_BUILD=build python3 tests/py/gpu_checks.py [CONFORMANCE_MODEL_DIR]
  (FX_GPU_CHECKS_DEVICE=cpu: both sides on the CPU, to try the checks here)

1. `fxscreen run` over the same synthetic 16-bit radiographs with
   --device cpu and --device cuda: the same prediction on every row, the
   probabilities within 1e-3, every row in both.
2. `fxscreen run --device cuda` killed with SIGKILL three times at random
   rows, each time resumed: every input exactly once, in order, in
   results.h5 and summary.csv, and the predictions of the uninterrupted GPU
   run.
   `run --prep-device cuda` (preprocessing on the GPU): the same predictions.
3. `fxscreen model cam --device cuda` against --device cpu for every
   method, the backward pass forced (--no-shortcut), on a conformance model
   (resnet18) when one is given: Pearson r >= 0.999 per map, the same peak
   cell, the same targets.
Prints PASS / FAIL / SKIP lines; exit 1 when something failed."""
import os
import random
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_run import kill_and_resume  # noqa: E402  (its FX is FX_BUILD's, as here)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("FX_BUILD", os.path.join(ROOT, "build"))
FX = os.path.join(BUILD, "fxscreen")
MODEL = os.path.join(ROOT, "models", "fxdemo.onnx")
# FX_GPU_CHECKS_DEVICE=cpu runs the checks themselves on a machine without a GPU
GPU = os.environ.get("FX_GPU_CHECKS_DEVICE", "cuda")
failures = 0


def check(name, ok, detail=""):
    global failures
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": %s" % (detail,)))
    failures += not ok


def run(args, timeout=600):
    p = subprocess.run([FX] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def csv_rows(path):
    import csv
    with open(path) as f:
        return list(csv.DictReader(f))


def devices(tmp, images):
    out = {}
    for dev in ("cpu", GPU):
        d = os.path.join(tmp, "run_" + dev)
        rc, _, err = run(["run", "--model", MODEL, "--out", d, "--device", dev, "--quiet", images])
        check("run --device %s exits 0" % dev, rc == 0, err[-400:])
        out[dev] = csv_rows(os.path.join(d, "summary.csv")) if rc == 0 else []
    a, b = out["cpu"], out[GPU]
    check("run: both devices write every row", len(a) == len(b) and len(a) > 0, (len(a), len(b)))
    if a and len(a) == len(b):
        same = sum(x["prediction"] == y["prediction"] for x, y in zip(a, b))
        dp = max(abs(float(x["probability"]) - float(y["probability"])) for x, y in zip(a, b))
        check("run: the same prediction on every row (%d of %d)" % (same, len(a)), same == len(a))
        check("run: probabilities within 1e-3 (max %.2g)" % dp, dp <= 1e-3)
        # The maps (made on the GPU from its backward, or the shortcut):
        # the stored uint8 heat maps and the peaks against the CPU's.
        with h5py.File(os.path.join(tmp, "run_cpu", "results.h5"), "r") as fc, \
                h5py.File(os.path.join(tmp, "run_" + GPU, "results.h5"), "r") as fg:
            hc, hg = fc["heatmap"][:].astype(np.float64), fg["heatmap"][:].astype(np.float64)
            rs = [np.corrcoef(hc[i].ravel(), hg[i].ravel())[0, 1] if hc[i].std() > 0 else 1.0
                  for i in range(hc.shape[0])]
            dpk = np.abs(fc["peak_xy"][:] - fg["peak_xy"][:]).max(axis=1)
            px = 512.0 / fc["heatmap"].shape[1]  # one model pixel, in the 512 px originals
            same_peak = int(np.sum(dpk <= px + 1e-3))
            dq = int(np.abs(hc - hg).max())
        check("run: heat maps, min Pearson r %.5f (limit 0.999), max |d| %d of 255" % (min(rs), dq),
              min(rs) >= 0.999)
        check("run: the same peak (within a model pixel) on %d of %d maps (limit 99%%)"
              % (same_peak, len(rs)), same_peak >= 0.99 * len(rs))


def prep_device(tmp, images):
    """run --prep-device cuda (the readers' window, resize and normalise on
    the GPU) against the CPU's preprocessing: the same predictions."""
    d = os.path.join(tmp, "run_prepgpu")
    rc, _, err = run(["run", "--model", MODEL, "--out", d, "--device", GPU, "--prep-device", GPU,
                      "--quiet", images])
    check("run --prep-device %s exits 0, no CPU fallback" % GPU,
          rc == 0 and "preprocessed on the CPU after the GPU failed" not in err, err[-400:])
    if rc != 0:
        return
    a, b = csv_rows(os.path.join(tmp, "run_cpu", "summary.csv")), csv_rows(os.path.join(d, "summary.csv"))
    dp = max(abs(float(x["probability"]) - float(y["probability"])) for x, y in zip(a, b))
    check("run --prep-device: the CPU preprocessing's predictions, probabilities within 1e-3 "
          "(max %.2g)" % dp, [x["prediction"] for x in a] == [y["prediction"] for y in b] and
          dp <= 1e-3)


def kills(tmp, images, n):
    rnd = random.Random(12)
    ref = os.path.join(tmp, "gpu_ref")
    rc, _, err = run(["run", "--model", MODEL, "--out", ref, "--device", GPU, "--batch", "4",
                      "--quiet", images])
    check("uninterrupted GPU run", rc == 0, err[-400:])
    kill = os.path.join(tmp, "gpu_kill")
    cmd = [FX, "run", "--model", MODEL, "--out", kill, "--device", GPU, "--batch", "4",
           "--quiet", images]
    done = kill_and_resume(cmd, kill, sorted(rnd.sample(range(20, n - 20), 3)), rnd)
    rc, _, err = run(["run", "--resume", kill, "--quiet"])
    check("GPU run resumed after %d SIGKILLs exits 0" % done, rc == 0 and done >= 2, (rc, err[-400:]))
    if rc != 0:
        return
    with h5py.File(os.path.join(ref, "results.h5"), "r") as r, \
            h5py.File(os.path.join(kill, "results.h5"), "r") as k:
        rp, kp = list(r["path"][:]), list(k["path"][:])
        lens = {name: v.shape[0] for name, v in k.items() if hasattr(v, "shape") and v.shape}
        check("after kills: every input exactly once, in order", rp == kp and set(lens.values()) == {n},
              (len(kp), lens))
        check("after kills: the uninterrupted run's predictions",
              np.array_equal(r["prediction"][:], k["prediction"][:]))
    check("after kills: summary.csv has every input once",
          [x["path"] for x in csv_rows(os.path.join(kill, "summary.csv"))] ==
          [x["path"] for x in csv_rows(os.path.join(ref, "summary.csv"))])


def cam_cli(tmp, model_dir):
    model, inp = os.path.join(model_dir, "model.onnx"), os.path.join(model_dir, "in.h5")
    for method in ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"):
        maps = []
        for dev in ("cpu", GPU):
            o = os.path.join(tmp, "cam_%s_%d.h5" % (method, len(maps)))
            rc, _, err = run(["model", "cam", model, "--input", inp, "--output", o, "--method",
                              method, "--no-shortcut", "--device", dev])
            check("model cam %s --device %s exits 0" % (method, dev), rc == 0, err[-400:])
            if rc != 0:
                break
            with h5py.File(o, "r") as f:
                maps.append((f["cam"][:], f["cam_lowres"][:], f["target"][:]))
        if len(maps) < 2:
            continue
        (c, cl, t), (g, gl, gt) = maps
        rs = [np.corrcoef(c[i].ravel(), g[i].ravel())[0, 1] if c[i].std() > 0 else 1.0
              for i in range(c.shape[0])]
        peaks = sum(int(np.argmax(cl[i]) == np.argmax(gl[i])) for i in range(c.shape[0]))
        check("model cam %s cuda vs cpu: min r %.5f, peaks %d/%d, targets equal"
              % (method, min(rs), peaks, c.shape[0]),
              min(rs) >= 0.999 and peaks == c.shape[0] and np.array_equal(t, gt))


def main():
    n = int(os.environ.get("FX_GPU_RUN_N", "120"))
    with tempfile.TemporaryDirectory() as tmp:
        images = os.path.join(tmp, "images")
        rc, _, err = run(["synth", "--out", images, "--n", str(n), "--size", "512", "--bits", "16",
                          "--seed", "7"])
        check("synth %d images" % n, rc == 0, err[-400:])
        if rc == 0:
            devices(tmp, images)
            prep_device(tmp, images)
            kills(tmp, images, n)
        if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
            cam_cli(tmp, sys.argv[1])
        else:
            print("SKIP model cam cuda vs cpu: no conformance model")
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
