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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/dicom_internal.h"

#define MAX_DEPTH 16
#define UNDEFINED 0xFFFFFFFFu

typedef struct walk {
    const uint8_t *b;
    size_t n;
    int explicit_vr;
    int encapsulated;
    char *msg;
    size_t msgn;
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

int fx_dcm_check(const uint8_t *b, size_t n, char *msg, size_t msgn)
{
    walk w = {b, n, 1, 0, msg, msgn};
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
        walk d = {ds, dn, 1, 0, msg, msgn};
        size_t p = 0;
        int rc = walk_set(&d, &p, SIZE_MAX, 0, 0);
        free(ds);
        return rc;
    }
    return walk_set(&w, &at, SIZE_MAX, 0, 0);
}
#endif /* FX_NO_DICOM */
