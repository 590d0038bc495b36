/* The PNG fast path (src/io/png_fast.c) against libpng's own decode of the
 * same bytes: every filter type (each forced, and libpng's adaptive mix),
 * 8 and 16 bits, odd sizes, one and many IDAT chunks, ancillary chunks;
 * pixels must be bit-exact.  Files it must decline (interlaced, colour,
 * damaged: bad CRC, bad filter byte, short or long zlib data, truncated)
 * return FX_ERR_UNSUPPORTED, and through the loader they give libpng's
 * result and message exactly. */
#include <png.h>
#include <setjmp.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "fxscreen/loader.h"
#include "io/png_internal.h"

typedef struct membuf {
    uint8_t *b;
    size_t n, cap;
} membuf;

static void mem_write(png_structp png, png_bytep data, size_t len)
{
    membuf *m = png_get_io_ptr(png);
    if (m->n + len > m->cap) {
        m->cap = (m->n + len) * 2;
        m->b = realloc(m->b, m->cap);
    }
    memcpy(m->b + m->n, data, len);
    m->n += len;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* A w x h image (grey or RGB, 8/16 bits) with smooth areas and noise, so
 * every filter wins somewhere, encoded by libpng into memory. */
static membuf encode(int w, int h, int depth, int ctype, int filters, int interlace, int zbuf,
                     int text)
{
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int ch = ctype == PNG_COLOR_TYPE_RGB ? 3 : 1, bps = depth / 8;
    size_t rb = (size_t)w * ch * bps;
    uint8_t *rows = malloc(rb * (size_t)h);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(m.b);
        return (membuf){0};
    }
    for (int y = 0; y < h; y++)
        for (size_t i = 0; i < rb; i++)
            rows[(size_t)y * rb + i] =
                (uint8_t)((y * 7 + (int)i * 3) / 5 + (rnd() % 16 < 3 ? rnd() : 0));
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
    if (zbuf)
        png_set_compression_buffer_size(png, (size_t)zbuf); /* many IDAT chunks */
    if (text) {
        png_text t = {.compression = PNG_TEXT_COMPRESSION_NONE, .key = "Comment", .text = "fx"};
        png_set_text(png, info, &t, 1);
    }
    png_write_info(png, info);
    int passes = interlace ? png_set_interlace_handling(png) : 1;
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++)
            png_write_row(png, rows + (size_t)y * rb);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return m;
}

static fx_image_info info_of(const membuf *m)
{
    const fx_loader *ld = NULL;
    fx_image_info info = {0};
    fx_error err = {0};
    CHECK_MSG(fx_decode_header(&ld, m->b, m->n, NULL, &info, &err) == FX_OK, "%s", err.msg);
    return info;
}

static void test_fast_equals_libpng(void)
{
    static const int filters[] = {PNG_FILTER_NONE, PNG_FILTER_SUB,   PNG_FILTER_UP,
                                  PNG_FILTER_AVG,  PNG_FILTER_PAETH, PNG_ALL_FILTERS};
    static const int sizes[][2] = {{1, 1}, {2, 3}, {3, 2}, {17, 9}, {255, 31}, {640, 48}};
    int cases = 0;
    for (int d = 8; d <= 16; d += 8)
        for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                int w = sizes[s][0], h = sizes[s][1];
                membuf m = encode(w, h, d, PNG_COLOR_TYPE_GRAY, filters[f], 0, s % 2 ? 64 : 0,
                                  (int)(f % 2));
                fx_image_info info = info_of(&m);
                size_t bytes = fx_image_bytes(&info);
                uint8_t *a = malloc(bytes), *b = malloc(bytes);
                memset(a, 0x5a, bytes), memset(b, 0xa5, bytes);
                fx_error err = {0};
                CHECK_MSG(fx_png_load_fast(m.b, m.n, &info, a) == FX_OK,
                          "depth %d filter %zu %dx%d", d, f, w, h);
                CHECK_MSG(fx_png_load_libpng(m.b, m.n, &info, b, &err) == FX_OK, "%s", err.msg);
                CHECK_MSG(!memcmp(a, b, bytes), "depth %d filter %zu %dx%d differs", d, f, w, h);
                cases++;
                free(a), free(b), free(m.b);
            }
    CHECK(cases == 72);
}

/* Position of the first chunk of type t at or after `from`, or 0. */
static size_t find_chunk(const membuf *m, const char *t, size_t from)
{
    for (size_t p = from ? from : 8; p + 12 <= m->n;) {
        uint32_t len = (uint32_t)m->b[p] << 24 | m->b[p + 1] << 16 | m->b[p + 2] << 8 | m->b[p + 3];
        if (!memcmp(m->b + p + 4, t, 4))
            return p;
        p += 12 + len;
    }
    return 0;
}

/* The fast path declines m (FX_ERR_UNSUPPORTED); the loader's result and
 * message are libpng's.  libpng_ok: 1 / 0 what libpng must say, -1 either. */
static void declined(const char *what, membuf m, int libpng_ok)
{
    const fx_loader *ld = NULL;
    fx_image_info info = {0};
    fx_error e1 = {0}, e2 = {0};
    if (fx_decode_header(&ld, m.b, m.n, NULL, &info, &e1) != FX_OK) {
        CHECK_MSG(libpng_ok != 1, "%s: header failed: %s", what, e1.msg);
        free(m.b);
        return;
    }
    size_t bytes = fx_image_bytes(&info);
    uint8_t *a = calloc(1, bytes), *b = calloc(1, bytes);
    CHECK_MSG(fx_png_load_fast(m.b, m.n, &info, a) == FX_ERR_UNSUPPORTED, "%s", what);
    fx_status s1 = fx_png_loader.load(m.b, m.n, &info, a, &e1);
    fx_status s2 = fx_png_load_libpng(m.b, m.n, &info, b, &e2);
    CHECK_MSG(s1 == s2 && !strcmp(e1.msg, e2.msg) && (s1 != FX_OK || !memcmp(a, b, bytes)),
              "%s: loader %d '%s' vs libpng %d '%s'", what, s1, e1.msg, s2, e2.msg);
    CHECK_MSG(libpng_ok < 0 || (s2 == FX_OK) == libpng_ok, "%s: libpng %s (%s)", what,
              s2 == FX_OK ? "ok" : "failed", e2.msg);
    free(a), free(b), free(m.b);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* Appends chunk (type, data) with its CRC. */
static void chunk(membuf *m, const char *type, const uint8_t *data, uint32_t len)
{
    m->b = realloc(m->b, m->n + 12 + len);
    put32(m->b + m->n, len);
    memcpy(m->b + m->n + 4, type, 4);
    if (len)
        memcpy(m->b + m->n + 8, data, len);
    put32(m->b + m->n + 8 + len, (uint32_t)crc32(0, m->b + m->n + 4, len + 4));
    m->n += 12 + len;
}

/* An 8-bit grey w x h PNG built by hand from raw scanlines (filter bytes
 * included) of raw_n bytes, so that its IDAT can say what libpng's writer
 * never would; plte adds a PLTE chunk (critical, wrong in grey). */
static membuf by_hand_ex(int w, int h, const uint8_t *raw, size_t raw_n, int plte,
                         const char *extra, int cinfo);
static membuf by_hand(int w, int h, const uint8_t *raw, size_t raw_n, int plte)
{
    return by_hand_ex(w, h, raw, raw_n, plte, NULL, 7);
}

/* As by_hand; extra: the 4-byte name of an empty ancillary-looking chunk
 * put after the IDAT; cinfo: the window the zlib header claims (the data
 * itself is compressed with 32 KiB, FCHECK fixed up). */
static membuf by_hand_ex(int w, int h, const uint8_t *raw, size_t raw_n, int plte,
                         const char *extra, int cinfo)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    membuf m = {malloc(8), 8, 8};
    memcpy(m.b, sig, 8);
    uint8_t ihdr[13] = {0};
    put32(ihdr, (uint32_t)w), put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;
    chunk(&m, "IHDR", ihdr, 13);
    if (plte) {
        uint8_t pal[6] = {0, 0, 0, 255, 255, 255};
        chunk(&m, "PLTE", pal, 6);
    }
    uLongf zn = compressBound(raw_n);
    uint8_t *z = malloc(zn);
    CHECK(compress(z, &zn, raw, raw_n) == Z_OK);
    if (cinfo != 7) {
        z[0] = (uint8_t)(cinfo << 4 | 8);
        z[1] = (uint8_t)(z[1] & 0xe0);
        z[1] = (uint8_t)(z[1] + (31 - (z[0] * 256 + z[1]) % 31) % 31);
    }
    chunk(&m, "IDAT", z, (uint32_t)zn);
    if (extra)
        chunk(&m, extra, NULL, 0);
    chunk(&m, "IEND", NULL, 0);
    free(z);
    return m;
}

static void test_declined(void)
{
    declined("interlaced", encode(33, 17, 16, PNG_COLOR_TYPE_GRAY, PNG_ALL_FILTERS, 1, 0, 0), 1);
    declined("rgb", encode(33, 17, 8, PNG_COLOR_TYPE_RGB, PNG_ALL_FILTERS, 0, 0, 0), 1);
    membuf m = encode(64, 32, 16, PNG_COLOR_TYPE_GRAY, PNG_ALL_FILTERS, 0, 128, 0);
    size_t idat = find_chunk(&m, "IDAT", 0);
    CHECK(idat > 0);
    membuf c = {malloc(m.n), m.n, m.n};
    memcpy(c.b, m.b, m.n);
    c.b[idat + 8] ^= 0x40; /* payload changed, CRC not: a CRC error */
    declined("IDAT CRC", c, 0);
    c = (membuf){malloc(m.n), m.n - 20, m.n};
    memcpy(c.b, m.b, m.n);
    declined("truncated", c, 0);
    free(m.b);

    uint8_t raw[4 * 6];
    for (int i = 0; i < 24; i++)
        raw[i] = (uint8_t)(i * 11);
    for (int y = 0; y < 4; y++)
        raw[y * 6] = (uint8_t)(y % 5); /* filter bytes 0..3 */
    membuf ok = by_hand(5, 4, raw, sizeof raw, 0);
    { /* the control: built by hand, decoded by the fast path, equal to libpng */
        fx_image_info info = info_of(&ok);
        uint8_t a[20], b[20];
        fx_error e = {0};
        CHECK(fx_png_load_fast(ok.b, ok.n, &info, a) == FX_OK);
        CHECK(fx_png_load_libpng(ok.b, ok.n, &info, b, &e) == FX_OK && !memcmp(a, b, 20));
        free(ok.b);
    }
    raw[12] = 7; /* row 2's filter byte */
    declined("filter byte 7", by_hand(5, 4, raw, sizeof raw, 0), 0);
    raw[12] = 2;
    declined("zlib data one row short", by_hand(5, 4, raw, sizeof raw - 6, 0), 0);
    uint8_t longer[30] = {0};
    memcpy(longer, raw, sizeof raw);
    declined("zlib data one row long", by_hand(5, 4, longer, sizeof longer, 0), -1);
    declined("PLTE in a grey image", by_hand(5, 4, raw, sizeof raw, 1), -1);
    declined("a chunk name that is not letters", by_hand_ex(5, 4, raw, sizeof raw, 0, "ab1d", 7),
             0);
    /* a 512-byte window claimed, rows repeating every 10 rows of 101 bytes:
     * back-references farther than the window (zlib: "too far back") */
    static uint8_t rep[100 * 101];
    for (int y = 0; y < 100; y++)
        for (int x = 0; x < 101; x++)
            rep[y * 101 + x] = x == 0 ? 0 : (uint8_t)((y % 10) * 37 + x * 11);
    declined("a zlib window smaller than the data's distances",
             by_hand_ex(100, 100, rep, sizeof rep, 0, NULL, 1), 0);
    membuf wide = by_hand_ex(100, 100, rep, sizeof rep, 0, NULL, 7); /* the control */
    fx_image_info wi = info_of(&wide);
    static uint8_t wa[100 * 100];
    CHECK(fx_png_load_fast(wide.b, wide.n, &wi, wa) == FX_OK);
    free(wide.b);
}

int main(void)
{
    RUN(test_fast_equals_libpng);
    RUN(test_declined);
    return check_summary();
}
