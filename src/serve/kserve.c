/* The Open Inference Protocol (KServe v2, as Triton and KServe speak it)
 * over HTTP, beside /api: server and model metadata, health and readiness,
 * and POST /v2/models/<name>[/versions/1]/infer with JSON tensors and the
 * binary-tensor extension (Inference-Header-Content-Length).
 *
 * One input per request: INPUT, a preprocessed FP32 (N, C, H, W) tensor as
 * the model takes it, or IMAGE, BYTES (N) image files (PNG, TIFF, JPEG,
 * JPEG 2000, DICOM) that are decoded and preprocessed here as for
 * /api/predict (base64 strings in JSON, length-prefixed in binary).  The N
 * images join the same batcher as /api/predict's; the connection is resumed
 * once all are done.  Outputs: LOGITS, PROBABILITIES, PROBABILITY and
 * PREDICTION by default; HEATMAP (the CAM at model resolution), PEAK and
 * BBOX (original pixels for IMAGE, model pixels for INPUT) when asked. */
#include <math.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fxscreen/fsutil.h"
#include "serve/serve_internal.h"

#define V2_VERSION    "1" /* the one version of the one model */
#define V2_MAX_IMAGES 256 /* per request (and at most --queue) */

struct sv_v2 {
    long header_len; /* Inference-Header-Content-Length; -1: all of the body is JSON */
    sv_v2_model m;
    sv_v2_request q;
    sv_job *jobs;
    int pending; /* jobs not yet done, under the batcher's lock */
    float *xbuf; /* IMAGE: the preprocessed files (INPUT: q.x) */
    float *score, *classes;
    uint8_t *heat;
    int queue_full;
};

/* An error in the protocol's shape ({"error": message}; "detail" too, as
 * every error of this server). */
static enum MHD_Result v2_error(struct MHD_Connection *c, sv_req *r, int status, const char *fmt,
                                ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result v2_error(struct MHD_Connection *c, sv_req *r, int status, const char *fmt,
                                ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sv_answer_error(c, r, status, msg, "%s", msg);
}

/* /v2/models/<name>[/versions/<v>]<rest>: name, version ("" none) and rest
 * ("", "/ready", "/infer", ...); -1 when the URL has no name. */
static int model_url(const char *url, char *name, size_t nn, char *ver, size_t vn,
                     const char **rest)
{
    const char *p = url + strlen("/v2/models/");
    size_t k = strcspn(p, "/");
    if (!k || k >= nn)
        return -1;
    memcpy(name, p, k);
    name[k] = 0;
    p += k;
    ver[0] = 0;
    if (!strncmp(p, "/versions/", 10)) {
        p += 10;
        k = strcspn(p, "/");
        if (!k || k >= vn)
            return -1;
        memcpy(ver, p, k);
        ver[k] = 0;
        p += k;
    }
    *rest = p;
    return 0;
}

/* The model of url is this server's (an answer queued otherwise). */
static int model_known(struct MHD_Connection *c, sv_req *r, const char *url, const char **rest,
                       enum MHD_Result *res)
{
    char name[256], ver[64];
    if (model_url(url, name, sizeof name, ver, sizeof ver, rest)) {
        *res = v2_error(c, r, 404, "no model in %s: want /v2/models/<name>[/versions/<v>]", url);
        return 0;
    }
    if (strcmp(name, r->srv->model_name)) {
        *res = v2_error(c, r, 404, "unknown model '%s': this server serves '%s'", name,
                        r->srv->model_name);
        return 0;
    }
    if (ver[0] && strcmp(ver, V2_VERSION)) {
        *res = v2_error(c, r, 404, "unknown version '%s' of model '%s': the one version is %s", ver,
                        name, V2_VERSION);
        return 0;
    }
    return 1;
}

static int server_ready(const fx_serve *s)
{
    return atomic_load(&s->ready) && !atomic_load(&s->stopping);
}

static cJSON *int_array(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *tensor_meta(const char *name, const char *type, const int *shape, int nd)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "datatype", type);
    cJSON_AddItemToObject(t, "shape", int_array(shape, nd));
    return t;
}

/* The shape of output k for n images (-1: any batch). */
static int out_shape(const fx_serve *s, int k, int n, int *shape)
{
    shape[0] = n;
    switch (k) {
    case SV_V2_LOGITS: shape[1] = s->S; return 2;
    case SV_V2_PROBABILITIES: shape[1] = s->K; return 2;
    case SV_V2_HEATMAP: shape[1] = s->H, shape[2] = s->W; return 3;
    case SV_V2_PEAK: shape[1] = 2; return 2;
    case SV_V2_BBOX: shape[1] = 4; return 2;
    default: return 1;
    }
}

enum MHD_Result sv_v2_server(struct MHD_Connection *c, sv_req *r, const char *url)
{
    (void)url;
    cJSON *o = cJSON_CreateObject(), *ext = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "name", "fxscreen");
    cJSON_AddStringToObject(o, "version", FX_VERSION);
    cJSON_AddItemToArray(ext, cJSON_CreateString("binary_tensor_data"));
    cJSON_AddItemToObject(o, "extensions", ext);
    return sv_answer_json(c, r, 200, o);
}

enum MHD_Result sv_v2_health(struct MHD_Connection *c, sv_req *r, const char *url)
{
    int live = !strcmp(url, "/v2/health/live");
    int ok = live || server_ready(r->srv);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, live ? "live" : "ready", ok);
    return sv_answer_json(c, r, ok ? 200 : 503, o);
}

enum MHD_Result sv_v2_model_route(struct MHD_Connection *c, sv_req *r, const char *url)
{
    fx_serve *s = r->srv;
    const char *rest;
    enum MHD_Result res;
    if (!model_known(c, r, url, &rest, &res))
        return res;
    if (!strcmp(rest, "/ready")) {
        int ok = server_ready(s);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->model_name);
        cJSON_AddBoolToObject(o, "ready", ok);
        return sv_answer_json(c, r, ok ? 200 : 503, o);
    }
    if (!strcmp(rest, "/infer")) {
        r->allow = "POST";
        return v2_error(c, r, 405, "%s: use POST", url);
    }
    if (*rest)
        return v2_error(c, r, 404,
                        "no route %s: want /v2/models/<name>[/versions/<v>], "
                        "/ready or /infer",
                        url);
    cJSON *o = cJSON_CreateObject(), *vs = cJSON_CreateArray(), *in = cJSON_CreateArray(),
          *out = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "name", s->model_name);
    cJSON_AddItemToArray(vs, cJSON_CreateString(V2_VERSION));
    cJSON_AddItemToObject(o, "versions", vs);
    cJSON_AddStringToObject(o, "platform", "fxscreen");
    int x[4] = {-1, s->C, s->H, s->W}, one[1] = {-1}, shape[3];
    cJSON_AddItemToArray(in, tensor_meta("INPUT", "FP32", x, 4));
    cJSON_AddItemToArray(in, tensor_meta("IMAGE", "BYTES", one, 1));
    cJSON_AddItemToObject(o, "inputs", in);
    for (int k = 0; k < SV_V2_NOUT; k++) {
        int nd = out_shape(s, k, -1, shape);
        cJSON_AddItemToArray(
            out, tensor_meta(sv_v2_outputs[k].name, sv_v2_outputs[k].datatype, shape, nd));
    }
    cJSON_AddItemToObject(o, "outputs", out);
    cJSON_AddStringToObject(o, "sha256", fx_screen_sha256(sv_batcher_engine(s->batcher)));
    return sv_answer_json(c, r, 200, o);
}

/* ---- infer -------------------------------------------------------------------------- */

/* The most body bytes an infer request may send: the upload limit, with
 * base64's third and room for the JSON around it. */
static size_t infer_limit(const fx_serve *s)
{
    return s->o.max_upload / 3 * 4 + 65536;
}

enum MHD_Result sv_v2_begin(struct MHD_Connection *c, sv_req *r)
{
    fx_serve *s = r->srv;
    const char *rest;
    enum MHD_Result res;
    if (!model_known(c, r, r->url, &rest, &res))
        return res;
    if (!*rest || !strcmp(rest, "/ready")) {
        r->allow = "GET, HEAD";
        return v2_error(c, r, 405, "%s %s: use GET", r->method, r->url);
    }
    if (strcmp(rest, "/infer"))
        return v2_error(c, r, 404, "no route %s: want /v2/models/<name>[/versions/<v>]/infer",
                        r->url);
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (enc && strcasecmp(enc, "identity"))
        return v2_error(c, r, 415,
                        "Content-Encoding '%s' is not supported: send the body "
                        "uncompressed",
                        enc);
    const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (len && strtoull(len, NULL, 10) > infer_limit(s))
        return v2_error(c, r, 413,
                        "the body is %s bytes; this server takes at most %zu "
                        "(--max-upload %zu, base64 included)",
                        len, infer_limit(s), s->o.max_upload);
    if (!(r->v2 = calloc(1, sizeof *r->v2)))
        return v2_error(c, r, 503, "out of memory");
    r->v2->header_len = -1;
    const char *hl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Inference-Header-Content-Length");
    if (hl) {
        char *end;
        long long v = strtoll(hl, &end, 10);
        if (end == hl || *end || v < 0)
            return v2_error(c, r, 400, "Inference-Header-Content-Length '%s' is not a length", hl);
        r->v2->header_len = (long)v;
    }
    if (len)
        r->expect = (size_t)strtoull(len, NULL, 10);
    sv_batcher_coming(s->batcher);
    r->coming = 1;
    return MHD_YES;
}

enum MHD_Result sv_v2_data(struct MHD_Connection *c, sv_req *r, const char *data, size_t n)
{
    (void)c;
    return sv_body_append(r, data, n, infer_limit(r->srv)) ? MHD_NO : MHD_YES;
}

/* Room for the outputs of q's images, and their inputs for IMAGE. */
static int reserve(fx_serve *s, struct sv_v2 *v)
{
    size_t hw = (size_t)s->H * s->W, n = (size_t)v->q.n;
    v->jobs = calloc(n, sizeof *v->jobs);
    v->xbuf = v->q.image ? malloc(n * s->C * hw * sizeof(float)) : NULL;
    v->score = malloc(n * s->S * sizeof(float));
    v->classes = malloc(n * s->K * sizeof(float));
    v->heat = malloc(n * hw);
    return v->jobs && (v->xbuf || !v->q.image) && v->score && v->classes && v->heat ? 0 : -1;
}

/* The audit's record of image i: the SHA-256 of its bytes (a file for
 * IMAGE, the tensor for INPUT). */
static void audit_sha(sv_req *r, int i, const void *bytes, size_t n)
{
    if (!r->srv->audit)
        return;
    unsigned char d[SHA256_DIGEST_LENGTH];
    char hex[FX_SHA256_HEX];
    SHA256(bytes, n, d);
    fx_sha256_hex(d, hex);
    if (i == 0)
        memcpy(r->image_sha, hex, sizeof hex);
    if (!r->audit_images)
        r->audit_images = cJSON_CreateArray();
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "image_sha256", hex);
    cJSON_AddItemToArray(r->audit_images, e);
}

/* The model's inputs: the tensor as sent, or each file decoded and
 * preprocessed as for /api/predict; 0, or an answer queued. */
static int take_inputs(struct MHD_Connection *c, sv_req *r, enum MHD_Result *res)
{
    fx_serve *s = r->srv;
    struct sv_v2 *v = r->v2;
    size_t item = (size_t)s->C * s->H * s->W;
    for (int i = 0; i < v->q.n; i++) {
        sv_job *j = &v->jobs[i];
        /* A tensor is in model pixels: peaks and boxes stay there. */
        j->geom = (fx_prep_geom){.orig_w = s->W,
                                 .orig_h = s->H,
                                 .new_w = s->W,
                                 .new_h = s->H,
                                 .scale_x = 1,
                                 .scale_y = 1,
                                 .win_hi = 1};
        if (!v->q.image) {
            j->x = v->q.x + i * item;
            audit_sha(r, i, j->x, item * sizeof(float));
            continue;
        }
        fx_image img = {0};
        fx_error err = {0};
        const char *error;
        double dec, prep;
        j->x = v->xbuf + i * item;
        audit_sha(r, i, v->q.file[i], v->q.file_n[i]);
        int st = sv_decode_prep(s, v->q.file[i], v->q.file_n[i], &img, v->xbuf + i * item, &j->geom,
                                &dec, &prep, &error, &err);
        r->decode_s += dec, r->prep_s += prep;
        if (img.pixels && img.owned) /* patient data */
            explicit_bzero(img.pixels, fx_image_bytes(&img.info));
        fx_image_free(&img);
        if (st) {
            *res = v2_error(c, r, st == 503 || st == 413 ? st : 400, "IMAGE[%d]: %s: %s", i, error,
                            err.msg);
            return -1;
        }
    }
    return 0;
}

/* The request read and checked, its images queued. */
static enum MHD_Result start_infer(struct MHD_Connection *c, sv_req *r)
{
    fx_serve *s = r->srv;
    struct sv_v2 *v = r->v2;
    char msg[512];
    v->m = (sv_v2_model){s->C, s->H, s->W,
                         s->o.queue_max < V2_MAX_IMAGES ? s->o.queue_max : V2_MAX_IMAGES};
    static const uint8_t empty[1];
    int st =
        sv_v2_parse(r->body ? r->body : empty, r->n, v->header_len, &v->m, &v->q, msg, sizeof msg);
    enum MHD_Result res = MHD_YES;
    if (st)
        res = v2_error(c, r, st, "%s", msg);
    else if (reserve(s, v))
        res = v2_error(c, r, 503, "out of memory for %d images", v->q.n), st = 503;
    else
        st = take_inputs(c, r, &res);
    sv_v2_request_free_files(&v->q); /* decoded now, as the body below */
    if (r->body)                     /* patient data, in the model's input now */
        explicit_bzero(r->body, r->cap);
    free(r->body);
    r->body = NULL, r->n = r->cap = 0;
    if (st)
        return res;
    size_t hw = (size_t)s->H * s->W;
    v->pending = v->q.n;
    for (int i = 0; i < v->q.n; i++) {
        sv_job *j = &v->jobs[i];
        j->score = v->score + (size_t)i * s->S;
        j->classes = v->classes + (size_t)i * s->K;
        j->heat = v->heat + i * hw;
        j->conn = c;
        j->pending = &v->pending;
    }
    r->phase = 1;
    MHD_suspend_connection(c); /* before it is queued: see predict.c */
    sv_req_arrived(r);
    if (sv_batcher_submit(s->batcher, v->jobs, v->q.n)) {
        v->queue_full = 1;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

/* Output k's values: JSON data (json) or little-endian bytes appended to
 * bin (binary); -1 when out of memory. */
static int out_values(const fx_serve *s, const struct sv_v2 *v, int k, cJSON *json, char **bin,
                      size_t *bin_n, size_t *bin_cap, size_t *bytes)
{
    int n = v->q.n;
    size_t hw = (size_t)s->H * s->W, count = 0;
    float *f = NULL;
    const uint8_t *u8 = NULL;
    switch (k) {
    case SV_V2_LOGITS: f = v->score, count = (size_t)n * s->S; break;
    case SV_V2_PROBABILITIES: f = v->classes, count = (size_t)n * s->K; break;
    case SV_V2_HEATMAP: u8 = v->heat, count = (size_t)n * hw; break;
    default: break;
    }
    float gathered[4 * V2_MAX_IMAGES]; /* PROBABILITY, PEAK, BBOX */
    if (k == SV_V2_PROBABILITY || k == SV_V2_PEAK || k == SV_V2_BBOX) {
        int w = k == SV_V2_PROBABILITY ? 1 : k == SV_V2_PEAK ? 2 : 4;
        for (int i = 0; i < n; i++)
            for (int e = 0; e < w; e++)
                gathered[count++] = k == SV_V2_PROBABILITY ? v->jobs[i].prob
                                    : k == SV_V2_PEAK      ? v->jobs[i].peak[e]
                                                           : v->jobs[i].bbox[e];
        f = gathered;
    }
    /* The bytes of the values, built once, whichever way they go. */
    size_t need = 0;
    char labels[V2_MAX_IMAGES][FX_RUN_NAME_MAX + 16];
    if (k == SV_V2_PREDICTION)
        for (int i = 0; i < n; i++) {
            sv_prediction(s, &v->jobs[i], labels[i], sizeof labels[i]);
            need += 4 + strlen(labels[i]);
        }
    else
        need = count * (u8 ? 1 : sizeof(float));
    *bytes = need;
    if (!bin) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; k == SV_V2_PREDICTION && i < (size_t)n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(labels[i]));
        for (size_t i = 0; k != SV_V2_PREDICTION && i < count; i++)
            cJSON_AddItemToArray(a, u8               ? cJSON_CreateNumber(u8[i])
                                    : isfinite(f[i]) ? cJSON_CreateNumber(f[i])
                                                     : cJSON_CreateNull());
        cJSON_AddItemToObject(json, "data", a);
        return 0;
    }
    if (*bin_n + need > *bin_cap) {
        size_t cap = (*bin_n + need) * 2;
        char *b = realloc(*bin, cap);
        if (!b)
            return -1;
        *bin = b, *bin_cap = cap;
    }
    char *p = *bin + *bin_n;
    if (k == SV_V2_PREDICTION)
        for (int i = 0; i < n; i++) {
            uint32_t len = (uint32_t)strlen(labels[i]);
            memcpy(p, &len, 4);
            memcpy(p + 4, labels[i], len);
            p += 4 + len;
        }
    else
        memcpy(p, u8 ? (const void *)u8 : (const void *)f, need);
    *bin_n += need;
    return 0;
}

/* The inference response: JSON, then the binary outputs, if any. */
static enum MHD_Result answer_infer(struct MHD_Connection *c, sv_req *r)
{
    fx_serve *s = r->srv;
    struct sv_v2 *v = r->v2;
    if (v->queue_full) {
        atomic_fetch_add(&s->metrics.image_errors, (unsigned long)v->q.n);
        return v2_error(c, r, 503,
                        "queue full: %d images do not fit in the queue (--queue %d); "
                        "retry shortly",
                        v->q.n, s->o.queue_max);
    }
    for (int i = 0; i < v->q.n; i++)
        if (v->jobs[i].st != FX_OK) {
            atomic_fetch_add(&s->metrics.image_errors, 1);
            return v2_error(c, r, 500, "engine error: %s", v->jobs[i].err);
        }
    atomic_fetch_add(&s->metrics.images, (unsigned long)v->q.n);
    cJSON *o = cJSON_CreateObject(), *list = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "model_name", s->model_name);
    cJSON_AddStringToObject(o, "model_version", V2_VERSION);
    if (v->q.id)
        cJSON_AddStringToObject(o, "id", v->q.id);
    char *bin = NULL;
    size_t bin_n = 0, bin_cap = 0;
    int oom = 0;
    for (int q = 0; q < v->q.nwant; q++) {
        int k = v->q.order[q], shape[3];
        cJSON *t = tensor_meta(sv_v2_outputs[k].name, sv_v2_outputs[k].datatype, shape,
                               out_shape(s, k, v->q.n, shape));
        size_t bytes;
        oom |= out_values(s, v, k, t, v->q.want[k] == 2 ? &bin : NULL, &bin_n, &bin_cap, &bytes);
        if (v->q.want[k] == 2) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "binary_data_size", (double)bytes);
            cJSON_AddItemToObject(t, "parameters", p);
        }
        cJSON_AddItemToArray(list, t);
    }
    cJSON_AddItemToObject(o, "outputs", list);
    /* The audit: the first image's result on the line, every image's in
     * "images" when there are several. */
    char label[FX_RUN_NAME_MAX + 16];
    for (int i = 0; i < v->q.n; i++) {
        sv_prediction(s, &v->jobs[i], label, sizeof label);
        if (i == 0) {
            snprintf(r->audit_pred, sizeof r->audit_pred, "%s", label);
            r->audit_prob = v->jobs[0].prob;
        }
        cJSON *e = cJSON_GetArrayItem(r->audit_images, i);
        if (e) {
            cJSON_AddStringToObject(e, "prediction", label);
            cJSON_AddNumberToObject(e, "probability", v->jobs[i].prob);
        }
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text || oom) {
        free(text);
        free(bin);
        return v2_error(c, r, 503, "out of memory for the response");
    }
    if (!bin)
        return sv_answer_bytes(c, r, 200, "application/json", text, strlen(text), 1);
    size_t tn = strlen(text);
    char *all = malloc(tn + bin_n);
    if (!all) {
        free(text);
        free(bin);
        return v2_error(c, r, 503, "out of memory for the response");
    }
    memcpy(all, text, tn);
    memcpy(all + tn, bin, bin_n);
    free(text);
    free(bin);
    r->xhdr = "Inference-Header-Content-Length";
    snprintf(r->xhdr_value, sizeof r->xhdr_value, "%zu", tn);
    return sv_answer_bytes(c, r, 200, "application/octet-stream", all, tn + bin_n, 1);
}

enum MHD_Result sv_v2_finish(struct MHD_Connection *c, sv_req *r)
{
    if (r->phase == 0) {
        r->t_body = fx_now_s();
        enum MHD_Result res = start_infer(c, r);
        sv_req_arrived(r);
        return res;
    }
    if (r->phase == 1 && (r->v2->queue_full || sv_batcher_done(r->srv->batcher, &r->v2->jobs[0])))
        return answer_infer(c, r);
    return MHD_YES;
}

void sv_v2_free(sv_req *r)
{
    struct sv_v2 *v = r->v2;
    cJSON_Delete(r->audit_images);
    r->audit_images = NULL;
    if (!v)
        return;
    if (v->xbuf) /* the model's input is patient data too */
        explicit_bzero(v->xbuf, (size_t)v->q.n * r->srv->C * r->srv->H * r->srv->W * sizeof(float));
    sv_v2_request_free(&v->q, &v->m);
    free(v->xbuf);
    free(v->jobs);
    free(v->score);
    free(v->classes);
    free(v->heat);
    free(v);
    r->v2 = NULL;
}
