/* fx_decode_dump FILE OUT.raw
 *
 * Decodes FILE with fx_decode_file and, on success, prints one line
 *   ok W H BITDEPTH CHANNELS TYPE        (TYPE: u8, u16 or f32)
 * and writes the decoded plane (row-major, native byte order) to OUT.raw.
 * On failure prints `error <status name>: <message>` and exits 2.
 * Used by tests/py/test_decode.py.  The megapixel limit is 500 unless the
 * environment sets FX_MAX_MEGAPIXELS. */
#include <stdio.h>
#include <stdlib.h>

#include "fxscreen/loader.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s FILE OUT.raw\n", argv[0]);
        return 64;
    }
    fx_decode_limits lim = {.max_megapixels = 500};
    const char *env = getenv("FX_MAX_MEGAPIXELS");
    if (env && *env)
        lim.max_megapixels = atof(env);

    fx_image img = {0};
    fx_error err = {0};
    fx_status st = fx_decode_file(argv[1], &lim, &img, &err);
    if (st != FX_OK) {
        printf("error %s: %s\n", fx_status_str(st), err.msg);
        return 2;
    }
    const char *tn = img.info.type == FX_PIX_U8    ? "u8"
                     : img.info.type == FX_PIX_U16 ? "u16"
                                                   : "f32";
    size_t nbytes = fx_image_bytes(&img.info);
    FILE *f = fopen(argv[2], "wb");
    int ok = f != NULL && fwrite(img.pixels, 1, nbytes, f) == nbytes;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok) {
        printf("error i/o error: cannot write %s\n", argv[2]);
        fx_image_free(&img);
        return 2;
    }
    printf("ok %d %d %d %d %s\n", img.info.width, img.info.height, img.info.bit_depth,
           img.info.channels, tn);
    fx_image_free(&img);
    return 0;
}
