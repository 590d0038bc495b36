/* Internals of `fxscreen serve` (include/fxscreen/serve.h): the server
 * (server.c: libmicrohttpd, routes, answers), the batcher (batcher.c: the
 * queue and the engines), the results store (store.c), the metrics
 * (metrics.c), the predict route (predict.c) and the embedded web assets
 * (assets.c).  Prefix sv_. */
#ifndef FX_SERVE_INTERNAL_H
#define FX_SERVE_INTERNAL_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fxscreen/image.h"
#include "fxscreen/prep.h"
#include "fxscreen/runjob.h"
#include "fxscreen/screen.h"
#include "fxscreen/serve.h"
#include "fxscreen/sha256.h"
#include "serve/base64.h"
#include "serve/v2_request.h"

/* ---- sign-in (auth.c) and the audit trail (audit.c) ---------------------------- */

typedef enum sv_role { SV_ROLE_CLINICIAN = 0, SV_ROLE_SERVICE, SV_ROLE_ADMIN } sv_role;
typedef struct sv_user {
    char name[64]; /* "" without --auth */
    sv_role role;
} sv_user;
const char *sv_role_name(sv_role r);
int sv_role_parse(const char *s, sv_role *r);

typedef struct sv_auth sv_auth;
/* tokens.yaml: tokens: [{name, role, sha256}]; FX_ERR_CONFIG naming the fix. */
fx_status sv_auth_load(const char *path, sv_auth **out, fx_error *err);
void sv_auth_free(sv_auth *a);
enum { SV_AUTH_OK = 0, SV_AUTH_NONE, SV_AUTH_BAD, SV_AUTH_LIMITED };
/* The Authorization header ("Bearer TOKEN") of a client at addr: SV_AUTH_OK
 * (u filled), _NONE (no token), _BAD (unknown token: counted against addr),
 * _LIMITED (addr failed too often lately). */
int sv_auth_check(sv_auth *a, const char *addr, const char *header, sv_user *u);

typedef struct sv_audit sv_audit;
fx_status sv_audit_open(const char *path, sv_audit **out, fx_error *err);
void sv_audit_close(sv_audit *a);
/* Appends entry (time and prev added here) and fsyncs; 0 or -1. */
int sv_audit_write(sv_audit *a, cJSON *entry);
/* Reopens the file at the same path (after rotation); 0 or -1. */
int sv_audit_reopen(sv_audit *a);
/* The last max_lines lines, malloc'd text (caller frees), or NULL. */
char *sv_audit_tail(sv_audit *a, int max_lines);

/* ---- metrics (metrics.c) ------------------------------------------------------- */

enum { SV_ROUTE_OTHER = 0, SV_ROUTES_MAX = 16 };
#define SV_STATUS_CODES    12 /* 200 201 204 400 404 405 413 415 422 429 500 503 */
#define SV_LATENCY_BUCKETS 12
#define SV_BATCH_BUCKETS   9

typedef struct sv_metrics {
    const char *route_name[SV_ROUTES_MAX]; /* label values; [0] "other" */
    int nroutes;
    atomic_ulong requests[SV_ROUTES_MAX][SV_STATUS_CODES];
    atomic_ulong latency[SV_LATENCY_BUCKETS + 1]; /* per bucket; last = +Inf */
    atomic_ulong latency_us, latency_n;
    atomic_ulong batch[SV_BATCH_BUCKETS + 1];
    atomic_ulong batch_images, batch_n;
    atomic_long queue_depth;
    atomic_ulong images, image_errors;
    atomic_ulong results, result_bytes; /* gauges, set by the store */
} sv_metrics;

void sv_metrics_request(sv_metrics *m, int route, int status, double seconds);
void sv_metrics_batch(sv_metrics *m, int n);
/* Prometheus text exposition format 0.0.4; caller frees. */
char *sv_metrics_text(const sv_metrics *m);

/* ---- results store (store.c) ---------------------------------------------------- */

#define SV_ID_LEN 32 /* hex characters */

typedef struct sv_store sv_store;

/* What the overlay and image PNGs of a result are drawn from, kept instead
 * of the PNGs themselves: drawing costs more than screening on large
 * radiographs, and API clients often never ask for it. */
typedef struct sv_visual {
    int w, h;      /* original size */
    uint8_t *grey; /* (h, w) the windowed plane, as fx_overlay_grey gives it */
    uint8_t *heat; /* (H, W) the CAM x 255 at model resolution */
    int H, W;
    fx_prep_geom geom;
    float bbox[4];
} sv_visual;
void sv_visual_free(sv_visual *v);

sv_store *sv_store_create(double ttl_s, size_t max_bytes, sv_metrics *m);
void sv_store_destroy(sv_store *s);
/* Takes ownership of json (text) and v's buffers, on success and on
 * failure alike.  owner: the user who made it ("" without --auth); only
 * the same owner gets it back.  Drops expired entries and, past max_bytes, the oldest.
 * 0, or -1 when out of memory. */
int sv_store_put(sv_store *s, const char *id, const char *owner, char *json, sv_visual *v);
/* Frees expired results (the server's janitor calls it every second, so a
 * result is gone soon after its TTL even when nobody asks for anything). */
void sv_store_sweep(sv_store *s);
/* A malloc'd copy of the result's JSON text (caller frees), or NULL when the
 * id is unknown or expired. */
char *sv_store_json(sv_store *s, const char *id, const char *owner);
/* A copy of the result's drawing material into v (sv_visual_free), or -1
 * when the id is unknown or expired. */
int sv_store_visual(sv_store *s, const char *id, const char *owner, sv_visual *v);
/* A fresh random id (SV_ID_LEN hex characters + NUL). */
void sv_new_id(char id[SV_ID_LEN + 1]);

/* ---- batcher (batcher.c) --------------------------------------------------------- */

/* One image waiting for, then leaving, the engine. */
typedef struct sv_job {
    const float *x; /* (C, H, W), the request's */
    fx_prep_geom geom;
    /* Outputs, room owned by the request. */
    float *score, *classes; /* (S), (K) */
    uint8_t *heat;          /* (H, W) */
    float prob, peak[2], bbox[4];
    int8_t pred;
    /* State, under the batcher's lock. */
    int done;     /* 1 once the outputs are final */
    fx_status st; /* the engine's status */
    char err[256];
    double queued_s, engine_s; /* seconds in the queue, in the engine batch */
    int batch_n;               /* the size of the batch it ran in */
    int *pending;              /* NULL, or the request's count of jobs not yet done: its
                                  connection is resumed when the count reaches 0 */
    struct MHD_Connection *conn;
    struct sv_job *next;
} sv_job;

typedef struct sv_batcher sv_batcher;

/* Engines at batch sizes 1, 2, 4, ... max_batch (max_batch included). */
fx_status sv_batcher_create(const fx_serve_opts *o, const char *config, const fx_prep_config *pc,
                            fx_run_config *eff, sv_metrics *m, sv_batcher **out, fx_error *err);
/* Finishes every queued job (their connections are resumed), then stops. */
void sv_batcher_destroy(sv_batcher *b);
/* Queue jobs[0..n) (their connection suspended by the caller); the batcher
 * resumes the connection once each job is done, or once all are when they
 * share a pending count.  All or nothing: -1 when the queue has no room for
 * n more or is closing (nothing queued). */
int sv_batcher_submit(sv_batcher *b, sv_job *jobs, int n);
/* Uploads on their way to the queue (received, decoding, preprocessing):
 * a batch waits for more images only while some are coming.  Each call to
 * _coming is matched by one to _arrived (queued, refused or dropped). */
void sv_batcher_coming(sv_batcher *b);
void sv_batcher_arrived(sv_batcher *b);
/* Whether j is done, or all of its request's jobs are (under the lock). */
int sv_batcher_done(sv_batcher *b, const sv_job *j);
/* The engine at max batch (shapes, identity). */
const fx_screen *sv_batcher_engine(const sv_batcher *b);
long sv_batcher_depth(sv_batcher *b);

/* ---- the server (server.c) -------------------------------------------------------- */

struct fx_serve {
    fx_serve_opts o;
    char *config_path, *model_name;
    fx_prep_config pc;
    fx_run_config eff;
    char *effective_yaml;
    int C, H, W, S, K;
    sv_batcher *batcher;
    sv_store *store;
    sv_metrics metrics;
    struct MHD_Daemon *d;
    int port;
    atomic_int ready, stopping;
    sv_auth *auth;   /* NULL: no sign-in (--auth not given) */
    sv_audit *audit; /* NULL: no audit trail */
    int tls;
    char *tls_cert, *tls_key; /* PEM text, kept for libmicrohttpd's life */
    pthread_t janitor;
    int janitor_started;
    pthread_mutex_t jmu; /* the janitor sleeps on jcv until stopping */
    pthread_cond_t jcv;
};

/* Per request (MHD's con_cls), freed when the request completes. */
typedef struct sv_req {
    int route; /* index in the route table; -1 none */
    double t0;
    fx_serve *srv;
    /* The body. */
    uint8_t *body;
    size_t n, cap, expect; /* expect: Content-Length, when given */
    int kind;              /* SV_BODY_* */
    struct MHD_PostProcessor *pp;
    int form_vis; /* return_visualization from a form field: -1 not given */
    /* predict */
    int phase; /* 0 receiving, 1 in the engine, 2 answered */
    sv_job job;
    fx_image img;
    float *x;
    int want_vis;
    int queue_full;
    int coming;                              /* counted in sv_batcher_coming */
    double t_body, decode_s, prep_s, grey_s; /* when the body was complete; stage seconds */
    sv_user user;                            /* who (with --auth) */
    char url[256], method[16];
    const char *allow;             /* the Allow header of a 405: the route's method(s) */
    char addr[64];                 /* the client's address */
    char image_sha[FX_SHA256_HEX]; /* of the uploaded bytes, for the audit */
    double audit_prob;             /* the result, for the audit (NaN none) */
    char audit_pred[72];
    cJSON *audit_images; /* the results of a request of several images, for the audit */
    struct sv_v2 *v2;    /* the state of a v2 infer request (kserve.c) */
    const char *xhdr;    /* one more header of the answer, and its value */
    char xhdr_value[32];
} sv_req;

enum { SV_BODY_NONE = 0, SV_BODY_RAW, SV_BODY_MULTIPART, SV_BODY_JSON };

/* Answers: a JSON body (cJSON, deleted here), an error {"error","detail"},
 * or bytes (copied).  Each counts in the metrics.  MHD_YES/MHD_NO. */
enum MHD_Result sv_answer_json(struct MHD_Connection *c, sv_req *r, int status, cJSON *body);
enum MHD_Result sv_answer_error(struct MHD_Connection *c, sv_req *r, int status, const char *error,
                                const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));
enum MHD_Result sv_answer_bytes(struct MHD_Connection *c, sv_req *r, int status, const char *type,
                                const void *data, size_t n, int take);

/* ---- predict (predict.c) ----------------------------------------------------------- */

/* The first call of POST /api/predict: content type and length checked,
 * the body reader set up.  MHD_YES and r->kind set, or an answer queued. */
enum MHD_Result sv_predict_begin(struct MHD_Connection *c, sv_req *r);
/* A piece of the body. */
enum MHD_Result sv_predict_data(struct MHD_Connection *c, sv_req *r, const char *data, size_t n);
/* The body is complete, or the engine is done: next step or the answer. */
enum MHD_Result sv_predict_finish(struct MHD_Connection *c, sv_req *r);
void sv_predict_free(sv_req *r);

/* Shared with the v2 infer route. */
/* Appends to r's body, within limit bytes; -1 past it or out of memory. */
int sv_body_append(sv_req *r, const void *data, size_t n, size_t limit);
/* The upload has reached the queue, or will not (matches sv_batcher_coming). */
void sv_req_arrived(sv_req *r);
/* Decodes image file bytes into img and preprocesses them into x (C, H, W)
 * and geom.  0, or the HTTP status (415, 413, 422, 503) with a short error
 * and err's message; image errors are counted in the metrics. */
int sv_decode_prep(fx_serve *s, const uint8_t *bytes, size_t n, fx_image *img, float *x,
                   fx_prep_geom *geom, double *decode_s, double *prep_s, const char **error,
                   fx_error *err);
/* The label of class k. */
void sv_class_label(const fx_serve *s, int k, char *out, size_t n);
/* A done job's prediction: its label in label, its confidence returned. */
double sv_prediction(const fx_serve *s, const sv_job *j, char *label, size_t n);

/* ---- the Open Inference Protocol, KServe v2 (kserve.c) ---------------------------- */

/* GET /v2 (server metadata), /v2/health/live, /v2/health/ready. */
enum MHD_Result sv_v2_server(struct MHD_Connection *c, sv_req *r, const char *url);
enum MHD_Result sv_v2_health(struct MHD_Connection *c, sv_req *r, const char *url);
/* GET /v2/models/<name>[/versions/<v>][/ready]. */
enum MHD_Result sv_v2_model_route(struct MHD_Connection *c, sv_req *r, const char *url);
/* POST /v2/models/<name>[/versions/<v>]/infer, as the predict functions. */
enum MHD_Result sv_v2_begin(struct MHD_Connection *c, sv_req *r);
enum MHD_Result sv_v2_data(struct MHD_Connection *c, sv_req *r, const char *data, size_t n);
enum MHD_Result sv_v2_finish(struct MHD_Connection *c, sv_req *r);
void sv_v2_free(sv_req *r);

/* The overlay (what 1) or the windowed image (what 2) of v as PNG bytes
 * (caller frees).  FX_ERR_NOMEM. */
fx_status sv_draw(const fx_serve *s, const sv_visual *v, int what, uint8_t **png, size_t *n,
                  fx_error *err);

/* ---- embedded assets (assets.c) ---------------------------------------------------- */

typedef struct sv_asset {
    const char *path, *type;
    const unsigned char *data;
    size_t n;
} sv_asset;
/* The asset at a URL path ("/" is index.html), or NULL. */
const sv_asset *sv_asset_find(const char *path);

#endif
