#!/usr/bin/env python3
"""The DICOM loader on files written by pydicom 3's own encoders (PyPI, in
build/venv-dicom: pyjpegls for JPEG-LS lossless and near-lossless,
pylibjpeg-openjpeg for JPEG 2000 lossless and lossy, pydicom's RLE, and
pydicom's writer for deflated explicit VR), a second family of encoders
beside test_dicom.py's DCMTK and GDCM.  tests/py/dicom_pydicom_ref.py makes
the files and saves pydicom's own decode of each (its plugins, not GDCM).

Checks, at 8, 12 and 16 bits, signed and unsigned, MONOCHROME1 and 2, with
and without rescale, and an odd size:
- lossless syntaxes: exactly the plane the standard defines from the values
  written (bits above BitsStored ignored, MONOCHROME1 as 2^BitsStored-1-v,
  then the rescale), and pydicom's decode gives the same;
- JPEG-LS near-lossless: within NEAR of the values written, and equal to
  pydicom's decode (both CharLS, the codec is deterministic);
- JPEG 2000 lossy: within one stored unit of pydicom's decode
  (pylibjpeg-openjpeg against GDCM's OpenJPEG), and close to the values
  written;
- every file screened by `fxscreen run` in one folder: a row each, no error."""
import csv
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import FX, check  # noqa: E402
from test_dicom import ours  # noqa: E402  (the loader through build/tools/fx_decode_dump)

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.abspath(os.path.join(su.BUILD, "venv-dicom", "bin", "python"))
MODEL = os.path.join(HERE, "..", "..", "models", "fxdemo.onnx")


def stored(a, bits, signed):
    """Values as DICOM stores them: the bits above BitsStored dropped, the
    sign of bit BitsStored-1 extended (pydicom's arrays, whatever its version
    does with the high bits, compared on the same terms)."""
    v = a.astype(np.int64) & ((1 << bits) - 1)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v) if signed else v


def standard(v, bits, signed, mono1, slope, icpt):
    """The plane the standard defines from stored values v."""
    v = v.astype(np.int64)
    if mono1:
        v = (-1 - v) if signed else ((1 << bits) - 1 - v)
    if slope is not None and (slope != 1 or icpt != 0):
        return v * float(slope) + float(icpt)
    return v.astype(np.float64)


def main():
    return su.run_tests("fx_dicom_pydicom_", cases)


def cases(work):
    if not check("pydicom 3 venv present (%s; run `make deps`)" % VENV, os.path.exists(VENV)):
        return
    ref = os.path.join(work, "files")
    p = subprocess.run([VENV, os.path.join(HERE, "dicom_pydicom_ref.py"), ref], capture_output=True, text=True,
                       timeout=600)
    if not check("dicom_pydicom_ref.py wrote the files with pydicom's encoders", p.returncode == 0,
                 p.stderr[-2000:]):
        return
    man = json.load(open(os.path.join(ref, "manifest.json")))
    print("  pydicom %s: %d files, %d refused %s" % (man["pydicom"], len(man["files"]), len(man["refused"]),
                                                   [(r["case"], r["syntax"]) for r in man["refused"]]))
    syntaxes = {f["syntax"] for f in man["files"]}
    check("every syntax written by pydicom (deflated, RLE, JPEG-LS lossless and near, JPEG 2000 lossless and "
          "lossy)", syntaxes == {"deflated", "rle", "jpegls-lossless", "jpegls-near2", "j2k-lossless", "j2k-lossy"},
          sorted(syntaxes))
    check("at least 60 files (11 layouts x 6 syntaxes, few refusals)", len(man["files"]) >= 60, len(man["files"]))
    for f in man["files"]:
        bits, signed, mono1, slope, icpt = f["bits"], f["signed"], f["mono1"], f["slope"], f["intercept"]
        label = "%s %s (%s)" % (f["syntax"], f["case"], f["uid"])
        values = np.load(os.path.join(ref, f["case"] + ".values.npy"))
        pyd = stored(np.load(f["path"] + ".pydicom.npy"), bits, signed)
        got, info = ours(f["path"])
        if not check("%s: decodes" % label, got is not None and got.shape == values.shape,
                     info if got is None else got.shape):
            continue
        got = got.astype(np.float64)
        want = standard(values, bits, signed, mono1, slope, icpt)
        via_pydicom = standard(pyd, bits, signed, mono1, slope, icpt)
        unit = abs(slope) if slope else 1.0
        if f["lossless"]:
            check("%s: exactly the plane the standard defines" % label, np.array_equal(got, want),
                  np.abs(got - want).max())
            check("%s: pydicom's decode gives the same" % label, np.array_equal(via_pydicom, want),
                  np.abs(via_pydicom - want).max())
        elif f["near"] is not None:
            d = np.abs(got - want).max()
            check("%s: within NEAR=%d of the values written (max %g)" % (label, f["near"], d),
                  d <= f["near"] * unit, d)
            check("%s: equal to pydicom's decode" % label, np.array_equal(got, via_pydicom),
                  np.abs(got - via_pydicom).max())
        else:
            d = np.abs(got - via_pydicom)
            check("%s: within one stored unit of pydicom's decode (max %g, mean %.3f)" % (label, d.max(), d.mean()),
                  d.max() <= unit, d.max())
            rng = float(want.max() - want.min())
            e = np.abs(got - want).mean()
            check("%s: close to the values written (mean |diff| %.1f of range %.0f)" % (label, e, rng),
                  e < 0.02 * rng, e)

    # The whole set through the loader table in `fxscreen run`: a row each.
    d = os.path.join(work, "folder")
    os.makedirs(d)
    n = 0
    for f in man["files"]:
        os.link(f["path"], os.path.join(d, "IM%04d" % n))  # extension-less, as PACS exports are
        n += 1
    out = os.path.join(work, "run")
    p = subprocess.run([FX, "run", "--model", MODEL, "--out", out, "--quiet", d], capture_output=True, text=True)
    rows = list(csv.DictReader(open(os.path.join(out, "summary.csv")))) if p.returncode == 0 else []
    bad = [(r["path"], r["error"]) for r in rows if r["status"] != "ok" or r["error"]]
    check("fxscreen run over the %d extension-less pydicom files: a row each, no error row" % n,
          p.returncode == 0 and len(rows) == n and not bad, (p.returncode, p.stderr[-300:], len(rows), bad[:3]))


if __name__ == "__main__":
    sys.exit(main())
