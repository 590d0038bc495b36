#!/usr/bin/env python3
"""Keras import against Keras itself.

References come from tests/py/keras_ref.py, run once in build/venv-keras
(tensorflow-cpu: Keras 3, and tf_keras for Keras 2; made by
`scripts/venv.sh BUILD keras`, which `make deps` runs) and cached under
build/keras-ref (remade when the script changes).  For every model
(a typical fracture CNN at two sizes, a Functional model with every
supported layer and activation, keras.applications DenseNet121, ResNet50,
MobileNetV2, EfficientNetB0 and VGG16 with random weights at 96x96 and
64x128 inside a Sequential or Functional model with a new head), in every
format (Keras 3 .h5 and .keras, Keras 2 .h5):
- `fxscreen model run`: sigmoid/softmax of the output = model.predict (1e-4);
- `fxscreen model cam --layer <Keras layer name>`: Pearson r >= 0.999 with
  a tf.GradientTape Grad-CAM on the same layer, at its resolution.
Then `fxscreen run` and `serve` on a Keras model with a sidecar, and clear
refusals: unsupported and Lambda layers, custom objects, weights-only
files, an unknown Keras version, truncated and damaged files."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "keras_ref.py")
VENV = os.path.abspath(os.path.join(su.BUILD, "venv-keras", "bin", "python"))
REF = os.path.abspath(os.path.join(su.BUILD, "keras-ref"))


def references():
    """build/keras-ref, made (or remade) by keras_ref.py in the Keras venv."""
    stamp = os.path.join(REF, ".stamp")
    want = hashlib.sha256(open(GEN, "rb").read()).hexdigest()
    if os.path.exists(stamp) and open(stamp).read() == want:
        return True
    if not os.path.exists(VENV):
        check("Keras venv present (%s; run `make deps`)" % VENV, False)
        return False
    shutil.rmtree(REF, ignore_errors=True)
    for major in ("3", "2"):
        p = subprocess.run([VENV, GEN, REF, major], capture_output=True, text=True, timeout=1800)
        if not check("keras_ref.py (Keras %s) made the references" % major, p.returncode == 0,
                     p.stderr[-2000:]):
            return False
    open(stamp, "w").write(want)
    return True


def run(args, **kw):
    # errors="replace": a damaged file's names may not be UTF-8
    return subprocess.run([su.FX] + args, capture_output=True, text=True, errors="replace", **kw)


def activate(z, k):
    if k == 1:
        return 1 / (1 + np.exp(-z))
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def compare(work, model, ref):
    name = os.path.basename(model)
    x, prob, cam = ref["x"], ref["prob"], ref["cam"]
    layer, target = str(ref["layer"]), int(ref["target"])
    inp = os.path.join(work, "in.h5")
    with h5py.File(inp, "w") as f:
        f["input"] = x
    out = os.path.join(work, "out.h5")
    p = run(["model", "run", model, "--input", inp, "--output", out])
    if not check("%s: model run exits 0" % name, p.returncode == 0, p.stderr[-500:]):
        return
    with h5py.File(out, "r") as f:
        z = [f[k][:] for k in f if isinstance(f[k], h5py.Dataset)][0].astype(np.float64)
    got = activate(z, prob.shape[1])
    d = np.abs(got - prob).max() if got.shape == prob.shape else float("inf")
    check("%s: outputs = model.predict (1e-4)" % name, d < 1e-4, (d, got.ravel()[:4], prob.ravel()[:4]))
    co = os.path.join(work, "cam.h5")
    p = run(["model", "cam", model, "--input", inp, "--output", co, "--layer", layer, "--target", str(target)])
    if not check("%s: model cam --layer %s exits 0" % (name, layer), p.returncode == 0, p.stderr[-500:]):
        return
    with h5py.File(co, "r") as f:
        mine = f["cam_lowres"][:]
    rs = []
    for i in range(len(cam)):
        a, b = mine[i].ravel().astype(np.float64), cam[i].ravel()
        rs.append(1.0 if a.std() == 0 and b.std() == 0 else float(np.corrcoef(a, b)[0, 1]))
    check("%s: Grad-CAM on '%s' vs tf.GradientTape: Pearson r >= 0.999" % (name, layer),
          mine.shape == cam.shape and min(rs) >= 0.999, (mine.shape, cam.shape, rs))


def faces(work):
    """run and serve on a Keras model with a sidecar, --layer by Keras name."""
    src = os.path.join(REF, "cnn_96x80x1_k3.h5")
    model = os.path.join(work, "fracture.h5")
    shutil.copy(src, model)
    with open(os.path.join(work, "fracture.yaml"), "w") as f:
        f.write("input: {height: 96, width: 80, channels: 1}\nnormalize: {mean: [0.5], std: [0.25]}\n"
                "cam: {layer: relu2}\n")
    imgs = su.synth(os.path.join(work, "img"), 3, size=256, bits=16, seed=3)
    p = run(["model", "info", model])
    check("model info on .h5: Keras layer names, suggested layer relu2",
          p.returncode == 0 and "relu2" in p.stdout and "suggested Grad-CAM layer: relu2" in p.stdout,
          p.stdout[-600:] + p.stderr)
    p = run(["model", "info", os.path.join(REF, "vgg16_96x96_k3.h5")])
    check("a Flatten head (VGG16): the suggested Grad-CAM layer is a Keras layer, block5_pool, not the "
          "NHWC transpose before the Flatten", "suggested Grad-CAM layer: block5_pool (512 x 3 x 3)" in p.stdout,
          p.stdout[-300:])
    out = os.path.join(work, "run")
    p = run(["run", "--model", model, "--out", out, "--quiet"] + imgs)
    ok = p.returncode == 0
    with h5py.File(os.path.join(out, "results.h5"), "r") as f:
        probs = f["probability"][:] if ok else None
        ok = ok and f.attrs["cam_layer"] in ("relu2", b"relu2")
    check("fxscreen run --model fracture.h5 (sidecar fracture.yaml): probabilities, CAM layer relu2",
          ok and np.all((probs > 0) & (probs < 1)), p.stderr[-500:])
    srv = su.Server(model=model)
    st, _, r = srv.json("POST", "/api/predict", open(imgs[0], "rb").read(), {"Content-Type": "image/png"})
    check("serve on a Keras model: /api/predict = run's probability",
          st == 200 and abs(r["probability"] - float(probs[0])) < 1e-6, (st, r))
    check("serve: SIGTERM exit 0", srv.stop() == 0)
    # A 3-channel Keras model takes the grey plane replicated.
    m3 = os.path.join(work, "rgb.keras")
    shutil.copy(os.path.join(REF, "cnn_64x64x3_k3.keras"), m3)
    with open(os.path.join(work, "rgb.yaml"), "w") as f:
        f.write("input: {height: 64, width: 64, channels: 3}\n")
    p = run(["run", "--model", m3, "--out", os.path.join(work, "run3"), "--quiet"] + imgs[:1])
    check("fxscreen run on a 3-channel .keras model (grey replicated)", p.returncode == 0, p.stderr[-400:])


def refusals(work):
    def refused(name, path, words):
        p = run(["model", "info", path])
        msg = p.stderr.strip()
        check("refused: %s (exit 2, naming %s)" % (name, ", ".join(words)),
              p.returncode == 2 and all(w in msg for w in words) and "Traceback" not in msg, msg[:400])

    good = os.path.join(REF, "cnn_96x80x1_k3.h5")
    data = open(good, "rb").read()
    for frac in (0.5, 0.9, 0.999):
        t = os.path.join(work, "trunc%g.h5" % frac)
        open(t, "wb").write(data[:int(len(data) * frac)])
        p = run(["model", "info", t])
        check("truncated .h5 (%g): a clean error" % frac, p.returncode == 2 and p.stderr.strip(), p.stderr[:300])
    kdata = open(os.path.join(REF, "cnn_96x80x1_k3.keras"), "rb").read()
    t = os.path.join(work, "trunc.keras")
    open(t, "wb").write(kdata[:len(kdata) // 2])
    p = run(["model", "info", t])
    check("truncated .keras: a clean error", p.returncode == 2 and p.stderr.strip(), p.stderr[:300])
    rng = np.random.RandomState(1)
    asan = os.path.abspath(os.path.join(su.BUILD, "asan", "fxscreen"))
    crashes, asan_bad = [], []
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:exitcode=86", UBSAN_OPTIONS="halt_on_error=1")
    for i in range(40):  # bytes flipped all over: errors, never a crash
        b = bytearray(data if i % 2 else kdata)
        for _ in range(rng.randint(1, 30)):
            b[rng.randint(len(b))] = rng.randint(256)
        t = os.path.join(work, "flip%d.%s" % (i, "h5" if i % 2 else "keras"))
        open(t, "wb").write(bytes(b))
        p = run(["model", "info", t], timeout=120)
        if p.returncode not in (0, 2):
            crashes.append((i, p.returncode, p.stderr[-200:]))
        if os.path.exists(asan):  # the importer's own code under the sanitizers
            q = subprocess.run([asan, "model", "info", t], capture_output=True, text=True, errors="replace",
                               timeout=300, env=env)
            if q.returncode not in (0, 2) or "runtime error" in q.stderr:
                asan_bad.append((i, q.returncode, q.stderr[-300:]))
    check("40 damaged files: each loads or fails with exit 2, never a crash", not crashes, crashes[:3])
    for good_file in ("zoo_k3.keras", "zoo_k2.h5", "efficientnetb0_96x96_k3.keras"):  # every layer kind
        q = subprocess.run([asan, "model", "info", os.path.join(REF, good_file)], capture_output=True, text=True,
                           errors="replace", timeout=300, env=env) if os.path.exists(asan) else None
        if q is not None and (q.returncode != 0 or "runtime error" in q.stderr):
            asan_bad.append((good_file, q.returncode, q.stderr[-300:]))
    check("the same 40, and three good models with every layer kind, under ASan+UBSan: no report",
          os.path.exists(asan) and not asan_bad, asan_bad[:2])

    # Files made by hand with h5py from a good one.
    v = os.path.join(work, "v9.h5")
    shutil.copy(good, v)
    with h5py.File(v, "a") as f:
        f.attrs["keras_version"] = "9.1.0"
    refused("a file from Keras 9.1.0", v, ["Keras 9.1.0", "2.x", "3.x"])
    w = os.path.join(work, "weights_only.h5")
    shutil.copy(good, w)
    with h5py.File(w, "a") as f:
        del f.attrs["model_config"]
    refused("weights only", w, ["save_weights", "model.save"])
    cfg = json.loads(h5py.File(good, "r").attrs["model_config"])
    lay = cfg["config"]["layers"]
    lay[2]["class_name"] = "Lambda"
    lay[3]["class_name"] = "FancyLayer"
    lay[3]["module"] = "my_project.layers"
    lay[4]["class_name"] = "Conv3D"
    u = os.path.join(work, "unsupported.h5")
    shutil.copy(good, u)
    with h5py.File(u, "a") as f:
        f.attrs["model_config"] = json.dumps(cfg)
    refused("Lambda, a custom layer and Conv3D, all at once", u,
            ["Lambda", "Python code", "FancyLayer", "Conv3D", "'%s'" % lay[2]["config"]["name"],
             "'%s'" % lay[4]["config"]["name"]])
    sub = os.path.join(work, "subclassed.h5")
    shutil.copy(good, sub)
    with h5py.File(sub, "a") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "MyModel", "config": {}})
    refused("a subclassed model", sub, ["MyModel", "subclassed"])
    for tag in ("k3", "k2"):  # as Keras itself wrote them
        wo = [f for f in os.listdir(REF) if f.startswith("refuse_weights_only_" + tag)]
        if check("Keras %s wrote a weights-only file" % tag[1], len(wo) == 1, wo):
            refused("Keras %s save_weights file" % tag[1], os.path.join(REF, wo[0]), ["save_weights", "model.save"])
        refused("Keras %s Lambda layer" % tag[1], os.path.join(REF, "refuse_lambda_%s.h5" % tag),
                ["Lambda", "Python code", "'doubling'"])
        refused("Keras %s custom layer" % tag[1], os.path.join(REF, "refuse_custom_%s.h5" % tag),
                ["Squash", "'squash'"])
    # The messages of `run`: the file named once, the reason kept.
    junk = os.path.join(work, "junk.onnx")
    open(junk, "wb").write(b"x")
    for path, words in ((os.path.join(work, "missing.h5"), ["cannot open"]), (junk, ["not an ONNX model"]),
                        (os.path.join(REF, "refuse_lambda_k3.h5"), ["Lambda"])):
        p = run(["run", "--model", path, "--out", os.path.join(work, "r_msg"), work])
        msg = p.stderr.strip()
        check("run --model %s: stops at once (exit 1 or 2), the path once, the reason" % os.path.basename(path),
              p.returncode in (1, 2) and msg.count(path) == 1 and ": :" not in msg and all(w in msg for w in words),
              msg[:300])
    nz = os.path.join(work, "not_keras.h5")
    with h5py.File(nz, "w") as f:
        f["x"] = np.zeros(3)
    refused("an HDF5 file that is not a Keras model", nz, ["not a Keras model"])


def main():
    if not references():
        return 1
    return su.run_tests("fx_keras_", against_keras, faces, refusals)


def against_keras(work):
    cases = sorted(f[:-4] for f in os.listdir(REF) if f.endswith(".npz"))
    check("references: at least 19 cases", len(cases) >= 19, cases)
    for c in cases:
        ref = np.load(os.path.join(REF, c + ".npz"))
        for ext in ("h5", "keras"):
            m = os.path.join(REF, "%s.%s" % (c, ext))
            if os.path.exists(m):
                compare(work, m, ref)


if __name__ == "__main__":
    sys.exit(main())
