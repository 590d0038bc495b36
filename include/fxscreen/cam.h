/* fxscreen: class activation maps (Grad-CAM and friends) on a prepared graph.
 *
 * Three layers, usable separately:
 *   1. fx_grad_* (fxscreen/grad.h, part of the engine): the gradient dL/dA
 *      of L = sum over the batch of one chosen logit per image w.r.t. a
 *      named intermediate tensor A, by reverse-mode vector-Jacobian products
 *      over the nodes between A and the logits, run by the plan's backend
 *      (src/model/backward.c).  Only
 *      activations are differentiated, never weights.
 *      When the head after A is global average pooling (or ReduceMean over
 *      H, W), views and one Gemm, the gradient is taken exactly from the
 *      Gemm weights (dA[n,c,:,:] = alpha * W[t_n, c] / (H*W)) and the
 *      backward pass is skipped.
 *   2. fx_cam_compute / fx_cam_normalize / fx_cam_upsample / fx_cam_locate:
 *      the CAM methods on (A, dA), as pytorch-grad-cam defines them, ReLU
 *      and min-max scaling, bilinear upsampling (align_corners=False) and the
 *      peak and box in original-image pixels through fx_prep_geom.
 *   3. fx_cam_run: forward + targets + gradient + method + upsample for one
 *      batch (what `fxscreen model cam` calls).
 *
 * How the backward pass reads forward values: the caller's plan is made
 * with fx_plan_opts.grad, which keeps fx_grad_keep(), every float tensor a
 * node between A and the logits reads or writes, and plans the backward
 * beside the forward (fxscreen/grad.h).  The fast plan never fuses a kept
 * tensor away (src/model/plan.c), so the backward sees exactly the values
 * the fused forward would have produced, while everything before A still
 * runs fused.  Not thread-safe per object; no global state. */
#ifndef FXSCREEN_CAM_H
#define FXSCREEN_CAM_H

#include "fxscreen/grad.h"
#include "fxscreen/graph.h"
#include "fxscreen/prep.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- 2. methods ------------------------------------------------------------- */

typedef enum fx_cam_method {
    FX_CAM_GRADCAM = 0, /* weights = spatial mean of dA */
    FX_CAM_GRADCAMPP,   /* Grad-CAM++ alpha weights (pytorch-grad-cam) */
    FX_CAM_XGRADCAM,    /* weights = sum(dA * A) / (sum(A) + 1e-7) */
    FX_CAM_HIRESCAM,    /* sum over channels of dA * A */
    FX_CAM_LAYERCAM,    /* sum over channels of relu(dA) * A */
    FX_CAM_EIGENCAM,    /* first principal component of A (no gradient) */
    FX_CAM_NUM_METHODS
} fx_cam_method;

/* "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam". */
const char *fx_cam_method_name(fx_cam_method m);
/* FX_ERR_USAGE (listing the names) for an unknown name. */
fx_status fx_cam_method_parse(const char *name, fx_cam_method *m, fx_error *err);
/* 1 if the method reads dA. */
int fx_cam_method_needs_grad(fx_cam_method m);

/* The raw map on A's grid, before ReLU: cam (n, h, w) from A and dA
 * (n, c, h, w; dA may be NULL for EigenCAM).  EigenCAM: per image, X = A
 * as (h*w, c) minus its column means, projected on the first right
 * singular vector v of X (pytorch-grad-cam's get_2d_projection), with the
 * sign fixed so that sum(v) >= 0 (SVD's sign is arbitrary; this makes the
 * map point where the activations are high).  FX_ERR_NOMEM, FX_ERR_USAGE. */
fx_status fx_cam_compute(fx_cam_method m, const float *A, const float *dA, int n, int c, int h,
                         int w, float *cam);

/* In place per image: ReLU, then (x - min) / (max - min + 1e-7) as
 * pytorch-grad-cam's scale_cam_image.  cam: (n, h, w). */
void fx_cam_normalize(float *cam, int n, int h, int w);

/* Bilinear resize (n, h, w) -> (n, H, W), PyTorch align_corners=False. */
void fx_cam_upsample(const float *src, int n, int h, int w, float *dst, int H, int W);

/* Where a map at model resolution points in the original image. */
typedef struct fx_cam_region {
    float peak;            /* the map's maximum */
    double peak_x, peak_y; /* its first maximum's pixel centre, original pixels */
    double x0, y0, x1, y1; /* bounding box (edges, original pixels, clipped to
                              the image) of every pixel >= frac * peak */
} fx_cam_region;

/* map: (H, W) at model input resolution.  geom: the preprocessing
 * (model_x = orig_x * scale_x + off_x), or NULL for the identity (model
 * pixels).  frac in (0, 1] (0.5 is the default callers use). */
fx_status fx_cam_locate(const float *map, int H, int W, const fx_prep_geom *geom, double frac,
                        fx_cam_region *r);

/* ---- 3. one batch, end to end ------------------------------------------------ */

typedef struct fx_cam_opts {
    const char *layer; /* NULL: fx_graph_cam_layer(g) */
    fx_cam_method method;
    const int *targets;    /* per image, < 0 = predicted; NULL: all predicted */
    int no_shortcut;       /* 1: always run the backward pass */
    int use_reference;     /* 1: reference kernels in the forward plan */
    fx_device_kind device; /* the forward plan's (fx_plan_opts); the maps are host code */
    int device_index;
    fx_precision precision;
} fx_cam_opts;

typedef struct fx_cam_result {
    int n, h, w;    /* batch and the layer's grid */
    int in_h, in_w; /* model input size */
    float *cam_low; /* (n, h, w) normalised to [0, 1] */
    float *cam;     /* (n, in_h, in_w) upsampled */
    int *target;    /* (n) the class each map explains */
    float *logits;  /* (n, k) */
    int k;
    int shortcut;      /* 1 if the gradient came from the shortcut */
    const char *layer; /* borrowed from the graph */
} fx_cam_result;

/* Run g (prepared for input's batch and size) on input (N, C, H, W) and
 * compute the maps.  r is filled (fx_cam_result_free releases it) only on
 * FX_OK. */
fx_status fx_cam_run(const fx_graph *g, const float *input, const fx_cam_opts *o, fx_cam_result *r,
                     fx_error *err);
void fx_cam_result_free(fx_cam_result *r);

#ifdef __cplusplus
}
#endif
#endif
