#!/usr/bin/python3
"""Checks fx_prep_run (via $FX_BUILD/tools/fx_prep_dump) against an
independent numpy model written from the spec in include/fxscreen/prep.h:

  window    np.percentile (default 'linear'), fixed, or full range; clip
  resize    per axis, as a dense matrix: exact area averaging from interval
            intersections when shrinking, bilinear with half-pixel centres
            when enlarging; out = Ry @ plane @ Rx.T in float64
  geometry  exact rational arithmetic (fractions), round half up
  pad/crop  numpy slicing; normalise; replicate channels

If torch imports, the numpy resize model itself is checked against
torch.nn.functional.interpolate(bilinear, align_corners=False) and avg_pool2d.
Prints one PASS/FAIL line per case; exits 1 if any failed.
Run: FX_BUILD=build /usr/bin/python3 tests/py/test_prep.py
"""
import math
import os
import subprocess
import sys
import tempfile
from fractions import Fraction

import numpy as np

BUILD = os.environ.get("FX_BUILD", "build")
TOOL = os.path.join(BUILD, "tools", "fx_prep_dump")
TOL = 1e-5  # max abs diff on [0,1]-scale data (float32 vs float64)

failed = 0


def report(name, ok, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    sys.stdout.flush()
    if not ok:
        failed += 1


# ---- the model ---------------------------------------------------------------

def window(x, mode, lo=None, hi=None, ptype="u8"):
    x = x.astype(np.float64)
    if mode == "percentile":
        finite = x[~np.isnan(x)]
        lo, hi = np.percentile(finite, [lo, hi])
    elif mode == "none":
        lo, hi = 0.0, {"u8": 255.0, "u16": 65535.0, "f32": 1.0}[ptype]
    if not hi > lo:
        return np.zeros_like(x), lo, hi
    v = (np.clip(x, lo, hi) - lo) / (hi - lo)
    v[np.isnan(x)] = 0.0
    return v, lo, hi


def resize_matrix(sn, dn):
    """(dn, sn) matrix M with out = M @ in along one axis."""
    m = np.zeros((dn, sn))
    if dn <= sn:
        # output i covers [i*s, (i+1)*s), input j covers [j, j+1)
        s = sn / dn
        a = np.arange(dn)[:, None] * s
        b = a + s
        j = np.arange(sn)[None, :]
        m = np.clip(np.minimum(b, j + 1) - np.maximum(a, j), 0, None) / s
    else:
        for i in range(dn):
            x = max((i + 0.5) * sn / dn - 0.5, 0.0)
            i0 = min(int(math.floor(x)), sn - 1)
            i1 = min(i0 + 1, sn - 1)
            l = x - i0
            m[i, i0] += 1 - l
            m[i, i1] += l
    return m


def resize(plane, dh, dw):
    sh, sw = plane.shape
    return resize_matrix(sh, dh) @ plane @ resize_matrix(sw, dw).T


def round_half_up(fr):
    return int(math.floor(fr + Fraction(1, 2)))


def geometry(w, h, out_w, out_h, fit):
    sx, sy = Fraction(out_w, w), Fraction(out_h, h)
    scale = min(sx, sy) if fit == "pad" else max(sx, sy)
    if scale == sx:
        nw, nh = out_w, round_half_up(h * scale)
    else:
        nw, nh = round_half_up(w * scale), out_h
    nw, nh = max(1, nw), max(1, nh)
    return nw, nh, (out_w - nw) // 2, (out_h - nh) // 2  # python // is floor


def model(x, ptype, cfg):
    h, w = x.shape
    v, lo, hi = window(x, cfg["mode"], cfg.get("low"), cfg.get("high"), ptype)
    if cfg.get("invert"):
        v = 1.0 - v
    ow, oh = cfg["width"], cfg["height"]
    nw, nh, ox, oy = geometry(w, h, ow, oh, cfg["fit"])
    r = resize(v, nh, nw)
    canvas = np.full((oh, ow), cfg.get("pad_value", 0.0))
    # place r at (oy, ox) with clipping on both sides
    ys, xs = max(0, oy), max(0, ox)
    ye, xe = min(oh, oy + nh), min(ow, ox + nw)
    canvas[ys:ye, xs:xe] = r[ys - oy:ye - oy, xs - ox:xe - ox]
    ch = cfg["channels"]
    mean = cfg["mean"] * (3 if len(cfg["mean"]) == 1 else 1)
    std = cfg["std"] * (3 if len(cfg["std"]) == 1 else 1)
    out = np.stack([(canvas - mean[c]) / std[c] for c in range(ch)])
    return out, (nw, nh, ox, oy, lo, hi)


# ---- running the C code ---------------------------------------------------------

def yaml_of(cfg):
    win = "{mode: %s}" % cfg["mode"]
    if cfg["mode"] != "none":
        win = "{mode: %s, low: %r, high: %r}" % (cfg["mode"], cfg["low"], cfg["high"])
    return ("window: %s\ninvert: %s\ninput: {height: %d, width: %d, channels: %d}\n"
            "fit: %s\npad_value: %r\nnormalize: {mean: %r, std: %r}\n"
            "limits: {max_megapixels: 0}\n" % (
                win, "true" if cfg.get("invert") else "false", cfg["height"], cfg["width"],
                cfg["channels"], cfg["fit"], cfg.get("pad_value", 0.0), cfg["mean"], cfg["std"]))


def run_c(x, ptype, cfg, tmp):
    h, w = x.shape
    cpath, ipath, opath = (os.path.join(tmp, n) for n in ("c.yaml", "in.raw", "out.raw"))
    with open(cpath, "w") as f:
        f.write(yaml_of(cfg))
    x.astype({"u8": np.uint8, "u16": np.uint16, "f32": np.float32}[ptype]).tofile(ipath)
    p = subprocess.run([TOOL, cpath, ipath, str(w), str(h), ptype, opath],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("fx_prep_dump exit %d: %s" % (p.returncode, p.stderr.strip()))
    g = p.stdout.split()
    assert g[0] == "geom", p.stdout
    geom = tuple(int(t) for t in g[1:5]) + (float(g[5]), float(g[6]))
    out = np.fromfile(opath, dtype=np.float32).reshape(cfg["channels"], cfg["height"], cfg["width"])
    return out, geom


def case(name, x, ptype, **cfg):
    base = dict(mode="none", invert=False, height=256, width=256, channels=1, fit="pad",
                pad_value=0.0, mean=[0.0], std=[1.0])
    base.update(cfg)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            got, ggeom = run_c(x, ptype, base, tmp)
        want, wgeom = model(x, ptype, base)
    except Exception as e:  # noqa: BLE001 - report and go on
        report(name, False, repr(e))
        return
    if ggeom[:4] != wgeom[:4]:
        report(name, False, "geometry %s, want %s" % (ggeom[:4], wgeom[:4]))
        return
    for a, b in ((ggeom[4], wgeom[4]), (ggeom[5], wgeom[5])):
        if abs(a - b) > 1e-9 * (1 + abs(b)):
            report(name, False, "window %s, want %s" % (ggeom[4:], wgeom[4:]))
            return
    # errors scale with 1/std; compare on the [0,1] scale
    scale = np.array([1.0 / s for s in (base["std"] * 3)[:base["channels"]]])[:, None, None]
    d = np.abs(got.astype(np.float64) - want) / np.maximum(scale, 1.0)
    worst = float(d.max())
    if not worst <= TOL or not np.isfinite(got).all():
        i = np.unravel_index(int(np.argmax(d)), d.shape)
        report(name, False, "max |diff| %.3g at %s: got %.9g want %.9g" %
               (worst, i, got[i], want[i]))
        return
    report(name, True)


# ---- torch cross-check of the numpy model -----------------------------------------

def torch_checks(rng):
    try:
        import torch  # slow: imported once, only here
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print("# torch not importable (%s); skipping torch cross-checks" % type(e).__name__)
        return
    torch.set_default_dtype(torch.float64)
    for (sh, sw, dh, dw) in ((30, 50, 180, 256), (7, 3, 16, 11), (1, 5, 4, 9)):
        x = rng.random((sh, sw))
        t = F.interpolate(torch.from_numpy(x)[None, None], size=(dh, dw), mode="bilinear",
                          align_corners=False)[0, 0].numpy()
        err = float(np.abs(resize(x, dh, dw) - t).max())
        report("torch_bilinear_%dx%d_to_%dx%d" % (sw, sh, dw, dh), err <= 1e-9, "max diff %g" % err)
    for (sh, sw, k) in ((64, 96, 4), (30, 45, 3), (2048, 1024, 8)):
        x = rng.random((sh, sw))
        t = F.avg_pool2d(torch.from_numpy(x)[None, None], k)[0, 0].numpy()
        err = float(np.abs(resize(x, sh // k, sw // k) - t).max())
        report("torch_area_%dx%d_by_%d" % (sw, sh, k), err <= 1e-9, "max diff %g" % err)
    # adaptive_avg_pool2d is exact area averaging when the factor is an integer
    x = rng.random((300, 200))
    t = F.adaptive_avg_pool2d(torch.from_numpy(x)[None, None], (60, 40))[0, 0].numpy()
    err = float(np.abs(resize(x, 60, 40) - t).max())
    report("torch_adaptive_area_200x300_to_40x60", err <= 1e-9, "max diff %g" % err)


def main():
    if not os.access(TOOL, os.X_OK):
        report("fx_prep_dump_exists", False, "%s not built (make %s)" % (TOOL, TOOL))
        return 1
    rng = np.random.default_rng(20240606)
    u8 = rng.integers(0, 256, (777, 1000), dtype=np.uint8)
    u16 = rng.integers(0, 65536, (777, 1000), dtype=np.uint16)
    u16[0, 0], u16[1, 1] = 0, 65535  # full range for sure
    f32 = (rng.random((517, 333)) * 1.4 - 0.2).astype(np.float32)
    f32[5, 7] = np.nan
    small_u16 = rng.integers(0, 65536, (30, 50), dtype=np.uint16)
    small_f32 = (rng.random((30, 50)) * 1.4 - 0.2).astype(np.float32)
    small_u8 = rng.integers(0, 256, (31, 17), dtype=np.uint8)

    case("u8_shrink_pad_percentile", u8, "u8", mode="percentile", low=0.5, high=99.5)
    case("u8_shrink_crop_none", u8, "u8", fit="crop")
    case("u16_full_shrink_pad_none", u16, "u16")
    case("u16_full_shrink_crop_percentile", u16, "u16", mode="percentile", low=2.0, high=98.0,
         fit="crop")
    case("u16_shrink_pad_fixed_invert", u16, "u16", mode="fixed", low=1000.0, high=60000.0,
         invert=True, pad_value=0.25)
    case("f32_shrink_pad_none_nan", f32, "f32", height=96, width=64)
    case("f32_shrink_crop_percentile", f32, "f32", mode="percentile", low=1.0, high=99.0,
         height=64, width=96, fit="crop")
    case("f32_enlarge_pad_fixed", small_f32, "f32", mode="fixed", low=0.1, high=0.9)
    case("u16_enlarge_pad_percentile", small_u16, "u16", mode="percentile", low=0.5, high=99.5)
    case("u16_enlarge_crop_invert", small_u16, "u16", fit="crop", invert=True)
    case("u8_enlarge_pad_3ch_norm", small_u8, "u8", channels=3, height=224, width=200,
         mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], pad_value=0.5)
    case("u8_shrink_crop_3ch_one_mean", u8, "u8", channels=3, height=200, width=300, fit="crop",
         mean=[0.5], std=[0.25], mode="percentile", low=0.0, high=100.0)
    case("u16_identity_size", u16[:256, :256], "u16", mode="percentile", low=0.5, high=99.5)
    case("u8_extreme_aspect", u8[:1, :], "u8", height=32, width=32)
    case("u8_constant_percentile", np.full((40, 60), 9, np.uint8), "u8", mode="percentile",
         low=0.5, high=99.5)
    torch_checks(rng)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
