/* libFuzzer target for the PNG loader: header + limit check + load through
 * fx_decode_memory_as with the loader forced (no sniffing, so inputs that
 * lose the magic still reach the decoder).  A 4-megapixel limit keeps each
 * run small; any crash, leak, hang or sanitizer report is a bug.
 *
 * Then the same bytes again with every chunk's CRC recomputed, so that
 * mutations get past the CRC checks into the inflate and unfiltering of
 * both decoders (the fast path, src/io/png_fast.c, and libpng), compared
 * differentially: where both decode, the pixels must be equal (abort
 * otherwise).  The fast path may accept what libpng refuses (its stated
 * libdeflate leniency), not the reverse mismatch of pixels.
 * Build: make build/fuzz/fuzz_png   Smoke: tests/fuzz/smoke.sh */
#include <libdeflate.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/loader.h"
#include "io/png_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Every chunk that lies inside the buffer gets its correct CRC. */
static void fix_crcs(uint8_t *b, size_t n)
{
    for (size_t p = 8; n >= 8 && p + 12 <= n;) {
        uint32_t len = be32(b + p);
        if (len > n - p - 12)
            break;
        uint32_t c = libdeflate_crc32(0, b + p + 4, (size_t)len + 4);
        b[p + 8 + len] = (uint8_t)(c >> 24), b[p + 9 + len] = (uint8_t)(c >> 16);
        b[p + 10 + len] = (uint8_t)(c >> 8), b[p + 11 + len] = (uint8_t)c;
        p += 12 + (size_t)len;
    }
}

static void differential(const uint8_t *b, size_t n, const fx_decode_limits *lim)
{
    const fx_loader *ld = &fx_png_loader;
    fx_image_info info;
    fx_error err = {0};
    if (fx_decode_header(&ld, b, n, lim, &info, &err) != FX_OK)
        return;
    size_t bytes = fx_image_bytes(&info);
    uint8_t *fast = malloc(bytes ? bytes : 1), *ref = malloc(bytes ? bytes : 1);
    if (fast && ref && fx_png_load_fast(b, n, &info, fast) == FX_OK &&
        fx_png_load_libpng(b, n, &info, ref, &err) == FX_OK && memcmp(fast, ref, bytes))
        abort(); /* the fast path decoded other pixels than libpng */
    free(fast);
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fx_decode_limits lim = {.max_megapixels = 4};
    fx_image img;
    fx_error err = {0};
    if (fx_decode_memory_as(&fx_png_loader, data, size, &lim, &img, &err) == FX_OK)
        fx_image_free(&img);
    uint8_t *fixed = size <= (1u << 22) ? malloc(size ? size : 1) : NULL;
    if (fixed) {
        memcpy(fixed, data, size);
        fix_crcs(fixed, size);
        differential(fixed, size, &lim);
        free(fixed);
    }
    return 0;
}
