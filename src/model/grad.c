/* Reverse-mode gradients of a logit w.r.t. an intermediate tensor: see
 * include/fxscreen/grad.h.  Part of the engine: this file analyses the
 * graph (which nodes lie between the layer and the logits, what the
 * forward must keep, the GAP + Gemm shortcut); the plan made with
 * opts.grad runs the backward (src/model/backward.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/grad_internal.h"
#include "model/ops_common.h"
#include "model/vjp.h"

/* The logits: output 0, or the input of a final Sigmoid / Softmax. */
static int find_seed(const fx_graph *g)
{
    int t = g->outputs[0];
    const fx_tensor *x = &g->t[t];
    if (x->kind == FX_T_NODE && x->producer >= 0) {
        const fx_node *p = &g->nodes[x->producer];
        if ((!strcmp(p->op_type, "Sigmoid") || !strcmp(p->op_type, "Softmax")) && p->in[0] >= 0)
            return p->in[0];
    }
    return t;
}

/* dep: forward from A; need: backward from the seed through dep tensors. */
static void mark_region(fx_grad *gr, char *dep)
{
    const fx_graph *g = gr->g;
    dep[gr->layer] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const fx_node *n = &g->nodes[i];
        int any = 0;
        for (int k = 0; k < n->n_in; k++)
            any |= n->in[k] >= 0 && dep[n->in[k]];
        for (int k = 0; k < n->n_out && any; k++)
            dep[n->out[k]] = g->t[n->out[k]].dt == FX_DT_FLOAT;
    }
    gr->need[gr->seed] = dep[gr->seed];
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const fx_node *n = &g->nodes[i];
        int any = 0, from_a = 0;
        for (int k = 0; k < n->n_out; k++)
            any |= gr->need[n->out[k]];
        for (int k = 0; k < n->n_in; k++)
            from_a |= n->in[k] >= 0 && dep[n->in[k]];
        if (!any || !from_a)
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && dep[n->in[k]])
                gr->need[n->in[k]] = 1;
        gr->region[gr->n_region++] = i; /* reversed below */
    }
    for (int i = 0; i < gr->n_region / 2; i++) {
        int t = gr->region[i];
        gr->region[i] = gr->region[gr->n_region - 1 - i];
        gr->region[gr->n_region - 1 - i] = t;
    }
}

/* Every float runtime tensor a region node touches, plus A. */
static fx_status collect_keep(fx_grad *gr)
{
    const fx_graph *g = gr->g;
    char *mark = calloc((size_t)g->n_t + 1, 1);
    gr->keep = calloc((size_t)g->n_t + 1, sizeof *gr->keep);
    if (!mark || !gr->keep) {
        free(mark);
        return FX_ERR_NOMEM;
    }
    mark[gr->layer] = 1;
    for (int r = 0; r < gr->n_region; r++) {
        const fx_node *n = &g->nodes[gr->region[r]];
        for (int k = 0; k < n->n_in + n->n_out; k++) {
            int t = k < n->n_in ? n->in[k] : n->out[k - n->n_in];
            if (t >= 0 && g->t[t].kind != FX_T_CONST && g->t[t].dt == FX_DT_FLOAT)
                mark[t] = 1;
        }
    }
    for (int t = 0; t < g->n_t; t++)
        if (mark[t])
            gr->keep[gr->n_keep++] = g->t[t].name;
    free(mark);
    return FX_OK;
}

/* GAP (or ReduceMean over H, W) of A -> views -> Gemm producing the seed. */
static void find_shortcut(fx_grad *gr)
{
    const fx_graph *g = gr->g;
    const fx_shape *a = &g->t[gr->layer].shape;
    if (gr->n_region < 2 || a->rank != 4)
        return;
    int cur = gr->layer;
    for (int r = 0; r < gr->n_region; r++) {
        const fx_node *n = &g->nodes[gr->region[r]];
        int first = r == 0, last = r == gr->n_region - 1;
        if (n->n_in < 1 || n->in[0] != cur || n->n_out != 1)
            return;
        if (first) {
            int gap = !strcmp(n->op_type, "GlobalAveragePool");
            if (!strcmp(n->op_type, "ReduceMean") && !n->b.kind_flag && n->b.u.red.n_axes == 2) {
                int a0 = fx_axis(n->b.u.red.axes[0], 4), a1 = fx_axis(n->b.u.red.axes[1], 4);
                gap = (a0 == 2 && a1 == 3) || (a0 == 3 && a1 == 2);
            }
            if (!gap)
                return;
        } else if (last) {
            const fx_gemm_params *p = &n->b.u.gemm;
            if (strcmp(n->op_type, "Gemm") || p->trans_a || p->m != a->d[0] || p->k != a->d[1] ||
                fx_in(g, n, 1)->kind != FX_T_CONST || (fx_in(g, n, 2) && gr->need[n->in[2]]) ||
                n->out[0] != gr->seed)
                return;
            gr->sc_gemm = gr->region[r];
        } else if (!fx_vjp_is_view(n))
            return;
        cur = n->out[0];
    }
    gr->shortcut = gr->sc_gemm >= 0;
}

fx_status fx_grad_create(const fx_graph *g, const char *layer, fx_grad **out, fx_error *err)
{
    *out = NULL;
    if (!g->prepared || g->n_outputs < 1)
        return fx_error_set(err, FX_ERR_USAGE, "grad: graph not prepared or without outputs");
    int la = layer ? fx_graph_find(g, layer) : -1;
    if (la < 0 || g->t[la].dt != FX_DT_FLOAT || g->t[la].kind == FX_T_CONST ||
        g->t[la].kind == FX_T_UNDEF)
        return fx_error_set(err, FX_ERR_USAGE,
                            "grad: no activation tensor '%s' in the prepared graph (`fxscreen "
                            "model info` lists node outputs)",
                            layer ? layer : "(null)");
    fx_grad *gr = calloc(1, sizeof *gr);
    char *dep = calloc((size_t)g->n_t + 1, 1);
    fx_status st = FX_ERR_NOMEM;
    if (!gr || !dep)
        goto fail;
    gr->g = g, gr->layer = la, gr->seed = find_seed(g), gr->sc_gemm = -1;
    gr->need = calloc((size_t)g->n_t + 1, 1);
    gr->region = malloc(((size_t)g->n_nodes + 1) * sizeof *gr->region);
    if (!gr->need || !gr->region)
        goto fail;
    mark_region(gr, dep);
    const fx_shape *s = &g->t[gr->seed].shape;
    if (!gr->need[gr->seed] || s->rank < 1) {
        st = fx_error_set(err, FX_ERR_USAGE, "grad: the logits '%s' do not depend on '%s'",
                          g->t[gr->seed].name, layer);
        goto fail;
    }
    gr->k = (int)(fx_shape_numel(s) / s->d[0]);
    for (int r = 0; r < gr->n_region; r++) {
        const fx_node *n = &g->nodes[gr->region[r]];
        char why[96];
        if (!fx_vjp_supported(g, n, gr->need, why, sizeof why)) {
            st = fx_error_set(err, FX_ERR_UNSUPPORTED,
                              "grad: no backward for op %s (node '%s') between '%s' and the "
                              "logits (%s)",
                              n->op_type, n->name, layer, why);
            goto fail;
        }
    }
    if ((st = collect_keep(gr)) != FX_OK)
        goto fail;
    find_shortcut(gr);
    free(dep);
    *out = gr;
    return FX_OK;
fail:
    if (st == FX_ERR_NOMEM)
        fx_error_set(err, st, "grad: out of memory");
    free(dep);
    fx_grad_destroy(gr);
    return st;
}

void fx_grad_destroy(fx_grad *gr)
{
    if (!gr)
        return;
    free(gr->need);
    free(gr->region);
    free(gr->keep);
    free(gr);
}

int fx_grad_num_keep(const fx_grad *gr)
{
    return gr->n_keep;
}

const char *const *fx_grad_keep(const fx_grad *gr)
{
    return gr->keep;
}

int fx_grad_has_shortcut(const fx_grad *gr)
{
    return gr->shortcut;
}

const char *fx_grad_logits_name(const fx_grad *gr)
{
    return gr->g->t[gr->seed].name;
}

int fx_grad_num_classes(const fx_grad *gr)
{
    return gr->k;
}

/* Forward value of tensor t: a constant's data or the plan's kept buffer. */
static const float *value(const fx_grad *gr, const fx_plan *p, int t)
{
    if (t < 0)
        return NULL;
    const fx_tensor *x = &gr->g->t[t];
    return x->kind == FX_T_CONST ? x->data : fx_plan_tensor(p, x->name, NULL);
}

fx_status fx_grad_targets(const fx_grad *gr, const fx_plan *p, int *targets, fx_error *err)
{
    const float *y = value(gr, p, gr->seed);
    int64_t batch = gr->g->t[gr->seed].shape.d[0];
    if (!y)
        return fx_error_set(err, FX_ERR_USAGE, "grad: logits '%s' not kept by the plan",
                            fx_grad_logits_name(gr));
    for (int64_t i = 0; i < batch; i++) {
        if (targets[i] >= gr->k)
            return fx_error_set(err, FX_ERR_USAGE,
                                "target %d for image %lld: the model has %d "
                                "class%s (0..%d)",
                                targets[i], (long long)i, gr->k, gr->k == 1 ? "" : "es", gr->k - 1);
        if (targets[i] >= 0)
            continue;
        int best = 0;
        for (int c = 1; c < gr->k; c++)
            if (y[i * gr->k + c] > y[i * gr->k + best])
                best = c;
        targets[i] = best;
    }
    return FX_OK;
}

/* The shortcut's gradient of image i, channel ch: alpha W[t_i, ch] / (H W). */
static float shortcut_value(const fx_grad *gr, const int *targets, int64_t i, int64_t ch)
{
    const fx_graph *g = gr->g;
    const fx_node *n = &g->nodes[gr->sc_gemm];
    const fx_gemm_params *p = &n->b.u.gemm;
    const fx_shape *a = &g->t[gr->layer].shape;
    const float *w = fx_in(g, n, 1)->data;
    int64_t t = targets[i];
    float wv = p->trans_b ? w[t * p->k + ch] : w[ch * p->n + t];
    return (float)((double)p->alpha * wv / (double)(a->d[2] * a->d[3]));
}

void fx_grad_shortcut_values(const fx_grad *gr, const int *targets, float *v)
{
    const fx_shape *a = &gr->g->t[gr->layer].shape;
    for (int64_t i = 0; i < a->d[0]; i++)
        for (int64_t ch = 0; ch < a->d[1]; ch++)
            v[i * a->d[1] + ch] = shortcut_value(gr, targets, i, ch);
}

/* The exact gradient through GAP -> views -> Gemm: one value per plane. */
static void run_shortcut(const fx_grad *gr, const int *targets, float *dA)
{
    const fx_shape *a = &gr->g->t[gr->layer].shape;
    int64_t c = a->d[1], hw = a->d[2] * a->d[3];
    for (int64_t i = 0; i < a->d[0]; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            float v = shortcut_value(gr, targets, i, ch);
            for (int64_t j = 0; j < hw; j++)
                dA[(i * c + ch) * hw + j] = v;
        }
}

fx_status fx_grad_run(fx_grad *gr, fx_plan *p, const int *targets, int use_shortcut, float *dA,
                      fx_error *err)
{
    int64_t batch = gr->g->t[gr->seed].shape.d[0];
    for (int64_t i = 0; i < batch; i++)
        if (targets[i] < 0 || targets[i] >= gr->k)
            return fx_error_set(err, FX_ERR_USAGE, "grad: target %d out of 0..%d", targets[i],
                                gr->k - 1);
    if (use_shortcut && gr->shortcut) {
        run_shortcut(gr, targets, dA);
        return FX_OK;
    }
    return fx_plan_backward_run(p, gr, targets, dA, err);
}
