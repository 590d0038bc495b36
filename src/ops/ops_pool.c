/* Reference MaxPool and AveragePool: see include/fxscreen/ops.h. */
#include <math.h>

#include "fxscreen/ops.h"
#include "ops/hd.h"

/* One axis of the pooled size with the ONNX/PyTorch ceil_mode rule. */
static int64_t pool_out_len(int in, int pb, int pe, int k, int s, int d, int ceil_mode)
{
    int64_t span = (int64_t)in + pb + pe - (int64_t)d * (k - 1) - 1;
    if (span < 0)
        return -1;
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* The last window must start inside the input or the begin padding. */
    if (ceil_mode && (out - 1) * s >= (int64_t)in + pb)
        out--;
    return out;
}

fx_status fx_pool2d_out_hw(const fx_pool2d_params *p, int *out_h, int *out_w, fx_error *err)
{
    if (p->n < 1 || p->c < 1 || p->h < 1 || p->w < 1 || p->kh < 1 || p->kw < 1)
        return fx_error_set(err, FX_ERR_USAGE, "pool: non-positive size");
    if (p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 || p->dil_w < 1)
        return fx_error_set(err, FX_ERR_USAGE, "pool: stride/dilation must be >= 1");
    if (p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return fx_error_set(err, FX_ERR_USAGE, "pool: negative pad");
    int64_t oh = pool_out_len(p->h, p->pad_t, p->pad_b, p->kh, p->stride_h, p->dil_h, p->ceil_mode);
    int64_t ow = pool_out_len(p->w, p->pad_l, p->pad_r, p->kw, p->stride_w, p->dil_w, p->ceil_mode);
    if (oh < 1 || ow < 1)
        return fx_error_set(err, FX_ERR_USAGE, "pool: kernel larger than padded input");
    *out_h = (int)oh;
    *out_w = (int)ow;
    return FX_OK;
}

static float max_window(const fx_pool2d_params *p, const float *xp, int oy, int ox)
{
    float m = -INFINITY;
    for (int ky = 0; ky < p->kh; ky++) {
        int iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;
        if (iy < 0 || iy >= p->h)
            continue;
        for (int kx = 0; kx < p->kw; kx++) {
            int ix = ox * p->stride_w - p->pad_l + kx * p->dil_w;
            /* NaN propagates, as in PyTorch. */
            if (ix >= 0 && ix < p->w && (xp[iy * p->w + ix] > m || isnan(xp[iy * p->w + ix])))
                m = xp[iy * p->w + ix];
        }
    }
    return m;
}

fx_status fx_op_maxpool2d_ref(const fx_pool2d_params *p, const float *x, float *y)
{
    int oh, ow;
    if (fx_pool2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < (int64_t)p->n * p->c; nc++) {
        const float *xp = x + nc * p->h * p->w;
        float *yp = y + nc * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                yp[oy * ow + ox] = max_window(p, xp, oy, ox);
    }
    return FX_OK;
}

static float avg_window(const fx_pool2d_params *p, const float *xp, int oy, int ox)
{
    int y0, y1, x0, x1;
    int ph = fx_hd_avg_axis(oy * p->stride_h - p->pad_t, p->kh, p->h, p->pad_b, &y0, &y1);
    int pw = fx_hd_avg_axis(ox * p->stride_w - p->pad_l, p->kw, p->w, p->pad_r, &x0, &x1);
    double sum = 0.0;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++)
            sum += xp[iy * p->w + ix];
    int count = p->count_include_pad ? ph * pw : (y1 - y0) * (x1 - x0);
    return count > 0 ? (float)(sum / count) : 0.0f;
}

fx_status fx_op_avgpool2d_ref(const fx_pool2d_params *p, const float *x, float *y)
{
    int oh, ow;
    if (p->dil_h != 1 || p->dil_w != 1 || fx_pool2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < (int64_t)p->n * p->c; nc++) {
        const float *xp = x + nc * p->h * p->w;
        float *yp = y + nc * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                yp[oy * ow + ox] = avg_window(p, xp, oy, ox);
    }
    return FX_OK;
}
