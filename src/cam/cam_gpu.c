/* Grad-CAM on the GPU for a CUDA plan (see cam_internal.h): the layer's
 * activations are read where the forward left them, the gradient where the
 * backward left it (or made here from the shortcut's per-channel values),
 * EigenCAM's SVD by power iteration there too, and only the uint8 heat and
 * the peaks and boxes cross to the host.  All
 * work is queued on the plan's stream, so it orders after the forward and
 * the backward without a device-wide synchronisation; the one wait is the
 * download at the end.  Only compiled with FX_HAVE_CUDA. */
#ifdef FX_HAVE_CUDA
#include <stdlib.h>
#include <string.h>

#include "backend/cuda_internal.h"
#include "cam/cam_internal.h"
#include "model/grad_internal.h"
#include "model/plan_internal.h"

struct fx_cam_gpu {
    fx_plan *p;
    const fx_grad *gr;
    void *stream;
    fx_cu_dtype dt;
    int dev, layer, n, c, h, w, H, W;
    const void *A; /* the layer in the plan's arena */
    /* device: */
    float *dA;  /* (n, c, h, w): the shortcut's or a host backward's gradient */
    float *v;   /* (n, c): the shortcut's values */
    double *wt; /* (n, c) */
    float *low; /* (n, h, w) */
    float *cam; /* (n, H, W) */
    uint8_t *heat;
    fx_cam_px *px;
    void *eig; /* EigenCAM's scratch (fx_cu_cam_eigen_bytes) */
    /* host: */
    float *host; /* the shortcut's values or a host backward's dA */
};

void fx_cam_gpu_destroy(fx_cam_gpu *cg)
{
    if (!cg)
        return;
    cudaFree(cg->dA);
    cudaFree(cg->v);
    cudaFree(cg->wt);
    cudaFree(cg->low);
    cudaFree(cg->cam);
    cudaFree(cg->heat);
    cudaFree(cg->px);
    cudaFree(cg->eig);
    free(cg->host);
    free(cg);
}

static fx_status reserve(fx_cam_gpu *cg, fx_error *err)
{
    CU_CHECK(cudaSetDevice(cg->dev));
    size_t nc = (size_t)cg->n * cg->c, hw = (size_t)cg->h * cg->w, HW = (size_t)cg->H * cg->W;
    CU_CHECK(cudaMalloc((void **)&cg->dA, nc * hw * sizeof(float)));
    CU_CHECK(cudaMalloc((void **)&cg->v, nc * sizeof(float)));
    CU_CHECK(cudaMalloc((void **)&cg->wt, nc * sizeof(double)));
    CU_CHECK(cudaMalloc((void **)&cg->low, (size_t)cg->n * hw * sizeof(float)));
    CU_CHECK(cudaMalloc((void **)&cg->cam, (size_t)cg->n * HW * sizeof(float)));
    CU_CHECK(cudaMalloc((void **)&cg->heat, (size_t)cg->n * HW));
    CU_CHECK(cudaMalloc((void **)&cg->px, (size_t)cg->n * sizeof(fx_cam_px)));
    CU_CHECK(cudaMalloc(&cg->eig, fx_cu_cam_eigen_bytes(cg->n, cg->c, (int)hw)));
    if (!(cg->host = malloc(nc * hw * sizeof(float))))
        return fx_error_set(err, FX_ERR_NOMEM, "cam (GPU): out of memory");
    return FX_OK;
}

fx_status fx_cam_gpu_create(fx_plan *p, const fx_grad *gr, int H, int W, fx_cam_gpu **out,
                            fx_error *err)
{
    *out = NULL;
    if (!p->be->queue || p->be->host_memory || !p->bw || H < 1 || W < 1)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "cam (GPU): the plan is not on a CUDA device with this gradient");
    const fx_shape *a = &p->g->t[gr->layer].shape;
    if (a->rank != 4)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "cam (GPU): the layer is not 4-D");
    fx_cam_gpu *cg = calloc(1, sizeof *cg);
    if (!cg)
        return fx_error_set(err, FX_ERR_NOMEM, "cam (GPU): out of memory");
    int storage;
    p->be->queue(p->bectx, &cg->stream, &storage, &cg->dev);
    cg->p = p, cg->gr = gr, cg->dt = (fx_cu_dtype)storage, cg->layer = gr->layer;
    cg->n = (int)a->d[0], cg->c = (int)a->d[1], cg->h = (int)a->d[2], cg->w = (int)a->d[3];
    cg->H = H, cg->W = W;
    cg->A = fx_plan_buffer(p, gr->layer);
    fx_status st = reserve(cg, err);
    if (st != FX_OK) {
        fx_cam_gpu_destroy(cg);
        return st;
    }
    *out = cg;
    return FX_OK;
}

/* dA on the device for the method: the shortcut's planes, the backward's
 * own buffer, or a host backward's result uploaded. */
static fx_status gradient(fx_cam_gpu *cg, const int *targets, int use_shortcut, const float **G,
                          fx_error *err)
{
    size_t nc = (size_t)cg->n * cg->c, hw = (size_t)cg->h * cg->w;
    cudaStream_t s = cg->stream;
    if (use_shortcut && fx_grad_has_shortcut(cg->gr)) {
        fx_grad_shortcut_values(cg->gr, targets, cg->host);
        CU_CHECK(cudaMemcpyAsync(cg->v, cg->host, nc * sizeof(float), cudaMemcpyHostToDevice, s));
        *G = cg->dA;
        return fx_cu_cam_expand(cg->stream, (int64_t)nc, (int)hw, cg->v, cg->dA, err);
    }
    const float *dev = fx_plan_backward_grad(cg->p);
    fx_status st = fx_plan_backward_run(cg->p, cg->gr, targets, dev ? NULL : cg->host, err);
    if (st != FX_OK)
        return st;
    if (dev) {
        *G = dev;
        return FX_OK;
    }
    CU_CHECK(cudaMemcpyAsync(cg->dA, cg->host, nc * hw * sizeof(float), cudaMemcpyHostToDevice, s));
    *G = cg->dA;
    return FX_OK;
}

fx_status fx_cam_gpu_run(fx_cam_gpu *cg, fx_cam_method m, const int *targets, int use_shortcut,
                         double frac, uint8_t *heat, fx_cam_px *px, fx_error *err)
{
    int hw = cg->h * cg->w;
    cudaStream_t s = cg->stream;
    fx_status st = FX_OK;
    CU_CHECK(cudaSetDevice(cg->dev)); /* this thread may not be the creating one */
    if (m == FX_CAM_EIGENCAM)
        st = fx_cu_cam_eigen(s, cg->dt, cg->n, cg->c, hw, cg->A, cg->eig, cg->low, err);
    else {
        const float *G = NULL;
        if (fx_cam_method_needs_grad(m) &&
            (st = gradient(cg, targets, use_shortcut, &G, err)) != FX_OK)
            return st;
        st = fx_cu_cam_map(s, cg->dt, m, cg->n, cg->c, hw, cg->A, G, cg->wt, cg->low, err);
    }
    if (st == FX_OK)
        st = fx_cu_cam_normalize(s, cg->n, hw, cg->low, err);
    if (st == FX_OK)
        st = fx_cu_cam_upsample(s, cg->n, cg->h, cg->w, cg->H, cg->W, cg->low, cg->cam, cg->heat,
                                err);
    if (st == FX_OK)
        st = fx_cu_cam_locate(s, cg->n, cg->H, cg->W, frac, cg->cam, cg->px, err);
    if (st != FX_OK)
        return st;
    CU_CHECK(
        cudaMemcpyAsync(heat, cg->heat, (size_t)cg->n * cg->H * cg->W, cudaMemcpyDeviceToHost, s));
    CU_CHECK(
        cudaMemcpyAsync(px, cg->px, (size_t)cg->n * sizeof(fx_cam_px), cudaMemcpyDeviceToHost, s));
    CU_CHECK(cudaStreamSynchronize(s));
    return FX_OK;
}
#endif
