/* fxscreen serve: libmicrohttpd glue, the route table and the small routes.
 * See include/fxscreen/serve.h for the threads and README for the API. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fxscreen/cam.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/loader.h"
#include "serve/serve_internal.h"

void fx_serve_opts_default(fx_serve_opts *o)
{
    *o = (fx_serve_opts){.host = "127.0.0.1",
                         .port = 8080,
                         .method = -1,
                         .threshold = NAN,
                         .max_batch = 8,
                         .max_wait_ms = 5,
                         .queue_max = 256,
                         .max_upload = (size_t)32 << 20,
                         .max_connections = 1024,
                         .request_timeout_s = 60,
                         .result_ttl_s = 600,
                         .result_memory = (size_t)1 << 30};
}

/* ---- answers ------------------------------------------------------------------------ */

/* One audit line for the answer (before it is sent). */
static void audit_answer(sv_req *r, int status)
{
    fx_serve *s = r->srv;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "user", r->user.name);
    cJSON_AddStringToObject(e, "role", r->user.name[0] ? sv_role_name(r->user.role) : "");
    cJSON_AddStringToObject(e, "client", r->addr);
    cJSON_AddStringToObject(e, "method", r->method);
    cJSON_AddStringToObject(e, "route", r->url);
    cJSON_AddNumberToObject(e, "status", status);
    cJSON_AddStringToObject(e, "image_sha256", r->image_sha);
    if (r->audit_pred[0]) {
        cJSON_AddStringToObject(e, "prediction", r->audit_pred);
        cJSON_AddNumberToObject(e, "probability", r->audit_prob);
    }
    if (cJSON_GetArraySize(r->audit_images) > 1) { /* a request of several images: each one's */
        cJSON_AddItemToObject(e, "images", r->audit_images);
        r->audit_images = NULL;
    }
    cJSON_AddNumberToObject(e, "latency_ms", round((fx_now_s() - r->t0) * 1e4) / 10);
    if (sv_audit_write(s->audit, e) && s->o.log)
        fprintf(s->o.log, "serve: cannot write the audit trail (disk full?)\n");
    cJSON_Delete(e);
}

static enum MHD_Result answer(struct MHD_Connection *c, sv_req *r, int status, const char *type,
                              struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(
        resp, "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' blob: data:; connect-src 'self' blob:; object-src 'none'; "
        "base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'");
    if (r && r->srv->tls)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"fxscreen\"");
    if (r && r->srv->audit) /* appended and fsync'd before the answer leaves */
        audit_answer(r, status);
    if (r && r->xhdr)
        MHD_add_response_header(resp, r->xhdr, r->xhdr_value);
    if (status == 405 && r && r->allow)
        MHD_add_response_header(resp, "Allow", r->allow);
    if (status == 503 || status == 429)
        MHD_add_response_header(resp, "Retry-After", "1");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (r) {
        sv_metrics_request(&r->srv->metrics, r->route < 0 ? 0 : r->route + 1, status,
                           fx_now_s() - r->t0);
        r->phase = 2;
    }
    return ok;
}

enum MHD_Result sv_answer_bytes(struct MHD_Connection *c, sv_req *r, int status, const char *type,
                                const void *data, size_t n, int take)
{
    struct MHD_Response *resp =
        take ? MHD_create_response_from_buffer_with_free_callback(n, (void *)data, free)
             : MHD_create_response_from_buffer(n, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp && take)
        free((void *)data);
    return answer(c, r, status, type, resp);
}

enum MHD_Result sv_answer_json(struct MHD_Connection *c, sv_req *r, int status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"internal\",\"detail\":\"out of memory\"}";
        return sv_answer_bytes(c, r, 500, "application/json", oom, sizeof oom - 1, 0);
    }
    return sv_answer_bytes(c, r, status, "application/json", text, strlen(text), 1);
}

enum MHD_Result sv_answer_error(struct MHD_Connection *c, sv_req *r, int status, const char *error,
                                const char *detail_fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, detail_fmt);
    vsnprintf(detail, sizeof detail, detail_fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", error);
    cJSON_AddStringToObject(o, "detail", detail);
    return sv_answer_json(c, r, status, o);
}

/* ---- small routes ----------------------------------------------------------------- */

static enum MHD_Result h_health(struct MHD_Connection *c, sv_req *r, const char *url)
{
    (void)url;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "version", FX_VERSION);
    return sv_answer_json(c, r, 200, o);
}

static enum MHD_Result h_ready(struct MHD_Connection *c, sv_req *r, const char *url)
{
    (void)url;
    fx_serve *s = r->srv;
    int ready = atomic_load(&s->ready) && !atomic_load(&s->stopping);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ready ? "ready" : "stopping");
    cJSON_AddStringToObject(o, "device",
                            fx_device_name(fx_screen_device(sv_batcher_engine(s->batcher))));
    cJSON_AddNumberToObject(o, "queue_depth", (double)sv_batcher_depth(s->batcher));
    return sv_answer_json(c, r, ready ? 200 : 503, o);
}

static enum MHD_Result h_model(struct MHD_Connection *c, sv_req *r, const char *url)
{
    (void)url;
    fx_serve *s = r->srv;
    const fx_screen *e = sv_batcher_engine(s->batcher);
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject(), *cl = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "name", s->model_name);
    cJSON_AddStringToObject(o, "sha256", fx_screen_sha256(e));
    cJSON_AddNumberToObject(in, "channels", s->C);
    cJSON_AddNumberToObject(in, "height", s->H);
    cJSON_AddNumberToObject(in, "width", s->W);
    cJSON_AddItemToObject(o, "input", in);
    for (int k = 0; k < s->eff.nclasses; k++)
        cJSON_AddItemToArray(cl, cJSON_CreateString(s->eff.classes[k]));
    cJSON_AddItemToObject(o, "classes", cl);
    cJSON_AddNumberToObject(o, "positive", s->eff.positive);
    cJSON_AddNumberToObject(o, "threshold", s->eff.threshold);
    cJSON_AddStringToObject(o, "cam_layer", fx_screen_layer(e));
    cJSON_AddStringToObject(o, "cam_method", fx_cam_method_name((fx_cam_method)s->eff.cam_method));
    cJSON_AddStringToObject(o, "device", fx_device_name(fx_screen_device(e)));
    cJSON_AddNumberToObject(o, "max_batch", s->o.max_batch);
    cJSON_AddStringToObject(o, "config", s->effective_yaml);
    cJSON_AddStringToObject(o, "notice", "Research software: not for clinical use.");
    return sv_answer_json(c, r, 200, o);
}

static enum MHD_Result h_metrics(struct MHD_Connection *c, sv_req *r, const char *url)
{
    (void)url;
    char *t = sv_metrics_text(&r->srv->metrics);
    if (!t)
        return sv_answer_error(c, r, 500, "internal", "out of memory");
    return sv_answer_bytes(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t), 1);
}

/* /api/results/<id>, /api/results/<id>/overlay.png, /api/results/<id>/image.png */
static enum MHD_Result h_results(struct MHD_Connection *c, sv_req *r, const char *url)
{
    const char *id = url + strlen("/api/results/");
    size_t k = strspn(id, "0123456789abcdef");
    const char *rest = id + k;
    int what = !*rest                          ? 0
               : !strcmp(rest, "/overlay.png") ? 1
               : !strcmp(rest, "/image.png")   ? 2
                                               : -1;
    if (k != SV_ID_LEN || what < 0)
        return sv_answer_error(c, r, 404, "not found",
                               "no such result route: want /api/results/<32 hex>, "
                               "/api/results/<id>/overlay.png or /api/results/<id>/image.png");
    char key[SV_ID_LEN + 1];
    memcpy(key, id, SV_ID_LEN);
    key[SV_ID_LEN] = 0;
    char *json = what == 0 ? sv_store_json(r->srv->store, key, r->user.name) : NULL;
    sv_visual v;
    if (what == 0 ? !json : sv_store_visual(r->srv->store, key, r->user.name, &v) != 0)
        return sv_answer_error(c, r, 404, "not found",
                               "result %s is unknown or expired (results are kept %.0f s, in "
                               "memory only)",
                               key, r->srv->o.result_ttl_s);
    if (what == 0)
        return sv_answer_bytes(c, r, 200, "application/json", json, strlen(json), 1);
    uint8_t *png = NULL;
    size_t n = 0;
    fx_error err = {0};
    fx_status st = sv_draw(r->srv, &v, what, &png, &n, &err);
    sv_visual_free(&v);
    if (st != FX_OK)
        return sv_answer_error(c, r, 503, "busy", "%s", err.msg);
    return sv_answer_bytes(c, r, 200, "image/png", png, n, 1);
}

/* The audit trail's last lines (admin). */
static enum MHD_Result h_audit(struct MHD_Connection *c, sv_req *r, const char *url)
{
    (void)url;
    if (!r->srv->audit)
        return sv_answer_error(c, r, 404, "not found", "no audit trail: start with --audit FILE");
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "lines");
    int n = q ? atoi(q) : 100;
    n = n < 1 ? 1 : n > 10000 ? 10000 : n;
    char *text = sv_audit_tail(r->srv->audit, n);
    cJSON *o = cJSON_CreateObject(), *lines = cJSON_CreateArray();
    for (char *save = NULL, *l = text ? strtok_r(text, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(l);
        if (j)
            cJSON_AddItemToArray(lines, j);
    }
    free(text);
    cJSON_AddItemToObject(o, "lines", lines);
    return sv_answer_json(c, r, 200, o);
}

static enum MHD_Result h_asset(struct MHD_Connection *c, sv_req *r, const char *url)
{
    const sv_asset *a = sv_asset_find(url);
    if (!a)
        return sv_answer_error(c, r, 404, "not found", "no route %s", url);
    return sv_answer_bytes(c, r, 200, a->type, a->data, a->n, 0);
}

/* ---- routes ------------------------------------------------------------------------- */

typedef enum MHD_Result (*sv_handler)(struct MHD_Connection *, sv_req *, const char *url);

/* A route that reads a body: its first call (headers), each piece, the end
 * (called again after the engine resumes the connection), and its cleanup. */
typedef struct sv_body_route {
    enum MHD_Result (*begin)(struct MHD_Connection *, sv_req *);
    enum MHD_Result (*data)(struct MHD_Connection *, sv_req *, const char *, size_t);
    enum MHD_Result (*finish)(struct MHD_Connection *, sv_req *);
} sv_body_route;
static const sv_body_route predict = {sv_predict_begin, sv_predict_data, sv_predict_finish};
static const sv_body_route v2_infer = {sv_v2_begin, sv_v2_data, sv_v2_finish};

/* Who may call a route when --auth is on (without it, anyone). */
enum { SV_PUBLIC = 0, SV_SIGNED_IN, SV_ADMIN };

typedef struct sv_route {
    const char *method;        /* GET routes answer HEAD too */
    const char *path;          /* exact, or a prefix when it ends with '/' */
    sv_handler get;            /* GET routes */
    const sv_body_route *body; /* POST routes */
    int access;                /* SV_PUBLIC, SV_SIGNED_IN (results: their owner only), SV_ADMIN */
    const char *label;         /* the metrics' route label when path is not enough */
} sv_route;

static const sv_route routes[] = {
    {"GET", "/api/health", h_health, NULL, SV_PUBLIC, NULL},
    {"POST", "/api/predict", NULL, &predict, SV_SIGNED_IN, NULL},
    {"GET", "/api/ready", h_ready, NULL, SV_PUBLIC, NULL},
    {"GET", "/api/model", h_model, NULL, SV_ADMIN, NULL},
    {"GET", "/api/results/", h_results, NULL, SV_SIGNED_IN, NULL},
    {"GET", "/metrics", h_metrics, NULL, SV_ADMIN, NULL},
    {"GET", "/api/audit", h_audit, NULL, SV_ADMIN, NULL},
    {"GET", "/openapi.json", h_asset, NULL, SV_PUBLIC, NULL},
    {"GET", "/v2", sv_v2_server, NULL, SV_PUBLIC, NULL},
    {"GET", "/v2/health/live", sv_v2_health, NULL, SV_PUBLIC, NULL},
    {"GET", "/v2/health/ready", sv_v2_health, NULL, SV_PUBLIC, NULL},
    {"GET", "/v2/models/", sv_v2_model_route, NULL, SV_SIGNED_IN, "/v2/models/{model}"},
    {"POST", "/v2/models/", NULL, &v2_infer, SV_SIGNED_IN, "/v2/models/{model}/infer"},
    {"GET", "/", h_asset, NULL, SV_PUBLIC, NULL},
};
#define NROUTES ((int)(sizeof routes / sizeof routes[0]))

static int path_matches(const sv_route *rt, const char *url)
{
    size_t n = strlen(rt->path);
    return rt->path[n - 1] == '/' && n > 1 ? !strncmp(url, rt->path, n) : !strcmp(url, rt->path);
}

/* The route whose path and method match url (HEAD as GET), else the first
 * whose path does (a 405); static assets share "/". */
static int route_find(const char *url, const char *method)
{
    int first = -1;
    if (!strcmp(method, "HEAD"))
        method = "GET";
    for (int i = 0; i < NROUTES; i++)
        if (path_matches(&routes[i], url)) {
            if (!strcmp(routes[i].method, method))
                return i;
            if (first < 0)
                first = i;
        }
    return first >= 0 ? first : sv_asset_find(url) ? NROUTES - 1 : -1;
}

/* The Allow header of a 405 on url: the methods of the routes of its path. */
static const char *route_allow(const char *url)
{
    if (!strncmp(url, "/v2/models/", 11)) { /* one prefix, two kinds of resource */
        size_t n = strlen(url);
        return n > 6 && !strcmp(url + n - 6, "/infer") ? "POST" : "GET, HEAD";
    }
    int get = 0, post = 0;
    for (int i = 0; i < NROUTES; i++)
        if (path_matches(&routes[i], url))
            get |= !strcmp(routes[i].method, "GET"), post |= !strcmp(routes[i].method, "POST");
    return get && post ? "GET, HEAD, POST" : post ? "POST" : "GET, HEAD";
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    fx_serve *s = cls;
    sv_req *r = *con_cls;
    if (!r) { /* headers received */
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->srv = s;
        r->t0 = fx_now_s();
        r->form_vis = -1;
        r->route = route_find(url, method);
        r->audit_prob = NAN;
        snprintf(r->url, sizeof r->url, "%s", url);
        snprintf(r->method, sizeof r->method, "%s", method);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->addr,
                          sizeof r->addr);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->addr,
                          sizeof r->addr);
        }
        *con_cls = r;
        /* Worker threads decode, preprocess and draw one request at a time:
         * the engine's thread keeps the cores for its OpenMP regions. */
        omp_set_num_threads(1);
        if (r->route < 0)
            return sv_answer_error(c, r, 404, "not found", "no route %s (see /openapi.json)", url);
        const sv_route *rt = &routes[r->route];
        int get_ok =
            !strcmp(rt->method, "GET") && (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
        if (!get_ok && strcmp(method, rt->method)) {
            r->allow = route_allow(url);
            return sv_answer_error(c, r, 405, "method not allowed", "%s %s: use %s", method, url,
                                   r->allow);
        }
        if (s->auth && rt->access != SV_PUBLIC) {
            int a = sv_auth_check(s->auth, r->addr,
                                  MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                                  &r->user);
            if (a == SV_AUTH_LIMITED)
                return sv_answer_error(c, r, 429, "too many failed sign-ins",
                                       "this address gave wrong tokens too often; wait a minute");
            if (a != SV_AUTH_OK)
                return sv_answer_error(c, r, 401, "unauthorized",
                                       a == SV_AUTH_NONE ? "send Authorization: Bearer TOKEN"
                                                         : "unknown token");
            if (rt->access == SV_ADMIN && r->user.role != SV_ROLE_ADMIN)
                return sv_answer_error(c, r, 403, "forbidden",
                                       "%s needs the admin role (%s has %s)", rt->path,
                                       r->user.name, sv_role_name(r->user.role));
        }
        if (rt->body)
            return rt->body->begin(c, r);
        return MHD_YES; /* a GET's body, if any, is read and ignored */
    }
    if (r->phase == 2) { /* answered early; discard the rest */
        *upload_data_size = 0;
        return MHD_YES;
    }
    const sv_route *rt = &routes[r->route];
    if (*upload_data_size && fx_now_s() - r->t0 > s->o.request_timeout_s) {
        /* A client that trickles its upload would hold a worker's connection
         * forever (the 30 s inactivity timeout never fires): cut it. */
        if (s->o.log)
            fprintf(s->o.log, "serve: %s took over %.0f s to upload; connection closed\n", r->addr,
                    s->o.request_timeout_s);
        return MHD_NO;
    }
    if (*upload_data_size) {
        if (rt->get) {
            *upload_data_size = 0;
            return MHD_YES;
        }
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return rt->body->data(c, r, upload_data, n);
    }
    if (rt->get)
        return rt->get(c, r, url);
    return rt->body->finish(c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    sv_req *r = *con_cls;
    if (!r)
        return;
    sv_predict_free(r);
    sv_v2_free(r);
    free(r);
    *con_cls = NULL;
}

/* The model's file name without directory and extension. */
static char *model_name(const char *path)
{
    const char *b = strrchr(path, '/');
    char *n = strdup(b ? b + 1 : path);
    char *dot = n ? strrchr(n, '.') : NULL;
    if (dot && dot != n)
        *dot = 0;
    return n;
}

/* Frees expired results once a second until the server stops. */
static void *janitor_main(void *arg)
{
    fx_serve *s = arg;
    pthread_mutex_lock(&s->jmu);
    while (!atomic_load(&s->stopping)) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&s->jcv, &s->jmu, &t);
        sv_store_sweep(s->store);
    }
    pthread_mutex_unlock(&s->jmu);
    return NULL;
}

static int is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a);
}

/* A small text file (a PEM certificate or key) into a malloc'd string. */
static char *read_text(const char *path, fx_error *err)
{
    uint8_t *b = NULL;
    size_t n = 0;
    if (fx_read_file(path, (size_t)1 << 20, &b, &n, err) != FX_OK) {
        fx_error_prefix(err, "%s", path);
        return NULL;
    }
    char *t = realloc(b, n + 1);
    if (!t) {
        free(b);
        fx_error_set(err, FX_ERR_NOMEM, "out of memory");
        return NULL;
    }
    t[n] = 0;
    return t;
}

int fx_serve_reopen_audit(fx_serve *s)
{
    return s->audit ? sv_audit_reopen(s->audit) : 0;
}

static fx_status bind_address(const fx_serve_opts *o, struct sockaddr_storage *sa, fx_error *err)
{
    memset(sa, 0, sizeof *sa);
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    if (o->port < 0 || o->port > 65535)
        return fx_error_set(err, FX_ERR_USAGE, "serve: port %d is not in 0..65535", o->port);
    if (inet_pton(AF_INET, o->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)o->port);
    } else if (inet_pton(AF_INET6, o->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)o->port);
    } else
        return fx_error_set(err, FX_ERR_USAGE,
                            "serve: --listen '%s': give a numeric address and port, such as "
                            "127.0.0.1:8080 or [::1]:8080",
                            o->host);
    return FX_OK;
}

fx_status fx_serve_start(const fx_serve_opts *o, fx_serve **out, fx_error *err)
{
    *out = NULL;
    fx_serve *s = calloc(1, sizeof *s);
    if (!s)
        return fx_error_set(err, FX_ERR_NOMEM, "serve: out of memory");
    s->o = *o;
    pthread_mutex_init(&s->jmu, NULL);
    pthread_cond_init(&s->jcv, NULL);
    struct sockaddr_storage sa;
    fx_status st = bind_address(o, &sa, err);
    if (st == FX_OK && (!o->model || !o->max_upload || o->result_ttl_s <= 0))
        st =
            fx_error_set(err, FX_ERR_USAGE, "serve: a model, an upload limit and a TTL are needed");
    if (st == FX_OK && o->config && !(s->config_path = strdup(o->config)))
        st = fx_error_set(err, FX_ERR_NOMEM, "serve: out of memory");
    if (st == FX_OK && !o->config)
        st = fx_screen_sidecar(o->model, &s->config_path, err);
    if (st == FX_OK && !(s->model_name = model_name(o->model)))
        st = fx_error_set(err, FX_ERR_NOMEM, "serve: out of memory");
    if (st == FX_OK && o->auth)
        st = sv_auth_load(o->auth, &s->auth, err);
    if (st == FX_OK && !o->auth && !o->insecure && !is_loopback(&sa))
        st = fx_error_set(err, FX_ERR_USAGE,
                          "serve: refusing to listen on %s without sign-in: anyone who reaches it "
                          "could upload radiographs and read results; give --auth tokens.yaml "
                          "(fxscreen serve token add writes one), or --insecure to accept that",
                          o->host);
    if (st == FX_OK && (!o->tls_cert) != (!o->tls_key))
        st = fx_error_set(err, FX_ERR_USAGE, "serve: give both --tls-cert and --tls-key");
    if (st == FX_OK && o->tls_cert) {
        s->tls_cert = read_text(o->tls_cert, err);
        s->tls_key = s->tls_cert ? read_text(o->tls_key, err) : NULL;
        if (!s->tls_cert || !s->tls_key)
            st = FX_ERR_USAGE;
        s->tls = 1;
    }
    if (st == FX_OK && !o->tls_cert && !is_loopback(&sa) && o->log)
        fprintf(o->log,
                "serve: warning: %s is not a loopback address and there is no TLS: "
                "tokens and radiographs cross the network in clear (give --tls-cert "
                "and --tls-key)\n",
                o->host);
    if (st == FX_OK && o->audit)
        st = sv_audit_open(o->audit, &s->audit, err);
    if (st == FX_OK) {
        /* Patient data must not end up in a core file. */
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    if (st == FX_OK)
        st = fx_screen_settings_load(s->config_path, o->method, o->layer, o->threshold, &s->pc,
                                     &s->eff, err);
    s->metrics.route_name[0] = "other";
    for (int i = 0; i < NROUTES && i + 1 < SV_ROUTES_MAX; i++)
        s->metrics.route_name[i + 1] = routes[i].label ? routes[i].label : routes[i].path;
    s->metrics.nroutes = NROUTES + 1;
    if (st == FX_OK)
        st = sv_batcher_create(o, s->config_path, &s->pc, &s->eff, &s->metrics, &s->batcher, err);
    if (st == FX_OK) {
        const fx_screen *e = sv_batcher_engine(s->batcher);
        fx_screen_input(e, &s->C, &s->H, &s->W);
        s->S = fx_screen_score_width(e);
        s->K = fx_screen_classes(e);
        s->effective_yaml = fx_screen_effective_yaml(&s->pc, &s->eff);
        s->store = sv_store_create(o->result_ttl_s, o->result_memory, &s->metrics);
        if (!s->effective_yaml || !s->store)
            st = fx_error_set(err, FX_ERR_NOMEM, "serve: out of memory");
        else if (pthread_create(&s->janitor, NULL, janitor_main, s) != 0)
            st = fx_error_set(err, FX_ERR_NOMEM, "serve: cannot start the janitor thread");
        else
            s->janitor_started = 1;
    }
    if (st == FX_OK) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned threads = (unsigned)(o->threads > 0 ? o->threads : cores > 0 ? cores : 2);
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                         (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) | (s->tls ? MHD_USE_TLS : 0);
        unsigned limit = (unsigned)(o->max_connections > 0 ? o->max_connections : 1024);
        /* The TLS options come last: without TLS the list ends before them. */
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
                                MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT,
                                30u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)256 * 1024,
                                MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_NOTIFY_COMPLETED,
                                on_completed, s, s->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END,
                                s->tls_key, MHD_OPTION_HTTPS_MEM_CERT, s->tls_cert,
                                MHD_OPTION_HTTPS_PRIORITIES,
                                "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_END);
        if (!s->d)
            st = fx_error_set(err, FX_ERR_USAGE,
                              "serve: cannot listen on %s:%d (in use, or not an address of this "
                              "machine); pick another --listen",
                              o->host, o->port);
    }
    if (st == FX_OK) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
        s->port = di ? di->port : o->port;
        atomic_store(&s->ready, 1);
        *out = s;
        return FX_OK;
    }
    fx_serve_stop(s, 0);
    return st;
}

int fx_serve_port(const fx_serve *s)
{
    return s->port;
}

void fx_serve_stop(fx_serve *s, double grace_s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->jmu);
    atomic_store(&s->stopping, 1);
    pthread_cond_broadcast(&s->jcv);
    pthread_mutex_unlock(&s->jmu);
    if (s->janitor_started)
        pthread_join(s->janitor, NULL);
    if (s->d) {
        /* Stop accepting, then let the connections in flight finish. */
        MHD_socket ls = MHD_quiesce_daemon(s->d);
        if (ls != MHD_INVALID_SOCKET)
            close(ls);
        double until = fx_now_s() + grace_s;
        for (;;) {
            const union MHD_DaemonInfo *di =
                MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
            if (!di || di->num_connections == 0 || fx_now_s() >= until)
                break;
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* Every queued image finishes and its connection is resumed before the
     * daemon stops (libmicrohttpd refuses to stop with suspended ones). */
    sv_batcher_destroy(s->batcher);
    if (s->d)
        MHD_stop_daemon(s->d);
    sv_store_destroy(s->store);
    sv_auth_free(s->auth);
    sv_audit_close(s->audit);
    if (s->tls_key)
        explicit_bzero(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_cert);
    free(s->effective_yaml);
    free(s->config_path);
    free(s->model_name);
    pthread_cond_destroy(&s->jcv);
    pthread_mutex_destroy(&s->jmu);
    free(s);
}
