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
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/graph.h"
#include "fxscreen/h5util.h"
#include "fxscreen/loader.h"
#include "fxscreen/onnx.h"
#include "fxscreen/overlay.h"
#include "fxscreen/sha256.h"
#include "fxscreen/source.h"
#include "job/run_internal.h"
#include "out/results.h"

#define RUN_BOX_FRACTION 0.5
#define RUN_OPACITY      0.5

/* ---- model ------------------------------------------------------------------- */

typedef struct run_model {
    fx_graph *g;
    fx_grad *gr;
    fx_plan *plan;
    const char *layer, *logits, *output; /* borrowed from the graph */
    int batch, C, H, W;
    int K;          /* logits per image */
    int S;          /* graph output 0 values per image (/score width) */
    int lc, lh, lw; /* the CAM layer's channels and grid */
    int target;     /* the fracture class the maps explain */
    char sha[FX_SHA256_HEX];
} run_model;

static void model_free(run_model *m)
{
    fx_plan_destroy(m->plan);
    fx_grad_destroy(m->gr);
    fx_graph_destroy(m->g);
    memset(m, 0, sizeof *m);
}

/* The config's classes against the model's K logits; fills eff->positive. */
static fx_status resolve_classes(fx_run_config *eff, int K, const run_params *p, fx_error *err)
{
    const char *where = p->config ? p->config : "the config";
    if (K == 1) { /* sigmoid: the one logit is the fracture class */
        if (eff->nclasses && eff->nclasses != 2)
            return fx_error_set(err, FX_ERR_CONFIG,
                                "%s: key 'model.classes': %d names but "
                                "%s has one (sigmoid) logit; write classes: [normal, fracture]",
                                where, eff->nclasses, p->model);
        if (eff->positive >= 0 && eff->positive != (eff->nclasses ? 1 : 0))
            return fx_error_set(err, FX_ERR_CONFIG,
                                "%s: key 'model.positive': %s has one "
                                "(sigmoid) logit, which is the positive class; remove the key",
                                where, p->model);
        eff->positive = eff->nclasses ? 1 : 0;
        return FX_OK;
    }
    if (eff->nclasses && eff->nclasses != K)
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: key 'model.classes': %d names but %s has "
                            "%d logits; name each logit once",
                            where, eff->nclasses, p->model, K);
    if (eff->positive < 0)
        eff->positive = 1;
    if (eff->positive >= K)
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: key 'model.positive': class %d but %s has "
                            "%d logits; use 0..%d",
                            where, eff->positive, p->model, K, K - 1);
    return FX_OK;
}

/* Load, prepare at (batch, C, H, W) and plan with the CAM layer's tensors kept. */
static fx_status model_load(run_model *m, const run_params *p, const fx_prep_config *pc,
                            fx_run_config *eff, fx_error *err)
{
    memset(m, 0, sizeof *m);
    fx_status st = fx_sha256_file(p->model, m->sha, err);
    if (st != FX_OK)
        return st == FX_ERR_IO ? fx_error_set(err, FX_ERR_USAGE, "%s", err->msg) : st;
    if ((st = fx_onnx_load(p->model, &m->g, err)) != FX_OK) {
        fx_error_prefix(err, "%s: ", p->model);
        return st == FX_ERR_IO ? FX_ERR_USAGE : st;
    }
    fx_shape in;
    if (fx_graph_num_inputs(m->g) < 1 ||
        fx_graph_tensor_shape(m->g, fx_graph_input_name(m->g, 0), &in, NULL) != FX_OK ||
        in.rank != 4)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "%s: the model's first input is not an "
                            "N x C x H x W image tensor",
                            p->model);
    if (in.d[1] > 0 && in.d[1] != pc->channels)
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: the model takes %lld channel(s) but the "
                            "config gives %d (set input.channels in the config)",
                            p->model, (long long)in.d[1], pc->channels);
    if ((in.d[2] > 0 && in.d[2] != pc->out_h) || (in.d[3] > 0 && in.d[3] != pc->out_w))
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: the model takes %lld x %lld images but the "
                            "config gives %d x %d (set input.height/width)",
                            p->model, (long long)in.d[2], (long long)in.d[3], pc->out_h, pc->out_w);
    m->batch = p->batch, m->C = pc->channels, m->H = pc->out_h, m->W = pc->out_w;
    if ((st = fx_graph_prepare(m->g, m->batch, m->H, m->W, err)) != FX_OK) {
        fx_error_prefix(err, "%s: ", p->model);
        return st;
    }
    m->layer = eff->cam_layer[0] ? eff->cam_layer : fx_graph_cam_layer(m->g);
    if (!m->layer)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: no suggested Grad-CAM layer (no global "
                            "pooling head); name one with --layer or cam.layer",
                            p->model);
    if (strlen(m->layer) >= sizeof eff->cam_layer)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "%s: CAM layer name longer than %zu "
                            "characters",
                            p->model, sizeof eff->cam_layer - 1);
    fx_shape a, o;
    if (fx_graph_tensor_shape(m->g, m->layer, &a, NULL) != FX_OK || a.rank != 4)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: CAM layer '%s' is not a 4-D tensor of the "
                            "prepared graph (`fxscreen model info` lists them; fix --layer or "
                            "cam.layer)",
                            p->model, m->layer);
    m->lc = (int)a.d[1], m->lh = (int)a.d[2], m->lw = (int)a.d[3];
    if ((st = fx_grad_create(m->g, m->layer, &m->gr, err)) != FX_OK) {
        fx_error_prefix(err, "%s: ", p->model);
        return st;
    }
    m->logits = fx_grad_logits_name(m->gr);
    m->K = fx_grad_num_classes(m->gr);
    if ((st = resolve_classes(eff, m->K, p, err)) != FX_OK)
        return st;
    m->target = m->K == 1 ? 0 : eff->positive;
    if (m->layer != eff->cam_layer) {
        snprintf(eff->cam_layer, sizeof eff->cam_layer, "%s", m->layer);
        m->layer = eff->cam_layer;
    }
    m->output = fx_graph_output_name(m->g, 0);
    if (fx_graph_tensor_shape(m->g, m->output, &o, NULL) != FX_OK || o.rank < 1 ||
        fx_shape_numel(&o) % m->batch)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "%s: output 0 has no per-image shape",
                            p->model);
    m->S = (int)(fx_shape_numel(&o) / m->batch);
    return FX_OK;
}

/* The engine's plan on the device asked for (auto: CUDA when it runs the
 * whole model, else the CPU with a notice).  The forward may run on the
 * GPU; the CAM backward reads the kept tensors on the host. */
static fx_status model_plan(run_model *m, const run_params *p, FILE *log, fx_error *err)
{
    fx_device_kind got;
    char notice[FX_ERROR_MSG_MAX] = "";
    fx_status st = fx_plan_pick_device(m->g, p->device, &got, notice, sizeof notice, err);
    if (st != FX_OK)
        return st;
    if (log && notice[0])
        fprintf(log, "run: %s\n", notice);
    fx_plan_opts po = {.keep = fx_grad_keep(m->gr),
                       .n_keep = fx_grad_num_keep(m->gr),
                       .device = got,
                       .device_index = p->device_index,
                       .precision = p->precision};
    return fx_plan_create(m->g, &po, &m->plan, err);
}

/* Per-batch engine scratch. */
typedef struct run_scratch {
    float *x;     /* (batch, C, H, W) zero-padded input */
    float *dA;    /* the layer's shape */
    float *low;   /* (batch, lh, lw) */
    float *cam;   /* (batch, H, W) */
    int *targets; /* (batch) */
} run_scratch;

static void scratch_free(run_scratch *s)
{
    free(s->x);
    free(s->dA);
    free(s->low);
    free(s->cam);
    free(s->targets);
}

static fx_status scratch_alloc(run_scratch *s, const run_model *m, fx_error *err)
{
    size_t b = (size_t)m->batch;
    s->x = calloc(b * (size_t)m->C * (size_t)m->H * (size_t)m->W, sizeof(float));
    s->dA = malloc(b * (size_t)m->lc * (size_t)m->lh * (size_t)m->lw * sizeof(float));
    s->low = malloc(b * (size_t)m->lh * (size_t)m->lw * sizeof(float));
    s->cam = malloc(b * (size_t)m->H * (size_t)m->W * sizeof(float));
    s->targets = malloc(b * sizeof(int));
    if (!s->x || !s->dA || !s->low || !s->cam || !s->targets)
        return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory for the engine buffers");
    for (size_t i = 0; i < b; i++)
        s->targets[i] = m->target;
    return FX_OK;
}

/* Thread-seconds spent in each stage (bench/run's breakdown). */
typedef struct run_times {
    double infer, cam;
} run_times;

/* Engine + CAM on one pool batch, results into o (which must be empty). */
static fx_status run_batch(run_model *m, run_scratch *s, const fx_run_config *eff,
                           const fx_batch *b, fx_result_batch *o, run_times *t, fx_error *err)
{
    fx_cam_method method = (fx_cam_method)eff->cam_method;
    double t0 = fx_now_s();
    size_t item = (size_t)m->C * m->H * m->W, hw = (size_t)m->H * m->W;
    const float *x = b->tensor;
    if (b->count < m->batch) { /* short last batch: zero rows after the real ones */
        memcpy(s->x, b->tensor, (size_t)b->count * item * sizeof(float));
        memset(s->x + (size_t)b->count * item, 0,
               (size_t)(m->batch - b->count) * item * sizeof(float));
        x = s->x;
    }
    fx_status st = fx_plan_run(m->plan, x, err);
    double t1 = fx_now_s();
    t->infer += t1 - t0;
    if (st == FX_OK && fx_cam_method_needs_grad(method))
        st = fx_grad_run(m->gr, m->plan, s->targets, 1, s->dA, err);
    if (st != FX_OK)
        return st;
    const float *logits = fx_plan_tensor(m->plan, m->logits, NULL);
    const float *score = fx_plan_tensor(m->plan, m->output, NULL);
    const float *A = fx_plan_tensor(m->plan, m->layer, NULL);
    if (!logits || !score || !A)
        return fx_error_set(err, FX_ERR_INTERNAL, "run: the plan did not keep the CAM tensors");
    if ((st = fx_cam_compute(method, A, s->dA, m->batch, m->lc, m->lh, m->lw, s->low)) != FX_OK)
        return fx_error_set(err, st, "run: %s failed", fx_cam_method_name(method));
    fx_cam_normalize(s->low, m->batch, m->lh, m->lw);
    fx_cam_upsample(s->low, m->batch, m->lh, m->lw, s->cam, m->H, m->W);
    o->n = b->count;
    o->row0 = b->first;
    for (int i = 0; i < b->count; i++) {
        const fx_item *it = &b->items[i];
        o->path[i] = strdup(it->path ? it->path : "");
        o->error[i] = strdup(it->error);
        if (!o->path[i] || !o->error[i])
            return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
        o->status[i] = (int8_t)it->status;
        o->geom[i] = it->geom;
        float *sc = o->score + (size_t)i * m->S, *pk = o->peak + 2 * i, *bx = o->bbox + 4 * i;
        uint8_t *h = o->heat + (size_t)i * hw;
        if (it->status != FX_OK) {
            for (int k = 0; k < m->S; k++)
                sc[k] = NAN;
            o->prob[i] = NAN;
            o->pred[i] = -1;
            memset(h, 0, hw);
            pk[0] = pk[1] = NAN;
            bx[0] = bx[1] = bx[2] = bx[3] = NAN;
            continue;
        }
        memcpy(sc, score + (size_t)i * m->S, (size_t)m->S * sizeof(float));
        const float *l = logits + (size_t)i * m->K;
        double p;
        if (m->K == 1)
            p = 1.0 / (1.0 + exp(-(double)l[0]));
        else {
            double mx = l[0], sum = 0;
            for (int k = 1; k < m->K; k++)
                mx = l[k] > mx ? l[k] : mx;
            for (int k = 0; k < m->K; k++)
                sum += exp((double)l[k] - mx);
            p = exp((double)l[m->target] - mx) / sum;
        }
        o->prob[i] = (float)p;
        o->pred[i] = (int8_t)(p >= eff->threshold);
        const float *c = s->cam + (size_t)i * hw;
        for (size_t q = 0; q < hw; q++) {
            float v = c[q] * 255.0f + 0.5f;
            h[q] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        fx_cam_region r;
        if (fx_cam_locate(c, m->H, m->W, &it->geom, eff->box_fraction, &r) == FX_OK) {
            pk[0] = (float)r.peak_x, pk[1] = (float)r.peak_y;
            bx[0] = (float)r.x0, bx[1] = (float)r.y0, bx[2] = (float)r.x1, bx[3] = (float)r.y1;
        } else {
            pk[0] = pk[1] = NAN;
            bx[0] = bx[1] = bx[2] = bx[3] = NAN;
        }
    }
    t->cam += fx_now_s() - t1;
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
        if (fx_overlay_write_file(b->path[i], w->max_megapixels, &b->geom[i],
                                  b->heat + (size_t)i * hw, w->H, w->W, b->bbox + 4 * i, &w->opts,
                                  out, &e) == FX_OK)
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

/* Effective settings: the command line over the config file (or sidecar)
 * over the defaults.  The CAM layer and the positive class are completed
 * by model_load, which knows the graph. */
static fx_status load_settings(const run_params *p, fx_prep_config *pc, fx_run_config *eff,
                               fx_error *err)
{
    fx_prep_config_default(pc);
    fx_run_config_init(eff);
    if (p->config) {
        fx_status st = fx_prep_config_load(p->config, pc, err);
        if (st == FX_OK)
            st = fx_run_config_load(p->config, eff, err);
        if (st != FX_OK)
            return st == FX_ERR_IO ? FX_ERR_CONFIG : st;
    }
    if (p->method >= 0)
        eff->cam_method = p->method;
    if (p->layer)
        snprintf(eff->cam_layer, sizeof eff->cam_layer, "%s", p->layer);
    if (!isnan(p->threshold))
        eff->threshold = p->threshold;
    if (eff->cam_method < 0)
        eff->cam_method = FX_CAM_GRADCAM;
    if (isnan(eff->threshold))
        eff->threshold = 0.5;
    if (isnan(eff->box_fraction))
        eff->box_fraction = RUN_BOX_FRACTION;
    if (eff->colormap < 0)
        eff->colormap = FX_CMAP_INFERNO;
    if (isnan(eff->opacity))
        eff->opacity = RUN_OPACITY;
    return fx_prep_config_validate(pc, err);
}

/* A YAML double-quoted scalar (names may hold ':', '#', quotes). */
static void yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s < 0x20)
            fprintf(f, "\\x%02x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* The effective config as YAML text (results.h5's `config` attribute and
 * run.json): the preprocessing keys, then the run sections, every value
 * filled in.  The text loads back with --config. Caller frees. */
static char *effective_yaml(const fx_prep_config *pc, const fx_run_config *eff)
{
    char *prep = fx_prep_config_to_yaml(pc), *out = NULL;
    size_t n = 0;
    FILE *f = prep ? open_memstream(&out, &n) : NULL;
    if (!f) {
        free(prep);
        return NULL;
    }
    fputs(prep, f);
    free(prep);
    fputs("model: {", f);
    if (eff->nclasses) {
        fputs("classes: [", f);
        for (int k = 0; k < eff->nclasses; k++) {
            fputs(k ? ", " : "", f);
            yaml_quoted(f, eff->classes[k]);
        }
        fputs("], ", f);
    }
    fprintf(f, "positive: %d, threshold: %.17g}\ncam: {layer: ", eff->positive, eff->threshold);
    yaml_quoted(f, eff->cam_layer);
    fprintf(f, ", method: %s, box_fraction: %.17g}\n",
            fx_cam_method_name((fx_cam_method)eff->cam_method), eff->box_fraction);
    fprintf(f, "overlay: {colormap: %s, opacity: %.17g}\n",
            fx_colormap_name((fx_colormap)eff->colormap), eff->opacity);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* A resumed run must use the model and settings it started with. */
static fx_status check_unchanged(const run_params *p, const run_model *m, const char *yaml,
                                 const char *dir, fx_error *err)
{
    if (p->model_sha && strcmp(p->model_sha, m->sha))
        return fx_error_set(err, FX_ERR_USAGE,
                            "run --resume: %s changed since the run in %s "
                            "started (SHA-256 %.12s..., now %.12s...); restore it or start a new "
                            "run with a fresh --out DIR",
                            p->model, dir, p->model_sha, m->sha);
    if (p->effective && strcmp(p->effective, yaml))
        return fx_error_set(err, FX_ERR_USAGE,
                            "run --resume: the effective config changed "
                            "since the run in %s started (%s edited?); restore it or start a "
                            "new run with a fresh --out DIR",
                            dir, p->config ? p->config : "defaults");
    return FX_OK;
}

fx_status fx_run_job_run(const fx_run_job *job, fx_run_job_result *res, fx_error *err)
{
    memset(res, 0, sizeof *res);
    run_params p;
    run_model m = {0};
    run_scratch sc = {0};
    fx_results out;
    writer w = {.out = &out};
    fx_run_config eff;
    run_times times = {0};
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
        st = load_settings(&p, &pc.prep, &eff, err);
    if (st == FX_OK)
        st = model_load(&m, &p, &pc.prep, &eff, err);
    if (st == FX_OK)
        st = model_plan(&m, &p, job->log, err);
    if (st == FX_OK)
        st = scratch_alloc(&sc, &m, err);
    for (int i = 0; i < 2 && st == FX_OK; i++)
        st = fx_result_batch_alloc(&w.slot[i], m.batch, m.S, m.H, m.W, err);
    if (st == FX_OK && !(yaml = effective_yaml(&pc.prep, &eff)))
        st = fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    if (st == FX_OK && job->resume)
        st = check_unchanged(&p, &m, yaml, job->out_dir, err);
    if (st == FX_OK && !job->resume) {
        free(p.model_sha);
        free(p.effective);
        p.model_sha = strdup(m.sha);
        p.effective = strdup(yaml);
        if (!p.model_sha || !p.effective)
            st = fx_error_set(err, FX_ERR_NOMEM, "run: out of memory");
    }
    if (st == FX_OK)
        st = fx_source_create((const char *const *)p.sources, p.nsources, job->stdin_fp, &src, err);
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
    w.H = m.H, w.W = m.W;
    w.log = job->log;
    fx_results_meta meta = {.S = m.S,
                            .H = m.H,
                            .W = m.W,
                            .model = p.model,
                            .model_sha = m.sha,
                            .cam_layer = m.layer,
                            .config_yaml = yaml,
                            .eff = &eff};
    if (job->resume) {
        if ((st = fx_results_recover(&out, &meta, &res->resumed_from, job->log, err)) != FX_OK)
            goto done;
        fx_source_item si;
        for (size_t i = 0; i < res->resumed_from && fx_source_next(src, &si); i++)
            free(si.path);
        if (job->log)
            fprintf(job->log, "run: resuming %s after %zu rows\n", job->out_dir, res->resumed_from);
    } else if ((st = run_params_save(&p, job->out_dir, err)) != FX_OK ||
               (st = fx_results_create(&out, &meta, err)) != FX_OK)
        goto done;
    long total = -1;
    if (job->count_first) {
        total = fx_source_count((const char *const *)p.sources, p.nsources);
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
            st = run_batch(&m, &sc, &eff, b, o, &times, err);
        if (o && st == FX_OK) {
            o->row0 = res->resumed_from + b->first;
            for (int r = 0; r < b->count; r++) {
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
    if (out.file > 0) {
        fx_error e2 = {0};
        fx_status st2 = fx_results_finish(&out, &e2);
        if (st == FX_OK && st2 != FX_OK) {
            st = st2;
            *err = e2;
        }
    } else
        fx_results_close(&out);
    for (int i = 0; i < 2; i++)
        fx_result_batch_free(&w.slot[i]);
    fx_source_destroy(src);
    scratch_free(&sc);
    model_free(&m);
    free(yaml);
    run_params_free(&p);
    return st;
}
