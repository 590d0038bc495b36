/* The run job: see include/fxscreen/runjob.h.
 *
 * Threads: the pool's readers; the calling thread (consumer: engine + CAM);
 * one writer thread (HDF5 + CSV).  The consumer hands a finished batch to
 * the writer through two output slots: it fills slot k % 2 only once the
 * writer has finished batch k - 2, so at most two batches wait. */
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
    fx_result_batch slot[2];
    size_t produced, written; /* batches handed over / made durable */
    int closing;              /* no more batches will come */
    fx_status st;             /* first write failure */
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
        while (w->written == w->produced && !w->closing)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->written == w->produced)
            break;
        fx_result_batch *b = &w->slot[w->written % 2];
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
        w->written++;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The slot the consumer may fill next (waits while two batches are pending);
 * NULL once the writer has failed. */
static fx_result_batch *writer_acquire(writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->produced - w->written >= 2 && w->st == FX_OK)
        pthread_cond_wait(&w->cv, &w->mu);
    fx_result_batch *b = w->st == FX_OK ? &w->slot[w->produced % 2] : NULL;
    pthread_mutex_unlock(&w->mu);
    return b;
}

static void writer_submit(writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->produced++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
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
    fx_screen *m = NULL;
    int C = 0, H = 0, W = 0, S = 0;
    fx_results out;
    writer w = {.out = &out};
    fx_run_config eff;
    fx_screen_times times = {0};
    fx_source *src = NULL;
    fx_pool *pool = NULL;
    char *yaml = NULL;
    int writer_started = 0;
    double t0 = 0;
    pthread_t tid;
    fx_results_init(&out, job->out_dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_status st =
        job->resume ? run_params_load(job->out_dir, &p, err) : run_params_from_job(job, &p, err);
    fx_pool_config pc = {.threads = p.threads, .batch = p.batch};
    if (st == FX_OK && job->resume)
        st = run_params_check_cwd(&p, err);
    if (st == FX_OK)
        st = fx_screen_settings_load(p.config, p.method, p.layer, p.threshold, &pc.prep, &eff, err);
    if (st == FX_OK) {
        fx_screen_opts so = {.batch = p.batch,
                             .device = p.device,
                             .device_index = p.device_index,
                             .precision = p.precision,
                             .log = job->log,
                             .log_prefix = "run"};
        st = fx_screen_create(p.model, p.config, &pc.prep, &eff, &so, &m, err);
    }
    if (st == FX_OK) {
        fx_screen_input(m, &C, &H, &W);
        S = fx_screen_score_width(m);
    }
    for (int i = 0; i < 2 && st == FX_OK; i++)
        st = fx_result_batch_alloc(&w.slot[i], p.batch, S, H, W, err);
    pc.overlay_side = p.overlays != FX_OVERLAY_NONE ? p.overlay_size : 0;
    for (int i = 0; i < 2 && st == FX_OK && pc.overlay_side > 0; i++) {
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
    long total = -1;
    if (job->count_first) {
        total = p.shard.count > 0 ? (long)fx_shard_rows(p.shard, p.inputs)
                                  : fx_source_count((const char *const *)p.sources, p.nsources);
        if (total >= 0)
            total = total > (long)res->resumed_from ? total - (long)res->resumed_from : 0;
    }
    if ((st = fx_pool_create(&pc, src, &pool, err)) != FX_OK)
        goto done;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (pthread_create(&tid, NULL, writer_main, &w) != 0) {
        st = fx_error_set(err, FX_ERR_NOMEM, "run: cannot start the writer thread");
        goto done;
    }
    writer_started = 1;
    t0 = fx_now_s();
    for (;;) {
        fx_batch *b = fx_pool_next_polled(pool, job->cancel, &res->cancelled);
        if (!b)
            break;
        fx_result_batch *o = writer_acquire(&w);
        if (o)
            st = run_batch(m, &eff, b, o, &times, err);
        if (o && st == FX_OK) {
            o->row0 = res->resumed_from + b->first;
            for (int r = 0; r < b->count; r++) {
                o->index[r] = (int64_t)fx_shard_input(p.shard, o->row0 + (size_t)r);
                if (b->items[r].status == FX_OK)
                    res->ok++;
                else
                    res->errors++;
                res->decode_s += b->items[r].decode_s;
                res->prep_s += b->items[r].prep_s;
            }
            res->total += (size_t)b->count;
            writer_submit(&w);
        } else if (o)
            fx_result_batch_clear(o);
        fx_pool_release(pool, b);
        if (!o || st != FX_OK) {
            fx_pool_cancel(pool);
            break;
        }
        if (job->progress) {
            fx_progress pr = {res->total, total, res->errors, fx_now_s() - t0};
            job->progress(job->progress_ctx, &pr);
        }
    }
done:
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
    res->infer_s = times.infer;
    res->cam_s = times.cam;
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
    for (int i = 0; i < 2; i++)
        fx_result_batch_free(&w.slot[i]);
    fx_source_destroy(src);
    fx_screen_destroy(m);
    free(yaml);
    run_params_free(&p);
    return st;
}
