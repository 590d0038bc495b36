/* The backward of one graph node through the plain-C VJPs (vjp.c): what
 * the CPU backend's run_vjp runs, and which nodes it can run.  The node's
 * params were bound at prepare; the pointers come from the backward plan
 * (src/model/backward.c) in host memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_common.h"
#include "model/vjp.h"

int fx_vjp_is_view(const fx_node *n)
{
    return (n->def->kind & FX_OPK_VIEW) || (!strcmp(n->op_type, "ReduceMean") && n->b.kind_flag);
}

int fx_vjp_supported(const fx_graph *g, const fx_node *n, const char *need, char *why, size_t cap)
{
    /* clang-format off */
    static const char *const ok[] = {
        "Conv", "Gemm", "MatMul", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid",
        "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Gelu", "Add", "Sub", "Mul", "Div",
        "BatchNormalization", "Concat", "Split", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "Transpose", "Pad", "ReduceMean", "Softmax",
        "Slice", "Gather", "Cast"};
    /* clang-format on */
    if (fx_vjp_is_view(n))
        return 1;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(n->op_type, ok[i])) {
            /* Conv / BN: only the data input may carry a gradient. */
            int data_only = !strcmp(ok[i], "Conv") || !strcmp(ok[i], "BatchNormalization");
            for (int k = 1; data_only && k < n->n_in; k++)
                if (n->in[k] >= 0 && need[n->in[k]]) {
                    snprintf(why, cap, "its parameters are activations");
                    return 0;
                }
            /* Cast: float to float only (a copy); Gather: the data input */
            if (!strcmp(ok[i], "Cast") &&
                (fx_in(g, n, 0)->dt != FX_DT_FLOAT || fx_out(g, n, 0)->dt != FX_DT_FLOAT)) {
                snprintf(why, cap, "a cast between types");
                return 0;
            }
            if (!strcmp(ok[i], "Gather") && n->in[1] >= 0 && need[n->in[1]]) {
                snprintf(why, cap, "indices from an activation");
                return 0;
            }
            return 1;
        }
    snprintf(why, cap, "no VJP");
    return 0;
}

static fx_status vjp_concat(const fx_graph *g, const fx_node *n, const fx_vjp_io *io,
                            const float *dy)
{
    fx_shape *shapes = malloc((size_t)n->n_in * sizeof *shapes);
    if (!shapes)
        return FX_ERR_NOMEM;
    for (int k = 0; k < n->n_in; k++)
        shapes[k] = fx_in(g, n, k)->shape;
    fx_concat_params cp = {n->n_in, shapes, n->b.axis};
    fx_status st = fx_vjp_concat(&cp, dy, io->dx);
    free(shapes);
    return st;
}

fx_status fx_vjp_exec(const fx_node *n, const fx_vjp_io *io)
{
    const fx_graph *g = io->g;
    const float *dy = io->dy[0], *const *xv = (const float *const *)io->x;
    float *dx = io->dx[0], *d1 = n->n_in > 1 ? io->dx[1] : NULL;
    const char *t = n->op_type;
    if (!strcmp(t, "Split")) {
        fx_split_params sp = {fx_in(g, n, 0)->shape, n->b.axis, n->n_out, n->b.ints};
        return dx ? fx_vjp_split(&sp, io->dy, dx) : FX_OK;
    }
    if (!dy)
        return FX_OK;
    if (!strcmp(t, "Concat"))
        return vjp_concat(g, n, io, dy);
    if (fx_vjp_is_view(n) || !strcmp(t, "Cast")) /* Cast: float to float */
        return dx ? fx_vjp_copy(fx_shape_numel(&fx_out(g, n, 0)->shape), dy, dx) : FX_OK;
    if (!strcmp(t, "Add") || !strcmp(t, "Sub") || !strcmp(t, "Mul") || !strcmp(t, "Div"))
        return fx_vjp_binary(t[0], &n->b.u.bin, xv[0], xv[1], dy, dx, d1);
    if (!strcmp(t, "Gemm"))
        return fx_vjp_gemm(&n->b.u.gemm, xv[0], xv[1], dy, dx, d1, n->n_in > 2 ? io->dx[2] : NULL);
    if (!strcmp(t, "MatMul"))
        return fx_vjp_matmul(&n->b.u.mm, xv[0], xv[1], dy, dx, d1);
    if (!strcmp(t, "PRelu"))
        return fx_vjp_prelu(&n->b.u.bin, xv[0], xv[1], dy, dx, d1);
    if (!dx)
        return FX_OK;
    if (!strcmp(t, "Conv"))
        return fx_vjp_conv2d(&n->b.u.conv, xv[1], dy, dx);
    if (!strcmp(t, "BatchNormalization"))
        return fx_vjp_batchnorm(&n->b.u.bn, xv[1], xv[4], dy, dx);
    if (!strcmp(t, "MaxPool"))
        return fx_vjp_maxpool2d(&n->b.u.pool, xv[0], dy, dx);
    if (!strcmp(t, "AveragePool"))
        return fx_vjp_avgpool2d(&n->b.u.pool, dy, dx);
    if (!strcmp(t, "GlobalAveragePool"))
        return fx_vjp_global_avgpool(&n->b.u.gpool, dy, dx);
    if (!strcmp(t, "GlobalMaxPool"))
        return fx_vjp_global_maxpool(&n->b.u.gpool, xv[0], dy, dx);
    if (!strcmp(t, "Transpose"))
        return fx_vjp_transpose(&n->b.u.tr, dy, dx);
    if (!strcmp(t, "Pad"))
        return fx_vjp_pad(&n->b.u.pad, dy, dx);
    if (!strcmp(t, "Gather")) {
        const fx_tensor *ix = fx_in(g, n, 1);
        return fx_vjp_gather(&fx_in(g, n, 0)->shape, n->b.axis, ix->data,
                             fx_shape_numel(&ix->shape), dy, dx);
    }
    if (!strcmp(t, "Slice")) /* n->b.ints: starts, then steps at FX_OPS_MAX_RANK */
        return fx_vjp_slice(&fx_in(g, n, 0)->shape, &fx_out(g, n, 0)->shape, n->b.ints,
                            n->b.ints + FX_OPS_MAX_RANK, dy, dx);
    if (!strcmp(t, "ReduceMean"))
        return fx_vjp_reduce_mean(&n->b.u.red, dy, dx);
    if (!strcmp(t, "Softmax"))
        return fx_vjp_softmax(&n->b.u.sm, io->y[0], dy, dx);
    fx_unary_kind u = fx_op_unary_kind(t);
    return u != FX_U_NONE ? fx_vjp_unary(u, &n->b.u.act, io->x[0], io->y[0], dy, dx)
                          : FX_ERR_INTERNAL;
}
