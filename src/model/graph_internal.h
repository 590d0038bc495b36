/* Internals of the graph IR shared by src/model/{graph,bind,ops_*,shape,
 * rewrite,query,plan}.c (not part of the public API). */
#ifndef FX_GRAPH_INTERNAL_H
#define FX_GRAPH_INTERNAL_H

#include <stdlib.h>

#include "fxscreen/graph.h"
#include "ops/ops_internal.h"

#define FX_FREE(p)                                                                                 \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

typedef enum fx_tensor_kind {
    FX_T_UNDEF = 0, /* referenced by a node, not defined (yet) */
    FX_T_INPUT,     /* a graph input */
    FX_T_CONST,     /* an initializer or a folded value: data is set */
    FX_T_NODE,      /* produced by a node at run time */
} fx_tensor_kind;

typedef struct fx_tensor {
    char *name;
    fx_tensor_kind kind;
    fx_dtype dt;
    fx_shape shape; /* inputs: declared (dims < 0 dynamic); others: after prepare */
    int shape_known;
    void *data;      /* FX_T_CONST: owned, row-major float32 or int64 */
    int producer;    /* FX_T_NODE: node index (valid after prepare); -1 once removed */
    int folded_into; /* a Conv output removed by BatchNorm folding: the tensor the
                        folded Conv writes instead; else -1 */
    int is_output;
} fx_tensor;

/* An attribute as the graph keeps it (owned copies). */
typedef struct fx_nattr {
    char *name;
    fx_attr_type type;
    int64_t i;
    float f;
    char *s;
    int64_t *ints;
    float *floats;
    int n;
    fx_dtype t_dtype;
    fx_shape t_shape;
    void *t_data;
} fx_nattr;

struct fx_op_def;

/* Parameters bound from attributes and input shapes (bind.c). */
typedef struct fx_bound {
    union {
        fx_conv2d_params conv;
        fx_batchnorm_params bn;
        fx_act_params act;
        fx_binary_params bin;
        fx_concat_params cat; /* shapes points into the graph: re-set by exec */
        fx_transpose_params tr;
        fx_pad_params pad;
        fx_pool2d_params pool;
        fx_global_pool_params gpool;
        fx_gemm_params gemm;
        fx_matmul_params mm;
        fx_softmax_params sm;
        fx_reduce_params red;
    } u;
    int axis;      /* Concat, Split, Gather, Flatten axis */
    int64_t *ints; /* owned: Split sizes, Slice starts/steps (see ops) */
    int n_ints;
    fx_shape s0;   /* a helper shape (Softmax pre-13 2-D view, Gather data) */
    int kind_flag; /* op-specific switch */
} fx_bound;

typedef struct fx_node {
    char *name, *op_type;
    int n_in, n_out;
    int *in, *out; /* tensor indices; in[k] == -1: absent optional input */
    fx_nattr *attrs;
    int n_attrs;
    int dead;
    const struct fx_op_def *def; /* after prepare */
    fx_bound b;
} fx_node;

#define FX_REWRITE_DEFAULT (FX_REWRITE_FOLD_BN | FX_REWRITE_ELIDE_IDENTITY)

struct fx_graph {
    int opset;
    unsigned rewrites;
    int prepared;
    fx_tensor *t;
    int n_t, cap_t;
    fx_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs, n_inputs, cap_inputs;
    int *outputs, n_outputs, cap_outputs;
    int *hash; /* open addressing: tensor index + 1, 0 = empty */
    int hash_cap;
};

/* What the executor hands an op: pointers per input/output (NULL for an
 * absent input), fast = 1 to use the fast CPU kernels, ws = conv scratch. */
typedef struct fx_exec {
    const fx_graph *g;
    const void *const *in;
    void *const *out;
    float *ws;
    int fast;
} fx_exec;

/* A fast plan's fx_exec (fast == 1 always comes wrapped in one; constant
 * folding runs with fast == 0): ws is scratch for `threads` OpenMP
 * threads, ep what the plan fused into the node (Conv: residual Add and
 * activation; BatchNormalization: activation), and out[0] is then the
 * fused chain's last tensor.  A separate struct so that fx_exec's
 * positional initialisers elsewhere stay complete. */
typedef struct fx_exec_fast {
    fx_exec x; /* first: an fx_exec * with fast == 1 points here */
    int threads;
    fx_conv_epilogue ep;
    const fx_conv_expand *expand; /* depthwise Conv: the pointwise conv fused in front, in[0]
                                     then being that conv's input; or NULL */
} fx_exec_fast;

static inline const fx_exec_fast *fx_exec_fast_of(const fx_exec *x)
{
    return (const fx_exec_fast *)x;
}

/* Op categories used by rewrites and queries. */
enum {
    FX_OPK_OTHER = 0,
    FX_OPK_VIEW = 1,      /* output aliases input 0 (same bytes, new shape) */
    FX_OPK_ELTWISE = 2,   /* elementwise / activation */
    FX_OPK_SHAPEONLY = 4, /* folds as soon as input shapes are known (Shape) */
};

typedef struct fx_op_def {
    const char *name;
    int kind;
    /* Check attributes and inputs, fill n->b and the output tensors' shape
     * and dtype.  Input shapes (and constant inputs' data) are known. */
    fx_status (*bind)(fx_graph *g, fx_node *n, fx_error *err);
    /* Compute the outputs (views: NULL, the executor aliases). */
    fx_status (*exec)(const fx_node *n, const fx_exec *x);
} fx_op_def;

/* bind.c: the op table. NULL if unknown. */
const fx_op_def *fx_op_find(const char *op_type);

/* graph.c helpers */
int fx_graph_find(const fx_graph *g, const char *name); /* index or -1 */
int fx_graph_intern(fx_graph *g, const char *name);     /* find or add UNDEF; -1 on OOM */
const fx_nattr *fx_node_attr(const fx_node *n, const char *name);
int64_t fx_attr_int(const fx_node *n, const char *name, int64_t def);
float fx_attr_float(const fx_node *n, const char *name, float def);
size_t fx_dtype_size(fx_dtype dt);
void fx_node_free(fx_node *n);

/* Input k's tensor, or NULL if absent. */
static inline fx_tensor *fx_in(const fx_graph *g, const fx_node *n, int k)
{
    return (k < n->n_in && n->in[k] >= 0) ? &g->t[n->in[k]] : NULL;
}
static inline fx_tensor *fx_out(const fx_graph *g, const fx_node *n, int k)
{
    return &g->t[n->out[k]];
}

/* shape.c / rewrite.c */
fx_status fx_graph_toposort(fx_graph *g, fx_error *err);
fx_status fx_graph_infer(fx_graph *g, fx_error *err);
fx_status fx_graph_fold_bn(fx_graph *g, fx_error *err);
fx_status fx_graph_elide_identity(fx_graph *g, fx_error *err);
fx_status fx_graph_drop_dead(fx_graph *g, fx_error *err);
int fx_tensor_num_consumers(const fx_graph *g, int t);

#endif
