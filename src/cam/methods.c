/* CAM methods on (A, dA), normalisation, upsampling and localisation: see
 * include/fxscreen/cam.h.  Definitions follow pytorch-grad-cam (BaseCAM's
 * get_cam_image, scale_cam_image, get_2d_projection). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam/cam_hd.h"
#include "cam/cam_internal.h"
#include "fxscreen/cam.h"

static const char *const method_names[FX_CAM_NUM_METHODS] = {"gradcam",  "gradcam++", "xgradcam",
                                                             "hirescam", "layercam",  "eigencam"};

const char *fx_cam_method_name(fx_cam_method m)
{
    return m >= 0 && m < FX_CAM_NUM_METHODS ? method_names[m] : "?";
}

fx_status fx_cam_method_parse(const char *name, fx_cam_method *m, fx_error *err)
{
    for (int i = 0; name && i < FX_CAM_NUM_METHODS; i++)
        if (!strcmp(name, method_names[i])) {
            *m = (fx_cam_method)i;
            return FX_OK;
        }
    return fx_error_set(err, FX_ERR_USAGE,
                        "unknown CAM method '%s' (use gradcam, gradcam++, xgradcam, hirescam, "
                        "layercam or eigencam)",
                        name ? name : "");
}

int fx_cam_method_needs_grad(fx_cam_method m)
{
    return m != FX_CAM_EIGENCAM;
}

/* Per-channel weights of the weighted-sum methods for one image. */
static void channel_weights(fx_cam_method m, const float *A, const float *G, int c, int hw,
                            double *wt)
{
    for (int ch = 0; ch < c; ch++) {
        const float *a = A + (int64_t)ch * hw, *g = G + (int64_t)ch * hw;
        double sa = 0.0, s = 0.0;
        for (int j = 0; j < hw; j++)
            sa += a[j];
        for (int j = 0; j < hw; j++)
            s += fx_hd_cam_wterm(m, g[j], a[j], sa);
        wt[ch] = fx_hd_cam_weight(m, s, sa, hw);
    }
}

/* Top eigenvector of the symmetric PSD d x d matrix G by power iteration,
 * started from G's column with the largest diagonal. */
static void top_eigvec(const double *G, int d, double *v, double *tmp)
{
    int best = 0;
    for (int i = 1; i < d; i++)
        if (G[(int64_t)i * d + i] > G[(int64_t)best * d + best])
            best = i;
    double nrm = 0.0;
    for (int i = 0; i < d; i++)
        v[i] = G[(int64_t)i * d + best], nrm += v[i] * v[i];
    nrm = sqrt(nrm);
    for (int i = 0; i < d; i++)
        v[i] = nrm > 0 ? v[i] / nrm : (i == 0);
    for (int it = 0; it < 20000; it++) {
        double n2 = 0.0, diff = 0.0;
        for (int i = 0; i < d; i++) {
            double s = 0.0;
            for (int j = 0; j < d; j++)
                s += G[(int64_t)i * d + j] * v[j];
            tmp[i] = s, n2 += s * s;
        }
        n2 = sqrt(n2);
        if (n2 == 0.0)
            return;
        for (int i = 0; i < d; i++) {
            double x = tmp[i] / n2;
            diff += (x - v[i]) * (x - v[i]);
            v[i] = x;
        }
        if (diff < 1e-26)
            return;
    }
}

/* EigenCAM for one image: X (hw, c) = A^T minus column means; the
 * projection X v on the first right singular vector, via the smaller of
 * X X^T and X^T X. */
static fx_status eigen_one(const float *A, int c, int hw, float *cam)
{
    int d = hw <= c ? hw : c;
    double *X = malloc((size_t)hw * c * sizeof *X), *G = malloc((size_t)d * d * sizeof *G);
    double *u = malloc((size_t)d * sizeof *u), *tmp = malloc((size_t)(d > c ? d : c) * sizeof *tmp);
    if (!X || !G || !u || !tmp) {
        free(X), free(G), free(u), free(tmp);
        return FX_ERR_NOMEM;
    }
    for (int ch = 0; ch < c; ch++) {
        double mean = 0.0;
        for (int j = 0; j < hw; j++)
            mean += A[(int64_t)ch * hw + j];
        mean /= hw;
        for (int j = 0; j < hw; j++)
            X[(int64_t)j * c + ch] = A[(int64_t)ch * hw + j] - mean;
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0.0;
            if (d == hw)
                for (int k = 0; k < c; k++)
                    s += X[(int64_t)i * c + k] * X[(int64_t)j * c + k];
            else
                for (int k = 0; k < hw; k++)
                    s += X[(int64_t)k * c + i] * X[(int64_t)k * c + j];
            G[(int64_t)i * d + j] = G[(int64_t)j * d + i] = s;
        }
    top_eigvec(G, d, u, tmp);
    /* v: the right singular vector (up to scale); tmp holds it. */
    double vsum = 0.0;
    for (int k = 0; k < c; k++) {
        double s = 0.0;
        if (d == hw)
            for (int j = 0; j < hw; j++)
                s += X[(int64_t)j * c + k] * u[j];
        else
            s = u[k];
        tmp[k] = s, vsum += s;
    }
    double vn = 0.0;
    for (int k = 0; k < c; k++)
        vn += tmp[k] * tmp[k];
    vn = sqrt(vn);
    double sign = vsum < 0.0 ? -1.0 : 1.0;
    for (int j = 0; j < hw; j++) {
        double s = 0.0;
        for (int k = 0; k < c; k++)
            s += X[(int64_t)j * c + k] * tmp[k];
        cam[j] = vn > 0.0 ? (float)(sign * s / vn) : 0.0f;
    }
    free(X), free(G), free(u), free(tmp);
    return FX_OK;
}

fx_status fx_cam_compute(fx_cam_method m, const float *A, const float *dA, int n, int c, int h,
                         int w, float *cam)
{
    if (n < 0 || c < 1 || h < 1 || w < 1 || m < 0 || m >= FX_CAM_NUM_METHODS ||
        (fx_cam_method_needs_grad(m) && !dA))
        return FX_ERR_USAGE;
    int hw = h * w;
    double *wt = malloc((size_t)c * sizeof *wt);
    if (!wt)
        return FX_ERR_NOMEM;
    fx_status st = FX_OK;
    for (int i = 0; i < n && st == FX_OK; i++) {
        const float *a = A + (int64_t)i * c * hw, *g = dA ? dA + (int64_t)i * c * hw : NULL;
        float *out = cam + (int64_t)i * hw;
        if (m == FX_CAM_EIGENCAM) {
            st = eigen_one(a, c, hw, out);
            continue;
        }
        int weighted = fx_hd_cam_channel_weighted(m);
        if (weighted)
            channel_weights(m, a, g, c, hw, wt);
        for (int j = 0; j < hw; j++) {
            double s = 0.0;
            for (int ch = 0; ch < c; ch++)
                s += fx_hd_cam_pixel(m, weighted ? wt[ch] : 0.0, a[(int64_t)ch * hw + j],
                                     weighted ? 0.0 : g[(int64_t)ch * hw + j]);
            out[j] = (float)s;
        }
    }
    free(wt);
    return st;
}

void fx_cam_normalize(float *cam, int n, int h, int w)
{
    int64_t hw = (int64_t)h * w;
    for (int i = 0; i < n; i++) {
        float *p = cam + i * hw, lo = INFINITY, hi = -INFINITY;
        for (int64_t j = 0; j < hw; j++) {
            p[j] = p[j] > 0.0f ? p[j] : 0.0f;
            lo = p[j] < lo ? p[j] : lo;
        }
        for (int64_t j = 0; j < hw; j++) {
            p[j] -= lo;
            hi = p[j] > hi ? p[j] : hi;
        }
        for (int64_t j = 0; j < hw; j++)
            p[j] /= 1e-7f + hi;
    }
}

void fx_cam_upsample(const float *src, int n, int h, int w, float *dst, int H, int W)
{
    for (int i = 0; i < n; i++) {
        const float *s = src + (int64_t)i * h * w;
        float *d = dst + (int64_t)i * H * W;
        for (int y = 0; y < H; y++) { /* the row's source once, the columns' per pixel */
            int y0, y1, x0, x1;
            float ly, lx;
            fx_hd_cam_src(y, h, H, &y0, &y1, &ly);
            for (int x = 0; x < W; x++) {
                fx_hd_cam_src(x, w, W, &x0, &x1, &lx);
                d[(int64_t)y * W + x] = fx_hd_cam_lerp2(s, w, y0, y1, ly, x0, x1, lx);
            }
        }
    }
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void fx_cam_px_find(const float *map, int H, int W, double frac, fx_cam_px *px)
{
    int64_t at = 0;
    for (int64_t j = 1; j < (int64_t)H * W; j++)
        if (map[j] > map[at])
            at = j;
    float peak = map[at], thr = (float)(frac * peak);
    int bx0 = W, by0 = H, bx1 = -1, by1 = -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (map[(int64_t)y * W + x] >= thr) {
                bx0 = x < bx0 ? x : bx0, bx1 = x > bx1 ? x : bx1;
                by0 = y < by0 ? y : by0, by1 = y > by1 ? y : by1;
            }
    *px = (fx_cam_px){peak, at, bx0, by0, bx1, by1};
}

fx_status fx_cam_heat(fx_cam_method m, const float *A, const float *dA, int n, int c, int h, int w,
                      int H, int W, double frac, float *low, float *cam, uint8_t *heat,
                      fx_cam_px *px)
{
    fx_status st = fx_cam_compute(m, A, dA, n, c, h, w, low);
    if (st != FX_OK)
        return st;
    fx_cam_normalize(low, n, h, w);
    fx_cam_upsample(low, n, h, w, cam, H, W);
    size_t hw = (size_t)H * W;
    for (int i = 0; i < n; i++) {
        const float *ci = cam + (size_t)i * hw;
        for (size_t q = 0; q < hw; q++)
            heat[(size_t)i * hw + q] = fx_hd_cam_quant(ci[q]);
        fx_cam_px_find(ci, H, W, frac, &px[i]);
    }
    return FX_OK;
}

void fx_cam_px_region(const fx_cam_px *px, int W, int H, const fx_prep_geom *geom, fx_cam_region *r)
{
    double sx = geom ? geom->scale_x : 1.0, sy = geom ? geom->scale_y : 1.0;
    double ox = geom ? geom->off_x : 0.0, oy = geom ? geom->off_y : 0.0;
    double ow = geom ? geom->orig_w : W, oh = geom ? geom->orig_h : H;
    r->peak = px->peak;
    r->peak_x = ((double)(px->at % W) + 0.5 - ox) / sx - 0.5;
    r->peak_y = ((double)(px->at / W) + 0.5 - oy) / sy - 0.5;
    r->x0 = clampd((px->x0 - ox) / sx, 0.0, ow);
    r->x1 = clampd((px->x1 + 1 - ox) / sx, 0.0, ow);
    r->y0 = clampd((px->y0 - oy) / sy, 0.0, oh);
    r->y1 = clampd((px->y1 + 1 - oy) / sy, 0.0, oh);
}

fx_status fx_cam_locate(const float *map, int H, int W, const fx_prep_geom *geom, double frac,
                        fx_cam_region *r)
{
    if (H < 1 || W < 1 || !(frac > 0.0 && frac <= 1.0) ||
        (geom && (geom->scale_x <= 0 || geom->scale_y <= 0)))
        return FX_ERR_USAGE;
    fx_cam_px px;
    fx_cam_px_find(map, H, W, frac, &px);
    fx_cam_px_region(&px, W, H, geom, r);
    return FX_OK;
}
