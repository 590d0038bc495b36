/* Reference Conv and BatchNormalization: see include/fxscreen/ops.h. */
#include <math.h>

#include "fxscreen/ops.h"

fx_status fx_auto_pad_resolve(fx_auto_pad mode, int in, int kernel, int stride, int dilation,
                              int *begin, int *end, fx_error *err)
{
    if (in <= 0 || kernel <= 0 || stride <= 0 || dilation <= 0)
        return fx_error_set(err, FX_ERR_USAGE, "auto_pad: in %d kernel %d stride %d dilation %d",
                            in, kernel, stride, dilation);
    if (mode == FX_PAD_NOTSET)
        return FX_OK;
    if (mode == FX_PAD_VALID) {
        *begin = *end = 0;
        return FX_OK;
    }
    if (mode != FX_PAD_SAME_UPPER && mode != FX_PAD_SAME_LOWER)
        return fx_error_set(err, FX_ERR_USAGE, "auto_pad: unknown mode %d", (int)mode);
    int64_t out = ((int64_t)in + stride - 1) / stride;
    int64_t total = (out - 1) * stride + (int64_t)(kernel - 1) * dilation + 1 - in;
    if (total < 0)
        total = 0;
    int small = (int)(total / 2), big = (int)(total - total / 2);
    *begin = mode == FX_PAD_SAME_UPPER ? small : big;
    *end = mode == FX_PAD_SAME_UPPER ? big : small;
    return FX_OK;
}

/* One axis of the conv output size; -1 when the window does not fit. */
static int64_t conv_out_len(int in, int pb, int pe, int k, int s, int d)
{
    int64_t span = (int64_t)in + pb + pe - (int64_t)d * (k - 1) - 1;
    return span < 0 ? -1 : span / s + 1;
}

fx_status fx_conv2d_out_hw(const fx_conv2d_params *p, int *out_h, int *out_w, fx_error *err)
{
    if (p->n < 1 || p->c_in < 1 || p->h < 1 || p->w < 1 || p->c_out < 1 || p->kh < 1 || p->kw < 1)
        return fx_error_set(err, FX_ERR_USAGE, "conv: non-positive size");
    if (p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 || p->dil_w < 1)
        return fx_error_set(err, FX_ERR_USAGE, "conv: stride/dilation must be >= 1");
    if (p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return fx_error_set(err, FX_ERR_USAGE, "conv: negative pad");
    if (p->groups < 1 || p->c_in % p->groups || p->c_out % p->groups)
        return fx_error_set(err, FX_ERR_USAGE, "conv: groups %d do not divide C_in %d / C_out %d",
                            p->groups, p->c_in, p->c_out);
    int64_t oh = conv_out_len(p->h, p->pad_t, p->pad_b, p->kh, p->stride_h, p->dil_h);
    int64_t ow = conv_out_len(p->w, p->pad_l, p->pad_r, p->kw, p->stride_w, p->dil_w);
    if (oh < 1 || ow < 1)
        return fx_error_set(err, FX_ERR_USAGE, "conv: kernel larger than padded input");
    *out_h = (int)oh;
    *out_w = (int)ow;
    return FX_OK;
}

/* One output element: the dot product of a filter with its input window. */
static float conv_point(const fx_conv2d_params *p, const float *xg, const float *wf, int oy, int ox)
{
    int cg = p->c_in / p->groups;
    double acc = 0.0;
    for (int ic = 0; ic < cg; ic++) {
        const float *xc = xg + (size_t)ic * p->h * p->w;
        const float *wc = wf + (size_t)ic * p->kh * p->kw;
        for (int ky = 0; ky < p->kh; ky++) {
            int iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;
            if (iy < 0 || iy >= p->h)
                continue;
            for (int kx = 0; kx < p->kw; kx++) {
                int ix = ox * p->stride_w - p->pad_l + kx * p->dil_w;
                if (ix >= 0 && ix < p->w)
                    acc += (double)xc[(size_t)iy * p->w + ix] * wc[ky * p->kw + kx];
            }
        }
    }
    return (float)acc;
}

fx_status fx_op_conv2d_ref(const fx_conv2d_params *p, const float *x, const float *w,
                           const float *b, float *y)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int cg = p->c_in / p->groups, og = p->c_out / p->groups;
    size_t in_img = (size_t)p->c_in * p->h * p->w, out_plane = (size_t)oh * ow;
    size_t filt = (size_t)cg * p->kh * p->kw;
    for (int n = 0; n < p->n; n++) {
        for (int oc = 0; oc < p->c_out; oc++) {
            int g = oc / og;
            const float *xg = x + n * in_img + (size_t)g * cg * p->h * p->w;
            float *yp = y + ((size_t)n * p->c_out + oc) * out_plane;
            float bias = b ? b[oc] : 0.0f;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    yp[(size_t)oy * ow + ox] = conv_point(p, xg, w + oc * filt, oy, ox) + bias;
        }
    }
    return FX_OK;
}

fx_status fx_op_batchnorm_ref(const fx_batchnorm_params *p, const float *x, const float *scale,
                              const float *bias, const float *mean, const float *var, float *y)
{
    if (p->n < 0 || p->c < 1 || p->spatial < 0 || !(p->epsilon >= 0.0f))
        return FX_ERR_USAGE;
    for (int64_t c = 0; c < p->c; c++) {
        /* Fold into y = a*x + s once per channel, as inference engines do. */
        double a = scale[c] / sqrt((double)var[c] + p->epsilon);
        double s = bias[c] - a * mean[c];
        for (int64_t n = 0; n < p->n; n++) {
            size_t off = ((size_t)n * p->c + c) * p->spatial;
            for (int64_t i = 0; i < p->spatial; i++)
                y[off + i] = (float)(a * x[off + i] + s);
        }
    }
    return FX_OK;
}
