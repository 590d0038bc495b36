/* Internals of src/cam/: a map's peak and box in map pixels (the part of
 * fx_cam_locate the GPU computes too), and Grad-CAM on the GPU
 * (cam_gpu.c, kernels/cam.cu). */
#ifndef FX_CAM_INTERNAL_H
#define FX_CAM_INTERNAL_H

#include <stdint.h>

#include "backend/cuda_ops.h"
#include "fxscreen/cam.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A map's first maximum (value and flat index) and the pixel box
 * [x0, x1] x [y0, y1] (inclusive) of every pixel >= frac * peak. */
typedef struct fx_cam_px {
    float peak;
    int64_t at;
    int x0, y0, x1, y1;
} fx_cam_px;

/* methods.c: the above on the host, and its translation to original
 * pixels through geom (NULL: the map's own pixels). */
void fx_cam_px_find(const float *map, int H, int W, double frac, fx_cam_px *px);
void fx_cam_px_region(const fx_cam_px *px, int W, int H, const fx_prep_geom *geom,
                      fx_cam_region *r);

/* From (A, dA) to what a run keeps, on the CPU: fx_cam_compute, then
 * normalise and upsample into the scratch low (n, h, w) and cam (n, H, W),
 * then each map's uint8 heat (n, H, W) and its peak and box (px, n).  The
 * same steps as fx_cam_gpu_run; fx_cam_compute's errors. */
fx_status fx_cam_heat(fx_cam_method m, const float *A, const float *dA, int n, int c, int h, int w,
                      int H, int W, double frac, float *low, float *cam, uint8_t *heat,
                      fx_cam_px *px);

/* ---- kernels/cam.cu (queued on stream, never waited for) ------------------ */

/* The raw map low (n, hw) of a gradient method from A (n, c, hw; storage
 * type dt) and G (dA, float32); wt: n x c doubles of scratch. */
fx_status fx_cu_cam_map(void *stream, fx_cu_dtype dt, fx_cam_method m, int n, int c, int hw,
                        const void *A, const float *G, double *wt, float *low, fx_error *err);
/* dA (nc, hw) = v (nc) broadcast: the shortcut's gradient. */
fx_status fx_cu_cam_expand(void *stream, int64_t nc, int hw, const float *v, float *dA,
                           fx_error *err);
/* EigenCAM's raw map low (n, hw) from A, as fx_cam_compute computes it
 * (double; power iteration with the CPU's start, stopping rule and sign);
 * scratch: fx_cu_cam_eigen_bytes of device memory. */
size_t fx_cu_cam_eigen_bytes(int n, int c, int hw);
fx_status fx_cu_cam_eigen(void *stream, fx_cu_dtype dt, int n, int c, int hw, const void *A,
                          void *scratch, float *low, fx_error *err);
/* fx_cam_normalize of (n, hw) in place. */
fx_status fx_cu_cam_normalize(void *stream, int n, int hw, float *low, fx_error *err);
/* fx_cam_upsample to cam (n, H, W) and its uint8 heat. */
fx_status fx_cu_cam_upsample(void *stream, int n, int h, int w, int H, int W, const float *low,
                             float *cam, uint8_t *heat, fx_error *err);
/* fx_cam_px_find per image into out (n, device memory). */
fx_status fx_cu_cam_locate(void *stream, int n, int H, int W, double frac, const float *cam,
                           fx_cam_px *out, fx_error *err);

/* ---- cam_gpu.c --------------------------------------------------------------- */

typedef struct fx_cam_gpu fx_cam_gpu;

/* For a CUDA plan made with opts.grad = gr, maps of the layer of gr at
 * (H, W): device memory for a whole batch reserved here, once.
 * FX_ERR_UNSUPPORTED for a plan that is not on a CUDA device. */
fx_status fx_cam_gpu_create(fx_plan *p, const fx_grad *gr, int H, int W, fx_cam_gpu **out,
                            fx_error *err);
void fx_cam_gpu_destroy(fx_cam_gpu *cg);

/* One batch after fx_plan_run: the gradient for per-image targets (the
 * shortcut where it applies and use_shortcut is set, else the plan's
 * backward, kept on the device when it runs there), the method, ReLU and
 * min-max, upsampling; only the uint8 heat (n, H, W) and the peaks and
 * boxes px (n) come back. */
fx_status fx_cam_gpu_run(fx_cam_gpu *cg, fx_cam_method m, const int *targets, int use_shortcut,
                         double frac, uint8_t *heat, fx_cam_px *px, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
