/* Reverse-mode gradients of a logit w.r.t. an intermediate tensor: see
 * include/fxscreen/grad.h.  Part of the engine: reads the graph's internals
 * (node params bound at prepare) and the forward values a plan kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/grad.h"
#include "model/ops_common.h"
#include "model/vjp.h"

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
    float **grad; /* per tensor (need[t]), made by the first backward run; or NULL */
};

static int is_view(const fx_node *n)
{
    return (n->def->kind & FX_OPK_VIEW) || (!strcmp(n->op_type, "ReduceMean") && n->b.kind_flag);
}

/* 1 if the graph has a VJP for node n with the inputs that need gradients. */
static int vjp_supported(const fx_grad *gr, const fx_node *n)
{
    /* clang-format off */
    static const char *const ok[] = {
        "Conv", "Gemm", "MatMul", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid",
        "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Gelu", "Add", "Sub", "Mul", "Div",
        "BatchNormalization", "Concat", "Split", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "Transpose", "Pad", "ReduceMean", "Softmax",
        "Slice", "Gather", "Cast"};
    /* clang-format on */
    if (is_view(n))
        return 1;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(n->op_type, ok[i])) {
            /* Conv / BN: only the data input may carry a gradient. */
            int data_only = !strcmp(ok[i], "Conv") || !strcmp(ok[i], "BatchNormalization");
            for (int k = 1; data_only && k < n->n_in; k++)
                if (n->in[k] >= 0 && gr->need[n->in[k]])
                    return 0;
            /* Cast: float to float only (a copy); Gather: the data input */
            if (!strcmp(ok[i], "Cast") &&
                (fx_in(gr->g, n, 0)->dt != FX_DT_FLOAT || fx_out(gr->g, n, 0)->dt != FX_DT_FLOAT))
                return 0;
            if (!strcmp(ok[i], "Gather") && n->in[1] >= 0 && gr->need[n->in[1]])
                return 0;
            return 1;
        }
    return 0;
}

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
        } else if (!is_view(n))
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
        if (!vjp_supported(gr, n)) {
            st = fx_error_set(err, FX_ERR_UNSUPPORTED,
                              "grad: no backward for op %s (node '%s') between '%s' and the "
                              "logits",
                              n->op_type, n->name, layer);
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

static void free_grads(fx_grad *gr)
{
    for (int t = 0; gr->grad && t < gr->g->n_t; t++)
        free(gr->grad[t]);
    free(gr->grad);
    gr->grad = NULL;
}

void fx_grad_destroy(fx_grad *gr)
{
    if (!gr)
        return;
    free_grads(gr);
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

/* The exact gradient through GAP -> views -> Gemm. */
static void run_shortcut(const fx_grad *gr, const int *targets, float *dA)
{
    const fx_graph *g = gr->g;
    const fx_node *n = &g->nodes[gr->sc_gemm];
    const fx_gemm_params *p = &n->b.u.gemm;
    const fx_shape *a = &g->t[gr->layer].shape;
    const float *w = fx_in(g, n, 1)->data;
    int64_t c = a->d[1], hw = a->d[2] * a->d[3];
    for (int64_t i = 0; i < a->d[0]; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            int64_t t = targets[i];
            float wv = p->trans_b ? w[t * p->k + ch] : w[ch * p->n + t];
            float v = (float)((double)p->alpha * wv / (double)hw);
            for (int64_t j = 0; j < hw; j++)
                dA[(i * c + ch) * hw + j] = v;
        }
}

typedef struct bw_ctx {
    const fx_grad *gr;
    const fx_plan *p;
    float **grad; /* per tensor, NULL if not needed */
} bw_ctx;

static float *gin(const bw_ctx *c, const fx_node *n, int k)
{
    return k < n->n_in && n->in[k] >= 0 ? c->grad[n->in[k]] : NULL;
}

static const float *vin(const bw_ctx *c, const fx_node *n, int k)
{
    return k < n->n_in ? value(c->gr, c->p, n->in[k]) : NULL;
}

static fx_status bw_act(const bw_ctx *c, const fx_node *n, const float *dy, float *dx)
{
    static const struct {
        const char *op;
        fx_vjp_act_kind k;
    } kinds[] = {{"Relu", FX_VJP_RELU},
                 {"LeakyRelu", FX_VJP_LEAKY_RELU},
                 {"Clip", FX_VJP_CLIP},
                 {"Sigmoid", FX_VJP_SIGMOID},
                 {"HardSigmoid", FX_VJP_HARD_SIGMOID},
                 {"HardSwish", FX_VJP_HARD_SWISH},
                 {"Tanh", FX_VJP_TANH},
                 {"Elu", FX_VJP_ELU},
                 {"Selu", FX_VJP_SELU},
                 {"Gelu", FX_VJP_GELU}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(n->op_type, kinds[i].op))
            return fx_vjp_act(kinds[i].k, &n->b.u.act, vin(c, n, 0), value(c->gr, c->p, n->out[0]),
                              dy, dx);
    return FX_ERR_INTERNAL;
}

static fx_status bw_concat(const bw_ctx *c, const fx_node *n, const float *dy)
{
    fx_shape *shapes = malloc((size_t)n->n_in * sizeof *shapes);
    float **dxs = malloc((size_t)n->n_in * sizeof *dxs);
    fx_status st = FX_ERR_NOMEM;
    if (shapes && dxs) {
        for (int k = 0; k < n->n_in; k++)
            shapes[k] = fx_in(c->gr->g, n, k)->shape, dxs[k] = gin(c, n, k);
        fx_concat_params cp = {n->n_in, shapes, n->b.axis};
        st = fx_vjp_concat(&cp, dy, dxs);
    }
    free(shapes);
    free(dxs);
    return st;
}

static fx_status bw_split(const bw_ctx *c, const fx_node *n, float *dx)
{
    const float **dys = malloc((size_t)n->n_out * sizeof *dys);
    if (!dys)
        return FX_ERR_NOMEM;
    for (int k = 0; k < n->n_out; k++)
        dys[k] = c->grad[n->out[k]];
    fx_split_params sp = {fx_in(c->gr->g, n, 0)->shape, n->b.axis, n->n_out, n->b.ints};
    fx_status st = fx_vjp_split(&sp, dys, dx);
    free(dys);
    return st;
}

/* One node's VJP: accumulate its output gradients into its inputs'. */
static fx_status bw_node(const bw_ctx *c, const fx_node *n)
{
    const fx_graph *g = c->gr->g;
    const float *dy = c->grad[n->out[0]];
    float *dx = gin(c, n, 0);
    const char *t = n->op_type;
    if (!strcmp(t, "Split"))
        return dx ? bw_split(c, n, dx) : FX_OK;
    if (!dy)
        return FX_OK;
    if (!strcmp(t, "Concat"))
        return bw_concat(c, n, dy);
    if (is_view(n))
        return dx ? fx_vjp_copy(fx_shape_numel(&fx_out(g, n, 0)->shape), dy, dx) : FX_OK;
    if (!strcmp(t, "Add") || !strcmp(t, "Sub") || !strcmp(t, "Mul") || !strcmp(t, "Div"))
        return fx_vjp_binary(t[0], &n->b.u.bin, vin(c, n, 0), vin(c, n, 1), dy, dx, gin(c, n, 1));
    if (!strcmp(t, "Gemm"))
        return fx_vjp_gemm(&n->b.u.gemm, vin(c, n, 0), vin(c, n, 1), dy, dx, gin(c, n, 1),
                           gin(c, n, 2));
    if (!strcmp(t, "MatMul"))
        return fx_vjp_matmul(&n->b.u.mm, vin(c, n, 0), vin(c, n, 1), dy, dx, gin(c, n, 1));
    if (!strcmp(t, "PRelu"))
        return fx_vjp_prelu(&n->b.u.bin, vin(c, n, 0), vin(c, n, 1), dy, dx, gin(c, n, 1));
    if (!dx)
        return FX_OK;
    if (!strcmp(t, "Conv"))
        return fx_vjp_conv2d(&n->b.u.conv, vin(c, n, 1), dy, dx);
    if (!strcmp(t, "BatchNormalization"))
        return fx_vjp_batchnorm(&n->b.u.bn, vin(c, n, 1), vin(c, n, 4), dy, dx);
    if (!strcmp(t, "MaxPool"))
        return fx_vjp_maxpool2d(&n->b.u.pool, vin(c, n, 0), dy, dx);
    if (!strcmp(t, "AveragePool"))
        return fx_vjp_avgpool2d(&n->b.u.pool, dy, dx);
    if (!strcmp(t, "GlobalAveragePool"))
        return fx_vjp_global_avgpool(&n->b.u.gpool, dy, dx);
    if (!strcmp(t, "GlobalMaxPool"))
        return fx_vjp_global_maxpool(&n->b.u.gpool, vin(c, n, 0), dy, dx);
    if (!strcmp(t, "Transpose"))
        return fx_vjp_transpose(&n->b.u.tr, dy, dx);
    if (!strcmp(t, "Pad"))
        return fx_vjp_pad(&n->b.u.pad, dy, dx);
    if (!strcmp(t, "Cast")) /* float to float (vjp_supported) */
        return fx_vjp_copy(fx_shape_numel(&fx_out(g, n, 0)->shape), dy, dx);
    if (!strcmp(t, "Gather")) {
        const fx_tensor *ix = fx_in(g, n, 1);
        return fx_vjp_gather(&fx_in(g, n, 0)->shape, n->b.axis, ix->data,
                             fx_shape_numel(&ix->shape), dy, dx);
    }
    if (!strcmp(t, "Slice")) /* n->b.ints: starts, then steps at FX_OPS_MAX_RANK */
        return fx_vjp_slice(&fx_in(g, n, 0)->shape, &fx_out(g, n, 0)->shape, n->b.ints,
                            n->b.ints + FX_OPS_MAX_RANK, dy, dx);
    if (!strcmp(t, "ReduceMean"))
        return fx_vjp_reduce_mean(&n->b.u.red, dy, dx);
    if (!strcmp(t, "Softmax"))
        return fx_vjp_softmax(&n->b.u.sm, value(c->gr, c->p, n->out[0]), dy, dx);
    return bw_act(c, n, dy, dx);
}

/* Every forward value a region node reads must be readable from the plan. */
static fx_status check_kept(const fx_grad *gr, const fx_plan *p, fx_error *err)
{
    for (int i = 0; i < gr->n_keep; i++)
        if (!fx_plan_tensor(p, gr->keep[i], NULL))
            return fx_error_set(err, FX_ERR_USAGE,
                                "grad: tensor '%s' not kept by the plan (build it with "
                                "keep = fx_grad_keep())",
                                gr->keep[i]);
    return FX_OK;
}

/* The region's gradient buffers, once (kept until destroy). */
static fx_status grad_buffers(fx_grad *gr, fx_error *err)
{
    const fx_graph *g = gr->g;
    if (gr->grad)
        return FX_OK;
    if (!(gr->grad = calloc((size_t)g->n_t + 1, sizeof(float *))))
        return fx_error_set(err, FX_ERR_NOMEM, "grad: out of memory");
    for (int t = 0; t < g->n_t; t++)
        if (gr->need[t] &&
            !(gr->grad[t] = malloc(sizeof(float) * ((size_t)fx_shape_numel(&g->t[t].shape) + 1)))) {
            free_grads(gr);
            return fx_error_set(err, FX_ERR_NOMEM, "grad: out of memory for '%s'", g->t[t].name);
        }
    return FX_OK;
}

fx_status fx_grad_run(fx_grad *gr, const fx_plan *p, const int *targets, int use_shortcut,
                      float *dA, fx_error *err)
{
    const fx_graph *g = gr->g;
    int64_t batch = g->t[gr->seed].shape.d[0], na = fx_shape_numel(&g->t[gr->layer].shape);
    for (int64_t i = 0; i < batch; i++)
        if (targets[i] < 0 || targets[i] >= gr->k)
            return fx_error_set(err, FX_ERR_USAGE, "grad: target %d out of 0..%d", targets[i],
                                gr->k - 1);
    if (use_shortcut && gr->shortcut) {
        run_shortcut(gr, targets, dA);
        return FX_OK;
    }
    fx_status st = check_kept(gr, p, err);
    if (st != FX_OK || (st = grad_buffers(gr, err)) != FX_OK)
        return st;
    bw_ctx c = {gr, p, gr->grad};
    for (int t = 0; t < g->n_t; t++) /* the VJPs accumulate into them */
        if (gr->need[t])
            memset(c.grad[t], 0, sizeof(float) * (size_t)fx_shape_numel(&g->t[t].shape));
    for (int64_t i = 0; i < batch && st == FX_OK; i++)
        c.grad[gr->seed][i * gr->k + targets[i]] = 1.0f;
    for (int r = gr->n_region - 1; r >= 0 && st == FX_OK; r--) {
        const fx_node *n = &g->nodes[gr->region[r]];
        if ((st = bw_node(&c, n)) != FX_OK)
            st = fx_error_set(err, st, "grad: backward of node '%s' (%s) failed (%s)", n->name,
                              n->op_type, fx_status_str(st));
    }
    if (st == FX_OK)
        memcpy(dA, c.grad[gr->layer], (size_t)na * sizeof(float));
    return st;
}
