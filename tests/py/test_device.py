#!/usr/bin/env python3
"""--device and --precision on `model run`, `model cam` and `run`, driven
through the real binary: bad values exit 2 naming the accepted ones; on a
machine without a usable GPU `--device cuda` exits 2 naming why (before any
output is written) and `auto` runs on the CPU after a one-line notice,
with outputs identical to `--device cpu`.  Where a GPU answers, the
no-GPU expectations are skipped (make test-gpu covers that side)."""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.abspath(os.path.join(BUILD, "fxscreen"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "models", "fxdemo.onnx")
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
    sys.stdout.flush()
    if not ok:
        failures += 1


def run(args, timeout=300):
    p = subprocess.run([FX] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def main():
    if not os.path.exists(FX):
        print("SKIP test_device: %s not built" % FX)
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="fxdev")
    inp = os.path.join(tmp, "in.h5")
    with h5py.File(inp, "w") as f:
        f["input"] = np.random.default_rng(7).random((3, 1, 256, 256), dtype=np.float32)

    # Is there a GPU the binary can use?  (`cuda` then succeeds.)
    rc, _, err = run(["model", "run", MODEL, "--input", inp, "--output", os.path.join(tmp, "g.h5"),
                      "--device", "cuda"])
    gpu = rc == 0

    for cmd in (["model", "run", MODEL, "--input", inp, "--output", os.path.join(tmp, "x.h5")],
                ["model", "cam", MODEL, "--input", inp, "--output", os.path.join(tmp, "x.h5")],
                ["run", "--model", MODEL, "--out", os.path.join(tmp, "x"), tmp]):
        name = " ".join(cmd[:2]) if cmd[0] == "model" else "run"
        rc, _, err = run(cmd + ["--device", "gpu"])
        check("%s --device gpu: exit 2 naming the values" % name,
              rc == 2 and "use auto, cpu, cuda" in err and "cuda:N" in err, (rc, err))
        rc, _, err = run(cmd + ["--precision", "fp8"])
        check("%s --precision fp8: exit 2 naming the values" % name,
              rc == 2 and "use fp32, tf32, fp16 or bf16" in err, (rc, err))

    # run's engine lists: bad lists and --streams values stop before any output
    for extra, want in ((["--device", "cuda:0,"], "cuda:N,M,..."), (["--device", "cpu:0,1"], "cuda:all"),
                        (["--streams", "0"], "--streams '0'"), (["--streams", "x"], "1..8"),
                        (["--prep-device", "gpu"], "use cpu or cuda")):
        o = os.path.join(tmp, "bad_list")
        rc, _, err = run(["run", "--model", MODEL, "--out", o] + extra + [tmp])
        check("run %s: exit 2 naming the values, no output" % " ".join(extra),
              rc == 2 and want in err and not os.path.exists(o), (rc, err))
    if gpu:
        print("SKIP test_device no-GPU expectations: a CUDA device answers here")
        return
    o = os.path.join(tmp, "all")
    rc, _, err = run(["run", "--model", MODEL, "--out", o, "--device", "cuda:all", tmp])
    check("run --device cuda:all without a GPU: exit 2 naming it, no rows",
          rc == 2 and "--device cuda:all" in err and
          not os.path.exists(os.path.join(o, "results.h5")), (rc, err))
    o = os.path.join(tmp, "prep_gpu")
    rc, _, err = run(["run", "--model", MODEL, "--out", o, "--prep-device", "cuda", tmp])
    check("run --prep-device cuda without a GPU: exit 2 naming the fix, no output",
          rc == 2 and "--prep-device cuda:" in err and "use --prep-device cpu" in err and
          not os.path.exists(o), (rc, err))
    out_cpu, out_auto = os.path.join(tmp, "cpu.h5"), os.path.join(tmp, "auto.h5")
    rc, _, err = run(["model", "run", MODEL, "--input", inp, "--output", out_cpu, "--device", "cpu"])
    check("model run --device cpu", rc == 0 and "no CUDA device" not in err, (rc, err))
    rc, _, err = run(["model", "run", MODEL, "--input", inp, "--output", out_auto])
    notice = [l for l in err.splitlines() if "no CUDA device found (" in l]
    check("model run --device auto: one notice, then the CPU",
          rc == 0 and len(notice) == 1 and notice[0].endswith("running on CPU"), (rc, err))
    with h5py.File(out_cpu) as a, h5py.File(out_auto) as b:
        check("auto == cpu outputs", np.array_equal(a["logits"][...], b["logits"][...]))
    rc, _, err = run(["model", "run", MODEL, "--input", inp, "--output", os.path.join(tmp, "c.h5"),
                      "--device", "cuda:1", "--precision", "fp16"])
    check("model run --device cuda:1: exit 2 naming why and the fix",
          rc == 2 and "--device cuda" in err and "use --device cpu or auto" in err
          and not os.path.exists(os.path.join(tmp, "c.h5")), (rc, err))
    rc, _, err = run(["model", "cam", MODEL, "--input", inp, "--output", os.path.join(tmp, "m.h5"),
                      "--device", "cuda"])
    check("model cam --device cuda: exit 2", rc == 2 and "--device cuda" in err, (rc, err))
    rc, _, err = run(["model", "cam", MODEL, "--input", inp, "--output", os.path.join(tmp, "m.h5")])
    check("model cam --device auto: notice and maps",
          rc == 0 and "no CUDA device found (" in err and os.path.exists(os.path.join(tmp, "m.h5")),
          (rc, err))

    imgs = os.path.join(tmp, "imgs")
    rc, _, err = run(["synth", "--out", imgs, "--n", "3", "--size", "256", "--bits", "16"])
    check("synth", rc == 0, err)
    out = os.path.join(tmp, "run_cuda")
    rc, _, err = run(["run", "--model", MODEL, "--out", out, "--device", "cuda", "--quiet", imgs])
    check("run --device cuda: exit 2 before any output",
          rc == 2 and "--device cuda" in err and not os.path.exists(os.path.join(out, "results.h5")),
          (rc, err))
    out = os.path.join(tmp, "run_auto")
    rc, _, err = run(["run", "--model", MODEL, "--out", out, "--quiet", "--precision", "bf16", imgs])
    notice = [l for l in err.splitlines() if l.startswith("run: no CUDA device found (")]
    check("run --device auto: one notice, all rows", rc == 0 and len(notice) == 1 and
          os.path.exists(os.path.join(out, "summary.csv")), (rc, err))
    if rc == 0:
        with open(os.path.join(out, "run.json")) as f:
            rj = json.load(f)
        check("run.json records device and precision",
              rj.get("device") == "auto" and rj.get("precision") == "bf16", rj)
        rc, _, err = run(["run", "--resume", out, "--quiet"])
        check("run --resume with them", rc == 0, (rc, err))


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
