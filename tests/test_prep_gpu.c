/* GPU resize+normalise (kernels/preprocess.cu) against the C reference
 * (fx_prep_run on the same [0,1] plane with window none) on random inputs of
 * odd sizes; then the whole of fx_prep_run on the GPU (fx_prep_run_cuda:
 * histogram, percentile / fixed / none windows, invert, resize, pad or
 * crop, normalise) on 8- and 16-bit planes against fx_prep_run, with the
 * same geometry, window bounds and stats.  Tolerance |gpu - ref| <= 1e-5 + 1e-5*|ref|.  The output
 * is poisoned with NaN first so an element the kernel forgot fails. Exits 77 with "SKIP
 * test_prep_gpu: why" without CUDA or without a device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/prep.h"

#ifndef FX_HAVE_CUDA
int main(void)
{
    printf("SKIP test_prep_gpu: this build has no CUDA (nvcc not found or CUDA=0)\n");
    return 77;
}
#else
#include <cuda_runtime.h>

#include "fxscreen/cuda_kernels.h"

typedef struct gcase {
    int sh, sw, out_h, out_w;
    fx_fit_mode fit;
    int channels;
} gcase;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) & 0xffffff) / (float)0xffffff; /* [0,1] */
}

/* Compares and prints one PASS/FAIL line; returns 1 on failure. */
static int compare(const char *name, const float *got, const float *ref, size_t n)
{
    size_t bad = 0, worst_i = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= 1e-5 + 1e-5 * fabs((double)ref[i]))) { /* NaN (unwritten) fails too */
            if (!bad || !(d <= worst))
                worst = d, worst_i = i;
            bad++;
        }
    }
    if (bad)
        printf("FAIL %s: %zu of %zu elements off; worst at %zu: gpu %.9g ref %.9g\n", name, bad, n,
               worst_i, (double)got[worst_i], (double)ref[worst_i]);
    else
        printf("PASS %s\n", name);
    return bad != 0;
}

static int run_case(fx_cuda_prep *ctx, const gcase *c)
{
    char name[128];
    snprintf(name, sizeof name, "gpu_%dx%d_to_%dx%d_%s_c%d", c->sw, c->sh, c->out_w, c->out_h,
             c->fit == FX_FIT_CROP ? "crop" : "pad", c->channels);
    fx_prep_config cfg;
    fx_prep_config_default(&cfg);
    cfg.window = FX_WINDOW_NONE; /* the plane is already in [0,1]: identity window */
    cfg.out_h = c->out_h;
    cfg.out_w = c->out_w;
    cfg.fit = c->fit;
    cfg.channels = c->channels;
    cfg.pad_value = 0.3f;
    cfg.max_megapixels = 0;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    for (int k = 0; k < 3; k++) {
        cfg.mean[k] = mean[k];
        cfg.std[k] = sd[k];
    }
    size_t nsrc = (size_t)c->sh * c->sw, nout = (size_t)c->channels * c->out_h * c->out_w;
    float *src = malloc(nsrc * sizeof *src), *ref = malloc(nout * sizeof *ref),
          *got = malloc(nout * sizeof *got);
    fx_prep_scratch *s = fx_prep_scratch_create();
    int fails = 0;
    if (!src || !ref || !got || !s) {
        printf("FAIL %s: out of memory\n", name);
        fails = 1;
        goto done;
    }
    for (size_t i = 0; i < nsrc; i++)
        src[i] = frand();
    fx_image img;
    memset(&img, 0, sizeof img);
    img.info.width = c->sw;
    img.info.height = c->sh;
    img.info.type = FX_PIX_F32;
    img.pixels = src;
    fx_error err = {0};
    fx_prep_geom gr, gg;
    if (fx_prep_run(&img, &cfg, s, ref, NULL, &gr, NULL, &err) != FX_OK) {
        printf("FAIL %s: reference: %s\n", name, err.msg);
        fails = 1;
        goto done;
    }
    /* host -> host */
    for (size_t i = 0; i < nout; i++)
        got[i] = NAN;
    if (fx_prep_resize_norm_cuda(ctx, src, c->sh, c->sw, 0, &cfg, got, 0, &gg, &err) != FX_OK) {
        printf("FAIL %s: %s\n", name, err.msg);
        fails = 1;
        goto done;
    }
    if (gg.new_w != gr.new_w || gg.new_h != gr.new_h || gg.off_x != gr.off_x ||
        gg.off_y != gr.off_y) {
        printf("FAIL %s: geometry differs\n", name);
        fails++;
    }
    fails += compare(name, got, ref, nout);

    /* device -> device, through the same context (buffers reused) */
    {
        char dname[160];
        snprintf(dname, sizeof dname, "%s_devptr", name);
        float *dsrc = NULL, *dout = NULL;
        cudaError_t e = cudaMalloc((void **)&dsrc, nsrc * sizeof(float));
        if (e == cudaSuccess)
            e = cudaMalloc((void **)&dout, nout * sizeof(float));
        if (e == cudaSuccess)
            e = cudaMemcpy(dsrc, src, nsrc * sizeof(float), cudaMemcpyHostToDevice);
        if (e == cudaSuccess)
            e = cudaMemset(dout, 0xff, nout * sizeof(float)); /* NaN poison */
        if (e != cudaSuccess) {
            printf("FAIL %s: %s\n", dname, cudaGetErrorString(e));
            fails++;
        } else if (fx_prep_resize_norm_cuda(ctx, dsrc, c->sh, c->sw, 1, &cfg, dout, 1, NULL,
                                            &err) != FX_OK) {
            printf("FAIL %s: %s\n", dname, err.msg);
            fails++;
        } else if ((e = cudaMemcpy(got, dout, nout * sizeof(float), cudaMemcpyDeviceToHost)) !=
                   cudaSuccess) {
            printf("FAIL %s: %s\n", dname, cudaGetErrorString(e));
            fails++;
        } else {
            fails += compare(dname, got, ref, nout);
        }
        cudaFree(dsrc);
        cudaFree(dout);
    }
done:
    free(src);
    free(ref);
    free(got);
    fx_prep_scratch_destroy(s);
    return fails;
}

/* fx_prep_run_cuda against fx_prep_run on one integer plane. */
static int run_full(fx_cuda_prep *ctx, int sh, int sw, int u16, fx_window_mode win, int invert,
                    fx_fit_mode fit, int channels)
{
    char name[160];
    static const char *const wn[] = {"percentile", "fixed", "none", "dicom"};
    snprintf(name, sizeof name, "gpu_full_%dx%d_%s_%s%s_%s_c%d", sw, sh, u16 ? "u16" : "u8",
             wn[win < 4 ? win : 0], invert ? "_inv" : "", fit == FX_FIT_CROP ? "crop" : "pad",
             channels);
    fx_prep_config cfg;
    fx_prep_config_default(&cfg);
    cfg.window = win;
    cfg.p_lo = 1.5, cfg.p_hi = 97.25;
    cfg.w_lo = u16 ? 300 : 20, cfg.w_hi = u16 ? 3500 : 230;
    cfg.invert = invert;
    cfg.out_h = 224, cfg.out_w = 256, cfg.fit = fit, cfg.channels = channels;
    cfg.max_megapixels = 0;
    size_t n = (size_t)sh * sw, nout = (size_t)channels * cfg.out_h * cfg.out_w;
    void *px = malloc(n * (u16 ? 2 : 1));
    float *ref = malloc(nout * sizeof *ref), *got = malloc(nout * sizeof *got);
    fx_prep_scratch *s = fx_prep_scratch_create();
    int fails = 0;
    if (!px || !ref || !got || !s) {
        printf("FAIL %s: out of memory\n", name);
        fails = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) { /* a 12-bit ramp with noise, or 8-bit */
        double v = (double)(i % (size_t)sw) / sw * 0.7 + 0.3 * frand();
        if (u16)
            ((uint16_t *)px)[i] = (uint16_t)(v * 4095);
        else
            ((uint8_t *)px)[i] = (uint8_t)(v * 255);
    }
    fx_image img;
    memset(&img, 0, sizeof img);
    img.info.width = sw, img.info.height = sh;
    img.info.type = u16 ? FX_PIX_U16 : FX_PIX_U8;
    img.pixels = px;
    fx_error err = {0};
    fx_prep_geom gr, gg;
    fx_image_stats sr, sg;
    if (fx_prep_run(&img, &cfg, s, ref, NULL, &gr, &sr, &err) != FX_OK) {
        printf("FAIL %s: reference: %s\n", name, err.msg);
        fails = 1;
        goto done;
    }
    for (size_t i = 0; i < nout; i++)
        got[i] = NAN;
    if (fx_prep_run_cuda(ctx, &img, &cfg, s, got, &gg, &sg, &err) != FX_OK) {
        printf("FAIL %s: %s\n", name, err.msg);
        fails = 1;
        goto done;
    }
    if (gg.new_w != gr.new_w || gg.new_h != gr.new_h || gg.off_x != gr.off_x ||
        gg.off_y != gr.off_y || gg.win_lo != gr.win_lo || gg.win_hi != gr.win_hi ||
        sg.min != sr.min || sg.max != sr.max || sg.mean != sr.mean) {
        printf("FAIL %s: geometry, window or stats differ (window %g..%g vs %g..%g)\n", name,
               gg.win_lo, gg.win_hi, gr.win_lo, gr.win_hi);
        fails++;
    }
    fails += compare(name, got, ref, nout);
done:
    free(px);
    free(ref);
    free(got);
    fx_prep_scratch_destroy(s);
    return fails;
}

int main(void)
{
    fx_error err = {0};
    int count = 0;
    if (fx_cuda_device_count(&count, &err) != FX_OK || count < 1) {
        printf("SKIP test_prep_gpu: no CUDA device (%s)\n",
               err.msg[0] ? err.msg : "the runtime reports 0 devices");
        return 77;
    }
    static const gcase cases[] = {
        {777, 1001, 256, 256, FX_FIT_PAD, 1},  /* non-integer shrink */
        {1001, 777, 224, 224, FX_FIT_CROP, 3}, /* shrink + crop, 3 channels */
        {31, 17, 256, 200, FX_FIT_PAD, 3},     /* enlarge, non-square out */
        {30, 50, 64, 96, FX_FIT_CROP, 1},      /* enlarge + crop */
        {5, 3, 7, 11, FX_FIT_PAD, 1},          /* tiny */
        {1, 1, 4, 4, FX_FIT_PAD, 3},           /* single pixel */
        {2049, 513, 8, 256, FX_FIT_CROP, 1},   /* shrink one way, tall crop */
        {3000, 2500, 512, 512, FX_FIT_PAD, 1}, /* radiograph-sized */
        {256, 256, 256, 256, FX_FIT_PAD, 1},   /* same size */
        {1, 997, 33, 33, FX_FIT_PAD, 1},       /* one row: mostly pad */
    };
    fx_cuda_prep *ctx = fx_cuda_prep_create();
    if (!ctx) {
        printf("FAIL test_prep_gpu: out of memory\n");
        return 1;
    }
    int fails = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        fails += run_case(ctx, &cases[i]);
    fails += run_full(ctx, 2048, 2048, 1, FX_WINDOW_PERCENTILE, 0, FX_FIT_PAD, 1);
    fails += run_full(ctx, 1999, 1501, 1, FX_WINDOW_PERCENTILE, 1, FX_FIT_CROP, 3);
    fails += run_full(ctx, 777, 1001, 0, FX_WINDOW_PERCENTILE, 0, FX_FIT_PAD, 3);
    fails += run_full(ctx, 513, 300, 1, FX_WINDOW_FIXED, 0, FX_FIT_PAD, 1);
    fails += run_full(ctx, 300, 513, 0, FX_WINDOW_NONE, 1, FX_FIT_CROP, 1);
    fails += run_full(ctx, 100, 90, 1, FX_WINDOW_NONE, 0, FX_FIT_PAD, 1); /* enlarged */
    fx_cuda_prep_destroy(ctx);
    return fails ? 1 : 0;
}
#endif
