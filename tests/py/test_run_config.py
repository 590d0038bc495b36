#!/usr/bin/env python3
"""`fxscreen run` with a model sidecar's run sections (model/cam/overlay),
command-line overrides, config errors, --overlays, and --resume refusing a
changed model or config.  The probabilities are checked against torch's
softmax of the same logits (an independent computation), not against an
earlier output of ours."""
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_run  # noqa: E402
from test_run import FX, check, make_model, read_csv, run  # noqa: E402

PREP = "input: {height: 64, width: 64, channels: 1}\nnormalize: {mean: [0.5], std: [0.25]}\n"


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    w, h, depth, ctype = struct.unpack(">IIBB", head[16:26])
    return w, h, depth, ctype


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def main():
    if not os.path.exists(FX):
        print("SKIP test_run_config: %s not built" % FX)
        sys.exit(77)
    try:
        import torch
    except ImportError:
        print("SKIP test_run_config: torch not installed")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="fx_runcfg_")
    model = os.path.join(tmp, "m.onnx")
    net = make_model(torch, model)
    src = os.path.join(tmp, "in")
    rc, _, err = run(["synth", "--out", src, "--n", "12", "--size", "160", "--bits", "16",
                      "--seed", "21", "--threads", "2"])
    check("synth 12 images", rc == 0, err)
    open(os.path.join(src, "zz_empty.png"), "wb").close()
    n = 13

    # Torch's logits on fxscreen's own preprocessing (prep reads the same file
    # and must ignore the run sections).
    cfg = os.path.join(tmp, "side.yaml")
    write(cfg, PREP + "model:\n  classes: [normal, fracture]\n  positive: normal\n"
          "  threshold: 0.3\ncam: {method: eigencam, box_fraction: 0.8}\n"
          "overlay: {colormap: viridis, opacity: 0.7}\n")
    prep = os.path.join(tmp, "prep")
    rc, _, err = run(["prep", "--config", cfg, "--out", prep, "--quiet", src])
    check("prep accepts a sidecar with model/cam/overlay sections", rc == 0, err)
    with h5py.File(os.path.join(prep, "prep.h5"), "r") as ph:
        x = ph["images"][:].astype(np.float32)
        pst = ph["status"][:]
    ok = [i for i in range(n) if pst[i] == 0]
    with torch.no_grad():
        logits = net(torch.from_numpy(x[ok]))
    p_normal = torch.softmax(logits, 1)[:, 0].numpy()

    out = os.path.join(tmp, "r1")
    rc, _, err = run(["run", "--model", model, "--config", cfg, "--out", out, "--quiet", src])
    check("run with the sidecar sections exits 0", rc == 0, err)
    with h5py.File(os.path.join(out, "results.h5"), "r") as h:
        prob, pred = h["probability"][:], h["prediction"][:]
        a = dict(h.attrs)
        eff = a["config"].decode() if isinstance(a["config"], bytes) else a["config"]
    dec = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    d = np.abs(prob[ok] - p_normal).max()
    check("model.positive: normal -> /probability is softmax class 0 (2e-3)", d < 2e-3, d)
    check("model.threshold 0.3 -> prediction = probability >= 0.3",
          (pred[ok] == (prob[ok] >= 0.3)).all() and (pred[[i for i in range(n) if i not in ok]] == -1).all())
    check("attributes: cam_method eigencam, threshold 0.3, box_fraction 0.8, classes, positive 0",
          dec(a["cam_method"]) == "eigencam" and a["threshold"] == 0.3 and a["box_fraction"] == 0.8
          and dec(a["classes"]) == "normal,fracture" and a["positive_class"] == 0, a)
    check("effective config holds every section",
          all(s in eff for s in ("window:", "model:", "cam:", "overlay:", "eigencam", "viridis")), eff)
    # pandas reads summary.csv as the numbers h5py reads from results.h5.
    try:
        import pandas as pd
        df = pd.read_csv(os.path.join(out, "summary.csv"))
        with h5py.File(os.path.join(out, "results.h5"), "r") as h:
            hp = [dec(v) for v in h["path"][:]]
        check("pandas reads summary.csv: columns, dtypes, same rows and values as results.h5",
              list(df.columns) == ["path", "status", "probability", "prediction", "peak_x", "peak_y",
                                   "x0", "y0", "x1", "y1", "error", "sop_instance_uid",
                                   "study_instance_uid", "series_instance_uid", "accession_number",
                                   "modality", "body_part", "view_position", "pixel_spacing_row",
                                   "pixel_spacing_col", "x0_mm", "y0_mm", "x1_mm", "y1_mm", "frames"]
              and len(df) == n and list(df["path"]) == hp and df["probability"].dtype == np.float64
              and np.allclose(df["probability"].to_numpy()[ok], prob[ok], rtol=0, atol=1e-7)
              and df["probability"].isna().sum() == n - len(ok), df.dtypes.to_dict())
    except ImportError:
        print("SKIP pandas check: python3-pandas not installed (make deps installs it)")
    # The effective config loads back and gives the same run.
    back = os.path.join(tmp, "effective.yaml")
    write(back, eff)
    out2 = os.path.join(tmp, "r2")
    rc, _, err = run(["run", "--model", model, "--config", back, "--out", out2, "--quiet", src])
    with h5py.File(os.path.join(out2, "results.h5"), "r") as h:
        same = np.array_equal(h["probability"][:][ok], prob[ok]) and dec(h.attrs["config"]) == eff
    check("effective config round-trips through --config", rc == 0 and same, err)

    # Command line over the file.
    out3 = os.path.join(tmp, "r3")
    rc, _, err = run(["run", "--model", model, "--config", cfg, "--out", out3, "--quiet",
                      "--threshold", "0.9", "--method", "gradcam", src])
    with h5py.File(os.path.join(out3, "results.h5"), "r") as h:
        a3 = dict(h.attrs)
        pred3, prob3 = h["prediction"][:], h["probability"][:]
    check("--threshold/--method override the sidecar",
          rc == 0 and a3["threshold"] == 0.9 and dec(a3["cam_method"]) == "gradcam"
          and (pred3[ok] == (prob3[ok] >= 0.9)).all(), (rc, err, a3.get("threshold")))

    # Config errors stop at once (exit 2) naming the key.
    bad = [("cam: {methd: gradcam}\n", "cam.methd"),
           ("model: {classes: [a, b, c]}\n", "model.classes"),
           ("model: {classes: [normal, fracture], positive: tumour}\n", "model.positive"),
           ("model: {positive: 5}\n", "model.positive"),
           ("overlay: {opacity: 2}\n", "overlay.opacity"),
           ("overlay: {colormap: jet}\n", "overlay.colormap"),
           ("cam: {box_fraction: 0}\n", "cam.box_fraction"),
           ("cam: {layer: no_such_tensor}\n", "no_such_tensor"),
           ("modle: {threshold: 0.5}\n", "modle")]
    for text, key in bad:
        path = os.path.join(tmp, "bad.yaml")
        write(path, PREP + text)
        rc, _, err = run(["run", "--model", model, "--config", path, "--out",
                          os.path.join(tmp, "bad"), "--quiet", src])
        check("config error '%s' exits 2 naming it" % text.strip(), rc == 2 and key in err, (rc, err))
    check("no output written for config errors", not os.path.exists(os.path.join(tmp, "bad", "results.h5")))

    # Overlays: positives only by default, all on request, PNG of the original's size.
    thr = os.path.join(tmp, "thr.yaml")
    write(thr, PREP + "model: {threshold: 0.5}\n")
    ov = os.path.join(tmp, "ov")
    rc, _, err = run(["run", "--model", model, "--config", thr, "--out", ov, "--overlays", src])
    rows = read_csv(os.path.join(ov, "summary.csv"))
    names = sorted(os.listdir(os.path.join(ov, "overlays"))) if rc == 0 else []
    want = ["%08d_%s.png" % (i, os.path.splitext(os.path.basename(r["path"]))[0])
            for i, r in enumerate(rows) if r["prediction"] == "1"]
    check("--overlays: one PNG per predicted positive, named ROW_NAME.png",
          rc == 0 and names == want, (rc, err, names, want))
    ova = os.path.join(tmp, "ova")
    rc, _, err = run(["run", "--model", model, "--config", thr, "--out", ova, "--quiet",
                      "--overlays", "all", src])
    names = sorted(os.listdir(os.path.join(ova, "overlays"))) if rc == 0 else []
    check("--overlays all: one PNG per ok row, none for error rows",
          rc == 0 and len(names) == len(ok) and not any("zz_empty" in x for x in names), (rc, err, names))
    sizes = {png_size(os.path.join(ova, "overlays", x)) for x in names}
    check("overlay PNGs: 8-bit RGB at the original's 160 x 160", sizes == {(160, 160, 8, 2)}, sizes)
    rc, _, err = run(["run", "--model", model, "--config", thr, "--out", os.path.join(tmp, "ovb"),
                      "--overlays=some", src])
    check("--overlays=some exits 2", rc == 2 and "overlays" in err, (rc, err))

    # SIGKILL during an --overlays all run, then --resume: every decoded row
    # ends with exactly its overlay, and no partial PNG is left behind.
    many = os.path.join(tmp, "many")
    rc, _, err = run(["synth", "--out", many, "--n", "60", "--size", "256", "--bits", "16",
                      "--seed", "8", "--threads", "2"])
    kdir = os.path.join(tmp, "kill_ov")
    p = subprocess.Popen([FX, "run", "--model", model, "--config", thr, "--out", kdir, "--batch",
                          "4", "--threads", "1", "--quiet", "--overlays", "all", many],
                         stderr=subprocess.DEVNULL)
    while p.poll() is None:
        try:
            with open(os.path.join(kdir, "summary.csv")) as f:
                if sum(1 for _ in f) - 1 >= 20:
                    break
        except OSError:
            pass
        time.sleep(0.005)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.wait()
    # A partial PNG as a kill inside the PNG writer leaves it.
    open(os.path.join(kdir, "overlays", "00000059_img_000059.png.tmp.12345"), "wb").write(b"\x89PNG")
    rc, _, err = run(["run", "--resume", kdir, "--quiet"])
    rows = read_csv(os.path.join(kdir, "summary.csv"))
    names = sorted(os.listdir(os.path.join(kdir, "overlays")))
    want = ["%08d_%s.png" % (i, os.path.splitext(os.path.basename(r["path"]))[0])
            for i, r in enumerate(rows)]
    check("kill -9 during --overlays all, then --resume: one overlay per row, no partial files",
          killed and rc == 0 and len(rows) == 60 and names == want,
          (killed, rc, err, len(rows), [x for x in names if x not in want][:3]))

    # --resume refuses a changed model or config, and accepts an unchanged one.
    rc, _, err = run(["run", "--resume", out, "--quiet"])
    check("--resume of a finished run with nothing changed exits 0", rc == 0, err)
    write(cfg, open(cfg).read().replace("threshold: 0.3", "threshold: 0.4"))
    rc, _, err = run(["run", "--resume", out, "--quiet"])
    check("--resume after the config was edited exits 2", rc == 2 and "config changed" in err, (rc, err))
    write(cfg, open(cfg).read().replace("threshold: 0.4", "threshold: 0.3"))
    # Another network under the same file name.
    h_old = hashlib.sha256(open(model, "rb").read()).hexdigest()
    net2 = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    torch.onnx.export(net2, torch.zeros(1, 1, 64, 64), model, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
                      opset_version=13)
    h_new = hashlib.sha256(open(model, "rb").read()).hexdigest()
    rc, _, err = run(["run", "--resume", out, "--quiet"])
    check("--resume after the model file changed exits 2 naming it",
          h_old != h_new and rc == 2 and "changed" in err and "m.onnx" in err, (rc, err))
    if not test_run.failures:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if test_run.failures else 0)


if __name__ == "__main__":
    main()
