/* The run job: see include/fxscreen/runjob.h.
 *
 * Threads: the pool's readers; one thread per engine (--device cuda:0,1:
 * two; usually one), each taking the pool's next batch and running the
 * model and Grad-CAM on it; one writer thread (HDF5 + CSV).  An engine
 * hands its finished batch k to the writer in result slot k % S (S = 2 x
 * engines), which it may fill only once the writer has finished batch
 * k - S; the writer takes the slots in batch order, so rows land in input
 * order whichever engine finishes first, and a kill leaves a prefix. */
#include "fxscreen/runjob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxscreen/cuda_kernels.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"
#include "fxscreen/overlay.h"
#include "fxscreen/screen.h"
#include "fxscreen/source.h"
#include "job/run_internal.h"
#include "out/results.h"

/* The screening core on one pool batch, results into o (which must be
 * empty); o takes the items' paths and errors. */
static fx_status run_batch(fx_screen *m, const fx_run_config *eff, const fx_batch *b,
                           fx_result_batch *o, fx_screen_times *t, fx_error *err)
{
    for (int i = 0; i < b->count; i++) {
        const fx_item *it = &b->items[i];
        o->status[i] = (int8_t)it->status;
        o->geom[i] = it->geom;
        o->ids[i] = it->info.ids;
        o->frames[i] = it->info.frames;
        if (o->ovbase) {
            int has = it->status == FX_OK && it->ov && it->ov_w > 0;
            o->ov_w[i] = has ? it->ov_w : 0, o->ov_h[i] = has ? it->ov_h : 0;
            if (has)
                memcpy(o->ovbase + (size_t)i * o->ov_bytes, it->ov,
                       (size_t)it->ov_w * (size_t)it->ov_h);
        }
    }
    fx_screen_out so = {.score = o->score,
                        .prob = o->prob,
                        .pred = o->pred,
                        .heat = o->heat,
                        .peak = o->peak,
                        .bbox = o->bbox};
    fx_status st = fx_screen_run(m, eff, b->tensor, b->count, o->status, o->geom, &so, t, err);
    if (st != FX_OK)
        return st;
    o->n = b->count;
    o->row0 = b->first;
    for (int i = 0; i < b->count; i++) {
        const fx_item *it = &b->items[i];
        o->path[i] = strdup(it->path ? it->path : "");
        o->error[i] = strdup(it->error);
        if (!o->path[i] || !o->error[i])
            return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    }
    return FX_OK;
}

/* ---- the writer thread ------------------------------------------------------------ */

typedef struct writer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fx_result_batch slot[2 * FX_MAX_ENGINES];
    char ready[2 * FX_MAX_ENGINES]; /* slot k % nslots holds batch k, complete */
    int nslots;
    size_t written; /* batches made durable (the next to write) */
    int closing;    /* no more batches will come */
    int aborted;    /* an engine failed: acquire gives nothing more */
    fx_status st;   /* first write failure */
    fx_error err;
    fx_results *out;
    /* Overlays (set before the thread starts; counters only the writer touches). */
    fx_overlay_mode overlays;
    char overlay_dir[PATH_MAX];
    fx_overlay_opts opts;
    double max_megapixels;
    int H, W;
    FILE *log;
    size_t overlays_written, overlay_errors;
    double write_s, overlay_s; /* seconds in each (bench/run's breakdown) */
} writer;

/* DIR/overlays/RRRRRRRR_NAME.png: the row number keeps names unique and in
 * input order; NAME is the source file's name without its extension. */
static void overlay_name(const writer *w, size_t row, const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(out, n, "%s/%08zu_%.*s.png", w->overlay_dir, row, len, base);
}

/* The overlay PNGs of one batch.  They are written before the batch's rows:
 * a kill in between leaves PNGs that the resumed run writes again under the
 * same names, never rows without their overlays.  A failed overlay is a
 * notice, not a failed run: the row itself is complete. */
static void write_overlays(writer *w, const fx_result_batch *b)
{
    size_t ok = 0, bad = 0, hw = (size_t)w->H * (size_t)w->W;
#pragma omp parallel for schedule(dynamic) reduction(+ : ok, bad)
    for (int i = 0; i < b->n; i++) {
        if (b->status[i] != FX_OK || (w->overlays == FX_OVERLAY_POSITIVES && b->pred[i] != 1))
            continue;
        char out[PATH_MAX];
        overlay_name(w, b->row0 + (size_t)i, b->path[i], out, sizeof out);
        fx_error e = {0};
        /* From the reader's base when it made one; else decoded again here. */
        fx_status st =
            b->ovbase && b->ov_w[i] > 0
                ? fx_overlay_write_base(b->ovbase + (size_t)i * b->ov_bytes, b->ov_w[i], b->ov_h[i],
                                        &b->geom[i], b->heat + (size_t)i * hw, w->H, w->W,
                                        b->bbox + 4 * i, &w->opts, out, &e)
                : fx_overlay_write_file(b->path[i], w->max_megapixels, &b->geom[i],
                                        b->heat + (size_t)i * hw, w->H, w->W, b->bbox + 4 * i,
                                        &w->opts, out, &e);
        if (st == FX_OK)
            ok++;
        else {
            bad++;
#pragma omp critical(fx_run_overlay_log)
            if (w->log)
                fprintf(w->log, "run: overlay not written: %s\n", e.msg);
        }
    }
    w->overlays_written += ok;
    w->overlay_errors += bad;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        size_t k = w->written % (size_t)w->nslots;
        while (!w->ready[k] && !w->closing)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->ready[k])
            break;
        fx_result_batch *b = &w->slot[k];
        pthread_mutex_unlock(&w->mu);
        fx_error e = {0};
        double t0 = fx_now_s();
        if (w->overlays != FX_OVERLAY_NONE)
            write_overlays(w, b);
        double t1 = fx_now_s();
        fx_status st = fx_results_append(w->out, b, &e);
        w->overlay_s += t1 - t0;
        w->write_s += fx_now_s() - t1;
        fx_result_batch_clear(b);
        pthread_mutex_lock(&w->mu);
        if (st != FX_OK && w->st == FX_OK) {
            w->st = st;
            w->err = e;
        }
        w->ready[k] = 0;
        w->written++;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The slot for batch k (waits while batch k - nslots is not yet written);
 * NULL once the writer has failed or an engine has. */
static fx_result_batch *writer_acquire(writer *w, size_t k)
{
    pthread_mutex_lock(&w->mu);
    while (k - w->written >= (size_t)w->nslots && w->st == FX_OK && !w->aborted)
        pthread_cond_wait(&w->cv, &w->mu);
    fx_result_batch *b = w->st == FX_OK && !w->aborted ? &w->slot[k % (size_t)w->nslots] : NULL;
    pthread_mutex_unlock(&w->mu);
    return b;
}

static void writer_submit(writer *w, size_t k)
{
    pthread_mutex_lock(&w->mu);
    w->ready[k % (size_t)w->nslots] = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void writer_abort(writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->aborted = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- the engines ------------------------------------------------------------------ */

/* What the engine threads share. */
typedef struct engines {
    pthread_mutex_t take; /* one thread at a time asks the pool for its next batch */
    pthread_mutex_t mu;   /* the counts, progress and the first failure */
    fx_pool *pool;
    writer *w;
    const fx_run_job *job;
    const run_params *p;
    const fx_run_config *eff;
    fx_run_job_result *res;
    long total;
    double t0;
    fx_status st;
    fx_error err;
} engines;

typedef struct engine {
    engines *all;
    fx_screen *m;
    fx_screen_times times;
    pthread_t tid;
    int started;
} engine;

/* One engine's thread: batches from the pool until it is empty, cancelled,
 * or something failed. */
static void *engine_main(void *arg)
{
    engine *e = arg;
    engines *a = e->all;
    fx_run_job_result *res = a->res;
    for (;;) {
        pthread_mutex_lock(&a->take);
        fx_batch *b = fx_pool_next_polled(a->pool, a->job->cancel, &res->cancelled);
        pthread_mutex_unlock(&a->take);
        if (!b)
            break;
        fx_result_batch *o = writer_acquire(a->w, b->number);
        fx_error err = {0};
        fx_status st = o ? run_batch(e->m, a->eff, b, o, &e->times, &err) : FX_OK;
        if (o && st == FX_OK) {
            size_t ok = 0, bad = 0;
            double dec = 0, prep = 0;
            o->row0 = res->resumed_from + b->first;
            for (int r = 0; r < b->count; r++) {
                o->index[r] = (int64_t)fx_shard_input(a->p->shard, o->row0 + (size_t)r);
                ok += b->items[r].status == FX_OK, bad += b->items[r].status != FX_OK;
                dec += b->items[r].decode_s, prep += b->items[r].prep_s;
            }
            writer_submit(a->w, b->number);
            pthread_mutex_lock(&a->mu);
            res->ok += ok, res->errors += bad, res->total += (size_t)b->count;
            res->decode_s += dec, res->prep_s += prep;
            if (a->job->progress) {
                fx_progress pr = {res->total, a->total, res->errors, fx_now_s() - a->t0};
                a->job->progress(a->job->progress_ctx, &pr);
            }
            pthread_mutex_unlock(&a->mu);
        } else if (o)
            fx_result_batch_clear(o);
        fx_pool_release(a->pool, b);
        if (!o || st != FX_OK) {
            pthread_mutex_lock(&a->mu);
            if (st != FX_OK && a->st == FX_OK)
                a->st = st, a->err = err;
            pthread_mutex_unlock(&a->mu);
            writer_abort(a->w);
            fx_pool_cancel(a->pool);
            break;
        }
    }
    return NULL;
}

/* On a GPU the pool's batch tensors are page-locked once, so that each
 * upload is DMA rather than a staged copy.  A refusal (a limit on locked
 * memory) is a notice: the copies then go the slower way.  1 if pinned. */
static int pin_slots(fx_pool *pool, const fx_screen *m, FILE *log)
{
#ifdef FX_HAVE_CUDA
    if (fx_screen_device(m) != FX_DEVICE_CUDA)
        return 0;
    for (int i = 0; i < fx_pool_num_slots(pool); i++) {
        size_t bytes;
        float *t = fx_pool_slot_tensor(pool, i, &bytes);
        fx_error e = {0};
        if (fx_cuda_pin(t, bytes, &e) != FX_OK) {
            while (i-- > 0)
                fx_cuda_unpin(fx_pool_slot_tensor(pool, i, &bytes));
            if (log)
                fprintf(log, "run: batch buffers not pinned (%s)\n", e.msg);
            return 0;
        }
    }
    return 1;
#else
    (void)pool, (void)m, (void)log;
    return 0;
#endif
}

static void unpin_slots(fx_pool *pool)
{
#ifdef FX_HAVE_CUDA
    size_t bytes;
    for (int i = 0; i < fx_pool_num_slots(pool); i++)
        fx_cuda_unpin(fx_pool_slot_tensor(pool, i, &bytes));
#else
    (void)pool;
#endif
}

/* The engines of the run's device list (FX_RUN_ENGINES=N: the first N
 * times over, what cuda:0,0 does on one GPU, so that tests run several
 * engines on any machine); notices from the first only. */
static fx_status engines_create(const run_params *p, const fx_run_job *job, fx_prep_config *prep,
                                fx_run_config *eff, engine *eng, int *n, fx_error *err)
{
    fx_device_list list = p->devices;
    fx_status st = p->device == FX_DEVICE_CUDA ? fx_device_list_resolve(&list, err) : FX_OK;
    if (st != FX_OK)
        return st;
    if (list.n < 1)
        list = (fx_device_list){1, 0, {0}};
    /* The first engine decides where the run goes (auto may fall back to
     * the CPU); on a GPU each listed device then gets `streams` engines. */
    fx_screen_opts so = {.batch = p->batch,
                         .device = p->device,
                         .device_index = list.index[0],
                         .precision = p->precision,
                         .log = job->log,
                         .log_prefix = "run"};
    if ((st = fx_screen_create(p->model, p->config, prep, eff, &so, &eng[0].m, err)) != FX_OK) {
        *n = 1;
        return st;
    }
    int gpu = fx_screen_device(eng[0].m) == FX_DEVICE_CUDA;
    int per = gpu ? (p->streams > 0 ? p->streams : FX_RUN_STREAMS) : 1;
    const char *env = getenv("FX_RUN_ENGINES"); /* tests: N engines on any device */
    int want = env ? atoi(env) : 0;
    *n = gpu ? list.n * per : 1;
    if (want > 1 && !gpu)
        *n = want;
    if (*n > FX_MAX_ENGINES)
        *n = FX_MAX_ENGINES;
    so.log = NULL; /* one notice is enough */
    so.device = gpu ? FX_DEVICE_CUDA : FX_DEVICE_CPU;
    for (int i = 1; i < *n && st == FX_OK; i++) {
        so.device_index = gpu ? list.index[(i / per) % list.n] : 0;
        st = fx_screen_create(p->model, p->config, prep, eff, &so, &eng[i].m, err);
    }
    if (st == FX_OK && *n > 1 && job->log && gpu)
        fprintf(job->log, "run: %d engines (%d GPU%s x %d stream%s)\n", *n, list.n,
                list.n == 1 ? "" : "s", per, per == 1 ? "" : "s");
    else if (st == FX_OK && *n > 1 && job->log)
        fprintf(job->log, "run: %d engines (cpu)\n", *n);
    return st;
}

/* A kill while an overlay was being written leaves NAME.png.tmp.PID (the
 * final name appears only by rename); the resumed run rewrites that row's
 * PNG, so the leftovers go. */
static void remove_partial_overlays(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".png.tmp.") &&
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            unlink(path);
    closedir(d);
}

/* ---- the job ---------------------------------------------------------------------- */

/* A resumed run must use the model and settings it started with. */
static fx_status check_unchanged(const run_params *p, const char *sha, const char *yaml,
                                 const char *dir, fx_error *err)
{
    if (p->model_sha && strcmp(p->model_sha, sha))
        return fx_error_set(err, FX_ERR_USAGE,
                            "run --resume: %s changed since the run in %s "
                            "started (SHA-256 %.12s..., now %.12s...); restore it or start a new "
                            "run with a fresh --out DIR",
                            p->model, dir, p->model_sha, sha);
    if (p->effective && strcmp(p->effective, yaml))
        return fx_error_set(err, FX_ERR_USAGE,
                            "run --resume: the effective config changed "
                            "since the run in %s started (%s edited?); restore it or start a "
                            "new run with a fresh --out DIR",
                            dir, p->config ? p->config : "defaults");
    return FX_OK;
}

/* A shard's view of the input: the whole list's size and digest (recorded
 * when it starts, checked when it resumes), and the source filtered. */
static fx_status shard_inputs(run_params *p, fx_source *src, const fx_run_job *job, fx_error *err)
{
    size_t n;
    char sha[FX_SHA256_HEX];
    fx_status st = fx_source_list((const char *const *)p->sources, p->nsources, &n, sha, err);
    if (st != FX_OK) {
        fx_error_prefix(err, "run --shard");
        return st;
    }
    if (job->resume && (n != p->inputs || !p->inputs_sha || strcmp(sha, p->inputs_sha)))
        return fx_error_set(err, FX_ERR_USAGE,
                            "run --resume: the inputs of shard %d/%d changed since it started "
                            "(%zu listed then, %zu now); its rows would no longer match the "
                            "other shards': restore them or run every shard again",
                            p->shard.index, p->shard.count, p->inputs, n);
    if (!job->resume) {
        p->inputs = n;
        if (!(p->inputs_sha = strdup(sha)))
            return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    }
    fx_source_set_shard(src, (size_t)p->shard.index, (size_t)p->shard.count);
    if (job->log) {
        const char *gpus = getenv("CUDA_VISIBLE_DEVICES");
        fprintf(job->log, "run: shard %d/%d: %zu of %zu inputs%s%s\n", p->shard.index,
                p->shard.count, fx_shard_rows(p->shard, n), n,
                gpus ? "; CUDA_VISIBLE_DEVICES=" : "", gpus ? gpus : "");
    }
    return FX_OK;
}

fx_status fx_run_job_run(const fx_run_job *job, fx_run_job_result *res, fx_error *err)
{
    memset(res, 0, sizeof *res);
    run_params p;
    engine eng[FX_MAX_ENGINES] = {{0}};
    int n_eng = 0;
    fx_screen *m = NULL; /* the first engine's: the run's model, layer and shapes */
    int C = 0, H = 0, W = 0, S = 0;
    fx_results out;
    writer w = {.out = &out};
    fx_run_config eff;
    fx_source *src = NULL;
    fx_pool *pool = NULL;
    char *yaml = NULL;
    int writer_started = 0, pinned = 0;
    double t0 = 0;
    pthread_t tid;
    engines all = {.w = &w, .job = job, .p = &p, .eff = &eff, .res = res, .total = -1};
    fx_results_init(&out, job->out_dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_status st =
        job->resume ? run_params_load(job->out_dir, &p, err) : run_params_from_job(job, &p, err);
    fx_pool_config pc = {.threads = p.threads, .batch = p.batch};
    if (st == FX_OK && job->resume)
        st = run_params_check_cwd(&p, err);
    if (st == FX_OK)
        st = fx_screen_settings_load(p.config, p.method, p.layer, p.threshold, &pc.prep, &eff, err);
    if (st == FX_OK)
        st = engines_create(&p, job, &pc.prep, &eff, eng, &n_eng, err);
    if (st == FX_OK && p.prep_device == FX_DEVICE_CUDA) { /* before any output */
        char why[FX_ERROR_MSG_MAX - 64];
        fx_device_cuda_why(why, sizeof why);
        if (why[0])
            st = fx_error_set(err, FX_ERR_DEVICE, "--prep-device cuda: %s; use --prep-device cpu",
                              why);
        pc.prep_cuda = 1;
        pc.prep_cuda_device = p.devices.n > 0 && !p.devices.all ? p.devices.index[0] : 0;
    }
    if (st == FX_OK) {
        m = eng[0].m;
        fx_screen_input(m, &C, &H, &W);
        S = fx_screen_score_width(m);
    }
    w.nslots = 2 * (n_eng > 0 ? n_eng : 1);
    for (int i = 0; i < w.nslots && st == FX_OK; i++)
        st = fx_result_batch_alloc(&w.slot[i], p.batch, S, H, W, err);
    pc.overlay_side = p.overlays != FX_OVERLAY_NONE ? p.overlay_size : 0;
    for (int i = 0; i < w.nslots && st == FX_OK && pc.overlay_side > 0; i++) {
        fx_result_batch *o = &w.slot[i];
        o->ov_bytes = (size_t)pc.overlay_side * (size_t)pc.overlay_side;
        o->ovbase = malloc(o->ov_bytes * (size_t)p.batch);
        o->ov_w = calloc((size_t)p.batch, sizeof *o->ov_w);
        o->ov_h = calloc((size_t)p.batch, sizeof *o->ov_h);
        if (!o->ovbase || !o->ov_w || !o->ov_h)
            st = fx_error_set(err, FX_ERR_NOMEM, "run: out of memory for the overlay bases");
    }
    if (st == FX_OK && !(yaml = fx_screen_effective_yaml(&pc.prep, &eff)))
        st = fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    if (st == FX_OK && job->resume)
        st = check_unchanged(&p, fx_screen_sha256(m), yaml, job->out_dir, err);
    if (st == FX_OK && !job->resume) {
        free(p.model_sha);
        free(p.effective);
        p.model_sha = strdup(fx_screen_sha256(m));
        p.effective = strdup(yaml);
        if (!p.model_sha || !p.effective)
            st = fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    }
    if (st == FX_OK)
        st = fx_source_create((const char *const *)p.sources, p.nsources, job->stdin_fp, &src, err);
    if (st == FX_OK && p.shard.count > 0)
        st = shard_inputs(&p, src, job, err);
    if (st == FX_OK && !job->resume)
        st = fx_mkdirs(job->out_dir, err);
    w.overlays = p.overlays;
    snprintf(w.overlay_dir, sizeof w.overlay_dir, "%s/overlays", job->out_dir);
    if (st == FX_OK && w.overlays != FX_OVERLAY_NONE)
        st = fx_mkdirs(w.overlay_dir, err);
    if (st == FX_OK && w.overlays != FX_OVERLAY_NONE && job->resume)
        remove_partial_overlays(w.overlay_dir);
    if (st != FX_OK)
        goto done;
    w.opts = (fx_overlay_opts){.cmap = (fx_colormap)eff.colormap,
                               .opacity = eff.opacity,
                               .invert = pc.prep.invert,
                               .draw_box = 1};
    w.max_megapixels = pc.prep.max_megapixels;
    w.H = H, w.W = W;
    w.log = job->log;
    fx_results_meta meta = {.shard = p.shard,
                            .inputs = p.inputs,
                            .inputs_sha = p.inputs_sha,
                            .S = S,
                            .H = H,
                            .W = W,
                            .model = p.model,
                            .model_sha = fx_screen_sha256(m),
                            .cam_layer = fx_screen_layer(m),
                            .config_yaml = yaml,
                            .eff = &eff};
    if (job->resume) {
        if ((st = fx_results_recover(&out, &meta, &res->resumed_from, job->log, err)) != FX_OK)
            goto done;
        fx_source_item si;
        for (size_t i = 0; i < res->resumed_from && fx_source_next(src, &si); i++) {
            free(si.path);
            free(si.data);
        }
        if (job->log)
            fprintf(job->log, "run: resuming %s after %zu rows\n", job->out_dir, res->resumed_from);
    } else if ((st = run_params_save(&p, job->out_dir, err)) != FX_OK ||
               (st = fx_results_create(&out, &meta, err)) != FX_OK)
        goto done;
    if (job->count_first) {
        long total = p.shard.count > 0
                         ? (long)fx_shard_rows(p.shard, p.inputs)
                         : fx_source_count((const char *const *)p.sources, p.nsources);
        if (total >= 0)
            all.total = total > (long)res->resumed_from ? total - (long)res->resumed_from : 0;
    }
    if (n_eng > 1) { /* the engines hold batches too: keep the readers' slots */
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        int readers = p.threads > 0 ? p.threads : (online > 0 ? (int)online : 1);
        pc.queue = 2 + n_eng + (readers + p.batch - 1) / p.batch;
    }
    if ((st = fx_pool_create(&pc, src, &pool, err)) != FX_OK)
        goto done;
    pinned = pin_slots(pool, m, job->log);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (pthread_create(&tid, NULL, writer_main, &w) != 0) {
        st = fx_error_set(err, FX_ERR_NOMEM, "run: cannot start the writer thread");
        goto done;
    }
    writer_started = 1;
    t0 = fx_now_s();
    all.pool = pool, all.t0 = t0;
    pthread_mutex_init(&all.take, NULL);
    pthread_mutex_init(&all.mu, NULL);
    for (int i = 0; i < n_eng; i++) {
        eng[i].all = &all;
        if (pthread_create(&eng[i].tid, NULL, engine_main, &eng[i]) != 0) {
            st = fx_error_set(err, FX_ERR_NOMEM, "run: cannot start an engine thread");
            writer_abort(&w);
            fx_pool_cancel(pool);
            break;
        }
        eng[i].started = 1;
    }
    for (int i = 0; i < n_eng; i++)
        if (eng[i].started)
            pthread_join(eng[i].tid, NULL);
    pthread_mutex_destroy(&all.take);
    pthread_mutex_destroy(&all.mu);
    if (st == FX_OK && all.st != FX_OK) {
        st = all.st;
        *err = all.err;
    }
done:
    if (pinned) /* the readers are idle from here: every batch was released */
        unpin_slots(pool);
    char gpu_first[FX_ERROR_MSG_MAX];
    size_t fallbacks = pool ? fx_pool_prep_fallbacks(pool, gpu_first, sizeof gpu_first) : 0;
    if (fallbacks && job->log)
        fprintf(job->log, "run: %zu images preprocessed on the CPU after the GPU failed (%s)\n",
                fallbacks, gpu_first);
    fx_pool_destroy(pool);
    if (writer_started) {
        pthread_mutex_lock(&w.mu);
        w.closing = 1;
        pthread_cond_broadcast(&w.cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(tid, NULL);
        if (w.st != FX_OK && st == FX_OK) {
            st = w.st;
            *err = w.err;
        }
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
    }
    if (t0 > 0) /* until the writer has made the last batch durable */
        res->seconds = fx_now_s() - t0;
    for (int i = 0; i < n_eng; i++) /* engine-seconds: summed over engines */
        res->infer_s += eng[i].times.infer, res->cam_s += eng[i].times.cam;
    res->write_s = w.write_s;
    res->overlay_s = w.overlay_s;
    res->overlays = w.overlays_written;
    res->overlay_errors = w.overlay_errors;
    /* The whole list walked: the outputs are complete (input_sha256). */
    char walk_sha[FX_SHA256_HEX];
    size_t walked = 0;
    int complete =
        st == FX_OK && !res->cancelled && src && fx_source_digest(src, &walked, walk_sha);
    if (complete && p.shard.count > 0 && (walked != p.inputs || strcmp(walk_sha, p.inputs_sha))) {
        complete = 0;
        st = fx_error_set(err, FX_ERR_IO,
                          "run: the inputs changed while shard %d/%d ran (%zu listed at its "
                          "start, %zu walked); run every shard again from a fresh --out DIR",
                          p.shard.index, p.shard.count, p.inputs, walked);
    }
    if (out.file > 0) {
        fx_error e2 = {0};
        fx_status st2 = fx_results_finish(&out, walked, complete ? walk_sha : NULL, &e2);
        if (st == FX_OK && st2 != FX_OK) {
            st = st2;
            *err = e2;
        }
    } else
        fx_results_close(&out);
    for (int i = 0; i < 2 * FX_MAX_ENGINES; i++)
        fx_result_batch_free(&w.slot[i]);
    fx_source_destroy(src);
    for (int i = 0; i < n_eng; i++)
        fx_screen_destroy(eng[i].m);
    free(yaml);
    run_params_free(&p);
    return st;
}
