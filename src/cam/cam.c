/* fx_cam_run: one batch end to end (forward with the backward's tensors
 * kept, targets, gradient, method, normalise, upsample).  See
 * include/fxscreen/cam.h. */
#include <stdlib.h>
#include <string.h>

#include "fxscreen/cam.h"

void fx_cam_result_free(fx_cam_result *r)
{
    if (!r)
        return;
    free(r->cam_low);
    free(r->cam);
    free(r->target);
    free(r->logits);
    memset(r, 0, sizeof *r);
}

/* Validates the layer (rank 4) and fills the result's sizes. */
static fx_status cam_shapes(const fx_graph *g, const char *layer, fx_cam_result *r, fx_error *err)
{
    fx_shape a, in;
    fx_status st = fx_graph_tensor_shape(g, layer, &a, NULL);
    if (st != FX_OK)
        return fx_error_set(err, FX_ERR_USAGE,
                            "cam: no tensor '%s' in the prepared graph "
                            "(`fxscreen model info MODEL` lists node outputs; BatchNorm outputs "
                            "are folded away)",
                            layer);
    if (a.rank != 4)
        return fx_error_set(err, FX_ERR_USAGE,
                            "cam: layer '%s' has rank %d (want a 4-D N x C x "
                            "H x W feature map)",
                            layer, a.rank);
    if ((st = fx_graph_tensor_shape(g, fx_graph_input_name(g, 0), &in, err)) != FX_OK)
        return st;
    r->n = (int)a.d[0], r->h = (int)a.d[2], r->w = (int)a.d[3];
    r->in_h = (int)in.d[2], r->in_w = (int)in.d[3];
    return FX_OK;
}

static fx_status cam_alloc(fx_cam_result *r, int k, fx_error *err)
{
    r->k = k;
    r->cam_low = malloc((size_t)r->n * r->h * r->w * sizeof(float));
    r->cam = malloc((size_t)r->n * r->in_h * r->in_w * sizeof(float));
    r->target = malloc((size_t)r->n * sizeof(int));
    r->logits = malloc((size_t)r->n * k * sizeof(float));
    if (!r->cam_low || !r->cam || !r->target || !r->logits)
        return fx_error_set(err, FX_ERR_NOMEM, "cam: out of memory");
    return FX_OK;
}

fx_status fx_cam_run(const fx_graph *g, const float *input, const fx_cam_opts *o,
                     fx_cam_result *out, fx_error *err)
{
    fx_cam_result r = {0};
    fx_grad *gr = NULL;
    fx_plan *p = NULL;
    float *dA = NULL;
    const char *layer = o->layer ? o->layer : fx_graph_cam_layer(g);
    if (!layer)
        return fx_error_set(err, FX_ERR_USAGE,
                            "cam: the model has no suggested Grad-CAM layer "
                            "(no global pooling head); name one with --layer");
    fx_status st = cam_shapes(g, layer, &r, err);
    if (st == FX_OK)
        st = fx_grad_create(g, layer, &gr, err);
    if (st == FX_OK)
        st = cam_alloc(&r, fx_grad_num_classes(gr), err);
    if (st != FX_OK)
        goto done;
    r.layer = layer;
    fx_plan_opts po = {.grad = gr,
                       .use_reference = o->use_reference,
                       .device = o->device,
                       .device_index = o->device_index,
                       .precision = o->precision};
    if ((st = fx_plan_create(g, &po, &p, err)) != FX_OK || (st = fx_plan_run(p, input, err)))
        goto done;
    for (int i = 0; i < r.n; i++)
        r.target[i] = o->targets ? o->targets[i] : -1;
    if ((st = fx_grad_targets(gr, p, r.target, err)) != FX_OK)
        goto done;
    memcpy(r.logits, fx_plan_tensor(p, fx_grad_logits_name(gr), NULL),
           (size_t)r.n * r.k * sizeof(float));
    fx_shape as;
    const float *A = fx_plan_tensor(p, layer, &as);
    int c = (int)as.d[1];
    if (fx_cam_method_needs_grad(o->method)) {
        if (!(dA = malloc((size_t)fx_shape_numel(&as) * sizeof(float)))) {
            st = fx_error_set(err, FX_ERR_NOMEM, "cam: out of memory");
            goto done;
        }
        r.shortcut = !o->no_shortcut && fx_grad_has_shortcut(gr);
        if ((st = fx_grad_run(gr, p, r.target, !o->no_shortcut, dA, err)) != FX_OK)
            goto done;
    }
    if ((st = fx_cam_compute(o->method, A, dA, r.n, c, r.h, r.w, r.cam_low)) != FX_OK) {
        fx_error_set(err, st, "cam: %s failed", fx_cam_method_name(o->method));
        goto done;
    }
    fx_cam_normalize(r.cam_low, r.n, r.h, r.w);
    fx_cam_upsample(r.cam_low, r.n, r.h, r.w, r.cam, r.in_h, r.in_w);
done:
    free(dA);
    fx_plan_destroy(p);
    fx_grad_destroy(gr);
    if (st == FX_OK)
        *out = r;
    else
        fx_cam_result_free(&r);
    return st;
}
