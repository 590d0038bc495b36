/* Resize reference: separable (rows, then columns) with per-axis weight
 * tables, so a 4k x 4k -> 256 x 256 shrink reads each source pixel about
 * twice and does no per-pixel coordinate math. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/prep.h"
#include "prep/prep_internal.h"

int fx_prep_grow(void **buf, size_t *cap, size_t need)
{
    if (need <= *cap && *buf)
        return 0;
    void *p = realloc(*buf, need ? need : 1);
    if (!p)
        return -1;
    *buf = p;
    *cap = need;
    return 0;
}

void fx_axis_plan_free(fx_axis_plan *p)
{
    if (!p)
        return;
    free(p->first);
    free(p->count);
    free(p->w);
    memset(p, 0, sizeof *p);
}

fx_status fx_axis_plan_build(fx_axis_plan *p, int sn, int dn, int d0, int n, fx_error *err)
{
    if (sn < 1 || dn < 1 || n < 0 || d0 < 0 || d0 + n > dn)
        return fx_error_set(err, FX_ERR_INTERNAL, "resize plan: bad sizes %d -> %d [%d,+%d)", sn,
                            dn, d0, n);
    int area = dn <= sn;
    /* An area output spans sn/dn source samples and may touch one more
     * partially at each end; bilinear needs two. */
    int stride = area ? (sn + dn - 1) / dn + 1 : 2;
    size_t nn = (size_t)(n > 0 ? n : 1);
    if ((size_t)stride > SIZE_MAX / sizeof(float) / nn)
        return fx_error_set(err, FX_ERR_NOMEM, "resize plan: %d x %d taps", n, stride);
    if (nn > p->cap_n) {
        int *f = realloc(p->first, nn * sizeof *f);
        if (f)
            p->first = f;
        int *c = realloc(p->count, nn * sizeof *c);
        if (c)
            p->count = c;
        if (!f || !c)
            return fx_error_set(err, FX_ERR_NOMEM, "resize plan: out of memory");
        p->cap_n = nn;
    }
    size_t nw = nn * (size_t)stride;
    if (nw > p->cap_w) {
        float *w = realloc(p->w, nw * sizeof *w);
        if (!w)
            return fx_error_set(err, FX_ERR_NOMEM, "resize plan: out of memory");
        p->w = w;
        p->cap_w = nw;
    }
    p->n = n;
    p->stride = stride;
    p->src_lo = sn;
    p->src_hi = 0;
    for (int i = 0; i < n; i++) {
        int d = d0 + i;
        float *w = p->w + (size_t)i * (size_t)stride;
        int first, count;
        if (area) {
            /* In units of 1/dn: destination d covers [d*sn, (d+1)*sn), source j
             * covers [j*dn, (j+1)*dn).  Integer overlaps make weights exact
             * rationals, rounded once to float. */
            int64_t a = (int64_t)d * sn, b = (int64_t)(d + 1) * sn;
            first = (int)(a / dn);
            int last = (int)((b - 1) / dn);
            count = last - first + 1;
            for (int k = 0; k < count; k++) {
                int64_t ja = (int64_t)(first + k) * dn, jb = ja + dn;
                int64_t lo = a > ja ? a : ja, hi = b < jb ? b : jb;
                w[k] = (float)((double)(hi - lo) / (double)sn);
            }
        } else {
            /* Half-pixel centres, as torch's align_corners=False. */
            double x = ((double)d + 0.5) * ((double)sn / (double)dn) - 0.5;
            if (x < 0)
                x = 0;
            int i0 = (int)x;
            if (i0 > sn - 1)
                i0 = sn - 1;
            double l = x - (double)i0;
            first = i0;
            if (i0 + 1 <= sn - 1) {
                count = 2;
                w[0] = (float)(1.0 - l);
                w[1] = (float)l;
            } else {
                count = 1;
                w[0] = 1.0f;
            }
        }
        for (int k = count; k < stride; k++)
            w[k] = 0.0f;
        p->first[i] = first;
        p->count[i] = count;
        if (first < p->src_lo)
            p->src_lo = first;
        if (first + count > p->src_hi)
            p->src_hi = first + count;
    }
    if (n == 0)
        p->src_lo = p->src_hi = 0;
    return FX_OK;
}

void fx_prep_visible(int new_n, int off, int out_n, int *r0, int *o0, int *n)
{
    int a = off < 0 ? -off : 0;                        /* first visible resized index */
    int b = out_n - off < new_n ? out_n - off : new_n; /* one past the last */
    *r0 = a;
    *o0 = a + off;
    *n = b > a ? b - a : 0;
}

void fx_prep_resize_row(const fx_axis_plan *px, const float *src, float *dst)
{
    for (int i = 0; i < px->n; i++) {
        const float *s = src + px->first[i];
        const float *w = px->w + (size_t)i * (size_t)px->stride;
        int c = px->count[i];
        double acc = 0.0;
        for (int k = 0; k < c; k++)
            acc += (double)w[k] * (double)s[k];
        dst[i] = (float)acc;
    }
}

void fx_prep_resize_cols(const fx_axis_plan *py, const float *tmp, int width, float *dst,
                         size_t dst_stride, double *acc)
{
    size_t wd = (size_t)width;
    for (int i = 0; i < py->n; i++) {
        const float *w = py->w + (size_t)i * (size_t)py->stride;
        const float *t = tmp + (size_t)(py->first[i] - py->src_lo) * wd;
        for (size_t x = 0; x < wd; x++)
            acc[x] = 0.0;
        for (int k = 0; k < py->count[i]; k++) {
            double wk = (double)w[k];
            const float *r = t + (size_t)k * wd;
            for (size_t x = 0; x < wd; x++)
                acc[x] += wk * (double)r[x];
        }
        float *d = dst + (size_t)i * dst_stride;
        for (size_t x = 0; x < wd; x++)
            d[x] = (float)acc[x];
    }
}

fx_status fx_prep_resize(const float *src, int sh, int sw, float *dst, int dh, int dw,
                         fx_prep_scratch *s, fx_error *err)
{
    if (!src || !dst || !s || sh < 1 || sw < 1 || dh < 1 || dw < 1)
        return fx_error_set(err, FX_ERR_USAGE, "fx_prep_resize: bad arguments (%d x %d -> %d x %d)",
                            sw, sh, dw, dh);
    fx_status st = fx_axis_plan_build(&s->px, sw, dw, 0, dw, err);
    if (st == FX_OK)
        st = fx_axis_plan_build(&s->py, sh, dh, 0, dh, err);
    if (st != FX_OK)
        return st;
    size_t rows = (size_t)(s->py.src_hi - s->py.src_lo);
    if (fx_prep_grow((void **)&s->tmp, &s->tmp_cap, rows * (size_t)dw * sizeof(float)) ||
        fx_prep_grow((void **)&s->acc, &s->acc_cap, (size_t)dw * sizeof(double)))
        return fx_error_set(err, FX_ERR_NOMEM, "fx_prep_resize: out of memory");
    for (size_t r = 0; r < rows; r++)
        fx_prep_resize_row(&s->px, src + ((size_t)s->py.src_lo + r) * (size_t)sw,
                           s->tmp + r * (size_t)dw);
    fx_prep_resize_cols(&s->py, s->tmp, dw, dst, (size_t)dw, s->acc);
    return FX_OK;
}
