/* The CUDA backend's backward (the members of fx_backend_cuda after
 * run_node): which VJPs run on the GPU and their dispatch to cuDNN's
 * backward data, cuBLAS and kernels/vjp.cu.  Gradients are float32; the
 * forward values are read in the plan's storage type.  Plans at fp16 /
 * bf16 have their backward run by the CPU backend on the host copies (see
 * src/model/backward.c) until the VJPs take mixed types.  Only compiled
 * with FX_HAVE_CUDA. */
#ifdef FX_HAVE_CUDA
#include <stdio.h>
#include <string.h>

#include "backend/cuda_internal.h"
#include "model/ops_common.h"
#include "model/vjp.h"

static int is_op(const fx_node *n, const char *const *ops, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!strcmp(n->op_type, ops[i]))
            return 1;
    return 0;
}

int cu_supports_vjp(void *ctx, const fx_graph *g, const fx_node *n, const char *need, char *why,
                    size_t cap)
{
    cu_ctx *c = ctx;
    static const char *const ok[] = {"Cast",          "Relu",        "LeakyRelu",
                                     "Clip",          "Sigmoid",     "HardSigmoid",
                                     "HardSwish",     "Tanh",        "Elu",
                                     "Selu",          "Gelu",        "Add",
                                     "Sub",           "Mul",         "Div",
                                     "Conv",          "Gemm",        "BatchNormalization",
                                     "MaxPool",       "AveragePool", "GlobalAveragePool",
                                     "GlobalMaxPool", "Concat",      "Split",
                                     "Transpose",     "Slice",       "Gather"};
    if (c->dt != FX_CU_F32) {
        snprintf(why, cap, "backward at fp32 and tf32 only");
        return 0;
    }
    if (cu_refused_by_env("FX_CUDA_REFUSE_VJP", n->op_type)) {
        snprintf(why, cap, "refused by FX_CUDA_REFUSE_VJP");
        return 0;
    }
    if (!fx_vjp_supported(g, n, need, why, cap)) /* what the references cannot either */
        return 0;
    if (fx_vjp_is_view(n))
        return 1;
    if (!is_op(n, ok, sizeof ok / sizeof ok[0])) {
        snprintf(why, cap, "no CUDA backward kernel");
        return 0;
    }
    const char *op = n->op_type;
    if (!strcmp(op, "Gemm") &&
        ((n->in[1] >= 0 && need[n->in[1]]) || (n->n_in > 2 && n->in[2] >= 0 && need[n->in[2]]))) {
        snprintf(why, cap, "gradient of B or C");
        return 0;
    }
    if (!strcmp(op, "Conv")) {
        const fx_conv2d_params *p = &n->b.u.conv;
        if (p->pad_t != p->pad_b || p->pad_l != p->pad_r) {
            snprintf(why, cap, "asymmetric pads");
            return 0;
        }
    }
    if (!strcmp(op, "AveragePool") && (n->b.u.pool.dil_h != 1 || n->b.u.pool.dil_w != 1)) {
        snprintf(why, cap, "dilated AveragePool");
        return 0;
    }
    static const char *const bin[] = {"Add", "Sub", "Mul", "Div"};
    if (is_op(n, bin, 4)) {
        fx_cu_bin b;
        if (fx_lower_binary(&n->b.u.bin, op[0], &b) != FX_OK) {
            snprintf(why, cap, "shapes beyond the kernels' rank");
            return 0;
        }
    }
    return 1;
}

fx_status cu_prepare_vjp(void *ctx, int s, const fx_node *n, fx_error *err)
{
    cu_ctx *c = ctx;
    if (strcmp(n->op_type, "Conv"))
        return FX_OK;
    if (!c->nodes[s].conv)
        return fx_error_set(err, FX_ERR_INTERNAL, "cuda: Conv '%s' without its forward", n->name);
    return cu_conv_vjp_prepare(c, n, c->nodes[s].conv, err);
}

/* Concat, Split, Transpose, Slice, Gather: the forward's strided copies
 * (lower.c) run backwards, where both gradients exist. */
typedef struct copy_ctx {
    cu_ctx *c;
    const fx_vjp_io *io;
} copy_ctx;

static fx_status copy_back(void *ctx, const fx_cu_map *m, int in, int out, fx_error *err)
{
    const copy_ctx *k = ctx;
    if (!k->io->dx[in] || !k->io->dy[out])
        return FX_OK;
    return fx_cu_map_vjp(k->c->stream, m, k->io->dy[out], k->io->dx[in], err);
}

static fx_status copies_vjp(cu_ctx *c, const fx_node *n, const fx_vjp_io *io, fx_error *err)
{
    copy_ctx k = {c, io};
    return fx_lower_copies(io->g, n, copy_back, &k, err);
}

static fx_status binary_vjp(cu_ctx *c, const fx_node *n, const fx_vjp_io *io, fx_error *err)
{
    fx_cu_bin b;
    if (fx_lower_binary(&n->b.u.bin, n->op_type[0], &b) != FX_OK)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "cuda: %s shapes", n->op_type);
    fx_status st = FX_OK;
    for (int k = 0; k < 2 && st == FX_OK; k++)
        if (io->dx[k])
            st = fx_cu_binary_vjp(c->stream, c->dt, &b, k, io->x[0], io->x[1], io->dy[0], io->dx[k],
                                  err);
    return st;
}

fx_status cu_run_vjp(void *ctx, int s, const fx_node *n, const fx_vjp_io *io, fx_error *err)
{
    cu_ctx *c = ctx;
    const char *op = n->op_type;
    const float *dy = io->dy[0];
    float *dx = io->dx[0];
    CU_CHECK(cudaSetDevice(c->dev));
    if (!strcmp(op, "Split"))
        return dx ? copies_vjp(c, n, io, err) : FX_OK;
    if (!dy)
        return FX_OK;
    if (!strcmp(op, "Concat"))
        return copies_vjp(c, n, io, err);
    static const char *const bin[] = {"Add", "Sub", "Mul", "Div"};
    if (is_op(n, bin, 4))
        return binary_vjp(c, n, io, err);
    if (!dx)
        return FX_OK;
    const fx_shape *out = &io->g->t[n->out[0]].shape;
    if (fx_vjp_is_view(n) || !strcmp(op, "Cast"))
        return fx_cu_acc(c->stream, fx_shape_numel(out), 1.0f, dy, dx, err);
    fx_unary_kind u = fx_op_unary_kind(op);
    if (u != FX_U_NONE) {
        int reads_y = fx_hd_unary_vjp_reads_y(u);
        return fx_cu_unary_vjp(c->stream, c->dt, n->b.u.act.n, u, n->b.u.act.alpha, n->b.u.act.beta,
                               reads_y ? NULL : io->x[0], reads_y ? io->y[0] : NULL, dy, dx, err);
    }
    if (!strcmp(op, "Conv"))
        return cu_conv_vjp(c, c->nodes[s].conv, io->x[1], dy, dx, err);
    if (!strcmp(op, "Gemm"))
        return cu_gemm_vjp(c, n, io->x[1], dy, dx, err);
    if (!strcmp(op, "BatchNormalization")) {
        const fx_batchnorm_params *p = &n->b.u.bn;
        return fx_cu_batchnorm_vjp(c->stream, p->n, p->c, p->spatial, c->nodes[s].bn_ab, dy, dx,
                                   err);
    }
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool"))
        return fx_cu_pool2d_vjp(c->stream, c->dt, &n->b.u.pool, op[0] == 'M', io->x[0], dy, dx,
                                err);
    if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool")) {
        const fx_global_pool_params *p = &n->b.u.gpool;
        return fx_cu_global_pool_vjp(c->stream, c->dt, p->n * p->c, p->spatial, op[6] == 'M',
                                     io->x[0], dy, dx, err);
    }
    return copies_vjp(c, n, io, err);
}

fx_status cu_zero(void *ctx, void *ptr, size_t bytes, fx_error *err)
{
    cu_ctx *c = ctx;
    CU_CHECK(cudaSetDevice(c->dev)); /* the thread's current device may be another */
    CU_CHECK(cudaMemsetAsync(ptr, 0, bytes, c->stream));
    return FX_OK;
}

fx_status cu_copy_in(void *ctx, void *dst, const void *src, size_t bytes, fx_error *err)
{
    cu_ctx *c = ctx;
    CU_CHECK(cudaSetDevice(c->dev)); /* the thread's current device may be another */
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream)); /* the host buffer is rewritten by the next run */
    return FX_OK;
}

fx_status cu_copy_out(void *ctx, void *dst, const void *src, size_t bytes, fx_error *err)
{
    cu_ctx *c = ctx;
    CU_CHECK(cudaSetDevice(c->dev)); /* the thread's current device may be another */
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream));
    return FX_OK;
}
#endif
