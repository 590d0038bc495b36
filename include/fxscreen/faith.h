/* fxscreen: CAM faithfulness by ROAD (Rong, Leemann, Borisov, Kasneci and
 * Kasneci, "A Consistent and Efficient Evaluation Strategy for Attribution
 * Methods", ICML 2022), as pytorch-grad-cam's metrics compute it.
 *
 * For a map M over the model input (H x W) and a percentile p:
 *   - most relevant first (MoRF): the pixels with M >= P_p(M) are removed
 *     (kept: M < P_p(M)), so p = 80 removes the top 20%;
 *   - least relevant first (LeRF): the same on 1 - M (kept: 1 - M <
 *     P_p(1 - M)), which removes the bottom (100 - p)%;
 * P_p is NumPy's 'linear' percentile of the map's H x W values.  Removed
 * pixels are imputed on the preprocessed input (every channel) by ROAD's
 * noisy linear imputation: each removed value is the weighted mean of its
 * in-image 8 neighbours (1/6 across, 1/12 diagonal), removed neighbours
 * being unknowns too, which is one sparse symmetric positive definite
 * system per map (solved by CHOLMOD), plus noise * N(0, 1).  The metric is
 * the change of the positive class's probability, after - before
 * (negative: the confidence dropped); ROAD combined = (mean LeRF change -
 * mean MoRF change) / 2, higher is more faithful.  A uniform random map
 * gives the baseline every number is shown beside. */
#ifndef FXSCREEN_FAITH_H
#define FXSCREEN_FAITH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FX_FAITH_MAX_PCT 32

/* ---- primitives ----------------------------------------------------------- */

/* keep[i] = 1 for the pixels ROAD keeps of map (n values) at percentile p
 * (0 < p < 100): MoRF when most_first, else LeRF (on 1 - map in float). */
void fx_road_keep(const float *map, size_t n, double p, int most_first, uint8_t *keep);

/* The noisy linear imputation of img (C, H, W) where keep is 0, into out
 * (C, H, W; out may be img).  noise: the standard deviation of the normal
 * noise added to imputed values (0: none), drawn from a stream seeded by
 * seed.  FX_ERR_UNSUPPORTED when built without CHOLMOD; FX_ERR_FORMAT when
 * nothing is kept (the system is singular); FX_ERR_NOMEM. */
fx_status fx_road_impute(const float *img, int C, int H, int W, const uint8_t *keep, double noise,
                         uint64_t seed, float *out, fx_error *err);

/* ---- the job ------------------------------------------------------------ */

typedef struct fx_faith_opts {
    const char *model; /* the model the run used (its SHA-256 must match run.json's) */
    int images;        /* ok rows taken, a seeded sample; 0: every ok row */
    int npct;          /* percentiles, each in (0, 100) */
    double pct[FX_FAITH_MAX_PCT];
    double noise;     /* imputation noise (ROAD's and pytorch-grad-cam's default 0.01) */
    uint64_t seed;    /* the sample, the random maps and the noise */
    int store_inputs; /* 1: faithfulness.h5 also holds each preprocessed input */
    FILE *log;        /* progress, may be NULL */
} fx_faith_opts;

/* ROAD's defaults: 50 images, percentiles 10, 20, ..., 90, noise 0.01. */
void fx_faith_opts_default(fx_faith_opts *o);

typedef struct fx_faith_result {
    size_t images;  /* rows measured */
    size_t skipped; /* sampled rows whose original could not be read again */
    int npct;
    double pct[FX_FAITH_MAX_PCT];
    /* mean change of the positive probability over the images, per
     * percentile: the CAM's map, then the random map */
    double morf[FX_FAITH_MAX_PCT], lerf[FX_FAITH_MAX_PCT];
    double rand_morf[FX_FAITH_MAX_PCT], rand_lerf[FX_FAITH_MAX_PCT];
    /* images behind each mean: a percentile that would remove every pixel
     * of an image (its map's ties reach the threshold) is not measurable
     * there; NaN when no image was */
    size_t valid_morf[FX_FAITH_MAX_PCT], valid_lerf[FX_FAITH_MAX_PCT];
    size_t valid_rand_morf[FX_FAITH_MAX_PCT], valid_rand_lerf[FX_FAITH_MAX_PCT];
    double morf_avg, lerf_avg, combined; /* averaged over the measurable percentiles */
    double rand_morf_avg, rand_lerf_avg, rand_combined; /* the same for the random map */
    double prob_mean;                                   /* before any removal */
    double noise;
    uint64_t seed;
    char h5[4200]; /* DIR/faithfulness.h5: per image and percentile */
} fx_faith_result;

/* Measure the run in dir (run.json, results.h5): for each sampled ok row,
 * decode the original again, preprocess it as the run did, and score the
 * imputed inputs of the CAM map (results.h5 /heatmap / 255) and of a
 * random map with the model.  Writes dir/faithfulness.h5 (path, row,
 * probability, map, random map, the changes per percentile; inputs when
 * asked).  FX_ERR_USAGE for another model than the run's or bad options. */
fx_status fx_faith_run(const char *dir, const fx_faith_opts *o, fx_faith_result *res,
                       fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
