/* fxscreen: the engine's backward pass: the gradient of a logit with
 * respect to an intermediate tensor (what Grad-CAM and its relatives
 * weight a feature map with), by vector-Jacobian products of the engine's
 * ops (src/model/vjp.c) over the region between that tensor and the
 * logits (src/model/grad.c).
 *
 * How the backward reads forward values: the plan is made with
 * fx_plan_opts.grad = this object, so it keeps fx_grad_keep(), every float
 * tensor a node between the layer and the logits reads or writes.  The
 * fast plan never fuses a kept tensor away (src/model/plan.c), so the
 * backward sees exactly the values the fused forward produced, while
 * everything before the layer still runs fused.  The plan also plans the
 * gradients' memory and runs the VJPs through its backend (the CUDA one
 * where it has a node's VJP, else the CPU on the kept tensors' host
 * copies).  The methods that turn (A, dA) into maps are in
 * fxscreen/cam.h. */
#ifndef FXSCREEN_GRAD_H
#define FXSCREEN_GRAD_H

#include "fxscreen/graph.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_grad fx_grad;

/* Analyse the prepared graph g (which must outlive the object) for the
 * gradient of graph output 0 w.r.t. the float tensor `layer`.  The logits
 * are output 0, or its producer's input when output 0 comes straight from a
 * Sigmoid or Softmax (the logit of a sigmoid model, not its probability).
 * Errors: FX_ERR_USAGE (no such tensor, or the logits do not depend on it),
 * FX_ERR_UNSUPPORTED naming the first op on the path without a VJP. */
fx_status fx_grad_create(const fx_graph *g, const char *layer, fx_grad **out, fx_error *err);
void fx_grad_destroy(fx_grad *gr);

/* Tensor names the forward plan must keep (borrowed from the graph). */
int fx_grad_num_keep(const fx_grad *gr);
const char *const *fx_grad_keep(const fx_grad *gr);

/* 1 if the exact GAP + Gemm shortcut applies (see the top comment). */
int fx_grad_has_shortcut(const fx_grad *gr);

/* Name of the logits tensor, and its classes per image (K; 1 for a
 * one-logit model). */
const char *fx_grad_logits_name(const fx_grad *gr);
int fx_grad_num_classes(const fx_grad *gr);

/* Fill every targets[i] < 0 (i < batch) from the plan's last run: the
 * argmax class (first maximum), or 0 (the fracture logit) for a one-logit
 * model.  FX_ERR_USAGE for a target >= K or logits that are not readable. */
fx_status fx_grad_targets(const fx_grad *gr, const fx_plan *p, int *targets, fx_error *err);

/* dA (A's shape, caller-allocated, overwritten) for the plan's last run
 * and per-image targets in [0, K).  The plan must have been made with
 * fx_plan_opts.grad = gr (FX_ERR_USAGE otherwise): it runs the backward
 * in the memory it reserved for it, on its own backend where that backend
 * has every VJP the region needs.  use_shortcut = 0 forces the backward
 * pass even where the shortcut applies (tests compare both).  Not for two
 * threads on one plan. */
fx_status fx_grad_run(fx_grad *gr, fx_plan *p, const int *targets, int use_shortcut, float *dA,
                      fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
