/* fxscreen: deterministic synthetic radiographs of long bones with ground truth.
 *
 * Each image is a square grey plane of side `size` px showing a limb (a soft-
 * tissue envelope) around one or two long bones: a cortical shell brighter
 * than the medullary canal, wider epiphyses with trabecular texture at both
 * ends.  Images are labelled fractured with probability fracture_rate; a
 * fracture is a thin jagged radiolucent line across a bone shaft with random
 * obliquity, gap, displacement and angulation of the distal fragment (about
 * half are undisplaced hairline fractures).  Normal and fractured images share
 * the same distractors: growth-plate lines near the bone ends, nutrient
 * canals, burned-in lead letter markers (L/R...), bright rectangles, shutter
 * (collimation) edges, a heel-effect gradient, random exposure and gamma,
 * blur and signal-dependent noise.  All geometry is in fractions of the side,
 * so the same (seed, index) gives the same scene at any size.
 *
 * Determinism: image `index` of seed `seed` depends on (seed, index, size,
 * bits, fracture_rate) only, never on the thread count (a per-image RNG
 * seeded by splitmix64 from (seed, index) drives xoshiro256**, and pixel
 * noise is a counter-based hash of the pixel position).
 *
 * Stored values: 8-bit uses the full 0..255; 16-bit images are 12-bit
 * detector values 0..4095 stored in 16-bit samples (as most DR/CR systems). */
#ifndef FXSCREEN_SYNTH_H
#define FXSCREEN_SYNTH_H

#include <stdint.h>

#include "fxscreen/image.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FX_SYNTH_MIN_SIZE  32
#define FX_SYNTH_MAX_SIZE  4096
#define FX_SYNTH_MAX_16BIT 4095 /* 12-bit detector range in 16-bit samples */

typedef enum fx_synth_format { FX_SYNTH_PNG = 0, FX_SYNTH_TIFF = 1 } fx_synth_format;

typedef struct fx_synth_opts {
    const char *out_dir;    /* created if missing (fx_synth_run only) */
    int n;                  /* images to write, >= 1 */
    uint64_t seed;          /* any value */
    int size;               /* side in px, FX_SYNTH_MIN_SIZE..FX_SYNTH_MAX_SIZE */
    int bits;               /* 8 or 16 */
    fx_synth_format format; /* PNG, or TIFF (Deflate + horizontal predictor) */
    double fracture_rate;   /* probability that an image is fractured, 0..1 */
    int threads;            /* OpenMP threads; 0 = OpenMP default */
} fx_synth_opts;

/* Ground truth of one image.  Continuous pixel coordinates, x to the right,
 * y down: pixel (x, y) covers [x, x+1) x [y, y+1) (centre x+0.5, y+0.5).
 * The box [x0, x1) x [y0, y1) (integers) is clipped to the image and tightly
 * covers the fracture gap (the pixels where either fragment's intact bone
 * was cut away, plus the pixel holding the centre), so x0 <= cx < x1 and
 * y0 <= cy < y1.  All fields are 0 when label is 0. */
typedef struct fx_synth_truth {
    int label;              /* 1 fractured, 0 normal */
    double cx, cy;          /* fracture centre on the bone axis, px */
    int x0, y0, x1, y1;     /* box, px, half-open */
    double nx, ny;          /* unit normal of the fracture line, towards the distal fragment */
    double ax, ay;          /* unit axis of the fractured bone, towards the distal fragment */
    double gap_px;          /* width of the radiolucent gap across the line, px */
    double jag_px;          /* the line deviates at most this far from straight, px */
    double shaft_radius_px; /* outer radius of the fractured shaft at the fracture, px */
    int displaced;          /* 1 if the distal fragment is shifted or angulated */
} fx_synth_truth;

/* Defaults: n 16, seed 1, size 512, bits 8, PNG, fracture_rate 0.5,
 * threads 0, out_dir NULL (must be set before fx_synth_run). */
void fx_synth_opts_default(fx_synth_opts *o);

/* Check o's fields; FX_ERR_USAGE with a message naming the field otherwise.
 * out_dir is checked only when need_dir is 1. */
fx_status fx_synth_opts_check(const fx_synth_opts *o, int need_dir, fx_error *err);

/* Render image `index` into memory.  img receives an owned plane of
 * o->size x o->size, U8 (bits 8) or U16 (bits 16, values 0..4095); free it
 * with fx_image_free.  truth (may be NULL) receives the ground truth.
 * Uses o->size, bits, seed and fracture_rate; ignores out_dir, n, format and
 * threads.  Single-threaded and reentrant: call it from many threads at once. */
fx_status fx_synth_render(const fx_synth_opts *o, uint64_t index, fx_image *img,
                          fx_synth_truth *truth, fx_error *err);

/* Create o->out_dir (and parents), render images 0..n-1 in parallel with
 * OpenMP (o->threads), write DIR/img_NNNNNN.png (or .tif, Deflate with the
 * horizontal predictor), then DIR/labels.csv with the header
 * `path,label,cx,cy,x0,y0,x1,y1` in index order (cx, cy with one decimal;
 * centre and box fields empty for normal images).  labels.csv is written to
 * labels.csv.tmp and renamed, so it never exists half-written; on any error
 * no labels.csv is written (image files already written stay). */
fx_status fx_synth_run(const fx_synth_opts *o, fx_error *err);

/* fx_synth_run that also returns the number of fractured images in
 * *n_fractured (may be NULL; set only on success). */
fx_status fx_synth_run_ex(const fx_synth_opts *o, int *n_fractured, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
