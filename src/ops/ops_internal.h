/* Helpers shared by the src/ops files (not part of the public API). */
#ifndef FX_OPS_INTERNAL_H
#define FX_OPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/ops.h"

/* Row-major element strides of s (strides[i] = prod(d[i+1..])). */
static inline void fx_ops_strides(const fx_shape *s, int64_t *strides)
{
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        strides[i] = acc;
        acc *= s->d[i];
    }
}

/* Strides of `in` seen from a broadcast output of rank r (numpy rules,
 * right-aligned): 0 on dims where `in` is 1 or absent, so the same element
 * is read again.  Shared by the binary ops and the GPU's lowering. */
static inline void fx_ops_broadcast_strides(const fx_shape *in, int r, int64_t *st)
{
    int64_t own[FX_OPS_MAX_RANK];
    fx_ops_strides(in, own);
    for (int i = 0; i < r; i++) {
        int j = i - (r - in->rank);
        st[i] = (j >= 0 && in->d[j] != 1) ? own[j] : 0;
    }
}

/* Normalise a possibly negative axis; -1 when out of [-rank, rank). */
static inline int fx_ops_axis(int axis, int rank)
{
    if (axis < -rank || axis >= rank)
        return -1;
    return axis < 0 ? axis + rank : axis;
}

/* Product of d[lo..hi-1]. */
static inline int64_t fx_ops_prod(const fx_shape *s, int lo, int hi)
{
    int64_t p = 1;
    for (int i = lo; i < hi; i++)
        p *= s->d[i];
    return p;
}

/* Advance a row-major multi-index over dims d[0..rank-1]; the last axis
 * moves fastest. */
static inline void fx_ops_next_index(int64_t *idx, const int64_t *d, int rank)
{
    for (int i = rank - 1; i >= 0; i--) {
        if (++idx[i] < d[i])
            return;
        idx[i] = 0;
    }
}

/* ---- Fast convolution paths (conv_fast.c, winograd.c) -------------------- */

/* The paths of fx_op_conv2d_fast_mt.  Tests and bench/conv force one with
 * fx_conv_fast_mt_path to compare them on the same shape. */
typedef enum fx_conv_path {
    FX_CONV_AUTO = 0,  /* the dispatch's choice, fx_conv_fast_path */
    FX_CONV_DEPTHWISE, /* C_in / groups == 1: direct loop */
    FX_CONV_POINTWISE, /* 1x1, stride 1, no padding: sgemm on the planes */
    FX_CONV_IM2COL,    /* anything */
    FX_CONV_WINOGRAD,  /* 3x3, stride 1, dilation 1, groups 1: F(2x2, 3x3) */
} fx_conv_path;

/* The path fx_op_conv2d_fast_mt takes for p with `threads` threads. */
fx_conv_path fx_conv_fast_path(const fx_conv2d_params *p, int threads);

/* fx_conv2d_fast_ws_floats_mt / fx_op_conv2d_fast_mt on a given path;
 * -1 / FX_ERR_USAGE when that path cannot run p. */
int64_t fx_conv_fast_ws_floats_path(const fx_conv2d_params *p, int threads, fx_conv_path path);
fx_status fx_conv_fast_mt_path(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                               const float *x, const float *w, const float *b, float *y, float *ws,
                               int threads, fx_conv_path path);

/* The conv epilogue on an (og rows x ncol) block of y with row stride ld,
 * rows being channels oc0..: y = act((y + b) + res).  res has y's layout
 * (or NULL); b and ep may be NULL. */
void fx_conv_epilogue_apply(const fx_conv_epilogue *ep, const float *b, int oc0, int og, int ncol,
                            float *y, const float *res, size_t ld);

/* pw_kernel.c: the GEMM of a conv with its epilogue, y = act((w x + b) +
 * res) for w (m x k, row-major, contiguous), x (k x n, row stride ldx), y
 * and res (m x n, row stride ldy; res may be NULL, and so may b and ep).
 * Single-threaded (callers split the work).  An AVX-512 register-tile
 * kernel where the CPU has AVX-512F, else bias + sgemm +
 * fx_conv_epilogue_apply.  fx_conv_gemm_path forces the choice
 * (force 1: the kernel where available, 0: the sgemm, -1: as
 * fx_conv_gemm); the tests compare both ways. */
void fx_conv_gemm(const fx_conv_epilogue *ep, int m, int n, int k, const float *w, const float *x,
                  size_t ldx, const float *b, float *y, const float *res, size_t ldy);
void fx_conv_gemm_path(const fx_conv_epilogue *ep, int m, int n, int k, const float *w,
                       const float *x, size_t ldx, const float *b, float *y, const float *res,
                       size_t ldy, int force);
/* The expansion GEMM of fx_conv_expand_dw written for the depthwise
 * kernel as it reads (AVX-512 only; returns 0, doing nothing, elsewhere):
 * channel c < nc, pixel p < hw of act(W x + b) goes to dst + (c / 16) *
 * gstride + pos[p] * 16 + c % 16, i.e. 16-channel groups of padded
 * planes interleaved pixel by pixel (fx_dw_block16_filled's input).  wt:
 * W transposed (k x channels, row stride ldw, at channel 0 of the block);
 * x: k x hw, row stride ldx; b: nc floats or NULL.  The tiles run over
 * pixels with 64 channels in the lanes, so a 7x7 plane leaves no lanes
 * idle. */
int fx_conv_gemm_interleaved(const fx_conv_epilogue *ep, int nc, int hw, int k, const float *wt,
                             size_t ldw, const float *x, size_t ldx, const float *b, float *dst,
                             size_t gstride, const int *pos);

/* Whether this CPU runs the AVX-512 kernels (AVX-512F; always 0 in builds
 * without them: not x86-64, or FX_NO_AVX512). */
int fx_cpu_avx512(void);

/* winograd.c: whether F(2x2, 3x3) can run p (3x3, stride 1, dilation 1,
 * groups 1; any padding), its scratch for `threads` threads, and the conv
 * itself with a team of `team` threads (OpenBLAS single-threaded when > 1). */
int fx_wino_applies(const fx_conv2d_params *p);
int64_t fx_wino_ws_floats(const fx_conv2d_params *p, int oh, int ow, int threads);
void fx_conv_winograd(const fx_conv2d_params *p, const fx_conv_epilogue *ep, const float *x,
                      const float *w, const float *b, float *y, int oh, int ow, float *ws,
                      int team);

/* depthwise.c: the fast depthwise kernel (3x3/5x5, stride 1/2, dilation 1,
 * C_in == C_out == groups, pads < k).  fx_dw_plane_fast computes one plane
 * yp = act((conv(xc, wc) + bias) + res) using pp, a per-thread scratch of
 * fx_dw_scratch_floats(p) floats that must be zero on first use (its pad
 * cells are never written, so it can be reused across planes); gap (or
 * NULL) gets the plane's mean after the activation. */
int fx_dw_fast_applies(const fx_conv2d_params *p);
size_t fx_dw_scratch_floats(const fx_conv2d_params *p);
void fx_dw_plane_fast(const fx_conv2d_params *p, const fx_conv_epilogue *ep, const float *xc,
                      const float *wc, float bias, float *yp, const float *res, int oh, int ow,
                      float *pp, float *gap);
/* Small input planes (fx_dw_block_applies) go by blocks of DW_LANES
 * channels of one image instead: fx_dw_block_fast computes channels c0 ..
 * c0 + nc - 1 (nc <= DW_LANES) of the image's x -> y (and res), with the
 * same scratch (fx_dw_scratch_floats covers both): 16 channels at once
 * where the CPU has AVX-512 (fx_cpu_avx512), else in passes of 8.
 * fx_dw_block_fast_path forces the way (force 0: the 8-channel passes;
 * 1: the AVX-512 kernel where available; -1: as fx_dw_block_fast). */
#define DW_LANES 16
int fx_dw_block_applies(const fx_conv2d_params *p);
void fx_dw_block_fast(const fx_conv2d_params *p, const fx_conv_epilogue *ep, const float *x,
                      const float *w, const float *b, float *y, const float *res, int c0, int nc,
                      int oh, int ow, float *sc);
/* fx_dw_block_fast's AVX-512 kernel on an already filled padded plane
 * (16 channels interleaved, (h + pads) x (w + pads) pixels, pads zero):
 * channels c0 .. c0 + nc - 1 (nc <= 16) of y, weights w and bias b (the
 * image's tensors, as fx_dw_block_fast); no residual.  sc: as for
 * fx_dw_block_fast (its own padded-plane part unused).  AVX-512 only
 * (does nothing elsewhere: callers check fx_cpu_avx512). */
void fx_dw_block16_filled(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                          const float *filled, const float *w, const float *b, float *y, int c0,
                          int nc, int oh, int ow, float *sc);
void fx_dw_block_fast_path(const fx_conv2d_params *p, const fx_conv_epilogue *ep, const float *x,
                           const float *w, const float *b, float *y, const float *res, int c0,
                           int nc, int oh, int ow, float *sc, int force);

/* Expand-then-depthwise fused (the inverted residual of MobileNetV2 and
 * EfficientNet): a pointwise conv pe (groups 1, its activation only) whose
 * output only the depthwise conv pd reads.  fx_conv_expand_dw runs, per
 * image and block of expanded channels, the pointwise sgemm into scratch
 * and the depthwise kernel on it while it is in L2: the expanded tensor
 * (e.g. 96 x 112 x 112 floats a image) is never written to memory.  x:
 * pe's input (N, C_in, H, W); y: pd's output; ep: pd's epilogue
 * (activation only, no residual).  ws: fx_conv_expand_dw_ws_floats. */
typedef struct fx_conv_expand {
    const fx_conv2d_params *p;
    const float *w, *b; /* (C_exp, C_in), (C_exp) or NULL */
    fx_act_kind act;
    float lo, hi;    /* FX_ACT_CLIP bounds */
    const float *wt; /* w transposed (C_in, C_exp) where fx_conv_expand_wants_wt, or NULL:
                      * then transposed into ws on every call (the plan does it once) */
} fx_conv_expand;
int fx_conv_expand_dw_applies(const fx_conv2d_params *pe, const fx_conv2d_params *pd);
/* Whether fx_conv_expand_dw runs pe through fx_conv_gemm_interleaved,
 * which reads the weights transposed; fx_conv_expand_transpose writes
 * wt (C_in x C_exp floats) from pe's weights w (C_exp x C_in). */
int fx_conv_expand_wants_wt(const fx_conv2d_params *pe, const fx_conv2d_params *pd);
void fx_conv_expand_transpose(const fx_conv2d_params *pe, const float *w, float *wt);
int64_t fx_conv_expand_dw_ws_floats(const fx_conv2d_params *pe, const fx_conv2d_params *pd,
                                    int threads);
fx_status fx_conv_expand_dw(const fx_conv_expand *e, const fx_conv2d_params *pd,
                            const fx_conv_epilogue *ep, const float *x, const float *wd,
                            const float *bd, float *y, float *ws, int threads);

/* Hot loops get an AVX-512 clone (x86-64-v4) and an AVX2 + FMA clone
 * (x86-64-v3) beside the generic x86-64 one; glibc's loader picks one by
 * CPU at startup (gcc target_clones, an ifunc), so the build stays
 * portable.  The v4 clone (gcc keeps mostly 256-bit vectors there, with
 * AVX-512VL's masks and conversions) ran the SiLU loop 1.33x faster than
 * the v3 one on a Zen 4 EPYC (0.24 vs 0.32 ns/element, 32k floats).  The static
 * helpers such a function calls must be inlined into it to run in the
 * clone's instruction set (FX_OPS_INLINE), and must carry the same
 * optimize() attributes or gcc will not inline them.  The Makefile builds
 * the fast-path files with -ffp-contract=fast so that the clone fuses
 * a*b + c (-std=c11 turns contraction off); the fast paths are checked
 * against the references with a tolerance, not bit for bit. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(FX_NO_SIMD_CLONES)
#define FX_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FX_SIMD_CLONES
#endif
#define FX_OPS_INLINE static inline __attribute__((always_inline))

/* The mean of x[0 .. n): a double sum like the references', in SIMD lanes
 * (the order differs; the float result by at most an ulp or so). */
FX_OPS_INLINE float fx_plane_mean(const float *x, int64_t n)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    return (float)(s / (double)n);
}

/* For functions whose loops call fx_ops_expf: with the default
 * -ftrapping-math gcc will not if-convert the clamps below (a compare may
 * raise FE_INVALID), so the loop stays scalar; nothing in fxscreen reads
 * the FP exception flags.  Measured: the SiLU epilogue 4x faster. */
#if defined(__clang__)
#define FX_OPS_NO_TRAP /* clang ignores optimize(); the fuzz build needs no speed */
#else
#define FX_OPS_NO_TRAP __attribute__((optimize("no-trapping-math")))
#endif

/* OpenMP queries that also compile without -fopenmp (the clang fuzz build):
 * one thread then. */
#ifdef _OPENMP
#include <omp.h>
static inline int fx_omp_max_threads(void)
{
    return omp_get_max_threads();
}
static inline int fx_omp_thread_num(void)
{
    return omp_get_thread_num();
}
#else
static inline int fx_omp_max_threads(void)
{
    return 1;
}
static inline int fx_omp_thread_num(void)
{
    return 0;
}
#endif

/* exp(x) = 2^t * e^r, t = round(x / ln 2), |r| <= ln 2 / 2 (Cody-Waite
 * reduction with Cephes' two-part ln 2), e^r by a degree-6 polynomial,
 * written without library calls so `#pragma omp simd` loops vectorise.
 * Returns e^r, and t as an integer-valued float (the 1.5 * 2^23 rounding
 * trick: no floorf call).  The coefficients are a minimax fit of relative
 * error on [-ln 2 / 2, ln 2 / 2] (iteratively reweighted least squares,
 * float64): 3.1e-9, below float rounding.  Cephes' degree-7 form (q r^2 +
 * r + 1, q of degree 5) was as accurate (SiLU's worst relative error
 * 1.63e-7 there, 1.73e-7 here, 2.2M points against double) and one FMA
 * longer: the SiLU loop ran 1.14x faster with this one (AVX2 clone, this
 * 2-core EPYC). */
FX_OPS_NO_TRAP static inline float fx_ops_exp_reduced(float x, float *t_out)
{
    float t = x * 1.44269504088896341f + 12582912.0f;
    t -= 12582912.0f;
    float r = x - t * 0.693359375f;
    r = r - t * -2.12194440e-4f;
    float q = 1.3814605566e-3f;
    q = q * r + 8.3687106285e-3f;
    q = q * r + 4.1668387525e-2f;
    q = q * r + 1.6666520681e-1f;
    q = q * r + 4.9999993451e-1f;
    q = q * r + 1.0f;
    *t_out = t;
    return q * r + 1.0f;
}

/* 2^(k - 127) for a biased exponent k in [0, 255] (0 gives +0, 255 inf).  FX_OPS_NO_TRAP like its
 * callers: gcc inlines only between functions with the same optimize() attributes. */
FX_OPS_NO_TRAP static inline float fx_ops_pow2_biased(int32_t k)
{
    union {
        int32_t i;
        float f;
    } sc = {.i = k << 23};
    return sc.f;
}

/* exp(x) for the fast kernels.  x is clamped to [-87.3, 88.3] (the normal
 * float range of the result): below that it returns ~1.2e-38, not 0. */
FX_OPS_NO_TRAP static inline float fx_ops_expf(float x)
{
    x = x > 88.3f ? 88.3f : x;
    x = x < -87.3f ? -87.3f : x;
    float t, e = fx_ops_exp_reduced(x, &t);
    return e * fx_ops_pow2_biased((int32_t)t + 127);
}

/* fx_ops_expf without its input clamps, for the SiLU epilogue: with them
 * gcc also computes a constant-folded branch for the clamped inputs (one
 * more division per vector) and the loop ran 1.2x slower (2 cores here,
 * AVX2 and SSE2 alike).  The exponent is clamped as an integer instead:
 * below about -87.3 the result is 0, from about 88.4 on inf, and NaN for
 * infinite x (the caller selects those). */
FX_OPS_NO_TRAP static inline float fx_ops_expf_noclamp(float x)
{
    float t, e = fx_ops_exp_reduced(x, &t);
    int32_t k = (int32_t)t + 127;
    k = k < 0 ? 0 : k;
    k = k > 255 ? 255 : k;
    return e * fx_ops_pow2_biased(k);
}

/* 1 / (1 + exp(-x)) with fx_ops_expf. */
FX_OPS_NO_TRAP static inline float fx_ops_sigmoidf(float x)
{
    return 1.0f / (1.0f + fx_ops_expf(-x));
}

#endif
