/* libFuzzer target for the archive source (src/pool/archive.c over
 * libarchive): every member of a tar/zip (any compression) read from
 * memory, each member's bytes then through the loader table (PNG, TIFF;
 * 4-megapixel limit).  Any crash, leak, hang or sanitizer report is a bug.
 * Build: make build/fuzz/fuzz_archive   Smoke: tests/fuzz/smoke.sh */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fxscreen/loader.h"
#include "pool/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fx_archive *a;
    fx_error err = {0};
    if (fx_archive_open_memory(data, size, &a, &err) != FX_OK)
        return 0;
    fx_archive_member m;
    for (int k = 0; k < 64 && fx_archive_next(a, 0, &m, &err) == 1; k++) {
        const fx_decode_limits lim = {.max_megapixels = 4};
        fx_image img;
        if (m.data && fx_decode_memory(m.data, m.size, &lim, &img, &err) == FX_OK)
            fx_image_free(&img);
        free(m.name);
        free(m.data);
    }
    fx_archive_close(a);
    return 0;
}
