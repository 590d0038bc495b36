/* The analysis of a gradient (src/model/grad.c) as the backward plan
 * (src/model/backward.c) reads it: the region of nodes between the layer
 * and the logits, in forward order, and which tensors need gradients. */
#ifndef FX_MODEL_GRAD_INTERNAL_H
#define FX_MODEL_GRAD_INTERNAL_H

#include "fxscreen/grad.h"
#include "model/graph_internal.h"

struct fx_grad {
    const fx_graph *g;
    int layer;   /* tensor index of A */
    int seed;    /* tensor index of the logits */
    int k;       /* classes per image */
    char *need;  /* per tensor: its gradient is computed */
    int *region; /* node indices between A and the logits, topological */
    int n_region;
    const char **keep;
    int n_keep;
    int shortcut; /* region is GAP/ReduceMean -> views -> Gemm */
    int sc_gemm;  /* the Gemm node of the shortcut */
};

/* backward.c, called by fx_grad_run: the plan's backward for per-image
 * targets, dA (A's shape, host float32) overwritten, or left in the
 * backend's memory when dA is NULL (fx_plan_backward_grad).  FX_ERR_USAGE
 * when the plan was not made with opts.grad = gr. */
fx_status fx_plan_backward_run(fx_plan *p, const fx_grad *gr, const int *targets, float *dA,
                               fx_error *err);

/* dA of the last backward in the plan backend's memory (float32), or NULL
 * when the backward runs on host copies (or there is none). */
const float *fx_plan_backward_grad(const fx_plan *p);

/* The shortcut's gradient, one value per (image, channel): dA[i, c, :, :]
 * = v[i * C + c] (fx_grad_has_shortcut). */
void fx_grad_shortcut_values(const fx_grad *gr, const int *targets, float *v);

#endif
