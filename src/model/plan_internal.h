/* Internals of the executor shared by src/model/plan.c (memory, backends,
 * runs) and src/model/fusion.c (which nodes a fast plan fuses). */
#ifndef FX_MODEL_PLAN_INTERNAL_H
#define FX_MODEL_PLAN_INTERNAL_H

#include "backend/backend.h"

#define PLAN_MAX_PROF 48

/* Per node: what it writes and what it absorbed (see src/model/fusion.c). */
typedef struct plan_fuse {
    int out;           /* tensor output 0 writes: its own, or the fused chain's last */
    int in0;           /* tensor input 0 reads: its own, or (prologue) the BatchNorm's input */
    int res;           /* Conv: residual tensor added in the epilogue, or -1 */
    float *pre;        /* Conv prologue: C_in scales then C_in shifts (owned), or NULL */
    int pre_relu;      /* ... followed by Relu */
    int gate;          /* Conv prologue: (N, C_in, 1, 1) tensor scaling the input, or -1 */
    int cat;           /* Conv prologue: the Concat node whose inputs it reads, or -1 */
    int expand;        /* depthwise Conv: the pointwise Conv node run inside it, or -1 */
    float *expand_wt;  /* ... its weights transposed (fx_conv_expand.wt, owned), or NULL */
    int gap;           /* depthwise Conv: the GlobalAveragePool output it also writes, or -1 */
    const float **src; /* ... their buffers (filled per run) and channels (owned) */
    int *src_c;
    fx_act_kind act; /* activation applied in the epilogue */
    float lo, hi;    /* FX_ACT_CLIP bounds */
    char skip;       /* absorbed into an earlier node: not run */
} plan_fuse;

typedef struct plan_bw plan_bw; /* the backward (src/model/backward.c) */

struct fx_plan {
    const fx_graph *g;
    const fx_backend_ops *be; /* where memory lives and nodes run (src/backend/) */
    void *bectx;
    size_t esz;        /* bytes per float activation element on that backend */
    const void **cptr; /* per tensor: a constant's pointer in the backend's memory */
    float **host;      /* per tensor: host copy of a kept tensor (device backends) */
    char *stale;       /* per tensor: host[t] not yet copied since the last run */
    int *root;         /* per tensor: the tensor whose buffer it uses (views alias), -1: none */
    size_t *offset;    /* per root tensor: byte offset in the arena */
    char *keep;        /* per tensor: readable after run (outputs, opts->keep) */
    char *arena;
    size_t peak, naive;
    float *ws; /* conv scratch, the max over convs, for `threads` threads */
    int fast, poison, max_io, threads;
    const void **inb;
    void **outb;
    plan_fuse *fuse; /* per node */
    plan_bw *bw;     /* opts->grad's backward, or NULL */
    int profile, n_prof;
    struct {
        char label[24];
        double seconds;
        long long calls;
    } prof[PLAN_MAX_PROF];
};

static inline int is_runtime(const fx_graph *g, int t)
{
    return t >= 0 && g->t[t].kind != FX_T_CONST;
}

/* Sets p->fuse for every node (fusion.c; see its top comment): every
 * node as it is for reference plans and backends without FX_FUSE_EPILOGUE;
 * the CPU kernels' own fusions only with FX_FUSE_CPU.  Needs p->g, p->keep,
 * p->be, p->fast and p->threads. */
void fx_plan_fusion(fx_plan *p);

/* Where tensor t lives in the backend's memory: a constant's copy, or
 * its root's place in the arena (NULL for an unplanned tensor). */
void *fx_plan_buffer(const fx_plan *p, int t);

/* Kept tensor t's values in host memory: the arena itself on a host
 * backend, else its host copy, copied from the device on first use after
 * each run (NULL when that copy fails, the reason in err). */
const float *fx_plan_host(const fx_plan *p, int t, fx_error *err);

/* backward.c: the backward of opts->grad, planned after the forward
 * (p->bw), and freed before the backend goes. */
fx_status fx_plan_backward_create(fx_plan *p, const struct fx_grad *gr, fx_error *err);
void fx_plan_backward_destroy(fx_plan *p);
/* Its gradient arena's bytes, and what one buffer per gradient would take
 * (0, 0 without a backward). */
void fx_plan_backward_bytes(const fx_plan *p, size_t *peak, size_t *naive);

#endif
