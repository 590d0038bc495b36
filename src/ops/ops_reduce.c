/* Reference Softmax, ReduceMean, global pools: see include/fxscreen/ops.h. */
#include <math.h>

#include "ops_internal.h"

fx_status fx_op_softmax_ref(const fx_softmax_params *p, const float *x, float *y)
{
    int ax = fx_ops_axis(p->axis, p->x.rank);
    if (fx_shape_numel(&p->x) < 0 || ax < 0)
        return FX_ERR_USAGE;
    /* (outer, len, inner): the softmax runs along len with stride inner. */
    int64_t outer = fx_ops_prod(&p->x, 0, ax), len = p->x.d[ax];
    int64_t inner = fx_ops_prod(&p->x, ax + 1, p->x.rank);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const float *xs = x + o * len * inner + i;
            float *ys = y + o * len * inner + i;
            float m = -INFINITY;
            for (int64_t j = 0; j < len; j++)
                m = xs[j * inner] > m ? xs[j * inner] : m;
            double sum = 0.0; /* subtracting the max keeps exp() finite */
            for (int64_t j = 0; j < len; j++)
                sum += exp((double)xs[j * inner] - m);
            for (int64_t j = 0; j < len; j++)
                ys[j * inner] = (float)(exp((double)xs[j * inner] - m) / sum);
        }
    }
    return FX_OK;
}

/* Marks the reduced axes of p in red[]; FX_ERR_USAGE on bad / repeated axes. */
static fx_status reduce_axes(const fx_reduce_params *p, int *red)
{
    if (fx_shape_numel(&p->x) < 0 || p->n_axes < 0 || p->n_axes > p->x.rank)
        return FX_ERR_USAGE;
    for (int i = 0; i < p->x.rank; i++)
        red[i] = p->n_axes == 0;
    for (int i = 0; i < p->n_axes; i++) {
        int a = fx_ops_axis(p->axes[i], p->x.rank);
        if (a < 0 || red[a])
            return FX_ERR_USAGE;
        red[a] = 1;
    }
    return FX_OK;
}

fx_status fx_reduce_out_shape(const fx_reduce_params *p, fx_shape *out, fx_error *err)
{
    int red[FX_OPS_MAX_RANK];
    if (reduce_axes(p, red) != FX_OK)
        return fx_error_set(err, FX_ERR_USAGE, "reduce: invalid shape or axes");
    fx_shape o = {.rank = 0};
    for (int i = 0; i < p->x.rank; i++) {
        if (!red[i])
            o.d[o.rank++] = p->x.d[i];
        else if (p->keepdims)
            o.d[o.rank++] = 1;
    }
    *out = o;
    return FX_OK;
}

/* Offset into x of multi-index idx over the axes listed in ax[0..n-1]. */
static int64_t sub_offset(const int64_t *idx, const int *ax, int n, const int64_t *xs)
{
    int64_t off = 0;
    for (int i = 0; i < n; i++)
        off += idx[i] * xs[ax[i]];
    return off;
}

fx_status fx_op_reduce_mean_ref(const fx_reduce_params *p, const float *x, float *y)
{
    int red[FX_OPS_MAX_RANK];
    if (reduce_axes(p, red) != FX_OK)
        return FX_ERR_USAGE;
    /* Split the axes into kept (walked by the output) and reduced (walked
     * for each output element, summed in double). */
    int kept[FX_OPS_MAX_RANK], gone[FX_OPS_MAX_RANK], nk = 0, ng = 0;
    int64_t kd[FX_OPS_MAX_RANK], gd[FX_OPS_MAX_RANK], xs[FX_OPS_MAX_RANK];
    int64_t n_out = 1, n_red = 1;
    for (int i = 0; i < p->x.rank; i++) {
        if (red[i]) {
            gone[ng] = i;
            gd[ng++] = p->x.d[i];
            n_red *= p->x.d[i];
        } else {
            kept[nk] = i;
            kd[nk++] = p->x.d[i];
            n_out *= p->x.d[i];
        }
    }
    fx_ops_strides(&p->x, xs);
    int64_t ki[FX_OPS_MAX_RANK] = {0};
    for (int64_t o = 0; o < n_out; o++) {
        int64_t base = sub_offset(ki, kept, nk, xs), gi[FX_OPS_MAX_RANK] = {0};
        double sum = 0.0;
        for (int64_t r = 0; r < n_red; r++) {
            sum += x[base + sub_offset(gi, gone, ng, xs)];
            fx_ops_next_index(gi, gd, ng);
        }
        y[o] = n_red > 0 ? (float)(sum / (double)n_red) : NAN; /* mean of nothing */
        fx_ops_next_index(ki, kd, nk);
    }
    return FX_OK;
}

static fx_status global_check(const fx_global_pool_params *p)
{
    return p->n < 0 || p->c < 0 || p->spatial < 1 ? FX_ERR_USAGE : FX_OK;
}

fx_status fx_op_global_avgpool_ref(const fx_global_pool_params *p, const float *x, float *y)
{
    if (global_check(p) != FX_OK)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        double s = 0.0;
        for (int64_t i = 0; i < p->spatial; i++)
            s += x[nc * p->spatial + i];
        y[nc] = (float)(s / p->spatial);
    }
    return FX_OK;
}

fx_status fx_op_global_maxpool_ref(const fx_global_pool_params *p, const float *x, float *y)
{
    if (global_check(p) != FX_OK)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        float m = x[nc * p->spatial];
        for (int64_t i = 1; i < p->spatial && !isnan(m); i++) /* NaN propagates, as in torch */
            m = x[nc * p->spatial + i] > m || isnan(x[nc * p->spatial + i]) ? x[nc * p->spatial + i]
                                                                            : m;
        y[nc] = m;
    }
    return FX_OK;
}
