/* bench/infer_fx: fxscreen's inference throughput for bench/infer.py (CPU)
 * and bench/gpu.sh (GPU).
 *
 *   build/bench/infer_fx MODEL.onnx --batch N [--size HxW] [--warmup W] [--reps R]
 *                        [--min-seconds S] [--profile] [--device cpu|cuda[:N]]
 *                        [--precision fp32|tf32|fp16|bf16] [--forward-only]
 *                        [--cam METHOD [--no-shortcut]]
 *
 * Loads the ONNX model with the production library (fx_onnx_load,
 * fx_graph_prepare, fx_plan_create), times fx_plan_run on a random batch
 * (W warm-up runs, then at least R timed runs and at least S seconds, at most
 * 50) and prints one JSON line:
 *   {"engine": "fxscreen", "batch": N, "ips": images/s from the median run,
 *    "median_ms": ..., "runs": ..., "rss_mib": peak RSS (VmHWM) of this process,
 *    "plan_mib": activation memory the plan reserved}
 * Threads: whatever the library uses (OpenMP / OpenBLAS; set OMP_NUM_THREADS).
 * --forward-only times fx_plan_rerun (the input stays in the plan's memory:
 * no host transfers), the forward alone as GPU benchmarks count it; the JSON
 * line then also has "device", "precision" and "forward_only".
 * --cam METHOD: each timed run is the model + Grad-CAM stage: fx_plan_run
 * (upload and forward), the targets (the predicted class), the gradient
 * (the GAP + Gemm shortcut where it applies, else the backward; always the
 * backward with --no-shortcut), the method at the suggested layer, ReLU
 * and min-max, upsampling to the input, uint8 heat, peak and box: on a
 * CUDA plan through src/cam/cam_gpu.c (only the heat and peaks come back),
 * else through the CPU code.  The JSON line adds "cam" and "shortcut".
 * --profile: the plan times every node; after the JSON line a table on
 * stderr gives seconds per image per op label over the timed runs only
 * (warm-up runs are subtracted), sorted by time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cam/cam_internal.h"
#include "fxscreen/cam.h"
#include "fxscreen/graph.h"
#include "fxscreen/onnx.h"

/* The model + Grad-CAM stage after the forward (--cam), into heat and px. */
typedef struct cam_stage {
    fx_cam_method method;
    int use_shortcut, n, c, h, w, H, W;
    const char *layer;
    fx_grad *gr;
    int *targets;
    float *dA, *low, *cam;
    uint8_t *heat;
    fx_cam_px *px;
#ifdef FX_HAVE_CUDA
    fx_cam_gpu *cg;
#endif
} cam_stage;

static fx_status cam_step(cam_stage *cs, fx_plan *p, fx_error *err)
{
    for (int i = 0; i < cs->n; i++)
        cs->targets[i] = -1;
    fx_status st = fx_grad_targets(cs->gr, p, cs->targets, err);
    if (st != FX_OK)
        return st;
#ifdef FX_HAVE_CUDA
    if (cs->cg)
        return fx_cam_gpu_run(cs->cg, cs->method, cs->targets, cs->use_shortcut, 0.5, cs->heat,
                              cs->px, err);
#endif
    if (fx_cam_method_needs_grad(cs->method) &&
        (st = fx_grad_run(cs->gr, p, cs->targets, cs->use_shortcut, cs->dA, err)) != FX_OK)
        return st;
    return fx_cam_heat(cs->method, fx_plan_tensor(p, cs->layer, NULL), cs->dA, cs->n, cs->c, cs->h,
                       cs->w, cs->H, cs->W, 0.5, cs->low, cs->cam, cs->heat, cs->px);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak RSS in MiB: VmHWM of this process image (ru_maxrss would include the
 * peak of the parent that forked us), else ru_maxrss. */
static double peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return (double)kb / 1024.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The plan's per-label totals cover warm-up and timed runs alike; scale
 * them to the timed share (every run executes the same nodes). */
static void print_profile(const fx_plan *p, int warmup, int runs, int batch)
{
    const char *label[64];
    double sec[64], total = 0;
    long long calls;
    int n = 0;
    while (n < 64 && fx_plan_profile(p, n, &label[n], &sec[n], &calls) == FX_OK)
        total += sec[n++];
    for (int i = 0; i < n; i++) /* selection sort, largest first */
        for (int j = i + 1; j < n; j++)
            if (sec[j] > sec[i]) {
                double t = sec[i];
                const char *l = label[i];
                sec[i] = sec[j], label[i] = label[j], sec[j] = t, label[j] = l;
            }
    double per = 1.0 / ((double)(warmup + runs) * batch);
    fprintf(stderr, "%-16s %10s %6s\n", "op", "ms/image", "share");
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%-16s %10.3f %5.1f%%\n", label[i], sec[i] * per * 1e3,
                100.0 * sec[i] / total);
    fprintf(stderr, "%-16s %10.3f\n", "total", total * per * 1e3);
}

/* The gradient object and buffers for the suggested layer (before the plan). */
static fx_status cam_setup(cam_stage *cs, const fx_graph *g, int no_shortcut, fx_plan_opts *po,
                           fx_error *err)
{
    fx_shape a, in;
    cs->layer = fx_graph_cam_layer(g);
    if (!cs->layer || fx_graph_tensor_shape(g, cs->layer, &a, err) != FX_OK || a.rank != 4 ||
        fx_graph_tensor_shape(g, fx_graph_input_name(g, 0), &in, err) != FX_OK)
        return fx_error_set(err, FX_ERR_USAGE, "--cam: no 4-D suggested Grad-CAM layer");
    fx_status st = fx_grad_create(g, cs->layer, &cs->gr, err);
    if (st != FX_OK)
        return st;
    cs->use_shortcut = !no_shortcut;
    cs->n = (int)a.d[0], cs->c = (int)a.d[1], cs->h = (int)a.d[2], cs->w = (int)a.d[3];
    cs->H = (int)in.d[2], cs->W = (int)in.d[3];
    size_t n = (size_t)cs->n, HW = (size_t)cs->H * cs->W;
    cs->targets = malloc(n * sizeof(int));
    cs->dA = malloc(n * (size_t)cs->c * cs->h * cs->w * sizeof(float));
    cs->low = malloc(n * (size_t)cs->h * cs->w * sizeof(float));
    cs->cam = malloc(n * HW * sizeof(float));
    cs->heat = malloc(n * HW);
    cs->px = malloc(n * sizeof *cs->px);
    if (!cs->targets || !cs->dA || !cs->low || !cs->cam || !cs->heat || !cs->px)
        return fx_error_set(err, FX_ERR_NOMEM, "--cam: out of memory");
    po->grad = cs->gr;
    return FX_OK;
}

/* On a CUDA plan the maps are made on the GPU (as `run` does). */
static fx_status cam_plan(cam_stage *cs, fx_plan *p, fx_device_kind dev, fx_error *err)
{
#ifdef FX_HAVE_CUDA
    if (dev == FX_DEVICE_CUDA)
        return fx_cam_gpu_create(p, cs->gr, cs->H, cs->W, &cs->cg, err);
#endif
    (void)cs, (void)p, (void)dev, (void)err;
    return FX_OK;
}

static void cam_free(cam_stage *cs)
{
#ifdef FX_HAVE_CUDA
    fx_cam_gpu_destroy(cs->cg);
#endif
    fx_grad_destroy(cs->gr);
    free(cs->targets);
    free(cs->dA);
    free(cs->low);
    free(cs->cam);
    free(cs->heat);
    free(cs->px);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int batch = 1, h = 224, w = 224, warmup = 2, reps = 3, profile = 0, forward_only = 0;
    int cam = 0, no_shortcut = 0;
    cam_stage cs = {0};
    int dev_index = 0;
    fx_device_kind dev = FX_DEVICE_CPU;
    fx_precision prec = FX_PREC_DEFAULT;
    double min_s = 2.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--batch") && v)
            batch = atoi(argv[++i]);
        else if (!strcmp(a, "--size") && v) {
            if (sscanf(argv[++i], "%dx%d", &h, &w) != 2)
                h = 0;
        } else if (!strcmp(a, "--warmup") && v)
            warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && v)
            reps = atoi(argv[++i]);
        else if (!strcmp(a, "--min-seconds") && v)
            min_s = atof(argv[++i]);
        else if (!strcmp(a, "--profile"))
            profile = 1;
        else if (!strcmp(a, "--forward-only"))
            forward_only = 1;
        else if (!strcmp(a, "--cam") && v) {
            cam = 1;
            if (fx_cam_method_parse(argv[++i], &cs.method, NULL) != FX_OK)
                batch = 0;
        } else if (!strcmp(a, "--no-shortcut"))
            no_shortcut = 1;
        else if (!strcmp(a, "--device") && v) {
            if (fx_device_parse_spec(argv[++i], &dev, &dev_index))
                batch = 0;
        } else if (!strcmp(a, "--precision") && v) {
            if (fx_precision_parse(argv[++i], &prec))
                batch = 0;
        } else if (a[0] != '-' && !path)
            path = a;
        else
            path = NULL, i = argc;
    }
    if (!path || batch < 1 || h < 1 || w < 1 || warmup < 0 || reps < 1 || (cam && forward_only)) {
        fprintf(stderr, "usage: infer_fx MODEL.onnx --batch N [--size HxW] [--warmup W] "
                        "[--reps R] [--min-seconds S] [--profile] [--device cpu|cuda[:N]] "
                        "[--precision fp32|tf32|fp16|bf16] [--forward-only | --cam METHOD "
                        "[--no-shortcut]]\n");
        return 2;
    }
    fx_error err = {0};
    fx_plan_opts po = {.profile = profile,
                       .device = dev == FX_DEVICE_AUTO ? FX_DEVICE_CPU : dev,
                       .device_index = dev_index,
                       .precision = prec};
    const char *keep[1];
    fx_graph *g = NULL;
    fx_plan *p = NULL;
    float *x = NULL;
    int rc = 1;
    if (fx_onnx_load(path, &g, &err) || fx_graph_check_supported(g, &err) ||
        fx_graph_prepare(g, batch, h, w, &err)) {
        fprintf(stderr, "infer_fx: %s: %s\n", path, err.msg);
        goto done;
    }
    keep[0] = fx_graph_input_name(g, 0); /* --forward-only reruns on it */
    po.keep = keep, po.n_keep = forward_only;
    if (cam && cam_setup(&cs, g, no_shortcut, &po, &err) != FX_OK) {
        fprintf(stderr, "infer_fx: %s: %s\n", path, err.msg);
        goto done;
    }
    if (fx_plan_create(g, &po, &p, &err) || (cam && cam_plan(&cs, p, po.device, &err) != FX_OK)) {
        fprintf(stderr, "infer_fx: %s: %s\n", path, err.msg);
        goto done;
    }
    fx_shape is;
    if (fx_graph_tensor_shape(g, fx_graph_input_name(g, 0), &is, &err) != FX_OK) {
        fprintf(stderr, "infer_fx: %s\n", err.msg);
        goto done;
    }
    size_t n = (size_t)fx_shape_numel(&is);
    x = malloc(n * sizeof *x);
    if (!x)
        goto done;
    unsigned s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    for (int i = 0; i < warmup || (forward_only && i < 1); i++)
        if (fx_plan_run(p, x, &err) != FX_OK || (cam && cam_step(&cs, p, &err) != FX_OK)) {
            fprintf(stderr, "infer_fx: %s\n", err.msg);
            goto done;
        }
    double t[50], total = 0;
    int runs = 0;
    while (runs < 50 && (runs < reps || total < min_s)) {
        double t0 = now();
        if ((forward_only ? fx_plan_rerun(p, &err) : fx_plan_run(p, x, &err)) != FX_OK ||
            (cam && cam_step(&cs, p, &err) != FX_OK)) {
            fprintf(stderr, "infer_fx: %s\n", err.msg);
            goto done;
        }
        t[runs] = now() - t0;
        total += t[runs++];
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    printf("{\"engine\": \"fxscreen\", \"batch\": %d, \"ips\": %.3f, \"median_ms\": %.3f, "
           "\"runs\": %d, \"rss_mib\": %.1f, \"plan_mib\": %.1f, \"device\": \"%s\", "
           "\"precision\": \"%s\", \"forward_only\": %d, \"cam\": \"%s\", \"shortcut\": %d, "
           "\"backward\": \"%s\"}\n",
           batch, batch / med, med * 1e3, runs, peak_rss_mib(),
           (double)fx_plan_peak_bytes(p) / 1048576.0, fx_device_name(po.device),
           fx_precision_name(prec), forward_only, cam ? fx_cam_method_name(cs.method) : "",
           cam && cs.use_shortcut && fx_grad_has_shortcut(cs.gr), fx_plan_backward_where(p));
    if (profile)
        print_profile(p, warmup, runs, batch);
    rc = 0;
done:
    free(x);
    cam_free(&cs);
    fx_plan_destroy(p);
    fx_graph_destroy(g);
    return rc;
}
