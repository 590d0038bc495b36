/* fxscreen: the `prep` job (dataset QA and a preprocessed cache).
 *
 * sources -> reader pool -> (consumer thread, in order) -> prep.h5 + summary.csv
 *
 * DIR/prep.h5 (every dataset has one row per input, in input order):
 *   /images         float16 (N, C, H, W) model-ready tensors, or with
 *                   store=uint8: uint8 (N, H, W), the [0,1] plane x255 before
 *                   normalisation; chunked one image per chunk, deflate+shuffle
 *   /path           string (N)
 *   /status         int8 (N): 0 ok, else a negative fx_status code
 *   /error          string (N): "" when ok, else "<path>: <reason>"
 *   /original_size  int32 (N, 2): width, height (0 when the header was unreadable)
 *   /bit_depth      uint8 (N)
 *   root attributes: config (effective YAML), fxscreen_version, created (UTC ISO 8601),
 *                    images_layout, status_codes
 * DIR/summary.csv: path,status,width,height,bit_depth,min,max,mean,error */
#ifndef FXSCREEN_PREPJOB_H
#define FXSCREEN_PREPJOB_H

#include <signal.h>
#include <stdio.h>

#include "fxscreen/pool.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_progress {
    size_t done;    /* inputs finished */
    long total;     /* -1 when unknown */
    size_t errors;  /* inputs that failed */
    double seconds; /* since start */
} fx_progress;

typedef struct fx_prep_job {
    const char *const *sources; /* specs, see source.h */
    int nsources;
    FILE *stdin_fp;      /* for "-" */
    const char *out_dir; /* created if missing */
    fx_pool_config pool;
    const volatile sig_atomic_t *cancel; /* polled between batches; may be NULL */
    int count_first;                     /* walk the sources once first for the total (ETA) */
    void (*progress)(void *ctx, const fx_progress *p); /* after each batch; may be NULL */
    void *progress_ctx;
} fx_prep_job;

typedef struct fx_prep_job_result {
    size_t total, ok, errors;
    double seconds;
    int cancelled; /* stopped early on request; outputs are valid and consistent */
} fx_prep_job_result;

/* Run the job. Errors: FX_ERR_USAGE/CONFIG for unusable sources or config
 * (nothing written), FX_ERR_IO when an output cannot be written.  Inputs that
 * fail are rows, not errors. */
fx_status fx_prep_job_run(const fx_prep_job *job, fx_prep_job_result *res, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
