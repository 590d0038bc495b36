#!/usr/bin/env python3
"""bench/run's peer: the `fxscreen run` job as a research group would write it in Python.

Pillow decodes each 16-bit PNG; NumPy takes the percentile window (numpy 'linear'
percentiles, as the config says), Pillow's BOX filter does the aspect-preserving area
resize of the float image, then pad and normalise; onnxruntime runs the model with the
CAM layer added as an extra graph output (onnx package); the CAM is the fracture row of
the Gemm head's weights dotted with the activations (GAP + Gemm head: Grad-CAM's exact
shortcut), ReLU, min-max (pytorch-grad-cam's scale_cam_image), bilinear upsample to the
model input (Pillow, half-pixel centres like torch's align_corners=False); peak and box
as fxscreen reports them; h5py writes results.h5 (score, probability, prediction,
uint8 heatmap one image per chunk with shuffle+deflate 4, peak_xy, bbox, path, status)
and csv writes summary.csv, appended and flushed per batch.

Threads: a ThreadPoolExecutor of --threads workers reads+decodes+preprocesses (in input
order, running ahead of the model); the main thread runs inference, CAM and writing;
onnxruntime's intra-op pool has --intra threads (default: all cores, as fxscreen's engine).

  run_peer.py --model M.onnx --config M.yaml --out DIR [--threads T] [--batch B] SOURCES...
  run_peer.py --compare FX_DIR PEER_DIR      (agreement of two results.h5, one line of JSON)

Prints on stderr the same two summary lines as `fxscreen run` (images and seconds; per-image
ms per stage summed over threads), and one line of JSON on stdout.
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import concurrent.futures as cf  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import onnxruntime as ort  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

T_IMPORTED = time.perf_counter()
EXTS = (".png", ".tif", ".tiff")


def list_sources(srcs):
    out = []
    for s in srcs:
        if os.path.isdir(s):
            for root, dirs, files in os.walk(s):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out += [os.path.join(root, f) for f in sorted(files)
                        if f.lower().endswith(EXTS) and not f.startswith(".")]
        else:
            out.append(s)
    return out


class Prep:
    """The preprocessing keys of the model's YAML (the subset the demo model uses)."""

    def __init__(self, cfg):
        w = cfg.get("window", {})
        if w.get("mode") != "percentile" or cfg.get("fit", "pad") != "pad":
            raise SystemExit("run_peer: only window.mode percentile and fit pad are implemented")
        self.p = (float(w["low"]), float(w["high"]))
        self.invert = bool(cfg.get("invert", False))
        inp = cfg["input"]
        self.h, self.w, self.c = int(inp["height"]), int(inp["width"]), int(inp.get("channels", 1))
        self.pad = float(cfg.get("pad_value", 0.0))
        self.mean = np.float32(cfg["normalize"]["mean"][0])
        self.std = np.float32(cfg["normalize"]["std"][0])

    def geometry(self, w, h):
        if self.w * h <= self.h * w:   # the width limits
            nw, nh = self.w, max(1, int(h * self.w / w + 0.5))
        else:
            nh, nw = self.h, max(1, int(w * self.h / h + 0.5))
        return nw, nh, (self.w - nw) // 2, (self.h - nh) // 2

    def __call__(self, a):
        a = np.asarray(a)
        lo, hi = np.percentile(a, self.p)
        v = np.clip((a.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0, 1) \
            if hi > lo else np.zeros(a.shape, np.float32)
        if self.invert:
            v = 1 - v
        H, W = a.shape
        nw, nh, ox, oy = self.geometry(W, H)
        small = np.asarray(Image.fromarray(v, mode="F").resize((nw, nh), Image.BOX))
        x = np.full((self.h, self.w), self.pad, np.float32)
        x[oy:oy + nh, ox:ox + nw] = small   # the demo's square images: no pad, no crop
        x = (x - self.mean) / self.std
        return np.repeat(x[None], self.c, 0), (W, H, nw / W, nh / H, ox, oy)


def load_one(path, prep):
    """Worker: read + decode, then preprocess. Returns (tensor, geometry, error, t_dec, t_prep)."""
    t0 = time.perf_counter()
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "I;16", "I;16B", "I", "F"):
                im = im.convert("L")
            a = np.array(im)
        t1 = time.perf_counter()
        x, g = prep(a)
        return x, g, "", t1 - t0, time.perf_counter() - t1
    except Exception as e:  # a bad file is a row with an error, as in fxscreen
        return None, None, "%s: %s" % (path, e), time.perf_counter() - t0, 0.0


def cam_model(path, layer):
    """The model with the CAM layer as an extra output, and the Gemm head's (W, transB)."""
    m = onnx.load(path)
    if layer not in [o for n in m.graph.node for o in n.output]:
        raise SystemExit("run_peer: no tensor %s in %s" % (layer, path))
    m.graph.output.append(onnx.helper.make_tensor_value_info(layer, onnx.TensorProto.FLOAT, None))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    gemm = [n for n in m.graph.node if n.op_type == "Gemm"][-1]
    tb = {a.name: a.i for a in gemm.attribute}.get("transB", 0)
    W = inits[gemm.input[1]].astype(np.float32)
    return m.SerializeToString(), (W if tb else W.T)   # (classes, channels)


class Writer:
    def __init__(self, out, K, H, W):
        os.makedirs(out, exist_ok=True)
        self.f = h5py.File(os.path.join(out, "results.h5"), "w")
        s = h5py.string_dtype()
        d = self.d = {}
        for name, shape, dt, chunk, z in [("score", (K,), "f4", 1024, 4), ("probability", (), "f4", 1024, 4),
                                          ("prediction", (), "i1", 4096, 4), ("heatmap", (H, W), "u1", 1, 4),
                                          ("peak_xy", (2,), "f4", 1024, 4), ("bbox", (4,), "f4", 1024, 4),
                                          ("path", (), s, 1024, 4), ("status", (), "i1", 4096, 4),
                                          ("error", (), s, 1024, 4)]:
            d[name] = self.f.create_dataset(name, (0,) + shape, dt, maxshape=(None,) + shape,
                                            chunks=(chunk,) + shape, compression="gzip",
                                            compression_opts=z, shuffle=True)
        self.csv_f = open(os.path.join(out, "summary.csv"), "w", newline="")
        self.csv = csv.writer(self.csv_f)
        self.csv.writerow(["path", "status", "probability", "prediction", "peak_x", "peak_y",
                           "x0", "y0", "x1", "y1", "error"])

    def append(self, cols):
        n = len(cols["path"])
        for k, ds in self.d.items():
            ds.resize(ds.shape[0] + n, 0)
            ds[-n:] = cols[k]
        self.f.flush()
        for i in range(n):
            ok = cols["status"][i] == 0
            self.csv.writerow([cols["path"][i], "ok" if ok else "error"] +
                              (["%.9g" % cols["probability"][i], int(cols["prediction"][i])] +
                               ["%.9g" % v for v in (*cols["peak_xy"][i], *cols["bbox"][i])]
                               if ok else [""] * 8) + [cols["error"][i]])
        self.csv_f.flush()

    def close(self):
        self.f.close()
        self.csv_f.close()


def locate(cam, g, frac):
    """Peak pixel centre and box of cam >= frac*peak, in original pixels (as fxscreen)."""
    W0, H0, sx, sy, ox, oy = g
    at = int(np.argmax(cam))
    py, px = divmod(at, cam.shape[1])
    ys, xs = np.nonzero(cam >= np.float32(frac) * cam.flat[at])
    peak = ((px + 0.5 - ox) / sx - 0.5, (py + 0.5 - oy) / sy - 0.5)
    box = (np.clip((xs.min() - ox) / sx, 0, W0), np.clip((ys.min() - oy) / sy, 0, H0),
           np.clip((xs.max() + 1 - ox) / sx, 0, W0), np.clip((ys.max() + 1 - oy) / sy, 0, H0))
    return peak, box


def run(a):
    cfg = yaml.safe_load(open(a.config))
    prep = Prep(cfg)
    classes = cfg.get("model", {}).get("classes", ["normal", "fracture"])
    target = classes.index(cfg.get("model", {}).get("positive", classes[-1]))
    thr = float(cfg.get("model", {}).get("threshold", 0.5))
    layer = cfg.get("cam", {}).get("layer", "/features/block5/relu/Relu_output_0")
    frac = float(cfg.get("cam", {}).get("box_fraction", 0.5))
    paths = list_sources(a.sources)

    t0 = time.perf_counter()
    blob, Wfc = cam_model(a.model, layer)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.intra
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    K = Wfc.shape[0]
    out = Writer(a.out, K, prep.h, prep.w)
    t_load = time.perf_counter() - t0

    st = dict(decode=0.0, preprocess=0.0, inference=0.0, CAM=0.0, write=0.0)
    t1 = time.perf_counter()
    n_ok = 0
    with cf.ThreadPoolExecutor(max_workers=a.threads) as ex:
        results = ex.map(lambda p: load_one(p, prep), paths)
        for b0 in range(0, len(paths), a.batch):
            rows = [next(results) for _ in paths[b0:b0 + a.batch]]
            for r in rows:
                st["decode"] += r[3]
                st["preprocess"] += r[4]
            ok = [i for i, r in enumerate(rows) if r[0] is not None]
            n = len(rows)
            cols = dict(score=np.full((n, K), np.nan, np.float32), probability=np.full(n, np.nan, np.float32),
                        prediction=np.full(n, -1, np.int8), heatmap=np.zeros((n, prep.h, prep.w), np.uint8),
                        peak_xy=np.full((n, 2), np.nan, np.float32), bbox=np.full((n, 4), np.nan, np.float32),
                        path=paths[b0:b0 + n], status=np.array([0 if r[0] is not None else -1 for r in rows], np.int8),
                        error=[r[2] for r in rows])
            if ok:
                tt = time.perf_counter()
                logits, A = sess.run(None, {iname: np.stack([rows[i][0] for i in ok])})
                tc = time.perf_counter()
                st["inference"] += tc - tt
                e = np.exp(logits - logits.max(1, keepdims=True))
                p = e[:, target] / e.sum(1)
                cam = np.maximum(np.einsum("c,nchw->nhw", Wfc[target], A), 0)
                cam -= cam.min((1, 2), keepdims=True)
                cam /= 1e-7 + cam.max((1, 2), keepdims=True)
                for j, i in enumerate(ok):
                    up = np.asarray(Image.fromarray(cam[j], mode="F").resize((prep.w, prep.h), Image.BILINEAR))
                    cols["heatmap"][i] = np.clip(up * 255 + 0.5, 0, 255).astype(np.uint8)
                    cols["peak_xy"][i], cols["bbox"][i] = locate(up, rows[i][1], frac)
                cols["score"][ok] = logits
                cols["probability"][ok] = p
                cols["prediction"][ok] = p >= thr
                n_ok += len(ok)
                st["CAM"] += time.perf_counter() - tc
            tw = time.perf_counter()
            out.append(cols)
            st["write"] += time.perf_counter() - tw
    secs = time.perf_counter() - t1
    tw = time.perf_counter()
    out.close()
    st["write"] += time.perf_counter() - tw
    n = len(paths)
    per = 1000.0 / max(n, 1)
    print("run: %d images (%d ok, %d errors) in %.2f s; %s/results.h5 and %s/summary.csv hold %d rows"
          % (n, n_ok, n - n_ok, secs, a.out, a.out, n), file=sys.stderr)
    print("run: per image (ms, summed over threads): decode %.1f, preprocess %.1f, inference %.1f, "
          "CAM %.1f, write %.1f, overlays 0.0" % tuple(st[k] * per for k in
                                                       ("decode", "preprocess", "inference", "CAM", "write")),
          file=sys.stderr)
    print(json.dumps(dict(images=n, ok=n_ok, seconds=secs, import_s=T_IMPORTED - T_START, load_s=t_load,
                          stages_ms={k: v * per for k, v in st.items()}, threads=a.threads, intra=a.intra,
                          onnxruntime=ort.__version__, numpy=np.__version__,
                          pillow=Image.__version__ if hasattr(Image, "__version__") else "?")))
    return 0


def compare(fx_dir, peer_dir):
    """Row-by-row agreement of two results.h5 (matched on the real path)."""
    def load(d):
        with h5py.File(os.path.join(d, "results.h5"), "r") as f:
            paths = [os.path.realpath(p.decode() if isinstance(p, bytes) else p) for p in f["path"][:]]
            return {p: i for i, p in enumerate(paths)}, {k: f[k][:] for k in
                                                         ("probability", "prediction", "heatmap", "peak_xy")}
    ia, a = load(fx_dir)
    ib, b = load(peer_dir)
    common = [p for p in ia if p in ib]
    if not common or len(common) != len(ia) or len(ia) != len(ib):
        print(json.dumps(dict(error="rows differ: %d vs %d, %d common" % (len(ia), len(ib), len(common)))))
        return 1
    ra, rb = [ia[p] for p in common], [ib[p] for p in common]
    dp = np.abs(a["probability"][ra].astype(np.float64) - b["probability"][rb])
    dh = np.abs(a["heatmap"][ra].astype(np.int16) - b["heatmap"][rb])
    dpk = np.hypot(*(a["peak_xy"][ra] - b["peak_xy"][rb]).T)
    print(json.dumps(dict(n=len(common), max_abs_prob=float(np.nanmax(dp)),
                          pred_agree=int((a["prediction"][ra] == b["prediction"][rb]).sum()),
                          heat_max=int(dh.max()), heat_mean=float(dh.mean()),
                          peak_max_px=float(np.nanmax(dpk)))))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/fxdemo.onnx")
    ap.add_argument("--config", default=None, help="default: the model's .yaml sidecar")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="decode+prep workers")
    ap.add_argument("--intra", type=int, default=os.cpu_count() or 1, help="onnxruntime intra-op threads")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--compare", nargs=2, metavar=("FX_DIR", "PEER_DIR"))
    ap.add_argument("sources", nargs="*")
    a = ap.parse_args()
    if a.compare:
        return compare(*a.compare)
    if not a.out or not a.sources:
        ap.error("--out and SOURCES are required")
    a.config = a.config or os.path.splitext(a.model)[0] + ".yaml"
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
