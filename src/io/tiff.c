/* fxscreen: TIFF loader on libtiff, decoding from memory.
 *
 * Thread safety: the file is opened with TIFFClientOpenExt and TIFFOpenOptions
 * whose error/warning handlers (the ...ExtR kind) write into a per-call
 * context, so no global libtiff handler is installed or used.
 *
 * Supported (first page only): 8/16-bit unsigned and 32-bit float samples;
 * grey (MinIsBlack, MinIsWhite), RGB, optionally with one extra (alpha)
 * sample which is dropped; strips or tiles; planar contig or separate; any
 * compression libtiff was built with (none, LZW, Deflate, PackBits, JPEG...).
 * JPEG YCbCr is converted to RGB by libjpeg (TIFFTAG_JPEGCOLORMODE).
 * Output follows image.h: one plane, RGB reduced to BT.601 luma (loader.h),
 * 16-bit native byte order (libtiff swaps), floats as stored.
 * MinIsWhite integers are inverted (max - v) so that larger is brighter, as
 * for every other input; MinIsWhite floats have no defined maximum and are
 * left as stored. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#include "fxscreen/loader.h"
#include "io/luma.h"

/* Largest single allocation libtiff may make for us, and the largest strip
 * or tile scratch we allocate (a hostile tile size must not reserve GBs). */
#define FX_TIFF_MAX_ALLOC ((tmsize_t)512 << 20)
#define FX_TIFF_MAX_BLOCK ((uint64_t)256 << 20)
/* Contiguous colour strips larger than this are read scanline by scanline. */
#define FX_TIFF_SCANLINE_ABOVE ((size_t)1 << 20)

/* Per-call context: the input cursor and the first error message. */
struct tiff_ctx {
    const uint8_t *buf;
    uint64_t n, pos;
    char msg[256];
    int have_msg;
};

/* ---- client I/O over memory ---------------------------------------------- */

/* Read up to size bytes at the cursor; short at the end of the buffer. */
static tmsize_t tiff_read(thandle_t h, void *out, tmsize_t size)
{
    struct tiff_ctx *c = (struct tiff_ctx *)h;
    if (size <= 0 || c->pos >= c->n)
        return 0;
    uint64_t k = c->n - c->pos;
    if ((uint64_t)size < k)
        k = (uint64_t)size;
    memcpy(out, c->buf + c->pos, (size_t)k);
    c->pos += k;
    return (tmsize_t)k;
}

/* Writing is never wanted: the file is opened read-only. */
static tmsize_t tiff_write(thandle_t h, void *in, tmsize_t size)
{
    (void)h;
    (void)in;
    (void)size;
    return -1;
}

/* Seek within [0, n]; seeking past the end is allowed (reads return 0). */
static toff_t tiff_seek(thandle_t h, toff_t off, int whence)
{
    struct tiff_ctx *c = (struct tiff_ctx *)h;
    uint64_t np;
    if (whence == SEEK_SET) {
        np = (uint64_t)off;
    } else if (whence == SEEK_CUR || whence == SEEK_END) {
        /* Relative offsets may be negative, passed in the unsigned toff_t. */
        uint64_t base = whence == SEEK_CUR ? c->pos : c->n;
        int64_t d = (int64_t)off;
        if (d < 0 && (uint64_t)0 - (uint64_t)d > base)
            return (toff_t)-1;
        np = base + (uint64_t)d;
    } else {
        return (toff_t)-1;
    }
    c->pos = np;
    return (toff_t)np;
}

static int tiff_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t tiff_size(thandle_t h)
{
    return (toff_t)((struct tiff_ctx *)h)->n;
}

/* No mapping: libtiff then copies through tiff_read and never writes into
 * (or keeps pointers to) the caller's const buffer. */
static int tiff_map(thandle_t h, void **base, toff_t *size)
{
    (void)h;
    (void)base;
    (void)size;
    return 0;
}

static void tiff_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h;
    (void)base;
    (void)size;
}

/* Error handler (ExtR): keep the first message in the per-call context.
 * Returning 1 tells libtiff the error was handled (no global handler). */
static int tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    struct tiff_ctx *c = (struct tiff_ctx *)user;
    if (c && !c->have_msg) {
        char body[200];
        vsnprintf(body, sizeof body, fmt, ap);
        if (module && *module)
            snprintf(c->msg, sizeof c->msg, "%s: %s", module, body);
        else
            snprintf(c->msg, sizeof c->msg, "%s", body);
        c->have_msg = 1;
    }
    return 1;
}

/* Warnings (unknown tags, odd but readable fields) are dropped. */
static int tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1;
}

/* "II*\0", "MM\0*" (classic) or "II+\0", "MM\0+" (BigTIFF). */
static int tiff_sniff(const uint8_t *b, size_t n)
{
    if (n < 4)
        return 0;
    if (b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0)
        return 1;
    if (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43))
        return 1;
    return 0;
}

/* Open the first directory of the in-memory file; NULL on failure with the
 * reason in c->msg. */
static TIFF *tiff_open(struct tiff_ctx *c, const uint8_t *b, size_t n)
{
    memset(c, 0, sizeof *c);
    c->buf = b;
    c->n = n;
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts)
        return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_on_error, c);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_on_warning, c);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, FX_TIFF_MAX_ALLOC);
    /* "r": read; "m": no memory mapping (see tiff_map). */
    TIFF *tif = TIFFClientOpenExt("memory", "rm", (thandle_t)c, tiff_read, tiff_write, tiff_seek,
                                  tiff_close, tiff_size, tiff_map, tiff_unmap, opts);
    TIFFOpenOptionsFree(opts); /* libtiff copied what it needs */
    return tif;
}

/* ---- layout --------------------------------------------------------------- */

/* What load() needs to know about the first directory. */
struct tiff_layout {
    uint32_t w, h;
    uint16_t bps, spp, fmt, photo, planar, comp;
    int rgb;    /* 1: samples 0..2 are R,G,B; 0: sample 0 is grey */
    int invert; /* MinIsWhite integer samples */
    int tiled;
    uint32_t bw, bh; /* block (strip or tile) width and height in pixels */
    size_t es;       /* bytes per sample: 1, 2 or 4 */
    fx_pixtype type;
};

static const char *tiff_photo_name(uint16_t p)
{
    switch (p) {
    case PHOTOMETRIC_MINISWHITE: return "MinIsWhite";
    case PHOTOMETRIC_MINISBLACK: return "MinIsBlack";
    case PHOTOMETRIC_RGB: return "RGB";
    case PHOTOMETRIC_PALETTE: return "palette";
    case PHOTOMETRIC_MASK: return "transparency mask";
    case PHOTOMETRIC_SEPARATED: return "separated (CMYK)";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB: return "CIE L*a*b*";
    default: return "unusual";
    }
}

/* Read and validate the tags of the current directory.  Sets
 * JPEGCOLORMODE for JPEG YCbCr, so it must run before any pixel read. */
static fx_status tiff_parse(TIFF *tif, struct tiff_layout *L, fx_error *err)
{
    memset(L, 0, sizeof *L);
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &L->w) ||
        !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &L->h))
        return fx_error_set(err, FX_ERR_FORMAT, "tiff: missing image width or length");
    if (L->w == 0 || L->h == 0)
        return fx_error_set(err, FX_ERR_FORMAT, "tiff: image has zero size (%u x %u)", L->w, L->h);
    if (L->w > INT_MAX || L->h > INT_MAX)
        return fx_error_set(err, FX_ERR_LIMIT, "tiff: image %u x %u is too large", L->w, L->h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &L->bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &L->spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &L->fmt);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &L->planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &L->comp);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &L->photo))
        /* Photometric is required but often missing in sloppy writers;
         * assume the obvious reading of the sample count. */
        L->photo = L->spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;

    if (!TIFFIsCODECConfigured(L->comp))
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "tiff: compression scheme %u is not available in this libtiff",
                            L->comp);

    /* Sample type. */
    if (L->fmt == SAMPLEFORMAT_VOID)
        L->fmt = SAMPLEFORMAT_UINT; /* untyped: read as unsigned */
    if (L->fmt == SAMPLEFORMAT_UINT && (L->bps == 8 || L->bps == 16)) {
        L->type = L->bps == 8 ? FX_PIX_U8 : FX_PIX_U16;
        L->es = L->bps / 8;
    } else if (L->fmt == SAMPLEFORMAT_IEEEFP && L->bps == 32) {
        L->type = FX_PIX_F32;
        L->es = 4;
    } else {
        const char *kind = L->fmt == SAMPLEFORMAT_UINT     ? "unsigned integer"
                           : L->fmt == SAMPLEFORMAT_INT    ? "signed integer"
                           : L->fmt == SAMPLEFORMAT_IEEEFP ? "floating-point"
                                                           : "complex";
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "tiff: %u-bit %s samples (supported: 8/16-bit unsigned, 32-bit float)",
                            L->bps, kind);
    }

    /* Colour model.  One extra sample (alpha) is tolerated and dropped. */
    switch (L->photo) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE:
        L->rgb = 0;
        L->invert = L->photo == PHOTOMETRIC_MINISWHITE && L->type != FX_PIX_F32;
        break;
    case PHOTOMETRIC_RGB: L->rgb = 1; break;
    case PHOTOMETRIC_YCBCR:
        if (L->comp != COMPRESSION_JPEG || L->type != FX_PIX_U8)
            return fx_error_set(err, FX_ERR_UNSUPPORTED,
                                "tiff: YCbCr is supported only with JPEG compression");
        /* libjpeg does YCbCr->RGB (and the upsampling); libtiff's strip and
         * tile sizes then count RGB samples. */
        if (!TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
            return fx_error_set(err, FX_ERR_UNSUPPORTED, "tiff: cannot convert JPEG YCbCr to RGB");
        L->rgb = 1;
        break;
    default:
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "tiff: %s photometric interpretation (%u)",
                            tiff_photo_name(L->photo), L->photo);
    }
    int need = L->rgb ? 3 : 1;
    if (L->spp != need && L->spp != need + 1)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "tiff: %u samples per pixel with %s", L->spp,
                            tiff_photo_name(L->photo));
    if (L->planar != PLANARCONFIG_CONTIG && L->planar != PLANARCONFIG_SEPARATE)
        return fx_error_set(err, FX_ERR_FORMAT, "tiff: bad planar configuration %u", L->planar);

    /* Block geometry. */
    L->tiled = TIFFIsTiled(tif);
    if (L->tiled) {
        if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &L->bw) ||
            !TIFFGetField(tif, TIFFTAG_TILELENGTH, &L->bh) || L->bw == 0 || L->bh == 0)
            return fx_error_set(err, FX_ERR_FORMAT, "tiff: bad tile size");
    } else {
        uint32_t rps = 0;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        if (rps == 0)
            return fx_error_set(err, FX_ERR_FORMAT, "tiff: RowsPerStrip is zero");
        L->bw = L->w;
        L->bh = rps < L->h ? rps : L->h;
    }
    uint64_t spb = L->planar == PLANARCONFIG_CONTIG ? L->spp : 1;
    /* In double: bw * bh alone can exceed 2^64 for hostile tile sizes. */
    double block = (double)L->bw * (double)L->bh * (double)spb * (double)L->es;
    if (block > (double)FX_TIFF_MAX_BLOCK)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "tiff: %s of %u x %u pixels is too large",
                            L->tiled ? "tile" : "strip", L->bw, L->bh);
    return FX_OK;
}

/* Status for a failed libtiff call: its first message, or a fallback. */
static fx_status tiff_fail(const struct tiff_ctx *c, fx_error *err, const char *what)
{
    return fx_error_set(err, FX_ERR_FORMAT, "tiff: %s", c->have_msg ? c->msg : what);
}

static void tiff_fill_info(const struct tiff_layout *L, fx_image_info *info)
{
    info->width = (int)L->w;
    info->height = (int)L->h;
    info->bit_depth = L->bps;
    info->channels = L->spp;
    info->type = L->type;
}

/* loader.h header(): tags of the first directory only. */
static fx_status tiff_header(const uint8_t *b, size_t n, fx_image_info *info, fx_error *err)
{
    struct tiff_ctx c;
    TIFF *tif = tiff_open(&c, b, n);
    if (!tif)
        return tiff_fail(&c, err, "not a readable TIFF file");
    struct tiff_layout L;
    fx_status st = tiff_parse(tif, &L, err);
    if (st == FX_OK)
        tiff_fill_info(&L, info);
    TIFFClose(tif);
    return st;
}

/* ---- pixels --------------------------------------------------------------- */

/* Copy the valid part (rows x cols) of one decoded block into the output at
 * (oy, ox).  planes[k] is the block of plane k (separate) or planes[0] holds
 * interleaved samples (contig). */
static void tiff_convert(const struct tiff_layout *L, void *const planes[], uint32_t oy,
                         uint32_t ox, uint32_t rows, uint32_t cols, void *pixels)
{
    int contig = L->planar == PLANARCONFIG_CONTIG;
    size_t stride = contig ? L->spp : 1; /* distance between pixels in a plane */
    /* Sample k of block pixel i. */
#define TIFF_SAMPLE(T, k, i)                                                                       \
    (contig ? ((const T *)planes[0])[(i)*stride + (k)] : ((const T *)planes[k])[i])
#define TIFF_CONVERT(T, MAXV, ROUND)                                                               \
    do {                                                                                           \
        T *out = (T *)pixels;                                                                      \
        for (uint32_t r = 0; r < rows; r++) {                                                      \
            T *o = out + (size_t)(oy + r) * L->w + ox;                                             \
            size_t i = (size_t)r * L->bw;                                                          \
            for (uint32_t x = 0; x < cols; x++, i++) {                                             \
                if (!L->rgb) {                                                                     \
                    T v = TIFF_SAMPLE(T, 0, i);                                                    \
                    o[x] = L->invert ? (T)(MAXV - v) : v;                                          \
                } else {                                                                           \
                    double y = fx_luma601(TIFF_SAMPLE(T, 0, i), TIFF_SAMPLE(T, 1, i),              \
                                          TIFF_SAMPLE(T, 2, i));                                   \
                    if (ROUND) {                                                                   \
                        y = round(y);                                                              \
                        y = y > MAXV ? MAXV : y;                                                   \
                    }                                                                              \
                    o[x] = (T)y;                                                                   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    switch (L->type) {
    case FX_PIX_U8: TIFF_CONVERT(uint8_t, 255, 1); break;
    case FX_PIX_U16: TIFF_CONVERT(uint16_t, 65535, 1); break;
    case FX_PIX_F32: TIFF_CONVERT(float, 0, 0); break;
    }
#undef TIFF_CONVERT
#undef TIFF_SAMPLE
}

/* Decode every strip/tile of the open file into pixels.  Gray contig strips
 * are decoded straight into the output; everything else goes through one
 * block of scratch per plane. */
static fx_status tiff_decode(TIFF *tif, struct tiff_ctx *c, const struct tiff_layout *L,
                             void *pixels, fx_error *err)
{
    int contig = L->planar == PLANARCONFIG_CONTIG;
    size_t spb = contig ? L->spp : 1;
    size_t rowbytes_out = (size_t)L->w * L->es;

    if (!L->tiled && contig && L->spp == 1) {
        for (uint32_t y = 0, s = 0; y < L->h; y += L->bh, s++) {
            uint32_t rows = L->h - y < L->bh ? L->h - y : L->bh;
            tmsize_t want = (tmsize_t)((size_t)rows * rowbytes_out);
            tmsize_t got =
                TIFFReadEncodedStrip(tif, s, (uint8_t *)pixels + (size_t)y * rowbytes_out, want);
            if (got < 0)
                return tiff_fail(c, err, "cannot decode strip");
            if (got < want)
                return fx_error_set(err, FX_ERR_FORMAT,
                                    "tiff: strip %u is short (%lld of %lld bytes)", s,
                                    (long long)got, (long long)want);
        }
        if (L->invert) {
            size_t n = (size_t)L->w * L->h;
            if (L->type == FX_PIX_U8)
                for (size_t i = 0; i < n; i++)
                    ((uint8_t *)pixels)[i] = (uint8_t)(255 - ((uint8_t *)pixels)[i]);
            else
                for (size_t i = 0; i < n; i++)
                    ((uint16_t *)pixels)[i] = (uint16_t)(65535 - ((uint16_t *)pixels)[i]);
        }
        return FX_OK;
    }

    /* Only the planes we use: grey reads plane 0, RGB planes 0..2 (alpha never). */
    /* Big contiguous strips of colour (often one strip for the whole image):
     * decode row by row into a one-row scratch instead of a strip-sized one,
     * so RGB costs one row of memory beyond the output, as for PNG. */
    if (!L->tiled && contig && L->bh > 1 &&
        (size_t)L->bw * L->bh * spb * L->es > FX_TIFF_SCANLINE_ABOVE) {
        size_t rowbytes = (size_t)L->w * spb * L->es;
        if ((uint64_t)TIFFScanlineSize64(tif) != rowbytes)
            return fx_error_set(err, FX_ERR_UNSUPPORTED,
                                "tiff: scanline size %llu differs from %zu for this layout",
                                (unsigned long long)TIFFScanlineSize64(tif), rowbytes);
        void *row[4] = {malloc(rowbytes), NULL, NULL, NULL};
        if (!row[0])
            return fx_error_set(err, FX_ERR_NOMEM, "tiff: cannot allocate a row");
        fx_status st = FX_OK;
        for (uint32_t y = 0; y < L->h; y++) {
            if (TIFFReadScanline(tif, row[0], y, 0) < 0) {
                st = tiff_fail(c, err, "cannot decode scanline");
                break;
            }
            tiff_convert(L, row, y, 0, 1, L->w, pixels);
        }
        free(row[0]);
        return st;
    }

    size_t nplanes = contig ? 1 : (L->rgb ? 3 : 1);
    size_t block_bytes = (size_t)L->bw * L->bh * spb * L->es;
    void *planes[4] = {NULL, NULL, NULL, NULL};
    fx_status st = FX_OK;
    for (size_t k = 0; k < nplanes; k++) {
        planes[k] = malloc(block_bytes);
        if (!planes[k]) {
            st = fx_error_set(err, FX_ERR_NOMEM, "tiff: cannot allocate %zu bytes for a block",
                              block_bytes);
            goto done;
        }
    }
    for (uint32_t y = 0; y < L->h; y += L->bh) {
        uint32_t rows = L->h - y < L->bh ? L->h - y : L->bh;
        for (uint32_t x = 0; x < L->w; x += L->bw) {
            uint32_t cols = L->w - x < L->bw ? L->w - x : L->bw;
            for (size_t k = 0; k < nplanes; k++) {
                tmsize_t got, want;
                if (L->tiled) {
                    /* A tile is always full size in the file, edges included. */
                    want = (tmsize_t)block_bytes;
                    got = TIFFReadEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, (uint16_t)k),
                                              planes[k], want);
                } else {
                    want = (tmsize_t)((size_t)rows * L->bw * spb * L->es);
                    got = TIFFReadEncodedStrip(tif, TIFFComputeStrip(tif, y, (uint16_t)k),
                                               planes[k], want);
                }
                if (got < 0) {
                    st = tiff_fail(c, err, L->tiled ? "cannot decode tile" : "cannot decode strip");
                    goto done;
                }
                if (got < want) {
                    st = fx_error_set(
                        err, FX_ERR_FORMAT, "tiff: %s at (%u, %u) is short (%lld of %lld bytes)",
                        L->tiled ? "tile" : "strip", x, y, (long long)got, (long long)want);
                    goto done;
                }
            }
            tiff_convert(L, planes, y, x, rows, cols, pixels);
        }
    }
done:
    for (size_t k = 0; k < nplanes; k++)
        free(planes[k]);
    return st;
}

/* loader.h load(): decode the first page into the caller's plane. */
static fx_status tiff_load(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels,
                           fx_error *err)
{
    if (!info || !pixels)
        return fx_error_set(err, FX_ERR_USAGE, "tiff: NULL info or pixels");
    struct tiff_ctx c;
    TIFF *tif = tiff_open(&c, b, n);
    if (!tif)
        return tiff_fail(&c, err, "not a readable TIFF file");
    struct tiff_layout L;
    fx_status st = tiff_parse(tif, &L, err);
    if (st == FX_OK) {
        fx_image_info got;
        tiff_fill_info(&L, &got);
        if (got.width != info->width || got.height != info->height || got.type != info->type)
            st = fx_error_set(err, FX_ERR_INTERNAL,
                              "tiff: image layout differs from the header given to load()");
    }
    if (st == FX_OK)
        st = tiff_decode(tif, &c, &L, pixels, err);
    TIFFClose(tif);
    return st;
}

static const char *const tiff_suffixes[] = {".tif", ".tiff", NULL};

const fx_loader fx_tiff_loader = {
    .name = "tiff",
    .suffixes = tiff_suffixes,
    .sniff = tiff_sniff,
    .header = tiff_header,
    .load = tiff_load,
};
