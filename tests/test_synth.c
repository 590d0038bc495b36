/* Tests for the synthetic radiograph generator (src/synth) and the PNG/TIFF
 * writers (src/io/png_save.c, src/io/tiff_save.c).  The writers are checked
 * by reading back with libpng/libtiff directly, never with our decoders. */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/loader.h"
#include "fxscreen/synth.h"

static fx_synth_opts opts(int size, int bits, uint64_t seed, double rate)
{
    fx_synth_opts o;
    fx_synth_opts_default(&o);
    o.size = size;
    o.bits = bits;
    o.seed = seed;
    o.fracture_rate = rate;
    return o;
}

/* Pixel holding continuous point (x, y) (pixel i covers [i, i+1)), clamped. */
static double px(const fx_image *img, double x, double y)
{
    int w = img->info.width, h = img->info.height;
    int ix = (int)floor(x), iy = (int)floor(y);
    ix = ix < 0 ? 0 : (ix >= w ? w - 1 : ix);
    iy = iy < 0 ? 0 : (iy >= h ? h - 1 : iy);
    size_t i = (size_t)iy * w + ix;
    return img->info.type == FX_PIX_U16 ? ((const uint16_t *)img->pixels)[i]
                                        : ((const uint8_t *)img->pixels)[i];
}

static void test_determinism(void)
{
    fx_synth_opts o = opts(192, 8, 42, 0.5);
    fx_image a, b, c, d;
    fx_error err = {0};
    CHECK(fx_synth_render(&o, 3, &a, NULL, &err) == FX_OK);
    CHECK(fx_synth_render(&o, 3, &b, NULL, &err) == FX_OK);
    CHECK(fx_synth_render(&o, 4, &c, NULL, &err) == FX_OK);
    o.seed = 43;
    CHECK(fx_synth_render(&o, 3, &d, NULL, &err) == FX_OK);
    size_t n = fx_image_bytes(&a.info);
    CHECK(n == 192u * 192u);
    CHECK(memcmp(a.pixels, b.pixels, n) == 0);
    CHECK(memcmp(a.pixels, c.pixels, n) != 0);
    CHECK(memcmp(a.pixels, d.pixels, n) != 0);
    fx_image_free(&a), fx_image_free(&b), fx_image_free(&c), fx_image_free(&d);
}

static void test_truth(void)
{
    const int S = 256;
    fx_synth_opts o = opts(S, 8, 5, 0.5);
    int frac = 0;
    for (int i = 0; i < 40; i++) {
        fx_image img;
        fx_synth_truth t;
        fx_error err = {0};
        CHECK_MSG(fx_synth_render(&o, (uint64_t)i, &img, &t, &err) == FX_OK, "%s", err.msg);
        CHECK(img.info.width == S && img.info.height == S && img.info.type == FX_PIX_U8);
        if (t.label) {
            frac++;
            CHECK_MSG(t.x0 >= 0 && t.y0 >= 0 && t.x1 <= S && t.y1 <= S && t.x0 < t.x1 &&
                          t.y0 < t.y1,
                      "image %d box %d,%d,%d,%d", i, t.x0, t.y0, t.x1, t.y1);
            CHECK_MSG(t.cx >= t.x0 && t.cx < t.x1 && t.cy >= t.y0 && t.cy < t.y1,
                      "image %d centre %.1f,%.1f outside box", i, t.cx, t.cy);
            /* tight: about the bone width, never a large part of the image */
            CHECK_MSG(t.x1 - t.x0 <= S / 2 && t.y1 - t.y0 <= S / 2, "image %d box too big", i);
            CHECK_NEAR(hypot(t.nx, t.ny), 1.0, 1e-9);
        } else {
            CHECK(t.x0 == 0 && t.y0 == 0 && t.x1 == 0 && t.y1 == 0 && t.cx == 0 && t.cy == 0);
        }
        fx_image_free(&img);
    }
    CHECK_MSG(frac >= 10 && frac <= 30, "%d of 40 fractured at rate 0.5", frac);

    for (int rate = 0; rate <= 1; rate++) {
        o.fracture_rate = rate;
        for (int i = 0; i < 8; i++) {
            fx_image img;
            fx_synth_truth t;
            CHECK(fx_synth_render(&o, (uint64_t)i, &img, &t, NULL) == FX_OK);
            CHECK(t.label == rate);
            fx_image_free(&img);
        }
    }
}

static void test_range(void)
{
    for (int bits = 8; bits <= 16; bits += 8) {
        fx_synth_opts o = opts(160, bits, 9, 0.5);
        double lo = 1e9, hi = -1;
        for (int i = 0; i < 12; i++) {
            fx_image img;
            CHECK(fx_synth_render(&o, (uint64_t)i, &img, NULL, NULL) == FX_OK);
            CHECK(img.info.type == (bits == 16 ? FX_PIX_U16 : FX_PIX_U8));
            fx_image_stats st;
            fx_image_stats_compute(&img, &st);
            lo = fmin(lo, st.min);
            hi = fmax(hi, st.max);
            CHECK_MSG(st.max - st.min > 0.4 * (bits == 16 ? 4095 : 255), "image %d: flat", i);
            fx_image_free(&img);
        }
        double top = bits == 16 ? FX_SYNTH_MAX_16BIT : 255;
        CHECK_MSG(hi <= top && hi >= 0.9 * top, "bits %d: max %g", bits, hi);
        CHECK_MSG(lo >= 0 && lo <= 0.05 * top, "bits %d: min %g", bits, lo);
    }
}

/* Independent look at the pixels: along the fracture line, the darkest
 * point across the (possibly jagged) line must be darker than the darkest
 * point of an equal window in the intact shaft on the proximal side. */
static int fracture_is_darker(const fx_image *img, const fx_synth_truth *t, double *line_out,
                              double *ctrl_out)
{
    double tx = -t->ny, ty = t->nx;                /* along the line */
    double half = t->jag_px + t->gap_px / 2 + 1.0; /* window across the line */
    double cosn = fabs(t->nx * t->ax + t->ny * t->ay);
    double shift = (2 * half + 3 * t->gap_px + 4) / cosn; /* along the axis, proximal */
    double line = 0, ctrl = 0;
    int n = 0;
    double umax = 0.5 * t->shaft_radius_px;
    for (double u = -umax; u <= umax; u += 1.0, n++) {
        double mline = 1e9, mctrl = 1e9;
        for (double v = -half; v <= half; v += 0.5) {
            double x = t->cx + u * tx + v * t->nx, y = t->cy + u * ty + v * t->ny;
            /* 3-px average along the line direction to tame the noise */
            double a = (px(img, x - tx, y - ty) + px(img, x, y) + px(img, x + tx, y + ty)) / 3;
            double xs = x - shift * t->ax, ys = y - shift * t->ay;
            double b =
                (px(img, xs - tx, ys - ty) + px(img, xs, ys) + px(img, xs + tx, ys + ty)) / 3;
            mline = fmin(mline, a);
            mctrl = fmin(mctrl, b);
        }
        line += mline;
        ctrl += mctrl;
    }
    *line_out = line / n;
    *ctrl_out = ctrl / n;
    return *line_out < *ctrl_out;
}

static void test_fracture_darker(void)
{
    fx_synth_opts o = opts(512, 16, 11, 1.0);
    int undisplaced = 0, displaced = 0, displaced_ok = 0;
    for (int i = 0; i < 24; i++) {
        fx_image img;
        fx_synth_truth t;
        CHECK(fx_synth_render(&o, (uint64_t)i, &img, &t, NULL) == FX_OK);
        CHECK(t.label == 1);
        double line, ctrl;
        int ok = fracture_is_darker(&img, &t, &line, &ctrl);
        if (t.displaced) {
            displaced++;
            displaced_ok += ok;
        } else {
            undisplaced++;
            CHECK_MSG(ok, "image %d: line %.1f not darker than shaft %.1f", i, line, ctrl);
        }
        fx_image_free(&img);
    }
    CHECK_MSG(undisplaced >= 4, "only %d undisplaced fractures", undisplaced);
    CHECK_MSG(displaced_ok * 4 >= displaced * 3, "displaced: %d of %d darker", displaced_ok,
              displaced);
}

static void test_opts_check(void)
{
    fx_synth_opts o;
    fx_synth_opts_default(&o);
    CHECK(fx_synth_opts_check(&o, 0, NULL) == FX_OK);
    CHECK(fx_synth_opts_check(&o, 1, NULL) == FX_ERR_USAGE); /* no out_dir */
    fx_error err = {0};
    o.bits = 12;
    CHECK(fx_synth_opts_check(&o, 0, &err) == FX_ERR_USAGE);
    CHECK(strstr(err.msg, "bits") != NULL);
    o.bits = 8, o.size = 8192;
    CHECK(fx_synth_opts_check(&o, 0, NULL) == FX_ERR_USAGE);
    o.size = 512, o.fracture_rate = 1.5;
    CHECK(fx_synth_opts_check(&o, 0, NULL) == FX_ERR_USAGE);
    fx_image img;
    CHECK(fx_synth_render(&o, 0, &img, NULL, NULL) == FX_ERR_USAGE);
}

/* ---- writers, read back with the libraries' raw APIs --------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fx_test_synth_XXXXXX");
    if (!mkdtemp(tmpdir))
        tmpdir[0] = '\0';
}

static fx_image pattern(fx_pixtype type, int w, int h)
{
    fx_image img = {.info = {.width = w,
                             .height = h,
                             .bit_depth = type == FX_PIX_U8 ? 8 : (type == FX_PIX_U16 ? 16 : 32),
                             .channels = 1,
                             .type = type},
                    .owned = 1};
    img.pixels = malloc(fx_image_bytes(&img.info));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint32_t v = (uint32_t)(x * 131 + y * 977 + (x * y) % 17);
            if (type == FX_PIX_U8)
                ((uint8_t *)img.pixels)[i] = (uint8_t)v;
            else if (type == FX_PIX_U16)
                ((uint16_t *)img.pixels)[i] = (uint16_t)(v * 37);
            else
                ((float *)img.pixels)[i] = (float)v * 0.25f - 100.0f;
        }
    return img;
}

static int png_read_raw(const char *path, int *w, int *h, int *bits, int *ctype, void **pixels)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    void *volatile buf = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(buf);
        return 0;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    *bits = png_get_bit_depth(png, info);
    *ctype = png_get_color_type(png, info);
    const uint16_t probe = 1;
    if (*bits == 16 && *(const uint8_t *)&probe == 1)
        png_set_swap(png); /* to host order for comparison */
    size_t stride = png_get_rowbytes(png, info);
    buf = malloc(stride * (size_t)*h);
    for (int y = 0; y < *h; y++)
        png_read_row(png, (uint8_t *)buf + stride * (size_t)y, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    *pixels = buf;
    return 1;
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            eq = 0;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

static void test_png_roundtrip(void)
{
    CHECK(tmpdir[0]);
    for (int k = 0; k < 2; k++) {
        fx_pixtype type = k ? FX_PIX_U16 : FX_PIX_U8;
        fx_image img = pattern(type, 37, 23);
        char p1[300], p2[300];
        snprintf(p1, sizeof p1, "%s/a%d.png", tmpdir, k);
        snprintf(p2, sizeof p2, "%s/b%d.png", tmpdir, k);
        fx_error err = {0};
        CHECK_MSG(fx_png_save(p1, &img, &err) == FX_OK, "%s", err.msg);
        CHECK(fx_png_save(p2, &img, &err) == FX_OK);
        CHECK(files_equal(p1, p2)); /* deterministic bytes */
        int w, h, bits, ctype;
        void *pix = NULL;
        CHECK(png_read_raw(p1, &w, &h, &bits, &ctype, &pix));
        CHECK(w == 37 && h == 23 && ctype == PNG_COLOR_TYPE_GRAY && bits == (k ? 16 : 8));
        CHECK(pix && memcmp(pix, img.pixels, fx_image_bytes(&img.info)) == 0);
        free(pix);
        fx_image_free(&img);
    }
    /* F32 is not a PNG layout; a missing directory is an I/O error */
    fx_image f = pattern(FX_PIX_F32, 4, 4);
    CHECK(fx_png_save("/tmp/x.png", &f, NULL) == FX_ERR_UNSUPPORTED);
    fx_image_free(&f);
    fx_image g = pattern(FX_PIX_U8, 4, 4);
    fx_error err = {0};
    CHECK(fx_png_save("/nonexistent-dir/x.png", &g, &err) == FX_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent-dir/x.png") != NULL);
    fx_image_free(&g);
}

static void test_tiff_roundtrip(void)
{
    CHECK(tmpdir[0]);
    const fx_pixtype types[] = {FX_PIX_U8, FX_PIX_U16, FX_PIX_F32};
    const fx_tiff_compression comps[] = {FX_TIFF_NONE, FX_TIFF_LZW, FX_TIFF_DEFLATE,
                                         FX_TIFF_PACKBITS};
    for (int ti = 0; ti < 3; ti++)
        for (int ci = 0; ci < 4; ci++) {
            /* tall enough for several 64 KB strips at U16/F32 */
            fx_image img = pattern(types[ti], 300, 250);
            char p1[300], p2[300];
            snprintf(p1, sizeof p1, "%s/t%d%d.tif", tmpdir, ti, ci);
            snprintf(p2, sizeof p2, "%s/u%d%d.tif", tmpdir, ti, ci);
            fx_error err = {0};
            CHECK_MSG(fx_tiff_save(p1, &img, comps[ci], &err) == FX_OK, "%s", err.msg);
            CHECK(fx_tiff_save(p2, &img, comps[ci], &err) == FX_OK);
            CHECK(files_equal(p1, p2));
            TIFF *tif = TIFFOpen(p1, "r");
            CHECK(tif != NULL);
            if (!tif)
                continue;
            uint32_t w = 0, h = 0, rps = 0;
            uint16_t bps = 0, spp = 0, fmt = 0, comp = 0, pred = 1, photo = 9;
            char *s = NULL;
            TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
            TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
            TIFFGetField(tif, TIFFTAG_BITSPERSAMPLE, &bps);
            TIFFGetField(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
            TIFFGetField(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
            TIFFGetField(tif, TIFFTAG_COMPRESSION, &comp);
            TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo);
            TIFFGetField(tif, TIFFTAG_ROWSPERSTRIP, &rps);
            if (ci == 1 || ci == 2) /* the tag exists only for codecs that use it */
                TIFFGetFieldDefaulted(tif, TIFFTAG_PREDICTOR, &pred);
            CHECK(w == 300 && h == 250 && spp == 1 && photo == PHOTOMETRIC_MINISBLACK);
            CHECK(bps == (ti == 0 ? 8 : (ti == 1 ? 16 : 32)));
            CHECK(fmt == (ti == 2 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT));
            CHECK((size_t)rps * 300 * bps / 8 <= 65536 && rps >= 1);
            int want_pred = (ci == 1 || ci == 2) && ti != 2;
            CHECK_MSG(pred == (want_pred ? PREDICTOR_HORIZONTAL : PREDICTOR_NONE) || ci == 0 ||
                          ci == 3,
                      "type %d comp %d predictor %u", ti, ci, pred);
            CHECK(!TIFFGetField(tif, TIFFTAG_DATETIME, &s));
            CHECK(!TIFFGetField(tif, TIFFTAG_SOFTWARE, &s));
            size_t stride = (size_t)300 * bps / 8;
            uint8_t *row = malloc(stride);
            int same = 1;
            for (uint32_t y = 0; y < h; y++) {
                if (TIFFReadScanline(tif, row, y, 0) < 0)
                    same = 0;
                else if (memcmp(row, (uint8_t *)img.pixels + stride * y, stride) != 0)
                    same = 0;
            }
            CHECK_MSG(same, "type %d comp %d: pixels differ", ti, ci);
            free(row);
            TIFFClose(tif);
            fx_image_free(&img);
        }
}

/* fx_synth_run: files and labels.csv land in the directory. */
static void test_run_small(void)
{
    CHECK(tmpdir[0]);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/run/sub", tmpdir);
    fx_synth_opts o = opts(64, 16, 3, 0.5);
    o.out_dir = dir;
    o.n = 6;
    o.format = FX_SYNTH_TIFF;
    o.threads = 2;
    int k = -1;
    fx_error err = {0};
    CHECK_MSG(fx_synth_run_ex(&o, &k, &err) == FX_OK, "%s", err.msg);
    CHECK(k >= 0 && k <= 6);
    char p[400];
    snprintf(p, sizeof p, "%s/labels.csv", dir);
    FILE *f = fopen(p, "r");
    CHECK(f != NULL);
    if (f) {
        char line[256];
        int rows = 0, frac = 0;
        CHECK(fgets(line, sizeof line, f) && !strcmp(line, "path,label,cx,cy,x0,y0,x1,y1\n"));
        while (fgets(line, sizeof line, f)) {
            char want[32];
            snprintf(want, sizeof want, "img_%06d.tif,", rows);
            CHECK(!strncmp(line, want, strlen(want)));
            frac += line[strlen(want)] == '1';
            rows++;
        }
        fclose(f);
        CHECK(rows == 6 && frac == k);
    }
    snprintf(p, sizeof p, "%s/img_000005.tif", dir);
    CHECK(access(p, R_OK) == 0);
    /* a file where the directory should be: error, and no labels.csv */
    snprintf(p, sizeof p, "%s/file", tmpdir);
    FILE *g = fopen(p, "w");
    if (g)
        fclose(g);
    o.out_dir = p;
    CHECK(fx_synth_run(&o, &err) == FX_ERR_IO);
}

int main(void)
{
    make_tmpdir();
    RUN(test_determinism);
    RUN(test_truth);
    RUN(test_range);
    RUN(test_fracture_darker);
    RUN(test_opts_check);
    RUN(test_png_roundtrip);
    RUN(test_tiff_roundtrip);
    RUN(test_run_small);
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_summary();
}
