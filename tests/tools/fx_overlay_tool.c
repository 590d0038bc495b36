/* fx_overlay_tool SRC CONFIG.yaml HEAT.raw OUT.png [--cmap NAME] [--opacity A]
 *                 [--invert 0|1] [--box X0,Y0,X1,Y1]
 * Renders a Grad-CAM overlay of the image SRC the way `fxscreen run` would:
 * decodes it, runs fx_prep_run under CONFIG (for the geometry and the window
 * actually applied), then fx_overlay_write_file with HEAT.raw, a raw uint8
 * (input.height, input.width) heat map at model resolution.  --invert
 * defaults to the config's invert; no --box = no outline.  Prints
 * "geom new_w new_h off_x off_y win_lo win_hi" on stdout.
 * Used by tests/py/test_overlay.py to compare with an independent numpy model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/loader.h"
#include "fxscreen/overlay.h"
#include "fxscreen/prep.h"

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s SRC CONFIG.yaml HEAT.raw OUT.png [--cmap NAME] [--opacity A]\n"
            "          [--invert 0|1] [--box X0,Y0,X1,Y1]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return usage(argv[0]);
    const char *src = argv[1], *cfg_path = argv[2], *heat_path = argv[3], *out = argv[4];
    fx_prep_config cfg;
    fx_error err = {0};
    fx_prep_config_default(&cfg);
    if (fx_prep_config_load(cfg_path, &cfg, &err) != FX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    fx_overlay_opts o;
    fx_overlay_opts_default(&o);
    o.invert = cfg.invert;
    o.draw_box = 0;
    float box[4];
    for (int i = 5; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage(argv[0]);
        i++;
        if (strcmp(a, "--cmap") == 0) {
            if (fx_colormap_parse(v, &o.cmap) != 0) {
                fprintf(stderr, "unknown colour map '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--opacity") == 0) {
            o.opacity = atof(v);
        } else if (strcmp(a, "--invert") == 0) {
            o.invert = atoi(v);
        } else if (strcmp(a, "--box") == 0) {
            if (sscanf(v, "%f,%f,%f,%f", &box[0], &box[1], &box[2], &box[3]) != 4) {
                fprintf(stderr, "bad --box '%s' (want X0,Y0,X1,Y1)\n", v);
                return 2;
            }
            o.draw_box = 1;
        } else {
            return usage(argv[0]);
        }
    }

    /* The geometry and window come from the real preprocessing of SRC. */
    fx_decode_limits lim = {cfg.max_megapixels};
    fx_image img;
    if (fx_decode_file(src, &lim, &img, &err) != FX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t n = (size_t)cfg.out_h * (size_t)cfg.out_w;
    float *tensor = malloc((size_t)cfg.channels * n * sizeof *tensor);
    uint8_t *heat = malloc(n);
    fx_prep_scratch *s = fx_prep_scratch_create();
    fx_prep_geom g;
    int rc = 1;
    FILE *f = NULL;
    if (!tensor || !heat || !s) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    if (fx_prep_run(&img, &cfg, s, tensor, NULL, &g, NULL, &err) != FX_OK) {
        fprintf(stderr, "%s: %s\n", src, err.msg);
        goto done;
    }
    fx_image_free(&img); /* fx_overlay_write_file decodes SRC again, as a job would */
    if (!(f = fopen(heat_path, "rb")) || fread(heat, 1, n, f) != n || fgetc(f) != EOF) {
        fprintf(stderr, "%s: want exactly %d x %d = %zu bytes\n", heat_path, cfg.out_h, cfg.out_w,
                n);
        goto done;
    }
    if (fx_overlay_write_file(src, cfg.max_megapixels, &g, heat, cfg.out_h, cfg.out_w,
                              o.draw_box ? box : NULL, &o, out, &err) != FX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    printf("geom %d %d %d %d %.17g %.17g\n", g.new_w, g.new_h, g.off_x, g.off_y, g.win_lo,
           g.win_hi);
    rc = 0;
done:
    if (f)
        fclose(f);
    fx_prep_scratch_destroy(s);
    free(tensor);
    free(heat);
    fx_image_free(&img);
    return rc;
}
