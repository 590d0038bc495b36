/* fxscreen: Grad-CAM overlays: the radiograph with a colour heat map on top.
 *
 * An overlay is an 8-bit RGB image at the ORIGINAL resolution:
 *   grey(x, y)  = the decoded plane windowed exactly as the model saw it
 *                 (fx_prep_window with geom->win_lo/win_hi, then 1 - v when
 *                 inverted), as round-half-up(v * 255), like prep.h5's uint8
 *                 store;
 *   h(x, y)     = the heat map (model-input resolution, uint8, value / 255)
 *                 sampled bilinearly at the pixel's model position, 0 where
 *                 that position was cropped away (fit: crop);
 *   alpha       = opacity * h, so cold areas show the plain radiograph;
 *   out         = round((1 - alpha) * grey + alpha * cmap[round(255 * h)])
 *                 per channel, in double.
 * Optionally the CAM box is outlined in cyan (0, 255, 255) on top.
 * Colour maps are matplotlib's perceptually uniform 256-entry tables
 * (src/out/colormap_data.h, written by scripts/gen_colormap.py). */
#ifndef FXSCREEN_OVERLAY_H
#define FXSCREEN_OVERLAY_H

#include <stdint.h>

#include "fxscreen/image.h"
#include "fxscreen/prep.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- colour maps ---------------------------------------------------------- */

typedef enum fx_colormap {
    FX_CMAP_INFERNO = 0,
    FX_CMAP_VIRIDIS,
    FX_CMAP_MAGMA,
    FX_CMAP_PLASMA,
    FX_CMAP_CIVIDIS,
    FX_CMAP_NUM /* count, not a map */
} fx_colormap;

/* "inferno", "viridis", "magma", "plasma", "cividis" (case-insensitive) ->
 * *out.  Returns 0, or -1 for NULL or an unknown name (*out untouched). */
int fx_colormap_parse(const char *name, fx_colormap *out);

/* The lower-case name of c, or "unknown" outside the enum.  Never NULL. */
const char *fx_colormap_name(fx_colormap c);

/* rgb = entry v of map c (matplotlib's float RGB x 255, rounded).  A c
 * outside the enum gives black. */
void fx_colormap_rgb(fx_colormap c, uint8_t v, uint8_t rgb[3]);

/* The whole table of map c (256 RGB entries), NULL outside the enum. */
const uint8_t (*fx_colormap_table(fx_colormap c))[3];

/* ---- overlays ----------------------------------------------------------------- */

typedef struct fx_overlay_opts {
    fx_colormap cmap;
    double opacity; /* in [0, 1]: alpha where the heat is 1 (alpha = opacity * heat) */
    int invert;     /* 1: grey shown inverted, as the model saw it (config invert: true) */
    int draw_box;   /* 1: outline bbox in cyan, 1 px wide below 1500 px (larger of
                       width/height), 2 px below 3000, 3 px from 3000 on */
} fx_overlay_opts;

/* Inferno, opacity 0.5, no invert, box on. */
void fx_overlay_opts_default(fx_overlay_opts *o);

/* Render one overlay into rgb: (orig_h, orig_w, 3) uint8, row-major RGB,
 * caller-allocated (orig->info.height * width * 3 bytes), fully overwritten.
 *   orig : the decoded plane (U8/U16/F32), its size must equal g->orig_w x
 *          g->orig_h.
 *   g    : the geometry fx_prep_run recorded for this image (win_lo/win_hi
 *          included: the window actually applied, whatever the mode).
 *   heat : (H, W) uint8 at model-input resolution, value / 255 = heat.
 *          Original pixel (x, y) samples it at model position
 *            mx = (x + 0.5) * g->scale_x + g->off_x - 0.5  (my likewise),
 *          bilinearly with half-pixel centres and edges clamped; a pixel
 *          whose centre (x + 0.5) * scale_x + off_x falls outside [0, W)
 *          (or [0, H) for y) was cropped away and gets no heat.
 *   bbox : x0, y0, x1, y1 as fx_cam_locate gives them (box EDGES in original
 *          pixels: pixel i spans [i, i + 1), so x1/y1 are exclusive edges),
 *          or NULL, or any NaN: no box.  The outline runs along the inside
 *          of the pixels the box touches (floor(x0) .. ceil(x1) - 1, clipped
 *          to the image); a box with no area draws nothing.
 * Runs an OpenMP parallel for over rows.  FX_ERR_USAGE for NULL pointers,
 * sizes < 1, an unknown map, opacity outside [0, 1], infinite box values or
 * a geometry that does not match orig; FX_ERR_NOMEM.  On error rgb is
 * unspecified. */
fx_status fx_overlay_render(const fx_image *orig, const fx_prep_geom *g, const uint8_t *heat, int H,
                            int W, const float *bbox, const fx_overlay_opts *o, uint8_t *rgb,
                            fx_error *err);

/* The grey plane alone, as fx_overlay_render computes it under the map:
 * grey (orig height x width bytes) = the plane windowed with g->win_lo/
 * win_hi, inverted when asked, x255 rounded.  FX_ERR_USAGE, FX_ERR_NOMEM. */
fx_status fx_overlay_grey(const fx_image *orig, const fx_prep_geom *g, int invert, uint8_t *grey,
                          fx_error *err);
/* Decode src_path (fx_decode_file; max_megapixels as in the config, 0 = no
 * limit), render as fx_overlay_render, and write an 8-bit RGB PNG to out_png
 * through a temporary file in the same directory ("<out_png>.tmp.<pid>.<n>")
 * renamed into place, so a killed process never leaves a half-written PNG
 * under the final name (an existing out_png is replaced).  The directory must
 * exist.  Errors name the file (source or output) and the reason.  Memory:
 * the decoded plane plus 3 bytes per original pixel, freed before return. */
fx_status fx_overlay_write_file(const char *src_path, double max_megapixels, const fx_prep_geom *g,
                                const uint8_t *heat, int H, int W, const float *bbox,
                                const fx_overlay_opts *o, const char *out_png, fx_error *err);

/* ---- reduced overlays (--overlay-size) ------------------------------------------ */

/* The overlay's base: the grey of fx_overlay_grey brought to at most
 * max_side pixels on its longer side by area averaging (output pixel
 * (x', y') covers original [x' fx, (x'+1) fx) x [y' fy, (y'+1) fy),
 * fx = w / ow, fy = h / oh, partial pixels weighted by their overlap; the
 * mean rounded half up), ow = max(1, round(w s)), oh likewise, s = max_side
 * / max(w, h).  No larger than the original: when max_side >= max(w, h) it
 * is the grey itself.  out holds max_side^2 bytes (or w * h when smaller).
 * Made by the reader that decoded the image, so the writer need not decode
 * it again. */
fx_status fx_overlay_base(const fx_image *orig, const fx_prep_geom *g, int invert, int max_side,
                          uint8_t *out, int *ow, int *oh, fx_error *err);

/* The overlay of a base (ow x oh from fx_overlay_base of the original g
 * describes), rendered as fx_overlay_render renders the original, at the
 * base's size: overlay pixel centre (x' + 0.5) maps to original (x' + 0.5)
 * w / ow, then to the model as there; the box scaled likewise.  At full size
 * this is fx_overlay_render's output exactly.  Into rgb (ow * oh * 3
 * bytes, caller-allocated; the triage report's pictures), or written as
 * fx_overlay_write_file writes. */
fx_status fx_overlay_render_base(const uint8_t *base, int ow, int oh, const fx_prep_geom *g,
                                 const uint8_t *heat, int H, int W, const float *bbox,
                                 const fx_overlay_opts *o, uint8_t *rgb, fx_error *err);
fx_status fx_overlay_write_base(const uint8_t *base, int ow, int oh, const fx_prep_geom *g,
                                const uint8_t *heat, int H, int W, const float *bbox,
                                const fx_overlay_opts *o, const char *out_png, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
