/* fxscreen: the screening core, one batch of preprocessed images through
 * the model and Grad-CAM to scores, probabilities, heat maps, peaks and
 * boxes.  `fxscreen run` (runjob.h) and `fxscreen serve` (serve.h) both call
 * it, so the same file gives the same probability, peak and box on either.
 *
 * Settings come from three layers (fx_screen_settings_load): the command
 * line over the config file (or the model's sidecar M.yaml) over defaults.
 * An engine (fx_screen_create) loads the model, prepares it for one batch
 * size, completes the settings that need the graph (CAM layer, positive
 * class) and plans it on a device.  Not thread-safe per engine: one thread
 * runs it; several engines may run at once. */
#ifndef FXSCREEN_SCREEN_H
#define FXSCREEN_SCREEN_H
#include "fxscreen/device.h"
#include "fxscreen/prep.h"
#include "fxscreen/runjob.h"
#include "fxscreen/sha256.h"
#include "fxscreen/status.h"
#include <stdint.h>
#include <stdio.h>
#ifdef __cplusplus
extern "C" {
#endif

/* The sidecar of a model: M without ".onnx", plus ".yaml", into *out
 * (malloc'd, caller frees) when that file is readable, else *out = NULL.
 * FX_ERR_NOMEM only. */
fx_status fx_screen_sidecar(const char *model, char **out, fx_error *err);

/* Effective settings: defaults, then the config file (NULL: none), then the
 * command line (method < 0, layer NULL, threshold NaN: not given).  Fills
 * every run setting except the CAM layer and the positive class, which
 * fx_screen_create completes from the graph.  FX_ERR_CONFIG names the file,
 * key and fix. */
fx_status fx_screen_settings_load(const char *config, int method, const char *layer,
                                  double threshold, fx_prep_config *pc, fx_run_config *eff,
                                  fx_error *err);

/* fx_screen_settings_load of YAML text (a run's effective_config from its
 * run.json), through a memfd: nothing is written to disk.  where names the
 * text's origin in messages. */
fx_status fx_screen_settings_yaml(const char *yaml, const char *where, fx_prep_config *pc,
                                  fx_run_config *eff, fx_error *err);

/* The effective settings as YAML text that loads back with --config
 * (results.h5's `config` attribute, run.json, serve's /api/model).  Caller
 * frees; NULL when out of memory. */
char *fx_screen_effective_yaml(const fx_prep_config *pc, const fx_run_config *eff);

typedef struct fx_screen fx_screen;

typedef struct fx_screen_opts {
    int batch;              /* images per engine run, >= 1 */
    fx_device_kind device;  /* auto: CUDA when it runs every node, else the CPU */
    int device_index;       /* cuda:N */
    fx_precision precision; /* on the GPU */
    FILE *log;              /* the one-line device fallback notice; may be NULL */
    const char *log_prefix; /* "run", "serve" */
} fx_screen_opts;

/* Load model (ONNX), check it against pc (channels, size), prepare it at
 * o->batch, complete eff (cam_layer, positive) and plan it.  eff must come
 * from fx_screen_settings_load; config names the file it came from in
 * messages (NULL: "the config").  Errors: FX_ERR_USAGE (model unreadable,
 * bad layer), FX_ERR_CONFIG, FX_ERR_UNSUPPORTED, FX_ERR_DEVICE, FX_ERR_NOMEM. */
fx_status fx_screen_create(const char *model, const char *config, const fx_prep_config *pc,
                           fx_run_config *eff, const fx_screen_opts *o, fx_screen **out,
                           fx_error *err);
void fx_screen_destroy(fx_screen *s);

/* Shapes and identity. */
int fx_screen_batch(const fx_screen *s);
int fx_screen_classes(const fx_screen *s);     /* K, logits per image */
int fx_screen_score_width(const fx_screen *s); /* S, graph output 0 values per image */
void fx_screen_input(const fx_screen *s, int *C, int *H, int *W);
const char *fx_screen_layer(const fx_screen *s); /* the CAM layer */
const char *fx_screen_sha256(const fx_screen *s);
fx_device_kind fx_screen_device(const fx_screen *s); /* where the forward runs */

/* Where one batch's results go; every array has room for the batch's count.
 * Rows whose status is not FX_OK get NaN scores, probability, peak and box,
 * prediction -1 and a zero heat map. */
typedef struct fx_screen_out {
    float *score;   /* (n, S) graph output 0 */
    float *prob;    /* (n) probability of the positive class */
    int8_t *pred;   /* (n) prob >= threshold */
    uint8_t *heat;  /* (n, H, W) the positive class's CAM x 255 */
    float *peak;    /* (n, 2) in original pixels */
    float *bbox;    /* (n, 4) x0, y0, x1, y1 in original pixels */
    float *classes; /* (n, K) softmax (sigmoid for K == 1) of the logits; may be NULL */
} fx_screen_out;

/* Thread-seconds spent by fx_screen_run, added to by each call. */
typedef struct fx_screen_times {
    double infer, cam;
} fx_screen_times;

/* Run count (1..batch) images x: (count, C, H, W); a short batch is
 * zero-padded inside.  status (count, may be NULL: all FX_OK) and geom
 * (count) describe the items.  eff is the completed settings. */
fx_status fx_screen_run(fx_screen *s, const fx_run_config *eff, const float *x, int count,
                        const int8_t *status, const fx_prep_geom *geom, const fx_screen_out *o,
                        fx_screen_times *t, fx_error *err);

/* The forward pass alone (no CAM): the positive class's probability of
 * count (1..batch) images x (count, C, H, W) into prob. */
fx_status fx_screen_probs(fx_screen *s, const float *x, int count, float *prob, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
