/* The run job's parameters and run.json, read and written with cJSON. */
#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/jsonutil.h"
#include "fxscreen/loader.h"
#include "fxscreen/screen.h"
#include "job/run_internal.h"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* realpath of an existing file, or a copy of path (the later open names it). */
static char *abs_path(const char *path)
{
    char buf[PATH_MAX];
    return strdup(realpath(path, buf) ? buf : path);
}

/* Parameters of a fresh run from the job (model/config made absolute). */
fx_status run_params_from_job(const fx_run_job *job, run_params *p, fx_error *err)
{
    char cwd[PATH_MAX];
    memset(p, 0, sizeof *p);
    if (!job->model || !job->sources || job->nsources < 1)
        return fx_error_set(err, FX_ERR_USAGE, "run: a model and at least one source are needed");
    if (job->batch < 1 || job->batch > 4096)
        return fx_error_set(err, FX_ERR_USAGE, "run: batch %d out of range (1..4096)", job->batch);
    if (!getcwd(cwd, sizeof cwd))
        return fx_error_set(err, FX_ERR_IO, "run: cannot read the working directory");
    p->model = abs_path(job->model);
    p->cwd = strdup(cwd);
    p->sources = calloc((size_t)job->nsources, sizeof *p->sources);
    if (!p->model || !p->cwd || !p->sources)
        return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    p->nsources = job->nsources;
    for (int i = 0; i < job->nsources; i++)
        if (!(p->sources[i] = strdup(job->sources[i])))
            return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    if (job->config)
        p->config = abs_path(job->config);
    else if (fx_screen_sidecar(p->model, &p->config, err) != FX_OK)
        return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    p->layer = dup_or_null(job->layer);
    p->batch = job->batch;
    p->threads = job->threads;
    p->method = job->method >= 0 && job->method < FX_CAM_NUM_METHODS ? job->method : -1;
    p->threshold = job->threshold;
    p->overlays = job->overlays;
    p->overlay_size = job->overlay_size == 0  ? FX_OVERLAY_SIZE_DEFAULT
                      : job->overlay_size < 0 ? 0
                                              : job->overlay_size;
    p->device = job->device;
    p->devices =
        job->devices.n > 0 || job->devices.all ? job->devices : (fx_device_list){1, 0, {0}};
    p->precision = job->precision;
    p->streams = job->streams;
    p->prep_device = job->prep_device == FX_DEVICE_CUDA ? FX_DEVICE_CUDA : FX_DEVICE_CPU;
    p->shard = job->shard;
    return FX_OK;
}

/* A string, or null for NULL. */
static cJSON *str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *params_json(const run_params *p)
{
    char dev[8 + 3 * FX_MAX_ENGINES]; /* as --device spells it */
    fx_device_list_spec(p->device, &p->devices, dev, sizeof dev);
    cJSON *o = cJSON_CreateObject(), *src = cJSON_CreateArray();
    if (!o || !src) {
        cJSON_Delete(o);
        cJSON_Delete(src);
        return NULL;
    }
    int ok = 1;
    for (int i = 0; i < p->nsources; i++)
        ok &= cJSON_AddItemToArray(src, cJSON_CreateString(p->sources[i]));
    const char *method = p->method >= 0 ? fx_cam_method_name((fx_cam_method)p->method) : NULL;
    ok &= cJSON_AddStringToObject(o, "fxscreen_version", FX_VERSION) != NULL;
    ok &= cJSON_AddStringToObject(o, "model", p->model) != NULL;
    ok &= cJSON_AddItemToObject(o, "config", str_or_null(p->config));
    ok &= cJSON_AddItemToObject(o, "cwd", str_or_null(p->cwd));
    ok &= cJSON_AddItemToObject(o, "sources", src);
    ok &= cJSON_AddNumberToObject(o, "batch", p->batch) != NULL;
    ok &= cJSON_AddNumberToObject(o, "threads", p->threads) != NULL;
    ok &= cJSON_AddItemToObject(o, "method", str_or_null(method));
    ok &= cJSON_AddItemToObject(o, "layer", str_or_null(p->layer));
    ok &= cJSON_AddItemToObject(o, "threshold",
                                isnan(p->threshold) ? cJSON_CreateNull()
                                                    : cJSON_CreateNumber(p->threshold));
    ok &= cJSON_AddNumberToObject(o, "overlays", (double)p->overlays) != NULL;
    ok &= cJSON_AddNumberToObject(o, "overlay_size", p->overlay_size) != NULL;
    ok &= cJSON_AddStringToObject(o, "device", dev) != NULL;
    ok &= cJSON_AddStringToObject(o, "precision", fx_precision_name(p->precision)) != NULL;
    ok &= cJSON_AddNumberToObject(o, "streams", p->streams) != NULL;
    ok &= cJSON_AddStringToObject(o, "prep_device", fx_device_name(p->prep_device)) != NULL;
    ok &= cJSON_AddItemToObject(o, "model_sha256", str_or_null(p->model_sha));
    ok &= cJSON_AddItemToObject(o, "effective_config", str_or_null(p->effective));
    if (p->shard.count > 0) {
        cJSON *sh = cJSON_AddObjectToObject(o, "shard");
        ok &= sh && cJSON_AddNumberToObject(sh, "index", p->shard.index) &&
              cJSON_AddNumberToObject(sh, "count", p->shard.count) &&
              cJSON_AddNumberToObject(sh, "inputs", (double)p->inputs) &&
              cJSON_AddItemToObject(sh, "inputs_sha256", str_or_null(p->inputs_sha));
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

fx_status run_params_save(const run_params *p, const char *dir, fx_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/run.json", dir);
    cJSON *o = params_json(p);
    fx_status st =
        o ? fx_json_save(o, path, err) : fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    cJSON_Delete(o);
    return st;
}

fx_status run_params_load(const char *dir, run_params *p, fx_error *err)
{
    char path[PATH_MAX];
    memset(p, 0, sizeof *p);
    snprintf(path, sizeof path, "%s/run.json", dir);
    uint8_t *raw = NULL;
    size_t n = 0;
    if (fx_read_file(path, 1 << 24, &raw, &n, NULL) != FX_OK)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: cannot read (is %s the --out DIR of an "
                            "earlier `fxscreen run`?)",
                            path, dir);
    int ok = run_params_parse((const char *)raw, n, p);
    free(raw);
    if (!ok)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: not a run.json written by `fxscreen run` "
                            "(damaged or edited); start a new run with a fresh --out DIR",
                            path);
    return FX_OK;
}

/* Sources are relative to the directory the run started in. */
fx_status run_params_check_cwd(const run_params *p, fx_error *err)
{
    char cwd[PATH_MAX];
    int relative = 0;
    for (int i = 0; i < p->nsources; i++) {
        if (!strcmp(p->sources[i], "-"))
            return fx_error_set(err, FX_ERR_USAGE,
                                "run --resume: the run read its list from "
                                "stdin ('-'), which cannot be replayed; pass a list file instead");
        relative |= p->sources[i][0] != '/';
    }
    if (relative && p->cwd && (!getcwd(cwd, sizeof cwd) || strcmp(cwd, p->cwd)))
        return fx_error_set(err, FX_ERR_USAGE,
                            "run --resume: the sources are relative to %s; "
                            "cd there and resume again",
                            p->cwd);
    return FX_OK;
}
