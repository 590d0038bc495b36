/* Fast CPU variants of the non-conv ops: see include/fxscreen/ops.h.
 *
 * The references are single-threaded loops written for clarity; at batch 32
 * the elementwise ops, pools and BatchNorm together took about a third of
 * densenet121's time (plan profile, bench/infer_fx --profile).  These are
 * the same arithmetic per element (bit-identical, except Sigmoid's float
 * exp) with OpenMP over the elements or planes and `omp simd` inner loops,
 * which gcc -O2 otherwise leaves scalar. */
#include <math.h>
#include <string.h>

#include "ops_internal.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768

FX_SIMD_CLONES fx_status fx_op_relu_fast(const fx_act_params *p, const float *x, float *y)
{
    if (p->n < 0)
        return FX_ERR_USAGE;
#pragma omp parallel for simd schedule(static) if (p->n >= PAR_MIN)
    for (int64_t i = 0; i < p->n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return FX_OK;
}

FX_SIMD_CLONES fx_status fx_op_clip_fast(const fx_act_params *p, const float *x, float *y)
{
    if (p->n < 0)
        return FX_ERR_USAGE;
    float lo = p->alpha, hi = p->beta;
#pragma omp parallel for simd schedule(static) if (p->n >= PAR_MIN)
    for (int64_t i = 0; i < p->n; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
    return FX_OK;
}

FX_OPS_NO_TRAP fx_status fx_op_sigmoid_fast(const fx_act_params *p, const float *x, float *y)
{
    if (p->n < 0)
        return FX_ERR_USAGE;
#pragma omp parallel for simd schedule(static) if (p->n >= PAR_MIN)
    for (int64_t i = 0; i < p->n; i++)
        y[i] = fx_ops_sigmoidf(x[i]);
    return FX_OK;
}

fx_status fx_op_hard_swish_fast(const fx_act_params *p, const float *x, float *y)
{
    if (p->n < 0)
        return FX_ERR_USAGE;
#pragma omp parallel for simd schedule(static) if (p->n >= PAR_MIN)
    for (int64_t i = 0; i < p->n; i++) {
        float r = x[i] + 3.0f;
        r = r < 0.0f ? 0.0f : r > 6.0f ? 6.0f : r;
        y[i] = x[i] * r / 6.0f;
    }
    return FX_OK;
}

/* ---- binaries ------------------------------------------------------------- */

/* y = a OP b elementwise; the switch is hoisted so each loop vectorises. */
FX_SIMD_CLONES static void bin_flat(char op, int64_t n, const float *a, const float *b, float *y)
{
#define BIN_LOOP(expr)                                                                             \
    _Pragma("omp parallel for simd schedule(static) if (n >= PAR_MIN)") for (int64_t i = 0; i < n; \
                                                                             i++) y[i] = (expr)
    switch (op) {
    case 'A': BIN_LOOP(a[i] + b[i]); break;
    case 'S': BIN_LOOP(a[i] - b[i]); break;
    case 'M': BIN_LOOP(a[i] * b[i]); break;
    default: BIN_LOOP(a[i] / b[i]); break;
    }
#undef BIN_LOOP
}

/* y = x OP s (x_first) or s OP x over n elements; the switch is hoisted. */
FX_OPS_INLINE void bin_block(char op, int64_t n, const float *x, float s, int x_first, float *y)
{
#define BLOCK_LOOP(expr) _Pragma("omp simd") for (int64_t i = 0; i < n; i++) y[i] = (expr)
    switch (x_first ? op : op == 'S' ? 's' : op == 'D' ? 'd' : op) {
    case 'A': BLOCK_LOOP(x[i] + s); break;
    case 'M': BLOCK_LOOP(x[i] * s); break;
    case 'S': BLOCK_LOOP(x[i] - s); break;
    case 's': BLOCK_LOOP(s - x[i]); break;
    case 'D': BLOCK_LOOP(x[i] / s); break;
    default: BLOCK_LOOP(s / x[i]); break;
    }
#undef BLOCK_LOOP
}

/* If s (the smaller operand) equals o on dims [0, k) and is 1 on [k, rank)
 * (same rank), the number of blocks prod(o[0..k)); else -1. */
static int64_t block_bcast(const fx_shape *s, const fx_shape *o)
{
    if (s->rank != o->rank)
        return -1;
    int k = 0;
    while (k < o->rank && s->d[k] == o->d[k])
        k++;
    for (int i = k; i < o->rank; i++)
        if (s->d[i] != 1)
            return -1;
    return fx_ops_prod(o, 0, k);
}

FX_SIMD_CLONES fx_status fx_op_binary_fast(char op, const fx_binary_params *p, const float *a,
                                           const float *b, float *y)
{
    fx_shape o;
    if (fx_broadcast_shape(p, &o, NULL) != FX_OK)
        return FX_ERR_USAGE;
    int64_t n = fx_shape_numel(&o);
    int same_a = p->a.rank == o.rank && !memcmp(p->a.d, o.d, sizeof(int64_t) * (size_t)o.rank);
    int same_b = p->b.rank == o.rank && !memcmp(p->b.d, o.d, sizeof(int64_t) * (size_t)o.rank);
    if (same_a && same_b) {
        bin_flat(op, n, a, b, y);
        return FX_OK;
    }
    /* One operand per block (N, C, 1, 1) against the other (N, C, H, W). */
    int64_t blocks = same_a ? block_bcast(&p->b, &o) : same_b ? block_bcast(&p->a, &o) : -1;
    if (blocks > 0 && n % blocks == 0) {
        int64_t inner = n / blocks;
        int big_is_a = same_a;
        const float *big = big_is_a ? a : b, *small = big_is_a ? b : a;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t k = 0; k < blocks; k++)
            bin_block(op, inner, big + k * inner, small[k], big_is_a, y + k * inner);
        return FX_OK;
    }
    switch (op) {
    case 'A': return fx_op_add_ref(p, a, b, y);
    case 'S': return fx_op_sub_ref(p, a, b, y);
    case 'M': return fx_op_mul_ref(p, a, b, y);
    case 'D': return fx_op_div_ref(p, a, b, y);
    }
    return FX_ERR_USAGE;
}

/* ---- BatchNorm -------------------------------------------------------------- */

FX_SIMD_CLONES fx_status fx_op_batchnorm_fast(const fx_batchnorm_params *p, const float *x,
                                              const float *scale, const float *bias,
                                              const float *mean, const float *var, fx_act_kind act,
                                              float lo, float hi, float *y)
{
    if (p->n < 0 || p->c < 1 || p->spatial < 0 || !(p->epsilon >= 0.0f) ||
        (act != FX_ACT_NONE && act != FX_ACT_RELU && act != FX_ACT_CLIP))
        return FX_ERR_USAGE;
    int64_t planes = p->n * p->c;
#pragma omp parallel for schedule(static) if (planes * p->spatial >= PAR_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        int64_t c = nc % p->c;
        /* The reference's arithmetic: a, s in double, y = (float)(a*x + s). */
        double a = scale[c] / sqrt((double)var[c] + p->epsilon);
        double s = bias[c] - a * mean[c];
        const float *xs = x + nc * p->spatial;
        float *ys = y + nc * p->spatial;
#pragma omp simd
        for (int64_t i = 0; i < p->spatial; i++)
            ys[i] = (float)(a * xs[i] + s);
        if (act == FX_ACT_RELU) {
#pragma omp simd
            for (int64_t i = 0; i < p->spatial; i++)
                ys[i] = ys[i] > 0.0f ? ys[i] : 0.0f;
        } else if (act == FX_ACT_CLIP) {
#pragma omp simd
            for (int64_t i = 0; i < p->spatial; i++) {
                float v = ys[i] < lo ? lo : ys[i];
                ys[i] = v > hi ? hi : v;
            }
        }
    }
    return FX_OK;
}

/* ---- pools ------------------------------------------------------------------ */

/* Run the reference on one (1, 1, H, W) plane per N*C, in parallel: the
 * references are per-plane loops, so this is bit-identical. */
static fx_status pool_planes(const fx_pool2d_params *p, const float *x, float *y, int is_max)
{
    int oh, ow;
    if (fx_pool2d_out_hw(p, &oh, &ow, NULL) != FX_OK ||
        (!is_max && (p->dil_h != 1 || p->dil_w != 1)))
        return FX_ERR_USAGE;
    fx_pool2d_params one = *p;
    one.n = 1, one.c = 1;
    int64_t planes = (int64_t)p->n * p->c;
    size_t in = (size_t)p->h * p->w, out = (size_t)oh * ow;
#pragma omp parallel for schedule(static) if (planes * (int64_t)in >= PAR_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        if (is_max)
            fx_op_maxpool2d_ref(&one, x + nc * in, y + nc * out);
        else
            fx_op_avgpool2d_ref(&one, x + nc * in, y + nc * out);
    }
    return FX_OK;
}

/* max with the reference's NaN rule: a NaN anywhere in the window wins. */
FX_OPS_INLINE float max_nan(float m, float v)
{
    return (v > m || v != v) ? v : m;
}

/* One plane, dilation 1: per output row, the max over the window's input
 * rows first (contiguous, vectorised over the whole row) into vbuf, which
 * holds pad_l entries of -inf, the row and -inf up to the last window's
 * end; then the max over kw neighbours of that padded row, every window
 * inside the buffer, so the loop over the outputs has no bounds and no
 * branches (the clamped per-output loop mispredicted on random data:
 * resnet18's 3x3 stride-2 pool took 1.3 ms an image at batch 32).  Same
 * result as the per-window reference: max is order-independent, NaN wins
 * in both orders, and -inf never beats a value the window holds. */
FX_OPS_INLINE void maxpool_plane(const fx_pool2d_params *p, const float *xp, float *yp, int oh,
                                 int ow, float *vbuf, int vlen)
{
    int w = p->w, sw = p->stride_w, kw = p->kw;
    float *vmax = vbuf + p->pad_l;
    for (int i = 0; i < p->pad_l; i++)
        vbuf[i] = -INFINITY;
    for (int i = p->pad_l + w; i < vlen; i++)
        vbuf[i] = -INFINITY;
    for (int oy = 0; oy < oh; oy++) {
        int y0 = oy * p->stride_h - p->pad_t, y1 = y0 + p->kh;
        y0 = y0 < 0 ? 0 : y0;
        y1 = y1 > p->h ? p->h : y1;
        const float *r0 = xp + (size_t)y0 * w;
        if (y1 <= y0) { /* a window below the last row (ceil_mode): no input */
            for (int ix = 0; ix < w; ix++)
                vmax[ix] = -INFINITY;
        } else {
#pragma omp simd
            for (int ix = 0; ix < w; ix++)
                vmax[ix] = r0[ix];
        }
        for (int iy = y0 + 1; iy < y1; iy++) {
            const float *r = xp + (size_t)iy * w;
#pragma omp simd
            for (int ix = 0; ix < w; ix++)
                vmax[ix] = max_nan(vmax[ix], r[ix]);
        }
        float *yr = yp + (size_t)oy * ow;
        if (sw == 2 && kw == 3) { /* ResNet's and DenseNet's stem pool */
#pragma omp simd
            for (int ox = 0; ox < ow; ox++)
                yr[ox] = max_nan(max_nan(vbuf[2 * ox], vbuf[2 * ox + 1]), vbuf[2 * ox + 2]);
        } else {
#pragma omp simd
            for (int ox = 0; ox < ow; ox++) {
                const float *v = vbuf + (size_t)ox * sw;
                float m = v[0];
                for (int k = 1; k < kw; k++)
                    m = max_nan(m, v[k]);
                yr[ox] = m;
            }
        }
    }
}

#define MAXPOOL_ROW_MAX 8192 /* widest padded row the separable path buffers on the stack */

FX_SIMD_CLONES fx_status fx_op_maxpool2d_fast(const fx_pool2d_params *p, const float *x, float *y)
{
    int oh, ow;
    if (fx_pool2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return FX_ERR_USAGE;
    /* the padded row: every window, ceil_mode's overhang included */
    int64_t vlen = (int64_t)(ow - 1) * p->stride_w + p->kw;
    if (vlen < (int64_t)p->pad_l + p->w)
        vlen = (int64_t)p->pad_l + p->w;
    if (p->dil_h != 1 || p->dil_w != 1 || vlen > MAXPOOL_ROW_MAX || oh < 1 || ow < 1 || p->h < 1)
        return pool_planes(p, x, y, 1);
    int64_t planes = (int64_t)p->n * p->c;
    size_t in = (size_t)p->h * p->w, out = (size_t)oh * ow;
#pragma omp parallel if (planes * (int64_t)in >= PAR_MIN)
    {
        float vbuf[MAXPOOL_ROW_MAX];
#pragma omp for schedule(static)
        for (int64_t nc = 0; nc < planes; nc++)
            maxpool_plane(p, x + nc * in, y + nc * out, oh, ow, vbuf, (int)vlen);
    }
    return FX_OK;
}

/* 2x2 stride 2 without pads (DenseNet's transitions): each output summed in
 * double in the reference's order (row by row, left to right), so the
 * result is bit-identical, in a loop over the outputs with no window
 * bounds.  Every other shape runs the reference per plane. */
FX_SIMD_CLONES fx_status fx_op_avgpool2d_fast(const fx_pool2d_params *p, const float *x, float *y)
{
    int oh, ow;
    if (p->kh != 2 || p->kw != 2 || p->stride_h != 2 || p->stride_w != 2 || p->dil_h != 1 ||
        p->dil_w != 1 || p->pad_t || p->pad_l || p->pad_b || p->pad_r || p->ceil_mode ||
        fx_pool2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return pool_planes(p, x, y, 0);
    int64_t planes = (int64_t)p->n * p->c;
    size_t in = (size_t)p->h * p->w, out = (size_t)oh * ow;
#pragma omp parallel for schedule(static) if (planes * (int64_t)in >= PAR_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        const float *xp = x + nc * in;
        float *yp = y + nc * out;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = xp + (size_t)(2 * oy) * p->w, *r1 = r0 + p->w;
            float *yr = yp + (size_t)oy * ow;
#pragma omp simd
            for (int ox = 0; ox < ow; ox++) {
                double sum = 0.0;
                sum += r0[2 * ox];
                sum += r0[2 * ox + 1];
                sum += r1[2 * ox];
                sum += r1[2 * ox + 1];
                yr[ox] = (float)(sum / 4);
            }
        }
    }
    return FX_OK;
}

FX_SIMD_CLONES fx_status fx_op_global_avgpool_fast(const fx_global_pool_params *p, const float *x,
                                                   float *y)
{
    if (p->n < 0 || p->c < 0 || p->spatial < 1)
        return FX_ERR_USAGE;
    int64_t planes = p->n * p->c;
#pragma omp parallel for schedule(static) if (planes * p->spatial >= PAR_MIN)
    for (int64_t nc = 0; nc < planes; nc++)
        y[nc] = fx_plane_mean(x + nc * p->spatial, p->spatial);
    return FX_OK;
}
