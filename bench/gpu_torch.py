#!/usr/bin/env python3
"""PyTorch's side of bench/gpu.sh, on the same weights as fxscreen runs.

  gpu_torch.py export DIR            torchvision densenet121, resnet50 and
                                     efficientnet_b0 (weights=None, seed 0,
                                     eval mode) as DIR/<name>.onnx (opset 17,
                                     dynamic batch) + DIR/<name>.pt (state dict)
  gpu_torch.py time DIR NAME HxW --batches 1,16,128 --precisions fp32,tf32,fp16,bf16
                                     [--compile-at 128:fp16]
                                     one JSON line per (engine, batch, precision):
                                     torch-eager (channels_last, autocast for
                                     fp16/bf16), torch-eager-graphs (the same
                                     captured in a CUDA graph) and torch-compile
                                     (default mode) where --compile-at says
  gpu_torch.py cam DIR NAME HxW --batch 64 --precision fp32
                                     the model + Grad-CAM stage as PyTorch users
                                     write it, one JSON line per engine: the
                                     input uploaded from pinned memory, the
                                     forward, the predicted class, dA at the layer
                                     fxscreen suggests by torch.autograd.grad,
                                     Grad-CAM, ReLU, min-max, bilinear upsampling
                                     to the input, uint8 heat and peak, heat and
                                     peaks copied back: torch-cam-eager,
                                     torch-cam-compile (body and head compiled,
                                     the backward through AOTAutograd) and
                                     pytorch-grad-cam (its GradCAM, which does
                                     its post-processing on the CPU; skipped
                                     with the reason when not installed)
  gpu_torch.py ceilings              measured ceilings: an 8192^3 matrix product
                                     per precision (TFLOP/s) and a 4 GiB
                                     device-to-device copy (TB/s)

Timing: CUDA events around each iteration after warm-up; the median of 30
(batch >= 16) or 100 (batch < 16) iterations.  Inputs are random (never
zeros).  TF32 is off for fp32 and on for tf32.  Needs torch and torchvision.
"""
import inspect
import json
import statistics
import sys

import torch
import torchvision

MODELS = {"densenet121": torchvision.models.densenet121,
          "resnet50": torchvision.models.resnet50,
          "efficientnet_b0": torchvision.models.efficientnet_b0}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def build(name):
    torch.manual_seed(0)
    return MODELS[name](weights=None).eval()


def export(out_dir):
    import os
    os.makedirs(out_dir, exist_ok=True)
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    for name in MODELS:
        m = build(name)
        torch.save(m.state_dict(), os.path.join(out_dir, name + ".pt"))
        x = torch.randn(1, 3, 224, 224)
        torch.onnx.export(m, x, os.path.join(out_dir, name + ".onnx"), opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True, **legacy)
        print("exported", name, file=sys.stderr)


def set_precision(prec):
    tf32 = prec == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def time_fn(fn, iters, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def forward_fn(model, x, prec):
    if prec in DTYPES:
        def f():
            with torch.no_grad(), torch.autocast("cuda", dtype=DTYPES[prec]):
                return model(x)
    else:
        def f():
            with torch.no_grad():
                return model(x)
    return f


def graphed(f):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            f()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        f()
    return g.replay


def time_model(out_dir, name, size, batches, precs, compile_at):
    import os
    h, w = (int(v) for v in size.split("x"))
    model = build(name)
    model.load_state_dict(torch.load(os.path.join(out_dir, name + ".pt")))
    model = model.cuda().to(memory_format=torch.channels_last)
    for b in batches:
        x = torch.randn(b, 3, h, w, device="cuda").to(memory_format=torch.channels_last)
        iters = 30 if b >= 16 else 100
        for prec in precs:
            set_precision(prec)
            f = forward_fn(model, x, prec)
            rows = [("torch-eager", f), ("torch-eager-graphs", graphed(f))]
            if "%d:%s" % (b, prec) in compile_at:
                cm = torch.compile(model)
                rows.append(("torch-compile", forward_fn(cm, x, prec)))
            for engine, fn in rows:
                ms = time_fn(fn, iters, warmup=5 if engine != "torch-compile" else 3)
                print(json.dumps({"engine": engine, "model": name, "size": size, "batch": b,
                                  "precision": prec, "median_ms": round(ms, 4),
                                  "ips": round(b / (ms / 1e3), 2)}), flush=True)


def split(model, name):
    """(body, head): body(x) is the layer fxscreen suggests for Grad-CAM (the
    last 4-D activation before global pooling), head(A) the logits."""
    nn = torch.nn
    if name == "resnet50":
        m = model
        body = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3,
                             m.layer4)
        head = nn.Sequential(m.avgpool, nn.Flatten(1), m.fc)
    elif name == "densenet121":
        body = nn.Sequential(model.features, nn.ReLU())
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)
    else:
        body = model.features
        head = nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier)
    return body, head


def cam_step(body, head, x_host, prec, hw):
    import torch.nn.functional as F
    H, W = hw

    def step():
        x = x_host.cuda(non_blocking=True).to(memory_format=torch.channels_last)
        ctx = torch.autocast("cuda", dtype=DTYPES[prec]) if prec in DTYPES else \
            torch.autocast("cuda", enabled=False)
        with ctx:
            A = body(x)
            logits = head(A)
        t = logits.argmax(1)
        dA, = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), A)
        w = dA.float().mean((2, 3), keepdim=True)
        cam = torch.relu((w * A.float()).sum(1, keepdim=True))
        cam = cam - cam.amin((2, 3), keepdim=True)
        cam = cam / (cam.amax((2, 3), keepdim=True) + 1e-7)
        cam = F.interpolate(cam, size=(H, W), mode="bilinear", align_corners=False)
        heat = (cam * 255 + 0.5).clamp(0, 255).to(torch.uint8)
        peak = cam.flatten(1).argmax(1)
        return heat.cpu(), peak.cpu()
    return step


def time_cam(out_dir, name, size, batch, prec):
    import os
    import time
    h, w = (int(v) for v in size.split("x"))
    model = build(name)
    model.load_state_dict(torch.load(os.path.join(out_dir, name + ".pt")))
    model = model.cuda().to(memory_format=torch.channels_last)
    set_precision(prec)
    x_host = torch.randn(batch, 3, h, w).pin_memory()
    body, head = split(model, name)

    def emit(engine, ms, extra=None):
        row = {"engine": engine, "model": name, "size": size, "batch": batch, "precision": prec,
               "median_ms": round(ms, 3), "ips": round(batch / (ms / 1e3), 2) if ms else 0}
        row.update(extra or {})
        print(json.dumps(row), flush=True)

    emit("torch-cam-eager", time_fn(cam_step(body, head, x_host, prec, (h, w)), 20, warmup=3))
    try:
        cb, ch = torch.compile(body), torch.compile(head)
        emit("torch-cam-compile", time_fn(cam_step(cb, ch, x_host, prec, (h, w)), 20, warmup=3))
    except Exception as e:  # a compiler failure is a result too
        emit("torch-cam-compile", 0, {"error": str(e)[:200]})
    try:
        from pytorch_grad_cam import GradCAM
        layer = {"resnet50": model.layer4, "densenet121": model.features}.get(name, model.features)
        cam = GradCAM(model=model, target_layers=[layer])

        def pgc():
            x = x_host.cuda(non_blocking=True)
            with (torch.autocast("cuda", dtype=DTYPES[prec]) if prec in DTYPES else
                  torch.autocast("cuda", enabled=False)):
                g = cam(input_tensor=x)  # numpy (N, H, W) in [0, 1], made on the CPU
            return (g * 255 + 0.5).clip(0, 255).astype("uint8")
        for _ in range(2):
            pgc()
        ts = []
        for _ in range(10):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            pgc()
            ts.append((time.perf_counter() - t0) * 1e3)
        emit("pytorch-grad-cam", statistics.median(ts))
    except Exception as e:
        emit("pytorch-grad-cam", 0, {"error": ("%s: %s" % (type(e).__name__, e))[:200]})


def ceilings():
    n = 8192
    out = {}
    for prec in ("fp32", "tf32", "fp16", "bf16"):
        set_precision(prec)
        dt = DTYPES.get(prec, torch.float32)
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        ms = time_fn(lambda: a @ b, 10, warmup=3)
        out["matmul_tflops_" + prec] = round(2 * n ** 3 / (ms / 1e3) / 1e12, 1)
    src = torch.empty(1 << 30, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    ms = time_fn(lambda: dst.copy_(src), 10, warmup=3)
    out["copy_tbps"] = round(2 * src.numel() * 4 / (ms / 1e3) / 1e12, 2)
    out["gpu"] = torch.cuda.get_device_name()
    out["torch"] = torch.__version__
    print(json.dumps(out))


def main():
    a = sys.argv[1:]
    if a[:1] == ["export"] and len(a) == 2:
        return export(a[1])
    if a[:1] == ["ceilings"]:
        return ceilings()
    if a[:1] == ["cam"] and len(a) >= 4:
        opts = dict(zip(a[4::2], a[5::2]))
        return time_cam(a[1], a[2], a[3], int(opts.get("--batch", "64")),
                        opts.get("--precision", "fp32"))
    if a[:1] == ["time"] and len(a) >= 4:
        opts = dict(zip(a[4::2], a[5::2]))
        batches = [int(v) for v in opts.get("--batches", "1,16,128").split(",")]
        precs = opts.get("--precisions", "fp32,tf32,fp16,bf16").split(",")
        compile_at = set(opts.get("--compile-at", "128:fp16").split(","))
        return time_model(a[1], a[2], a[3], batches, precs, compile_at)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main() or 0)
