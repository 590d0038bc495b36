#!/usr/bin/python3
"""Conformance of `fxscreen model cam` against an independent PyTorch reference.

Models and inputs are tests/py/gen_conformance.py's cached exports (2 classes,
random weights, randomised BatchNorm statistics, batch 4).  The reference is
written here: the torchvision network is split at the CAM layer into
stem(x) -> A and head(A) -> logits, A is made a leaf, and torch.autograd.grad
gives dL/dA for L = sum over images of logits[i, target_i]; the methods follow
pytorch-grad-cam's definitions (BaseCAM.get_cam_image, GradCAMPlusPlus,
XGradCAM, HiResCAM, LayerCAM, get_2d_projection with the sign of VT[0] fixed
so that sum(VT[0]) >= 0, as fxscreen documents), then ReLU, min-max
(scale_cam_image) and F.interpolate(bilinear, align_corners=False).

Checks, one PASS/FAIL line each:
  - every method on the five models at 224x224 (default layer = the tensor
    gen_conformance dumps) and on resnet18 / mobilenet_v3_small at 192x256:
    Pearson r >= 0.999 per upsampled map, the same peak cell on the layer
    grid, the same targets (the predicted class);
  - deeper layers (Grad-CAM and HiResCAM), where the backward pass runs
    through convolutions, residual adds, dense-block concats, squeeze-
    excitation, SiLU, ReLU6 and hardswish;
  - resnet18: the exact GAP+Gemm shortcut and the backward pass give the same
    maps (max |diff| <= 1e-5); per-image --target;
  - usage errors exit 2 naming the fix.
Exit 1 on any failure, 77 (SKIP) without torch/torchvision/onnx/h5py.

  FX_BUILD=build /usr/bin/python3 tests/py/test_cam.py [--models resnet18]
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
    import onnx  # noqa: F401
    import torch
    import torch.nn.functional as F
    import torchvision  # noqa: F401
except ImportError as e:
    print("SKIP test_cam: %s (make deps installs python3-torch, -torchvision, -onnx)" % e)
    sys.exit(77)

import gen_conformance as gen  # noqa: E402

BUILD = os.environ.get("FX_BUILD", "build")
FX = os.path.join(BUILD, "fxscreen")
METHODS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"]
R_MIN = 0.999
# Deeper layers: ONNX tensor name and where the torchvision module list is cut.
DEEP = {
    "resnet18": "/layer3/layer3.1/relu_1/Relu_output_0",
    "densenet121": "/features/transition3/pool/AveragePool_output_0",
    "mobilenet_v2": "/features/features.16/Add_output_0",
    "mobilenet_v3_small": "/features/features.10/Add_output_0",
    "efficientnet_b0": "/features/features.6/features.6.3/Add_output_0",
}
CUT = {"mobilenet_v2": 17, "mobilenet_v3_small": 11, "efficientnet_b0": 7}


def split_model(m, name, deep):
    """(stem, head): stem(x) is the CAM layer's tensor, head(A) the logits."""
    flat = lambda t: torch.flatten(t, 1)  # noqa: E731
    gap = lambda t: F.adaptive_avg_pool2d(t, (1, 1))  # noqa: E731
    if name == "resnet18":
        def stem(x):
            x = m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))))
            return x if deep else m.layer4(x)
        return stem, lambda a: m.fc(flat(m.avgpool(m.layer4(a) if deep else a)))
    if name == "densenet121":
        f = m.features
        cut = list(f.children()).index(f.transition3) + 1
        if deep:
            return f[:cut], lambda a: m.classifier(flat(gap(F.relu(f[cut:](a)))))
        return lambda x: F.relu(f(x)), lambda a: m.classifier(flat(gap(a)))
    c = CUT[name] if deep else len(m.features)
    pool = gap if name == "mobilenet_v2" else m.avgpool
    return m.features[:c], lambda a: m.classifier(flat(pool(m.features[c:](a))))


def torch_grads(model, name, deep, x, targets=None):
    """A, dL/dA (numpy) and the targets used (predicted where None)."""
    stem, head = split_model(model, name, deep)
    with torch.no_grad():
        a = stem(x)
    a = a.detach().requires_grad_(True)
    logits = head(a)
    t = logits.argmax(1) if targets is None else torch.tensor(targets)
    g, = torch.autograd.grad(logits[torch.arange(len(t)), t].sum(), a)
    return a.detach().numpy().astype(np.float64), g.numpy().astype(np.float64), t.numpy()


def ref_cam(method, A, G):
    """Raw map (N, h, w) as pytorch-grad-cam computes it (before ReLU)."""
    if method == "eigencam":
        out = []
        for act in A:
            X = act.reshape(act.shape[0], -1).T
            X = X - X.mean(axis=0)
            _, _, vt = np.linalg.svd(X, full_matrices=False)
            v = vt[0] if vt[0].sum() >= 0 else -vt[0]
            out.append((X @ v).reshape(act.shape[1:]))
        return np.array(out)
    if method == "hirescam":
        return (G * A).sum(1)
    if method == "layercam":
        return (np.maximum(G, 0) * A).sum(1)
    if method == "gradcam":
        w = G.mean(axis=(2, 3))
    elif method == "xgradcam":
        w = (G * A / (A.sum(axis=(2, 3))[:, :, None, None] + 1e-7)).sum(axis=(2, 3))
    else:  # gradcam++
        g2, g3 = G ** 2, G ** 3
        aij = g2 / (2 * g2 + A.sum(axis=(2, 3))[:, :, None, None] * g3 + 1e-6)
        aij = np.where(G != 0, aij, 0)
        w = (np.maximum(G, 0) * aij).sum(axis=(2, 3))
    return (w[:, :, None, None] * A).sum(1)


def scale(cam, size):
    """ReLU, min-max per image, bilinear upsample: (low, high)."""
    cam = np.maximum(cam, 0)
    cam = cam - cam.min(axis=(1, 2), keepdims=True)
    cam = cam / (1e-7 + cam.max(axis=(1, 2), keepdims=True))
    up = F.interpolate(torch.from_numpy(cam[:, None]).float(), size=size, mode="bilinear",
                       align_corners=False)[:, 0].numpy()
    return cam, up


def pearson(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() < 1e-9 or b.std() < 1e-9:  # a flat map: compare values instead
        return 1.0 if np.abs(a - b).max() < 1e-3 else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def run_cam(model, inp, out, method, layer=None, extra=()):
    args = [FX, "model", "cam", model, "--input", inp, "--output", out, "--method", method]
    if layer:
        args += ["--layer", layer]
    return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=600)


def compare(label, got, A, G, t, method, size, want_layer):
    """PASS/FAIL line for one output file; returns the number of failures."""
    low, up = scale(ref_cam(method, A, G), size)
    with h5py.File(got, "r") as f:
        cam, camlo, tgt = f["cam"][()], f["cam_lowres"][()], f["target"][()]
        layer = f.attrs["layer"]
        layer = layer.decode() if isinstance(layer, bytes) else layer
    rs = [pearson(cam[i], up[i]) for i in range(len(up))]
    peaks = [int(np.argmax(camlo[i])) == int(np.argmax(low[i])) for i in range(len(low))]
    why = []
    if cam.shape != up.shape:
        why.append("shape %s, torch %s" % (cam.shape, up.shape))
    if min(rs) < R_MIN:
        why.append("r %s < %g" % (["%.5f" % r for r in rs], R_MIN))
    if not all(peaks):
        why.append("peak cell differs for images %s" % [i for i, p in enumerate(peaks) if not p])
    if list(tgt) != list(t):
        why.append("targets %s, torch %s" % (list(tgt), list(t)))
    if layer != want_layer:
        why.append("layer %s, want %s" % (layer, want_layer))
    print("%s %s %s: r_min=%.6f peaks %d/%d%s" % ("FAIL" if why else "PASS", label, method,
                                                 min(rs), sum(peaks), len(peaks),
                                                 "" if not why else " (" + "; ".join(why) + ")"))
    sys.stdout.flush()
    return 1 if why else 0


def check_case(name, size, methods, deep, tmp):
    label = "%s@%dx%d%s" % (name, size[0], size[1], " deep" if deep else "")
    try:
        meta = gen.ensure_case(BUILD, name, size)
    except Exception as e:
        print("FAIL %s: export: %s" % (label, e))
        return 1
    d = gen.case_dir(BUILD, name, size)
    model, inp = os.path.join(d, "model.onnx"), os.path.join(d, "in.h5")
    with h5py.File(inp, "r") as f:
        x = torch.from_numpy(f["input"][()])
    net = gen.build_model(name, gen.model_seed(name))
    A, G, t = torch_grads(net, name, deep, x)
    layer = DEEP[name] if deep else None
    want = layer or meta["dump"]
    bad = 0
    for method in methods:
        out = os.path.join(tmp, "cam.h5")
        p = run_cam(model, inp, out, method, layer)
        if p.returncode != 0:
            print("FAIL %s %s: fxscreen model cam exit %d: %s" % (label, method, p.returncode,
                                                                 p.stderr.strip()[:400]))
            bad += 1
            continue
        bad += compare(label, out, A, G, t, method, size, want)
    return bad


def check_resnet_extras(tmp):
    """Shortcut == backward pass; per-image targets."""
    size = (224, 224)
    gen.ensure_case(BUILD, "resnet18", size)
    d = gen.case_dir(BUILD, "resnet18", size)
    model, inp = os.path.join(d, "model.onnx"), os.path.join(d, "in.h5")
    a, b = os.path.join(tmp, "sc.h5"), os.path.join(tmp, "bw.h5")
    bad = 0
    for method in ("gradcam", "gradcam++", "layercam"):
        p1, p2 = run_cam(model, inp, a, method), run_cam(model, inp, b, method,
                                                         extra=["--no-shortcut"])
        ok = p1.returncode == 0 and p2.returncode == 0
        if ok:
            with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
                diff = float(np.abs(f["cam"][()] - g["cam"][()]).max())
                ok = diff <= 1e-5 and f.attrs["shortcut"] == 1 and g.attrs["shortcut"] == 0
        print("%s resnet18 shortcut == backward (%s): %s" % (
            "PASS" if ok else "FAIL", method,
            "max|diff| %.2g" % diff if p1.returncode == 0 and p2.returncode == 0
            else (p1.stderr + p2.stderr).strip()[:300]))
        bad += not ok
    with h5py.File(inp, "r") as f:
        x = torch.from_numpy(f["input"][()])
    net = gen.build_model("resnet18", gen.model_seed("resnet18"))
    tg = [0, 1, 0, 1]
    A, G, t = torch_grads(net, "resnet18", False, x, tg)
    p = run_cam(model, inp, a, "gradcam", extra=["--target", ",".join(map(str, tg))])
    if p.returncode:
        print("FAIL resnet18 per-image --target: exit %d %s" % (p.returncode, p.stderr[:300]))
        return bad + 1
    layer = gen.ensure_case(BUILD, "resnet18", size)["dump"]
    return bad + compare("resnet18 --target 0,1,0,1", a, A, G, t, "gradcam", size, layer)


def check_cli_errors(tmp):
    d = gen.case_dir(BUILD, "resnet18", (224, 224))
    model, inp, out = os.path.join(d, "model.onnx"), os.path.join(d, "in.h5"), \
        os.path.join(tmp, "e.h5")
    cases = [("unknown method", ["--method", "foo"], ["gradcam++", "eigencam"]),
             ("target out of range", ["--target", "5"], ["2 classes"]),
             ("unknown layer", ["--layer", "nope"], ["nope", "model info"]),
             ("bad --target list", ["--target", "0,1"], ["one per image"])]
    bad = 0
    for label, extra, words in cases:
        p = subprocess.run([FX, "model", "cam", model, "--input", inp, "--output", out] + extra,
                           capture_output=True, text=True, timeout=120)
        ok = p.returncode == 2 and all(w in p.stderr for w in words)
        print("%s cli %s%s" % ("PASS" if ok else "FAIL", label,
                               "" if ok else ": exit %d, %s" % (p.returncode, p.stderr[:300])))
        bad += not ok
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(gen.MODELS))
    a = ap.parse_args()
    if not os.access(FX, os.X_OK):
        print("FAIL test_cam: %s not built (make)" % FX)
        return 1
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.time()
    names = a.models.split(",")
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            bad += check_case(name, (224, 224), METHODS, False, tmp)
        for name in [n for n in ("resnet18", "mobilenet_v3_small") if n in names]:
            bad += check_case(name, (192, 256), METHODS, False, tmp)
        for name in names:
            bad += check_case(name, (224, 224), ["gradcam", "hirescam"], True, tmp)
        if "resnet18" in names:
            bad += check_resnet_extras(tmp)
            bad += check_cli_errors(tmp)
    print("total %.1f s, %d failed" % (time.time() - t0, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
