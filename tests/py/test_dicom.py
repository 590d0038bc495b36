#!/usr/bin/env python3
"""The DICOM loader against files made by other tools and values known in
advance: pydicom (Debian) writes uncompressed radiographs whose stored values
the test chooses (8, 12 and 16 bits, signed and unsigned, MONOCHROME1 and 2,
with and without rescale, a window, two frames, junk above BitsStored);
DCMTK (dcmconv, dcmcjpeg, dcmcjpls, dcmcrle) and GDCM (gdcmconv) re-encode
them in every transfer syntax the loader claims.  Expected planes follow the
DICOM standard, computed here in NumPy from the chosen values: bits above
BitsStored cleared (sign extended when signed), MONOCHROME1 as
2^BitsStored - 1 - v (signed: -1 - v), then slope * v + intercept.  Lossless
syntaxes must give exactly that; lossy ones are compared with Pillow's
independent decode (JPEG baseline, JPEG 2000) or within the codec's bound.
pydicom's own decode (its GDCM handler) must agree too.  Objects without an
image, colour images and damaged files are error rows naming why."""
import os
import subprocess
import sys

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import FX, check  # noqa: E402

DUMP = os.path.abspath(os.path.join(su.BUILD, "tools", "fx_decode_dump"))


def write(path, arr, bits_stored, signed=False, mono1=False, slope=None, intercept=None, window=None,
          frames=None, junk=False):
    """An uncompressed DX image with these stored values (arr, or frames)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition, ds.AccessionNumber = "DX", "WRIST", "PA", "A123"
    ds.PatientName, ds.PatientID = "Test^Patient", "P0001"
    ds.PixelSpacing = [0.143, 0.143]
    data = np.stack(frames) if frames is not None else arr
    ds.Rows, ds.Columns = data.shape[-2:]
    if frames is not None:
        ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    alloc = 8 if bits_stored <= 8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = alloc, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    raw = data.astype({8: np.uint8, 16: np.uint16}[alloc] if not signed else {8: np.int8, 16: np.int16}[alloc])
    raw = raw.view({8: np.uint8, 16: np.uint16}[alloc]).copy()
    if signed and bits_stored < alloc:
        raw &= (1 << bits_stored) - 1  # two's complement in bits_stored bits
    if junk:  # bits above BitsStored set: must be ignored
        raw |= np.array(0xF000 if alloc == 16 else 0, raw.dtype)
    ds.PixelData = raw.tobytes()
    ds.save_as(path, write_like_original=False)
    return ds


def expected(arr, bits_stored, signed=False, mono1=False, slope=None, intercept=None):
    v = arr.astype(np.int64)
    if mono1:
        v = (-1 - v) if signed else ((1 << bits_stored) - 1 - v)
    if slope is not None and (slope != 1 or intercept != 0):
        return (v * float(slope) + float(intercept)).astype(np.float32)
    return v


def ours(path):
    out = path + ".raw"
    p = subprocess.run([DUMP, path, out], capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stdout.strip() + p.stderr.strip()
    _, w, h, bits, ch, t = p.stdout.split()
    a = np.fromfile(out, {"u8": np.uint8, "u16": np.uint16, "f32": np.float32}[t]).reshape(int(h), int(w))
    return a, (int(bits), t)


def image(h, w, lo, hi, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = lo + (hi - lo) * (0.5 + 0.45 * np.sin(x / 7.0) * np.cos(y / 5.0))
    return np.clip(np.round(base + rng.integers(-3, 4, (h, w))), lo, hi).astype(np.int64)


def main():
    return su.run_tests("fx_dicom_", cases, errors, run_folder, helper_crash)


def cases(work):
    H, W = 48, 64
    base = [
        # name, bits, signed, mono1, slope, intercept, lo, hi, extra
        ("u8", 8, False, False, None, None, 0, 255, {}),
        ("u12", 12, False, False, None, None, 0, 4095, {}),
        ("u12-junk-high-bits", 12, False, False, None, None, 0, 4095, {"junk": True}),
        ("u16", 16, False, False, None, None, 0, 65535, {}),
        ("u12-mono1", 12, False, True, None, None, 0, 4095, {}),
        ("u8-mono1", 8, False, True, None, None, 0, 255, {}),
        ("s16", 16, True, False, None, None, -20000, 20000, {}),
        ("s12", 12, True, False, None, None, -2048, 2047, {}),
        ("s12-mono1", 12, True, True, None, None, -2048, 2047, {}),
        ("u12-rescale", 12, False, False, 2.5, -1024.0, 0, 4095, {}),
        ("s16-rescale", 16, True, False, 1.0, -1024.0, -3000, 3000, {}),
        ("u12-window", 12, False, False, None, None, 0, 4095, {"window": (2048, 1000)}),
    ]
    made = {}
    for i, (name, bits, signed, mono1, slope, icpt, lo, hi, extra) in enumerate(base):
        arr = image(H, W, lo, hi, i)
        path = os.path.join(work, name + ".dcm")
        write(path, arr, bits, signed, mono1, slope, icpt, **extra)
        made[name] = (path, arr, bits, signed, mono1, slope, icpt)
        want = expected(arr, bits, signed, mono1, slope, icpt)
        got, info = ours(path)
        ok = got is not None and got.shape == want.shape and np.array_equal(got.astype(np.float64), want.astype(np.float64))
        check("explicit VR LE %s: the plane the standard defines" % name, ok,
              info if got is None else (info, float(np.abs(got.astype(np.float64) - want).max()) if got.shape == want.shape else got.shape))
        if got is not None:
            want_t = "f32" if signed or (slope is not None and (slope != 1 or icpt != 0)) else ("u8" if bits <= 8 else "u16")
            check("%s: stored as %s with bit depth %d" % (name, want_t, bits), info == (bits, want_t), info)
        ref = pydicom.dcmread(path).pixel_array.astype(np.int64)
        ref &= (1 << bits) - 1
        if signed:
            ref = np.where(ref >= 1 << (bits - 1), ref - (1 << bits), ref)
        check("%s: pydicom reads back the values written" % name, np.array_equal(ref, arr), "")

    # Window Center/Width reach the image info (fxscreen prep's window: dicom uses them).
    # Multi-frame: the first frame.
    fr = [image(H, W, 0, 4095, 50), image(H, W, 0, 4095, 51)]
    path = os.path.join(work, "frames.dcm")
    write(path, None, 12, frames=fr)
    got, info = ours(path)
    check("multi-frame: the first frame", got is not None and np.array_equal(got, fr[0]), info)

    # Other transfer syntaxes, made by DCMTK and GDCM from the files above.
    conv = [
        ("implicit VR LE", ["dcmconv", "+ti"], True, None),
        ("deflated explicit VR LE", ["dcmconv", "+td"], True, None),
        ("RLE lossless", ["dcmcrle"], True, None),
        ("JPEG lossless SV1", ["dcmcjpeg", "+e1"], True, None),
        ("JPEG lossless process 14", ["dcmcjpeg", "+el"], True, None),
        ("JPEG-LS lossless", ["dcmcjpls", "+el"], True, None),
        ("JPEG-LS near-lossless", ["dcmcjpls", "+en", "+md", "2"], False, 2),
        ("JPEG 2000 lossless", ["gdcmconv", "--j2k"], True, None),
        ("JPEG 2000 lossy", ["gdcmconv", "--j2k", "--lossy", "-r", "8"], False, "pillow"),
        ("JPEG baseline", ["dcmcjpeg", "+eb"], False, "pillow8"),
        ("JPEG extended 12-bit", ["dcmcjpeg", "+ee"], False, "q"),
    ]
    for tsname, cmd, lossless, tol in conv:
        for name in ("u8", "u12", "u16", "u12-mono1", "s12", "s16", "u12-rescale"):
            path, arr, bits, signed, mono1, slope, icpt = made[name]
            if tsname == "JPEG baseline" and bits != 8:
                continue
            if tsname == "JPEG extended 12-bit" and (bits != 12 or signed):
                continue
            if tsname.startswith("JPEG lossless") or tsname.startswith("JPEG-LS") or tsname == "RLE lossless":
                pass
            out = os.path.join(work, "%s-%s.dcm" % (name, tsname.replace(" ", "_")))
            p = subprocess.run(cmd + [path, out], capture_output=True, text=True)
            if p.returncode != 0 or not os.path.exists(out):
                # An encoder that refuses a layout (e.g. signed JPEG-LS in DCMTK) is not ours to test.
                print("  (%s refused %s: %s)" % (cmd[0], name, (p.stderr or p.stdout).strip().splitlines()[-1:]))
                continue
            hdr = pydicom.dcmread(out, stop_before_pixels=True)
            ts = hdr.file_meta.TransferSyntaxUID
            if slope is not None:  # an encoder may record its own rescale
                slope, icpt = float(hdr.RescaleSlope), float(hdr.RescaleIntercept)
            want = expected(arr, bits, signed, mono1, slope, icpt).astype(np.float64)
            got, info = ours(out)
            if got is None:
                check("%s %s: decodes" % (tsname, name), False, info)
                continue
            d = np.abs(got.astype(np.float64) - want)
            if lossless:
                check("%s (%s) %s: exactly the stored values" % (tsname, ts, name), d.max() == 0, d.max())
            elif tol in ("pillow", "pillow8") and signed:
                # Pillow's JPEG 2000 plugin does not keep the codestream's sign:
                # compare with the values written, within the lossy codec's error.
                rng = float(want.max() - want.min())
                check("%s (%s) %s: close to the stored values (mean |diff| %.1f of range %.0f)" % (
                    tsname, ts, name, d.mean(), rng), d.mean() < 0.02 * rng, d.mean())
            elif tol in ("pillow", "pillow8"):
                # Pillow decodes the codestream independently (libjpeg / OpenJPEG).
                from PIL import Image
                import io
                frag = next(pydicom.encaps.generate_pixel_data_frame(pydicom.dcmread(out).PixelData))
                try:
                    ref = np.asarray(Image.open(io.BytesIO(frag))).astype(np.int64)
                except Exception as e:  # noqa: BLE001
                    check("%s %s: Pillow decodes the codestream" % (tsname, name), False, e)
                    continue
                if ref.shape != arr.shape:
                    check("%s %s: Pillow's shape" % (tsname, name), False, ref.shape)
                    continue
                ref &= (1 << bits) - 1
                if signed:
                    ref = np.where(ref >= 1 << (bits - 1), ref - (1 << bits), ref)
                refw = expected(ref, bits, signed, mono1, slope, icpt).astype(np.float64)
                dd = np.abs(got.astype(np.float64) - refw)
                check("%s (%s) %s: equals Pillow's independent decode (max |diff| %g)" % (tsname, ts, name, dd.max()),
                      dd.max() <= 1 * (slope or 1), dd.max())
            elif isinstance(tol, int):
                check("%s (%s) %s: within NEAR=%d of the stored values" % (tsname, ts, name, tol),
                      d.max() <= tol * abs(slope or 1), d.max())
            else:
                # 12-bit JPEG: Pillow has no 12-bit decoder, so pydicom's decode is
                # the reference; against the values written, DCMTK's encoder shifts
                # the range (its own choice, no rescale recorded): compare the shape.
                ds = pydicom.dcmread(out)
                ref = ds.pixel_array.astype(np.int64) & ((1 << bits) - 1)
                refw = expected(ref, bits, signed, mono1, slope, icpt).astype(np.float64)
                check("%s (%s) %s: equals pydicom's decode" % (tsname, ts, name),
                      np.array_equal(got.astype(np.float64), refw), np.abs(got - refw).max())
                if slope is not None:
                    continue  # DCMTK rewrote the rescale: pydicom's decode is the check
                rng = float(want.max() - want.min())
                dd = np.abs((got - want) - np.median(got - want))
                check("%s (%s) %s: the stored picture up to DCMTK's shift (mean |diff| %.1f of range %.0f)" % (
                    tsname, ts, name, dd.mean(), rng), dd.mean() < 0.01 * rng, dd.mean())


def errors(work):
    # A structured report: no image.
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("sr", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, generate_uid(), "SR"
    sr = os.path.join(work, "report.dcm")
    ds.save_as(sr, write_like_original=False)
    got, info = ours(sr)
    check("a structured report is an error naming the SOP class",
          got is None and "structured report" in info and "1.2.840.10008.5.1.4.1.1.88.11" in info, info)
    # A colour image.
    arr = np.zeros((8, 8, 3), np.uint8)
    ds = write(os.path.join(work, "tmp.dcm"), np.zeros((8, 8)), 8)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = arr.tobytes()
    rgb = os.path.join(work, "rgb.dcm")
    ds.save_as(rgb, write_like_original=False)
    got, info = ours(rgb)
    check("a colour DICOM is an error naming the photometric interpretation",
          got is None and "colour" in info and "RGB" in info, info)
    # Damaged: truncated, and bytes flipped in the pixel data of a JPEG lossless file.
    good = os.path.join(work, "u12-JPEG_lossless_SV1.dcm")
    if os.path.exists(good):
        b = open(good, "rb").read()
        for k, cut in enumerate((len(b) // 2, 140, len(b) - 10)):
            bad = os.path.join(work, "cut%d.dcm" % k)
            open(bad, "wb").write(b[:cut])
            p = subprocess.run([DUMP, bad, bad + ".raw"], capture_output=True, text=True, errors="replace")
            check("truncated DICOM (%d of %d bytes): an error, not a crash" % (cut, len(b)),
                  p.returncode == 2 and p.stdout.startswith("error"), (p.returncode, p.stdout, p.stderr[-300:]))
        rng = np.random.default_rng(3)
        crashed = []
        for k in range(40):
            m = bytearray(b)
            for _ in range(8):
                i = int(rng.integers(132, len(m)))
                m[i] = int(rng.integers(0, 256))
            bad = os.path.join(work, "flip.dcm")
            open(bad, "wb").write(bytes(m))
            p = subprocess.run([DUMP, bad, bad + ".raw"], capture_output=True, text=True, errors="replace")
            if p.returncode not in (0, 2):
                crashed.append((k, p.returncode, p.stderr[-200:]))
        check("40 damaged JPEG lossless DICOMs: decoded or an error, never a crash", not crashed, crashed[:2])


def run_folder(work):
    """fxscreen prep on a folder of extension-less DICOM files finds them."""
    d = os.path.join(work, "noext")
    os.makedirs(d)
    for i, name in enumerate(("IM0000", "IM0001", "1.2.826.0.1.3680043.8.498.17")):
        write(os.path.join(d, name), image(300, 260, 0, 4095, 90 + i), 12)
    open(os.path.join(d, "README"), "w").write("not an image\n")
    out = os.path.join(work, "prep")
    p = subprocess.run([FX, "prep", d, "--out", out, "--quiet"], capture_output=True, text=True)
    rows = open(os.path.join(out, "summary.csv")).read().splitlines()[1:] if p.returncode == 0 else []
    check("prep on a folder of extension-less DICOM files: 3 images, the README skipped",
          p.returncode == 0 and len(rows) == 3, (p.returncode, p.stderr[-300:], rows))
    import csv
    prow = list(csv.DictReader(open(os.path.join(out, "summary.csv")))) if p.returncode == 0 else []
    check("prep's summary.csv carries the identifiers (modality, body part, spacing, frames)",
          prow and all(r["modality"] == "DX" and r["body_part"] == "WRIST" and r["sop_instance_uid"]
                       and r["pixel_spacing_row"] == "0.143" and r["frames"] == "1" for r in prow), prow[:1])
    # run: the identifiers reach results.h5 and summary.csv; the patient's do not.
    import csv
    import h5py
    model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "fxdemo.onnx")
    out = os.path.join(work, "run")
    p = subprocess.run([FX, "run", "--model", model, "--out", out, "--quiet", d], capture_output=True, text=True)
    check("run on the DICOM folder exits 0", p.returncode == 0, p.stderr[-300:])
    if p.returncode != 0:
        return
    want = {os.path.join(d, f): pydicom.dcmread(os.path.join(d, f)) for f in os.listdir(d) if f != "README"}
    with h5py.File(os.path.join(out, "results.h5"), "r") as h:
        dec = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
        paths = [dec(v) for v in h["path"][:]]
        sop = [dec(v) for v in h["dicom/sop_instance_uid"][:]]
        study = [dec(v) for v in h["dicom/study_instance_uid"][:]]
        mod = [dec(v) for v in h["dicom/modality"][:]]
        body = [dec(v) for v in h["dicom/body_part"][:]]
        view = [dec(v) for v in h["dicom/view_position"][:]]
        acc = [dec(v) for v in h["dicom/accession_number"][:]]
        sp, bb, mm, fr = h["pixel_spacing"][:], h["bbox"][:], h["bbox_mm"][:], h["frames"][:]
    ok = all(sop[i] == str(want[pth].SOPInstanceUID) and study[i] == str(want[pth].StudyInstanceUID)
             and mod[i] == "DX" and body[i] == "WRIST" and view[i] == "PA" and acc[i] == "A123"
             for i, pth in enumerate(paths))
    check("results.h5 /dicom/*: the file's SOP, study UIDs, modality, body part, view, accession", ok,
          (sop[:1], mod[:1], body[:1]))
    check("results.h5 pixel_spacing, bbox_mm = bbox x spacing (mm), frames 1",
          np.allclose(sp, 0.143) and np.allclose(mm, bb * 0.143, rtol=1e-6) and (fr == 1).all(), (sp[:1], mm[:1]))
    rows = list(csv.DictReader(open(os.path.join(out, "summary.csv"))))
    check("summary.csv carries the same identifiers",
          all(r["sop_instance_uid"] == sop[i] and r["modality"] == "DX" and r["frames"] == "1"
              and abs(float(r["x1_mm"]) - float(r["x1"]) * 0.143) < 1e-3 for i, r in enumerate(rows)), rows[:1])
    blob = open(os.path.join(out, "results.h5"), "rb").read() + open(os.path.join(out, "summary.csv"), "rb").read()
    check("no patient name or ID in the outputs", b"Test^Patient" not in blob and b"P0001" not in blob)



def helper_crash(work):
    """GDCM aborting in a thread's helper process (dicom_helper.c) costs one
    error row: the next file starts a new helper and decodes as it would
    alone, and no helper outlives the run."""
    src = os.path.join(work, "u12-crash-src.dcm")
    write(src, image(48, 64, 0, 4095, 7), 12)
    ee = os.path.join(work, "u12-ee.dcm")
    if not check("dcmcjpeg +ee writes a 12-bit JPEG DICOM",
                 subprocess.run(["dcmcjpeg", "+ee", src, ee], capture_output=True).returncode == 0):
        return
    b = open(ee, "rb").read()
    i0 = b.find(b"\xff\xd8")
    rng = np.random.default_rng(0)
    crash, why = None, ""
    for _ in range(500):  # damaged JPEG headers until one makes GDCM abort (the first, here)
        m = bytearray(b)
        for _ in range(3):
            m[int(rng.integers(i0, min(len(m), i0 + 200)))] = int(rng.integers(0, 256))
        bad = os.path.join(work, "try.dcm")
        open(bad, "wb").write(bytes(m))
        p = subprocess.run([DUMP, bad, bad + ".raw"], capture_output=True, text=True, errors="replace")
        if "GDCM crashed" in p.stdout:
            crash, why = bytes(m), p.stdout.strip()
            break
    if not check("a damaged 12-bit JPEG makes GDCM abort in the helper: an error naming the syntax and signal",
                 crash is not None and "1.2.840.10008.1.2.4.51" in why and "signal 6" in why, why):
        return
    d, alone = os.path.join(work, "crashy"), os.path.join(work, "alone")
    os.makedirs(d)
    os.makedirs(alone)
    for i in range(4):  # good, crash, good, crash, good, crash, good: sorted by name
        write(os.path.join(d, "f%d0" % i), image(300, 260, 0, 4095, 60 + i), 12)
        os.link(os.path.join(d, "f%d0" % i), os.path.join(alone, "f%d0" % i))
        if i < 3:
            open(os.path.join(d, "f%d5" % i), "wb").write(crash)
    out, ref = os.path.join(work, "crashy-prep"), os.path.join(work, "alone-prep")
    p = subprocess.run([FX, "prep", d, "--out", out, "--quiet", "--threads", "1"], capture_output=True, text=True)
    q = subprocess.run([FX, "prep", alone, "--out", ref, "--quiet", "--threads", "1"], capture_output=True, text=True)
    if not check("prep over 4 good and 3 crashing DICOMs exits 0", p.returncode == 0 and q.returncode == 0,
                 (p.stderr[-300:], q.stderr[-300:])):
        return
    import csv
    import h5py
    rows = list(csv.DictReader(open(os.path.join(out, "summary.csv"))))
    errs = [r for r in rows if r["status"] != "ok"]
    check("the 3 crashing files are error rows naming GDCM's crash, the 4 others ok",
          len(rows) == 7 and len(errs) == 3 and all(os.path.basename(r["path"]).endswith("5")
                                                    and "GDCM crashed" in r["error"] for r in errs),
          [(r["path"], r["status"], r["error"][:80]) for r in rows])
    with h5py.File(os.path.join(out, "prep.h5"), "r") as f, h5py.File(os.path.join(ref, "prep.h5"), "r") as g:
        paths = [v.decode() if isinstance(v, bytes) else v for v in f["path"][:]]
        keep = [i for i, pth in enumerate(paths) if pth.endswith("0")]
        a, r = f["images"][:][keep], g["images"][:]
    check("the files after each crash decode exactly as alone (a new helper each time)",
          a.shape == r.shape and np.array_equal(a, r), (a.shape, r.shape))
    left = subprocess.run(["pgrep", "-f", d], capture_output=True, text=True).stdout.split()
    check("no decoder helper outlives the run", not left, left)
    # A helper killed from outside mid-run (the OOM killer, an operator): the
    # run goes on with a new one; at most the file it was decoding is lost.
    many = os.path.join(work, "many")
    os.makedirs(many)
    for i in range(80):
        write(os.path.join(many, "m%03d" % i), image(400, 400, 0, 4095, 200 + i), 12)
    import time
    pr = subprocess.Popen([FX, "prep", many, "--out", os.path.join(work, "many-prep"), "--quiet", "--threads", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []
    for _ in range(200):
        kids = subprocess.run(["pgrep", "-P", str(pr.pid)], capture_output=True, text=True).stdout.split()
        if kids:
            subprocess.run(["kill", "-9"] + kids)
            killed = kids
            break
        time.sleep(0.01)
    _, errs = pr.communicate(timeout=120)
    rows = list(csv.DictReader(open(os.path.join(work, "many-prep", "summary.csv")))) if pr.returncode == 0 else []
    bad = [r for r in rows if r["status"] != "ok"]
    check("a helper killed mid-run: the run finishes, every row present, at most the one in decode lost",
          killed and pr.returncode == 0 and len(rows) == 80 and len(bad) <= 1
          and all("GDCM crashed" in r["error"] for r in bad), (killed, pr.returncode, errs[-300:], len(rows), bad[:2]))


if __name__ == "__main__":
    sys.exit(main())
