/* POST /api/predict: the upload (multipart form field `image`, a raw image
 * body, or JSON {"image": base64}) decoded and preprocessed on the worker
 * thread, screened by the batcher, drawn (overlay and windowed image PNGs)
 * back on a worker thread, kept in the store and answered.  Bytes never
 * touch the disk. */
#include <math.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fxscreen/cam.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/loader.h"
#include "fxscreen/overlay.h"
#include "serve/serve_internal.h"

#define PNG_LEVEL 1 /* overlays are drawn per request: speed over size */

/* The media type of the request (before any ';'), lower case, in out. */
static void media_type(struct MHD_Connection *c, char *out, size_t n)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    size_t k = 0;
    for (; ct && *ct && *ct != ';' && k + 1 < n; ct++)
        if (*ct != ' ' && *ct != '\t')
            out[k++] = (char)(*ct >= 'A' && *ct <= 'Z' ? *ct + 32 : *ct);
    out[k] = 0;
}

/* "true"/"1"/"yes" -> 1, "false"/"0"/"no"/"" -> 0, else -1. */
static int parse_bool(const char *v)
{
    if (!v)
        return -1;
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
        return 1;
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !*v)
        return 0;
    return -1;
}

int sv_body_append(sv_req *r, const void *data, size_t n, size_t limit)
{
    if (!n) /* an empty form field: nothing to keep (and no buffer yet) */
        return 0;
    if (r->n + n > limit)
        return -1;
    if (r->n + n > r->cap) {
        size_t cap = r->cap                                       ? r->cap
                     : r->expect > r->n + n && r->expect <= limit ? r->expect
                                                                  : 64 * 1024;
        while (cap < r->n + n)
            cap *= 2;
        uint8_t *b = realloc(r->body, cap);
        if (!b)
            return -1;
        r->body = b, r->cap = cap;
    }
    memcpy(r->body + r->n, data, n);
    r->n += n;
    return 0;
}

/* The most body bytes a request of r's kind may send: the image limit, plus
 * base64's third and room for the JSON around it, or for the form's parts. */
static size_t body_limit(const sv_req *r)
{
    size_t lim = r->srv->o.max_upload;
    return r->kind == SV_BODY_JSON        ? lim / 3 * 4 + 65536
           : r->kind == SV_BODY_MULTIPART ? lim + 65536
                                          : lim;
}

static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *content_type,
                                  const char *transfer_encoding, const char *data, uint64_t off,
                                  size_t size)
{
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding, (void)off;
    sv_req *r = cls;
    if (!key) /* a part without a name (libmicrohttpd passes NULL) */
        return MHD_YES;
    if (!strcmp(key, "image"))
        return sv_body_append(r, data, size, r->srv->o.max_upload) ? MHD_NO : MHD_YES;
    if (!strcmp(key, "return_visualization") && off == 0) {
        char v[16];
        snprintf(v, sizeof v, "%.*s", (int)(size < 15 ? size : 15), data);
        r->form_vis = parse_bool(v) == 1;
    }
    return MHD_YES; /* other fields are ignored */
}

enum MHD_Result sv_predict_begin(struct MHD_Connection *c, sv_req *r)
{
    char type[128];
    media_type(c, type, sizeof type);
    if (!strcmp(type, "multipart/form-data")) {
        r->kind = SV_BODY_MULTIPART;
        r->pp = MHD_create_post_processor(c, 64 * 1024, form_field, r);
        if (!r->pp)
            return sv_answer_error(c, r, 400, "bad request",
                                   "multipart/form-data without a usable boundary");
    } else if (!strcmp(type, "image/png") || !strcmp(type, "image/tiff") ||
               !strcmp(type, "image/jpeg") || !strcmp(type, "image/jp2") ||
               !strcmp(type, "application/dicom") || !strcmp(type, "application/octet-stream"))
        r->kind = SV_BODY_RAW;
    else if (!strcmp(type, "application/json"))
        r->kind = SV_BODY_JSON;
    else
        return sv_answer_error(c, r, 415, "unsupported media type",
                               "Content-Type '%s': send multipart/form-data (field 'image'), "
                               "image/png, image/tiff, image/jpeg, image/jp2, application/dicom, "
                               "application/octet-stream, or "
                               "application/json {\"image\": \"<base64>\"}",
                               type[0] ? type : "(none)");
    const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (len && strtoull(len, NULL, 10) > body_limit(r))
        return sv_answer_error(c, r, 413, "payload too large",
                               "the body is %s bytes; this server takes images of at most %zu "
                               "bytes (--max-upload)",
                               len, r->srv->o.max_upload);
    if (len)
        r->expect = (size_t)strtoull(len, NULL, 10); /* the body's room, reserved once */
    sv_batcher_coming(r->srv->batcher);
    r->coming = 1;
    return MHD_YES;
}

enum MHD_Result sv_predict_data(struct MHD_Connection *c, sv_req *r, const char *data, size_t n)
{
    (void)c;
    if (r->kind == SV_BODY_MULTIPART) {
        if (MHD_post_process(r->pp, data, n) == MHD_NO)
            return MHD_NO; /* over the limit (no Content-Length) or broken: close */
        return MHD_YES;
    }
    return sv_body_append(r, data, n, body_limit(r)) ? MHD_NO : MHD_YES;
}

/* The image bytes of the request into r->body/r->n; an answer on error. */
static enum MHD_Result take_image(struct MHD_Connection *c, sv_req *r, int *answered)
{
    *answered = 1;
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "return_visualization");
    r->want_vis = parse_bool(q) == 1;
    if (r->kind == SV_BODY_MULTIPART) {
        enum MHD_Result complete = MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
        if (complete == MHD_NO)
            return sv_answer_error(c, r, 400, "bad request",
                                   "the multipart body is incomplete or malformed");
        if (!r->n)
            return sv_answer_error(c, r, 400, "bad request",
                                   "no image: send the file in the form field 'image'");
        if (r->form_vis >= 0)
            r->want_vis = r->form_vis;
    } else if (r->kind == SV_BODY_JSON) {
        cJSON *j = cJSON_ParseWithLength((const char *)r->body, r->n);
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return sv_answer_error(c, r, 400, "bad request",
                                   "the body is not a JSON object; send {\"image\": \"<base64>\"}");
        }
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(j, "image");
        const cJSON *vis = cJSON_GetObjectItemCaseSensitive(j, "return_visualization");
        if (vis && !cJSON_IsBool(vis)) {
            cJSON_Delete(j);
            return sv_answer_error(c, r, 400, "bad request",
                                   "'return_visualization' must be true or false");
        }
        if (vis)
            r->want_vis = cJSON_IsTrue(vis);
        uint8_t *bytes = NULL;
        size_t n = 0;
        int bad = !cJSON_IsString(im) || sv_base64_decode(im->valuestring, &bytes, &n);
        cJSON_Delete(j);
        if (bad)
            return sv_answer_error(c, r, 400, "bad request",
                                   "'image' must be a base64 string (standard alphabet)");
        explicit_bzero(r->body, r->cap);
        free(r->body);
        r->body = bytes, r->n = r->cap = n;
    }
    if (!r->n)
        return sv_answer_error(c, r, 400, "bad request", "empty body: send an image");
    *answered = 0;
    return MHD_YES;
}

void sv_req_arrived(sv_req *r)
{
    if (r->coming) {
        r->coming = 0;
        sv_batcher_arrived(r->srv->batcher);
    }
}

/* The upload's SHA-256 for the audit trail (which image, not its pixels);
 * only with --audit, through OpenSSL (SHA extensions: a 5 MB radiograph in
 * a few milliseconds). */
static void upload_sha(sv_req *r)
{
    if (!r->srv->audit)
        return;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(r->body, r->n, d);
    fx_sha256_hex(d, r->image_sha);
}

int sv_decode_prep(fx_serve *s, const uint8_t *bytes, size_t n, fx_image *img, float *x,
                   fx_prep_geom *geom, double *decode_s, double *prep_s, const char **error,
                   fx_error *err)
{
    int status = 0;
    *error = NULL;
    if (!fx_loader_find(bytes, n)) {
        fx_decode_limits lim = {0};
        fx_image_info info;
        const fx_loader *ld = NULL;
        fx_decode_header(&ld, bytes, n, &lim, &info, err);
        status = 415, *error = "unsupported media type";
    }
    fx_decode_limits lim = {s->pc.max_megapixels};
    double t0 = fx_now_s();
    fx_status st = status ? FX_OK : fx_decode_memory(bytes, n, &lim, img, err);
    *decode_s = fx_now_s() - t0;
    if (!status && st != FX_OK)
        status = st == FX_ERR_LIMIT   ? 413
                 : st == FX_ERR_NOMEM ? 503
                                      : 422,
        *error = st == FX_ERR_LIMIT   ? "image too large"
                 : st == FX_ERR_NOMEM ? "busy"
                                      : "cannot decode";
    fx_prep_scratch *ps = status ? NULL : fx_prep_scratch_create();
    if (!status && !ps)
        status = 503, *error = "busy", fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    t0 = fx_now_s();
    if (!status && fx_prep_run(img, &s->pc, ps, x, NULL, geom, NULL, err) != FX_OK)
        status = 422, *error = "cannot preprocess";
    *prep_s = fx_now_s() - t0;
    fx_prep_scratch_destroy(ps);
    if (status)
        atomic_fetch_add(&s->metrics.image_errors, 1);
    return status;
}

/* Decode and preprocess the upload; suspend and queue it. */
static enum MHD_Result start_screen(struct MHD_Connection *c, sv_req *r)
{
    fx_serve *s = r->srv;
    fx_error err = {0};
    upload_sha(r);
    size_t hw = (size_t)s->H * s->W;
    r->x = malloc((size_t)s->C * hw * sizeof(float));
    r->job.score = malloc((size_t)s->S * sizeof(float));
    r->job.classes = malloc((size_t)s->K * sizeof(float));
    r->job.heat = malloc(hw);
    if (!r->x || !r->job.score || !r->job.classes || !r->job.heat)
        return sv_answer_error(c, r, 503, "busy", "out of memory");
    const char *error;
    int status = sv_decode_prep(s, r->body, r->n, &r->img, r->x, &r->job.geom, &r->decode_s,
                                &r->prep_s, &error, &err);
    explicit_bzero(r->body, r->cap);
    free(r->body);
    r->body = NULL, r->n = r->cap = 0;
    if (status)
        return sv_answer_error(c, r, status, error, "%s", err.msg);
    r->job.x = r->x;
    r->job.conn = c;
    r->phase = 1;
    /* Suspended before it is queued, so the batcher's resume always finds
     * it suspended. */
    MHD_suspend_connection(c);
    sv_req_arrived(r);
    if (sv_batcher_submit(s->batcher, &r->job, 1)) {
        r->queue_full = 1;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

/* Label of class k: the config's name, else "fractured"/"normal" for the
 * positive class and the other of two, else "class k". */
void sv_class_label(const fx_serve *s, int k, char *out, size_t n)
{
    if (s->eff.nclasses)
        snprintf(out, n, "%s", s->eff.classes[k]);
    else if (k == s->eff.positive)
        snprintf(out, n, "fractured");
    else if (s->K <= 2)
        snprintf(out, n, "normal");
    else
        snprintf(out, n, "class %d", k);
}

double sv_prediction(const fx_serve *s, const sv_job *j, char *label, size_t n)
{
    /* The positive class at or over the threshold, else the likeliest of
     * the others. */
    int k_pred = s->eff.positive;
    if (j->pred != 1) {
        k_pred = -1;
        for (int k = 0; k < s->K; k++)
            if (k != s->eff.positive && (k_pred < 0 || j->classes[k] > j->classes[k_pred]))
                k_pred = k;
    }
    sv_class_label(s, k_pred < 0 ? (s->eff.positive ? 0 : 1) : k_pred, label, n);
    return j->pred == 1 ? j->prob : s->K == 1 ? 1.0 - j->prob : j->classes[k_pred];
}

/* A JSON number, or null when not finite. */
static cJSON *num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* The result: overlay and image PNGs, the JSON, the store, the answer. */
static enum MHD_Result finish_screen(struct MHD_Connection *c, sv_req *r)
{
    fx_serve *s = r->srv;
    sv_job *j = &r->job;
    fx_error err = {0};
    if (r->queue_full) {
        atomic_fetch_add(&s->metrics.image_errors, 1);
        return sv_answer_error(c, r, 503, "queue full",
                               "%d images are waiting for the engine; retry shortly",
                               s->o.queue_max);
    }
    if (j->st != FX_OK) {
        atomic_fetch_add(&s->metrics.image_errors, 1);
        return sv_answer_error(c, r, 500, "engine error", "%s", j->err);
    }
    atomic_fetch_add(&s->metrics.images, 1);
    int w = r->img.info.width, h = r->img.info.height;
    int bits = r->img.info.bit_depth > 0 ? r->img.info.bit_depth
                                         : (int)fx_pixtype_size(r->img.info.type) * 8;
    size_t hw = (size_t)s->H * s->W;
    sv_visual v = {.w = w, .h = h, .H = s->H, .W = s->W, .geom = j->geom};
    memcpy(v.bbox, j->bbox, sizeof v.bbox);
    v.grey = malloc((size_t)w * (size_t)h);
    v.heat = malloc(hw);
    fx_status st = v.grey && v.heat ? FX_OK : fx_error_set(&err, FX_ERR_NOMEM, "out of memory");
    if (st == FX_OK) {
        memcpy(v.heat, j->heat, hw);
        double t0 = fx_now_s();
        st = fx_overlay_grey(&r->img, &j->geom, s->pc.invert, v.grey, &err);
        r->grey_s = fx_now_s() - t0;
    }
    uint8_t *ov = NULL;
    size_t ov_n = 0;
    if (st == FX_OK && r->want_vis)
        st = sv_draw(s, &v, 1, &ov, &ov_n, &err);
    if (r->img.pixels) /* the grey plane is all the drawings need; the plane is patient data */
        explicit_bzero(r->img.pixels, fx_image_bytes(&r->img.info));
    fx_image_free(&r->img);
    if (st != FX_OK) {
        sv_visual_free(&v);
        return sv_answer_error(c, r, st == FX_ERR_NOMEM ? 503 : 500, "overlay error", "%s",
                               err.msg);
    }

    char id[SV_ID_LEN + 1], url[128], label[FX_RUN_NAME_MAX + 16];
    sv_new_id(id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    double conf = sv_prediction(s, j, label, sizeof label);
    cJSON_AddStringToObject(o, "prediction", label);
    cJSON_AddItemToObject(o, "confidence", num(conf));
    cJSON_AddItemToObject(o, "probability", num(j->prob));
    cJSON_AddNumberToObject(o, "threshold", s->eff.threshold);
    cJSON *probs = cJSON_CreateObject();
    for (int k = 0; k < s->K; k++) {
        sv_class_label(s, s->K == 1 ? s->eff.positive : k, label, sizeof label);
        cJSON_AddItemToObject(probs, label, num(j->classes[k]));
    }
    cJSON_AddItemToObject(o, "probabilities", probs);
    cJSON *pk = cJSON_CreateArray(), *bx = cJSON_CreateArray();
    for (int k = 0; k < 2; k++)
        cJSON_AddItemToArray(pk, num(j->peak[k]));
    for (int k = 0; k < 4; k++)
        cJSON_AddItemToArray(bx, num(j->bbox[k]));
    cJSON_AddItemToObject(o, "peak", pk);
    cJSON_AddItemToObject(o, "bbox", bx);
    cJSON *img = cJSON_CreateObject();
    cJSON_AddNumberToObject(img, "width", w);
    cJSON_AddNumberToObject(img, "height", h);
    cJSON_AddNumberToObject(img, "bits", bits);
    cJSON_AddItemToObject(o, "image", img);
    cJSON *mo = cJSON_CreateObject();
    cJSON_AddStringToObject(mo, "name", s->model_name);
    cJSON_AddStringToObject(mo, "sha256", fx_screen_sha256(sv_batcher_engine(s->batcher)));
    cJSON_AddItemToObject(o, "model", mo);
    cJSON_AddStringToObject(o, "cam_method", fx_cam_method_name((fx_cam_method)s->eff.cam_method));
    cJSON_AddStringToObject(o, "cam_layer", fx_screen_layer(sv_batcher_engine(s->batcher)));
    snprintf(url, sizeof url, "/api/results/%s/overlay.png", id);
    cJSON_AddStringToObject(o, "visualization_url", url);
    snprintf(url, sizeof url, "/api/results/%s/image.png", id);
    cJSON_AddStringToObject(o, "image_url", url);
    snprintf(url, sizeof url, "/api/results/%s", id);
    cJSON_AddStringToObject(o, "result_url", url);
    cJSON_AddNumberToObject(o, "batch_size", j->batch_n);
    cJSON_AddNumberToObject(o, "elapsed_ms", round((fx_now_s() - r->t0) * 1e4) / 10);
    /* Where the time went, this request's share of it (the engine's batch
     * time is the whole batch's). */
    cJSON *tms = cJSON_CreateObject();
    cJSON_AddNumberToObject(tms, "receive", round((r->t_body - r->t0) * 1e4) / 10);
    cJSON_AddNumberToObject(tms, "decode", round(r->decode_s * 1e4) / 10);
    cJSON_AddNumberToObject(tms, "preprocess", round(r->prep_s * 1e4) / 10);
    cJSON_AddNumberToObject(tms, "queue", round(j->queued_s * 1e4) / 10);
    cJSON_AddNumberToObject(tms, "engine", round(j->engine_s * 1e4) / 10);
    cJSON_AddNumberToObject(tms, "draw", round(r->grey_s * 1e4) / 10);
    cJSON_AddItemToObject(o, "timings_ms", tms);
    time_t now = time(NULL);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    cJSON_AddStringToObject(o, "created", when);
    cJSON_AddNumberToObject(o, "expires_in_s", s->o.result_ttl_s);
    cJSON_AddStringToObject(o, "notice", "Research software: not for clinical use.");
    /* The stored copy has no embedded PNG: the URLs serve it. */
    char *stored = cJSON_PrintUnformatted(o);
    if (r->want_vis) {
        size_t b64n = 4 * ((ov_n + 2) / 3) + 1;
        char *b64 = malloc(b64n);
        if (b64) {
            EVP_EncodeBlock((unsigned char *)b64, ov, (int)ov_n);
            cJSON_AddStringToObject(o, "heatmap_png", b64);
            free(b64);
        }
        free(ov);
    }
    snprintf(r->audit_pred, sizeof r->audit_pred, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(o, "prediction")));
    r->audit_prob = j->prob;
    if (!stored || sv_store_put(s->store, id, r->user.name, stored, &v)) {
        cJSON_Delete(o);
        return sv_answer_error(c, r, 503, "busy", "out of memory for the result");
    }
    return sv_answer_json(c, r, 200, o);
}

enum MHD_Result sv_predict_finish(struct MHD_Connection *c, sv_req *r)
{
    if (r->phase == 0) {
        r->t_body = fx_now_s();
        int answered;
        enum MHD_Result res = take_image(c, r, &answered);
        if (!answered)
            res = start_screen(c, r);
        sv_req_arrived(r);
        return res;
    }
    if (r->phase == 1 && (r->queue_full || sv_batcher_done(r->srv->batcher, &r->job)))
        return finish_screen(c, r);
    return MHD_YES;
}

fx_status sv_draw(const fx_serve *s, const sv_visual *v, int what, uint8_t **png, size_t *n,
                  fx_error *err)
{
    if (what == 2)
        return fx_png_encode(v->w, v->h, 1, v->grey, PNG_LEVEL, png, n, err);
    /* The grey plane is already windowed (and inverted): as a U8 image with
     * the identity window it renders exactly as the original would. */
    fx_image g = {.info = {.width = v->w, .height = v->h, .channels = 1, .type = FX_PIX_U8},
                  .pixels = v->grey};
    fx_prep_geom geom = v->geom;
    geom.win_lo = 0, geom.win_hi = 255;
    fx_overlay_opts oo = {.cmap = (fx_colormap)s->eff.colormap,
                          .opacity = s->eff.opacity,
                          .invert = 0,
                          .draw_box = 1};
    uint8_t *rgb = malloc((size_t)v->w * (size_t)v->h * 3);
    if (!rgb)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory for a %d x %d overlay", v->w, v->h);
    fx_status st = fx_overlay_render(&g, &geom, v->heat, v->H, v->W, v->bbox, &oo, rgb, err);
    if (st == FX_OK)
        st = fx_png_encode(v->w, v->h, 3, rgb, PNG_LEVEL, png, n, err);
    free(rgb);
    return st;
}

void sv_predict_free(sv_req *r)
{
    sv_req_arrived(r); /* a client gone before its upload was complete */
    if (r->body)       /* an upload is patient data: zeroed before it is freed */
        explicit_bzero(r->body, r->cap);
    if (r->img.pixels && r->img.owned)
        explicit_bzero(r->img.pixels, fx_image_bytes(&r->img.info));
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    free(r->body);
    free(r->x);
    free(r->job.score);
    free(r->job.classes);
    free(r->job.heat);
    fx_image_free(&r->img);
}
