/* Which nodes a fast plan fuses (fx_plan_fusion, see plan_internal.h).
 *
 * Fusion (fast plans only): a Conv whose output feeds only an Add with a
 * same-shape operand computed earlier, and/or then only a Relu, a Clip or
 * the SiLU pair Sigmoid(t) + Mul(t, sigmoid), runs them in its epilogue and
 * writes the chain's last tensor directly; a BatchNormalization followed by
 * Relu / Clip likewise.  A BatchNormalization (+ Relu) read only by a
 * pointwise Conv becomes that conv's prologue instead (DenseNet's
 * pre-activation layers: the BN output is never written), and so does a
 * squeeze-excitation Mul(x, gate (N, C, 1, 1)) (EfficientNet's), and a
 * channel Concat that only such a BN reads (DenseNet's growing concats).
 * A pointwise Conv (+ its activation) read only by a depthwise Conv runs
 * inside it (fx_conv_expand_dw: MobileNetV2 / EfficientNet's expansion,
 * whose output, the widest tensor of the block, is then never written).
 * A GlobalAveragePool of a depthwise Conv's output is taken by that conv,
 * plane by plane while in cache (EfficientNet's squeeze-excitation); the
 * pool is not run.
 * The skipped intermediates get no memory.  This is done here, not as a
 * graph rewrite, because only the plan knows which tensors the caller
 * keeps (opts->keep): those are never fused away. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops_common.h"
#include "model/plan_internal.h"
#include "ops/hd.h"
#include "ops/ops_internal.h"

/* Consumers of tensor t among the nodes; first, second: the first two. */
static int consumers(const fx_graph *g, int t, int *first, int *second)
{
    int c = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == t) {
                if (c == 0)
                    *first = i;
                else if (c == 1)
                    *second = i;
                c++;
            }
    return c;
}

static int same_shape(const fx_graph *g, int a, int b)
{
    return g->t[a].dt == FX_DT_FLOAT && g->t[b].dt == FX_DT_FLOAT &&
           g->t[a].shape.rank == g->t[b].shape.rank &&
           !memcmp(g->t[a].shape.d, g->t[b].shape.d, sizeof(int64_t) * (size_t)g->t[a].shape.rank);
}

/* The only consumer of t (which must not be kept), or -1. */
static int sole_consumer(const fx_plan *p, int t)
{
    int a = -1, b = -1;
    return !p->keep[t] && consumers(p->g, t, &a, &b) == 1 ? a : -1;
}

/* Sigmoid(t) and Mul(t, that) as t's only two consumers: the Mul's index. */
static int silu_pair(const fx_plan *p, int t, int *sig)
{
    const fx_graph *g = p->g;
    int a = -1, b = -1;
    if (p->keep[t] || consumers(g, t, &a, &b) != 2)
        return -1;
    int cand[2][2] = {{a, b}, {b, a}}; /* (Sigmoid, Mul) in either order */
    for (int k = 0; k < 2; k++) {
        const fx_node *s = &g->nodes[cand[k][0]], *m = &g->nodes[cand[k][1]];
        if (strcmp(s->op_type, "Sigmoid") || strcmp(m->op_type, "Mul") || m->n_in != 2 ||
            s->in[0] != t || sole_consumer(p, s->out[0]) != cand[k][1])
            continue;
        if ((m->in[0] == t && m->in[1] == s->out[0]) || (m->in[1] == t && m->in[0] == s->out[0])) {
            *sig = cand[k][0];
            return cand[k][1];
        }
    }
    return -1;
}

/* The BN fused into conv c reads t; when t is a channel Concat's output
 * that only the BN read, the conv's prologue reads the Concat's pieces
 * instead and the Concat is not run (DenseNet: each layer's Concat copied
 * every earlier feature map once more). */
static void fuse_concat(fx_plan *p, int c, int t, int b)
{
    const fx_graph *g = p->g;
    int k = g->t[t].kind == FX_T_NODE ? g->t[t].producer : -1;
    if (k < 0 || sole_consumer(p, t) != b || strcmp(g->nodes[k].op_type, "Concat") ||
        g->nodes[k].b.axis != 1 || g->t[t].shape.rank != 4 || p->fuse[k].skip)
        return;
    const fx_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_in; i++)
        if (!is_runtime(g, n->in[i]) || g->t[n->in[i]].dt != FX_DT_FLOAT)
            return;
    p->fuse[c].src = malloc(sizeof *p->fuse[c].src * (size_t)n->n_in);
    p->fuse[c].src_c = malloc(sizeof *p->fuse[c].src_c * (size_t)n->n_in);
    if (!p->fuse[c].src || !p->fuse[c].src_c)
        return; /* freed with the plan; the Concat runs */
    for (int i = 0; i < n->n_in; i++)
        p->fuse[c].src_c[i] = (int)g->t[n->in[i]].shape.d[1];
    p->fuse[c].cat = k;
    p->fuse[c].in0 = -1; /* the Concat's output is never written */
    p->fuse[k].skip = 1;
}

/* The pointwise, ungrouped Conv that alone reads tensor t as its input 0
 * and has no prologue yet, or -1. */
static int pointwise_reader(const fx_plan *p, int t)
{
    const fx_graph *g = p->g;
    int c = sole_consumer(p, t);
    if (c < 0 || strcmp(g->nodes[c].op_type, "Conv") || g->nodes[c].in[0] != t || p->fuse[c].pre ||
        p->fuse[c].gate >= 0)
        return -1;
    const fx_conv2d_params *cp = &g->nodes[c].b.u.conv;
    return fx_conv_fast_path(cp, p->threads) == FX_CONV_POINTWISE && cp->groups == 1 ? c : -1;
}

/* A BatchNormalization (node b, with its Relu when fused; out its chain's
 * last tensor) whose output only a pointwise Conv reads becomes that
 * conv's prologue (fx_conv_epilogue.pre_*): the BN's folded scale and
 * shift per channel, computed here once, as the reference computes them
 * (double, then float).  The BN is then not run and `out` never written;
 * the conv reads the BN's input.  Without memory for the table nothing is
 * fused. */
static void fuse_prologue(fx_plan *p, int b, int out)
{
    const fx_graph *g = p->g;
    const fx_node *bn = &g->nodes[b];
    int c = pointwise_reader(p, out);
    if (c < 0 || g->nodes[c].b.u.conv.c_in != bn->b.u.bn.c)
        return;
    const fx_conv2d_params *cp = &g->nodes[c].b.u.conv;
    for (int k = 1; k < 5; k++)
        if (g->t[bn->in[k]].kind != FX_T_CONST)
            return;
    float *ab = malloc(sizeof(float) * 2 * (size_t)cp->c_in);
    if (!ab)
        return;
    const float *sc = g->t[bn->in[1]].data, *bi = g->t[bn->in[2]].data;
    const float *mu = g->t[bn->in[3]].data, *var = g->t[bn->in[4]].data;
    for (int k = 0; k < cp->c_in; k++)
        fx_hd_bn_coeffs(sc[k], bi[k], mu[k], var[k], bn->b.u.bn.epsilon, &ab[k], &ab[cp->c_in + k]);
    p->fuse[c].pre = ab;
    p->fuse[c].pre_relu = p->fuse[b].act == FX_ACT_RELU;
    p->fuse[c].in0 = bn->in[0];
    p->fuse[b].skip = 1;
    fuse_concat(p, c, bn->in[0], b);
}

/* Mul(x, gate), gate (N, C, 1, 1) against x (N, C, H, W), read only by a
 * pointwise Conv: EfficientNet's squeeze-excitation scaling, done by the
 * conv's prologue on each column chunk; the Mul is not run. */
static void fuse_gate(fx_plan *p, int m)
{
    const fx_graph *g = p->g;
    const fx_node *n = &g->nodes[m];
    if (strcmp(n->op_type, "Mul") || n->n_in != 2 || n->n_out != 1 || p->fuse[m].skip)
        return;
    int c = pointwise_reader(p, n->out[0]);
    for (int k = 0; c >= 0 && k < 2; k++) {
        const fx_shape *x = &g->t[n->in[k]].shape, *s = &g->t[n->in[1 - k]].shape;
        if (!same_shape(g, n->in[k], n->out[0]) || x->rank != 4 || s->rank != 4 ||
            s->d[0] != x->d[0] || s->d[1] != x->d[1] || s->d[2] != 1 || s->d[3] != 1 ||
            g->t[n->in[k]].dt != FX_DT_FLOAT || g->t[n->in[1 - k]].dt != FX_DT_FLOAT)
            continue;
        p->fuse[c].in0 = n->in[k];
        p->fuse[c].gate = n->in[1 - k];
        p->fuse[m].skip = 1;
        return;
    }
}

/* Depthwise Conv d whose input is, alone, the output (after its fused
 * activation) of a pointwise Conv e with no residual and no prologue:
 * d runs e inside (fx_conv_expand_dw) and reads e's input; e is not run
 * and its output never written.  d must have no residual either. */
static void fuse_expand(fx_plan *p, int d)
{
    const fx_graph *g = p->g;
    const fx_node *n = &g->nodes[d];
    plan_fuse *f = &p->fuse[d];
    if (strcmp(n->op_type, "Conv") || f->skip || f->res >= 0 || f->pre || f->gate >= 0 ||
        f->in0 < 0 || g->t[f->in0].kind != FX_T_NODE)
        return;
    int e = -1; /* the node that writes d's input: its producer, or a Conv fused up to it */
    for (int i = 0; i < g->n_nodes && e < 0; i++)
        if (!p->fuse[i].skip && g->nodes[i].n_out && p->fuse[i].out == f->in0)
            e = i;
    if (e < 0 || strcmp(g->nodes[e].op_type, "Conv") || p->fuse[e].res >= 0 || p->fuse[e].pre ||
        p->fuse[e].gate >= 0 || p->fuse[e].in0 != g->nodes[e].in[0] ||
        sole_consumer(p, f->in0) != d)
        return;
    const fx_conv2d_params *pe = &g->nodes[e].b.u.conv, *pd = &n->b.u.conv;
    if (fx_conv_fast_path(pe, p->threads) != FX_CONV_POINTWISE ||
        fx_conv_fast_path(pd, p->threads) != FX_CONV_DEPTHWISE ||
        !fx_conv_expand_dw_applies(pe, pd))
        return;
    f->expand = e;
    f->in0 = p->fuse[e].in0;
    p->fuse[e].skip = 1;
    /* constant weights transposed once here, not on every run (NULL, on
     * a failed allocation too: the conv then transposes into scratch) */
    const fx_tensor *we = &g->t[g->nodes[e].in[1]];
    if (fx_conv_expand_wants_wt(pe, pd) && we->kind == FX_T_CONST &&
        (f->expand_wt = malloc(sizeof(float) * (size_t)pe->c_in * pe->c_out)))
        fx_conv_expand_transpose(pe, we->data, f->expand_wt);
}

/* GlobalAveragePool node m of a tensor that a depthwise Conv writes (its
 * fused chain's last): the conv takes the means (fx_conv_epilogue.gap)
 * and the pool is not run.  The tensor itself is still written (the
 * squeeze-excitation Mul reads it too). */
static void fuse_gap(fx_plan *p, int m)
{
    const fx_graph *g = p->g;
    const fx_node *n = &g->nodes[m];
    if (strcmp(n->op_type, "GlobalAveragePool") || p->fuse[m].skip || n->n_in != 1 ||
        n->n_out != 1 || g->t[n->in[0]].shape.rank != 4 || g->t[n->in[0]].dt != FX_DT_FLOAT)
        return;
    for (int d = 0; d < m; d++) {
        const fx_node *c = &g->nodes[d];
        if (p->fuse[d].skip || p->fuse[d].out != n->in[0] || strcmp(c->op_type, "Conv"))
            continue;
        if (fx_conv_fast_path(&c->b.u.conv, p->threads) == FX_CONV_DEPTHWISE &&
            p->fuse[d].gap < 0) {
            p->fuse[d].gap = n->out[0];
            p->fuse[m].skip = 1;
        }
        return;
    }
}

void fx_plan_fusion(fx_plan *p)
{
    const fx_graph *g = p->g;
    for (int i = 0; i < g->n_nodes; i++)
        p->fuse[i] = (plan_fuse){.out = g->nodes[i].n_out ? g->nodes[i].out[0] : -1,
                                 .in0 = g->nodes[i].n_in ? g->nodes[i].in[0] : -1,
                                 .res = -1,
                                 .gate = -1,
                                 .cat = -1,
                                 .expand = -1,
                                 .gap = -1};
    if (!p->fast || !(p->be->fusions & FX_FUSE_EPILOGUE))
        return;                                    /* reference plans run the graph as it is */
    int cpu = (p->be->fusions & FX_FUSE_CPU) != 0; /* the CPU kernels' own fusions */
    for (int i = 0; i < g->n_nodes; i++) {
        const fx_node *n = &g->nodes[i];
        int conv = !strcmp(n->op_type, "Conv"), bn = !strcmp(n->op_type, "BatchNormalization");
        if ((!conv && !bn) || p->fuse[i].skip || n->n_out != 1)
            continue;
        plan_fuse *f = &p->fuse[i];
        int cur = n->out[0], j = sole_consumer(p, cur), sig;
        if (conv && j >= 0 && !strcmp(g->nodes[j].op_type, "Add") && g->nodes[j].n_in == 2) {
            const fx_node *a = &g->nodes[j];
            int other = a->in[0] == cur ? a->in[1] : a->in[0];
            const fx_tensor *o = &g->t[other];
            /* The operand must exist when the conv runs. */
            int ready = o->kind == FX_T_INPUT || o->kind == FX_T_CONST ||
                        (o->kind == FX_T_NODE && o->producer < i);
            if (other != cur && ready && same_shape(g, other, cur) &&
                same_shape(g, a->out[0], cur)) {
                f->res = other;
                p->fuse[j].skip = 1;
                cur = a->out[0];
                j = sole_consumer(p, cur);
            }
        }
        if (j >= 0 && !strcmp(g->nodes[j].op_type, "Relu")) {
            f->act = FX_ACT_RELU;
        } else if (j >= 0 && !strcmp(g->nodes[j].op_type, "Clip")) {
            f->act = FX_ACT_CLIP;
            f->lo = g->nodes[j].b.u.act.alpha, f->hi = g->nodes[j].b.u.act.beta;
        } else if (conv && (j = silu_pair(p, cur, &sig)) >= 0) {
            f->act = FX_ACT_SILU;
            p->fuse[sig].skip = 1;
        } else
            j = -1;
        if (j >= 0) {
            p->fuse[j].skip = 1;
            cur = g->nodes[j].out[0];
        }
        f->out = cur;
        if (cpu && bn && (f->act == FX_ACT_NONE || f->act == FX_ACT_RELU))
            fuse_prologue(p, i, cur);
    }
    for (int i = 0; cpu && i < g->n_nodes; i++)
        fuse_gate(p, i);
    for (int i = 0; cpu && i < g->n_nodes; i++)
        fuse_expand(p, i);
    for (int i = 0; cpu && i < g->n_nodes; i++)
        fuse_gap(p, i);
}
