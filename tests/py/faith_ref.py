#!/usr/bin/env python3
"""pytorch-grad-cam's ROAD metrics on the inputs and maps of a
faithfulness.h5 (written by `fxscreen eval --faithfulness --faith-inputs`),
for test_faith.py.  Runs in build/venv-gradcam (pytorch-grad-cam from PyPI
over Debian's torch).  The model is the ONNX file run by `fxscreen model run`
behind a torch.nn.Module (only its outputs are used: the metric's masks,
imputation and differences are pytorch-grad-cam's own).

  faith_ref.py FAITH_H5 MODEL FXSCREEN WORKDIR NOISE OUT_NPZ

OUT_NPZ: before (N,), and morf, lerf, random_morf, random_lerf (N, P): the
change of the softmax probability of class 1 (ClassifierOutputSoftmaxTarget),
as PerturbationConfidenceMetric(RemoveMostRelevantFirst / RemoveLeastRelevantFirst
(p, NoisyLinearImputer(noise))) returns it."""
import os
import subprocess
import sys

import h5py
import numpy as np
import torch
from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                              RemoveLeastRelevantFirst,
                                                              RemoveMostRelevantFirst)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget


class OnnxByFxscreen(torch.nn.Module):
    def __init__(self, model, fx, work):
        super().__init__()
        self.model, self.fx, self.work, self.calls = model, fx, work, 0

    def forward(self, x):
        self.calls += 1
        inp = os.path.join(self.work, "in%d.h5" % self.calls)
        out = os.path.join(self.work, "out%d.h5" % self.calls)
        with h5py.File(inp, "w") as f:
            f["input"] = x.detach().cpu().numpy().astype(np.float32)
        subprocess.run([self.fx, "model", "run", self.model, "--input", inp, "--output", out],
                       check=True, capture_output=True)
        with h5py.File(out, "r") as f:
            names = list(f.keys())
            y = f[names[0]][()]
        return torch.from_numpy(y)


def main():
    h5, model, fx, work, noise, out = sys.argv[1:7]
    torch.manual_seed(0)
    with h5py.File(h5, "r") as f:
        x = torch.from_numpy(f["input"][()])
        maps, rmaps = f["map"][()], f["random_map"][()]
        pct = [float(p) for p in f.attrs["percentiles"]]
    net = OnnxByFxscreen(model, fx, work)
    targets = [ClassifierOutputSoftmaxTarget(1)] * x.shape[0]
    with torch.no_grad():
        before = torch.softmax(net(x), dim=-1)[:, 1].numpy()
    res = {"before": before}
    for name, cams in (("", maps), ("random_", rmaps)):
        for kind, cls in (("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)):
            cols = []
            for p in pct:
                metric = PerturbationConfidenceMetric(cls(p, NoisyLinearImputer(noise=float(noise))))
                cols.append(np.asarray(metric(x, cams, targets, net)).reshape(-1))
            res[name + kind] = np.stack(cols, axis=1)
    np.savez(out, **res)


if __name__ == "__main__":
    main()
