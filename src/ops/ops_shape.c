/* Reference Concat, Split, Transpose, Pad: see include/fxscreen/ops.h. */
#include <string.h>

#include "ops/hd.h"
#include "ops_internal.h"

fx_status fx_concat_out_shape(const fx_concat_params *p, fx_shape *out, fx_error *err)
{
    if (p->n_inputs < 1 || !p->shapes)
        return fx_error_set(err, FX_ERR_USAGE, "concat: no inputs");
    const fx_shape *s0 = &p->shapes[0];
    int ax = fx_ops_axis(p->axis, s0->rank);
    if (fx_shape_numel(s0) < 0 || ax < 0)
        return fx_error_set(err, FX_ERR_USAGE, "concat: bad shape or axis %d", p->axis);
    fx_shape o = *s0;
    for (int i = 1; i < p->n_inputs; i++) {
        const fx_shape *s = &p->shapes[i];
        if (s->rank != s0->rank || fx_shape_numel(s) < 0)
            return fx_error_set(err, FX_ERR_USAGE, "concat: input %d: rank mismatch", i);
        for (int d = 0; d < s->rank; d++)
            if (d != ax && s->d[d] != s0->d[d])
                return fx_error_set(err, FX_ERR_USAGE, "concat: input %d: dim %d mismatch", i, d);
        o.d[ax] += s->d[ax];
    }
    *out = o;
    return FX_OK;
}

fx_status fx_op_concat_ref(const fx_concat_params *p, const float *const *xs, float *y)
{
    fx_shape o;
    if (fx_concat_out_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int ax = fx_ops_axis(p->axis, o.rank);
    /* View every tensor as (outer, inner): rows of the output are the
     * inputs' rows laid side by side. */
    int64_t outer = fx_ops_prod(&o, 0, ax), row = fx_ops_prod(&o, ax, o.rank);
    for (int64_t r = 0; r < outer; r++) {
        float *dst = y + r * row;
        for (int i = 0; i < p->n_inputs; i++) {
            int64_t inner = fx_ops_prod(&p->shapes[i], ax, o.rank);
            memcpy(dst, xs[i] + r * inner, sizeof(float) * (size_t)inner);
            dst += inner;
        }
    }
    return FX_OK;
}

fx_status fx_op_split_ref(const fx_split_params *p, const float *x, float *const *ys)
{
    int ax = fx_ops_axis(p->axis, p->x.rank);
    if (fx_shape_numel(&p->x) < 0 || ax < 0 || p->n_outputs < 1 || !p->sizes)
        return FX_ERR_USAGE;
    int64_t total = 0;
    for (int i = 0; i < p->n_outputs; i++) {
        if (p->sizes[i] < 0)
            return FX_ERR_USAGE;
        total += p->sizes[i];
    }
    if (total != p->x.d[ax])
        return FX_ERR_USAGE;
    int64_t outer = fx_ops_prod(&p->x, 0, ax), after = fx_ops_prod(&p->x, ax + 1, p->x.rank);
    int64_t row = total * after;
    for (int64_t r = 0; r < outer; r++) {
        const float *src = x + r * row;
        for (int i = 0; i < p->n_outputs; i++) {
            int64_t inner = p->sizes[i] * after;
            memcpy(ys[i] + r * inner, src, sizeof(float) * (size_t)inner);
            src += inner;
        }
    }
    return FX_OK;
}

fx_status fx_transpose_out_shape(const fx_transpose_params *p, fx_shape *out, fx_error *err)
{
    if (fx_shape_numel(&p->x) < 0)
        return fx_error_set(err, FX_ERR_USAGE, "transpose: invalid shape");
    int seen[FX_OPS_MAX_RANK] = {0};
    fx_shape o = {.rank = p->x.rank};
    for (int i = 0; i < p->x.rank; i++) {
        int q = p->perm[i];
        if (q < 0 || q >= p->x.rank || seen[q]++)
            return fx_error_set(err, FX_ERR_USAGE, "transpose: perm is not a permutation");
        o.d[i] = p->x.d[q];
    }
    *out = o;
    return FX_OK;
}

fx_status fx_op_transpose_ref(const fx_transpose_params *p, const float *x, float *y)
{
    fx_shape o;
    if (fx_transpose_out_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int64_t xs[FX_OPS_MAX_RANK], st[FX_OPS_MAX_RANK], idx[FX_OPS_MAX_RANK] = {0};
    fx_ops_strides(&p->x, xs);
    for (int i = 0; i < o.rank; i++)
        st[i] = xs[p->perm[i]]; /* output axis i walks input axis perm[i] */
    int64_t n = fx_shape_numel(&o);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < o.rank; d++)
            off += idx[d] * st[d];
        y[i] = x[off];
        fx_ops_next_index(idx, o.d, o.rank);
    }
    return FX_OK;
}

fx_status fx_pad_out_shape(const fx_pad_params *p, fx_shape *out, fx_error *err)
{
    if (fx_shape_numel(&p->x) < 0)
        return fx_error_set(err, FX_ERR_USAGE, "pad: invalid shape");
    fx_shape o = p->x;
    for (int i = 0; i < o.rank; i++) {
        int64_t b = p->pads[i], e = p->pads[o.rank + i], d = p->x.d[i];
        o.d[i] = d + b + e;
        if (o.d[i] < 0)
            return fx_error_set(err, FX_ERR_USAGE, "pad: axis %d: negative size", i);
        if (p->mode == FX_PADMODE_REFLECT && (b >= d || e >= d) && o.d[i] > 0 && (b > 0 || e > 0))
            return fx_error_set(err, FX_ERR_USAGE, "pad: axis %d: reflect pad >= dim", i);
        if (p->mode == FX_PADMODE_EDGE && d == 0 && o.d[i] > 0)
            return fx_error_set(err, FX_ERR_USAGE, "pad: axis %d: edge pad of empty dim", i);
    }
    if (p->mode != FX_PADMODE_CONSTANT && p->mode != FX_PADMODE_REFLECT &&
        p->mode != FX_PADMODE_EDGE)
        return fx_error_set(err, FX_ERR_USAGE, "pad: unknown mode %d", (int)p->mode);
    *out = o;
    return FX_OK;
}

int64_t fx_pad_src(fx_pad_mode mode, int64_t pos, int64_t begin, int64_t d)
{
    return fx_hd_pad_src((int)mode, pos, begin, d);
}

fx_status fx_op_pad_ref(const fx_pad_params *p, const float *x, float *y)
{
    fx_shape o;
    if (fx_pad_out_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int64_t xs[FX_OPS_MAX_RANK], idx[FX_OPS_MAX_RANK] = {0};
    fx_ops_strides(&p->x, xs);
    int64_t n = fx_shape_numel(&o);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < o.rank && off >= 0; d++) {
            int64_t s = fx_pad_src(p->mode, idx[d], p->pads[d], p->x.d[d]);
            off = s < 0 ? -1 : off + s * xs[d];
        }
        y[i] = off < 0 ? p->value : x[off];
        fx_ops_next_index(idx, o.d, o.rank);
    }
    return FX_OK;
}
