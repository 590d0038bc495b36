/* The CUDA backend's library calls: convolutions through cuDNN (algorithm
 * found once per node at plan time by running the candidates, bias +
 * residual + Relu fused into cudnnConvolutionBiasActivationForward where
 * cuDNN runs it, else the conv and one epilogue kernel) and Gemm / MatMul
 * through cuBLAS (row-major operands as the transposed column-major
 * product).  Only compiled with FX_HAVE_CUDA. */
#ifdef FX_HAVE_CUDA
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda_internal.h"

fx_unary_kind cu_act(fx_act_kind a)
{
    switch (a) {
    case FX_ACT_NONE: return FX_U_NONE;
    case FX_ACT_RELU: return FX_U_RELU;
    case FX_ACT_CLIP: return FX_U_CLIP;
    case FX_ACT_SILU: return FX_U_SILU;
    }
    return FX_U_NONE;
}

static cudnnDataType_t dnn_type(fx_cu_dtype dt)
{
    return dt == FX_CU_F16    ? CUDNN_DATA_HALF
           : dt == FX_CU_BF16 ? CUDNN_DATA_BFLOAT16
                              : CUDNN_DATA_FLOAT;
}

void cu_conv_destroy(cu_conv *cv)
{
    if (!cv)
        return;
    if (cv->x)
        cudnnDestroyTensorDescriptor(cv->x);
    if (cv->y)
        cudnnDestroyTensorDescriptor(cv->y);
    if (cv->bias)
        cudnnDestroyTensorDescriptor(cv->bias);
    if (cv->w)
        cudnnDestroyFilterDescriptor(cv->w);
    if (cv->conv)
        cudnnDestroyConvolutionDescriptor(cv->conv);
    if (cv->bconv)
        cudnnDestroyConvolutionDescriptor(cv->bconv);
    if (cv->act)
        cudnnDestroyActivationDescriptor(cv->act);
    free(cv);
}

/* p as cuDNN sees it: with asymmetric pads (TF's SAME_UPPER exports),
 * cuDNN's symmetric descriptors cannot say them, so the input is first
 * padded into the context's pad scratch (cv->pad) and the conv runs
 * unpadded on that. */
static fx_conv2d_params dnn_params(const fx_conv2d_params *p, cu_conv *cv)
{
    fx_conv2d_params q = *p;
    cv->pad_in = p->pad_t != p->pad_b || p->pad_l != p->pad_r;
    if (!cv->pad_in)
        return q;
    cv->pad = (fx_pad_params){.x = {4, {p->n, p->c_in, p->h, p->w}},
                              .pads = {0, 0, p->pad_t, p->pad_l, 0, 0, p->pad_b, p->pad_r},
                              .mode = FX_PADMODE_CONSTANT};
    q.h += p->pad_t + p->pad_b, q.w += p->pad_l + p->pad_r;
    q.pad_t = q.pad_b = q.pad_l = q.pad_r = 0;
    return q;
}

static fx_status conv_descriptors(cu_ctx *c, const fx_conv2d_params *p, cu_conv *cv, fx_error *err)
{
    cudnnDataType_t t = dnn_type(c->dt);
    int oh, ow;
    fx_status st = fx_conv2d_out_hw(p, &oh, &ow, err);
    if (st != FX_OK)
        return st;
    DNN_CHECK(cudnnCreateTensorDescriptor(&cv->x));
    DNN_CHECK(cudnnCreateTensorDescriptor(&cv->y));
    DNN_CHECK(cudnnCreateTensorDescriptor(&cv->bias));
    DNN_CHECK(cudnnCreateFilterDescriptor(&cv->w));
    DNN_CHECK(cudnnCreateConvolutionDescriptor(&cv->conv));
    DNN_CHECK(cudnnCreateActivationDescriptor(&cv->act));
    DNN_CHECK(cudnnSetTensor4dDescriptor(cv->x, CUDNN_TENSOR_NCHW, t, p->n, p->c_in, p->h, p->w));
    DNN_CHECK(cudnnSetTensor4dDescriptor(cv->y, CUDNN_TENSOR_NCHW, t, p->n, p->c_out, oh, ow));
    cv->spatial = (int64_t)oh * ow;
    DNN_CHECK(cudnnSetTensor4dDescriptor(cv->bias, CUDNN_TENSOR_NCHW, t, 1, p->c_out, 1, 1));
    DNN_CHECK(cudnnSetFilter4dDescriptor(cv->w, t, CUDNN_TENSOR_NCHW, p->c_out, p->c_in / p->groups,
                                         p->kh, p->kw));
    /* fp32 and tf32 compute in float; fp16 / bf16 store half but accumulate in float. */
    DNN_CHECK(cudnnSetConvolution2dDescriptor(cv->conv, p->pad_t, p->pad_l, p->stride_h,
                                              p->stride_w, p->dil_h, p->dil_w,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DNN_CHECK(cudnnSetConvolutionGroupCount(cv->conv, p->groups));
    /* FP32: FMA only (TF32 off); TF32: the default math, which lets cuDNN
     * use TF32 tensor cores on float data; fp16 / bf16: tensor cores. */
    cudnnMathType_t math = c->prec == FX_PREC_FP32   ? CUDNN_FMA_MATH
                           : c->prec == FX_PREC_TF32 ? CUDNN_DEFAULT_MATH
                                                     : CUDNN_TENSOR_OP_MATH;
    DNN_CHECK(cudnnSetConvolutionMathType(cv->conv, math));
    return FX_OK;
}

/* y = conv(x); then the fused route or the epilogue kernel. */
static fx_status conv_exec(cu_ctx *c, const fx_node *n, const cu_conv *cv, const fx_exec_fast *x,
                           int fused, fx_error *err)
{
    const fx_conv2d_params *p = &n->b.u.conv;
    const void *w = x->x.in[1], *b = n->n_in > 2 ? x->x.in[2] : NULL, *in = x->x.in[0];
    const float one = 1.0f, zero = 0.0f;
    void *y = x->x.out[0];
    if (cv->pad_in) {
        fx_status st = fx_cu_pad(c->stream, c->dt, &cv->pad, in, c->pad_ws, err);
        if (st != FX_OK)
            return st;
        in = c->pad_ws;
    }
    if (fused) {
        const float alpha2 = x->ep.residual ? 1.0f : 0.0f;
        DNN_CHECK(cudnnConvolutionBiasActivationForward(
            c->dnn, &one, cv->x, in, cv->w, w, cv->conv, cv->algo, c->dnn_ws, cv->ws_bytes, &alpha2,
            cv->y, x->ep.residual ? x->ep.residual : y, cv->bias, b ? b : c->zeros, cv->act, cv->y,
            y));
        return FX_OK;
    }
    DNN_CHECK(cudnnConvolutionForward(c->dnn, &one, cv->x, in, cv->w, w, cv->conv, cv->algo,
                                      c->dnn_ws, cv->ws_bytes, &zero, cv->y, y));
    if (!b && !x->ep.residual && x->ep.act == FX_ACT_NONE)
        return FX_OK;
    return fx_cu_epilogue(c->stream, c->dt, p->n, p->c_out, cv->spatial, b, x->ep.residual,
                          cu_act(x->ep.act), x->ep.lo, x->ep.hi, y, err);
}

static int algo_ok(const cu_ctx *c, const cudnnConvolutionFwdAlgoPerf_t *r)
{
    if (r->status != CUDNN_STATUS_SUCCESS || r->memory > c->dnn_ws_bytes)
        return 0;
    if (c->prec != FX_PREC_FP32)
        return 1;
    return r->mathType != CUDNN_TENSOR_OP_MATH &&
           r->mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
           r->algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT &&
           r->algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING;
}

fx_status cu_conv_prepare(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, cu_conv **out,
                          fx_error *err)
{
    const fx_conv2d_params *p = &n->b.u.conv;
    cu_conv *cv = calloc(1, sizeof *cv);
    if (!cv)
        return fx_error_set(err, FX_ERR_NOMEM, "cuda: out of memory");
    *out = cv; /* owned by the node table from here, freed at destroy */
    fx_conv2d_params q = dnn_params(p, cv);
    fx_status st = conv_descriptors(c, &q, cv, err);
    if (st != FX_OK)
        return st;
    const void *in = x->x.in[0];
    if (cv->pad_in) { /* one scratch for every such conv, grown here at plan time */
        size_t bytes = (size_t)q.n * q.c_in * q.h * q.w * (c->dt == FX_CU_F32 ? 4 : 2);
        if (bytes > c->pad_ws_bytes) {
            cudaFree(c->pad_ws);
            c->pad_ws = NULL, c->pad_ws_bytes = 0;
            CU_CHECK(cudaMalloc(&c->pad_ws, bytes));
            c->pad_ws_bytes = bytes;
        }
        in = c->pad_ws;
    }
    /* Time every algorithm on the real buffers once; keep the fastest that
     * fits the workspace (results come sorted by time).  Strict fp32 also
     * skips tensor-op results and the FFT algorithms, whose rounding error
     * is larger than the 1e-5 fp32 is held to. */
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0, hit = -1;
    /* convs of the same shape (ResNet's repeated blocks) are timed once */
    for (int i = 0; i < c->n_algo && hit < 0; i++)
        if (!memcmp(&c->algo_cache[i].q, &q, sizeof q))
            hit = i;
    if (hit >= 0) {
        perf[0] = c->algo_cache[hit].perf;
        got = 1;
    } else {
        DNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
            c->dnn, cv->x, in, cv->w, x->x.in[1], cv->conv, cv->y, x->x.out[0],
            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, c->dnn_ws, c->dnn_ws_bytes));
    }
    int k = 0;
    while (k < got && !algo_ok(c, &perf[k]))
        k++;
    if (k == got)
        return fx_error_set(err, FX_ERR_DEVICE, "node '%s' (Conv): cuDNN found no algorithm",
                            n->name);
    if (hit < 0 && c->n_algo < FX_ALGO_CACHE)
        c->algo_cache[c->n_algo++] = (cu_algo){q, perf[k]};
    cv->algo = perf[k].algo;
    cv->ws_bytes = perf[k].memory;
    /* the math type the algorithm was timed with (cuDNN needs both) */
    DNN_CHECK(cudnnSetConvolutionMathType(cv->conv, perf[k].mathType));
    /* The fused call: Relu, or no activation (cuDNN allows identity only with
     * IMPLICIT_PRECOMP_GEMM).  Tried once here; where cuDNN refuses it, the
     * node keeps the conv + epilogue kernel route. */
    int relu = x->ep.act == FX_ACT_RELU, none = x->ep.act == FX_ACT_NONE;
    int want = relu || (none && cv->algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    if (want && (n->n_in > 2 || x->ep.residual || relu)) {
        DNN_CHECK(cudnnSetActivationDescriptor(
            cv->act, relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
            CUDNN_NOT_PROPAGATE_NAN, 0.0));
        fx_error probe = {0};
        cv->fused = conv_exec(c, n, cv, x, 1, &probe) == FX_OK &&
                    cudaStreamSynchronize(c->stream) == cudaSuccess;
        (void)cudaGetLastError(); /* a refused fused call leaves no sticky error */
    }
    return FX_OK;
}

fx_status cu_conv_run(cu_ctx *c, const fx_node *n, const cu_conv *cv, const fx_exec_fast *x,
                      fx_error *err)
{
    return conv_exec(c, n, cv, x, cv->fused, err);
}

/* cuDNN's heuristic order, keeping the first algorithm that fits the
 * workspace (strict fp32: no tensor ops, no FFT, as the forward). */
fx_status cu_conv_vjp_prepare(cu_ctx *c, const fx_node *n, cu_conv *cv, fx_error *err)
{
    const fx_conv2d_params *p = &n->b.u.conv;
    if (cv->bconv)
        return FX_OK;
    DNN_CHECK(cudnnCreateConvolutionDescriptor(&cv->bconv));
    DNN_CHECK(cudnnSetConvolution2dDescriptor(cv->bconv, p->pad_t, p->pad_l, p->stride_h,
                                              p->stride_w, p->dil_h, p->dil_w,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DNN_CHECK(cudnnSetConvolutionGroupCount(cv->bconv, p->groups));
    DNN_CHECK(cudnnSetConvolutionMathType(cv->bconv, c->prec == FX_PREC_FP32 ? CUDNN_FMA_MATH
                                                                             : CUDNN_DEFAULT_MATH));
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int got = 0;
    DNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        c->dnn, cv->w, cv->y, cv->bconv, cv->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
    for (int k = 0; k < got; k++) {
        const cudnnConvolutionBwdDataAlgoPerf_t *r = &perf[k];
        int strict_bad =
            c->prec == FX_PREC_FP32 && (r->mathType == CUDNN_TENSOR_OP_MATH ||
                                        r->mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION ||
                                        r->algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
                                        r->algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING);
        if (r->status != CUDNN_STATUS_SUCCESS || r->memory > c->dnn_ws_bytes || strict_bad)
            continue;
        cv->balgo = r->algo, cv->bws_bytes = r->memory;
        DNN_CHECK(cudnnSetConvolutionMathType(cv->bconv, r->mathType));
        return FX_OK;
    }
    return fx_error_set(err, FX_ERR_DEVICE,
                        "node '%s' (Conv): cuDNN has no backward-data algorithm", n->name);
}

/* dx += conv^T(dy, w): beta 1 accumulates, as every VJP does. */
fx_status cu_conv_vjp(cu_ctx *c, const cu_conv *cv, const void *w, const float *dy, float *dx,
                      fx_error *err)
{
    const float one = 1.0f;
    DNN_CHECK(cudnnConvolutionBackwardData(c->dnn, &one, cv->w, w, cv->y, dy, cv->bconv, cv->balgo,
                                           c->dnn_ws, cv->bws_bytes, &one, cv->x, dx));
    return FX_OK;
}

static cudaDataType_t blas_type(fx_cu_dtype dt)
{
    return dt == FX_CU_F16 ? CUDA_R_16F : dt == FX_CU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* Row-major y (m, n) += alpha * op(A) (m, k) * op(B) (k, n): cuBLAS is
 * column-major, so it computes y^T = op(B)^T op(A)^T on the same bytes. */
static fx_status gemm_rm(cu_ctx *c, int64_t m, int64_t n, int64_t k, int trans_a, int trans_b,
                         float alpha, const void *a, const void *b, float beta, void *y,
                         fx_error *err)
{
    if (m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "cuBLAS: dims over 2^31");
    if (m == 0 || n == 0 || k == 0)
        return FX_OK; /* nothing to add (the caller wrote y's C term, or zeros) */
    cudaDataType_t t = blas_type(c->dt);
    cublasComputeType_t ct =
        c->prec == FX_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    BLAS_CHECK(cublasGemmEx(c->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k, &alpha, b,
                            t, trans_b ? (int)k : (int)n, a, t, trans_a ? (int)m : (int)k, &beta, y,
                            t, (int)n, ct, CUBLAS_GEMM_DEFAULT));
    return FX_OK;
}

fx_status cu_gemm_run(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, fx_error *err)
{
    const fx_gemm_params *p = &n->b.u.gemm;
    const void *cc = n->n_in > 2 ? x->x.in[2] : NULL;
    /* y = beta C (broadcast) first and the product added (beta 1); without
     * C the product alone (beta 0), and K = 0 leaves the fill's zeros */
    if (cc || p->k == 0) {
        fx_status st = fx_cu_gemm_c(c->stream, c->dt, p->m, p->n, p->beta, cc, p->c_rows, p->c_cols,
                                    x->x.out[0], err);
        if (st != FX_OK)
            return st;
    }
    return gemm_rm(c, p->m, p->n, p->k, p->trans_a, p->trans_b, p->alpha, x->x.in[0], x->x.in[1],
                   cc ? 1.0f : 0.0f, x->x.out[0], err);
}

/* dA += alpha dy op(B)^T for y = alpha op(A) op(B) (+ C), written as
 * gemm_rm products on the stored layouts: A (M, K), or (K, M) when
 * transposed, gets dy (M, N) times op(B)^T (N, K); a transposed A gets
 * op(B) (K, N) times dy^T.  fp32 plans: dy and dA are float32. */
fx_status cu_gemm_vjp(cu_ctx *c, const fx_node *n, const void *b, const float *dy, float *da,
                      fx_error *err)
{
    const fx_gemm_params *p = &n->b.u.gemm;
    if (!p->trans_a)
        return gemm_rm(c, p->m, p->k, p->n, 0, !p->trans_b, p->alpha, dy, b, 1.0f, da, err);
    return gemm_rm(c, p->k, p->m, p->n, p->trans_b, 1, p->alpha, b, dy, 1.0f, da, err);
}

/* A MatMul whose batch dims broadcast from both sides: the matrices' device
 * addresses, B_i, A_i, Y_i for every product, computed once here (the
 * arena and the constants do not move) for cublasGemmBatchedEx. */
fx_status cu_matmul_prepare(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, void ***ptrs,
                            fx_error *err)
{
    fx_cu_mm d;
    *ptrs = NULL;
    if (fx_lower_matmul(&n->b.u.mm, &d) != FX_OK || !d.general || d.batch == 0)
        return FX_OK;
    size_t es = c->dt == FX_CU_F32 ? 4 : 2, nb = (size_t)d.batch;
    void **h = malloc(3 * nb * sizeof *h);
    if (!h)
        return fx_error_set(err, FX_ERR_NOMEM, "cuda: out of memory");
    for (int64_t i = 0; i < d.batch; i++) {
        int64_t oa, ob;
        fx_cu_mm_offsets(&d, i, &oa, &ob);
        h[i] = (char *)x->x.in[1] + (size_t)ob * es;
        h[nb + i] = (char *)x->x.in[0] + (size_t)oa * es;
        h[2 * nb + i] = (char *)x->x.out[0] + (size_t)(i * d.stride_y) * es;
    }
    cudaError_t e = cudaMalloc((void **)ptrs, 3 * nb * sizeof *h);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(*ptrs, h, 3 * nb * sizeof *h, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(c->stream);
    free(h);
    CU_CHECK(e);
    return FX_OK;
}

/* numpy.matmul: one product when B is one matrix for a contiguous A batch
 * (the batch folds into M), strided batched products when each operand's
 * matrices are evenly spaced, else per-matrix pointers (cu_matmul_prepare). */
fx_status cu_matmul_run(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, void **ptrs,
                        fx_error *err)
{
    fx_cu_mm d;
    if (fx_lower_matmul(&n->b.u.mm, &d) != FX_OK)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "cuda: MatMul shapes");
    if (d.k == 0 || d.m == 0 || d.n == 0) /* an empty sum: zeros */
        return fx_cu_gemm_c(c->stream, c->dt, d.batch * d.m, d.n, 0.0f, NULL, 1, 1, x->x.out[0],
                            err);
    if (!d.general && d.stride_b == 0 && (d.stride_a == d.m * d.k || d.batch == 1))
        return gemm_rm(c, d.batch * d.m, d.n, d.k, 0, 0, 1.0f, x->x.in[0], x->x.in[1], 0.0f,
                       x->x.out[0], err);
    if (d.m > 0x7fffffff || d.n > 0x7fffffff || d.k > 0x7fffffff || d.batch > 0x7fffffff)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "cuBLAS: dims over 2^31");
    if (d.general && !ptrs)
        return fx_error_set(err, FX_ERR_INTERNAL, "cuda: MatMul without its pointer arrays");
    cudaDataType_t t = blas_type(c->dt);
    cublasComputeType_t ct =
        c->prec == FX_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const float one = 1.0f, zero = 0.0f;
    size_t nb = (size_t)d.batch;
    /* column-major: y_i^T (n, m) = b_i^T a_i^T, as gemm_rm */
    if (d.general)
        BLAS_CHECK(cublasGemmBatchedEx(
            c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d.n, (int)d.m, (int)d.k, &one,
            (const void *const *)ptrs, t, (int)d.n, (const void *const *)(ptrs + nb), t, (int)d.k,
            &zero, ptrs + 2 * nb, t, (int)d.n, (int)d.batch, ct, CUBLAS_GEMM_DEFAULT));
    else
        BLAS_CHECK(cublasGemmStridedBatchedEx(
            c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d.n, (int)d.m, (int)d.k, &one, x->x.in[1], t,
            (int)d.n, d.stride_b, x->x.in[0], t, (int)d.k, d.stride_a, &zero, x->x.out[0], t,
            (int)d.n, d.stride_y, (int)d.batch, ct, CUBLAS_GEMM_DEFAULT));
    return FX_OK;
}
#endif
