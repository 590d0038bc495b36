/* Internals of the run job shared by src/job/run_job.c (the pipeline) and
 * src/job/run_params.c (its parameters and run.json). */
#ifndef FX_JOB_RUN_INTERNAL_H
#define FX_JOB_RUN_INTERNAL_H

#include "fxscreen/runjob.h"
#include "fxscreen/shard.h"

/* Everything that defines a run; all strings owned. */
typedef struct run_params {
    char *model, *config, *cwd, *layer;
    char **sources;
    int nsources;
    int batch, threads;
    int method;       /* as given on the command line: -1 not given */
    double threshold; /* NaN not given */
    fx_overlay_mode overlays;
    int overlay_size; /* longer side of the overlays; 0: the original's */
    fx_device_kind device;
    fx_device_list devices;     /* cuda:N, cuda:N,M,..., cuda:all */
    int streams;                /* engines per listed GPU; 0: FX_RUN_STREAMS */
    fx_device_kind prep_device; /* CPU or CUDA */
    fx_precision precision;     /* on the GPU */
    /* What the run was started with (run.json; checked on resume). */
    char *model_sha, *effective;
    /* A sharded run: the shard and the whole list's size and digest
     * (fx_source_list) when it started; count 0 otherwise. */
    fx_shard shard;
    size_t inputs;
    char *inputs_sha;
} run_params;

void run_params_free(run_params *p);

/* The parameters of a fresh run from the job: model and config made
 * absolute, the sidecar M.yaml found when no config is given. */
fx_status run_params_from_job(const fx_run_job *job, run_params *p, fx_error *err);

/* DIR/run.json (cJSON), through a temporary file fsync'd and renamed. */
fx_status run_params_save(const run_params *p, const char *dir, fx_error *err);

/* Reads DIR/run.json into p; FX_ERR_USAGE naming the file when it is
 * missing, not JSON, or not what run_params_save writes. */
fx_status run_params_load(const char *dir, run_params *p, fx_error *err);

/* run.json's text into p: 1, or 0 (p emptied) when it is not JSON or not
 * what run_params_save writes (src/job/run_json.c). */
int run_params_parse(const char *text, size_t n, run_params *p);

/* Sources relative to the directory the run started in: FX_ERR_USAGE when
 * the caller is elsewhere, or when the list came from stdin ('-'). */
fx_status run_params_check_cwd(const run_params *p, fx_error *err);

#endif
