#!/usr/bin/python3
"""Conformance data for `fxscreen model run`: torchvision networks exported to
ONNX by PyTorch, with PyTorch's own outputs as the reference.

For each model (torchvision builder, weights=None, num_classes=2, fixed seed)
every BatchNorm gets random running_mean/running_var/weight/bias, so that BN
folding is exercised with non-trivial statistics; then model.eval() and
torch.onnx.export (opset 13, dynamic batch axis, TrainingMode.PRESERVE so the
exporter keeps the BatchNormalization nodes instead of fusing them itself:
folding is then our job and is really tested).  One export per input size.

Per case (model @ HxW) the cache holds:
  model.onnx   the exported network
  in.h5        /input: float32 (4, 3, H, W), fixed seed
  ref.h5       torch's outputs, datasets named after the ONNX output tensors,
               plus one intermediate tensor (attribute `dump`): the input of
               the last GlobalAveragePool in the ONNX graph, i.e. the late 4-D
               feature map Grad-CAM would use; torch's value comes from a
               forward hook on the corresponding module.
               Dataset names have '/' replaced by '_' (as fxscreen writes them).
  done         written last; a case without it is regenerated.

The cache lives in $FX_BUILD/conformance/<sha256 of this script, 12 hex>/,
so editing this script regenerates everything; delete the folder to force it.
Regenerate by hand:
  FX_BUILD=build /usr/bin/python3 tests/py/gen_conformance.py [--models a,b] [--sizes 224x224]
"""
import argparse
import hashlib
import inspect
import json
import os
import sys
import time

MODELS = ["resnet18", "densenet121", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"]
SIZES = [(224, 224), (192, 256)]
BATCH = 4
OPSET = 13
SEED = 20251125


def script_hash():
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def cache_root(build):
    return os.path.join(build, "conformance", script_hash())


def case_dir(build, model, size):
    return os.path.join(cache_root(build), "%s@%dx%d" % (model, size[0], size[1]))


def sanitise(name):
    return name.replace("/", "_")


def randomise_batchnorm(model, gen):
    """Random statistics and affine parameters for every BatchNorm."""
    import torch
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 1.0 + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)


def build_model(name, seed):
    import torch
    import torchvision
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, num_classes=2)
    gen = torch.Generator().manual_seed(seed + 1)
    randomise_batchnorm(model, gen)
    model.eval()
    return model


def model_seed(name):
    return SEED + 1000 * MODELS.index(name) if name in MODELS else SEED


def last_gap_input(onnx_path):
    """Name of the input of the last GlobalAveragePool node (the late 4-D
    feature map before global pooling), or None."""
    import onnx
    m = onnx.load(onnx_path, load_external_data=False)
    name = None
    for node in m.graph.node:
        if node.op_type == "GlobalAveragePool":
            name = node.input[0]
    return name, [o.name for o in m.graph.output]


def hook_feature_map(model, name, store):
    """Registers a hook that captures the tensor fed to the final global
    pooling: the input of model.avgpool where the network has that module
    (resnet, mobilenet_v3, efficientnet), else the output of model.features,
    followed by the functional ReLU densenet applies before pooling."""
    import torch.nn.functional as F
    if hasattr(model, "avgpool"):
        return model.avgpool.register_forward_pre_hook(
            lambda mod, inp: store.__setitem__("x", inp[0].detach().clone()))
    post = F.relu if name.startswith("densenet") else (lambda t: t)
    return model.features.register_forward_hook(
        lambda mod, inp, out: store.__setitem__("x", post(out).detach().clone()))


def export_case(build, name, size, log=print):
    import h5py
    import numpy as np
    import torch
    d = case_dir(build, name, size)
    os.makedirs(d, exist_ok=True)
    t0 = time.time()
    model = build_model(name, model_seed(name))
    h, w = size
    gen = torch.Generator().manual_seed(model_seed(name) + 7 * h + w)
    x = torch.randn(BATCH, 3, h, w, generator=gen)
    onnx_path = os.path.join(d, "model.onnx")
    with torch.no_grad():
        # The TorchScript exporter on every torch (newer ones default to dynamo).
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(model, x[:1], onnx_path, opset_version=OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=True, **legacy)
        dump, outputs = last_gap_input(onnx_path)
        if dump is None:
            raise RuntimeError("%s: no GlobalAveragePool in the exported graph" % name)
        store = {}
        hk = hook_feature_map(model, name, store)
        y = model(x)
        hk.remove()
    feat = store["x"].numpy()
    if feat.ndim != 4 or feat.shape[2] * feat.shape[3] <= 1:
        raise RuntimeError("%s: hooked feature map has shape %s" % (name, feat.shape))
    regen = "FX_BUILD=%s /usr/bin/python3 tests/py/gen_conformance.py --models %s --sizes %dx%d" % (
        build, name, h, w)
    with h5py.File(os.path.join(d, "in.h5"), "w") as f:
        f.create_dataset("input", data=x.numpy().astype(np.float32))
        f.attrs["generator"] = "tests/py/gen_conformance.py"
        f.attrs["regenerate"] = regen
    with h5py.File(os.path.join(d, "ref.h5"), "w") as f:
        assert len(outputs) == 1, outputs
        f.create_dataset(sanitise(outputs[0]), data=y.numpy().astype(np.float32))
        f.create_dataset(sanitise(dump), data=feat.astype(np.float32))
        f.attrs["generator"] = "tests/py/gen_conformance.py"
        f.attrs["regenerate"] = regen
        f.attrs["torch"] = str(torch.__version__)
        f.attrs["dump"] = dump
    meta = {"model": name, "size": [h, w], "outputs": outputs, "dump": dump,
            "dump_shape": list(feat.shape), "torch": torch.__version__,
            "seconds": round(time.time() - t0, 2)}
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(d, "done"), "w") as f:
        f.write("ok\n")
    log("exported %s@%dx%d in %.1f s (dump %s %s)" % (name, h, w, time.time() - t0, dump,
                                                      "x".join(map(str, feat.shape))))
    return meta


def ensure_case(build, name, size, log=print):
    """Returns the case's meta dict, exporting it first if it is not cached."""
    d = case_dir(build, name, size)
    if os.path.exists(os.path.join(d, "done")):
        with open(os.path.join(d, "meta.json")) as f:
            return json.load(f)
    return export_case(build, name, size, log)


def parse_sizes(text):
    out = []
    for s in text.split(","):
        h, w = s.lower().split("x")
        out.append((int(h), int(w)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sizes", default=",".join("%dx%d" % s for s in SIZES))
    ap.add_argument("--force", action="store_true", help="re-export even if cached")
    a = ap.parse_args()
    build = os.environ.get("FX_BUILD", "build")
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    for m in a.models.split(","):
        for s in parse_sizes(a.sizes):
            if a.force:
                done = os.path.join(case_dir(build, m, s), "done")
                if os.path.exists(done):
                    os.remove(done)
            ensure_case(build, m, s)
    print("cache: %s" % cache_root(build))
    return 0


if __name__ == "__main__":
    sys.exit(main())
