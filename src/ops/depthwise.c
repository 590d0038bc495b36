/* Fast depthwise convolution: 3x3 and 5x5 kernels, stride 1 or 2, dilation
 * 1 (what MobileNet and EfficientNet use).  The caller (conv_depthwise in
 * conv_fast.c) runs the planes on its OpenMP team and keeps the generic
 * loop for everything else.
 *
 * Per plane, the input is first copied into a zero-padded per-thread
 * scratch plane, so that every tap of every output lies inside it: the
 * kernel then needs no bounds checks and its loads hit L1/L2 (the copy is
 * one read of the input it would have streamed anyway).  At stride 1 the
 * padded plane is one array; at stride 2 it is split in its four
 * polyphase components (row parity x column parity, each ceil(rows/2) x
 * ceil(cols/2)), so that tap (ky, kx) of output (oy, ox) is component
 * (ky & 1, kx & 1) at row oy + ky/2, column ox + kx/2: unit-stride loads,
 * and one constant offset per tap whatever the output (the flat loops).
 * Stride-1 planes narrower than FLAT_MAX_OW and every stride-2 plane run
 * as one flat loop over the outputs laid out at the scratch pitch
 * (flat_*); wide stride-1 planes run row by row (K passes of K taps, or
 * 9 taps in one pass for 3x3), vectorised over the output columns; the
 * first pass starts from the bias.  The epilogue runs on bands of rows
 * while they are in cache.
 *
 * Measured (bench/conv --dw, batch 32, 2 threads) against the generic
 * loop, which did a bounds check per tap run, strided loads at stride 2
 * and a separate zeroing pass: see the commit message / report. */
#include <stdlib.h>
#include <string.h>

#include "avx512_internal.h"

/* Output floats per epilogue band: small enough to still be in L1/L2. */
#define EPI_BAND_FLOATS 4096

/* Stride-1 planes narrower than this take the flat loop (flat_taps3/5):
 * bench/conv --dw, 2 threads: 1.1-1.7x on the 7, 14 and 28 wide planes,
 * 0.8-0.9x on the 56 and 112 wide ones (the row passes stream those). */
#ifndef FLAT_MAX_OW
#define FLAT_MAX_OW 32
#endif

/* Input planes of at most this many pixels run in blocks of DW_LANES
 * channels (fx_dw_block_fast): EfficientNet's 14x14 and 7x7 ones.  On
 * the input, not the output: the block's transposes cost per input pixel,
 * and at 28x28 stride 2 (14x14 out) the flat loop was 1.4x faster
 * (bench/conv --dw, 1 thread). */
#ifndef DW_BLOCK_MAX_PLANE
#define DW_BLOCK_MAX_PLANE 256
#endif

int fx_dw_fast_applies(const fx_conv2d_params *p)
{
    int k = p->kh;
    return p->c_in == p->groups && p->c_out == p->groups && (k == 3 || k == 5) && p->kw == k &&
           p->stride_h == p->stride_w && (p->stride_h == 1 || p->stride_h == 2) && p->dil_h == 1 &&
           p->dil_w == 1 && p->pad_t < k && p->pad_b < k && p->pad_l < k && p->pad_r < k;
}

int fx_dw_block_applies(const fx_conv2d_params *p)
{
    return fx_dw_fast_applies(p) && (int64_t)p->h * p->w <= DW_BLOCK_MAX_PLANE;
}

/* Geometry of the padded scratch plane: `rows` rows of `pitch` floats at
 * stride 1.  At stride 2 the four polyphase components, each `rows` x
 * `pitch` (ceil of the padded plane's halves), `comp` floats apart in the
 * order (even row, even col), (even, odd), (odd, even), (odd, odd). */
static void pad_geometry(const fx_conv2d_params *p, int *rows, int *pitch, size_t *comp)
{
    int pw = p->w + p->pad_l + p->pad_r, ph = p->h + p->pad_t + p->pad_b;
    int s = p->stride_h;
    *rows = s == 2 ? (ph + 1) / 2 : ph;
    *pitch = s == 2 ? (pw + 1) / 2 : pw;
    *comp = (size_t)*rows * *pitch;
}

/* The padded plane (its components at stride 2), then the flat output
 * (oh rows of `pitch`, see flat_taps*); for small planes the larger of
 * that and the channel-block scratch (fx_dw_block_fast). */
size_t fx_dw_scratch_floats(const fx_conv2d_params *p)
{
    int rows, pitch, oh = 0, ow = 0;
    size_t comp;
    pad_geometry(p, &rows, &pitch, &comp);
    fx_conv2d_out_hw(p, &oh, &ow, NULL);
    size_t plane = comp * (p->stride_h == 2 ? 4 : 1) + (size_t)(oh > 0 ? oh : 0) * pitch;
    if (!fx_dw_block_applies(p))
        return plane;
    size_t ph = (size_t)(p->h + p->pad_t + p->pad_b), pw = (size_t)(p->w + p->pad_l + p->pad_r);
    size_t block = DW_LANES * (ph * pw + (size_t)(p->kh * p->kw) + (size_t)oh * ow);
    return block > plane ? block : plane;
}

/* Copy input plane xc into the interior of the padded plane pp (at stride
 * 2: padded cell (r, c) to component (r & 1, c & 1), row r/2, column c/2).
 * The pad cells are never written: the caller zeroes pp once per thread. */
FX_OPS_INLINE void fill_padded(const fx_conv2d_params *p, const float *xc, float *pp)
{
    int rows, pitch, pl = p->pad_l, w = p->w;
    size_t comp;
    pad_geometry(p, &rows, &pitch, &comp);
    for (int iy = 0; iy < p->h; iy++) {
        const float *src = xc + (size_t)iy * w;
        int r = iy + p->pad_t;
        if (p->stride_w == 1) {
            memcpy(pp + (size_t)r * pitch + pl, src, sizeof(float) * (size_t)w);
            continue;
        }
        /* padded column c = ix + pl goes to the even-column component at
         * c/2 (c even) or the odd-column one */
        float *dst = pp + (size_t)(r & 1) * 2 * comp + (size_t)(r / 2) * pitch;
        float *e = dst + (pl + 1) / 2, *o = dst + comp + pl / 2;
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

/* yr[ox] (= bias when first, else +=) w0*t0[ox] + ... over one kernel row
 * of 5 taps.  restrict: the taps point into the scratch plane, yr into
 * the output. */
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

/* Where tap (ky, kx) of output (0, 0) lies in the scratch: at stride 1
 * padded row ky, column kx; at stride 2 component (ky & 1, kx & 1) at row
 * ky/2, column kx/2 (see pad_geometry).  Output (oy, ox) reads it at
 * + oy * pitch + ox in both layouts. */
static inline const float *tap_origin(const float *pp, int s, int pitch, size_t comp, int ky,
                                      int kx)
{
    if (s == 1)
        return pp + (size_t)ky * pitch + kx;
    return pp + (size_t)((ky & 1) * 2 + (kx & 1)) * comp + (size_t)(ky / 2) * pitch + kx / 2;
}

/* The whole plane as one loop: with the output laid out at the scratch
 * pitch, tap (ky, kx) of output i = oy * pitch + ox is t[ky * 3 + kx][i]
 * for every i (tap_origin), so one long vector loop with the 9 weights in
 * registers does the plane, one store per output, and no scalar remainder
 * per row (a 7-wide row of EfficientNet's 7x7 planes was all remainder;
 * at stride 2 the rows of the 7 and 14 wide outputs were too).  The
 * pitch - ow columns past each row's end are computed and dropped (at
 * stride 2 the pitch is about ow + k/2).  n = (oh - 1) * pitch + ow. */
FX_OPS_INLINE void flat_taps3(float *restrict o, const float *const t[9], const float *wc,
                              float bias, int n)
{
    const float *restrict a0 = t[0], *restrict a1 = t[1], *restrict a2 = t[2];
    const float *restrict b0 = t[3], *restrict b1 = t[4], *restrict b2 = t[5];
    const float *restrict c0 = t[6], *restrict c1 = t[7], *restrict c2 = t[8];
    float w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4], w5 = wc[5], w6 = wc[6],
          w7 = wc[7], w8 = wc[8];
#pragma omp simd
    for (int i = 0; i < n; i++)
        o[i] = bias + (w0 * a0[i] + w1 * a1[i] + w2 * a2[i]) +
               (w3 * b0[i] + w4 * b1[i] + w5 * b2[i]) + (w6 * c0[i] + w7 * c1[i] + w8 * c2[i]);
}

/* The 9 tap origins of 3x3 output row (or flat plane) oy. */
static void taps3_origins(const float *t[9], const float *pp, int s, int pitch, size_t comp, int oy)
{
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
            t[ky * 3 + kx] = tap_origin(pp, s, pitch, comp, ky, kx) + (size_t)oy * pitch;
}

/* 5x5: one pass per kernel row over the flat output (25 weights and the
 * taps in one loop body spilled registers and ran slower than the row
 * passes); o stays in L1 between passes.  The row's taps as offsets from
 * one or two origins (e: even kx, d: odd kx; at stride 1 d = e + 1 and
 * the steps are 1): five separate pointers ran 1.4x slower on 7x7 planes
 * (bench/conv --dw). */
FX_OPS_INLINE void flat_taps5(float *restrict o, const float *pp, int s, int pitch, size_t comp,
                              const float *wc, float bias, int n)
{
    for (int ky = 0; ky < 5; ky++) {
        const float *restrict e = tap_origin(pp, s, pitch, comp, ky, 0);
        const float *restrict d = tap_origin(pp, s, pitch, comp, ky, 1);
        const float *wr = wc + 5 * ky;
        float w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3], w4 = wr[4];
        if (s == 1) {
#pragma omp simd
            for (int i = 0; i < n; i++)
                o[i] = (ky ? o[i] : bias) +
                       (w0 * e[i] + w1 * e[i + 1] + w2 * e[i + 2] + w3 * e[i + 3] + w4 * e[i + 4]);
        } else {
#pragma omp simd
            for (int i = 0; i < n; i++)
                o[i] = (ky ? o[i] : bias) +
                       (w0 * e[i] + w1 * d[i] + w2 * e[i + 1] + w3 * d[i + 1] + w4 * e[i + 2]);
        }
    }
}

/* One output plane of channel oc: yp = act((conv + bias) + res), pp being
 * this thread's zeroed scratch (fx_dw_scratch_floats).  The epilogue runs
 * on bands of rows while they are in L1, where the plane's mean is also
 * summed (*gap, when not NULL).  Streaming stores for yp (staging each band
 * in the scratch, as fx_conv_gemm's nt does) were tried and were slower:
 * 6.6 vs 6.0 ms for 32 x 32 planes of 112x112, 8.8 vs 7.2 for 32 x 144 of
 * 56x56 (2 threads, three alternating runs each). */
FX_SIMD_CLONES void fx_dw_plane_fast(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                     const float *xc, const float *wc, float bias, float *yp,
                                     const float *res, int oh, int ow, float *pp, float *gap)
{
    int rows, pitch, k = p->kh, s = p->stride_h;
    size_t comp;
    pad_geometry(p, &rows, &pitch, &comp);
    fill_padded(p, xc, pp);
    int band = EPI_BAND_FLOATS / ow < 1 ? 1 : EPI_BAND_FLOATS / ow;
    int flat = s == 2 || ow < FLAT_MAX_OW;
    float *o = pp + comp * (s == 2 ? 4 : 1); /* the flat loop's output, rows of `pitch` */
    const float *t[9];
    double sum = 0.0;
    if (flat) {
        int n = (oh - 1) * pitch + ow;
        if (k == 3) {
            taps3_origins(t, pp, s, pitch, comp, 0);
            flat_taps3(o, t, wc, bias, n);
        } else {
            flat_taps5(o, pp, s, pitch, comp, wc, bias, n);
        }
    }
    for (int r0 = 0; r0 < oh; r0 += band) {
        int r1 = r0 + band < oh ? r0 + band : oh;
        size_t off = (size_t)r0 * ow, len = (size_t)(r1 - r0) * ow;
        float *dst = yp + off; /* the band's rows */
        for (int oy = r0; oy < r1; oy++) {
            float *yr = dst + (size_t)(oy - r0) * ow;
            if (flat) {
                memcpy(yr, o + (size_t)oy * pitch, sizeof(float) * (size_t)ow);
            } else if (k == 3) { /* stride 1, wide rows: all 9 taps in one pass */
                taps3_origins(t, pp, 1, pitch, comp, oy);
                flat_taps3(yr, t, wc, bias, ow);
            } else {
                for (int ky = 0; ky < 5; ky++) {
                    const float *row = pp + (size_t)(oy + ky) * pitch, *t5[5];
                    for (int kx = 0; kx < 5; kx++)
                        t5[kx] = row + kx;
                    taps5(yr, t5, wc + ky * 5, bias, ky == 0, ow);
                }
            }
        }
        fx_conv_epilogue_apply(ep, NULL, 0, 1, (int)len, dst, res ? res + off : NULL, len);
        if (gap) {
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (size_t i = 0; i < len; i++)
                acc += dst[i];
            sum += acc;
        }
    }
    if (gap)
        *gap = (float)(sum / ((double)oh * ow));
}

/* DW_VEC floats, unaligned: one AVX2 register in the x86-64-v3 clone,
 * two SSE ones in the default clone (GCC vector extension; clang too). */
#define DW_VEC 8
typedef float dw_vec __attribute__((vector_size(DW_VEC * sizeof(float)), aligned(4)));

/* Channels c0 .. c0 + nc - 1 (nc <= DW_VEC) of one image, for small
 * planes: the per-plane kernel spent most of a 7x7 plane on per-row copies
 * and remainders.  Here the block's padded input is interleaved, pixel
 * after pixel of DW_VEC channels (the layout onnxruntime's NCHWc
 * kernels keep throughout), so every tap of every output is one vector
 * FMA over the channels, with no remainder whatever the plane's width and
 * stride.  The cost is two transposes (in, out) of data that stays in L1.
 * x, y, res: the image's (C, H, W) / (C, OH, OW) tensors; w: (C, k, k);
 * b: (C) or NULL.  sc: fx_dw_scratch_floats(p) floats, zero on the
 * thread's first use (pad cells are never written).  Lanes past nc
 * compute garbage from the previous block and are not stored. */
FX_SIMD_CLONES static void dw_block8(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                     const float *x, const float *w, const float *b, float *y,
                                     const float *res, int c0, int nc, int oh, int ow, float *sc)
{
    int k = p->kh, s = p->stride_h, pw = p->w + p->pad_l + p->pad_r;
    int ph = p->h + p->pad_t + p->pad_b;
    size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)oh * ow;
    float *pp = sc, *wt = pp + (size_t)DW_VEC * ph * pw, *o = wt + DW_VEC * k * k;
    float bias[DW_VEC] = {0};
    for (int j = 0; j < nc; j++) {
        const float *xc = x + (size_t)(c0 + j) * in_plane, *wc = w + (size_t)(c0 + j) * k * k;
        for (int t = 0; t < k * k; t++)
            wt[t * DW_VEC + j] = wc[t];
        bias[j] = b ? b[c0 + j] : 0.0f;
        for (int iy = 0; iy < p->h; iy++) {
            float *dst = pp + ((size_t)(iy + p->pad_t) * pw + p->pad_l) * DW_VEC + j;
            for (int ix = 0; ix < p->w; ix++)
                dst[(size_t)ix * DW_VEC] = xc[(size_t)iy * p->w + ix];
        }
    }
    dw_vec b0;
    memcpy(&b0, bias, sizeof b0);
    size_t st = (size_t)s * DW_VEC; /* from one output's taps to the next's */
    for (int oy = 0; oy < oh; oy++) {
        const float *row = pp + (size_t)oy * s * pw * DW_VEC;
        float *orow = o + (size_t)oy * ow * DW_VEC;
        int ox = 0;
        /* four outputs at a time: four independent FMA chains (one chain
         * ran at the FMA latency) sharing each weight load */
        for (; ox + 4 <= ow; ox += 4) {
            const float *q = row + (size_t)ox * st;
            dw_vec a0 = b0, a1 = b0, a2 = b0, a3 = b0;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    dw_vec wv = *(const dw_vec *)(wt + (ky * k + kx) * DW_VEC);
                    const float *t = q + ((size_t)ky * pw + kx) * DW_VEC;
                    a0 += wv * *(const dw_vec *)t;
                    a1 += wv * *(const dw_vec *)(t + st);
                    a2 += wv * *(const dw_vec *)(t + 2 * st);
                    a3 += wv * *(const dw_vec *)(t + 3 * st);
                }
            float *d = orow + (size_t)ox * DW_VEC;
            *(dw_vec *)d = a0, *(dw_vec *)(d + DW_VEC) = a1;
            *(dw_vec *)(d + 2 * DW_VEC) = a2, *(dw_vec *)(d + 3 * DW_VEC) = a3;
        }
        for (; ox + 2 <= ow; ox += 2) { /* the row's remainder: two chains, then one */
            const float *q = row + (size_t)ox * st;
            dw_vec a0 = b0, a1 = b0;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    dw_vec wv = *(const dw_vec *)(wt + (ky * k + kx) * DW_VEC);
                    const float *t = q + ((size_t)ky * pw + kx) * DW_VEC;
                    a0 += wv * *(const dw_vec *)t;
                    a1 += wv * *(const dw_vec *)(t + st);
                }
            float *d = orow + (size_t)ox * DW_VEC;
            *(dw_vec *)d = a0, *(dw_vec *)(d + DW_VEC) = a1;
        }
        for (; ox < ow; ox++) {
            const float *q = row + (size_t)ox * st;
            dw_vec a0 = b0;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    a0 += *(const dw_vec *)(wt + (ky * k + kx) * DW_VEC) *
                          *(const dw_vec *)(q + ((size_t)ky * pw + kx) * DW_VEC);
            *(dw_vec *)(orow + (size_t)ox * DW_VEC) = a0;
        }
    }
    for (int j = 0; j < nc; j++) {
        float *yc = y + (size_t)(c0 + j) * out_plane;
        for (size_t i = 0; i < out_plane; i++)
            yc[i] = o[i * DW_VEC + j];
    }
    /* the block's planes are contiguous in NCHW: one epilogue call */
    size_t off = (size_t)c0 * out_plane, len = (size_t)nc * out_plane;
    fx_conv_epilogue_apply(ep, NULL, 0, 1, (int)len, y + off, res ? res + off : NULL, len);
}

#ifdef FX_HAVE_AVX512_KERNELS
/* NO outputs of one row of the 16-channel block from their taps (q: the
 * first output's top-left tap, st: floats from one output's taps to the
 * next's), then the activation unless a residual must come first. */
FX_AVX512_INLINE void dw16_outputs(int NO, int k, int pw, const float *q, size_t st,
                                   const float *wt, __m512 bv, float *d, int act_now,
                                   const fx_conv_epilogue *ep)
{
    __m512 a[8];
#pragma GCC unroll 8
    for (int i = 0; i < NO; i++)
        a[i] = bv;
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
            __m512 wv = _mm512_loadu_ps(wt + (ky * k + kx) * 16);
            const float *t = q + ((size_t)ky * pw + kx) * 16;
#pragma GCC unroll 8
            for (int i = 0; i < NO; i++)
                a[i] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(t + i * st), a[i]);
        }
#pragma GCC unroll 8
    for (int i = 0; i < NO; i++)
        _mm512_storeu_ps(d + 16 * i, act_now ? fx_avx512_act(a[i], ep->act, ep->lo, ep->hi) : a[i]);
}

/* r[q] lane j = src[j * stride + q] for j < nc, q < cnt (zero elsewhere):
 * nc rows of cnt floats, transposed in registers. */
FX_AVX512_INLINE void dw16_rows_t(__m512 r[16], const float *src, size_t stride, int nc, int cnt)
{
    __mmask16 m = (__mmask16)((1u << cnt) - 1u);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        r[j] = j < nc ? _mm512_maskz_loadu_ps(m, src + (size_t)j * stride) : _mm512_setzero_ps();
    fx_avx512_transpose16(r);
}

/* dw_block8's scheme on 16 channels at once (one zmm per pixel), with the
 * in and out transposes done 16 x 16 in registers (fx_avx512_transpose16)
 * instead of one scalar move per value: those moves were most of
 * dw_block8's time on 7x7 planes (25 FMAs per value against two moves).
 * Same arguments; nc <= 16. */
FX_AVX512_TARGET static void dw_block16(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                        const float *x, const float *w, const float *b, float *y,
                                        const float *res, int c0, int nc, int oh, int ow, float *sc,
                                        const float *filled)
{
    int k = p->kh, kk = k * k, s = p->stride_h, pw = p->w + p->pad_l + p->pad_r;
    int ph = p->h + p->pad_t + p->pad_b;
    size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)oh * ow;
    float *pp = sc, *wt = pp + (size_t)16 * ph * pw, *o = wt + 16 * kk;
    __mmask16 cm = (__mmask16)((1u << nc) - 1u);
    __m512 r[16];
    /* the weights (nc rows of kk, contiguous) to tap-major, channel lanes */
    for (int t0 = 0; t0 < kk; t0 += 16) {
        int cnt = kk - t0 < 16 ? kk - t0 : 16;
        dw16_rows_t(r, w + (size_t)c0 * kk + t0, (size_t)kk, nc, cnt);
#pragma GCC unroll 16
        for (int q = 0; q < 16; q++)
            if (q < cnt)
                _mm512_storeu_ps(wt + (size_t)(t0 + q) * 16, r[q]);
    }
    /* the input planes, 16 pixels at a time, into the padded interleaved
     * plane, unless it is given filled (fx_dw_block16_filled) */
    int iy = 0, ix = 0;
    for (size_t i0 = 0; !filled && i0 < in_plane; i0 += 16) {
        int cnt = in_plane - i0 < 16 ? (int)(in_plane - i0) : 16;
        dw16_rows_t(r, x + (size_t)c0 * in_plane + i0, in_plane, nc, cnt);
#pragma GCC unroll 16
        for (int q = 0; q < 16; q++)
            if (q < cnt) {
                _mm512_storeu_ps(pp + ((size_t)(iy + p->pad_t) * pw + ix + p->pad_l) * 16, r[q]);
                if (++ix == p->w)
                    ix = 0, iy++;
            }
    }
    const float *pin = filled ? filled : pp;
    __m512 bv = b ? _mm512_maskz_loadu_ps(cm, b + c0) : _mm512_setzero_ps();
    int act_now = !res && ep && ep->act != FX_ACT_NONE;
    size_t st = (size_t)s * 16;
    for (int oy = 0; oy < oh; oy++) {
        const float *row = pin + (size_t)oy * s * pw * 16;
        float *orow = o + (size_t)oy * ow * 16;
        int ox = 0;
        for (; ox + 8 <= ow; ox += 8)
            dw16_outputs(8, k, pw, row + ox * st, st, wt, bv, orow + ox * 16, act_now, ep);
        if (ox + 4 <= ow) {
            dw16_outputs(4, k, pw, row + ox * st, st, wt, bv, orow + ox * 16, act_now, ep);
            ox += 4;
        }
        if (ox + 2 <= ow) {
            dw16_outputs(2, k, pw, row + ox * st, st, wt, bv, orow + ox * 16, act_now, ep);
            ox += 2;
        }
        if (ox < ow)
            dw16_outputs(1, k, pw, row + ox * st, st, wt, bv, orow + ox * 16, act_now, ep);
    }
    /* back to planes, 16 pixels at a time */
    for (size_t p0 = 0; p0 < out_plane; p0 += 16) {
        int cnt = out_plane - p0 < 16 ? (int)(out_plane - p0) : 16;
        __mmask16 pm = (__mmask16)((1u << cnt) - 1u);
#pragma GCC unroll 16
        for (int q = 0; q < 16; q++)
            r[q] = q < cnt ? _mm512_loadu_ps(o + (p0 + q) * 16) : _mm512_setzero_ps();
        fx_avx512_transpose16(r);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            if (j < nc)
                _mm512_mask_storeu_ps(y + (size_t)(c0 + j) * out_plane + p0, pm, r[j]);
    }
    if (!act_now && (res || (ep && ep->act != FX_ACT_NONE))) {
        size_t off = (size_t)c0 * out_plane, len = (size_t)nc * out_plane;
        fx_conv_epilogue_apply(ep, NULL, 0, 1, (int)len, y + off, res ? res + off : NULL, len);
    }
}
#endif

void fx_dw_block_fast_path(const fx_conv2d_params *p, const fx_conv_epilogue *ep, const float *x,
                           const float *w, const float *b, float *y, const float *res, int c0,
                           int nc, int oh, int ow, float *sc, int force)
{
#ifdef FX_HAVE_AVX512_KERNELS
    if (force != 0 && fx_cpu_avx512()) {
        dw_block16(p, ep, x, w, b, y, res, c0, nc, oh, ow, sc, NULL);
        return;
    }
#else
    (void)force;
#endif
    for (int j = 0; j < nc; j += DW_VEC)
        dw_block8(p, ep, x, w, b, y, res, c0 + j, nc - j < DW_VEC ? nc - j : DW_VEC, oh, ow, sc);
}

void fx_dw_block_fast(const fx_conv2d_params *p, const fx_conv_epilogue *ep, const float *x,
                      const float *w, const float *b, float *y, const float *res, int c0, int nc,
                      int oh, int ow, float *sc)
{
    fx_dw_block_fast_path(p, ep, x, w, b, y, res, c0, nc, oh, ow, sc, -1);
}

void fx_dw_block16_filled(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                          const float *filled, const float *w, const float *b, float *y, int c0,
                          int nc, int oh, int ow, float *sc)
{
#ifdef FX_HAVE_AVX512_KERNELS
    dw_block16(p, ep, NULL, w, b, y, NULL, c0, nc, oh, ow, sc, filled);
#else
    (void)p, (void)ep, (void)filled, (void)w, (void)b, (void)y, (void)c0, (void)nc, (void)oh;
    (void)ow, (void)sc;
#endif
}
