/* Fast depthwise convolution: 3x3 and 5x5 kernels, stride 1 or 2, dilation
 * 1 (what MobileNet and EfficientNet use).  The caller (conv_depthwise in
 * conv_fast.c) runs the planes on its OpenMP team and keeps the generic
 * loop for everything else.
 *
 * Per plane, the input is first copied into a zero-padded per-thread
 * scratch plane, so that every tap of every output lies inside it: the
 * kernel then needs no bounds checks and its loads hit L1/L2 (the copy is
 * one read of the input it would have streamed anyway).  For stride 2 each
 * padded row is stored deinterleaved, even columns then odd ones, so the
 * taps of a row of outputs are unit-stride loads: padded column 2*ox + kx
 * is E[ox + kx/2] for even kx and O[ox + kx/2] for odd kx.  An output row
 * is K passes (one per kernel row) of K taps each, vectorised over the
 * output columns; the first pass starts from the bias.  The epilogue runs
 * on bands of rows while they are in cache.
 *
 * Measured (bench/conv --dw, batch 32, 2 threads) against the generic
 * loop, which did a bounds check per tap run, strided loads at stride 2
 * and a separate zeroing pass: see the commit message / report. */
#include <stdlib.h>
#include <string.h>

#include "ops_internal.h"

/* Output floats per epilogue band: small enough to still be in L1/L2. */
#define EPI_BAND_FLOATS 4096

/* Stride-1 planes narrower than this take the flat loop (flat_taps3/5):
 * bench/conv --dw, 2 threads: 1.1-1.7x on the 7, 14 and 28 wide planes,
 * 0.8-0.9x on the 56 and 112 wide ones (the row passes stream those). */
#ifndef FLAT_MAX_OW
#define FLAT_MAX_OW 32
#endif

int fx_dw_fast_applies(const fx_conv2d_params *p)
{
    int k = p->kh;
    return p->c_in == p->groups && p->c_out == p->groups && (k == 3 || k == 5) && p->kw == k &&
           p->stride_h == p->stride_w && (p->stride_h == 1 || p->stride_h == 2) && p->dil_h == 1 &&
           p->dil_w == 1 && p->pad_t < k && p->pad_b < k && p->pad_l < k && p->pad_r < k;
}

/* Geometry of the padded scratch plane: rows of `pitch` floats; at stride
 * 2 a row is E (ceil(pw/2) floats) then O. */
static void pad_geometry(const fx_conv2d_params *p, int *rows, int *pitch, int *half)
{
    int pw = p->w + p->pad_l + p->pad_r;
    *rows = p->h + p->pad_t + p->pad_b;
    *half = (pw + 1) / 2;
    *pitch = p->stride_w == 2 ? *half + pw / 2 : pw;
}

/* The padded plane, and at stride 1 after it the flat output (rows - k + 1
 * rows of `pitch`, see flat_taps). */
size_t fx_dw_scratch_floats(const fx_conv2d_params *p)
{
    int rows, pitch, half;
    pad_geometry(p, &rows, &pitch, &half);
    return (size_t)rows * pitch + (p->stride_h == 1 ? (size_t)(rows - p->kh + 1) * pitch : 0);
}

/* Copy input plane xc into the interior of the padded plane pp.  The pad
 * cells are never written: the caller zeroes pp once per thread. */
FX_OPS_INLINE void fill_padded(const fx_conv2d_params *p, const float *xc, float *pp)
{
    int rows, pitch, half, pl = p->pad_l, w = p->w;
    pad_geometry(p, &rows, &pitch, &half);
    for (int iy = 0; iy < p->h; iy++) {
        const float *src = xc + (size_t)iy * w;
        float *dst = pp + (size_t)(iy + p->pad_t) * pitch;
        if (p->stride_w == 1) {
            memcpy(dst + pl, src, sizeof(float) * (size_t)w);
            continue;
        }
        /* padded column c = ix + pl goes to E[c/2] (c even) or O[c/2] */
        float *e = dst + (pl + 1) / 2, *o = dst + half + pl / 2;
        const float *se = src + (pl & 1), *so = src + 1 - (pl & 1);
        int ne = (w - (pl & 1) + 1) / 2, no = (w - 1 + (pl & 1) + 1) / 2;
#pragma omp simd
        for (int j = 0; j < ne; j++)
            e[j] = se[2 * j];
#pragma omp simd
        for (int j = 0; j < no; j++)
            o[j] = so[2 * j];
    }
}

/* yr[ox] (= bias when first, else +=) w0*t0[ox] + ... over one kernel row.
 * restrict: the taps point into the scratch plane, yr into the output. */
FX_OPS_INLINE void taps3(float *restrict yr, const float *restrict t0, const float *restrict t1,
                         const float *restrict t2, const float *wr, float bias, int first, int ow)
{
    float w0 = wr[0], w1 = wr[1], w2 = wr[2];
    if (first) {
#pragma omp simd
        for (int ox = 0; ox < ow; ox++)
            yr[ox] = bias + (w0 * t0[ox] + w1 * t1[ox] + w2 * t2[ox]);
    } else {
#pragma omp simd
        for (int ox = 0; ox < ow; ox++)
            yr[ox] += w0 * t0[ox] + w1 * t1[ox] + w2 * t2[ox];
    }
}

FX_OPS_INLINE void taps5(float *restrict yr, const float *const t[5], const float *wr, float bias,
                         int first, int ow)
{
    const float *restrict t0 = t[0], *restrict t1 = t[1], *restrict t2 = t[2];
    const float *restrict t3 = t[3], *restrict t4 = t[4];
    float w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3], w4 = wr[4];
    if (first) {
#pragma omp simd
        for (int ox = 0; ox < ow; ox++)
            yr[ox] = bias + (w0 * t0[ox] + w1 * t1[ox] + w2 * t2[ox] + w3 * t3[ox] + w4 * t4[ox]);
    } else {
#pragma omp simd
        for (int ox = 0; ox < ow; ox++)
            yr[ox] += w0 * t0[ox] + w1 * t1[ox] + w2 * t2[ox] + w3 * t3[ox] + w4 * t4[ox];
    }
}

/* Stride 1, the whole plane as one loop: with the output laid out at the
 * padded plane's pitch, tap (ky, kx) of output i = oy * pitch + ox is
 * pp[i + ky * pitch + kx] for every i, so one long vector loop with the K*K
 * weights in registers does the plane, one store per output (the row
 * passes below load and store each output K times) and no scalar
 * remainder per row (a 7-wide row of EfficientNet's 7x7 planes was all
 * remainder).  The pitch - ow columns past each row's end are computed and
 * dropped.  n = (oh - 1) * pitch + ow outputs; the last tap read is
 * pp[rows * pitch - 1]. */
FX_OPS_INLINE void flat_taps3(float *restrict o, const float *restrict pp, const float *wc,
                              float bias, int pitch, int n)
{
    const float *r0 = pp, *r1 = pp + pitch, *r2 = pp + 2 * pitch;
    float w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4], w5 = wc[5], w6 = wc[6],
          w7 = wc[7], w8 = wc[8];
#pragma omp simd
    for (int i = 0; i < n; i++)
        o[i] = bias + (w0 * r0[i] + w1 * r0[i + 1] + w2 * r0[i + 2]) +
               (w3 * r1[i] + w4 * r1[i + 1] + w5 * r1[i + 2]) +
               (w6 * r2[i] + w7 * r2[i + 1] + w8 * r2[i + 2]);
}

/* 5x5: one pass per kernel row over the flat output (25 weights and the
 * taps in one loop body spilled registers and ran slower than the row
 * passes); o stays in L1 between passes. */
FX_OPS_INLINE void flat_taps5(float *restrict o, const float *restrict pp, const float *wc,
                              float bias, int pitch, int n)
{
    for (int ky = 0; ky < 5; ky++) {
        const float *r = pp + ky * pitch, *wr = wc + 5 * ky;
        float w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3], w4 = wr[4];
        if (ky == 0) {
#pragma omp simd
            for (int i = 0; i < n; i++)
                o[i] = bias +
                       (w0 * r[i] + w1 * r[i + 1] + w2 * r[i + 2] + w3 * r[i + 3] + w4 * r[i + 4]);
        } else {
#pragma omp simd
            for (int i = 0; i < n; i++)
                o[i] += w0 * r[i] + w1 * r[i + 1] + w2 * r[i + 2] + w3 * r[i + 3] + w4 * r[i + 4];
        }
    }
}

/* One output plane of channel oc: yp = act((conv + bias) + res), pp being
 * this thread's zeroed scratch (fx_dw_scratch_floats). */
FX_SIMD_CLONES void fx_dw_plane_fast(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                     const float *xc, const float *wc, float bias, float *yp,
                                     const float *res, int oh, int ow, float *pp)
{
    int rows, pitch, half, k = p->kh, s = p->stride_h;
    pad_geometry(p, &rows, &pitch, &half);
    fill_padded(p, xc, pp);
    int band = EPI_BAND_FLOATS / ow < 1 ? 1 : EPI_BAND_FLOATS / ow;
    if (s == 1 && ow < FLAT_MAX_OW) {
        float *o = pp + (size_t)rows * pitch;
        int n = (oh - 1) * pitch + ow;
        if (k == 3)
            flat_taps3(o, pp, wc, bias, pitch, n);
        else
            flat_taps5(o, pp, wc, bias, pitch, n);
        for (int r0 = 0; r0 < oh; r0 += band) {
            int r1 = r0 + band < oh ? r0 + band : oh;
            for (int oy = r0; oy < r1; oy++)
                memcpy(yp + (size_t)oy * ow, o + (size_t)oy * pitch, sizeof(float) * (size_t)ow);
            size_t off = (size_t)r0 * ow;
            fx_conv_epilogue_apply(ep, NULL, 0, 1, (r1 - r0) * ow, yp + off, res ? res + off : NULL,
                                   (size_t)(r1 - r0) * ow);
        }
        return;
    }
    for (int r0 = 0; r0 < oh; r0 += band) {
        int r1 = r0 + band < oh ? r0 + band : oh;
        for (int oy = r0; oy < r1; oy++) {
            float *yr = yp + (size_t)oy * ow;
            if (s == 1 && k == 3) { /* all 9 taps in one pass: one store per output */
                flat_taps3(yr, pp + (size_t)oy * pitch, wc, bias, pitch, ow);
                continue;
            }
            for (int ky = 0; ky < k; ky++) {
                const float *row = pp + (size_t)(oy * s + ky) * pitch, *t[5];
                for (int kx = 0; kx < k; kx++) /* where tap kx of output 0 lies */
                    t[kx] = s == 1 ? row + kx : row + (kx & 1) * half + kx / 2;
                if (k == 3)
                    taps3(yr, t[0], t[1], t[2], wc + ky * 3, bias, ky == 0, ow);
                else
                    taps5(yr, t, wc + ky * 5, bias, ky == 0, ow);
            }
        }
        size_t off = (size_t)r0 * ow;
        fx_conv_epilogue_apply(ep, NULL, 0, 1, (r1 - r0) * ow, yp + off, res ? res + off : NULL,
                               (size_t)(r1 - r0) * ow);
    }
}
