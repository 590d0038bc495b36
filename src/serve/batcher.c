/* serve's batcher: one thread owns the engines and drains a bounded queue
 * of preprocessed images into engine batches.  A batch starts with the
 * first queued image and closes when it is full or max_wait_ms after that
 * image arrived, whichever comes first, so a lone request waits at most
 * max_wait_ms and a loaded server runs full batches.  Engines exist at
 * batch 1, 2, 4, ... max_batch: a batch of n runs on the smallest that
 * holds it, so light load does not pay for padding. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fxscreen/fsutil.h"
#include "serve/serve_internal.h"

#define SV_MAX_ENGINES 10

struct sv_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sv_job *head, *tail;
    long depth, queue_max;
    long coming; /* uploads still on their way (sv_batcher_coming) */
    int closing;
    pthread_t tid;
    int started;
    fx_screen *eng[SV_MAX_ENGINES];
    int neng, max_batch, max_wait_ms;
    const fx_run_config *eff;
    int C, H, W, S, K;
    float *x;       /* (max_batch, C, H, W) */
    int8_t *status; /* (max_batch) all FX_OK */
    fx_prep_geom *geom;
    fx_screen_out out;
    sv_metrics *m;
};

/* The absolute time ms after t (CLOCK_REALTIME, for pthread_cond_timedwait). */
static struct timespec after_ms(struct timespec t, int ms)
{
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Runs jobs[0..n) as one batch and hands the results to the jobs. */
static void run_batch(sv_batcher *b, sv_job **jobs, int n)
{
    size_t item = (size_t)b->C * b->H * b->W, hw = (size_t)b->H * b->W;
    int e = 0;
    while (fx_screen_batch(b->eng[e]) < n)
        e++;
    for (int i = 0; i < n; i++) {
        memcpy(b->x + (size_t)i * item, jobs[i]->x, item * sizeof(float));
        b->geom[i] = jobs[i]->geom;
    }
    fx_error err = {0};
    double t0 = fx_now_s();
    fx_status st =
        fx_screen_run(b->eng[e], b->eff, b->x, n, b->status, b->geom, &b->out, NULL, &err);
    double dt = fx_now_s() - t0;
    sv_metrics_batch(b->m, n);
    int resume[256];
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < n; i++) {
        sv_job *j = jobs[i];
        /* A request of several images is resumed once, by its last one. */
        resume[i] = !j->pending || --*j->pending == 0;
        j->st = st;
        j->engine_s = dt;
        j->batch_n = n;
        if (st != FX_OK)
            snprintf(j->err, sizeof j->err, "%s", err.msg);
        else {
            memcpy(j->score, b->out.score + (size_t)i * b->S, (size_t)b->S * sizeof(float));
            memcpy(j->classes, b->out.classes + (size_t)i * b->K, (size_t)b->K * sizeof(float));
            memcpy(j->heat, b->out.heat + (size_t)i * hw, hw);
            j->prob = b->out.prob[i];
            j->pred = b->out.pred[i];
            memcpy(j->peak, b->out.peak + 2 * i, sizeof j->peak);
            memcpy(j->bbox, b->out.bbox + 4 * i, sizeof j->bbox);
        }
        j->done = 1;
    }
    pthread_mutex_unlock(&b->mu);
    /* After the lock: the connection's handler reads the job under it. */
    for (int i = 0; i < n; i++)
        if (resume[i])
            MHD_resume_connection(jobs[i]->conn);
}

static void *batcher_main(void *arg)
{
    sv_batcher *b = arg;
    sv_job *jobs[256];
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->head && !b->closing)
            pthread_cond_wait(&b->cv, &b->mu);
        if (!b->head) { /* closing and drained */
            pthread_mutex_unlock(&b->mu);
            return NULL;
        }
        /* The batch closes max_wait_ms after its first image arrived, or
         * at once when no other upload is on its way: waiting for nobody
         * would only add latency. */
        struct timespec now, until;
        clock_gettime(CLOCK_REALTIME, &now);
        until = after_ms(now, b->max_wait_ms);
        while (b->depth < b->max_batch && !b->closing && b->coming > 0 &&
               pthread_cond_timedwait(&b->cv, &b->mu, &until) != ETIMEDOUT)
            ;
        int n = 0;
        while (b->head && n < b->max_batch) {
            jobs[n++] = b->head;
            b->head = b->head->next;
            b->depth--;
        }
        if (!b->head)
            b->tail = NULL;
        atomic_store(&b->m->queue_depth, b->depth);
        double now_s = fx_now_s();
        for (int i = 0; i < n; i++)
            jobs[i]->queued_s = now_s - jobs[i]->queued_s;
        pthread_mutex_unlock(&b->mu);
        run_batch(b, jobs, n);
    }
}

fx_status sv_batcher_create(const fx_serve_opts *o, const char *config, const fx_prep_config *pc,
                            fx_run_config *eff, sv_metrics *m, sv_batcher **out, fx_error *err)
{
    *out = NULL;
    if (o->max_batch < 1 || o->max_batch > 256)
        return fx_error_set(err, FX_ERR_USAGE, "serve: --max-batch %d is not in 1..256",
                            o->max_batch);
    sv_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return fx_error_set(err, FX_ERR_NOMEM, "serve: out of memory");
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->queue_max = o->queue_max > 0 ? o->queue_max : 1;
    b->max_batch = o->max_batch;
    b->max_wait_ms = o->max_wait_ms < 0 ? 0 : o->max_wait_ms;
    b->eff = eff;
    b->m = m;
    fx_status st = FX_OK;
    for (int n = 1; st == FX_OK; n *= 2) {
        int size = n < o->max_batch ? n : o->max_batch;
        fx_screen_opts so = {.batch = size,
                             .device = o->device,
                             .device_index = o->device_index,
                             .precision = o->precision,
                             .log = b->neng ? NULL : o->log, /* the notice once */
                             .log_prefix = "serve"};
        st = fx_screen_create(o->model, config, pc, eff, &so, &b->eng[b->neng], err);
        if (st == FX_OK)
            b->neng++;
        if (size == o->max_batch)
            break;
    }
    if (st == FX_OK) {
        const fx_screen *e = b->eng[b->neng - 1];
        fx_screen_input(e, &b->C, &b->H, &b->W);
        b->S = fx_screen_score_width(e);
        b->K = fx_screen_classes(e);
        size_t mb = (size_t)b->max_batch, hw = (size_t)b->H * b->W;
        b->x = malloc(mb * b->C * hw * sizeof(float));
        b->status = calloc(mb, 1);
        b->geom = calloc(mb, sizeof *b->geom);
        b->out = (fx_screen_out){.score = malloc(mb * b->S * sizeof(float)),
                                 .prob = malloc(mb * sizeof(float)),
                                 .pred = malloc(mb),
                                 .heat = malloc(mb * hw),
                                 .peak = malloc(mb * 2 * sizeof(float)),
                                 .bbox = malloc(mb * 4 * sizeof(float)),
                                 .classes = malloc(mb * b->K * sizeof(float))};
        if (!b->x || !b->status || !b->geom || !b->out.score || !b->out.prob || !b->out.pred ||
            !b->out.heat || !b->out.peak || !b->out.bbox || !b->out.classes)
            st = fx_error_set(err, FX_ERR_NOMEM, "serve: out of memory for the batch buffers");
    }
    if (st == FX_OK && pthread_create(&b->tid, NULL, batcher_main, b) != 0)
        st = fx_error_set(err, FX_ERR_NOMEM, "serve: cannot start the batcher thread");
    if (st != FX_OK) {
        sv_batcher_destroy(b);
        return st;
    }
    b->started = 1;
    *out = b;
    return FX_OK;
}

void sv_batcher_destroy(sv_batcher *b)
{
    if (!b)
        return;
    if (b->started) {
        pthread_mutex_lock(&b->mu);
        b->closing = 1;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->tid, NULL);
    }
    for (int i = 0; i < b->neng; i++)
        fx_screen_destroy(b->eng[i]);
    free(b->x);
    free(b->status);
    free(b->geom);
    free(b->out.score);
    free(b->out.prob);
    free(b->out.pred);
    free(b->out.heat);
    free(b->out.peak);
    free(b->out.bbox);
    free(b->out.classes);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int sv_batcher_submit(sv_batcher *b, sv_job *jobs, int n)
{
    pthread_mutex_lock(&b->mu);
    if (b->closing || n < 1 || b->depth + n > b->queue_max) {
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    double now = fx_now_s();
    for (int i = 0; i < n; i++) {
        sv_job *j = &jobs[i];
        j->next = NULL;
        j->done = 0;
        j->queued_s = now;
        if (b->tail)
            b->tail->next = j;
        else
            b->head = j;
        b->tail = j;
    }
    b->depth += n;
    atomic_store(&b->m->queue_depth, b->depth);
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

void sv_batcher_coming(sv_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->coming++;
    pthread_mutex_unlock(&b->mu);
}

void sv_batcher_arrived(sv_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->coming--;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

int sv_batcher_done(sv_batcher *b, const sv_job *j)
{
    pthread_mutex_lock(&b->mu);
    int d = j->pending ? *j->pending == 0 : j->done;
    pthread_mutex_unlock(&b->mu);
    return d;
}

const fx_screen *sv_batcher_engine(const sv_batcher *b)
{
    return b->eng[b->neng - 1];
}

long sv_batcher_depth(sv_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    long d = b->depth;
    pthread_mutex_unlock(&b->mu);
    return d;
}
