#!/usr/bin/env python3
"""`fxscreen slurm submit` on a real single-node Slurm (Debian's slurm-wlm
and munge, started by this test under build/slurm-test): a 4-task array
over 300 synthetic radiographs, one task killed part-way with `scancel
--signal=KILL` and requeued with `scontrol requeue`, the merge job (which
waits again for the requeued task), and the merged result compared row for
row with one unsharded `fxscreen run` on the same inputs.  Where Slurm
cannot start (not root, packages missing), one SKIP line says why; the
shard and merge tests without Slurm are test_shard.py."""
import os
import re
import subprocess
import sys
import time

from serve_util import BUILD, FX, MODEL, check, run_tests
from slurm_local import Cluster, SlurmUnavailable
from test_shard import same_results

SHARDS = 4


def wait_for(what, fn, timeout, step=0.05):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


def csv_rows(path):
    try:
        with open(path) as f:
            return max(0, len(f.read().splitlines()) - 1)
    except OSError:
        return 0


def job_state(cluster, job):
    p = cluster.run("scontrol", "show", "job", job, check=False)
    m = re.search(r"JobState=(\S+)", p.stdout)
    return m.group(1) if m else ""


def step_slurm(tmp):
    root = os.path.abspath(os.path.join(BUILD, "slurm-test"))
    cluster = Cluster(root, cpus=SHARDS)
    try:
        cluster.start()
    except SlurmUnavailable as e:
        print(f"SKIP slurm: a single-node Slurm could not start here: {e}")
        return
    try:
        run_on(cluster, tmp)
        template_on(cluster, tmp)
    finally:
        cluster.stop()


def run_on(cluster, tmp):
    os.chdir(tmp)
    env = cluster.env()
    p = subprocess.run([FX, "synth", "--out", "imgs", "-n", "300", "--size", "640", "--bits", "16",
                        "--seed", "11"], capture_output=True, text=True)
    check("300 synthetic radiographs", p.returncode == 0, p.stderr)
    p = subprocess.run([FX, "run", "--quiet", "--batch", "4", "--model", MODEL, "--out", "full",
                        "imgs"], capture_output=True, text=True)
    check("the unsharded run", p.returncode == 0, p.stderr)
    p = subprocess.run([FX, "slurm", "submit", "--model", MODEL, "--out", "job", "--shards",
                        str(SHARDS), "--cpus-per-task", "1", "--batch", "4", "--threads", "1",
                        "--time", "30:00", "imgs"], capture_output=True, text=True, env=env)
    ids = p.stdout.split()
    if not check("slurm submit: an array job and a merge job", p.returncode == 0 and
                 len(ids) == 2, p.stdout + p.stderr):
        return
    array, merge = ids
    check("the merge job waits on the array",
          f"afterany:{array}" in cluster.run("scontrol", "show", "job", merge).stdout)
    # Kill two tasks part-way: the first is requeued at once (as a
    # preemption would); the second is left until the merge job has found
    # it unfinished, then `fxscreen slurm requeue` queues it again.
    want = 300 // SHARDS

    def in_progress(exclude):
        for i in range(SHARDS):
            n = csv_rows(f"job/shards/{i:04d}/summary.csv")
            if str(i) != exclude and 8 <= n < want - 8:
                return str(i)
        return None

    def kill(exclude):
        victim = wait_for("a shard part-way", lambda: in_progress(exclude), 240, 0.02)
        if not check("a shard part-way through", victim is not None):
            return None
        task = f"{array}_{victim}"
        cluster.run("scancel", "--signal=KILL", task)
        ended = wait_for("the task ends", lambda: job_state(cluster, task) in
                         ("CANCELLED", "FAILED", "COMPLETED"), 60)
        state = job_state(cluster, task)
        rows = csv_rows(f"job/shards/{int(victim):04d}/summary.csv")
        check(f"task {task} killed part-way ({rows} of {want} rows; {state})",
              ended and state in ("CANCELLED", "FAILED") and rows < want, state)
        st = subprocess.run([FX, "slurm", "status", "job"], capture_output=True, text=True,
                            env=env)
        line = [ln for ln in st.stdout.splitlines() if ln.startswith(f"{int(victim):04d} ")]
        check("slurm status shows the killed shard partial, not queued",
              line and "partial" in line[0] and "not queued" in line[0], st.stdout + st.stderr)
        return victim

    first = kill(None)
    if first is None:
        return
    r = cluster.run("scontrol", "requeue", f"{array}_{first}", check=False)
    check(f"scontrol requeue {array}_{first}", r.returncode == 0, r.stdout + r.stderr)
    second = kill(first)
    if second is None:
        return

    def merge_log():
        try:
            return open("job/slurm/logs/merge.out").read()
        except OSError:
            return ""

    refused = wait_for("the merge job's refusal", lambda: "did not finish" in merge_log(), 300,
                       0.5)
    check(f"the merge job names shard {second}, unfinished and not queued, and the fix",
          refused and f"shard(s) {second} of" in merge_log() and
          "fxscreen slurm requeue" in merge_log() and not os.path.exists("job/results.h5"),
          merge_log())
    r = subprocess.run([FX, "slurm", "requeue", "job"], capture_output=True, text=True, env=env)
    check("fxscreen slurm requeue: the shard's task and a new merge job",
          r.returncode == 0 and f"shard {second} (task {array}_{second}) queued again" in r.stderr
          and "the merge comes again as job" in r.stderr, r.stdout + r.stderr)
    done = wait_for("the merged result", lambda: os.path.exists("job/results.h5") and
                    "slurm merge: 4 shards" in merge_log(), 420, 0.5)
    logs = ""
    for name in sorted(os.listdir("job/slurm/logs")):
        logs += f"--- {name}\n" + open(os.path.join("job/slurm/logs", name)).read()
    if not check("the merge job merged every shard", done, logs + cluster.run(
            "squeue", "-a", check=False).stdout):
        return
    for victim in (first, second):
        vlog = open(f"job/slurm/logs/shard-{victim}.out").read()
        check(f"task {victim} ran again (restart 1) and resumed its shard",
              "restart 1" in vlog and "resuming" in vlog, vlog)
    why = same_results("full", "job")
    check("merged result == the unsharded run, row for row (every dataset, summary.csv)",
          not why, why)
    st = subprocess.run([FX, "slurm", "status", "job"], capture_output=True, text=True, env=env)
    check("slurm status: every shard done, merged", "4/4 shards done" in st.stdout and
          "merged into results.h5" in st.stdout and "300/300" in st.stdout, st.stdout)
    ev = subprocess.run([FX, "eval", "--results", "job", "--labels", "imgs/labels.csv"],
                        capture_output=True, text=True)
    check("eval reads the merged result", ev.returncode == 0 and "300 images evaluated" in
          ev.stdout + ev.stderr, ev.stdout + ev.stderr)


def template_on(cluster, tmp):
    """configs/slurm-shard.sbatch submitted as it is, an array of 4."""
    os.chdir(tmp)
    root = os.path.dirname(os.path.dirname(MODEL))
    env = dict(cluster.env(), OUT=os.path.join(tmp, "tpl"), MODEL=MODEL, SOURCES="imgs",
               RUN_ARGS="--batch 4", FXSCREEN=FX)
    p = subprocess.run(["sbatch", "--parsable", "--wait", "--array=0-3", f"--chdir={tmp}",
                        os.path.join(root, "configs", "slurm-shard.sbatch")],
                       capture_output=True, text=True, env=env, timeout=600)
    check("configs/slurm-shard.sbatch as an array of 4 (sbatch --wait)", p.returncode == 0,
          p.stdout + p.stderr)
    p = subprocess.run([FX, "merge", "--out", "tpl"] + [f"tpl/shards/{i:04d}" for i in range(4)],
                       capture_output=True, text=True)
    why = same_results("full", "tpl") if p.returncode == 0 else p.stderr
    check("the template's shards merged == the unsharded run", not why, why)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP slurm: slurmd must run as root to start jobs (this test runs as uid %d)"
              % os.geteuid())
        sys.exit(0)
    raise SystemExit(run_tests("fx_slurm_", step_slurm))
