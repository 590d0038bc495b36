#!/usr/bin/python3
"""ONNX import tests: models written by onnx.helper / torch.onnx, read back by us.

Run: FX_BUILD=build /usr/bin/python3 tests/py/test_onnx_import.py
Uses $FX_BUILD/tools/fx_onnx_dump (tests/tools/fx_onnx_dump.c), which loads a
model with fx_onnx_load and prints what the importer produced (opset, inputs,
outputs, constants with element sums, nodes).  Expected values come from
onnx's own view of the same file (onnx.load + numpy_helper.to_array), never
from our code.  Must-fail models must give `error ...` and exit 2 with a
clear message.  One `PASS name` / `FAIL name: why` line per case (SKIP for
the torchvision case when torch is missing); exits 1 on any failure.
"""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BUILD = os.environ.get("FX_BUILD", "build")
DUMP = os.path.join(BUILD, "tools", "fx_onnx_dump")
RNG = np.random.default_rng(2024)
failures = 0


def report(name, ok, why=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok or not why else ": " + why))
    sys.stdout.flush()
    if not ok:
        failures += 1


def run_case(name, fn):
    """fn returns None (pass) or a reason string (fail); exceptions fail."""
    try:
        why = fn()
    except Exception as e:  # a crash of the test itself is a failure, not an abort
        why = "exception: %r" % (e,)
    report(name, why is None, why or "")


def dump(path):
    """Returns (rc, stdout lines)."""
    p = subprocess.run([DUMP, path], capture_output=True, text=True, timeout=60)
    if p.returncode not in (0, 2):
        return p.returncode, ["crash: " + p.stderr[-500:]]
    return p.returncode, p.stdout.splitlines()


def parse(lines):
    """The dump as dicts: opset, inputs, outputs, consts, nodes, attrs."""
    d = {"opset": None, "inputs": {}, "outputs": [], "consts": {}, "nodes": [], "attrs": {}}

    def tensor(fields):  # DTYPE dims... sum=S wsum=W
        dt = fields[0]
        dims = [] if fields[1] == "scalar" else [int(x) for x in fields[1:-2]]
        s = float(fields[-2].split("=")[1])
        w = float(fields[-1].split("=")[1])
        return dt, dims, s, w

    for ln in lines:
        f = ln.split()
        if f[0] == "opset":
            d["opset"] = int(f[1])
        elif f[0] == "input":
            d["inputs"][f[1]] = (f[2], [int(x) for x in f[3:]])
        elif f[0] == "output":
            d["outputs"].append(f[1])
        elif f[0] == "const":
            d["consts"][f[1]] = tensor(f[2:])
        elif f[0] == "node":
            arrow = f.index("->")
            d["nodes"].append((f[1], f[2], f[3:arrow], f[arrow + 1:]))
        elif f[0] == "attr":
            d["attrs"][(f[1], f[2])] = tensor(f[4:])
    return d


def nm(s):
    return s if s else "''"


def expect_tensor(arr):
    """(dtype, dims, sum, wsum) as fx_onnx_dump prints them for an ONNX array."""
    if arr.dtype in (np.float16, np.float32, np.float64):
        with np.errstate(over="ignore"):  # double -> float32 overflows to inf, as in C
            v = arr.astype(np.float32).astype(np.float64).ravel()
        dt = "f32"
    else:
        v = arr.astype(np.int64).ravel()
        dt = "i64"
    w = (np.arange(v.size) % 7 + 1).astype(v.dtype)
    return dt, list(arr.shape), float(np.sum(v)), float(np.sum(v * w))


def same_tensor(got, want):
    gdt, gdims, gs, gw = got
    wdt, wdims, ws, ww = want
    if gdt != wdt or gdims != wdims:
        return "got %s %s, want %s %s" % (gdt, gdims, wdt, wdims)
    for a, b, what in ((gs, ws, "sum"), (gw, ww, "wsum")):
        both_nan = a != a and b != b
        if not both_nan and not (a == b or abs(a - b) <= 1e-6 * max(1.0, abs(b))):
            return "%s %r, want %r" % (what, a, b)
    return None


def check_against_onnx(path, lines, base_dir=None):
    """Compare a dump with onnx's view of the file; None or a reason."""
    m = onnx.load(path, load_external_data=False)
    if base_dir is not None:
        onnx.external_data_helper.load_external_data_for_model(m, base_dir)
    d = parse(lines)
    if d["opset"] != [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]:
        return "opset %r" % d["opset"]
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    if set(d["consts"]) != set(inits):
        return "constants %s, want %s" % (sorted(d["consts"]), sorted(inits))
    for k, arr in inits.items():
        why = same_tensor(d["consts"][k], expect_tensor(arr))
        if why:
            return "constant %s: %s" % (k, why)
    want_inputs = [i.name for i in m.graph.input if i.name not in inits]
    if sorted(d["inputs"]) != sorted(want_inputs):
        return "inputs %s, want %s" % (sorted(d["inputs"]), want_inputs)
    if d["outputs"] != [o.name for o in m.graph.output]:
        return "outputs %s" % d["outputs"]
    if len(d["nodes"]) != len(m.graph.node):
        return "%d nodes, want %d" % (len(d["nodes"]), len(m.graph.node))
    for got, n in zip(d["nodes"], m.graph.node):
        op = n.op_type if n.domain in ("", "ai.onnx") else n.domain + "::" + n.op_type
        want = (nm(n.name), op, [nm(x) for x in n.input], [nm(x) for x in n.output])
        if tuple(got) != want:
            return "node %s, want %s" % (got, want)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                why = same_tensor(d["attrs"].get((nm(n.name), a.name), ("?", [], 0, 0)),
                                  expect_tensor(numpy_helper.to_array(a.t)))
                if why:
                    return "node %s attribute %s: %s" % (n.name, a.name, why)
    return None


def expect_ok(path, base_dir=None):
    rc, lines = dump(path)
    if rc != 0:
        return "exit %d: %s" % (rc, " ".join(lines)[:300])
    return check_against_onnx(path, lines, base_dir)


def expect_error(path, status, *needles):
    """rc 2 with `error <status>: ...` containing every needle."""
    rc, lines = dump(path)
    text = " ".join(lines)
    if rc != 2 or not text.startswith("error " + status):
        return "exit %d, output %r (wanted error %s)" % (rc, text[:300], status)
    for s in needles:
        if s not in text:
            return "message %r lacks %r" % (text[:400], s)
    if path not in text:
        return "message %r does not name the file" % text[:300]
    return None


# ---- model builders ----------------------------------------------------------------

def f16_typed(name, arr):
    """A FLOAT16 tensor with its bits in int32_data (as the spec stores it),
    built by hand so no helper converts anything on the way."""
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT16
    t.dims.extend(arr.shape)
    t.int32_data.extend(int(x) for x in arr.astype(np.float16).view(np.uint16).ravel())
    return t


def conv_relu(tmp, name, raw=True, opset=13, dtype=np.float32, batch=1, shape_fn=None):
    """x (batch,3,8,8) -> Conv(W 4x3x3x3, B 4) -> Relu -> y."""
    w = RNG.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = RNG.standard_normal(4).astype(dtype)
    if raw:
        wt, bt = numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")
    elif dtype == np.float16:
        wt, bt = f16_typed("W", w), f16_typed("B", b)
    else:
        wt = helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel().tolist())
        bt = helper.make_tensor("B", TensorProto.FLOAT, b.shape, b.ravel().tolist())
    xdims = shape_fn() if shape_fn else [batch, 3, 8, 8]
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv1", kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"], name="relu1")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, xdims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [wt, bt])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    path = os.path.join(tmp, name + ".onnx")
    onnx.save(m, path)
    return path, m


def ext_model(tmp, name, location, offset=None, length=None, nbytes=16):
    """A model whose one initializer W (4 floats) lives in external data."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    t = TensorProto()
    t.name, t.data_type = "W", TensorProto.FLOAT
    t.dims.extend([4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    g = helper.make_graph([helper.make_node("Relu", ["W"], ["y"], name="r")], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = os.path.join(d, "model.onnx")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return d, path


# ---- a tiny protobuf encoder for files as proto3 encoders write them -----------------

def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def fld(num, wt, payload):
    return varint(num << 3 | wt) + payload


def ld(num, data):  # length-delimited
    return fld(num, 2, varint(len(data)) + data)


def vi(num, v):
    return fld(num, 0, varint(v))


def packed_varints(num, vals):
    return ld(num, b"".join(varint(v) for v in vals))


def packed_model():
    """Model with dims, float_data and ints attributes PACKED (what proto3
    encoders emit; onnx's Python proto2 writes dims/ints unpacked)."""
    w = np.arange(6, dtype=np.float32) * 0.5 - 1
    tensor = (packed_varints(1, [2, 3]) + vi(2, 1) + ld(4, w.tobytes()) + ld(8, b"w"))
    shape = packed_varints(1, [2, 3])  # int64 initializer via packed int64_data
    shape_t = packed_varints(1, [2]) + vi(2, 7) + packed_varints(7, [3, 2]) + ld(8, b"shape")
    perm = ld(1, b"perm") + vi(20, 7) + packed_varints(8, [1, 0])
    n1 = ld(1, b"w") + ld(1, b"shape") + ld(2, b"r") + ld(3, b"reshape") + ld(4, b"Reshape")
    n2 = ld(1, b"r") + ld(2, b"y") + ld(3, b"tr") + ld(4, b"Transpose") + ld(5, perm)
    dim = lambda v: ld(1, vi(1, v))
    yinfo = ld(1, b"y") + ld(2, ld(1, vi(1, 1) + ld(2, dim(2) + dim(3))))
    graph = ld(1, n1) + ld(1, n2) + ld(2, b"g") + ld(5, tensor) + ld(5, shape_t) + ld(12, yinfo)
    del shape
    return vi(1, 8) + ld(8, ld(1, b"") + vi(2, 13)) + ld(7, graph), w


# ---- cases ---------------------------------------------------------------------------

def main():
    if not os.access(DUMP, os.X_OK):
        report("onnx-import-tool", False, DUMP + " not built")
        return 1
    with tempfile.TemporaryDirectory(prefix="fx_onnx_") as tmp:
        cases(tmp)
    return 1 if failures else 0


def cases(tmp):
    run_case("onnx-float32-raw", lambda: expect_ok(conv_relu(tmp, "raw", raw=True)[0]))
    run_case("onnx-float32-float-data",
             lambda: expect_ok(conv_relu(tmp, "typed", raw=False)[0]))
    run_case("onnx-float16-raw",
             lambda: expect_ok(conv_relu(tmp, "f16raw", dtype=np.float16)[0]))
    run_case("onnx-float16-int32-data",
             lambda: expect_ok(conv_relu(tmp, "f16typed", raw=False, dtype=np.float16)[0]))
    run_case("onnx-float16-special-values", lambda: case_f16_special(tmp))
    run_case("onnx-int64-shape-constants", lambda: case_int64(tmp))
    run_case("onnx-initializer-listed-as-input", lambda: case_init_as_input(tmp))
    run_case("onnx-packed-proto3-encoding", lambda: case_packed(tmp))
    run_case("onnx-external-data", lambda: case_external(tmp))
    run_case("onnx-dynamic-batch", lambda: case_dynamic(tmp))
    for op in (10, 22):
        run_case("onnx-opset-%d-refused" % op, lambda op=op: expect_error(
            conv_relu(tmp, "op%d" % op, opset=op)[0], "unsupported", "opset %d" % op,
            "11..21"))
    run_case("onnx-unsupported-ops-listed", lambda: case_unsupported(tmp))
    run_case("onnx-truncated", lambda: case_truncated(tmp))
    run_case("onnx-not-onnx", lambda: case_not_onnx(tmp))
    run_case("onnx-bad-tensors", lambda: case_bad_tensors(tmp))
    run_case("onnx-external-escape-refused", lambda: case_ext_escape(tmp))
    run_case("onnx-external-missing-short", lambda: case_ext_short(tmp))
    run_case("onnx-load-peak-memory", lambda: case_peak_memory(tmp))
    case_resnet18(tmp)


def case_peak_memory(tmp):
    """Loading holds the weights about twice at most, not three times (the
    file's bytes, the parsed message and the graph's constants): peak RSS of
    `fxscreen model info` on a model with 96 MiB of weights stays under
    2.4x the weights plus what a tiny model costs."""
    # fxscreen's own ru_maxrss (wait4), in KiB.  Started from a small
    # interpreter: a child forked from this one, which holds the big arrays,
    # would count this process's pages before its exec.
    meter = ("import os, subprocess, sys\n"
             "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
             "_, st, ru = os.wait4(p.pid, 0)\n"
             "print(os.waitstatus_to_exitcode(st), ru.ru_maxrss)\n")

    def peak_kib(path):
        out = subprocess.run([sys.executable, "-c", meter, os.path.join(BUILD, "fxscreen"),
                              "model", "info", path, "--input-size", "1x1"],
                             capture_output=True, text=True, timeout=120).stdout.split()
        if len(out) != 2 or out[0] != "0":
            raise RuntimeError("model info %s: %s" % (path, out))
        return int(out[1])

    def model(name, c):
        w = RNG.standard_normal((c, c, 1, 1)).astype(np.float32)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 1, 1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="c")], "g",
                              [x], [y], initializer=[numpy_helper.from_array(w, "w")])
        path = os.path.join(tmp, name + ".onnx")
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
        return path, w.nbytes

    small, _ = model("peak_small", 8)
    big, wbytes = model("peak_big", 5016)  # 96 MiB of float32 weights
    base = peak_kib(small)
    peak = peak_kib(big)
    ratio = (peak - base) * 1024.0 / wbytes
    if ratio > 2.4:
        return "peak RSS %.0f MiB over a tiny model's for %.0f MiB of weights (%.2fx)" % (
            (peak - base) / 1024.0, wbytes / 2.0 ** 20, ratio)
    print("# load peak: %.2fx the weights (%d KiB, tiny model %d KiB)" % (ratio, peak, base))
    return None


def case_f16_special(tmp):
    vals = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.1035156e-05, 5.9604645e-08,
                     -5.9604645e-08, 3.0517578e-05, np.inf, -np.inf], dtype=np.float16)
    for raw in (True, False):
        t = numpy_helper.from_array(vals, "h") if raw else f16_typed("h", vals)
        g = helper.make_graph([helper.make_node("Relu", ["h"], ["y"], name="r")], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [12])],
                              [t])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        path = os.path.join(tmp, "f16special%d.onnx" % raw)
        onnx.save(m, path)
        rc, lines = dump(path)
        if rc != 0:
            return "exit %d %s" % (rc, lines)
        # sums cannot see the exact bits: check the finite ones exactly, inf by wsum=nan
        fin = vals[np.isfinite(vals)].astype(np.float32).astype(np.float64)
        got = parse(lines)["consts"]["h"]
        if got[0] != "f32" or got[1] != [12]:
            return "got %s" % (got,)
        # finite part: rebuild with only finite values to compare exactly
        fv = vals[np.isfinite(vals)]
        t2 = numpy_helper.from_array(fv, "h") if raw else f16_typed("h", fv)
        m.graph.initializer[0].CopyFrom(t2)
        m.graph.output[0].type.tensor_type.shape.dim[0].dim_value = fin.size
        onnx.save(m, path)
        why = expect_ok(path)
        if why:
            return ("raw: " if raw else "int32_data: ") + why
        if not (got[2] != got[2]):  # inf + -inf = nan in the full sum
            return "sum with +-inf should be nan, got %r" % got[2]
    return None


def case_int64(tmp):
    """Reshape with an int64 initializer (raw), a Constant node with an int64
    tensor (int64_data), an INT32 (int32_data -> i64) and a DOUBLE (-> f32)
    initializer."""
    shape = numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape")
    i32 = helper.make_tensor("i32", TensorProto.INT32, [3], [-7, 0, 2147483647])
    dbl = helper.make_tensor("dbl", TensorProto.DOUBLE, [2, 2], [0.1, -1e300, 3.25, 1e-50])
    cval = helper.make_tensor("cval", TensorProto.INT64, [2], [2, 96])
    nodes = [helper.make_node("Constant", [], ["c2"], name="const2", value=cval),
             helper.make_node("Reshape", ["x", "shape"], ["r1"], name="reshape1"),
             helper.make_node("Reshape", ["r1", "c2"], ["y"], name="reshape2")]
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 96])],
                          [shape, i32, dbl])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    path = os.path.join(tmp, "int64.onnx")
    onnx.save(m, path)
    rc, lines = dump(path)
    why = expect_ok(path)
    if why:
        return why
    d = parse(lines)
    if d["consts"]["dbl"][2] != -np.inf:  # -1e300 overflows float32 to -inf
        return "double -1e300 should become -inf: %r" % (d["consts"]["dbl"],)
    if d["attrs"].get(("const2", "value"), (None,))[0] != "i64":
        return "Constant value not printed as i64: %r" % (d["attrs"],)
    return None


def case_init_as_input(tmp):
    path, m = conv_relu(tmp, "initinput")
    m.graph.input.extend([helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3, 3, 3]),
                          helper.make_tensor_value_info("B", TensorProto.FLOAT, [4])])
    onnx.save(m, path)
    rc, lines = dump(path)
    why = expect_ok(path)
    if why:
        return why
    d = parse(lines)
    if list(d["inputs"]) != ["x"] or "W" not in d["consts"]:
        return "inputs %s consts %s" % (list(d["inputs"]), list(d["consts"]))
    return None


def case_packed(tmp):
    data, w = packed_model()
    path = os.path.join(tmp, "packed.onnx")
    with open(path, "wb") as f:
        f.write(data)
    m = onnx.load(path)  # onnx itself must read our hand-encoded file
    if [n.op_type for n in m.graph.node] != ["Reshape", "Transpose"]:
        return "onnx reads it differently: %s" % m
    why = expect_ok(path)
    if why:
        return why
    d = parse(dump(path)[1])
    if d["consts"]["w"][1] != [2, 3] or d["consts"]["shape"][1] != [2]:
        return "packed dims misread: %s" % d["consts"]
    return None


def case_external(tmp):
    d = os.path.join(tmp, "ext")
    os.makedirs(d)
    _, m = conv_relu(tmp, "ext_src")
    path = os.path.join(d, "model.onnx")
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    if not os.path.exists(os.path.join(d, "weights.bin")):
        return "onnx wrote no weights.bin"
    raw = onnx.load(path, load_external_data=False)
    if not all(t.data_location == TensorProto.EXTERNAL for t in raw.graph.initializer):
        return "initializers not external"
    why = expect_ok(path, base_dir=d)
    if why:
        return why
    # relative path from another working directory: resolved against the model's dir
    p = subprocess.run([os.path.abspath(DUMP), "model.onnx"], cwd=d, capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        return "relative path: %s" % p.stdout
    return None


def case_dynamic(tmp):
    path, _ = conv_relu(tmp, "dyn", shape_fn=lambda: ["N", 3, None, 8])
    rc, lines = dump(path)
    if rc != 0:
        return "exit %d %s" % (rc, lines)
    got = parse(lines)["inputs"].get("x")
    if got != ("f32", [-1, 3, -1, 8]):
        return "input x %r, want f32 [-1, 3, -1, 8]" % (got,)
    return check_against_onnx(path, lines)


def case_unsupported(tmp):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
             helper.make_node("Einsum", ["a", "a"], ["b"], name="ein_1", equation="ij,ij->ij"),
             helper.make_node("Fancy", ["b"], ["c"], name="fancy_1", domain="com.example"),
             helper.make_node("Einsum", ["c", "c"], ["y"], name="ein_2", equation="ij,ij->ij")]
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("com.example", 1)])
    path = os.path.join(tmp, "unsupported.onnx")
    onnx.save(m, path)
    why = expect_error(path, "unsupported", "Einsum", "ein_1", "ein_2", "com.example::Fancy",
                       "fancy_1")
    if why:
        return why
    if "ok_relu" in " ".join(dump(path)[1]):
        return "supported node listed"
    return None


def case_truncated(tmp):
    path, _ = conv_relu(tmp, "trunc_src")
    data = open(path, "rb").read()
    for cut in (len(data) // 2, len(data) - 1, 7):
        p = os.path.join(tmp, "trunc%d.onnx" % cut)
        with open(p, "wb") as f:
            f.write(data[:cut])
        rc, lines = dump(p)
        if rc != 2 or not lines or not lines[0].startswith("error "):
            return "cut at %d: exit %d %r" % (cut, rc, lines[:2])
    return None


def case_not_onnx(tmp):
    samples = {"png.onnx": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
               "text.onnx": b"hello, this is not a model\n" * 10,
               "empty.onnx": b""}
    for fname, data in samples.items():
        p = os.path.join(tmp, fname)
        with open(p, "wb") as f:
            f.write(data)
        why = expect_error(p, "format error", "not an ONNX model")
        if why:
            return fname + ": " + why
    return None


def case_bad_tensors(tmp):
    """raw_data of the wrong length, negative dims, too few typed values,
    an unsupported data type: each refused with the tensor's name."""
    path, m = conv_relu(tmp, "bad")
    bad = []
    t = m.graph.initializer[0]
    t1 = TensorProto()
    t1.CopyFrom(t)
    t1.raw_data = t1.raw_data[:-4]
    bad.append((t1, "format error", "raw_data"))
    t2 = TensorProto()
    t2.CopyFrom(t)
    t2.dims[0] = -4
    bad.append((t2, "format error", "negative"))
    t3 = helper.make_tensor("W", TensorProto.FLOAT, [107], [1.0] * 107)
    t3.dims[:] = [4, 3, 3, 3]
    bad.append((t3, "format error", "107 values"))
    t4 = helper.make_tensor("W", TensorProto.UINT8, [4, 3, 3, 3], [1] * 108)
    bad.append((t4, "unsupported", "UINT8"))
    t5 = TensorProto()
    t5.CopyFrom(t)
    t5.dims[:] = [1 << 40, 1 << 40, 1 << 40]
    bad.append((t5, "over limit", "overflow"))
    for k, (tb, status, needle) in enumerate(bad):
        m.graph.initializer[0].CopyFrom(tb)
        p = os.path.join(tmp, "bad%d.onnx" % k)
        with open(p, "wb") as f:
            f.write(m.SerializeToString())
        why = expect_error(p, status, needle, "'W'")
        if why:
            return "case %d: %s" % (k, why)
    return None


def case_ext_escape(tmp):
    outside = os.path.join(tmp, "outside.bin")
    with open(outside, "wb") as f:
        f.write(np.ones(4, np.float32).tobytes())
    d, path = ext_model(tmp, "esc1", "../outside.bin")
    why = expect_error(path, "unsupported", "../outside.bin", "leaves the model's directory")
    if why:
        return "..: " + why
    d, path = ext_model(tmp, "esc2", outside)
    why = expect_error(path, "unsupported", "absolute")
    if why:
        return "absolute: " + why
    d, path = ext_model(tmp, "esc3", "sub/../../outside.bin")
    why = expect_error(path, "unsupported", "leaves")
    if why:
        return "sub/..: " + why
    d, path = ext_model(tmp, "esc4", "link.bin")
    os.symlink(outside, os.path.join(d, "link.bin"))
    why = expect_error(path, "unsupported", "resolves outside")
    if why:
        return "symlink: " + why
    # and a good one in the same shape passes
    d, path = ext_model(tmp, "good", "w.bin", offset=8, length=16)
    with open(os.path.join(d, "w.bin"), "wb") as f:
        f.write(b"\0" * 8 + np.array([1, 2, 3, 4.5], np.float32).tobytes())
    rc, lines = dump(path)
    got = parse(lines)["consts"].get("W") if rc == 0 else lines
    if rc != 0 or got[2] != 10.5:
        return "good external tensor: %r" % (got,)
    return None


def case_ext_short(tmp):
    d, path = ext_model(tmp, "missing", "nothere.bin")
    why = expect_error(path, "i/o error", "nothere.bin")
    if why:
        return "missing: " + why
    d, path = ext_model(tmp, "short", "w.bin")
    with open(os.path.join(d, "w.bin"), "wb") as f:
        f.write(b"\0" * 15)
    why = expect_error(path, "format error", "too short")
    if why:
        return "short: " + why
    d, path = ext_model(tmp, "offset", "w.bin", offset=10)
    with open(os.path.join(d, "w.bin"), "wb") as f:
        f.write(b"\0" * 20)
    why = expect_error(path, "format error", "too short")
    if why:
        return "offset: " + why
    d, path = ext_model(tmp, "badlen", "w.bin", length=12)
    with open(os.path.join(d, "w.bin"), "wb") as f:
        f.write(b"\0" * 16)
    why = expect_error(path, "format error", "length 12")
    if why:
        return "length: " + why
    d, path = ext_model(tmp, "badoff", "w.bin", offset="-3")
    with open(os.path.join(d, "w.bin"), "wb") as f:
        f.write(b"\0" * 16)
    why = expect_error(path, "format error", "not a number")
    if why:
        return "offset -3: " + why
    return None


def case_resnet18(tmp):
    try:
        import torch
        import torchvision
    except ImportError as e:
        print("SKIP onnx-resnet18-torch-export: %s" % e)
        return
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=2).eval()
    path = os.path.join(tmp, "resnet18.onnx")
    torch.onnx.export(net, torch.randn(1, 3, 64, 64), path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    def check():
        why = expect_ok(path)
        if why:
            return why
        d = parse(dump(path)[1])
        if d["inputs"].get("input") != ("f32", [-1, 3, 64, 64]):
            return "input %r" % (d["inputs"],)
        ops = sorted({n[1] for n in d["nodes"]})
        if "Conv" not in ops or "Gemm" not in ops or len(d["consts"]) < 20:
            return "ops %s, %d constants" % (ops, len(d["consts"]))
        return None
    run_case("onnx-resnet18-torch-export", check)


if __name__ == "__main__":
    sys.exit(main())
