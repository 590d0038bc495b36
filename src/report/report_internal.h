/* Internals of the triage report (src/report): the pictures of a row
 * (report_img.c) and the embedded page (assets.c). */
#ifndef FX_REPORT_INTERNAL_H
#define FX_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/overlay.h"
#include "fxscreen/prep.h"
#include "fxscreen/status.h"

/* What every row's pictures share: the run's preprocessing and overlay
 * settings (from its effective config) and the report's sizes. */
typedef struct rp_ctx {
    fx_prep_config prep;
    fx_overlay_opts ov;
    int heat_h, heat_w; /* results.h5 /heatmap's rows and columns */
    int thumb, view, quality;
} rp_ctx;

/* One row's pictures as data URIs (malloc'd; NULL when not made). */
typedef struct rp_pics {
    char *thumb, *overlay, *original;
    int w, h; /* the view's size */
} rp_pics;

/* Decode the original again (bytes when not NULL, an archive member's;
 * else the file at path) and render the thumbnail, and with want_view the
 * full-size overlay and original.  heat: heat_h x heat_w; bbox: 4 floats
 * or NULL.  Errors name the file (the row is then listed without pictures). */
fx_status rp_render(const rp_ctx *c, const char *path, const uint8_t *bytes, size_t n,
                    const uint8_t *heat, const float *bbox, int want_view, fx_prep_scratch *scratch,
                    rp_pics *out, fx_error *err);
void rp_pics_free(rp_pics *p);

/* "data:<mime>;base64,<b>", malloc'd; NULL when out of memory. */
char *rp_data_uri(const char *mime, const uint8_t *b, size_t n);

/* The page's parts, embedded from src/report/web at build time. */
typedef struct rp_asset {
    const unsigned char *data;
    size_t size;
} rp_asset;
rp_asset rp_asset_css(void);
rp_asset rp_asset_js(void);

#endif
