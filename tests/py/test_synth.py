#!/usr/bin/env python3
"""End-to-end checks of `fxscreen synth`, read back with Pillow and tifffile.

Env: FX_BUILD = build directory (default "build"); the binary is $FX_BUILD/fxscreen.
Prints one PASS/FAIL line per case; exits 1 on failure, 77 when the binary
does not exist yet."""
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("FX_BUILD", "build")
BIN = os.path.join(BUILD, "fxscreen")
failures = 0


def report(name, ok, why=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
    sys.stdout.flush()
    if not ok:
        failures += 1


def synth(out, *args):
    return subprocess.run([BIN, "synth", "--out", out, *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def digests(d):
    return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(d))}


def read_labels(d):
    with open(os.path.join(d, "labels.csv"), newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def check_labels(d, n, size, ext):
    """Return an error string or ''."""
    head, rows = read_labels(d)
    if head != ["path", "label", "cx", "cy", "x0", "y0", "x1", "y1"]:
        return "bad header %r" % head
    if len(rows) != n:
        return "%d rows, want %d" % (len(rows), n)
    for i, r in enumerate(rows):
        if len(r) != 8 or r[0] != "img_%06d.%s" % (i, ext) or r[1] not in ("0", "1"):
            return "bad row %d: %r" % (i, r)
        if not os.path.exists(os.path.join(d, r[0])):
            return "missing " + r[0]
        if r[1] == "0":
            if any(r[2:]):
                return "normal row %d has a box: %r" % (i, r)
            continue
        cx, cy = float(r[2]), float(r[3])
        x0, y0, x1, y1 = map(int, r[4:])
        if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
            return "row %d: box outside image: %r" % (i, r)
        if not (x0 <= cx < x1 and y0 <= cy < y1):
            return "row %d: centre outside box: %r" % (i, r)
    return ""


def main():
    if not os.access(BIN, os.X_OK):
        print("SKIP test_synth: %s not built yet" % BIN)
        return 77
    try:
        import numpy as np
        import tifffile
        from PIL import Image
    except ImportError as e:
        print("SKIP test_synth: %s (run make deps)" % e)
        return 77
    tmp = tempfile.mkdtemp(prefix="fx_py_synth_")
    try:
        # determinism across thread counts, png 8-bit
        a, b, c = (os.path.join(tmp, x) for x in ("a", "b", "c"))
        ra = synth(a, "--n", 12, "--seed", 5, "--size", 128, "--threads", 1)
        rb = synth(b, "--n", 12, "--seed", 5, "--size", 128, "--threads", 2)
        rc = synth(c, "--n", 12, "--seed", 6, "--size", 128, "--threads", 2)
        ok = ra.returncode == 0 and rb.returncode == 0 and rc.returncode == 0
        report("runs", ok, ra.stderr + rb.stderr + rc.stderr)
        if ok:
            da, db, dc = digests(a), digests(b), digests(c)
            report("same_seed_identical_bytes", da == db and len(da) == 13,
                   "files differ: %s" % [f for f in da if da.get(f) != db.get(f)])
            diff = [f for f in da if f.endswith(".png") and da[f] != dc.get(f)]
            report("other_seed_differs", len(diff) == 12, "%d of 12 differ" % len(diff))
            k = sum(r[1] == "1" for r in read_labels(a)[1])
            report("summary_line", ra.stdout.strip() ==
                   "synth: wrote 12 images (%d fractured) to %s" % (k, a), repr(ra.stdout))
            report("labels_wellformed", check_labels(a, 12, 128, "png") == "",
                   check_labels(a, 12, 128, "png"))

        # fracture rate near the requested one (binomial: 200 draws, 4 sigma)
        d = os.path.join(tmp, "rate")
        r = synth(d, "--n", 200, "--size", 48, "--fracture-rate", 0.3, "--seed", 11)
        if r.returncode == 0:
            k = sum(row[1] == "1" for row in read_labels(d)[1])
            report("fracture_rate", abs(k - 60) <= 26, "%d of 200 at rate 0.3" % k)
            report("labels_wellformed_rate", check_labels(d, 200, 48, "png") == "",
                   check_labels(d, 200, 48, "png"))
        else:
            report("fracture_rate", False, r.stderr)
        for rate, want in (("0", 0), ("1", 8)):
            d = os.path.join(tmp, "rate" + rate)
            r = synth(d, "--n", 8, "--size", 64, "--fracture-rate", rate)
            k = sum(row[1] == "1" for row in read_labels(d)[1]) if r.returncode == 0 else -1
            report("fracture_rate_" + rate, k == want, "%d fractured" % k)

        # every format / depth reads back with the right mode, depth and size
        for fmt in ("png", "tiff"):
            for bits in (8, 16):
                name = "read_%s_%d" % (fmt, bits)
                d = os.path.join(tmp, name)
                r = synth(d, "--n", 4, "--size", 96, "--bits", bits, "--format", fmt,
                          "--seed", 3)
                if r.returncode != 0:
                    report(name, False, r.stderr)
                    continue
                ext = "png" if fmt == "png" else "tif"
                err = check_labels(d, 4, 96, ext)
                for i in range(4):
                    p = os.path.join(d, "img_%06d.%s" % (i, ext))
                    if fmt == "png":
                        im = Image.open(p)
                        want_mode = "L" if bits == 8 else ("I;16", "I;16B", "I")
                        if (im.mode not in want_mode) if bits == 16 else im.mode != "L":
                            err = err or "%s: mode %s" % (p, im.mode)
                        arr = np.asarray(im)
                    else:
                        arr = tifffile.imread(p)
                    want_dt = np.uint8 if bits == 8 else np.uint16
                    if fmt == "tiff" and arr.dtype != want_dt:
                        err = err or "%s: dtype %s" % (p, arr.dtype)
                    if arr.shape != (96, 96):
                        err = err or "%s: shape %s" % (p, arr.shape)
                    top = 255 if bits == 8 else 4095
                    if arr.max() > top or arr.max() - arr.min() < 0.3 * top:
                        err = err or "%s: range %d..%d" % (p, arr.min(), arr.max())
                report(name, err == "", err)

        # PNG and TIFF of one seed hold the same pixels
        pa = np.asarray(Image.open(os.path.join(tmp, "read_png_8", "img_000001.png")))
        ta = tifffile.imread(os.path.join(tmp, "read_tiff_8", "img_000001.tif"))
        report("png_tiff_same_pixels", np.array_equal(pa, ta))

        # usage errors exit 2 with a message naming the fix
        for args, word in ((["--bits", "12"], "--bits"), (["--size", "9000"], "--size"),
                           (["--format", "jpeg"], "--format"),
                           (["--fracture-rate", "2"], "--fracture-rate"),
                           (["--bogus"], "unknown option")):
            r = synth(os.path.join(tmp, "bad"), *args)
            report("usage_error_" + args[0].strip("-"),
                   r.returncode == 2 and word in r.stderr and not os.path.exists(
                       os.path.join(tmp, "bad", "labels.csv")),
                   "rc %d: %s" % (r.returncode, r.stderr.strip()))
        r = subprocess.run([BIN, "synth", "--n", "2"], capture_output=True, text=True)
        report("usage_error_no_out", r.returncode == 2 and "--out" in r.stderr, r.stderr)
        r = subprocess.run([BIN, "synth", "--help"], capture_output=True, text=True)
        report("help", r.returncode == 0 and "--fracture-rate" in r.stdout, r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
