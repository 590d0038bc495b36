/* Engine backends: the small table of functions a plan runs through (after
 * ggml's backends).  The plan (src/model/plan.c) owns the order, the fusion
 * decisions and the memory plan; a backend owns where memory lives and how
 * one node runs.  Two exist: "cpu" (the OpenMP fast path and the
 * references, cpu.c) and "cuda" (cuDNN, cuBLAS and the kernels in
 * kernels/, cuda.c; only in a build with FX_HAVE_CUDA).
 *
 * Contract, in call order:
 *   create (once per plan) -> supports_node for every node the plan will
 *   run (the plan refuses to build otherwise) -> alloc (the arena, once, for
 *   the largest batch) -> constant (each constant a node reads, once) ->
 *   prepare_node (each node, once, with its real buffers) -> per run:
 *   poison?, upload, begin, run_node..., end, download -> destroy.
 * Everything is allocated by the end of plan creation; runs allocate nothing.
 * Pointers a backend hands out (arena, constants) are in its own memory
 * space; only upload/download cross to the host. */
#ifndef FX_BACKEND_H
#define FX_BACKEND_H

#include "model/graph_internal.h"

/* One node's backward, in the backend's memory: forward values x (the
 * node's inputs, constants included; NULL for an absent input) and y (its
 * outputs), gradients dy (per output; NULL where no gradient reaches it)
 * and dx (per input; NULL where none is wanted).  Gradients are float32. */
typedef struct fx_vjp_io {
    const fx_graph *g;
    const void *const *x;
    const void *const *y;
    const float *const *dy;
    float *const *dx;
} fx_vjp_io;

/* Fusions a backend can run (fx_backend_ops.fusions): */
#define FX_FUSE_EPILOGUE                                                                           \
    1u                 /* Conv + Add + Relu/Clip/SiLU, BatchNorm + Relu/Clip (plan_fuse.res/act) */
#define FX_FUSE_CPU 2u /* the CPU fast path's prologues, expand+depthwise and GAP fusions */

typedef struct fx_backend_ops {
    const char *name;
    unsigned fusions;
    /* 1 when the backend can run node n as bound; else 0, with the reason
     * (e.g. "MatMul with a batched B") in why. */
    int (*supports_node)(void *ctx, const fx_graph *g, const fx_node *n, char *why, size_t cap);
    /* Bytes per element of a float activation (4, or 2 in fp16 / bf16). */
    size_t (*elem_size)(void *ctx);
    fx_status (*alloc)(void *ctx, size_t bytes, void **out, fx_error *err);
    void (*free)(void *ctx, void *ptr);
    /* The pointer nodes read for constant tensor t (the CPU: the graph's own
     * data; CUDA: a copy uploaded in the plan's precision, owned by ctx). */
    fx_status (*constant)(void *ctx, const fx_tensor *t, const void **out, fx_error *err);
    /* Optional: per-node state chosen once with the node's real buffers
     * (cuDNN's algorithm and workspace). */
    fx_status (*prepare_node)(void *ctx, int s, const fx_node *n, const fx_exec_fast *x,
                              fx_error *err);
    fx_status (*run_node)(void *ctx, int s, const fx_node *n, const fx_exec_fast *x, fx_error *err);
    /* Host float32 <-> backend memory, n float elements. */
    fx_status (*upload)(void *ctx, void *dst, const float *src, int64_t n, fx_error *err);
    fx_status (*download)(void *ctx, float *dst, const void *src, int64_t n, fx_error *err);
    /* NaN in every byte pair of [ptr, ptr + bytes) (tests: unwritten memory shows). */
    fx_status (*poison)(void *ctx, void *ptr, size_t bytes, fx_error *err);
    /* Optional: around one run's node loop.  begin sets *replayed when it ran
     * the whole batch itself (a CUDA graph captured by an earlier run), so
     * the loop is skipped.  end finishes a capture; when the capture was
     * abandoned (failed: a node of the loop failed, or the graph could not
     * be made) it sets *rerun, turns capturing off for good, and the plan
     * runs the loop once more, node by node. */
    fx_status (*begin)(void *ctx, int *replayed, fx_error *err);
    fx_status (*end)(void *ctx, int failed, int *rerun, fx_error *err);
    /* Wait until everything queued has finished. */
    fx_status (*sync)(void *ctx, fx_error *err);
    void (*destroy)(void *ctx);
    int host_memory; /* 1: the arena is host memory that callers may read directly */

    /* The backward pass (src/model/backward.c), all optional: a backend
     * without supports_vjp has its plans' backward run by the CPU backend
     * on the plan's host copies.  Gradients are float32 on every backend
     * (sums of many small terms); forward values are in the storage type.
     * supports_vjp: 1 when run_vjp can run node n's VJP for the inputs
     * whose tensors have need[t] set (else 0 and the reason in why); s is
     * the node's index, as in run_node.
     * run_vjp: ACCUMULATES J^T dy into the needed inputs' gradients.
     * zero / copy_in / copy_out: bytes of gradient memory (copy_out waits). */
    int (*supports_vjp)(void *ctx, const fx_graph *g, const fx_node *n, const char *need, char *why,
                        size_t cap);
    /* Optional: per-node backward state, once at plan time (cuDNN's
     * backward-data algorithm). */
    fx_status (*prepare_vjp)(void *ctx, int s, const fx_node *n, fx_error *err);
    fx_status (*run_vjp)(void *ctx, int s, const fx_node *n, const struct fx_vjp_io *io,
                         fx_error *err);
    fx_status (*zero)(void *ctx, void *ptr, size_t bytes, fx_error *err);
    fx_status (*copy_in)(void *ctx, void *dst, const void *src, size_t bytes, fx_error *err);
    fx_status (*copy_out)(void *ctx, void *dst, const void *src, size_t bytes, fx_error *err);
    /* Optional, device backends: the queue work on this plan's memory goes
     * to (CUDA: its cudaStream_t) and the storage type of its float
     * activations (fx_cu_dtype) and the device's ordinal, for stages that
     * run after the plan on the same device (Grad-CAM's maps,
     * src/cam/cam_gpu.c). */
    void (*queue)(void *ctx, void **stream, int *storage, int *device);
} fx_backend_ops;

/* What a backend is created with. */
typedef struct fx_backend_cfg {
    int device_index;       /* CUDA ordinal */
    fx_precision precision; /* CUDA: FX_PREC_DEFAULT = FX_PREC_GPU_DEFAULT */
    int graphs;             /* CUDA: capture the forward once and replay it */
} fx_backend_cfg;

/* The CPU backend needs no context (NULL): its kernels take their threads
 * and scratch from the plan through fx_exec_fast. */
extern const fx_backend_ops fx_backend_cpu;

#ifdef FX_HAVE_CUDA
extern const fx_backend_ops fx_backend_cuda;
fx_status fx_backend_cuda_create(const fx_graph *g, const fx_backend_cfg *cfg, void **ctx,
                                 fx_error *err);
#endif

/* The backend for `device` (CPU or CUDA; AUTO is not resolved here), or
 * FX_ERR_DEVICE naming why (a build without CUDA, no device, ...). */
fx_status fx_backend_create(fx_device_kind device, const fx_graph *g, const fx_backend_cfg *cfg,
                            const fx_backend_ops **ops, void **ctx, fx_error *err);

#endif
