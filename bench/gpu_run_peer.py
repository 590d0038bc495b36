#!/usr/bin/env python3
"""bench/gpu.sh's end-to-end peer: the `fxscreen run` job on a GPU as a PyTorch
user writes it, on the same weights (bench/gpu_torch.py export) and images.

  gpu_run_peer.py --work DIR --model resnet50 --size 224x224 --workers 16 --batch 64
                  --out OUT.h5 IMAGES_DIR

A torch.utils.data.DataLoader with --workers processes decodes each 16-bit PNG
with Pillow and preprocesses it as the run's config says (percentile window
0.5 / 99.5 with numpy's 'linear' percentiles, aspect-preserving area resize by
torch's F.interpolate(mode="area"), zero pad, (v - 0.5) / 0.25, three
channels), pinned batches; the main process uploads each batch, runs the
forward, Grad-CAM for class 1 (fxscreen's positive class) by
torch.autograd.grad at the layer fxscreen suggests, ReLU, min-max, bilinear
upsampling, uint8 heat and peak on the GPU, and appends probability, heat
map (one image per chunk, shuffle + deflate 4, as fxscreen) and path to an
HDF5 file with h5py, flushed per batch.  Prints one JSON line: images,
seconds (the DataLoader's start to the last flush), images/s.
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_torch  # noqa: E402


class Radiographs(torch.utils.data.Dataset):
    def __init__(self, paths, h, w):
        self.paths, self.h, self.w = paths, h, w

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        v = np.asarray(Image.open(self.paths[i]), dtype=np.float32)
        lo, hi = np.percentile(v, [0.5, 99.5])
        v = np.clip((v - lo) / (hi - lo) if hi > lo else v * 0, 0, 1)
        s = min(self.h / v.shape[0], self.w / v.shape[1])
        nh, nw = max(1, round(v.shape[0] * s)), max(1, round(v.shape[1] * s))
        t = F.interpolate(torch.from_numpy(v)[None, None], size=(nh, nw), mode="area")[0, 0]
        out = torch.zeros(self.h, self.w)
        y0, x0 = (self.h - nh) // 2, (self.w - nw) // 2
        out[y0:y0 + nh, x0:x0 + nw] = t
        out = (out - 0.5) / 0.25
        return out[None].expand(3, -1, -1).contiguous(), i


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--size", default="224x224")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("images")
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.split("x"))
    paths = sorted(os.path.join(a.images, f) for f in os.listdir(a.images) if f.endswith(".png"))
    dev = torch.device(a.device)
    model = gpu_torch.build(a.model)
    model.load_state_dict(torch.load(os.path.join(a.work, a.model + ".pt")))
    model = model.to(dev).to(memory_format=torch.channels_last)
    body, head = gpu_torch.split(model, a.model)
    t0 = time.perf_counter()
    dl = torch.utils.data.DataLoader(Radiographs(paths, h, w), batch_size=a.batch,
                                     num_workers=a.workers, pin_memory=dev.type == "cuda",
                                     prefetch_factor=4 if a.workers else None)
    n = 0
    with h5py.File(a.out, "w") as f:
        prob = f.create_dataset("probability", (0,), maxshape=(None,), dtype="f4")
        heat = f.create_dataset("heatmap", (0, h, w), maxshape=(None, h, w), dtype="u1",
                                chunks=(1, h, w), shuffle=True, compression="gzip",
                                compression_opts=4)
        path = f.create_dataset("path", (0,), maxshape=(None,), dtype=h5py.string_dtype())
        for x, idx in dl:
            x = x.to(dev, non_blocking=True).to(memory_format=torch.channels_last)
            A = body(x)
            logits = head(A)
            dA, = torch.autograd.grad(logits[:, 1].sum(), A)
            cam = torch.relu((dA.mean((2, 3), keepdim=True) * A).sum(1, keepdim=True))
            cam = cam - cam.amin((2, 3), keepdim=True)
            cam = cam / (cam.amax((2, 3), keepdim=True) + 1e-7)
            cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)
            q = (cam[:, 0] * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
            p = torch.softmax(logits.detach().float(), 1)[:, 1].cpu().numpy()
            k = len(idx)
            for d in (prob, heat, path):
                d.resize(n + k, axis=0)
            prob[n:n + k], heat[n:n + k] = p, q
            path[n:n + k] = [paths[i] for i in idx.tolist()]
            n += k
            f.flush()
    s = time.perf_counter() - t0
    print(json.dumps({"engine": "torch-dataloader", "images": n, "seconds": round(s, 3),
                      "ips": round(n / s, 2), "workers": a.workers, "batch": a.batch}))


if __name__ == "__main__":
    main()
