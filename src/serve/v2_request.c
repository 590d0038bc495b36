/* Parsing and checking a v2 infer request (src/serve/v2_request.h).  Every
 * refusal names the field and what to send instead. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/jsonutil.h"
#include "serve/base64.h"
#include "serve/v2_request.h"

const sv_v2_output sv_v2_outputs[SV_V2_NOUT] = {
    {"LOGITS", "FP32", 1},      {"PROBABILITIES", "FP32", 1}, {"PROBABILITY", "FP32", 1},
    {"PREDICTION", "BYTES", 1}, {"HEATMAP", "UINT8", 0},      {"PEAK", "FP32", 0},
    {"BBOX", "FP32", 0},
};

typedef struct parse {
    const sv_v2_model *m;
    sv_v2_request *q;
    char *msg;
    size_t msg_n;
} parse;

static int fail(parse *p, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parse *p, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, p->msg_n, fmt, ap);
    va_end(ap);
    return status;
}

/* The strings of a (possibly nested) JSON array, up to cap; -1 otherwise. */
static int strings(const cJSON *a, const char **out, int cap, int *k)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (cJSON_IsArray(e)) {
            if (strings(e, out, cap, k))
                return -1;
        } else if (!cJSON_IsString(e) || *k >= cap)
            return -1;
        else
            out[(*k)++] = e->valuestring;
    }
    return 0;
}

/* A shape of non-negative integers into shape[0..8); its rank, or -1. */
static int parse_shape(const cJSON *a, long *shape)
{
    int nd = 0;
    const cJSON *e;
    if (!cJSON_IsArray(a))
        return -1;
    cJSON_ArrayForEach(e, a)
    {
        if (nd >= 8 || !cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9 ||
            e->valuedouble != floor(e->valuedouble))
            return -1;
        shape[nd++] = (long)e->valuedouble;
    }
    return nd;
}

/* The requested outputs (all the default ones when none is named). */
static int parse_outputs(parse *p, const cJSON *req)
{
    sv_v2_request *q = p->q;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "parameters");
    const cJSON *bdo = cJSON_GetObjectItemCaseSensitive(params, "binary_data_output");
    if (params && !cJSON_IsObject(params))
        return fail(p, 400, "'parameters' must be an object");
    if (bdo && !cJSON_IsBool(bdo))
        return fail(p, 400, "'binary_data_output' must be true or false");
    int binary = cJSON_IsTrue(bdo) ? 2 : 1;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(req, "outputs"), *o;
    if (list && !cJSON_IsArray(list))
        return fail(p, 400, "'outputs' must be an array");
    if (!list || !cJSON_GetArraySize(list)) {
        for (int k = 0; k < SV_V2_NOUT; k++)
            if (sv_v2_outputs[k].by_default)
                q->want[k] = binary, q->order[q->nwant++] = k;
        return 0;
    }
    cJSON_ArrayForEach(o, list)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name"));
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "parameters");
        const cJSON *bd = cJSON_GetObjectItemCaseSensitive(op, "binary_data");
        int k = 0;
        while (name && k < SV_V2_NOUT && strcmp(name, sv_v2_outputs[k].name))
            k++;
        if (!name || k == SV_V2_NOUT)
            return fail(p, 400,
                        "unknown output '%.64s': this model has LOGITS, PROBABILITIES, "
                        "PROBABILITY, PREDICTION, HEATMAP, PEAK and BBOX",
                        name ? name : "(no name)");
        if (cJSON_GetObjectItemCaseSensitive(op, "classification"))
            return fail(p, 400,
                        "the classification extension is not supported: ask for "
                        "PROBABILITIES and PREDICTION");
        if (bd && !cJSON_IsBool(bd))
            return fail(p, 400, "output '%s': 'binary_data' must be true or false", name);
        if (!q->want[k])
            q->order[q->nwant++] = k;
        q->want[k] = bd ? (cJSON_IsTrue(bd) ? 2 : 1) : binary;
    }
    return 0;
}

/* IMAGE's n files: length-prefixed in bin, or base64 strings in data. */
static int parse_files(parse *p, const cJSON *data, int binary, const uint8_t *bin, size_t bin_n)
{
    sv_v2_request *q = p->q;
    int n = q->n;
    q->file = calloc((size_t)n, sizeof *q->file);
    q->file_n = calloc((size_t)n, sizeof *q->file_n);
    q->own = calloc((size_t)n, sizeof *q->own);
    if (!q->file || !q->file_n || !q->own)
        return fail(p, 503, "out of memory for %d images", n);
    if (binary) { /* each element: a 4-byte little-endian length, then the bytes */
        size_t at = 0;
        for (int i = 0; i < n; i++) {
            uint32_t len;
            if (bin_n - at < 4)
                return fail(p, 400, "IMAGE: the binary data ends before element %d", i);
            memcpy(&len, bin + at, 4);
            at += 4;
            if (len > bin_n - at)
                return fail(p, 400, "IMAGE[%d]: %u bytes announced, %zu left", i, len, bin_n - at);
            q->file[i] = bin + at, q->file_n[i] = len;
            at += len;
        }
        if (at != bin_n)
            return fail(p, 400, "IMAGE: %zu bytes after the last of %d elements", bin_n - at, n);
        return 0;
    }
    const char **b64 = calloc((size_t)n, sizeof *b64);
    int k = 0, st = 0;
    if (!b64)
        return fail(p, 503, "out of memory for %d images", n);
    if (strings(data, b64, n, &k) || k != n)
        st = fail(p, 400, "IMAGE 'data' must hold %d base64 strings", n);
    for (int i = 0; !st && i < n; i++) {
        if (sv_base64_decode(b64[i], &q->own[i], &q->file_n[i]))
            st = fail(p, 400, "IMAGE[%d] is not base64 (standard alphabet)", i);
        q->file[i] = q->own[i];
    }
    free(b64);
    return st;
}

/* The one input of the request. */
static int parse_input(parse *p, const cJSON *req, const uint8_t *bin, size_t bin_n)
{
    const sv_v2_model *m = p->m;
    sv_v2_request *q = p->q;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(req, "inputs");
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) != 1)
        return fail(p, 400,
                    "give one input: INPUT (FP32 [N, %d, %d, %d], preprocessed) "
                    "or IMAGE (BYTES [N], image files)",
                    m->C, m->H, m->W);
    const cJSON *in = cJSON_GetArrayItem(inputs, 0);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "name"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "datatype"));
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(in, "parameters");
    const cJSON *bds = cJSON_GetObjectItemCaseSensitive(params, "binary_data_size");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    long shape[8];
    int nd = parse_shape(cJSON_GetObjectItemCaseSensitive(in, "shape"), shape);
    if (!name || !type || nd < 1)
        return fail(p, 400,
                    "an input needs 'name', 'datatype' and 'shape' (a list of "
                    "non-negative integers)");
    q->image = !strcmp(name, "IMAGE");
    if (!q->image && strcmp(name, "INPUT"))
        return fail(p, 400, "unknown input '%.64s': give INPUT or IMAGE", name);
    if (strcmp(type, q->image ? "BYTES" : "FP32"))
        return fail(p, 400, "input %s is %s, not %.16s", name, q->image ? "BYTES" : "FP32", type);
    int bad_shape = q->image ? !(nd == 1 || (nd == 2 && shape[1] == 1))
                             : nd != 4 || shape[1] != m->C || shape[2] != m->H || shape[3] != m->W;
    if (bad_shape)
        return q->image ? fail(p, 400, "IMAGE has shape [N] (or [N, 1])")
                        : fail(p, 400, "INPUT has shape [N, %d, %d, %d]", m->C, m->H, m->W);
    if (shape[0] < 1 || shape[0] > m->max_n)
        return fail(p, 400, "a request holds 1 to %d images (and no more than --queue), not %ld",
                    m->max_n, shape[0]);
    if (bds && (!cJSON_IsNumber(bds) || bds->valuedouble < 0 || (size_t)bds->valuedouble != bin_n))
        return fail(p, 400,
                    "input %s: binary_data_size is not the %zu bytes after the JSON "
                    "header",
                    name, bin_n);
    if (!bds && bin_n)
        return fail(p, 400,
                    "%zu bytes follow the JSON header but no input has "
                    "binary_data_size",
                    bin_n);
    if (!bds && !cJSON_IsArray(data))
        return fail(p, 400, "input %s has neither 'data' nor binary_data_size", name);
    q->n = (int)shape[0];
    if (q->image)
        return parse_files(p, data, bds != NULL, bin, bin_n);
    size_t want = (size_t)q->n * m->C * m->H * m->W, k = 0;
    if (!(q->x = malloc(want * sizeof(float))))
        return fail(p, 503, "out of memory for %d images", q->n);
    if (bds) {
        if (bin_n != want * sizeof(float))
            return fail(p, 400, "INPUT [%d, %d, %d, %d] FP32 is %zu bytes, not %zu", q->n, m->C,
                        m->H, m->W, want * sizeof(float), bin_n);
        memcpy(q->x, bin, bin_n); /* little-endian, as this machine */
    } else if (fx_json_floats(data, q->x, want, &k) || k != want) /* data: an array */
        return fail(p, 400, "INPUT 'data' must hold %zu numbers", want);
    return 0;
}

int sv_v2_parse(const uint8_t *body, size_t n, long header_len, const sv_v2_model *m,
                sv_v2_request *q, char *msg, size_t msg_n)
{
    memset(q, 0, sizeof *q);
    parse p = {m, q, msg, msg_n};
    size_t hl = header_len < 0 ? n : (size_t)header_len;
    if (hl > n)
        return fail(&p, 400, "Inference-Header-Content-Length %zu is past the body's %zu bytes", hl,
                    n);
    cJSON *req = cJSON_ParseWithLength((const char *)body, hl);
    int st = 0;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (!cJSON_IsObject(req))
        st = fail(&p, 400, "the inference request is not a JSON object");
    else if (id && !cJSON_IsString(id))
        st = fail(&p, 400, "'id' must be a string");
    else if (id && !(q->id = strdup(id->valuestring)))
        st = fail(&p, 503, "out of memory");
    if (!st)
        st = parse_outputs(&p, req);
    if (!st)
        st = parse_input(&p, req, body + hl, n - hl);
    cJSON_Delete(req);
    if (st)
        sv_v2_request_free(q, m);
    return st;
}

void sv_v2_request_free_files(sv_v2_request *q)
{
    for (int i = 0; q->own && i < q->n; i++)
        if (q->own[i]) {
            explicit_bzero(q->own[i], q->file_n[i]);
            free(q->own[i]);
        }
    free(q->file);
    free(q->file_n);
    free(q->own);
    q->file = NULL, q->file_n = NULL, q->own = NULL;
}

void sv_v2_request_free(sv_v2_request *q, const sv_v2_model *m)
{
    if (q->x) /* the model's input is patient data */
        explicit_bzero(q->x, (size_t)q->n * m->C * m->H * m->W * sizeof(float));
    sv_v2_request_free_files(q);
    free(q->x);
    free(q->id);
    memset(q, 0, sizeof *q);
}
