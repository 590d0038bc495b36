/* bench/conv: GFLOP/s of fx_op_conv2d_fast vs fx_op_conv2d_ref on
 * ResNet-18-like layers (plus DenseNet-121's 3x3s, a ResNet-50 1x1 and a
 * MobileNetV2 depthwise).
 *
 *   build/bench/conv [--batch N] [--reps R] [--no-ref]
 *   build/bench/conv --paths [--batch N] [--reps R]
 *   build/bench/conv --dw [--batch N] [--reps R] [--no-act]
 *   build/bench/conv --gemm [--reps R]
 *
 * The fast path runs at batch N (default 8), best of R (default 3) runs;
 * the reference runs once at batch 1 (it is slow and its rate does not
 * depend on the batch).  FLOPs = 2 * N * C_out * OH * OW * C_in/groups * kh * kw.
 * Threads: OpenMP (depthwise) and OpenBLAS (sgemm) use their defaults
 * (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS).  Links the production kernels.
 *
 * --paths: im2col vs Winograd on the 3x3 stride-1 layers, threaded as a
 * plan runs them (OpenBLAS at 1 thread, fx_conv_fast_mt_path with all
 * OpenMP threads and preallocated scratch); the two alternate run by run
 * and the medians of R runs (default 3) are printed, so that load from
 * other processes hits both alike.  GFLOP/s counts direct-conv FLOPs.
 *
 * --dw: EfficientNet-B0's depthwise convs ("same" pads), threaded as a plan
 * runs them (all OpenMP threads, bias and the SiLU epilogue fused, or no
 * activation with --no-act); median
 * of R runs (default 3) after a warm-up.  Default batch 32 here.  To
 * compare two builds, alternate their binaries (one process each).
 *
 * --gemm: the conv GEMM with its SiLU epilogue (fx_conv_gemm_path) on
 * EfficientNet-B0's pointwise shapes, one thread, the sgemm way and the
 * AVX-512 kernel alternating call by call; the best of R runs (default
 * 5, at least 0.2 s each) of each.  Cache-warm: the operands fit L2/L3. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fxscreen/ops.h"
#include "ops/ops_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct layer {
    const char *name;
    int c_in, c_out, hw, k, stride, pad, groups;
} layer;

static const layer LAYERS[] = {
    {"conv1 7x7/2 3->64 @224", 3, 64, 224, 7, 2, 3, 1},
    {"layer1 3x3 64->64 @56", 64, 64, 56, 3, 1, 1, 1},
    {"layer2 3x3 128->128 @28", 128, 128, 28, 3, 1, 1, 1},
    {"layer3 3x3 256->256 @14", 256, 256, 14, 3, 1, 1, 1},
    {"layer4 3x3 512->512 @7", 512, 512, 7, 3, 1, 1, 1},
    {"dn121 3x3 128->32 @56", 128, 32, 56, 3, 1, 1, 1},
    {"dn121 3x3 128->32 @28", 128, 32, 28, 3, 1, 1, 1},
    {"dn121 3x3 128->32 @14", 128, 32, 14, 3, 1, 1, 1},
    {"dn121 3x3 128->32 @7", 128, 32, 7, 3, 1, 1, 1},
    {"down 1x1/2 64->128 @56", 64, 128, 56, 1, 2, 0, 1},
    {"r50 1x1 256->64 @56", 256, 64, 56, 1, 1, 0, 1},
    {"mbv2 dw3x3 144 @56", 144, 144, 56, 3, 1, 1, 144},
};

/* EfficientNet-B0's depthwise layers at 224 (name: channels @ input size). */
static const layer DW_LAYERS[] = {
    {"effb0 dw3x3 32 @112", 32, 32, 112, 3, 1, 1, 32},
    {"effb0 dw3x3/2 96 @112", 96, 96, 112, 3, 2, 1, 96},
    {"effb0 dw3x3 144 @56", 144, 144, 56, 3, 1, 1, 144},
    {"effb0 dw5x5/2 144 @56", 144, 144, 56, 5, 2, 2, 144},
    {"effb0 dw5x5 240 @28", 240, 240, 28, 5, 1, 2, 240},
    {"effb0 dw3x3/2 240 @28", 240, 240, 28, 3, 2, 1, 240},
    {"effb0 dw3x3 480 @14", 480, 480, 14, 3, 1, 1, 480},
    {"effb0 dw5x5 480 @14", 480, 480, 14, 5, 1, 2, 480},
    {"effb0 dw5x5 672 @14", 672, 672, 14, 5, 1, 2, 672},
    {"effb0 dw5x5/2 672 @14", 672, 672, 14, 5, 2, 2, 672},
    {"effb0 dw5x5 1152 @7", 1152, 1152, 7, 5, 1, 2, 1152},
    {"effb0 dw3x3 1152 @7", 1152, 1152, 7, 3, 1, 1, 1152},
};

static fx_conv2d_params params_of(const layer *l, int n)
{
    fx_conv2d_params p = {.n = n,
                          .c_in = l->c_in,
                          .h = l->hw,
                          .w = l->hw,
                          .c_out = l->c_out,
                          .kh = l->k,
                          .kw = l->k,
                          .stride_h = l->stride,
                          .stride_w = l->stride,
                          .dil_h = 1,
                          .dil_w = 1,
                          .pad_t = l->pad,
                          .pad_l = l->pad,
                          .pad_b = l->pad,
                          .pad_r = l->pad,
                          .groups = l->groups};
    return p;
}

/* Best-of-reps seconds for one call of fn on p; -1 on failure. */
static double time_conv(fx_status (*fn)(const fx_conv2d_params *, const float *, const float *,
                                        const float *, float *),
                        const fx_conv2d_params *p, int reps, double *gflop)
{
    int oh, ow;
    if (fx_conv2d_out_hw(p, &oh, &ow, NULL) != FX_OK)
        return -1;
    size_t nx = (size_t)p->n * p->c_in * p->h * p->w;
    size_t nw = (size_t)p->c_out * (p->c_in / p->groups) * p->kh * p->kw;
    size_t ny = (size_t)p->n * p->c_out * oh * ow;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = calloc(p->c_out, 4);
    float *y = malloc(ny * sizeof *y);
    double best = -1;
    if (x && w && b && y) {
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)(i % 17) * 0.01f;
        for (size_t i = 0; i < nw; i++)
            w[i] = (float)(i % 13) * 0.01f - 0.06f;
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            if (fn(p, x, w, b, y) != FX_OK)
                break;
            double t = now_s() - t0;
            best = best < 0 || t < best ? t : best;
        }
    }
    *gflop = 2.0 * ny * (double)(p->c_in / p->groups) * p->kh * p->kw * 1e-9;
    free(x), free(w), free(b), free(y);
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* --paths: median ms of im2col and Winograd on the 3x3 stride-1 layers. */
static int compare_paths(int batch, int reps)
{
    static const fx_conv_path paths[2] = {FX_CONV_IM2COL, FX_CONV_WINOGRAD};
    int threads = fx_omp_max_threads();
    openblas_set_num_threads(1);
    printf("| layer (batch %d, %d threads) | im2col ms | im2col GFLOP/s | winograd ms | "
           "winograd GFLOP/s | speed-up |\n",
           batch, threads);
    printf("|---|---:|---:|---:|---:|---:|\n");
    double *t = malloc(sizeof(double) * 2 * (size_t)reps);
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++) {
        fx_conv2d_params p = params_of(&LAYERS[i], batch);
        if (!fx_wino_applies(&p))
            continue;
        int oh, ow;
        fx_conv2d_out_hw(&p, &oh, &ow, NULL);
        size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = (size_t)p.c_out * p.c_in * 9;
        size_t ny = (size_t)p.n * p.c_out * oh * ow;
        int64_t n0 = fx_conv_fast_ws_floats_path(&p, threads, paths[0]);
        int64_t n1 = fx_conv_fast_ws_floats_path(&p, threads, paths[1]);
        float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w);
        float *b = calloc((size_t)p.c_out, sizeof *b), *y = malloc(ny * sizeof *y);
        float *ws = malloc(sizeof(float) * (size_t)(n0 > n1 ? n0 : n1));
        if (!x || !w || !b || !y || !ws)
            return 1;
        for (size_t j = 0; j < nx; j++)
            x[j] = (float)(j % 17) * 0.01f;
        for (size_t j = 0; j < nw; j++)
            w[j] = (float)(j % 13) * 0.01f - 0.06f;
        for (int r = -1; r < reps; r++) /* r = -1: warm-up */
            for (int k = 0; k < 2; k++) {
                double t0 = now_s();
                if (fx_conv_fast_mt_path(&p, NULL, x, w, b, y, ws, threads, paths[k]) != FX_OK)
                    return 1;
                if (r >= 0)
                    t[k * reps + r] = now_s() - t0;
            }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        qsort(t + reps, (size_t)reps, sizeof *t, cmp_double);
        double gflop = 2.0 * ny * p.c_in * 9 * 1e-9, ti = t[reps / 2], tw = t[reps + reps / 2];
        printf("| %s | %.2f | %.1f | %.2f | %.1f | %.2fx |\n", LAYERS[i].name, ti * 1e3, gflop / ti,
               tw * 1e3, gflop / tw, ti / tw);
        fflush(stdout);
        free(x), free(w), free(b), free(y), free(ws);
    }
    free(t);
    return 0;
}

/* --dw: median ms and GFLOP/s of the depthwise path on DW_LAYERS. */
static int bench_depthwise(int batch, int reps, fx_act_kind act)
{
    int threads = fx_omp_max_threads();
    openblas_set_num_threads(1);
    printf("| layer (batch %d, %d threads, %s) | ms | GFLOP/s |\n", batch, threads,
           act == FX_ACT_SILU ? "SiLU" : "no act");
    printf("|---|---:|---:|\n");
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (size_t i = 0; i < sizeof DW_LAYERS / sizeof DW_LAYERS[0]; i++) {
        fx_conv2d_params p = params_of(&DW_LAYERS[i], batch);
        int oh, ow;
        fx_conv2d_out_hw(&p, &oh, &ow, NULL);
        size_t nx = (size_t)p.n * p.c_in * p.h * p.w, nw = (size_t)p.c_out * p.kh * p.kw;
        size_t ny = (size_t)p.n * p.c_out * oh * ow;
        float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w);
        float *b = calloc((size_t)p.c_out, sizeof *b), *y = malloc(ny * sizeof *y);
        if (!t || !x || !w || !b || !y)
            return 1;
        for (size_t j = 0; j < nx; j++)
            x[j] = (float)(j % 17) * 0.01f;
        for (size_t j = 0; j < nw; j++)
            w[j] = (float)(j % 13) * 0.01f - 0.06f;
        fx_conv_epilogue ep = {.act = act};
        int64_t nws = fx_conv_fast_ws_floats_path(&p, threads, FX_CONV_DEPTHWISE);
        float *ws = nws > 0 ? malloc(sizeof(float) * (size_t)nws) : NULL;
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            double t0 = now_s();
            if (fx_conv_fast_mt_path(&p, &ep, x, w, b, y, ws, threads, FX_CONV_DEPTHWISE) !=
                FX_OK)
                return 1;
            if (r >= 0)
                t[r] = now_s() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double gflop = 2.0 * ny * p.kh * p.kw * 1e-9, tm = t[reps / 2];
        printf("| %s | %.2f | %.1f |\n", DW_LAYERS[i].name, tm * 1e3, gflop / tm);
        fflush(stdout);
        free(x), free(w), free(b), free(y), free(ws);
    }
    free(t);
    return 0;
}

/* --gemm: M x K x N of EfficientNet-B0's 1x1 convs at 224 (expansions as
 * fx_conv_expand_dw cuts them, projections as pw_batch gathers them). */
static const int GEMM_SHAPES[][3] = {
    {16, 24, 3136},   {144, 24, 3136}, {240, 40, 784},  {480, 80, 196},   {672, 112, 196},
    {1152, 192, 49},  {1152, 192, 392}, {24, 144, 3136}, {40, 240, 784},   {80, 480, 196},
    {112, 672, 196}, {192, 1152, 392}, {1280, 320, 392}, {96, 16, 12544},
};

static int bench_gemm(int reps)
{
    openblas_set_num_threads(1);
    printf("| M x K x N (SiLU, 1 thread) | sgemm GFLOP/s | kernel GFLOP/s | kernel / sgemm |\n");
    printf("|---|---:|---:|---:|\n");
    if (!fx_cpu_avx512())
        printf("| (no AVX-512 on this CPU: both columns are the sgemm way) | | | |\n");
    for (size_t i = 0; i < sizeof GEMM_SHAPES / sizeof GEMM_SHAPES[0]; i++) {
        int m = GEMM_SHAPES[i][0], k = GEMM_SHAPES[i][1], n = GEMM_SHAPES[i][2];
        size_t nx = (size_t)k * n, nw = (size_t)m * k, ny = (size_t)m * n;
        float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w);
        float *b = malloc((size_t)m * sizeof *b), *y = malloc(ny * sizeof *y);
        if (!x || !w || !b || !y)
            return 1;
        for (size_t j = 0; j < nx; j++)
            x[j] = (float)(j % 17) * 0.01f - 0.08f;
        for (size_t j = 0; j < nw; j++)
            w[j] = (float)(j % 13) * 0.01f - 0.06f;
        for (int j = 0; j < m; j++)
            b[j] = (float)(j % 7) * 0.01f;
        fx_conv_epilogue ep = {.act = FX_ACT_SILU};
        double flop = 2.0 * m * k * n, best[2] = {1e30, 1e30};
        int calls = (int)(0.2 * 30e9 / flop) + 1; /* about 0.2 s at 30 GFLOP/s */
        for (int r = -1; r < reps; r++) /* r = -1: warm-up */
            for (int way = 0; way < 2; way++) {
                double t0 = now_s();
                for (int c = 0; c < calls; c++)
                    fx_conv_gemm_path(&ep, m, n, k, w, x, (size_t)n, b, y, NULL, (size_t)n, way);
                double tm = (now_s() - t0) / calls;
                best[way] = r >= 0 && tm < best[way] ? tm : best[way];
            }
        printf("| %d x %d x %d | %.1f | %.1f | %.2f |\n", m, k, n, flop / best[0] * 1e-9,
               flop / best[1] * 1e-9, best[0] / best[1]);
        fflush(stdout);
        free(x), free(w), free(b), free(y);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int batch = 0, reps = 3, ref = 1, paths = 0, dw = 0, gemm = 0;
    fx_act_kind act = FX_ACT_SILU;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-ref") == 0)
            ref = 0;
        else if (strcmp(argv[i], "--paths") == 0)
            paths = 1;
        else if (strcmp(argv[i], "--dw") == 0)
            dw = 1;
        else if (strcmp(argv[i], "--no-act") == 0)
            act = FX_ACT_NONE;
        else if (strcmp(argv[i], "--gemm") == 0)
            gemm = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--batch N] [--reps R] [--no-ref] [--paths | --dw [--no-act] | --gemm]\n",
                    argv[0]);
            return 2;
        }
    }
    if (batch == 0)
        batch = dw ? 32 : 8;
    if (batch < 1 || reps < 1)
        return 2;
    if (dw)
        return bench_depthwise(batch, reps, act);
    if (gemm)
        return bench_gemm(reps);
    if (paths)
        return compare_paths(batch, reps);
    printf("| layer | fast ms (batch %d) | fast GFLOP/s | ref GFLOP/s (batch 1) | speed-up |\n",
           batch);
    printf("|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++) {
        fx_conv2d_params pf = params_of(&LAYERS[i], batch), pr = params_of(&LAYERS[i], 1);
        double gf, gr = 0, tr = -1;
        double tf = time_conv(fx_op_conv2d_fast, &pf, reps, &gf);
        if (ref)
            tr = time_conv(fx_op_conv2d_ref, &pr, 1, &gr);
        if (tf <= 0) {
            printf("| %s | failed | | | |\n", LAYERS[i].name);
            continue;
        }
        if (tr > 0)
            printf("| %s | %.1f | %.1f | %.2f | %.0fx |\n", LAYERS[i].name, tf * 1e3, gf / tf,
                   gr / tr, (gf / tf) / (gr / tr));
        else
            printf("| %s | %.1f | %.1f | - | - |\n", LAYERS[i].name, tf * 1e3, gf / tf);
        fflush(stdout);
    }
    return 0;
}
