/* fx_graph_prepare's first half: fix the input shapes, order the nodes,
 * bind every node (shape inference) and fold constant subgraphs. */
#include <string.h>

#include "model/ops_common.h"

static fx_status fix_inputs(fx_graph *g, int batch, int in_h, int in_w, fx_error *err)
{
    if (batch < 1 || in_h < 1 || in_w < 1)
        return fx_error_set(err, FX_ERR_USAGE, "prepare: batch %d, size %dx%d must be >= 1",
                            batch, in_h, in_w);
    if (g->n_inputs < 1)
        return fx_error_set(err, FX_ERR_FORMAT, "graph has no input");
    for (int i = 0; i < g->n_inputs; i++) {
        fx_tensor *t = &g->t[g->inputs[i]];
        if (t->dt != FX_DT_FLOAT || t->shape.rank != 4 || t->shape.d[1] < 1)
            return fx_error_set(err, FX_ERR_UNSUPPORTED,
                                "input '%s': want float32 NCHW with a fixed C (rank %d, dtype %d)",
                                t->name, t->shape.rank, (int)t->dt);
        t->shape.d[0] = batch;
        t->shape.d[2] = in_h;
        t->shape.d[3] = in_w;
        t->shape_known = 1;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->t[g->outputs[i]].kind == FX_T_UNDEF)
            return fx_error_set(err, FX_ERR_FORMAT, "output '%s' is produced by no node",
                                g->t[g->outputs[i]].name);
    return FX_OK;
}

/* Kahn's algorithm; nodes are permuted into topological order and
 * producer indices updated.  A cycle or an undefined input is an error. */
fx_status fx_graph_toposort(fx_graph *g, fx_error *err)
{
    int nn = g->n_nodes;
    int *indeg = calloc((size_t)nn + 1, sizeof *indeg), *order = malloc(((size_t)nn + 1) * sizeof *order);
    fx_node *sorted = malloc(((size_t)nn + 1) * sizeof *sorted);
    fx_status st = FX_OK;
    if (!indeg || !order || !sorted) {
        st = fx_error_set(err, FX_ERR_NOMEM, "prepare: out of memory");
        goto done;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            const fx_tensor *t = fx_in(g, &g->nodes[i], k);
            if (t && t->kind == FX_T_UNDEF) {
                st = NODE_ERR(err, &g->nodes[i], FX_ERR_FORMAT, "input '%s' is not defined",
                              t->name);
                goto done;
            }
            indeg[i] += t && t->kind == FX_T_NODE;
        }
    int head = 0, tail = 0;
    for (int i = 0; i < nn; i++)
        if (!indeg[i])
            order[tail++] = i;
    while (head < tail) {
        const fx_node *n = &g->nodes[order[head++]];
        for (int k = 0; k < n->n_out; k++)
            for (int j = 0; j < nn; j++) /* consumers */
                for (int m = 0; m < g->nodes[j].n_in; m++)
                    if (g->nodes[j].in[m] == n->out[k] && --indeg[j] == 0)
                        order[tail++] = j;
    }
    if (tail != nn) {
        for (int i = 0; i < nn; i++)
            if (indeg[i]) {
                st = NODE_ERR(err, &g->nodes[i], FX_ERR_FORMAT, "part of a cycle");
                break;
            }
        goto done;
    }
    for (int i = 0; i < nn; i++)
        sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, (size_t)nn * sizeof *sorted);
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            g->t[g->nodes[i].out[k]].producer = i;
done:
    free(indeg);
    free(order);
    free(sorted);
    return st;
}

static int is_foldable(const fx_graph *g, const fx_node *n)
{
    if (n->def->kind & FX_OPK_SHAPEONLY)
        return 1;
    for (int k = 0; k < n->n_in; k++) {
        const fx_tensor *t = fx_in(g, n, k);
        if (t && t->kind != FX_T_CONST)
            return 0;
    }
    return 1;
}

/* Evaluate n now with the reference kernels; its outputs become constants. */
static fx_status fold_node(fx_graph *g, fx_node *n, fx_error *err)
{
    const void *in[64] = {0};
    void *out[64] = {0};
    if (n->n_in > 64 || n->n_out > 64)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "too many inputs/outputs to fold");
    for (int k = 0; k < n->n_in; k++)
        in[k] = fx_in(g, n, k) ? fx_in(g, n, k)->data : NULL;
    for (int k = 0; k < n->n_out; k++) {
        fx_tensor *t = fx_out(g, n, k);
        size_t bytes = (size_t)fx_shape_numel(&t->shape) * fx_dtype_size(t->dt);
        if (!(t->data = malloc(bytes ? bytes : 1)))
            return NODE_ERR(err, n, FX_ERR_NOMEM, "out of memory folding");
        out[k] = t->data;
    }
    fx_exec x = {g, in, out, NULL, 0};
    fx_status st = n->def->exec(n, &x);
    if (st != FX_OK)
        return NODE_ERR(err, n, st, "evaluating constant inputs failed (%s)", fx_status_str(st));
    for (int k = 0; k < n->n_out; k++)
        fx_out(g, n, k)->kind = FX_T_CONST;
    n->dead = 1;
    return FX_OK;
}

/* Bind every node in order; fold those whose inputs are all constant. */
fx_status fx_graph_infer(fx_graph *g, fx_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        fx_node *n = &g->nodes[i];
        n->def = fx_op_find(n->op_type);
        if (!n->def)
            return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "unsupported op");
        fx_status st = n->def->bind(g, n, err);
        if (st != FX_OK)
            return st;
        for (int k = 0; k < n->n_out; k++)
            if (fx_shape_numel(&fx_out(g, n, k)->shape) < 0)
                return NODE_ERR(err, n, FX_ERR_FORMAT, "output '%s' has an invalid shape",
                                fx_out(g, n, k)->name);
        if (is_foldable(g, n) && (st = fold_node(g, n, err)) != FX_OK)
            return st;
        if (!n->dead)
            for (int k = 0; k < n->n_out; k++)
                if (fx_out(g, n, k)->dt != FX_DT_FLOAT)
                    return NODE_ERR(err, n, FX_ERR_UNSUPPORTED,
                                    "int64 output '%s' does not fold to a constant",
                                    fx_out(g, n, k)->name);
    }
    return FX_OK;
}

fx_status fx_graph_prepare(fx_graph *g, int batch, int in_h, int in_w, fx_error *err)
{
    if (g->prepared)
        return fx_error_set(err, FX_ERR_USAGE, "graph: already prepared");
    fx_status st = fx_graph_check_supported(g, err);
    if (st == FX_OK)
        st = fix_inputs(g, batch, in_h, in_w, err);
    if (st == FX_OK)
        st = fx_graph_toposort(g, err);
    if (st == FX_OK)
        st = fx_graph_infer(g, err);
    if (st == FX_OK && (g->rewrites & FX_REWRITE_ELIDE_IDENTITY))
        st = fx_graph_elide_identity(g, err);
    if (st == FX_OK && (g->rewrites & FX_REWRITE_FOLD_BN))
        st = fx_graph_fold_bn(g, err);
    if (st == FX_OK)
        st = fx_graph_drop_dead(g, err);
    if (st == FX_OK)
        g->prepared = 1;
    return st;
}
