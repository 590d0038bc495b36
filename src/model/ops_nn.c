/* Binders and executors of the float network ops: Conv, BatchNormalization,
 * the activations, PRelu, the broadcasting binaries, pools, Gemm, MatMul,
 * Softmax, ReduceMean.  Attributes follow ONNX opsets 11..21 and their
 * defaults; each binder fills the ops.h params and the output shape. */
#include <float.h>
#include <math.h>

#include "model/ops_common.h"

/* ---- Conv ---------------------------------------------------------------- */

/* Spatial attrs shared by Conv and the pools: strides, dilations, pads. */
static fx_status spatial_attrs(const fx_node *n, int *s, int *d, int *pads, fx_error *err)
{
    const int64_t *v;
    int64_t c;
    s[0] = s[1] = d[0] = d[1] = 1;
    pads[0] = pads[1] = pads[2] = pads[3] = 0;
    fx_attr_ints(n, "strides", &v, &c);
    if (c == 2)
        s[0] = (int)v[0], s[1] = (int)v[1];
    else if (c >= 0)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "strides must have 2 values (2-D only)");
    fx_attr_ints(n, "dilations", &v, &c);
    if (c == 2)
        d[0] = (int)v[0], d[1] = (int)v[1];
    else if (c >= 0)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "dilations must have 2 values");
    fx_attr_ints(n, "pads", &v, &c);
    if (c == 4)
        for (int i = 0; i < 4; i++)
            pads[i] = (int)v[i]; /* t, l, b, r */
    else if (c >= 0)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "pads must have 4 values");
    return FX_OK;
}

static fx_status auto_pad(const fx_node *n, const int *in, const int *k, const int *s, const int *d,
                          int *pads, fx_error *err)
{
    const char *ap = fx_attr_str(n, "auto_pad", "NOTSET");
    fx_auto_pad mode = !strcmp(ap, "SAME_UPPER")   ? FX_PAD_SAME_UPPER
                       : !strcmp(ap, "SAME_LOWER") ? FX_PAD_SAME_LOWER
                       : !strcmp(ap, "VALID")      ? FX_PAD_VALID
                                                   : FX_PAD_NOTSET;
    if (mode == FX_PAD_NOTSET && strcmp(ap, "NOTSET"))
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "auto_pad '%s'", ap);
    if (mode == FX_PAD_VALID) {
        pads[0] = pads[1] = pads[2] = pads[3] = 0;
        return FX_OK;
    }
    for (int a = 0; a < 2; a++) {
        fx_status st =
            fx_auto_pad_resolve(mode, in[a], k[a], s[a], d[a], &pads[a], &pads[a + 2], err);
        if (st != FX_OK) {
            fx_error_prefix(err, "node '%s' (%s)", n->name, n->op_type);
            return st;
        }
    }
    return FX_OK;
}

fx_status fx_bind_conv(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st == FX_OK)
        st = fx_need_input(g, n, 1, 1, err);
    if (st != FX_OK)
        return st;
    const fx_shape *x = &fx_in(g, n, 0)->shape, *w = &fx_in(g, n, 1)->shape;
    if (x->rank != 4 || w->rank != 4)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "only 2-D convolution (rank-4 X and W)");
    fx_conv2d_params *p = &n->b.u.conv;
    int s[2], d[2], pads[4];
    if ((st = spatial_attrs(n, s, d, pads, err)) != FX_OK)
        return st;
    *p = (fx_conv2d_params){.n = (int)x->d[0],
                            .c_in = (int)x->d[1],
                            .h = (int)x->d[2],
                            .w = (int)x->d[3],
                            .c_out = (int)w->d[0],
                            .kh = (int)w->d[2],
                            .kw = (int)w->d[3],
                            .stride_h = s[0],
                            .stride_w = s[1],
                            .dil_h = d[0],
                            .dil_w = d[1],
                            .groups = (int)fx_attr_int(n, "group", 1)};
    int in[2] = {p->h, p->w}, k[2] = {p->kh, p->kw};
    if ((st = auto_pad(n, in, k, s, d, pads, err)) != FX_OK)
        return st;
    p->pad_t = pads[0], p->pad_l = pads[1], p->pad_b = pads[2], p->pad_r = pads[3];
    if (p->groups < 1 || p->c_in % p->groups || w->d[1] * p->groups != p->c_in)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "W (%lld, %lld, ...) does not fit C_in %d, group %d",
                        (long long)w->d[0], (long long)w->d[1], p->c_in, p->groups);
    const fx_tensor *b = fx_in(g, n, 2);
    if (b && (fx_shape_numel(&b->shape) != p->c_out || b->dt != FX_DT_FLOAT))
        return NODE_ERR(err, n, FX_ERR_FORMAT, "bias does not have C_out elements");
    int oh, ow;
    if ((st = fx_conv2d_out_hw(p, &oh, &ow, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (Conv)", n->name);
        return st;
    }
    fx_shape o = {4, {p->n, p->c_out, oh, ow}};
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_conv(const fx_node *n, const fx_exec *x)
{
    const float *b = n->n_in > 2 ? x->in[2] : NULL;
    const fx_exec_fast *f = x->fast ? fx_exec_fast_of(x) : NULL;
    if (f && f->expand)
        return fx_conv_expand_dw(f->expand, &n->b.u.conv, &f->ep, x->in[0], x->in[1], b, x->out[0],
                                 x->ws, f->threads);
    if (f)
        return fx_op_conv2d_fast_mt(&n->b.u.conv, &f->ep, x->in[0], x->in[1], b, x->out[0], x->ws,
                                    f->threads);
    return fx_op_conv2d_ref(&n->b.u.conv, x->in[0], x->in[1], b, x->out[0]);
}

/* ---- BatchNormalization ---------------------------------------------------- */

fx_status fx_bind_batchnorm(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = FX_OK;
    for (int k = 0; k < 5 && st == FX_OK; k++)
        st = fx_need_input(g, n, k, 1, err);
    if (st != FX_OK)
        return st;
    if (fx_attr_int(n, "training_mode", 0) || n->n_out > 1)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "training mode (running stats outputs)");
    const fx_shape *x = &fx_in(g, n, 0)->shape;
    if (x->rank < 2)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "X must have rank >= 2");
    n->b.u.bn =
        (fx_batchnorm_params){.n = x->d[0],
                              .c = x->d[1],
                              .spatial = x->rank > 2 ? fx_shape_numel(x) / (x->d[0] * x->d[1]) : 1,
                              .epsilon = fx_attr_float(n, "epsilon", 1e-5f)};
    if (x->d[0] * x->d[1] == 0)
        n->b.u.bn.spatial = 0;
    for (int k = 1; k < 5; k++)
        if (fx_shape_numel(&fx_in(g, n, k)->shape) != x->d[1])
            return NODE_ERR(err, n, FX_ERR_FORMAT, "input %d does not have C elements", k);
    fx_set_out(g, n, 0, FX_DT_FLOAT, x);
    return FX_OK;
}

fx_status fx_exec_batchnorm(const fx_node *n, const fx_exec *x)
{
    if (x->fast)
        return fx_op_batchnorm_fast(&n->b.u.bn, x->in[0], x->in[1], x->in[2], x->in[3], x->in[4],
                                    fx_exec_fast_of(x)->ep.act, fx_exec_fast_of(x)->ep.lo,
                                    fx_exec_fast_of(x)->ep.hi, x->out[0]);
    return fx_op_batchnorm_ref(&n->b.u.bn, x->in[0], x->in[1], x->in[2], x->in[3], x->in[4],
                               x->out[0]);
}

/* ---- activations ----------------------------------------------------------- */

static fx_status clip_bounds(const fx_graph *g, fx_node *n, float *lo, float *hi, fx_error *err)
{
    *lo = -FLT_MAX, *hi = FLT_MAX;
    if (n->n_in <= 1) { /* opset < 11: attributes */
        *lo = fx_attr_float(n, "min", -FLT_MAX);
        *hi = fx_attr_float(n, "max", FLT_MAX);
        return FX_OK;
    }
    fx_status st = FX_OK;
    if (fx_in(g, n, 1))
        st = fx_const_scalar(g, n, 1, lo, err);
    if (st == FX_OK && fx_in(g, n, 2))
        st = fx_const_scalar(g, n, 2, hi, err);
    return st;
}

fx_status fx_bind_act(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    const fx_shape *x = &fx_in(g, n, 0)->shape;
    fx_act_params *p = &n->b.u.act;
    *p = (fx_act_params){.n = fx_shape_numel(x)};
    const char *t = n->op_type;
    if (!strcmp(t, "LeakyRelu"))
        p->alpha = fx_attr_float(n, "alpha", 0.01f);
    else if (!strcmp(t, "HardSigmoid")) {
        p->alpha = fx_attr_float(n, "alpha", 0.2f);
        p->beta = fx_attr_float(n, "beta", 0.5f);
    } else if (!strcmp(t, "Elu"))
        p->alpha = fx_attr_float(n, "alpha", 1.0f);
    else if (!strcmp(t, "Selu")) {
        p->alpha = fx_attr_float(n, "alpha", 1.67326319217681884765625f);
        p->beta = fx_attr_float(n, "gamma", 1.05070102214813232421875f);
    } else if (!strcmp(t, "Gelu") && strcmp(fx_attr_str(n, "approximate", "none"), "none"))
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "approximate '%s' (only the exact GELU)",
                        fx_attr_str(n, "approximate", ""));
    else if (!strcmp(t, "Clip") && (st = clip_bounds(g, n, &p->alpha, &p->beta, err)) != FX_OK)
        return st;
    fx_set_out(g, n, 0, FX_DT_FLOAT, x);
    return FX_OK;
}

fx_status fx_exec_act(const fx_node *n, const fx_exec *x)
{
    const fx_act_params *p = &n->b.u.act;
    const float *in = x->in[0];
    float *out = x->out[0];
    if (!strcmp(n->op_type, "Elu"))
        return fx_op_elu_ref(p, in, out);
    if (!strcmp(n->op_type, "Selu"))
        return fx_op_selu_ref(p, in, out);
    if (!strcmp(n->op_type, "Gelu"))
        return fx_op_gelu_ref(p, in, out);
    if (x->fast)
        switch (n->op_type[0]) {
        case 'R': return fx_op_relu_fast(p, in, out);
        case 'C': return fx_op_clip_fast(p, in, out);
        case 'S': return fx_op_sigmoid_fast(p, in, out);
        case 'H':
            if (!strcmp(n->op_type, "HardSwish"))
                return fx_op_hard_swish_fast(p, in, out);
        }
    switch (n->op_type[0]) {
    case 'R': return fx_op_relu_ref(p, in, out);
    case 'L': return fx_op_leaky_relu_ref(p, in, out);
    case 'C': return fx_op_clip_ref(p, in, out);
    case 'S': return fx_op_sigmoid_ref(p, in, out);
    case 'T': return fx_op_tanh_ref(p, in, out);
    case 'H':
        return n->op_type[4] == 'S' && n->op_type[5] == 'i' ? fx_op_hard_sigmoid_ref(p, in, out)
                                                            : fx_op_hard_swish_ref(p, in, out);
    }
    return FX_ERR_INTERNAL;
}

/* ---- PRelu and binaries -------------------------------------------------- */

fx_status fx_bind_prelu(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st == FX_OK)
        st = fx_need_input(g, n, 1, 1, err);
    if (st != FX_OK)
        return st;
    n->b.u.bin = (fx_binary_params){fx_in(g, n, 0)->shape, fx_in(g, n, 1)->shape};
    fx_shape o;
    if ((st = fx_broadcast_shape(&n->b.u.bin, &o, err)) != FX_OK ||
        memcmp(&o, &n->b.u.bin.a, sizeof o))
        return NODE_ERR(err, n, FX_ERR_FORMAT, "slope does not broadcast to X");
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_prelu(const fx_node *n, const fx_exec *x)
{
    return fx_op_prelu_ref(&n->b.u.bin, x->in[0], x->in[1], x->out[0]);
}

fx_status fx_bind_binary(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 0, err);
    if (st == FX_OK)
        st = fx_need_input(g, n, 1, 0, err);
    if (st != FX_OK)
        return st;
    const fx_tensor *a = fx_in(g, n, 0), *b = fx_in(g, n, 1);
    if (a->dt != b->dt)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "mixed dtypes ('%s', '%s')", a->name, b->name);
    n->b.u.bin = (fx_binary_params){a->shape, b->shape};
    fx_shape o;
    if ((st = fx_broadcast_shape(&n->b.u.bin, &o, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (%s)", n->name, n->op_type);
        return st;
    }
    fx_set_out(g, n, 0, a->dt, &o);
    return FX_OK;
}

static int64_t int_op(char op, int64_t a, int64_t b)
{
    switch (op) {
    case 'A': return a + b;
    case 'S': return a - b;
    case 'M': return a * b;
    default: return b ? a / b : 0;
    }
}

/* int64 binaries (shape arithmetic), broadcasting by strides. */
static fx_status exec_binary_int(const fx_node *n, const fx_exec *x)
{
    const fx_binary_params *p = &n->b.u.bin;
    const fx_shape *o = &x->g->t[n->out[0]].shape;
    int r = o->rank;
    int64_t sa[FX_OPS_MAX_RANK] = {0}, sb[FX_OPS_MAX_RANK] = {0}, idx[FX_OPS_MAX_RANK] = {0};
    int64_t acc_a = 1, acc_b = 1;
    for (int i = r - 1; i >= 0; i--) {
        int ia = i - (r - p->a.rank), ib = i - (r - p->b.rank);
        if (ia >= 0) {
            sa[i] = p->a.d[ia] == 1 ? 0 : acc_a;
            acc_a *= p->a.d[ia];
        }
        if (ib >= 0) {
            sb[i] = p->b.d[ib] == 1 ? 0 : acc_b;
            acc_b *= p->b.d[ib];
        }
    }
    const int64_t *a = x->in[0], *b = x->in[1];
    int64_t *y = x->out[0], total = fx_shape_numel(o);
    for (int64_t e = 0; e < total; e++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < r; i++)
            oa += idx[i] * sa[i], ob += idx[i] * sb[i];
        y[e] = int_op(n->op_type[0], a[oa], b[ob]);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < o->d[i])
                break;
            idx[i] = 0;
        }
    }
    return FX_OK;
}

fx_status fx_exec_binary(const fx_node *n, const fx_exec *x)
{
    if (x->g->t[n->out[0]].dt == FX_DT_INT64)
        return exec_binary_int(n, x);
    const fx_binary_params *p = &n->b.u.bin;
    if (x->fast)
        return fx_op_binary_fast(n->op_type[0], p, x->in[0], x->in[1], x->out[0]);
    switch (n->op_type[0]) {
    case 'A': return fx_op_add_ref(p, x->in[0], x->in[1], x->out[0]);
    case 'S': return fx_op_sub_ref(p, x->in[0], x->in[1], x->out[0]);
    case 'M': return fx_op_mul_ref(p, x->in[0], x->in[1], x->out[0]);
    default: return fx_op_div_ref(p, x->in[0], x->in[1], x->out[0]);
    }
}

/* ---- pools ----------------------------------------------------------------- */

fx_status fx_bind_pool(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    const fx_shape *x = &fx_in(g, n, 0)->shape;
    const int64_t *ks;
    int64_t nk;
    fx_attr_ints(n, "kernel_shape", &ks, &nk);
    if (x->rank != 4 || nk != 2)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "only 2-D pooling (rank-4 X, 2 kernel dims)");
    if (n->n_out > 1)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "the Indices output");
    int s[2], d[2], pads[4];
    if ((st = spatial_attrs(n, s, d, pads, err)) != FX_OK)
        return st;
    int is_avg = n->op_type[0] == 'A';
    if (is_avg && (d[0] != 1 || d[1] != 1))
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "dilated AveragePool");
    int in[2] = {(int)x->d[2], (int)x->d[3]}, k[2] = {(int)ks[0], (int)ks[1]};
    if ((st = auto_pad(n, in, k, s, d, pads, err)) != FX_OK)
        return st;
    fx_pool2d_params *p = &n->b.u.pool;
    *p = (fx_pool2d_params){.n = (int)x->d[0],
                            .c = (int)x->d[1],
                            .h = in[0],
                            .w = in[1],
                            .kh = k[0],
                            .kw = k[1],
                            .stride_h = s[0],
                            .stride_w = s[1],
                            .dil_h = d[0],
                            .dil_w = d[1],
                            .pad_t = pads[0],
                            .pad_l = pads[1],
                            .pad_b = pads[2],
                            .pad_r = pads[3],
                            .ceil_mode = (int)fx_attr_int(n, "ceil_mode", 0),
                            .count_include_pad = (int)fx_attr_int(n, "count_include_pad", 0)};
    int oh, ow;
    if ((st = fx_pool2d_out_hw(p, &oh, &ow, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (%s)", n->name, n->op_type);
        return st;
    }
    fx_shape o = {4, {p->n, p->c, oh, ow}};
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_pool(const fx_node *n, const fx_exec *x)
{
    if (x->fast)
        return n->op_type[0] == 'A' ? fx_op_avgpool2d_fast(&n->b.u.pool, x->in[0], x->out[0])
                                    : fx_op_maxpool2d_fast(&n->b.u.pool, x->in[0], x->out[0]);
    if (n->op_type[0] == 'A')
        return fx_op_avgpool2d_ref(&n->b.u.pool, x->in[0], x->out[0]);
    return fx_op_maxpool2d_ref(&n->b.u.pool, x->in[0], x->out[0]);
}

fx_status fx_bind_gpool(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    fx_shape o = fx_in(g, n, 0)->shape;
    if (o.rank < 3)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "X must have rank >= 3");
    n->b.u.gpool = (fx_global_pool_params){o.d[0], o.d[1], 1};
    for (int i = 2; i < o.rank; i++) {
        n->b.u.gpool.spatial *= o.d[i];
        o.d[i] = 1;
    }
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_gpool(const fx_node *n, const fx_exec *x)
{
    if (x->fast && n->op_type[6] == 'A')
        return fx_op_global_avgpool_fast(&n->b.u.gpool, x->in[0], x->out[0]);
    if (n->op_type[6] == 'A')
        return fx_op_global_avgpool_ref(&n->b.u.gpool, x->in[0], x->out[0]);
    return fx_op_global_maxpool_ref(&n->b.u.gpool, x->in[0], x->out[0]);
}

/* ---- Gemm and MatMul ------------------------------------------------------- */

fx_status fx_bind_gemm(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st == FX_OK)
        st = fx_need_input(g, n, 1, 1, err);
    if (st != FX_OK)
        return st;
    const fx_shape *a = &fx_in(g, n, 0)->shape, *b = &fx_in(g, n, 1)->shape;
    if (a->rank != 2 || b->rank != 2)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "A and B must be 2-D (got rank %d, %d)", a->rank,
                        b->rank);
    fx_gemm_params *p = &n->b.u.gemm;
    p->trans_a = (int)fx_attr_int(n, "transA", 0);
    p->trans_b = (int)fx_attr_int(n, "transB", 0);
    p->alpha = fx_attr_float(n, "alpha", 1.0f);
    p->beta = fx_attr_float(n, "beta", 1.0f);
    p->m = p->trans_a ? a->d[1] : a->d[0];
    p->k = p->trans_a ? a->d[0] : a->d[1];
    p->n = p->trans_b ? b->d[0] : b->d[1];
    if ((p->trans_b ? b->d[1] : b->d[0]) != p->k)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "inner dims differ (%lld vs %lld)", (long long)p->k,
                        (long long)(p->trans_b ? b->d[1] : b->d[0]));
    const fx_tensor *c = fx_in(g, n, 2);
    p->c_rows = p->c_cols = 1;
    if (c && c->dt != FX_DT_FLOAT)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "int64 C");
    if (c && c->shape.rank == 1)
        p->c_cols = c->shape.d[0];
    else if (c && c->shape.rank == 2)
        p->c_rows = c->shape.d[0], p->c_cols = c->shape.d[1];
    if (c && ((p->c_rows != 1 && p->c_rows != p->m) || (p->c_cols != 1 && p->c_cols != p->n)))
        return NODE_ERR(err, n, FX_ERR_FORMAT, "C does not broadcast to (%lld, %lld)",
                        (long long)p->m, (long long)p->n);
    fx_shape o = {2, {p->m, p->n}};
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_gemm(const fx_node *n, const fx_exec *x)
{
    const float *c = n->n_in > 2 ? x->in[2] : NULL;
    if (x->fast)
        return fx_op_gemm_fast(&n->b.u.gemm, x->in[0], x->in[1], c, x->out[0]);
    return fx_op_gemm_ref(&n->b.u.gemm, x->in[0], x->in[1], c, x->out[0]);
}

fx_status fx_bind_matmul(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st == FX_OK)
        st = fx_need_input(g, n, 1, 1, err);
    if (st != FX_OK)
        return st;
    n->b.u.mm = (fx_matmul_params){fx_in(g, n, 0)->shape, fx_in(g, n, 1)->shape};
    fx_shape o;
    if ((st = fx_matmul_out_shape(&n->b.u.mm, &o, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (MatMul)", n->name);
        return st;
    }
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

/* Fast path: a 2-D B makes a @ B one sgemm over the rows of a. */
fx_status fx_exec_matmul(const fx_node *n, const fx_exec *x)
{
    const fx_matmul_params *p = &n->b.u.mm;
    if (x->fast && p->b.rank == 2 && p->a.rank >= 2) {
        fx_gemm_params gp = {.m = fx_shape_numel(&p->a) / p->a.d[p->a.rank - 1],
                             .k = p->b.d[0],
                             .n = p->b.d[1],
                             .alpha = 1.0f,
                             .beta = 0.0f};
        if (gp.m > 0 && gp.k > 0 && gp.n > 0)
            return fx_op_gemm_fast(&gp, x->in[0], x->in[1], NULL, x->out[0]);
    }
    return fx_op_matmul_ref(p, x->in[0], x->in[1], x->out[0]);
}

/* ---- Softmax, ReduceMean ------------------------------------------------- */

fx_status fx_bind_softmax(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    const fx_shape *x = &fx_in(g, n, 0)->shape;
    int pre13 = fx_opset(g) < 13;
    int axis = fx_axis(fx_attr_int(n, "axis", pre13 ? 1 : -1), x->rank);
    if (axis < 0)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "axis out of range for rank %d", x->rank);
    fx_softmax_params *p = &n->b.u.sm;
    p->x = *x;
    p->axis = axis;
    if (pre13) { /* coerce to 2-D: (prod(d[0..axis)), prod(d[axis..])) */
        int64_t outer = 1;
        for (int i = 0; i < axis; i++)
            outer *= x->d[i];
        p->x = (fx_shape){2, {outer, outer ? fx_shape_numel(x) / outer : 0}};
        p->axis = 1;
    }
    fx_set_out(g, n, 0, FX_DT_FLOAT, x);
    return FX_OK;
}

fx_status fx_exec_softmax(const fx_node *n, const fx_exec *x)
{
    return fx_op_softmax_ref(&n->b.u.sm, x->in[0], x->out[0]);
}

fx_status fx_bind_reduce_mean(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    const fx_shape *x = &fx_in(g, n, 0)->shape;
    const int64_t *axes = NULL;
    int64_t na = -1;
    if (fx_in(g, n, 1)) {
        if ((st = fx_const_ints(g, n, 1, &axes, &na, err)) != FX_OK)
            return st;
    } else
        fx_attr_ints(n, "axes", &axes, &na);
    fx_reduce_params *p = &n->b.u.red;
    memset(p, 0, sizeof *p);
    p->x = *x;
    p->keepdims = (int)fx_attr_int(n, "keepdims", 1);
    n->b.kind_flag = na <= 0 && fx_attr_int(n, "noop_with_empty_axes", 0); /* identity */
    if (na > x->rank)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "%lld axes for rank %d", (long long)na, x->rank);
    for (int i = 0; i < na; i++)
        p->axes[p->n_axes++] = (int)axes[i];
    fx_shape o = *x;
    if (!n->b.kind_flag && (st = fx_reduce_out_shape(p, &o, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (ReduceMean)", n->name);
        return st;
    }
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_reduce_mean(const fx_node *n, const fx_exec *x)
{
    if (n->b.kind_flag) {
        memcpy(x->out[0], x->in[0], (size_t)fx_shape_numel(&n->b.u.red.x) * sizeof(float));
        return FX_OK;
    }
    return fx_op_reduce_mean_ref(&n->b.u.red, x->in[0], x->out[0]);
}
