/* fxscreen: internals of src/prep shared by the C reference and the CUDA path.
 *
 * Resize plans: one table per axis, built once per image, shared by the C
 * reference (resize.c) and kernels/preprocess.cu so both do the same math. */
#ifndef FXSCREEN_PREP_INTERNAL_H
#define FXSCREEN_PREP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/prep.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Taps of one axis of a resize sn -> dn, for destination indices
 * d0 .. d0+n-1 only (a crop needs just the visible part).
 * Destination i (0-based within the plan) reads source samples
 * first[i] .. first[i]+count[i]-1 with weights w[i*stride + k]; the weights
 * of one destination sum to 1 (up to float rounding). */
typedef struct fx_axis_plan {
    int n;               /* destination samples described */
    int stride;          /* taps per row of w (max of count) */
    int src_lo;          /* min of first[] */
    int src_hi;          /* max of first[]+count[] (exclusive) */
    int *first;          /* (n) */
    int *count;          /* (n) */
    float *w;            /* (n, stride) */
    size_t cap_n, cap_w; /* allocated elements, for reuse */
} fx_axis_plan;

/* Build the plan for sn -> dn (both >= 1), destination range [d0, d0+n).
 * Area averaging when dn <= sn (exact interval overlaps, computed in
 * integers), bilinear with half-pixel centres (align_corners=False, source
 * coordinate clamped at 0, index clamped at sn-1) when dn > sn.
 * Reuses p's arrays; FX_ERR_NOMEM on failure (p stays freeable). */
fx_status fx_axis_plan_build(fx_axis_plan *p, int sn, int dn, int d0, int n, fx_error *err);

/* Free a plan's arrays and zero it. Safe on a zeroed plan. */
void fx_axis_plan_free(fx_axis_plan *p);

/* Visible part of the resized plane in the output, for one axis: resized
 * indices [*r0, *r0+*n) land at output index *o0 onward. */
void fx_prep_visible(int new_n, int off, int out_n, int *r0, int *o0, int *n);

/* Grow *buf to hold need bytes (never shrinks). 0 on success, -1 on ENOMEM. */
int fx_prep_grow(void **buf, size_t *cap, size_t need);

struct fx_prep_scratch {
    uint64_t *hist;   /* (65536) histogram for percentiles */
    uint64_t *hist2;  /* (65536) second level of the F32 radix selection */
    uint32_t *hist32; /* (65536) U8/U16 counts of one chunk, added into hist */
    float *lut;       /* (65536) window LUT for U8/U16 */
    float *row;       /* one windowed source row */
    size_t row_cap;
    float *tmp; /* rows resized horizontally: (src rows, visible cols) */
    size_t tmp_cap;
    double *acc; /* one row of vertical accumulators */
    size_t acc_cap;
    float *vacc; /* rows first: one output row summed over its source rows (width) */
    size_t vacc_cap;
    float *plane; /* [0,1] plane after pad/crop when the caller gives none */
    size_t plane_cap;
    fx_axis_plan px, py;
};

/* Two percentiles (numpy 'linear') in one pass over the data. */
/* Exact histogram of a U8/U16 plane into s->hist (256 or 65536 bins,
 * returned in *bins), and the plane's stats read off it (min/max/mean exact:
 * the sum is taken in integers).  One pass over the plane for both. */
fx_status fx_prep_histogram(const fx_image *img, fx_prep_scratch *s, size_t *bins,
                            fx_image_stats *stats, fx_error *err);

/* Percentiles p_lo/p_hi (numpy 'linear') from a histogram of n values. */
void fx_prep_hist_percentiles(const uint64_t *h, size_t bins, size_t n, double p_lo, double p_hi,
                              double *lo, double *hi);

fx_status fx_prep_percentiles2(const fx_image *img, double p_lo, double p_hi, fx_prep_scratch *s,
                               double *lo, double *hi, fx_error *err);

/* fx_prep_run's steps, shared with the GPU path (kernels/preprocess.cu):
 * the config and megapixel checks; whether the window needs the histogram
 * (percentiles); the window bounds in stored units (from hist when given,
 * else computed); min/max/mean from an integer plane's histogram of n
 * pixels. */
fx_status fx_prep_check(const fx_image *img, const fx_prep_config *cfg, fx_error *err);
int fx_prep_needs_hist(const fx_image *img, const fx_prep_config *cfg);
fx_status fx_prep_bounds(const fx_image *img, const fx_prep_config *cfg, const uint64_t *hist,
                         size_t bins, fx_prep_scratch *s, double *lo, double *hi, fx_error *err);
void fx_prep_hist_stats(const uint64_t *hist, size_t bins, size_t n, fx_image_stats *stats);

/* Window (and invert) source row y into out (width floats).  lut holds the
 * 65536-entry table from fx_prep_window_lut for U8/U16 (unused for F32). */
void fx_prep_window_row(const fx_image *img, int y, double lo, double hi, int invert,
                        const float *lut, float *out);

/* acc[x] (= when first, else +=) wk * window(source row y)[x], x < width:
 * fx_prep_window_row fused with one weighted row of a vertical pass.  row
 * is width floats of scratch (used for F32 only). */
void fx_prep_window_row_acc(const fx_image *img, int y, double lo, double hi, int invert,
                            const float *lut, float wk, int first, float *row, float *acc);

/* lut[x] = window(x) (1 - window(x) when invert) for x < bins. */
void fx_prep_window_lut(size_t bins, double lo, double hi, int invert, float *lut);

/* Horizontal pass of one row: dst[i] = sum_k w * src[first+k], i < px->n. */
void fx_prep_resize_row(const fx_axis_plan *px, const float *src, float *dst);

/* Vertical pass: dst row i (i < py->n, each px->n wide, dst row stride
 * dst_stride) from tmp rows (tmp row r holds source row py->src_lo + r). */
void fx_prep_resize_cols(const fx_axis_plan *py, const float *tmp, int width, float *dst,
                         size_t dst_stride, double *acc);

#ifdef __cplusplus
}
#endif
#endif
