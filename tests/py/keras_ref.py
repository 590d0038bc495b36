#!/usr/bin/env python3
"""Keras models and their references for tests/py/test_keras.py, made by
Keras itself (build/venv-keras: tensorflow-cpu with Keras 3, and tf_keras
for Keras 2; scripts/venv.sh keras).  Not run by fxscreen.

    keras_ref.py OUTDIR 3    Keras 3: every case, saved as .h5 and .keras
    keras_ref.py OUTDIR 2    Keras 2 (tf_keras): some cases, saved as .h5

Per case and format: the model file, and CASE.npz with the input x (NCHW,
as fxscreen reads it), Keras's predictions (model.predict) and a Grad-CAM
computed with tf.GradientTape on the named layer for the fracture logit
(the output before its sigmoid/softmax), at the layer's resolution,
normalised to a maximum of 1.  Weights are random, BatchNormalization
statistics too, so that every layer matters."""
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
OUT, MAJOR = sys.argv[1], int(sys.argv[2])
if MAJOR == 2:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras  # noqa: E402
else:
    import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

L = keras.layers
rng = np.random.RandomState(12)


def randomise(m):
    """Random weights everywhere, BatchNormalization statistics included."""
    for layer in m.layers:
        if hasattr(layer, "layers"):
            randomise(layer)
            continue
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w, v in zip(layer.weights, ws):
            name = w.name.split("/")[-1].split(":")[0]
            if "variance" in name:
                new.append(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
            elif "mean" in name:
                new.append(rng.uniform(-0.2, 0.2, v.shape).astype(v.dtype))
            elif name == "count":
                new.append(v)
            elif "gamma" in name:
                new.append(rng.uniform(0.7, 1.3, v.shape).astype(v.dtype))
            else:
                fan = max(1, int(np.prod(v.shape[:-1])))
                new.append((rng.randn(*v.shape) * np.sqrt(1.0 / fan)).astype(v.dtype))
        layer.set_weights(new)


def cnn(shape):
    """The fracture classifier's usual shape: Conv/BN/ReLU/pool blocks,
    global average pooling, Dense(1, sigmoid)."""
    x = inp = keras.Input(shape)
    for i, f in enumerate((16, 24, 32)):
        x = L.Conv2D(f, 3, padding="same", name="conv%d" % i)(x)
        x = L.BatchNormalization(name="bn%d" % i)(x)
        x = L.ReLU(name="relu%d" % i)(x)
        if i < 2:
            x = L.MaxPooling2D(name="pool%d" % i)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.3)(x)
    out = L.Dense(1, activation="sigmoid", name="fracture")(x)
    return keras.Model(inp, out, name="fracture_cnn"), "relu2", None


def zoo(shape):
    """Every supported layer type and activation, in one Functional model."""
    acts = ["relu", "relu6", "tanh", "swish", "hard_sigmoid", "elu", "selu", "gelu", "linear"]
    if MAJOR == 3:  # not in Keras 2
        acts.insert(5, "hard_swish")
    inp = keras.Input(shape)
    x = L.Rescaling(1 / 2.0, offset=0.1)(inp)
    x = L.Normalization(mean=0.05, variance=0.9)(x)
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(x)
    x = L.Conv2D(8, 4, strides=2, padding="same", activation="relu")(x)   # even kernel, stride 2
    x = L.Cropping2D(((1, 0), (0, 1)))(x)
    a = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6")(x)
    b = L.SeparableConv2D(16, 3, padding="same", activation="tanh")(x)
    c = L.Conv2D(16, 3, dilation_rate=2, padding="same", groups=2, activation="swish")(x)
    x = L.Add()([a, b, c])
    x = L.BatchNormalization(center=False)(x)
    x = L.LeakyReLU()(x)
    p = L.PReLU(shared_axes=[1, 2])(x)
    e = L.ELU(alpha=0.7)(x)
    x = L.Average()([p, e])
    x = L.Maximum()([x, L.Subtract()([p, e])])
    if MAJOR == 3:  # Keras 3 records arithmetic on tensors as op layers with numbers
        x = (x + 1.5) * 0.5
        x = 1.0 - x
    ys = []
    for k, act in enumerate(acts):
        ys.append(L.Conv2D(4, 1, activation=act, name="act_" + act)(x))
    x = L.Concatenate()(ys)
    g = L.GlobalMaxPooling2D(keepdims=True)(x)
    g = L.Conv2D(4 * len(acts), 1, activation="sigmoid")(g)
    x = L.Multiply()([x, g])
    x = L.Conv2D(16, 3, strides=2, padding="valid", name="last_conv")(x)
    x = L.Activation("relu", name="last_relu")(x)
    x = L.AveragePooling2D(2, padding="same")(x)
    x = L.Permute((2, 1, 3))(x)
    x = L.Reshape((-1, 16))(x)
    x = L.Dense(16, activation="relu")(x)  # on (N, T, C)
    x = L.Reshape((4, -1, 16))(x)
    x = L.Dense(12)(x)  # on (N, H, W, C): the last axis
    x = L.SpatialDropout2D(0.2)(x)
    x = L.GaussianNoise(0.1)(x)
    x = L.Flatten()(x)
    x = L.Dense(8, activation="relu")(x)
    out = L.Dense(2, activation="softmax", name="classes")(x)
    return keras.Model(inp, out, name="zoo"), "last_relu", None


APPS = {  # application, its last 4-D activation (the Grad-CAM layer), the head
    "densenet121": ("DenseNet121", "relu", "gap"),
    "resnet50": ("ResNet50", "conv5_block3_out", "gap"),
    "mobilenetv2": ("MobileNetV2", "out_relu", "gap"),
    "efficientnetb0": ("EfficientNetB0", "top_activation", "gap"),
    "vgg16": ("VGG16", "block5_conv3", "flatten"),
}


def app(name, shape, functional):
    cls, layer, head = APPS[name]
    base = getattr(keras.applications, cls)(input_shape=shape, include_top=False, weights=None)
    tail = [L.GlobalAveragePooling2D() if head == "gap" else L.Flatten(), L.Dense(1, activation="sigmoid",
                                                                                   name="fracture")]
    if functional:  # a Functional model around the base
        inp = keras.Input(shape)
        x = base(inp)
        for t in tail:
            x = t(x)
        m = keras.Model(inp, x, name=name + "_fx")
    else:
        m = keras.Sequential([keras.Input(shape), base] + tail, name=name + "_fx")
    return m, layer, base


def gradcam(m, layer, base, x, target):
    """Grad-CAM on layer for the target logit, at the layer's resolution."""
    last = m.layers[-1]
    act = last.activation
    last.activation = keras.activations.linear
    xt = tf.constant(x)
    if base is None:
        gm = keras.Model(m.inputs, [m.get_layer(layer).output, m.output])
        with tf.GradientTape() as tape:
            a, y = gm(xt)
            s = y[:, target]
    else:
        inner = keras.Model(base.inputs, [base.get_layer(layer).output, base.outputs[0]])
        tail = m.layers[m.layers.index(base) + 1:]
        with tf.GradientTape() as tape:
            a, f = inner(xt)
            for t in tail:
                f = t(f)
            s = f[:, target]
    g = tape.gradient(s, a).numpy()
    a = a.numpy()
    last.activation = act
    w = g.mean(axis=(1, 2))
    cam = np.maximum((a * w[:, None, None, :]).sum(-1), 0)
    mx = cam.reshape(len(cam), -1).max(1)
    return cam / np.where(mx > 0, mx, 1)[:, None, None]


def case(name, m, layer, base, shape, formats):
    randomise(m)
    x = rng.uniform(-1, 1, (2,) + shape).astype(np.float32)
    prob = m.predict(x, verbose=0)
    target = 1 if prob.shape[1] == 2 else 0
    cam = gradcam(m, layer, base, x, target)
    for fmt in formats:
        m.save(os.path.join(OUT, "%s.%s" % (name, fmt)))
    np.savez(os.path.join(OUT, name + ".npz"), x=x.transpose(0, 3, 1, 2).copy(), prob=prob, cam=cam,
             layer=layer, target=target, keras=keras.__version__)
    print("made", name, formats, prob.shape, cam.shape)
    sys.stdout.flush()


def refusals(tag):
    """Files Keras writes that fxscreen must refuse, with the reason."""
    m, _, _ = cnn((32, 32, 1))
    if MAJOR == 3:
        m.save_weights(os.path.join(OUT, "refuse_weights_only_%s.weights.h5" % tag))
    else:
        m.save_weights(os.path.join(OUT, "refuse_weights_only_%s.h5" % tag))
    inp = keras.Input((32, 32, 1))
    x = L.Conv2D(4, 3)(inp)
    x = L.Lambda(lambda t: t * 2.0, name="doubling")(x)
    x = L.GlobalAveragePooling2D()(x)
    keras.Model(inp, L.Dense(1)(x)).save(os.path.join(OUT, "refuse_lambda_%s.h5" % tag))

    @keras.utils.register_keras_serializable(package="clinic")
    class Squash(L.Layer):
        def call(self, t):
            return t / (1.0 + abs(t))

    x = L.Conv2D(4, 3)(inp)
    x = Squash(name="squash")(x)
    x = L.GlobalAveragePooling2D()(x)
    keras.Model(inp, L.Dense(1)(x)).save(os.path.join(OUT, "refuse_custom_%s.h5" % tag))
    print("made refusals", tag)


def main():
    os.makedirs(OUT, exist_ok=True)
    refusals("k%d" % MAJOR)
    tag = "k%d" % MAJOR
    fmts = ["h5", "keras"] if MAJOR == 3 else ["h5"]
    for shape in ((96, 80, 1), (64, 64, 3)):
        m, layer, base = cnn(shape)
        case("cnn_%dx%dx%d_%s" % (shape + (tag,)), m, layer, base, shape, fmts)
    m, layer, base = zoo((40, 36, 1))
    case("zoo_%s" % tag, m, layer, base, (40, 36, 3 - 2), fmts)
    names = list(APPS) if MAJOR == 3 else ["mobilenetv2", "resnet50"]
    if MAJOR == 3:
        APPS["mobilenetv3small"] = ("MobileNetV3Small", "expanded_conv_10_add", "gap")
        names.append("mobilenetv3small")
    for i, name in enumerate(names):
        for j, shape in enumerate(((96, 96, 3), (64, 128, 3))):
            m, layer, base = app(name, shape, functional=(i + j) % 2 == 1)
            case("%s_%dx%d_%s" % (name, shape[0], shape[1], tag), m, layer, base, shape, fmts)


main()
