/* The DICOM loader: sniffs "DICM" at byte 128, parses and decodes through
 * GDCM (src/io/dicom_gdcm.cpp: every transfer syntax GDCM has: implicit and
 * explicit VR little endian, deflated, JPEG baseline/extended/lossless,
 * JPEG-LS, JPEG 2000, RLE), then turns the stored values into the plane
 * radiologists expect, here in C:
 *   1. bits stored: the bits above BitsStored are cleared (unsigned) or the
 *      sign of bit BitsStored - 1 extended (signed); JPEG 2000 output, which
 *      carries its sign, is clamped to the BitsStored range instead;
 *   2. MONOCHROME1 inverted to MONOCHROME2 on the stored values, as
 *      torchxrayvision does: v = 2^BitsStored - 1 - v (signed: -1 - v);
 *   3. Rescale Slope/Intercept: v * slope + intercept.
 * The plane is U8/U16 when the values are unsigned 8/16-bit and the rescale
 * is the identity (12-bit values stay 12-bit in 16-bit words), else F32.
 * The first Window Center/Width pair is passed on in fx_image_info (mirrored
 * for MONOCHROME1, so it windows the inverted values the same way) for
 * `window: {mode: dicom}`.  Multi-frame files: the first frame.
 *
 * Isolation.  Debian's GDCM keeps its assertions, and its codecs assert on
 * damaged compressed streams (found by fuzz_dicom: JPEG12Codec::GetHeaderInfo),
 * which would abort the whole run or server.  The structure is checked in C
 * first (dicom_check.c), which also reads the header, and GDCM's decode runs
 * in a helper process kept by each decoding thread (dicom_helper.c), writing
 * into shared memory: GDCM aborting kills only the helper, and the file
 * becomes an error row. */
#ifndef FX_NO_DICOM
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/loader.h"
#include "io/dicom_internal.h"

static int dicom_sniff(const uint8_t *b, size_t n)
{
    return n >= 132 && !memcmp(b + 128, "DICM", 4);
}

/* What kind of object a SOP class without pixels is, for the message. */
static const char *sop_kind(const char *uid)
{
    if (!strncmp(uid, "1.2.840.10008.5.1.4.1.1.88.", 27))
        return "a structured report";
    if (!strncmp(uid, "1.2.840.10008.5.1.4.1.1.11.", 27))
        return "a presentation state";
    if (!strncmp(uid, "1.2.840.10008.5.1.4.1.1.104.", 28))
        return "an encapsulated document";
    return "an object without pixel data";
}

static int identity_rescale(const fx_dcm_header *h)
{
    return h->slope == 1.0 && h->intercept == 0.0;
}

/* Checks the header and fills info; h is parsed already. */
static fx_status dicom_info(const fx_dcm_header *h, fx_image_info *info, fx_error *err)
{
    if (!h->has_pixels)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "dicom: no image: %s (SOP class %s)",
                            sop_kind(h->sop_class), h->sop_class[0] ? h->sop_class : "none");
    if (h->samples != 1 || strncmp(h->photometric, "MONOCHROME", 10))
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "dicom: a colour image (%s, %d samples per pixel); radiographs are "
                            "MONOCHROME1/2",
                            h->photometric[0] ? h->photometric : "no photometric", h->samples);
    if (h->bits_alloc != 8 && h->bits_alloc != 16 && h->bits_alloc != 32)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "dicom: %d bits allocated (8, 16 or 32 read)",
                            h->bits_alloc);
    if (h->bits_stored < 1 || h->bits_stored > h->bits_alloc)
        return fx_error_set(err, FX_ERR_FORMAT, "dicom: %d bits stored in %d allocated",
                            h->bits_stored, h->bits_alloc);
    if (h->width <= 0 || h->height <= 0)
        return fx_error_set(err, FX_ERR_FORMAT, "dicom: image has zero size (%d x %d)", h->width,
                            h->height);
    if (!isfinite(h->slope) || !isfinite(h->intercept))
        return fx_error_set(err, FX_ERR_FORMAT, "dicom: rescale slope/intercept not finite");
    memset(info, 0, sizeof *info);
    info->width = h->width, info->height = h->height;
    info->bit_depth = h->bits_stored;
    info->channels = 1;
    info->frames = h->frames;
    int plain = !h->is_signed && identity_rescale(h);
    info->type = plain && h->bits_alloc == 8    ? FX_PIX_U8
                 : plain && h->bits_alloc == 16 ? FX_PIX_U16
                                                : FX_PIX_F32;
    fx_image_ids *d = &info->ids;
    snprintf(d->sop_instance_uid, sizeof d->sop_instance_uid, "%s", h->sop_instance);
    snprintf(d->study_instance_uid, sizeof d->study_instance_uid, "%s", h->study);
    snprintf(d->series_instance_uid, sizeof d->series_instance_uid, "%s", h->series);
    snprintf(d->accession_number, sizeof d->accession_number, "%s", h->accession);
    snprintf(d->modality, sizeof d->modality, "%s", h->modality);
    snprintf(d->body_part, sizeof d->body_part, "%s", h->body_part);
    snprintf(d->view_position, sizeof d->view_position, "%s", h->view_position);
    if (h->spacing_row > 0 && h->spacing_col > 0 && isfinite(h->spacing_row) &&
        isfinite(h->spacing_col))
        d->pixel_spacing[0] = h->spacing_row, d->pixel_spacing[1] = h->spacing_col;
    if (h->has_window) {
        int mono1 = !strcmp(h->photometric, "MONOCHROME1");
        double M = h->is_signed ? -1.0 : ldexp(1.0, h->bits_stored) - 1.0;
        info->has_window = 1;
        info->win_width = h->win_width;
        info->win_center = mono1 ? h->slope * M + 2 * h->intercept - h->win_center : h->win_center;
    }
    return FX_OK;
}

/* The header, read in C by the structural walk (GDCM is not needed for it). */
static fx_status dicom_parse(const uint8_t *b, size_t n, fx_dcm_header *h, fx_error *err)
{
    char msg[256] = "";
    if (fx_dcm_check(b, n, h, msg, sizeof msg))
        return fx_error_set(err, FX_ERR_FORMAT, "%s", msg);
    return FX_OK;
}

static fx_status dicom_header(const uint8_t *b, size_t n, fx_image_info *info, fx_error *err)
{
    fx_dcm_header h;
    fx_status st = dicom_parse(b, n, &h, err);
    return st == FX_OK ? dicom_info(&h, info, err) : st;
}

/* 1 for the JPEG 2000 family (lossless, lossy, Part 2, and HTJ2K): their
 * codestreams carry the sign, so the decoder's output is the value itself.
 * Every other syntax delivers the stored bit pattern. */
static int true_values(const fx_dcm_header *h)
{
    static const char *const j2k[] = {"1.2.840.10008.1.2.4.90",  "1.2.840.10008.1.2.4.91",
                                      "1.2.840.10008.1.2.4.92",  "1.2.840.10008.1.2.4.93",
                                      "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                                      "1.2.840.10008.1.2.4.203"};
    for (size_t i = 0; i < sizeof j2k / sizeof j2k[0]; i++)
        if (!strcmp(h->ts_uid, j2k[i]))
            return 1;
    return 0;
}

/* Stored sample i of raw as a signed 64-bit value after step 1.  A bit
 * pattern (native pixel data, which may carry other bits above BitsStored,
 * or the output of a codec that knows no sign) is masked and sign-extended.
 * A JPEG 2000 decoder's output is the value itself, and a lossy one may step
 * just outside the BitsStored range: it is clamped, not wrapped (wrapping
 * would turn an overshooting white black). */
static int64_t stored(const void *raw, size_t i, const fx_dcm_header *h, int codec)
{
    int bs = h->bits_stored;
    if (codec && h->bits_alloc <= 16) {
        int64_t v = h->bits_alloc == 8 ? (h->is_signed ? (int64_t)((const int8_t *)raw)[i]
                                                       : (int64_t)((const uint8_t *)raw)[i])
                                       : (h->is_signed ? (int64_t)((const int16_t *)raw)[i]
                                                       : (int64_t)((const uint16_t *)raw)[i]);
        int64_t lo = h->is_signed ? -((int64_t)1 << (bs - 1)) : 0;
        int64_t hi = h->is_signed ? ((int64_t)1 << (bs - 1)) - 1 : ((int64_t)1 << bs) - 1;
        return v < lo ? lo : v > hi ? hi : v;
    }
    uint64_t u = h->bits_alloc == 8    ? ((const uint8_t *)raw)[i]
                 : h->bits_alloc == 16 ? ((const uint16_t *)raw)[i]
                                       : ((const uint32_t *)raw)[i];
    uint64_t mask = bs >= 64 ? ~0ull : (1ull << bs) - 1;
    u &= mask;
    if (h->is_signed && bs < 64 && (u >> (bs - 1)) & 1)
        return (int64_t)(u | ~mask);
    return (int64_t)u;
}

static fx_status dicom_load(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels,
                            fx_error *err)
{
    fx_dcm_header h;
    fx_image_info again;
    fx_status st = dicom_parse(b, n, &h, err);
    if (st == FX_OK)
        st = dicom_info(&h, &again, err);
    if (st != FX_OK)
        return st;
    if (again.width != info->width || again.height != info->height || again.type != info->type)
        return fx_error_set(err, FX_ERR_USAGE, "dicom: load() with another file's header");
    size_t count = (size_t)h.width * (size_t)h.height;
    const void *raw = NULL;
    st = fx_dcm_helper_decode(b, n, &h, count * (size_t)(h.bits_alloc / 8), &raw, err);
    if (st != FX_OK)
        return st;
    int mono1 = !strcmp(h.photometric, "MONOCHROME1"), codec = true_values(&h);
    int64_t M = h.is_signed ? -1 : (int64_t)((1ull << h.bits_stored) - 1);
    if (!mono1 && !codec && info->type == FX_PIX_U16) { /* the common case, one pass */
        const uint16_t *r = raw, mask = (uint16_t)((1u << h.bits_stored) - 1);
        uint16_t *o = pixels;
        for (size_t i = 0; i < count; i++)
            o[i] = r[i] & mask;
        count = 0;
    }
    for (size_t i = 0; i < count; i++) {
        int64_t v = stored(raw, i, &h, codec);
        if (mono1)
            v = M - v;
        switch (info->type) {
        case FX_PIX_U8: ((uint8_t *)pixels)[i] = (uint8_t)v; break;
        case FX_PIX_U16: ((uint16_t *)pixels)[i] = (uint16_t)v; break;
        default: ((float *)pixels)[i] = (float)((double)v * h.slope + h.intercept); break;
        }
    }
    fx_dcm_helper_done();
    return FX_OK;
}

static const char *const dicom_suffixes[] = {".dcm", ".dicom", NULL};

const fx_loader fx_dicom_loader = {
    .name = "dicom",
    .suffixes = dicom_suffixes,
    .sniff = dicom_sniff,
    .header = dicom_header,
    .load = dicom_load,
};
#endif /* FX_NO_DICOM */
