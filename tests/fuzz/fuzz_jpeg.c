/* libFuzzer target for the jpeg loader: header + limit check + load through
 * fx_decode_memory_as with the loader forced (no sniffing, so inputs that
 * lose the magic still reach the decoder).  A 4-megapixel limit keeps each
 * run small; any crash, leak, hang or sanitizer report is a bug.
 * Build: make build/fuzz/fuzz_jpeg   Smoke: tests/fuzz/smoke.sh */
#include <stddef.h>
#include <stdint.h>

#include "fxscreen/loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fx_decode_limits lim = {.max_megapixels = 4};
    fx_image img;
    fx_error err = {0};
    if (fx_decode_memory_as(&fx_jpeg_loader, data, size, &lim, &img, &err) == FX_OK)
        fx_image_free(&img);
    return 0;
}
