#!/usr/bin/env python3
"""bench/decode_archive: the new inputs of issue 14 through the reader pool,
beside their libraries' bare decode measured in the same run.

  /usr/bin/python3 bench/decode_archive.py [--build build] [--n 12] [--reps 3]

Sets (made once under BUILD/bench-archive/ from `fxscreen synth` 2048x2048
16-bit PNGs, 12-bit values): DICOM JPEG Lossless SV1 (DCMTK dcmcjpeg +e1)
and DICOM JPEG 2000 lossless (GDCM gdcmconv --j2k), both from uncompressed
DICOMs written by pydicom; and a tar shard of the PNGs beside the same PNGs
in a folder.

  - pool: `fxscreen prep` (decode + percentile window + resize to 256x256,
    prep.h5 and summary.csv written) at 1 and 2 reader threads, wall time of
    the process (start-up included);
  - bare: GDCM's own decode (python3-gdcm: ImageReader + GetBuffer, one
    thread) of the same files;
  - pydicom: pydicom's pixel_array with its GDCM handler (Debian).
Per core, pool at 1 thread vs bare is the figure the issue's target speaks
of (pool within 10% of the bare decode).  The median of --reps runs.
Appends a section to bench/RESULTS.md (FX_BENCH_RESULTS overrides)."""
import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))


def sh(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def make_sets(fx, work, n):
    import test_dicom
    from PIL import Image
    png = os.path.join(work, "png")
    if not os.path.isdir(png) or len(os.listdir(png)) < n:
        shutil.rmtree(png, ignore_errors=True)
        sh([fx, "synth", "--out", png, "-n", str(n), "--size", "2048", "--bits", "16", "--seed", "21"])
    pngs = sorted(os.path.join(png, f) for f in os.listdir(png) if f.endswith(".png"))[:n]
    sets = {"png-folder": pngs}
    tarp = os.path.join(work, "shard.tar")
    if not os.path.exists(tarp):
        with tarfile.open(tarp, "w") as t:
            for p in pngs:
                t.add(p, arcname=os.path.basename(p))
    sets["png-tar"] = [tarp]
    for name, cmd in (("dicom-jpegls1", ["dcmcjpeg", "+e1"]), ("dicom-j2k", ["gdcmconv", "--j2k"])):
        d = os.path.join(work, name)
        if not os.path.isdir(d) or len(os.listdir(d)) < n:
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            for i, p in enumerate(pngs):
                raw = os.path.join(work, "raw.dcm")
                test_dicom.write(raw, np.asarray(Image.open(p)).astype(np.int64), 12)
                sh(cmd + [raw, os.path.join(d, "IM%04d" % i)])
        sets[name] = sorted(os.path.join(d, f) for f in os.listdir(d))[:n]
    return sets


def median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    fx = os.path.abspath(os.path.join(a.build, "fxscreen"))
    work = os.path.abspath(os.path.join(a.build, "bench-archive"))
    os.makedirs(work, exist_ok=True)
    sets = make_sets(fx, work, a.n)
    import gdcm
    import pydicom

    def gdcm_bare(files):
        for f in files:
            r = gdcm.ImageReader()
            r.SetFileName(f)
            if not r.Read():
                raise SystemExit("gdcm cannot read " + f)
            r.GetImage().GetBuffer()

    def pydicom_decode(files):
        for f in files:
            pydicom.dcmread(f).pixel_array

    def prep(srcs, threads):
        out = os.path.join(work, "out")
        shutil.rmtree(out, ignore_errors=True)
        sh([fx, "prep", *srcs, "--out", out, "--quiet", "--threads", str(threads)])

    rows = []
    for name, srcs in sets.items():
        nimg = a.n
        mb = sum(os.path.getsize(s) for s in srcs) / 1e6
        prep(srcs, 1)  # warm the page cache
        t1 = median_time(lambda: prep(srcs, 1), a.reps)
        t2 = median_time(lambda: prep(srcs, 2), a.reps)
        bare = pyd = None
        if name.startswith("dicom"):
            bare = median_time(lambda: gdcm_bare(srcs), a.reps)
            pyd = median_time(lambda: pydicom_decode(srcs), a.reps)
        rows.append((name, nimg, mb, t1, t2, bare, pyd))
        print(name, "pool1 %.2f img/s, pool2 %.2f img/s" % (nimg / t1, nimg / t2),
              "" if bare is None else "bare %.2f img/s, pydicom %.2f img/s" % (nimg / bare, nimg / pyd))
    folder_t1 = [r for r in rows if r[0] == "png-folder"][0][3]
    lines = ["| set | images | MB | fxscreen prep, 1 thread (img/s) | 2 threads (img/s) | GDCM bare decode, "
             "1 thread (img/s) | pydicom + GDCM (img/s) | pool 1 thread vs bare (time) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, nimg, mb, t1, t2, bare, pyd in rows:
        vs = "%.2f" % (t1 / bare) if bare else ("%.2f vs the folder" % (t1 / folder_t1) if name == "png-tar" else "-")
        lines.append("| %s | %d | %.1f | %.2f | %.2f | %s | %s | %s |" % (
            name, nimg, mb, nimg / t1, nimg / t2, "%.2f" % (nimg / bare) if bare else "-",
            "%.2f" % (nimg / pyd) if pyd else "-", vs))
    table = "\n".join(lines)
    print(table)
    res = os.environ.get("FX_BENCH_RESULTS", os.path.join(ROOT, "bench", "RESULTS.md"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    with open(res, "a") as f:
        f.write("\n## decode (DICOM, archives): %s on %d cores, %s\n\n" % (
            time.strftime("%Y-%m-%d", time.gmtime()), os.cpu_count(), " ".join(cpu.split()[:3])))
        f.write("Command: `/usr/bin/python3 bench/decode_archive.py --build %s --n %d --reps %d`, commit %s.\n"
                % (a.build, a.n, a.reps, commit))
        f.write("Files: %d synthetic 2048x2048 radiographs (fxscreen synth --seed 21, 12-bit values): 16-bit "
                "PNGs in a folder and in an uncompressed tar; DICOM JPEG Lossless SV1 (DCMTK dcmcjpeg +e1) "
                "and JPEG 2000 lossless (GDCM gdcmconv --j2k) from pydicom-written DICOMs, extension-less. "
                "fxscreen: `fxscreen prep SET --threads T` (decode + window + resize + prep.h5), process wall "
                "time; GDCM bare: python3-gdcm ImageReader + GetBuffer; pydicom %s with its GDCM handler. "
                "Median of %d; page cache warm.\n\n" % (a.n, pydicom.__version__, a.reps))
        f.write(table + "\n")
    print("appended to", res)


if __name__ == "__main__":
    main()
