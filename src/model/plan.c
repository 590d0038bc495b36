/* The executor: memory plan by liveness over the prepared graph's
 * topological order, one arena, per-op kernel choice, fx_plan_run. */
#include <limits.h>
#include <string.h>

#include "model/memplan.h"
#include "model/ops_common.h"

struct fx_plan {
    const fx_graph *g;
    int *root;      /* per tensor: the tensor whose buffer it uses (views alias), -1: none */
    size_t *offset; /* per root tensor: byte offset in the arena */
    char *keep;     /* per tensor: readable after run (outputs, opts->keep) */
    char *arena;
    size_t peak, naive;
    float *ws;      /* conv scratch, the max over convs */
    int fast, poison, max_io;
    const void **inb;
    void **outb;
};

static size_t tensor_bytes(const fx_tensor *t)
{
    return (size_t)fx_shape_numel(&t->shape) * fx_dtype_size(t->dt);
}

static int is_runtime(const fx_graph *g, int t)
{
    return t >= 0 && g->t[t].kind != FX_T_CONST;
}

/* Roots and last-use steps (INT_MAX: never freed). Inputs count as step -1. */
static void liveness(fx_plan *p, int *def, int *last)
{
    const fx_graph *g = p->g;
    for (int t = 0; t < g->n_t; t++)
        p->root[t] = -1, def[t] = INT_MAX, last[t] = -1;
    for (int i = 0; i < g->n_inputs; i++)
        p->root[g->inputs[i]] = g->inputs[i], def[g->inputs[i]] = -1;
    for (int s = 0; s < g->n_nodes; s++) {
        const fx_node *n = &g->nodes[s];
        for (int k = 0; k < n->n_in; k++)
            if (is_runtime(g, n->in[k]) && last[p->root[n->in[k]]] < s)
                last[p->root[n->in[k]]] = s;
        for (int k = 0; k < n->n_out; k++) {
            int t = n->out[k];
            int view = (n->def->kind & FX_OPK_VIEW) && k == 0;
            p->root[t] = view ? p->root[n->in[0]] : t;
            if (!view)
                def[t] = s, last[t] = s;
        }
    }
    for (int t = 0; t < g->n_t; t++)
        if (p->keep[t] && p->root[t] >= 0)
            last[p->root[t]] = INT_MAX;
}

/* First-fit: at each step allocate the node's outputs, then free the roots
 * whose last reader was this step (so no output overlaps its inputs). */
static fx_status assign_offsets(fx_plan *p, const int *def, const int *last, fx_error *err)
{
    const fx_graph *g = p->g;
    fx_memplan m = {0};
    fx_status st = FX_OK;
    for (int s = -1; s < g->n_nodes && st == FX_OK; s++) {
        for (int t = 0; t < g->n_t; t++)
            if (def[t] == s && p->root[t] == t) {
                fx_memplan_alloc(&m, tensor_bytes(&g->t[t]), &p->offset[t]);
                p->naive += fx_memplan_round(tensor_bytes(&g->t[t]) ? tensor_bytes(&g->t[t]) : 1);
            }
        for (int t = 0; t < g->n_t; t++)
            if (def[t] <= s && p->root[t] == t && last[t] == s &&
                fx_memplan_free(&m, p->offset[t], tensor_bytes(&g->t[t])))
                st = fx_error_set(err, FX_ERR_NOMEM, "plan: out of memory");
    }
    p->peak = m.peak;
    fx_memplan_release(&m);
    return st;
}

/* A def step is used once: mark freed roots so the loop above frees each once. */
static void fix_last_for_free(const fx_graph *g, int *last, const int *def)
{
    for (int t = 0; t < g->n_t; t++)
        if (def[t] != INT_MAX && last[t] < def[t])
            last[t] = def[t];
}

static fx_status mark_keep(fx_plan *p, const fx_plan_opts *o, fx_error *err)
{
    const fx_graph *g = p->g;
    for (int i = 0; i < g->n_outputs; i++)
        p->keep[g->outputs[i]] = 1;
    for (int i = 0; o && i < o->n_keep; i++) {
        int t = fx_graph_find(g, o->keep[i]);
        if (t < 0 || (g->t[t].kind == FX_T_NODE && g->t[t].producer < 0) ||
            !g->t[t].shape_known)
            return fx_error_set(err, FX_ERR_USAGE, "plan: no tensor '%s' to keep", o->keep[i]);
        p->keep[t] = 1;
    }
    return FX_OK;
}

static fx_status reserve(fx_plan *p, fx_error *err)
{
    const fx_graph *g = p->g;
    int64_t ws = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const fx_node *n = &g->nodes[i];
        if (n->n_in > p->max_io)
            p->max_io = n->n_in;
        if (n->n_out > p->max_io)
            p->max_io = n->n_out;
        if (p->fast && !strcmp(n->op_type, "Conv")) {
            int64_t w = fx_conv2d_fast_ws_floats(&n->b.u.conv);
            ws = w > ws ? w : ws;
        }
    }
    p->arena = aligned_alloc(FX_MEMPLAN_ALIGN, p->peak ? p->peak : FX_MEMPLAN_ALIGN);
    p->ws = ws > 0 ? malloc((size_t)ws * sizeof(float)) : NULL;
    p->inb = calloc((size_t)p->max_io + 1, sizeof *p->inb);
    p->outb = calloc((size_t)p->max_io + 1, sizeof *p->outb);
    if (!p->arena || (ws > 0 && !p->ws) || !p->inb || !p->outb)
        return fx_error_set(err, FX_ERR_NOMEM, "plan: out of memory (%zu arena bytes)", p->peak);
    return FX_OK;
}

fx_status fx_plan_create(const fx_graph *g, const fx_plan_opts *opts, fx_plan **out,
                         fx_error *err)
{
    *out = NULL;
    if (!g->prepared)
        return fx_error_set(err, FX_ERR_USAGE, "plan: graph not prepared");
    if (g->n_inputs != 1)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "plan: %d graph inputs (want 1)",
                            g->n_inputs);
    fx_plan *p = calloc(1, sizeof *p);
    int *def = malloc(((size_t)g->n_t + 1) * sizeof *def);
    int *last = malloc(((size_t)g->n_t + 1) * sizeof *last);
    fx_status st = FX_ERR_NOMEM;
    if (!p || !def || !last)
        goto fail;
    p->g = g;
    p->fast = !(opts && opts->use_reference);
    p->poison = opts && opts->poison;
    p->root = malloc(((size_t)g->n_t + 1) * sizeof *p->root);
    p->offset = calloc((size_t)g->n_t + 1, sizeof *p->offset);
    p->keep = calloc((size_t)g->n_t + 1, 1);
    if (!p->root || !p->offset || !p->keep)
        goto fail;
    if ((st = mark_keep(p, opts, err)) != FX_OK)
        goto fail;
    liveness(p, def, last);
    fix_last_for_free(g, last, def);
    if ((st = assign_offsets(p, def, last, err)) != FX_OK || (st = reserve(p, err)) != FX_OK)
        goto fail;
    free(def);
    free(last);
    *out = p;
    return FX_OK;
fail:
    if (st == FX_ERR_NOMEM && (!err || err->code != FX_ERR_NOMEM))
        fx_error_set(err, st, "plan: out of memory");
    free(def);
    free(last);
    fx_plan_destroy(p);
    return st;
}

void fx_plan_destroy(fx_plan *p)
{
    if (!p)
        return;
    free(p->root);
    free(p->offset);
    free(p->keep);
    free(p->arena);
    free(p->ws);
    free(p->inb);
    free(p->outb);
    free(p);
}

static void *buffer_of(const fx_plan *p, int t)
{
    const fx_tensor *x = &p->g->t[t];
    if (x->kind == FX_T_CONST)
        return x->data;
    return p->root[t] >= 0 ? p->arena + p->offset[p->root[t]] : NULL;
}

fx_status fx_plan_run(fx_plan *p, const float *input, fx_error *err)
{
    const fx_graph *g = p->g;
    if (!input)
        return fx_error_set(err, FX_ERR_USAGE, "plan: NULL input");
    if (p->poison)
        memset(p->arena, 0xff, p->peak); /* all-ones bytes are NaN floats */
    int in = g->inputs[0];
    memcpy(buffer_of(p, in), input, tensor_bytes(&g->t[in]));
    for (int s = 0; s < g->n_nodes; s++) {
        const fx_node *n = &g->nodes[s];
        if (n->def->kind & FX_OPK_VIEW)
            continue; /* same bytes, aliased */
        for (int k = 0; k < n->n_in; k++)
            p->inb[k] = n->in[k] >= 0 ? buffer_of(p, n->in[k]) : NULL;
        for (int k = 0; k < n->n_out; k++)
            p->outb[k] = buffer_of(p, n->out[k]);
        fx_exec x = {g, p->inb, p->outb, p->ws, p->fast};
        fx_status st = n->def->exec(n, &x);
        if (st != FX_OK)
            return fx_error_set(err, st, "node '%s' (%s): kernel failed (%s)", n->name,
                                n->op_type, fx_status_str(st));
    }
    return FX_OK;
}

const float *fx_plan_tensor(const fx_plan *p, const char *name, fx_shape *shape)
{
    int t = fx_graph_find(p->g, name);
    if (t < 0 || !p->keep[t] || p->g->t[t].dt != FX_DT_FLOAT)
        return NULL;
    if (shape)
        *shape = p->g->t[t].shape;
    return buffer_of(p, t);
}

size_t fx_plan_peak_bytes(const fx_plan *p)
{
    return p->peak;
}

size_t fx_plan_naive_bytes(const fx_plan *p)
{
    return p->naive;
}
