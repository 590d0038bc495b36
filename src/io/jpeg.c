/* The JPEG loader on libjpeg-turbo (its libjpeg API), from memory.
 *
 * Grey JPEGs decode as they are; colour ones (YCbCr, RGB, CMYK is refused)
 * decode to RGB and are reduced to one plane by the loader table's rule
 * (BT.601 luma in double, rounded half away from zero; io/loader.h).
 * The EXIF orientation (APP1 "Exif", tag 0x0112) is applied, so the plane
 * is upright as a viewer shows it; header() reports the size after it.
 * Debian's libjpeg-turbo decodes 8-bit samples only: a 12-bit JPEG is an
 * FX_ERR_UNSUPPORTED row saying so (DICOM's 12-bit JPEG goes through GDCM).
 * A warning from libjpeg (a truncated or corrupt stream it would pad with
 * grey) is an error here: a screening must not read half an image.  Errors
 * come back by longjmp into a per-call context; no global state. */
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h and stddef.h, which it needs */

#include "fxscreen/loader.h"
#include "io/luma.h"

typedef struct jpeg_ctx {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int warned;
} jpeg_ctx;

static void on_error(j_common_ptr c)
{
    jpeg_ctx *x = (jpeg_ctx *)c->err;
    (*c->err->format_message)(c, x->msg);
    longjmp(x->jb, 1);
}

static void on_message(j_common_ptr c, int level)
{
    jpeg_ctx *x = (jpeg_ctx *)c->err;
    if (level < 0 && !x->warned) { /* a warning: corrupt or truncated data */
        x->warned = 1;
        (*c->err->format_message)(c, x->msg);
    }
}

/* libjpeg's errors into x: longjmp on an error, warnings kept. */
static void jpeg_errors(struct jpeg_decompress_struct *d, jpeg_ctx *x)
{
    d->err = jpeg_std_error(&x->mgr);
    x->mgr.error_exit = on_error;
    x->mgr.emit_message = on_message;
}

static int jpeg_sniff(const uint8_t *b, size_t n)
{
    return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

/* EXIF orientation 1..8 from a saved APP1 marker, 1 when absent or odd. */
static int exif_orientation(j_decompress_ptr d)
{
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data_length < 14 || memcmp(m->data, "Exif\0\0", 6))
            continue;
        const uint8_t *t = m->data + 6;
        size_t n = m->data_length - 6;
        int le = t[0] == 'I' && t[1] == 'I';
        if (!le && !(t[0] == 'M' && t[1] == 'M'))
            return 1;
#define U16(p) (le ? (unsigned)((p)[0] | (p)[1] << 8) : (unsigned)((p)[0] << 8 | (p)[1]))
#define U32(p)                                                                                     \
    (le ? ((uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 | (uint32_t)(p)[2] << 16 |                     \
           (uint32_t)(p)[3] << 24)                                                                 \
        : ((uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 |               \
           (uint32_t)(p)[3]))
        uint32_t ifd = U32(t + 4);
        if (ifd > n - 2 || ifd + 2 < ifd)
            return 1;
        unsigned count = U16(t + ifd);
        for (unsigned i = 0; i < count; i++) {
            size_t e = ifd + 2 + (size_t)i * 12;
            if (e + 12 > n)
                return 1;
            if (U16(t + e) == 0x0112) {
                unsigned v = U16(t + e + 8);
                return v >= 1 && v <= 8 ? (int)v : 1;
            }
        }
#undef U16
#undef U32
        return 1;
    }
    return 1;
}

/* Starts a decompression of bytes: header read, APP1 (EXIF) saved. */
static void jpeg_begin(struct jpeg_decompress_struct *d, const uint8_t *b, size_t n)
{
    jpeg_mem_src(d, b, (unsigned long)n);
    jpeg_save_markers(d, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(d, TRUE);
}

static fx_status jpeg_check(struct jpeg_decompress_struct *d, fx_error *err)
{
    if (d->data_precision != 8)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "jpeg: %d-bit samples (this libjpeg-turbo decodes 8-bit JPEG only)",
                            d->data_precision);
    if (d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "jpeg: CMYK JPEG (not a radiograph)");
    if (d->image_width == 0 || d->image_height == 0 || d->image_width > 65535 ||
        d->image_height > 65535)
        return fx_error_set(err, FX_ERR_FORMAT, "jpeg: bad size %u x %u", d->image_width,
                            d->image_height);
    return FX_OK;
}

static fx_status jpeg_header(const uint8_t *b, size_t n, fx_image_info *info, fx_error *err)
{
    struct jpeg_decompress_struct d;
    jpeg_ctx x = {0};
    jpeg_errors(&d, &x);
    if (setjmp(x.jb)) {
        jpeg_destroy_decompress(&d);
        return fx_error_set(err, FX_ERR_FORMAT, "jpeg: %s", x.msg);
    }
    jpeg_create_decompress(&d);
    jpeg_begin(&d, b, n);
    fx_status st = jpeg_check(&d, err);
    if (st == FX_OK) {
        int o = exif_orientation(&d);
        memset(info, 0, sizeof *info);
        info->width = (int)(o >= 5 ? d.image_height : d.image_width);
        info->height = (int)(o >= 5 ? d.image_width : d.image_height);
        info->bit_depth = 8;
        info->channels = d.num_components;
        info->type = FX_PIX_U8;
    }
    jpeg_destroy_decompress(&d);
    return st;
}

/* dst (W' x H') = src (w x h) under EXIF orientation o (2..8). */
static void orient(const uint8_t *src, int w, int h, int o, uint8_t *dst)
{
    int W = o >= 5 ? h : w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int X, Y; /* where src (x, y) lands */
            switch (o) {
            case 2: X = w - 1 - x, Y = y; break;
            case 3: X = w - 1 - x, Y = h - 1 - y; break;
            case 4: X = x, Y = h - 1 - y; break;
            case 5: X = y, Y = x; break;
            case 6: X = h - 1 - y, Y = x; break;
            case 7: X = h - 1 - y, Y = w - 1 - x; break;
            case 8: X = y, Y = w - 1 - x; break;
            default: X = x, Y = y; break;
            }
            dst[(size_t)Y * W + X] = src[(size_t)y * w + x];
        }
}

static fx_status jpeg_load(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels,
                           fx_error *err)
{
    struct jpeg_decompress_struct d;
    jpeg_ctx x = {0};
    uint8_t *volatile row = NULL, *volatile plane = NULL;
    jpeg_errors(&d, &x);
    if (setjmp(x.jb)) {
        jpeg_destroy_decompress(&d);
        free(row);
        if (plane != pixels)
            free(plane);
        return fx_error_set(err, FX_ERR_FORMAT, "jpeg: %s", x.msg);
    }
    jpeg_create_decompress(&d);
    jpeg_begin(&d, b, n);
    fx_status st = jpeg_check(&d, err);
    int o = st == FX_OK ? exif_orientation(&d) : 1;
    int w = (int)d.image_width, h = (int)d.image_height;
    if (st == FX_OK && (info->width != (o >= 5 ? h : w) || info->height != (o >= 5 ? w : h)))
        st = fx_error_set(err, FX_ERR_USAGE, "jpeg: load() with another file's header");
    if (st != FX_OK) {
        jpeg_destroy_decompress(&d);
        return st;
    }
    int grey = d.num_components == 1;
    d.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&d);
    plane = o == 1 ? (uint8_t *)pixels : malloc((size_t)w * h);
    row = grey ? NULL : malloc((size_t)w * 3);
    if (!plane || (!grey && !row)) {
        jpeg_destroy_decompress(&d);
        free(row);
        if (plane != pixels)
            free(plane);
        return fx_error_set(err, FX_ERR_NOMEM, "jpeg: out of memory for %d x %d", w, h);
    }
    while (d.output_scanline < d.output_height) {
        uint8_t *dst = plane + (size_t)d.output_scanline * w;
        JSAMPROW r = grey ? dst : row;
        jpeg_read_scanlines(&d, &r, 1);
        if (!grey)
            for (int i = 0; i < w; i++)
                dst[i] = (uint8_t)round(fx_luma601(row[3 * i], row[3 * i + 1], row[3 * i + 2]));
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(row);
    if (o != 1) {
        orient(plane, w, h, o, pixels);
        free(plane);
    }
    if (x.warned)
        return fx_error_set(err, FX_ERR_FORMAT, "jpeg: damaged or truncated: %s", x.msg);
    return FX_OK;
}

static const char *const jpeg_suffixes[] = {".jpg", ".jpeg", ".jpe", NULL};

const fx_loader fx_jpeg_loader = {
    .name = "jpeg",
    .suffixes = jpeg_suffixes,
    .sniff = jpeg_sniff,
    .header = jpeg_header,
    .load = jpeg_load,
};
