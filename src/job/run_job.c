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

#define RUN_CSV_HEADER   "path,status,probability,prediction,peak_x,peak_y,x0,y0,x1,y1,error"
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

/* ---- one batch of results (consumer side) ------------------------------------ */

typedef struct out_batch {
    int n;
    size_t row0;        /* row of item 0 in the outputs */
    fx_prep_geom *geom; /* (n) for the overlays */
    float *score;       /* (n, S) */
    float *prob;        /* (n) */
    int8_t *pred;       /* (n) */
    uint8_t *heat;      /* (n, H, W) */
    float *peak;        /* (n, 2) */
    float *bbox;        /* (n, 4) */
    int8_t *status;     /* (n) */
    char **path;        /* (n) owned */
    char **error;       /* (n) owned */
} out_batch;

static void out_batch_clear(out_batch *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->path[i]);
        o->path[i] = NULL;
        free(o->error[i]);
        o->error[i] = NULL;
    }
    o->n = 0;
}

static void out_batch_free(out_batch *o)
{
    if (o->path)
        out_batch_clear(o);
    free(o->score);
    free(o->prob);
    free(o->pred);
    free(o->heat);
    free(o->peak);
    free(o->bbox);
    free(o->status);
    free(o->geom);
    free(o->path);
    free(o->error);
    memset(o, 0, sizeof *o);
}

static fx_status out_batch_alloc(out_batch *o, const run_model *m, fx_error *err)
{
    size_t b = (size_t)m->batch;
    memset(o, 0, sizeof *o);
    o->score = malloc(b * (size_t)m->S * sizeof(float));
    o->prob = malloc(b * sizeof(float));
    o->pred = malloc(b);
    o->heat = malloc(b * (size_t)m->H * (size_t)m->W);
    o->peak = malloc(b * 2 * sizeof(float));
    o->bbox = malloc(b * 4 * sizeof(float));
    o->status = malloc(b);
    o->geom = calloc(b, sizeof *o->geom);
    o->path = calloc(b, sizeof(char *));
    o->error = calloc(b, sizeof(char *));
    if (!o->score || !o->prob || !o->pred || !o->heat || !o->peak || !o->bbox || !o->status ||
        !o->geom || !o->path || !o->error)
        return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory for the output buffers");
    return FX_OK;
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
                           const fx_batch *b, out_batch *o, run_times *t, fx_error *err)
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

/* ---- outputs (writer side) ------------------------------------------------------ */

enum { D_SCORE, D_PROB, D_PRED, D_HEAT, D_PEAK, D_BBOX, D_PATH, D_STATUS, D_ERROR, D_N };
static const char *const dset_names[D_N] = {
    "score", "probability", "prediction", "heatmap", "peak_xy", "bbox", "path", "status", "error"};

typedef struct run_out {
    hid_t file;
    hid_t ds[D_N];
    FILE *csv;
    char h5_path[PATH_MAX], csv_path[PATH_MAX];
} run_out;

static void out_close(run_out *o)
{
    for (int d = 0; d < D_N; d++)
        if (o->ds[d] > 0)
            H5Dclose(o->ds[d]);
    if (o->file > 0)
        H5Fclose(o->file);
    if (o->csv)
        fclose(o->csv);
    o->file = -1;
    o->csv = NULL;
    for (int d = 0; d < D_N; d++)
        o->ds[d] = -1;
}

static fx_status csv_sync(FILE *f, const char *path, fx_error *err)
{
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
        return fx_error_set(err, FX_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return FX_OK;
}

static fx_status h5_attr_f64(run_out *o, const char *name, double v, fx_error *err)
{
    fx_status st = FX_OK;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o->file, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0)
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot write attribute %s", o->h5_path, name);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return st;
}

/* A fresh results.h5 (datasets, attributes, SWMR on) and summary.csv. */
static fx_status out_create(run_out *o, const run_model *m, const run_params *p,
                            const fx_run_config *eff, const char *yaml, fx_error *err)
{
    o->file = fx_h5_create_file(o->h5_path, err);
    if (o->file < 0)
        return FX_ERR_IO;
    hid_t str = fx_h5_str_type();
    hsize_t sdim = (hsize_t)m->S, hw[2] = {(hsize_t)m->H, (hsize_t)m->W}, two = 2, four = 4;
    o->ds[D_SCORE] = fx_h5_ext_create(o->file, "score", H5T_IEEE_F32LE, 2, &sdim, 1024, 4, err);
    o->ds[D_PROB] = fx_h5_ext_create(o->file, "probability", H5T_IEEE_F32LE, 1, NULL, 1024, 4, err);
    o->ds[D_PRED] = fx_h5_ext_create(o->file, "prediction", H5T_STD_I8LE, 1, NULL, 4096, 4, err);
    o->ds[D_HEAT] = fx_h5_ext_create(o->file, "heatmap", H5T_STD_U8LE, 3, hw, 1, 4, err);
    o->ds[D_PEAK] = fx_h5_ext_create(o->file, "peak_xy", H5T_IEEE_F32LE, 2, &two, 1024, 4, err);
    o->ds[D_BBOX] = fx_h5_ext_create(o->file, "bbox", H5T_IEEE_F32LE, 2, &four, 1024, 4, err);
    o->ds[D_PATH] = fx_h5_ext_create(o->file, "path", str, 1, NULL, 1024, 4, err);
    o->ds[D_STATUS] = fx_h5_ext_create(o->file, "status", H5T_STD_I8LE, 1, NULL, 4096, 4, err);
    o->ds[D_ERROR] = fx_h5_ext_create(o->file, "error", str, 1, NULL, 1024, 4, err);
    H5Tclose(str);
    for (int d = 0; d < D_N; d++)
        if (o->ds[d] < 0)
            return FX_ERR_IO;
    char when[32], classes[FX_RUN_MAX_CLASSES * (FX_RUN_NAME_MAX + 1) + 1] = "";
    fx_iso8601_now(when, sizeof when);
    for (int k = 0; k < eff->nclasses; k++) {
        strcat(classes, k ? "," : "");
        strcat(classes, eff->classes[k]);
    }
    fx_status st = fx_h5_attr_str(o->file, "fxscreen_version", FX_VERSION, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "model", p->model, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "model_sha256", m->sha, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "config", yaml, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "cam_method",
                            fx_cam_method_name((fx_cam_method)eff->cam_method), err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "cam_layer", m->layer, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "start_time", when, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "classes", classes, err);
    if (st == FX_OK)
        st = h5_attr_f64(o, "threshold", eff->threshold, err);
    if (st == FX_OK)
        st = h5_attr_f64(o, "box_fraction", eff->box_fraction, err);
    if (st == FX_OK)
        st = h5_attr_f64(o, "positive_class", eff->positive, err);
    if (st != FX_OK)
        return st;
    /* From here on metadata is flushed in an order that keeps the file
     * readable whenever the process dies (no new objects or attributes). */
    if (H5Fflush(o->file, H5F_SCOPE_LOCAL) < 0 || H5Fstart_swmr_write(o->file) < 0)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot start SWMR writing", o->h5_path);
    if (!(o->csv = fopen(o->csv_path, "w")))
        return fx_error_set(err, FX_ERR_IO, "%s: cannot create: %s", o->csv_path, strerror(errno));
    fputs(RUN_CSV_HEADER "\n", o->csv);
    return csv_sync(o->csv, o->csv_path, err);
}

/* Opens results.h5 after a crash: clears the "open for writing" flags a
 * killed SWMR writer leaves behind (what h5clear -s does). */
static hid_t h5_open_crashed(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return -1;
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    hbool_t clear = 1;
    if (H5Pexist(fapl, "clear_status_flags") > 0)
        H5Pset(fapl, "clear_status_flags", &clear);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    return f;
}

/* Rows of dataset ds (first axis) and, when dims is non-NULL, the rest. */
static long long h5_rows(hid_t ds, int want_rank, hsize_t *dims)
{
    hsize_t d[8];
    hid_t sp = H5Dget_space(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r != want_rank || r > 8 || H5Sget_simple_extent_dims(sp, d, NULL) < 0) {
        if (sp >= 0)
            H5Sclose(sp);
        return -1;
    }
    H5Sclose(sp);
    if (dims)
        memcpy(dims, d, sizeof(hsize_t) * (size_t)r);
    return (long long)d[0];
}

/* Complete records of summary.csv (after a valid header); -1 if absent or
 * without a whole header line. Record end offsets go to *ends (malloc'd). */
static long csv_complete_rows(const char *path, long **ends_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *buf = NULL;
    size_t cap = 0;
    long n = -1, ncap = 0, *ends = NULL;
    if (fx_csv_read_record(f, &buf, &cap, NULL) == 1 && !strcmp(buf, RUN_CSV_HEADER)) {
        n = 0;
        long hdr_end = ftell(f);
        for (;;) {
            if (fx_csv_read_record(f, &buf, &cap, NULL) != 1)
                break;
            long pos = ftell(f);
            if (pos <= 0 || fseek(f, pos - 1, SEEK_SET) != 0 || fgetc(f) != '\n')
                break; /* a record cut short by the kill: not complete */
            if (n + 1 >= ncap) {
                long *g = realloc(ends, sizeof *g * (size_t)(ncap = 2 * ncap + 64));
                if (!g)
                    break;
                ends = g;
            }
            ends[++n] = pos;
        }
        if (!ends && (ends = malloc(sizeof *ends)) == NULL)
            n = -1;
        else
            ends[0] = hdr_end;
    }
    free(buf);
    fclose(f);
    *ends_out = ends;
    return n;
}

/* Copies the first `bytes` bytes of src to dst (fsync'd), then renames. */
static fx_status csv_cut(const char *path, long bytes, fx_error *err)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0 || fsync(fd) != 0) {
        if (fd >= 0)
            close(fd);
        return fx_error_set(err, FX_ERR_IO, "%s: cannot truncate: %s", path, strerror(errno));
    }
    close(fd);
    return FX_OK;
}

/* Whether rows [c, n) of ds read back, c being the first row of the chunk
 * that holds row n - 1.  A kill -9 while an append rewrote that compressed
 * chunk can leave it unreadable, its committed rows included (seen: inflate()
 * failed on /score after a kill in the test); earlier chunks are full and
 * never rewritten. */
static int h5_tail_readable(hid_t ds, long long n)
{
    if (n <= 0)
        return 1;
    hid_t sp = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds), ty = H5Dget_type(ds), ms = -1;
    hsize_t dims[8], cdims[8], start[8] = {0}, count[8];
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int ok = r >= 1 && r <= 8 && dcpl >= 0 && ty >= 0 &&
             H5Sget_simple_extent_dims(sp, dims, NULL) >= 0 && H5Pget_chunk(dcpl, r, cdims) == r &&
             cdims[0] > 0 && (hsize_t)n <= dims[0];
    void *buf = NULL;
    if (ok) {
        size_t bytes = H5Tget_size(ty);
        for (int i = 0; i < r; i++)
            count[i] = dims[i];
        start[0] = (hsize_t)(n - 1) / cdims[0] * cdims[0];
        count[0] = (hsize_t)n - start[0];
        for (int i = 0; i < r; i++)
            bytes *= count[i];
        ms = H5Screate_simple(r, count, NULL);
        buf = calloc(1, bytes ? bytes : 1);
        ok = ms >= 0 && buf &&
             H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(ds, ty, ms, sp, H5P_DEFAULT, buf) >= 0;
        if (ok && H5Tis_variable_str(ty) > 0)
            H5Dvlen_reclaim(ty, ms, H5P_DEFAULT, buf);
    }
    free(buf);
    if (ms >= 0)
        H5Sclose(ms);
    if (ty >= 0)
        H5Tclose(ty);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return ok;
}

/* Recovers DIR's outputs to their longest consistent prefix; *rows gets it. */
static fx_status out_recover(run_out *o, const run_model *m, const run_params *p,
                             const fx_run_config *eff, const char *yaml, size_t *rows, FILE *log,
                             fx_error *err)
{
    *rows = 0;
    long *ends = NULL;
    long csv_rows = csv_complete_rows(o->csv_path, &ends);
    hid_t f = access(o->h5_path, F_OK) == 0 ? h5_open_crashed(o->h5_path) : -1;
    long long n = csv_rows;
    int h5_ok = f >= 0;
    for (int d = 0; d < D_N && h5_ok; d++) {
        o->ds[d] = H5Lexists(f, dset_names[d], H5P_DEFAULT) > 0
                       ? H5Dopen2(f, dset_names[d], H5P_DEFAULT)
                       : -1;
        if (o->ds[d] < 0) {
            h5_ok = 0;
            break;
        }
        hsize_t dims[3] = {0};
        int rank = d == D_HEAT ? 3 : (d == D_SCORE || d == D_PEAK || d == D_BBOX) ? 2 : 1;
        long long r = h5_rows(o->ds[d], rank, dims);
        if (r < 0)
            h5_ok = 0;
        else if ((d == D_SCORE && dims[1] != (hsize_t)m->S) ||
                 (d == D_HEAT && (dims[1] != (hsize_t)m->H || dims[2] != (hsize_t)m->W))) {
            free(ends);
            for (int e = 0; e <= d; e++)
                if (o->ds[e] >= 0)
                    H5Dclose(o->ds[e]), o->ds[e] = -1;
            H5Fclose(f);
            return fx_error_set(err, FX_ERR_USAGE,
                                "%s: made with another model or input size "
                                "than run.json names; start a new run",
                                o->h5_path);
        }
        if (r < n)
            n = r;
    }
    /* Check that the committed rows' last chunk reads back, cut every
     * dataset back to the n committed rows and reopen for SWMR writing.
     * After a SIGKILL that chunk can be half rewritten, and HDF5 may then
     * also refuse the cut (seen once in the kill -9 test: "cannot truncate
     * /score"): such a file is treated like one that cannot be read back. */
    for (int d = 0; d < D_N && h5_ok && csv_rows >= 0; d++)
        h5_ok = h5_tail_readable(o->ds[d], n);
    for (int d = 0; d < D_N && h5_ok && csv_rows >= 0; d++) {
        hsize_t dims[3];
        int rank = d == D_HEAT ? 3 : (d == D_SCORE || d == D_PEAK || d == D_BBOX) ? 2 : 1;
        if (h5_rows(o->ds[d], rank, dims) > n) {
            dims[0] = (hsize_t)n;
            if (H5Dset_extent(o->ds[d], dims) < 0)
                h5_ok = 0;
        }
    }
    if (h5_ok && csv_rows >= 0 && (H5Fflush(f, H5F_SCOPE_LOCAL) < 0 || H5Fstart_swmr_write(f) < 0))
        h5_ok = 0;
    if (!h5_ok || csv_rows < 0) {
        for (int d = 0; d < D_N; d++)
            if (o->ds[d] >= 0)
                H5Dclose(o->ds[d]), o->ds[d] = -1;
        if (f >= 0)
            H5Fclose(f);
        free(ends);
        if (!h5_ok && access(o->h5_path, F_OK) == 0) {
            char bad[PATH_MAX + 8];
            snprintf(bad, sizeof bad, "%s.bad", o->h5_path);
            rename(o->h5_path, bad);
            if (log)
                fprintf(log,
                        "run: %s could not be read back or cut to its %lld committed rows; "
                        "moved to %s, starting again\n",
                        o->h5_path, n, bad);
        }
        return out_create(o, m, p, eff, yaml, err);
    }
    o->file = f;
    fx_status st = csv_cut(o->csv_path, ends[n], err);
    free(ends);
    if (st != FX_OK)
        return st;
    if (!(o->csv = fopen(o->csv_path, "a")))
        return fx_error_set(err, FX_ERR_IO, "%s: cannot open: %s", o->csv_path, strerror(errno));
    *rows = (size_t)n;
    return FX_OK;
}

static void csv_num(FILE *f, float v)
{
    if (!isnan(v))
        fprintf(f, "%.9g", (double)v);
}

/* Appends one batch to both outputs and makes it durable. */
static fx_status out_append(run_out *o, const out_batch *b, fx_error *err)
{
    hsize_t n = (hsize_t)b->n;
    fx_status st = fx_h5_ext_append(o->ds[D_SCORE], H5T_NATIVE_FLOAT, n, b->score, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[D_PROB], H5T_NATIVE_FLOAT, n, b->prob, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[D_PRED], H5T_NATIVE_INT8, n, b->pred, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[D_HEAT], H5T_NATIVE_UINT8, n, b->heat, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[D_PEAK], H5T_NATIVE_FLOAT, n, b->peak, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[D_BBOX], H5T_NATIVE_FLOAT, n, b->bbox, err);
    if (st == FX_OK)
        st = fx_h5_ext_append_str(o->ds[D_PATH], n, (const char *const *)b->path, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[D_STATUS], H5T_NATIVE_INT8, n, b->status, err);
    if (st == FX_OK)
        st = fx_h5_ext_append_str(o->ds[D_ERROR], n, (const char *const *)b->error, err);
    if (st == FX_OK && H5Fflush(o->file, H5F_SCOPE_LOCAL) < 0)
        st = fx_error_set(err, FX_ERR_IO, "%s: flush failed (disk full?)", o->h5_path);
    if (st != FX_OK)
        return st;
    /* The CSV goes second: its complete rows never outnumber the HDF5's. */
    for (int i = 0; i < b->n; i++) {
        fx_csv_field(o->csv, b->path[i]);
        fputs(b->status[i] == FX_OK ? ",ok," : ",error,", o->csv);
        csv_num(o->csv, b->prob[i]);
        if (b->pred[i] >= 0)
            fprintf(o->csv, ",%d", b->pred[i]);
        else
            fputc(',', o->csv);
        for (int k = 0; k < 2; k++)
            fputc(',', o->csv), csv_num(o->csv, b->peak[2 * i + k]);
        for (int k = 0; k < 4; k++)
            fputc(',', o->csv), csv_num(o->csv, b->bbox[4 * i + k]);
        fputc(',', o->csv);
        fx_csv_field(o->csv, b->error[i]);
        fputc('\n', o->csv);
    }
    return csv_sync(o->csv, o->csv_path, err);
}

/* Closes the outputs and stamps end_time (after SWMR: reopened normally). */
static fx_status out_finish(run_out *o, fx_error *err)
{
    int had_file = o->file > 0;
    out_close(o);
    if (!had_file)
        return FX_OK;
    hid_t f = H5Fopen(o->h5_path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot reopen to stamp end_time", o->h5_path);
    char when[32];
    fx_iso8601_now(when, sizeof when);
    if (H5Aexists(f, "end_time") > 0)
        H5Adelete(f, "end_time");
    fx_status st = fx_h5_attr_str(f, "end_time", when, err);
    if (H5Fclose(f) < 0 && st == FX_OK)
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot close", o->h5_path);
    return st;
}

/* ---- the writer thread ------------------------------------------------------------ */

typedef struct writer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    out_batch slot[2];
    size_t produced, written; /* batches handed over / made durable */
    int closing;              /* no more batches will come */
    fx_status st;             /* first write failure */
    fx_error err;
    run_out *out;
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
static void write_overlays(writer *w, const out_batch *b)
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
        out_batch *b = &w->slot[w->written % 2];
        pthread_mutex_unlock(&w->mu);
        fx_error e = {0};
        double t0 = fx_now_s();
        if (w->overlays != FX_OVERLAY_NONE)
            write_overlays(w, b);
        double t1 = fx_now_s();
        fx_status st = out_append(w->out, b, &e);
        w->overlay_s += t1 - t0;
        w->write_s += fx_now_s() - t1;
        out_batch_clear(b);
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
static out_batch *writer_acquire(writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->produced - w->written >= 2 && w->st == FX_OK)
        pthread_cond_wait(&w->cv, &w->mu);
    out_batch *b = w->st == FX_OK ? &w->slot[w->produced % 2] : NULL;
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
    run_out out = {.file = -1};
    writer w = {.out = &out};
    fx_run_config eff;
    run_times times = {0};
    fx_source *src = NULL;
    fx_pool *pool = NULL;
    char *yaml = NULL;
    int writer_started = 0;
    double t0 = 0;
    pthread_t tid;
    for (int d = 0; d < D_N; d++)
        out.ds[d] = -1;
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
        st = out_batch_alloc(&w.slot[i], &m, err);
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
    snprintf(out.h5_path, sizeof out.h5_path, "%s/results.h5", job->out_dir);
    snprintf(out.csv_path, sizeof out.csv_path, "%s/summary.csv", job->out_dir);
    if (job->resume) {
        if ((st = out_recover(&out, &m, &p, &eff, yaml, &res->resumed_from, job->log, err)) !=
            FX_OK)
            goto done;
        fx_source_item si;
        for (size_t i = 0; i < res->resumed_from && fx_source_next(src, &si); i++)
            free(si.path);
        if (job->log)
            fprintf(job->log, "run: resuming %s after %zu rows\n", job->out_dir, res->resumed_from);
    } else if ((st = run_params_save(&p, job->out_dir, err)) != FX_OK ||
               (st = out_create(&out, &m, &p, &eff, yaml, err)) != FX_OK)
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
        out_batch *o = writer_acquire(&w);
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
            out_batch_clear(o);
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
        fx_status st2 = out_finish(&out, &e2);
        if (st == FX_OK && st2 != FX_OK) {
            st = st2;
            *err = e2;
        }
    } else
        out_close(&out);
    for (int i = 0; i < 2; i++)
        out_batch_free(&w.slot[i]);
    fx_source_destroy(src);
    scratch_free(&sc);
    model_free(&m);
    free(yaml);
    run_params_free(&p);
    return st;
}
