/* Helpers shared by the op binders (src/model/ops_*.c). */
#ifndef FX_MODEL_OPS_COMMON_H
#define FX_MODEL_OPS_COMMON_H

#include <string.h>

#include "model/graph_internal.h"
#include "ops/hd.h"

/* Error naming the node: "node 'a' (Conv): <reason>". */
#define NODE_ERR(err, n, code, ...) fx_node_error((err), (n), (code), __VA_ARGS__)
fx_status fx_node_error(fx_error *err, const fx_node *n, fx_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Require input k present with a known shape (and float dtype if want_float). */
fx_status fx_need_input(const fx_graph *g, const fx_node *n, int k, int want_float, fx_error *err);

/* Constant int64 input k as (vals, count); FX_ERR_UNSUPPORTED if it is not
 * a constant int64 tensor.  vals is borrowed from the graph. */
fx_status fx_const_ints(const fx_graph *g, const fx_node *n, int k, const int64_t **vals,
                        int64_t *count, fx_error *err);

/* Constant scalar float input k (a 1-element float tensor). */
fx_status fx_const_scalar(const fx_graph *g, const fx_node *n, int k, float *v, fx_error *err);

/* Int list attribute: values and count, or *count = -1 if absent. */
void fx_attr_ints(const fx_node *n, const char *name, const int64_t **vals, int64_t *count);

/* String attribute or def. */
const char *fx_attr_str(const fx_node *n, const char *name, const char *def);

/* The graph's opset, 21 when unknown (newest semantics). */
int fx_opset(const fx_graph *g);

/* Set output k's dtype and shape. */
void fx_set_out(fx_graph *g, const fx_node *n, int k, fx_dtype dt, const fx_shape *s);

/* The fx_hd_unary kind of an activation op type ("Relu", ...), FX_U_NONE
 * for any other op (the CPU VJPs and the CUDA backend's both ways). */
static inline fx_unary_kind fx_op_unary_kind(const char *op)
{
    static const struct {
        const char *op;
        fx_unary_kind k;
    } t[] = {{"Relu", FX_U_RELU},
             {"LeakyRelu", FX_U_LEAKY},
             {"Clip", FX_U_CLIP},
             {"Sigmoid", FX_U_SIGMOID},
             {"HardSigmoid", FX_U_HSIGMOID},
             {"HardSwish", FX_U_HSWISH},
             {"Tanh", FX_U_TANH},
             {"Elu", FX_U_ELU},
             {"Selu", FX_U_SELU},
             {"Gelu", FX_U_GELU}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(op, t[i].op))
            return t[i].k;
    return FX_U_NONE;
}

/* Normalise an axis against rank; -1 if out of range. */
static inline int fx_axis(int64_t axis, int rank)
{
    if (axis < -rank || axis >= rank)
        return -1;
    return (int)(axis < 0 ? axis + rank : axis);
}

static inline const fx_shape *in_shape(const fx_exec *x, const fx_node *n, int k)
{
    return &x->g->t[n->in[k]].shape;
}

/* Binders and executors, one pair per op family. */
#define FX_DECL_OP(stem)                                                                           \
    fx_status fx_bind_##stem(fx_graph *g, fx_node *n, fx_error *err);                              \
    fx_status fx_exec_##stem(const fx_node *n, const fx_exec *x)
FX_DECL_OP(conv);
FX_DECL_OP(batchnorm);
FX_DECL_OP(act);
FX_DECL_OP(prelu);
FX_DECL_OP(binary);
FX_DECL_OP(pool);
FX_DECL_OP(gpool);
FX_DECL_OP(gemm);
FX_DECL_OP(matmul);
FX_DECL_OP(softmax);
FX_DECL_OP(reduce_mean);
FX_DECL_OP(concat);
FX_DECL_OP(split);
FX_DECL_OP(transpose);
FX_DECL_OP(pad);
FX_DECL_OP(view); /* Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout */
FX_DECL_OP(constant);
FX_DECL_OP(const_of_shape);
FX_DECL_OP(shape);
FX_DECL_OP(gather);
FX_DECL_OP(cast);
FX_DECL_OP(slice);

#endif
