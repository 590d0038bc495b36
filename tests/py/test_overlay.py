#!/usr/bin/python3
"""Checks Grad-CAM overlays (fx_overlay_write_file, driven through
$FX_BUILD/tools/fx_overlay_tool) against an independent numpy model written
from the spec in include/fxscreen/overlay.h:

  source    a 16-bit (or 8-bit) grey PNG written here with zlib, not by us
  window    np.percentile (numpy 'linear') / fixed / full range, clip,
            optional 1 - v, grey = round-half-up(255 v)
  geometry  exact rational arithmetic (fractions), round half up
  heat      each original pixel centre taken to model coordinates, bilinear
            with half-pixel centres and clamped edges, 0 where cropped away
  colour    matplotlib.colormaps[name] itself (float RGB x 255, not our table)
  blend     alpha = opacity * heat; out = round((1 - alpha) grey + alpha colour)
  box       cyan frame inside pixels floor(x0)..ceil(x1)-1, 1-3 px by size

The tool's PNG is read back with Pillow and compared twice: with the model
on matplotlib's float colours, max |diff| <= 2 levels (our table holds them
rounded to 8 bits, the grey is rounded in float32); and with the model on
those colours rounded to 8 bits (the table overlay.h documents), max |diff|
<= 1 on at most 0.1% of the pixels (float32 vs float64 ties).
Prints one PASS/FAIL line per case; exits 1 if any failed, 77 without numpy,
matplotlib or Pillow.  Run: FX_BUILD=build /usr/bin/python3 tests/py/test_overlay.py
"""
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from fractions import Fraction

try:
    import matplotlib
    import numpy as np
    from PIL import Image
except ImportError as e:
    print("SKIP test_overlay: %s (make deps installs python3-numpy, -matplotlib, -pil)" % e)
    sys.exit(77)

BUILD = os.environ.get("FX_BUILD", "build")
TOOL = os.path.join(BUILD, "tools", "fx_overlay_tool")
MAX_DIFF = 2
MAX_DIFF8 = 1
MAX_FRAC_DIFFERENT = 0.001
CYAN = (0, 255, 255)

failed = 0


def report(name, ok, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    sys.stdout.flush()
    if not ok:
        failed += 1


# ---- inputs -------------------------------------------------------------------

def png_grey(path, x):
    """Minimal PNG writer: grey 8/16-bit, filter 0 on every row."""
    h, w = x.shape
    bits = 16 if x.dtype == np.uint16 else 8
    rows = x.astype(">u2" if bits == 16 else "u1").tobytes()
    stride = w * bits // 8
    raw = b"".join(b"\x00" + rows[r * stride:(r + 1) * stride] for r in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


def radiograph(rng, h, w, bits=16):
    """Smooth 'anatomy' plus noise; a few saturated pixels so windows clip."""
    yy, xx = np.mgrid[0:h, 0:w]
    top = 4095 if bits == 16 else 255
    base = 0.5 + 0.3 * np.sin(xx / 23.0) * np.cos(yy / 17.0) + 0.15 * (xx / w)
    x = base * top + rng.normal(0, 0.05 * top, (h, w))
    x[rng.random((h, w)) < 0.002] = top
    x = np.clip(np.rint(x), 0, top)
    return x.astype(np.uint16 if bits == 16 else np.uint8)


def heatmap(rng, H, W):
    """A smooth blob (what Grad-CAM gives) plus some random cells."""
    yy, xx = np.mgrid[0:H, 0:W]
    blob = np.exp(-(((xx - 0.6 * W) / (0.2 * W)) ** 2 + ((yy - 0.4 * H) / (0.25 * H)) ** 2))
    m = np.rint(255 * blob).astype(np.uint8)
    pick = rng.random((H, W)) < 0.05
    m[pick] = rng.integers(0, 256, int(pick.sum()))
    return m


# ---- the model ---------------------------------------------------------------------

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


def window(x, cfg):
    xf = x.astype(np.float64)
    if cfg["mode"] == "percentile":
        lo, hi = np.percentile(xf, [cfg["low"], cfg["high"]])
    elif cfg["mode"] == "fixed":
        lo, hi = float(cfg["low"]), float(cfg["high"])
    else:
        lo, hi = 0.0, 65535.0 if x.dtype == np.uint16 else 255.0
    if not hi > lo:
        return np.zeros_like(xf), lo, hi
    return np.clip((xf - lo) / (hi - lo), 0.0, 1.0), lo, hi


def axis(n, new, off, N):
    """Model cells and weight for each original pixel centre along one axis,
    in the order overlay.h writes it (so exact ties round the same way)."""
    scale = new / n
    u = (np.arange(n) + 0.5) * scale + off  # pixel centre, model units
    inside = (u >= 0) & (u < N)
    m = np.maximum(u - 0.5, 0.0)
    i0 = np.minimum(np.floor(m), N - 1).astype(np.int64)
    i1 = np.minimum(i0 + 1, N - 1)
    return i0, i1, m - i0, inside


def model(x, cfg, heat, cmap, opacity, invert, box, table8):
    h, w = x.shape
    H, W = heat.shape
    v, lo, hi = window(x, cfg)
    if invert:
        v = 1.0 - v
    grey = np.floor(v * 255.0 + 0.5)
    nw, nh, ox, oy = geometry(w, h, W, H, cfg["fit"])
    iy0, iy1, ty, iny = axis(h, nh, oy, H)
    ix0, ix1, tx, inx = axis(w, nw, ox, W)
    hv = heat.astype(np.float64)
    r0, r1 = hv[iy0], hv[iy1]  # (h, W)
    top = r0[:, ix0] + tx * (r0[:, ix1] - r0[:, ix0])
    bot = r1[:, ix0] + tx * (r1[:, ix1] - r1[:, ix0])
    heat_o = (top + ty[:, None] * (bot - top)) / 255.0
    heat_o[~(iny[:, None] & inx[None, :])] = 0.0
    idx = np.floor(heat_o * 255.0 + 0.5).astype(np.int64)
    colour = matplotlib.colormaps[cmap](idx)[..., :3] * 255.0
    if table8:
        colour = np.floor(colour + 0.5)  # the 8-bit table overlay.h documents
    a = (opacity * heat_o)[..., None]
    out = np.floor((1.0 - a) * grey[..., None] + a * colour + 0.5)
    boxmask = np.zeros((h, w), bool)
    if box is not None:
        x0, y0 = math.floor(box[0]), math.floor(box[1])
        x1, y1 = math.ceil(box[2]) - 1, math.ceil(box[3]) - 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        t = min(3, 1 + max(w, h) // 1500)
        if x1 >= x0 and y1 >= y0:
            boxmask[y0:y1 + 1, x0:x1 + 1] = True
            boxmask[y0 + t:y1 + 1 - t, x0 + t:x1 + 1 - t] = False
            out[boxmask] = CYAN
    return out.astype(np.int64), (nw, nh, ox, oy, lo, hi), heat_o, boxmask


# ---- running the C code ------------------------------------------------------------------

def yaml_of(cfg):
    win = "{mode: %s}" % cfg["mode"]
    if cfg["mode"] != "none":
        win = "{mode: %s, low: %r, high: %r}" % (cfg["mode"], cfg["low"], cfg["high"])
    return ("window: %s\ninvert: %s\ninput: {height: %d, width: %d, channels: 1}\n"
            "fit: %s\nlimits: {max_megapixels: 0}\n" %
            (win, "true" if cfg["invert"] else "false", cfg["height"], cfg["width"], cfg["fit"]))


def run_tool(x, cfg, heat, cmap, opacity, box, tmp):
    src, conf, hraw, out = (os.path.join(tmp, n) for n in ("src.png", "c.yaml", "heat.raw",
                                                           "overlay.png"))
    png_grey(src, x)
    with open(conf, "w") as f:
        f.write(yaml_of(cfg))
    heat.astype(np.uint8).tofile(hraw)
    args = [TOOL, src, conf, hraw, out, "--cmap", cmap, "--opacity", repr(opacity)]
    if box is not None:
        args += ["--box", ",".join(repr(float(b)) for b in box)]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("fx_overlay_tool exit %d: %s" % (p.returncode, p.stderr.strip()))
    g = p.stdout.split()
    assert g[0] == "geom", p.stdout
    leftovers = sorted(set(os.listdir(tmp)) - {"src.png", "c.yaml", "heat.raw", "overlay.png"})
    if leftovers:
        raise RuntimeError("files left next to the overlay: %s" % leftovers)
    with Image.open(out) as im:
        if im.mode != "RGB" or im.size != (x.shape[1], x.shape[0]):
            raise RuntimeError("PNG is %s %s, want RGB %s" % (im.mode, im.size, x.shape[::-1]))
        got = np.asarray(im).astype(np.int64)
    return got, tuple(int(t) for t in g[1:5]) + (float(g[5]), float(g[6]))


def case(name, x, heat, cmap="inferno", opacity=0.6, box=None, **cfg):
    base = dict(mode="percentile", low=0.5, high=99.5, invert=False, fit="pad",
                height=heat.shape[0], width=heat.shape[1])
    base.update(cfg)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            got, ggeom = run_tool(x, base, heat, cmap, opacity, box, tmp)
        want, wgeom, heat_o, boxmask = model(x, base, heat, cmap, opacity, base["invert"], box,
                                             False)
        want8 = model(x, base, heat, cmap, opacity, base["invert"], box, True)[0]
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
    # The case must exercise the blend: heat over a good part of the image.
    if not (heat_o > 0.2).mean() > 0.05:
        report(name, False, "test setup: too little heat reaches the image")
        return
    for ref, what, max_diff, max_frac in (
            (want, "matplotlib's float colours", MAX_DIFF, 1.0),
            (want8, "colours rounded to 8 bits", MAX_DIFF8, MAX_FRAC_DIFFERENT)):
        d = np.abs(got - ref)
        worst, frac = int(d.max()), float((d.max(axis=2) > 0).mean())
        if worst > max_diff or frac > max_frac:
            i = np.unravel_index(int(np.argmax(d)), d.shape)
            report(name, False, "vs %s: max |diff| %d at %s (got %s want %s, heat %.4f), "
                   "%.3f%% of pixels differ" % (what, worst, i, got[i[0], i[1]], ref[i[0], i[1]],
                                                heat_o[i[0], i[1]], 100 * frac))
            return
    if box is not None and not (got[boxmask] == CYAN).all():
        report(name, False, "box outline not cyan everywhere")
        return
    report(name, True)


def error_cases(tmp_root):
    """A missing source and an unwritable output: non-zero exit naming the file."""
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        conf, hraw = os.path.join(tmp, "c.yaml"), os.path.join(tmp, "h.raw")
        with open(conf, "w") as f:
            f.write("input: {height: 8, width: 8, channels: 1}\n")
        np.zeros(64, np.uint8).tofile(hraw)
        missing = os.path.join(tmp, "nope.png")
        p = subprocess.run([TOOL, missing, conf, hraw, os.path.join(tmp, "o.png")],
                           capture_output=True, text=True)
        report("error_missing_source", p.returncode != 0 and missing in p.stderr,
               "exit %d, stderr %r" % (p.returncode, p.stderr))
        src = os.path.join(tmp, "s.png")
        png_grey(src, np.zeros((10, 12), np.uint16))
        bad_out = os.path.join(tmp, "no", "dir", "o.png")
        p = subprocess.run([TOOL, src, conf, hraw, bad_out], capture_output=True, text=True)
        report("error_unwritable_output", p.returncode != 0 and bad_out in p.stderr,
               "exit %d, stderr %r" % (p.returncode, p.stderr))


def main():
    if not os.access(TOOL, os.X_OK):
        report("tool", False, "%s not built (make %s)" % (TOOL, TOOL))
        return 1
    rng = np.random.default_rng(20240611)
    wide = radiograph(rng, 200, 300)   # 300 x 200
    tall = radiograph(rng, 251, 173)   # odd sizes, taller than wide
    heat64 = heatmap(rng, 64, 64)
    heat_rect = heatmap(rng, 40, 56)   # H != W
    for cmap in ("inferno", "viridis"):
        for fit in ("pad", "crop"):
            for inv in (False, True):
                tag = "%s_%s_%s" % (cmap, fit, "invert" if inv else "plain")
                case("wide_" + tag, wide, heat64, cmap=cmap, fit=fit, invert=inv)
                case("tall_" + tag, tall, heat_rect, cmap=cmap, fit=fit, invert=inv)
    case("fixed_window_box", wide, heat64, mode="fixed", low=800, high=3000, opacity=1.0,
         box=(40.25, 30.5, 250.0, 180.75))
    case("none_window_crop_box", tall, heat_rect, mode="none", fit="crop", opacity=0.3,
         box=(-5.0, 100.5, 60.0, 400.0))
    case("u8_source_magma", radiograph(rng, 120, 160, bits=8), heat64, cmap="magma")
    case("large_box_2px", radiograph(rng, 1000, 1600), heat64, cmap="plasma", fit="crop",
         invert=True, box=(300.5, 200.25, 1200.0, 800.0))
    with tempfile.TemporaryDirectory() as tmp_root:
        error_cases(tmp_root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
