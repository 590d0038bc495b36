#!/usr/bin/env python3
"""bench/infer: CPU inference throughput, fxscreen vs PyTorch vs onnxruntime.

For resnet18, densenet121 and efficientnet_b0 (torchvision, 2 classes, random
weights) at 224x224, measures images/s at batch 1, 8 and 32 (--quick: 1 and 8)
for three engines, each in its own process so that its peak RSS (VmHWM, i.e.
ru_maxrss of its own process image) is its own:
  fxscreen     build/bench/infer_fx on the exported ONNX (library code)
  pytorch      torch eager, torch.set_num_threads(cores), inference_mode
  onnxruntime  CPUExecutionProvider, intra_op_num_threads = cores, ORT_ENABLE_ALL
Each: warm-up runs, then the median of >= 3 timed runs (and >= --min-seconds);
the whole grid is run --rounds times (default 3), interleaved, and the table
gives the median over rounds and the range of the per-round fx / ort ratios.
All engines use the same thread count (all cores by default).  The ONNX files
are torch.onnx.export defaults (opset 13, eval mode, dynamic batch axis),
cached in BUILD/bench-infer/.

Usually run through bench/infer.sh (make bench-infer), which creates the venv
with onnxruntime and appends the table to bench/RESULTS.md:
  python bench/infer.py [--quick] [--models a,b] [--batches 1,8,32] [--build build]
Worker mode (internal): python bench/infer.py --worker torch|ort ...
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

MODELS = ["resnet18", "densenet121", "efficientnet_b0"]


def rss_mib():
    """Peak RSS of this process image: VmHWM (reset at exec, unlike ru_maxrss,
    which a child inherits from the parent that forked it), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, warmup, reps, min_s):
    for _ in range(warmup):
        fn()
    t, total = [], 0.0
    while len(t) < 50 and (len(t) < reps or total < min_s):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
        total += t[-1]
    return statistics.median(t), len(t)


def worker(a):
    import numpy as np
    x = np.random.default_rng(12345).standard_normal((a.batch, 3, a.size, a.size)).astype(np.float32)
    if a.worker == "torch":
        import torch
        import torchvision
        torch.set_num_threads(a.threads)
        torch.manual_seed(0)
        model = getattr(torchvision.models, a.model)(weights=None, num_classes=2).eval()
        xt = torch.from_numpy(x)

        def fn():
            with torch.inference_mode():
                model(xt)
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name

        def fn():
            sess.run(None, {iname: x})
    med, runs = timed(fn, a.warmup, a.reps, a.min_seconds)
    print(json.dumps({"engine": "pytorch" if a.worker == "torch" else "onnxruntime",
                      "batch": a.batch, "ips": a.batch / med, "median_ms": med * 1e3,
                      "runs": runs, "rss_mib": rss_mib()}))
    return 0


def export(build, name, size):
    path = os.path.join(build, "bench-infer", "%s_%d.onnx" % (name, size))
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    import torch
    import torchvision
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=2).eval()
    with torch.no_grad():
        torch.onnx.export(model, torch.randn(1, 3, size, size), path + ".tmp", opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(path + ".tmp", path)
    return path


def run_json(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line), None
    return None, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1][:200]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["torch", "ort", "export"])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--onnx")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--quick", action="store_true", help="batch 1 and 8 only")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--build", default=os.environ.get("FX_BUILD", "build"))
    ap.add_argument("--engines", default="fxscreen,pytorch,onnxruntime")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds over all (model, batch, engine) cells")
    a = ap.parse_args()
    if a.worker == "export":
        print(export(a.build, a.model, a.size))
        return 0
    if a.worker:
        return worker(a)

    batches = [1, 8] if a.quick else [int(b) for b in a.batches.split(",")]
    engines = a.engines.split(",")
    fx = os.path.join(a.build, "bench", "infer_fx")
    # The driver imports neither torch nor onnxruntime: it stays small, and
    # every engine runs (and is measured) in a process of its own.
    import importlib.util
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    if not have_ort:
        print("onnxruntime not importable: benchmarking without it", file=sys.stderr)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    common = ["--size", str(a.size), "--warmup", str(a.warmup), "--reps", str(a.reps),
              "--min-seconds", str(a.min_seconds)]
    t0 = time.time()
    paths = {}
    for name in a.models.split(","):
        paths[name] = subprocess.run([sys.executable, __file__, "--worker", "export", "--model",
                                      name, "--size", str(a.size), "--build", a.build],
                                     check=True, capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1]
    # Rounds: every (model, batch, engine) once per round, the engines of a
    # cell back to back.  On a shared or virtual machine the speed drifts by
    # 10-20% over minutes; interleaving puts each engine in the same
    # stretches, and the medians over rounds resist a slow one.
    runs = {}  # (name, batch, engine) -> [result dict per round]
    errs = {}
    for rnd in range(a.rounds):
        for name in a.models.split(","):
            path = paths[name]
            for b in batches:
                for eng in engines:
                    if eng == "fxscreen":
                        cmd = [fx, path, "--batch", str(b), "--size", "%dx%d" % (a.size, a.size),
                               "--warmup", str(a.warmup), "--reps", str(a.reps),
                               "--min-seconds", str(a.min_seconds)]
                    elif eng == "pytorch":
                        cmd = [sys.executable, __file__, "--worker", "torch", "--model", name,
                               "--batch", str(b), "--threads", str(a.threads)] + common
                    elif eng == "onnxruntime" and have_ort:
                        cmd = [sys.executable, __file__, "--worker", "ort", "--onnx", path,
                               "--batch", str(b), "--threads", str(a.threads)] + common
                    else:
                        errs[(name, b, eng)] = "not installed"
                        continue
                    r, e = run_json(cmd, env)
                    if r:
                        runs.setdefault((name, b, eng), []).append(r)
                    else:
                        errs[(name, b, eng)] = e
                    print("round %d  %-16s batch %2d  %-12s %s" % (
                        rnd + 1, name, b, eng, "%.2f img/s, %.0f MiB" % (r["ips"], r["rss_mib"])
                        if r else "failed: " + e), file=sys.stderr)
    secs = time.time() - t0

    def med(name, b, eng):
        rs = runs.get((name, b, eng))
        return statistics.median(r["ips"] for r in rs) if rs else None

    def cell(name, b, eng):
        v = med(name, b, eng)
        return "%.2f" % v if v else "n/a"

    def rss(name, b, eng):
        rs = runs.get((name, b, eng))
        return "%.0f" % max(r["rss_mib"] for r in rs) if rs else "n/a"

    def ratios(name, b):
        """fx / ort of the medians, and the range of the per-round ratios."""
        f, o = runs.get((name, b, "fxscreen")), runs.get((name, b, "onnxruntime"))
        if not f or not o:
            return "n/a", "n/a"
        per = sorted(x["ips"] / y["ips"] for x, y in zip(f, o))
        return "%.2f" % (med(name, b, "fxscreen") / med(name, b, "onnxruntime")), \
            "%.2f-%.2f" % (per[0], per[-1])

    hdr = "| model | batch | " + " | ".join("%s img/s" % e for e in engines) + \
        " | fx / ort | per-round fx / ort | " + " | ".join("%s RSS MiB" % e for e in engines) + " |"
    print(hdr)
    print("|" + "---|" * (2 + 2 * len(engines) + 2))
    notes = []
    for name in a.models.split(","):
        for b in batches:
            ratio, rng = ratios(name, b)
            print("| %s | %d | %s | %s | %s | %s |" % (
                name, b, " | ".join(cell(name, b, e) for e in engines), ratio, rng,
                " | ".join(rss(name, b, e) for e in engines)))
            for e in engines:
                if (name, b, e) in errs:
                    notes.append("%s batch %d %s: %s" % (name, b, e, errs[(name, b, e)]))
    print()
    print("Threads: %d for every engine; %d interleaved rounds, img/s the median over rounds "
          "(each round's figure itself the median of its timed runs); wall time %.0f s."
          % (a.threads, a.rounds, secs))
    for n in notes:
        print("- " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
