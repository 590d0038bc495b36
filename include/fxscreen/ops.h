/* fxscreen: the operator library below the graph IR.
 *
 * Plain-C reference kernels (fx_op_*_ref) for the ONNX operators that
 * torchvision classification networks export, plus fast CPU variants
 * (fx_op_*_fast) with the same signatures.  A CUDA backend will add
 * fx_op_*_cuda with the same stem and argument order, tested against the
 * references.
 *
 * Conventions
 *   - float32 tensors, contiguous, row-major; images are NCHW.
 *   - The caller allocates every output (and may reuse it between calls);
 *     the *_out_* helpers give the output shapes.  No kernel keeps state.
 *   - Each op takes a small params struct by pointer.  Every kernel
 *     validates its params and returns FX_ERR_USAGE for inconsistent ones
 *     (the graph importer should call the shape helpers first: they take an
 *     fx_error and say what is wrong).  Nothing is written on failure.
 *   - Inputs and outputs must not overlap unless a function says so
 *     (the unary activations may run in place).
 *   - Ranks are at most FX_OPS_MAX_RANK (6) for the N-D ops.
 *
 * Views, not kernels: Flatten, Reshape, Squeeze and Unsqueeze only change
 * the shape of a contiguous tensor, never its bytes, so the graph executor
 * implements them by aliasing the input buffer with a new fx_shape.  There
 * is no fx_op for them.  (Identity and Dropout at inference are the same.)
 */
#ifndef FXSCREEN_OPS_H
#define FXSCREEN_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FX_OPS_MAX_RANK 6

/* A tensor shape: rank 0..FX_OPS_MAX_RANK, dims >= 0 (rank 0 = scalar). */
typedef struct fx_shape {
    int rank;
    int64_t d[FX_OPS_MAX_RANK];
} fx_shape;

/* Number of elements of s (1 for a scalar), or -1 if rank/dims are invalid
 * or the count overflows. */
int64_t fx_shape_numel(const fx_shape *s);

/* ---- Convolution (ops_conv.c, conv_fast.c) ------------------------------- */

/* ONNX Conv / pool auto_pad. */
typedef enum fx_auto_pad {
    FX_PAD_NOTSET = 0, /* explicit pads */
    FX_PAD_SAME_UPPER, /* out = ceil(in / stride), odd extra pad at the end */
    FX_PAD_SAME_LOWER, /* out = ceil(in / stride), odd extra pad at the start */
    FX_PAD_VALID,      /* no padding */
} fx_auto_pad;

/* Resolve auto_pad for one spatial axis into explicit (begin, end) pads, as
 * ONNX defines it: total = max(0, (ceil(in/stride) - 1) * stride +
 * (kernel - 1) * dilation + 1 - in); SAME_UPPER puts total/2 at the begin,
 * SAME_LOWER puts total - total/2 there.  FX_PAD_NOTSET leaves *begin and
 * *end as they are.  Returns FX_ERR_USAGE for non-positive in/kernel/stride/
 * dilation or an unknown mode. */
fx_status fx_auto_pad_resolve(fx_auto_pad mode, int in, int kernel, int stride, int dilation,
                              int *begin, int *end, fx_error *err);

/* 2-D convolution, ONNX Conv semantics (cross-correlation). */
typedef struct fx_conv2d_params {
    int n, c_in, h, w;              /* input (N, C_in, H, W) */
    int c_out, kh, kw;              /* weight (C_out, C_in / groups, kH, kW) */
    int stride_h, stride_w;         /* >= 1 */
    int dil_h, dil_w;               /* >= 1 */
    int pad_t, pad_l, pad_b, pad_r; /* explicit, >= 0, may be asymmetric */
    int groups;                     /* divides c_in and c_out; c_in == groups: depthwise */
} fx_conv2d_params;

/* Output height/width: out = (in + pad_begin + pad_end - dil*(k-1) - 1) / stride + 1.
 * Returns FX_ERR_USAGE (with the reason) for invalid params or an empty output. */
fx_status fx_conv2d_out_hw(const fx_conv2d_params *p, int *out_h, int *out_w, fx_error *err);

/* Reference convolution: y = conv(x, w) + b.
 *   x: (N, C_in, H, W)   w: (C_out, C_in/groups, kH, kW)   b: (C_out) or NULL
 *   y: (N, C_out, OH, OW) with OH, OW from fx_conv2d_out_hw; caller allocates.
 * Accumulates in double so that it is a trustworthy reference. */
fx_status fx_op_conv2d_ref(const fx_conv2d_params *p, const float *x, const float *w,
                           const float *b, float *y);

/* Fast CPU convolution, same contract as fx_op_conv2d_ref (results agree to
 * float32 summation-order error).  1x1 stride-1 unpadded convs go straight
 * to sgemm, depthwise-like convs (C_in/groups == 1) use a direct loop,
 * 3x3 stride-1 convs with >= 16 channels and enough 2x2 output tiles
 * Winograd F(2x2, 3x3) (16 sgemms), everything else im2col + OpenBLAS
 * sgemm.  Allocates its scratch with malloc and frees it before returning;
 * FX_ERR_NOMEM if that fails. */
fx_status fx_op_conv2d_fast(const fx_conv2d_params *p, const float *x, const float *w,
                            const float *b, float *y);

/* Scratch floats fx_op_conv2d_fast_ws needs for p (0 for paths without
 * im2col), or -1 for invalid params.  For a memory plan: reserve once. */
int64_t fx_conv2d_fast_ws_floats(const fx_conv2d_params *p);

/* fx_op_conv2d_fast with caller-owned scratch ws of at least
 * fx_conv2d_fast_ws_floats(p) floats (NULL when that is 0). Never allocates.
 * One scratch slot: the sgemm paths run their task loop on one thread
 * (OpenBLAS may thread each sgemm); fx_op_conv2d_fast_mt below spreads it. */
fx_status fx_op_conv2d_fast_ws(const fx_conv2d_params *p, const float *x, const float *w,
                               const float *b, float *y, float *ws);

/* What a fused conv does after the sum, in this order (the graph plan
 * folds a following Add / Relu / Clip / Sigmoid+Mul into the conv so the
 * output is written once, while it is still in cache):
 *   y = act(conv(x, w) + b + residual). */
typedef enum fx_act_kind {
    FX_ACT_NONE = 0,
    FX_ACT_RELU, /* max(v, 0) */
    FX_ACT_CLIP, /* min(max(v, lo), hi) */
    FX_ACT_SILU, /* v * sigmoid(v), sigmoid as fx_op_sigmoid_fast */
} fx_act_kind;

typedef struct fx_conv_epilogue {
    const float *residual; /* (N, C_out, OH, OW) added before act, or NULL; must not overlap y */
    fx_act_kind act;
    float lo, hi; /* FX_ACT_CLIP bounds */
    /* Prologue (pointwise path only: 1x1, stride 1, no pads, groups 1;
     * FX_ERR_USAGE elsewhere): the conv reads x' = pre_scale[c] * x +
     * pre_shift[c], then max(x', 0) when pre_relu, per input channel c
     * (C_in floats each), instead of x: an inference BatchNorm (+ Relu) in
     * front of the conv, applied to each column chunk in cache (DenseNet's
     * pre-activation layers).  NULL pre_scale: none.  pre_per_image: the
     * scales (and shifts) are N x C_in, row n for image n (a
     * squeeze-excitation gate, EfficientNet's); pre_shift may be NULL. */
    const float *pre_scale, *pre_shift;
    int pre_relu, pre_per_image;
    /* With a prologue, the input may also come in n_pre_src pieces (a fused
     * channel Concat, DenseNet's): pre_src[i] is (N, pre_src_c[i], H, W),
     * their channels in order make up the C_in; x is then not read. */
    const float *const *pre_src;
    const int *pre_src_c;
    int n_pre_src;
    /* Depthwise path only (FX_ERR_USAGE elsewhere): gap[n * C_out + c] =
     * the mean of output plane (n, c), after the activation, taken while
     * the plane is in cache (a GlobalAveragePool reading this conv's
     * output, EfficientNet's squeeze-excitation); NULL: none. */
    float *gap;
} fx_conv_epilogue;

/* Scratch floats fx_op_conv2d_fast_mt needs for p with up to `threads`
 * OpenMP threads (one im2col or Winograd band each, plus the transformed
 * weights for Winograd, or one prologue chunk each for a pointwise conv),
 * or -1 for invalid params. */
int64_t fx_conv2d_fast_ws_floats_mt(const fx_conv2d_params *p, int threads);

/* fx_op_conv2d_fast_ws with an epilogue (ep may be NULL: none) and the work
 * (images x groups x row bands, or column chunks for 1x1) spread over
 * `threads` OpenMP threads, each calling a single-threaded sgemm on its own
 * scratch slice.  ws: fx_conv2d_fast_ws_floats_mt(p, threads) floats.
 * OpenBLAS must then run single-threaded (openblas_set_num_threads(1), as
 * fx_plan_create does): when openblas_get_num_threads() > 1 the sgemm loop
 * runs on one OpenMP thread and OpenBLAS threads each sgemm instead, so the
 * two thread pools never spin against each other. */
fx_status fx_op_conv2d_fast_mt(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                               const float *x, const float *w, const float *b, float *y, float *ws,
                               int threads);

/* ---- BatchNormalization, inference (ops_conv.c) ------------------------- */

typedef struct fx_batchnorm_params {
    int64_t n, c;    /* x (N, C, ...) */
    int64_t spatial; /* product of the dims after C (1 for (N, C)) */
    float epsilon;   /* ONNX default 1e-5 */
} fx_batchnorm_params;

/* y = scale * (x - mean) / sqrt(var + epsilon) + bias, per channel.
 *   x, y: (N, C, spatial)   scale, bias, mean, var: (C).  y may equal x. */
fx_status fx_op_batchnorm_ref(const fx_batchnorm_params *p, const float *x, const float *scale,
                              const float *bias, const float *mean, const float *var, float *y);

/* Fast CPU BatchNormalization (OpenMP over N*C, same double arithmetic as
 * the reference, so bit-identical) followed by act (FX_ACT_NONE / RELU /
 * CLIP with lo, hi; SILU is not supported here).  y may equal x. */
fx_status fx_op_batchnorm_fast(const fx_batchnorm_params *p, const float *x, const float *scale,
                               const float *bias, const float *mean, const float *var,
                               fx_act_kind act, float lo, float hi, float *y);

/* ---- Activations (ops_eltwise.c); all on n elements, y may equal x ------- */

typedef struct fx_act_params {
    int64_t n;   /* element count */
    float alpha; /* LeakyRelu slope; HardSigmoid alpha; Clip min */
    float beta;  /* HardSigmoid beta; Clip max */
} fx_act_params;

/* y = max(x, 0) */
fx_status fx_op_relu_ref(const fx_act_params *p, const float *x, float *y);
/* y = x < 0 ? alpha * x : x */
fx_status fx_op_leaky_relu_ref(const fx_act_params *p, const float *x, float *y);
/* y = min(max(x, alpha), beta); Clip(0, 6) is ReLU6 */
fx_status fx_op_clip_ref(const fx_act_params *p, const float *x, float *y);
/* y = 1 / (1 + exp(-x)) */
fx_status fx_op_sigmoid_ref(const fx_act_params *p, const float *x, float *y);
/* y = max(0, min(1, alpha * x + beta)); ONNX defaults alpha 0.2, beta 0.5
 * (PyTorch's Hardsigmoid exports alpha 1/6). */
fx_status fx_op_hard_sigmoid_ref(const fx_act_params *p, const float *x, float *y);
/* y = x * min(max(x + 3, 0), 6) / 6 */
fx_status fx_op_hard_swish_ref(const fx_act_params *p, const float *x, float *y);
/* y = tanh(x) */
fx_status fx_op_tanh_ref(const fx_act_params *p, const float *x, float *y);
/* y = x > 0 ? x : alpha (exp(x) - 1) */
fx_status fx_op_elu_ref(const fx_act_params *p, const float *x, float *y);
/* y = beta (x > 0 ? x : alpha (exp(x) - 1)) (ONNX Selu: alpha, gamma) */
fx_status fx_op_selu_ref(const fx_act_params *p, const float *x, float *y);
/* y = x Phi(x), the exact (erf) GELU */
fx_status fx_op_gelu_ref(const fx_act_params *p, const float *x, float *y);

/* Fast CPU activations (ops_fast.c): OpenMP + SIMD, same contract.  Relu,
 * Clip and HardSwish are bit-identical to the references; Sigmoid uses a
 * float exp (polynomial, |rel err| < 1e-6 for x >= -80, absolute < 1e-30
 * below). */
fx_status fx_op_relu_fast(const fx_act_params *p, const float *x, float *y);
fx_status fx_op_clip_fast(const fx_act_params *p, const float *x, float *y);
fx_status fx_op_sigmoid_fast(const fx_act_params *p, const float *x, float *y);
fx_status fx_op_hard_swish_fast(const fx_act_params *p, const float *x, float *y);

/* ---- Broadcasting binary ops (ops_eltwise.c) ----------------------------- */

/* Shapes of the two inputs of a binary op; numpy/ONNX multidirectional
 * broadcasting: shapes are right-aligned, each dim pair equal or one is 1. */
typedef struct fx_binary_params {
    fx_shape a, b;
} fx_binary_params;

/* Broadcast shape of p->a and p->b into *out; FX_ERR_USAGE if incompatible. */
fx_status fx_broadcast_shape(const fx_binary_params *p, fx_shape *out, fx_error *err);

/* y = a OP b with broadcasting.  a: shape p->a, b: shape p->b,
 * y: fx_broadcast_shape(p) (caller allocates). Division follows IEEE. */
fx_status fx_op_add_ref(const fx_binary_params *p, const float *a, const float *b, float *y);
fx_status fx_op_sub_ref(const fx_binary_params *p, const float *a, const float *b, float *y);
fx_status fx_op_mul_ref(const fx_binary_params *p, const float *a, const float *b, float *y);
fx_status fx_op_div_ref(const fx_binary_params *p, const float *a, const float *b, float *y);

/* Fast CPU Add/Sub/Mul/Div (ops_fast.c), bit-identical to the references:
 * OpenMP + SIMD when both shapes are equal, or when one operand is the
 * output's shape and the other matches it on leading dims and is 1 on the
 * rest ((N, C, 1, 1) against (N, C, H, W): squeeze-excitation); any other
 * broadcast falls back to the reference. op: 'A', 'S', 'M' or 'D'. */
fx_status fx_op_binary_fast(char op, const fx_binary_params *p, const float *a, const float *b,
                            float *y);

/* PRelu: y = x < 0 ? slope * x : x.  p->a is x's shape, p->b the slope's,
 * which must broadcast to x's shape (ONNX unidirectional): (C, 1, 1) for a
 * per-channel slope of an NCHW tensor, (1) for one slope, or x's shape.
 * y: p->a's shape. */
fx_status fx_op_prelu_ref(const fx_binary_params *p, const float *x, const float *slope, float *y);

/* ---- Shape ops (ops_shape.c) --------------------------------------------- */

typedef struct fx_concat_params {
    int n_inputs;           /* >= 1 */
    const fx_shape *shapes; /* n_inputs shapes, same rank, equal except on axis */
    int axis;               /* in [-rank, rank) */
} fx_concat_params;

/* Output shape of a concat (sum of the inputs' dims on axis). */
fx_status fx_concat_out_shape(const fx_concat_params *p, fx_shape *out, fx_error *err);

/* y = concat(xs[0..n_inputs-1], axis).  xs[i]: p->shapes[i]; y: fx_concat_out_shape. */
fx_status fx_op_concat_ref(const fx_concat_params *p, const float *const *xs, float *y);

typedef struct fx_split_params {
    fx_shape x;
    int axis;             /* in [-rank, rank) */
    int n_outputs;        /* >= 1 */
    const int64_t *sizes; /* n_outputs sizes >= 0 summing to x.d[axis] */
} fx_split_params;

/* ys[i] = x sliced along axis; ys[i] has x's shape with d[axis] = sizes[i].
 * The caller allocates every ys[i]. */
fx_status fx_op_split_ref(const fx_split_params *p, const float *x, float *const *ys);

typedef struct fx_transpose_params {
    fx_shape x;
    int perm[FX_OPS_MAX_RANK]; /* a permutation of 0..rank-1: y.d[i] = x.d[perm[i]] */
} fx_transpose_params;

/* Output shape of a transpose. */
fx_status fx_transpose_out_shape(const fx_transpose_params *p, fx_shape *out, fx_error *err);

/* y = transpose(x, perm).  x: p->x, y: fx_transpose_out_shape. */
fx_status fx_op_transpose_ref(const fx_transpose_params *p, const float *x, float *y);

typedef enum fx_pad_mode {
    FX_PADMODE_CONSTANT = 0,
    FX_PADMODE_REFLECT, /* mirror without repeating the edge; pads must be < dim */
    FX_PADMODE_EDGE,    /* repeat the edge value; dims must be > 0 */
} fx_pad_mode;

typedef struct fx_pad_params {
    fx_shape x;
    /* ONNX order: begins for every axis, then ends: pads[i], pads[rank + i].
     * Negative pads crop. */
    int64_t pads[2 * FX_OPS_MAX_RANK];
    fx_pad_mode mode;
    float value; /* constant mode fill */
} fx_pad_params;

/* Output shape: d[i] + pads[i] + pads[rank + i]; FX_ERR_USAGE if < 0. */
fx_status fx_pad_out_shape(const fx_pad_params *p, fx_shape *out, fx_error *err);

/* The input index that output position pos (on an axis of input length d,
 * begin pads at its start; negative = crop) reads in this mode; -1: the
 * constant value.  Shared by fx_op_pad_ref and its VJP. */
int64_t fx_pad_src(fx_pad_mode mode, int64_t pos, int64_t begin, int64_t d);

/* y = pad(x).  x: p->x, y: fx_pad_out_shape. */
fx_status fx_op_pad_ref(const fx_pad_params *p, const float *x, float *y);

/* ---- Pooling (ops_pool.c, global pools in ops_reduce.c) ------------------ */

typedef struct fx_pool2d_params {
    int n, c, h, w;                 /* input (N, C, H, W) */
    int kh, kw;                     /* kernel */
    int stride_h, stride_w;         /* >= 1 */
    int dil_h, dil_w;               /* >= 1; MaxPool only (AveragePool needs 1) */
    int pad_t, pad_l, pad_b, pad_r; /* explicit, >= 0 */
    int ceil_mode;                  /* round the output size up */
    int count_include_pad;          /* AveragePool: divide by the padded window size */
} fx_pool2d_params;

/* Output size per axis, ONNX/PyTorch: span = in + pb + pe - dil*(k-1) - 1,
 * out = floor(span / s) + 1, or ceil(span / s) + 1 with ceil_mode, and then
 * with ceil_mode the last window must start inside the input or the begin
 * padding: if (out - 1) * s >= in + pb, out is decreased by one. */
fx_status fx_pool2d_out_hw(const fx_pool2d_params *p, int *out_h, int *out_w, fx_error *err);

/* Max over each window (padding never wins; a window that sees no input
 * element gives -inf).  x: (N, C, H, W), y: (N, C, OH, OW). */
fx_status fx_op_maxpool2d_ref(const fx_pool2d_params *p, const float *x, float *y);

/* Mean over each window, PyTorch semantics (which ONNX follows):
 *   the window [hs, hs + kh) with hs = oh * s - pad_t;
 *   count_include_pad: divide by (min(hs + kh, H + pad_b) - hs) * (same for w),
 *     i.e. padding counts but the ceil_mode overhang past the end padding
 *     does not;
 *   otherwise: divide by the number of input elements in the window.
 * x: (N, C, H, W), y: (N, C, OH, OW). */
fx_status fx_op_avgpool2d_ref(const fx_pool2d_params *p, const float *x, float *y);

typedef struct fx_global_pool_params {
    int64_t n, c;    /* x (N, C, ...) */
    int64_t spatial; /* product of the dims after C, >= 1 */
} fx_global_pool_params;

/* y[n, c] = mean / max of x[n, c, :].  x: (N, C, spatial), y: (N, C) (ONNX
 * shape (N, C, 1, 1): same bytes). */
fx_status fx_op_global_avgpool_ref(const fx_global_pool_params *p, const float *x, float *y);
fx_status fx_op_global_maxpool_ref(const fx_global_pool_params *p, const float *x, float *y);

/* Fast CPU pools (ops_fast.c): the reference's per-window arithmetic with
 * OpenMP over N*C planes (bit-identical). */
fx_status fx_op_maxpool2d_fast(const fx_pool2d_params *p, const float *x, float *y);
fx_status fx_op_avgpool2d_fast(const fx_pool2d_params *p, const float *x, float *y);
fx_status fx_op_global_avgpool_fast(const fx_global_pool_params *p, const float *x, float *y);

/* ---- Gemm and MatMul (ops_gemm.c) ---------------------------------------- */

typedef struct fx_gemm_params {
    int64_t m, n, k; /* y (M, N) = alpha * A' (M, K) * B' (K, N) + beta * C */
    int trans_a;     /* A stored (K, M) when set, else (M, K) */
    int trans_b;     /* B stored (N, K) when set (nn.Linear weights), else (K, N) */
    float alpha, beta;
    int64_t c_rows, c_cols; /* C's 2-D shape, unidirectionally broadcast to (M, N):
                               c_rows in {1, M}, c_cols in {1, N}; a 1-D C of
                               length N is (1, N); ignored when C is NULL */
} fx_gemm_params;

/* Reference Gemm (double accumulation).  a, b as above, c: (c_rows, c_cols)
 * or NULL, y: (M, N). */
fx_status fx_op_gemm_ref(const fx_gemm_params *p, const float *a, const float *b, const float *c,
                         float *y);

/* The same through OpenBLAS cblas_sgemm. */
fx_status fx_op_gemm_fast(const fx_gemm_params *p, const float *a, const float *b, const float *c,
                          float *y);

typedef struct fx_matmul_params {
    fx_shape a, b; /* rank >= 1 each; 1-D operands are promoted as numpy does */
} fx_matmul_params;

/* numpy.matmul output shape: batch dims broadcast, a 1-D a gets a leading 1
 * and b a trailing 1 that are removed again from the result. */
fx_status fx_matmul_out_shape(const fx_matmul_params *p, fx_shape *out, fx_error *err);

/* y = a @ b.  a: p->a, b: p->b, y: fx_matmul_out_shape. */
fx_status fx_op_matmul_ref(const fx_matmul_params *p, const float *a, const float *b, float *y);

/* ---- Reductions (ops_reduce.c) ------------------------------------------- */

typedef struct fx_softmax_params {
    fx_shape x;
    int axis; /* in [-rank, rank); ONNX opset >= 13: softmax along this one axis */
} fx_softmax_params;

/* y = exp(x - max) / sum(exp(x - max)) along axis.  x, y: p->x (y may equal x). */
fx_status fx_op_softmax_ref(const fx_softmax_params *p, const float *x, float *y);

typedef struct fx_reduce_params {
    fx_shape x;
    int n_axes;                /* 0 = reduce all axes (ONNX default) */
    int axes[FX_OPS_MAX_RANK]; /* each in [-rank, rank), no repeats */
    int keepdims;              /* keep reduced axes as 1 */
} fx_reduce_params;

/* Output shape of a reduction. */
fx_status fx_reduce_out_shape(const fx_reduce_params *p, fx_shape *out, fx_error *err);

/* y = mean of x over the axes (double accumulation).  x: p->x,
 * y: fx_reduce_out_shape. */
fx_status fx_op_reduce_mean_ref(const fx_reduce_params *p, const float *x, float *y);

#ifdef __cplusplus
}
#endif
#endif
