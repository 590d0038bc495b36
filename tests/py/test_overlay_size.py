#!/usr/bin/env python3
"""`fxscreen run --overlays all --overlay-size N|full`: the overlay made from
the reader's base (fx_overlay_base + fx_overlay_write_base) against the
full-size overlay the writer renders from the decoded original:
  - base at full size (N >= the image): the same pixels exactly;
  - N = half the size: the grey (opacity 0) equals a NumPy 2 x 2 block mean
    of the full-size grey, rounded half up, off the box's outline;
  - N not a divisor: the grey equals NumPy's area-weighted mean (overlap
    matrices) within 1 level;
  - with the heat map: close to the block mean of the full overlay;
  - archive members get overlays too; run.json records the size and a
    resume keeps it; bad values are refused."""
import json
import os
import subprocess
import tarfile

import h5py
import numpy as np
from PIL import Image

from serve_util import FX, MODEL, check, run_tests


def fx(*args):
    p = subprocess.run([FX] + [str(a) for a in args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def png(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int64)


def area_matrix(n, m):
    """(m, n) weights: output i covers [i n/m, (i+1) n/m) of n inputs."""
    f = n / m
    W = np.zeros((m, n))
    for i in range(m):
        a, b = i * f, (i + 1) * f
        for j in range(int(np.floor(a)), min(n, int(np.ceil(b)))):
            W[i, j] = min(j + 1, b) - max(j, a)
    return W


def box_mask(shape, bbox, scale, margin=3):
    """True away from the box outline (bbox in original pixels)."""
    m = np.ones(shape[:2], bool)
    if not np.all(np.isfinite(bbox)):
        return m
    x0, y0, x1, y1 = [v / scale for v in bbox]
    for x in (x0, x1):
        m[:, max(0, int(x) - margin):int(x) + margin + 1] = False
    for y in (y0, y1):
        m[max(0, int(y) - margin):int(y) + margin + 1, :] = False
    return m


def step_sizes(tmp):
    os.chdir(tmp)
    rc, out = fx("synth", "--out", "imgs", "-n", 3, "--size", 1200, "--bits", 16, "--seed", 21)
    with open("grey.yaml", "w") as f:  # the model's sidecar, opacity 0: overlays are the grey
        f.write(open(MODEL.replace(".onnx", ".yaml")).read().replace("opacity: 0.5", "opacity: 0"))
    runs = {}
    for name, size, cfg in [("full", "full", None), ("big", 4096, None), ("half", 600, None),
                            ("odd", 700, None), ("g_full", "full", "grey.yaml"),
                            ("g_half", 600, "grey.yaml"), ("g_odd", 700, "grey.yaml")]:
        args = ["run", "--quiet", "--overlays", "all", "--overlay-size", size, "--model", MODEL,
                "--out", name, "imgs"] + (["--config", cfg] if cfg else [])
        rc2, out2 = fx(*args)
        rc = rc or rc2
        runs[name] = sorted(os.listdir(os.path.join(name, "overlays"))) if rc2 == 0 else []
    if not check("runs at every size", rc == 0 and all(len(v) == 3 for v in runs.values()), out):
        return
    with h5py.File("full/results.h5") as f:
        bboxes = f["bbox"][:]
    for k, name in enumerate(runs["full"]):
        a = png(f"full/overlays/{name}")
        check(f"{name}: --overlay-size full keeps 1200 x 1200, 4096 too",
              a.shape == (1200, 1200, 3) and png(f"big/overlays/{name}").shape == a.shape)
        check(f"{name}: the base at full size gives the very same pixels",
              np.array_equal(a, png(f"big/overlays/{name}")))
        g = png(f"g_full/overlays/{name}")[:, :, 0]
        half = png(f"g_half/overlays/{name}")
        want = np.floor(g.reshape(600, 2, 600, 2).mean(axis=(1, 3)) + 0.5)
        m = box_mask(half.shape, bboxes[k], 2.0)
        check(f"{name}: 600 px grey == NumPy 2 x 2 block mean, rounded half up",
              half.shape == (600, 600, 3) and np.array_equal(half[:, :, 0][m], want[m]) and
              np.array_equal(half[:, :, 1][m], want[m]), np.abs(half[:, :, 0] - want)[m].max())
        odd = png(f"g_odd/overlays/{name}")
        Wm = area_matrix(1200, 700)
        want = np.floor(Wm @ g @ Wm.T / (1200 / 700) ** 2 + 0.5)
        m = box_mask(odd.shape, bboxes[k], 1200 / 700)
        d = np.abs(odd[:, :, 0] - want)[m]
        check(f"{name}: 700 px grey == NumPy area-weighted mean (within 1 level)",
              odd.shape == (700, 700, 3) and d.max() <= 1 and np.mean(d > 0) < 0.001, d.max())
        col = png(f"half/overlays/{name}")
        full = png(f"full/overlays/{name}")
        ref = full.reshape(600, 2, 600, 2, 3).mean(axis=(1, 3))
        m = box_mask(col.shape, bboxes[k], 2.0)
        diff = np.abs(col - ref)[m]
        check(f"{name}: 600 px overlay with the heat map close to the full one's block mean",
              diff.mean() < 1.5 and np.percentile(diff, 99) < 8, (diff.mean(), diff.max()))
    rj = json.load(open("half/run.json"))
    check("run.json records overlay_size", rj.get("overlay_size") == 600 and
          json.load(open("full/run.json")).get("overlay_size") == 0, rj.get("overlay_size"))
    rc, out = fx("run", "--resume", "half")
    check("resume keeps the size", rc == 0 and
          Image.open(os.path.join("half/overlays", runs["half"][0])).size == (600, 600), out)
    rc, out = fx("run", "--resume", "half", "--overlay-size", "800")
    check("resume refuses a new --overlay-size", rc == 2 and "--overlay-size" in out, out)
    for bad in ["0", "63", "big", "-5"]:
        rc, out = fx("run", "--overlays", "all", "--overlay-size", bad, "--model", MODEL,
                     "--out", "bad", "imgs")
        check(f"--overlay-size {bad} refused", rc == 2 and "64..16384" in out and
              not os.path.exists("bad"), out)
    with tarfile.open("imgs.tar", "w") as t:
        t.add("imgs", arcname="imgs")
    rc, out = fx("run", "--quiet", "--overlays", "all", "--model", MODEL, "--out", "tar",
                 "imgs.tar")
    n = len(os.listdir("tar/overlays")) if os.path.isdir("tar/overlays") else 0
    check("archive members get their overlays (from the readers' bases)", rc == 0 and n == 3,
          (n, out))


if __name__ == "__main__":
    raise SystemExit(run_tests("fx_ovsize_", step_sizes))
