#!/usr/bin/python3
"""Conformance of `fxscreen model run` against PyTorch on torchvision networks.

For resnet18, densenet121, mobilenet_v2, mobilenet_v3_small and
efficientnet_b0 (2 classes, random weights, randomised BatchNorm statistics)
at 224x224 and 192x256 with a batch of 4, the models and torch's outputs come
from tests/py/gen_conformance.py (cached under $FX_BUILD/conformance/<hash>/,
exported on first use).  For every case this runs
    fxscreen model run MODEL --input in.h5 --output out.h5 --dump NAME
and checks max|ours - torch| / max|torch| <= 1e-4 for the model output and the
dumped late feature map (the input of the final global pooling), then that
`fxscreen model info` names a Grad-CAM layer.  First, a few CLI checks on tiny
hand-made ONNX files: exit 2 with the fix named for usage errors, the full
list of unsupported ops, '/' -> '_' in dataset names.  One PASS/FAIL line per check;
exit 1 on any failure, 77 (SKIP) without torch/torchvision/onnx/h5py.

  FX_BUILD=build /usr/bin/python3 tests/py/test_conformance.py [--models resnet18] [--sizes 224x224]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import h5py
    import numpy as np
    import onnx  # noqa: F401  (gen_conformance walks the exported graph)
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError as e:
    print("SKIP test_conformance: %s (make deps installs python3-torch, -torchvision, -onnx)" % e)
    sys.exit(77)

import gen_conformance as gen  # noqa: E402

TOL = 1e-4
BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.join(BUILD, "fxscreen")


def rel_err(got, want):
    if got.shape != want.shape:
        return float("inf"), "shape %s, torch %s" % (got.shape, want.shape)
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if not np.isfinite(d).all():
        return float("inf"), "non-finite values"
    scale = float(np.abs(want).max())
    e = float(d.max()) / scale if scale > 0 else float(d.max())
    return e, "max|diff| %.3g at %s, max|torch| %.3g" % (
        d.max(), np.unravel_index(d.argmax(), d.shape), scale)


def check_cli_errors(tmp):
    """Exit codes and messages of `model` for usage and model errors."""
    from onnx import TensorProto, helper
    import onnx as onnx_mod
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("FooOp", ["x"], ["a"], name="f1"),
             helper.make_node("BarOp", ["a"], ["b"], name="b1"),
             helper.make_node("Relu", ["b"], ["y"], name="r1")]
    unsup = os.path.join(tmp, "unsupported.onnx")
    onnx_mod.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                                    opset_imports=[helper.make_opsetid("", 13)]), unsup)
    relu = os.path.join(tmp, "relu.onnx")
    onnx_mod.save(helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y/out"], name="r")], "g", [x],
        [helper.make_tensor_value_info("y/out", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 13)]), relu)
    # Conv -> BatchNormalization: the folding removes the conv's own output
    convbn = os.path.join(tmp, "convbn.onnx")
    rng = np.random.RandomState(5)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 1, 1], rng.randn(12).tolist())]
    for k, v in (("s", 1.0), ("bb", 0.1), ("m", 0.2), ("v", 1.5)):
        inits.append(helper.make_tensor(k, TensorProto.FLOAT, [4], [v] * 4))
    onnx_mod.save(helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
         helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], name="bn")],
        "g", [x], [y], initializer=inits), opset_imports=[helper.make_opsetid("", 13)]), convbn)
    inp = os.path.join(tmp, "in.h5")
    with h5py.File(inp, "w") as f:
        f.create_dataset("input", data=np.linspace(-1, 1, 2 * 3 * 8 * 8, dtype=np.float32)
                         .reshape(2, 3, 8, 8))
    out = os.path.join(tmp, "out.h5")
    cases = [
        ("unsupported model lists every op", ["info", unsup], 2, ["FooOp", "BarOp", "f1", "b1"]),
        ("run: unknown --dump tensor", ["run", relu, "--input", inp, "--output", out,
                                        "--dump", "nope"], 2, ["nope", "model info"]),
        ("run: --dump of a conv output folded into its BatchNorm names the one to use",
         ["run", convbn, "--input", inp, "--output", out, "--dump", "c"], 2,
         ["'c'", "folded", "'y'"]),
        ("info: the output tensor column names what --dump takes", ["info", convbn], 0, []),
        ("run: --output missing", ["run", relu, "--input", inp], 2, ["--output"]),
        ("run: no /input", ["run", relu, "--input", unsup, "--output", out], 2, ["/input"]),
        ("info: bad --input-size", ["info", relu, "--input-size", "8by8"], 2, ["HxW"]),
        ("unknown subcommand", ["frob"], 2, ["info", "run"]),
        ("run: '/' in tensor names becomes '_'", ["run", relu, "--input", inp, "--output", out,
                                                  "--dump", "x"], 0, []),
    ]
    bad = 0
    for label, args, want_rc, words in cases:
        p = subprocess.run([FX, "model"] + args, capture_output=True, text=True, timeout=60)
        ok = p.returncode == want_rc and all(w in p.stderr for w in words)
        if ok and args[0] == "info" and want_rc == 0:
            rows = [l.split() for l in p.stdout.splitlines() if l.startswith("conv ")]
            ok = len(rows) == 1 and rows[0][-1] == "y"
        if ok and want_rc == 0 and args[0] == "run":
            with h5py.File(out, "r") as f:
                ok = ("y_out" in f and "x" in f and f["y_out"].attrs["tensor"] == "y/out" and
                      np.array_equal(f["y_out"][()], np.maximum(f["x"][()], 0)) and
                      len(f.attrs["model_sha256"]) == 64)
        print("%s cli %s%s" % ("PASS" if ok else "FAIL", label,
                               "" if ok else ": exit %d (want %d), stderr: %s" % (
                                   p.returncode, want_rc, p.stderr.strip()[:300])))
        bad += not ok
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(gen.MODELS),
                    help="comma-separated subset (default: all five)")
    ap.add_argument("--sizes", default=",".join("%dx%d" % s for s in gen.SIZES),
                    help="comma-separated HxW list (default: 224x224,192x256)")
    a = ap.parse_args()
    if not os.access(FX, os.X_OK):
        print("FAIL test_conformance: %s not built (make)" % FX)
        return 1
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        failed = check_cli_errors(tmp)
    for name in a.models.split(","):
        for size in gen.parse_sizes(a.sizes):
            label = "%s@%dx%d" % (name, size[0], size[1])
            try:
                meta = gen.ensure_case(BUILD, name, size)
            except Exception as e:  # an export problem is a failure of this case
                print("FAIL %s: export: %s" % (label, e))
                failed += 1
                continue
            d = gen.case_dir(BUILD, name, size)
            model = os.path.join(d, "model.onnx")
            out = os.path.join(d, "out.h5")
            if os.path.exists(out):
                os.remove(out)
            t0 = time.time()
            run = subprocess.run([FX, "model", "run", model, "--input", os.path.join(d, "in.h5"),
                                  "--output", out, "--dump", meta["dump"]],
                                 capture_output=True, text=True, timeout=600)
            secs = time.time() - t0
            if run.returncode != 0:
                msg = (run.stderr.strip() or "no message").replace("\n", "\n  ")
                print("FAIL %s: fxscreen model run exit %d\n  %s" % (label, run.returncode, msg))
                failed += 1
                rows.append((label, None, None))
            else:
                errs = []
                with h5py.File(os.path.join(d, "ref.h5"), "r") as ref, h5py.File(out, "r") as got:
                    for key in meta["outputs"] + [meta["dump"]]:
                        ds = gen.sanitise(key)
                        what = "dump %s" % key if key == meta["dump"] else "output %s" % key
                        if ds not in got:
                            e, detail = float("inf"), "dataset %s missing from out.h5" % ds
                        else:
                            e, detail = rel_err(got[ds][()], ref[ds][()])
                        ok = e <= TOL
                        failed += not ok
                        errs.append(e)
                        print("%s %s %s: err=%.3g%s" % ("PASS" if ok else "FAIL", label, what, e,
                                                        "" if ok else " > %g (%s)" % (TOL, detail)))
                    for k in ("model", "model_sha256", "fxscreen_version"):
                        if k not in got.attrs:
                            print("FAIL %s: out.h5 lacks root attribute %s" % (label, k))
                            failed += 1
                rows.append((label, errs[0], errs[-1]))
                print("  (%s: model run %.1f s)" % (label, secs))
            info = subprocess.run([FX, "model", "info", model, "--input-size",
                                   "%dx%d" % size], capture_output=True, text=True, timeout=300)
            cam = [ln for ln in info.stdout.splitlines()
                   if ln.startswith("suggested Grad-CAM layer: ")]
            ok = info.returncode == 0 and cam and not cam[0].split(": ", 1)[1].startswith("none")
            failed += not ok
            if ok:
                layer = cam[0].split(": ", 1)[1]
                same = layer.split(" (")[0] == meta["dump"]
                print("PASS %s info names a Grad-CAM layer: %s%s" % (
                    label, layer, "" if same else " (differs from the dumped %s)" % meta["dump"]))
            else:
                print("FAIL %s info names a Grad-CAM layer: exit %d, %s" % (
                    label, info.returncode, (cam[0] if cam else info.stderr.strip()[:300])))
            # Every op of the model runs on the GPU too (no CPU fallback under auto).
            cuda = [ln for ln in info.stdout.splitlines() if ln.startswith("CUDA backend: ")]
            if cuda and cuda[0] == "CUDA backend: not in this build":
                print("SKIP %s CUDA backend check: the build has no CUDA" % label)
            else:
                ok = cuda == ["CUDA backend: runs every node"]
                failed += not ok
                print("%s %s the CUDA backend runs every node%s" % (
                    "PASS" if ok else "FAIL", label, "" if ok else ": %s" % cuda))
            sys.stdout.flush()
    print("\n| case | max rel err (output) | max rel err (dumped) |\n|---|---|---|")
    for label, eo, ed in rows:
        f = (lambda v: "-" if v is None else "%.2e" % v)
        print("| %s | %s | %s |" % (label, f(eo), f(ed)))
    print("total %.1f s" % (time.time() - t_start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
