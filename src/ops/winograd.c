/* Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions; conv_fast.c decides
 * when it is used (fx_conv_fast_path).
 *
 * A 2x2 output tile is A^T [(G g G^T) .* (B^T d B)] A over the 4x4 input
 * tile d around it (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2015): 16 multiplies per tile and channel pair instead of 36.
 * Summed over channels the 16 products are 16 independent sgemms:
 *   U_k (C_out x C_in)  the weights, transformed once per call (ws head),
 *   V_k (C_in x tiles)  the input tiles of one band, transformed,
 *   M_k (C_out x tiles) = U_k V_k,
 * and the output transform folds the 16 M_k back into 2x2 tiles.
 *
 * Threads as in conv_im2col: one OpenMP team; the weight transform is split
 * over output channels, then the tasks are bands of tile rows counted over
 * the whole batch (a band may span images, so that 7x7 planes still give
 * sgemm a useful N), each with its own V / M / strip slice of ws: input
 * transform, 16 single-threaded sgemms, output transform and epilogue per
 * output channel while that channel's rows are in cache.  One barrier, after
 * the weight transform (bench/conv: sharing each band between the threads,
 * with a barrier per phase, was 2x slower on 64x56x56 with other load on the
 * machine).  Tiles past the padded input (odd sizes) read zeros and their
 * extra outputs are dropped.
 *
 * Error: the transforms only add, subtract and halve; against the double
 * reference the max error is a few 1e-7 of max |y| (tests/test_ops.c). */
#include <cblas.h>
#include <string.h>

#include "ops_internal.h"

/* Tiles per band (sgemm's N) and the cap on one band's V + M (8 MiB).
 * bench/conv --paths at batch 32: 128 to 512 tiles within 7% of each other,
 * 64 up to 15% slower (L2 does not decide it: V + M of 128 tiles of 64
 * channels are 1 MiB already); the cap keeps 512-channel layers at 128
 * tiles.  Beware when timing sgemm alone: Debian's OpenBLAS 0.3.21 runs
 * N <= ~320 at a third of its speed until some larger sgemm has run in
 * that thread (a plan's stem conv does that; bench/conv's im2col too). */
#ifndef WINO_TILES
#define WINO_TILES 128
#endif
#ifndef WINO_MAX_FLOATS
#define WINO_MAX_FLOATS (1 << 21)
#endif

int fx_wino_applies(const fx_conv2d_params *p)
{
    return p->kh == 3 && p->kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dil_h == 1 &&
           p->dil_w == 1 && p->groups == 1;
}

/* Tile rows per band before the split for threads (>= 1). */
static int64_t band_rows_max(const fx_conv2d_params *p, int th, int tw)
{
    int64_t rows = (WINO_TILES + tw - 1) / tw, all = (int64_t)p->n * th;
    int64_t cap = WINO_MAX_FLOATS / ((int64_t)16 * (p->c_in + p->c_out) * tw);
    rows = rows < cap ? rows : cap;
    return rows < 1 ? 1 : rows > all ? all : rows;
}

/* Floats between consecutive V_k (M_k) slabs beyond their size: with
 * power-of-two slab sizes (512 channels x 128 tiles) the 16 streams of
 * the output transform would map to the same L1 sets. */
#define SLAB_PAD 16

/* Floats of one thread's strips: 4 input rows of 2*TW + 2 (padding
 * included), 2 output rows of 2*TW and a zero row of W (the padding rows). */
static size_t strip_floats(const fx_conv2d_params *p, int tw)
{
    return 4 * (2 * (size_t)tw + 2) + 4 * (size_t)tw + (size_t)p->w;
}

/* Floats of one thread's slice: V, M and the strips. */
static size_t slot_floats(const fx_conv2d_params *p, int th, int tw)
{
    size_t nt = (size_t)band_rows_max(p, th, tw) * tw;
    return 16 * (((size_t)p->c_in + p->c_out) * nt + 2 * SLAB_PAD) + strip_floats(p, tw);
}

int64_t fx_wino_ws_floats(const fx_conv2d_params *p, int oh, int ow, int threads)
{
    int th = (oh + 1) / 2, tw = (ow + 1) / 2;
    return (int64_t)16 * p->c_out * p->c_in +
           (int64_t)slot_floats(p, th, tw) * (threads > 1 ? threads : 1);
}

/* U_k[o][i] = (G g G^T)_k for the 3x3 filters g of output channel o,
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] (its 0, 1 and 1/2 make the
 * products exact).  Row by row of G g so that only 4 of the 16 U_k are
 * written at a time: 16 streams a power of two apart thrash L1 (5x slower). */
FX_OPS_INLINE void weight_transform(const fx_conv2d_params *p, const float *w, float *u, int o)
{
    static const float G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
    size_t kstride = (size_t)p->c_out * p->c_in;
    const float *wo = w + (size_t)o * p->c_in * 9;
    for (int r = 0; r < 4; r++) {
        float *u0 = u + (size_t)(4 * r) * kstride + (size_t)o * p->c_in;
        float *u1 = u0 + kstride, *u2 = u1 + kstride, *u3 = u2 + kstride;
        float g0 = G[r][0], g1 = G[r][1], g2 = G[r][2];
#pragma omp simd
        for (int i = 0; i < p->c_in; i++) {
            const float *f = wo + (size_t)i * 9;
            float a = g0 * f[0] + g1 * f[3] + g2 * f[6]; /* row r of G g */
            float b = g0 * f[1] + g1 * f[4] + g2 * f[7];
            float c = g0 * f[2] + g1 * f[5] + g2 * f[8];
            u0[i] = a; /* (G g) G^T */
            u1[i] = 0.5f * (a + b + c);
            u2[i] = 0.5f * (a - b + c);
            u3[i] = c;
        }
    }
}

/* V[k][c][t] of input channel c for tile rows [g0, g1) of the batch (row
 * g: image g / th, tile row g % th), t counting the band's tiles row by row.
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].  The column pass reads the
 * 4 input rows (the zero row for those in the padding) into the strip,
 * whose padding columns the caller has zeroed; the row pass reads it at
 * stride 2. */
FX_OPS_INLINE void input_transform(const fx_conv2d_params *p, const float *x, int th, int tw,
                                   int64_t g0, int64_t g1, size_t nt, size_t kstride, int c,
                                   float *v, float *strip, const float *zero)
{
    int sw = 2 * tw + 2, w = p->w;
    size_t plane = (size_t)p->h * w;
    float *s0 = strip + p->pad_l, *s1 = s0 + sw, *s2 = s1 + sw, *s3 = s2 + sw;
    for (int64_t g = g0; g < g1; g++) {
        int n = (int)(g / th), iy0 = 2 * (int)(g % th) - p->pad_t;
        const float *xc = x + ((size_t)n * p->c_in + c) * plane, *d[4];
        for (int r = 0; r < 4; r++)
            d[r] = iy0 + r >= 0 && iy0 + r < p->h ? xc + (size_t)(iy0 + r) * w : zero;
        const float *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3];
#pragma omp simd
        for (int j = 0; j < w; j++) { /* B^T d */
            s0[j] = d0[j] - d2[j];
            s1[j] = d1[j] + d2[j];
            s2[j] = d2[j] - d1[j];
            s3[j] = d1[j] - d3[j];
        }
        size_t t0 = (size_t)(g - g0) * tw;
        for (int r = 0; r < 4; r++) { /* (B^T d) B */
            const float *s = strip + (size_t)r * sw;
            float *v0 = v + (size_t)(4 * r) * kstride + (size_t)c * nt + t0;
            float *v1 = v0 + kstride, *v2 = v1 + kstride, *v3 = v2 + kstride;
#pragma omp simd
            for (int t = 0; t < tw; t++) {
                float a = s[2 * t], b = s[2 * t + 1], e = s[2 * t + 2], f = s[2 * t + 3];
                v0[t] = a - e;
                v1[t] = b + e;
                v2[t] = e - b;
                v3[t] = b - f;
            }
        }
    }
}

/* Output channel o of tile rows [g0, g1) from M[k][o][t], then its
 * epilogue; A^T = [1 1 1 0; 0 1 -1 -1].  Each tile row goes through a 2-row
 * strip (2 * 2*TW floats) so that odd OH / OW just copy less. */
FX_OPS_INLINE void output_transform(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                    const float *b, const float *m, int th, int tw, int oh, int ow,
                                    int64_t g0, int64_t g1, size_t nt, size_t kstride, int o,
                                    float *y, float *strip)
{
    size_t ohw = (size_t)oh * ow;
    const float *mo = m + (size_t)o * nt;
    float *r0 = strip, *r1 = strip + 2 * tw;
    for (int64_t g = g0; g < g1; g++) {
        int n = (int)(g / th), oy = 2 * (int)(g % th);
        const float *mt = mo + (size_t)(g - g0) * tw;
        const float *q0 = mt, *q1 = q0 + 4 * kstride, *q2 = q1 + 4 * kstride;
        const float *q3 = q2 + 4 * kstride;
#pragma omp simd
        for (int t = 0; t < tw; t++) { /* m A per row i of m: (a_i, b_i) */
            float a0 = q0[t] + q0[kstride + t] + q0[2 * kstride + t];
            float b0 = q0[kstride + t] - q0[2 * kstride + t] - q0[3 * kstride + t];
            float a1 = q1[t] + q1[kstride + t] + q1[2 * kstride + t];
            float b1 = q1[kstride + t] - q1[2 * kstride + t] - q1[3 * kstride + t];
            float a2 = q2[t] + q2[kstride + t] + q2[2 * kstride + t];
            float b2 = q2[kstride + t] - q2[2 * kstride + t] - q2[3 * kstride + t];
            float a3 = q3[t] + q3[kstride + t] + q3[2 * kstride + t];
            float b3 = q3[kstride + t] - q3[2 * kstride + t] - q3[3 * kstride + t];
            r0[2 * t] = a0 + a1 + a2; /* A^T (m A) */
            r0[2 * t + 1] = b0 + b1 + b2;
            r1[2 * t] = a1 - a2 - a3;
            r1[2 * t + 1] = b1 - b2 - b3;
        }
        float *yo = y + ((size_t)n * p->c_out + o) * ohw + (size_t)oy * ow;
        memcpy(yo, r0, sizeof(float) * (size_t)ow);
        if (oy + 1 < oh)
            memcpy(yo + ow, r1, sizeof(float) * (size_t)ow);
    }
    /* The epilogue per image: the band's rows of one image are one run of
     * the plane. */
    const float *res = ep ? ep->residual : NULL;
    for (int64_t g = g0; g < g1;) {
        int64_t n = g / th, ge = (n + 1) * th < g1 ? (n + 1) * th : g1;
        int y0 = 2 * (int)(g % th), y1 = 2 * (int)((ge - 1) % th) + 2;
        y1 = y1 < oh ? y1 : oh;
        size_t off = ((size_t)n * p->c_out + o) * ohw + (size_t)y0 * ow;
        fx_conv_epilogue_apply(ep, b, o, 1, (y1 - y0) * ow, y + off, res ? res + off : NULL, ohw);
        g = ge;
    }
}

FX_SIMD_CLONES void fx_conv_winograd(const fx_conv2d_params *p, const fx_conv_epilogue *ep,
                                     const float *x, const float *w, const float *b, float *y,
                                     int oh, int ow, float *ws, int team)
{
    int th = (oh + 1) / 2, tw = (ow + 1) / 2;
    int64_t rows = (int64_t)p->n * th, band = band_rows_max(p, th, tw);
    /* Bands of equal size, their count a multiple of the team. */
    int64_t nb = (rows + band - 1) / band;
    nb = (nb + team - 1) / team * team;
    band = (rows + nb - 1) / nb;
    nb = (rows + band - 1) / band;
    size_t slot = slot_floats(p, th, tw);
    float *u = ws, *slots = ws + (size_t)16 * p->c_out * p->c_in;
#pragma omp parallel num_threads(team)
    {
#pragma omp for schedule(static)
        for (int o = 0; o < p->c_out; o++)
            weight_transform(p, w, u, o);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < nb; t++) {
            int64_t g0 = t * band, g1 = g0 + band < rows ? g0 + band : rows;
            size_t nt = (size_t)(g1 - g0) * tw;
            size_t vk = (size_t)p->c_in * nt + SLAB_PAD, mk = (size_t)p->c_out * nt + SLAB_PAD;
            float *v = slots + slot * (size_t)fx_omp_thread_num();
            float *m = v + 16 * vk, *strip = m + 16 * mk, *ostrip = strip + 4 * (2 * tw + 2);
            float *zero = ostrip + 4 * tw;
            memset(strip, 0, sizeof(float) * 4 * (2 * (size_t)tw + 2)); /* the padding columns */
            memset(zero, 0, sizeof(float) * (size_t)p->w);
            for (int c = 0; c < p->c_in; c++)
                input_transform(p, x, th, tw, g0, g1, nt, vk, c, v, strip, zero);
            for (int k = 0; k < 16; k++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->c_out, (int)nt, p->c_in,
                            1.0f, u + (size_t)k * p->c_out * p->c_in, p->c_in, v + k * vk, (int)nt,
                            0.0f, m + k * mk, (int)nt);
            for (int o = 0; o < p->c_out; o++)
                output_transform(p, ep, b, m, th, tw, oh, ow, g0, g1, nt, mk, o, y, ostrip);
        }
    }
}
