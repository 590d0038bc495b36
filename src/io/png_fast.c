/* fxscreen: the fast path of the PNG loader, for the radiograph case:
 * non-interlaced grey, 8 or 16 bits.  The IDAT stream is inflated in one
 * call by libdeflate (into a buffer of exactly the size the image needs),
 * then each row is unfiltered in place and copied out (16-bit swapped to
 * native order).
 *
 * It decodes only files that are plainly valid: every chunk inside the
 * file with a name of four letters, CRCs of IHDR, IDAT and IEND right,
 * IDATs consecutive, no critical chunk other than IHDR, IDAT, IEND, the
 * zlib stream (Adler-32 included) exactly one image long within the window
 * its header names, every filter byte 0..4.  Anything else, damage
 * included, returns FX_ERR_UNSUPPORTED and png.c decodes the file with
 * libpng, which then reports the damage in its own words: so errors read
 * as before, and pixels of valid files are bit-exact against libpng
 * (tests/test_png_fast.c compares both on every filter type).
 * One known leniency: libdeflate accepts a few deflate encodings zlib
 * refuses (literal/length symbols 286 and 287 in a fixed-Huffman block,
 * more than 286 / 30 codes declared in a dynamic block header); a stream
 * that uses them and still has a matching Adler-32 decodes here where
 * libpng would stop.  Only a non-conforming encoder writes such streams,
 * and spotting them would mean parsing the deflate stream a second time. */
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#include "io/png_internal.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One chunk at b[pos..]: its length and type, CRC checked when asked. */
static int chunk_at(const uint8_t *b, size_t n, size_t pos, int check_crc, uint32_t *len,
                    uint32_t *type)
{
    if (n - pos < 12)
        return 0;
    *len = be32(b + pos);
    *type = be32(b + pos + 4);
    if (*len > 0x7fffffffu || *len > n - pos - 12)
        return 0;
    if (check_crc && libdeflate_crc32(0, b + pos + 4, (size_t)*len + 4) != be32(b + pos + 8 + *len))
        return 0;
    return 1;
}

#define CHUNK(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

/* Paeth predictor (PNG spec 9.4): the neighbour nearest to a + b - c. */
static inline unsigned paeth(unsigned a, unsigned b, unsigned c)
{
    int p = (int)(a + b) - (int)c, pa = abs(p - (int)a), pb = abs(p - (int)b), pc = abs(p - (int)c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* One row: undo filter f in place (r: the row's bytes, p: the previous
 * unfiltered row, zeros for the first) and write the pixels out in the same
 * pass.  The left neighbour (a) and the upper-left (c) stay in registers:
 * reading r[i - bpp] back from memory made every byte wait for the store
 * before it.  8-bit grey: one byte a pixel; 16-bit: two, big-endian in the
 * file, native uint16 out.  Returns 0 for a filter byte over 4. */
#define ROW_LOOP(PRED)                                                                             \
    for (uint32_t x = 0; x < w; x++) {                                                             \
        if (wide) {                                                                                \
            unsigned bh = p[2 * x], bl = p[2 * x + 1];                                             \
            unsigned h = (r[2 * x] + PRED(ah, bh, ch)) & 255u;                                     \
            unsigned l = (r[2 * x + 1] + PRED(al, bl, cl)) & 255u;                                 \
            r[2 * x] = (uint8_t)h, r[2 * x + 1] = (uint8_t)l;                                      \
            o16[x] = (uint16_t)(h << 8 | l);                                                       \
            ah = h, al = l, ch = bh, cl = bl;                                                      \
        } else {                                                                                   \
            unsigned b = p[x], v = (r[x] + PRED(ah, b, ch)) & 255u;                                \
            r[x] = (uint8_t)v, o8[x] = (uint8_t)v;                                                 \
            ah = v, ch = b;                                                                        \
        }                                                                                          \
    }
#define PRED_NONE(a, b, c)  0u
#define PRED_SUB(a, b, c)   (a)
#define PRED_UP(a, b, c)    (b)
#define PRED_AVG(a, b, c)   (((a) + (b)) >> 1)
#define PRED_PAETH(a, b, c) paeth(a, b, c)

static int unfilter_row(int f, uint8_t *r, const uint8_t *p, uint32_t w, int wide, void *out)
{
    uint16_t *o16 = out;
    uint8_t *o8 = out;
    unsigned ah = 0, al = 0, ch = 0, cl = 0;
    switch (f) {
    case 0: ROW_LOOP(PRED_NONE); return 1;
    case 1: ROW_LOOP(PRED_SUB); return 1;
    case 2: ROW_LOOP(PRED_UP); return 1;
    case 3: ROW_LOOP(PRED_AVG); return 1;
    case 4: ROW_LOOP(PRED_PAETH); return 1;
    }
    return 0;
}

fx_status fx_png_load_fast(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint32_t len, type;
    if (n < 8 + 25 || memcmp(b, sig, 8) || !chunk_at(b, n, 8, 1, &len, &type) ||
        type != CHUNK('I', 'H', 'D', 'R') || len != 13)
        return FX_ERR_UNSUPPORTED;
    const uint8_t *ih = b + 16;
    uint32_t w = be32(ih), h = be32(ih + 4);
    int depth = ih[8], ctype = ih[9];
    if (ctype != 0 || (depth != 8 && depth != 16) || ih[10] || ih[11] || ih[12] || w == 0 ||
        h == 0 || (int64_t)w != info->width || (int64_t)h != info->height ||
        info->type != (depth == 16 ? FX_PIX_U16 : FX_PIX_U8))
        return FX_ERR_UNSUPPORTED;
    /* Walk the chunks: IDATs consecutive, ancillary chunks skipped (libpng
     * warns about their damage and goes on), IEND ends the file. */
    size_t pos = 8 + 25, idat_total = 0, first_idat = 0, n_idat = 0;
    int idat_done = 0;
    for (;;) {
        if (!chunk_at(b, n, pos, 0, &len, &type))
            return FX_ERR_UNSUPPORTED;
        for (int i = 4; i < 8; i++) /* libpng: "invalid chunk type" unless letters */
            if ((b[pos + i] | 0x20) < 'a' || (b[pos + i] | 0x20) > 'z')
                return FX_ERR_UNSUPPORTED;
        int critical = !(b[pos + 4] & 0x20);
        if (type == CHUNK('I', 'D', 'A', 'T')) {
            if (idat_done || !chunk_at(b, n, pos, 1, &len, &type))
                return FX_ERR_UNSUPPORTED;
            if (!n_idat++)
                first_idat = pos;
            idat_total += len;
        } else {
            idat_done = n_idat > 0;
            if (type == CHUNK('I', 'E', 'N', 'D')) {
                if (len || !chunk_at(b, n, pos, 1, &len, &type))
                    return FX_ERR_UNSUPPORTED;
                break;
            }
            if (critical) /* PLTE in a grey image, or unknown: libpng decides */
                return FX_ERR_UNSUPPORTED;
        }
        pos += 12 + (size_t)len;
    }
    if (!n_idat)
        return FX_ERR_UNSUPPORTED;
    size_t bpp = (size_t)depth / 8, rb = (size_t)w * bpp;
    if (rb + 1 > SIZE_MAX / h)
        return FX_ERR_UNSUPPORTED;
    size_t raw_n = (rb + 1) * h;
    uint8_t *raw = malloc(raw_n), *zbuf = NULL;
    const uint8_t *z = b + first_idat + 8;
    if (raw && n_idat > 1 && (zbuf = malloc(idat_total))) { /* gather the IDAT payloads */
        size_t at = 0;
        for (size_t p = first_idat, k = 0; k < n_idat; k++) {
            chunk_at(b, n, p, 0, &len, &type);
            memcpy(zbuf + at, b + p + 8, len);
            at += len;
            p += 12 + (size_t)len;
        }
        z = zbuf;
    }
    /* zlib (so libpng) inflates with the window the header names (CINFO):
     * a distance past it is an error there, libdeflate ignores CINFO.  A
     * window that covers the whole image cannot be exceeded. */
    int cinfo = idat_total >= 2 ? z[0] >> 4 : 8; /* over 7 is invalid: libpng says so */
    int window_ok = cinfo == 7 || (cinfo < 7 && raw_n <= (size_t)256 << cinfo);
    struct libdeflate_decompressor *d =
        raw && (n_idat == 1 || zbuf) && window_ok ? libdeflate_alloc_decompressor() : NULL;
    uint8_t *zero = d ? calloc(1, rb) : NULL; /* the first row's prior */
    size_t got = 0;
    fx_status st = FX_ERR_UNSUPPORTED;
    if (zero &&
        libdeflate_zlib_decompress(d, z, idat_total, raw, raw_n, &got) == LIBDEFLATE_SUCCESS &&
        got == raw_n) {
        const uint8_t *prior = zero;
        st = FX_OK;
        for (uint32_t y = 0; y < h && st == FX_OK; y++) {
            uint8_t *row = raw + (size_t)y * (rb + 1);
            void *out = (uint8_t *)pixels + (size_t)y * rb; /* rb = w * bytes per pixel */
            if (!unfilter_row(row[0], row + 1, prior, w, bpp == 2, out))
                st = FX_ERR_UNSUPPORTED; /* a bad filter byte: libpng names it */
            prior = row + 1;
        }
    }
    free(zero);
    if (d)
        libdeflate_free_decompressor(d);
    free(zbuf);
    free(raw);
    return st;
}
