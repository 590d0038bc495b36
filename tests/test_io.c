/* Unit tests for the image loaders (src/io/loader.c, png.c, tiff.c).
 *
 * Inputs are built in memory here: PNG with stored (uncompressed) deflate
 * blocks and our own CRC/Adler, TIFF as a hand-laid IFD, so the tests do not
 * depend on any encoder under test.  Files in tests/crashers/ (or $FX_CRASHERS)
 * must all be refused without crashing; run the ASan build to check leaks. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/loader.h"

/* ---- byte buffer ------------------------------------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put8(buf *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    put(b, &x, 1);
}
static void put16be(buf *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v);
}
static void put32be(buf *b, uint32_t v)
{
    put16be(b, v >> 16);
    put16be(b, v & 0xffff);
}
static void put16le(buf *b, unsigned v)
{
    put8(b, v);
    put8(b, v >> 8);
}
static void put32le(buf *b, uint32_t v)
{
    put16le(b, v & 0xffff);
    put16le(b, v >> 16);
}

/* ---- minimal PNG writer (stored deflate, filter 0) --------------------------- */

static uint32_t crc32_of(const uint8_t *d, size_t n, uint32_t c)
{
    c = ~c;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void png_chunk(buf *b, const char *type, const uint8_t *d, size_t n)
{
    put32be(b, (uint32_t)n);
    size_t start = b->n;
    put(b, type, 4);
    if (n)
        put(b, d, n);
    put32be(b, crc32_of(b->p + start, n + 4, 0));
}

/* PNG of w x h with the given IHDR fields; raw holds the unfiltered
 * scanlines (without filter bytes), rowbytes each. */
static buf make_png(uint32_t w, uint32_t h, int depth, int ctype, const uint8_t *raw,
                    size_t rowbytes)
{
    buf b = {0}, ihdr = {0}, z = {0}, sl = {0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put(&b, sig, 8);
    put32be(&ihdr, w);
    put32be(&ihdr, h);
    put8(&ihdr, (unsigned)depth);
    put8(&ihdr, (unsigned)ctype);
    put8(&ihdr, 0);
    put8(&ihdr, 0);
    put8(&ihdr, 0);
    png_chunk(&b, "IHDR", ihdr.p, ihdr.n);
    for (uint32_t y = 0; raw && y < h; y++) {
        put8(&sl, 0);
        put(&sl, raw + y * rowbytes, rowbytes);
    }
    /* zlib stream of stored blocks (max 65535 bytes each) + Adler-32 */
    put8(&z, 0x78);
    put8(&z, 0x01);
    size_t off = 0;
    do {
        size_t k = sl.n - off > 65535 ? 65535 : sl.n - off;
        put8(&z, off + k == sl.n ? 1 : 0);
        put16le(&z, (unsigned)k);
        put16le(&z, (unsigned)(~k & 0xffff));
        if (k)
            put(&z, sl.p + off, k);
        off += k;
    } while (off < sl.n);
    uint32_t a = 1, s2 = 0;
    for (size_t i = 0; i < sl.n; i++) {
        a = (a + sl.p[i]) % 65521;
        s2 = (s2 + a) % 65521;
    }
    put32be(&z, (s2 << 16) | a);
    png_chunk(&b, "IDAT", z.p, z.n);
    png_chunk(&b, "IEND", NULL, 0);
    free(ihdr.p);
    free(z.p);
    free(sl.p);
    return b;
}

/* ---- minimal TIFF writer: one strip, little-endian --------------------------- */

static buf make_tiff(uint32_t w, uint32_t h, unsigned bps, unsigned spp, unsigned photo,
                     unsigned fmt, const void *data, size_t n)
{
    buf b = {0};
    const unsigned ntags = 10;
    uint32_t data_at = 8 + 2 + 12 * ntags + 4;
    put(&b, "II*\0", 4);
    put32le(&b, 8);
    put16le(&b, ntags);
#define TAG(t, typ, v)                                                                             \
    do {                                                                                           \
        put16le(&b, t);                                                                            \
        put16le(&b, typ);                                                                          \
        put32le(&b, 1);                                                                            \
        if ((typ) == 3) {                                                                          \
            put16le(&b, (unsigned)(v));                                                            \
            put16le(&b, 0);                                                                        \
        } else                                                                                     \
            put32le(&b, (uint32_t)(v));                                                            \
    } while (0)
    TAG(256, 4, w);
    TAG(257, 4, h);
    TAG(258, 3, bps); /* one value: fine for spp 1; spp 3 checks refusal paths */
    TAG(259, 3, 1);
    TAG(262, 3, photo);
    TAG(273, 4, data_at);
    TAG(277, 3, spp);
    TAG(278, 4, h);
    TAG(279, 4, n);
    TAG(339, 3, fmt);
#undef TAG
    put32le(&b, 0);
    put(&b, data, n);
    return b;
}

/* ---- tests --------------------------------------------------------------------- */

static const fx_decode_limits lim64 = {.max_megapixels = 64};

static void test_table_and_sniff(void)
{
    const fx_loader *const *t = fx_loaders();
    CHECK(t[0] == &fx_png_loader && t[1] == &fx_tiff_loader && t[2] == &fx_jpeg_loader &&
          t[3] == &fx_jp2_loader);
#ifndef FX_NO_DICOM
    CHECK(t[4] == &fx_dicom_loader && t[5] == NULL);
#else
    CHECK(t[4] == NULL);
#endif
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    CHECK(fx_loader_find(png_sig, 8) == &fx_png_loader);
    CHECK(fx_loader_find((const uint8_t *)"II*\0", 4) == &fx_tiff_loader);
    CHECK(fx_loader_find((const uint8_t *)"MM\0*", 4) == &fx_tiff_loader);
    CHECK(fx_loader_find((const uint8_t *)"II+\0", 4) == &fx_tiff_loader); /* BigTIFF */
    CHECK(fx_loader_find((const uint8_t *)"\xff\xd8\xff\xe0", 4) == &fx_jpeg_loader);
    CHECK(fx_loader_find((const uint8_t *)"\xff\x4f\xff\x51", 4) == &fx_jp2_loader);
    CHECK(fx_loader_find((const uint8_t *)"GIF89a", 6) == NULL);
    CHECK(fx_loader_find(png_sig, 2) == NULL);
    CHECK(fx_loader_find(NULL, 0) == NULL);
    CHECK(fx_loader_suffix_known("a/b/x.png"));
    CHECK(fx_loader_suffix_known("X.PNG"));
    CHECK(fx_loader_suffix_known("scan.Tif"));
    CHECK(fx_loader_suffix_known("scan.TIFF"));
    CHECK(fx_loader_suffix_known("scan.jpg"));
    CHECK(fx_loader_suffix_known("scan.JP2"));
    CHECK(!fx_loader_suffix_known("scan.gif"));
    CHECK(!fx_loader_suffix_known("png"));
    CHECK(!fx_loader_suffix_known(".png")); /* a bare suffix is a hidden file, not x.png */
    CHECK(!fx_loader_suffix_known(NULL));
}

static void test_png_gray8(void)
{
    uint8_t raw[5 * 3];
    for (int i = 0; i < 15; i++)
        raw[i] = (uint8_t)(i * 17);
    buf b = make_png(5, 3, 8, 0, raw, 5);
    fx_image img;
    fx_error err = {0};
    CHECK_MSG(fx_decode_memory(b.p, b.n, &lim64, &img, &err) == FX_OK, "%s", err.msg);
    CHECK(img.info.width == 5 && img.info.height == 3 && img.info.type == FX_PIX_U8);
    CHECK(img.info.bit_depth == 8 && img.info.channels == 1 && img.owned);
    CHECK(img.pixels && memcmp(img.pixels, raw, 15) == 0);
    fx_image_free(&img);
    free(b.p);
}

static void test_png_gray16_native(void)
{
    /* big-endian in the file, native uint16 in the output */
    uint8_t raw[4 * 2 * 2];
    uint16_t want[8];
    for (int i = 0; i < 8; i++) {
        want[i] = (uint16_t)(i * 8191 + 3);
        raw[2 * i] = (uint8_t)(want[i] >> 8);
        raw[2 * i + 1] = (uint8_t)want[i];
    }
    buf b = make_png(4, 2, 16, 0, raw, 8);
    fx_image img;
    fx_error err = {0};
    CHECK_MSG(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK, "%s", err.msg);
    CHECK(img.info.type == FX_PIX_U16 && img.info.bit_depth == 16);
    CHECK(img.pixels && memcmp(img.pixels, want, sizeof want) == 0);
    fx_image_free(&img);
    free(b.p);
}

static void test_png_gray2_scaled(void)
{
    /* 2-bit: 0,1,2,3 -> 0,85,170,255; 6 pixels packed MSB first in 2 bytes */
    uint8_t raw[2] = {0x1b, 0xe0}; /* 00 01 10 11 | 11 10 (pad) */
    buf b = make_png(6, 1, 2, 0, raw, 2);
    fx_image img;
    fx_error err = {0};
    CHECK_MSG(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK, "%s", err.msg);
    static const uint8_t want[6] = {0, 85, 170, 255, 255, 170};
    CHECK(img.info.bit_depth == 2 && img.info.type == FX_PIX_U8);
    CHECK(img.pixels && memcmp(img.pixels, want, 6) == 0);
    fx_image_free(&img);
    free(b.p);
}

static void test_png_rgb_luma(void)
{
    /* round(0.299 R + 0.587 G + 0.114 B) */
    uint8_t raw[3 * 3] = {255, 0, 0, 0, 255, 0, 10, 20, 30};
    buf b = make_png(3, 1, 8, 2, raw, 9);
    fx_image img;
    fx_error err = {0};
    CHECK_MSG(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK, "%s", err.msg);
    const uint8_t *p = img.pixels;
    CHECK(img.info.channels == 3);
    CHECK(p && p[0] == 76 && p[1] == 150 && p[2] == 18); /* 76.245, 149.685, 17.15 */
    fx_image_free(&img);
    free(b.p);
}

static void test_limit_before_allocation(void)
{
    /* A valid header claiming 100000 x 100000 (40 GB as RGBA16) with no data:
     * must be refused by the megapixel limit, before any pixel allocation. */
    buf b = make_png(100000, 100000, 16, 6, NULL, 0);
    fx_image_info info;
    fx_error err = {0};
    CHECK_MSG(fx_png_loader.header(b.p, b.n, &info, &err) == FX_OK, "%s", err.msg);
    CHECK(info.width == 100000 && info.height == 100000 && info.type == FX_PIX_U16);
    fx_image img;
    fx_decode_limits lim = {.max_megapixels = 100};
    CHECK(fx_decode_memory(b.p, b.n, &lim, &img, &err) == FX_ERR_LIMIT);
    CHECK(strstr(err.msg, "megapixels") != NULL);
    CHECK(img.pixels == NULL);
    free(b.p);

    uint8_t px[4] = {0};
    b = make_tiff(100000, 100000, 8, 1, 1, 1, px, 4);
    CHECK(fx_decode_memory(b.p, b.n, &lim, &img, &err) == FX_ERR_LIMIT);
    free(b.p);
    /* Beyond libpng's own dimension limit: a format error, not a crash. */
    b = make_png(0x7fffffff, 0x7fffffff, 8, 0, NULL, 0);
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) != FX_OK);
    free(b.p);
}

static void test_empty_and_truncated(void)
{
    fx_image img;
    fx_error err = {0};
    CHECK(fx_decode_memory(NULL, 0, NULL, &img, &err) == FX_ERR_FORMAT);
    CHECK(strcmp(err.msg, "empty file") == 0);
    uint8_t one = 0;
    CHECK(fx_decode_memory(&one, 0, NULL, &img, &err) == FX_ERR_FORMAT);
    CHECK(fx_decode_memory(&one, 1, NULL, &img, &err) == FX_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg,
                 "not a PNG, TIFF, JPEG, JPEG 2000 or DICOM file (starts with bytes 00)") != NULL);

    /* Every proper prefix of a valid PNG and TIFF must fail, never crash. */
    uint8_t raw[7 * 4];
    for (int i = 0; i < 28; i++)
        raw[i] = (uint8_t)(i * 9);
    buf b = make_png(7, 4, 8, 0, raw, 7);
    int bad = 0;
    for (size_t k = 0; k < b.n; k++) {
        fx_status st = fx_decode_memory(b.p, k, NULL, &img, &err);
        if (st == FX_OK) {
            bad++;
            fx_image_free(&img);
        }
    }
    CHECK_MSG(bad == 0, "%d PNG prefixes decoded", bad);
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK);
    fx_image_free(&img);
    free(b.p);

    b = make_tiff(7, 4, 8, 1, 1, 1, raw, 28);
    bad = 0;
    for (size_t k = 0; k < b.n; k++) {
        fx_status st = fx_decode_memory(b.p, k, NULL, &img, &err);
        if (st == FX_OK) {
            bad++;
            fx_image_free(&img);
        }
    }
    CHECK_MSG(bad == 0, "%d TIFF prefixes decoded", bad);
    CHECK_MSG(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK, "%s", err.msg);
    CHECK(img.pixels && memcmp(img.pixels, raw, 28) == 0);
    fx_image_free(&img);
    free(b.p);
}

static void test_png_damage(void)
{
    uint8_t raw[6 * 5];
    for (int i = 0; i < 30; i++)
        raw[i] = (uint8_t)(i * 5);
    buf b = make_png(6, 5, 8, 0, raw, 6);
    fx_image img;
    fx_error err = {0};
    /* Bad CRC on IDAT (its CRC sits just before the 12-byte IEND chunk). */
    b.p[b.n - 13] ^= 0x40;
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "CRC") != NULL, "%s", err.msg);
    b.p[b.n - 13] ^= 0x40;
    /* Every single-byte flip: decode or refuse, never crash (ASan checks). */
    for (size_t i = 0; i < b.n; i++) {
        b.p[i] ^= 0xA5;
        if (fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK)
            fx_image_free(&img);
        b.p[i] ^= 0xA5;
    }
    free(b.p);
    /* Zero width */
    b = make_png(0, 5, 8, 0, NULL, 0);
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "width is zero") != NULL, "%s", err.msg);
    free(b.p);
}

static void test_tiff_layouts(void)
{
    fx_image img;
    fx_error err = {0};
    /* 16-bit MinIsWhite: inverted, native order */
    uint16_t v[6] = {0, 1, 1000, 30000, 65534, 65535};
    buf b = make_tiff(3, 2, 16, 1, 0, 1, v, sizeof v);
    CHECK_MSG(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK, "%s", err.msg);
    CHECK(img.info.type == FX_PIX_U16 && img.info.bit_depth == 16);
    const uint16_t *p = img.pixels;
    for (int i = 0; p && i < 6; i++)
        CHECK(p[i] == 65535 - v[i]);
    fx_image_free(&img);
    free(b.p);
    /* float32 as stored */
    float f[4] = {-1.5f, 0.0f, 3.25f, 1e6f};
    b = make_tiff(2, 2, 32, 1, 1, 3, f, sizeof f);
    CHECK_MSG(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_OK, "%s", err.msg);
    CHECK(img.info.type == FX_PIX_F32 && img.pixels && memcmp(img.pixels, f, sizeof f) == 0);
    fx_image_free(&img);
    free(b.p);
    /* Unsupported: signed 16-bit, 12-bit, palette */
    b = make_tiff(3, 2, 16, 1, 1, 2, v, sizeof v);
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "signed") != NULL, "%s", err.msg);
    free(b.p);
    b = make_tiff(4, 2, 12, 1, 1, 1, v, 12);
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "12-bit") != NULL, "%s", err.msg);
    free(b.p);
    /* CMYK (separated) photometric */
    b = make_tiff(3, 2, 8, 1, 5, 1, v, 6);
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "CMYK") != NULL, "%s", err.msg);
    free(b.p);
    /* Strip shorter than the image: format error */
    b = make_tiff(8, 8, 8, 1, 1, 1, v, 12);
    CHECK(fx_decode_memory(b.p, b.n, NULL, &img, &err) == FX_ERR_FORMAT);
    free(b.p);
}

static void test_forced_loader(void)
{
    uint8_t raw[4] = {1, 2, 3, 4};
    buf b = make_png(2, 2, 8, 0, raw, 2);
    fx_image img;
    fx_error err = {0};
    CHECK(fx_decode_memory_as(&fx_tiff_loader, b.p, b.n, NULL, &img, &err) == FX_ERR_FORMAT);
    CHECK(fx_decode_memory_as(&fx_png_loader, b.p, b.n, NULL, &img, &err) == FX_OK);
    fx_image_free(&img);
    free(b.p);
}

static void test_files(void)
{
    char dir[] = "/tmp/fx_test_io_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512];
    fx_image img;
    fx_error err = {0};

    /* A directory, even one named like an image */
    snprintf(path, sizeof path, "%s/x.png", dir);
    CHECK(mkdir(path, 0700) == 0);
    CHECK(fx_decode_file(path, NULL, &img, &err) == FX_ERR_IO);
    CHECK_MSG(strstr(err.msg, "is a directory") && strstr(err.msg, path) == err.msg, "%s", err.msg);
    rmdir(path);

    /* Missing file: errno text and the path */
    snprintf(path, sizeof path, "%s/missing.png", dir);
    CHECK(fx_decode_file(path, NULL, &img, &err) == FX_ERR_IO);
    CHECK_MSG(strstr(err.msg, "No such file") != NULL, "%s", err.msg);

    /* Non-regular file */
    CHECK(fx_decode_file("/dev/null", NULL, &img, &err) == FX_ERR_IO);
    CHECK_MSG(strstr(err.msg, "not a regular file") != NULL, "%s", err.msg);

    /* Zero-byte file */
    snprintf(path, sizeof path, "%s/empty.tif", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    CHECK(fx_decode_file(path, NULL, &img, &err) == FX_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "empty file") != NULL, "%s", err.msg);

    /* A valid file, then the size limit of fx_read_file, then no permission */
    uint8_t raw[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
    buf b = make_png(3, 3, 8, 0, raw, 3);
    f = fopen(path, "wb"); /* .tif name, PNG bytes: sniffed by magic */
    CHECK(f && fwrite(b.p, 1, b.n, f) == b.n);
    if (f)
        fclose(f);
    CHECK_MSG(fx_decode_file(path, &lim64, &img, &err) == FX_OK, "%s", err.msg);
    CHECK(img.pixels && memcmp(img.pixels, raw, 9) == 0);
    fx_image_free(&img);
    uint8_t *bytes = NULL;
    size_t n = 0;
    CHECK(fx_read_file(path, 10, &bytes, &n, &err) == FX_ERR_LIMIT && bytes == NULL);
    CHECK(fx_read_file(path, 0, &bytes, &n, &err) == FX_OK && n == b.n);
    free(bytes);
    if (geteuid() != 0) { /* root reads anything */
        chmod(path, 0);
        CHECK(fx_decode_file(path, NULL, &img, &err) == FX_ERR_IO);
        CHECK_MSG(strstr(err.msg, "Permission denied") != NULL, "%s", err.msg);
    }
    unlink(path);
    rmdir(dir);
    free(b.p);
}

/* Every file in the crashers directory must be refused (and not crash). */
static void test_crashers(void)
{
    const char *d = getenv("FX_CRASHERS");
    if (!d || !*d)
        d = "tests/crashers";
    DIR *dir = opendir(d);
    CHECK_MSG(dir != NULL, "cannot open %s: %s (run from the repo root)", d, strerror(errno));
    if (!dir)
        return;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".py") || strstr(e->d_name, ".md"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", d, e->d_name);
        fx_image img;
        fx_error err = {0};
        fx_status st = fx_decode_file(path, &lim64, &img, &err);
        CHECK_MSG(st != FX_OK, "%s decoded", path);
        CHECK_MSG(st == FX_OK || err.msg[0] != '\0', "%s: empty message", path);
        if (st == FX_OK)
            fx_image_free(&img);
        count++;
    }
    closedir(dir);
    CHECK_MSG(count >= 5, "only %d crashers in %s", count, d);
}

/* Loaders keep no shared state: decode good and bad inputs concurrently and
 * check that each call sees only its own result and message. */
struct thr_arg {
    const buf *good, *bad;
    int failures;
};

static void *thr_main(void *p)
{
    struct thr_arg *a = p;
    for (int i = 0; i < 200; i++) {
        fx_image img;
        fx_error err = {0};
        if (fx_decode_memory(a->good->p, a->good->n, NULL, &img, &err) != FX_OK || err.msg[0])
            a->failures++;
        fx_image_free(&img);
        if (fx_decode_memory(a->bad->p, a->bad->n, NULL, &img, &err) != FX_ERR_FORMAT ||
            !strstr(err.msg, "CRC"))
            a->failures++;
    }
    return NULL;
}

static void test_threads(void)
{
    uint8_t raw[16 * 16];
    for (int i = 0; i < 256; i++)
        raw[i] = (uint8_t)i;
    buf good = make_png(16, 16, 8, 0, raw, 16);
    buf bad = make_png(16, 16, 8, 0, raw, 16);
    bad.p[bad.n - 13] ^= 1; /* IDAT CRC */
    pthread_t t[4];
    struct thr_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thr_arg){&good, &bad, 0};
        CHECK(pthread_create(&t[i], NULL, thr_main, &a[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(a[i].failures == 0);
    }
    free(good.p);
    free(bad.p);
}

int main(void)
{
    RUN(test_table_and_sniff);
    RUN(test_png_gray8);
    RUN(test_png_gray16_native);
    RUN(test_png_gray2_scaled);
    RUN(test_png_rgb_luma);
    RUN(test_limit_before_allocation);
    RUN(test_empty_and_truncated);
    RUN(test_png_damage);
    RUN(test_tiff_layouts);
    RUN(test_forced_loader);
    RUN(test_files);
    RUN(test_crashers);
    RUN(test_threads);
    return check_summary();
}
