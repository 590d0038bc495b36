/* Load-time rewrites of fx_graph_prepare: Identity/Dropout elision,
 * BatchNorm folding into the preceding Conv, dead-node removal. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/ops_common.h"

int fx_tensor_num_consumers(const fx_graph *g, int t)
{
    int c = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead)
            for (int k = 0; k < g->nodes[i].n_in; k++)
                c += g->nodes[i].in[k] == t;
    return c;
}

static void replace_uses(fx_graph *g, int from, int to)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == from)
                g->nodes[i].in[k] = to;
}

/* A Pad whose pads are all zero (torch exports DenseNet's AvgPool as
 * Pad(0) + AveragePool): a copy of its input. */
static int zero_pad(const fx_node *n)
{
    if (strcmp(n->op_type, "Pad"))
        return 0;
    for (int i = 0; i < 2 * n->b.u.pad.x.rank; i++)
        if (n->b.u.pad.pads[i])
            return 0;
    return 1;
}

/* Identity / Dropout / zero Pad: consumers read the input directly.  One
 * whose output is a graph output stays (the plan makes it a zero-copy view)
 * so that the output keeps its name. */
fx_status fx_graph_elide_identity(fx_graph *g, fx_error *err)
{
    (void)err;
    for (int i = 0; i < g->n_nodes; i++) {
        fx_node *n = &g->nodes[i];
        if (n->dead ||
            (strcmp(n->op_type, "Identity") && strcmp(n->op_type, "Dropout") && !zero_pad(n)))
            continue;
        if (fx_out(g, n, 0)->is_output)
            continue;
        replace_uses(g, n->out[0], n->in[0]);
        n->dead = 1;
    }
    return FX_OK;
}

/* A new constant named "<base><suffix>" owning data. */
static int add_owned_const(fx_graph *g, const char *base, const char *suffix, const fx_shape *s,
                           float *data)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    int t = fx_graph_intern(g, name);
    if (t < 0 || g->t[t].kind != FX_T_UNDEF)
        return -1;
    g->t[t].kind = FX_T_CONST;
    g->t[t].dt = FX_DT_FLOAT;
    g->t[t].shape = *s;
    g->t[t].shape_known = 1;
    g->t[t].data = data;
    return t;
}

static int bn_foldable(const fx_graph *g, const fx_node *bn, const fx_node **conv_out)
{
    const fx_tensor *x = fx_in(g, bn, 0);
    if (x->kind != FX_T_NODE || x->is_output || fx_tensor_num_consumers(g, bn->in[0]) != 1)
        return 0;
    const fx_node *c = &g->nodes[x->producer];
    if (c->dead || strcmp(c->op_type, "Conv") || fx_in(g, c, 1)->kind != FX_T_CONST ||
        (fx_in(g, c, 2) && fx_in(g, c, 2)->kind != FX_T_CONST))
        return 0;
    for (int k = 1; k < 5; k++)
        if (fx_in(g, bn, k)->kind != FX_T_CONST)
            return 0;
    *conv_out = c;
    return 1;
}

/* w' = w * s / sqrt(v + eps), b' = (b - m) * s / sqrt(v + eps) + beta. */
static fx_status fold_one(fx_graph *g, fx_node *bn, fx_node *c, fx_error *err)
{
    const fx_conv2d_params *p = &c->b.u.conv;
    const float *s = fx_in(g, bn, 1)->data, *beta = fx_in(g, bn, 2)->data;
    const float *m = fx_in(g, bn, 3)->data, *v = fx_in(g, bn, 4)->data;
    const fx_tensor *wt = fx_in(g, c, 1), *bt = fx_in(g, c, 2);
    int64_t per = fx_shape_numel(&wt->shape) / p->c_out;
    float *w = malloc((size_t)fx_shape_numel(&wt->shape) * sizeof *w);
    float *b = malloc((size_t)p->c_out * sizeof *b);
    if (!w || !b) {
        free(w);
        free(b);
        return NODE_ERR(err, bn, FX_ERR_NOMEM, "out of memory folding into '%s'", c->name);
    }
    for (int o = 0; o < p->c_out; o++) {
        double f = (double)s[o] / sqrt((double)v[o] + (double)bn->b.u.bn.epsilon);
        for (int64_t e = 0; e < per; e++)
            w[o * per + e] = (float)(((const float *)wt->data)[o * per + e] * f);
        double b0 = bt ? ((const float *)bt->data)[o] : 0.0;
        b[o] = (float)((b0 - m[o]) * f + beta[o]);
    }
    fx_shape bs = {1, {p->c_out}};
    int tw = add_owned_const(g, bn->name, ":folded_w", &wt->shape, w);
    if (tw < 0) {
        free(w);
        free(b);
        return NODE_ERR(err, bn, FX_ERR_NOMEM, "cannot name the folded weights");
    }
    int tb = add_owned_const(g, bn->name, ":folded_b", &bs, b);
    if (tb < 0) {
        free(b);
        return NODE_ERR(err, bn, FX_ERR_NOMEM, "cannot name the folded bias");
    }
    if (c->n_in < 3) {
        int *in = realloc(c->in, 3 * sizeof *in);
        if (!in)
            return NODE_ERR(err, bn, FX_ERR_NOMEM, "out of memory");
        c->in = in;
        c->n_in = 3;
    }
    c->in[1] = tw;
    c->in[2] = tb;
    g->t[c->out[0]].producer = -1; /* the conv's own output is gone */
    g->t[c->out[0]].folded_into = bn->out[0];
    c->out[0] = bn->out[0];
    g->t[bn->out[0]].producer = (int)(c - g->nodes);
    bn->dead = 1;
    return FX_OK;
}

fx_status fx_graph_fold_bn(fx_graph *g, fx_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        fx_node *n = &g->nodes[i];
        const fx_node *c;
        if (n->dead || strcmp(n->op_type, "BatchNormalization") || !bn_foldable(g, n, &c))
            continue;
        fx_status st = fold_one(g, n, &g->nodes[c - g->nodes], err);
        if (st != FX_OK)
            return st;
    }
    return FX_OK;
}

/* Drop folded/elided nodes and those that reach no graph output; free
 * constants nothing reads any more. */
fx_status fx_graph_drop_dead(fx_graph *g, fx_error *err)
{
    char *need = calloc((size_t)g->n_t + 1, 1);
    if (!need)
        return fx_error_set(err, FX_ERR_NOMEM, "prepare: out of memory");
    for (int i = 0; i < g->n_outputs; i++)
        need[g->outputs[i]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        fx_node *n = &g->nodes[i];
        int used = 0;
        for (int k = 0; k < n->n_out; k++)
            used |= need[n->out[k]];
        if (!used)
            n->dead = 1;
        if (n->dead)
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                need[n->in[k]] = 1;
    }
    for (int i = 0; i < g->n_nodes; i++) /* what dead nodes wrote is produced no more */
        for (int k = 0; g->nodes[i].dead && k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0 && g->t[g->nodes[i].out[k]].producer == i)
                g->t[g->nodes[i].out[k]].producer = -1;
    int kept = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) {
            fx_node_free(&g->nodes[i]);
            continue;
        }
        g->nodes[kept] = g->nodes[i];
        for (int k = 0; k < g->nodes[kept].n_out; k++)
            g->t[g->nodes[kept].out[k]].producer = kept;
        kept++;
    }
    g->n_nodes = kept;
    for (int t = 0; t < g->n_t; t++)
        if (g->t[t].kind == FX_T_CONST && !need[t])
            FX_FREE(g->t[t].data);
    free(need);
    return FX_OK;
}
