#!/usr/bin/env python3
"""bench/serve's peer: the design `fxscreen serve` grew from, a Flask + PyTorch
server (Debian's python3-flask and python3-torch) doing the same work per
request on the same weights:

  decode (Pillow, 16-bit kept) -> percentile window (NumPy 'linear') -> Pillow
  BOX area resize of the float plane, pad, normalise (the model's YAML) ->
  the ONNX model's weights in a torch.nn network (Conv + bias, ReLU, GAP,
  Linear: the exported graph, BatchNorm already folded) -> autograd Grad-CAM
  on the CAM layer for the fracture class (weights = mean gradient, ReLU,
  min-max, bilinear upsample, align_corners=False) -> peak and box in original
  pixels -> the windowed 8-bit plane and the map kept in memory for the
  overlay, a JSON answer.

  serve_peer.py --model M.onnx --config M.yaml --port P [--threads T]

POST /api/predict takes the raw image body (image/png) or a multipart field
`image`; GET /api/health answers once the model is loaded.  Flask's server
runs one thread per request (threaded=True), as such apps are deployed by
default; PyTorch's intra-op pool has --threads threads (default: all cores)."""
import argparse
import io
import os
import threading
import uuid

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F
import yaml
from flask import Flask, jsonify, request
from PIL import Image


class Prep:
    """The preprocessing keys of the model's YAML (the subset the demo model uses)."""

    def __init__(self, cfg):
        w = cfg.get("window", {})
        self.p = (float(w["low"]), float(w["high"]))
        inp = cfg["input"]
        self.h, self.w = int(inp["height"]), int(inp["width"])
        self.mean = np.float32(cfg["normalize"]["mean"][0])
        self.std = np.float32(cfg["normalize"]["std"][0])

    def __call__(self, a):
        lo, hi = np.percentile(a, self.p)
        v = np.clip((a.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0, 1) \
            if hi > lo else np.zeros(a.shape, np.float32)
        H, W = a.shape
        if self.w * H <= self.h * W:
            nw, nh = self.w, max(1, int(H * self.w / W + 0.5))
        else:
            nh, nw = self.h, max(1, int(W * self.h / H + 0.5))
        ox, oy = (self.w - nw) // 2, (self.h - nh) // 2
        small = np.asarray(Image.fromarray(v, mode="F").resize((nw, nh), Image.BOX))
        x = np.zeros((self.h, self.w), np.float32)
        x[oy:oy + nh, ox:ox + nw] = small
        grey = (v * 255 + 0.5).astype(np.uint8)
        return (x - self.mean) / self.std, (W, H, nw / W, nh / H, ox, oy), grey


class Net(torch.nn.Module):
    """The exported graph (Conv/Relu chain, GlobalAveragePool, Flatten, Gemm)."""

    def __init__(self, path, layer):
        super().__init__()
        m = onnx.load(path)
        init = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
        self.body, self.layer_index = torch.nn.ModuleList(), None
        for n in m.graph.node:
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            if n.op_type == "Conv":
                wt = init[n.input[1]]
                c = torch.nn.Conv2d(wt.shape[1], wt.shape[0], wt.shape[2:], stride=a["strides"],
                                    padding=a["pads"][:2], dilation=a["dilations"], bias=len(n.input) > 2)
                c.weight.data, c.bias.data = wt, init[n.input[2]]
                self.body.append(c)
            elif n.op_type == "Relu":
                self.body.append(torch.nn.ReLU())
            elif n.op_type == "Gemm":
                wt = init[n.input[1]]
                self.fc = torch.nn.Linear(wt.shape[1], wt.shape[0])
                self.fc.weight.data = wt if a.get("transB", 0) else wt.t()
                self.fc.bias.data = init[n.input[2]]
            if layer in n.output:
                self.layer_index = len(self.body) - 1
        assert self.layer_index is not None, "CAM layer not found"

    def forward(self, x):
        for i, f in enumerate(self.body):
            x = f(x)
            if i == self.layer_index:
                A = x
        return self.fc(x.mean((2, 3))), A


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    cfg = yaml.safe_load(open(a.config))
    prep = Prep(cfg)
    positive = cfg.get("model", {}).get("classes", ["normal", "fracture"]).index(
        cfg.get("model", {}).get("positive", "fracture"))
    thr = float(cfg.get("model", {}).get("threshold", 0.5))
    frac = float(cfg.get("cam", {}).get("box_fraction", 0.5))
    torch.set_num_threads(a.threads)
    net = Net(a.model, cfg["cam"]["layer"]).eval()
    store, lock = {}, threading.Lock()
    app = Flask(__name__)

    @app.get("/api/health")
    def health():
        return jsonify(status="ok")

    @app.post("/api/predict")
    def predict():
        data = request.files["image"].read() if "image" in request.files else request.get_data()
        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.array(im if im.mode in ("L", "I;16", "I;16B", "I", "F") else im.convert("L"))
        except Exception as e:
            return jsonify(error="cannot decode", detail=str(e)), 422
        x, (W, H, sx, sy, ox, oy), grey = prep(arr)
        t = torch.from_numpy(x)[None, None].requires_grad_(False)
        logits, A = net(t)
        A.retain_grad()
        logits[0, positive].backward()
        with torch.no_grad():
            w = A.grad.mean((2, 3), keepdim=True)
            cam = F.relu((w * A).sum(1, keepdim=True))
            cam = cam - cam.amin((2, 3), keepdim=True)
            cam = cam / (cam.amax((2, 3), keepdim=True) + 1e-7)
            cam = F.interpolate(cam, size=(prep.h, prep.w), mode="bilinear", align_corners=False)[0, 0].numpy()
            p = torch.softmax(logits.double(), 1)[0].numpy()
        at = int(np.argmax(cam))
        py, px = divmod(at, prep.w)
        ys, xs = np.nonzero(cam >= frac * cam.flat[at])
        peak = [(px + 0.5 - ox) / sx - 0.5, (py + 0.5 - oy) / sy - 0.5]
        box = [max(0.0, (xs.min() - ox) / sx), max(0.0, (ys.min() - oy) / sy),
               min(W, (xs.max() + 1 - ox) / sx), min(H, (ys.max() + 1 - oy) / sy)]
        rid = uuid.uuid4().hex
        with lock:
            store[rid] = (grey, (cam * 255 + 0.5).astype(np.uint8))
            while len(store) > 256:
                store.pop(next(iter(store)))
        prob = float(p[positive])
        pred = prob >= thr
        return jsonify(id=rid, prediction="fracture" if pred else "normal",
                       confidence=prob if pred else 1 - prob, probability=prob, threshold=thr,
                       peak=peak, bbox=box, visualization_url="/api/results/%s/overlay.png" % rid)

    app.run(host="127.0.0.1", port=a.port, threaded=True)


if __name__ == "__main__":
    main()
