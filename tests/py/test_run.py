#!/usr/bin/env python3
"""Integration test of `fxscreen run`: a tiny random 2-class CNN exported from
torch, synthetic 16-bit radiographs plus damaged files; checks one row per
input in results.h5 and summary.csv in the same order, probabilities against
torch on the same preprocessed tensors (from `fxscreen prep`), heatmaps, error
rows, exit codes; then kills a run with SIGKILL at random moments, resumes it
each time, and checks every input exactly once with the same probabilities
as an uninterrupted run."""
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.abspath(os.path.join(BUILD, "fxscreen"))
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


def kill_and_resume(cmd, out, targets, rnd, env=None):
    """Runs cmd, then `run --resume out` once per further target, killing each
    with SIGKILL once summary.csv has passed its row target (plus a random
    few ms, so the kill lands anywhere inside a batch; a kill then always
    hits a running process, however fast the machine).  Returns the kills."""
    csv_path, kills = os.path.join(out, "summary.csv"), 0
    for attempt, target in enumerate(targets):
        p = subprocess.Popen(cmd if attempt == 0 else [FX, "run", "--resume", out, "--quiet"],
                             stderr=subprocess.DEVNULL, env=env)
        while p.poll() is None:
            try:
                with open(csv_path) as f:
                    rows = sum(1 for _ in f) - 1
            except OSError:
                rows = 0
            if rows >= target:
                time.sleep(rnd.uniform(0.0, 0.02))
                break
            time.sleep(0.005)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    return kills


def make_model(torch, path):
    torch.manual_seed(1234)
    nn = torch.nn
    m = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():  # non-trivial BN statistics
        for mod in m:
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    m.eval()
    torch.onnx.export(m, torch.zeros(1, 1, 64, 64), path, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
                      opset_version=13)
    return m


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sorted_paths(d):
    out = []
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".png", ".tif", ".tiff")):
                out.append(os.path.join(root, f))
    return sorted(out)


def main():
    if not os.path.exists(FX):
        print("SKIP test_run: %s not built" % FX)
        sys.exit(77)
    try:
        import torch
    except ImportError:
        print("SKIP test_run: torch not installed")
        sys.exit(77)
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="fx_run_")
    model = os.path.join(tmp, "tiny.onnx")
    net = make_model(torch, model)
    cfg = os.path.join(tmp, "c64.yaml")
    with open(cfg, "w") as f:
        f.write("input: {height: 64, width: 64, channels: 1}\nnormalize: {mean: [0.5], std: [0.25]}\n")
    src = os.path.join(tmp, "in")
    rc, _, err = run(["synth", "--out", src, "--n", "40", "--size", "128", "--bits", "16",
                      "--seed", "5", "--threads", "2"])
    check("synth 40 images", rc == 0, err)
    good = open(os.path.join(src, sorted(x for x in os.listdir(src) if x.endswith(".png"))[0]), "rb").read()
    open(os.path.join(src, "zz_empty.png"), "wb").close()
    open(os.path.join(src, "zz_trunc.png"), "wb").write(good[: len(good) // 2])
    paths = sorted_paths(src)
    n = len(paths)

    out = os.path.join(tmp, "run1")
    rc, _, err = run(["run", "--model", model, "--config", cfg, "--out", out, "--batch", "6",
                      "--threads", "2", "--device", "auto", "--quiet", src])
    check("run exit 0", rc == 0, err)
    h = h5py.File(os.path.join(out, "results.h5"), "r")
    rows = read_csv(os.path.join(out, "summary.csv"))
    h5paths = [p.decode() if isinstance(p, bytes) else p for p in h["path"][:]]
    lens = {k: h[k].shape[0] for k in ["score", "probability", "prediction", "heatmap", "peak_xy",
                                       "bbox", "path", "status", "error"]}
    check("one h5 row per input", set(lens.values()) == {n}, lens)
    check("one csv row per input", len(rows) == n, len(rows))
    check("same order in both, sorted input order",
          h5paths == [r["path"] for r in rows] == paths, (h5paths[:3], paths[:3]))
    check("shapes", h["score"].shape == (n, 2) and h["heatmap"].shape == (n, 64, 64)
          and h["heatmap"].dtype == np.uint8 and h["peak_xy"].shape == (n, 2)
          and h["bbox"].shape == (n, 4), {k: h[k].shape for k in h if hasattr(h[k], "shape")})
    check("heatmap chunked one image per chunk, deflate",
          h["heatmap"].chunks == (1, 64, 64) and h["heatmap"].compression == "gzip")
    attrs = dict(h.attrs)
    need = ["fxscreen_version", "model_sha256", "model", "config", "cam_method", "cam_layer",
            "threshold", "start_time", "end_time"]
    check("root attributes", all(k in attrs for k in need), sorted(attrs))
    status = h["status"][:]
    bad = [i for i, p in enumerate(paths) if os.path.basename(p).startswith("zz_")]
    okrows = [i for i in range(n) if i not in bad]
    check("error rows for the 2 damaged files", list(np.nonzero(status)[0]) == bad
          and all(rows[i]["status"] == "error" and rows[i]["error"] for i in bad), status)
    check("error rows: NaN probability, prediction -1, zero heatmap",
          all(np.isnan(h["probability"][i]) and h["prediction"][i] == -1
              and h["heatmap"][i].max() == 0 and np.isnan(h["score"][i]).all() for i in bad))
    # Probabilities against torch on fxscreen's own preprocessing.
    prep = os.path.join(tmp, "prep")
    rc, _, err = run(["prep", "--config", cfg, "--out", prep, "--quiet", src])
    check("prep exit 0", rc == 0, err)
    with h5py.File(os.path.join(prep, "prep.h5"), "r") as ph:
        x = ph["images"][:].astype(np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x[okrows])).numpy()
    p_ref = torch.softmax(torch.from_numpy(logits), 1)[:, 1].numpy()
    prob = h["probability"][:]
    diff = np.abs(prob[okrows] - p_ref).max()
    check("probability = torch softmax class 1 (2e-3)", diff < 2e-3, diff)
    sdiff = np.abs(h["score"][:][okrows] - logits).max()
    check("score = torch logits (2e-2, float16 inputs)", sdiff < 2e-2, sdiff)
    check("prediction = probability >= 0.5",
          (h["prediction"][:][okrows] == (prob[okrows] >= 0.5)).all())
    check("csv probability equals h5",
          all(abs(float(rows[i]["probability"]) - prob[i]) < 1e-6 for i in okrows))
    heat = h["heatmap"][:]
    # Normalised to [0, 1] on the layer's grid, then upsampled: peaks near 255.
    check("heatmaps non-empty on ok rows", all(heat[i].max() > 128 and heat[i].min() < heat[i].max()
                                                for i in okrows), [heat[i].max() for i in okrows])
    pk, bb = h["peak_xy"][:], h["bbox"][:]
    check("peak inside its box, in original pixels (0..128)",
          all(bb[i, 0] <= pk[i, 0] <= bb[i, 2] and bb[i, 1] <= pk[i, 1] <= bb[i, 3]
              and 0 <= bb[i, 0] < bb[i, 2] <= 128 for i in okrows), (pk[okrows[0]], bb[okrows[0]]))
    h.close()
    # The model's sidecar M.yaml is the config when --config is absent.
    side = os.path.join(tmp, "side")
    os.makedirs(side)
    os.link(model, os.path.join(side, "m.onnx"))
    with open(cfg) as f, open(os.path.join(side, "m.yaml"), "w") as g:
        g.write(f.read())
    rc, _, err = run(["run", "--model", os.path.join(side, "m.onnx"), "--out",
                      os.path.join(side, "out"), "--quiet", src])
    with h5py.File(os.path.join(side, "out", "results.h5"), "r") as sh:
        side_prob = sh["probability"][:]
    check("sidecar M.yaml used as the config", rc == 0 and np.array_equal(side_prob[okrows], prob[okrows]),
          (rc, err))
    # Exit codes.
    rc, _, err = run(["run", "--model", model, "--config", cfg, "--out", os.path.join(tmp, "x"),
                      "--device", "cuda", src])
    check("--device cuda exits 2 naming why", rc == 2 and "cuda" in err.lower(), (rc, err))
    rc, _, err = run(["run", "--out", os.path.join(tmp, "x"), src])
    check("missing --model exits 2", rc == 2, rc)
    rc, _, err = run(["run", "--model", os.path.join(tmp, "nope.onnx"), "--out",
                      os.path.join(tmp, "x"), src])
    check("missing model file exits 2", rc == 2, (rc, err))
    rc, _, err = run(["run", "--resume", os.path.join(tmp, "nothing")])
    check("--resume without run.json exits 2", rc == 2, (rc, err))
    # Ctrl-C: exit 130 with valid outputs, then resume completes.
    # FX_RUN_N images and FX_RUN_KILLS kills (make check-long: 5,000 and 12)
    nbig = int(os.environ.get("FX_RUN_N", "300"))
    nkills = int(os.environ.get("FX_RUN_KILLS", "3"))
    big = os.path.join(tmp, "big")
    rc, _, err = run(["synth", "--out", big, "--n", str(nbig), "--size", "96", "--bits", "16",
                      "--seed", "9", "--threads", "2"], timeout=1800)
    check("synth %d images" % nbig, rc == 0, err)
    bigpaths = sorted_paths(big)
    ref = os.path.join(tmp, "ref")
    rc, _, err = run(["run", "--model", model, "--config", cfg, "--out", ref, "--batch", "4",
                      "--threads", "1", "--quiet", big], timeout=1800)
    check("uninterrupted run of %d" % nbig, rc == 0, err)
    with h5py.File(os.path.join(ref, "results.h5"), "r") as rh:
        ref_prob = rh["probability"][:]
    sig = os.path.join(tmp, "sigint")
    p = subprocess.Popen([FX, "run", "--model", model, "--config", cfg, "--out", sig, "--batch",
                          "4", "--threads", "1", "--quiet", big], stderr=subprocess.PIPE, text=True)
    # Interrupt once a third of the rows are written (not after a fixed
    # sleep, which a fast machine can outrun).
    while p.poll() is None:
        try:
            with open(os.path.join(sig, "summary.csv")) as f:
                if sum(1 for _ in f) - 1 >= nbig // 3:
                    break
        except OSError:
            pass
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    with h5py.File(os.path.join(sig, "results.h5"), "r") as sh:
        k = sh["probability"].shape[0]
    nrows = len(read_csv(os.path.join(sig, "summary.csv")))
    check("Ctrl-C exits 130 with consistent outputs",
          p.returncode == 130 and 0 < k < nbig and k == nrows, (p.returncode, k, nrows, err))
    # SIGKILL at random moments, each followed by --resume.
    kill = os.path.join(tmp, "kill")
    rnd = random.Random(int(os.environ.get("FX_TEST_SEED", "42")))
    cmd = [FX, "run", "--model", model, "--config", cfg, "--out", kill, "--batch", "4",
           "--threads", "1", "--quiet", big]
    done_kills = kill_and_resume(cmd, kill, sorted(rnd.sample(range(20, nbig - 20), nkills)), rnd)
    rc, _, err = run(["run", "--resume", kill, "--quiet"], timeout=1800)
    check("resume after %d SIGKILLs exits 0" % done_kills,
          rc == 0 and done_kills >= min(2, nkills), (rc, err))
    with h5py.File(os.path.join(kill, "results.h5"), "r") as kh:
        kpaths = [x.decode() if isinstance(x, bytes) else x for x in kh["path"][:]]
        lens = {}
        kh.visititems(lambda k, v: lens.__setitem__(k, v.shape[0]) if hasattr(v, "shape") else None)
        kprob = kh["probability"][:]
    krows = read_csv(os.path.join(kill, "summary.csv"))
    check("after kills: every input exactly once in results.h5, in order",
          kpaths == bigpaths and set(lens.values()) == {nbig}, (len(kpaths), lens))
    check("after kills: every input exactly once in summary.csv, in order",
          [r["path"] for r in krows] == bigpaths, len(krows))
    check("after kills: probability equals the uninterrupted run",
          np.array_equal(kprob, ref_prob), np.abs(kprob - ref_prob).max())
    # Several engines (what --device cuda:0,1 or cuda:0,0 runs on GPUs;
    # FX_RUN_ENGINES=3 runs three CPU engines): one reader pool, one writer,
    # rows in input order, the same values as one engine, and kills resumed.
    env3 = dict(os.environ, FX_RUN_ENGINES="3")
    multi = os.path.join(tmp, "multi")
    p = subprocess.run([FX, "run", "--model", model, "--config", cfg, "--out", multi, "--batch",
                        "4", "--threads", "2", big], capture_output=True, text=True, env=env3,
                       timeout=1800)
    check("3 engines: exit 0, said so", p.returncode == 0 and "3 engines" in p.stderr,
          (p.returncode, p.stderr[-300:]))
    with h5py.File(os.path.join(multi, "results.h5"), "r") as mh, \
            h5py.File(os.path.join(ref, "results.h5"), "r") as rh:
        mpaths = [x.decode() if isinstance(x, bytes) else x for x in mh["path"][:]]
        same = all(np.array_equal(mh[k][:], rh[k][:])
                   for k in ("probability", "prediction", "heatmap", "peak_xy", "bbox", "index"))
    check("3 engines: the one engine's rows, in input order", mpaths == bigpaths and same)
    mkill = os.path.join(tmp, "multi_kill")
    cmd = [FX, "run", "--model", model, "--config", cfg, "--out", mkill, "--batch", "4",
           "--threads", "2", "--quiet", big]
    done_kills = kill_and_resume(cmd, mkill, sorted(rnd.sample(range(20, nbig - 20), 2)), rnd,
                                 env3)
    p = subprocess.run([FX, "run", "--resume", mkill, "--quiet"], capture_output=True, text=True,
                       env=env3, timeout=1800)
    with h5py.File(os.path.join(mkill, "results.h5"), "r") as kh:
        kpaths = [x.decode() if isinstance(x, bytes) else x for x in kh["path"][:]]
        kprob = kh["probability"][:]
    check("3 engines, %d SIGKILLs and resumes: every input once, in order, the same values"
          % done_kills, p.returncode == 0 and done_kills >= 1 and kpaths == bigpaths and
          np.array_equal(kprob, ref_prob), (p.returncode, len(kpaths), p.stderr[-300:]))
    print("# %.1f s" % (time.time() - t_start))
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
