/* Fast CPU convolution: see fx_op_conv2d_fast in include/fxscreen/ops.h.
 *
 * Three paths, chosen from the params:
 *   pointwise  1x1, stride 1, no padding: the input planes already are the
 *              (C_in/g, H*W) matrix, so one sgemm per image and group;
 *   depthwise  C_in/groups == 1: a direct loop, OpenMP over N*C_out (sgemm
 *              with K = kh*kw would be all overhead);
 *   im2col     everything else: per image and group, a band of output rows
 *              is unfolded into a (C_in/g*kh*kw, rows*OW) matrix and
 *              multiplied by the (C_out/g, C_in/g*kh*kw) weights.
 *
 * Threads: one level of parallelism per path.  The sgemm paths rely on
 * OpenBLAS's own threads and run the image/group loop serially, so we never
 * nest OpenMP around a threaded BLAS (oversubscription) and never change
 * OpenBLAS's process-wide thread count (that would be global state shared
 * with every other caller).  A caller that already runs convs in parallel
 * should set OPENBLAS_NUM_THREADS=1 for the process.  The depthwise loop
 * has no BLAS and uses OpenMP.
 * Measured (bench/conv, 2 cores, Debian's pthread OpenBLAS): an OpenMP
 * im2col in front of the threaded sgemm made 3x3 layers 1.5-2x slower,
 * because idle OpenMP threads spin while OpenBLAS's threads work; so
 * im2col stays serial.  With the OpenMP build of OpenBLAS
 * (libopenblas0-openmp) both would share one pool and this could change. */
#include <cblas.h>
#include <stdlib.h>

#include "fxscreen/ops.h"

/* Target size of one im2col band (2 MiB): bounds the scratch of big
 * layers (a 7x7 stem at 224 would need 7 MiB unbanded).  bench/conv showed
 * no speed difference from 1 MiB to unbanded; 256 KiB was 30-50% slower
 * (sgemm's N gets too narrow). */
#ifndef COL_TARGET_FLOATS
#define COL_TARGET_FLOATS (1 << 19)
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

int64_t fx_conv2d_fast_ws_floats(const fx_conv2d_params *p)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return -1;
    if (is_pointwise(p) || is_depthwise(p))
        return 0;
    return (int64_t)(p->c_in / p->groups) * p->kh * p->kw * band_rows(p, oh, ow) * ow;
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
static void im2col_band(const fx_conv2d_params *p, const float *xg, int ow, int r0, int r1,
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

/* y planes (N, C_out, OH*OW) set to the bias (or 0), for sgemm with beta 1. */
static void fill_bias(const fx_conv2d_params *p, const float *b, size_t plane, float *y)
{
    for (size_t nc = 0; nc < (size_t)p->n * p->c_out; nc++) {
        float v = b ? b[nc % (size_t)p->c_out] : 0.0f;
        for (size_t i = 0; i < plane; i++)
            y[nc * plane + i] = v;
    }
}

static void conv_pointwise(const fx_conv2d_params *p, const float *x, const float *w, float *y)
{
    int cg = p->c_in / p->groups, og = p->c_out / p->groups, hw = p->h * p->w;
    for (int n = 0; n < p->n; n++)
        for (int g = 0; g < p->groups; g++) {
            const float *xg = x + ((size_t)n * p->c_in + (size_t)g * cg) * hw;
            float *yg = y + ((size_t)n * p->c_out + (size_t)g * og) * hw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, og, hw, cg, 1.0f,
                        w + (size_t)g * og * cg, cg, xg, hw, 1.0f, yg, hw);
        }
}

static void conv_im2col(const fx_conv2d_params *p, const float *x, const float *w, float *y, int oh,
                        int ow, float *col)
{
    int cg = p->c_in / p->groups, og = p->c_out / p->groups, k = cg * p->kh * p->kw;
    int band = band_rows(p, oh, ow), ohw = oh * ow;
    for (int n = 0; n < p->n; n++)
        for (int g = 0; g < p->groups; g++) {
            const float *xg = x + ((size_t)n * p->c_in + (size_t)g * cg) * p->h * p->w;
            float *yg = y + ((size_t)n * p->c_out + (size_t)g * og) * ohw;
            for (int r0 = 0; r0 < oh; r0 += band) {
                int r1 = r0 + band < oh ? r0 + band : oh, ncol = (r1 - r0) * ow;
                im2col_band(p, xg, ow, r0, r1, col);
                /* The band's outputs are columns [r0*ow, r1*ow) of each
                 * (OH*OW) plane: ldc = OH*OW writes them in place. */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, og, ncol, k, 1.0f,
                            w + (size_t)g * og * k, k, col, ncol, 1.0f, yg + (size_t)r0 * ow, ohw);
            }
        }
}

/* One depthwise output plane (already holding the bias): accumulate each
 * tap over the run of outputs whose input lies inside the image. */
static void dw_plane(const fx_conv2d_params *p, const float *xc, const float *wc, float *yp, int oh,
                     int ow)
{
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
                valid_range(off, p->stride_w, p->w, ow, &ox0, &ox1);
                for (int ox = ox0; ox < ox1; ox++)
                    yr[ox] += wv * xr[ox * p->stride_w + off];
            }
        }
    }
}

static void conv_depthwise(const fx_conv2d_params *p, const float *x, const float *w, float *y,
                           int oh, int ow)
{
    int og = p->c_out / p->groups; /* channel multiplier */
    int64_t planes = (int64_t)p->n * p->c_out;
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < planes; nc++) {
        int64_t n = nc / p->c_out, oc = nc % p->c_out;
        const float *xc = x + ((size_t)n * p->c_in + (size_t)(oc / og)) * p->h * p->w;
        dw_plane(p, xc, w + (size_t)oc * p->kh * p->kw, y + (size_t)nc * oh * ow, oh, ow);
    }
}

fx_status fx_op_conv2d_fast_ws(const fx_conv2d_params *p, const float *x, const float *w,
                               const float *b, float *y, float *ws)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    if (fx_conv2d_fast_ws_floats(p) > 0 && !ws)
        return FX_ERR_USAGE;
    fill_bias(p, b, (size_t)oh * ow, y);
    if (is_depthwise(p))
        conv_depthwise(p, x, w, y, oh, ow);
    else if (is_pointwise(p))
        conv_pointwise(p, x, w, y);
    else
        conv_im2col(p, x, w, y, oh, ow, ws);
    return FX_OK;
}

fx_status fx_op_conv2d_fast(const fx_conv2d_params *p, const float *x, const float *w,
                            const float *b, float *y)
{
    int64_t nws = fx_conv2d_fast_ws_floats(p);
    if (nws < 0)
        return FX_ERR_USAGE;
    float *ws = nws > 0 ? malloc(sizeof(float) * (size_t)nws) : NULL;
    if (nws > 0 && !ws)
        return FX_ERR_NOMEM;
    fx_status st = fx_op_conv2d_fast_ws(p, x, w, b, y, ws);
    free(ws);
    return st;
}
