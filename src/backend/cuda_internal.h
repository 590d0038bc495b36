/* Internals of the CUDA backend shared by cuda.c (memory, graphs, node
 * dispatch) and cuda_dnn.c (cuDNN convolutions, cuBLAS Gemm/MatMul).
 * Only compiled with FX_HAVE_CUDA. */
#ifndef FX_BACKEND_CUDA_INTERNAL_H
#define FX_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend/backend.h"
#include "backend/cuda_ops.h"

/* Every CUDA, cuDNN and cuBLAS call goes through one of these: on failure
 * they return FX_ERR_DEVICE naming the call, the file and the line. */
#define CU_CHECK(call)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return fx_error_set(err, FX_ERR_DEVICE, "%s:%d: %s: %s (%s)", __FILE__, __LINE__,      \
                                #call, cudaGetErrorString(e_), cudaGetErrorName(e_));              \
    } while (0)
#define DNN_CHECK(call)                                                                            \
    do {                                                                                           \
        cudnnStatus_t e_ = (call);                                                                 \
        if (e_ != CUDNN_STATUS_SUCCESS)                                                            \
            return fx_error_set(err, FX_ERR_DEVICE, "%s:%d: %s: %s", __FILE__, __LINE__, #call,    \
                                cudnnGetErrorString(e_));                                          \
    } while (0)
#define BLAS_CHECK(call)                                                                           \
    do {                                                                                           \
        cublasStatus_t e_ = (call);                                                                \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return fx_error_set(err, FX_ERR_DEVICE, "%s:%d: %s: %s", __FILE__, __LINE__, #call,    \
                                cublasGetStatusString(e_));                                        \
    } while (0)

/* cuDNN state of one Conv node, chosen once at plan time. */
typedef struct cu_conv {
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnActivationDescriptor_t act;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws_bytes;
    int64_t spatial;   /* OH x OW: the epilogue kernel's plane */
    int fused;         /* 1: cudnnConvolutionBiasActivationForward runs bias, residual and act */
    int pad_in;        /* asymmetric pads: the input is padded into cu_ctx.pad_ws first */
    fx_pad_params pad; /* ... by this Pad */
    /* The backward (cu_conv_vjp_prepare): its own descriptor, so that its
     * math type does not change the forward's. */
    cudnnConvolutionDescriptor_t bconv;
    cudnnConvolutionBwdDataAlgo_t balgo;
    size_t bws_bytes;
} cu_conv;

typedef struct cu_node {
    cu_conv *conv;  /* Conv */
    float *bn_ab;   /* BatchNormalization: 2C device floats (fx_hd_bn_coeffs) */
    void **mm_ptrs; /* MatMul broadcasting batch dims from both sides: 3 x batch device
                       pointers (B_i, A_i, Y_i), made at plan time */
} cu_node;

/* A conv shape (as cuDNN sees it) and the algorithm chosen for it. */
typedef struct cu_algo {
    fx_conv2d_params q;
    cudnnConvolutionFwdAlgoPerf_t perf;
} cu_algo;
#define FX_ALGO_CACHE 256

typedef struct cu_ctx {
    int dev;
    fx_precision prec;
    fx_cu_dtype dt;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    void *blas_ws; /* cuBLAS workspace, set once so graph capture allocates nothing */
    void *dnn_ws;  /* cuDNN workspace, FX_CUDNN_WS bytes */
    size_t dnn_ws_bytes;
    void *zeros;  /* a zero bias for fused convs without one (max C_out elements) */
    void *pad_ws; /* padded input of convs with asymmetric pads (the largest) */
    size_t pad_ws_bytes;
    float *stage; /* float32 staging for fp16/bf16 uploads and downloads */
    int64_t stage_n;
    cu_node *nodes;
    int n_nodes;
    void **allocs; /* constants' device copies, freed at destroy */
    int n_allocs, cap_allocs;
    cu_algo algo_cache[FX_ALGO_CACHE]; /* per plan: shapes already timed */
    int n_algo;
    int graphs, capturing;
    long long runs; /* finished runs: the first is never captured */
    cudaGraph_t graph;
    cudaGraphExec_t exec;
} cu_ctx;

/* cuDNN workspace reserved once per plan; algorithms needing more are skipped. */
#define FX_CUDNN_WS  ((size_t)256 << 20)
#define FX_CUBLAS_WS ((size_t)32 << 20)

/* cuda_dnn.c */
fx_status cu_conv_prepare(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, cu_conv **out,
                          fx_error *err);
fx_status cu_conv_run(cu_ctx *c, const fx_node *n, const cu_conv *cv, const fx_exec_fast *x,
                      fx_error *err);
void cu_conv_destroy(cu_conv *cv);
fx_status cu_gemm_run(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, fx_error *err);
fx_status cu_matmul_prepare(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, void ***ptrs,
                            fx_error *err);
fx_status cu_matmul_run(cu_ctx *c, const fx_node *n, const fx_exec_fast *x, void **ptrs,
                        fx_error *err);
fx_unary_kind cu_act(fx_act_kind a);
/* The backward of a Conv w.r.t. its input (cuDNN backward data, dx += ...)
 * and of a Gemm w.r.t. A (cuBLAS, da += ...); fp32 plans. */
fx_status cu_conv_vjp_prepare(cu_ctx *c, const fx_node *n, cu_conv *cv, fx_error *err);
fx_status cu_conv_vjp(cu_ctx *c, const cu_conv *cv, const void *w, const float *dy, float *dx,
                      fx_error *err);
fx_status cu_gemm_vjp(cu_ctx *c, const fx_node *n, const void *b, const float *dy, float *da,
                      fx_error *err);

/* cuda_vjp.c: the backend table's backward members. */
int cu_supports_vjp(void *ctx, const fx_graph *g, const fx_node *n, const char *need, char *why,
                    size_t cap);
fx_status cu_prepare_vjp(void *ctx, int s, const fx_node *n, fx_error *err);
fx_status cu_run_vjp(void *ctx, int s, const fx_node *n, const fx_vjp_io *io, fx_error *err);
fx_status cu_zero(void *ctx, void *ptr, size_t bytes, fx_error *err);
fx_status cu_copy_in(void *ctx, void *dst, const void *src, size_t bytes, fx_error *err);
fx_status cu_copy_out(void *ctx, void *dst, const void *src, size_t bytes, fx_error *err);
/* cuda.c: FX_CUDA_REFUSE-style lists: 1 when op is named in env var `var`. */
int cu_refused_by_env(const char *var, const char *op);

#endif
