#include "fxscreen/image.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t fx_pixtype_size(fx_pixtype t)
{
    switch (t) {
    case FX_PIX_U8: return 1;
    case FX_PIX_U16: return 2;
    case FX_PIX_F32: return 4;
    }
    return 0;
}

size_t fx_image_bytes(const fx_image_info *info)
{
    size_t e = fx_pixtype_size(info->type);
    if (info->width <= 0 || info->height <= 0 || e == 0)
        return 0;
    size_t w = (size_t)info->width, h = (size_t)info->height;
    if (w > SIZE_MAX / h || w * h > SIZE_MAX / e)
        return 0;
    return w * h * e;
}

void fx_image_free(fx_image *img)
{
    if (!img)
        return;
    if (img->owned)
        free(img->pixels);
    memset(img, 0, sizeof *img);
}

void fx_image_stats_compute(const fx_image *img, fx_image_stats *out)
{
    size_t n = (size_t)img->info.width * (size_t)img->info.height;
    double mn = 0, mx = 0, sum = 0;
    if (n == 0 || !img->pixels) {
        out->min = out->max = out->mean = 0;
        return;
    }
#define FX_STATS_LOOP(T)                                                                           \
    do {                                                                                           \
        const T *p = (const T *)img->pixels;                                                       \
        mn = mx = (double)p[0];                                                                    \
        for (size_t i = 0; i < n; i++) {                                                           \
            double v = (double)p[i];                                                               \
            if (v < mn)                                                                            \
                mn = v;                                                                            \
            if (v > mx)                                                                            \
                mx = v;                                                                            \
            sum += v;                                                                              \
        }                                                                                          \
    } while (0)
    switch (img->info.type) {
    case FX_PIX_U8: FX_STATS_LOOP(uint8_t); break;
    case FX_PIX_U16: FX_STATS_LOOP(uint16_t); break;
    case FX_PIX_F32: FX_STATS_LOOP(float); break;
    }
#undef FX_STATS_LOOP
    out->min = mn;
    out->max = mx;
    out->mean = sum / (double)n;
}
