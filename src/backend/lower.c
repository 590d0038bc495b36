/* Lowering graph nodes to the CUDA kernels' descriptors (cuda_ops.h), and
 * host executors of those descriptors.  Plain C: compiled in every build,
 * so tests/test_lower.c checks every descriptor against the reference ops
 * on machines without a GPU. */
#include <string.h>

#include "backend/cuda_ops.h"
#include "model/graph_internal.h"
#include "ops/ops_internal.h"

static fx_status map_init(fx_cu_map *m, const fx_shape *dims)
{
    memset(m, 0, sizeof *m);
    if (dims->rank < 0 || dims->rank > FX_CU_MAX_RANK || (m->n = fx_shape_numel(dims)) < 0)
        return FX_ERR_UNSUPPORTED;
    m->rank = dims->rank;
    memcpy(m->dims, dims->d, sizeof(int64_t) * (size_t)dims->rank);
    return FX_OK;
}

fx_status fx_lower_transpose(const fx_transpose_params *p, fx_cu_map *m)
{
    fx_shape o;
    if (fx_transpose_out_shape(p, &o, NULL) != FX_OK || map_init(m, &o) != FX_OK)
        return FX_ERR_UNSUPPORTED;
    int64_t xs[FX_OPS_MAX_RANK];
    fx_ops_strides(&p->x, xs);
    for (int i = 0; i < o.rank; i++)
        m->xs[i] = xs[p->perm[i]]; /* output axis i walks input axis perm[i] */
    fx_ops_strides(&o, m->ys);
    return FX_OK;
}

fx_status fx_lower_slice(const fx_shape *x, const fx_shape *o, const int64_t *start,
                         const int64_t *step, fx_cu_map *m)
{
    if (x->rank != o->rank || map_init(m, o) != FX_OK)
        return FX_ERR_UNSUPPORTED;
    int64_t xs[FX_OPS_MAX_RANK];
    fx_ops_strides(x, xs);
    for (int i = 0; i < o->rank; i++) {
        m->xs[i] = xs[i] * step[i];
        m->xbase += start[i] * xs[i];
    }
    fx_ops_strides(o, m->ys);
    return FX_OK;
}

fx_status fx_lower_concat(const fx_shape *o, int axis, const fx_shape *in, int64_t offset,
                          fx_cu_map *m)
{
    if (in->rank != o->rank || axis < 0 || axis >= o->rank || map_init(m, in) != FX_OK)
        return FX_ERR_UNSUPPORTED;
    fx_ops_strides(in, m->xs);
    fx_ops_strides(o, m->ys);
    m->ybase = offset * m->ys[axis];
    return FX_OK;
}

fx_status fx_lower_split(const fx_shape *x, int axis, const fx_shape *o, int64_t offset,
                         fx_cu_map *m)
{
    if (x->rank != o->rank || axis < 0 || axis >= x->rank || map_init(m, o) != FX_OK)
        return FX_ERR_UNSUPPORTED;
    fx_ops_strides(x, m->xs);
    fx_ops_strides(o, m->ys);
    m->xbase = offset * m->xs[axis];
    return FX_OK;
}

fx_status fx_lower_gather(const fx_shape *d, int axis, int64_t index, int64_t i, int64_t ni,
                          fx_cu_map *m)
{
    if (axis < 0 || axis >= d->rank)
        return FX_ERR_UNSUPPORTED;
    int64_t outer = 1, inner = 1, dim = d->d[axis];
    for (int k = 0; k < axis; k++)
        outer *= d->d[k];
    for (int k = axis + 1; k < d->rank; k++)
        inner *= d->d[k];
    /* input (outer, dim, inner) -> output (outer, ni, inner), one index */
    fx_shape dims = {2, {outer, inner}};
    if (map_init(m, &dims) != FX_OK)
        return FX_ERR_UNSUPPORTED;
    m->xs[0] = dim * inner, m->xs[1] = 1, m->xbase = index * inner;
    m->ys[0] = ni * inner, m->ys[1] = 1, m->ybase = i * inner;
    return FX_OK;
}

fx_status fx_lower_binary(const fx_binary_params *p, char op, fx_cu_bin *b)
{
    fx_shape o;
    memset(b, 0, sizeof *b);
    if (fx_broadcast_shape(p, &o, NULL) != FX_OK || (b->n = fx_shape_numel(&o)) < 0)
        return FX_ERR_UNSUPPORTED;
    b->rank = o.rank;
    b->op = op;
    memcpy(b->dims, o.d, sizeof(int64_t) * (size_t)o.rank);
    fx_ops_broadcast_strides(&p->a, o.rank, b->as);
    fx_ops_broadcast_strides(&p->b, o.rank, b->bs);
    return FX_OK;
}

fx_status fx_lower_matmul(const fx_matmul_params *p, fx_cu_mm *d)
{
    fx_shape a = p->a, b = p->b, o = {0, {0}};
    memset(d, 0, sizeof *d);
    if (a.rank < 1 || b.rank < 1 || a.rank > FX_OPS_MAX_RANK || b.rank > FX_OPS_MAX_RANK)
        return FX_ERR_UNSUPPORTED;
    if (a.rank == 1) /* (K) -> (1, K): same bytes */
        a = (fx_shape){2, {1, p->a.d[0]}};
    if (b.rank == 1) /* (K) -> (K, 1) */
        b = (fx_shape){2, {p->b.d[0], 1}};
    fx_binary_params bp = {a, b};
    bp.a.rank -= 2, bp.b.rank -= 2;
    if (fx_broadcast_shape(&bp, &o, NULL) != FX_OK || a.d[a.rank - 1] != b.d[b.rank - 2])
        return FX_ERR_UNSUPPORTED;
    d->batch = fx_shape_numel(&o);
    d->m = a.d[a.rank - 2], d->k = a.d[a.rank - 1], d->n = b.d[b.rank - 1];
    /* Each operand's matrix i: its batch dims' broadcast strides over the
     * output's batch index, in elements (matrix size included). */
    d->brank = o.rank;
    memcpy(d->bdims, o.d, sizeof(int64_t) * (size_t)o.rank);
    fx_ops_broadcast_strides(&bp.a, o.rank, d->sa);
    fx_ops_broadcast_strides(&bp.b, o.rank, d->sb);
    int64_t na = fx_shape_numel(&bp.a), nb = fx_shape_numel(&bp.b);
    for (int i = 0; i < o.rank; i++)
        d->sa[i] *= d->m * d->k, d->sb[i] *= d->k * d->n;
    /* One stride per operand does when its matrices are the output's batch
     * in order (full) or one matrix for all (broadcast); else the products
     * need per-matrix pointers (d->general). */
    d->stride_a = na == 1 ? 0 : d->m * d->k;
    d->stride_b = nb == 1 ? 0 : d->k * d->n;
    d->stride_y = d->m * d->n;
    d->general = !((na == 1 || na == d->batch) && (nb == 1 || nb == d->batch));
    return FX_OK;
}

void fx_cu_mm_offsets(const fx_cu_mm *d, int64_t i, int64_t *off_a, int64_t *off_b)
{
    *off_a = fx_hd_offset(i, d->brank, d->bdims, d->sa);
    *off_b = fx_hd_offset(i, d->brank, d->bdims, d->sb);
}

fx_status fx_lower_reduce(const fx_reduce_params *p, fx_cu_red *d)
{
    int r = p->x.rank, red[FX_OPS_MAX_RANK] = {0};
    memset(d, 0, sizeof *d);
    if (r < 0 || r > FX_OPS_MAX_RANK || p->n_axes < 0 || p->n_axes > r)
        return FX_ERR_UNSUPPORTED;
    for (int i = 0; i < p->n_axes; i++) {
        int a = p->axes[i] < 0 ? p->axes[i] + r : p->axes[i];
        if (a < 0 || a >= r || red[a])
            return FX_ERR_UNSUPPORTED;
        red[a] = 1;
    }
    int64_t st[FX_OPS_MAX_RANK];
    fx_ops_strides(&p->x, st);
    d->n_out = d->n_red = 1;
    for (int i = 0; i < r; i++) {
        if (p->n_axes == 0 || red[i]) { /* no axes: all of them */
            d->rdims[d->nred] = p->x.d[i], d->rstr[d->nred++] = st[i];
            d->n_red *= p->x.d[i];
        } else {
            d->odims[d->nout] = p->x.d[i], d->ostr[d->nout++] = st[i];
            d->n_out *= p->x.d[i];
        }
    }
    return FX_OK;
}

void fx_lower_axes3(const fx_shape *x, int lo, int hi, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = *len = *inner = 1;
    for (int i = 0; i < x->rank; i++)
        *(i < lo ? outer : i <= hi ? len : inner) *= x->d[i];
}

void fx_cu_map_host(const fx_cu_map *m, const float *x, float *y)
{
    for (int64_t e = 0; e < m->n; e++)
        y[m->ybase + fx_hd_offset(e, m->rank, m->dims, m->ys)] =
            x[m->xbase + fx_hd_offset(e, m->rank, m->dims, m->xs)];
}

void fx_cu_bin_host(const fx_cu_bin *b, const float *a, const float *bb, float *y)
{
    for (int64_t e = 0; e < b->n; e++)
        y[e] = fx_hd_binary(b->op, a[fx_hd_offset(e, b->rank, b->dims, b->as)],
                            bb[fx_hd_offset(e, b->rank, b->dims, b->bs)]);
}

void fx_cu_map_vjp_host(const fx_cu_map *m, const float *dy, float *dx)
{
    for (int64_t e = 0; e < m->n; e++)
        dx[m->xbase + fx_hd_offset(e, m->rank, m->dims, m->xs)] +=
            dy[m->ybase + fx_hd_offset(e, m->rank, m->dims, m->ys)];
}

void fx_cu_bin_vjp_host(const fx_cu_bin *b, int wrt_b, const float *a, const float *bb,
                        const float *dy, float *dx)
{
    for (int64_t e = 0; e < b->n; e++) {
        int64_t oa = fx_hd_offset(e, b->rank, b->dims, b->as);
        int64_t ob = fx_hd_offset(e, b->rank, b->dims, b->bs);
        dx[wrt_b ? ob : oa] += fx_hd_binary_vjp(b->op, wrt_b, a[oa], bb[ob], dy[e]);
    }
}

void fx_cu_mm_host(const fx_cu_mm *d, const float *a, const float *b, float *y)
{
    for (int64_t i = 0; i < d->batch; i++) {
        int64_t oa, ob;
        fx_cu_mm_offsets(d, i, &oa, &ob);
        const float *ai = a + oa, *bi = b + ob;
        float *yi = y + i * d->stride_y;
        for (int64_t r = 0; r < d->m; r++)
            for (int64_t c = 0; c < d->n; c++) {
                double acc = 0.0;
                for (int64_t l = 0; l < d->k; l++)
                    acc += (double)ai[r * d->k + l] * bi[l * d->n + c];
                yi[r * d->n + c] = (float)acc;
            }
    }
}

void fx_cu_red_host(const fx_cu_red *d, const float *x, float *y)
{
    for (int64_t e = 0; e < d->n_out; e++) {
        int64_t base = fx_hd_offset(e, d->nout, d->odims, d->ostr);
        double s = 0.0;
        for (int64_t r = 0; r < d->n_red; r++)
            s += x[base + fx_hd_offset(r, d->nred, d->rdims, d->rstr)];
        y[e] = (float)(s / (double)d->n_red);
    }
}

fx_status fx_lower_copies(const fx_graph *g, const fx_node *n, fx_cu_map_fn each, void *ctx,
                          fx_error *err)
{
    const char *op = n->op_type;
    const fx_shape *x = &g->t[n->in[0]].shape, *o = &g->t[n->out[0]].shape;
    fx_cu_map m;
    fx_status st = FX_OK;
    if (!strcmp(op, "Concat")) {
        int64_t off = 0;
        for (int k = 0; k < n->n_in && st == FX_OK; k++) {
            const fx_shape *in = &g->t[n->in[k]].shape;
            if ((st = fx_lower_concat(o, n->b.axis, in, off, &m)) == FX_OK)
                st = each(ctx, &m, k, 0, err);
            off += in->d[n->b.axis];
        }
    } else if (!strcmp(op, "Split")) {
        int64_t off = 0;
        for (int k = 0; k < n->n_out && st == FX_OK; k++) {
            if ((st = fx_lower_split(x, n->b.axis, &g->t[n->out[k]].shape, off, &m)) == FX_OK)
                st = each(ctx, &m, 0, k, err);
            off += n->b.ints[k];
        }
    } else if (!strcmp(op, "Transpose")) {
        if ((st = fx_lower_transpose(&n->b.u.tr, &m)) == FX_OK)
            st = each(ctx, &m, 0, 0, err);
    } else if (!strcmp(op, "Slice")) {
        if ((st = fx_lower_slice(x, o, n->b.ints, n->b.ints + FX_OPS_MAX_RANK, &m)) == FX_OK)
            st = each(ctx, &m, 0, 0, err);
    } else { /* Gather: constant indices, read on the host */
        const fx_tensor *it = &g->t[n->in[1]];
        const int64_t *ix = it->data;
        int64_t ni = fx_shape_numel(&it->shape), dim = x->d[n->b.axis];
        for (int64_t i = 0; i < ni && st == FX_OK; i++)
            if ((st = fx_lower_gather(x, n->b.axis, ix[i] < 0 ? ix[i] + dim : ix[i], i, ni, &m)) ==
                FX_OK)
                st = each(ctx, &m, 0, 0, err);
    }
    if (st == FX_ERR_UNSUPPORTED && err && !err->msg[0])
        fx_error_set(err, st, "cuda: %s beyond the kernels' rank", op);
    return st;
}
