#!/usr/bin/env python3
"""Archives as sources, made by other tools (GNU tar with gzip, zstd, xz and
none; Info-ZIP zip): nested folders, images, an extension-less DICOM, a text
file, a damaged PNG and a hidden file.  `fxscreen prep` on each archive must
give exactly the rows and tensors it gives on the same files in a folder
(members named ARCHIVE!/path, in archive order), a list file may name
archives, a truncated archive ends in an error row without losing the rows
before it, nothing is extracted to disk, and `fxscreen run` on an archive
killed with SIGKILL and resumed keeps every member exactly once."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import FX, ROOT, check, run_tests  # noqa: E402


def prep(srcs, out, cwd=None):
    p = subprocess.run([FX, "prep", *srcs, "--out", out, "--quiet"], capture_output=True, text=True, cwd=cwd)
    rows = list(csv.DictReader(open(os.path.join(out, "summary.csv")))) if p.returncode == 0 else []
    imgs = None
    if p.returncode == 0:
        with h5py.File(os.path.join(out, "prep.h5"), "r") as f:
            imgs = f["images"][:]
    return p, rows, imgs


def main():
    return run_tests("fx_archive_", body)


def body(work):
    subprocess.run([FX, "synth", "--out", os.path.join(work, "imgs"), "-n", "6", "--size", "96", "--bits", "16"],
                   check=True, capture_output=True)
    imgs = sorted(os.listdir(os.path.join(work, "imgs")))
    imgs = [f for f in imgs if f.endswith(".png")]
    tree = os.path.join(work, "tree")
    for d in ("sub", "sub/deeper", ".hidden"):
        os.makedirs(os.path.join(tree, d))
    shutil.copy(os.path.join(work, "imgs", imgs[0]), os.path.join(tree, "a.png"))
    shutil.copy(os.path.join(work, "imgs", imgs[1]), os.path.join(tree, "sub", "b.png"))
    shutil.copy(os.path.join(work, "imgs", imgs[2]), os.path.join(tree, "sub", "deeper", "c.png"))
    shutil.copy(os.path.join(work, "imgs", imgs[3]), os.path.join(tree, ".hidden", "d.png"))
    shutil.copy(os.path.join(ROOT, "tests", "fuzz", "corpus_dicom", "c12.dcm"), os.path.join(tree, "sub", "IM0001"))
    open(os.path.join(tree, "notes.txt"), "w").write("not an image\n")
    open(os.path.join(tree, "sub", "broken.png"), "wb").write(open(os.path.join(work, "imgs", imgs[4]), "rb").read()[:300])
    members = ["a.png", "sub/b.png", "sub/deeper/c.png", "sub/IM0001", "sub/broken.png", "notes.txt", ".hidden/d.png"]

    # The folder's rows, by member path, as the reference.
    p, rows, tens = prep([tree], os.path.join(work, "ref"))
    check("prep on the folder", p.returncode == 0 and len(rows) == 5, (p.stderr, [r["path"] for r in rows]))
    ref = {os.path.relpath(r["path"], tree): (r, tens[i]) for i, r in enumerate(rows)}

    archives = {
        "tar": ["tar", "cf", "set.tar", "-C", tree] + members,
        "tar.gz": ["tar", "czf", "set.tar.gz", "-C", tree] + members,
        "tar.zst": ["tar", "--zstd", "-cf", "set.tar.zst", "-C", tree] + members,
        "tar.xz": ["tar", "cJf", "set.tar.xz", "-C", tree] + members,
        "zip": None,
    }
    for kind, cmd in archives.items():
        name = "set." + kind
        if cmd is None:
            z = subprocess.run(["zip", "-q", os.path.join(work, name)] + members, cwd=tree, capture_output=True)
            if z.returncode != 0:
                print("SKIP zip: %s" % z.stderr)
                continue
        elif subprocess.run(cmd, cwd=work, capture_output=True).returncode != 0:
            print("SKIP %s: tar cannot write it here" % kind)
            continue
        before = set(os.listdir(work))
        p, rows, tens = prep([name], os.path.join(work, "out-" + kind), cwd=work)
        after = set(os.listdir(work)) - {"out-" + kind}
        got = [r["path"].split("!/", 1)[1] for r in rows]
        want = [m for m in members if m in ref]
        check("%s: the image members in archive order, hidden and text skipped" % kind,
              p.returncode == 0 and got == want, (p.stderr[-300:], got, want))
        check("%s: members named ARCHIVE!/path" % kind, all(r["path"].startswith(name + "!/") for r in rows))
        same = all(rows[i]["status"] == ref[m][0]["status"] and
                   (rows[i]["status"] != "ok" or np.array_equal(tens[i], ref[m][1]))
                   for i, m in enumerate(got) if m in ref)
        check("%s: every row and tensor equals the folder's" % kind, same and len(got) == len(want))
        bad = [r for r in rows if r["path"].endswith("broken.png")]
        check("%s: the damaged PNG is an error row" % kind, len(bad) == 1 and bad[0]["status"] == "error", bad)
        check("%s: nothing extracted next to the archive" % kind, after == before, after ^ before)

    # A list file naming an archive and a plain file.
    lst = os.path.join(work, "inputs.txt")
    open(lst, "w").write("set.tar.gz\n%s\n" % os.path.join(tree, "a.png"))
    p, rows, _ = prep([lst], os.path.join(work, "out-list"))
    check("a list file may name archives", p.returncode == 0 and len(rows) == 6
          and rows[0]["path"].endswith("set.tar.gz!/a.png") and rows[-1]["path"].endswith("/a.png"),
          (p.stderr[-300:], [r["path"] for r in rows]))

    # A truncated archive: the members before the damage, then an error row.
    data = open(os.path.join(work, "set.tar"), "rb").read()
    open(os.path.join(work, "cut.tar"), "wb").write(data[:int(len(data) * 0.6)])
    p, rows, _ = prep(["cut.tar"], os.path.join(work, "out-cut"), cwd=work)
    check("a truncated tar: the members before the damage, then error rows, exit 0",
          p.returncode == 0 and rows and rows[0]["status"] == "ok" and rows[-1]["status"] == "error",
          (p.returncode, p.stderr[-300:], [(r["path"], r["status"]) for r in rows]))
    open(os.path.join(work, "junk.zip"), "wb").write(os.urandom(5000))
    p, rows, _ = prep(["junk.zip"], os.path.join(work, "out-junk"), cwd=work)
    check("a file named .zip that is not one: one error row", p.returncode == 0 and len(rows) == 1
          and rows[0]["status"] == "error", (p.stderr[-300:], rows))

    # run on an archive, SIGKILLed and resumed: every member exactly once.
    big = os.path.join(work, "big")
    subprocess.run([FX, "synth", "--out", big, "-n", "24", "--size", "160", "--bits", "16"], check=True,
                   capture_output=True)
    subprocess.run(["tar", "czf", "big.tgz", "-C", big] + sorted(f for f in os.listdir(big) if f.endswith(".png")),
                   cwd=work, check=True)
    model = os.path.join(ROOT, "models", "fxdemo.onnx")
    ref_out = os.path.join(work, "run-ref")
    subprocess.run([FX, "run", "--model", model, "--out", ref_out, "--quiet", "big.tgz"], cwd=work, check=True,
                   capture_output=True)
    out = os.path.join(work, "run-kill")
    q = subprocess.Popen([FX, "run", "--model", model, "--out", out, "--quiet", "--batch", "2", "--threads", "1",
                          "big.tgz"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csvp = os.path.join(out, "summary.csv")
    t0 = time.time()
    while time.time() - t0 < 60:
        if os.path.exists(csvp) and sum(1 for _ in open(csvp)) >= 5:
            break
        time.sleep(0.02)
    q.send_signal(signal.SIGKILL)
    q.wait()
    killed_rows = sum(1 for _ in open(csvp)) - 1 if os.path.exists(csvp) else 0
    r = subprocess.run([FX, "run", "--resume", out, "--quiet"], cwd=work, capture_output=True, text=True)
    with h5py.File(os.path.join(out, "results.h5"), "r") as f, h5py.File(os.path.join(ref_out, "results.h5"), "r") as g:
        paths = [x.decode() if isinstance(x, bytes) else x for x in f["path"][:]]
        rpaths = [x.decode() if isinstance(x, bytes) else x for x in g["path"][:]]
        same_p = np.allclose(f["probability"][:], g["probability"][:], atol=1e-6) if len(paths) == len(rpaths) else False
    check("run on a .tgz killed after %d rows and resumed: every member once, in order, same probabilities"
          % killed_rows, r.returncode == 0 and paths == rpaths and len(paths) == 24 and same_p,
          (r.returncode, r.stderr[-300:], len(paths)))


if __name__ == "__main__":
    sys.exit(main())
