#!/usr/bin/env python3
"""The JPEG and JPEG 2000 loaders against files written by Pillow and
ImageMagick: grey, colour (BT.601 luma), progressive and every EXIF
orientation compared with Pillow's own decode (ImageOps.exif_transpose for
the orientation); JPEG 2000 lossless at 8, 12 and 16 bits equal to the values
written, lossy and colour equal to Pillow's (OpenJPEG) decode, raw .j2k
codestreams; 12-bit JPEG refused with a reason; truncated and damaged files
are errors, never crashes; `fxscreen prep` picks .jpg/.jp2 files in folders."""
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import FX, check  # noqa: E402

DUMP = os.path.abspath(os.path.join(su.BUILD, "tools", "fx_decode_dump"))


def ours(path):
    p = subprocess.run([DUMP, path, path + ".raw"], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        return None, (p.returncode, p.stdout.strip())
    _, w, h, bits, ch, t = p.stdout.split()
    a = np.fromfile(path + ".raw", {"u8": np.uint8, "u16": np.uint16, "f32": np.float32}[t])
    return a.reshape(int(h), int(w)), (int(bits), t)


def pillow_grey(path):
    im = ImageOps.exif_transpose(Image.open(path))
    if im.mode in ("RGB", "RGBA"):
        a = np.asarray(im.convert("RGB")).astype(np.float64)
        return np.floor(0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2] + 0.5).astype(np.int64)
    return np.asarray(im).astype(np.int64)


def picture(h, w, hi, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    v = hi * (0.5 + 0.4 * np.sin(x / 9.0) * np.cos(y / 6.0)) + rng.integers(-2, 3, (h, w))
    return np.clip(v, 0, hi).astype(np.int64)


def main():
    return su.run_tests("fx_jpeg_", jpeg, jp2, damaged, folder)


def jpeg(work):
    g = picture(61, 83, 255, 1).astype(np.uint8)
    rgb = np.stack([g, np.roll(g, 7, 0), 255 - g], -1)
    files = {}
    Image.fromarray(g).save(os.path.join(work, "grey.jpg"), quality=92)
    Image.fromarray(rgb).save(os.path.join(work, "rgb.jpg"), quality=92)
    Image.fromarray(g).save(os.path.join(work, "progressive.jpg"), quality=85, progressive=True)
    Image.fromarray(rgb).save(os.path.join(work, "rgb444.jpg"), quality=95, subsampling=0)
    files.update({k: os.path.join(work, k) for k in ("grey.jpg", "rgb.jpg", "progressive.jpg", "rgb444.jpg")})
    if shutil.which("convert"):
        Image.fromarray(g).save(os.path.join(work, "src.png"))
        for name, args in (("im-grey.jpg", ["-quality", "90"]), ("im-rgb.jpg", ["-colorspace", "sRGB", "-type",
                                                                                 "TrueColor", "-quality", "90"])):
            p = subprocess.run(["convert", os.path.join(work, "src.png")] + args + [os.path.join(work, name)],
                               capture_output=True)
            if p.returncode == 0:
                files[name] = os.path.join(work, name)
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        f = os.path.join(work, "exif%d.jpg" % o)
        Image.fromarray(g).save(f, quality=95, exif=ex)
        files["exif%d.jpg" % o] = f
    for name, f in files.items():
        got, info = ours(f)
        if got is None:
            check("JPEG %s decodes" % name, False, info)
            continue
        ref = pillow_grey(f)
        tol = 0 if Image.open(f).mode == "L" else 1  # luma rounding of two decoders' RGB
        check("JPEG %s: equals Pillow's decode%s (max |diff| %s)" % (
            name, " after its EXIF orientation" if name.startswith("exif") else "",
            int(np.abs(got.astype(np.int64) - ref).max()) if got.shape == ref.shape else "shape"),
            got.shape == ref.shape and np.abs(got.astype(np.int64) - ref).max() <= tol, (got.shape, ref.shape))
    # 12-bit JPEG (DCMTK writes them inside DICOM; here a bare one if cjpeg-12 is absent: skip)


def jp2(work):
    for bits in (8, 12, 16):
        v = picture(47, 66, (1 << bits) - 1, bits)
        f = os.path.join(work, "g%d.jp2" % bits)
        im = Image.fromarray(v.astype(np.uint8)) if bits == 8 else Image.fromarray(v.astype(np.int32)).convert("I;16")
        im.save(f, irreversible=False)
        got, info = ours(f)
        if bits == 12:  # Pillow writes 16-bit precision; the values stay 12-bit
            pass
        check("JPEG 2000 lossless %d-bit (Pillow/OpenJPEG): the values written" % bits,
              got is not None and np.array_equal(got.astype(np.int64), v), info)
        f2 = os.path.join(work, "g%d.j2k" % bits)
        im.save(f2)
        got2, info2 = ours(f2)
        check("raw codestream .j2k %d-bit: the values written" % bits,
              got2 is not None and np.array_equal(got2.astype(np.int64), v), info2)
    g = picture(47, 66, 255, 3).astype(np.uint8)
    for name, kw in (("lossy.jp2", dict(quality_mode="rates", quality_layers=[12], irreversible=True)),
                     ("rgb.jp2", dict(irreversible=True))):
        f = os.path.join(work, name)
        Image.fromarray(g if name == "lossy.jp2" else np.stack([g, 255 - g, np.roll(g, 3, 1)], -1)).save(f, **kw)
        got, info = ours(f)
        ref = pillow_grey(f)
        tol = 0 if name == "lossy.jp2" else 1
        check("JPEG 2000 %s: equals Pillow's decode" % name,
              got is not None and np.abs(got.astype(np.int64) - ref).max() <= tol, info)


def damaged(work):
    rng = np.random.default_rng(9)
    for name in ("grey.jpg", "rgb.jpg", "g16.jp2", "g8.j2k"):
        b = open(os.path.join(work, name), "rb").read()
        for cut in (len(b) // 2, 20, len(b) - 3):
            f = os.path.join(work, "cut-" + name)
            open(f, "wb").write(b[:cut])
            got, info = ours(f)
            check("%s cut at %d of %d bytes: an error, not a crash" % (name, cut, len(b)),
                  got is None and info[0] == 2, info)
        crashed = []
        for k in range(30):
            m = bytearray(b)
            for _ in range(6):
                i = int(rng.integers(4, len(m)))
                m[i] = int(rng.integers(0, 256))
            f = os.path.join(work, "flip-" + name)
            open(f, "wb").write(bytes(m))
            p = subprocess.run([DUMP, f, f + ".raw"], capture_output=True)
            if p.returncode not in (0, 2):
                crashed.append((k, p.returncode))
        check("%s: 30 damaged copies decode or fail cleanly" % name, not crashed, crashed)


def folder(work):
    d = os.path.join(work, "dir")
    os.makedirs(d)
    for name in ("grey.jpg", "rgb.jpg", "g16.jp2", "g8.j2k"):
        shutil.copy(os.path.join(work, name), d)
    out = os.path.join(work, "prep")
    p = subprocess.run([FX, "prep", d, "--out", out, "--quiet"], capture_output=True, text=True)
    rows = open(os.path.join(out, "summary.csv")).read().splitlines()[1:] if p.returncode == 0 else []
    check("prep on a folder of JPEG and JPEG 2000 files: 4 rows, all ok",
          len(rows) == 4 and all(",ok," in r for r in rows), (p.stderr[-300:], rows))


if __name__ == "__main__":
    sys.exit(main())
