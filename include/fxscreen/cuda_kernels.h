/* fxscreen: plain C entry points of the CUDA code in kernels/ (.cu files).
 *
 * These symbols exist only in a build with CUDA (FX_HAVE_CUDA defined by the
 * Makefile when nvcc is found): call them only under #ifdef FX_HAVE_CUDA.
 * This header itself needs no CUDA headers.  Every function checks every
 * CUDA call and returns FX_ERR_DEVICE with the call and CUDA's message. */
#ifndef FXSCREEN_CUDA_KERNELS_H
#define FXSCREEN_CUDA_KERNELS_H

#include "fxscreen/prep.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices visible.  *count = 0 and FX_ERR_DEVICE with the
 * driver's reason when the runtime cannot be queried (no driver, no device). */
fx_status fx_cuda_device_count(int *count, fx_error *err);

/* Make device `index` this thread's current one (cudaSetDevice). */
fx_status fx_cuda_use_device(int index, fx_error *err);

/* Page-lock host memory once (cudaHostRegister), so that copies from it to
 * a GPU are asynchronous DMA; unpin before freeing it.  Unpinning memory
 * that was not pinned is a no-op. */
fx_status fx_cuda_pin(void *ptr, size_t bytes, fx_error *err);
void fx_cuda_unpin(void *ptr);

/* GPU buffers for fx_prep_resize_norm_cuda, grown on demand and reused
 * across calls (one per worker thread; not thread-safe).  Creating one does
 * not touch the GPU; destroy frees everything (NULL is fine). */
typedef struct fx_cuda_prep fx_cuda_prep;
fx_cuda_prep *fx_cuda_prep_create(void);
void fx_cuda_prep_destroy(fx_cuda_prep *ctx);

/* The whole of fx_prep_run on the GPU for an integer plane (U8 / U16;
 * fx_prep_cuda_eligible): the plane uploaded as stored, its histogram made
 * there and read back for the exact percentiles and the stats (the host
 * functions fx_prep_run uses), the window table applied there, then
 * fx_prep_resize_norm_cuda into out (host memory).  Same outputs as
 * fx_prep_run (no plane01) within 1e-5.  s: fx_prep_run's scratch. */
int fx_prep_cuda_eligible(const fx_image *img, const fx_prep_config *cfg);
fx_status fx_prep_run_cuda(fx_cuda_prep *ctx, const fx_image *img, const fx_prep_config *cfg,
                           fx_prep_scratch *s, float *out, fx_prep_geom *geom,
                           fx_image_stats *stats, fx_error *err);

/* Steps 3-6 of fxscreen/prep.h on the GPU: resize (same weight tables as
 * the C reference, src/prep/resize.c), pad/crop, normalise, replicate.
 *   src : float (sh, sw), the windowed (and inverted) [0,1] plane;
 *         device memory when src_on_device, else host memory.
 *   out : float (cfg->channels, cfg->out_h, cfg->out_w), i.e. one CHW item
 *         of an NCHW batch; device memory when out_on_device, else host.
 *   geom: optional; gets fx_prep_geometry(sw, sh) (win_lo/hi = 0/1).
 * Runs on the current device, on the context's own stream, and returns after
 * the work has finished.  A device src must already be complete (the call
 * does not wait for other streams). */
fx_status fx_prep_resize_norm_cuda(fx_cuda_prep *ctx, const float *src, int sh, int sw,
                                   int src_on_device, const fx_prep_config *cfg, float *out,
                                   int out_on_device, fx_prep_geom *geom, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
