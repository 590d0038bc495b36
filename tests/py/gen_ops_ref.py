#!/usr/bin/python3
"""Writes operator test cases with PyTorch's outputs into an HDF5 file.

    /usr/bin/python3 tests/py/gen_ops_ref.py [OUT.h5 [SEED]]

Default OUT is tests/data/ops_ref.h5 and SEED 20240601 -- the checked-in
file that build/tests/test_ops compares our reference and fast kernels with
(so the C side is tested against torch's numbers without Python).
tests/py/test_ops_torch.py imports make_cases()/write_cases() to build fresh
cases with a random seed at every test run.

Layout (documented in tests/ops_case.h): /cases/<name> groups with the ONNX
attributes of the op, `op`, `tol`, datasets in0.. (inputs in ONNX order) and
out0.. (torch's outputs).  torch plays the independent peer: asymmetric pads
and ONNX auto_pad are expressed as F.pad + an unpadded torch op, N-D
reflect/edge pads use numpy.pad (torch pads only spatial dims that way).

Tolerance, max|ours - torch| / max|torch|: 1e-5 for elementwise and data
movement ops, 1e-4 for reductions, conv and gemm/matmul.
Needs Debian's python3-torch (1.13) and python3-h5py; CPU only.
"""
import os
import sys

import numpy as np

ELT = 1e-5  # elementwise / data movement
RED = 1e-4  # reductions, conv, gemm, matmul
DEFAULT_SEED = 20240601
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "ops_ref.h5")
REGEN = "/usr/bin/python3 tests/py/gen_ops_ref.py tests/data/ops_ref.h5"


class Gen:
    """Collects cases; r is a seeded torch.Generator for all random data."""

    def __init__(self, seed):
        import torch
        self.torch = torch
        self.r = torch.Generator().manual_seed(seed)
        self.cases = []

    def rand(self, *shape, lo=-1.0, hi=1.0):
        t = self.torch
        return t.rand(tuple(shape), generator=self.r, dtype=t.float32) * (hi - lo) + lo

    def add(self, name, op, ins, outs, tol, **attrs):
        # np.array, not ascontiguousarray: that one turns 0-d into shape (1,)
        ins = [np.array(np.asarray(x), dtype=np.float32, order="C") for x in ins]
        outs = [np.array(np.asarray(y), dtype=np.float32, order="C") for y in outs]
        self.cases.append(dict(name=name, op=op, ins=ins, outs=outs, tol=tol, attrs=attrs))


def tpad(pads_onnx, rank):
    """ONNX pads (begins..., ends...) -> torch F.pad tuple (last dim first)."""
    out = []
    for ax in reversed(range(rank)):
        out += [int(pads_onnx[ax]), int(pads_onnx[rank + ax])]
    return tuple(out)


def same_pads(mode, n, k, s, d):
    """ONNX auto_pad -> (begin, end) for one axis, from the ONNX spec."""
    if mode == "VALID":
        return 0, 0
    out = -(-n // s)
    total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
    small, big = total // 2, total - total // 2
    return (small, big) if mode == "SAME_UPPER" else (big, small)


# ---- per-family case builders -------------------------------------------------

def conv_cases(g):
    t = g.torch
    F = t.nn.functional
    # name, N, Cin, Cout, H, W, (kh, kw), (sh, sw), (dh, dw), pads t,l,b,r, groups, bias
    cfgs = [
        ("conv_3x3_s1_p1", 2, 3, 4, 7, 9, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1, True),
        ("conv_1x1", 1, 8, 5, 5, 6, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, False),
        ("conv_1x1_s2", 2, 6, 4, 7, 8, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), 1, False),
        ("conv_7x7_s2_p3", 1, 3, 4, 17, 19, (7, 7), (2, 2), (1, 1), (3, 3, 3, 3), 1, True),
        ("conv_5x5_d2_p4", 1, 4, 3, 11, 10, (5, 5), (1, 1), (2, 2), (4, 4, 4, 4), 1, True),
        ("conv_3x3_g2_s2", 2, 6, 4, 9, 9, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 2, True),
        ("conv_dw_3x3", 1, 5, 5, 8, 7, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 5, True),
        ("conv_dw_5x5_s2_mult2", 2, 3, 6, 9, 10, (5, 5), (2, 2), (1, 1), (2, 2, 2, 2), 3, False),
        ("conv_1x5_rect", 1, 4, 3, 6, 9, (1, 5), (1, 1), (1, 1), (0, 2, 0, 2), 1, True),
        ("conv_asym_pads", 2, 3, 5, 8, 9, (3, 3), (2, 2), (1, 1), (0, 1, 2, 0), 1, True),
        ("conv_odd_1x1_input", 3, 7, 2, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1, True),
    ]
    for name, n, ci, co, h, w, k, s, d, p, grp, bias in cfgs:
        x = g.rand(n, ci, h, w)
        wt = g.rand(co, ci // grp, *k)
        b = g.rand(co) if bias else None
        xp = F.pad(x, (p[1], p[3], p[0], p[2]))
        y = F.conv2d(xp, wt, b, stride=s, dilation=d, groups=grp)
        ins = [x, wt] + ([b] if bias else [])
        g.add(name, "conv", ins, [y], RED, strides=s, dilations=d, pads=p, group=grp)
    # auto_pad: the C side resolves the pads with fx_auto_pad_resolve
    for name, mode, n, ci, co, h, w, k, s, d in [
        ("conv_same_upper_k3_s2", "SAME_UPPER", 1, 3, 4, 8, 7, 3, 2, 1),
        ("conv_same_lower_k4_s2", "SAME_LOWER", 1, 3, 2, 9, 6, 4, 2, 1),
        ("conv_same_upper_k2_s1", "SAME_UPPER", 2, 2, 3, 5, 6, 2, 1, 1),
        ("conv_same_lower_k3_d2", "SAME_LOWER", 1, 2, 3, 7, 8, 3, 1, 2),
        ("conv_valid_k3_s2", "VALID", 1, 4, 3, 10, 9, 3, 2, 1),
    ]:
        x = g.rand(n, ci, h, w)
        wt = g.rand(co, ci, k, k)
        b = g.rand(co)
        pt, pb = same_pads(mode, h, k, s, d)
        pl, pr = same_pads(mode, w, k, s, d)
        y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), wt, b, stride=s, dilation=d)
        g.add(name, "conv", [x, wt, b], [y], RED, strides=(s, s), dilations=(d, d),
              group=1, auto_pad=mode)


def norm_act_cases(g):
    t = g.torch
    F = t.nn.functional
    for name, shape in [("bn_4d", (2, 5, 4, 3)), ("bn_2d", (3, 6))]:
        c = shape[1]
        x = g.rand(*shape, lo=-3, hi=3)
        sc, bi, mu = g.rand(c), g.rand(c), g.rand(c)
        var = g.rand(c, lo=0.1, hi=2.0)
        y = F.batch_norm(x, mu, var, sc, bi, training=False, eps=1e-5)
        g.add(name, "batchnorm", [x, sc, bi, mu, var], [y], ELT, epsilon=1e-5)
    x = g.rand(2, 3, 5, 7, lo=-5, hi=5)
    g.add("relu", "relu", [x], [F.relu(x)], ELT)
    for a in (0.01, 0.2):
        g.add("leaky_relu_%g" % a, "leaky_relu", [x], [F.leaky_relu(x, a)], ELT, alpha=a)
    for lo, hi in ((0.0, 6.0), (-1.0, 0.5)):
        g.add("clip_%g_%g" % (lo, hi), "clip", [x], [t.clamp(x, lo, hi)], ELT, min=lo, max=hi)
    g.add("sigmoid", "sigmoid", [x], [t.sigmoid(x)], ELT)
    g.add("hard_sigmoid_torch", "hard_sigmoid", [x], [F.hardsigmoid(x)], ELT,
          alpha=1.0 / 6, beta=0.5)
    g.add("hard_sigmoid_onnx_default", "hard_sigmoid", [x], [t.clamp(0.2 * x + 0.5, 0, 1)],
          ELT, alpha=0.2, beta=0.5)
    g.add("hard_swish", "hard_swish", [x], [F.hardswish(x)], ELT)
    g.add("tanh", "tanh", [x], [t.tanh(x)], ELT)
    for a in (1.0, 0.7):
        g.add("elu_%g" % a, "elu", [x], [F.elu(x, a)], ELT, alpha=a)
    g.add("selu", "selu", [x], [F.selu(x)], ELT, alpha=1.6732632423543772, gamma=1.0507009873554805)
    g.add("gelu", "gelu", [x], [F.gelu(x)], ELT)
    # PRelu: per channel (C,1,1), one slope (1,), full slope (C,H,W)
    x = g.rand(2, 4, 5, 3, lo=-2, hi=2)
    s = g.rand(4)
    g.add("prelu_channel", "prelu", [x, s.reshape(4, 1, 1)], [F.prelu(x, s)], ELT)
    s1 = g.rand(1)
    g.add("prelu_scalar", "prelu", [x, s1], [F.prelu(x, s1)], ELT)
    sf = g.rand(4, 5, 3)
    g.add("prelu_full", "prelu", [x, sf], [t.where(x >= 0, x, x * sf)], ELT)


def binary_cases(g):
    t = g.torch
    shapes = [
        ("add", (2, 1, 3), (4, 1)),
        ("add", (2, 3, 4, 5), (5,)),
        ("add", (2, 1, 3, 1, 2, 1), (1, 2, 1, 3, 1, 2)),
        ("sub", (3, 1, 5), (3, 4, 1)),
        ("sub", (1,), (3, 2)),
        ("mul", (2, 3, 1, 5), (1, 1, 4, 1)),
        ("mul", (2, 3), ()),
        ("div", (2, 4, 3), (4, 1)),
        ("div", (5,), (3, 1)),
    ]
    fns = {"add": t.add, "sub": t.sub, "mul": t.mul, "div": t.div}
    for op, sa, sb in shapes:
        a = g.rand(*sa)
        b = g.rand(*sb)
        if op == "div":  # keep denominators away from 0: |b| in [0.5, 2)
            b = t.where(b >= 0, 0.5 + 1.5 * b, -0.5 + 1.5 * b)
        name = "%s_%s_%s" % (op, "x".join(map(str, sa)) or "scalar",
                             "x".join(map(str, sb)) or "scalar")
        g.add(name, op, [a, b], [fns[op](a, b)], ELT)


def shape_cases(g):
    t = g.torch
    F = t.nn.functional
    for name, axis, shapes in [
        ("concat_axis1", 1, [(2, 3, 4, 5), (2, 1, 4, 5), (2, 2, 4, 5)]),
        ("concat_axis_neg1", -1, [(2, 3, 1), (2, 3, 4)]),
        ("concat_axis0", 0, [(1, 3), (4, 3)]),
    ]:
        xs = [g.rand(*s) for s in shapes]
        g.add(name, "concat", xs, [t.cat(xs, dim=axis)], ELT, axis=axis)
    for name, shape, axis, sizes in [
        ("split_axis1", (2, 7, 3), 1, [2, 4, 1]),
        ("split_axis_neg1", (4, 6), -1, [3, 3]),
        ("split_axis0_empty", (5, 2), 0, [1, 0, 4]),
    ]:
        x = g.rand(*shape)
        g.add(name, "split", [x], list(t.split(x, sizes, dim=axis)), ELT, axis=axis, split=sizes)
    for name, shape, perm in [
        ("transpose_201", (2, 3, 4), (2, 0, 1)),
        ("transpose_nhwc", (2, 3, 4, 5), (0, 2, 3, 1)),
        ("transpose_rank6", (2, 1, 3, 2, 2, 3), (5, 3, 1, 0, 4, 2)),
    ]:
        x = g.rand(*shape)
        g.add(name, "transpose", [x], [x.permute(*perm)], ELT, perm=perm)
    # Pad: torch F.pad for constant (any dims, negative = crop) and for
    # reflect/replicate on the spatial dims; numpy.pad for N-D reflect/edge.
    x = g.rand(2, 3, 5, 4)
    for name, mode, pads in [
        ("pad_constant_hw", "constant", [0, 0, 1, 2, 0, 0, 3, 0]),
        ("pad_constant_crop_nd", "constant", [1, -1, 0, 2, 0, 2, -2, 1]),
        ("pad_reflect_hw", "reflect", [0, 0, 2, 1, 0, 0, 1, 3]),
        ("pad_edge_hw", "edge", [0, 0, 3, 0, 0, 0, 2, 4]),
    ]:
        tm = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[mode]
        kw = {"value": 0.5} if mode == "constant" else {}
        tp = tpad(pads, 4)
        if mode != "constant":  # torch takes only the padded spatial dims here
            tp = tp[:4]
        y = F.pad(x, tp, mode=tm, **kw)
        g.add(name, "pad", [x], [y], ELT, pads=pads, mode=mode, value=0.5)
    x3 = g.rand(4, 3, 2)
    for name, mode, pads in [
        ("pad_reflect_nd", "reflect", [2, 1, 0, 3, 1, 1]),
        ("pad_edge_nd", "edge", [1, 0, 2, 2, 3, 0]),
    ]:
        xn = x3.numpy()
        y = np.pad(xn, [(pads[i], pads[3 + i]) for i in range(3)], mode=mode)
        g.add(name, "pad", [xn], [y], ELT, pads=pads, mode=mode, value=0.0)


def pool_cases(g):
    t = g.torch
    F = t.nn.functional
    # name, shape, k, s, p (symmetric per axis), d, ceil
    maxcfg = [
        ("maxpool_3x3_s2_p1", (2, 3, 11, 10), (3, 3), (2, 2), (1, 1), (1, 1), False),
        ("maxpool_2x2_s2_ceil", (1, 2, 7, 9), (2, 2), (2, 2), (0, 0), (1, 1), True),
        ("maxpool_2x2_s2_p1_ceil_drop", (1, 2, 5, 5), (2, 2), (2, 2), (1, 1), (1, 1), True),
        ("maxpool_3x3_s2_ceil_13", (1, 3, 13, 14), (3, 3), (2, 2), (0, 0), (1, 1), True),
        ("maxpool_3x3_d2_p1", (1, 3, 9, 8), (3, 3), (1, 1), (1, 1), (2, 2), False),
        ("maxpool_3x3_s2_d2_ceil", (1, 2, 10, 11), (3, 3), (2, 2), (1, 1), (2, 2), True),
        ("maxpool_2x3_rect", (2, 2, 6, 9), (2, 3), (1, 2), (1, 1), (1, 1), False),
    ]
    for name, shape, k, s, p, d, ceil in maxcfg:
        x = g.rand(*shape)
        y = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil)
        g.add(name, "maxpool", [x], [y], ELT, kernel_shape=k, strides=s,
              pads=(p[0], p[1], p[0], p[1]), dilations=d, ceil_mode=int(ceil))
    x = g.rand(1, 2, 8, 9)
    pads = (0, 1, 2, 0)  # asymmetric, ceil_mode off: pre-pad with -inf
    y = F.max_pool2d(F.pad(x, (1, 0, 0, 2), value=-float("inf")), 3, 2)
    g.add("maxpool_asym_pads", "maxpool", [x], [y], ELT, kernel_shape=(3, 3), strides=(2, 2),
          pads=pads, ceil_mode=0)
    avgcfg = [
        ("avgpool_3x3_s1_p1", (2, 3, 7, 6), (3, 3), (1, 1), (1, 1), False),
        ("avgpool_2x2_s2_ceil", (1, 2, 7, 9), (2, 2), (2, 2), (0, 0), True),
        ("avgpool_3x3_s2_p1_ceil", (1, 2, 6, 7), (3, 3), (2, 2), (1, 1), True),
        ("avgpool_2x2_s2_p1_ceil_drop", (1, 2, 5, 5), (2, 2), (2, 2), (1, 1), True),
        ("avgpool_3x2_rect", (2, 2, 7, 8), (3, 2), (2, 1), (1, 0), False),
    ]
    for name, shape, k, s, p, ceil in avgcfg:
        x = g.rand(*shape)
        for cip in (True, False):
            y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
            g.add("%s_cip%d" % (name, cip), "avgpool", [x], [y], RED, kernel_shape=k,
                  strides=s, pads=(p[0], p[1], p[0], p[1]), ceil_mode=int(ceil),
                  count_include_pad=int(cip))
    x = g.rand(2, 2, 7, 8)
    y = F.avg_pool2d(F.pad(x, (0, 1, 2, 0)), 3, 2)  # zeros counted: count_include_pad
    g.add("avgpool_asym_pads_cip1", "avgpool", [x], [y], RED, kernel_shape=(3, 3),
          strides=(2, 2), pads=(2, 0, 0, 1), ceil_mode=0, count_include_pad=1)
    for shape in [(2, 5, 7, 3), (1, 3, 1, 1), (2, 4, 9)]:
        x = g.rand(*shape)
        dims = tuple(range(2, len(shape)))
        tag = "x".join(map(str, shape))
        g.add("global_avgpool_" + tag, "global_avgpool", [x], [x.mean(dim=dims, keepdim=True)], RED)
        g.add("global_maxpool_" + tag, "global_maxpool", [x], [x.amax(dim=dims, keepdim=True)], ELT)


def gemm_cases(g):
    t = g.torch
    for name, m, k, n, ta, tb, alpha, beta, cshape in [
        ("gemm_linear", 5, 7, 3, 0, 1, 1.0, 1.0, (3,)),
        ("gemm_transA_col", 5, 7, 3, 1, 0, 0.5, 2.0, (5, 1)),
        ("gemm_noC", 4, 6, 5, 0, 0, 1.5, 1.0, None),
        ("gemm_fullC_tAB", 3, 4, 6, 1, 1, 1.0, -0.5, (3, 6)),
        ("gemm_scalarC", 2, 3, 4, 0, 0, 1.0, 1.0, ()),
        ("gemm_fc_65", 8, 65, 33, 0, 1, 1.0, 1.0, (33,)),
    ]:
        a = g.rand(*((k, m) if ta else (m, k)))
        b = g.rand(*((n, k) if tb else (k, n)))
        y = alpha * ((a.T if ta else a) @ (b.T if tb else b))
        ins = [a, b]
        if cshape is not None:
            c = g.rand(*cshape)
            y = y + beta * c
            ins.append(c)
        g.add(name, "gemm", ins, [y], RED, alpha=alpha, beta=beta, transA=ta, transB=tb)
    for sa, sb in [((3,), (3, 4)), ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
                   ((4, 5), (5, 3)), ((3,), (2, 3, 4)), ((2, 3), (3,)), ((3,), (3,))]:
        a, b = g.rand(*sa), g.rand(*sb)
        name = "matmul_%s_%s" % ("x".join(map(str, sa)), "x".join(map(str, sb)))
        g.add(name, "matmul", [a, b], [t.matmul(a, b)], RED)


def reduce_cases(g):
    t = g.torch
    for name, shape, axis, scale in [
        ("softmax_last", (2, 10), -1, 1.0),
        ("softmax_axis1", (2, 3, 4), 1, 1.0),
        ("softmax_axis0_large", (3, 5), 0, 50.0),
        ("softmax_logits_1000", (2, 1000), 1, 8.0),
    ]:
        x = g.rand(*shape) * scale
        g.add(name, "softmax", [x], [t.softmax(x, dim=axis)], RED, axis=axis)
    x = g.rand(2, 3, 4, 5)
    for name, axes, keep in [
        ("reduce_mean_hw_keep", [2, 3], 1),
        ("reduce_mean_c", [1], 0),
        ("reduce_mean_neg_keep", [-1, 0], 1),
        ("reduce_mean_all", None, 0),
    ]:
        y = x.mean() if axes is None else x.mean(dim=axes, keepdim=bool(keep))
        attrs = dict(keepdims=keep)
        if axes is not None:
            attrs["axes"] = axes
        g.add(name, "reduce_mean", [x], [y], RED, **attrs)


def random_cases(g, seed):
    """Conv and pool configurations drawn from the seed: fresh shapes (odd
    sizes, strides, dilations, groups, pads, ceil_mode) on every test run."""
    import random
    t = g.torch
    F = t.nn.functional
    rnd = random.Random(seed)
    for i in range(8):
        k = (rnd.choice([1, 3, 5, 7]), rnd.choice([1, 3, 5]))
        s = (rnd.randint(1, 2), rnd.randint(1, 2))
        d = (rnd.randint(1, 2), rnd.randint(1, 2))
        p = tuple(rnd.randint(0, 3) for _ in range(4))
        kind = rnd.choice(["dense", "groups", "depthwise"])
        cg = rnd.randint(1, 9)
        grp = {"dense": 1, "groups": rnd.randint(2, 3), "depthwise": cg}[kind]
        ci = cg if kind == "depthwise" else cg * grp
        co = grp * rnd.randint(1, 4)
        n = rnd.choice([1, 3])
        h = max(rnd.randint(1, 17), (k[0] - 1) * d[0] + 1 - p[0] - p[2])
        w = max(rnd.randint(1, 17), (k[1] - 1) * d[1] + 1 - p[1] - p[3])
        x, wt, b = g.rand(n, ci, h, w), g.rand(co, ci // grp, *k), g.rand(co)
        y = F.conv2d(F.pad(x, (p[1], p[3], p[0], p[2])), wt, b, stride=s, dilation=d, groups=grp)
        g.add("rand_conv_%d" % i, "conv", [x, wt, b], [y], RED, strides=s, dilations=d,
              pads=p, group=grp)
    for i in range(6):
        k = (rnd.randint(1, 4), rnd.randint(1, 4))
        s = (rnd.randint(1, 3), rnd.randint(1, 3))
        p = (rnd.randint(0, k[0] // 2), rnd.randint(0, k[1] // 2))  # torch: pad <= k/2
        ceil, cip = rnd.random() < 0.5, rnd.random() < 0.5
        h, w = rnd.randint(k[0], 15), rnd.randint(k[1], 15)
        x = g.rand(rnd.choice([1, 2]), rnd.randint(1, 4), h, w)
        pads = (p[0], p[1], p[0], p[1])
        if i % 2:
            y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
            g.add("rand_maxpool_%d" % i, "maxpool", [x], [y], ELT, kernel_shape=k, strides=s,
                  pads=pads, ceil_mode=int(ceil))
        else:
            y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
            g.add("rand_avgpool_%d" % i, "avgpool", [x], [y], RED, kernel_shape=k, strides=s,
                  pads=pads, ceil_mode=int(ceil), count_include_pad=int(cip))


def make_cases(seed):
    """All cases for one seed: list of dicts name, op, ins, outs, tol, attrs."""
    import torch
    torch.set_num_threads(1)  # shared 2-core build machine
    g = Gen(seed)
    for build in (conv_cases, norm_act_cases, binary_cases, shape_cases, pool_cases,
                  gemm_cases, reduce_cases):
        build(g)
    random_cases(g, seed)
    names = [c["name"] for c in g.cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return g.cases


def _attr_value(v):
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return np.float64(v)
    if isinstance(v, (int, bool, np.integer)):
        return np.array([int(v)], dtype=np.int64)
    return np.array(list(v), dtype=np.int64)


def write_cases(path, cases, seed):
    import h5py
    import torch
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "tests/py/gen_ops_ref.py"
        f.attrs["regenerate"] = REGEN
        f.attrs["seed"] = np.int64(seed)
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["tolerance"] = "max|ours - torch| / max|torch| <= tol (attribute of each case)"
        root = f.create_group("cases")
        for c in cases:
            grp = root.create_group(c["name"])
            grp.attrs["op"] = c["op"]
            grp.attrs["tol"] = np.float64(c["tol"])
            for k, v in c["attrs"].items():
                grp.attrs[k] = _attr_value(v)
            for i, x in enumerate(c["ins"]):
                grp.create_dataset("in%d" % i, data=x)
            for i, y in enumerate(c["outs"]):
                grp.create_dataset("out%d" % i, data=y)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_SEED
    cases = make_cases(seed)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_cases(out, cases, seed)
    print("wrote %d cases to %s (seed %d, %d bytes)" % (len(cases), out, seed, os.path.getsize(out)))


if __name__ == "__main__":
    main()
