/* The JPEG 2000 loader on OpenJPEG, from memory: JP2 files (.jp2) and raw
 * codestreams (.j2k, .j2c, .jpc), chosen by their signature.
 *
 * One component: the plane as stored, U8 up to 8 bits, U16 up to 16 (a
 * 12-bit codestream stays 12-bit values), F32 when signed.  Three
 * components (RGB, as OpenJPEG gives them) are reduced by the loader
 * table's BT.601 luma; subsampled components are refused.  OpenJPEG's
 * messages go into a per-call context; a warning-free decode is required
 * (a truncated codestream decodes partially with a warning: an error here). */
#include <math.h>
#include <openjpeg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/loader.h"
#include "io/luma.h"

static const uint8_t jp2_sig[12] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};

static int jp2_is_jp2(const uint8_t *b, size_t n)
{
    return n >= 12 && !memcmp(b, jp2_sig, 12);
}

static int jp2_sniff(const uint8_t *b, size_t n)
{
    return jp2_is_jp2(b, n) ||
           (n >= 4 && b[0] == 0xFF && b[1] == 0x4F && b[2] == 0xFF && b[3] == 0x51);
}

/* A read-only stream over the caller's bytes. */
typedef struct mem {
    const uint8_t *b;
    size_t n, at;
} mem;

static OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T k, void *u)
{
    mem *m = u;
    if (m->at >= m->n)
        return (OPJ_SIZE_T)-1;
    size_t left = m->n - m->at;
    if (k > left)
        k = left;
    memcpy(buf, m->b + m->at, k);
    m->at += k;
    return k;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T k, void *u)
{
    mem *m = u;
    if (k < 0 ? (size_t)-k > m->at : (size_t)k > m->n - m->at)
        return -1;
    m->at = (size_t)((OPJ_OFF_T)m->at + k);
    return k;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T k, void *u)
{
    mem *m = u;
    if (k < 0 || (size_t)k > m->n)
        return OPJ_FALSE;
    m->at = (size_t)k;
    return OPJ_TRUE;
}

typedef struct jp2_ctx {
    char msg[256];
    int failed, warned;
} jp2_ctx;

/* OpenJPEG's message without its trailing newline. */
static void keep(jp2_ctx *c, const char *msg)
{
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    size_t k = strlen(c->msg);
    while (k && (c->msg[k - 1] == '\n' || c->msg[k - 1] == ' '))
        c->msg[--k] = 0;
}

static void on_error(const char *msg, void *u)
{
    jp2_ctx *c = u;
    if (!c->failed)
        keep(c, msg);
    c->failed = 1;
}

static void on_warning(const char *msg, void *u)
{
    jp2_ctx *c = u;
    if (!c->warned && !c->failed)
        keep(c, msg);
    c->warned = 1;
}

static void on_info(const char *msg, void *u)
{
    (void)msg, (void)u;
}

/* Opens codec, stream and header; *img owned by the caller on FX_OK. */
static fx_status jp2_open(const uint8_t *b, size_t n, jp2_ctx *c, mem *m, opj_codec_t **codec,
                          opj_stream_t **stream, opj_image_t **img, fx_error *err)
{
    *codec = opj_create_decompress(jp2_is_jp2(b, n) ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    *stream = opj_stream_create(1 << 16, OPJ_TRUE);
    *img = NULL;
    if (!*codec || !*stream)
        return fx_error_set(err, FX_ERR_NOMEM, "jpeg2000: out of memory");
    opj_set_error_handler(*codec, on_error, c);
    opj_set_warning_handler(*codec, on_warning, c);
    opj_set_info_handler(*codec, on_info, c);
    *m = (mem){b, n, 0};
    opj_stream_set_user_data(*stream, m, NULL);
    opj_stream_set_user_data_length(*stream, n);
    opj_stream_set_read_function(*stream, mem_read);
    opj_stream_set_skip_function(*stream, mem_skip);
    opj_stream_set_seek_function(*stream, mem_seek);
    opj_dparameters_t p;
    opj_set_default_decoder_parameters(&p);
    if (!opj_setup_decoder(*codec, &p) || !opj_read_header(*stream, *codec, img) || !*img)
        return fx_error_set(err, FX_ERR_FORMAT, "jpeg2000: %s", c->msg[0] ? c->msg : "bad header");
    return FX_OK;
}

static void jp2_close(opj_codec_t *codec, opj_stream_t *stream, opj_image_t *img)
{
    if (img)
        opj_image_destroy(img);
    if (stream)
        opj_stream_destroy(stream);
    if (codec)
        opj_destroy_codec(codec);
}

/* The layout the plane will have; checks what is read. */
static fx_status jp2_info(const opj_image_t *im, fx_image_info *info, fx_error *err)
{
    if (im->numcomps != 1 && im->numcomps != 3 && im->numcomps != 4)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "jpeg2000: %u components", im->numcomps);
    const opj_image_comp_t *c0 = &im->comps[0];
    for (unsigned i = 0; i < im->numcomps; i++) {
        const opj_image_comp_t *c = &im->comps[i];
        if (c->dx != 1 || c->dy != 1 || c->w != c0->w || c->h != c0->h)
            return fx_error_set(err, FX_ERR_UNSUPPORTED, "jpeg2000: subsampled components");
        if (c->prec < 1 || c->prec > 16 || c->prec != c0->prec || c->sgnd != c0->sgnd)
            return fx_error_set(err, FX_ERR_UNSUPPORTED, "jpeg2000: %u-bit%s components", c->prec,
                                c->sgnd ? " signed" : "");
    }
    if (c0->w == 0 || c0->h == 0 || c0->w > 65535 || c0->h > 65535)
        return fx_error_set(err, FX_ERR_FORMAT, "jpeg2000: bad size %u x %u", c0->w, c0->h);
    memset(info, 0, sizeof *info);
    info->width = (int)c0->w, info->height = (int)c0->h;
    info->bit_depth = (int)c0->prec;
    info->channels = (int)im->numcomps;
    info->type = c0->sgnd ? FX_PIX_F32 : c0->prec <= 8 ? FX_PIX_U8 : FX_PIX_U16;
    return FX_OK;
}

static fx_status jp2_header(const uint8_t *b, size_t n, fx_image_info *info, fx_error *err)
{
    jp2_ctx c = {0};
    mem m;
    opj_codec_t *codec;
    opj_stream_t *stream;
    opj_image_t *img;
    fx_status st = jp2_open(b, n, &c, &m, &codec, &stream, &img, err);
    if (st == FX_OK)
        st = jp2_info(img, info, err);
    jp2_close(codec, stream, img);
    return st;
}

static fx_status jp2_load(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels,
                          fx_error *err)
{
    jp2_ctx c = {0};
    mem m;
    opj_codec_t *codec;
    opj_stream_t *stream;
    opj_image_t *img;
    fx_image_info again;
    fx_status st = jp2_open(b, n, &c, &m, &codec, &stream, &img, err);
    if (st == FX_OK)
        st = jp2_info(img, &again, err);
    if (st == FX_OK &&
        (again.width != info->width || again.height != info->height || again.type != info->type))
        st = fx_error_set(err, FX_ERR_USAGE, "jpeg2000: load() with another file's header");
    if (st == FX_OK && (!opj_decode(codec, stream, img) || !opj_end_decompress(codec, stream)))
        st = fx_error_set(err, FX_ERR_FORMAT, "jpeg2000: %s", c.msg[0] ? c.msg : "cannot decode");
    if (st == FX_OK && c.warned)
        st = fx_error_set(err, FX_ERR_FORMAT, "jpeg2000: damaged or truncated: %s", c.msg);
    for (unsigned i = 0; st == FX_OK && i < img->numcomps; i++)
        if (!img->comps[i].data)
            st = fx_error_set(err, FX_ERR_FORMAT, "jpeg2000: component %u not decoded", i);
    if (st == FX_OK) {
        size_t count = (size_t)info->width * (size_t)info->height;
        const OPJ_INT32 *r = img->comps[0].data;
        const OPJ_INT32 *g = img->numcomps >= 3 ? img->comps[1].data : r;
        const OPJ_INT32 *bl = img->numcomps >= 3 ? img->comps[2].data : r;
        int rgb = img->numcomps >= 3;
        for (size_t i = 0; i < count; i++) {
            double v = rgb ? fx_luma601(r[i], g[i], bl[i]) : r[i];
            switch (info->type) {
            case FX_PIX_U8: /* a lossy decode may step outside the range: clamp */
                ((uint8_t *)pixels)[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : round(v));
                break;
            case FX_PIX_U16:
                ((uint16_t *)pixels)[i] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : round(v));
                break;
            default: ((float *)pixels)[i] = (float)v; break;
            }
        }
    }
    jp2_close(codec, stream, img);
    return st;
}

static const char *const jp2_suffixes[] = {".jp2", ".j2k", ".j2c", ".jpc", NULL};

const fx_loader fx_jp2_loader = {
    .name = "jpeg2000",
    .suffixes = jp2_suffixes,
    .sniff = jp2_sniff,
    .header = jp2_header,
    .load = jp2_load,
};
