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

size_t fx_dw_scratch_floats(const fx_conv2d_params *p)
{
    int rows, pitch, half;
    pad_geometry(p, &rows, &pitch, &half);
    return (size_t)rows * pitch;
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
    for (int r0 = 0; r0 < oh; r0 += band) {
        int r1 = r0 + band < oh ? r0 + band : oh;
        for (int oy = r0; oy < r1; oy++) {
            float *yr = yp + (size_t)oy * ow;
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
