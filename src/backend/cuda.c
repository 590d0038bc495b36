/* The CUDA backend: one device, one stream, the plan's arena in device
 * memory, weights uploaded once at plan time in the plan's precision, and
 * the forward run node by node once, captured into a CUDA graph on the
 * second run and replayed on every later one.  Convolutions and Gemm go to cuDNN and cuBLAS
 * (cuda_dnn.c); every other op to the kernels in kernels/, through the
 * descriptors of cuda_ops.h.  Only compiled with FX_HAVE_CUDA. */
#ifdef FX_HAVE_CUDA
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda_internal.h"
#include "model/ops_common.h"

static cu_ctx *ctx_of(void *p)
{
    return p;
}

/* ---- what runs here --------------------------------------------------------- */

/* Every tensor the node reads or writes at run time is float; constant
 * int64 inputs (Pad's pads, Slice's starts, Gather's indices, ...) are
 * bound parameters, read on the host. */
static int all_float(const fx_graph *g, const fx_node *n, char *why, size_t cap)
{
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && g->t[n->in[k]].kind != FX_T_CONST &&
            g->t[n->in[k]].dt != FX_DT_FLOAT) {
            snprintf(why, cap, "int64 input '%s' at run time", g->t[n->in[k]].name);
            return 0;
        }
    for (int k = 0; k < n->n_out; k++)
        if (g->t[n->out[k]].dt != FX_DT_FLOAT) {
            snprintf(why, cap, "int64 output at run time");
            return 0;
        }
    return 1;
}

/* FX_CUDA_REFUSE=Op,Op (or *): op types treated as unsupported (the
 * fallback's tests, and a way round a kernel found wrong in the field);
 * FX_CUDA_REFUSE_VJP the same for the backward (cuda_vjp.c). */
int cu_refused_by_env(const char *var, const char *op)
{
    const char *list = getenv(var);
    if (list && !strcmp(list, "*"))
        return 1;
    size_t n = strlen(op);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
        if (!strncmp(p, op, n) && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static int cu_supports(void *ctx, const fx_graph *g, const fx_node *n, char *why, size_t cap)
{
    (void)ctx;
    const char *op = n->op_type;
    if (cu_refused_by_env("FX_CUDA_REFUSE", op)) {
        snprintf(why, cap, "refused by FX_CUDA_REFUSE");
        return 0;
    }
    if (!all_float(g, n, why, cap))
        return 0;
    if (!strcmp(op, "BatchNormalization")) {
        for (int k = 1; k < 5; k++)
            if (g->t[n->in[k]].kind != FX_T_CONST) {
                snprintf(why, cap, "statistics computed at run time (want constants)");
                return 0;
            }
        return 1;
    }
    if (!strcmp(op, "MatMul") || !strcmp(op, "ReduceMean")) {
        fx_cu_mm d;
        fx_cu_red r;
        if (op[0] == 'M' ? fx_lower_matmul(&n->b.u.mm, &d) != FX_OK
                         : !n->b.kind_flag && fx_lower_reduce(&n->b.u.red, &r) != FX_OK) {
            snprintf(why, cap, "shapes beyond the kernels' rank");
            return 0;
        }
        return 1;
    }
    static const char *const ok[] = {
        "Conv",          "Relu",        "LeakyRelu",   "Clip",
        "Sigmoid",       "HardSigmoid", "HardSwish",   "Tanh",
        "PRelu",         "Add",         "Sub",         "Mul",
        "Div",           "MaxPool",     "AveragePool", "GlobalAveragePool",
        "GlobalMaxPool", "Gemm",        "Softmax",     "Concat",
        "Split",         "Transpose",   "Pad",         "Slice",
        "Gather",        "Cast",        "Elu",         "Selu",
        "Gelu"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(op, ok[i]))
            return 1;
    snprintf(why, cap, "no CUDA kernel");
    return 0;
}

/* ---- memory ------------------------------------------------------------------- */

static size_t cu_elem_size(void *ctx)
{
    return ctx_of(ctx)->dt == FX_CU_F32 ? 4 : 2;
}

static fx_status cu_alloc(void *ctx, size_t bytes, void **out, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    CU_CHECK(cudaSetDevice(c->dev));
    CU_CHECK(cudaMalloc(out, bytes));
    return FX_OK;
}

static void cu_free(void *ctx, void *ptr)
{
    (void)ctx;
    cudaFree(ptr);
}

/* Host float32 -> device storage type, n elements, queued on the stream. */
static fx_status cu_upload(void *ctx, void *dst, const float *src, int64_t n, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    CU_CHECK(cudaSetDevice(c->dev));
    if (c->dt == FX_CU_F32) {
        CU_CHECK(cudaMemcpyAsync(dst, src, (size_t)n * 4, cudaMemcpyHostToDevice, c->stream));
        return FX_OK;
    }
    if (n > c->stage_n)
        return fx_error_set(err, FX_ERR_INTERNAL, "cuda: upload of %lld > staging %lld",
                            (long long)n, (long long)c->stage_n);
    CU_CHECK(cudaMemcpyAsync(c->stage, src, (size_t)n * 4, cudaMemcpyHostToDevice, c->stream));
    return fx_cu_convert(c->stream, FX_CU_F32, c->dt, n, c->stage, dst, err);
}

static fx_status cu_download(void *ctx, float *dst, const void *src, int64_t n, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    const void *from = src;
    if (c->dt != FX_CU_F32) {
        if (n > c->stage_n)
            return fx_error_set(err, FX_ERR_INTERNAL, "cuda: download of %lld > staging %lld",
                                (long long)n, (long long)c->stage_n);
        fx_status st = fx_cu_convert(c->stream, c->dt, FX_CU_F32, n, src, c->stage, err);
        if (st != FX_OK)
            return st;
        from = c->stage;
    }
    CU_CHECK(cudaMemcpyAsync(dst, from, (size_t)n * 4, cudaMemcpyDeviceToHost, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream)); /* the staging buffer is reused next */
    return FX_OK;
}

static fx_status track(cu_ctx *c, void *p, fx_error *err)
{
    if (c->n_allocs == c->cap_allocs) {
        int cap = c->cap_allocs ? 2 * c->cap_allocs : 64;
        void **a = realloc(c->allocs, sizeof *a * (size_t)cap);
        if (!a) {
            cudaFree(p);
            return fx_error_set(err, FX_ERR_NOMEM, "cuda: out of memory");
        }
        c->allocs = a, c->cap_allocs = cap;
    }
    c->allocs[c->n_allocs++] = p;
    return FX_OK;
}

static fx_status cu_constant(void *ctx, const fx_tensor *t, const void **out, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    int64_t n = fx_shape_numel(&t->shape);
    size_t bytes = (size_t)(n > 0 ? n : 1) * (t->dt == FX_DT_FLOAT ? cu_elem_size(c) : 8);
    void *d = NULL;
    CU_CHECK(cudaSetDevice(c->dev));
    CU_CHECK(cudaMalloc(&d, bytes));
    fx_status st = track(c, d, err);
    if (st != FX_OK)
        return st;
    if (n > 0 && t->dt == FX_DT_FLOAT)
        st = cu_upload(c, d, t->data, n, err);
    else if (n > 0)
        CU_CHECK(cudaMemcpyAsync(d, t->data, (size_t)n * 8, cudaMemcpyHostToDevice, c->stream));
    if (st == FX_OK)
        CU_CHECK(cudaStreamSynchronize(c->stream)); /* the host data may go after this */
    *out = d;
    return st;
}

static fx_status cu_poison(void *ctx, void *ptr, size_t bytes, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    CU_CHECK(cudaMemsetAsync(ptr, 0xff, bytes, c->stream)); /* NaN in f32, f16 and bf16 */
    return FX_OK;
}

/* ---- nodes ----------------------------------------------------------------------- */

static fx_status cu_prepare_node(void *ctx, int s, const fx_node *n, const fx_exec_fast *x,
                                 fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    if (s >= c->n_nodes)
        return fx_error_set(err, FX_ERR_INTERNAL, "cuda: node %d of %d", s, c->n_nodes);
    if (!strcmp(n->op_type, "Conv"))
        return cu_conv_prepare(c, n, x, &c->nodes[s].conv, err);
    if (!strcmp(n->op_type, "MatMul"))
        return cu_matmul_prepare(c, n, x, &c->nodes[s].mm_ptrs, err);
    if (!strcmp(n->op_type, "BatchNormalization")) {
        const fx_graph *g = x->x.g;
        const fx_batchnorm_params *p = &n->b.u.bn;
        float *ab = malloc(sizeof(float) * 2 * (size_t)(p->c > 0 ? p->c : 1));
        if (!ab)
            return fx_error_set(err, FX_ERR_NOMEM, "cuda: out of memory");
        const float *sc = g->t[n->in[1]].data, *bi = g->t[n->in[2]].data;
        const float *mu = g->t[n->in[3]].data, *var = g->t[n->in[4]].data;
        for (int64_t k = 0; k < p->c; k++)
            fx_hd_bn_coeffs(sc[k], bi[k], mu[k], var[k], p->epsilon, &ab[k], &ab[p->c + k]);
        /* On the plan's stream (non-blocking: the legacy stream would not
         * order with it), and waited for before ab goes. */
        cudaError_t e = cudaMalloc((void **)&c->nodes[s].bn_ab, sizeof(float) * 2 * (size_t)p->c);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(c->nodes[s].bn_ab, ab, sizeof(float) * 2 * (size_t)p->c,
                                cudaMemcpyHostToDevice, c->stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(c->stream);
        free(ab);
        CU_CHECK(e);
    }
    return FX_OK;
}

static const fx_shape *shape_in(const fx_exec_fast *x, const fx_node *n, int k)
{
    return &x->x.g->t[n->in[k]].shape;
}

static const fx_shape *shape_out(const fx_exec_fast *x, const fx_node *n, int k)
{
    return &x->x.g->t[n->out[k]].shape;
}

/* Concat, Split, Transpose, Slice, Gather: strided copies (lower.c). */
typedef struct copy_ctx {
    cu_ctx *c;
    const fx_exec_fast *x;
} copy_ctx;

static fx_status copy_one(void *ctx, const fx_cu_map *m, int in, int out, fx_error *err)
{
    const copy_ctx *k = ctx;
    return fx_cu_map_copy(k->c->stream, k->c->dt, m, k->x->x.in[in], k->x->x.out[out], err);
}

static fx_status run_copies(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, fx_error *err)
{
    copy_ctx k = {c, x};
    return fx_lower_copies(x->x.g, n, copy_one, &k, err);
}

static fx_status copy_whole(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, fx_error *err)
{
    size_t bytes = (size_t)fx_shape_numel(shape_out(x, n, 0)) * cu_elem_size(c);
    if (x->x.out[0] != x->x.in[0])
        CU_CHECK(
            cudaMemcpyAsync(x->x.out[0], x->x.in[0], bytes, cudaMemcpyDeviceToDevice, c->stream));
    return FX_OK;
}

static fx_status dispatch(cu_ctx *c, int s, const fx_node *n, const fx_exec_fast *x, fx_error *err)
{
    const char *op = n->op_type;
    const void *in0 = x->x.in[0];
    void *out0 = x->x.out[0];
    fx_unary_kind u = fx_op_unary_kind(op);
    if (u != FX_U_NONE)
        return fx_cu_unary(c->stream, c->dt, n->b.u.act.n, u, n->b.u.act.alpha, n->b.u.act.beta,
                           in0, out0, err);
    if (!strcmp(op, "Conv"))
        return cu_conv_run(c, n, c->nodes[s].conv, x, err);
    if (!strcmp(op, "BatchNormalization")) {
        const fx_batchnorm_params *p = &n->b.u.bn;
        return fx_cu_batchnorm(c->stream, c->dt, p->n, p->c, p->spatial, c->nodes[s].bn_ab,
                               cu_act(x->ep.act), x->ep.lo, x->ep.hi, in0, out0, err);
    }
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div") ||
        !strcmp(op, "PRelu")) {
        fx_cu_bin b;
        if (fx_lower_binary(&n->b.u.bin, op[0] == 'P' ? 'P' : op[0], &b) != FX_OK)
            return fx_error_set(err, FX_ERR_UNSUPPORTED, "cuda: %s shapes", op);
        return fx_cu_binary(c->stream, c->dt, &b, in0, x->x.in[1], out0, err);
    }
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool"))
        return fx_cu_pool2d(c->stream, c->dt, &n->b.u.pool, op[0] == 'M', in0, out0, err);
    if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool")) {
        const fx_global_pool_params *p = &n->b.u.gpool;
        return fx_cu_global_pool(c->stream, c->dt, p->n * p->c, p->spatial, op[6] == 'M', in0, out0,
                                 err);
    }
    if (!strcmp(op, "Gemm"))
        return cu_gemm_run(c, n, x, err);
    if (!strcmp(op, "MatMul"))
        return cu_matmul_run(c, n, x, c->nodes[s].mm_ptrs, err);
    if (!strcmp(op, "Softmax")) {
        int64_t outer, len, inner;
        fx_lower_axes3(&n->b.u.sm.x, n->b.u.sm.axis, n->b.u.sm.axis, &outer, &len, &inner);
        return fx_cu_softmax(c->stream, c->dt, outer, len, inner, in0, out0, err);
    }
    if (!strcmp(op, "ReduceMean")) {
        fx_cu_red r;
        if (n->b.kind_flag) /* noop_with_empty_axes */
            return copy_whole(c, n, x, err);
        if (fx_lower_reduce(&n->b.u.red, &r) != FX_OK)
            return fx_error_set(err, FX_ERR_UNSUPPORTED, "cuda: ReduceMean shapes");
        return fx_cu_reduce_mean(c->stream, c->dt, &r, in0, out0, err);
    }
    if (!strcmp(op, "Pad"))
        return fx_cu_pad(c->stream, c->dt, &n->b.u.pad, in0, out0, err);
    if (!strcmp(op, "Cast"))
        return copy_whole(c, n, x, err); /* float to float (supports refuses int64) */
    return run_copies(c, n, x, err);
}

static fx_status cu_run_node(void *ctx, int s, const fx_node *n, const fx_exec_fast *x,
                             fx_error *err)
{
    return dispatch(ctx_of(ctx), s, n, x, err);
}

/* Run 1 goes node by node (it also warms up cuBLAS, cuDNN and the kernels
 * outside any capture); run 2 is captured into a CUDA graph and launched;
 * later runs replay it. */
static fx_status cu_begin(void *ctx, int *replayed, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    *replayed = 0;
    CU_CHECK(cudaSetDevice(c->dev)); /* this thread may not be the creating one */
    if (!c->graphs || c->runs == 0)
        return FX_OK;
    if (c->exec) {
        CU_CHECK(cudaGraphLaunch(c->exec, c->stream));
        *replayed = 1;
        return FX_OK;
    }
    /* Thread-local: another thread's plan may run meanwhile. */
    CU_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->capturing = 1;
    return FX_OK;
}

/* Drops a capture that failed or could not be made into a graph; the plan
 * then reruns this batch node by node, and so do later runs. */
static void abandon_capture(cu_ctx *c, int *rerun)
{
    if (c->exec)
        cudaGraphExecDestroy(c->exec);
    if (c->graph)
        cudaGraphDestroy(c->graph);
    c->exec = NULL, c->graph = NULL;
    c->graphs = 0;
    (void)cudaGetLastError();
    *rerun = 1;
}

static fx_status cu_end(void *ctx, int failed, int *rerun, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    *rerun = 0;
    c->runs++;
    if (!c->capturing)
        return FX_OK;
    c->capturing = 0;
    cudaError_t e = cudaStreamEndCapture(c->stream, &c->graph);
    if (failed || e != cudaSuccess || !c->graph) {
        abandon_capture(c, rerun);
        return FX_OK;
    }
    if (cudaGraphInstantiate(&c->exec, c->graph, 0) != cudaSuccess) {
        c->exec = NULL;
        abandon_capture(c, rerun);
        return FX_OK;
    }
    CU_CHECK(cudaGraphLaunch(c->exec, c->stream));
    return FX_OK;
}

static fx_status cu_sync(void *ctx, fx_error *err)
{
    cu_ctx *c = ctx_of(ctx);
    CU_CHECK(cudaStreamSynchronize(c->stream));
    CU_CHECK(cudaGetLastError());
    return FX_OK;
}

static void cu_queue(void *ctx, void **stream, int *storage, int *device)
{
    cu_ctx *c = ctx_of(ctx);
    *stream = c->stream, *storage = (int)c->dt, *device = c->dev;
}

static void cu_destroy(void *ctx)
{
    cu_ctx *c = ctx_of(ctx);
    if (!c)
        return;
    cudaSetDevice(c->dev);
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    if (c->exec)
        cudaGraphExecDestroy(c->exec);
    if (c->graph)
        cudaGraphDestroy(c->graph);
    for (int i = 0; i < c->n_nodes; i++) {
        cu_conv_destroy(c->nodes[i].conv);
        cudaFree(c->nodes[i].bn_ab);
        cudaFree(c->nodes[i].mm_ptrs);
    }
    for (int i = 0; i < c->n_allocs; i++)
        cudaFree(c->allocs[i]);
    cudaFree(c->blas_ws);
    cudaFree(c->dnn_ws);
    cudaFree(c->zeros);
    cudaFree(c->pad_ws);
    cudaFree(c->stage);
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->dnn)
        cudnnDestroy(c->dnn);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c->allocs);
    free(c->nodes);
    free(c);
}

const fx_backend_ops fx_backend_cuda = {
    .name = "cuda",
    .fusions = FX_FUSE_EPILOGUE,
    .supports_node = cu_supports,
    .elem_size = cu_elem_size,
    .alloc = cu_alloc,
    .free = cu_free,
    .constant = cu_constant,
    .prepare_node = cu_prepare_node,
    .run_node = cu_run_node,
    .upload = cu_upload,
    .download = cu_download,
    .poison = cu_poison,
    .begin = cu_begin,
    .end = cu_end,
    .sync = cu_sync,
    .destroy = cu_destroy,
    .host_memory = 0,
    .supports_vjp = cu_supports_vjp,
    .prepare_vjp = cu_prepare_vjp,
    .run_vjp = cu_run_vjp,
    .zero = cu_zero,
    .copy_in = cu_copy_in,
    .copy_out = cu_copy_out,
    .queue = cu_queue,
};

/* The largest float tensor (staging for fp16/bf16 conversions) and the
 * widest conv output (the zero bias). */
static void graph_maxima(const fx_graph *g, int64_t *numel, int64_t *c_out)
{
    *numel = 1, *c_out = 1;
    for (int t = 0; t < g->n_t; t++)
        if (g->t[t].dt == FX_DT_FLOAT && g->t[t].shape_known &&
            fx_shape_numel(&g->t[t].shape) > *numel)
            *numel = fx_shape_numel(&g->t[t].shape);
    for (int i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i].op_type, "Conv") && g->nodes[i].b.u.conv.c_out > *c_out)
            *c_out = g->nodes[i].b.u.conv.c_out;
}

static fx_status cuda_init(cu_ctx *c, const fx_graph *g, fx_error *err)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return fx_error_set(err, FX_ERR_DEVICE, "--device cuda: %s; use --device cpu or auto",
                            cudaGetErrorString(e));
    }
    if (c->dev >= count)
        return fx_error_set(err, FX_ERR_DEVICE,
                            "--device cuda:%d: this machine has %d CUDA device%s (0..%d)", c->dev,
                            count, count == 1 ? "" : "s", count - 1);
    CU_CHECK(cudaSetDevice(c->dev));
    CU_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    DNN_CHECK(cudnnCreate(&c->dnn));
    DNN_CHECK(cudnnSetStream(c->dnn, c->stream));
    BLAS_CHECK(cublasCreate(&c->blas));
    BLAS_CHECK(cublasSetStream(c->blas, c->stream));
    CU_CHECK(cudaMalloc(&c->blas_ws, FX_CUBLAS_WS));
    BLAS_CHECK(cublasSetWorkspace(c->blas, c->blas_ws, FX_CUBLAS_WS));
    BLAS_CHECK(cublasSetMathMode(c->blas, c->prec == FX_PREC_TF32   ? CUBLAS_TF32_TENSOR_OP_MATH
                                          : c->prec == FX_PREC_FP32 ? CUBLAS_PEDANTIC_MATH
                                                                    : CUBLAS_DEFAULT_MATH));
    c->dnn_ws_bytes = FX_CUDNN_WS;
    CU_CHECK(cudaMalloc(&c->dnn_ws, c->dnn_ws_bytes));
    int64_t numel, c_out;
    graph_maxima(g, &numel, &c_out);
    CU_CHECK(cudaMalloc(&c->zeros, (size_t)c_out * 4));
    /* 0.0 in every storage type; on the plan's stream, which does not
     * order with the legacy one */
    CU_CHECK(cudaMemsetAsync(c->zeros, 0, (size_t)c_out * 4, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream));
    if (c->dt != FX_CU_F32) {
        c->stage_n = numel;
        CU_CHECK(cudaMalloc((void **)&c->stage, (size_t)numel * 4));
    }
    return FX_OK;
}

fx_status fx_backend_cuda_create(const fx_graph *g, const fx_backend_cfg *cfg, void **out,
                                 fx_error *err)
{
    cu_ctx *c = calloc(1, sizeof *c);
    *out = c;
    if (!c || !(c->nodes = calloc((size_t)g->n_nodes + 1, sizeof *c->nodes)))
        return fx_error_set(err, FX_ERR_NOMEM, "cuda: out of memory");
    c->n_nodes = g->n_nodes;
    c->dev = cfg->device_index;
    c->prec = cfg->precision == FX_PREC_DEFAULT ? FX_PREC_GPU_DEFAULT : cfg->precision;
    c->dt = c->prec == FX_PREC_FP16 ? FX_CU_F16 : c->prec == FX_PREC_BF16 ? FX_CU_BF16 : FX_CU_F32;
    c->graphs = cfg->graphs && !getenv("FX_CUDA_NO_GRAPHS");
    return cuda_init(c, g, err); /* on failure the plan destroys c */
}
#endif
