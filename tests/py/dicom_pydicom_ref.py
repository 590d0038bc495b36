#!/usr/bin/env python3
"""DICOM files written by pydicom 3's own encoders (PyPI: pydicom, pyjpegls,
pylibjpeg-openjpeg, pylibjpeg-rle), for test_dicom_pydicom.py, with
pydicom's own decode of each file beside it.  Runs in build/venv-dicom
(tests/requirements-dicom.txt), not in the tests' main venv, whose pydicom
is Debian's 2.3 (no encoders).

  dicom_pydicom_ref.py OUTDIR

Writes OUTDIR/<case>-<syntax>.dcm, OUTDIR/<case>.values.npy (the stored
values the test chose), OUTDIR/<case>-<syntax>.pydicom.npy (pydicom's
pixel_array of the written file) and OUTDIR/manifest.json, one entry per
file, with the refusals of an encoder (a layout it does not take) listed
under "refused"."""
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

# name, bits stored, signed, MONOCHROME1, slope, intercept, lo, hi, rows, columns
CASES = [
    ("u8", 8, False, False, None, None, 0, 255, 48, 64),
    ("u12", 12, False, False, None, None, 0, 4095, 48, 64),
    ("u16", 16, False, False, None, None, 0, 65535, 48, 64),
    ("u12-mono1", 12, False, True, None, None, 0, 4095, 48, 64),
    ("u8-mono1", 8, False, True, None, None, 0, 255, 48, 64),
    ("s12", 12, True, False, None, None, -2048, 2047, 48, 64),
    ("s16", 16, True, False, None, None, -20000, 20000, 48, 64),
    ("s12-mono1", 12, True, True, None, None, -2048, 2047, 48, 64),
    ("u12-rescale", 12, False, False, 2.5, -1024.0, 0, 4095, 48, 64),
    ("s16-rescale", 16, True, False, 1.0, -1024.0, -3000, 3000, 48, 64),
    ("u16-odd-size", 16, False, False, None, None, 0, 65535, 301, 257),
]

# name, transfer syntax, keyword arguments of Dataset.compress (None: written
# uncompressed in that syntax by pydicom's writer), lossless
SYNTAXES = [
    ("deflated", DeflatedExplicitVRLittleEndian, None, True),
    ("rle", RLELossless, {}, True),
    ("jpegls-lossless", JPEGLSLossless, {}, True),
    ("jpegls-near2", JPEGLSNearLossless, {"jls_error": 2}, False),
    ("j2k-lossless", JPEG2000Lossless, {}, True),
    ("j2k-lossy", JPEG2000, {"j2k_cr": [12]}, False),
]


def image(h, w, lo, hi, seed):
    """A smooth picture with noise, between lo and hi (the values written)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = lo + (hi - lo) * (0.5 + 0.45 * np.sin(x / 7.0) * np.cos(y / 5.0))
    return np.clip(np.round(base + rng.integers(-3, 4, (h, w))), lo, hi).astype(np.int64)


def dataset(path, arr, bits, signed, mono1, slope, icpt):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "HAND", "PA"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    alloc = 8 if bits <= 8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = alloc, bits, bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, icpt, "US"
    dtype = {(8, False): np.uint8, (16, False): np.uint16, (8, True): np.int8, (16, True): np.int16}
    return ds, arr.astype(dtype[(alloc, signed)])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    manifest = {"pydicom": pydicom.__version__, "files": [], "refused": []}
    for i, (name, bits, signed, mono1, slope, icpt, lo, hi, rows, cols) in enumerate(CASES):
        values = image(rows, cols, lo, hi, 100 + i)
        np.save(os.path.join(out, name + ".values.npy"), values)
        for sname, uid, kw, lossless in SYNTAXES:
            path = os.path.join(out, "%s-%s.dcm" % (name, sname))
            ds, arr = dataset(path, values, bits, signed, mono1, slope, icpt)
            try:
                if kw is None:
                    ds.PixelData = arr.tobytes()
                    ds.file_meta.TransferSyntaxUID = uid
                    ds.save_as(path, enforce_file_format=True)
                else:
                    ds.compress(uid, arr, generate_instance_uid=False, **kw)
                    ds.save_as(path, enforce_file_format=True)
            except Exception as e:  # noqa: BLE001 - an encoder's refusal is reported, not ours to test
                manifest["refused"].append({"case": name, "syntax": sname, "why": str(e)[:300]})
                continue
            back = pydicom.dcmread(path)
            if str(back.file_meta.TransferSyntaxUID) != str(uid):
                manifest["refused"].append({"case": name, "syntax": sname, "why": "written as %s" % back.file_meta.TransferSyntaxUID})
                continue
            ref = back.pixel_array
            np.save(path + ".pydicom.npy", ref.astype(np.int64))
            manifest["files"].append({
                "case": name, "syntax": sname, "uid": str(uid), "path": path, "bits": bits, "signed": signed,
                "mono1": mono1, "slope": slope, "intercept": icpt, "lossless": lossless,
                "near": kw.get("jls_error") if kw else None})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
