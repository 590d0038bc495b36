/* The CUDA backend's hand-written kernels (the .cu files in kernels/) behind plain C
 * launchers, and the descriptors the backend lowers graph nodes into.
 *
 * The descriptors and their lowering (lower.c) are plain C with no CUDA in
 * them, so the CPU tests run every descriptor through the host executors
 * below (fx_cu_*_host: the same index arithmetic, fx_hd_offset, as the
 * kernels) and compare with the reference ops; the GPU test then covers
 * only launch, bounds and memory.
 *
 * Launchers (only in a build with FX_HAVE_CUDA) queue work on `stream` (a
 * cudaStream_t), never synchronise, and check the launch with
 * cudaGetLastError: FX_ERR_DEVICE naming the kernel on failure.  Tensors
 * are in the plan's storage type `dt`; arithmetic is float32 (double where
 * the CPU reference uses double: Sigmoid, Softmax, means). */
#ifndef FX_BACKEND_CUDA_OPS_H
#define FX_BACKEND_CUDA_OPS_H

#include <stdint.h>

#include "fxscreen/ops.h"
#include "fxscreen/status.h"
#include "ops/hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Storage type of float activations and weights on the device. */
typedef enum fx_cu_dtype { FX_CU_F32 = 0, FX_CU_F16 = 1, FX_CU_BF16 = 2 } fx_cu_dtype;

#define FX_CU_MAX_RANK FX_OPS_MAX_RANK

/* A strided copy over an index space dims[0..rank), n elements:
 *   y[ybase + fx_hd_offset(e, ys)] = x[xbase + fx_hd_offset(e, xs)].
 * Transpose, Slice, Concat (one per input), Split (one per output) and
 * Gather with constant indices (one per index) are each this. */
typedef struct fx_cu_map {
    int rank;
    int64_t n;
    int64_t dims[FX_CU_MAX_RANK], xs[FX_CU_MAX_RANK], ys[FX_CU_MAX_RANK];
    int64_t xbase, ybase;
} fx_cu_map;

/* A broadcasting binary op over the output's dims (0 strides on broadcast
 * dims): y[e] = fx_hd_binary(op, a[off(e, as)], b[off(e, bs)]). */
typedef struct fx_cu_bin {
    int rank;
    int64_t n;
    int64_t dims[FX_CU_MAX_RANK], as[FX_CU_MAX_RANK], bs[FX_CU_MAX_RANK];
    char op; /* 'A', 'S', 'M', 'D', 'P' (PRelu) */
} fx_cu_bin;

/* A MatMul as `batch` products y_i (m, n) = a_i (m, k) b_i (k, n), row-major.
 * a_i, b_i: fx_cu_mm_offsets (the batch dims' broadcast strides, bdims /
 * sa / sb); when !general those are i * stride_a and i * stride_b (stride
 * 0: one matrix for every product), so one strided call does. */
typedef struct fx_cu_mm {
    int64_t m, n, k, batch;
    int64_t stride_a, stride_b, stride_y;
    int general; /* the batch dims broadcast from both sides: per-matrix pointers */
    int brank;
    int64_t bdims[FX_CU_MAX_RANK], sa[FX_CU_MAX_RANK], sb[FX_CU_MAX_RANK];
} fx_cu_mm;

/* A ReduceMean: output element e (over the kept dims, in order) is the
 * mean of x[fx_hd_offset(e, kept) + fx_hd_offset(r, reduced)] over the
 * n_red elements r of the reduced dims (double sums). */
typedef struct fx_cu_red {
    int nout, nred;
    int64_t n_out, n_red;
    int64_t odims[FX_CU_MAX_RANK], ostr[FX_CU_MAX_RANK];
    int64_t rdims[FX_CU_MAX_RANK], rstr[FX_CU_MAX_RANK];
} fx_cu_red;

/* ---- lowering (lower.c; C, no CUDA) -------------------------------------- */

/* Each returns FX_ERR_UNSUPPORTED for a rank above FX_CU_MAX_RANK or a
 * count that does not fit, else fills *m. */
fx_status fx_lower_transpose(const fx_transpose_params *p, fx_cu_map *m);
/* o: the output shape; start/step per axis of x (the Slice binder's). */
fx_status fx_lower_slice(const fx_shape *x, const fx_shape *o, const int64_t *start,
                         const int64_t *step, fx_cu_map *m);
/* Input `in` of a Concat into output o at `offset` along axis. */
fx_status fx_lower_concat(const fx_shape *o, int axis, const fx_shape *in, int64_t offset,
                          fx_cu_map *m);
/* Output o of a Split of x, starting at `offset` along axis. */
fx_status fx_lower_split(const fx_shape *x, int axis, const fx_shape *o, int64_t offset,
                         fx_cu_map *m);
/* Index i (of ni, value `index` already in [0, d[axis])) of a Gather of d. */
fx_status fx_lower_gather(const fx_shape *d, int axis, int64_t index, int64_t i, int64_t ni,
                          fx_cu_map *m);
fx_status fx_lower_binary(const fx_binary_params *p, char op, fx_cu_bin *b);
/* numpy.matmul, 1-D operands promoted, any batch broadcast. */
fx_status fx_lower_matmul(const fx_matmul_params *p, fx_cu_mm *d);
void fx_cu_mm_offsets(const fx_cu_mm *d, int64_t i, int64_t *off_a, int64_t *off_b);
/* ReduceMean over any set of axes (none: all). */
fx_status fx_lower_reduce(const fx_reduce_params *p, fx_cu_red *d);
/* (outer, len, inner) views of x around axes [lo, hi] (Softmax: lo == hi;
 * ReduceMean over a contiguous run of axes). */
void fx_lower_axes3(const fx_shape *x, int lo, int hi, int64_t *outer, int64_t *len,
                    int64_t *inner);
/* The strided copies a Concat, Split, Transpose, Slice or Gather (constant
 * indices) node of g is made of, in order: each(ctx, m, in, out, err) with
 * the node's input and output indices the map reads and writes; stops at
 * the first failure.  The CUDA forward copies along them, the backward
 * accumulates back along them. */
struct fx_graph;
struct fx_node;
typedef fx_status (*fx_cu_map_fn)(void *ctx, const fx_cu_map *m, int in, int out, fx_error *err);
fx_status fx_lower_copies(const struct fx_graph *g, const struct fx_node *n, fx_cu_map_fn each,
                          void *ctx, fx_error *err);
/* Host executors of the descriptors: what the kernels compute, on floats. */
void fx_cu_map_host(const fx_cu_map *m, const float *x, float *y);
void fx_cu_bin_host(const fx_cu_bin *b, const float *a, const float *bb, float *y);
void fx_cu_mm_host(const fx_cu_mm *d, const float *a, const float *b, float *y);
void fx_cu_red_host(const fx_cu_red *d, const float *x, float *y);
/* ... and what the backward kernels compute (kernels/vjp.cu; serially). */
void fx_cu_map_vjp_host(const fx_cu_map *m, const float *dy, float *dx);
void fx_cu_bin_vjp_host(const fx_cu_bin *b, int wrt_b, const float *a, const float *bb,
                        const float *dy, float *dx);

/* ---- launchers (the .cu files in kernels/) --------------------------------------------- */

fx_status fx_cu_map_copy(void *stream, fx_cu_dtype dt, const fx_cu_map *m, const void *x, void *y,
                         fx_error *err);
fx_status fx_cu_binary(void *stream, fx_cu_dtype dt, const fx_cu_bin *b, const void *a,
                       const void *bb, void *y, fx_error *err);
/* y[i] = fx_hd_unary(k, x[i], alpha, beta), n elements; y may equal x. */
fx_status fx_cu_unary(void *stream, fx_cu_dtype dt, int64_t n, fx_unary_kind k, float alpha,
                      float beta, const void *x, void *y, fx_error *err);
/* In place on y (N, C, spatial): y = act(y + bias[c] + res), bias (C) and
 * res (N, C, spatial) each optional (NULL). */
fx_status fx_cu_epilogue(void *stream, fx_cu_dtype dt, int64_t n, int64_t c, int64_t spatial,
                         const void *bias, const void *res, fx_unary_kind act, float lo, float hi,
                         void *y, fx_error *err);
/* y = act(ab[c] x + ab[C + c]) over (N, C, spatial); ab: 2C device floats
 * (fx_hd_bn_coeffs); y may equal x. */
fx_status fx_cu_batchnorm(void *stream, fx_cu_dtype dt, int64_t n, int64_t c, int64_t spatial,
                          const float *ab, fx_unary_kind act, float lo, float hi, const void *x,
                          void *y, fx_error *err);
fx_status fx_cu_pool2d(void *stream, fx_cu_dtype dt, const fx_pool2d_params *p, int is_max,
                       const void *x, void *y, fx_error *err);
/* rows x spatial -> rows: mean (double accumulation) or max. */
fx_status fx_cu_global_pool(void *stream, fx_cu_dtype dt, int64_t rows, int64_t spatial, int is_max,
                            const void *x, void *y, fx_error *err);
/* Softmax along len of (outer, len, inner). */
fx_status fx_cu_softmax(void *stream, fx_cu_dtype dt, int64_t outer, int64_t len, int64_t inner,
                        const void *x, void *y, fx_error *err);
/* ReduceMean (fx_cu_red). */
fx_status fx_cu_reduce_mean(void *stream, fx_cu_dtype dt, const fx_cu_red *d, const void *x,
                            void *y, fx_error *err);
fx_status fx_cu_pad(void *stream, fx_cu_dtype dt, const fx_pad_params *p, const void *x, void *y,
                    fx_error *err);
/* n elements from one storage type to another (host float32 uploads, weights). */
fx_status fx_cu_convert(void *stream, fx_cu_dtype from, fx_cu_dtype to, int64_t n, const void *x,
                        void *y, fx_error *err);
/* Gemm's C term before the product: y (m, n) = beta * c broadcast from
 * (c_rows, c_cols), or 0 when c is NULL. */
fx_status fx_cu_gemm_c(void *stream, fx_cu_dtype dt, int64_t m, int64_t n, float beta,
                       const void *c, int64_t c_rows, int64_t c_cols, void *y, fx_error *err);

/* ---- backward launchers (kernels/vjp.cu) ----------------------------------------
 * Each ACCUMULATES into float32 dx from float32 dy; forward values (x, y,
 * a, b) are in the storage type `dt`. */
/* dx += fx_hd_unary_vjp(k, alpha, beta, x, y, dy) (x or y may be NULL when
 * the kind does not read it). */
fx_status fx_cu_unary_vjp(void *stream, fx_cu_dtype dt, int64_t n, fx_unary_kind k, float alpha,
                          float beta, const void *x, const void *y, const float *dy, float *dx,
                          fx_error *err);
/* dx += scale * dy over n elements (views, Cast, copies). */
fx_status fx_cu_acc(void *stream, int64_t n, float scale, const float *dy, float *dx,
                    fx_error *err);
/* A broadcasting binary's gradient w.r.t. a (wrt_b = 0) or b, summed over
 * that operand's broadcast dims. */
fx_status fx_cu_binary_vjp(void *stream, fx_cu_dtype dt, const fx_cu_bin *b, int wrt_b,
                           const void *a, const void *bb, const float *dy, float *dx,
                           fx_error *err);
/* The reverse of a strided copy: dx[x side of m] += dy[y side of m]. */
fx_status fx_cu_map_vjp(void *stream, const fx_cu_map *m, const float *dy, float *dx,
                        fx_error *err);
/* dx += ab[c] dy over (N, C, spatial) (ab: the forward's coefficients). */
fx_status fx_cu_batchnorm_vjp(void *stream, int64_t n, int64_t c, int64_t spatial, const float *ab,
                              const float *dy, float *dx, fx_error *err);
fx_status fx_cu_global_pool_vjp(void *stream, fx_cu_dtype dt, int64_t rows, int64_t spatial,
                                int is_max, const void *x, const float *dy, float *dx,
                                fx_error *err);
fx_status fx_cu_pool2d_vjp(void *stream, fx_cu_dtype dt, const fx_pool2d_params *p, int is_max,
                           const void *x, const float *dy, float *dx, fx_error *err);
#ifdef __cplusplus
}
#endif
#endif
