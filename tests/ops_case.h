/* Operator cases stored in HDF5, shared by tests/test_ops.c and
 * tests/tools/fx_ops_run.c.  Header-only (static functions) because the
 * tests link only the library.
 *
 * File layout (written by tests/py/gen_ops_ref.py):
 *   /cases/<name>           one group per case, attributes:
 *       op      string: conv batchnorm relu leaky_relu clip sigmoid
 *               hard_sigmoid hard_swish tanh elu selu gelu prelu add sub mul div concat
 *               split maxpool avgpool global_avgpool global_maxpool gemm
 *               matmul softmax transpose pad reduce_mean
 *       tol     float: max|ours - torch| / max|torch| allowed
 *       ONNX attributes of the op (ints as int64 arrays, floats as float64):
 *         conv: strides dilations pads(t,l,b,r) group [auto_pad string]
 *         batchnorm: epsilon   leaky_relu: alpha   clip: min max
 *         hard_sigmoid: alpha beta   elu: alpha   selu: alpha gamma
 *         concat/split/softmax: axis
 *         split: split (sizes)   maxpool/avgpool: kernel_shape strides pads
 *         ceil_mode [dilations] [count_include_pad]
 *         gemm: alpha beta transA transB   transpose: perm
 *         pad: pads mode(constant|reflect|edge) value
 *         reduce_mean: [axes] keepdims
 *     datasets in0..inK (float32, the op's inputs in ONNX order) and
 *     out0..outM (float32, PyTorch's outputs).
 * fx_ops_run writes /cases/<name>/ref<i> (reference kernels) and, for ops
 * with a fast variant (conv, gemm), fast<i>. */
#ifndef FX_TESTS_OPS_CASE_H
#define FX_TESTS_OPS_CASE_H

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fxscreen/ops.h"

#define FX_CASE_MAX_IO 8

typedef struct fx_case_tensor {
    fx_shape s;
    float *data;
} fx_case_tensor;

typedef struct fx_case {
    hid_t g; /* the case group (attributes) */
    char op[32];
    double tol;
    int n_in, n_want;
    fx_case_tensor in[FX_CASE_MAX_IO], want[FX_CASE_MAX_IO];
} fx_case;

/* ---- HDF5 reading -------------------------------------------------------- */

/* Read a string attribute (fixed or variable length) into buf; 0 if absent. */
static inline int fx_case_attr_str(hid_t obj, const char *name, char *buf, size_t n)
{
    if (H5Aexists(obj, name) <= 0)
        return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5Aget_type(a);
    int ok = 0;
    if (H5Tget_class(t) == H5T_STRING) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mt, H5Tget_cset(t)); /* h5py writes UTF-8: no conversion path otherwise */
        if (H5Tis_variable_str(t) > 0) {
            char *s = NULL;
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(buf, n, "%s", s);
                ok = 1;
            }
            if (s)
                H5free_memory(s);
        } else {
            size_t sz = H5Tget_size(t);
            char *tmp = calloc(1, sz + 1);
            H5Tset_size(mt, sz + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            if (tmp && H5Aread(a, mt, tmp) >= 0) {
                snprintf(buf, n, "%s", tmp);
                ok = 1;
            }
            free(tmp);
        }
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
    return ok;
}

/* Read an integer attribute array (at most max values); returns the count,
 * or -1 if absent / too long. */
static inline int fx_case_attr_ints(hid_t obj, const char *name, int64_t *v, int max)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int r = -1;
    if (n >= 0 && n <= max && (n == 0 || H5Aread(a, H5T_NATIVE_INT64, v) >= 0))
        r = (int)n;
    H5Sclose(sp);
    H5Aclose(a);
    return r;
}

/* One integer attribute with a default. */
static inline int64_t fx_case_attr_int(hid_t obj, const char *name, int64_t dflt)
{
    int64_t v[1];
    return fx_case_attr_ints(obj, name, v, 1) == 1 ? v[0] : dflt;
}

static inline double fx_case_attr_f(hid_t obj, const char *name, double dflt)
{
    if (H5Aexists(obj, name) <= 0)
        return dflt;
    double v = dflt;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
        v = dflt;
    H5Aclose(a);
    return v;
}

static inline int fx_case_alloc(fx_case_tensor *t, const fx_shape *s)
{
    int64_t n = fx_shape_numel(s);
    t->s = *s;
    t->data = n >= 0 ? malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)) : NULL;
    return t->data ? 0 : -1;
}

/* Read dataset `name` of g as float32; 0 ok, 1 absent, -1 error. */
static inline int fx_case_read(hid_t g, const char *name, fx_case_tensor *t)
{
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        return 1;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_dims(sp, dims, NULL), rc = -1;
    fx_shape s = {.rank = rank};
    if (rank >= 0 && rank <= FX_OPS_MAX_RANK) {
        for (int i = 0; i < rank; i++)
            s.d[i] = (int64_t)dims[i];
        if (fx_case_alloc(t, &s) == 0 &&
            H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) >= 0)
            rc = 0;
    }
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

static inline int fx_case_write(hid_t g, const char *name, const fx_case_tensor *t)
{
    hsize_t dims[FX_OPS_MAX_RANK];
    for (int i = 0; i < t->s.rank; i++)
        dims[i] = (hsize_t)t->s.d[i];
    hid_t sp = t->s.rank ? H5Screate_simple(t->s.rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(g, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) >= 0
                 ? 0
                 : -1;
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    return rc;
}

static inline void fx_case_free_tensors(fx_case_tensor *t, int n)
{
    for (int i = 0; i < n; i++) {
        free(t[i].data);
        t[i].data = NULL;
    }
}

/* Load the case in group g (inputs in0.., wanted outputs out0..). */
static inline int fx_case_load(hid_t g, fx_case *c)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    if (!fx_case_attr_str(g, "op", c->op, sizeof c->op))
        return -1;
    c->tol = fx_case_attr_f(g, "tol", 1e-5);
    char name[16];
    for (int i = 0; i < FX_CASE_MAX_IO; i++) {
        snprintf(name, sizeof name, "in%d", i);
        int r = fx_case_read(g, name, &c->in[i]);
        if (r < 0)
            return -1;
        if (r > 0)
            break;
        c->n_in++;
    }
    for (int i = 0; i < FX_CASE_MAX_IO; i++) {
        snprintf(name, sizeof name, "out%d", i);
        int r = fx_case_read(g, name, &c->want[i]);
        if (r < 0)
            return -1;
        if (r > 0)
            break;
        c->n_want++;
    }
    return 0;
}

static inline void fx_case_unload(fx_case *c)
{
    fx_case_free_tensors(c->in, c->n_in);
    fx_case_free_tensors(c->want, c->n_want);
}

/* ---- running one case ---------------------------------------------------- */

/* Each runner fills out[] (allocating them) and *n_out; `fast` asks for the
 * fast variant (only conv and gemm have one).  Returns an fx_status. */
typedef fx_status (*fx_case_fn)(const fx_case *c, int fast, fx_case_tensor *out, int *n_out);

static inline fx_status fx_case_conv(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    const fx_shape *xs = &c->in[0].s, *ws = &c->in[1].s;
    if (c->n_in < 2 || xs->rank != 4 || ws->rank != 4)
        return FX_ERR_USAGE;
    int64_t st[2] = {1, 1}, dl[2] = {1, 1}, pd[4] = {0, 0, 0, 0};
    fx_case_attr_ints(c->g, "strides", st, 2);
    fx_case_attr_ints(c->g, "dilations", dl, 2);
    fx_case_attr_ints(c->g, "pads", pd, 4);
    fx_conv2d_params p = {.n = (int)xs->d[0],
                          .c_in = (int)xs->d[1],
                          .h = (int)xs->d[2],
                          .w = (int)xs->d[3],
                          .c_out = (int)ws->d[0],
                          .kh = (int)ws->d[2],
                          .kw = (int)ws->d[3],
                          .stride_h = (int)st[0],
                          .stride_w = (int)st[1],
                          .dil_h = (int)dl[0],
                          .dil_w = (int)dl[1],
                          .pad_t = (int)pd[0],
                          .pad_l = (int)pd[1],
                          .pad_b = (int)pd[2],
                          .pad_r = (int)pd[3],
                          .groups = (int)fx_case_attr_int(c->g, "group", 1)};
    char ap[32] = "NOTSET";
    fx_case_attr_str(c->g, "auto_pad", ap, sizeof ap);
    fx_auto_pad mode = strcmp(ap, "SAME_UPPER") == 0   ? FX_PAD_SAME_UPPER
                       : strcmp(ap, "SAME_LOWER") == 0 ? FX_PAD_SAME_LOWER
                       : strcmp(ap, "VALID") == 0      ? FX_PAD_VALID
                                                       : FX_PAD_NOTSET;
    if (fx_auto_pad_resolve(mode, p.h, p.kh, p.stride_h, p.dil_h, &p.pad_t, &p.pad_b, NULL) ||
        fx_auto_pad_resolve(mode, p.w, p.kw, p.stride_w, p.dil_w, &p.pad_l, &p.pad_r, NULL))
        return FX_ERR_USAGE;
    int oh, ow;
    if (fx_conv2d_out_hw(&p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    fx_shape ys = {4, {p.n, p.c_out, oh, ow}};
    if (fx_case_alloc(&out[0], &ys))
        return FX_ERR_NOMEM;
    *n_out = 1;
    const float *b = c->n_in > 2 ? c->in[2].data : NULL;
    return (fast ? fx_op_conv2d_fast : fx_op_conv2d_ref)(&p, c->in[0].data, c->in[1].data, b,
                                                         out[0].data);
}

static inline fx_status fx_case_batchnorm(const fx_case *c, int fast, fx_case_tensor *out,
                                          int *n_out)
{
    (void)fast;
    const fx_shape *xs = &c->in[0].s;
    if (c->n_in != 5 || xs->rank < 2)
        return FX_ERR_USAGE;
    fx_batchnorm_params p = {.n = xs->d[0],
                             .c = xs->d[1],
                             .spatial = 1,
                             .epsilon = (float)fx_case_attr_f(c->g, "epsilon", 1e-5)};
    for (int i = 2; i < xs->rank; i++)
        p.spatial *= xs->d[i];
    if (fx_case_alloc(&out[0], xs))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return fx_op_batchnorm_ref(&p, c->in[0].data, c->in[1].data, c->in[2].data, c->in[3].data,
                               c->in[4].data, out[0].data);
}

static inline fx_status fx_case_unary(const fx_case *c, fx_case_tensor *out, int *n_out,
                                      fx_status (*fn)(const fx_act_params *, const float *,
                                                      float *),
                                      float alpha, float beta)
{
    fx_act_params p = {.n = fx_shape_numel(&c->in[0].s), .alpha = alpha, .beta = beta};
    if (c->n_in != 1)
        return FX_ERR_USAGE;
    if (fx_case_alloc(&out[0], &c->in[0].s))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return fn(&p, c->in[0].data, out[0].data);
}

static inline fx_status fx_case_act(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    const char *op = c->op;
    double a = fx_case_attr_f(c->g, "alpha", 0.0), b = fx_case_attr_f(c->g, "beta", 0.0);
    if (strcmp(op, "relu") == 0)
        return fx_case_unary(c, out, n_out, fx_op_relu_ref, 0, 0);
    if (strcmp(op, "leaky_relu") == 0)
        return fx_case_unary(c, out, n_out, fx_op_leaky_relu_ref, (float)a, 0);
    if (strcmp(op, "clip") == 0)
        return fx_case_unary(c, out, n_out, fx_op_clip_ref,
                             (float)fx_case_attr_f(c->g, "min", -INFINITY),
                             (float)fx_case_attr_f(c->g, "max", INFINITY));
    if (strcmp(op, "sigmoid") == 0)
        return fx_case_unary(c, out, n_out, fx_op_sigmoid_ref, 0, 0);
    if (strcmp(op, "hard_sigmoid") == 0)
        return fx_case_unary(c, out, n_out, fx_op_hard_sigmoid_ref, (float)a, (float)b);
    if (strcmp(op, "hard_swish") == 0)
        return fx_case_unary(c, out, n_out, fx_op_hard_swish_ref, 0, 0);
    if (strcmp(op, "tanh") == 0)
        return fx_case_unary(c, out, n_out, fx_op_tanh_ref, 0, 0);
    if (strcmp(op, "elu") == 0)
        return fx_case_unary(c, out, n_out, fx_op_elu_ref, (float)a, 0);
    if (strcmp(op, "selu") == 0)
        return fx_case_unary(c, out, n_out, fx_op_selu_ref, (float)a,
                             (float)fx_case_attr_f(c->g, "gamma", 0.0));
    if (strcmp(op, "gelu") == 0)
        return fx_case_unary(c, out, n_out, fx_op_gelu_ref, 0, 0);
    return FX_ERR_UNSUPPORTED;
}

static inline fx_status fx_case_binary(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    if (c->n_in != 2)
        return FX_ERR_USAGE;
    fx_binary_params p = {.a = c->in[0].s, .b = c->in[1].s};
    fx_shape o;
    if (fx_broadcast_shape(&p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    if (fx_case_alloc(&out[0], &o))
        return FX_ERR_NOMEM;
    *n_out = 1;
    const char *op = c->op;
    fx_status (*fn)(const fx_binary_params *, const float *, const float *, float *) =
        strcmp(op, "add") == 0   ? fx_op_add_ref
        : strcmp(op, "sub") == 0 ? fx_op_sub_ref
        : strcmp(op, "mul") == 0 ? fx_op_mul_ref
        : strcmp(op, "div") == 0 ? fx_op_div_ref
                                 : fx_op_prelu_ref;
    return fn(&p, c->in[0].data, c->in[1].data, out[0].data);
}

static inline fx_status fx_case_concat(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    fx_shape shapes[FX_CASE_MAX_IO], o;
    const float *xs[FX_CASE_MAX_IO];
    for (int i = 0; i < c->n_in; i++)
        shapes[i] = c->in[i].s, xs[i] = c->in[i].data;
    fx_concat_params p = {
        .n_inputs = c->n_in, .shapes = shapes, .axis = (int)fx_case_attr_int(c->g, "axis", 0)};
    if (fx_concat_out_shape(&p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    if (fx_case_alloc(&out[0], &o))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return fx_op_concat_ref(&p, xs, out[0].data);
}

static inline fx_status fx_case_split(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    int64_t sizes[FX_CASE_MAX_IO];
    int ns = fx_case_attr_ints(c->g, "split", sizes, FX_CASE_MAX_IO);
    fx_split_params p = {.x = c->in[0].s,
                         .axis = (int)fx_case_attr_int(c->g, "axis", 0),
                         .n_outputs = ns,
                         .sizes = sizes};
    int ax = p.axis < 0 ? p.axis + p.x.rank : p.axis;
    if (c->n_in != 1 || ns < 1 || ax < 0 || ax >= p.x.rank)
        return FX_ERR_USAGE;
    float *ys[FX_CASE_MAX_IO];
    for (int i = 0; i < ns; i++) {
        fx_shape s = p.x;
        s.d[ax] = sizes[i] >= 0 ? sizes[i] : 0;
        if (fx_case_alloc(&out[i], &s))
            return FX_ERR_NOMEM;
        ys[i] = out[i].data;
        *n_out = i + 1;
    }
    return fx_op_split_ref(&p, c->in[0].data, ys);
}

static inline fx_status fx_case_pool(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    const fx_shape *xs = &c->in[0].s;
    int64_t k[2], st[2] = {1, 1}, dl[2] = {1, 1}, pd[4] = {0, 0, 0, 0};
    if (c->n_in != 1 || xs->rank != 4 || fx_case_attr_ints(c->g, "kernel_shape", k, 2) != 2)
        return FX_ERR_USAGE;
    fx_case_attr_ints(c->g, "strides", st, 2);
    fx_case_attr_ints(c->g, "dilations", dl, 2);
    fx_case_attr_ints(c->g, "pads", pd, 4);
    fx_pool2d_params p = {.n = (int)xs->d[0],
                          .c = (int)xs->d[1],
                          .h = (int)xs->d[2],
                          .w = (int)xs->d[3],
                          .kh = (int)k[0],
                          .kw = (int)k[1],
                          .stride_h = (int)st[0],
                          .stride_w = (int)st[1],
                          .dil_h = (int)dl[0],
                          .dil_w = (int)dl[1],
                          .pad_t = (int)pd[0],
                          .pad_l = (int)pd[1],
                          .pad_b = (int)pd[2],
                          .pad_r = (int)pd[3],
                          .ceil_mode = (int)fx_case_attr_int(c->g, "ceil_mode", 0),
                          .count_include_pad = (int)fx_case_attr_int(c->g, "count_include_pad", 0)};
    int oh, ow;
    if (fx_pool2d_out_hw(&p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    fx_shape ys = {4, {p.n, p.c, oh, ow}};
    if (fx_case_alloc(&out[0], &ys))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return (strcmp(c->op, "maxpool") == 0 ? fx_op_maxpool2d_ref
                                          : fx_op_avgpool2d_ref)(&p, c->in[0].data, out[0].data);
}

static inline fx_status fx_case_global_pool(const fx_case *c, int fast, fx_case_tensor *out,
                                            int *n_out)
{
    (void)fast;
    const fx_shape *xs = &c->in[0].s;
    if (c->n_in != 1 || xs->rank < 3)
        return FX_ERR_USAGE;
    fx_global_pool_params p = {.n = xs->d[0], .c = xs->d[1], .spatial = 1};
    fx_shape ys = *xs;
    for (int i = 2; i < xs->rank; i++)
        p.spatial *= xs->d[i], ys.d[i] = 1;
    if (fx_case_alloc(&out[0], &ys))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return (strcmp(c->op, "global_maxpool") == 0
                ? fx_op_global_maxpool_ref
                : fx_op_global_avgpool_ref)(&p, c->in[0].data, out[0].data);
}

static inline fx_status fx_case_gemm(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    const fx_shape *as = &c->in[0].s, *bs = &c->in[1].s;
    if (c->n_in < 2 || as->rank != 2 || bs->rank != 2)
        return FX_ERR_USAGE;
    fx_gemm_params p = {.trans_a = (int)fx_case_attr_int(c->g, "transA", 0),
                        .trans_b = (int)fx_case_attr_int(c->g, "transB", 0),
                        .alpha = (float)fx_case_attr_f(c->g, "alpha", 1.0),
                        .beta = (float)fx_case_attr_f(c->g, "beta", 1.0)};
    p.m = p.trans_a ? as->d[1] : as->d[0];
    p.k = p.trans_a ? as->d[0] : as->d[1];
    p.n = p.trans_b ? bs->d[0] : bs->d[1];
    const float *cd = NULL;
    if (c->n_in > 2) {
        const fx_shape *cs = &c->in[2].s; /* rank 0, 1 (N) or 2 */
        p.c_rows = cs->rank == 2 ? cs->d[0] : 1;
        p.c_cols = cs->rank >= 1 ? cs->d[cs->rank - 1] : 1;
        cd = c->in[2].data;
    }
    fx_shape ys = {2, {p.m, p.n}};
    if (fx_case_alloc(&out[0], &ys))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return (fast ? fx_op_gemm_fast : fx_op_gemm_ref)(&p, c->in[0].data, c->in[1].data, cd,
                                                     out[0].data);
}

static inline fx_status fx_case_matmul(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    fx_matmul_params p = {.a = c->in[0].s, .b = c->in[1].s};
    fx_shape o;
    if (c->n_in != 2 || fx_matmul_out_shape(&p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    if (fx_case_alloc(&out[0], &o))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return fx_op_matmul_ref(&p, c->in[0].data, c->in[1].data, out[0].data);
}

static inline fx_status fx_case_softmax(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    fx_softmax_params p = {.x = c->in[0].s, .axis = (int)fx_case_attr_int(c->g, "axis", -1)};
    if (c->n_in != 1 || fx_case_alloc(&out[0], &p.x))
        return FX_ERR_USAGE;
    *n_out = 1;
    return fx_op_softmax_ref(&p, c->in[0].data, out[0].data);
}

static inline fx_status fx_case_transpose(const fx_case *c, int fast, fx_case_tensor *out,
                                          int *n_out)
{
    (void)fast;
    int64_t perm[FX_OPS_MAX_RANK];
    fx_transpose_params p = {.x = c->in[0].s};
    if (c->n_in != 1 || fx_case_attr_ints(c->g, "perm", perm, FX_OPS_MAX_RANK) != p.x.rank)
        return FX_ERR_USAGE;
    for (int i = 0; i < p.x.rank; i++)
        p.perm[i] = (int)perm[i];
    fx_shape o;
    if (fx_transpose_out_shape(&p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    if (fx_case_alloc(&out[0], &o))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return fx_op_transpose_ref(&p, c->in[0].data, out[0].data);
}

static inline fx_status fx_case_pad(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    (void)fast;
    fx_pad_params p = {.x = c->in[0].s, .value = (float)fx_case_attr_f(c->g, "value", 0.0)};
    char mode[32] = "constant";
    fx_case_attr_str(c->g, "mode", mode, sizeof mode);
    p.mode = strcmp(mode, "reflect") == 0 ? FX_PADMODE_REFLECT
             : strcmp(mode, "edge") == 0  ? FX_PADMODE_EDGE
                                          : FX_PADMODE_CONSTANT;
    if (c->n_in != 1 ||
        fx_case_attr_ints(c->g, "pads", p.pads, 2 * FX_OPS_MAX_RANK) != 2 * p.x.rank)
        return FX_ERR_USAGE;
    fx_shape o;
    if (fx_pad_out_shape(&p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    if (fx_case_alloc(&out[0], &o))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return fx_op_pad_ref(&p, c->in[0].data, out[0].data);
}

static inline fx_status fx_case_reduce_mean(const fx_case *c, int fast, fx_case_tensor *out,
                                            int *n_out)
{
    (void)fast;
    int64_t axes[FX_OPS_MAX_RANK];
    int na = fx_case_attr_ints(c->g, "axes", axes, FX_OPS_MAX_RANK);
    fx_reduce_params p = {.x = c->in[0].s,
                          .n_axes = na > 0 ? na : 0,
                          .keepdims = (int)fx_case_attr_int(c->g, "keepdims", 1)};
    for (int i = 0; i < p.n_axes; i++)
        p.axes[i] = (int)axes[i];
    fx_shape o;
    if (c->n_in != 1 || fx_reduce_out_shape(&p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    if (fx_case_alloc(&out[0], &o))
        return FX_ERR_NOMEM;
    *n_out = 1;
    return fx_op_reduce_mean_ref(&p, c->in[0].data, out[0].data);
}

typedef struct fx_case_op {
    const char *name;
    fx_case_fn fn;
    int has_fast;
} fx_case_op;

static const fx_case_op fx_case_ops[] = {
    {"conv", fx_case_conv, 1},
    {"batchnorm", fx_case_batchnorm, 0},
    {"relu", fx_case_act, 0},
    {"leaky_relu", fx_case_act, 0},
    {"clip", fx_case_act, 0},
    {"sigmoid", fx_case_act, 0},
    {"hard_sigmoid", fx_case_act, 0},
    {"hard_swish", fx_case_act, 0},
    {"tanh", fx_case_act, 0},
    {"elu", fx_case_act, 0},
    {"selu", fx_case_act, 0},
    {"gelu", fx_case_act, 0},
    {"prelu", fx_case_binary, 0},
    {"add", fx_case_binary, 0},
    {"sub", fx_case_binary, 0},
    {"mul", fx_case_binary, 0},
    {"div", fx_case_binary, 0},
    {"concat", fx_case_concat, 0},
    {"split", fx_case_split, 0},
    {"maxpool", fx_case_pool, 0},
    {"avgpool", fx_case_pool, 0},
    {"global_avgpool", fx_case_global_pool, 0},
    {"global_maxpool", fx_case_global_pool, 0},
    {"gemm", fx_case_gemm, 1},
    {"matmul", fx_case_matmul, 0},
    {"softmax", fx_case_softmax, 0},
    {"transpose", fx_case_transpose, 0},
    {"pad", fx_case_pad, 0},
    {"reduce_mean", fx_case_reduce_mean, 0},
};

static const fx_case_op *fx_case_find_op(const char *name)
{
    for (size_t i = 0; i < sizeof fx_case_ops / sizeof fx_case_ops[0]; i++)
        if (strcmp(fx_case_ops[i].name, name) == 0)
            return &fx_case_ops[i];
    return NULL;
}

/* Run c with the reference (fast = 0) or fast kernels into out[]; on
 * failure the outputs are freed and *n_out is 0. */
static inline fx_status fx_case_run(const fx_case *c, int fast, fx_case_tensor *out, int *n_out)
{
    const fx_case_op *op = fx_case_find_op(c->op);
    *n_out = 0;
    if (!op)
        return FX_ERR_UNSUPPORTED;
    fx_status st = op->fn(c, fast, out, n_out);
    if (st != FX_OK) {
        fx_case_free_tensors(out, *n_out);
        *n_out = 0;
    }
    return st;
}

/* max|got - want| / max|want| (absolute when want is all zero); inf on a
 * shape mismatch or a NaN. */
static inline double fx_case_rel_err(const fx_case_tensor *got, const fx_case_tensor *want)
{
    if (got->s.rank != want->s.rank ||
        memcmp(got->s.d, want->s.d, sizeof(int64_t) * (size_t)got->s.rank) != 0)
        return INFINITY;
    int64_t n = fx_shape_numel(&want->s);
    double md = 0.0, mw = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got->data[i] - want->data[i]);
        if (isnan(d) && !(isinf(got->data[i]) && got->data[i] == want->data[i]))
            return INFINITY;
        md = d > md ? d : md;
        mw = fabs(want->data[i]) > mw ? fabs(want->data[i]) : mw;
    }
    return mw > 0.0 ? md / mw : md;
}

/* Run one loaded case (ref, and fast when the op has one) and compare with
 * its wanted outputs; prints the reason for a failure to stderr.  Returns
 * the number of failed variants. */
static inline int fx_case_check(const char *name, const fx_case *c)
{
    const fx_case_op *op = fx_case_find_op(c->op);
    int bad = 0;
    for (int fast = 0; fast <= (op && op->has_fast); fast++) {
        fx_case_tensor out[FX_CASE_MAX_IO];
        int n_out = 0;
        fx_status st = fx_case_run(c, fast, out, &n_out);
        if (st != FX_OK || n_out != c->n_want) {
            fprintf(stderr, "  %s (%s, %s): status %d, %d outputs (want %d)\n", name, c->op,
                    fast ? "fast" : "ref", (int)st, n_out, c->n_want);
            bad++;
        }
        for (int i = 0; st == FX_OK && i < n_out && i < c->n_want; i++) {
            double e = fx_case_rel_err(&out[i], &c->want[i]);
            if (!(e <= c->tol)) {
                fprintf(stderr, "  %s (%s, %s): out%d rel err %.3g > %.3g\n", name, c->op,
                        fast ? "fast" : "ref", i, e, c->tol);
                bad++;
            }
        }
        fx_case_free_tensors(out, n_out);
    }
    return bad;
}

/* Check every case of an ops_ref.h5 file; returns the number of failed
 * cases (or 1 if the file cannot be read) and sets *n_cases. */
static inline int fx_case_check_file(const char *path, int *n_cases)
{
    *n_cases = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return 1;
    hid_t cases = H5Gopen2(f, "cases", H5P_DEFAULT);
    H5G_info_t info;
    int bad = 0;
    if (cases < 0 || H5Gget_info(cases, &info) < 0) {
        H5Fclose(f);
        return 1;
    }
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[256];
        H5Lget_name_by_idx(cases, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                           H5P_DEFAULT);
        hid_t g = H5Gopen2(cases, name, H5P_DEFAULT);
        fx_case c;
        memset(&c, 0, sizeof c);
        if (g < 0 || fx_case_load(g, &c) != 0) {
            fprintf(stderr, "  %s: cannot load case\n", name);
            bad++;
        } else {
            bad += fx_case_check(name, &c) > 0;
        }
        fx_case_unload(&c);
        if (g >= 0)
            H5Gclose(g);
        (*n_cases)++;
    }
    H5Gclose(cases);
    H5Fclose(f);
    return bad;
}

/* Locate tests/data/ops_ref.h5: $FX_OPS_REF, the working directory, or up
 * to four directories above the running executable (build/tests/...). */
static inline int fx_case_find_ref_file(char *path, size_t n)
{
    const char *env = getenv("FX_OPS_REF");
    if (env && *env) {
        snprintf(path, n, "%s", env);
        return access(path, R_OK) == 0;
    }
    snprintf(path, n, "tests/data/ops_ref.h5");
    if (access(path, R_OK) == 0)
        return 1;
    char exe[2048];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return 0;
    exe[len] = '\0';
    for (int up = 0; up < 5; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return 0;
        *slash = '\0';
        snprintf(path, n, "%s/tests/data/ops_ref.h5", exe);
        if (access(path, R_OK) == 0)
            return 1;
    }
    return 0;
}

#endif
