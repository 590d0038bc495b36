#!/usr/bin/python3
"""Writes the fuzz seed corpus tests/fuzz/corpus_onnx/ for fuzz_onnx.

Regenerate (from the repo root):  /usr/bin/python3 tests/fuzz/make_corpus_onnx.py
Small valid models (each < 2 KB) from onnx.helper covering what the importer
reads: raw and typed float32, float16 and int64 initializers, a Constant node
with a tensor attribute, int/ints/float/string attributes, a dynamic batch
dim, a node in another domain.  Deterministic (fixed seed).  Commit the outputs.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(11)


def save(m, name, d):
    m.ir_version = 8
    with open(os.path.join(d, name), "wb") as f:
        f.write(m.SerializeToString())


def main():
    d = os.path.join(HERE, "corpus_onnx")
    os.makedirs(d, exist_ok=True)
    w = numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "W")
    b = helper.make_tensor("B", TensorProto.FLOAT, [2], [0.5, -0.25])
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1], strides=[1, 1]),
         helper.make_node("LeakyRelu", ["c"], ["r"], name="lrelu", alpha=0.1),
         helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
         helper.make_node("Flatten", ["p"], ["y"], name="flat", axis=1)],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), "conv.onnx", d)

    h = numpy_helper.from_array(rng.standard_normal(6).astype(np.float16), "h")
    shape = numpy_helper.from_array(np.array([2, 3], np.int64), "shape")
    cval = helper.make_tensor("c", TensorProto.INT64, [2], [3, 2])
    g = helper.make_graph(
        [helper.make_node("Constant", [], ["c2"], name="const", value=cval),
         helper.make_node("Reshape", ["h", "shape"], ["r"], name="reshape"),
         helper.make_node("Reshape", ["r", "c2"], ["t"], name="reshape2"),
         helper.make_node("Pad", ["t"], ["y"], name="pad", mode="reflect"),
         helper.make_node("Odd", ["y"], ["z"], name="odd", domain="com.example")],
        "shapes", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 2])],
        [h, shape])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14),
                                             helper.make_opsetid("com.example", 1)]),
         "shapes.onnx", d)


if __name__ == "__main__":
    main()
