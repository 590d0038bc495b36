/* fxscreen: PNG loader on libpng, decoding from memory.
 *
 * Thread safety: libpng keeps all state in the png_struct; errors and
 * warnings are routed through png_set_error_fn into a per-call context
 * (struct png_ctx), so there is no global handler and no shared buffer.
 *
 * Output: one grey plane.  1/2/4-bit grey is scaled to 0..255, 16-bit is kept
 * (native byte order), alpha and tRNS are ignored, palette is expanded to RGB
 * and RGB is reduced to BT.601 luma (loader.h).  Rows are decoded one at a
 * time straight into the caller's buffer; RGB goes through a one-row scratch,
 * so the full RGB image is never allocated. */
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/loader.h"
#include "io/luma.h"
#include "io/png_internal.h"

/* Bounds handed to libpng: dimensions (the megapixel limit is the caller's,
 * checked after header()) and the largest ancillary chunk we buffer. */
#define FX_PNG_MAX_DIM          1000000u
#define FX_PNG_CHUNK_MALLOC_MAX (8u << 20)

/* Per-call decoder context: the input cursor, the first error message and
 * the scratch row (kept here rather than in a local so that it survives the
 * longjmp without needing `volatile`). */
struct png_ctx {
    const uint8_t *buf;
    size_t n, pos;
    char msg[256];
    int have_msg;
    char warn[160]; /* last warning: libpng often explains an error there */
    uint8_t *scratch;
};

/* libpng error callback: keep the first message, then unwind to setjmp. */
static void png_ctx_error(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = (struct png_ctx *)png_get_error_ptr(png);
    if (c && !c->have_msg) {
        snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown libpng error");
        c->have_msg = 1;
    }
    png_longjmp(png, 1);
}

/* libpng warning callback: warnings (bad ancillary chunks, extra zlib data)
 * do not stop decoding.  The last one is kept because libpng states the
 * detail of some errors as a warning first ("Image width is zero in IHDR"
 * followed by the error "Invalid IHDR data"). */
static void png_ctx_warning(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = (struct png_ctx *)png_get_error_ptr(png);
    if (c)
        snprintf(c->warn, sizeof c->warn, "%s", msg ? msg : "");
}

/* Read callback over the in-memory cursor; running off the end is the
 * "truncated" error (libpng never asks for bytes past a complete file). */
static void png_ctx_read(png_structp png, png_bytep out, size_t len)
{
    struct png_ctx *c = (struct png_ctx *)png_get_io_ptr(png);
    if (len > c->n - c->pos)
        png_error(png, "file is truncated (unexpected end of data)");
    memcpy(out, c->buf + c->pos, len);
    c->pos += len;
}

/* PNG signature: the 8 fixed bytes (a shorter prefix must match too). */
static int png_sniff(const uint8_t *b, size_t n)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 4)
        return 0;
    return memcmp(b, sig, n < 8 ? n : 8) == 0;
}

/* Create the read struct wired to ctx.  Returns NULL on allocation failure. */
static png_structp png_ctx_create(struct png_ctx *c, const uint8_t *b, size_t n, png_infop *info)
{
    memset(c, 0, sizeof *c);
    c->buf = b;
    c->n = n;
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_ctx_error, png_ctx_warning);
    if (!png)
        return NULL;
    *info = png_create_info_struct(png);
    if (!*info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return NULL;
    }
    png_set_read_fn(png, c, png_ctx_read);
    png_set_user_limits(png, FX_PNG_MAX_DIM, FX_PNG_MAX_DIM);
    png_set_chunk_malloc_max(png, FX_PNG_CHUNK_MALLOC_MAX);
    png_set_chunk_cache_max(png, 1000); /* bounds memory for floods of sPLT/tEXt */
    /* Unknown chunks are skipped rather than buffered. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    return png;
}

/* Fill an fx_image_info from the IHDR libpng has read. */
static void png_fill_info(png_structp png, png_infop pi, fx_image_info *info)
{
    int depth = png_get_bit_depth(png, pi);
    info->width = (int)png_get_image_width(png, pi);
    info->height = (int)png_get_image_height(png, pi);
    info->bit_depth = depth;
    info->channels = png_get_channels(png, pi); /* palette counts as 1 (an index) */
    info->type = depth == 16 ? FX_PIX_U16 : FX_PIX_U8;
}

/* Translate a failed libpng call into our status. */
static fx_status png_fail(const struct png_ctx *c, fx_error *err)
{
    const char *m = c->have_msg ? c->msg : "decoding failed";
    if (c->warn[0])
        return fx_error_set(err, FX_ERR_FORMAT, "png: %s (after warning: %s)", m, c->warn);
    return fx_error_set(err, FX_ERR_FORMAT, "png: %s", m);
}

/* loader.h header(): IHDR only; no pixel buffer is allocated. */
static fx_status png_header(const uint8_t *b, size_t n, fx_image_info *info, fx_error *err)
{
    struct png_ctx c;
    png_infop pi = NULL;
    png_structp png = png_ctx_create(&c, b, n, &pi);
    if (!png)
        return fx_error_set(err, FX_ERR_NOMEM, "png: cannot create decoder");
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pi, NULL);
        return png_fail(&c, err);
    }
    png_read_info(png, pi);
    png_fill_info(png, pi, info);
    png_destroy_read_struct(&png, &pi, NULL);
    return FX_OK;
}

/* BT.601 luma of one pixel, rounded half away from zero (loader.h). */
static inline double png_luma(double r, double g, double b)
{
    return round(fx_luma601(r, g, b));
}

/* Adam7 pass geometry: first row/column and steps (rows and columns of the
 * full image that a pass delivers). */
static const int adam7_y0[7] = {0, 0, 4, 0, 2, 0, 1}, adam7_dy[7] = {8, 8, 8, 4, 4, 2, 2};
static const int adam7_x0[7] = {0, 4, 0, 2, 0, 1, 0}, adam7_dx[7] = {8, 8, 4, 4, 2, 2, 1};

/* The part of load() that runs under setjmp.  Only ctx (memory behind a
 * pointer) and parameters are used after a longjmp, so nothing needs to be
 * volatile.  Returns 0 on success, 1 on layout mismatch. */
static int png_decode_rows(png_structp png, png_infop pi, struct png_ctx *c,
                           const fx_image_info *want, void *pixels)
{
    png_read_info(png, pi);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, pi, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    fx_image_info got;
    png_fill_info(png, pi, &got);
    if (got.width != want->width || got.height != want->height || got.type != want->type)
        return 1;

    /* Transformations: everything ends as 1 (grey) or 3 (RGB) samples of 8
     * or 16 bits; no gamma, no sBIT shift, alpha and tRNS dropped. */
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    /* png_set_palette_to_rgb also turns tRNS into alpha; strip it again. */
    if ((ctype & PNG_COLOR_MASK_ALPHA) ||
        (ctype == PNG_COLOR_TYPE_PALETTE && png_get_valid(png, pi, PNG_INFO_tRNS)))
        png_set_strip_alpha(png);
    if (depth == 16) {
        const uint16_t one = 1;
        if (*(const uint8_t *)&one == 1) /* little-endian host: PNG is big-endian */
            png_set_swap(png);
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, pi);

    int outch = png_get_channels(png, pi);
    int outdepth = png_get_bit_depth(png, pi);
    size_t es = depth == 16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(png, pi);
    /* Guard the buffer arithmetic: what libpng will write must be exactly one
     * row of grey or RGB at the element size we allocated for. */
    if ((outch != 1 && outch != 3) || (size_t)outdepth != 8 * es ||
        rowbytes != (size_t)w * (size_t)outch * es)
        return 1;

    if (outch == 1) {
        /* Grey: libpng writes straight into the output rows; with Adam7 it
         * fills each row's pass pixels in place across the passes. */
        uint8_t *out = pixels;
        for (int p = 0; p < passes; p++)
            for (png_uint_32 y = 0; y < h; y++)
                png_read_row(png, out + (size_t)y * rowbytes, NULL);
    } else {
        c->scratch = malloc(rowbytes);
        if (!c->scratch)
            png_error(png, "out of memory for one row");
        for (int p = 0; p < passes; p++) {
            /* Which columns of a row this pass writes (all when not interlaced). */
            int x0 = passes > 1 ? adam7_x0[p] : 0, dx = passes > 1 ? adam7_dx[p] : 1;
            int y0 = passes > 1 ? adam7_y0[p] : 0, dy = passes > 1 ? adam7_dy[p] : 1;
            for (png_uint_32 y = 0; y < h; y++) {
                png_read_row(png, c->scratch, NULL);
                if ((int)(y % (png_uint_32)dy) != y0 % dy || y < (png_uint_32)y0)
                    continue;
                if (es == 1) {
                    uint8_t *o = (uint8_t *)pixels + (size_t)y * w;
                    const uint8_t *s = c->scratch;
                    for (png_uint_32 x = (png_uint_32)x0; x < w; x += (png_uint_32)dx)
                        o[x] = (uint8_t)png_luma(s[3 * x], s[3 * x + 1], s[3 * x + 2]);
                } else {
                    uint16_t *o = (uint16_t *)pixels + (size_t)y * w;
                    const uint16_t *s = (const uint16_t *)(void *)c->scratch;
                    for (png_uint_32 x = (png_uint_32)x0; x < w; x += (png_uint_32)dx) {
                        double v = png_luma(s[3 * x], s[3 * x + 1], s[3 * x + 2]);
                        o[x] = (uint16_t)(v > 65535.0 ? 65535.0 : v);
                    }
                }
            }
        }
    }
    /* Read to IEND so that damage after the last row (bad CRC on the final
     * IDAT, a truncated tail) is reported rather than silently accepted. */
    png_read_end(png, NULL);
    return 0;
}

fx_status fx_png_load_libpng(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels,
                             fx_error *err)
{
    if (!info || !pixels)
        return fx_error_set(err, FX_ERR_USAGE, "png: NULL info or pixels");
    struct png_ctx c;
    png_infop pi = NULL;
    png_structp png = png_ctx_create(&c, b, n, &pi);
    if (!png)
        return fx_error_set(err, FX_ERR_NOMEM, "png: cannot create decoder");
    if (setjmp(png_jmpbuf(png))) {
        free(c.scratch);
        png_destroy_read_struct(&png, &pi, NULL);
        return png_fail(&c, err);
    }
    int bad = png_decode_rows(png, pi, &c, info, pixels);
    free(c.scratch);
    png_destroy_read_struct(&png, &pi, NULL);
    if (bad)
        return fx_error_set(err, FX_ERR_INTERNAL,
                            "png: image layout differs from the header given to load()");
    return FX_OK;
}

/* loader.h load(): decode into the caller's (height, width) plane; plain
 * grey files through the fast path (png_fast.c), the rest, and any file
 * it declines, through libpng. */
static fx_status png_load(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels,
                          fx_error *err)
{
    if (info && pixels && fx_png_load_fast(b, n, info, pixels) == FX_OK)
        return FX_OK;
    return fx_png_load_libpng(b, n, info, pixels, err);
}

static const char *const png_suffixes[] = {".png", NULL};

const fx_loader fx_png_loader = {
    .name = "png",
    .suffixes = png_suffixes,
    .sniff = png_sniff,
    .header = png_header,
    .load = png_load,
};
