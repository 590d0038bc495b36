/* fxscreen: preprocessing of one decoded plane into a model-ready tensor.
 *
 * Steps, in this order (each has a plain C reference in src/prep/):
 *   1. window    : map stored intensities to [0,1]:
 *                  PERCENTILE  lo/hi = percentiles p_lo/p_hi of the image (numpy's
 *                              default 'linear' definition), then clip;
 *                  FIXED       lo/hi given in stored units, then clip;
 *                  NONE        divide by the type's full range (255, 65535; F32 as is).
 *                  DICOM       the file's first Window Center c / Width w (DICOM's
 *                              linear function: lo = c - 0.5 - (w - 1) / 2,
 *                              hi = c - 0.5 + (w - 1) / 2, on the rescaled values);
 *                              a file without one: PERCENTILE with p_lo/p_hi.
 *                  v = (clip(x, lo, hi) - lo) / (hi - lo)   (0 when hi == lo)
 *                  NaN pixels give 0; a window that is not finite gives 0
 *                  everywhere; F32 under NONE is clipped to [0,1].
 *   2. invert    : v = 1 - v (optional; MONOCHROME1-style images)
 *   3. resize    : aspect-preserving to fit (PAD) or fill (CROP) out_h x out_w.
 *                  scale = min(out_w/w, out_h/h) for PAD, max(...) for CROP;
 *                  new size = max(1, round(w*scale)) x max(1, round(h*scale)),
 *                  round half up, computed exactly in integers (the limiting
 *                  side is exactly out_w or out_h).
 *                  Per axis: exact area averaging when shrinking, bilinear with
 *                  half-pixel centres (align_corners=False) when enlarging.
 *   4. pad/crop  : centre the resized plane; pad with pad_value (in [0,1] units),
 *                  or take the centre crop. Offsets: floor((out - new)/2).
 *   5. normalise : y = (v - mean[c]) / std[c]
 *   6. channels  : the plane is replicated to `channels` (1 or 3) planes.
 * Output layout: float32 (channels, out_h, out_w), i.e. one CHW item of an NCHW
 * batch.  fx_prep_geom records the geometry so that maps at model resolution
 * can be taken back to original-image pixels (Grad-CAM boxes). */
#ifndef FXSCREEN_PREP_H
#define FXSCREEN_PREP_H

#include <stddef.h>

#include "fxscreen/image.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fx_window_mode {
    FX_WINDOW_NONE = 0,
    FX_WINDOW_PERCENTILE,
    FX_WINDOW_FIXED,
    FX_WINDOW_DICOM /* the file's Window Center/Width (DICOM's linear VOI), else PERCENTILE */
} fx_window_mode;
typedef enum fx_fit_mode { FX_FIT_PAD = 0, FX_FIT_CROP } fx_fit_mode;
typedef enum fx_store_type { FX_STORE_F16 = 0, FX_STORE_U8 } fx_store_type;

typedef struct fx_prep_config {
    fx_window_mode window;
    double p_lo, p_hi; /* percentiles in [0,100], PERCENTILE mode (and DICOM's fallback) */
    double w_lo, w_hi; /* stored units, FIXED mode */
    int invert;        /* 0/1 */
    int out_h, out_w;  /* model input, pixels */
    fx_fit_mode fit;
    float pad_value; /* in windowed [0,1] units */
    int channels;    /* 1 or 3 */
    float mean[3], std[3];
    /* Decode limits and the prep cache's storage type live here too so one
     * YAML file configures the whole input half. */
    double max_megapixels; /* refuse larger images before allocating; 0 = none */
    fx_store_type store;   /* prep.h5 /images: float16 or uint8 (uint8 stores
                              the [0,1] plane before normalisation, x255) */
} fx_prep_config;

/* Defaults: percentile 0.5/99.5, no invert, 256x256, pad 0, 1 channel,
 * mean 0.5 std 0.25, 100 MP limit, float16 store. */
void fx_prep_config_default(fx_prep_config *cfg);

/* Load a YAML config (see configs/default.yaml for every key).  Keys not
 * given keep their defaults; an unknown key or a bad value is FX_ERR_CONFIG
 * with a message naming the file, the key and the fix. */
fx_status fx_prep_config_load(const char *path, fx_prep_config *cfg, fx_error *err);

/* Check ranges (out sizes 1..8192, channels 1|3, std != 0, p_lo < p_hi ...). */
fx_status fx_prep_config_validate(const fx_prep_config *cfg, fx_error *err);

/* Write the effective config as YAML text into a malloc'd string (caller frees). */
char *fx_prep_config_to_yaml(const fx_prep_config *cfg);

/* Geometry of one item: how original pixels map onto model pixels.
 * model_x = orig_x * scale_x + off_x  (pixel centres: (i+0.5) convention). */
typedef struct fx_prep_geom {
    int orig_w, orig_h;      /* decoded size */
    int new_w, new_h;        /* after resize, before pad/crop */
    int off_x, off_y;        /* where the resized plane's (0,0) lands in the output
                                (negative when cropped) */
    double scale_x, scale_y; /* new_w/orig_w, new_h/orig_h */
    double win_lo, win_hi;   /* window actually applied, stored units */
} fx_prep_geom;

/* Scratch memory for one worker (reused across images; not thread-safe). */
typedef struct fx_prep_scratch fx_prep_scratch;
fx_prep_scratch *fx_prep_scratch_create(void);
void fx_prep_scratch_destroy(fx_prep_scratch *s);

/* Reference preprocessing of img into out: float (channels, out_h, out_w).
 * If plane01 is non-NULL it also receives the single [0,1] plane after
 * pad/crop, before normalisation (out_h*out_w floats), for the uint8 store.
 * If stats is non-NULL it receives min/max/mean of img in stored units; for
 * U8/U16 they come exactly from the histogram the percentile window builds
 * anyway, which saves a pass over the full-size plane. */
fx_status fx_prep_run(const fx_image *img, const fx_prep_config *cfg, fx_prep_scratch *s,
                      float *out, float *plane01, fx_prep_geom *geom, fx_image_stats *stats,
                      fx_error *err);

/* The individual steps, exposed for tests and for the GPU path's checks. */

/* Percentile (numpy 'linear') of the plane; p in [0,100]. NaNs are ignored. */
double fx_prep_percentile(const fx_image *img, double p, fx_prep_scratch *s);

/* Window: out[i] = clamp((x - lo)/(hi - lo), 0, 1), or 0 when hi <= lo. */
void fx_prep_window(const fx_image *img, double lo, double hi, float *out);

/* Resize a float plane (sh, sw) -> (dh, dw): area when shrinking, bilinear
 * (half-pixel centres, edge clamped) when enlarging, decided per axis. */
fx_status fx_prep_resize(const float *src, int sh, int sw, float *dst, int dh, int dw,
                         fx_prep_scratch *s, fx_error *err);

/* Compute the geometry for an orig_w x orig_h image under cfg. */
void fx_prep_geometry(int orig_w, int orig_h, const fx_prep_config *cfg, fx_prep_geom *g);

#ifdef __cplusplus
}
#endif
#endif
