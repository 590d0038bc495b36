/* Vector-Jacobian products of the ops the graph binds: plain-C references
 * (fx_vjp_*), one per op family, with the forward kernel's params struct
 * (include/fxscreen/ops.h) and the same NCHW layouts.
 *
 * Conventions
 *   - Only activations are differentiated, never weights: a VJP takes dy
 *     (the gradient of the loss w.r.t. the op's output, the output's shape)
 *     and ACCUMULATES into the input gradients (dx += J^T dy), so that a
 *     tensor read by several nodes sums its contributions.  A NULL gradient
 *     pointer means "that input needs no gradient" and is skipped.
 *   - Forward values (x, y) are the ones the forward pass produced.
 *   - Ties and kinks follow PyTorch's autograd: ReLU passes where x > 0,
 *     Clip (hardtanh) where lo < x < hi, MaxPool routes to the first maximum
 *     in the window's scan order (row-major).
 *   - Every function returns FX_ERR_USAGE for inconsistent params, FX_OK
 *     otherwise, and allocates nothing (except fx_vjp_matmul: none either).
 * Internal to the engine: the CPU backend runs them through fx_vjp_exec
 * (src/model/vjp_exec.c); tests include this through -Isrc. */
#ifndef FX_CAM_VJP_H
#define FX_CAM_VJP_H

#include "backend/backend.h"
#include "fxscreen/ops.h"
#include "ops/hd.h"

/* Conv w.r.t. its input: the transposed convolution of dy with w
 * (groups, stride, dilation, asymmetric pads).  w: (C_out, C_in/g, kH, kW),
 * dy: (N, C_out, OH, OW), dx: (N, C_in, H, W). */
fx_status fx_vjp_conv2d(const fx_conv2d_params *p, const float *w, const float *dy, float *dx);

/* Gemm y = alpha * A' B' + beta * C.  da: A's storage layout, db: B's,
 * dc: (c_rows, c_cols) (broadcast axes summed).  a, b: the forward operands
 * (b is read for da, a for db). */
fx_status fx_vjp_gemm(const fx_gemm_params *p, const float *a, const float *b, const float *dy,
                      float *da, float *db, float *dc);

/* MatMul (numpy semantics, broadcast batch dims summed back). */
fx_status fx_vjp_matmul(const fx_matmul_params *p, const float *a, const float *b, const float *dy,
                        float *da, float *db);

/* Unary activations by fx_hd_unary's kind (src/ops/hd.h; alpha, beta as
 * there) on p->n elements.  x: the input, y: the output (Sigmoid and Tanh
 * read y, the others x: fx_hd_unary_vjp_reads_y; the unused one may be
 * NULL). */
fx_status fx_vjp_unary(fx_unary_kind u, const fx_act_params *p, const float *x, const float *y,
                       const float *dy, float *dx);

/* PRelu y = x < 0 ? slope * x : x (p->a: x's shape, p->b: slope's).
 * dslope (slope's shape) may be NULL (weights are not differentiated). */
fx_status fx_vjp_prelu(const fx_binary_params *p, const float *x, const float *slope,
                       const float *dy, float *dx, float *dslope);

/* Broadcasting Add/Sub/Mul/Div (op 'A', 'S', 'M', 'D'): da (p->a's shape)
 * and db (p->b's) get dy's contributions summed over their broadcast axes.
 * a and b are the forward operands (Mul/Div read them). */
fx_status fx_vjp_binary(char op, const fx_binary_params *p, const float *a, const float *b,
                        const float *dy, float *da, float *db);

/* BatchNormalization (inference): dx = dy * scale / sqrt(var + eps). */
fx_status fx_vjp_batchnorm(const fx_batchnorm_params *p, const float *scale, const float *var,
                           const float *dy, float *dx);

/* Concat: dxs[i] (p->shapes[i]) += the slice of dy; NULL entries skipped. */
fx_status fx_vjp_concat(const fx_concat_params *p, const float *dy, float *const *dxs);

/* Split: dx += the concatenation of dys (NULL entries count as zero). */
fx_status fx_vjp_split(const fx_split_params *p, const float *const *dys, float *dx);

/* MaxPool: dy routed to each window's first maximum of x. */
fx_status fx_vjp_maxpool2d(const fx_pool2d_params *p, const float *x, const float *dy, float *dx);

/* AveragePool: dy / count spread over the window (count as the forward). */
fx_status fx_vjp_avgpool2d(const fx_pool2d_params *p, const float *dy, float *dx);

/* Global pools: dy (N, C) spread evenly (average) or to the first maximum. */
fx_status fx_vjp_global_avgpool(const fx_global_pool_params *p, const float *dy, float *dx);
fx_status fx_vjp_global_maxpool(const fx_global_pool_params *p, const float *x, const float *dy,
                                float *dx);

/* Transpose: dx = transpose(dy, inverse perm). */
fx_status fx_vjp_transpose(const fx_transpose_params *p, const float *dy, float *dx);

/* Slice of x into y (ranks equal): output index i on axis a reads input
 * start[a] + i * step[a] (steps may be negative, as fx_bind_slice stores
 * them); dx there += dy[i].  Elements no output reads get nothing. */
fx_status fx_vjp_slice(const fx_shape *x, const fx_shape *y, const int64_t *start,
                       const int64_t *step, const float *dy, float *dx);

/* Gather of x (shape d) along axis with ni constant indices (negative
 * ones count from the end): dx[.., ix[i], ..] += dy[.., i, ..], repeated
 * indices summed. */
fx_status fx_vjp_gather(const fx_shape *d, int axis, const int64_t *ix, int64_t ni, const float *dy,
                        float *dx);

/* Pad, every mode: each output's gradient goes to the input it read
 * (constant: the interior; reflect / edge: the mirrored or edge input too;
 * negative pads: the cropped part gets nothing). */
fx_status fx_vjp_pad(const fx_pad_params *p, const float *dy, float *dx);

/* ReduceMean: dx += dy broadcast over the reduced axes / their count. */
fx_status fx_vjp_reduce_mean(const fx_reduce_params *p, const float *dy, float *dx);

/* Softmax along p->axis: dx += y * (dy - sum(dy * y)). */
fx_status fx_vjp_softmax(const fx_softmax_params *p, const float *y, const float *dy, float *dx);

/* Views and Identity/Dropout: dx += dy over n elements. */
fx_status fx_vjp_copy(int64_t n, const float *dy, float *dx);

/* ---- one graph node (vjp_exec.c) ------------------------------------------- */

/* 1 for a node whose output is its input's bytes (Reshape, Flatten, ...,
 * a ReduceMean with noop_with_empty_axes): its VJP is a copy. */
int fx_vjp_is_view(const fx_node *n);

/* 1 when fx_vjp_exec runs node n's VJP for the inputs whose tensors have
 * need[t] set; else 0 with the reason in why. */
int fx_vjp_supported(const fx_graph *g, const fx_node *n, const char *need, char *why, size_t cap);

/* Node n's VJP on host float32 pointers (the CPU backend's run_vjp). */
fx_status fx_vjp_exec(const fx_node *n, const fx_vjp_io *io);

#endif
