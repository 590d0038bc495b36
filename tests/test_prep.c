/* Unit tests for src/prep: hand-checkable resize/percentile/geometry cases,
 * the run driver, and config load/validate/round trip.  Values in comments
 * are derived by hand from the spec in include/fxscreen/prep.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/device.h"
#include "fxscreen/prep.h"

static fx_image wrap(void *px, int w, int h, fx_pixtype t)
{
    fx_image im;
    memset(&im, 0, sizeof im);
    im.info.width = w;
    im.info.height = h;
    im.info.type = t;
    im.info.channels = 1;
    im.info.bit_depth = t == FX_PIX_U8 ? 8 : t == FX_PIX_U16 ? 16 : 32;
    im.pixels = px;
    return im;
}

/* 4x4 -> 2x2 area: each output is the mean of a 2x2 block. */
static void test_area_block_means(void)
{
    float src[16], dst[4];
    for (int i = 0; i < 16; i++)
        src[i] = (float)i;
    fx_prep_scratch *s = fx_prep_scratch_create();
    fx_error err = {0};
    CHECK(fx_prep_resize(src, 4, 4, dst, 2, 2, s, &err) == FX_OK);
    CHECK_NEAR(dst[0], (0 + 1 + 4 + 5) / 4.0, 1e-6);
    CHECK_NEAR(dst[1], (2 + 3 + 6 + 7) / 4.0, 1e-6);
    CHECK_NEAR(dst[2], (8 + 9 + 12 + 13) / 4.0, 1e-6);
    CHECK_NEAR(dst[3], (10 + 11 + 14 + 15) / 4.0, 1e-6);
    /* whole image -> 1x1 is the mean */
    CHECK(fx_prep_resize(src, 4, 4, dst, 1, 1, s, &err) == FX_OK);
    CHECK_NEAR(dst[0], 7.5, 1e-6);
    fx_prep_scratch_destroy(s);
}

/* 3 -> 2 area, non-integer: out0 covers [0,1.5) = (2a+b)/3, out1 = (b+2c)/3. */
static void test_area_fractional(void)
{
    float src[3] = {3.0f, 6.0f, 9.0f}, dst[2];
    fx_prep_scratch *s = fx_prep_scratch_create();
    CHECK(fx_prep_resize(src, 1, 3, dst, 1, 2, s, NULL) == FX_OK);
    CHECK_NEAR(dst[0], (2 * 3.0 + 6.0) / 3, 1e-6);
    CHECK_NEAR(dst[1], (6.0 + 2 * 9.0) / 3, 1e-6);
    /* same along columns */
    CHECK(fx_prep_resize(src, 3, 1, dst, 2, 1, s, NULL) == FX_OK);
    CHECK_NEAR(dst[0], 4.0, 1e-6);
    CHECK_NEAR(dst[1], 8.0, 1e-6);
    /* 5 -> 2: out0 = (x0+x1+0.5 x2)/2.5 */
    float five[5] = {1, 2, 3, 4, 5};
    CHECK(fx_prep_resize(five, 1, 5, dst, 1, 2, s, NULL) == FX_OK);
    CHECK_NEAR(dst[0], (1 + 2 + 1.5) / 2.5, 1e-6);
    CHECK_NEAR(dst[1], (1.5 + 4 + 5) / 2.5, 1e-6);
    fx_prep_scratch_destroy(s);
}

/* 2x2 -> 4x4 bilinear, half-pixel centres: per axis 2 -> 4 samples at
 * x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped index), so a row
 * [a, b] becomes [a, .75a+.25b, .25a+.75b, b]. */
static void test_bilinear_by_hand(void)
{
    float src[4] = {0, 1, 2, 3}, dst[16];
    fx_prep_scratch *s = fx_prep_scratch_create();
    CHECK(fx_prep_resize(src, 2, 2, dst, 4, 4, s, NULL) == FX_OK);
    const float row0[4] = {0, 0.25f, 0.75f, 1};
    const float add[4] = {0, 0.5f, 1.5f, 2}; /* column weights applied to rows 0,1 = +0,+2 */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            CHECK_NEAR(dst[y * 4 + x], row0[x] + add[y], 1e-6);
    fx_prep_scratch_destroy(s);
}

/* Same size is the identity (area path with one unit weight per tap). */
static void test_identity(void)
{
    float src[35], dst[35];
    for (int i = 0; i < 35; i++)
        src[i] = (float)(i * 37 % 11) / 7.0f;
    fx_prep_scratch *s = fx_prep_scratch_create();
    CHECK(fx_prep_resize(src, 5, 7, dst, 5, 7, s, NULL) == FX_OK);
    CHECK(memcmp(src, dst, sizeof src) == 0);
    fx_prep_scratch_destroy(s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy 'linear' on a sorted array, written the obvious way. */
static double pct_sorted(const double *a, size_t n, double p)
{
    double v = p / 100.0 * (double)(n - 1);
    size_t k = (size_t)v;
    if (k >= n - 1)
        return a[n - 1];
    return a[k] + (a[k + 1] - a[k]) * (v - (double)k);
}

static void test_percentile_known(void)
{
    fx_prep_scratch *s = fx_prep_scratch_create();
    uint8_t u8[10] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
    fx_image im = wrap(u8, 10, 1, FX_PIX_U8);
    CHECK_NEAR(fx_prep_percentile(&im, 0, s), 1, 0);
    CHECK_NEAR(fx_prep_percentile(&im, 100, s), 10, 0);
    CHECK_NEAR(fx_prep_percentile(&im, 50, s), 5.5, 1e-12);  /* idx 4.5 */
    CHECK_NEAR(fx_prep_percentile(&im, 25, s), 3.25, 1e-12); /* idx 2.25 */
    uint16_t u16[4] = {65535, 0, 1000, 1000};
    im = wrap(u16, 2, 2, FX_PIX_U16);
    CHECK_NEAR(fx_prep_percentile(&im, 100, s), 65535, 0);
    CHECK_NEAR(fx_prep_percentile(&im, 50, s), 1000, 0);
    CHECK_NEAR(fx_prep_percentile(&im, 90, s), 1000 + 0.7 * 64535, 1e-6); /* idx 2.7 */
    float f[5] = {NAN, 3.0f, -1.0f, 2.0f, NAN};
    im = wrap(f, 5, 1, FX_PIX_F32);
    CHECK_NEAR(fx_prep_percentile(&im, 50, s), 2.0, 0); /* NaNs ignored: {-1,2,3} */
    CHECK_NEAR(fx_prep_percentile(&im, 0, s), -1.0, 0);
    CHECK_NEAR(fx_prep_percentile(&im, 75, s), 2.5, 1e-12);
    fx_prep_scratch_destroy(s);
}

/* Histogram / selection percentiles equal a sort on random data. */
static void test_percentile_random(void)
{
    fx_prep_scratch *s = fx_prep_scratch_create();
    enum { N = 5003 };
    uint16_t *u = malloc(N * sizeof *u);
    float *f = malloc(N * sizeof *f);
    double *d = malloc(N * sizeof *d);
    srand(7);
    const double ps[] = {0, 0.5, 1, 12.34, 50, 87.5, 99.5, 100};
    for (int kind = 0; kind < 3; kind++) {
        for (int i = 0; i < N; i++) {
            int r = rand();
            u[i] = (uint16_t)(kind == 2 ? r % 7 * 1000 : r & 0xffff); /* kind 2: many ties */
            /* kind 2 floats crowd one radix bucket; kind 1 mixes signs and zeros */
            f[i] = kind == 2                 ? 1.0f + (float)(r % 1000) * 1e-6f
                   : kind == 1 && r % 5 == 0 ? (r % 2 ? 0.0f : -0.0f)
                                             : (float)(r % 100000) / 77.0f - 300.0f;
        }
        fx_image iu = wrap(u, N, 1, FX_PIX_U16), ifl = wrap(f, 1, N, FX_PIX_F32);
        for (int t = 0; t < 2; t++) {
            for (int i = 0; i < N; i++)
                d[i] = t ? (double)f[i] : (double)u[i];
            qsort(d, N, sizeof *d, cmp_double);
            for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
                double got = fx_prep_percentile(t ? &ifl : &iu, ps[j], s);
                double want = pct_sorted(d, N, ps[j]);
                CHECK_MSG(fabs(got - want) <= 1e-9 * (1 + fabs(want)),
                          "kind %d t %d p %g: %g vs %g", kind, t, ps[j], got, want);
            }
        }
    }
    free(u);
    free(f);
    free(d);
    fx_prep_scratch_destroy(s);
}

static void test_geometry(void)
{
    fx_prep_config c;
    fx_prep_config_default(&c);
    fx_prep_geom g;
    /* 1000x777 pad 256: width limits; 777*256/1000 = 198.912 -> 199;
     * off_y = floor(57/2) = 28 */
    fx_prep_geometry(1000, 777, &c, &g);
    CHECK(g.new_w == 256 && g.new_h == 199 && g.off_x == 0 && g.off_y == 28);
    CHECK_NEAR(g.scale_x, 0.256, 1e-12);
    CHECK_NEAR(g.scale_y, 199.0 / 777, 1e-12);
    /* crop: height limits; 1000*256/777 = 329.47 -> 329; off_x = floor(-73/2) = -37 */
    c.fit = FX_FIT_CROP;
    fx_prep_geometry(1000, 777, &c, &g);
    CHECK(g.new_w == 329 && g.new_h == 256 && g.off_x == -37 && g.off_y == 0);
    /* exact half rounds up: 3x2 -> width 3: h = 2 exactly; 4x2 -> out 3x3 pad:
     * new_h = 2*3/4 = 1.5 -> 2 */
    c.fit = FX_FIT_PAD;
    c.out_w = c.out_h = 3;
    fx_prep_geometry(4, 2, &c, &g);
    CHECK(g.new_w == 3 && g.new_h == 2 && g.off_y == 0);
    /* extreme aspect never gives 0 */
    c.out_w = c.out_h = 8;
    fx_prep_geometry(1000, 1, &c, &g);
    CHECK(g.new_w == 8 && g.new_h == 1 && g.off_y == 3);
    /* non-square output, enlarge */
    c.out_w = 300;
    c.out_h = 200;
    fx_prep_geometry(50, 30, &c, &g);
    CHECK(g.new_w == 300 && g.new_h == 180 && g.off_x == 0 && g.off_y == 10);
}

/* End to end on a 4x2 u8 image: window none, pad to 4x4, 3 channels. */
static void test_run_pad_small(void)
{
    uint8_t px[8] = {0, 51, 102, 255, 255, 204, 153, 0};
    fx_image im = wrap(px, 4, 2, FX_PIX_U8);
    fx_prep_config c;
    fx_prep_config_default(&c);
    c.window = FX_WINDOW_NONE;
    c.out_w = c.out_h = 4;
    c.pad_value = 0.5f;
    c.channels = 3;
    c.mean[0] = 0.0f, c.std[0] = 1.0f;
    c.mean[1] = 0.5f, c.std[1] = 0.5f;
    c.mean[2] = 1.0f, c.std[2] = 2.0f;
    fx_prep_scratch *s = fx_prep_scratch_create();
    float out[48], plane[16];
    fx_prep_geom g;
    fx_error err = {0};
    CHECK(fx_prep_run(&im, &c, s, out, plane, &g, NULL, &err) == FX_OK);
    CHECK(g.new_w == 4 && g.new_h == 2 && g.off_x == 0 && g.off_y == 1);
    CHECK(g.win_lo == 0 && g.win_hi == 255);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            float v = (y == 0 || y == 3) ? 0.5f : px[(y - 1) * 4 + x] / 255.0f;
            CHECK_NEAR(plane[y * 4 + x], v, 1e-7);
            for (int ch = 0; ch < 3; ch++)
                CHECK_NEAR(out[ch * 16 + y * 4 + x], (v - c.mean[ch]) / c.std[ch], 1e-6);
        }
    /* inverted: plane = 1 - v inside, pad unchanged */
    c.invert = 1;
    CHECK(fx_prep_run(&im, &c, s, out, plane, &g, NULL, &err) == FX_OK);
    CHECK_NEAR(plane[4], 1.0, 1e-7);
    CHECK_NEAR(plane[7], 0.0, 1e-7);
    CHECK_NEAR(plane[0], 0.5, 0);
    fx_prep_scratch_destroy(s);
}

/* window: dicom: the file's center/width by DICOM's linear function; without
 * one, the percentiles. */
static void test_run_window_dicom(void)
{
    uint16_t px[16];
    for (int i = 0; i < 16; i++)
        px[i] = (uint16_t)(i * 100);
    fx_image im = wrap(px, 4, 4, FX_PIX_U16);
    fx_prep_config c;
    fx_prep_config_default(&c);
    c.out_w = c.out_h = 4;
    c.window = FX_WINDOW_DICOM;
    c.p_lo = 10;
    c.p_hi = 90;
    fx_prep_scratch *s = fx_prep_scratch_create();
    float out[16];
    fx_prep_geom g;
    im.info.has_window = 1;
    im.info.win_center = 800;
    im.info.win_width = 401;
    CHECK(fx_prep_run(&im, &c, s, out, NULL, &g, NULL, NULL) == FX_OK);
    CHECK_NEAR(g.win_lo, 599.5, 1e-12); /* c - 0.5 - (w - 1) / 2 */
    CHECK_NEAR(g.win_hi, 999.5, 1e-12); /* c - 0.5 + (w - 1) / 2 */
    im.info.has_window = 0;
    CHECK(fx_prep_run(&im, &c, s, out, NULL, &g, NULL, NULL) == FX_OK);
    CHECK_NEAR(g.win_lo, 150, 1e-9); /* the percentiles, as mode percentile */
    CHECK_NEAR(g.win_hi, 1350, 1e-9);
    fx_prep_scratch_destroy(s);
}

/* Windows: fixed clips, percentile on a ramp, degenerate window gives 0. */
static void test_run_windows(void)
{
    uint16_t px[16];
    for (int i = 0; i < 16; i++)
        px[i] = (uint16_t)(i * 100);
    fx_image im = wrap(px, 4, 4, FX_PIX_U16);
    fx_prep_config c;
    fx_prep_config_default(&c);
    c.out_w = c.out_h = 4;
    c.mean[0] = 0.0f;
    c.std[0] = 1.0f;
    c.window = FX_WINDOW_FIXED;
    c.w_lo = 300;
    c.w_hi = 1100;
    fx_prep_scratch *s = fx_prep_scratch_create();
    float out[16];
    fx_prep_geom g;
    CHECK(fx_prep_run(&im, &c, s, out, NULL, &g, NULL, NULL) == FX_OK);
    for (int i = 0; i < 16; i++) {
        double v = (i * 100.0 - 300) / 800;
        CHECK_NEAR(out[i], v < 0 ? 0 : v > 1 ? 1 : v, 1e-7);
    }
    c.window = FX_WINDOW_PERCENTILE;
    c.p_lo = 10; /* idx 1.5 -> 150 */
    c.p_hi = 90; /* idx 13.5 -> 1350 */
    CHECK(fx_prep_run(&im, &c, s, out, NULL, &g, NULL, NULL) == FX_OK);
    CHECK_NEAR(g.win_lo, 150, 1e-9);
    CHECK_NEAR(g.win_hi, 1350, 1e-9);
    CHECK_NEAR(out[5], (500 - 150) / 1200.0, 1e-7);
    CHECK_NEAR(out[0], 0, 0);
    CHECK_NEAR(out[15], 1, 0);
    for (int i = 0; i < 16; i++)
        px[i] = 7; /* constant: hi == lo -> 0 */
    CHECK(fx_prep_run(&im, &c, s, out, NULL, &g, NULL, NULL) == FX_OK);
    for (int i = 0; i < 16; i++)
        CHECK(out[i] == 0.0f);
    /* F32 with window none: clipped to [0,1], NaN -> 0 */
    float f[4] = {-0.5f, 0.25f, 2.0f, NAN};
    fx_image imf = wrap(f, 2, 2, FX_PIX_F32);
    c.window = FX_WINDOW_NONE;
    c.out_w = c.out_h = 2;
    CHECK(fx_prep_run(&imf, &c, s, out, NULL, &g, NULL, NULL) == FX_OK);
    CHECK(out[0] == 0.0f && out[1] == 0.25f && out[2] == 1.0f && out[3] == 0.0f);
    fx_prep_scratch_destroy(s);
}

/* Crop computes only the visible part: it must equal the full resize sliced. */
static void test_run_crop_matches_full(void)
{
    enum { W = 37, H = 23 };
    float px[W * H];
    for (int i = 0; i < W * H; i++)
        px[i] = (float)((i * 7919) % 1000) / 999.0f;
    fx_image im = wrap(px, W, H, FX_PIX_F32);
    fx_prep_config c;
    fx_prep_config_default(&c);
    c.window = FX_WINDOW_NONE;
    c.fit = FX_FIT_CROP;
    c.out_w = 11;
    c.out_h = 9;
    c.mean[0] = 0.0f;
    c.std[0] = 1.0f;
    fx_prep_scratch *s = fx_prep_scratch_create();
    float out[11 * 9];
    fx_prep_geom g;
    CHECK(fx_prep_run(&im, &c, s, out, NULL, &g, NULL, NULL) == FX_OK);
    /* 37x23 -> fill 11x9: height limits? 11*23=253 vs 9*37=333: width scale
     * 11/37 < 9/23, so crop uses height: new_h = 9, new_w = round(37*9/23 = 14.48) = 14,
     * off_x = floor((11 - 14)/2) = -2 */
    CHECK(g.new_w == 14 && g.new_h == 9 && g.off_x == -2 && g.off_y == 0); /* floor(-1.5) */
    float *full = malloc((size_t)g.new_w * g.new_h * sizeof *full);
    CHECK(fx_prep_resize(px, H, W, full, g.new_h, g.new_w, s, NULL) == FX_OK);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 11; x++)
            CHECK_NEAR(out[y * 11 + x], full[(y - g.off_y) * g.new_w + (x - g.off_x)], 1e-7);
    free(full);
    fx_prep_scratch_destroy(s);
}

/* fx_prep_run's rows-first order (shrinking vertically: window fused into
 * the vertical sums, then one horizontal pass) against the reference
 * composition fx_prep_window + fx_prep_resize placed by the geometry, on
 * random 16-bit and 8-bit planes with a percentile window, inverted or
 * not, pad and crop, integer and fractional ratios, and a horizontal
 * enlargement under a vertical shrink.  Float sums vs the reference's
 * double ones: within 2e-6 on the [0,1] scale. */
static void test_run_rows_first_matches_reference(void)
{
    struct {
        int w, h, ow, oh, fit, invert, u8;
    } cases[] = {
        {512, 512, 64, 64, FX_FIT_PAD, 0, 0},   {517, 389, 100, 80, FX_FIT_PAD, 1, 0},
        {389, 517, 100, 80, FX_FIT_CROP, 0, 0}, {97, 300, 256, 256, FX_FIT_PAD, 0, 1},
        {300, 97, 64, 64, FX_FIT_CROP, 1, 1},
    };
    uint64_t st = 0x9e3779b97f4a7c15ULL;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int w = cases[c].w, h = cases[c].h;
        size_t n = (size_t)w * h;
        uint16_t *px16 = malloc(n * sizeof *px16);
        uint8_t *px8 = malloc(n);
        for (size_t i = 0; i < n; i++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            px16[i] = (uint16_t)(st >> 52); /* 12-bit values */
            px8[i] = (uint8_t)(st >> 56);
        }
        fx_image im = cases[c].u8 ? wrap(px8, w, h, FX_PIX_U8) : wrap(px16, w, h, FX_PIX_U16);
        fx_prep_config cfg;
        fx_prep_config_default(&cfg);
        cfg.out_w = cases[c].ow, cfg.out_h = cases[c].oh, cfg.fit = cases[c].fit;
        cfg.invert = cases[c].invert, cfg.mean[0] = 0.0f, cfg.std[0] = 1.0f, cfg.pad_value = 0.5f;
        fx_prep_scratch *s = fx_prep_scratch_create();
        size_t no = (size_t)cfg.out_w * cfg.out_h;
        float *out = malloc(no * sizeof *out), *win = malloc(n * sizeof *win);
        fx_prep_geom g;
        fx_error err = {0};
        CHECK_MSG(fx_prep_run(&im, &cfg, s, out, NULL, &g, NULL, &err) == FX_OK, "%s", err.msg);
        CHECK(g.new_h <= h); /* the rows-first order ran */
        fx_prep_window(&im, g.win_lo, g.win_hi, win);
        for (size_t i = 0; cfg.invert && i < n; i++)
            win[i] = 1.0f - win[i];
        float *full = malloc((size_t)g.new_w * g.new_h * sizeof *full);
        CHECK(fx_prep_resize(win, h, w, full, g.new_h, g.new_w, s, NULL) == FX_OK);
        double worst = 0;
        for (int y = 0; y < cfg.out_h; y++)
            for (int x = 0; x < cfg.out_w; x++) {
                int ry = y - g.off_y, rx = x - g.off_x;
                float want = ry >= 0 && ry < g.new_h && rx >= 0 && rx < g.new_w
                                 ? full[(size_t)ry * g.new_w + rx]
                                 : 0.5f;
                double d = fabs((double)out[(size_t)y * cfg.out_w + x] - want);
                worst = d > worst ? d : worst;
            }
        CHECK_MSG(worst <= 2e-6, "case %zu: max |diff| %.3g", c, worst);
        free(full), free(win), free(out), free(px16), free(px8);
        fx_prep_scratch_destroy(s);
    }
}

static void test_run_limits(void)
{
    uint8_t px[4] = {0};
    fx_image im = wrap(px, 2, 2, FX_PIX_U8);
    fx_prep_config c;
    fx_prep_config_default(&c);
    c.max_megapixels = 1e-7; /* 4 px = 4e-6 MP */
    fx_prep_scratch *s = fx_prep_scratch_create();
    float *out = malloc(256 * 256 * sizeof *out);
    fx_error err = {0};
    CHECK(fx_prep_run(&im, &c, s, out, NULL, NULL, NULL, &err) == FX_ERR_LIMIT);
    CHECK(strstr(err.msg, "max_megapixels") != NULL);
    c.max_megapixels = 100;
    c.std[0] = 0;
    CHECK(fx_prep_run(&im, &c, s, out, NULL, NULL, NULL, &err) == FX_ERR_CONFIG);
    free(out);
    fx_prep_scratch_destroy(s);
}

/* ---- config ------------------------------------------------------------- */

static char tmp_path[64];

static const char *write_tmp(const char *text)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/fx_test_prep_XXXXXX");
    int fd = mkstemp(tmp_path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return tmp_path;
}

/* Load text; expect st; if want_sub, the message must contain it. */
static void expect_load(const char *text, fx_status st, const char *want_sub)
{
    fx_prep_config c;
    fx_prep_config_default(&c);
    fx_error err = {0};
    const char *p = write_tmp(text);
    fx_status got = fx_prep_config_load(p, &c, &err);
    CHECK_MSG(got == st, "load of <<%s>> gave %d (%s)", text, (int)got, err.msg);
    if (want_sub)
        CHECK_MSG(strstr(err.msg, want_sub) != NULL, "message '%s' lacks '%s'", err.msg, want_sub);
    if (got != FX_OK) {
        fx_prep_config d;
        fx_prep_config_default(&d);
        CHECK(memcmp(&c, &d, sizeof c) == 0); /* failed load leaves cfg alone */
    }
    unlink(p);
}

static void test_config_default_file(void)
{
    /* tests run from the repository root (make test / tests/run.sh) */
    fx_prep_config c, d;
    fx_prep_config_default(&d);
    memset(&c, 0x5a, sizeof c);
    fx_prep_config_default(&c);
    fx_error err = {0};
    const char *path = "configs/default.yaml";
    if (access(path, R_OK) != 0)
        path = "../configs/default.yaml";
    CHECK_MSG(fx_prep_config_load(path, &c, &err) == FX_OK, "%s", err.msg);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    CHECK(fx_prep_config_validate(&d, NULL) == FX_OK);
}

static void test_config_load_values(void)
{
    const char *p =
        write_tmp("window: {mode: fixed, low: 0, high: 4095}\n"
                  "invert: true\n"
                  "input: {height: 320, width: 224, channels: 3}\n"
                  "fit: crop\n"
                  "pad_value: 0.25\n"
                  "normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}\n"
                  "limits: {max_megapixels: 50}\n"
                  "store: uint8\n");
    fx_prep_config c;
    fx_prep_config_default(&c);
    fx_error err = {0};
    CHECK_MSG(fx_prep_config_load(p, &c, &err) == FX_OK, "%s", err.msg);
    CHECK(c.window == FX_WINDOW_FIXED && c.w_lo == 0 && c.w_hi == 4095);
    CHECK(c.p_lo == 0.5 && c.p_hi == 99.5); /* untouched */
    CHECK(c.invert == 1 && c.out_h == 320 && c.out_w == 224 && c.channels == 3);
    CHECK(c.fit == FX_FIT_CROP && c.pad_value == 0.25f && c.store == FX_STORE_U8);
    CHECK(c.mean[1] == 0.456f && c.std[2] == 0.225f && c.max_megapixels == 50);
    unlink(p);
    /* one value is broadcast; partial mappings keep other defaults */
    p = write_tmp("window: {mode: none}\ninput: {channels: 3}\nnormalize: {mean: [0.1]}\n");
    fx_prep_config_default(&c);
    CHECK_MSG(fx_prep_config_load(p, &c, &err) == FX_OK, "%s", err.msg);
    CHECK(c.window == FX_WINDOW_NONE && c.channels == 3 && c.out_h == 256);
    CHECK(c.mean[0] == 0.1f && c.mean[2] == 0.1f && c.std[2] == 0.25f);
    unlink(p);
    /* an empty file is all defaults */
    expect_load("", FX_OK, NULL);
    expect_load("# only a comment\n", FX_OK, NULL);
}

static void test_config_errors(void)
{
    expect_load("windw: {mode: none}\n", FX_ERR_CONFIG, "line 1: key 'windw': unknown key");
    expect_load("invert: false\nfit: diagonal\n", FX_ERR_CONFIG, "line 2: key 'fit'");
    expect_load("input: {height: 0}\n", FX_ERR_CONFIG, "key 'input.height'");
    expect_load("input: {height: big}\n", FX_ERR_CONFIG, "key 'input.height': 'big' is not");
    expect_load("input: {height: 99999}\n", FX_ERR_CONFIG, "outside 1..8192");
    expect_load("input: {channels: 2}\n", FX_ERR_CONFIG, "key 'input.channels'");
    expect_load("input: {depth: 2}\n", FX_ERR_CONFIG, "key 'input.depth': unknown key");
    expect_load("input: 256\n", FX_ERR_CONFIG, "key 'input': expected a mapping");
    expect_load("window: {mode: median}\n", FX_ERR_CONFIG, "key 'window.mode'");
    expect_load("window: {mode: percentile, low: 99, high: 1}\n", FX_ERR_CONFIG, "swap them");
    expect_load("window: {mode: percentile, high: 120}\n", FX_ERR_CONFIG, "key 'window.high'");
    expect_load("window: {mode: none, low: 3}\n", FX_ERR_CONFIG, "key 'window.low'");
    expect_load("window: {mode: fixed, low: 10, high: 10}\n", FX_ERR_CONFIG, "window.low");
    expect_load("invert: maybe\n", FX_ERR_CONFIG, "key 'invert'");
    expect_load("pad_value: 2\n", FX_ERR_CONFIG, "key 'pad_value'");
    expect_load("pad_value: [1]\n", FX_ERR_CONFIG, "key 'pad_value': expected a number");
    expect_load("normalize: {mean: [1, 2]}\n", FX_ERR_CONFIG, "key 'normalize.mean': has 2");
    expect_load("normalize: {std: [0]}\n", FX_ERR_CONFIG, "key 'normalize.std'");
    expect_load("normalize: {mean: [0.1, 0.2, 0.3]}\n", FX_ERR_CONFIG, "input.channels is 1");
    expect_load("limits: {max_megapixels: -1}\n", FX_ERR_CONFIG, "limits.max_megapixels");
    expect_load("store: float64\n", FX_ERR_CONFIG, "key 'store'");
    expect_load("fit: pad\nfit: crop\n", FX_ERR_CONFIG, "line 2: key 'fit': given twice");
    expect_load("- a\n- b\n", FX_ERR_CONFIG, "must be a mapping");
    expect_load("window: {mode: none\n", FX_ERR_CONFIG, "YAML syntax");
    fx_prep_config c;
    fx_error err = {0};
    CHECK(fx_prep_config_load("/nonexistent/x.yaml", &c, &err) == FX_ERR_CONFIG);
    CHECK(strstr(err.msg, "/nonexistent/x.yaml") != NULL);
}

static void test_config_validate(void)
{
    fx_prep_config c;
    fx_error err = {0};
    fx_prep_config_default(&c);
    c.out_w = 9000;
    CHECK(fx_prep_config_validate(&c, &err) == FX_ERR_CONFIG && strstr(err.msg, "input.width"));
    fx_prep_config_default(&c);
    c.p_lo = 60, c.p_hi = 40;
    CHECK(fx_prep_config_validate(&c, &err) == FX_ERR_CONFIG && strstr(err.msg, "window.low"));
    fx_prep_config_default(&c);
    c.channels = 3;
    c.std[2] = 0;
    CHECK(fx_prep_config_validate(&c, &err) == FX_ERR_CONFIG && strstr(err.msg, "normalize.std"));
    fx_prep_config_default(&c);
    c.std[2] = 0; /* unused channel with 1 channel */
    CHECK(fx_prep_config_validate(&c, &err) == FX_OK);
}

/* Fields that matter for a config (unused window fields and extra channel
 * values are not written by to_yaml). */
static int config_same(const fx_prep_config *a, const fx_prep_config *b)
{
    if (a->window != b->window || a->invert != b->invert || a->out_h != b->out_h ||
        a->out_w != b->out_w || a->fit != b->fit || a->pad_value != b->pad_value ||
        a->channels != b->channels || a->max_megapixels != b->max_megapixels ||
        a->store != b->store)
        return 0;
    if (a->window == FX_WINDOW_PERCENTILE && (a->p_lo != b->p_lo || a->p_hi != b->p_hi))
        return 0;
    if (a->window == FX_WINDOW_FIXED && (a->w_lo != b->w_lo || a->w_hi != b->w_hi))
        return 0;
    for (int c = 0; c < a->channels; c++)
        if (a->mean[c] != b->mean[c] || a->std[c] != b->std[c])
            return 0;
    return 1;
}

static void test_config_yaml_round_trip(void)
{
    fx_prep_config cs[4];
    for (int i = 0; i < 4; i++)
        fx_prep_config_default(&cs[i]);
    cs[1].window = FX_WINDOW_FIXED;
    cs[1].w_lo = -1024.125;
    cs[1].w_hi = 3071.1;
    cs[1].invert = 1;
    cs[1].fit = FX_FIT_CROP;
    cs[1].pad_value = 0.1f;
    cs[1].store = FX_STORE_U8;
    cs[2].window = FX_WINDOW_NONE;
    cs[2].channels = 3;
    cs[2].mean[0] = 0.485f, cs[2].mean[1] = 0.456f, cs[2].mean[2] = 0.406f;
    cs[2].std[0] = 0.229f, cs[2].std[1] = 0.224f, cs[2].std[2] = 1e-3f;
    cs[2].out_h = 1, cs[2].out_w = 8192;
    cs[3].p_lo = 1.0 / 3, cs[3].p_hi = 100;
    cs[3].max_megapixels = 0;
    cs[3].mean[0] = -7.25e-5f;
    for (int i = 0; i < 4; i++) {
        char *y = fx_prep_config_to_yaml(&cs[i]);
        CHECK(y != NULL);
        if (!y)
            continue;
        const char *p = write_tmp(y);
        fx_prep_config back;
        fx_prep_config_default(&back);
        fx_error err = {0};
        CHECK_MSG(fx_prep_config_load(p, &back, &err) == FX_OK, "%s\n%s", err.msg, y);
        CHECK_MSG(config_same(&cs[i], &back), "case %d differs after round trip:\n%s", i, y);
        unlink(p);
        free(y);
    }
}

static void test_device_parse_resolve(void)
{
    fx_device_kind k = FX_DEVICE_CUDA;
    CHECK(fx_device_parse("auto", &k) == 0 && k == FX_DEVICE_AUTO);
    CHECK(fx_device_parse("cpu", &k) == 0 && k == FX_DEVICE_CPU);
    CHECK(fx_device_parse("cuda", &k) == 0 && k == FX_DEVICE_CUDA);
    CHECK(fx_device_parse("gpu", &k) == -1 && k == FX_DEVICE_CUDA);
    CHECK(fx_device_parse(NULL, &k) == -1);
    CHECK(strcmp(fx_device_name(FX_DEVICE_CPU), "cpu") == 0);
    char notice[256] = "x";
    fx_error err = {0};
    CHECK(fx_device_resolve(FX_DEVICE_CPU, &k, notice, sizeof notice, &err) == FX_OK);
    CHECK(k == FX_DEVICE_CPU && notice[0] == '\0');
    CHECK(fx_device_resolve(FX_DEVICE_AUTO, &k, notice, sizeof notice, &err) == FX_OK);
    if (k == FX_DEVICE_CPU) /* no GPU here: one-line notice that says so */
        CHECK(strstr(notice, "no CUDA device found (") == notice &&
              strstr(notice, "; running on CPU") && !strchr(notice, '\n'));
    else
        CHECK(k == FX_DEVICE_CUDA && notice[0] == '\0');
    fx_device_kind auto_got = k;
    fx_status st = fx_device_resolve(FX_DEVICE_CUDA, &k, notice, sizeof notice, &err);
    if (auto_got == FX_DEVICE_CUDA)
        CHECK(st == FX_OK && k == FX_DEVICE_CUDA);
    else
        CHECK(st == FX_ERR_DEVICE && strlen(err.msg) > 10);
}

int main(void)
{
    RUN(test_area_block_means);
    RUN(test_area_fractional);
    RUN(test_bilinear_by_hand);
    RUN(test_identity);
    RUN(test_percentile_known);
    RUN(test_percentile_random);
    RUN(test_geometry);
    RUN(test_run_pad_small);
    RUN(test_run_windows);
    RUN(test_run_window_dicom);
    RUN(test_run_crop_matches_full);
    RUN(test_run_rows_first_matches_reference);
    RUN(test_run_limits);
    RUN(test_config_default_file);
    RUN(test_config_load_values);
    RUN(test_config_errors);
    RUN(test_config_validate);
    RUN(test_config_yaml_round_trip);
    RUN(test_device_parse_resolve);
    return check_summary();
}
