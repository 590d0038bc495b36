/* Reference vector-Jacobian products: see src/model/vjp.h.  Plain loops over
 * the same index arithmetic as the forward references in src/ops/; every
 * function accumulates into its gradient outputs. */
#include "model/vjp.h"
#include "ops/hd.h"

#include <math.h>
#include <string.h>

/* Strides of x broadcast against the output shape o (0 on broadcast axes,
 * and on o's leading axes that x lacks). */
static void bcast_strides(const fx_shape *x, const fx_shape *o, int64_t *s)
{
    int64_t acc = 1;
    for (int i = o->rank - 1; i >= 0; i--) {
        int ix = i - (o->rank - x->rank);
        s[i] = 0;
        if (ix >= 0) {
            s[i] = x->d[ix] == 1 ? 0 : acc;
            acc *= x->d[ix];
        }
    }
}

/* Advance the multi-index idx over shape o; returns 0 after the last. */
static int next_index(int64_t *idx, const fx_shape *o)
{
    for (int i = o->rank - 1; i >= 0; i--) {
        if (++idx[i] < o->d[i])
            return 1;
        idx[i] = 0;
    }
    return 0;
}

static int64_t prod(const fx_shape *s, int lo, int hi)
{
    int64_t v = 1;
    for (int i = lo; i < hi; i++)
        v *= s->d[i];
    return v;
}

static int norm_axis(int axis, int rank)
{
    if (axis < -rank || axis >= rank)
        return -1;
    return axis < 0 ? axis + rank : axis;
}

/* ---- Conv ------------------------------------------------------------------ */

fx_status fx_vjp_conv2d(const fx_conv2d_params *p, const float *w, const float *dy, float *dx)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int cig = p->c_in / p->groups, cog = p->c_out / p->groups;
    for (int n = 0; n < p->n; n++)
        for (int oc = 0; oc < p->c_out; oc++) {
            int g = oc / cog;
            const float *dyp = dy + ((int64_t)n * p->c_out + oc) * oh * ow;
            const float *wp = w + (int64_t)oc * cig * p->kh * p->kw;
            for (int ic = 0; ic < cig; ic++) {
                float *dxp = dx + ((int64_t)n * p->c_in + (int64_t)g * cig + ic) * p->h * p->w;
                const float *wk = wp + (int64_t)ic * p->kh * p->kw;
                for (int ky = 0; ky < p->kh; ky++)
                    for (int kx = 0; kx < p->kw; kx++) {
                        float wv = wk[ky * p->kw + kx];
                        for (int oy = 0; oy < oh; oy++) {
                            int iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;
                            if (iy < 0 || iy >= p->h)
                                continue;
                            for (int ox = 0; ox < ow; ox++) {
                                int ix = ox * p->stride_w - p->pad_l + kx * p->dil_w;
                                if (ix >= 0 && ix < p->w)
                                    dxp[(int64_t)iy * p->w + ix] += wv * dyp[oy * ow + ox];
                            }
                        }
                    }
            }
        }
    return FX_OK;
}

/* ---- Gemm / MatMul ----------------------------------------------------------- */

fx_status fx_vjp_gemm(const fx_gemm_params *p, const float *a, const float *b, const float *dy,
                      float *da, float *db, float *dc)
{
    int64_t M = p->m, N = p->n, K = p->k;
    if (M < 0 || N < 0 || K < 0)
        return FX_ERR_USAGE;
    for (int64_t m = 0; m < M && da; m++)
        for (int64_t k = 0; k < K; k++) {
            double s = 0.0;
            for (int64_t j = 0; j < N; j++)
                s += (double)dy[m * N + j] * (p->trans_b ? b[j * K + k] : b[k * N + j]);
            da[p->trans_a ? k * M + m : m * K + k] += (float)(p->alpha * s);
        }
    for (int64_t k = 0; k < K && db; k++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t m = 0; m < M; m++)
                s += (double)(p->trans_a ? a[k * M + m] : a[m * K + k]) * dy[m * N + j];
            db[p->trans_b ? j * K + k : k * N + j] += (float)(p->alpha * s);
        }
    for (int64_t m = 0; m < M && dc; m++)
        for (int64_t j = 0; j < N; j++)
            dc[(p->c_rows == 1 ? 0 : m) * p->c_cols + (p->c_cols == 1 ? 0 : j)] +=
                p->beta * dy[m * N + j];
    return FX_OK;
}

/* a and b promoted to (batch..., M, K) and (batch..., K, N). */
typedef struct mm_view {
    int64_t m, k, n, nb;         /* nb: output batch count */
    fx_shape ob;                 /* output batch dims */
    int64_t sa[FX_OPS_MAX_RANK]; /* batch strides in matrices, 0 = broadcast */
    int64_t sb[FX_OPS_MAX_RANK];
} mm_view;

static fx_status mm_setup(const fx_matmul_params *p, mm_view *v)
{
    const fx_shape *a = &p->a, *b = &p->b;
    if (a->rank < 1 || b->rank < 1)
        return FX_ERR_USAGE;
    v->m = a->rank == 1 ? 1 : a->d[a->rank - 2];
    v->k = a->d[a->rank - 1];
    v->n = b->rank == 1 ? 1 : b->d[b->rank - 1];
    if ((b->rank == 1 ? b->d[0] : b->d[b->rank - 2]) != v->k)
        return FX_ERR_USAGE;
    fx_shape ab = {a->rank > 2 ? a->rank - 2 : 0, {0}}, bb = {b->rank > 2 ? b->rank - 2 : 0, {0}};
    memcpy(ab.d, a->d, sizeof(int64_t) * (size_t)ab.rank);
    memcpy(bb.d, b->d, sizeof(int64_t) * (size_t)bb.rank);
    fx_binary_params bp = {ab, bb};
    if (fx_broadcast_shape(&bp, &v->ob, NULL) != FX_OK)
        return FX_ERR_USAGE;
    bcast_strides(&ab, &v->ob, v->sa);
    bcast_strides(&bb, &v->ob, v->sb);
    v->nb = prod(&v->ob, 0, v->ob.rank);
    return FX_OK;
}

fx_status fx_vjp_matmul(const fx_matmul_params *p, const float *a, const float *b, const float *dy,
                        float *da, float *db)
{
    mm_view v;
    if (mm_setup(p, &v) != FX_OK)
        return FX_ERR_USAGE;
    int64_t idx[FX_OPS_MAX_RANK] = {0}, M = v.m, K = v.k, N = v.n;
    for (int64_t e = 0; e < v.nb; e++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < v.ob.rank; i++)
            oa += idx[i] * v.sa[i], ob += idx[i] * v.sb[i];
        const float *A = a + oa * M * K, *B = b + ob * K * N, *G = dy + e * M * N;
        for (int64_t m = 0; m < M && da; m++)
            for (int64_t k = 0; k < K; k++) {
                double s = 0.0;
                for (int64_t j = 0; j < N; j++)
                    s += (double)G[m * N + j] * B[k * N + j];
                da[oa * M * K + m * K + k] += (float)s;
            }
        for (int64_t k = 0; k < K && db; k++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0.0;
                for (int64_t m = 0; m < M; m++)
                    s += (double)A[m * K + k] * G[m * N + j];
                db[ob * K * N + k * N + j] += (float)s;
            }
        next_index(idx, &v.ob);
    }
    return FX_OK;
}

/* ---- activations ------------------------------------------------------------- */

/* The arithmetic is src/ops/hd.h's, shared with the CUDA backend's kernel. */
fx_status fx_vjp_unary(fx_unary_kind u, const fx_act_params *p, const float *x, const float *y,
                       const float *dy, float *dx)
{
    int reads_y = fx_hd_unary_vjp_reads_y(u);
    if (p->n < 0 || (reads_y ? !y : !x))
        return FX_ERR_USAGE;
    for (int64_t i = 0; i < p->n; i++)
        dx[i] += fx_hd_unary_vjp(u, p->alpha, p->beta, reads_y ? 0.0f : x[i], reads_y ? y[i] : 0.0f,
                                 dy[i]);
    return FX_OK;
}

fx_status fx_vjp_prelu(const fx_binary_params *p, const float *x, const float *slope,
                       const float *dy, float *dx, float *dslope)
{
    int64_t ss[FX_OPS_MAX_RANK], idx[FX_OPS_MAX_RANK] = {0}, n = fx_shape_numel(&p->a);
    if (n < 0 || p->b.rank > p->a.rank)
        return FX_ERR_USAGE;
    bcast_strides(&p->b, &p->a, ss);
    for (int64_t e = 0; e < n; e++) {
        int64_t os = 0;
        for (int i = 0; i < p->a.rank; i++)
            os += idx[i] * ss[i];
        if (dx)
            dx[e] += x[e] < 0.0f ? slope[os] * dy[e] : dy[e];
        if (dslope && x[e] < 0.0f)
            dslope[os] += x[e] * dy[e];
        next_index(idx, &p->a);
    }
    return FX_OK;
}

fx_status fx_vjp_binary(char op, const fx_binary_params *p, const float *a, const float *b,
                        const float *dy, float *da, float *db)
{
    fx_shape o;
    if (fx_broadcast_shape(p, &o, NULL) != FX_OK || !strchr("ASMD", op) || !op)
        return FX_ERR_USAGE;
    int64_t sa[FX_OPS_MAX_RANK], sb[FX_OPS_MAX_RANK], idx[FX_OPS_MAX_RANK] = {0};
    bcast_strides(&p->a, &o, sa);
    bcast_strides(&p->b, &o, sb);
    int64_t n = fx_shape_numel(&o);
    for (int64_t e = 0; e < n; e++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < o.rank; i++)
            oa += idx[i] * sa[i], ob += idx[i] * sb[i];
        float va = a ? a[oa] : 0.0f, vb = b ? b[ob] : 0.0f; /* Add, Sub: unread */
        if (da)
            da[oa] += fx_hd_binary_vjp(op, 0, va, vb, dy[e]);
        if (db)
            db[ob] += fx_hd_binary_vjp(op, 1, va, vb, dy[e]);
        next_index(idx, &o);
    }
    return FX_OK;
}

fx_status fx_vjp_batchnorm(const fx_batchnorm_params *p, const float *scale, const float *var,
                           const float *dy, float *dx)
{
    if (p->n < 0 || p->c < 0 || p->spatial < 0)
        return FX_ERR_USAGE;
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t c = 0; c < p->c; c++) {
            float k = (float)(scale[c] / sqrt((double)var[c] + p->epsilon));
            int64_t off = (n * p->c + c) * p->spatial;
            for (int64_t i = 0; i < p->spatial; i++)
                dx[off + i] += k * dy[off + i];
        }
    return FX_OK;
}

/* ---- shape ops ------------------------------------------------------------------ */

fx_status fx_vjp_concat(const fx_concat_params *p, const float *dy, float *const *dxs)
{
    fx_shape o;
    if (fx_concat_out_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int ax = norm_axis(p->axis, o.rank);
    int64_t outer = prod(&o, 0, ax), inner = prod(&o, ax + 1, o.rank);
    int64_t row = o.d[ax] * inner, at = 0;
    for (int i = 0; i < p->n_inputs; i++) {
        int64_t len = p->shapes[i].d[ax] * inner;
        for (int64_t r = 0; r < outer && dxs[i]; r++)
            for (int64_t j = 0; j < len; j++)
                dxs[i][r * len + j] += dy[r * row + at + j];
        at += len;
    }
    return FX_OK;
}

fx_status fx_vjp_split(const fx_split_params *p, const float *const *dys, float *dx)
{
    int ax = norm_axis(p->axis, p->x.rank);
    if (ax < 0 || p->n_outputs < 1)
        return FX_ERR_USAGE;
    int64_t outer = prod(&p->x, 0, ax), inner = prod(&p->x, ax + 1, p->x.rank);
    int64_t row = p->x.d[ax] * inner, at = 0, total = 0;
    for (int i = 0; i < p->n_outputs; i++)
        total += p->sizes[i];
    if (total != p->x.d[ax])
        return FX_ERR_USAGE;
    for (int i = 0; i < p->n_outputs; i++) {
        int64_t len = p->sizes[i] * inner;
        for (int64_t r = 0; r < outer && dys[i]; r++)
            for (int64_t j = 0; j < len; j++)
                dx[r * row + at + j] += dys[i][r * len + j];
        at += len;
    }
    return FX_OK;
}

fx_status fx_vjp_transpose(const fx_transpose_params *p, const float *dy, float *dx)
{
    fx_shape o;
    if (fx_transpose_out_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int64_t sx[FX_OPS_MAX_RANK], acc = 1, idx[FX_OPS_MAX_RANK] = {0}, n = fx_shape_numel(&o);
    for (int i = p->x.rank - 1; i >= 0; i--)
        sx[i] = acc, acc *= p->x.d[i];
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0;
        for (int i = 0; i < o.rank; i++)
            off += idx[i] * sx[p->perm[i]];
        dx[off] += dy[e];
        next_index(idx, &o);
    }
    return FX_OK;
}

fx_status fx_vjp_slice(const fx_shape *x, const fx_shape *y, const int64_t *start,
                       const int64_t *step, const float *dy, float *dx)
{
    if (x->rank != y->rank || x->rank < 1 || x->rank > FX_OPS_MAX_RANK)
        return FX_ERR_USAGE;
    int64_t sx[FX_OPS_MAX_RANK], acc = 1, idx[FX_OPS_MAX_RANK] = {0}, n = fx_shape_numel(y);
    for (int i = x->rank - 1; i >= 0; i--) {
        if (y->d[i] > 0 &&
            (start[i] < 0 || start[i] >= x->d[i] || start[i] + (y->d[i] - 1) * step[i] < 0 ||
             start[i] + (y->d[i] - 1) * step[i] >= x->d[i]))
            return FX_ERR_USAGE; /* a read outside x */
        sx[i] = acc, acc *= x->d[i];
    }
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0;
        for (int i = 0; i < y->rank; i++)
            off += (start[i] + idx[i] * step[i]) * sx[i];
        dx[off] += dy[e];
        next_index(idx, y);
    }
    return FX_OK;
}

fx_status fx_vjp_gather(const fx_shape *d, int axis, const int64_t *ix, int64_t ni, const float *dy,
                        float *dx)
{
    if (axis < 0 || axis >= d->rank || ni < 0)
        return FX_ERR_USAGE;
    int64_t outer = prod(d, 0, axis), inner = prod(d, axis + 1, d->rank), dim = d->d[axis];
    for (int64_t i = 0; i < ni; i++)
        if (ix[i] < -dim || ix[i] >= dim)
            return FX_ERR_USAGE;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < ni; i++) {
            int64_t v = ix[i] < 0 ? ix[i] + dim : ix[i];
            float *dr = dx + (o * dim + v) * inner;
            const float *gr = dy + (o * ni + i) * inner;
            for (int64_t j = 0; j < inner; j++)
                dr[j] += gr[j];
        }
    return FX_OK;
}

fx_status fx_vjp_pad(const fx_pad_params *p, const float *dy, float *dx)
{
    fx_shape o;
    if (fx_pad_out_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int r = p->x.rank;
    int64_t sx[FX_OPS_MAX_RANK], acc = 1, idx[FX_OPS_MAX_RANK] = {0}, n = fx_shape_numel(&o);
    for (int i = r - 1; i >= 0; i--)
        sx[i] = acc, acc *= p->x.d[i];
    /* every output reads one input (or the constant): the forward's map,
     * run backwards; reflect and edge read some inputs several times */
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0;
        for (int i = 0; i < r && off >= 0; i++) {
            int64_t s = fx_pad_src(p->mode, idx[i], p->pads[i], p->x.d[i]);
            off = s < 0 ? -1 : off + s * sx[i];
        }
        if (off >= 0)
            dx[off] += dy[e];
        next_index(idx, &o);
    }
    return FX_OK;
}

/* ---- pools -------------------------------------------------------------------- */

fx_status fx_vjp_maxpool2d(const fx_pool2d_params *p, const float *x, const float *dy, float *dx)
{
    int oh, ow;
    if (fx_pool2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < (int64_t)p->n * p->c; nc++) {
        const float *xp = x + nc * p->h * p->w;
        float *dxp = dx + nc * p->h * p->w;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float m = -INFINITY;
                int64_t at = -1;
                for (int ky = 0; ky < p->kh; ky++) {
                    int iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;
                    for (int kx = 0; kx < p->kw && iy >= 0 && iy < p->h; kx++) {
                        int ix = ox * p->stride_w - p->pad_l + kx * p->dil_w;
                        int64_t i = (int64_t)iy * p->w + ix;
                        if (ix >= 0 && ix < p->w && fx_hd_max_takes(at >= 0, m, xp[i]))
                            m = xp[i], at = i;
                    }
                }
                if (at >= 0)
                    dxp[at] += dy[nc * oh * ow + oy * ow + ox];
            }
    }
    return FX_OK;
}

fx_status fx_vjp_avgpool2d(const fx_pool2d_params *p, const float *dy, float *dx)
{
    int oh, ow;
    if (p->dil_h != 1 || p->dil_w != 1 || fx_pool2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < (int64_t)p->n * p->c; nc++) {
        float *dxp = dx + nc * p->h * p->w;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                int ph =
                    fx_hd_avg_axis(oy * p->stride_h - p->pad_t, p->kh, p->h, p->pad_b, &y0, &y1);
                int pw =
                    fx_hd_avg_axis(ox * p->stride_w - p->pad_l, p->kw, p->w, p->pad_r, &x0, &x1);
                int count = p->count_include_pad ? ph * pw : (y1 - y0) * (x1 - x0);
                if (count <= 0)
                    continue;
                float g = dy[nc * oh * ow + oy * ow + ox] / (float)count;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        dxp[iy * p->w + ix] += g;
            }
    }
    return FX_OK;
}

fx_status fx_vjp_global_avgpool(const fx_global_pool_params *p, const float *dy, float *dx)
{
    if (p->n < 0 || p->c < 0 || p->spatial < 1)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        float g = dy[nc] / (float)p->spatial;
        for (int64_t i = 0; i < p->spatial; i++)
            dx[nc * p->spatial + i] += g;
    }
    return FX_OK;
}

fx_status fx_vjp_global_maxpool(const fx_global_pool_params *p, const float *x, const float *dy,
                                float *dx)
{
    if (p->n < 0 || p->c < 0 || p->spatial < 1)
        return FX_ERR_USAGE;
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        const float *xp = x + nc * p->spatial;
        int64_t at = 0;
        for (int64_t i = 1; i < p->spatial; i++)
            if (xp[i] > xp[at])
                at = i;
        dx[nc * p->spatial + at] += dy[nc];
    }
    return FX_OK;
}

/* ---- reductions ------------------------------------------------------------------ */

fx_status fx_vjp_reduce_mean(const fx_reduce_params *p, const float *dy, float *dx)
{
    int r = p->x.rank, red[FX_OPS_MAX_RANK] = {0};
    if (p->n_axes < 0 || p->n_axes > r || fx_shape_numel(&p->x) < 0)
        return FX_ERR_USAGE;
    for (int i = 0; i < r; i++)
        red[i] = p->n_axes == 0;
    for (int i = 0; i < p->n_axes; i++) {
        int a = norm_axis(p->axes[i], r);
        if (a < 0)
            return FX_ERR_USAGE;
        red[a] = 1;
    }
    int64_t so[FX_OPS_MAX_RANK], acc = 1, count = 1, idx[FX_OPS_MAX_RANK] = {0};
    for (int i = r - 1; i >= 0; i--) {
        so[i] = red[i] ? 0 : acc;
        if (red[i])
            count *= p->x.d[i];
        else
            acc *= p->x.d[i];
    }
    int64_t n = fx_shape_numel(&p->x);
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0;
        for (int i = 0; i < r; i++)
            off += idx[i] * so[i];
        dx[e] += dy[off] / (float)count;
        next_index(idx, &p->x);
    }
    return FX_OK;
}

fx_status fx_vjp_softmax(const fx_softmax_params *p, const float *y, const float *dy, float *dx)
{
    int ax = norm_axis(p->axis, p->x.rank);
    if (ax < 0 || fx_shape_numel(&p->x) < 0)
        return FX_ERR_USAGE;
    int64_t outer = prod(&p->x, 0, ax), len = p->x.d[ax], inner = prod(&p->x, ax + 1, p->x.rank);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double s = 0.0;
            for (int64_t j = 0; j < len; j++)
                s += (double)dy[base + j * inner] * y[base + j * inner];
            for (int64_t j = 0; j < len; j++)
                dx[base + j * inner] += (float)(y[base + j * inner] * (dy[base + j * inner] - s));
        }
    return FX_OK;
}

fx_status fx_vjp_copy(int64_t n, const float *dy, float *dx)
{
    if (n < 0)
        return FX_ERR_USAGE;
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i];
    return FX_OK;
}
