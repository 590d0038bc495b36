/* run.json's reader (run_params_parse) and run_params_free: apart from
 * the rest of the run's parameters so that its fuzz target
 * (tests/fuzz/fuzz_runjson.c) links without the engine. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job/run_internal.h"

void run_params_free(run_params *p)
{
    free(p->model);
    free(p->config);
    free(p->cwd);
    free(p->layer);
    free(p->model_sha);
    free(p->effective);
    free(p->inputs_sha);
    for (int i = 0; i < p->nsources; i++)
        free(p->sources[i]);
    free(p->sources);
    memset(p, 0, sizeof *p);
}

/* Member `key` of o as an owned string: 1 when it is a string (copied into
 * *out), or null / absent where allowed (*out NULL); 0 otherwise. */
static int get_str(const cJSON *o, const char *key, int nullable, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return nullable;
    if (!cJSON_IsString(v) || !v->valuestring)
        return 0;
    return (*out = strdup(v->valuestring)) != NULL;
}

/* Member `key` as a number in [lo, hi]; absent: *out unchanged (1). */
static int get_num(const cJSON *o, const char *key, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return 1;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return 0;
    *out = v->valuedouble;
    return 1;
}

/* run.json's "shard" object (absent: not sharded); 0 when malformed. */
static int shard_from_json(const cJSON *sh, run_params *p)
{
    double index = -1, count = 0, inputs = -1;
    if (!sh)
        return 1;
    int ok = cJSON_IsObject(sh) && get_num(sh, "count", 1, FX_SHARD_MAX, &count) &&
             get_num(sh, "index", 0, count - 1, &index) && index >= 0 &&
             get_num(sh, "inputs", 0, 1e15, &inputs) && inputs >= 0 &&
             get_str(sh, "inputs_sha256", 0, &p->inputs_sha) && strlen(p->inputs_sha) == 64;
    p->shard.index = (int)index, p->shard.count = (int)count;
    p->inputs = (size_t)inputs;
    return ok;
}

/* The fields of a parsed run.json into p; 0 when one is missing or wrong. */
static int params_from_json(const cJSON *o, run_params *p)
{
    double batch = 16, threads = 0, overlays = FX_OVERLAY_NONE, threshold = NAN, ovsize = 0;
    double streams = 0; /* absent (runs before it existed): the default */
    char *method = NULL, *device = NULL, *precision = NULL, *prep_device = NULL;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "sources"), *s;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "threshold");
    int ok = cJSON_IsObject(o) && get_str(o, "model", 0, &p->model) &&
             get_str(o, "config", 1, &p->config) && get_str(o, "cwd", 1, &p->cwd) &&
             get_str(o, "layer", 1, &p->layer) && get_str(o, "model_sha256", 1, &p->model_sha) &&
             get_str(o, "effective_config", 1, &p->effective) && get_str(o, "method", 1, &method) &&
             get_str(o, "device", 1, &device) && get_str(o, "precision", 1, &precision) &&
             get_str(o, "prep_device", 1, &prep_device) && get_num(o, "batch", 1, 4096, &batch) &&
             get_num(o, "threads", 0, 1024, &threads) &&
             get_num(o, "overlays", FX_OVERLAY_NONE, FX_OVERLAY_ALL, &overlays) &&
             get_num(o, "overlay_size", 0, 65536, &ovsize) &&
             get_num(o, "streams", 0, FX_MAX_ENGINES, &streams) &&
             (!th || cJSON_IsNull(th) || get_num(o, "threshold", 0, 1, &threshold)) &&
             cJSON_IsArray(src) && cJSON_GetArraySize(src) >= 1;
    if (ok && !(p->sources = calloc((size_t)cJSON_GetArraySize(src), sizeof *p->sources)))
        ok = 0;
    const cJSON *list = ok ? src : NULL;
    cJSON_ArrayForEach(s, list)
    {
        if (!cJSON_IsString(s) || !(p->sources[p->nsources] = strdup(s->valuestring))) {
            ok = 0;
            break;
        }
        p->nsources++;
    }
    p->batch = (int)batch, p->threads = (int)threads, p->threshold = threshold;
    p->overlays = (fx_overlay_mode)overlays;
    p->overlay_size = (int)ovsize; /* absent (runs before it existed): full size */
    p->streams = (int)streams;
    fx_cam_method cm;
    p->method = -1;
    if (ok && method && fx_cam_method_parse(method, &cm, NULL) == FX_OK)
        p->method = (int)cm;
    else if (method)
        ok = 0;
    if (ok && device && fx_device_parse_list(device, &p->device, &p->devices))
        ok = 0;
    if (ok && precision && fx_precision_parse(precision, &p->precision))
        ok = 0;
    p->prep_device = FX_DEVICE_CPU; /* absent (runs before it existed): the CPU */
    if (ok && prep_device &&
        (fx_device_parse(prep_device, &p->prep_device) || p->prep_device == FX_DEVICE_AUTO))
        ok = 0;
    free(method);
    free(device);
    free(precision);
    free(prep_device);
    return ok && shard_from_json(cJSON_GetObjectItemCaseSensitive(o, "shard"), p);
}

int run_params_parse(const char *text, size_t n, run_params *p)
{
    memset(p, 0, sizeof *p);
    cJSON *o = cJSON_ParseWithLength(text, n);
    int ok = o && params_from_json(o, p);
    cJSON_Delete(o);
    if (!ok)
        run_params_free(p);
    return ok;
}
