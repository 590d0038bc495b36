/* The screening core: see include/fxscreen/screen.h. */
#include "fxscreen/screen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cam/cam_internal.h"
#include "fxscreen/cam.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/grad.h"
#include "fxscreen/graph.h"
#include "fxscreen/keras.h"
#include "fxscreen/onnx.h"
#include "fxscreen/overlay.h"

#define SCREEN_BOX_FRACTION 0.5
#define SCREEN_OPACITY      0.5

struct fx_screen {
    fx_graph *g;
    fx_grad *gr;
    fx_plan *plan;
    fx_device_kind device;
    const char *layer;           /* layer_buf */
    const char *logits, *output; /* borrowed from the graph */
    char layer_buf[512];         /* the CAM layer (eff->cam_layer's size) */
    int batch, C, H, W;
    int K;          /* logits per image */
    int S;          /* graph output 0 values per image (/score width) */
    int lc, lh, lw; /* the CAM layer's channels and grid */
    int target;     /* the fracture class the maps explain */
    char sha[FX_SHA256_HEX];
    /* Per-batch scratch. */
    float *x;     /* (batch, C, H, W) zero-padded input */
    float *dA;    /* the layer's shape */
    float *low;   /* (batch, lh, lw) */
    float *cam;   /* (batch, H, W) */
    int *targets; /* (batch) */
    double *p;    /* (K) one image's class probabilities */
#ifdef FX_HAVE_CUDA
    fx_cam_gpu *cg; /* a CUDA plan's maps on the GPU (NULL: on the CPU) */
#endif
    uint8_t *heat; /* (batch, H, W) from the GPU */
    fx_cam_px *px; /* (batch) */
};

/* ---- settings ------------------------------------------------------------------ */

fx_status fx_screen_sidecar(const char *model, char **out, fx_error *err)
{
    size_t n = strlen(model);
    char *side = malloc(n + 6);
    *out = NULL;
    if (!side)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    memcpy(side, model, n + 1);
    /* M.onnx, M.h5, M.keras -> M.yaml */
    static const char *const ext[] = {".onnx", ".h5", ".hdf5", ".keras"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t k = strlen(ext[i]);
        if (n > k && !strcmp(side + n - k, ext[i])) {
            side[n - k] = 0;
            break;
        }
    }
    strcat(side, ".yaml");
    if (access(side, R_OK) == 0)
        *out = side;
    else
        free(side);
    return FX_OK;
}

fx_status fx_screen_settings_load(const char *config, int method, const char *layer,
                                  double threshold, fx_prep_config *pc, fx_run_config *eff,
                                  fx_error *err)
{
    fx_prep_config_default(pc);
    fx_run_config_init(eff);
    if (config) {
        fx_status st = fx_prep_config_load(config, pc, err);
        if (st == FX_OK)
            st = fx_run_config_load(config, eff, err);
        if (st != FX_OK)
            return st == FX_ERR_IO ? FX_ERR_CONFIG : st;
    }
    if (method >= 0)
        eff->cam_method = method;
    if (layer)
        snprintf(eff->cam_layer, sizeof eff->cam_layer, "%s", layer);
    if (!isnan(threshold))
        eff->threshold = threshold;
    if (eff->cam_method < 0)
        eff->cam_method = FX_CAM_GRADCAM;
    if (isnan(eff->threshold))
        eff->threshold = 0.5;
    if (isnan(eff->box_fraction))
        eff->box_fraction = SCREEN_BOX_FRACTION;
    if (eff->colormap < 0)
        eff->colormap = FX_CMAP_INFERNO;
    if (isnan(eff->opacity))
        eff->opacity = SCREEN_OPACITY;
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

char *fx_screen_effective_yaml(const fx_prep_config *pc, const fx_run_config *eff)
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

/* ---- the engine ------------------------------------------------------------------ */

/* The config's classes against the model's K logits; fills eff->positive. */
static fx_status resolve_classes(fx_run_config *eff, int K, const char *model, const char *config,
                                 fx_error *err)
{
    const char *where = config ? config : "the config";
    if (K == 1) { /* sigmoid: the one logit is the fracture class */
        if (eff->nclasses && eff->nclasses != 2)
            return fx_error_set(err, FX_ERR_CONFIG,
                                "%s: key 'model.classes': %d names but "
                                "%s has one (sigmoid) logit; write classes: [normal, fracture]",
                                where, eff->nclasses, model);
        if (eff->positive >= 0 && eff->positive != (eff->nclasses ? 1 : 0))
            return fx_error_set(err, FX_ERR_CONFIG,
                                "%s: key 'model.positive': %s has one "
                                "(sigmoid) logit, which is the positive class; remove the key",
                                where, model);
        eff->positive = eff->nclasses ? 1 : 0;
        return FX_OK;
    }
    if (eff->nclasses && eff->nclasses != K)
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: key 'model.classes': %d names but %s has "
                            "%d logits; name each logit once",
                            where, eff->nclasses, model, K);
    if (eff->positive < 0)
        eff->positive = 1;
    if (eff->positive >= K)
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: key 'model.positive': class %d but %s has "
                            "%d logits; use 0..%d",
                            where, eff->positive, model, K, K - 1);
    return FX_OK;
}

/* Load, prepare at (batch, C, H, W) and find the CAM layer and logits. */
static fx_status screen_load(fx_screen *m, const char *model, const char *config,
                             const fx_prep_config *pc, fx_run_config *eff, fx_error *err)
{
    fx_status st = fx_sha256_file(model, m->sha, err);
    if (st == FX_ERR_IO) { /* a model that cannot be read is a usage error; the message stays */
        if (err)
            err->code = FX_ERR_USAGE;
        return FX_ERR_USAGE;
    }
    if (st != FX_OK)
        return st;
    if ((st = fx_model_load(model, &m->g, err)) != FX_OK) /* its message names the file */
        return st == FX_ERR_IO ? FX_ERR_USAGE : st;
    fx_shape in;
    if (fx_graph_num_inputs(m->g) < 1 ||
        fx_graph_tensor_shape(m->g, fx_graph_input_name(m->g, 0), &in, NULL) != FX_OK ||
        in.rank != 4)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "%s: the model's first input is not an "
                            "N x C x H x W image tensor",
                            model);
    if (in.d[1] > 0 && in.d[1] != pc->channels)
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: the model takes %lld channel(s) but the "
                            "config gives %d (set input.channels in the config)",
                            model, (long long)in.d[1], pc->channels);
    if ((in.d[2] > 0 && in.d[2] != pc->out_h) || (in.d[3] > 0 && in.d[3] != pc->out_w))
        return fx_error_set(err, FX_ERR_CONFIG,
                            "%s: the model takes %lld x %lld images but the "
                            "config gives %d x %d (set input.height/width)",
                            model, (long long)in.d[2], (long long)in.d[3], pc->out_h, pc->out_w);
    m->C = pc->channels, m->H = pc->out_h, m->W = pc->out_w;
    if ((st = fx_graph_prepare(m->g, m->batch, m->H, m->W, err)) != FX_OK) {
        fx_error_prefix(err, "%s", model); /* it adds the ": " */
        return st;
    }
    m->layer = eff->cam_layer[0] ? eff->cam_layer : fx_graph_cam_layer(m->g);
    if (!m->layer)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: no suggested Grad-CAM layer (no global "
                            "pooling head); name one with --layer or cam.layer",
                            model);
    if (strlen(m->layer) >= sizeof eff->cam_layer)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "%s: CAM layer name longer than %zu characters", model,
                            sizeof eff->cam_layer - 1);
    fx_shape a, o;
    if (fx_graph_tensor_shape(m->g, m->layer, &a, NULL) != FX_OK || a.rank != 4)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: CAM layer '%s' is not a 4-D tensor of the "
                            "prepared graph (`fxscreen model info` lists them; fix --layer or "
                            "cam.layer)",
                            model, m->layer);
    m->lc = (int)a.d[1], m->lh = (int)a.d[2], m->lw = (int)a.d[3];
    if ((st = fx_grad_create(m->g, m->layer, &m->gr, err)) != FX_OK) {
        fx_error_prefix(err, "%s", model); /* it adds the ": " */
        return st;
    }
    m->logits = fx_grad_logits_name(m->gr);
    m->K = fx_grad_num_classes(m->gr);
    if ((st = resolve_classes(eff, m->K, model, config, err)) != FX_OK)
        return st;
    m->target = m->K == 1 ? 0 : eff->positive;
    snprintf(m->layer_buf, sizeof m->layer_buf, "%s", m->layer);
    if (m->layer != eff->cam_layer)
        snprintf(eff->cam_layer, sizeof eff->cam_layer, "%s", m->layer);
    m->layer = m->layer_buf;
    m->output = fx_graph_output_name(m->g, 0);
    if (fx_graph_tensor_shape(m->g, m->output, &o, NULL) != FX_OK || o.rank < 1 ||
        fx_shape_numel(&o) % m->batch)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "%s: output 0 has no per-image shape", model);
    m->S = (int)(fx_shape_numel(&o) / m->batch);
    return FX_OK;
}

/* The plan on the device asked for (auto: CUDA when it runs the whole
 * model, else the CPU with a notice).  On a GPU the plan runs the backward
 * there too (where its backend has every VJP), and the maps are made there
 * (src/cam/cam_gpu.c) unless FX_CUDA_HOST_CAM is set. */
static fx_status screen_plan(fx_screen *m, const fx_screen_opts *o, fx_error *err)
{
    char notice[FX_ERROR_MSG_MAX] = "";
    fx_status st = fx_plan_pick_device(m->g, o->device, &m->device, notice, sizeof notice, err);
    if (st != FX_OK)
        return st;
    if (o->log && notice[0])
        fprintf(o->log, "%s: %s\n", o->log_prefix ? o->log_prefix : "fxscreen", notice);
    fx_plan_opts po = {.grad = m->gr,
                       .device = m->device,
                       .device_index = o->device_index,
                       .precision = o->precision};
    if ((st = fx_plan_create(m->g, &po, &m->plan, err)) != FX_OK)
        return st;
#ifdef FX_HAVE_CUDA
    if (m->device == FX_DEVICE_CUDA && !getenv("FX_CUDA_HOST_CAM"))
        return fx_cam_gpu_create(m->plan, m->gr, m->H, m->W, &m->cg, err);
#endif
    return FX_OK;
}

static fx_status scratch_alloc(fx_screen *m, fx_error *err)
{
    size_t b = (size_t)m->batch;
    m->x = calloc(b * (size_t)m->C * (size_t)m->H * (size_t)m->W, sizeof(float));
    m->dA = malloc(b * (size_t)m->lc * (size_t)m->lh * (size_t)m->lw * sizeof(float));
    m->low = malloc(b * (size_t)m->lh * (size_t)m->lw * sizeof(float));
    m->cam = malloc(b * (size_t)m->H * (size_t)m->W * sizeof(float));
    m->targets = malloc(b * sizeof(int));
    m->p = malloc((size_t)m->K * sizeof(double));
    m->heat = malloc(b * (size_t)m->H * (size_t)m->W);
    m->px = malloc(b * sizeof *m->px);
    if (!m->x || !m->dA || !m->low || !m->cam || !m->targets || !m->p || !m->heat || !m->px)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory for the engine buffers");
    for (size_t i = 0; i < b; i++)
        m->targets[i] = m->target;
    return FX_OK;
}

fx_status fx_screen_create(const char *model, const char *config, const fx_prep_config *pc,
                           fx_run_config *eff, const fx_screen_opts *o, fx_screen **out,
                           fx_error *err)
{
    *out = NULL;
    if (!model || !o || o->batch < 1 || o->batch > 4096)
        return fx_error_set(err, FX_ERR_USAGE, "screen: a model and a batch of 1..4096 are needed");
    fx_screen *m = calloc(1, sizeof *m);
    if (!m)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    m->batch = o->batch;
    fx_status st = screen_load(m, model, config, pc, eff, err);
    if (st == FX_OK)
        st = screen_plan(m, o, err);
    if (st == FX_OK)
        st = scratch_alloc(m, err);
    if (st != FX_OK) {
        fx_screen_destroy(m);
        return st;
    }
    *out = m;
    return FX_OK;
}

void fx_screen_destroy(fx_screen *m)
{
    if (!m)
        return;
#ifdef FX_HAVE_CUDA
    fx_cam_gpu_destroy(m->cg);
#endif
    fx_plan_destroy(m->plan);
    fx_grad_destroy(m->gr);
    fx_graph_destroy(m->g);
    free(m->x);
    free(m->dA);
    free(m->low);
    free(m->cam);
    free(m->targets);
    free(m->p);
    free(m->heat);
    free(m->px);
    free(m);
}

int fx_screen_batch(const fx_screen *s)
{
    return s->batch;
}
int fx_screen_classes(const fx_screen *s)
{
    return s->K;
}
int fx_screen_score_width(const fx_screen *s)
{
    return s->S;
}
const char *fx_screen_sha256(const fx_screen *s)
{
    return s->sha;
}
fx_device_kind fx_screen_device(const fx_screen *s)
{
    return s->device;
}
const char *fx_screen_layer(const fx_screen *s)
{
    return s->layer;
}

void fx_screen_input(const fx_screen *s, int *C, int *H, int *W)
{
    *C = s->C, *H = s->H, *W = s->W;
}

/* Softmax (sigmoid for one logit) of l[0..K) into p, in double. */
static void class_probs(const float *l, int K, double *p)
{
    if (K == 1) {
        p[0] = 1.0 / (1.0 + exp(-(double)l[0]));
        return;
    }
    double mx = l[0], sum = 0;
    for (int k = 1; k < K; k++)
        mx = l[k] > mx ? l[k] : mx;
    for (int k = 0; k < K; k++)
        sum += (p[k] = exp((double)l[k] - mx));
    for (int k = 0; k < K; k++)
        p[k] /= sum;
}

/* One item's outputs when it failed: NaN and zeros. */
static void error_row(const fx_screen *m, const fx_screen_out *o, int i)
{
    size_t hw = (size_t)m->H * m->W;
    for (int k = 0; k < m->S; k++)
        o->score[(size_t)i * m->S + k] = NAN;
    for (int k = 0; o->classes && k < m->K; k++)
        o->classes[(size_t)i * m->K + k] = NAN;
    o->prob[i] = NAN;
    o->pred[i] = -1;
    memset(o->heat + (size_t)i * hw, 0, hw);
    for (int k = 0; k < 2; k++)
        o->peak[2 * i + k] = NAN;
    for (int k = 0; k < 4; k++)
        o->bbox[4 * i + k] = NAN;
}

/* The batch's maps after the forward: the uint8 heat (m->heat) and each
 * map's peak and box in model pixels (m->px), on the GPU for a CUDA plan
 * (only those cross), else on the CPU. */
static fx_status screen_maps(fx_screen *m, fx_cam_method method, double frac, fx_error *err)
{
#ifdef FX_HAVE_CUDA
    if (m->cg)
        return fx_cam_gpu_run(m->cg, method, m->targets, 1, frac, m->heat, m->px, err);
#endif
    fx_status st = FX_OK;
    if (fx_cam_method_needs_grad(method) &&
        (st = fx_grad_run(m->gr, m->plan, m->targets, 1, m->dA, err)) != FX_OK)
        return st;
    const float *A = fx_plan_tensor(m->plan, m->layer, NULL);
    if (!A)
        return fx_error_set(err, FX_ERR_INTERNAL, "screen: the plan did not keep the CAM layer");
    if ((st = fx_cam_heat(method, A, m->dA, m->batch, m->lc, m->lh, m->lw, m->H, m->W, frac, m->low,
                          m->cam, m->heat, m->px)) != FX_OK)
        return fx_error_set(err, st, "screen: %s failed", fx_cam_method_name(method));
    return FX_OK;
}

fx_status fx_screen_run(fx_screen *m, const fx_run_config *eff, const float *x, int count,
                        const int8_t *status, const fx_prep_geom *geom, const fx_screen_out *o,
                        fx_screen_times *t, fx_error *err)
{
    if (count < 1 || count > m->batch)
        return fx_error_set(err, FX_ERR_USAGE, "screen: %d images for an engine of batch %d", count,
                            m->batch);
    fx_cam_method method = (fx_cam_method)eff->cam_method;
    double t0 = fx_now_s();
    size_t item = (size_t)m->C * m->H * m->W, hw = (size_t)m->H * m->W;
    if (count < m->batch) { /* short batch: zero rows after the real ones */
        memcpy(m->x, x, (size_t)count * item * sizeof(float));
        memset(m->x + (size_t)count * item, 0, (size_t)(m->batch - count) * item * sizeof(float));
        x = m->x;
    }
    fx_status st = fx_plan_run(m->plan, x, err);
    double t1 = fx_now_s();
    if (t)
        t->infer += t1 - t0;
    if (st == FX_OK)
        st = screen_maps(m, method, eff->box_fraction, err);
    if (st != FX_OK)
        return st;
    const float *logits = fx_plan_tensor(m->plan, m->logits, NULL);
    const float *score = fx_plan_tensor(m->plan, m->output, NULL);
    if (!logits || !score)
        return fx_error_set(err, FX_ERR_INTERNAL, "screen: the plan did not keep the CAM tensors");
    for (int i = 0; i < count; i++) {
        if (status && status[i] != FX_OK) {
            error_row(m, o, i);
            continue;
        }
        memcpy(o->score + (size_t)i * m->S, score + (size_t)i * m->S, (size_t)m->S * sizeof(float));
        const float *l = logits + (size_t)i * m->K;
        class_probs(l, m->K, m->p);
        o->prob[i] = (float)m->p[m->target];
        for (int k = 0; o->classes && k < m->K; k++)
            o->classes[(size_t)i * m->K + k] = (float)m->p[k];
        o->pred[i] = (int8_t)(o->prob[i] >= eff->threshold);
        memcpy(o->heat + (size_t)i * hw, m->heat + (size_t)i * hw, hw);
        float *pk = o->peak + 2 * i, *bx = o->bbox + 4 * i;
        const fx_prep_geom *gi = &geom[i];
        if (eff->box_fraction > 0.0 && eff->box_fraction <= 1.0 && gi->scale_x > 0 &&
            gi->scale_y > 0) {
            fx_cam_region r;
            fx_cam_px_region(&m->px[i], m->W, m->H, gi, &r);
            pk[0] = (float)r.peak_x, pk[1] = (float)r.peak_y;
            bx[0] = (float)r.x0, bx[1] = (float)r.y0, bx[2] = (float)r.x1, bx[3] = (float)r.y1;
        } else {
            pk[0] = pk[1] = NAN;
            bx[0] = bx[1] = bx[2] = bx[3] = NAN;
        }
    }
    if (t)
        t->cam += fx_now_s() - t1;
    return FX_OK;
}

fx_status fx_screen_probs(fx_screen *m, const float *x, int count, float *prob, fx_error *err)
{
    if (count < 1 || count > m->batch)
        return fx_error_set(err, FX_ERR_USAGE, "screen: %d images for an engine of batch %d", count,
                            m->batch);
    size_t item = (size_t)m->C * m->H * m->W;
    if (count < m->batch) {
        memcpy(m->x, x, (size_t)count * item * sizeof(float));
        memset(m->x + (size_t)count * item, 0, (size_t)(m->batch - count) * item * sizeof(float));
        x = m->x;
    }
    fx_status st = fx_plan_run(m->plan, x, err);
    if (st != FX_OK)
        return st;
    const float *logits = fx_plan_tensor(m->plan, m->logits, NULL);
    if (!logits)
        return fx_error_set(err, FX_ERR_INTERNAL, "screen: the plan did not keep the logits");
    for (int i = 0; i < count; i++) {
        class_probs(logits + (size_t)i * m->K, m->K, m->p);
        prob[i] = (float)m->p[m->target];
    }
    return FX_OK;
}

fx_status fx_screen_settings_yaml(const char *yaml, const char *where, fx_prep_config *pc,
                                  fx_run_config *eff, fx_error *err)
{
    int fd = memfd_create("fxscreen-config", MFD_CLOEXEC);
    if (fd < 0)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: memfd_create: %s", where, strerror(errno));
    size_t n = strlen(yaml);
    fx_status st = write(fd, yaml, n) == (ssize_t)n
                       ? FX_OK
                       : fx_error_set(err, FX_ERR_IO, "%s: cannot hold the config", where);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (st == FX_OK && (st = fx_screen_settings_load(path, -1, NULL, NAN, pc, eff, err)) != FX_OK)
        fx_error_prefix(err, "%s", where);
    close(fd);
    return st;
}
