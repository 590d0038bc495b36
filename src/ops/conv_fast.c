/* Fast CPU convolution: see fx_op_conv2d_fast in include/fxscreen/ops.h.
 *
 * The paths, chosen from the params (every "GEMM" below is fx_conv_gemm,
 * pw_kernel.c: the AVX-512 tile kernel with the epilogue fused, or bias +
 * OpenBLAS sgemm + epilogue where the CPU lacks AVX-512):
 *   pointwise  1x1, stride 1, no padding: the input planes already are the
 *              (C_in/g, H*W) matrix, so one GEMM per image, group and
 *              L2-sized column chunk; a prologue (fx_conv_epilogue.pre_*:
 *              a fused BatchNorm + Relu, Concat or squeeze-excitation gate)
 *              first writes the chunk's transformed input to scratch;
 *   depthwise  C_in/groups == 1: a direct loop, OpenMP over N*C_out (sgemm
 *              with K = kh*kw would be all overhead); 3x3/5x5 stride 1/2
 *              with C_out == C_in take the padded-plane kernel in
 *              depthwise.c, the rest the generic loop below;
 *   winograd   3x3, stride 1, dilation 1, groups 1 with enough channels:
 *              F(2x2, 3x3) in winograd.c (16 sgemms of 4/9 the FLOPs);
 *   im2col     everything else: per image and group, a band of output rows
 *              is unfolded into a (C_in/g*kh*kw, rows*OW) matrix and
 *              multiplied by the (C_out/g, C_in/g*kh*kw) weights.
 *
 * Threads (fx_op_conv2d_fast_mt): one OpenMP team per conv; the work is
 * cut into tasks (image x group x band of output rows, or image x group x
 * column chunk for 1x1), each task does its im2col into its thread's own
 * scratch slice, a single-threaded sgemm and the epilogue (bias, residual,
 * activation) while the band is still in cache.  At batch 32 that is 32+
 * equal tasks for 2 threads; at batch 1 the bands are cut finer so every
 * thread gets work.  History: the first version ran the loop serially and
 * let OpenBLAS's pthreads split each sgemm; OpenMP regions elsewhere (the
 * depthwise loop, later the elementwise ops) then spun against OpenBLAS's
 * threads, and an OpenMP im2col in front of a threaded sgemm was 1.5-2x
 * slower (bench/conv, 2 cores, Debian's pthread OpenBLAS).  One pool (ours)
 * with OpenBLAS at 1 thread removes the fight; the plan sets that once.
 * When OpenBLAS still has > 1 thread (a caller that did not set it) the
 * sgemm loop runs on one OpenMP thread, as before, so the pools never nest.
 * Epilogue order, as the unfused graph computes it: ((acc + b) + residual)
 * then the activation; acc is sgemm's sum with beta 0. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "ops_internal.h"

/* Target size of one im2col band (2 MiB): bounds the scratch of big
 * layers (a 7x7 stem at 224 would need 7 MiB unbanded).  bench/conv showed
 * no speed difference from 1 MiB to unbanded; 256 KiB was 30-50% slower
 * (sgemm's N gets too narrow). */
#ifndef COL_TARGET_FLOATS
#define COL_TARGET_FLOATS (1 << 19)
#endif

/* Pointwise output chunk (floats) kept in L2, and the narrowest chunk
 * worth an sgemm call. */
#ifndef PW_CHUNK_FLOATS
#define PW_CHUNK_FLOATS (1 << 15)
#endif
#define PW_MIN_WIDTH 256

/* Pointwise convs on planes of fewer pixels than this take several images
 * per sgemm (pw_batch): OpenBLAS 0.3.21 on this EPYC ran M=192 K=1152
 * (EfficientNet-B0's 7x7 projections) at 18 GFLOP/s with N=49 and 32
 * from N=392 on, M=672 K=112 (14x14) at 17 with N=196. */
#ifndef PW_BATCH_COLS
#define PW_BATCH_COLS 392
#endif

static int is_pointwise(const fx_conv2d_params *p)
{
    return p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_t == 0 &&
           p->pad_l == 0 && p->pad_b == 0 && p->pad_r == 0;
}

static int is_depthwise(const fx_conv2d_params *p)
{
    return p->c_in == p->groups;
}

/* Output rows per im2col band (>= 1). */
static int band_rows(const fx_conv2d_params *p, int oh, int ow)
{
    int64_t k = (int64_t)(p->c_in / p->groups) * p->kh * p->kw;
    int64_t rows = COL_TARGET_FLOATS / (k * ow);
    return rows < 1 ? 1 : rows > oh ? oh : (int)rows;
}

/* Column chunks of a pointwise conv's (og x H*W) output planes for a team
 * of `team` threads: with few images, cut each plane so every thread has a
 * chunk; with big planes, cut them so one chunk's outputs (og x width)
 * stay in L2 for the bias fill, sgemm's writes and the epilogue.  width
 * is a multiple of 16. */
static void pw_split(const fx_conv2d_params *p, int team, int *chunks, int *width)
{
    int og = p->c_out / p->groups, hw = p->h * p->w;
    int64_t ng = (int64_t)p->n * p->groups;
    int c = ng >= team ? 1 : (int)((team + ng - 1) / ng);
    int fit = PW_CHUNK_FLOATS / og < PW_MIN_WIDTH ? PW_MIN_WIDTH : PW_CHUNK_FLOATS / og;
    if ((hw + c - 1) / c > fit)
        c = (hw + fit - 1) / fit;
    int w = (hw + c - 1) / c;
    *chunks = c, *width = (w + 15) / 16 * 16;
}

/* Images per sgemm of a pointwise conv (1: one plane, or a chunk of it,
 * per sgemm; pw_split): small planes are gathered side by side into
 * scratch, as many as make PW_BATCH_COLS columns, but no more than leave
 * every thread of the team a group.  groups == 1 only; 1x1 planes have
 * their own path. */
static int pw_batch(const fx_conv2d_params *p, int team)
{
    int hw = p->h * p->w;
    if (p->groups != 1 || hw <= 1 || hw >= PW_BATCH_COLS)
        return 1;
    int nb = (PW_BATCH_COLS + hw - 1) / hw, per = (p->n + team - 1) / team;
    nb = nb < per ? nb : per;
    return nb < 1 ? 1 : nb;
}

/* One thread's pointwise scratch (floats): the prologue's column chunk,
 * or pw_batch's gathered input and output (at a team of 1, the most). */
static size_t pw_ws_slot(const fx_conv2d_params *p)
{
    int chunks, width, nb = pw_batch(p, 1), hw = p->h * p->w;
    pw_split(p, 1, &chunks, &width);
    size_t chunk = (size_t)(p->c_in / p->groups) * width;
    size_t batch = nb > 1 ? (size_t)(p->c_in + p->c_out) * nb * hw : 0;
    return chunk > batch ? chunk : batch;
}

/* Winograd needs about 24 tiles (2x2 outputs) per thread to pay for
 * transforming the weights and streaming them through every sgemm.
 * bench/conv --paths, one thread (2 threads at batch 1 were all scheduler
 * noise on the shared machine): 512x7x7 is 0.70x im2col at 16 tiles, 1.05x
 * at 32, 1.42x at 64; 256x14x14 1.38x at 49; 128->32 1.25x at 16. */
fx_conv_path fx_conv_fast_path(const fx_conv2d_params *p, int threads)
{
    int oh, ow;
    if (is_depthwise(p))
        return FX_CONV_DEPTHWISE;
    if (is_pointwise(p))
        return FX_CONV_POINTWISE;
    if (fx_wino_applies(p) && p->c_in >= 16 && p->c_out >= 16 &&
        fx_conv2d_out_hw(p, &oh, &ow, NULL) == FX_OK &&
        (int64_t)p->n * ((oh + 1) / 2) * ((ow + 1) / 2) >=
            24 * (int64_t)(threads > 1 ? threads : 1))
        return FX_CONV_WINOGRAD;
    return FX_CONV_IM2COL;
}

/* Whether path can run p (valid params). */
static int path_fits(const fx_conv2d_params *p, fx_conv_path path)
{
    switch (path) {
    case FX_CONV_AUTO: return 1;
    case FX_CONV_DEPTHWISE: return is_depthwise(p);
    case FX_CONV_POINTWISE: return is_pointwise(p);
    case FX_CONV_IM2COL: return 1;
    case FX_CONV_WINOGRAD: return fx_wino_applies(p);
    }
    return 0;
}

int64_t fx_conv_fast_ws_floats_path(const fx_conv2d_params *p, int threads, fx_conv_path path)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK || !path_fits(p, path))
        return -1;
    if (path == FX_CONV_AUTO)
        path = fx_conv_fast_path(p, threads);
    if (path == FX_CONV_WINOGRAD)
        return fx_wino_ws_floats(p, oh, ow, threads);
    if (path == FX_CONV_DEPTHWISE)
        return fx_dw_fast_applies(p)
                   ? (int64_t)fx_dw_scratch_floats(p) * (threads > 1 ? threads : 1)
                   : 0;
    if (path == FX_CONV_POINTWISE)
        return (int64_t)pw_ws_slot(p) * (threads > 1 ? threads : 1);
    if (path != FX_CONV_IM2COL)
        return 0;
    return (int64_t)(p->c_in / p->groups) * p->kh * p->kw * band_rows(p, oh, ow) * ow *
           (threads > 1 ? threads : 1);
}

int64_t fx_conv2d_fast_ws_floats_mt(const fx_conv2d_params *p, int threads)
{
    return fx_conv_fast_ws_floats_path(p, threads, FX_CONV_AUTO);
}

int64_t fx_conv2d_fast_ws_floats(const fx_conv2d_params *p)
{
    /* As many slots as fx_op_conv2d_fast_ws uses threads. */
    return fx_conv2d_fast_ws_floats_mt(p, is_depthwise(p) ? fx_omp_max_threads() : 1);
}

/* First output index o with o*s + off >= 0 and the end of the run with
 * o*s + off < in, clipped to [0, out): the taps of one kernel column that
 * land inside the input. */
static void valid_range(int off, int s, int in, int out, int *o0, int *o1)
{
    int lo = off >= 0 ? 0 : (-off + s - 1) / s;
    int hi = in - off <= 0 ? 0 : (in - off + s - 1) / s;
    *o0 = lo < out ? lo : out;
    *o1 = hi < out ? hi : out;
    if (*o1 < *o0)
        *o1 = *o0;
}

/* Unfold output rows [r0, r1) of one image/group: col is (cg*kh*kw, (r1-r0)*ow). */
FX_OPS_INLINE void im2col_band(const fx_conv2d_params *p, const float *xg, int ow, int r0, int r1,
                               float *col)
{
    int cg = p->c_in / p->groups, krows = cg * p->kh * p->kw;
    size_t ncol = (size_t)(r1 - r0) * ow;
    for (int r = 0; r < krows; r++) {
        int ic = r / (p->kh * p->kw), ky = r / p->kw % p->kh, kx = r % p->kw;
        const float *xc = xg + (size_t)ic * p->h * p->w;
        int off = kx * p->dil_w - p->pad_l, ox0, ox1;
        valid_range(off, p->stride_w, p->w, ow, &ox0, &ox1);
        for (int oy = r0; oy < r1; oy++) {
            float *dst = col + r * ncol + (size_t)(oy - r0) * ow;
            int iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;
            if (iy < 0 || iy >= p->h) {
                for (int ox = 0; ox < ow; ox++)
                    dst[ox] = 0.0f;
                continue;
            }
            const float *src = xc + (size_t)iy * p->w + off;
            for (int ox = 0; ox < ox0; ox++)
                dst[ox] = 0.0f;
            for (int ox = ox0; ox < ox1; ox++)
                dst[ox] = src[ox * p->stride_w];
            for (int ox = ox1; ox < ow; ox++)
                dst[ox] = 0.0f;
        }
    }
}

/* Shared with winograd.c; see ops_internal.h. */
FX_SIMD_CLONES FX_OPS_NO_TRAP void fx_conv_epilogue_apply(const fx_conv_epilogue *ep,
                                                          const float *b, int oc0, int og, int ncol,
                                                          float *y, const float *res, size_t ld)
{
    fx_act_kind act = ep ? ep->act : FX_ACT_NONE;
    float lo = ep ? ep->lo : 0.0f, hi = ep ? ep->hi : 0.0f;
    for (int o = 0; o < og; o++) {
        float *yr = y + (size_t)o * ld;
        const float *rr = res ? res + (size_t)o * ld : NULL;
        float bv = b ? b[oc0 + o] : 0.0f;
        if (rr) {
#pragma omp simd
            for (int j = 0; j < ncol; j++)
                yr[j] = (yr[j] + bv) + rr[j];
        } else if (b) {
#pragma omp simd
            for (int j = 0; j < ncol; j++)
                yr[j] += bv;
        }
        switch (act) {
        case FX_ACT_RELU:
#pragma omp simd
            for (int j = 0; j < ncol; j++)
                yr[j] = yr[j] > 0.0f ? yr[j] : 0.0f;
            break;
        case FX_ACT_CLIP:
#pragma omp simd
            for (int j = 0; j < ncol; j++) {
                float v = yr[j] < lo ? lo : yr[j];
                yr[j] = v > hi ? hi : v;
            }
            break;
        case FX_ACT_SILU:
            /* x / (1 + e^-x), not x * sigmoid(x): the same to rounding, and
             * 2x faster here (gcc 12, SSE2: the reciprocal-then-multiply
             * form ran at ~9 ns/element, this one at ~4.5).  A division-free
             * form (Newton steps for 1/(1 + e^-|x|)) was 1.7x slower still
             * on this EPYC, in SSE2 and in the AVX2 clone: more, dependent
             * operations on 128-bit halves.  The exp without input clamps:
             * see fx_ops_expf_noclamp. */
#pragma omp simd
            for (int j = 0; j < ncol; j++) {
                float v = yr[j], s = v / (1.0f + fx_ops_expf_noclamp(-v));
                yr[j] = v > 1e4f ? v : s; /* +inf: s is NaN */
            }
            break;
        case FX_ACT_NONE: break;
        }
    }
}

/* 1x1 convs on 1x1 planes (squeeze-excitation, heads): one sgemm for the
 * whole batch, Y (N, C_out) = X (N, C_in) W^T, instead of N matrix-vector
 * products. */
static void conv_pointwise_1x1plane(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                    const float *x, const float *w, const float *b, float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->n, p->c_out, p->c_in, 1.0f, x, p->c_in,
                w, p->c_in, 0.0f, y, p->c_out);
    for (int n = 0; n < p->n; n++) {
        float *yr = y + (size_t)n * p->c_out;
        const float *rr = ep && ep->residual ? ep->residual + (size_t)n * p->c_out : NULL;
        for (int o = 0; o < p->c_out; o++) /* per channel: o is the epilogue row */
            fx_conv_epilogue_apply(ep, b, o, 1, 1, yr + o, rr ? rr + o : NULL, 1);
    }
}

/* The prologue of one column chunk: cg rows of cw columns from x (row
 * stride ld) into dst (row stride dld), per channel scale a[c], shift s[c]
 * (s may be NULL), ReLU.  a NULL: a plain copy (pw_batch's gather). */
FX_OPS_INLINE void pw_prologue(const float *a, const float *s, int relu, int cg, int cw,
                               const float *x, size_t ld, float *dst, size_t dld)
{
    for (int c = 0; c < cg; c++) {
        const float *xr = x + (size_t)c * ld;
        float *dr = dst + (size_t)c * dld, ac = a ? a[c] : 1.0f, sc = s ? s[c] : 0.0f;
        if (!a) {
            memcpy(dr, xr, sizeof(float) * (size_t)cw);
        } else if (relu) {
#pragma omp simd
            for (int j = 0; j < cw; j++) {
                float v = ac * xr[j] + sc;
                dr[j] = v > 0.0f ? v : 0.0f;
            }
        } else if (s) {
#pragma omp simd
            for (int j = 0; j < cw; j++)
                dr[j] = ac * xr[j] + sc;
        } else {
#pragma omp simd
            for (int j = 0; j < cw; j++)
                dr[j] = ac * xr[j];
        }
    }
}

/* Columns c0 .. c0 + cw of image n's input (groups == 1: c_in channels of
 * plane hw), through the epilogue's prologue if it has one, into dst (row
 * stride dld). */
FX_OPS_INLINE void pw_columns(const fx_conv2d_params *p, const fx_conv_epilogue *ep, const float *x,
                              int n, int c0, int cw, float *dst, size_t dld)
{
    int hw = p->h * p->w, pre = ep && ep->pre_scale;
    const float *sc = NULL, *sh = NULL;
    if (pre) {
        size_t ch0 = ep->pre_per_image ? (size_t)n * p->c_in : 0;
        sc = ep->pre_scale + ch0, sh = ep->pre_shift ? ep->pre_shift + ch0 : NULL;
    }
    if (pre && ep->n_pre_src > 0) { /* the pieces' channels in order */
        for (int k = 0, c = 0; k < ep->n_pre_src; c += ep->pre_src_c[k++]) {
            const float *src = ep->pre_src[k] + (size_t)n * ep->pre_src_c[k] * hw + c0;
            pw_prologue(sc + c, sh ? sh + c : NULL, ep->pre_relu, ep->pre_src_c[k], cw, src,
                        (size_t)hw, dst + (size_t)c * dld, dld);
        }
        return;
    }
    pw_prologue(sc, sh, pre && ep->pre_relu, p->c_in, cw, x + (size_t)n * p->c_in * hw + c0,
                (size_t)hw, dst, dld);
}

/* pw_batch > 1: nb images' planes side by side in scratch (xs: c_in x
 * nb*hw), one sgemm into cs (c_out x nb*hw, preset to the bias), then each
 * image's rows out to y and its epilogue there (residual, activation).
 * Writing the GEMM's tiles straight into the images' planes instead
 * (masked stores split where a vector crosses from one image to the next)
 * was tried: EfficientNet-B0 batch 32 ran 2-3% slower (6 alternating
 * rounds), the scratch and one memcpy being cheaper than scattered
 * stores into 8 images at once. */
FX_SIMD_CLONES static void conv_pointwise_batched(const fx_conv2d_params *p,
                                                  const fx_conv_epilogue *ep, const float *x,
                                                  const float *w, const float *b, float *y,
                                                  float *ws, size_t slot, int nb, int team)
{
    int cg = p->c_in, og = p->c_out, hw = p->h * p->w;
    int tasks = (p->n + nb - 1) / nb;
    const float *res = ep ? ep->residual : NULL;
#pragma omp parallel for num_threads(team) schedule(static)
    for (int t = 0; t < tasks; t++) {
        int n0 = t * nb, cnt = p->n - n0 < nb ? p->n - n0 : nb;
        size_t cols = (size_t)cnt * hw;
        float *xs = ws + slot * (size_t)fx_omp_thread_num(), *cs = xs + (size_t)cg * nb * hw;
        for (int i = 0; i < cnt; i++)
            pw_columns(p, ep, x, n0 + i, 0, hw, xs + (size_t)i * hw, cols);
        /* the activation in the GEMM unless a residual must come first */
        fx_conv_gemm(res ? NULL : ep, og, (int)cols, cg, w, xs, cols, b, cs, NULL, cols);
        for (int i = 0; i < cnt; i++) {
            size_t yoff = (size_t)(n0 + i) * og * hw;
            for (int o = 0; o < og; o++)
                memcpy(y + yoff + (size_t)o * hw, cs + (size_t)o * cols + (size_t)i * hw,
                       sizeof(float) * (size_t)hw);
            if (res)
                fx_conv_epilogue_apply(ep, NULL, 0, og, hw, y + yoff, res + yoff, (size_t)hw);
        }
    }
}

FX_SIMD_CLONES static void conv_pointwise(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                          const float *x, const float *w, const float *b, float *y,
                                          float *ws, int team)
{
    int cg = p->c_in / p->groups, og = p->c_out / p->groups, hw = p->h * p->w, chunks, width;
    int64_t ng = (int64_t)p->n * p->groups;
    size_t slot = pw_ws_slot(p); /* one thread's scratch, as ws_floats counts it */
    pw_split(p, team, &chunks, &width);
    int nb = ws ? pw_batch(p, team) : 1;
    if (nb > 1) {
        conv_pointwise_batched(p, ep, x, w, b, y, ws, slot, nb, team);
        return;
    }
    int64_t tasks = ng * chunks;
    const float *res = ep ? ep->residual : NULL;
    int pre = ep && ep->pre_scale;
#pragma omp parallel for num_threads(team) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t gi = t / chunks;
        int c0 = (int)(t % chunks) * width;
        if (c0 >= hw)
            continue;
        int cw = hw - c0 < width ? hw - c0 : width;
        int n = (int)(gi / p->groups), g = (int)(gi % p->groups);
        const float *xg = x + ((size_t)n * p->c_in + (size_t)g * cg) * hw + c0;
        size_t yoff = ((size_t)n * p->c_out + (size_t)g * og) * hw + c0;
        int ldb = hw;
        if (pre) { /* groups == 1: the plan fuses prologues only there */
            float *col = ws + slot * (size_t)fx_omp_thread_num();
            pw_columns(p, ep, x, n, c0, cw, col, (size_t)cw);
            xg = col, ldb = cw;
        }
        fx_conv_gemm(ep, og, cw, cg, w + (size_t)g * og * cg, xg, (size_t)ldb,
                     b ? b + g * og : NULL, y + yoff, res ? res + yoff : NULL, (size_t)hw);
    }
}

FX_SIMD_CLONES static void conv_im2col(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                       const float *x, const float *w, const float *b, float *y,
                                       int oh, int ow, float *col, int team)
{
    int cg = p->c_in / p->groups, og = p->c_out / p->groups, k = cg * p->kh * p->kw;
    int band = band_rows(p, oh, ow), ohw = oh * ow;
    size_t slot = (size_t)k * band * ow; /* per-thread scratch, as ws_floats_mt counts it */
    int64_t ng = (int64_t)p->n * p->groups;
    if (ng < team) { /* few images: finer bands so every thread has one */
        int want = (int)((team + ng - 1) / ng), b2 = (oh + want - 1) / want;
        band = b2 < band ? b2 : band;
    }
    int nb = (oh + band - 1) / band;
    int64_t tasks = ng * nb;
    const float *res = ep ? ep->residual : NULL;
#pragma omp parallel for num_threads(team) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        float *c = col + slot * (size_t)fx_omp_thread_num();
        int64_t gi = t / nb;
        int n = (int)(gi / p->groups), g = (int)(gi % p->groups);
        int r0 = (int)(t % nb) * band, r1 = r0 + band < oh ? r0 + band : oh, ncol = (r1 - r0) * ow;
        const float *xg = x + ((size_t)n * p->c_in + (size_t)g * cg) * p->h * p->w;
        size_t yoff = ((size_t)n * p->c_out + (size_t)g * og) * ohw + (size_t)r0 * ow;
        im2col_band(p, xg, ow, r0, r1, c);
        /* The band's outputs are columns [r0*ow, r1*ow) of each (OH*OW)
         * plane: ldc = OH*OW writes them in place. */
        fx_conv_gemm(ep, og, ncol, k, w + (size_t)g * og * k, c, (size_t)ncol,
                     b ? b + g * og : NULL, y + yoff, res ? res + yoff : NULL, (size_t)ohw);
    }
}

/* One depthwise output plane (already holding the bias): accumulate each
 * tap over the run of outputs whose input lies inside the image.  The
 * inner loops are contiguous in ow (stride 1) and marked simd: without the
 * pragma gcc -O2 leaves them scalar (it cannot prove yr and xr apart). */
static void dw_plane(const fx_conv2d_params *p, const float *xc, const float *wc, float *yp, int oh,
                     int ow)
{
    int sw = p->stride_w;
    for (int oy = 0; oy < oh; oy++) {
        float *yr = yp + (size_t)oy * ow;
        for (int ky = 0; ky < p->kh; ky++) {
            int iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;
            if (iy < 0 || iy >= p->h)
                continue;
            const float *xr = xc + (size_t)iy * p->w;
            for (int kx = 0; kx < p->kw; kx++) {
                int off = kx * p->dil_w - p->pad_l, ox0, ox1;
                float wv = wc[ky * p->kw + kx];
                valid_range(off, sw, p->w, ow, &ox0, &ox1);
                const float *xs = xr + off;
                if (sw == 1) {
#pragma omp simd
                    for (int ox = ox0; ox < ox1; ox++)
                        yr[ox] += wv * xs[ox];
                } else {
#pragma omp simd
                    for (int ox = ox0; ox < ox1; ox++)
                        yr[ox] += wv * xs[ox * sw];
                }
            }
        }
    }
}

FX_SIMD_CLONES static void conv_depthwise(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                          const float *x, const float *w, const float *b, float *y,
                                          int oh, int ow, float *ws, int team)
{
    int og = p->c_out / p->groups; /* channel multiplier */
    int64_t planes = (int64_t)p->n * p->c_out;
    size_t plane = (size_t)oh * ow;
    const float *res = ep ? ep->residual : NULL;
    float *gap = ep ? ep->gap : NULL;
    size_t slot = fx_dw_fast_applies(p) && ws ? fx_dw_scratch_floats(p) : 0;
    int blocks = slot && fx_dw_block_applies(p) ? (p->c_out + DW_LANES - 1) / DW_LANES : 0;
#pragma omp parallel num_threads(team)
    {
        /* The fast kernel's zero-padded input plane: one workspace slot per
         * thread, zeroed once per call (the kernel never writes the pads). */
        float *pp = slot ? ws + slot * (size_t)fx_omp_thread_num() : NULL;
        if (pp)
            memset(pp, 0, slot * sizeof *pp);
        if (blocks) { /* small planes: DW_LANES channels of an image at a time */
#pragma omp for schedule(static)
            for (int64_t nb = 0; nb < (int64_t)p->n * blocks; nb++) {
                int64_t n = nb / blocks;
                int c0 = (int)(nb % blocks) * DW_LANES;
                int nc = p->c_out - c0 < DW_LANES ? p->c_out - c0 : DW_LANES;
                size_t xo = (size_t)n * p->c_in * p->h * p->w, yo = (size_t)n * p->c_out * plane;
                fx_dw_block_fast(p, ep, x + xo, w, b, y + yo, res ? res + yo : NULL, c0, nc, oh, ow,
                                 pp);
                for (int j = 0; gap && j < nc; j++) /* the block's planes, still in cache */
                    gap[n * p->c_out + c0 + j] = fx_plane_mean(y + yo + (c0 + j) * plane, plane);
            }
        } else {
#pragma omp for schedule(static)
            for (int64_t nc = 0; nc < planes; nc++) {
                int64_t n = nc / p->c_out, oc = nc % p->c_out;
                const float *xc = x + ((size_t)n * p->c_in + (size_t)(oc / og)) * p->h * p->w;
                const float *wc = w + (size_t)oc * p->kh * p->kw;
                float *yp = y + (size_t)nc * plane;
                const float *rp = res ? res + (size_t)nc * plane : NULL;
                if (pp) {
                    fx_dw_plane_fast(p, ep, xc, wc, b ? b[oc] : 0.0f, yp, rp, oh, ow, pp,
                                     gap ? gap + nc : NULL);
                } else {
                    for (size_t i = 0; i < plane; i++)
                        yp[i] = 0.0f;
                    dw_plane(p, xc, wc, yp, oh, ow);
                    fx_conv_epilogue_apply(ep, b, (int)oc, 1, (int)plane, yp, rp, plane);
                    if (gap) /* the plane, still in cache */
                        gap[nc] = fx_plane_mean(yp, plane);
                }
            }
        }
    }
}

/* Expanded channels per block of fx_conv_expand_dw: about 256 KiB of
 * the expanded plane (half of this EPYC's L2), a multiple of DW_LANES. */
#define XDW_BLOCK_FLOATS (1 << 16)

static int xdw_block(const fx_conv2d_params *pd)
{
    int hw = pd->h * pd->w, cb = XDW_BLOCK_FLOATS / (hw > 0 ? hw : 1) / DW_LANES * DW_LANES;
    int all = (pd->c_in + DW_LANES - 1) / DW_LANES * DW_LANES;
    return cb < DW_LANES ? DW_LANES : cb > all ? all : cb;
}

int fx_conv_expand_dw_applies(const fx_conv2d_params *pe, const fx_conv2d_params *pd)
{
    return is_pointwise(pe) && pe->groups == 1 && fx_dw_fast_applies(pd) && pe->n == pd->n &&
           pe->c_out == pd->c_in && pe->h == pd->h && pe->w == pd->w;
}

/* How fx_conv_expand_dw lays out its scratch.  Where the depthwise conv
 * takes channel blocks and the CPU has AVX-512 ("interleaved"), the
 * expansion GEMM writes straight into the depthwise kernel's padded,
 * pixel-interleaved planes (fx_conv_gemm_interleaved): no expanded NCHW
 * planes, no transposes in, and the 7x7 planes' 49 pixels no longer leave
 * lanes idle; W^T (K x C_exp) is then shared at the front.  Else the
 * expanded planes go to scratch in NCHW and the depthwise kernel reads
 * them as an image.  slot: one thread's floats; shared: before the slots. */
typedef struct xdw_layout {
    int interleaved, cb;
    size_t gstride, slot, shared;
} xdw_layout;

static void xdw_plan(const fx_conv2d_params *pe, const fx_conv2d_params *pd, xdw_layout *l)
{
    int hw = pd->h * pd->w;
    size_t dws = fx_dw_scratch_floats(pd);
    l->interleaved = fx_dw_block_applies(pd) && fx_cpu_avx512();
    if (!l->interleaved) {
        l->cb = xdw_block(pd), l->gstride = 0, l->shared = 0;
        l->slot = (size_t)l->cb * hw + dws;
        return;
    }
    int pp = (pd->h + pd->pad_t + pd->pad_b) * (pd->w + pd->pad_l + pd->pad_r);
    int cb = XDW_BLOCK_FLOATS / pp / 16 * 16, all = (pd->c_in + 15) / 16 * 16;
    l->cb = cb < 16 ? 16 : cb > all ? all : cb;
    l->gstride = (size_t)pp * 16;
    l->shared = (size_t)pe->c_in * pd->c_in;
    l->slot = (size_t)(l->cb / 16) * l->gstride + dws;
}

int fx_conv_expand_wants_wt(const fx_conv2d_params *pe, const fx_conv2d_params *pd)
{
    xdw_layout l;
    return fx_conv_expand_dw_applies(pe, pd) && (xdw_plan(pe, pd, &l), l.interleaved);
}

/* Rows c0 .. c1 of w (C_exp x ci) as columns of wt (ci x C_exp). */
static void xdw_transpose(const float *w, int ci, int ce, int c0, int c1, float *wt)
{
    for (int c = c0; c < c1; c++)
        for (int q = 0; q < ci; q++)
            wt[(size_t)q * ce + c] = w[(size_t)c * ci + q];
}

void fx_conv_expand_transpose(const fx_conv2d_params *pe, const float *w, float *wt)
{
    xdw_transpose(w, pe->c_in, pe->c_out, 0, pe->c_out, wt);
}

int64_t fx_conv_expand_dw_ws_floats(const fx_conv2d_params *pe, const fx_conv2d_params *pd,
                                    int threads)
{
    if (!fx_conv_expand_dw_applies(pe, pd))
        return -1;
    xdw_layout l;
    xdw_plan(pe, pd, &l);
    return (int64_t)(l.shared + l.slot * (size_t)(threads > 1 ? threads : 1));
}

FX_SIMD_CLONES fx_status fx_conv_expand_dw(const fx_conv_expand *e, const fx_conv2d_params *pd,
                                           const fx_conv_epilogue *ep, const float *x,
                                           const float *wd, const float *bd, float *y, float *ws,
                                           int threads)
{
    const fx_conv2d_params *pe = e->p;
    int oh, ow;
    if (!fx_conv_expand_dw_applies(pe, pd) || !ws || threads < 1 || (ep && ep->residual) ||
        fx_conv2d_out_hw(pd, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    xdw_layout l;
    xdw_plan(pe, pd, &l);
    int hw = pd->h * pd->w, cb = l.cb, ce = pd->c_in, kk = pd->kh * pd->kw, ci = pe->c_in;
    int nblk = (ce + cb - 1) / cb, blocked = fx_dw_block_applies(pd);
    size_t out_plane = (size_t)oh * ow, dws = fx_dw_scratch_floats(pd);
    size_t slot = l.slot, ebf = slot - dws; /* the expanded block's floats */
    fx_conv_epilogue epe = {.act = e->act, .lo = e->lo, .hi = e->hi};
    int64_t tasks = (int64_t)pd->n * nblk;
    const float *wt = e->wt ? e->wt : ws; /* interleaved: W^T, K x C_exp */
    int pos[256];   /* interleaved: each input pixel's place in the padded plane */
    int ppw = pd->w + pd->pad_l + pd->pad_r;
    for (int i = 0; l.interleaved && i < hw; i++)
        pos[i] = (i / pd->w + pd->pad_t) * ppw + i % pd->w + pd->pad_l;
#pragma omp parallel num_threads(threads)
    {
        float *eb = ws + l.shared + slot * (size_t)fx_omp_thread_num(), *pp = eb + ebf;
        memset(pp, 0, dws * sizeof *pp); /* the depthwise pads, never written */
        if (l.interleaved)
            memset(eb, 0, ebf * sizeof *eb); /* the interleaved planes' pads, likewise */
        if (l.interleaved && !e->wt) {
#pragma omp for schedule(static)
            for (int c = 0; c < ce; c++)
                xdw_transpose(e->w, ci, ce, c, c + 1, ws);
        }
#pragma omp for schedule(static)
        for (int64_t t = 0; t < tasks; t++) {
            int n = (int)(t / nblk), c0 = (int)(t % nblk) * cb;
            int nc = ce - c0 < cb ? ce - c0 : cb;
            const float *wb = wd + (size_t)c0 * kk, *bb = bd ? bd + c0 : NULL;
            float *yb = y + ((size_t)n * ce + c0) * out_plane;
            float *gb = ep && ep->gap ? ep->gap + (size_t)n * ce + c0 : NULL;
            if (l.interleaved &&
                fx_conv_gemm_interleaved(&epe, nc, hw, ci, wt + c0, (size_t)ce,
                                         x + (size_t)n * ci * hw, (size_t)hw,
                                         e->b ? e->b + c0 : NULL, eb, l.gstride, pos)) {
                for (int j = 0; j < nc; j += 16)
                    fx_dw_block16_filled(pd, ep, eb + (size_t)(j / 16) * l.gstride, wb, bb, yb, j,
                                         nc - j < 16 ? nc - j : 16, oh, ow, pp);
                for (int j = 0; gb && j < nc; j++) /* the block's planes, in cache */
                    gb[j] = fx_plane_mean(yb + (size_t)j * out_plane, (int64_t)out_plane);
                continue;
            }
            /* the block's expanded planes: act(W[c0 .. c0 + nc) x + b) */
            fx_conv_gemm(&epe, nc, hw, pe->c_in, e->w + (size_t)c0 * pe->c_in,
                         x + (size_t)n * pe->c_in * hw, (size_t)hw, e->b ? e->b + c0 : NULL, eb,
                         NULL, (size_t)hw);
            /* then the depthwise conv on them, the block as its own image */
            for (int j = 0; j < nc; j += blocked ? DW_LANES : 1) {
                if (blocked)
                    fx_dw_block_fast(pd, ep, eb, wb, bb, yb, NULL, j,
                                     nc - j < DW_LANES ? nc - j : DW_LANES, oh, ow, pp);
                else
                    fx_dw_plane_fast(pd, ep, eb + (size_t)j * hw, wb + (size_t)j * kk,
                                     bb ? bb[j] : 0.0f, yb + (size_t)j * out_plane, NULL, oh, ow,
                                     pp, gb ? gb + j : NULL);
            }
            for (int j = 0; blocked && gb && j < nc; j++) /* the block's planes, in cache */
                gb[j] = fx_plane_mean(yb + (size_t)j * out_plane, (int64_t)out_plane);
        }
    }
    return FX_OK;
}

fx_status fx_conv_fast_mt_path(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                               const float *x, const float *w, const float *b, float *y, float *ws,
                               int threads, fx_conv_path path)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK || threads < 1 || !path_fits(p, path))
        return FX_ERR_USAGE;
    int pre = ep && ep->pre_scale;
    fx_conv_path run = path == FX_CONV_AUTO ? fx_conv_fast_path(p, threads) : path;
    /* Scratch: as counted, except a pointwise conv without prologue needs none. */
    if (fx_conv_fast_ws_floats_path(p, threads, path) > 0 && !ws &&
        !(run == FX_CONV_POINTWISE && !pre))
        return FX_ERR_USAGE;
    if (ep && ep->act != FX_ACT_NONE && ep->act != FX_ACT_RELU && ep->act != FX_ACT_CLIP &&
        ep->act != FX_ACT_SILU)
        return FX_ERR_USAGE;
    path = run;
    if (pre && (path != FX_CONV_POINTWISE || p->groups != 1))
        return FX_ERR_USAGE; /* the prologue runs on pointwise column chunks only */
    if (ep && ep->gap && path != FX_CONV_DEPTHWISE)
        return FX_ERR_USAGE;       /* the fused mean: depthwise planes only */
    if (ep && ep->n_pre_src > 0) { /* pieces: only with a prologue, channels adding up */
        int sum = 0, ok = pre;
        for (int k = 0; ok && k < ep->n_pre_src; k++) {
            ok = ep->pre_src[k] && ep->pre_src_c[k] > 0;
            sum += ok ? ep->pre_src_c[k] : 0;
        }
        if (!ok || sum != p->c_in)
            return FX_ERR_USAGE;
    }
    /* sgemm inside our threads only when OpenBLAS itself is single-threaded. */
    int team = openblas_get_num_threads() > 1 ? 1 : threads;
    switch (path) {
    case FX_CONV_DEPTHWISE: conv_depthwise(p, ep, x, w, b, y, oh, ow, ws, threads); break;
    case FX_CONV_POINTWISE:
        if (p->h * p->w == 1 && p->groups == 1 && !(ep && ep->pre_scale))
            conv_pointwise_1x1plane(p, ep, x, w, b, y);
        else
            conv_pointwise(p, ep, x, w, b, y, ws, team);
        break;
    case FX_CONV_WINOGRAD: fx_conv_winograd(p, ep, x, w, b, y, oh, ow, ws, team); break;
    case FX_CONV_IM2COL:
    case FX_CONV_AUTO: conv_im2col(p, ep, x, w, b, y, oh, ow, ws, team); break;
    }
    return FX_OK;
}

fx_status fx_op_conv2d_fast_mt(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                               const float *x, const float *w, const float *b, float *y, float *ws,
                               int threads)
{
    return fx_conv_fast_mt_path(p, ep, x, w, b, y, ws, threads, FX_CONV_AUTO);
}

fx_status fx_op_conv2d_fast_ws(const fx_conv2d_params *p, const float *x, const float *w,
                               const float *b, float *y, float *ws)
{
    /* One scratch slot: the sgemm paths run on one thread; the depthwise
     * path keeps OpenMP's default team, one slot per thread (see
     * fx_conv2d_fast_ws_floats). */
    int t = is_depthwise(p) ? fx_omp_max_threads() : 1;
    return fx_op_conv2d_fast_mt(p, NULL, x, w, b, y, ws, t);
}

fx_status fx_op_conv2d_fast(const fx_conv2d_params *p, const float *x, const float *w,
                            const float *b, float *y)
{
    int threads = fx_omp_max_threads();
    int64_t nws = fx_conv2d_fast_ws_floats_mt(p, threads);
    if (nws < 0)
        return FX_ERR_USAGE;
    float *ws = nws > 0 ? malloc(sizeof(float) * (size_t)nws) : NULL;
    if (nws > 0 && !ws)
        return FX_ERR_NOMEM;
    fx_status st = fx_op_conv2d_fast_mt(p, NULL, x, w, b, y, ws, threads);
    free(ws);
    return st;
}
