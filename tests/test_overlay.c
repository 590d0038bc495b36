/* Tests for the overlay module: colour maps, the blend, where heat lands in
 * original pixels (pad and crop), the box outline, the PNG file and errors.
 * Expected values come from matplotlib's published tables, hand arithmetic
 * on the geometry, or fx_prep_window (the grey's definition); the numpy
 * comparison of whole overlays is tests/py/test_overlay.py. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/loader.h"
#include "fxscreen/overlay.h"
#include "fxscreen/prep.h"

/* ---- helpers --------------------------------------------------------------- */

static fx_image make_image(fx_pixtype t, int w, int h)
{
    fx_image img;
    memset(&img, 0, sizeof img);
    img.info.width = w;
    img.info.height = h;
    img.info.channels = 1;
    img.info.type = t;
    img.info.bit_depth = t == FX_PIX_U8 ? 8 : t == FX_PIX_U16 ? 16 : 32;
    img.pixels = calloc(fx_image_bytes(&img.info), 1);
    img.owned = 1;
    return img;
}

static void fill_u8(fx_image *img, uint8_t v)
{
    memset(img->pixels, v, (size_t)img->info.width * (size_t)img->info.height);
}

/* Geometry for w x h under a 64x64 model input, window NONE on U8. */
static fx_prep_geom geom_for(int w, int h, fx_fit_mode fit)
{
    fx_prep_config cfg;
    fx_prep_config_default(&cfg);
    cfg.out_w = cfg.out_h = 64;
    cfg.fit = fit;
    fx_prep_geom g;
    fx_prep_geometry(w, h, &cfg, &g);
    g.win_lo = 0;
    g.win_hi = 255;
    return g;
}

static uint8_t *px(uint8_t *rgb, int w, int x, int y)
{
    return rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
}

static int is_rgb(const uint8_t *p, int r, int g, int b)
{
    return p[0] == r && p[1] == g && p[2] == b;
}

/* ---- colour maps ------------------------------------------------------------- */

static void test_colormap_names(void)
{
    for (int c = 0; c < FX_CMAP_NUM; c++) {
        fx_colormap back = FX_CMAP_NUM;
        CHECK(fx_colormap_parse(fx_colormap_name((fx_colormap)c), &back) == 0);
        CHECK(back == (fx_colormap)c);
    }
    const char *names[] = {"inferno", "viridis", "magma", "plasma", "cividis"};
    for (int c = 0; c < 5; c++)
        CHECK(strcmp(fx_colormap_name((fx_colormap)c), names[c]) == 0);
    fx_colormap m = FX_CMAP_MAGMA;
    CHECK(fx_colormap_parse("Viridis", &m) == 0 && m == FX_CMAP_VIRIDIS);
    m = FX_CMAP_MAGMA;
    CHECK(fx_colormap_parse("jet", &m) == -1 && m == FX_CMAP_MAGMA); /* untouched */
    CHECK(fx_colormap_parse("", &m) == -1);
    CHECK(fx_colormap_parse("inferno2", &m) == -1);
    CHECK(fx_colormap_parse(NULL, &m) == -1);
    CHECK(fx_colormap_parse("inferno", NULL) == -1);
    CHECK(strcmp(fx_colormap_name((fx_colormap)99), "unknown") == 0);
    uint8_t rgb[3] = {1, 2, 3};
    fx_colormap_rgb((fx_colormap)99, 200, rgb);
    CHECK(is_rgb(rgb, 0, 0, 0));
}

/* Entries from matplotlib's _cm_listed.py float data, x255 rounded by hand. */
static void test_colormap_values(void)
{
    static const struct {
        fx_colormap c;
        int i, r, g, b;
    } want[] = {
        {FX_CMAP_INFERNO, 0, 0, 0, 4},         /* 0.001462 0.000466 0.013866 */
        {FX_CMAP_INFERNO, 128, 188, 55, 84},   /* 0.735683 0.215906 0.330245 */
        {FX_CMAP_INFERNO, 255, 252, 255, 164}, /* 0.988362 0.998364 0.644924 */
        {FX_CMAP_VIRIDIS, 0, 68, 1, 84},       /* 0.267004 0.004874 0.329415 */
        {FX_CMAP_VIRIDIS, 128, 33, 145, 140},  /* 0.127568 0.566949 0.550556 */
        {FX_CMAP_VIRIDIS, 255, 253, 231, 37},  /* 0.993248 0.906157 0.143936 */
        {FX_CMAP_MAGMA, 0, 0, 0, 4},           /* 0.001462 0.000466 0.013866 */
        {FX_CMAP_MAGMA, 255, 252, 253, 191},   /* 0.987053 0.991438 0.749504 */
        {FX_CMAP_PLASMA, 0, 13, 8, 135},       /* 0.050383 0.029803 0.527975 */
        {FX_CMAP_PLASMA, 255, 240, 249, 33},   /* 0.940015 0.975158 0.131326 */
        {FX_CMAP_CIVIDIS, 0, 0, 34, 78},       /* 0.000000 0.135112 0.304751 */
        {FX_CMAP_CIVIDIS, 255, 254, 232, 56},  /* 0.995737 0.909344 0.217772 */
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        uint8_t rgb[3];
        fx_colormap_rgb(want[k].c, (uint8_t)want[k].i, rgb);
        CHECK_MSG(is_rgb(rgb, want[k].r, want[k].g, want[k].b), "%s[%d] = %d %d %d",
                  fx_colormap_name(want[k].c), want[k].i, rgb[0], rgb[1], rgb[2]);
    }
    /* Perceptually uniform maps get brighter along the table. */
    for (int c = 0; c < FX_CMAP_NUM; c++) {
        uint8_t a[3], b[3];
        fx_colormap_rgb((fx_colormap)c, 0, a);
        fx_colormap_rgb((fx_colormap)c, 255, b);
        CHECK(a[0] + a[1] + a[2] < b[0] + b[1] + b[2]);
    }
}

/* ---- grey -------------------------------------------------------------------- */

/* opacity 0: every pixel is the windowed grey, in all three channels, whatever
 * the heat.  The reference is fx_prep_window (the definition) x255 rounded. */
static void check_grey(const fx_image *img, double lo, double hi, int invert)
{
    int w = img->info.width, h = img->info.height, H = 17, W = 13;
    size_t n = (size_t)w * (size_t)h;
    fx_prep_geom g = geom_for(w, h, FX_FIT_PAD);
    g.win_lo = lo;
    g.win_hi = hi;
    uint8_t *heat = malloc((size_t)H * W), *rgb = malloc(n * 3);
    float *v = malloc(n * sizeof *v);
    for (int i = 0; i < H * W; i++)
        heat[i] = (uint8_t)(i * 37 + 11);
    fx_overlay_opts o;
    fx_overlay_opts_default(&o);
    o.opacity = 0.0;
    o.invert = invert;
    o.draw_box = 0;
    fx_error err = {0};
    CHECK(fx_overlay_render(img, &g, heat, H, W, NULL, &o, rgb, &err) == FX_OK);
    fx_prep_window(img, lo, hi, v);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float u = invert ? 1.0f - v[i] : v[i];
        uint8_t want = (uint8_t)(u * 255.0f + 0.5f);
        if (!is_rgb(rgb + 3 * i, want, want, want))
            bad++;
    }
    CHECK_MSG(bad == 0, "%zu of %zu pixels are not the grey (type %d, invert %d)", bad, n,
              (int)img->info.type, invert);
    /* fx_overlay_grey is that plane alone. */
    uint8_t *grey = malloc(n);
    CHECK(fx_overlay_grey(img, &g, invert, grey, &err) == FX_OK);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += grey[i] != rgb[3 * i];
    CHECK_MSG(bad == 0, "fx_overlay_grey: %zu of %zu pixels differ from the overlay's grey", bad,
              n);
    free(grey);
    free(heat);
    free(rgb);
    free(v);
}

static void test_opacity_zero_is_grey(void)
{
    srand(7);
    fx_image a = make_image(FX_PIX_U8, 31, 19), b = make_image(FX_PIX_U16, 37, 23),
             c = make_image(FX_PIX_F32, 29, 41);
    for (int i = 0; i < 31 * 19; i++)
        ((uint8_t *)a.pixels)[i] = (uint8_t)rand();
    for (int i = 0; i < 37 * 23; i++)
        ((uint16_t *)b.pixels)[i] = (uint16_t)(rand() % 4096);
    for (int i = 0; i < 29 * 41; i++)
        ((float *)c.pixels)[i] = (float)rand() / RAND_MAX * 3.0f - 1.0f;
    ((float *)c.pixels)[5] = NAN;
    for (int inv = 0; inv < 2; inv++) {
        check_grey(&a, 0, 255, inv);       /* NONE on U8 */
        check_grey(&a, 20.5, 230.25, inv); /* a percentile-like window */
        check_grey(&b, 1000, 3000, inv);   /* FIXED on 12-bit data */
        check_grey(&b, 0, 65535, inv);     /* NONE on U16 */
        check_grey(&c, 0, 1, inv);         /* NONE on F32: clipped to [0, 1] */
        check_grey(&c, -0.5, 1.75, inv);
        check_grey(&b, 5, 5, inv); /* degenerate window: all 0 (255 inverted) */
    }
    fx_image_free(&a);
    fx_image_free(&b);
    fx_image_free(&c);
}

/* Hand values: window [1000, 3000] on U16. */
static void test_grey_hand_values(void)
{
    fx_image img = make_image(FX_PIX_U16, 5, 1);
    uint16_t *p = img.pixels;
    p[0] = 500, p[1] = 1000, p[2] = 1500, p[3] = 2000, p[4] = 4000;
    /* v = 0, 0, .25, .5, 1 -> round(255 v) = 0 0 64 128 255; inverted
     * 1, 1, .75, .5, 0 -> 255 255 191 128 0 (191.25 rounds down). */
    const int want[2][5] = {{0, 0, 64, 128, 255}, {255, 255, 191, 128, 0}};
    fx_prep_geom g = geom_for(5, 1, FX_FIT_PAD);
    g.win_lo = 1000;
    g.win_hi = 3000;
    uint8_t heat[4] = {255, 255, 255, 255}, rgb[15];
    fx_overlay_opts o = {FX_CMAP_INFERNO, 0.0, 0, 0};
    for (int inv = 0; inv < 2; inv++) {
        o.invert = inv;
        CHECK(fx_overlay_render(&img, &g, heat, 2, 2, NULL, &o, rgb, NULL) == FX_OK);
        for (int i = 0; i < 5; i++)
            CHECK_MSG(is_rgb(rgb + 3 * i, want[inv][i], want[inv][i], want[inv][i]),
                      "invert %d pixel %d = %d", inv, i, rgb[3 * i]);
    }
    fx_image_free(&img);
}

/* ---- the blend, by hand ------------------------------------------------------- */

/* An 8 x 1 image on a 4 x 1 model at half scale: pixel x sits at model
 * m = (x + 0.5) / 2 - 0.5 = x/2 - 1/4, so with heat (0, 255, 0, 0) it gets
 * h = 0 (clamped at the left edge), .25, .75, .75, .25, 0, 0, 0.  Opacity 1
 * on black: h * inferno[round(255 h)], inferno[64] = (87, 16, 110) and
 * inferno[191] = (249, 140, 10) from matplotlib's floats (.3415 .062325
 * .429425, .977092 .55085 .03905): (21.75, 4, 27.5) -> (22, 4, 28) and
 * (186.75, 105, 7.5) -> (187, 105, 8), halves rounding up. */
static void test_bilinear_hand_values(void)
{
    fx_image img = make_image(FX_PIX_U8, 8, 1);
    fx_prep_geom g = {.orig_w = 8,
                      .orig_h = 1,
                      .new_w = 4,
                      .new_h = 1,
                      .scale_x = 0.5,
                      .scale_y = 1.0,
                      .win_lo = 0,
                      .win_hi = 255};
    uint8_t heat[4] = {0, 255, 0, 0}, rgb[24];
    fx_overlay_opts o = {FX_CMAP_INFERNO, 1.0, 0, 0};
    CHECK(fx_overlay_render(&img, &g, heat, 1, 4, NULL, &o, rgb, NULL) == FX_OK);
    static const uint8_t want[8][3] = {{0, 0, 0},   {22, 4, 28}, {187, 105, 8}, {187, 105, 8},
                                       {22, 4, 28}, {0, 0, 0},   {0, 0, 0},     {0, 0, 0}};
    for (int x = 0; x < 8; x++)
        CHECK_MSG(is_rgb(rgb + 3 * x, want[x][0], want[x][1], want[x][2]), "pixel %d = %d %d %d", x,
                  rgb[3 * x], rgb[3 * x + 1], rgb[3 * x + 2]);

    /* Grey 100 under uniform heat 128, opacity 0.5: alpha = 0.5 * 128/255,
     * inferno[128] = (188, 55, 84): (122.09, 88.71, 95.98) -> (122, 89, 96). */
    fill_u8(&img, 100);
    memset(heat, 128, sizeof heat);
    o.opacity = 0.5;
    CHECK(fx_overlay_render(&img, &g, heat, 1, 4, NULL, &o, rgb, NULL) == FX_OK);
    for (int x = 0; x < 8; x++)
        CHECK_MSG(is_rgb(rgb + 3 * x, 122, 89, 96), "pixel %d = %d %d %d", x, rgb[3 * x],
                  rgb[3 * x + 1], rgb[3 * x + 2]);
    fx_image_free(&img);
}

/* ---- where the heat lands ------------------------------------------------------ */

/* 300 x 200 -> 64 x 64 pad: scale 64/300 across, new height round(200 * 64 /
 * 300) = round(42.67) = 43, off_y = floor((64 - 43) / 2) = 10, off_x = 0.
 * Heat 255 in one model cell (cx, cy), black image, opacity 1.  Taking the
 * model back to original pixels (orig edge X = (model - off) / scale):
 *   - pixels whose centre lies in the cell's own footprint get heat >= 1/4
 *     (within half a cell of the cell centre on each axis): coloured;
 *   - pixels whose centre is a whole cell or more from the cell centre on
 *     either axis get none: exactly black;
 *   - the brightest pixel is the one whose centre is nearest the cell centre. */
static void test_pad_single_cell(void)
{
    const int w = 300, h = 200, N = 64, cx = 20, cy = 30;
    fx_prep_geom g = geom_for(w, h, FX_FIT_PAD);
    CHECK(g.new_w == 64 && g.new_h == 43 && g.off_x == 0 && g.off_y == 10);
    fx_image img = make_image(FX_PIX_U8, w, h);
    uint8_t *heat = calloc(N * N, 1), *rgb = malloc((size_t)w * h * 3);
    heat[cy * N + cx] = 255;
    fx_overlay_opts o = {FX_CMAP_INFERNO, 1.0, 0, 0};
    CHECK(fx_overlay_render(&img, &g, heat, N, N, NULL, &o, rgb, NULL) == FX_OK);

    /* In original edge coordinates: the cell spans [ax, bx) x [ay, by), its
     * centre (mx, my); "a whole cell away" is outside (ax - s, bx + s). */
    double sx = (double)w / 64, sy = 200.0 / 43; /* original pixels per cell */
    double ax = (cx - g.off_x) * sx, bx = ax + sx, ay = (cy - g.off_y) * sy, by = ay + sy;
    double mx = (ax + bx) / 2, my = (ay + by) / 2;
    int in_core = 0, bad_core = 0, bad_out = 0, best = -1, bx_at = -1, by_at = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = px(rgb, w, x, y);
            double X = x + 0.5, Y = y + 0.5;
            if (X > ax && X < bx && Y > ay && Y < by) {
                in_core++;
                bad_core += p[0] + p[1] + p[2] == 0;
            }
            if (X <= ax - sx / 2 || X >= bx + sx / 2 || Y <= ay - sy / 2 || Y >= by + sy / 2)
                bad_out += !is_rgb(p, 0, 0, 0);
            if (p[0] + p[1] + p[2] > best)
                best = p[0] + p[1] + p[2], bx_at = x, by_at = y;
        }
    CHECK_MSG(in_core >= 16, "only %d pixels in the cell's footprint", in_core);
    CHECK_MSG(bad_core == 0, "%d footprint pixels not coloured", bad_core);
    CHECK_MSG(bad_out == 0, "%d pixels far from the cell coloured", bad_out);
    CHECK_MSG(fabs(bx_at + 0.5 - mx) <= 0.5 && fabs(by_at + 0.5 - my) <= 0.5,
              "brightest pixel (%d, %d), cell centre at (%.2f, %.2f)", bx_at, by_at, mx - 0.5,
              my - 0.5);

    /* Heat deep in the padding (rows above off_y - 1) reaches no pixel. */
    memset(heat, 0, N * N);
    heat[(g.off_y - 3) * N + cx] = 255;
    heat[(g.off_y + g.new_h + 2) * N + 40] = 255;
    CHECK(fx_overlay_render(&img, &g, heat, N, N, NULL, &o, rgb, NULL) == FX_OK);
    int coloured = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        coloured += rgb[i] != 0;
    CHECK_MSG(coloured == 0, "%d bytes coloured by heat in the padding", coloured);
    free(heat);
    free(rgb);
    fx_image_free(&img);
}

/* 300 x 200 -> 64 x 64 crop: scale max(64/300, 64/200) = 0.32, new 96 x 64,
 * off_x = floor((64 - 96) / 2) = -16.  A pixel centre lands at
 * (x + 0.5) * 0.32 - 16, inside [0, 64) for x = 50..249: columns 0..49 and
 * 250..299 were cropped away.  The transposed image crops rows likewise.
 * Heat 255 everywhere, grey 100, opacity 0.5, inferno[255] = (252, 255, 164):
 * kept pixels are round(50 + 126, 50 + 127.5, 50 + 82) = (176, 178, 132). */
static void test_crop_no_heat_outside(void)
{
    for (int tall = 0; tall < 2; tall++) {
        const int w = tall ? 200 : 300, h = tall ? 300 : 200, N = 64;
        fx_prep_geom g = geom_for(w, h, FX_FIT_CROP);
        if (tall)
            CHECK(g.new_w == 64 && g.new_h == 96 && g.off_x == 0 && g.off_y == -16);
        else
            CHECK(g.new_w == 96 && g.new_h == 64 && g.off_x == -16 && g.off_y == 0);
        fx_image img = make_image(FX_PIX_U8, w, h);
        fill_u8(&img, 100);
        uint8_t *heat = malloc(N * N), *rgb = malloc((size_t)w * h * 3);
        memset(heat, 255, N * N);
        fx_overlay_opts o = {FX_CMAP_INFERNO, 0.5, 0, 0};
        CHECK(fx_overlay_render(&img, &g, heat, N, N, NULL, &o, rgb, NULL) == FX_OK);
        int bad = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int t = tall ? y : x;
                int kept = t >= 50 && t <= 249;
                const uint8_t *p = px(rgb, w, x, y);
                bad += kept ? !is_rgb(p, 176, 178, 132) : !is_rgb(p, 100, 100, 100);
            }
        CHECK_MSG(bad == 0, "%d pixels wrong (tall %d)", bad, tall);
        /* opacity 1 shows the map's own colour where heat = 1 */
        o.opacity = 1.0;
        o.cmap = FX_CMAP_VIRIDIS;
        CHECK(fx_overlay_render(&img, &g, heat, N, N, NULL, &o, rgb, NULL) == FX_OK);
        CHECK(is_rgb(px(rgb, w, tall ? 0 : 150, tall ? 150 : 0), 253, 231, 37));
        CHECK(is_rgb(px(rgb, w, tall ? 10 : 49, tall ? 49 : 10), 100, 100, 100));
        free(heat);
        free(rgb);
        fx_image_free(&img);
    }
}

/* ---- the box -------------------------------------------------------------------- */

/* Renders a black w x h image with the box and checks that the cyan pixels
 * are exactly the frame of thickness t inside pixels [x0, x1] x [y0, y1]
 * (inclusive; x0 > x1 = no box expected). */
static void check_box(int w, int h, const float box[4], int x0, int y0, int x1, int y1, int t)
{
    fx_image img = make_image(FX_PIX_U8, w, h);
    fx_prep_geom g = geom_for(w, h, FX_FIT_PAD);
    uint8_t heat[1] = {0}, *rgb = malloc((size_t)w * h * 3);
    fx_overlay_opts o = {FX_CMAP_INFERNO, 0.0, 0, 1};
    CHECK(fx_overlay_render(&img, &g, heat, 1, 1, box, &o, rgb, NULL) == FX_OK);
    int bad = 0, cyan = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int in = x >= x0 && x <= x1 && y >= y0 && y <= y1;
            int inner = x >= x0 + t && x <= x1 - t && y >= y0 + t && y <= y1 - t;
            int want = in && !inner;
            const uint8_t *p = px(rgb, w, x, y);
            int is_cyan = is_rgb(p, 0, 255, 255);
            cyan += is_cyan;
            bad += want ? !is_cyan : !is_rgb(p, 0, 0, 0);
        }
    CHECK_MSG(bad == 0, "%d pixels wrong for box %g,%g,%g,%g on %d x %d (%d cyan)", bad, box[0],
              box[1], box[2], box[3], w, h, cyan);
    free(rgb);
    fx_image_free(&img);
}

static void test_box_outline(void)
{
    /* Edges as fx_cam_locate gives them: pixels touched = floor(x0) .. ceil(x1) - 1. */
    float a[4] = {50.3f, 40.0f, 120.0f, 90.7f};
    check_box(300, 200, a, 50, 40, 119, 90, 1);
    float b[4] = {10.5f, 5.2f, 3000.0f, 50.0f}; /* 3200 px wide: 3 px */
    check_box(3200, 60, b, 10, 5, 2999, 49, 3);
    float c[4] = {2.0f, 2.0f, 1000.0f, 30.0f}; /* 1500 px: 2 px */
    check_box(1500, 40, c, 2, 2, 999, 29, 2);
    check_box(1499, 40, c, 2, 2, 999, 29, 1);
    float d[4] = {-10.0f, -10.0f, 20.0f, 20.0f}; /* clipped to the image */
    check_box(100, 80, d, 0, 0, 19, 19, 1);
    float e[4] = {5.0f, 5.0f, 5.0f, 30.0f}; /* no width */
    check_box(100, 80, e, 1, 1, 0, 0, 1);
    float f[4] = {200.0f, 10.0f, 250.0f, 30.0f}; /* right of the image */
    check_box(100, 80, f, 1, 1, 0, 0, 1);
    float n[4] = {NAN, NAN, NAN, NAN}; /* a failed item */
    check_box(100, 80, n, 1, 1, 0, 0, 1);
    float n1[4] = {5.0f, 5.0f, NAN, 30.0f};
    check_box(100, 80, n1, 1, 1, 0, 0, 1);
    float g3[4] = {3.0f, 4.0f, 5.0f, 6.0f}; /* 2 x 2, thinner than the frame: filled */
    check_box(100, 80, g3, 3, 4, 4, 5, 1);

    /* draw_box 0 ignores the box; NULL box with draw_box 1 draws nothing. */
    fx_image img = make_image(FX_PIX_U8, 50, 40);
    fx_prep_geom g = geom_for(50, 40, FX_FIT_PAD);
    uint8_t heat[1] = {0}, rgb[50 * 40 * 3];
    fx_overlay_opts o = {FX_CMAP_INFERNO, 0.0, 0, 0};
    CHECK(fx_overlay_render(&img, &g, heat, 1, 1, a, &o, rgb, NULL) == FX_OK);
    int nz = 0;
    for (size_t i = 0; i < sizeof rgb; i++)
        nz += rgb[i] != 0;
    o.draw_box = 1;
    CHECK(fx_overlay_render(&img, &g, heat, 1, 1, NULL, &o, rgb, NULL) == FX_OK);
    for (size_t i = 0; i < sizeof rgb; i++)
        nz += rgb[i] != 0;
    CHECK(nz == 0);
    fx_image_free(&img);
}

/* ---- errors ------------------------------------------------------------------------- */

static void test_bad_arguments(void)
{
    fx_image img = make_image(FX_PIX_U8, 30, 20);
    fx_prep_geom g = geom_for(30, 20, FX_FIT_PAD);
    uint8_t heat[16] = {0}, rgb[30 * 20 * 3];
    float box[4] = {1, 1, 5, 5};
    fx_overlay_opts o;
    fx_overlay_opts_default(&o);
    fx_error err = {0};
#define BAD(call)                                                                                  \
    do {                                                                                           \
        fx_error_clear(&err);                                                                      \
        CHECK((call) == FX_ERR_USAGE);                                                             \
        CHECK(err.code == FX_ERR_USAGE && err.msg[0] != '\0');                                     \
    } while (0)
    CHECK(fx_overlay_render(&img, &g, heat, 4, 4, box, &o, rgb, &err) == FX_OK);
    BAD(fx_overlay_render(NULL, &g, heat, 4, 4, box, &o, rgb, &err));
    BAD(fx_overlay_render(&img, NULL, heat, 4, 4, box, &o, rgb, &err));
    BAD(fx_overlay_render(&img, &g, NULL, 4, 4, box, &o, rgb, &err));
    BAD(fx_overlay_render(&img, &g, heat, 0, 4, box, &o, rgb, &err));
    BAD(fx_overlay_render(&img, &g, heat, 4, -1, box, &o, rgb, &err));
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, box, NULL, rgb, &err));
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, box, &o, NULL, &err));
    fx_overlay_opts q = o;
    q.opacity = 1.5;
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, box, &q, rgb, &err));
    q.opacity = -0.1;
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, box, &q, rgb, &err));
    q.opacity = NAN;
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, box, &q, rgb, &err));
    q = o;
    q.cmap = (fx_colormap)42;
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, box, &q, rgb, &err));
    q.cmap = (fx_colormap)-1;
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, box, &q, rgb, &err));
    fx_prep_geom h = g;
    h.orig_w = 31; /* the geometry of another image */
    BAD(fx_overlay_render(&img, &h, heat, 4, 4, box, &o, rgb, &err));
    CHECK(strstr(err.msg, "31 x 20") != NULL);
    h = g;
    h.scale_y = 0;
    BAD(fx_overlay_render(&img, &h, heat, 4, 4, box, &o, rgb, &err));
    h.scale_y = NAN;
    BAD(fx_overlay_render(&img, &h, heat, 4, 4, box, &o, rgb, &err));
    float inf_box[4] = {1, 1, INFINITY, 5};
    BAD(fx_overlay_render(&img, &g, heat, 4, 4, inf_box, &o, rgb, &err));
    fx_image bad = img;
    bad.info.type = (fx_pixtype)9;
    BAD(fx_overlay_render(&bad, &g, heat, 4, 4, box, &o, rgb, &err));
    bad = img;
    bad.pixels = NULL;
    BAD(fx_overlay_render(&bad, &g, heat, 4, 4, box, &o, rgb, &err));
    /* NULL err is allowed */
    CHECK(fx_overlay_render(NULL, &g, heat, 4, 4, box, &o, rgb, NULL) == FX_ERR_USAGE);

    BAD(fx_png_save_rgb8("/tmp/x.png", 0, 5, rgb, 3, &err));
    BAD(fx_png_save_rgb8("/tmp/x.png", 5, 5, NULL, 3, &err));
    BAD(fx_png_save_rgb8(NULL, 5, 5, rgb, 3, &err));
    BAD(fx_png_save_rgb8("/tmp/x.png", 5, 5, rgb, 10, &err));
    BAD(fx_png_save_rgb8("/tmp/x.png", 5, 5, rgb, -1, &err));
    BAD(fx_overlay_write_file(NULL, 0, &g, heat, 4, 4, box, &o, "/tmp/x.png", &err));
    BAD(fx_overlay_write_file("/tmp/x.png", 0, &g, heat, 4, 4, box, &o, NULL, &err));
#undef BAD
    fx_image_free(&img);
}

/* ---- files ---------------------------------------------------------------------------- */

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int read_all(const char *path, uint8_t **b, size_t *n)
{
    return fx_read_file(path, 0, b, n, NULL) == FX_OK ? 0 : -1;
}

static void test_write_file(void)
{
    char dir[] = "/tmp/fx_overlay_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    char src[256], out[256], out2[256], missing[256], nodir[256];
    snprintf(src, sizeof src, "%s/src.png", dir);
    snprintf(out, sizeof out, "%s/over.png", dir);
    snprintf(out2, sizeof out2, "%s/over2.png", dir);
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/over.png", dir);

    const int w = 120, h = 90, N = 32;
    fx_image img = make_image(FX_PIX_U16, w, h);
    for (int i = 0; i < w * h; i++)
        ((uint16_t *)img.pixels)[i] = (uint16_t)((i * 7919) % 4096);
    fx_error err = {0};
    CHECK(fx_png_save(src, &img, &err) == FX_OK);
    fx_prep_config cfg;
    fx_prep_config_default(&cfg);
    cfg.out_w = cfg.out_h = N;
    fx_prep_geom g;
    fx_prep_geometry(w, h, &cfg, &g);
    g.win_lo = 100;
    g.win_hi = 3900;
    uint8_t heat[N * N];
    for (int i = 0; i < N * N; i++)
        heat[i] = (uint8_t)(i * 13);
    float box[4] = {10.2f, 20.7f, 60.0f, 70.5f};
    fx_overlay_opts o;
    fx_overlay_opts_default(&o);
    o.invert = 1;

    CHECK(fx_overlay_write_file(src, 0, &g, heat, N, N, box, &o, out, &err) == FX_OK);
    CHECK_MSG(count_entries(dir) == 2, "%d files in %s (temporary left?)", count_entries(dir), dir);
    /* The PNG holds what fx_overlay_render gives; our loader reads RGB as
     * BT.601 luma round(0.299 R + 0.587 G + 0.114 B), documented in loader.h. */
    uint8_t *rgb = malloc((size_t)w * h * 3);
    CHECK(fx_overlay_render(&img, &g, heat, N, N, box, &o, rgb, &err) == FX_OK);
    fx_image back;
    CHECK(fx_decode_file(out, NULL, &back, &err) == FX_OK);
    CHECK(back.info.width == w && back.info.height == h && back.info.type == FX_PIX_U8 &&
          back.info.channels == 3 && back.info.bit_depth == 8);
    int bad = 0;
    for (int i = 0; back.pixels && i < w * h; i++) {
        const uint8_t *p = rgb + 3 * i;
        double l = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        bad += ((uint8_t *)back.pixels)[i] != (uint8_t)floor(l + 0.5);
    }
    CHECK_MSG(bad == 0, "%d pixels differ after the PNG round trip", bad);
    fx_image_free(&back);

    /* Same pixels, same bytes; an existing file is replaced. */
    CHECK(fx_overlay_write_file(src, 0, &g, heat, N, N, box, &o, out2, &err) == FX_OK);
    CHECK(fx_overlay_write_file(src, 0, &g, heat, N, N, box, &o, out, &err) == FX_OK);
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    CHECK(read_all(out, &b1, &n1) == 0 && read_all(out2, &b2, &n2) == 0);
    CHECK(n1 > 0 && n1 == n2 && b1 && b2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    CHECK(count_entries(dir) == 3);

    /* Errors name the file and leave nothing behind. */
    fx_error_clear(&err);
    CHECK(fx_overlay_write_file(missing, 0, &g, heat, N, N, box, &o, out2, &err) == FX_ERR_IO);
    CHECK_MSG(strstr(err.msg, missing) != NULL, "message: %s", err.msg);
    fx_error_clear(&err);
    CHECK(fx_overlay_write_file(src, 0, &g, heat, N, N, box, &o, nodir, &err) == FX_ERR_IO);
    CHECK_MSG(strstr(err.msg, nodir) != NULL, "message: %s", err.msg);
    fx_error_clear(&err);
    CHECK(fx_overlay_write_file(src, 0.001, &g, heat, N, N, box, &o, out2, &err) == FX_ERR_LIMIT);
    CHECK_MSG(strstr(err.msg, src) != NULL, "message: %s", err.msg);
    fx_prep_geom other = g;
    other.orig_h = h + 1;
    fx_error_clear(&err);
    CHECK(fx_overlay_write_file(src, 0, &other, heat, N, N, box, &o, out2, &err) == FX_ERR_USAGE);
    CHECK_MSG(strstr(err.msg, src) != NULL, "message: %s", err.msg);
    CHECK_MSG(count_entries(dir) == 3, "%d files after the errors", count_entries(dir));

    /* The saver alone: unwritable path. */
    fx_error_clear(&err);
    CHECK(fx_png_save_rgb8(nodir, w, h, rgb, 3, &err) == FX_ERR_IO);
    CHECK(strstr(err.msg, nodir) != NULL);

    free(rgb);
    fx_image_free(&img);
    unlink(src);
    unlink(out);
    unlink(out2);
    rmdir(dir);
}

/* fx_png_encode: the bytes decode back (our loader, libpng underneath) to
 * the same pixels, grey and RGB (RGB via BT.601 luma of equal channels). */
static void test_png_encode(void)
{
    int w = 37, h = 23;
    uint8_t *g = malloc((size_t)w * h), *rgb = malloc((size_t)w * h * 3), *png = NULL;
    size_t n = 0;
    for (int i = 0; i < w * h; i++) {
        g[i] = (uint8_t)(i * 7 + i / w);
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = g[i];
    }
    fx_error err = {0};
    for (int ch = 1; ch <= 3; ch += 2) {
        CHECK(fx_png_encode(w, h, ch, ch == 1 ? g : rgb, 3, &png, &n, &err) == FX_OK);
        fx_image img = {0};
        CHECK(png && fx_decode_memory(png, n, NULL, &img, &err) == FX_OK);
        CHECK(img.info.width == w && img.info.height == h && img.info.type == FX_PIX_U8);
        CHECK(img.pixels && memcmp(img.pixels, g, (size_t)w * h) == 0);
        fx_image_free(&img);
        free(png);
        png = NULL;
    }
    CHECK(fx_png_encode(w, h, 2, g, 3, &png, &n, &err) == FX_ERR_USAGE && !png);
    CHECK(fx_png_encode(w, h, 1, g, 10, &png, &n, &err) == FX_ERR_USAGE && !png);
    free(g);
    free(rgb);
}

/* fx_overlay_base at whole factors (the block path: 2, 3, 4) and not (the
 * area path), on U8, U16 and F32 planes, against the definition written
 * here: the full-size grey (fx_overlay_grey) averaged over each output
 * pixel's f x f block in double, rounded half up. */
static void test_base_blocks(void)
{
    static const struct {
        int w, h, side;
    } cases[] = {{96, 64, 48}, {96, 96, 32}, {128, 64, 32}, {90, 60, 40}, {64, 64, 64}};
    static const fx_pixtype types[] = {FX_PIX_U8, FX_PIX_U16, FX_PIX_F32};
    uint32_t seed = 12345;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t t = 0; t < 3; t++)
            for (int inv = 0; inv < 2; inv++) {
                int w = cases[c].w, h = cases[c].h;
                fx_image img = make_image(types[t], w, h);
                for (int i = 0; i < w * h; i++) {
                    seed = seed * 1664525u + 1013904223u;
                    if (types[t] == FX_PIX_U8)
                        ((uint8_t *)img.pixels)[i] = (uint8_t)(seed >> 24);
                    else if (types[t] == FX_PIX_U16)
                        ((uint16_t *)img.pixels)[i] = (uint16_t)(seed >> 16) & 4095;
                    else
                        ((float *)img.pixels)[i] = (float)(seed >> 20);
                }
                fx_prep_geom g = geom_for(w, h, FX_FIT_PAD);
                g.win_lo = 100, g.win_hi = types[t] == FX_PIX_U8 ? 230 : 3900;
                uint8_t *grey = malloc((size_t)w * h), *base = malloc((size_t)w * h);
                int ow = 0, oh = 0;
                CHECK(fx_overlay_grey(&img, &g, inv, grey, NULL) == FX_OK);
                CHECK(fx_overlay_base(&img, &g, inv, cases[c].side, base, &ow, &oh, NULL) == FX_OK);
                int f = w / ow, whole = w % ow == 0 && h % oh == 0 && f == h / oh;
                int bad = 0;
                for (int y = 0; whole && y < oh; y++)
                    for (int x = 0; x < ow; x++) {
                        double sum = 0;
                        for (int yy = y * f; yy < y * f + f; yy++)
                            for (int xx = x * f; xx < x * f + f; xx++)
                                sum += grey[yy * w + xx];
                        bad += base[y * ow + x] != (uint8_t)floor(sum / (f * f) + 0.5);
                    }
                CHECK(ow == (w > h ? cases[c].side : cases[c].side * w / h));
                CHECK(bad == 0);
                free(grey), free(base);
                fx_image_free(&img);
            }
}

int main(void)
{
    RUN(test_colormap_names);
    RUN(test_colormap_values);
    RUN(test_opacity_zero_is_grey);
    RUN(test_grey_hand_values);
    RUN(test_bilinear_hand_values);
    RUN(test_pad_single_cell);
    RUN(test_crop_no_heat_outside);
    RUN(test_box_outline);
    RUN(test_bad_arguments);
    RUN(test_write_file);
    RUN(test_png_encode);
    RUN(test_base_blocks);
    return check_summary();
}
