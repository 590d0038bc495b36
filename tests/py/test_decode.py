#!/usr/bin/python3
"""Decoder tests against files written by OTHER tools than ours.

Run: FX_BUILD=build /usr/bin/python3 tests/py/test_decode.py
Uses $FX_BUILD/tools/fx_decode_dump.  Files are made in a temp dir with
Pillow, tifffile, tiffcp (libtiff-tools) and a small pure-Python PNG encoder
below (Pillow cannot write Adam7 interlaced PNG or every bit depth).
Expected pixels are computed independently in numpy; JPEG-compressed TIFFs
are compared with Pillow's decode of the same file (tolerance 2 levels).
Then a damaged set must give `error ...` and exit 2, never a signal.
Prints one `PASS name` / `FAIL name` line per case; exits 1 on any failure.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import tifffile
from PIL import Image

BUILD = os.environ.get("FX_BUILD", "build")
DUMP = os.path.join(BUILD, "tools", "fx_decode_dump")
RNG = np.random.default_rng(12345)
W, H = 37, 23  # odd on purpose: partial tiles, partial bytes in packed rows
failures = 0


def report(name, ok, why=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok or not why else ": " + why))
    sys.stdout.flush()
    if not ok:
        failures += 1


def dump(path):
    """Run the decoder; returns (rc, first line, array or None)."""
    out = path + ".raw"
    p = subprocess.run([DUMP, path, out], capture_output=True, text=True, timeout=60)
    line = p.stdout.strip().splitlines()[0] if p.stdout.strip() else ""
    arr = None
    if p.returncode == 0 and line.startswith("ok "):
        _, w, h, _bd, _ch, t = line.split()
        dt = {"u8": np.uint8, "u16": np.uint16, "f32": np.float32}[t]
        arr = np.fromfile(out, dtype=dt).reshape(int(h), int(w))
    if os.path.exists(out):
        os.remove(out)
    return p.returncode, line, arr


def luma(rgb):
    """BT.601 luma as loader.h defines it: double, round half away from zero."""
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    x = 0.299 * r + 0.587 * g + 0.114 * b
    fl = np.floor(x)
    return fl + ((x - fl) >= 0.5)


def check_ok(name, path, expect, bit_depth=None, channels=None, tol=0):
    """The file must decode to expect (exactly, or within tol)."""
    try:
        rc, line, arr = dump(path)
    except subprocess.TimeoutExpired:
        return report(name, False, "timeout")
    if rc != 0 or arr is None:
        return report(name, False, "rc=%d %s" % (rc, line))
    f = line.split()
    if bit_depth is not None and int(f[3]) != bit_depth:
        return report(name, False, "bit depth %s != %d" % (f[3], bit_depth))
    if channels is not None and int(f[4]) != channels:
        return report(name, False, "channels %s != %d" % (f[4], channels))
    want_t = {np.dtype(np.uint8): "u8", np.dtype(np.uint16): "u16", np.dtype(np.float32): "f32"}
    exp = np.asarray(expect)
    if arr.shape != exp.shape:
        return report(name, False, "shape %s != %s" % (arr.shape, exp.shape))
    if exp.dtype in want_t and f[5] != want_t[exp.dtype]:
        return report(name, False, "type %s != %s" % (f[5], want_t[exp.dtype]))
    d = np.abs(arr.astype(np.float64) - exp.astype(np.float64))
    if d.max() > tol:
        i = np.unravel_index(np.argmax(d), d.shape)
        return report(name, False, "max diff %g at %s (got %s want %s)" % (d.max(), i, arr[i], exp[i]))
    report(name, True)


def check_err(name, path, want=None):
    """The file must be refused: exit 2, an `error` line naming a reason."""
    try:
        rc, line, _ = dump(path)
    except subprocess.TimeoutExpired:
        return report(name, False, "timeout (hang)")
    if rc < 0:
        return report(name, False, "killed by signal %d" % -rc)
    if rc != 2 or not line.startswith("error ") or len(line) < 15:
        return report(name, False, "rc=%d %r" % (rc, line))
    if want and want not in line:
        return report(name, False, "%r lacks %r" % (line, want))
    report(name, True)


# ---- a tiny PNG encoder (independent of libpng) ---------------------------

def chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data))


ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]  # (y0, x0, dy, dx)


def pack_rows(img, depth):
    """img: (h, w, c) ints -> list of scanline bytes (no filter byte)."""
    h, w, c = img.shape
    rows = []
    for y in range(h):
        v = img[y].reshape(-1).astype(np.uint32)
        if depth == 16:
            rows.append(v.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(v.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = (len(v) + per - 1) // per
            b = bytearray(n)
            for i, s in enumerate(v):
                b[i // per] |= int(s) << (8 - depth * (i % per + 1))
            rows.append(bytes(b))
    return rows


def make_png(img, ctype, depth, palette=None, trns=None, interlace=False, idat_split=3):
    """Encode img (h, w, c) as PNG bytes with filter 0 (and 1 on odd rows)."""
    h, w, _ = img.shape
    raw = bytearray()
    bpp = max(1, img.shape[2] * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for y0, x0, dy, dx in passes:
        sub = img[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for i, row in enumerate(pack_rows(sub, depth)):
            if i % 2:  # Sub filter on odd rows, to exercise unfiltering
                f = bytearray(row)
                for k in range(len(row) - 1, bpp - 1, -1):
                    f[k] = (row[k] - row[k - bpp]) & 0xFF
                raw += b"\x01" + bytes(f)
            else:
                raw += b"\x00" + row
    z = zlib.compress(bytes(raw), 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = max(1, len(z) // idat_split)
    for i in range(0, len(z), step):
        out += chunk(b"IDAT", z[i:i + step])
    return out + chunk(b"IEND", b"")


def rand(shape, depth):
    return RNG.integers(0, 1 << depth, size=shape, dtype=np.uint32)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def png_cases(d):
    for interlace in (False, True):
        tag = "-adam7" if interlace else ""
        for depth in (1, 2, 4, 8, 16):
            g = rand((H, W, 1), depth)
            p = write(os.path.join(d, "g%d%s.png" % (depth, tag)), make_png(g, 0, depth, interlace=interlace))
            if depth == 16:
                exp = g[..., 0].astype(np.uint16)
            else:
                exp = (g[..., 0] * 255 // ((1 << depth) - 1)).astype(np.uint8)
            check_ok("png-gray%d%s" % (depth, tag), p, exp, depth, 1)
        for depth in (8, 16):
            dt = np.uint8 if depth == 8 else np.uint16
            ga = rand((H, W, 2), depth)
            p = write(os.path.join(d, "ga%d%s.png" % (depth, tag)), make_png(ga, 4, depth, interlace=interlace))
            check_ok("png-gray-alpha%d%s" % (depth, tag), p, ga[..., 0].astype(dt), depth, 2)
            rgb = rand((H, W, 3), depth)
            p = write(os.path.join(d, "rgb%d%s.png" % (depth, tag)), make_png(rgb, 2, depth, interlace=interlace))
            check_ok("png-rgb%d%s" % (depth, tag), p, luma(rgb).astype(dt), depth, 3)
            rgba = rand((H, W, 4), depth)
            p = write(os.path.join(d, "rgba%d%s.png" % (depth, tag)), make_png(rgba, 6, depth, interlace=interlace))
            check_ok("png-rgba%d%s" % (depth, tag), p, luma(rgba[..., :3]).astype(dt), depth, 4)
        for depth in (1, 2, 4, 8):
            pal = RNG.integers(0, 256, size=(1 << depth, 3))
            idx = rand((H, W, 1), depth)
            trns = bytes(RNG.integers(0, 256, size=(1 << depth)).astype(np.uint8))
            p = write(os.path.join(d, "p%d%s.png" % (depth, tag)),
                      make_png(idx, 3, depth, palette=pal, trns=trns, interlace=interlace))
            check_ok("png-palette%d-trns%s" % (depth, tag), p, luma(pal[idx[..., 0]]).astype(np.uint8), depth, 1)
    # gray with tRNS: ignored, values unchanged
    g = rand((H, W, 1), 8)
    p = write(os.path.join(d, "g8trns.png"), make_png(g, 0, 8, trns=struct.pack(">H", 7)))
    check_ok("png-gray8-trns", p, g[..., 0].astype(np.uint8), 8, 1)
    # Tiny images: Adam7 passes that are empty.
    for (h, w) in ((1, 1), (1, 5), (3, 2), (9, 1)):
        rgb = rand((h, w, 3), 8)
        p = write(os.path.join(d, "tiny%dx%d.png" % (w, h)), make_png(rgb, 2, 8, interlace=True))
        check_ok("png-adam7-rgb-%dx%d" % (w, h), p, luma(rgb).astype(np.uint8))

    # Files written by Pillow (its own zlib/filters choices).
    a8 = RNG.integers(0, 256, size=(H, W), dtype=np.uint8)
    a16 = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)
    rgb = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    rgba = RNG.integers(0, 256, size=(H, W, 4), dtype=np.uint8)
    p = os.path.join(d, "pil_l.png"); Image.fromarray(a8, "L").save(p)
    check_ok("pillow-png-gray8", p, a8, 8, 1)
    p = os.path.join(d, "pil_i16.png"); Image.fromarray(a16).save(p)
    check_ok("pillow-png-gray16", p, a16, 16, 1)
    p = os.path.join(d, "pil_1.png"); Image.fromarray(a8 > 127).save(p)
    check_ok("pillow-png-gray1", p, np.where(a8 > 127, 255, 0).astype(np.uint8), 1, 1)
    p = os.path.join(d, "pil_rgb.png"); Image.fromarray(rgb, "RGB").save(p)
    check_ok("pillow-png-rgb8", p, luma(rgb).astype(np.uint8), 8, 3)
    p = os.path.join(d, "pil_rgba.png"); Image.fromarray(rgba, "RGBA").save(p)
    check_ok("pillow-png-rgba8", p, luma(rgba[..., :3]).astype(np.uint8), 8, 4)
    p = os.path.join(d, "pil_la.png"); Image.fromarray(rgba[..., :2], "LA").save(p)
    check_ok("pillow-png-gray-alpha8", p, rgba[..., 0], 8, 2)
    pim = Image.fromarray(rgb, "RGB").quantize(16)
    p = os.path.join(d, "pil_p.png"); pim.save(p, bits=4)
    palarr = np.array(pim.getpalette()[:48], dtype=np.int64).reshape(-1, 3)
    check_ok("pillow-png-palette", p, luma(palarr[np.asarray(pim)]).astype(np.uint8))
    # Our own PNG encoder agrees with Pillow's decoder (guards the test itself).
    g = rand((H, W, 1), 16)
    ok = np.array_equal(np.asarray(Image.open(write(os.path.join(d, "chk.png"), make_png(g, 0, 16, interlace=True)))),
                        g[..., 0].astype(np.int32))
    report("selftest-png-encoder-vs-pillow", ok)


# ---- TIFF -------------------------------------------------------------------

def tiffcp(src, dst, *args):
    subprocess.run(["tiffcp", *args, src, dst], check=True, capture_output=True)
    return dst


def tiff_cases(d):
    g8 = RNG.integers(0, 256, size=(H, W), dtype=np.uint8)
    g16 = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)
    f32 = RNG.normal(0, 1000, size=(H, W)).astype(np.float32)
    rgb8 = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    rgb16 = RNG.integers(0, 65536, size=(H, W, 3), dtype=np.uint16)

    def tf(name, arr, **kw):
        p = os.path.join(d, name)
        tifffile.imwrite(p, arr, **kw)
        return p

    # tifffile: strips, tiles, deflate, byte order, BigTIFF, photometric
    for nm, arr, exp in (("gray8", g8, g8), ("gray16", g16, g16), ("float32", f32, f32),
                         ("rgb8", rgb8, luma(rgb8).astype(np.uint8)),
                         ("rgb16", rgb16, luma(rgb16).astype(np.uint16))):
        rgb = arr.ndim == 3
        ph = "rgb" if rgb else "minisblack"
        check_ok("tiff-%s-strips" % nm, tf(nm + "_s.tif", arr, photometric=ph, rowsperstrip=5), exp)
        check_ok("tiff-%s-tiles" % nm, tf(nm + "_t.tif", arr, photometric=ph, tile=(16, 16)), exp)
        check_ok("tiff-%s-deflate" % nm, tf(nm + "_z.tif", arr, photometric=ph, compression="zlib",
                                            rowsperstrip=7), exp)
        check_ok("tiff-%s-bigendian" % nm, tf(nm + "_be.tif", arr, photometric=ph, byteorder=">"), exp)
        check_ok("tiff-%s-bigtiff" % nm, tf(nm + "_bt.tif", arr, photometric=ph, bigtiff=True), exp)
        if rgb:
            check_ok("tiff-%s-planar-separate" % nm,
                     tf(nm + "_sep.tif", np.moveaxis(arr, 2, 0).copy(), photometric="rgb",
                        planarconfig="separate", rowsperstrip=4), exp)
            check_ok("tiff-%s-planar-separate-tiles" % nm,
                     tf(nm + "_sept.tif", np.moveaxis(arr, 2, 0).copy(), photometric="rgb",
                        planarconfig="separate", tile=(16, 16)), exp)
        # libtiff's own encoders via tiffcp: LZW (+predictor), Deflate, PackBits, tiles
        base = tf(nm + "_base.tif", arr, photometric=ph)
        for cname, args in (("lzw", ["-c", "lzw"]), ("lzw-predictor", ["-c", "lzw:2"] if nm != "float32" else ["-c", "lzw:3"]),
                            ("zip", ["-c", "zip"]), ("packbits", ["-c", "packbits"]),
                            ("lzw-tiles", ["-c", "lzw", "-t", "-w", "16", "-l", "16"]),
                            ("rows3", ["-r", "3"])):
            check_ok("tiffcp-%s-%s" % (nm, cname), tiffcp(base, os.path.join(d, "%s_%s.tif" % (nm, cname)), *args), exp)
        if rgb and nm == "rgb8":  # tiffcp cannot re-plane 16-bit data
            check_ok("tiffcp-%s-separate" % nm,
                     tiffcp(base, os.path.join(d, nm + "_cpsep.tif"), "-p", "separate", "-c", "lzw"), exp)

    # Large single-strip colour images (decoded scanline by scanline)
    big = RNG.integers(0, 256, size=(601, 703, 3), dtype=np.uint8)
    big16 = RNG.integers(0, 65536, size=(401, 403, 4), dtype=np.uint16)
    bbase = tf("big_rgb.tif", big, photometric="rgb", rowsperstrip=601)
    b16 = tf("big_rgba16.tif", big16, photometric="rgb", extrasamples=["assocalpha"], rowsperstrip=401)
    check_ok("tiff-rgb8-one-big-strip", bbase, luma(big).astype(np.uint8))
    check_ok("tiff-rgba16-one-big-strip", b16, luma(big16[..., :3]).astype(np.uint16))
    for cname, args in (("lzw", ["-c", "lzw:2"]), ("zip", ["-c", "zip"]), ("packbits", ["-c", "packbits"])):
        check_ok("tiffcp-rgb8-one-big-strip-" + cname,
                 tiffcp(bbase, os.path.join(d, "big_%s.tif" % cname), "-r", "601", *args), luma(big).astype(np.uint8))
    p = tiffcp(bbase, os.path.join(d, "big_jpeg.tif"), "-r", "608", "-c", "jpeg")
    check_ok("tiffcp-rgb8-one-big-strip-jpeg", p, luma(np.asarray(Image.open(p).convert("RGB"))).astype(np.uint8), tol=2)

    # MinIsWhite: stored v, displayed max - v
    check_ok("tiff-gray8-miniswhite", tf("miw8.tif", g8, photometric="miniswhite"), (255 - g8).astype(np.uint8))
    check_ok("tiff-gray16-miniswhite", tf("miw16.tif", g16, photometric="miniswhite", tile=(16, 16)),
             (65535 - g16).astype(np.uint16))
    check_ok("tiff-float-miniswhite-as-stored", tf("miwf.tif", f32, photometric="miniswhite"), f32)
    # Multi-page: the first page
    p = os.path.join(d, "multi.tif")
    with tifffile.TiffWriter(p) as t:
        t.write(g8, photometric="minisblack")
        t.write(255 - g8, photometric="minisblack")
        t.write(g16, photometric="minisblack")
    check_ok("tiff-multipage-first", p, g8)
    # RGBA (extra sample dropped) and gray+alpha
    rgba = RNG.integers(0, 256, size=(H, W, 4), dtype=np.uint8)
    check_ok("tiff-rgba8", tf("rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"]),
             luma(rgba[..., :3]).astype(np.uint8))
    # Pillow-written (its libtiff-based writer): LZW, PackBits, Deflate
    for comp in ("tiff_lzw", "packbits", "tiff_adobe_deflate"):
        p = os.path.join(d, "pil_%s.tif" % comp)
        Image.fromarray(rgb8, "RGB").save(p, compression=comp)
        check_ok("pillow-tiff-rgb8-%s" % comp, p, luma(rgb8).astype(np.uint8))
        p = os.path.join(d, "pil_g_%s.tif" % comp)
        Image.fromarray(g8, "L").save(p, compression=comp)
        check_ok("pillow-tiff-gray8-%s" % comp, p, g8)

    # JPEG: compare with Pillow's decode of the same file, tolerance 2.
    smooth = np.clip(np.add.outer(np.arange(H) * 5, np.arange(W) * 3) +
                     RNG.integers(0, 20, size=(H, W)), 0, 255).astype(np.uint8)
    srgb = np.stack([smooth, np.roll(smooth, 3, 1), 255 - smooth], axis=2).copy()
    base = tf("jpg_rgb_base.tif", srgb, photometric="rgb")
    gbase = tf("jpg_g_base.tif", smooth, photometric="minisblack")
    for nm, src, args in (("jpeg-ycbcr", base, ["-c", "jpeg", "-r", "16"]),
                          ("jpeg-rgb", base, ["-c", "jpeg:r", "-r", "16"]),
                          ("jpeg-ycbcr-tiles", base, ["-c", "jpeg", "-t", "-w", "16", "-l", "16"]),
                          ("jpeg-gray", gbase, ["-c", "jpeg", "-r", "8"])):
        p = tiffcp(src, os.path.join(d, nm + ".tif"), *args)
        ref = np.asarray(Image.open(p).convert("RGB") if src is base else Image.open(p))
        exp = luma(ref).astype(np.uint8) if src is base else ref
        check_ok("tiffcp-" + nm, p, exp, tol=2)
    p = os.path.join(d, "pil_jpeg.tif")
    Image.fromarray(srgb, "RGB").save(p, compression="jpeg")
    check_ok("pillow-tiff-jpeg", p, luma(np.asarray(Image.open(p).convert("RGB"))).astype(np.uint8), tol=2)

    # Unsupported layouts: refused with a reason, not a crash
    check_err("tiff-int16-unsupported", tf("i16.tif", g16.astype(np.int16)), "signed")
    check_err("tiff-float64-unsupported", tf("f64.tif", f32.astype(np.float64)), "unsupported")
    check_err("tiff-palette-unsupported",
              tf("pal.tif", g8, photometric="palette", colormap=RNG.integers(0, 65536, (3, 256), dtype=np.uint16)),
              "palette")
    check_err("tiff-cmyk-unsupported", tf("cmyk.tif", rgba, photometric="separated"), "unsupported")
    check_err("tiff-12bit-unsupported", write(os.path.join(d, "b12.tif"), mini_tiff(8, 4, bps=12, data=bytes(48))), "12-bit")


def mini_tiff(w, h, bps=8, data=b"", offset_override=None, ifd_offset=None):
    """A hand-made little-endian one-strip grey TIFF (for damage/limit cases)."""
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, bps), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, len(data))]
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * len(entries) + 4
    body = struct.pack("<H", len(entries))
    for tag, typ, cnt, val in entries:
        if tag == 273:
            val = data_at if offset_override is None else offset_override
        body += struct.pack("<HHI", tag, typ, cnt) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
    body += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_at if ifd_offset is None else ifd_offset) + body + data


# ---- damaged inputs ------------------------------------------------------------

def damaged_cases(d):
    g = rand((H, W, 1), 8)
    good = make_png(g, 0, 8, idat_split=1)
    check_ok("png-hand-reference", write(os.path.join(d, "good.png"), good), g[..., 0].astype(np.uint8))
    check_err("empty-file", write(os.path.join(d, "empty.png"), b""), "empty file")
    for cut in (4, 8, 20, 33, 50, len(good) // 2, len(good) - 13, len(good) - 1):
        check_err("png-truncated-at-%d" % cut, write(os.path.join(d, "trunc%d.png" % cut), good[:cut]))
    # IDAT starts at 8 + 25 (IHDR chunk); find it by name.
    idat = good.index(b"IDAT") - 4
    ln = struct.unpack(">I", good[idat:idat + 4])[0]
    crc_at = idat + 8 + ln
    bad = bytearray(good); bad[crc_at] ^= 0xFF
    check_err("png-bad-crc-idat", write(os.path.join(d, "badcrc.png"), bytes(bad)), "CRC")
    bad = bytearray(good); bad[29] ^= 0x01  # IHDR CRC
    check_err("png-bad-crc-ihdr", write(os.path.join(d, "badcrc_ihdr.png"), bytes(bad)), "CRC")

    def with_idat(data):
        return good[:idat] + chunk(b"IDAT", data) + chunk(b"IEND", b"")

    z = good[idat + 8:idat + 8 + ln]
    check_err("png-bad-zlib-header", write(os.path.join(d, "badzhdr.png"), with_idat(b"\x78\x00" + z[2:])))
    check_err("png-bad-zlib-blocktype", write(os.path.join(d, "badzblk.png"), with_idat(z[:2] + b"\x07" + z[3:])))
    check_err("png-zlib-stream-too-short", write(os.path.join(d, "shortz.png"), with_idat(z[:len(z) // 3])))
    check_err("png-missing-idat", write(os.path.join(d, "noidat.png"), good[:idat] + chunk(b"IEND", b"")))

    def ihdr(w, h, depth=8, ctype=0, interlace=0):
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))

    check_err("png-zero-width", write(os.path.join(d, "w0.png"), ihdr(0, 10) + good[33:]))
    check_err("png-zero-height", write(os.path.join(d, "h0.png"), ihdr(10, 0) + good[33:]))
    check_err("png-bad-bit-depth", write(os.path.join(d, "bd3.png"), ihdr(W, H, 3) + good[33:]))
    check_err("png-huge-dimensions", write(os.path.join(d, "huge.png"), ihdr(100000, 100000) + good[33:]), "over limit")
    check_err("png-huge-over-libpng-limit", write(os.path.join(d, "huge2.png"), ihdr(0x7FFFFFFF, 0x7FFFFFFF) + good[33:]))
    check_err("png-size-mismatch", write(os.path.join(d, "mism.png"), ihdr(W * 3, H * 2) + good[33:]))

    # Sniffing by magic, not by name.
    check_ok("png-named-tif", write(os.path.join(d, "really_png.tif"), good), g[..., 0].astype(np.uint8))
    tpath = os.path.join(d, "really_tiff.png")
    tifffile.imwrite(tpath, g[..., 0].astype(np.uint8))
    check_ok("tiff-named-png", tpath, g[..., 0].astype(np.uint8))
    check_err("random-bytes", write(os.path.join(d, "random.png"), bytes(RNG.integers(0, 256, 4096, dtype=np.uint8))),
              "not a PNG, TIFF, JPEG, JPEG 2000 or DICOM")
    check_err("png-signature-then-garbage",
              write(os.path.join(d, "siggarb.png"), good[:8] + bytes(RNG.integers(0, 256, 500, dtype=np.uint8))))
    check_err("jpeg-magic-no-image", write(os.path.join(d, "x.png"), b"\xff\xd8\xff\xe0" + bytes(100)), "jpeg")
    check_err("gif-file", write(os.path.join(d, "x.gif.png"), b"GIF89a" + bytes(100)), "not a PNG")
    os.mkdir(os.path.join(d, "dir.png"))
    check_err("directory-named-png", os.path.join(d, "dir.png"), "is a directory")
    check_err("missing-file", os.path.join(d, "nope.png"), "No such file")

    # TIFF damage
    tgood = open(tpath, "rb").read()
    for cut in (4, 8, 16, len(tgood) // 2, len(tgood) - 1):
        check_err("tiff-truncated-at-%d" % cut, write(os.path.join(d, "ttrunc%d.tif" % cut), tgood[:cut]))
    check_err("tiff-bad-ifd-offset", write(os.path.join(d, "badifd.tif"), mini_tiff(8, 4, data=bytes(32), ifd_offset=1 << 30)))
    check_err("tiff-strip-offset-past-end",
              write(os.path.join(d, "badstrip.tif"), mini_tiff(8, 4, data=bytes(32), offset_override=1 << 30)))
    check_err("tiff-short-strip", write(os.path.join(d, "shortstrip.tif"), mini_tiff(8, 4, data=bytes(10))))
    check_err("tiff-zero-width", write(os.path.join(d, "tw0.tif"), mini_tiff(0, 4, data=bytes(32))))
    check_err("tiff-huge-dimensions", write(os.path.join(d, "thuge.tif"), mini_tiff(100000, 100000, data=bytes(32))),
              "over limit")
    check_ok("tiff-hand-reference", write(os.path.join(d, "tok.tif"), mini_tiff(8, 4, data=bytes(range(32)))),
             np.arange(32, dtype=np.uint8).reshape(4, 8))


def main():
    if not os.access(DUMP, os.X_OK):
        print("FAIL decode-dump-missing: build %s first" % DUMP)
        return 1
    d = tempfile.mkdtemp(prefix="fx_decode_")
    try:
        png_cases(d)
        tiff_cases(d)
        damaged_cases(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
