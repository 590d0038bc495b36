#!/usr/bin/env python3
"""Integration test of `fxscreen prep` on a mixed folder of valid and damaged
PNG/TIFF files made by other tools (Pillow, tifffile, raw bytes), read back
with h5py: one row per file, the right decoded values, clear errors, the exit
codes, stdin and CSV lists, and float16 storage matching numpy's rounding."""
import csv
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import tifffile
from PIL import Image

BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.join(BUILD, "fxscreen")
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
    sys.stdout.flush()
    if not ok:
        failures += 1


def run(args, stdin=None):
    p = subprocess.run([FX] + args, input=stdin, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def write_config(path, **kw):
    h = kw.get("h", 32)
    w = kw.get("w", 48)
    with open(path, "w") as f:
        f.write("window:\n  mode: none\n")
        f.write("input:\n  height: %d\n  width: %d\n  channels: %d\n" % (h, w, kw.get("channels", 1)))
        f.write("fit: crop\n")
        f.write("normalize:\n  mean: [0.25]\n  std: [0.5]\n")
        f.write("limits:\n  max_megapixels: %g\n" % kw.get("mp", 1))
        f.write("store: %s\n" % kw.get("store", "float16"))


def main():
    if not os.path.exists(FX):
        print("SKIP test_prep_job: %s not built" % FX)
        sys.exit(77)
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="fx_prep_job_")
    src = os.path.join(tmp, "in")
    os.makedirs(os.path.join(src, "sub"))
    expect = {}  # relative path -> (array or None for failures, bit depth)
    # Valid inputs, each exactly the model size so crop+resize is identity.
    a16 = rng.integers(0, 65536, size=(32, 48), dtype=np.uint16)
    Image.fromarray(a16).save(os.path.join(src, "a16.png"))  # Pillow writes I;16 as 16-bit PNG
    expect["a16.png"] = (a16.astype(np.float64) / 65535.0, 16)
    a8 = rng.integers(0, 256, size=(32, 48), dtype=np.uint8)
    Image.fromarray(a8).save(os.path.join(src, "sub", "b8.png"))
    expect["sub/b8.png"] = (a8 / 255.0, 8)
    t16 = rng.integers(0, 65536, size=(32, 48), dtype=np.uint16)
    tifffile.imwrite(os.path.join(src, "c16.tif"), t16, compression="zlib")
    expect["c16.tif"] = (t16 / 65535.0, 16)
    t8 = rng.integers(0, 256, size=(32, 48), dtype=np.uint8)
    tifffile.imwrite(os.path.join(src, "sub", "d8_tiled.tiff"), t8, tile=(16, 16))
    expect["sub/d8_tiled.tiff"] = (t8 / 255.0, 8)
    rgb = rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(src, "e_rgb.png"))
    luma = np.floor(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114 + 0.5)
    expect["e_rgb.png"] = (luma / 255.0, 8)
    # A PNG with a .tif name: sniffed by magic bytes.
    Image.fromarray(a8).save(os.path.join(src, "f_png_named.tif"), format="PNG")
    expect["f_png_named.tif"] = (a8 / 255.0, 8)
    # Damaged inputs.
    good = open(os.path.join(src, "a16.png"), "rb").read()
    open(os.path.join(src, "g_empty.png"), "wb").close()
    open(os.path.join(src, "h_trunc.png"), "wb").write(good[: len(good) // 2])
    bad = bytearray(good)
    bad[40] ^= 0xFF  # inside IHDR/IDAT: CRC no longer matches
    open(os.path.join(src, "i_crc.png"), "wb").write(bytes(bad))
    open(os.path.join(src, "j_text.tiff"), "wb").write(b"hello, I am not a tiff\n" * 10)
    os.makedirs(os.path.join(src, "k_dir.png"))  # a directory named like an image
    big = np.zeros((1200, 1000), dtype=np.uint8)  # 1.2 MP > the 1 MP limit
    Image.fromarray(big).save(os.path.join(src, "l_big.png"))
    fails = ["g_empty.png", "h_trunc.png", "i_crc.png", "j_text.tiff", "l_big.png"]
    for f in fails:
        expect[f] = (None, 0)
    open(os.path.join(src, "notes.txt"), "w").write("not an input\n")

    cfg = os.path.join(tmp, "cfg.yaml")
    write_config(cfg)
    out = os.path.join(tmp, "out")
    rc, so, se = run(["prep", src, "--out", out, "--config", cfg, "--threads", "2", "--batch", "3", "--quiet"])
    check("prep_exit_0_with_errors", rc == 0, (rc, se))
    with h5py.File(os.path.join(out, "prep.h5"), "r") as h:
        paths = [p.decode() if isinstance(p, bytes) else p for p in h["path"][:]]
        rel = [os.path.relpath(p, src) for p in paths]
        # The directory k_dir.png is walked into (it is a directory), not a row.
        want_order = sorted(expect.keys(), key=lambda r: [c for c in r.split("/")])
        check("one_row_per_file_in_sorted_order", rel == want_order, (rel, want_order))
        st = h["status"][:]
        errs = [e.decode() if isinstance(e, bytes) else e for e in h["error"][:]]
        imgs = h["images"][:]
        check("images_dtype_float16_nchw", imgs.dtype == np.float16 and imgs.shape == (len(rel), 1, 32, 48), (imgs.dtype, imgs.shape))
        sizes = h["original_size"][:]
        bits = h["bit_depth"][:]
        attrs_ok = all(k in h.attrs for k in ("config", "fxscreen_version", "created"))
        check("root_attributes", attrs_ok, list(h.attrs.keys()))
        for i, r in enumerate(rel):
            arr, bd = expect[r]
            if arr is None:
                check("error_row_" + r, st[i] < 0 and r.split("/")[-1] in errs[i] and len(errs[i]) > len(r) + 4, (st[i], errs[i]))
                continue
            ok = st[i] == 0 and errs[i] == ""
            want = ((arr - 0.25) / 0.5).astype(np.float32).astype(np.float16)
            diff = np.abs(imgs[i, 0].astype(np.float32) - want.astype(np.float32)).max()
            check("values_" + r, ok and diff == 0 and bits[i] == bd and tuple(sizes[i]) == (48, 32),
                  (st[i], errs[i], diff, bits[i], sizes[i]))
        reasons = {r: errs[i] for i, r in enumerate(rel)}
        check("reason_empty", "empty" in reasons["g_empty.png"].lower(), reasons["g_empty.png"])
        check("reason_limit", "megapixel" in reasons["l_big.png"].lower(), reasons["l_big.png"])
        check("reason_not_image", "not a png, tiff" in reasons["j_text.tiff"].lower(), reasons["j_text.tiff"])
    with open(os.path.join(out, "summary.csv")) as f:
        rows = list(csv.DictReader(f))
    check("csv_rows", len(rows) == len(rel) and [os.path.relpath(r["path"], src) for r in rows] == rel)
    r16 = next(r for r in rows if r["path"].endswith("a16.png"))
    check("csv_stats", abs(float(r16["mean"]) - a16.mean()) < 1e-3 * a16.mean() and int(r16["max"]) == a16.max() and int(r16["min"]) == a16.min(), r16)
    check("csv_error_rows", all((r["status"] == "error") == (os.path.relpath(r["path"], src) in fails) for r in rows))

    # uint8 store keeps the [0,1] plane x255.
    cfg8 = os.path.join(tmp, "cfg8.yaml")
    write_config(cfg8, store="uint8")
    out8 = os.path.join(tmp, "out8")
    rc, so, se = run(["prep", os.path.join(src, "sub", "b8.png"), "--out", out8, "--config", cfg8, "--quiet"])
    with h5py.File(os.path.join(out8, "prep.h5"), "r") as h:
        im = h["images"][:]
        check("uint8_store", rc == 0 and im.dtype == np.uint8 and np.array_equal(im[0], a8), (rc, se, im.dtype))

    # Lists: stdin (relative to cwd) and CSV with a path column (relative to the CSV).
    lst = "%s\n%s\n" % (os.path.join(src, "a16.png"), os.path.join(src, "c16.tif"))
    out2 = os.path.join(tmp, "out2")
    rc, so, se = run(["prep", "-", "--out", out2, "--config", cfg, "--quiet"], stdin=lst)
    with h5py.File(os.path.join(out2, "prep.h5"), "r") as h:
        check("stdin_list", rc == 0 and h["path"].shape == (2,) and list(h["status"][:]) == [0, 0], (rc, se))
    csvp = os.path.join(src, "labels.csv")
    with open(csvp, "w") as f:
        f.write("path,label\nsub/b8.png,0\nmissing.png,1\n")
    out3 = os.path.join(tmp, "out3")
    rc, so, se = run(["prep", csvp, "--out", out3, "--config", cfg, "--quiet"])
    with h5py.File(os.path.join(out3, "prep.h5"), "r") as h:
        st = list(h["status"][:])
        check("csv_list_relative_and_missing", rc == 0 and st[0] == 0 and st[1] < 0, (rc, se, st))

    # Ctrl-C: the current batch finishes, outputs are valid and agree, exit 130.
    synth = os.path.join(tmp, "synth")
    subprocess.run([FX, "synth", "--out", synth, "--n", "300", "--size", "512", "--bits", "16"],
                   capture_output=True, check=True)
    out4 = os.path.join(tmp, "out4")
    p = subprocess.Popen([FX, "prep", synth, "--out", out4, "--threads", "1", "--batch", "4", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import signal
    import time
    time.sleep(0.4)
    p.send_signal(signal.SIGINT)
    _, se = p.communicate(timeout=120)
    with h5py.File(os.path.join(out4, "prep.h5"), "r") as h:
        n5 = h["path"].shape[0]
        same = all(h[k].shape[0] == n5 for k in ("images", "status", "error", "original_size", "bit_depth"))
        prefix = [os.path.basename(x.decode() if isinstance(x, bytes) else x) for x in h["path"][:]]
    with open(os.path.join(out4, "summary.csv")) as f:
        nrows = len(list(csv.DictReader(f)))
    want = ["img_%06d.png" % i for i in range(n5)]
    check("sigint_valid_consistent_prefix",
          p.returncode == 130 and 0 < n5 < 300 and same and nrows == n5 and prefix == want and "interrupted" in se.decode(),
          (p.returncode, n5, same, nrows, se.decode()[-200:]))

    # Usage and config errors: exit 2 with a message naming the fix.
    rc, so, se = run(["prep", src])
    check("usage_missing_out", rc == 2 and "--out" in se, (rc, se))
    badcfg = os.path.join(tmp, "bad.yaml")
    open(badcfg, "w").write("window:\n  mode: sideways\n")
    rc, so, se = run(["prep", src, "--out", out, "--config", badcfg])
    check("config_error_exit_2", rc == 2 and "mode" in se, (rc, se))
    rc, so, se = run(["prep", src, "--out", out, "--config", os.path.join(tmp, "nope.yaml")])
    check("missing_config_exit_2", rc == 2 and "nope.yaml" in se, (rc, se))
    rc, so, se = run(["bogus"])
    check("unknown_command_exit_2", rc == 2, rc)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
