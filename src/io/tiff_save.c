/* fx_tiff_save: grey U8/U16/F32 TIFF writer on libtiff.
 *
 * Strips of about 64 KB; horizontal differencing predictor for LZW/Deflate on
 * integer samples (better ratio on smooth radiographs).  No DateTime or
 * Software tag, so the same pixels always give the same bytes on one host
 * (byte order is the host's, as libtiff writes by default).  Errors and
 * warnings go to per-file handlers (TIFFOpenExt), never libtiff's global ones. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#include "fxscreen/loader.h"

typedef struct tiff_save_ctx {
    char msg[256];
} tiff_save_ctx;

static int tiff_save_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    tiff_save_ctx *ctx = (tiff_save_ctx *)user;
    if (ctx && !ctx->msg[0]) { /* keep the first, most specific message */
        char detail[200];
        vsnprintf(detail, sizeof detail, fmt, ap);
        snprintf(ctx->msg, sizeof ctx->msg, "%s: %s", module ? module : "libtiff", detail);
    }
    return 1; /* handled: do not call the global handler */
}

static int tiff_save_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

fx_status fx_tiff_save(const char *path, const fx_image *img, fx_tiff_compression comp,
                       fx_error *err)
{
    if (!path || !img || !img->pixels || img->info.width <= 0 || img->info.height <= 0)
        return fx_error_set(err, FX_ERR_USAGE, "tiff save: no image or path");
    uint16_t bits, fmt;
    switch (img->info.type) {
    case FX_PIX_U8: bits = 8, fmt = SAMPLEFORMAT_UINT; break;
    case FX_PIX_U16: bits = 16, fmt = SAMPLEFORMAT_UINT; break;
    case FX_PIX_F32: bits = 32, fmt = SAMPLEFORMAT_IEEEFP; break;
    default: return fx_error_set(err, FX_ERR_UNSUPPORTED, "%s: TIFF writer: bad pixel type", path);
    }
    uint16_t tcomp;
    switch (comp) {
    case FX_TIFF_NONE: tcomp = COMPRESSION_NONE; break;
    case FX_TIFF_LZW: tcomp = COMPRESSION_LZW; break;
    case FX_TIFF_DEFLATE: tcomp = COMPRESSION_ADOBE_DEFLATE; break;
    case FX_TIFF_PACKBITS: tcomp = COMPRESSION_PACKBITS; break;
    default: return fx_error_set(err, FX_ERR_USAGE, "%s: TIFF writer: bad compression", path);
    }
    const uint32_t w = (uint32_t)img->info.width, h = (uint32_t)img->info.height;
    const size_t stride = (size_t)w * (bits / 8);
    if (stride > SIZE_MAX / h || stride * h > ((size_t)1 << 32) - 4096)
        return fx_error_set(err, FX_ERR_LIMIT, "%s: image too large for classic TIFF", path);
    uint32_t rps = (uint32_t)(65536 / stride);
    if (rps < 1)
        rps = 1;
    if (rps > h)
        rps = h;

    tiff_save_ctx ctx = {{0}};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: cannot allocate libtiff options", path);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_save_error, &ctx);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_save_warning, &ctx);
    TIFF *tif = TIFFOpenExt(path, "w", opts);
    TIFFOpenOptionsFree(opts);
    if (!tif)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot create: %s", path,
                            ctx.msg[0] ? ctx.msg : strerror(errno));

    fx_status st = FX_OK;
    /* libtiff applies the predictor in place, so each strip goes through a
     * scratch copy and the caller's pixels stay untouched. */
    uint8_t *scratch = malloc(stride * rps);
    if (!scratch) {
        st = fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w) &&
             TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bits) &&
             TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)1) &&
             TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, fmt) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (uint16_t)PHOTOMETRIC_MINISBLACK) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (uint16_t)PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, tcomp) &&
             TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps);
    if (ok && (tcomp == COMPRESSION_LZW || tcomp == COMPRESSION_ADOBE_DEFLATE) &&
        fmt == SAMPLEFORMAT_UINT)
        ok = TIFFSetField(tif, TIFFTAG_PREDICTOR, (uint16_t)PREDICTOR_HORIZONTAL);
    if (!ok) {
        st =
            fx_error_set(err, FX_ERR_IO, "%s: libtiff: %s", path, ctx.msg[0] ? ctx.msg : "bad tag");
        goto done;
    }
    const uint8_t *base = (const uint8_t *)img->pixels;
    for (uint32_t y = 0, s = 0; y < h; y += rps, s++) {
        uint32_t rows = h - y < rps ? h - y : rps;
        size_t nbytes = stride * rows;
        memcpy(scratch, base + (size_t)y * stride, nbytes);
        if (TIFFWriteEncodedStrip(tif, s, scratch, (tmsize_t)nbytes) < 0) {
            st = fx_error_set(err, FX_ERR_IO, "%s: libtiff: %s", path,
                              ctx.msg[0] ? ctx.msg : "strip write failed");
            goto done;
        }
    }
    if (!TIFFWriteDirectory(tif))
        st = fx_error_set(err, FX_ERR_IO, "%s: libtiff: %s", path,
                          ctx.msg[0] ? ctx.msg : "directory write failed");
done:
    free(scratch);
    TIFFClose(tif); /* flushes; a failure here shows up as a short file */
    if (st == FX_OK && ctx.msg[0])
        st = fx_error_set(err, FX_ERR_IO, "%s: libtiff: %s", path, ctx.msg);
    if (st != FX_OK)
        remove(path);
    return st;
}
