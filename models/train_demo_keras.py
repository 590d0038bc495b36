#!/usr/bin/env python3
"""A Keras fracture classifier of the kind this project grew from, trained
on `fxscreen synth` data and saved as .h5 (and .keras) for
`fxscreen run --model model.h5`.  Optional: not run by `make demo` or
`make test`.  NOT FOR CLINICAL USE: synthetic data only.

    make deps                                   # build/venv-keras (TensorFlow)
    build/fxscreen synth --out build/kd --n 2000 --size 512 --bits 16 --seed 1
    build/fxscreen prep build/kd --out build/kdp --config models/fxdemo.yaml --store uint8
    build/venv-keras/bin/python models/train_demo_keras.py build/kd build/kdp build/fracture_keras
    build/fxscreen run --model build/fracture_keras.h5 --out build/kr build/kd

Beside the model it writes its sidecar, build/fracture_keras.yaml:
models/fxdemo.yaml's preprocessing with the Keras model's Grad-CAM layer.

The network sees exactly what fxscreen feeds it: prep.h5's windowed plane
(uint8 / 255), then (v - 0.5) / 0.25 as models/fxdemo.yaml's normalize
says, one channel, 256 x 256.  --base mobilenetv2 puts a keras.applications
MobileNetV2 (random init, 3 channels: the plane replicated, as fxscreen
does for 3-channel models; set input.channels: 3 in the sidecar) under a new
head instead of the small CNN."""
import argparse
import csv
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers


def small_cnn(size):
    x = inp = keras.Input((size, size, 1))
    for i, f in enumerate((16, 32, 64, 64)):
        x = L.Conv2D(f, 3, padding="same", use_bias=False, name="conv%d" % i)(x)
        x = L.BatchNormalization(name="bn%d" % i)(x)
        x = L.ReLU(name="relu%d" % i)(x)
        if i < 3:
            x = L.MaxPooling2D(name="pool%d" % i)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.3)(x)
    out = L.Dense(1, activation="sigmoid", name="fracture")(x)
    return keras.Model(inp, out, name="fracture_cnn")


def mobilenet(size):
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None)
    return keras.Sequential([keras.Input((size, size, 3)), base, L.GlobalAveragePooling2D(),
                             L.Dense(1, activation="sigmoid", name="fracture")], name="fracture_mobilenetv2")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="the synth folder (labels.csv)")
    ap.add_argument("prep", help="fxscreen prep's output folder (prep.h5, --store uint8)")
    ap.add_argument("out", help="output path without extension (.h5 and .keras are written)")
    ap.add_argument("--base", choices=["cnn", "mobilenetv2"], default="cnn")
    ap.add_argument("--epochs", type=int, default=8)
    a = ap.parse_args()
    labels = {r["path"]: int(r["label"]) for r in csv.DictReader(open(os.path.join(a.data, "labels.csv")))}
    with h5py.File(os.path.join(a.prep, "prep.h5"), "r") as f:
        ok = f["status"][:] == 0
        paths = [p.decode() if isinstance(p, bytes) else p for p in f["path"][:]]
        x = f["images"][:][ok].astype(np.float32) / 255.0
    y = np.array([labels[os.path.basename(p)] for p, k in zip(paths, ok) if k], np.float32)
    x = ((x - 0.5) / 0.25)[..., None]
    size = x.shape[1]
    m = small_cnn(size) if a.base == "cnn" else mobilenet(size)
    if a.base == "mobilenetv2":
        x = np.repeat(x, 3, axis=-1)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    n_val = max(1, len(x) // 10)
    m.fit(x[n_val:], y[n_val:], validation_data=(x[:n_val], y[:n_val]), epochs=a.epochs, batch_size=32)
    m.save(a.out + ".h5")
    m.save(a.out + ".keras")
    # The sidecar: the preprocessing trained on, the Keras layer for Grad-CAM.
    here = os.path.dirname(os.path.abspath(__file__))
    side = open(os.path.join(here, "fxdemo.yaml")).read().splitlines()
    layer = "relu3" if a.base == "cnn" else "out_relu"
    side = [("  layer: %s" % layer) if ln.strip().startswith("layer:") else ln for ln in side]
    if a.base == "mobilenetv2":
        side = [ln.replace("channels: 1", "channels: 3") for ln in side]
    open(a.out + ".yaml", "w").write("\n".join(side) + "\n")
    print("saved %s.h5, %s.keras and the sidecar %s.yaml" % (a.out, a.out, a.out))


if __name__ == "__main__":
    main()
