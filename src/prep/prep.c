/* Preprocessing driver: window -> invert -> resize -> pad/crop -> normalise
 * -> replicate channels (see fxscreen/prep.h for the spec of each step).
 * Windowing is fused into the first resize pass one row at a time (the
 * vertical one when shrinking vertically, else the horizontal one), so the
 * only full-size buffer is the caller's decoded image. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/prep.h"
#include "prep/prep_internal.h"

fx_prep_scratch *fx_prep_scratch_create(void)
{
    return calloc(1, sizeof(fx_prep_scratch));
}

void fx_prep_scratch_destroy(fx_prep_scratch *s)
{
    if (!s)
        return;
    free(s->hist);
    free(s->hist2);
    free(s->hist32);
    free(s->lut);
    free(s->row);
    free(s->tmp);
    free(s->acc);
    free(s->vacc);
    free(s->plane);
    fx_axis_plan_free(&s->px);
    fx_axis_plan_free(&s->py);
    free(s);
}

/* round() of num/den for positive integers, half away from zero, exactly. */
static int round_div(int64_t num, int64_t den)
{
    return (int)((2 * num + den) / (2 * den));
}

void fx_prep_geometry(int orig_w, int orig_h, const fx_prep_config *cfg, fx_prep_geom *g)
{
    memset(g, 0, sizeof *g);
    g->orig_w = orig_w;
    g->orig_h = orig_h;
    if (orig_w < 1 || orig_h < 1)
        return;
    /* scale = out_w/w or out_h/h; compare out_w*h with out_h*w in integers
     * so ties and the rounding of the other side are exact. */
    int64_t xw = (int64_t)cfg->out_w * orig_h, xh = (int64_t)cfg->out_h * orig_w;
    int width_limits = cfg->fit == FX_FIT_PAD ? xw <= xh : xw >= xh;
    if (width_limits) {
        g->new_w = cfg->out_w;
        g->new_h = round_div((int64_t)orig_h * cfg->out_w, orig_w);
    } else {
        g->new_h = cfg->out_h;
        g->new_w = round_div((int64_t)orig_w * cfg->out_h, orig_h);
    }
    if (g->new_w < 1)
        g->new_w = 1;
    if (g->new_h < 1)
        g->new_h = 1;
    /* floor((out - new)/2), also for negative differences (crop). */
    int dx = cfg->out_w - g->new_w, dy = cfg->out_h - g->new_h;
    g->off_x = dx >= 0 ? dx / 2 : -((-dx + 1) / 2);
    g->off_y = dy >= 0 ? dy / 2 : -((-dy + 1) / 2);
    g->scale_x = (double)g->new_w / orig_w;
    g->scale_y = (double)g->new_h / orig_h;
}

fx_status fx_prep_check(const fx_image *img, const fx_prep_config *cfg, fx_error *err)
{
    fx_status st = fx_prep_config_validate(cfg, err);
    if (st != FX_OK)
        return st;
    int w = img->info.width, h = img->info.height;
    double mp = (double)w * (double)h / 1e6;
    if (cfg->max_megapixels > 0 && mp > cfg->max_megapixels)
        return fx_error_set(err, FX_ERR_LIMIT,
                            "image is %d x %d = %.1f MP, over limits.max_megapixels %.1f", w, h, mp,
                            cfg->max_megapixels);
    return FX_OK;
}

/* The window mode that applies: DICOM's falls back to percentiles when the
 * file has no window. */
static fx_window_mode window_mode(const fx_image *img, const fx_prep_config *cfg)
{
    return cfg->window == FX_WINDOW_DICOM && !img->info.has_window ? FX_WINDOW_PERCENTILE
                                                                   : cfg->window;
}

int fx_prep_needs_hist(const fx_image *img, const fx_prep_config *cfg)
{
    return window_mode(img, cfg) == FX_WINDOW_PERCENTILE;
}

fx_status fx_prep_bounds(const fx_image *img, const fx_prep_config *cfg, const uint64_t *hist,
                         size_t bins, fx_prep_scratch *s, double *lo, double *hi, fx_error *err)
{
    fx_pixtype t = img->info.type;
    *lo = 0, *hi = 1;
    switch (window_mode(img, cfg)) {
    case FX_WINDOW_DICOM: /* DICOM PS3.3 C.11.2.1.2.1, the linear VOI function */
        *lo = img->info.win_center - 0.5 - (img->info.win_width - 1) / 2;
        *hi = img->info.win_center - 0.5 + (img->info.win_width - 1) / 2;
        break;
    case FX_WINDOW_PERCENTILE:
        if (hist)
            fx_prep_hist_percentiles(hist, bins, (size_t)img->info.width * (size_t)img->info.height,
                                     cfg->p_lo, cfg->p_hi, lo, hi);
        else
            return fx_prep_percentiles2(img, cfg->p_lo, cfg->p_hi, s, lo, hi, err);
        break;
    case FX_WINDOW_FIXED:
        *lo = cfg->w_lo;
        *hi = cfg->w_hi;
        break;
    case FX_WINDOW_NONE: *hi = t == FX_PIX_U8 ? 255.0 : t == FX_PIX_U16 ? 65535.0 : 1.0; break;
    }
    return FX_OK;
}

fx_status fx_prep_run(const fx_image *img, const fx_prep_config *cfg, fx_prep_scratch *s,
                      float *out, float *plane01, fx_prep_geom *geom, fx_image_stats *stats,
                      fx_error *err)
{
    if (!img || !img->pixels || !cfg || !s || !out)
        return fx_error_set(err, FX_ERR_USAGE, "fx_prep_run: NULL argument");
    int w = img->info.width, h = img->info.height;
    fx_pixtype t = img->info.type;
    if (w < 1 || h < 1 || (t != FX_PIX_U8 && t != FX_PIX_U16 && t != FX_PIX_F32))
        return fx_error_set(err, FX_ERR_USAGE, "fx_prep_run: bad image %d x %d type %d", w, h,
                            (int)t);
    fx_status st = fx_prep_check(img, cfg, err);
    if (st != FX_OK)
        return st;

    /* 1. window bounds in stored units.  Integer planes get one histogram
     * pass that serves both the percentiles and the stats. */
    double lo = 0, hi = 1;
    size_t bins = 0;
    int use_hist = t != FX_PIX_F32 && (stats || fx_prep_needs_hist(img, cfg));
    if (use_hist && (st = fx_prep_histogram(img, s, &bins, stats, err)) != FX_OK)
        return st;
    if (stats && !use_hist)
        fx_image_stats_compute(img, stats);
    if ((st = fx_prep_bounds(img, cfg, use_hist ? s->hist : NULL, bins, s, &lo, &hi, err)) != FX_OK)
        return st;

    fx_prep_geom g;
    fx_prep_geometry(w, h, cfg, &g);
    g.win_lo = lo;
    g.win_hi = hi;

    /* Only the part of the resized plane that lands in the output is
     * computed (a crop skips the rest). */
    int rx, ox, nx, ry, oy, ny;
    fx_prep_visible(g.new_w, g.off_x, cfg->out_w, &rx, &ox, &nx);
    fx_prep_visible(g.new_h, g.off_y, cfg->out_h, &ry, &oy, &ny);
    st = fx_axis_plan_build(&s->px, w, g.new_w, rx, nx, err);
    if (st == FX_OK)
        st = fx_axis_plan_build(&s->py, h, g.new_h, ry, ny, err);
    if (st != FX_OK)
        return st;

    size_t ow = (size_t)cfg->out_w, oh = (size_t)cfg->out_h, npix = ow * oh;
    size_t rows = (size_t)(s->py.src_hi - s->py.src_lo);
    float *plane = plane01;
    if ((t != FX_PIX_F32 && !s->lut && !(s->lut = malloc(65536 * sizeof(float)))) ||
        fx_prep_grow((void **)&s->row, &s->row_cap, (size_t)w * sizeof(float)) ||
        (g.new_h > h &&
         fx_prep_grow((void **)&s->tmp, &s->tmp_cap, rows * (size_t)nx * sizeof(float) + 1)) ||
        fx_prep_grow((void **)&s->acc, &s->acc_cap, (size_t)nx * sizeof(double) + 1) ||
        fx_prep_grow((void **)&s->vacc, &s->vacc_cap, (size_t)w * sizeof(float)) ||
        (!plane && fx_prep_grow((void **)&s->plane, &s->plane_cap, npix * sizeof(float))))
        return fx_error_set(err, FX_ERR_NOMEM, "fx_prep_run: out of memory (%d x %d image)", w, h);
    if (!plane)
        plane = s->plane;

    if (t != FX_PIX_F32)
        fx_prep_window_lut(t == FX_PIX_U8 ? 256 : 65536, lo, hi, cfg->invert, s->lut);
    for (size_t i = 0; i < npix; i++) /* 4. pad (the resize fills the visible window) */
        plane[i] = cfg->pad_value;
    float *vis = plane + (size_t)oy * ow + (size_t)ox;
    if (nx > 0 && ny > 0 && g.new_h <= h) {
        /* Shrinking vertically: each output row is first summed over its
         * source rows at full width (window + invert fused, contiguous
         * vector work), then resized horizontally once; the horizontal
         * weights run on ny rows instead of on every source row (a
         * 2048 -> 256 shrink: 8x fewer).  The same linear map as the
         * passes below in the other order, summed in float (rounding
         * differs from the reference by a few ulp; test_prep). */
        for (int i = 0; i < ny; i++) {
            const float *wy = s->py.w + (size_t)i * (size_t)s->py.stride;
            for (int k = 0; k < s->py.count[i]; k++)
                fx_prep_window_row_acc(img, s->py.first[i] + k, lo, hi, cfg->invert, s->lut, wy[k],
                                       k == 0, s->row, s->vacc);
            fx_prep_resize_row(&s->px, s->vacc, vis + (size_t)i * ow);
        }
    } else if (nx > 0 && ny > 0) {
        /* 1-3. window + invert + horizontal pass, row by row, then the
         * vertical pass straight into the visible window */
        for (size_t r = 0; r < rows; r++) {
            fx_prep_window_row(img, s->py.src_lo + (int)r, lo, hi, cfg->invert, s->lut, s->row);
            fx_prep_resize_row(&s->px, s->row, s->tmp + r * (size_t)nx);
        }
        fx_prep_resize_cols(&s->py, s->tmp, nx, vis, ow, s->acc);
    }

    /* 5-6. normalise per channel */
    for (int c = 0; c < cfg->channels; c++) {
        float m = cfg->mean[c], sd = cfg->std[c];
        float *o = out + (size_t)c * npix;
        for (size_t i = 0; i < npix; i++)
            o[i] = (plane[i] - m) / sd;
    }
    if (geom)
        *geom = g;
    return FX_OK;
}
