/* The op table (every op type the graph binds, with its binder and
 * executor) and the helpers binders share. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/ops_common.h"

#define E FX_OPK_ELTWISE
#define V FX_OPK_VIEW
static const fx_op_def op_table[] = {
    {"Add", E, fx_bind_binary, fx_exec_binary},
    {"AveragePool", 0, fx_bind_pool, fx_exec_pool},
    {"BatchNormalization", E, fx_bind_batchnorm, fx_exec_batchnorm},
    {"Cast", 0, fx_bind_cast, fx_exec_cast},
    {"Clip", E, fx_bind_act, fx_exec_act},
    {"Concat", 0, fx_bind_concat, fx_exec_concat},
    {"Constant", 0, fx_bind_constant, fx_exec_constant},
    {"ConstantOfShape", 0, fx_bind_const_of_shape, fx_exec_const_of_shape},
    {"Conv", 0, fx_bind_conv, fx_exec_conv},
    {"Div", E, fx_bind_binary, fx_exec_binary},
    {"Dropout", V, fx_bind_view, fx_exec_view},
    {"Flatten", V, fx_bind_view, fx_exec_view},
    {"Gather", 0, fx_bind_gather, fx_exec_gather},
    {"Gemm", 0, fx_bind_gemm, fx_exec_gemm},
    {"GlobalAveragePool", 0, fx_bind_gpool, fx_exec_gpool},
    {"GlobalMaxPool", 0, fx_bind_gpool, fx_exec_gpool},
    {"HardSigmoid", E, fx_bind_act, fx_exec_act},
    {"HardSwish", E, fx_bind_act, fx_exec_act},
    {"Identity", V, fx_bind_view, fx_exec_view},
    {"LeakyRelu", E, fx_bind_act, fx_exec_act},
    {"MatMul", 0, fx_bind_matmul, fx_exec_matmul},
    {"MaxPool", 0, fx_bind_pool, fx_exec_pool},
    {"Mul", E, fx_bind_binary, fx_exec_binary},
    {"PRelu", E, fx_bind_prelu, fx_exec_prelu},
    {"Pad", 0, fx_bind_pad, fx_exec_pad},
    {"ReduceMean", 0, fx_bind_reduce_mean, fx_exec_reduce_mean},
    {"Relu", E, fx_bind_act, fx_exec_act},
    {"Reshape", V, fx_bind_view, fx_exec_view},
    {"Shape", FX_OPK_SHAPEONLY, fx_bind_shape, fx_exec_shape},
    {"Sigmoid", E, fx_bind_act, fx_exec_act},
    {"Slice", 0, fx_bind_slice, fx_exec_slice},
    {"Softmax", 0, fx_bind_softmax, fx_exec_softmax},
    {"Split", 0, fx_bind_split, fx_exec_split},
    {"Squeeze", V, fx_bind_view, fx_exec_view},
    {"Sub", E, fx_bind_binary, fx_exec_binary},
    {"Tanh", E, fx_bind_act, fx_exec_act},
    {"Elu", E, fx_bind_act, fx_exec_act},
    {"Selu", E, fx_bind_act, fx_exec_act},
    {"Gelu", E, fx_bind_act, fx_exec_act},
    {"Transpose", 0, fx_bind_transpose, fx_exec_transpose},
    {"Unsqueeze", V, fx_bind_view, fx_exec_view},
};
#undef E
#undef V

const fx_op_def *fx_op_find(const char *op_type)
{
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (!strcmp(op_table[i].name, op_type))
            return &op_table[i];
    return NULL;
}

fx_status fx_node_error(fx_error *err, const fx_node *n, fx_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    char why[FX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return fx_error_set(err, code, "node '%s' (%s): %s", n->name, n->op_type, why);
}

fx_status fx_need_input(const fx_graph *g, const fx_node *n, int k, int want_float, fx_error *err)
{
    const fx_tensor *t = fx_in(g, n, k);
    if (!t)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "input %d is missing", k);
    if (!t->shape_known)
        return NODE_ERR(err, n, FX_ERR_INTERNAL, "input '%s' has no shape", t->name);
    if (want_float && t->dt != FX_DT_FLOAT)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "input '%s' is int64, want float", t->name);
    return FX_OK;
}

fx_status fx_const_ints(const fx_graph *g, const fx_node *n, int k, const int64_t **vals,
                        int64_t *count, fx_error *err)
{
    const fx_tensor *t = fx_in(g, n, k);
    if (!t || t->kind != FX_T_CONST || t->dt != FX_DT_INT64)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED,
                        "input %d ('%s') must be a constant int64 tensor", k, t ? t->name : "");
    *vals = t->data;
    *count = fx_shape_numel(&t->shape);
    return FX_OK;
}

fx_status fx_const_scalar(const fx_graph *g, const fx_node *n, int k, float *v, fx_error *err)
{
    const fx_tensor *t = fx_in(g, n, k);
    if (!t || t->kind != FX_T_CONST || fx_shape_numel(&t->shape) != 1)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "input %d ('%s') must be a constant scalar", k,
                        t ? t->name : "");
    *v = t->dt == FX_DT_FLOAT ? *(const float *)t->data : (float)*(const int64_t *)t->data;
    return FX_OK;
}

void fx_attr_ints(const fx_node *n, const char *name, const int64_t **vals, int64_t *count)
{
    const fx_nattr *a = fx_node_attr(n, name);
    if (a && a->type == FX_ATTR_INTS) {
        *vals = a->ints;
        *count = a->n;
    } else {
        *vals = NULL;
        *count = -1;
    }
}

const char *fx_attr_str(const fx_node *n, const char *name, const char *def)
{
    const fx_nattr *a = fx_node_attr(n, name);
    return a && a->type == FX_ATTR_STRING && a->s ? a->s : def;
}

int fx_opset(const fx_graph *g)
{
    return g->opset > 0 ? g->opset : 21;
}

void fx_set_out(fx_graph *g, const fx_node *n, int k, fx_dtype dt, const fx_shape *s)
{
    fx_tensor *t = &g->t[n->out[k]];
    t->dt = dt;
    t->shape = *s;
    t->shape_known = 1;
}
