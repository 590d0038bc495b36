/* Grad-CAM overlays: the windowed radiograph with a colour heat map blended
 * on top, at original resolution (the spec is in fxscreen/overlay.h).
 * A plain reference: one pass over the original pixels, rows in parallel;
 * each pixel finds its model position, samples the heat map bilinearly and
 * blends.  The grey comes from fx_prep_window itself, so it is exactly the
 * window the model saw. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fxscreen/loader.h"
#include "fxscreen/overlay.h"

/* Overlays are written once per screened image, so speed beats size: on a
 * 2048 x 2048 overlay (one thread, SUB filter) libdeflate level 1 took 101
 * ms and 5.3 MB, level 3 210 ms and 5.0 MB (libpng + zlib level 1 before
 * it: 158 ms, 5.5 MB). */
#define OVERLAY_ZLIB_LEVEL 1

static const uint8_t box_rgb[3] = {0, 255, 255}; /* cyan: in none of the maps */

void fx_overlay_opts_default(fx_overlay_opts *o)
{
    o->cmap = FX_CMAP_INFERNO;
    o->opacity = 0.5;
    o->invert = 0;
    o->draw_box = 1;
}

/* [0,1] -> 0..255, rounded as prep.h5's uint8 store rounds the plane. */
static inline uint8_t unit_to_u8(float v)
{
    float s = v * 255.0f + 0.5f;
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* Grey for every U8/U16 value: fx_prep_window run over a ramp 0..n-1, so
 * integer planes cost one lookup per pixel.  Returns 0 or -1 (no memory). */
static int grey_lut(fx_pixtype t, double lo, double hi, int invert, uint8_t *lut)
{
    size_t n = t == FX_PIX_U8 ? 256 : 65536;
    void *ramp = malloc(n * fx_pixtype_size(t));
    float *v = malloc(n * sizeof *v);
    if (!ramp || !v) {
        free(ramp);
        free(v);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (t == FX_PIX_U8)
            ((uint8_t *)ramp)[i] = (uint8_t)i;
        else
            ((uint16_t *)ramp)[i] = (uint16_t)i;
    }
    fx_image img = {.info = {.width = (int)n, .height = 1, .channels = 1, .type = t},
                    .pixels = ramp};
    fx_prep_window(&img, lo, hi, v);
    for (size_t i = 0; i < n; i++)
        lut[i] = unit_to_u8(invert ? 1.0f - v[i] : v[i]);
    free(ramp);
    free(v);
    return 0;
}

/* Where original pixel i lands on one model axis: the two heat cells to
 * blend and the weight of the second; inside = 0 when cropped away. */
typedef struct axis_pos {
    int i0, i1;
    double t;
    int inside;
} axis_pos;

static axis_pos axis_map(int i, double scale, int off, int n)
{
    axis_pos p = {0, 0, 0.0, 0};
    double u = (i + 0.5) * scale + off; /* the pixel centre, model units */
    if (!(u >= 0.0 && u < n))
        return p;
    double m = u - 0.5; /* cell index space: cell k's centre at k */
    if (m < 0.0)
        m = 0.0; /* edge clamp, as align_corners=False sampling does */
    int i0 = (int)m;
    if (i0 > n - 1)
        i0 = n - 1;
    p.i0 = i0;
    p.i1 = i0 + 1 < n ? i0 + 1 : n - 1;
    p.t = m - i0;
    p.inside = 1;
    return p;
}

/* A column's two heat cells and the weight of the second. */
typedef struct col_pos {
    int i0, i1;
    double t;
} col_pos;

typedef struct render_ctx {
    const fx_image *orig;
    const fx_prep_geom *g;
    const uint8_t *heat; /* (H, W) */
    int H, W;
    const fx_overlay_opts *o;
    const uint8_t *lut;      /* U8/U16 grey lookup, NULL for F32 */
    const uint8_t (*tab)[3]; /* the colour map */
    const col_pos *cols;     /* (orig_w) model x position of each column */
    const uint8_t *in;       /* (orig_w) 1: the column is inside the model's view */
    uint8_t *rgb;            /* (orig_h, orig_w, 3) */
} render_ctx;

/* A thread's heat rows interpolated across to every output column: two
 * slots, each holding one heat row's values (key = the row, -1 none). */
typedef struct hrows {
    double *v[2];
    int key[2];
} hrows;

/* Heat row k across the output columns (top or bot of the bilinear
 * sample, the same double arithmetic as one pixel at a time), computed
 * into the slot that does not hold row keep. */
static const double *heat_row(const render_ctx *c, hrows *hr, int k, int keep, int w)
{
    for (int s = 0; s < 2; s++)
        if (hr->key[s] == k)
            return hr->v[s];
    int s = hr->key[0] == keep ? 1 : 0;
    const uint8_t *r = c->heat + (size_t)k * (size_t)c->W;
    for (int x = 0; x < w; x++) {
        const col_pos *ax = &c->cols[x];
        hr->v[s][x] = r[ax->i0] + ax->t * (r[ax->i1] - r[ax->i0]);
    }
    hr->key[s] = k;
    return hr->v[s];
}

/* One output row.  Thread scratch: grey (orig_w bytes), row (orig_w
 * floats) for F32 planes, hr (two rows of orig_w doubles). */
static void render_row(const render_ctx *c, int y, uint8_t *grey, float *row, hrows *hr)
{
    const int w = c->orig->info.width;
    const size_t at = (size_t)y * (size_t)w;
    switch (c->orig->info.type) {
    case FX_PIX_U8: {
        const uint8_t *p = (const uint8_t *)c->orig->pixels + at;
        for (int x = 0; x < w; x++)
            grey[x] = c->lut[p[x]];
        break;
    }
    case FX_PIX_U16: {
        const uint16_t *p = (const uint16_t *)c->orig->pixels + at;
        for (int x = 0; x < w; x++)
            grey[x] = c->lut[p[x]];
        break;
    }
    case FX_PIX_F32: {
        fx_image one = {.info = {.width = w, .height = 1, .channels = 1, .type = FX_PIX_F32},
                        .pixels = (float *)c->orig->pixels + at};
        fx_prep_window(&one, c->g->win_lo, c->g->win_hi, row);
        for (int x = 0; x < w; x++)
            grey[x] = unit_to_u8(c->o->invert ? 1.0f - row[x] : row[x]);
        break;
    }
    }

    const axis_pos ay = axis_map(y, c->g->scale_y, c->g->off_y, c->H);
    uint8_t *out = c->rgb + at * 3;
    /* The bilinear heat in double, across then down as one pixel at a time
     * would (float, or down then across, moved the colour index across its
     * rounding edges often enough for test_overlay.py to see it); the rows
     * across are computed once per heat row, not per output row, and the
     * colour table is read directly, no call per pixel. */
    const double ty = ay.t;
    if (!ay.inside) {
        for (int x = 0; x < w; x++)
            out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = grey[x];
        return;
    }
    const double *top = heat_row(c, hr, ay.i0, ay.i1, w);
    const double *bot = heat_row(c, hr, ay.i1, ay.i0, w);
    for (int x = 0; x < w; x++) {
        uint8_t *px = out + (size_t)x * 3;
        const uint8_t g = grey[x];
        const double h = c->in[x] ? (top[x] + ty * (bot[x] - top[x])) / 255.0 : 0.0;
        const double a = c->o->opacity * h;
        if (a > 0.0) {
            const uint8_t *col = c->tab[(int)(h * 255.0 + 0.5)];
            for (int k = 0; k < 3; k++)
                px[k] = (uint8_t)((1.0 - a) * g + a * col[k] + 0.5);
        } else {
            px[0] = px[1] = px[2] = g;
        }
    }
}

/* Outline the pixels bbox touches, inside the box, thickness by image size. */
static void draw_box(uint8_t *rgb, int w, int h, const float *bbox)
{
    double bx0 = floor(bbox[0]), by0 = floor(bbox[1]);
    double bx1 = ceil(bbox[2]) - 1, by1 = ceil(bbox[3]) - 1; /* last pixel, inclusive */
    if (bx1 < bx0 || by1 < by0 || bx1 < 0 || by1 < 0 || bx0 > w - 1 || by0 > h - 1)
        return; /* no area, or outside the image */
    int x0 = bx0 < 0 ? 0 : (int)bx0, y0 = by0 < 0 ? 0 : (int)by0;
    int x1 = bx1 > w - 1 ? w - 1 : (int)bx1, y1 = by1 > h - 1 ? h - 1 : (int)by1;
    int big = w > h ? w : h;
    int t = 1 + big / 1500; /* 1 px below 1500, 2 below 3000, then 3 */
    if (t > 3)
        t = 3;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            if (x >= x0 + t && x <= x1 - t && y >= y0 + t && y <= y1 - t)
                continue; /* interior */
            memcpy(rgb + ((size_t)y * (size_t)w + (size_t)x) * 3, box_rgb, 3);
        }
}

fx_status fx_overlay_render(const fx_image *orig, const fx_prep_geom *g, const uint8_t *heat, int H,
                            int W, const float *bbox, const fx_overlay_opts *o, uint8_t *rgb,
                            fx_error *err)
{
    if (!orig || !orig->pixels || !g || !heat || !o || !rgb)
        return fx_error_set(err, FX_ERR_USAGE, "overlay: NULL argument");
    const int w = orig->info.width, h = orig->info.height;
    const fx_pixtype t = orig->info.type;
    if (w < 1 || h < 1 || (t != FX_PIX_U8 && t != FX_PIX_U16 && t != FX_PIX_F32))
        return fx_error_set(err, FX_ERR_USAGE, "overlay: bad image %d x %d type %d", w, h, (int)t);
    if (H < 1 || W < 1)
        return fx_error_set(err, FX_ERR_USAGE, "overlay: bad heat map size %d x %d", W, H);
    if (g->orig_w != w || g->orig_h != h)
        return fx_error_set(err, FX_ERR_USAGE,
                            "overlay: geometry is for a %d x %d image, the image is %d x %d",
                            g->orig_w, g->orig_h, w, h);
    if (!(g->scale_x > 0 && isfinite(g->scale_x) && g->scale_y > 0 && isfinite(g->scale_y)))
        return fx_error_set(err, FX_ERR_USAGE, "overlay: bad geometry scale %g x %g", g->scale_x,
                            g->scale_y);
    if ((int)o->cmap < 0 || o->cmap >= FX_CMAP_NUM)
        return fx_error_set(err, FX_ERR_USAGE, "overlay: unknown colour map %d", (int)o->cmap);
    if (!(o->opacity >= 0.0 && o->opacity <= 1.0))
        return fx_error_set(err, FX_ERR_USAGE, "overlay: opacity %g is not in [0, 1]", o->opacity);
    int box = o->draw_box && bbox;
    for (int k = 0; box && k < 4; k++)
        if (isnan(bbox[k]))
            box = 0; /* a failed item's box: nothing to draw */
        else if (isinf(bbox[k]))
            return fx_error_set(err, FX_ERR_USAGE, "overlay: box coordinate %d is infinite", k);

    col_pos *cols = malloc((size_t)w * sizeof *cols);
    uint8_t *in = malloc((size_t)w);
    uint8_t *lut = t != FX_PIX_F32 ? malloc(65536) : NULL;
    if (!cols || !in ||
        (t != FX_PIX_F32 && (!lut || grey_lut(t, g->win_lo, g->win_hi, o->invert, lut)))) {
        free(cols), free(in);
        free(lut);
        return fx_error_set(err, FX_ERR_NOMEM, "overlay: out of memory (%d x %d image)", w, h);
    }
    for (int x = 0; x < w; x++) {
        axis_pos a = axis_map(x, g->scale_x, g->off_x, W);
        cols[x] = (col_pos){a.i0, a.i1, a.t};
        in[x] = (uint8_t)a.inside;
    }

    render_ctx c = {orig, g, heat, H, W, o, lut, fx_colormap_table(o->cmap), cols, in, rgb};
    int nomem = 0;
#pragma omp parallel
    {
        uint8_t *grey = malloc((size_t)w);
        float *row = t == FX_PIX_F32 ? malloc((size_t)w * sizeof *row) : NULL;
        hrows hr = {{malloc((size_t)w * sizeof(double)), malloc((size_t)w * sizeof(double))},
                    {-1, -1}};
        int ok = grey && hr.v[0] && hr.v[1] && (t != FX_PIX_F32 || row);
        if (!ok) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int y = 0; y < h; y++)
            if (ok)
                render_row(&c, y, grey, row, &hr);
        free(grey);
        free(row);
        free(hr.v[0]), free(hr.v[1]);
    }
    free(lut);
    free(cols), free(in);
    if (nomem)
        return fx_error_set(err, FX_ERR_NOMEM, "overlay: out of memory (%d x %d image)", w, h);
    if (box)
        draw_box(rgb, w, h, bbox);
    return FX_OK;
}

fx_status fx_overlay_grey(const fx_image *orig, const fx_prep_geom *g, int invert, uint8_t *grey,
                          fx_error *err)
{
    if (!orig || !orig->pixels || !g || !grey)
        return fx_error_set(err, FX_ERR_USAGE, "overlay: NULL argument");
    const int w = orig->info.width, h = orig->info.height;
    const fx_pixtype t = orig->info.type;
    const size_t n = (size_t)w * (size_t)h;
    if (w < 1 || h < 1 || (t != FX_PIX_U8 && t != FX_PIX_U16 && t != FX_PIX_F32))
        return fx_error_set(err, FX_ERR_USAGE, "overlay: bad image %d x %d type %d", w, h, (int)t);
    if (t == FX_PIX_F32) {
        float *v = malloc(n * sizeof *v);
        if (!v)
            return fx_error_set(err, FX_ERR_NOMEM, "overlay: out of memory (%d x %d image)", w, h);
        fx_prep_window(orig, g->win_lo, g->win_hi, v);
        for (size_t i = 0; i < n; i++)
            grey[i] = unit_to_u8(invert ? 1.0f - v[i] : v[i]);
        free(v);
        return FX_OK;
    }
    uint8_t *lut = malloc(65536);
    if (!lut || grey_lut(t, g->win_lo, g->win_hi, invert, lut)) {
        free(lut);
        return fx_error_set(err, FX_ERR_NOMEM, "overlay: out of memory (%d x %d image)", w, h);
    }
    if (t == FX_PIX_U8)
        for (size_t i = 0; i < n; i++)
            grey[i] = lut[((const uint8_t *)orig->pixels)[i]];
    else
        for (size_t i = 0; i < n; i++)
            grey[i] = lut[((const uint16_t *)orig->pixels)[i]];
    free(lut);
    return FX_OK;
}

/* The PNG through tmp (name + pid: overlay names are unique per row, so
 * this is unique among the threads and processes that could be writing
 * beside us), renamed into place. */
static fx_status save_png(const uint8_t *rgb, int w, int h, char *tmp, const char *out_png,
                          fx_error *err)
{
    snprintf(tmp, strlen(out_png) + 48, "%s.tmp.%ld", out_png, (long)getpid());
    fx_status st = fx_png_save_rgb8(tmp, w, h, rgb, OVERLAY_ZLIB_LEVEL, err);
    if (st != FX_OK) {
        fx_error_prefix(err, "%s", out_png); /* the saver named the temporary file */
        return st;
    }
    if (rename(tmp, out_png) != 0) {
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot rename %s into place: %s", out_png, tmp,
                          strerror(errno));
        remove(tmp);
    }
    return st;
}

/* Output size and source span of one axis of a base: for output index i,
 * the original span [i f, (i + 1) f). */
static int base_size(int n, double s)
{
    long v = lround(n * s);
    return s >= 1.0 ? n : v < 1 ? 1 : (int)v;
}

/* The base when the shrink is a whole factor f on both axes (2048 -> 1024,
 * 4096 -> 1024) of an integer plane: each output pixel is the mean of an
 * f x f block of looked-up greys, rounded half up, which is what the
 * general area sum below gives for these weights (all 1): floor(s / f^2 +
 * 1/2) = (2 s + f^2) / (2 f^2) in integers (s / f^2 is never exactly half
 * way, so the double there cannot round differently).  No full-size grey
 * plane, one pass over the original. */
static fx_status base_blocks(const fx_image *orig, const fx_prep_geom *g, int invert, int f, int W2,
                             int H2, uint8_t *out, fx_error *err)
{
    const int w = orig->info.width;
    uint8_t *lut = malloc(65536);
    uint32_t *acc = malloc((size_t)W2 * sizeof *acc);
    if (!lut || !acc || grey_lut(orig->info.type, g->win_lo, g->win_hi, invert, lut)) {
        free(lut), free(acc);
        return fx_error_set(err, FX_ERR_NOMEM, "overlay base: out of memory");
    }
    const uint32_t ff = (uint32_t)f * (uint32_t)f;
    /* The common case, 2048 -> 1024, unrolled: 1.45 ms against 4.9 ms for
     * the loop below on a 2048 x 2048 16-bit plane (best of 15, here). */
    if (f == 2 && orig->info.type == FX_PIX_U16) {
        for (int yo = 0; yo < H2; yo++) {
            const uint16_t *a = (const uint16_t *)orig->pixels + (size_t)(2 * yo) * (size_t)w;
            const uint16_t *b = a + w;
            uint8_t *o = out + (size_t)yo * (size_t)W2;
            for (int xo = 0; xo < W2; xo++) {
                unsigned sum = (unsigned)lut[a[2 * xo]] + lut[a[2 * xo + 1]] + lut[b[2 * xo]] +
                               lut[b[2 * xo + 1]];
                o[xo] = (uint8_t)((sum + 2) >> 2); /* (2 s + 4) / 8 */
            }
        }
        free(lut), free(acc);
        return FX_OK;
    }
    for (int yo = 0; yo < H2; yo++) {
        memset(acc, 0, (size_t)W2 * sizeof *acc);
        for (int y = yo * f; y < yo * f + f; y++) {
            size_t at = (size_t)y * (size_t)w;
            if (orig->info.type == FX_PIX_U16) {
                const uint16_t *p = (const uint16_t *)orig->pixels + at;
                for (int xo = 0; xo < W2; xo++, p += f)
                    for (int k = 0; k < f; k++)
                        acc[xo] += lut[p[k]];
            } else {
                const uint8_t *p = (const uint8_t *)orig->pixels + at;
                for (int xo = 0; xo < W2; xo++, p += f)
                    for (int k = 0; k < f; k++)
                        acc[xo] += lut[p[k]];
            }
        }
        uint8_t *o = out + (size_t)yo * (size_t)W2;
        for (int xo = 0; xo < W2; xo++)
            o[xo] = (uint8_t)((2 * acc[xo] + ff) / (2 * ff));
    }
    free(lut), free(acc);
    return FX_OK;
}

fx_status fx_overlay_base(const fx_image *orig, const fx_prep_geom *g, int invert, int max_side,
                          uint8_t *out, int *ow, int *oh, fx_error *err)
{
    const int w = orig ? orig->info.width : 0, h = orig ? orig->info.height : 0;
    *ow = *oh = 0;
    if (max_side < 1 || w < 1 || h < 1)
        return fx_error_set(err, FX_ERR_USAGE, "overlay base: bad size");
    double s = (double)max_side / (w > h ? w : h);
    int W2 = base_size(w, s), H2 = base_size(h, s);
    if (W2 == w && H2 == h) { /* not larger than max_side: the grey itself */
        fx_status st = fx_overlay_grey(orig, g, invert, out, err);
        if (st == FX_OK)
            *ow = w, *oh = h;
        return st;
    }
    if ((orig->info.type == FX_PIX_U8 || orig->info.type == FX_PIX_U16) && orig->pixels && g &&
        w % W2 == 0 && h % H2 == 0 && w / W2 == h / H2) {
        fx_status st = base_blocks(orig, g, invert, w / W2, W2, H2, out, err);
        if (st == FX_OK)
            *ow = W2, *oh = H2;
        return st;
    }
    uint8_t *grey = malloc((size_t)w * (size_t)h);
    const double fx = (double)w / W2, fy = (double)h / H2, area = fx * fy;
    /* Each output column's source pixels and their overlaps, once. */
    int span = (int)ceil(fx) + 1;
    int *x0i = malloc((size_t)W2 * sizeof *x0i), *xn = malloc((size_t)W2 * sizeof *xn);
    double *xw = malloc((size_t)W2 * (size_t)span * sizeof *xw);
    double *acc = calloc((size_t)W2, sizeof *acc), *row = calloc((size_t)W2, sizeof *row);
    fx_status st = grey && x0i && xn && xw && acc && row
                       ? fx_overlay_grey(orig, g, invert, grey, err)
                       : fx_error_set(err, FX_ERR_NOMEM, "overlay base: out of memory");
    for (int xo = 0; st == FX_OK && xo < W2; xo++) {
        double a0 = xo * fx, a1 = (xo + 1) * fx;
        int k = 0;
        x0i[xo] = (int)floor(a0);
        for (int ix = x0i[xo]; ix < w && ix < a1 && k < span; ix++, k++)
            xw[(size_t)xo * (size_t)span + (size_t)k] = fmin(ix + 1.0, a1) - fmax((double)ix, a0);
        xn[xo] = k;
    }
    int cached = -1; /* the source row whose horizontal pass is in row[] */
    for (int yo = 0; st == FX_OK && yo < H2; yo++) {
        double y0 = yo * fy, y1 = (yo + 1) * fy;
        memset(acc, 0, (size_t)W2 * sizeof *acc);
        for (int iy = (int)floor(y0); iy < h && iy < y1; iy++) {
            double wy = fmin(iy + 1.0, y1) - fmax((double)iy, y0);
            if (wy <= 0)
                continue;
            if (iy != cached) { /* a row shared by two output rows is summed once */
                const uint8_t *src = grey + (size_t)iy * (size_t)w;
                for (int xo = 0; xo < W2; xo++) {
                    const double *wt = xw + (size_t)xo * (size_t)span;
                    const uint8_t *sp = src + x0i[xo];
                    double sum = 0;
                    for (int k = 0; k < xn[xo]; k++)
                        sum += sp[k] * wt[k];
                    row[xo] = sum;
                }
                cached = iy;
            }
            for (int xo = 0; xo < W2; xo++)
                acc[xo] += wy * row[xo];
        }
        for (int xo = 0; xo < W2; xo++) {
            double v = floor(acc[xo] / area + 0.5);
            out[(size_t)yo * (size_t)W2 + (size_t)xo] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(x0i), free(xn), free(xw);
    free(grey), free(acc), free(row);
    if (st == FX_OK)
        *ow = W2, *oh = H2;
    return st;
}

fx_status fx_overlay_render_base(const uint8_t *base, int ow, int oh, const fx_prep_geom *g,
                                 const uint8_t *heat, int H, int W, const float *bbox,
                                 const fx_overlay_opts *o, uint8_t *rgb, fx_error *err)
{
    if (!base || !g || !rgb || ow < 1 || oh < 1 || g->orig_w < 1 || g->orig_h < 1)
        return fx_error_set(err, FX_ERR_USAGE, "overlay: bad base");
    /* The base as a U8 plane windowed [0, 255] (the identity: it is grey
     * already, inverted already) on a geometry scaled to its size. */
    fx_image img = {.info = {.width = ow, .height = oh, .channels = 1, .type = FX_PIX_U8},
                    .pixels = (void *)base};
    double fx = (double)g->orig_w / ow, fy = (double)g->orig_h / oh;
    fx_prep_geom g2 = *g;
    g2.orig_w = ow, g2.orig_h = oh, g2.scale_x = g->scale_x * fx, g2.scale_y = g->scale_y * fy;
    g2.win_lo = 0, g2.win_hi = 255;
    fx_overlay_opts o2 = *o;
    o2.invert = 0;
    float box[4];
    for (int k = 0; bbox && k < 4; k++)
        box[k] = (float)(bbox[k] / (k % 2 ? fy : fx));
    return fx_overlay_render(&img, &g2, heat, H, W, bbox ? box : NULL, &o2, rgb, err);
}

fx_status fx_overlay_write_base(const uint8_t *base, int ow, int oh, const fx_prep_geom *g,
                                const uint8_t *heat, int H, int W, const float *bbox,
                                const fx_overlay_opts *o, const char *out_png, fx_error *err)
{
    if (!base || !g || !out_png || ow < 1 || oh < 1 || g->orig_w < 1 || g->orig_h < 1)
        return fx_error_set(err, FX_ERR_USAGE, "overlay: bad base");
    uint8_t *rgb = malloc((size_t)ow * (size_t)oh * 3);
    char *tmp = malloc(strlen(out_png) + 48);
    fx_status st = rgb && tmp
                       ? fx_overlay_render_base(base, ow, oh, g, heat, H, W, bbox, o, rgb, err)
                       : fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", out_png);
    if (st == FX_OK)
        st = save_png(rgb, ow, oh, tmp, out_png, err);
    free(rgb), free(tmp);
    return st;
}

fx_status fx_overlay_write_file(const char *src_path, double max_megapixels, const fx_prep_geom *g,
                                const uint8_t *heat, int H, int W, const float *bbox,
                                const fx_overlay_opts *o, const char *out_png, fx_error *err)
{
    if (!src_path || !out_png)
        return fx_error_set(err, FX_ERR_USAGE, "overlay: NULL path");
    fx_decode_limits lim = {max_megapixels};
    fx_image img;
    fx_status st = fx_decode_file(src_path, &lim, &img, err);
    if (st != FX_OK)
        return st;
    size_t w = (size_t)img.info.width, h = (size_t)img.info.height;
    uint8_t *rgb = w <= SIZE_MAX / 3 / h ? malloc(w * h * 3) : NULL;
    size_t tmp_cap = strlen(out_png) + 48;
    char *tmp = malloc(tmp_cap);
    if (!rgb || !tmp) {
        st = fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory for a %zu x %zu overlay", src_path,
                          w, h);
        goto done;
    }
    st = fx_overlay_render(&img, g, heat, H, W, bbox, o, rgb, err);
    if (st != FX_OK) {
        fx_error_prefix(err, "%s", src_path);
        goto done;
    }
    st = save_png(rgb, (int)w, (int)h, tmp, out_png, err);
done:
    free(tmp);
    free(rgb);
    fx_image_free(&img);
    return st;
}
