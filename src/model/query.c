/* Per-node facts (fx_graph_node_info) and the Grad-CAM layer choice. */
#include <string.h>

#include "model/ops_common.h"

/* params: elements of the float constant inputs the node reads (weights,
 * biases, BN statistics; int64 shape constants are not counted).
 * macs: Conv N*Cout*OH*OW*(Cin/g)*kh*kw; Gemm M*N*K; MatMul prod(out)*K;
 * every other op 0 (they are memory-bound; their cost is their bytes). */
fx_status fx_graph_node_info(const fx_graph *g, int i, fx_node_info *out)
{
    if (!g || !out || i < 0 || i >= g->n_nodes)
        return FX_ERR_USAGE;
    const fx_node *n = &g->nodes[i];
    const fx_tensor *o = fx_out(g, n, 0);
    memset(out, 0, sizeof *out);
    out->name = n->name;
    out->op_type = n->op_type;
    out->output = o->name;
    out->out_shape = o->shape;
    for (int k = 0; k < n->n_in; k++) {
        const fx_tensor *t = fx_in(g, n, k);
        if (t && t->kind == FX_T_CONST && t->dt == FX_DT_FLOAT)
            out->params += fx_shape_numel(&t->shape);
    }
    if (!strcmp(n->op_type, "Conv")) {
        const fx_conv2d_params *p = &n->b.u.conv;
        out->macs = fx_shape_numel(&o->shape) * (p->c_in / p->groups) * p->kh * p->kw;
    } else if (!strcmp(n->op_type, "Gemm")) {
        out->macs = n->b.u.gemm.m * n->b.u.gemm.n * n->b.u.gemm.k;
    } else if (!strcmp(n->op_type, "MatMul")) {
        const fx_shape *a = &n->b.u.mm.a;
        out->macs = fx_shape_numel(&o->shape) * a->d[a->rank - 1];
    }
    return FX_OK;
}

/* A "head" node: global pooling of a 4-D tensor (GlobalAverage/MaxPool,
 * ReduceMean over both H and W, Average/MaxPool to 1x1) or the flatten of a
 * 4-D tensor with H, W > 1 into the classifier (Flatten, Reshape to rank 2;
 * a flatten after global pooling is not a head). */
static int is_head(const fx_graph *g, const fx_node *n)
{
    const fx_tensor *x = fx_in(g, n, 0);
    const fx_shape *o = &fx_out(g, n, 0)->shape;
    if (!x || x->shape.rank != 4)
        return 0;
    const char *t = n->op_type;
    if (!strcmp(t, "GlobalAveragePool") || !strcmp(t, "GlobalMaxPool"))
        return 1;
    if (!strcmp(t, "AveragePool") || !strcmp(t, "MaxPool"))
        return o->d[2] == 1 && o->d[3] == 1;
    if (!strcmp(t, "ReduceMean")) {
        int hw = 0;
        for (int a = 0; a < n->b.u.red.n_axes; a++) {
            int ax = fx_axis(n->b.u.red.axes[a], 4);
            hw |= ax == 2 ? 1 : ax == 3 ? 2 : 0;
        }
        return hw == 3;
    }
    return (!strcmp(t, "Flatten") || !strcmp(t, "Reshape")) && o->rank == 2 && x->shape.d[2] > 1 &&
           x->shape.d[3] > 1;
}

/* Rule: take the last head node in topological order; start at its data
 * input and, while that tensor is not 4-D with H, W > 1, step back through
 * its producer if that is an elementwise/activation or view op (to its first
 * non-constant input); a Transpose right into the head is stepped through.  The first 4-D tensor
 * with H, W > 1 found is the CAM layer.  NULL if no head exists or the walk ends elsewhere. */
const char *fx_graph_cam_layer(const fx_graph *g)
{
    int head = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (is_head(g, &g->nodes[i]))
            head = i;
    if (head < 0)
        return NULL;
    int t = g->nodes[head].in[0];
    for (int steps = 0; steps < g->n_nodes + 1; steps++) {
        const fx_tensor *x = &g->t[t];
        /* A Transpose into the head is a layout change (NHWC before a
         * Flatten, as Keras imports and tf2onnx exports have), not a
         * C x H x W map: the map is what it transposes. */
        const fx_node *tp =
            x->kind == FX_T_NODE && x->producer >= 0 ? &g->nodes[x->producer] : NULL;
        if (steps == 0 && tp && !strcmp(tp->op_type, "Transpose") && fx_in(g, tp, 0)) {
            t = tp->in[0];
            continue;
        }
        if (x->shape.rank == 4 && x->shape.d[2] > 1 && x->shape.d[3] > 1)
            return x->name;
        if (x->kind != FX_T_NODE || x->producer < 0)
            return NULL;
        const fx_node *p = &g->nodes[x->producer];
        if (!(p->def->kind & (FX_OPK_ELTWISE | FX_OPK_VIEW)))
            return NULL;
        int next = -1;
        for (int k = 0; k < p->n_in && next < 0; k++)
            if (fx_in(g, p, k) && fx_in(g, p, k)->kind != FX_T_CONST)
                next = p->in[k];
        if (next < 0)
            return NULL;
        t = next;
    }
    return NULL;
}
