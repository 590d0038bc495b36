/* Colour maps for overlays: names and the 256-entry lookup.  The tables are
 * generated from matplotlib (src/out/colormap_data.h) so our colours match
 * what a numpy/matplotlib user would plot. */
#include <stddef.h>
#include <strings.h>

#include "fxscreen/overlay.h"
#include "out/colormap_data.h"

static const char *const cmap_names[FX_CMAP_NUM] = {"inferno", "viridis", "magma", "plasma",
                                                    "cividis"};

_Static_assert(sizeof fx_colormap_data / sizeof fx_colormap_data[0] == FX_CMAP_NUM,
               "colormap_data.h must hold one table per fx_colormap");

int fx_colormap_parse(const char *name, fx_colormap *out)
{
    if (!name || !out)
        return -1;
    for (int c = 0; c < FX_CMAP_NUM; c++)
        if (strcasecmp(name, cmap_names[c]) == 0) {
            *out = (fx_colormap)c;
            return 0;
        }
    return -1;
}

const char *fx_colormap_name(fx_colormap c)
{
    return (int)c >= 0 && c < FX_CMAP_NUM ? cmap_names[c] : "unknown";
}

void fx_colormap_rgb(fx_colormap c, uint8_t v, uint8_t rgb[3])
{
    if ((int)c < 0 || c >= FX_CMAP_NUM) {
        rgb[0] = rgb[1] = rgb[2] = 0;
        return;
    }
    rgb[0] = fx_colormap_data[c][v][0];
    rgb[1] = fx_colormap_data[c][v][1];
    rgb[2] = fx_colormap_data[c][v][2];
}

const uint8_t (*fx_colormap_table(fx_colormap c))[3]
{
    return (int)c < 0 || c >= FX_CMAP_NUM ? NULL : fx_colormap_data[c];
}
