/* The per-element arithmetic of the CAM methods, shared by the CPU code
 * (methods.c, screen.c) and the CUDA kernels (kernels/cam.cu) as host +
 * device inline functions (src/ops/hd.h's FX_HD), so that the CPU tests
 * cover what the GPU computes.  Definitions follow pytorch-grad-cam. */
#ifndef FX_CAM_HD_H
#define FX_CAM_HD_H

#include <stdint.h>

#include "fxscreen/cam.h"
#include "ops/hd.h"

/* One element's share of channel weight s for Grad-CAM (g), XGrad-CAM
 * (g a) and Grad-CAM++ (relu(g) g^2 / (2 g^2 + sa g^3 + 1e-6)); sa: the
 * channel's sum of A. */
FX_HD double fx_hd_cam_wterm(fx_cam_method m, double g, double a, double sa)
{
    if (m == FX_CAM_GRADCAM)
        return g;
    if (m == FX_CAM_XGRADCAM)
        return g * a;
    if (g == 0.0)
        return 0.0;
    double g2 = g * g, aij = g2 / (2.0 * g2 + sa * g2 * g + 1e-6);
    return (g > 0.0 ? g : 0.0) * aij;
}

/* The channel weight from the summed terms s (hw elements). */
FX_HD double fx_hd_cam_weight(fx_cam_method m, double s, double sa, int hw)
{
    return m == FX_CAM_GRADCAM ? s / hw : m == FX_CAM_XGRADCAM ? s / (sa + 1e-7) : s;
}

/* One channel's share of a pixel: wt a for the weighted methods, g a for
 * HiRes-CAM, relu(g) a for Layer-CAM. */
FX_HD double fx_hd_cam_pixel(fx_cam_method m, double wt, double a, double g)
{
    if (m == FX_CAM_HIRESCAM)
        return g * a;
    if (m == FX_CAM_LAYERCAM)
        return (g < 0.0 ? 0.0 : g) * a;
    return wt * a;
}

/* 1 for the methods that weight whole channels (fx_hd_cam_weight). */
FX_HD int fx_hd_cam_channel_weighted(fx_cam_method m)
{
    return m == FX_CAM_GRADCAM || m == FX_CAM_GRADCAMPP || m == FX_CAM_XGRADCAM;
}

/* PyTorch's source index for align_corners=False
 * (area_pixel_compute_source_index): dst of out along an axis of in. */
FX_HD void fx_hd_cam_src(int dst, int in, int out, int *i0, int *i1, float *l1)
{
    float scale = (float)in / (float)out;
    float s = scale * ((float)dst + 0.5f) - 0.5f;
    if (s < 0.0f)
        s = 0.0f;
    *i0 = (int)s;
    *i1 = *i0 + (*i0 < in - 1);
    *l1 = s - (float)*i0;
}

/* The bilinear value between source rows y0, y1 (weight ly on y1) and
 * columns x0, x1 (weight lx on x1) of the w-wide map s. */
FX_HD float fx_hd_cam_lerp2(const float *s, int w, int y0, int y1, float ly, int x0, int x1,
                            float lx)
{
    float top = (1.0f - lx) * s[y0 * w + x0] + lx * s[y0 * w + x1];
    float bot = (1.0f - lx) * s[y1 * w + x0] + lx * s[y1 * w + x1];
    return (1.0f - ly) * top + ly * bot;
}

/* A [0, 1] map value as the stored uint8 heat (rounded, clamped). */
FX_HD uint8_t fx_hd_cam_quant(float c)
{
    float v = c * 255.0f + 0.5f;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

#endif
