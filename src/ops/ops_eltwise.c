/* Reference activations and broadcasting binary ops: see include/fxscreen/ops.h. */
#include <math.h>
#include <string.h>

#include "ops/hd.h"
#include "ops_internal.h"

/* ---- activations: fx_hd_unary (src/ops/hd.h), shared with the GPU ------ */

static fx_status unary_run(fx_unary_kind k, const fx_act_params *p, const float *x, float *y)
{
    if (p->n < 0)
        return FX_ERR_USAGE;
    for (int64_t i = 0; i < p->n; i++)
        y[i] = fx_hd_unary(k, x[i], p->alpha, p->beta);
    return FX_OK;
}

#define UNARY_REF(name, kind)                                                                      \
    fx_status fx_op_##name##_ref(const fx_act_params *p, const float *x, float *y)                 \
    {                                                                                              \
        return unary_run(kind, p, x, y);                                                           \
    }
UNARY_REF(relu, FX_U_RELU)
UNARY_REF(leaky_relu, FX_U_LEAKY)
UNARY_REF(clip, FX_U_CLIP)
UNARY_REF(sigmoid, FX_U_SIGMOID)
UNARY_REF(hard_sigmoid, FX_U_HSIGMOID)
UNARY_REF(hard_swish, FX_U_HSWISH)
UNARY_REF(tanh, FX_U_TANH)
UNARY_REF(elu, FX_U_ELU)
UNARY_REF(selu, FX_U_SELU)
UNARY_REF(gelu, FX_U_GELU)

/* ---- broadcasting -------------------------------------------------------- */

int64_t fx_shape_numel(const fx_shape *s)
{
    if (s->rank < 0 || s->rank > FX_OPS_MAX_RANK)
        return -1;
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->d[i] < 0 || (s->d[i] > 0 && n > INT64_MAX / s->d[i]))
            return -1;
        n *= s->d[i];
    }
    return n;
}

fx_status fx_broadcast_shape(const fx_binary_params *p, fx_shape *out, fx_error *err)
{
    if (fx_shape_numel(&p->a) < 0 || fx_shape_numel(&p->b) < 0)
        return fx_error_set(err, FX_ERR_USAGE, "broadcast: invalid input shape");
    int r = p->a.rank > p->b.rank ? p->a.rank : p->b.rank;
    fx_shape o = {.rank = r};
    for (int i = 0; i < r; i++) {
        /* Right-aligned: a missing leading dim acts as 1. */
        int ia = i - (r - p->a.rank), ib = i - (r - p->b.rank);
        int64_t da = ia >= 0 ? p->a.d[ia] : 1, db = ib >= 0 ? p->b.d[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return fx_error_set(err, FX_ERR_USAGE, "broadcast: dim %d: %lld vs %lld", i,
                                (long long)da, (long long)db);
        o.d[i] = da == 1 ? db : da;
    }
    *out = o;
    return FX_OK;
}

/* Walk the output in row-major order, carrying an offset into a and b. */
static fx_status binary_run(char k, const fx_binary_params *p, const float *a, const float *b,
                            float *y)
{
    fx_shape o;
    if (fx_broadcast_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int64_t n = fx_shape_numel(&o);
    if (n == 0)
        return FX_OK;
    int r = o.rank;
    int64_t sa[FX_OPS_MAX_RANK], sb[FX_OPS_MAX_RANK], idx[FX_OPS_MAX_RANK] = {0};
    fx_ops_broadcast_strides(&p->a, r, sa);
    fx_ops_broadcast_strides(&p->b, r, sb);
    for (int64_t i = 0; i < n; i++) {
        int64_t oa = 0, ob = 0;
        for (int d = 0; d < r; d++) {
            oa += idx[d] * sa[d];
            ob += idx[d] * sb[d];
        }
        y[i] = fx_hd_binary(k, a[oa], b[ob]);
        fx_ops_next_index(idx, o.d, r);
    }
    return FX_OK;
}

fx_status fx_op_add_ref(const fx_binary_params *p, const float *a, const float *b, float *y)
{
    return binary_run('A', p, a, b, y);
}

fx_status fx_op_sub_ref(const fx_binary_params *p, const float *a, const float *b, float *y)
{
    return binary_run('S', p, a, b, y);
}

fx_status fx_op_mul_ref(const fx_binary_params *p, const float *a, const float *b, float *y)
{
    return binary_run('M', p, a, b, y);
}

fx_status fx_op_div_ref(const fx_binary_params *p, const float *a, const float *b, float *y)
{
    return binary_run('D', p, a, b, y);
}

fx_status fx_op_prelu_ref(const fx_binary_params *p, const float *x, const float *slope, float *y)
{
    fx_shape o;
    /* Unidirectional: the broadcast shape must be x's own shape. */
    if (fx_broadcast_shape(p, &o, NULL) != FX_OK || o.rank != p->a.rank ||
        memcmp(o.d, p->a.d, sizeof(int64_t) * (size_t)o.rank) != 0)
        return FX_ERR_USAGE;
    return binary_run('P', p, x, slope, y);
}
