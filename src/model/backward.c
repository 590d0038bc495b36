/* The backward pass of a plan made with fx_plan_opts.grad: the VJPs of the
 * region between the CAM layer and the logits (fxscreen/grad.h), planned
 * like the forward and run through a backend (src/backend/backend.h).
 *
 * Planned once, at plan creation:
 *   - where: the plan's own backend when it has the VJP of every region
 *     node (supports_vjp), else the CPU backend reading the host copies a
 *     device plan makes of its kept tensors after each run; the forward's
 *     values are read where the forward left them, never copied again;
 *   - memory: the gradients are float32 and live from the step of their
 *     tensor's last reader (the first VJP to accumulate into it; zeroed
 *     just before) to the step of its producer (the last VJP to read it),
 *     first-fit in one arena (memplan.c) reserved by that backend; the
 *     layer's gradient lives to the end.
 * Per run: the one-hot seed (per-image targets) copied in, the steps in
 * reverse order, dA copied out.  Nothing is allocated while running. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/grad_internal.h"
#include "model/memplan.h"
#include "model/plan_internal.h"
#include "model/vjp.h"

struct plan_bw {
    const fx_grad *gr;
    const fx_backend_ops *be; /* the plan's backend, or fx_backend_cpu on host copies */
    void *ctx;
    int host_copies;
    char where[200];
    char *arena;
    size_t peak, naive;
    size_t *off; /* per tensor: its gradient's offset (gr->need) */
    int *first;  /* per tensor: the step before which it is zeroed (the seed: -1) */
    float *seed; /* host: batch x K */
    const void **x, **y;
    const float **dy;
    float **dx;
};

static size_t grad_bytes(const fx_graph *g, int t)
{
    return (size_t)fx_shape_numel(&g->t[t].shape) * sizeof(float);
}

/* Node of backward step s (steps run the region in reverse). */
static const fx_node *step_node(const fx_grad *gr, int s)
{
    return &gr->g->nodes[gr->region[gr->n_region - 1 - s]];
}

/* The plan's backend when it runs every region node's VJP; else the CPU
 * backend on host copies, with the reason in b->where. */
static void choose_backend(const fx_plan *p, plan_bw *b)
{
    const fx_grad *gr = b->gr;
    const fx_node *bad = NULL;
    char why[120] = "";
    for (int s = 0; p->be->supports_vjp && s < gr->n_region && !bad; s++)
        if (!p->be->supports_vjp(p->bectx, gr->g, step_node(gr, s), gr->need, why, sizeof why))
            bad = step_node(gr, s);
    if (p->be->supports_vjp && !bad) {
        b->be = p->be, b->ctx = p->bectx;
        snprintf(b->where, sizeof b->where, "%s", p->be->name);
        return;
    }
    b->be = &fx_backend_cpu, b->ctx = NULL, b->host_copies = 1;
    if (bad)
        snprintf(b->where, sizeof b->where, "cpu (host copies; the %s backend: %s (node '%s'): %s)",
                 p->be->name, bad->op_type, bad->name, why);
    else
        snprintf(b->where, sizeof b->where, "cpu (host copies; the %s backend has no backward)",
                 p->be->name);
}

/* Offsets by liveness over the steps (see the top comment). */
static fx_status plan_memory(plan_bw *b)
{
    const fx_grad *gr = b->gr;
    const fx_graph *g = gr->g;
    fx_memplan m = {0};
    int bad = 0;
    char *done = calloc((size_t)g->n_t + 1, 1);
    if (!done)
        return FX_ERR_NOMEM;
    for (int t = 0; t < g->n_t; t++)
        b->first[t] = INT_MAX;
    b->first[gr->seed] = -1;
    for (int s = 0; s < gr->n_region; s++) {
        const fx_node *n = step_node(gr, s);
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && gr->need[n->in[k]] && b->first[n->in[k]] > s)
                b->first[n->in[k]] = s;
    }
    bad |= fx_memplan_alloc(&m, grad_bytes(g, gr->seed), &b->off[gr->seed]);
    b->naive += fx_memplan_round(grad_bytes(g, gr->seed));
    done[gr->seed] = 1;
    for (int s = 0; s < gr->n_region && !bad; s++) {
        const fx_node *n = step_node(gr, s);
        for (int k = 0; k < n->n_in; k++) { /* dx: first accumulated into here */
            int t = n->in[k];
            if (t >= 0 && b->first[t] == s && !done[t]) {
                bad |= fx_memplan_alloc(&m, grad_bytes(g, t), &b->off[t]);
                b->naive += fx_memplan_round(grad_bytes(g, t));
                done[t] = 1;
            }
        }
        for (int k = 0; k < n->n_out; k++) /* dy: read by this step for the last time */
            if (done[n->out[k]] && n->out[k] != gr->layer)
                bad |= fx_memplan_free(&m, b->off[n->out[k]], grad_bytes(g, n->out[k]));
    }
    free(done);
    b->peak = m.peak;
    fx_memplan_release(&m);
    return bad ? FX_ERR_NOMEM : FX_OK;
}

static void bw_free(plan_bw *b)
{
    if (!b)
        return;
    if (b->arena)
        b->be->free(b->ctx, b->arena);
    free(b->off);
    free(b->first);
    free(b->seed);
    free(b->x);
    free(b->y);
    free(b->dy);
    free(b->dx);
    free(b);
}

fx_status fx_plan_backward_create(fx_plan *p, const fx_grad *gr, fx_error *err)
{
    const fx_graph *g = p->g;
    if (gr->g != g)
        return fx_error_set(err, FX_ERR_USAGE, "plan: the gradient is of another graph");
    plan_bw *b = calloc(1, sizeof *b);
    size_t io = (size_t)p->max_io + 1;
    if (!b || !(b->off = calloc((size_t)g->n_t + 1, sizeof *b->off)) ||
        !(b->first = calloc((size_t)g->n_t + 1, sizeof *b->first)) ||
        !(b->seed = calloc((size_t)fx_shape_numel(&g->t[gr->seed].shape) + 1, sizeof(float))) ||
        !(b->x = calloc(io, sizeof *b->x)) || !(b->y = calloc(io, sizeof *b->y)) ||
        !(b->dy = calloc(io, sizeof *b->dy)) || !(b->dx = calloc(io, sizeof *b->dx))) {
        bw_free(b);
        return fx_error_set(err, FX_ERR_NOMEM, "plan: out of memory (backward)");
    }
    b->gr = gr;
    choose_backend(p, b);
    fx_status st = plan_memory(b);
    for (int s = 0; st == FX_OK && b->be->prepare_vjp && s < gr->n_region; s++) {
        const fx_node *n = step_node(gr, s);
        if ((st = b->be->prepare_vjp(b->ctx, (int)(n - g->nodes), n, err)) != FX_OK) {
            bw_free(b);
            return st;
        }
    }
    if (st != FX_OK)
        st = fx_error_set(err, st, "plan: out of memory (backward)");
    else
        st = b->be->alloc(b->ctx, b->peak ? b->peak : FX_MEMPLAN_ALIGN, (void **)&b->arena, err);
    if (st != FX_OK) {
        bw_free(b);
        return st;
    }
    p->bw = b;
    return FX_OK;
}

void fx_plan_backward_destroy(fx_plan *p)
{
    bw_free(p->bw);
    p->bw = NULL;
}

void fx_plan_backward_bytes(const fx_plan *p, size_t *peak, size_t *naive)
{
    *peak = p->bw ? p->bw->peak : 0;
    *naive = p->bw ? p->bw->naive : 0;
}

const char *fx_plan_backward_where(const fx_plan *p)
{
    return p->bw ? p->bw->where : "";
}

/* Forward value of tensor t where the backward's backend reads it. */
static const void *value(const fx_plan *p, const plan_bw *b, int t, fx_error *err)
{
    if (t < 0)
        return NULL;
    const fx_tensor *x = &p->g->t[t];
    if (b->host_copies && !p->be->host_memory) /* fx_plan_host says why it failed */
        return x->kind == FX_T_CONST ? x->data : fx_plan_host(p, t, err);
    const void *v = fx_plan_buffer(p, t);
    if (!v && x->kind != FX_T_CONST)
        fx_error_set(err, FX_ERR_INTERNAL, "grad: the forward value of '%s' is not kept", x->name);
    return v;
}

static float *grad_of(const plan_bw *b, int t)
{
    return t >= 0 && b->gr->need[t] ? (float *)(b->arena + b->off[t]) : NULL;
}

fx_status fx_plan_backward_run(fx_plan *p, const fx_grad *gr, const int *targets, float *dA,
                               fx_error *err)
{
    plan_bw *b = p->bw;
    if (!b || b->gr != gr)
        return fx_error_set(err, FX_ERR_USAGE,
                            "grad: the plan was not made for this gradient (fx_plan_opts.grad)");
    const fx_graph *g = p->g;
    const fx_backend_ops *be = b->be;
    int64_t batch = g->t[gr->seed].shape.d[0], ns = fx_shape_numel(&g->t[gr->seed].shape);
    memset(b->seed, 0, (size_t)ns * sizeof(float));
    for (int64_t i = 0; i < batch; i++)
        b->seed[i * gr->k + targets[i]] = 1.0f;
    fx_status st = be->copy_in(b->ctx, grad_of(b, gr->seed), b->seed, grad_bytes(g, gr->seed), err);
    for (int s = 0; s < gr->n_region && st == FX_OK; s++) {
        const fx_node *n = step_node(gr, s);
        for (int k = 0; k < n->n_in && st == FX_OK; k++) {
            int t = n->in[k];
            if (t >= 0 && gr->need[t] && b->first[t] == s &&
                (st = be->zero(b->ctx, grad_of(b, t), grad_bytes(g, t), err)) != FX_OK)
                break;
            /* a view's shape constant has no device copy: never read */
            if (!(b->x[k] = value(p, b, t, err)) && t >= 0 && g->t[t].kind != FX_T_CONST)
                st = FX_ERR_DEVICE;
            b->dx[k] = grad_of(b, t);
        }
        for (int k = 0; k < n->n_out && st == FX_OK; k++) {
            if (!(b->y[k] = value(p, b, n->out[k], err)))
                st = FX_ERR_DEVICE;
            b->dy[k] = grad_of(b, n->out[k]);
        }
        if (st != FX_OK)
            break;
        fx_vjp_io io = {g, b->x, b->y, b->dy, b->dx};
        fx_error e;
        e.code = FX_OK, e.msg[0] = '\0';
        if ((st = be->run_vjp(b->ctx, (int)(n - g->nodes), n, &io, &e)) != FX_OK)
            st = fx_error_set(err, st, "grad: backward of node '%s' (%s) failed (%s)", n->name,
                              n->op_type, e.msg[0] ? e.msg : fx_status_str(st));
    }
    if (st == FX_OK && dA)
        st = be->copy_out(b->ctx, dA, grad_of(b, gr->layer), grad_bytes(g, gr->layer), err);
    return st;
}

const float *fx_plan_backward_grad(const fx_plan *p)
{
    return p->bw && !p->bw->host_copies ? grad_of(p->bw, p->bw->gr->layer) : NULL;
}
