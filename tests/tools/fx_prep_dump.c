/* fx_prep_dump CONFIG.yaml IN.raw W H TYPE OUT.raw
 * Runs fx_prep_run on a raw plane (TYPE u8|u16|f32, native byte order,
 * row-major H x W) and writes the float32 output (C, out_h, out_w) to OUT.raw.
 * Prints "geom new_w new_h off_x off_y win_lo win_hi" on stdout.
 * Used by tests/py/test_prep.py to compare with an independent numpy model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/prep.h"

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s CONFIG.yaml IN.raw W H u8|u16|f32 OUT.raw\n", argv[0]);
        return 2;
    }
    fx_prep_config cfg;
    fx_error err = {0};
    fx_prep_config_default(&cfg);
    if (fx_prep_config_load(argv[1], &cfg, &err) != FX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    fx_image img;
    memset(&img, 0, sizeof img);
    img.info.width = atoi(argv[3]);
    img.info.height = atoi(argv[4]);
    img.info.channels = 1;
    if (strcmp(argv[5], "u8") == 0)
        img.info.type = FX_PIX_U8;
    else if (strcmp(argv[5], "u16") == 0)
        img.info.type = FX_PIX_U16;
    else if (strcmp(argv[5], "f32") == 0)
        img.info.type = FX_PIX_F32;
    else {
        fprintf(stderr, "bad type '%s'\n", argv[5]);
        return 2;
    }
    size_t nb = fx_image_bytes(&img.info);
    if (nb == 0) {
        fprintf(stderr, "bad size %s x %s\n", argv[3], argv[4]);
        return 2;
    }
    img.pixels = malloc(nb);
    img.owned = 1;
    FILE *f = fopen(argv[2], "rb");
    if (!img.pixels || !f || fread(img.pixels, 1, nb, f) != nb) {
        fprintf(stderr, "%s: cannot read %zu bytes\n", argv[2], nb);
        return 1;
    }
    fclose(f);
    size_t n = (size_t)cfg.channels * (size_t)cfg.out_h * (size_t)cfg.out_w;
    float *out = malloc(n * sizeof *out);
    fx_prep_scratch *s = fx_prep_scratch_create();
    fx_prep_geom g;
    int rc = 1;
    if (!out || !s)
        fprintf(stderr, "out of memory\n");
    else if (fx_prep_run(&img, &cfg, s, out, NULL, &g, NULL, &err) != FX_OK)
        fprintf(stderr, "%s: %s\n", argv[2], err.msg);
    else if (!(f = fopen(argv[6], "wb")) || fwrite(out, sizeof *out, n, f) != n || fclose(f))
        fprintf(stderr, "%s: cannot write\n", argv[6]);
    else {
        printf("geom %d %d %d %d %.17g %.17g\n", g.new_w, g.new_h, g.off_x, g.off_y, g.win_lo,
               g.win_hi);
        rc = 0;
    }
    fx_prep_scratch_destroy(s);
    free(out);
    fx_image_free(&img);
    return rc;
}
