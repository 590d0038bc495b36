/* fx_png_save: grey 8/16-bit PNG writer on libpng; fx_png_save_rgb8 and
 * fx_png_encode: 8-bit grey/RGB through libdeflate (below).
 *
 * Output is deterministic: no tIME (or any text) chunk, fixed zlib level 6
 * and libpng's default filter heuristics, so the same pixels always give the
 * same bytes.  libpng reports errors by longjmp; the handler copies the
 * message into a per-call context (no global state). */
#include <errno.h>
#include <libdeflate.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/loader.h"

typedef struct png_save_ctx {
    char msg[256];
} png_save_ctx;

static void png_save_error(png_structp png, png_const_charp msg)
{
    png_save_ctx *ctx = (png_save_ctx *)png_get_error_ptr(png);
    if (ctx)
        snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_save_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* warnings (e.g. about chunks) do not change the output */
    (void)msg;
}

static int host_is_little_endian(void)
{
    const uint16_t probe = 1;
    uint8_t b;
    memcpy(&b, &probe, 1);
    return b == 1;
}

/* How one PNG is written: the layout and the encoder's settings. */
typedef struct png_spec {
    int width, height, bits, color_type;
    const uint8_t *rows; /* height rows of stride bytes, host byte order */
    size_t stride;
    int zlib_level;
    int filters; /* PNG_ALL_FILTERS (libpng's adaptive choice) or one filter */
} png_spec;

/* Encodes spec through libpng into f (a file, or a memory stream); 0 on
 * success, else ctx.msg says why.  The caller closes f. */
static int png_encode(FILE *f, const png_spec *sp, png_save_ctx *ctx_out, int *nomem)
{
    png_save_ctx ctx = {{0}};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_save_error, png_save_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        *nomem = 1;
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        snprintf(ctx_out->msg, sizeof ctx_out->msg, "%s", ctx.msg[0] ? ctx.msg : "error");
        return -1;
    }
    png_init_io(png, f);
    png_set_compression_level(png, sp->zlib_level);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, sp->filters);
    png_set_IHDR(png, info, (png_uint_32)sp->width, (png_uint_32)sp->height, sp->bits,
                 sp->color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    /* PNG stores 16-bit samples big-endian; libpng swaps from host order on a
     * copy of each row, so the caller's pixels stay untouched. */
    if (sp->bits == 16 && host_is_little_endian())
        png_set_swap(png);
    for (int y = 0; y < sp->height; y++)
        png_write_row(png, sp->rows + (size_t)y * sp->stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* Writes spec to path; any failure removes the file, so a truncated PNG
 * never stays behind. */
static fx_status png_write(const char *path, const png_spec *sp, fx_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    png_save_ctx ctx = {{0}};
    int nomem = 0;
    if (png_encode(f, sp, &ctx, &nomem)) {
        fclose(f);
        remove(path);
        if (nomem)
            return fx_error_set(err, FX_ERR_NOMEM, "%s: cannot allocate libpng state", path);
        return fx_error_set(err, FX_ERR_IO, "%s: libpng: %s", path, ctx.msg);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(path);
        return fx_error_set(err, FX_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return FX_OK;
}

fx_status fx_png_save(const char *path, const fx_image *img, fx_error *err)
{
    if (!path || !img || !img->pixels || img->info.width <= 0 || img->info.height <= 0)
        return fx_error_set(err, FX_ERR_USAGE, "png save: no image or path");
    if (img->info.type != FX_PIX_U8 && img->info.type != FX_PIX_U16)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "%s: PNG writer takes U8 or U16 grey", path);
    if (img->info.width > 0x7fffffff / 2 ||
        (uint64_t)img->info.width * img->info.height > (1u << 30))
        return fx_error_set(err, FX_ERR_LIMIT, "%s: image too large for the PNG writer", path);
    const int bits = img->info.type == FX_PIX_U16 ? 16 : 8;
    png_spec sp = {img->info.width,
                   img->info.height,
                   bits,
                   PNG_COLOR_TYPE_GRAY,
                   (const uint8_t *)img->pixels,
                   (size_t)img->info.width * (size_t)(bits / 8),
                   6,
                   PNG_ALL_FILTERS};
    return png_write(path, &sp, err);
}

/* 8-bit grey or RGB PNG (overlays, serve's overlays) without libpng: each
 * row SUB-filtered, the whole image compressed in one libdeflate call, the
 * chunks written around it.  Measured on a 2048 x 2048 overlay, one thread:
 * 101 ms and 5.3 MB against libpng + zlib level 1's 158 ms and 5.5 MB. */
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* A chunk of `len` data bytes already at p + 8: length, type, CRC added. */
static size_t chunk(uint8_t *p, const char *type, size_t len)
{
    put32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    put32(p + 8 + len, (uint32_t)libdeflate_crc32(0, p + 4, len + 4));
    return len + 12;
}

static fx_status png_deflate(int width, int height, int channels, const uint8_t *px, int level,
                             uint8_t **out, size_t *n)
{
    size_t row = (size_t)width * (size_t)channels, raw_n = (row + 1) * (size_t)height;
    uint8_t *raw = malloc(raw_n);
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    size_t bound = c ? libdeflate_zlib_compress_bound(c, raw_n) : 0;
    uint8_t *buf = c ? malloc(bound + 8 + 25 + 12 + 12) : NULL;
    if (!raw || !c || !buf) {
        free(raw), free(buf);
        if (c)
            libdeflate_free_compressor(c);
        return FX_ERR_NOMEM;
    }
    for (int y = 0; y < height; y++) {
        uint8_t *d = raw + (size_t)y * (row + 1);
        const uint8_t *s = px + (size_t)y * row;
        d[0] = 1; /* SUB: each byte minus the same channel one pixel left */
        memcpy(d + 1, s, (size_t)channels);
        for (size_t x = (size_t)channels; x < row; x++)
            d[1 + x] = (uint8_t)(s[x] - s[x - (size_t)channels]);
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t k = 0;
    memcpy(buf, sig, 8), k = 8;
    uint8_t *ih = buf + k + 8;
    put32(ih, (uint32_t)width), put32(ih + 4, (uint32_t)height);
    ih[8] = 8, ih[9] = channels == 3 ? 2 : 0, ih[10] = ih[11] = ih[12] = 0;
    k += chunk(buf + k, "IHDR", 13);
    size_t z = libdeflate_zlib_compress(c, raw, raw_n, buf + k + 8, bound);
    libdeflate_free_compressor(c);
    free(raw);
    if (!z) {
        free(buf);
        return FX_ERR_NOMEM;
    }
    k += chunk(buf + k, "IDAT", z);
    k += chunk(buf + k, "IEND", 0);
    *out = buf, *n = k;
    return FX_OK;
}

/* fx_png_save_rgb8: 8-bit RGB (overlays).  Deterministic like fx_png_save
 * (no text or time chunks) with the zlib level given by the caller and one
 * fixed filter (SUB): overlays of 2-4k px originals are written per image,
 * and libpng's adaptive filter choice (all five tried per row) was 40% of
 * an overlay's time for 2% smaller files. */
fx_status fx_png_save_rgb8(const char *path, int width, int height, const uint8_t *rgb,
                           int zlib_level, fx_error *err)
{
    if (!path || !rgb || width <= 0 || height <= 0)
        return fx_error_set(err, FX_ERR_USAGE, "png save: no image or path");
    if (zlib_level < 0 || zlib_level > 9)
        return fx_error_set(err, FX_ERR_USAGE, "%s: zlib level %d is not in 0..9", path,
                            zlib_level);
    if (width > 0x7fffffff / 3 || (uint64_t)width * (uint64_t)height > (1u << 30))
        return fx_error_set(err, FX_ERR_LIMIT, "%s: image too large for the PNG writer", path);
    uint8_t *buf = NULL;
    size_t n = 0;
    if (png_deflate(width, height, 3, rgb, zlib_level, &buf, &n) != FX_OK)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory encoding the PNG", path);
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(buf, 1, n, f) != n;
    if (f)
        bad |= fclose(f) != 0;
    free(buf);
    if (bad) {
        int e = errno;
        remove(path);
        return fx_error_set(err, FX_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return FX_OK;
}

fx_status fx_png_encode(int width, int height, int channels, const uint8_t *px, int zlib_level,
                        uint8_t **out, size_t *n, fx_error *err)
{
    if (!px || !out || !n || width <= 0 || height <= 0 || (channels != 1 && channels != 3))
        return fx_error_set(err, FX_ERR_USAGE, "png encode: no image, or not grey/RGB");
    if (zlib_level < 0 || zlib_level > 9)
        return fx_error_set(err, FX_ERR_USAGE, "png encode: zlib level %d is not in 0..9",
                            zlib_level);
    if (width > 0x7fffffff / 3 || (uint64_t)width * (uint64_t)height > (1u << 30))
        return fx_error_set(err, FX_ERR_LIMIT, "png encode: image too large");
    if (png_deflate(width, height, channels, px, zlib_level, out, n) != FX_OK)
        return fx_error_set(err, FX_ERR_NOMEM, "png encode: out of memory");
    return FX_OK;
}
