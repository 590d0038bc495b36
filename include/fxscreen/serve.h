/* fxscreen: `fxscreen serve`, the web app and REST API over the screening
 * core (screen.h), in one process with the model loaded once.
 *
 * Threads:
 *   - libmicrohttpd's pool (opts.threads): parses requests, decodes and
 *     preprocesses uploads, renders overlays and answers.  A predict
 *     request is suspended while the engine works on it, so a pool thread
 *     never waits for the model.
 *   - one batcher thread owns the engines: it takes queued images (up to
 *     opts.max_batch, waiting at most opts.max_wait_ms after the first) and
 *     runs them as one batch on the smallest engine that holds them
 *     (engines at batch 1, 2, 4, ... max_batch, planned at start).
 *   - a full queue answers 503 at once.
 * Results (JSON, overlay and image PNGs) live in memory for opts.result_ttl_s
 * (and within opts.result_memory bytes, oldest dropped first); no upload or
 * result is ever written to disk.  Routes, answers and errors: README
 * ("fxscreen serve") and the OpenAPI document at /openapi.json
 * (src/serve/web/openapi.json). */
#ifndef FXSCREEN_SERVE_H
#define FXSCREEN_SERVE_H
#include "fxscreen/device.h"
#include "fxscreen/status.h"
#include <stddef.h>
#include <stdio.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_serve_opts {
    const char *model;  /* ONNX file */
    const char *config; /* YAML, or NULL: the model's sidecar M.yaml, else defaults */
    const char *host;   /* numeric IPv4/IPv6 address to listen on ("127.0.0.1") */
    int port;           /* 0: any free port (fx_serve_port says which) */
    fx_device_kind device;
    int device_index;
    fx_precision precision;
    int method;           /* fx_cam_method, -1: the config's */
    const char *layer;    /* NULL: the config's */
    double threshold;     /* NaN: the config's */
    int max_batch;        /* images per engine batch, 1..256 */
    int max_wait_ms;      /* how long a batch waits to fill after its first image */
    int queue_max;        /* images waiting for the engine before 503 */
    int threads;          /* HTTP worker threads; <= 0: online cores */
    size_t max_upload;    /* bytes; larger bodies get 413 */
    double result_ttl_s;  /* how long results stay retrievable */
    size_t result_memory; /* bytes of results kept at most */
    FILE *log;            /* notices (device fallback, start, stop); may be NULL */
    /* A hospital deployment (README "fxscreen serve: sign-in, TLS, audit"). */
    const char *auth;     /* tokens.yaml: bearer tokens with roles; NULL: no sign-in */
    int insecure;         /* 1: allow a non-loopback address without --auth */
    const char *tls_cert; /* PEM files: HTTPS (TLS 1.2 and later) */
    const char *tls_key;
    const char *audit;        /* JSON-lines audit trail, hash-chained; NULL: none */
    int max_connections;      /* concurrent connections (default 1024) */
    double request_timeout_s; /* the longest one upload may take, however it trickles (60) */
} fx_serve_opts;

/* Defaults: 127.0.0.1:8080, auto device, max batch 8, wait 5 ms, queue 256,
 * upload 32 MiB, TTL 600 s, results 1 GiB, 1024 connections, 60 s per upload. */
void fx_serve_opts_default(fx_serve_opts *o);

typedef struct fx_serve fx_serve;

/* Load the model, plan the engines, start listening.  Errors: as
 * fx_screen_create, and FX_ERR_USAGE when the address cannot be bound. */
fx_status fx_serve_start(const fx_serve_opts *o, fx_serve **out, fx_error *err);

/* The port it listens on. */
int fx_serve_port(const fx_serve *s);

/* Reopens the audit file (SIGHUP, after log rotation); 0, or -1 when it
 * cannot be opened (the old one stays in use). */
int fx_serve_reopen_audit(fx_serve *s);

/* `fxscreen serve token add`: a fresh random token (64 hex characters into
 * token, printed once by the caller) whose SHA-256 is appended to file. */
fx_status fx_serve_token_add(const char *file, const char *name, const char *role, char *token,
                             size_t n, fx_error *err);

/* `fxscreen audit verify`: walks the hash chain of an audit file (first_prev:
 * the hash the first line follows, NULL for 64 zeros; after a rotation, the
 * last hash of the previous file).  Writes a line to report; returns 0
 * intact, 1 broken (naming the first line that does not follow), 2 unreadable. */
int fx_audit_verify(const char *path, const char *first_prev, FILE *report);

/* Graceful stop: stop accepting connections, let the requests in flight
 * finish (at most grace_s seconds), then stop and free everything. */
void fx_serve_stop(fx_serve *s, double grace_s);

#ifdef __cplusplus
}
#endif
#endif
