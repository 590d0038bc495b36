#!/usr/bin/env python3
"""Sharded runs and their merge, without Slurm: `fxscreen run --shard I/N`
over directories, an archive and damaged files; `fxscreen merge` compared
dataset by dataset, and summary.csv byte for byte, with one unsharded run on
the same inputs (and `eval` on both); a shard killed with SIGKILL, refused
by merge, resumed and merged; every refusal (missing, doubled, another model,
config or input list, incomplete, not a shard, output taken); --shard slurm
and k8s from their environment variables; the scripts of `slurm submit
--dry-run` run by hand as Slurm would; merge's peak memory on a large
merge."""
import csv
import os
import shutil
import signal
import subprocess
import tarfile
import time

import h5py
import numpy as np

from serve_util import FX, MODEL, check, run_tests

DATASETS = ["score", "probability", "prediction", "heatmap", "peak_xy", "bbox", "path", "status",
            "error", "dicom/sop_instance_uid", "dicom/modality", "pixel_spacing", "bbox_mm",
            "frames", "index"]


BIN = FX  # the ASan pass swaps in build/asan/fxscreen


def fx(*args, env=None, timeout=600):
    e = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:exitcode=86", UBSAN_OPTIONS="halt_on_error=1")
    for k in list(e):
        if k.startswith("SLURM_") or k == "JOB_COMPLETION_INDEX":
            del e[k]
    e.update(env or {})
    p = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=e)
    return p.returncode, p.stdout + p.stderr


def same_results(a, b):
    """'' when results.h5 and summary.csv of a and b are equal, else why."""
    with h5py.File(os.path.join(a, "results.h5")) as fa, \
            h5py.File(os.path.join(b, "results.h5")) as fb:
        for k in DATASETS:
            x, y = fa[k][:], fb[k][:]
            eq = (np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f"
                  else np.array_equal(x, y))
            if x.shape != y.shape or not eq:
                return f"/{k} differs ({x.shape} vs {y.shape})"
        for k in ["model_sha256", "config", "cam_layer", "threshold", "input_count",
                  "input_sha256"]:
            if fa.attrs[k] != fb.attrs[k]:
                return f"attribute {k}: {fa.attrs[k]!r} vs {fb.attrs[k]!r}"
    with open(os.path.join(a, "summary.csv"), "rb") as f1, \
            open(os.path.join(b, "summary.csv"), "rb") as f2:
        if f1.read() != f2.read():
            return "summary.csv differs"
    return ""


def make_inputs(tmp):
    """61 16-bit radiographs in two directories, 6 more in a tar, 2 damaged files."""
    rc, out = fx("synth", "--out", tmp + "/a", "-n", 40, "--size", 384, "--bits", 16,
                 "--seed", 3)
    rc2, out2 = fx("synth", "--out", tmp + "/b", "-n", 21, "--size", 320, "--seed", 4)
    check("synth inputs", rc == 0 and rc2 == 0, out + out2)
    with open(tmp + "/a/zz_damaged.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with open(tmp + "/b/zz_empty.tif", "wb"):
        pass
    fx("synth", "--out", tmp + "/t", "-n", 6, "--size", 256, "--seed", 5)
    with tarfile.open(tmp + "/c.tar.gz", "w:gz") as t:
        for name in sorted(os.listdir(tmp + "/t")):
            if name.endswith(".png"):
                t.add(os.path.join(tmp + "/t", name), arcname="t/" + name)
    return ["a", "c.tar.gz", "b"]  # relative to tmp: the runs start there


def step_shard_and_merge(tmp):
    os.chdir(tmp)
    src = make_inputs(tmp)
    rc, out = fx("run", "--quiet", "--batch", 4, "--model", MODEL, "--out", "full", *src)
    check("unsharded run", rc == 0, out)
    with h5py.File("full/results.h5") as f:
        total = f["probability"].shape[0]
        check("unsharded run: input_count/input_sha256 stamped",
              f.attrs["input_count"] == total and len(f.attrs["input_sha256"]) == 64)
        check("unsharded run: /index is 0..n-1", list(f["index"][:]) == list(range(total)))
        check("inputs: 61 images + 6 archive members + 2 damaged", total == 69, total)
    N = 4
    for i in range(N):
        rc, out = fx("run", "--quiet", "--batch", 4, "--shard", f"{i}/{N}", "--model", MODEL,
                     "--out", f"s{i}", *src)
        check(f"shard {i}/{N} runs", rc == 0, out)
        check(f"shard {i}/{N}: the log says which part", f"shard {i}/{N}: " in out, out)
    sizes = []
    for i in range(N):
        with h5py.File(f"s{i}/results.h5") as f:
            idx = list(f["index"][:])
            sizes.append(len(idx))
            check(f"shard {i}: rows are inputs {i}, {i}+{N}, ...",
                  idx == list(range(i, total, N)), idx[:6])
            check(f"shard {i}: attributes", f.attrs["shard_index"] == i and
                  f.attrs["shard_count"] == N and f.attrs["shard_inputs"] == total)
        with h5py.File("full/results.h5") as fa, h5py.File(f"s{i}/results.h5") as fs:
            check(f"shard {i}: paths are the unsharded run's rows i mod {N}",
                  list(fs["path"][:]) == list(fa["path"][i::N]))
    check("shards balanced by count (differ by at most one)",
          max(sizes) - min(sizes) <= 1 and sum(sizes) == total, sizes)
    rc, out = fx("merge", "--out", "merged", "s2", "s0", "s3", "s1")
    check("merge (shards in any order)", rc == 0, out)
    why = same_results("full", "merged")
    check("merged == unsharded, every dataset and summary.csv byte for byte", not why, why)
    with h5py.File("merged/results.h5") as f:
        check("merged: merged_shards, no shard attributes",
              f.attrs["merged_shards"] == N and "shard_index" not in f.attrs)
    # eval reads the merge as any run.
    labels = []
    for d in ["a", "b"]:
        with open(os.path.join(d, "labels.csv")) as f:
            for r in csv.DictReader(f):
                labels.append((os.path.join(d, r["path"]), r["label"]))
    with open("labels.csv", "w") as f:
        f.write("path,label,x0,y0,x1,y1\n")
        for p, y in labels:
            f.write(f"{p},{y},,,,\n")
    rc1, o1 = fx("eval", "--results", "full", "--labels", "labels.csv", "--json", "e1.json")
    rc2, o2 = fx("eval", "--results", "merged", "--labels", "labels.csv", "--json", "e2.json")
    check("eval of the merge prints what eval of the unsharded run prints",
          rc1 == 0 and rc2 == 0 and o1.split("wrote")[0] == o2.split("wrote")[0], o1 + o2)


def step_overlays(tmp):
    os.chdir(tmp)
    src = ["a", "c.tar.gz", "b"]
    rc, out = fx("run", "--quiet", "--overlays", "all", "--model", MODEL, "--out", "full_ov", *src)
    for i in range(3):
        rc2, out2 = fx("run", "--quiet", "--overlays", "all", "--shard", f"{i}/3", "--model",
                       MODEL, "--out", f"ov{i}", *src)
        rc = rc or rc2
    rc3, out3 = fx("merge", "--out", "merged_ov", "ov0", "ov1", "ov2")
    check("overlay runs and merge", rc == 0 and rc3 == 0, out + out3)
    a, b = sorted(os.listdir("full_ov/overlays")), sorted(os.listdir("merged_ov/overlays"))
    check("merged overlays: the unsharded run's names (global row numbers)", a == b and len(a) > 60,
          (a[:3], b[:3]))
    same = all(open("full_ov/overlays/" + n, "rb").read() == open("merged_ov/overlays/" + n,
                                                                    "rb").read() for n in a)
    check("merged overlays: the same PNG bytes", same)


def step_refusals(tmp):
    os.chdir(tmp)
    src = ["a", "c.tar.gz", "b"]
    rc, out = fx("merge", "--out", "x1", "s0", "s1", "s3")
    check("refused: a missing shard, named", rc == 2 and "missing (2)" in out, out)
    rc, out = fx("merge", "--out", "x2", "s0", "s1", "s2", "s3", "s1")
    check("refused: a doubled shard, both directories named",
          rc == 2 and "given twice: s1 and s1" in out, out)
    shutil.copytree("s2", "s2copy")
    rc, out = fx("merge", "--out", "x2", "s0", "s1", "s2", "s3", "s2copy")
    check("refused: the same shard in two directories", rc == 2 and "s2 and s2copy" in out, out)
    # Another model: the demo model with one weight changed.
    import onnx
    m = onnx.load(MODEL)
    init = max(m.graph.initializer, key=lambda t: len(t.raw_data))
    w = np.frombuffer(init.raw_data, dtype=np.float32).copy()
    w[0] += 0.5
    init.raw_data = w.tobytes()
    onnx.save(m, "other.onnx")
    shutil.copy(MODEL.replace(".onnx", ".yaml"), "other.yaml")
    rc, out = fx("run", "--quiet", "--shard", "3/4", "--model", "other.onnx", "--out", "s3m", *src)
    rc2, out2 = fx("merge", "--out", "x3", "s0", "s1", "s2", "s3m")
    check("refused: a shard of another model, named",
          rc == 0 and rc2 == 2 and "s3m: made with another model than s0" in out2, out + out2)
    rc, out = fx("run", "--quiet", "--shard", "3/4", "--threshold", "0.3", "--model", MODEL,
                 "--out", "s3c", *src)
    rc2, out2 = fx("merge", "--out", "x4", "s0", "s1", "s2", "s3c")
    check("refused: a shard of another config, named",
          rc == 0 and rc2 == 2 and "s3c: made with another config than s0" in out2, out + out2)
    rc, out = fx("run", "--quiet", "--shard", "3/4", "--model", MODEL, "--out", "s3l", "a", "b")
    rc2, out2 = fx("merge", "--out", "x5", "s0", "s1", "s2", "s3l")
    check("refused: a shard of another input list, named",
          rc == 0 and rc2 == 2 and "s3l: another input list than s0" in out2, out + out2)
    rc, out = fx("run", "--quiet", "--shard", "3/5", "--model", MODEL, "--out", "s3n", *src)
    rc2, out2 = fx("merge", "--out", "x6", "s0", "s1", "s2", "s3n")
    check("refused: a shard of another count, named",
          rc == 0 and rc2 == 2 and "s3n: shard 3 of 5" in out2, out + out2)
    rc, out = fx("merge", "--out", "x7", "s0", "s1", "s2", "s3", "full")
    check("refused: an unsharded run", rc == 2 and "full: not a shard" in out, out)
    rc, out = fx("merge", "--out", "merged", "s0", "s1", "s2", "s3")
    check("refused: an output that holds results", rc == 2 and "fresh --out" in out, out)
    rc, out = fx("merge", "--out", "x8", "s0", "s1", "s2", "nowhere")
    check("refused: a directory without run.json", rc == 2 and "nowhere/run.json" in out, out)
    for x in ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]:
        if os.path.exists(os.path.join(x, "results.h5")) or \
                os.path.exists(os.path.join(x, "summary.csv")):
            check(f"refusal wrote nothing in {x}", False)
    # A shard whose inputs changed before it is resumed.
    shutil.copytree("s1", "s1r")
    with h5py.File("s1r/results.h5", "a") as f:  # as if interrupted: not complete
        del f.attrs["input_sha256"]
    shutil.copy("a/img_000000.png", "a/img_000000_extra.png")
    rc, out = fx("run", "--resume", "s1r")
    os.remove("a/img_000000_extra.png")
    check("resume refused when the shard's inputs changed",
          rc == 2 and "inputs of shard 1/4 changed" in out, out)
    rc, out = fx("merge", "--out", "x9", "s0", "s1r", "s2", "s3")
    check("refused: a shard that did not finish, named with the resume command",
          rc == 2 and "s1r: shard 1/4 is incomplete" in out and "--resume s1r" in out, out)


def step_kill_resume(tmp):
    """A shard killed with SIGKILL part-way: merge refuses it, resume finishes it."""
    os.chdir(tmp)
    src = ["a", "c.tar.gz", "b"]
    for attempt in range(5):
        shutil.rmtree("k1", ignore_errors=True)
        # Batch 4 as the unsharded run (the engine's arithmetic depends on the
        # batch size, not on which images share a batch); one reader thread.
        p = subprocess.Popen([FX, "run", "--quiet", "--batch", "4", "--threads", "1", "--shard",
                              "1/4", "--model", MODEL, "--out", "k1"] + src,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while time.time() - t0 < 60 and p.poll() is None:
            try:
                with open("k1/summary.csv") as f:
                    if len(f.read().splitlines()) >= 5:  # header + a batch
                        break
            except OSError:
                pass
            time.sleep(0.005)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            break
        p.wait()
    check("a shard killed part-way", p.returncode == -signal.SIGKILL, p.returncode)
    rc, out = fx("merge", "--out", "xk", "s0", "k1", "s2", "s3")
    check("refused: the killed shard", rc == 2 and "k1" in out and "resume" in out, out)
    rc, out = fx("run", "--resume", "k1")
    check("the killed shard resumes", rc == 0 and "resuming" in out, out)
    rc, out = fx("merge", "--out", "merged_k", "s0", "k1", "s2", "s3")
    why = same_results("full", "merged_k") if rc == 0 else out
    check("killed + resumed shard merged == unsharded", not why, why)


def step_environment(tmp):
    os.chdir(tmp)
    src = ["a", "c.tar.gz", "b"]
    env = {"SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5",
           "SLURM_ARRAY_TASK_COUNT": "4", "CUDA_VISIBLE_DEVICES": "3"}
    rc, out = fx("run", "--shard", "slurm", "--model", MODEL, "--out", "sl2", *src, env=env)
    check("--shard slurm: task 7 of an array 5-8 is shard 2/4",
          rc == 0 and "Slurm array job 41 task 7" in out and "shard 2/4:" in out, out)
    check("--shard slurm: the log names CUDA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES=3" in out, out)
    why = same_results("s2", "sl2").replace("attribute input_count", "")
    with h5py.File("sl2/results.h5") as a, h5py.File("s2/results.h5") as b:
        check("--shard slurm rows == --shard 2/4 rows",
              all(np.array_equal(a[k][:], b[k][:], equal_nan=True) if a[k].dtype.kind == "f"
                  else np.array_equal(a[k][:], b[k][:]) for k in DATASETS))
    rc, out = fx("run", "--shard", "k8s", "--shards", 4, "--model", MODEL, "--out", "k8", *src,
                 env={"JOB_COMPLETION_INDEX": "2"})
    check("--shard k8s --shards 4 with JOB_COMPLETION_INDEX=2 is shard 2/4",
          rc == 0 and "shard 2/4:" in out, out)
    bad = [
        (["--shard", "slurm"], {}, "SLURM_ARRAY_TASK_COUNT is not set"),
        (["--shard", "slurm"], {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_ID": "9",
                                "SLURM_ARRAY_TASK_MIN": "1"}, "--array=0-3"),
        (["--shard", "slurm"], {"SLURM_ARRAY_TASK_COUNT": "x4", "SLURM_ARRAY_TASK_ID": "1"},
         "not a number"),
        (["--shard", "k8s"], {"JOB_COMPLETION_INDEX": "1"}, "needs --shards N"),
        (["--shard", "k8s", "--shards", "4"], {}, "JOB_COMPLETION_INDEX is not set"),
        (["--shard", "k8s", "--shards", "4"], {"JOB_COMPLETION_INDEX": "4"}, "0..3"),
        (["--shard", "4/4"], {}, "0 <= I < N"),
        (["--shard", "1/0"], {}, "0 <= I < N"),
        (["--shard", "-1/3"], {}, "0 <= I < N"),
        (["--shard", "half"], {}, "give I/N"),
        (["--shard", "1/4", "--shards", "3"], {}, "disagrees"),
        (["--shards", "3"], {}, "goes with --shard k8s"),
    ]
    for args, env, want in bad:
        rc, out = fx("run", *args, "--model", MODEL, "--out", "bad", *src, env=env)
        check(f"refused: run {' '.join(args)} {env}", rc == 2 and want in out and
              not os.path.exists("bad"), out)
    rc, out = subprocess.run([FX, "run", "--shard", "0/2", "--model", MODEL, "--out", "bad", "-"],
                             input="a/img_000000.png\n", capture_output=True, text=True).returncode, ""
    check("refused: a shard of a list on stdin", rc == 2 and not os.path.exists("bad/results.h5"))


def step_more_shards_than_inputs(tmp):
    os.chdir(tmp)
    os.makedirs("three", exist_ok=True)
    for k in range(3):
        shutil.copy(f"a/img_{k:06d}.png", "three/")
    rc, out = fx("run", "--quiet", "--batch", 4, "--model", MODEL, "--out", "three_full", "three")
    for i in range(5):
        rc2, out2 = fx("run", "--quiet", "--batch", 4, "--shard", f"{i}/5", "--model", MODEL,
                       "--out", f"t{i}", "three")
        rc = rc or rc2
        if i >= 3:
            check(f"shard {i}/5 of 3 inputs: says it has none", "has no inputs" in out2, out2)
    rc3, out3 = fx("merge", "--out", "three_merged", *[f"t{i}" for i in range(5)])
    why = same_results("three_full", "three_merged") if rc == 0 and rc3 == 0 else out + out3
    check("5 shards of 3 inputs (two empty) merge == unsharded", not why, why)


def step_dry_run_scripts(tmp):
    """slurm submit --dry-run, then its scripts run by hand with the
    environment Slurm gives an array task (the real Slurm: test_slurm.py)."""
    os.chdir(tmp)
    src = ["a", "c.tar.gz", "b"]
    rc, out = fx("slurm", "submit", "--model", MODEL, "--out", "job", "--shards", 3, "--batch", 4,
                 "--partition", "debug", "--time", "10:00", "--sbatch-arg=--account=rad",
                 "--overlays", "all", "--dry-run", *src)
    check("slurm submit --dry-run", rc == 0 and "69 inputs in 3 shards of 23 or 23" in out, out)
    script = open("job/slurm/shard.sbatch").read()
    for want in ["#SBATCH --array=0-2", "#SBATCH --requeue", "#SBATCH --partition=debug",
                 "#SBATCH --time=10:00", "--resume", '--shard "$SLURM_ARRAY_TASK_ID/3"', "'--overlays=all'",
                 "'--batch' '4'", f"#SBATCH --chdir={tmp}"]:
        check(f"shard.sbatch has {want}", want in script, script)
    merge = open("job/slurm/merge.sbatch").read()
    check("merge.sbatch runs `slurm merge DIR`", f"slurm merge '{tmp}/job'" in merge, merge)
    for i in [2, 0, 1]:
        # Task 2 as `sbatch --array=2 shard.sbatch` would run it (a rerun of one shard).
        env = {"SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": str(i),
               "SLURM_ARRAY_TASK_MIN": "2" if i == 2 else "0",
               "SLURM_ARRAY_TASK_COUNT": "1" if i == 2 else "3"}
        e = dict(os.environ, **env)
        p = subprocess.run(["sh", "job/slurm/shard.sbatch"], capture_output=True, text=True, env=e)
        check(f"shard.sbatch task {i}", p.returncode == 0, p.stdout + p.stderr)
    rc, out = fx("slurm", "status", "job")
    check("slurm status: every shard done",
          rc == 0 and sum(line.endswith(" done") for line in out.splitlines()) == 3 and
          "69/69 rows (100%)" in out and "not merged yet" in out, out)
    # A requeued task resumes (nothing left to do: the same rows).
    e = dict(os.environ, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="3", SLURM_RESTART_COUNT="1")
    p = subprocess.run(["sh", "job/slurm/shard.sbatch"], capture_output=True, text=True, env=e)
    check("shard.sbatch again: resumes the finished shard", p.returncode == 0 and
          "resuming" in p.stdout + p.stderr, p.stdout + p.stderr)
    shutil.copytree("job", "job_broken")
    with h5py.File("job_broken/shards/0001/results.h5", "a") as f:
        del f.attrs["input_sha256"]  # as a shard that never finished
    rc, out = fx("slurm", "merge", "job_broken", env={"PATH": "/nonexistent"})
    check("slurm merge: a shard neither complete nor queued is named, with the fix",
          rc == 2 and "shard(s) 1 of job_broken did not finish" in out and
          "fxscreen slurm requeue job_broken" in out and
          not os.path.exists("job_broken/results.h5"), out)
    rc, out = fx("slurm", "requeue", "job_broken", env={"PATH": "/nonexistent"})
    check("slurm requeue without Slurm: says so", rc == 1 and "squeue does not answer" in out, out)
    p = subprocess.run(["sh", "job/slurm/merge.sbatch"], capture_output=True, text=True)
    check("merge.sbatch", p.returncode == 0, p.stdout + p.stderr)
    why = same_results("full", "job")
    check("the job's merge == unsharded run", not why, why)
    n_ov = len(os.listdir("job/overlays")) if os.path.isdir("job/overlays") else 0
    # Every image that decoded, archive members included: the readers make
    # the overlay's base (--overlay-size, default 1024) from the bytes.
    check("overlays merged", n_ov == 67, n_ov)
    rc, out = fx("slurm", "status", "job")
    check("slurm status: merged", "merged into results.h5" in out, out)
    rc, out = fx("slurm", "submit", "--model", MODEL, "--out", "job", "--shards", 3, "--dry-run",
                 *src)
    check("slurm submit refuses a DIR that holds a run", rc == 2 and "fresh --out" in out, out)
    for args, want in [(["--shards", "2", "--gpus-per-task", "17"], "more --shards"),
                       (["--shards", "2", "--batch", "0"], "--batch '0'"),
                       (["--shards", "2", "--time", "1 day"], "without spaces"),
                       (["--shards", "2", "--sbatch-arg", "account"], "an sbatch option"),
                       (["--shards", "0"], "--shards '0'")]:
        rc, out = fx("slurm", "submit", "--model", MODEL, "--out", "job2", "--dry-run", *args, *src)
        check(f"slurm submit refuses {' '.join(args)}", rc == 2 and want in out, out)
    rc, out = fx("slurm", "submit", "--model", MODEL, "--out", "job4", "--shards", 2,
                 "--gpus-per-task", 1, "--cpus-per-task", 6, "--device", "cuda", "--dry-run", *src)
    script = open("job4/slurm/shard.sbatch").read() if rc == 0 else out
    check("slurm submit --gpus-per-task 1: one GPU per task, the run on it",
          "#SBATCH --gpus-per-task=1" in script and "#SBATCH --cpus-per-task=6" in script and
          "'--device' 'cuda'" in script, script)
    rc, out = fx("slurm", "submit", "--model", MODEL, "--out", "job5", "--shards", 2,
                 "--gpus-per-task", 2, "--dry-run", *src)
    script = open("job5/slurm/shard.sbatch").read() if rc == 0 else out
    check("slurm submit --gpus-per-task 2: one engine per GPU of the task (--device cuda:all)",
          "#SBATCH --gpus-per-task=2" in script and " --device cuda:all" in script, script)
    rc, out = fx("slurm", "submit", "--model", MODEL, "--out", "job3", "--shards", 2, *src,
                 env={"PATH": "/nonexistent"})
    check("slurm submit without sbatch: says so, scripts kept",
          rc == 1 and "cannot run sbatch" in out and os.path.exists("job3/slurm/shard.sbatch"), out)
    rc, out = fx("slurm", "submit", "--model", MODEL, "--out", "job3", "--shards", 2, "--dry-run",
                 *src)
    check("slurm submit into the same DIR once sbatch is there (nothing was submitted)",
          rc == 0, out)


def step_templates(tmp):
    """configs/slurm-shard.sbatch and configs/k8s-indexed-job.yaml, their
    shell run by hand with the variables Slurm and Kubernetes set."""
    os.chdir(tmp)
    import yaml
    root = os.path.dirname(os.path.dirname(MODEL))
    base = {"MODEL": MODEL, "SOURCES": "a c.tar.gz b", "RUN_ARGS": "--batch 4",
            "FXSCREEN": FX, "PATH": os.path.dirname(FX) + ":" + os.environ["PATH"]}
    for i in [3, 1, 0, 2]:
        env = dict(os.environ, **base, OUT="tpl", SLURM_ARRAY_TASK_ID=str(i + 5),
                   SLURM_ARRAY_TASK_MIN="5", SLURM_ARRAY_TASK_COUNT="4")
        p = subprocess.run(["sh", os.path.join(root, "configs", "slurm-shard.sbatch")],
                           capture_output=True, text=True, env=env)
        check(f"slurm-shard.sbatch, task {i + 5} of an array 5-8", p.returncode == 0,
              p.stdout + p.stderr)
    rc, out = fx("merge", "--out", "tpl", *[f"tpl/shards/{i:04d}" for i in range(4)])
    why = same_results("full", "tpl") if rc == 0 else out
    check("slurm-shard.sbatch's shards merged == unsharded", not why, why)
    with open(os.path.join(root, "configs", "k8s-indexed-job.yaml")) as f:
        shards_job, merge_job = list(yaml.safe_load_all(f))
    spec = shards_job["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    kenv = {e["name"]: e["value"] for e in c["env"]}
    check("k8s manifest: an Indexed Job, SHARDS == completions == parallelism, restartPolicy Never",
          spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] ==
          int(kenv["SHARDS"]) and pod["restartPolicy"] == "Never", spec)
    menv = {e["name"]: e["value"] for e in merge_job["spec"]["template"]["spec"]["containers"][0]["env"]}
    check("k8s manifest: the merge Job has the same SHARDS and OUT",
          menv["SHARDS"] == kenv["SHARDS"] and menv["OUT"] == kenv["OUT"])
    for i in range(4):
        env = dict(os.environ, **base, OUT="k8s", SHARDS="4", JOB_COMPLETION_INDEX=str(i))
        p = subprocess.run(["sh", "-c", c["args"][0]], capture_output=True, text=True, env=env)
        check(f"k8s shard pod {i}", p.returncode == 0, p.stdout + p.stderr)
    m = merge_job["spec"]["template"]["spec"]["containers"][0]
    p = subprocess.run(["sh", "-c", m["args"][0]], capture_output=True, text=True,
                       env=dict(os.environ, **base, OUT="k8s", SHARDS="4"), timeout=60)
    why = same_results("full", "k8s") if p.returncode == 0 else p.stdout + p.stderr
    check("k8s merge pod: merged == unsharded", not why, why)


def step_asan(tmp):
    """Shards, merge, its refusals, status and the slurm merge under
    AddressSanitizer + UBSan (leaks included): every exit code as expected."""
    global BIN
    asan = os.path.join(os.path.dirname(FX), "asan", "fxscreen")
    if not os.path.exists(asan):
        print("SKIP asan pass: %s not built (make test builds it)" % asan)
        return
    os.chdir(tmp)
    BIN = asan
    try:
        src = ["a", "c.tar.gz", "b"]
        for i in range(3):
            rc, out = fx("run", "--quiet", "--batch", 4, "--overlays", "all", "--shard", f"{i}/3",
                         "--model", MODEL, "--out", f"as{i}", *src)
            check(f"asan: shard {i}/3", rc == 0, out)
        rc, out = fx("merge", "--out", "as_merged", "as0", "as1", "as2")
        why = same_results("full", "as_merged") if rc == 0 else out
        check("asan: merge == unsharded", not why, why)
        for args, want in [(["as0", "as1"], 2), (["as0", "as1", "as2", "as1"], 2),
                           (["as0", "s1", "as2"], 2), (["as0", "as1", "nowhere"], 2)]:
            rc, out = fx("merge", "--out", "as_x", *args)
            check(f"asan: merge {' '.join(args)} refused", rc == want, out)
        rc, out = fx("slurm", "status", "job")
        check("asan: slurm status", rc == 0, out)
        rc, out = fx("slurm", "merge", "job_broken", env={"PATH": "/nonexistent"})
        check("asan: slurm merge refuses the broken shard", rc == 2, out)
        rc, out = fx("run", "--resume", "as1")
        check("asan: resume of a finished shard", rc == 0, out)
    finally:
        BIN = FX


def step_merge_memory(tmp):
    """Peak memory of a merge of 1,600 rows (105 MB of heatmaps) in 8 shards."""
    os.chdir(tmp)
    rc, out = fx("synth", "--out", "many", "-n", 1600, "--size", 48, "--seed", 9)
    for i in range(8):
        rc2, out2 = fx("run", "--quiet", "--batch", 32, "--shard", f"{i}/8", "--model", MODEL,
                       "--out", f"m{i}", "many")
        rc = rc or rc2
    check("1,600 images in 8 shards", rc == 0, out)

    def peak_rss(args):
        p = subprocess.Popen([FX] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        return status, ru.ru_maxrss * 1024

    # The binary alone (its libraries mapped: CUDA's are large) is the base.
    _, base = peak_rss(["merge", "--help"])
    status, peak = peak_rss(["merge", "--quiet", "--out", "many_merged"] +
                            [f"m{i}" for i in range(8)])
    with h5py.File("many_merged/results.h5") as f:
        heat = f["heatmap"].size
        rows = f["index"][:]
    check("merge of 1,600 rows", status == 0 and list(rows) == list(range(1600)))
    check(f"merge memory flat: {(peak - base) / 1e6:.0f} MB above the binary's own "
          f"{base / 1e6:.0f} MB for {heat / 1e6:.0f} MB of heatmaps", peak - base < heat / 2,
          (peak, base))


if __name__ == "__main__":
    raise SystemExit(run_tests("fx_shard_", step_shard_and_merge, step_overlays, step_refusals,
                               step_kill_resume, step_environment, step_more_shards_than_inputs,
                               step_dry_run_scripts,
                               step_templates, step_asan, step_merge_memory))
