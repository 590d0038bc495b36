/* fx_png_save: grey 8/16-bit PNG writer on libpng.
 *
 * Output is deterministic: no tIME (or any text) chunk, fixed zlib level 6
 * and libpng's default filter heuristics, so the same pixels always give the
 * same bytes.  libpng reports errors by longjmp; the handler copies the
 * message into a per-call context (no global state). */
#include <errno.h>
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
    png_spec sp = {width,      height,        8, PNG_COLOR_TYPE_RGB, rgb, (size_t)width * 3,
                   zlib_level, PNG_FILTER_SUB};
    return png_write(path, &sp, err);
}

/* The same encoders into memory (open_memstream: the stream grows as libpng
 * writes; nothing touches the disk). */
static fx_status png_to_memory(const png_spec *sp, uint8_t **out, size_t *n, fx_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL, *n = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return fx_error_set(err, FX_ERR_NOMEM, "png encode: out of memory");
    png_save_ctx ctx = {{0}};
    int nomem = 0, bad = png_encode(f, sp, &ctx, &nomem);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return fx_error_set(err, FX_ERR_NOMEM, "png encode: %s", nomem ? "out of memory" : ctx.msg);
    }
    *out = (uint8_t *)buf, *n = len;
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
    png_spec sp = {width,      height,
                   8,          channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                   px,         (size_t)width * (size_t)channels,
                   zlib_level, PNG_FILTER_SUB};
    return png_to_memory(&sp, out, n, err);
}
