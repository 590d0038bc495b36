/* fxscreen: the model graph IR and its executor plan.
 *
 * A graph holds named tensors and nodes (ONNX-like: op_type + generic
 * attributes), built by an importer (model/onnx.c, later Keras .h5) through
 * the builder calls below.  The graph module owns op semantics: it binds
 * attributes to the fx_op_* params of include/fxscreen/ops.h, infers shapes,
 * and rewrites.  Importers know nothing about individual ops.
 *
 * Lifecycle:
 *   fx_graph_create -> add inputs/outputs/constants/nodes (importer)
 *   -> fx_graph_check_supported (one message listing EVERY unsupported op)
 *   -> fx_graph_prepare(batch, H, W): shape inference for that batch and
 *      input size, then load-time rewrites that pay on every backend:
 *      BatchNorm folded into the preceding Conv, Identity/Dropout removed,
 *      constant subgraphs folded (Shape/Gather/Concat/Unsqueeze arithmetic
 *      as exporters emit it), dead nodes dropped.  Intermediate tensors keep
 *      their ONNX names.
 *   -> fx_plan_create: topological order, a memory plan reusing buffers by
 *      liveness, per-op backend choice (CPU: fast path where one exists,
 *      else the reference).  fx_plan_run executes a batch.
 * Tensors are float32 NCHW unless their dtype says INT64 (shape arithmetic,
 * always constant after prepare). Not thread-safe: one plan per thread. */
#ifndef FXSCREEN_GRAPH_H
#define FXSCREEN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/device.h"
#include "fxscreen/ops.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numbered as ONNX TensorProto.DataType. */
typedef enum fx_dtype { FX_DT_FLOAT = 1, FX_DT_INT64 = 7 } fx_dtype;

typedef enum fx_attr_type {
    FX_ATTR_INT = 0,
    FX_ATTR_FLOAT,
    FX_ATTR_STRING,
    FX_ATTR_INTS,
    FX_ATTR_FLOATS,
    FX_ATTR_TENSOR, /* a constant tensor (Constant's `value`) */
} fx_attr_type;

/* One node attribute as the importer read it.  Arrays are borrowed by
 * fx_graph_add_node, which copies what it keeps. */
typedef struct fx_attr {
    const char *name;
    fx_attr_type type;
    int64_t i;           /* INT */
    float f;             /* FLOAT */
    const char *s;       /* STRING */
    const int64_t *ints; /* INTS, n values */
    const float *floats; /* FLOATS, n values */
    int n;
    /* TENSOR: dtype, shape and data (float32 or int64, row-major) */
    fx_dtype t_dtype;
    fx_shape t_shape;
    const void *t_data;
} fx_attr;

typedef struct fx_graph fx_graph;

fx_graph *fx_graph_create(void);
void fx_graph_destroy(fx_graph *g);

/* The model's opset (ai.onnx domain); 0 = unknown. */
void fx_graph_set_opset(fx_graph *g, int opset);
int fx_graph_opset(const fx_graph *g);

/* A graph input. dims < 0 are dynamic (the batch dimension); prepare fixes
 * them.  Only float32 NCHW inputs of rank 4 are accepted by prepare. */
fx_status fx_graph_add_input(fx_graph *g, const char *name, fx_dtype dt, const fx_shape *shape,
                             fx_error *err);

/* A graph output, by tensor name (kept alive and written by the plan). */
fx_status fx_graph_add_output(fx_graph *g, const char *name, fx_error *err);

/* A constant tensor (an initializer).  data (float32 or int64, row-major,
 * fx_shape_numel(shape) elements) is copied. */
fx_status fx_graph_add_constant(fx_graph *g, const char *name, fx_dtype dt, const fx_shape *shape,
                                const void *data, fx_error *err);

/* A node.  inputs[k] == "" marks an absent optional input.  Node names may
 * be empty (a name is made up from the first output). */
fx_status fx_graph_add_node(fx_graph *g, const char *name, const char *op_type,
                            const char *const *inputs, int n_in, const char *const *outputs,
                            int n_out, const fx_attr *attrs, int n_attrs, fx_error *err);

/* 1 if op_type (ai.onnx domain) is one the graph can bind. */
int fx_graph_op_known(const char *op_type);

/* FX_ERR_UNSUPPORTED with one message listing every unsupported op with its
 * node name ("unsupported ops: Foo (node 'a'), Bar (node 'b', 'c')"), or
 * FX_OK. */
fx_status fx_graph_check_supported(const fx_graph *g, fx_error *err);

/* Load-time rewrites fx_graph_prepare applies (constant folding, which
 * shape arithmetic needs, and dead-node removal always happen).  Default:
 * all.  Tests turn them off to compare a rewritten graph with the original. */
#define FX_REWRITE_FOLD_BN        1u /* BatchNorm folded into the preceding Conv */
#define FX_REWRITE_ELIDE_IDENTITY 2u /* Identity / Dropout / all-zero Pad removed */
void fx_graph_set_rewrites(fx_graph *g, unsigned flags);

/* Fix the batch size and input H x W, infer every shape, apply the rewrites.
 * Errors name the node and the reason.  Call once per graph (the rewrites
 * change it): a second call returns FX_ERR_USAGE. */
fx_status fx_graph_prepare(fx_graph *g, int batch, int in_h, int in_w, fx_error *err);

/* ---- queries (valid after prepare) ---------------------------------------- */

int fx_graph_num_nodes(const fx_graph *g);
int fx_graph_num_inputs(const fx_graph *g);
int fx_graph_num_outputs(const fx_graph *g);
const char *fx_graph_input_name(const fx_graph *g, int i);
const char *fx_graph_output_name(const fx_graph *g, int i);

/* Shape of a named tensor; FX_ERR_USAGE if there is none by that name. */
fx_status fx_graph_tensor_shape(const fx_graph *g, const char *name, fx_shape *out, fx_error *err);

/* FX_OK if tensor `name` can be kept by a plan and read after a run
 * (fx_plan_opts.keep, `model run --dump`): a graph input or a float32
 * node output that survived the load-time rewrites.  Otherwise
 * FX_ERR_USAGE with the reason in err: no such tensor, folded away with a
 * BatchNorm (naming the tensor the folded conv writes), a constant, or
 * removed. */
fx_status fx_graph_check_readable(const fx_graph *g, const char *name, fx_error *err);

/* Per-node facts for `fxscreen model info`. */
typedef struct fx_node_info {
    const char *name, *op_type;
    const char *output; /* first output's name */
    fx_shape out_shape;
    int64_t params; /* weights + biases it owns */
    int64_t macs;   /* multiply-accumulates for the prepared batch */
} fx_node_info;
fx_status fx_graph_node_info(const fx_graph *g, int i, fx_node_info *out);

/* The suggested Grad-CAM layer: the last 4-D tensor with spatial extent > 1
 * before global pooling.  NULL if there is none. */
const char *fx_graph_cam_layer(const fx_graph *g);

/* ---- the executor ---------------------------------------------------------- */

typedef struct fx_plan fx_plan;

typedef struct fx_plan_opts {
    const char *const *keep; /* intermediate tensor names to keep readable */
    int n_keep;
    int use_reference; /* 1: reference kernels only (for tests) */
    int poison;        /* 1: fill activation memory with NaN before each
                          run, so an unwritten element shows (tests) */
    int profile;       /* 1: time every node, summed per label over all
                          runs (fx_plan_profile); costs a clock read per node
                          (on a GPU, a synchronisation per node too) */
    /* Where the plan runs: FX_DEVICE_CPU (AUTO, the zero value, also means
     * the CPU here: resolve it first with fx_device_resolve and
     * fx_plan_unsupported) or FX_DEVICE_CUDA (FX_ERR_DEVICE in a build
     * without CUDA or without a device; FX_ERR_UNSUPPORTED naming every op
     * the CUDA backend cannot run). */
    fx_device_kind device;
    int device_index;       /* CUDA ordinal (cuda:N) */
    fx_precision precision; /* CUDA: fp32, tf32, fp16, bf16; ignored on the CPU */
    int no_graphs;          /* CUDA: launch node by node instead of replaying a
                               CUDA graph captured on the first run */
    /* A gradient (fxscreen/grad.h) the plan also runs backward for
     * (fx_grad_run): the plan keeps fx_grad_keep() (no need to list them in
     * keep), plans the gradients' memory beside the forward's, reserves it
     * once, and runs the VJPs through its own backend, or, where that
     * backend has no backward for a node, through the CPU backend on the
     * kept tensors' host copies (fx_plan_backward_where says which).
     * It must outlive the plan. */
    const struct fx_grad *grad;
} fx_plan_opts;

/* Number of nodes of the prepared graph that `device`'s backend cannot run
 * (0 for the CPU, and for CUDA in a build without it: nothing to list);
 * when > 0, why[0..cap) lists them ("op (node 'a', 'b'): reason; ..."). */
int fx_plan_unsupported(const fx_graph *g, fx_device_kind device, char *why, size_t cap);

/* The device a plan of the prepared graph g runs on for `want`:
 *   CPU  -> CPU.
 *   CUDA -> CUDA; FX_ERR_DEVICE when none answers (fx_device_resolve's
 *           reason), FX_ERR_UNSUPPORTED naming every node the CUDA backend
 *           cannot run.
 *   AUTO -> CUDA when a device answers and its backend runs every node,
 *           else the CPU with a one-line notice saying why in notice.
 * notice (may be NULL) is "" when there is nothing to say. */
fx_status fx_plan_pick_device(const fx_graph *g, fx_device_kind want, fx_device_kind *got,
                              char *notice, size_t n, fx_error *err);

/* Build the plan for the prepared graph (which must outlive the plan). */
fx_status fx_plan_create(const fx_graph *g, const fx_plan_opts *opts, fx_plan **out, fx_error *err);
void fx_plan_destroy(fx_plan *p);

/* Run one batch: input is float32 (batch, C, H, W) as prepared. */
fx_status fx_plan_run(fx_plan *p, const float *input, fx_error *err);

/* The forward again on the input the last fx_plan_run put in the plan's
 * memory, without the host transfers (no upload; a device plan copies kept
 * tensors to the host only when fx_plan_tensor reads them, so what is read
 * after a rerun is the rerun's), and waits for it: the forward alone, for
 * benchmarks.  Keep the graph input
 * (opts.keep) for its values to survive the run; otherwise the same work
 * runs on whatever the memory then holds. */
fx_status fx_plan_rerun(fx_plan *p, fx_error *err);

/* A graph output or kept tensor after fx_plan_run: pointer into the plan's
 * memory (valid until the next run or destroy) and its shape. NULL if the
 * name is neither an output nor kept (or, on a GPU, its copy to the host
 * failed).  On a GPU the first read after a run copies the tensor to the
 * host: not for two threads at once. */
const float *fx_plan_tensor(const fx_plan *p, const char *name, fx_shape *shape);

/* Where the plan's backward runs (opts.grad): the backend's name, with
 * the reason in parentheses when it is the CPU on host copies; "" for a
 * plan without a gradient.  Owned by the plan. */
const char *fx_plan_backward_where(const fx_plan *p);

/* Entry i (from 0) of a profiling plan's table (opts->profile): label (the
 * op type; Conv split into "Conv 1x1", "Conv dw", "Conv KxK" by kernel
 * path; nodes fused into a Conv or BatchNormalization count there), wall
 * seconds summed over every run since create, and executions.  label is
 * owned by the plan.  FX_ERR_USAGE past the last entry or without profile. */
fx_status fx_plan_profile(const fx_plan *p, int i, const char **label, double *seconds,
                          long long *calls);

/* Bytes of activation memory the plan reserved (the liveness peak), and
 * what it would be without reuse. */
size_t fx_plan_peak_bytes(const fx_plan *p);
size_t fx_plan_naive_bytes(const fx_plan *p);

#ifdef __cplusplus
}
#endif
#endif
