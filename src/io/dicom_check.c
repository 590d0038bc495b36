/* A strict walk over a DICOM file's structure before GDCM sees it.
 *
 * Debian's GDCM is built with assertions on, and a truncated or damaged
 * file can reach one (`is.good()` in its readers) and abort the process;
 * it also reads a truncated encapsulated pixel data element as if it were
 * whole ("Pixel Data Fragment could be corrupted").  So every element is
 * checked here first, with bounds on everything: the preamble and "DICM",
 * the file meta group (explicit VR little endian), then the data set in its
 * transfer syntax (implicit or explicit VR little endian; deflated data sets
 * are inflated with zlib and walked the same way), sequences and items to a
 * depth of 16, and encapsulated pixel data: fragments that fit and the
 * sequence delimiter at their end.  Only files that pass go to GDCM. */
#ifndef FX_NO_DICOM
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/dicom_internal.h"

#define MAX_DEPTH 16
#define UNDEFINED 0xFFFFFFFFu

/* The top-level elements the loader needs, captured during the walk. */
enum {
    T_ROWS,
    T_COLS,
    T_SAMPLES,
    T_PHOTO,
    T_FRAMES,
    T_ALLOC,
    T_STORED,
    T_HIGH,
    T_SIGNED,
    T_WC,
    T_WW,
    T_INTERCEPT,
    T_SLOPE,
    T_SOP_CLASS,
    T_SOP,
    T_STUDY,
    T_SERIES,
    T_ACCESSION,
    T_MODALITY,
    T_BODY,
    T_VIEW,
    T_SPACING,
    T_IMAGER_SPACING,
    T_N
};
static const uint32_t wanted[T_N] = {
    0x00280010, 0x00280011, 0x00280002, 0x00280004, 0x00280008, 0x00280100, 0x00280101, 0x00280102,
    0x00280103, 0x00281050, 0x00281051, 0x00281052, 0x00281053, 0x00080016, 0x00080018, 0x0020000D,
    0x0020000E, 0x00080050, 0x00080060, 0x00180015, 0x00185101, 0x00280030, 0x00181164};

typedef struct walk {
    const uint8_t *b;
    size_t n;
    int explicit_vr;
    int encapsulated;
    char *msg;
    size_t msgn;
    const uint8_t *val[T_N]; /* value and length of each wanted element (top level) */
    uint32_t len[T_N];
    int pixels; /* (7FE0,0010) seen at the top level */
} walk;

static uint16_t u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int bad(walk *w, size_t at, const char *why)
{
    snprintf(w->msg, w->msgn, "dicom: damaged or truncated at byte %zu: %s", at, why);
    return -1;
}

/* VRs whose explicit header has 2 reserved bytes and a 32-bit length. */
static int long_vr(const uint8_t *vr)
{
    static const char *const l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                    "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        if (vr[0] == l[i][0] && vr[1] == l[i][1])
            return 1;
    return 0;
}

/* 1 for the value representations PS3.5 defines (GDCM asserts on others). */
static int known_vr(const uint8_t *vr)
{
    static const char *const v[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL",
                                    "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
                                    "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC",
                                    "UI", "UL", "UN", "UR", "US", "UT", "UV"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (vr[0] == v[i][0] && vr[1] == v[i][1])
            return 1;
    return 0;
}

static int walk_set(walk *w, size_t *at, size_t end, int depth, int until_item_end);

/* Items of a sequence from *at: defined-length items are walked inside
 * their bounds, undefined ones until their delimiter; the sequence ends at
 * end (defined) or at its delimiter (undefined, end = SIZE_MAX). */
static int walk_items(walk *w, size_t *at, size_t end, int depth)
{
    for (;;) {
        if (end != SIZE_MAX && *at == end)
            return 0;
        if (*at + 8 > w->n || (end != SIZE_MAX && *at + 8 > end))
            return bad(w, *at, "a sequence runs past the end");
        uint16_t g = u16(w->b + *at), e = u16(w->b + *at + 2);
        uint32_t len = u32(w->b + *at + 4);
        *at += 8;
        if (g == 0xFFFE && e == 0xE0DD) /* sequence delimiter */
            return end == SIZE_MAX ? 0
                                   : bad(w, *at, "a delimiter inside a defined-length sequence");
        if (g != 0xFFFE || e != 0xE000)
            return bad(w, *at, "a sequence item expected");
        if (len == UNDEFINED) {
            if (walk_set(w, at, SIZE_MAX, depth + 1, 1))
                return -1;
        } else {
            if (len > w->n - *at)
                return bad(w, *at, "an item longer than the file");
            size_t item_end = *at + len;
            if (walk_set(w, at, item_end, depth + 1, 0))
                return -1;
        }
    }
}

/* Encapsulated pixel data: items of defined length, then the delimiter. */
static int walk_fragments(walk *w, size_t *at)
{
    for (;;) {
        if (*at + 8 > w->n)
            return bad(w, *at, "encapsulated pixel data without its end (truncated)");
        uint16_t g = u16(w->b + *at), e = u16(w->b + *at + 2);
        uint32_t len = u32(w->b + *at + 4);
        *at += 8;
        if (g == 0xFFFE && e == 0xE0DD)
            return len == 0 ? 0 : bad(w, *at, "a sequence delimiter with a length");
        if (g != 0xFFFE || e != 0xE000 || len == UNDEFINED)
            return bad(w, *at, "a pixel data fragment expected");
        if (len > w->n - *at)
            return bad(w, *at, "a pixel data fragment longer than the file (truncated)");
        *at += len;
    }
}

/* Elements from *at to end (SIZE_MAX: until an item delimiter when
 * until_item_end, else to the end of the buffer). */
static int walk_set(walk *w, size_t *at, size_t end, int depth, int until_item_end)
{
    if (depth > MAX_DEPTH)
        return bad(w, *at, "sequences nested too deep");
    size_t stop = end == SIZE_MAX ? w->n : end;
    while (*at < stop) {
        if (stop - *at < 8)
            return bad(w, *at, "an element header cut short");
        uint16_t g = u16(w->b + *at), e = u16(w->b + *at + 2);
        uint32_t tag = (uint32_t)g << 16 | e;
        if (g == 0xFFFE && e == 0xE00D) { /* item delimiter */
            *at += 8;
            if (!until_item_end)
                return bad(w, *at, "an item delimiter outside an item");
            return 0;
        }
        uint32_t len;
        int sq = 0, un = 0;
        if (w->explicit_vr) {
            const uint8_t *vr = w->b + *at + 4;
            if (!known_vr(vr))
                return bad(w, *at, "not a value representation");
            if (long_vr(vr)) {
                if (stop - *at < 12)
                    return bad(w, *at, "an element header cut short");
                len = u32(w->b + *at + 8);
                *at += 12;
            } else {
                len = u16(w->b + *at + 6);
                *at += 8;
            }
            sq = vr[0] == 'S' && vr[1] == 'Q';
            un = vr[0] == 'U' && vr[1] == 'N';
            int ob_ow = vr[0] == 'O' && (vr[1] == 'B' || vr[1] == 'W');
            if (tag == 0x7FE00010u && !(ob_ow || un))
                return bad(w, *at, "pixel data with a value representation other than OB/OW");
            if (len == UNDEFINED && !sq && !un && tag != 0x7FE00010u)
                return bad(w, *at, "an undefined length on a value that is not a sequence");
        } else {
            len = u32(w->b + *at + 4);
            *at += 8;
        }
        if (depth == 0) {
            if (tag == 0x7FE00010u)
                w->pixels = 1;
            for (int k = 0; k < T_N; k++)
                if (tag == wanted[k] && len != UNDEFINED && len <= stop - *at)
                    w->val[k] = w->b + *at, w->len[k] = len;
        }
        if (tag == 0x7FE00010u && len == UNDEFINED) {
            if (!w->encapsulated)
                return bad(w, *at, "undefined-length pixel data in a native transfer syntax");
            if (walk_fragments(w, at))
                return -1;
            continue;
        }
        if (len == UNDEFINED) { /* a sequence (SQ, UN, or implicit VR) */
            /* An undefined-length UN is a sequence in implicit VR. */
            int keep = w->explicit_vr;
            if (un)
                w->explicit_vr = 0;
            int rc = walk_items(w, at, SIZE_MAX, depth);
            w->explicit_vr = keep;
            if (rc)
                return -1;
            continue;
        }
        if (len > stop - *at)
            return bad(w, *at, "an element longer than what holds it (truncated)");
        if (sq && walk_items(w, at, *at + len, depth))
            return -1;
        else if (!sq)
            *at += len;
    }
    if (until_item_end)
        return bad(w, *at, "an item without its delimiter");
    return 0;
}

/* Inflates a deflated data set (raw deflate, RFC 1951) into *out. */
static int inflate_all(const uint8_t *b, size_t n, uint8_t **out, size_t *outn, size_t limit)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        return -1;
    size_t cap = n * 4 + 4096, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = Z_OK;
    z.next_in = (uint8_t *)b;
    z.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    while (buf && rc == Z_OK) {
        if (len == cap) {
            if (cap >= limit)
                break;
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb, cap *= 2;
        }
        z.next_out = buf + len;
        z.avail_out = (uInt)(cap - len > UINT32_MAX ? UINT32_MAX : cap - len);
        rc = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf, *outn = len;
    return 0;
}

/* A captured string value, trimmed of DICOM's padding, into out. */
static void str_of(const walk *w, int k, char *out, size_t n)
{
    size_t len = w->val[k] ? w->len[k] : 0;
    if (len > n - 1)
        len = n - 1;
    memcpy(out, w->val[k] ? (const char *)w->val[k] : "", len);
    out[len] = 0;
    while (len && (out[len - 1] == ' ' || out[len - 1] == 0))
        out[--len] = 0;
    size_t i = 0;
    while (out[i] == ' ')
        i++;
    memmove(out, out + i, len - i + 1);
}

/* An unsigned short (US) value, or dflt when absent. */
static int us_of(const walk *w, int k, int dflt)
{
    return w->val[k] && w->len[k] >= 2 ? u16(w->val[k]) : dflt;
}

/* The first (or second) number of a DS/IS value ("0.143\\0.143"). */
static int num_of(const walk *w, int k, int which, double *v)
{
    char s[72], *end;
    str_of(w, k, s, sizeof s);
    char *p = s;
    for (int i = 0; i < which && p; i++)
        p = strchr(p, '\\') ? strchr(p, '\\') + 1 : NULL;
    if (!p || !*p)
        return 0;
    *v = strtod(p, &end);
    return end != p && isfinite(*v);
}

static void fill_header(const walk *w, const char *ts, fx_dcm_header *h)
{
    memset(h, 0, sizeof *h);
    double v, a, b;
    h->has_pixels = w->pixels;
    h->height = us_of(w, T_ROWS, 0);
    h->width = us_of(w, T_COLS, 0);
    h->samples = us_of(w, T_SAMPLES, 1);
    h->frames = num_of(w, T_FRAMES, 0, &v) && v >= 1 && v < 1e9 ? (int)v : 1;
    h->bits_alloc = us_of(w, T_ALLOC, 0);
    h->bits_stored = us_of(w, T_STORED, h->bits_alloc);
    h->high_bit = us_of(w, T_HIGH, h->bits_stored - 1);
    h->is_signed = us_of(w, T_SIGNED, 0) == 1;
    h->slope = num_of(w, T_SLOPE, 0, &v) && v != 0 ? v : 1.0;
    h->intercept = num_of(w, T_INTERCEPT, 0, &v) ? v : 0.0;
    if (num_of(w, T_WC, 0, &a) && num_of(w, T_WW, 0, &b) && b >= 1)
        h->has_window = 1, h->win_center = a, h->win_width = b;
    str_of(w, T_PHOTO, h->photometric, sizeof h->photometric);
    snprintf(h->ts_uid, sizeof h->ts_uid, "%s", ts);
    str_of(w, T_SOP_CLASS, h->sop_class, sizeof h->sop_class);
    str_of(w, T_SOP, h->sop_instance, sizeof h->sop_instance);
    str_of(w, T_STUDY, h->study, sizeof h->study);
    str_of(w, T_SERIES, h->series, sizeof h->series);
    str_of(w, T_ACCESSION, h->accession, sizeof h->accession);
    str_of(w, T_MODALITY, h->modality, sizeof h->modality);
    str_of(w, T_BODY, h->body_part, sizeof h->body_part);
    str_of(w, T_VIEW, h->view_position, sizeof h->view_position);
    int k = w->val[T_SPACING] ? T_SPACING : T_IMAGER_SPACING;
    if (num_of(w, k, 0, &a) && num_of(w, k, 1, &b))
        h->spacing_row = a, h->spacing_col = b;
}

int fx_dcm_check(const uint8_t *b, size_t n, fx_dcm_header *h, char *msg, size_t msgn)
{
    walk w = {b, n, 1, 0, msg, msgn, {0}, {0}, 0};
    if (n < 132 || memcmp(b + 128, "DICM", 4))
        return bad(&w, 128, "no DICM prefix");
    /* File meta: explicit VR little endian, group 0002 only. */
    size_t at = 132;
    char ts[FX_DCM_UID] = "";
    while (at + 8 <= n && u16(b + at) == 0x0002) {
        const uint8_t *vr = b + at + 4;
        uint32_t len;
        size_t hdr;
        if (!known_vr(vr) || (vr[0] == 'S' && vr[1] == 'Q'))
            return bad(&w, at, "file meta information is not explicit VR");
        if (long_vr(vr)) {
            if (at + 12 > n)
                return bad(&w, at, "file meta information cut short");
            len = u32(b + at + 8), hdr = 12;
        } else
            len = u16(b + at + 6), hdr = 8;
        if (len == UNDEFINED || len > n - at - hdr)
            return bad(&w, at, "a file meta element longer than the file");
        if (u16(b + at + 2) == 0x0010) { /* Transfer Syntax UID */
            size_t k = len < sizeof ts - 1 ? len : sizeof ts - 1;
            memcpy(ts, b + at + hdr, k);
            ts[k] = 0;
            while (k && (ts[k - 1] == 0 || ts[k - 1] == ' '))
                ts[--k] = 0;
        }
        at += hdr + len;
    }
    if (!ts[0])
        return bad(&w, at, "no transfer syntax in the file meta information");
    if (!strcmp(ts, "1.2.840.10008.1.2.2")) {
        snprintf(msg, msgn,
                 "dicom: transfer syntax %s (explicit VR big endian, retired) is not read", ts);
        return -1;
    }
    w.explicit_vr = strcmp(ts, "1.2.840.10008.1.2") != 0;
    /* Native syntaxes: implicit, explicit, deflated; anything else carries
     * encapsulated (compressed) pixel data. */
    int deflated = !strcmp(ts, "1.2.840.10008.1.2.1.99");
    w.encapsulated =
        strcmp(ts, "1.2.840.10008.1.2") && strcmp(ts, "1.2.840.10008.1.2.1") && !deflated;
    if (deflated) {
        uint8_t *ds = NULL;
        size_t dn = 0;
        if (inflate_all(b + at, n - at, &ds, &dn, (size_t)1 << 31))
            return bad(&w, at, "the deflated data set does not inflate");
        walk d = {ds, dn, 1, 0, msg, msgn, {0}, {0}, 0};
        size_t p = 0;
        int rc = walk_set(&d, &p, SIZE_MAX, 0, 0);
        if (rc == 0 && h)
            fill_header(&d, ts, h);
        free(ds);
        return rc;
    }
    int rc = walk_set(&w, &at, SIZE_MAX, 0, 0);
    if (rc == 0 && h)
        fill_header(&w, ts, h);
    return rc;
}
#endif /* FX_NO_DICOM */
