/* The CUDA backend's host side, on any machine: the per-element functions
 * of src/ops/hd.h, the descriptors lower.c builds for the kernels (run by
 * the host executors, the kernels' own index arithmetic) against the ops.h
 * references on random shapes, the list of nodes the CUDA backend refuses,
 * and --device / --precision parsing and fallback. */
#include <string.h>

#include "backend/cuda_ops.h"
#include "check.h"
#include "fxscreen/device.h"
#include "fxscreen/graph.h"
#include "model/graph_internal.h"
#include "model/vjp.h"

static fx_error err;
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static int irand(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(next_u32() % (uint32_t)(hi - lo + 1));
}

static void fill(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(next_u32() % 20001) / 10000.0f - 1.0f;
}

static fx_shape rand_shape(int rank, int max_dim)
{
    fx_shape s = {rank, {0}};
    for (int i = 0; i < rank; i++)
        s.d[i] = irand(1, max_dim);
    return s;
}

static int same(const float *a, const float *b, int64_t n)
{
    return !memcmp(a, b, sizeof(float) * (size_t)n);
}

static void test_hd_arithmetic(void)
{
    for (int i = 0; i < 2000; i++) {
        float x = (float)(i - 1000) / 37.0f;
        double s = 1.0 / (1.0 + exp(-(double)x));
        CHECK(fx_hd_unary(FX_U_SILU, x, 0, 0) == x * (float)s);
        CHECK(fx_hd_unary(FX_U_SIGMOID, x, 0, 0) == (float)s);
        CHECK(fx_hd_unary(FX_U_RELU, x, 0, 0) == (x > 0 ? x : 0.0f));
        CHECK(fx_hd_unary(FX_U_CLIP, x, -1.0f, 6.0f) == fminf(fmaxf(x, -1.0f), 6.0f));
        CHECK(fx_hd_epilogue(x, 0.5f, -0.25f, FX_U_NONE, 0, 0) == x + 0.5f + -0.25f);
    }
    float a, b;
    fx_hd_bn_coeffs(2.0f, 0.5f, 1.0f, 3.0f, 1e-5f, &a, &b);
    CHECK(a == (float)(2.0 / sqrt(3.0 + 1e-5f)));
    CHECK(b == (float)(0.5 - (2.0 / sqrt(3.0 + 1e-5f)) * 1.0));
    /* fx_hd_offset walks row-major with the given strides */
    int64_t dims[3] = {3, 4, 5}, st[3] = {1, 3, 12}, e = 0;
    int ok = 1;
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 4; j++)
            for (int64_t k = 0; k < 5; k++, e++)
                ok &= fx_hd_offset(e, 3, dims, st) == i + 3 * j + 12 * k;
    CHECK(ok);
}

static void test_lower_transpose(void)
{
    static float x[20000], y[20000], want[20000];
    for (int it = 0; it < 60; it++) {
        fx_transpose_params p = {rand_shape(irand(1, 6), it % 2 ? 5 : 3), {0}};
        for (int i = 0; i < p.x.rank; i++)
            p.perm[i] = i;
        for (int i = p.x.rank - 1; i > 0; i--) { /* Fisher-Yates */
            int j = irand(0, i), t = p.perm[i];
            p.perm[i] = p.perm[j], p.perm[j] = t;
        }
        int64_t n = fx_shape_numel(&p.x);
        fill(x, n);
        fx_cu_map m;
        CHECK(fx_lower_transpose(&p, &m) == FX_OK && m.n == n);
        CHECK(fx_op_transpose_ref(&p, x, want) == FX_OK);
        memset(y, 0xff, sizeof(float) * (size_t)n);
        fx_cu_map_host(&m, x, y);
        CHECK_MSG(same(y, want, n), "rank %d", p.x.rank);
    }
}

static void test_lower_concat_split(void)
{
    static float xs[4][3000], y[12000], want[12000], back[4][3000];
    for (int it = 0; it < 40; it++) {
        int rank = irand(1, 4), axis = irand(0, rank - 1), k = irand(1, 4);
        fx_shape base = rand_shape(rank, 6), shapes[4];
        const float *ins[4];
        for (int i = 0; i < k; i++) {
            shapes[i] = base;
            shapes[i].d[axis] = irand(1, 5);
            fill(xs[i], fx_shape_numel(&shapes[i]));
            ins[i] = xs[i];
        }
        fx_concat_params cp = {k, shapes, axis};
        fx_shape o;
        CHECK(fx_concat_out_shape(&cp, &o, NULL) == FX_OK);
        CHECK(fx_op_concat_ref(&cp, ins, want) == FX_OK);
        memset(y, 0xff, sizeof(float) * (size_t)fx_shape_numel(&o));
        int64_t off = 0, sizes[4];
        for (int i = 0; i < k; i++) {
            fx_cu_map m;
            CHECK(fx_lower_concat(&o, axis, &shapes[i], off, &m) == FX_OK);
            fx_cu_map_host(&m, xs[i], y);
            sizes[i] = shapes[i].d[axis];
            off += sizes[i];
        }
        CHECK(same(y, want, fx_shape_numel(&o)));
        /* Split is the inverse: pieces equal the reference split's and the inputs */
        off = 0;
        float *outs[4] = {back[0], back[1], back[2], back[3]};
        fx_split_params sp = {o, axis, k, sizes};
        static float ref[4][3000];
        float *refs[4] = {ref[0], ref[1], ref[2], ref[3]};
        CHECK(fx_op_split_ref(&sp, want, refs) == FX_OK);
        for (int i = 0; i < k; i++) {
            fx_cu_map m;
            CHECK(fx_lower_split(&o, axis, &shapes[i], off, &m) == FX_OK);
            fx_cu_map_host(&m, want, outs[i]);
            off += sizes[i];
            CHECK(same(outs[i], refs[i], fx_shape_numel(&shapes[i])));
            CHECK(same(outs[i], xs[i], fx_shape_numel(&shapes[i])));
        }
    }
}

/* Slice and Gather against loops written out here (ONNX semantics). */
static void test_lower_slice_gather(void)
{
    static float x[6000], y[6000];
    for (int it = 0; it < 40; it++) {
        fx_shape xs = rand_shape(3, 9), o = xs;
        int64_t start[3], step[3];
        for (int a = 0; a < 3; a++) {
            step[a] = irand(0, 2) == 0 ? -irand(1, 3) : irand(1, 3);
            start[a] = irand(0, (int)xs.d[a] - 1);
            /* elements reachable from start in that direction */
            int64_t room = step[a] > 0 ? xs.d[a] - start[a] : start[a] + 1;
            int64_t abs_step = step[a] > 0 ? step[a] : -step[a];
            o.d[a] = irand(1, (int)((room + abs_step - 1) / abs_step));
        }
        fill(x, fx_shape_numel(&xs));
        fx_cu_map m;
        CHECK(fx_lower_slice(&xs, &o, start, step, &m) == FX_OK);
        fx_cu_map_host(&m, x, y);
        int ok = 1;
        int64_t e = 0;
        for (int64_t i = 0; i < o.d[0]; i++)
            for (int64_t j = 0; j < o.d[1]; j++)
                for (int64_t k = 0; k < o.d[2]; k++, e++) {
                    int64_t a = start[0] + i * step[0], b = start[1] + j * step[1],
                            c = start[2] + k * step[2];
                    ok &= y[e] == x[(a * xs.d[1] + b) * xs.d[2] + c];
                }
        CHECK(ok);
        /* Gather along a random axis with indices in any order */
        int axis = irand(0, 2);
        int64_t ni = irand(1, 4), idx[4], outer = 1, inner = 1, dim = xs.d[axis];
        for (int i = 0; i < axis; i++)
            outer *= xs.d[i];
        for (int i = axis + 1; i < 3; i++)
            inner *= xs.d[i];
        for (int i = 0; i < ni; i++) {
            idx[i] = irand(0, (int)dim - 1);
            CHECK(fx_lower_gather(&xs, axis, idx[i], i, ni, &m) == FX_OK);
            fx_cu_map_host(&m, x, y);
        }
        ok = 1;
        for (int64_t a = 0; a < outer; a++)
            for (int64_t i = 0; i < ni; i++)
                for (int64_t c = 0; c < inner; c++)
                    ok &= y[(a * ni + i) * inner + c] == x[(a * dim + idx[i]) * inner + c];
        CHECK(ok);
    }
}

static void test_lower_binary(void)
{
    static float a[5000], b[5000], y[5000], want[5000];
    const char ops[] = "ASMDP";
    for (int it = 0; it < 80; it++) {
        int rank = irand(1, 5);
        fx_shape o = rand_shape(rank, 5), sa = o, sb = o;
        for (int i = 0; i < rank; i++) { /* broadcast dims on either side */
            if (irand(0, 3) == 0)
                sa.d[i] = 1;
            else if (irand(0, 3) == 0)
                sb.d[i] = 1;
        }
        char op = ops[it % 5];
        if (op == 'P') /* PRelu: the slope broadcasts to x's own shape */
            sa = o;
        if (irand(0, 2) == 0 && rank > 1 && op != 'P') { /* a shorter operand */
            sb.rank = rank - 1;
            memmove(sb.d, sb.d + 1, sizeof(int64_t) * (size_t)(rank - 1));
        }
        fx_binary_params p = {sa, sb};
        fill(a, fx_shape_numel(&sa));
        fill(b, fx_shape_numel(&sb));
        for (int64_t i = 0; op == 'D' && i < fx_shape_numel(&sb); i++)
            b[i] += b[i] >= 0 ? 0.5f : -0.5f; /* keep divisors away from 0 */
        fx_status st = op == 'A'   ? fx_op_add_ref(&p, a, b, want)
                       : op == 'S' ? fx_op_sub_ref(&p, a, b, want)
                       : op == 'M' ? fx_op_mul_ref(&p, a, b, want)
                       : op == 'D' ? fx_op_div_ref(&p, a, b, want)
                                   : fx_op_prelu_ref(&p, a, b, want);
        CHECK(st == FX_OK);
        fx_cu_bin d;
        CHECK(fx_lower_binary(&p, op, &d) == FX_OK);
        fx_cu_bin_host(&d, a, b, y);
        CHECK_MSG(same(y, want, d.n), "op %c rank %d", op, rank);
    }
}

static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* The backward kernels' arithmetic (the host executors of the same
 * descriptors) against the plain-C VJPs of src/model/vjp.c. */
static void test_lower_vjp(void)
{
    static float a[5000], b[5000], dy[5000], da[5000], db[5000], wa[5000], wb[5000];
    const char ops[] = "ASMD";
    for (int it = 0; it < 80; it++) { /* broadcasting binaries, both operands */
        int rank = irand(1, 5);
        fx_shape o = rand_shape(rank, 5), sa = o, sb = o;
        for (int i = 0; i < rank; i++) {
            if (irand(0, 3) == 0)
                sa.d[i] = 1;
            else if (irand(0, 3) == 0)
                sb.d[i] = 1;
        }
        char op = ops[it % 4];
        fx_binary_params p = {sa, sb};
        int64_t na = fx_shape_numel(&sa), nb = fx_shape_numel(&sb);
        fill(a, na), fill(b, nb), fill(dy, fx_shape_numel(&o));
        for (int64_t i = 0; op == 'D' && i < nb; i++)
            b[i] += b[i] >= 0 ? 0.5f : -0.5f;
        memset(wa, 0, sizeof(float) * (size_t)na), memset(wb, 0, sizeof(float) * (size_t)nb);
        memset(da, 0, sizeof(float) * (size_t)na), memset(db, 0, sizeof(float) * (size_t)nb);
        CHECK(fx_vjp_binary(op, &p, a, b, dy, wa, wb) == FX_OK);
        fx_cu_bin d;
        CHECK(fx_lower_binary(&p, op, &d) == FX_OK);
        fx_cu_bin_vjp_host(&d, 0, a, b, dy, da);
        fx_cu_bin_vjp_host(&d, 1, a, b, dy, db);
        CHECK_MSG(max_diff(da, wa, na) <= 1e-6 && max_diff(db, wb, nb) <= 1e-6, "op %c rank %d", op,
                  rank);
    }
    for (int it = 0; it < 40; it++) { /* Transpose and Concat, backwards */
        fx_transpose_params p = {rand_shape(irand(1, 5), 4), {0}};
        for (int i = 0; i < p.x.rank; i++)
            p.perm[i] = i;
        for (int i = p.x.rank - 1; i > 0; i--) {
            int j = irand(0, i), t = p.perm[i];
            p.perm[i] = p.perm[j], p.perm[j] = t;
        }
        int64_t n = fx_shape_numel(&p.x);
        fill(dy, n);
        memset(da, 0, sizeof(float) * (size_t)n), memset(wa, 0, sizeof(float) * (size_t)n);
        fx_cu_map m;
        CHECK(fx_lower_transpose(&p, &m) == FX_OK && fx_vjp_transpose(&p, dy, wa) == FX_OK);
        fx_cu_map_vjp_host(&m, dy, da);
        CHECK(same(da, wa, n));
        int rank = irand(1, 4), axis = irand(0, rank - 1);
        fx_shape shapes[2] = {rand_shape(rank, 5), {0}}, out;
        shapes[1] = shapes[0], shapes[1].d[axis] = irand(1, 4);
        fx_concat_params cp = {2, shapes, axis};
        CHECK(fx_concat_out_shape(&cp, &out, NULL) == FX_OK);
        fill(dy, fx_shape_numel(&out));
        int64_t n0 = fx_shape_numel(&shapes[0]), n1 = fx_shape_numel(&shapes[1]);
        memset(wa, 0, sizeof(float) * (size_t)n0), memset(wb, 0, sizeof(float) * (size_t)n1);
        memset(da, 0, sizeof(float) * (size_t)n0), memset(db, 0, sizeof(float) * (size_t)n1);
        float *const dxs[2] = {wa, wb};
        CHECK(fx_vjp_concat(&cp, dy, dxs) == FX_OK);
        CHECK(fx_lower_concat(&out, axis, &shapes[0], 0, &m) == FX_OK);
        fx_cu_map_vjp_host(&m, dy, da);
        CHECK(fx_lower_concat(&out, axis, &shapes[1], shapes[0].d[axis], &m) == FX_OK);
        fx_cu_map_vjp_host(&m, dy, db);
        CHECK(same(da, wa, n0) && same(db, wb, n1));
    }
    for (int it = 0; it < 40; it++) { /* Gather with repeated indices: the sums */
        fx_shape xs = rand_shape(3, 6), o = xs;
        int axis = irand(0, 2);
        int64_t ni = irand(1, 5), idx[5];
        for (int i = 0; i < ni; i++)
            idx[i] = irand(0, (int)xs.d[axis] - 1);
        o.d[axis] = ni;
        int64_t nx = fx_shape_numel(&xs);
        fill(dy, fx_shape_numel(&o));
        memset(da, 0, sizeof(float) * (size_t)nx), memset(wa, 0, sizeof(float) * (size_t)nx);
        CHECK(fx_vjp_gather(&xs, axis, idx, ni, dy, wa) == FX_OK);
        for (int i = 0; i < ni; i++) {
            fx_cu_map m;
            CHECK(fx_lower_gather(&xs, axis, idx[i], i, ni, &m) == FX_OK);
            fx_cu_map_vjp_host(&m, dy, da);
        }
        CHECK(max_diff(da, wa, nx) <= 1e-6);
    }
    /* fx_hd_unary_vjp against central differences of fx_hd_unary, off the kinks */
    static const fx_unary_kind ks[] = {FX_U_RELU,     FX_U_LEAKY,  FX_U_CLIP, FX_U_SIGMOID,
                                       FX_U_HSIGMOID, FX_U_HSWISH, FX_U_TANH, FX_U_SILU,
                                       FX_U_ELU,      FX_U_SELU,   FX_U_GELU};
    double worst = 0;
    for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++)
        for (int i = 0; i < 200; i++) {
            float x = (float)(i - 100) / 23.0f + 0.013f, al = 0.2f, be = 0.6f;
            if (ks[k] == FX_U_CLIP)
                al = -1.0f, be = 2.0f;
            double h = 1e-3;
            double fd = ((double)fx_hd_unary(ks[k], (float)(x + h), al, be) -
                         (double)fx_hd_unary(ks[k], (float)(x - h), al, be)) /
                        (2 * h);
            float y = fx_hd_unary(ks[k], x, al, be);
            double g = fx_hd_unary_vjp(ks[k], al, be, x, y, 1.0f);
            double near_kink = fabs(x) < 2e-3 || fabs(fabs(x) - 3.0f) < 2e-3 ||
                               fabs(x - al) < 2e-3 || fabs(x - be) < 2e-3 ||
                               fabs(al * x + be) < 2e-3 || fabs(al * x + be - 1) < 2e-3;
            if (!near_kink)
                worst = fmax(worst, fabs(g - fd) / fmax(1.0, fabs(fd)));
        }
    CHECK_MSG(worst < 2e-3, "unary vjp vs differences: %.3g", worst);
}

static void test_lower_matmul(void)
{
    static float a[4000], b[4000], y[4000], want[4000];
    int strided = 0, general = 0;
    for (int it = 0; it < 200; it++) {
        int ra = irand(1, 4), rb = irand(1, 4), m = irand(1, 5), k = irand(1, 6), n = irand(1, 5);
        fx_shape sa = {ra, {0}}, sb = {rb, {0}};
        int nbatch = (ra > rb ? ra : rb) - 2;
        int64_t batch[4] = {irand(1, 3), irand(1, 3), 1, 1};
        for (int i = 0; i < ra - 2; i++) /* the output's batch dims, or 1 (broadcast) */
            sa.d[i] = irand(0, 3) == 0 ? 1 : batch[i + (nbatch - (ra - 2))];
        for (int i = 0; i < rb - 2; i++)
            sb.d[i] = irand(0, 3) == 0 ? 1 : batch[i + (nbatch - (rb - 2))];
        if (ra >= 2)
            sa.d[ra - 2] = m, sa.d[ra - 1] = k;
        else
            sa.d[0] = k;
        if (rb >= 2)
            sb.d[rb - 2] = k, sb.d[rb - 1] = n;
        else
            sb.d[0] = k;
        fx_matmul_params p = {sa, sb};
        fx_shape o;
        if (fx_matmul_out_shape(&p, &o, NULL) != FX_OK)
            continue;
        fill(a, fx_shape_numel(&sa));
        fill(b, fx_shape_numel(&sb));
        CHECK(fx_op_matmul_ref(&p, a, b, want) == FX_OK);
        fx_cu_mm d;
        CHECK(fx_lower_matmul(&p, &d) == FX_OK);
        general += d.general, strided += !d.general;
        memset(y, 0xff, sizeof(float) * (size_t)fx_shape_numel(&o));
        fx_cu_mm_host(&d, a, b, y);
        CHECK_MSG(d.batch * d.m * d.n == fx_shape_numel(&o) && same(y, want, fx_shape_numel(&o)),
                  "a rank %d b rank %d", ra, rb);
        /* where one stride per operand is used, it is what the offsets say */
        for (int64_t i = 0; !d.general && i < d.batch; i++) {
            int64_t oa, ob;
            fx_cu_mm_offsets(&d, i, &oa, &ob);
            CHECK(oa == i * d.stride_a && ob == i * d.stride_b);
        }
    }
    CHECK_MSG(strided > 100 && general > 0, "%d strided, %d general", strided, general);
    /* batch dims broadcast from both sides: a (2, 1, m, k) @ b (1, 3, k, n) */
    fx_matmul_params mixed = {{4, {2, 1, 2, 3}}, {4, {1, 3, 3, 2}}};
    fx_cu_mm d;
    CHECK(fx_lower_matmul(&mixed, &d) == FX_OK && d.general && d.batch == 6);
}

static void test_lower_axes(void)
{
    fx_shape x = {4, {2, 3, 5, 7}};
    int64_t o, l, in;
    fx_lower_axes3(&x, 1, 1, &o, &l, &in);
    CHECK(o == 2 && l == 3 && in == 35);
    fx_lower_axes3(&x, 2, 3, &o, &l, &in);
    CHECK(o == 6 && l == 35 && in == 1);
    /* ReduceMean over random sets of axes (none: all) against the reference */
    static float v[2000], want[2000], got[2000];
    for (int it = 0; it < 60; it++) {
        fx_reduce_params r = {rand_shape(irand(1, 5), 5), 0, {0}, irand(0, 1)};
        for (int a = 0; a < r.x.rank; a++)
            if (irand(0, 1))
                r.axes[r.n_axes++] = irand(0, 1) ? a : a - r.x.rank; /* negative too */
        fill(v, fx_shape_numel(&r.x));
        fx_shape os;
        CHECK(fx_reduce_out_shape(&r, &os, NULL) == FX_OK);
        CHECK(fx_op_reduce_mean_ref(&r, v, want) == FX_OK);
        fx_cu_red d;
        CHECK(fx_lower_reduce(&r, &d) == FX_OK && d.n_out == fx_shape_numel(&os));
        fx_cu_red_host(&d, v, got);
        CHECK_MSG(same(got, want, d.n_out), "rank %d, %d axes", r.x.rank, r.n_axes);
    }
    fx_reduce_params twice = {x, 2, {1, -3}, 1}; /* axis 1 named twice */
    fx_cu_red d;
    CHECK(fx_lower_reduce(&twice, &d) == FX_ERR_UNSUPPORTED);
}

/* x -> Relu -> ReduceMean (H, W) -> y: the two op types the test asks the
 * CUDA backend to refuse (FX_CUDA_REFUSE), since it runs every op that a
 * prepared graph can hold. */
static fx_graph *refused_graph(void)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_shape in = {4, {-1, 2, 8, 8}};
    CHECK(fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err) == FX_OK);
    int64_t axes[2] = {2, 3};
    fx_attr ra = {.name = "axes", .type = FX_ATTR_INTS, .ints = axes, .n = 2};
    const char *o1[] = {"r"}, *o2[] = {"y"};
    CHECK(fx_graph_add_node(g, "relu", "Relu", (const char *[]){"x"}, 1, o1, 1, NULL, 0, &err) ==
          FX_OK);
    CHECK(fx_graph_add_node(g, "mean", "ReduceMean", (const char *[]){"r"}, 1, o2, 1, &ra, 1,
                            &err) == FX_OK);
    CHECK(fx_graph_add_output(g, "y", &err) == FX_OK);
    CHECK_MSG(fx_graph_prepare(g, 1, 8, 8, &err) == FX_OK, "%s", err.msg);
    return g;
}

/* x -> Pad (pads an int64 constant input) -> Slice (constant int64 inputs):
 * bound parameters, not run-time int64 tensors. */
static fx_graph *pad_slice_graph(void)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_shape in = {4, {-1, 2, 5, 5}}, s8 = {1, {8}}, s1 = {1, {1}};
    int64_t pads[8] = {0, 0, 1, 1, 0, 0, 1, 1}, st[1] = {-1}, en[1] = {-100}, ax[1] = {3},
            sp[1] = {-2};
    CHECK(fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "pads", FX_DT_INT64, &s8, pads, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "st", FX_DT_INT64, &s1, st, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "en", FX_DT_INT64, &s1, en, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "ax", FX_DT_INT64, &s1, ax, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "sp", FX_DT_INT64, &s1, sp, &err) == FX_OK);
    const char *o1[] = {"p"}, *o2[] = {"y"};
    fx_attr m = {.name = "mode", .type = FX_ATTR_STRING, .s = "reflect"};
    CHECK(fx_graph_add_node(g, "pad", "Pad", (const char *[]){"x", "pads"}, 2, o1, 1, &m, 1,
                            &err) == FX_OK);
    CHECK(fx_graph_add_node(g, "sl", "Slice", (const char *[]){"p", "st", "en", "ax", "sp"}, 5, o2,
                            1, NULL, 0, &err) == FX_OK);
    CHECK(fx_graph_add_output(g, "y", &err) == FX_OK);
    CHECK_MSG(fx_graph_prepare(g, 2, 5, 5, &err) == FX_OK, "%s", err.msg);
    return g;
}

/* fx_lower_copies, the node-level enumeration the CUDA forward copies
 * along and its backward accumulates back along: through the host executor
 * on a reference plan's own values, every copy node of a graph (Transpose,
 * Split, Concat, Slice, Gather with a repeated and a negative index) gives
 * the plan's output exactly. */
typedef struct copies_ctx {
    const float *const *in;
    float *const *out;
} copies_ctx;

static fx_status copy_host(void *ctx, const fx_cu_map *m, int in, int out, fx_error *e)
{
    (void)e;
    const copies_ctx *c = ctx;
    fx_cu_map_host(m, c->in[in], c->out[out]);
    return FX_OK;
}

static void test_lower_copies(void)
{
    fx_graph *g = fx_graph_create();
    fx_graph_set_opset(g, 13);
    fx_shape in = {4, {-1, 4, 5, 6}}, s1 = {1, {1}}, s2 = {1, {2}}, s3 = {1, {3}};
    int64_t perm[4] = {0, 3, 1, 2}, sizes[2] = {2, 4}, st = 1, en = 5, ax = 2, ix[3] = {2, -1, 2};
    CHECK(fx_graph_add_input(g, "x", FX_DT_FLOAT, &in, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "sizes", FX_DT_INT64, &s2, sizes, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "st", FX_DT_INT64, &s1, &st, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "en", FX_DT_INT64, &s1, &en, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "ax", FX_DT_INT64, &s1, &ax, &err) == FX_OK);
    CHECK(fx_graph_add_constant(g, "ix", FX_DT_INT64, &s3, ix, &err) == FX_OK);
    fx_attr pa = {.name = "perm", .type = FX_ATTR_INTS, .ints = perm, .n = 4};
    fx_attr a1 = {.name = "axis", .type = FX_ATTR_INT, .i = 1};
    fx_attr a3 = {.name = "axis", .type = FX_ATTR_INT, .i = 3};
    CHECK(fx_graph_add_node(g, "tr", "Transpose", (const char *[]){"x"}, 1, (const char *[]){"t"},
                            1, &pa, 1, &err) == FX_OK); /* (N,6,4,5) */
    CHECK(fx_graph_add_node(g, "sp", "Split", (const char *[]){"t", "sizes"}, 2,
                            (const char *[]){"s0", "s1"}, 2, &a1, 1, &err) == FX_OK);
    CHECK(fx_graph_add_node(g, "cat", "Concat", (const char *[]){"s1", "s0"}, 2,
                            (const char *[]){"c"}, 1, &a1, 1, &err) == FX_OK);
    CHECK(fx_graph_add_node(g, "sl", "Slice", (const char *[]){"c", "st", "en", "ax"}, 4,
                            (const char *[]){"l"}, 1, NULL, 0, &err) == FX_OK);
    CHECK(fx_graph_add_node(g, "ga", "Gather", (const char *[]){"l", "ix"}, 2,
                            (const char *[]){"y"}, 1, &a3, 1, &err) == FX_OK);
    CHECK(fx_graph_add_output(g, "y", &err) == FX_OK);
    CHECK_MSG(fx_graph_prepare(g, 2, 5, 6, &err) == FX_OK, "%s", err.msg);
    const char *keep[] = {"t", "s0", "s1", "c", "l"};
    fx_plan_opts o = {.keep = keep, .n_keep = 5, .use_reference = 1};
    fx_plan *p = NULL;
    CHECK_MSG(fx_plan_create(g, &o, &p, &err) == FX_OK, "%s", err.msg);
    static float x[2 * 4 * 5 * 6], got[2][2 * 4 * 5 * 6];
    fill(x, 2 * 4 * 5 * 6);
    CHECK(p && fx_plan_run(p, x, &err) == FX_OK);
    int checked = 0;
    for (int i = 0; p && i < g->n_nodes; i++) {
        const fx_node *n = &g->nodes[i];
        const float *ins[2] = {NULL, NULL};
        float *outs[2] = {got[0], got[1]};
        for (int k = 0; k < n->n_in && k < 2; k++)
            ins[k] = g->t[n->in[k]].kind == FX_T_INPUT
                         ? x
                         : fx_plan_tensor(p, g->t[n->in[k]].name, NULL);
        copies_ctx c = {ins, outs};
        CHECK_MSG(fx_lower_copies(g, n, copy_host, &c, &err) == FX_OK, "%s: %s", n->name, err.msg);
        for (int k = 0; k < n->n_out; k++) {
            fx_shape s;
            const float *want = fx_plan_tensor(p, g->t[n->out[k]].name, &s);
            CHECK_MSG(want && same(got[k], want, fx_shape_numel(&s)), "%s output %d", n->name, k);
        }
        checked++;
    }
    CHECK(checked == 5);
    fx_plan_destroy(p);
    fx_graph_destroy(g);
}

static void test_unsupported_and_fallback(void)
{
    fx_graph *ps = pad_slice_graph();
    char none[256];
    CHECK_MSG(fx_plan_unsupported(ps, FX_DEVICE_CUDA, none, sizeof none) == 0, "%s", none);
    fx_graph_destroy(ps);

    fx_graph *g = refused_graph();
    char why[1024];
#ifdef FX_HAVE_CUDA
    CHECK(fx_plan_unsupported(g, FX_DEVICE_CUDA, why, sizeof why) == 0);
#endif
    setenv("FX_CUDA_REFUSE", "Softmax,Relu,ReduceMean", 1);
    CHECK(fx_plan_unsupported(g, FX_DEVICE_CPU, why, sizeof why) == 0 && !why[0]);
#ifdef FX_HAVE_CUDA
    int bad = fx_plan_unsupported(g, FX_DEVICE_CUDA, why, sizeof why);
    CHECK_MSG(bad == 2 && strstr(why, "Relu (node 'relu'): refused by FX_CUDA_REFUSE") &&
                  strstr(why, "ReduceMean (node 'mean'): refused"),
              "%d: %s", bad, why);
#endif
    fx_device_kind got;
    char notice[1024];
    int have_gpu = fx_device_resolve(FX_DEVICE_CUDA, &got, NULL, 0, NULL) == FX_OK;
    fx_status st = fx_plan_pick_device(g, FX_DEVICE_AUTO, &got, notice, sizeof notice, &err);
    CHECK(st == FX_OK && got == FX_DEVICE_CPU);
    CHECK_MSG(
        strstr(notice, have_gpu ? "the CUDA backend cannot run 2 nodes" : "no CUDA device found ("),
        "%s", notice);
    st = fx_plan_pick_device(g, FX_DEVICE_CUDA, &got, notice, sizeof notice, &err);
    CHECK_MSG(st == (have_gpu ? FX_ERR_UNSUPPORTED : FX_ERR_DEVICE) &&
                  strstr(err.msg, "--device cuda"),
              "%s", err.msg);
    /* A CUDA plan without a usable device fails at create, naming why. */
    fx_plan *p = NULL;
    fx_plan_opts o = {.device = FX_DEVICE_CUDA};
    st = fx_plan_create(g, &o, &p, &err);
    CHECK_MSG(st != FX_OK && !p && strstr(err.msg, have_gpu ? "cannot run 2 nodes" : "cuda"), "%s",
              err.msg);
    /* The CPU runs it. */
    o.device = FX_DEVICE_CPU;
    CHECK(fx_plan_create(g, &o, &p, &err) == FX_OK);
    fx_plan_destroy(p);
    unsetenv("FX_CUDA_REFUSE");
    fx_graph_destroy(g);
}

static void test_device_precision_parse(void)
{
    fx_device_kind k = FX_DEVICE_AUTO;
    int idx = -1;
    CHECK(fx_device_parse_spec("cuda:3", &k, &idx) == 0 && k == FX_DEVICE_CUDA && idx == 3);
    CHECK(fx_device_parse_spec("cuda", &k, &idx) == 0 && idx == 0);
    CHECK(fx_device_parse_spec("cpu", &k, &idx) == 0 && k == FX_DEVICE_CPU && idx == 0);
    CHECK(fx_device_parse_spec("cuda:", &k, &idx) == -1);
    CHECK(fx_device_parse_spec("cuda:-1", &k, &idx) == -1);
    CHECK(fx_device_parse_spec("cuda:64", &k, &idx) == -1);
    CHECK(fx_device_parse_spec("cuda:1x", &k, &idx) == -1);
    CHECK(fx_device_parse("cuda:0", &k) == 0 && k == FX_DEVICE_CUDA);
    fx_precision p = FX_PREC_DEFAULT;
    CHECK(fx_precision_parse("bf16", &p) == 0 && p == FX_PREC_BF16);
    CHECK(fx_precision_parse("tf32", &p) == 0 && p == FX_PREC_TF32);
    CHECK(fx_precision_parse("fp8", &p) == -1 && p == FX_PREC_TF32);
    CHECK(!strcmp(fx_precision_name(FX_PREC_FP16), "fp16"));
    /* Engine lists: parsed, spelled back the same, and bad lists refused */
    static const char *const good[] = {"cuda:0,1", "cuda:2,0,2", "cuda:all", "cuda:3",
                                       "cpu",      "auto",       "cuda"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        fx_device_list l;
        char back[64];
        CHECK_MSG(fx_device_parse_list(good[i], &k, &l) == 0, "%s", good[i]);
        fx_device_list_spec(k, &l, back, sizeof back);
        CHECK_MSG(!strcmp(back, good[i]), "%s spelled back as %s", good[i], back);
    }
    fx_device_list l = {0};
    CHECK(fx_device_parse_list("cuda:0,0", &k, &l) == 0 && l.n == 2 && l.index[1] == 0 && !l.all);
    CHECK(fx_device_parse_list("cuda:all", &k, &l) == 0 && l.all && l.n == 0);
    CHECK(fx_device_parse_list("cuda:1", &k, &l) == 0 && l.n == 1 && l.index[0] == 1);
    static const char *const bad[] = {
        "cuda:0,",   "cuda:,1",   "cuda:0,,1",
        "cuda:0,64", "cuda:0,-1", "cuda:a,1",
        "cpu:0,1",   "cuda:alll", "cuda:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        k = FX_DEVICE_AUTO;
        CHECK_MSG(fx_device_parse_list(bad[i], &k, &l) == -1 && k == FX_DEVICE_AUTO, "%s", bad[i]);
    }
    l = (fx_device_list){0, 1, {0}};
    fx_error e = {0};
    fx_status rs = fx_device_list_resolve(&l, &e);
    CHECK_MSG(rs == FX_OK ? l.n >= 1 && !l.all : rs == FX_ERR_DEVICE && strstr(e.msg, "cuda:all"),
              "%d %s", rs, e.msg);
}

int main(void)
{
    RUN(test_hd_arithmetic);
    RUN(test_lower_transpose);
    RUN(test_lower_concat_split);
    RUN(test_lower_slice_gather);
    RUN(test_lower_binary);
    RUN(test_lower_vjp);
    RUN(test_lower_copies);
    RUN(test_lower_matmul);
    RUN(test_lower_axes);
    RUN(test_unsupported_and_fallback);
    RUN(test_device_precision_parse);
    return check_summary();
}
