/* Reference and OpenBLAS Gemm, reference MatMul: see include/fxscreen/ops.h. */
#include <cblas.h>
#include <limits.h>

#include "ops_internal.h"

static fx_status gemm_check(const fx_gemm_params *p, const float *c)
{
    if (p->m < 0 || p->n < 0 || p->k < 0)
        return FX_ERR_USAGE;
    if (c && ((p->c_rows != 1 && p->c_rows != p->m) || (p->c_cols != 1 && p->c_cols != p->n)))
        return FX_ERR_USAGE;
    return FX_OK;
}

/* beta * C broadcast to (M, N), or 0 when there is no C. */
static inline float gemm_c(const fx_gemm_params *p, const float *c, int64_t i, int64_t j)
{
    if (!c)
        return 0.0f;
    return p->beta * c[(p->c_rows == 1 ? 0 : i) * p->c_cols + (p->c_cols == 1 ? 0 : j)];
}

fx_status fx_op_gemm_ref(const fx_gemm_params *p, const float *a, const float *b, const float *c,
                         float *y)
{
    if (gemm_check(p, c) != FX_OK)
        return FX_ERR_USAGE;
    for (int64_t i = 0; i < p->m; i++) {
        for (int64_t j = 0; j < p->n; j++) {
            double acc = 0.0;
            for (int64_t l = 0; l < p->k; l++) {
                float av = p->trans_a ? a[l * p->m + i] : a[i * p->k + l];
                float bv = p->trans_b ? b[j * p->k + l] : b[l * p->n + j];
                acc += (double)av * bv;
            }
            y[i * p->n + j] = (float)(p->alpha * acc + gemm_c(p, c, i, j));
        }
    }
    return FX_OK;
}

fx_status fx_op_gemm_fast(const fx_gemm_params *p, const float *a, const float *b, const float *c,
                          float *y)
{
    if (gemm_check(p, c) != FX_OK || p->m > INT_MAX || p->n > INT_MAX || p->k > INT_MAX)
        return FX_ERR_USAGE;
    if (p->m == 0 || p->n == 0)
        return FX_OK;
    /* Pre-fill y with beta*C so sgemm can accumulate onto it (beta = 1);
     * with no C, sgemm's beta = 0 ignores y's old contents. */
    if (c || p->k == 0)
        for (int64_t i = 0; i < p->m; i++)
            for (int64_t j = 0; j < p->n; j++)
                y[i * p->n + j] = gemm_c(p, c, i, j);
    if (p->k == 0)
        return FX_OK;
    int m = (int)p->m, n = (int)p->n, k = (int)p->k;
    cblas_sgemm(CblasRowMajor, p->trans_a ? CblasTrans : CblasNoTrans,
                p->trans_b ? CblasTrans : CblasNoTrans, m, n, k, p->alpha, a, p->trans_a ? m : k, b,
                p->trans_b ? k : n, c ? 1.0f : 0.0f, y, n);
    return FX_OK;
}

/* numpy promotion: a 1-D a is (1, K), a 1-D b is (K, 1). */
static void matmul_promote(const fx_matmul_params *p, fx_shape *a, fx_shape *b)
{
    *a = p->a;
    *b = p->b;
    if (a->rank == 1) {
        a->d[1] = a->d[0];
        a->d[0] = 1;
        a->rank = 2;
    }
    if (b->rank == 1) {
        b->d[1] = 1;
        b->rank = 2;
    }
}

/* Broadcast batch shape of the promoted a, b (all but the last two dims). */
static fx_status matmul_batch(const fx_shape *a, const fx_shape *b, fx_shape *batch)
{
    fx_binary_params bp = {.a = *a, .b = *b};
    bp.a.rank -= 2;
    bp.b.rank -= 2;
    return fx_broadcast_shape(&bp, batch, NULL);
}

fx_status fx_matmul_out_shape(const fx_matmul_params *p, fx_shape *out, fx_error *err)
{
    if (p->a.rank < 1 || p->b.rank < 1 || fx_shape_numel(&p->a) < 0 || fx_shape_numel(&p->b) < 0)
        return fx_error_set(err, FX_ERR_USAGE, "matmul: invalid shapes");
    fx_shape a, b, o;
    matmul_promote(p, &a, &b);
    if (a.d[a.rank - 1] != b.d[b.rank - 2])
        return fx_error_set(err, FX_ERR_USAGE, "matmul: inner dims %lld vs %lld",
                            (long long)a.d[a.rank - 1], (long long)b.d[b.rank - 2]);
    if (matmul_batch(&a, &b, &o) != FX_OK)
        return fx_error_set(err, FX_ERR_USAGE, "matmul: batch dims do not broadcast");
    int extra = (p->a.rank > 1) + (p->b.rank > 1);
    if (o.rank + extra > FX_OPS_MAX_RANK)
        return fx_error_set(err, FX_ERR_USAGE, "matmul: result rank > %d", FX_OPS_MAX_RANK);
    if (p->a.rank > 1)
        o.d[o.rank++] = a.d[a.rank - 2];
    if (p->b.rank > 1)
        o.d[o.rank++] = b.d[b.rank - 1];
    *out = o;
    return FX_OK;
}

/* Offset of one batch matrix of t (promoted) for batch index idx of bs. */
static int64_t batch_offset(const fx_shape *t, const fx_shape *bs, const int64_t *idx)
{
    int64_t st[FX_OPS_MAX_RANK];
    fx_ops_strides(t, st);
    int tb = t->rank - 2;
    int64_t o = 0;
    for (int i = 0; i < tb; i++) {
        int j = i + (bs->rank - tb); /* right-aligned batch axes */
        o += (t->d[i] == 1 ? 0 : idx[j]) * st[i];
    }
    return o;
}

fx_status fx_op_matmul_ref(const fx_matmul_params *p, const float *a, const float *b, float *y)
{
    fx_shape o, as, bs, batch;
    if (fx_matmul_out_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    matmul_promote(p, &as, &bs);
    matmul_batch(&as, &bs, &batch);
    int64_t m = as.d[as.rank - 2], k = as.d[as.rank - 1], n = bs.d[bs.rank - 1];
    int64_t nb = fx_shape_numel(&batch), idx[FX_OPS_MAX_RANK] = {0};
    for (int64_t t = 0; t < nb; t++) {
        const float *ab = a + batch_offset(&as, &batch, idx);
        const float *bb = b + batch_offset(&bs, &batch, idx);
        float *yb = y + t * m * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0.0;
                for (int64_t l = 0; l < k; l++)
                    acc += (double)ab[i * k + l] * bb[l * n + j];
                yb[i * n + j] = (float)acc;
            }
        fx_ops_next_index(idx, batch.d, batch.rank);
    }
    return FX_OK;
}
