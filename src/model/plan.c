/* The executor: memory plan by liveness over the prepared graph's
 * topological order, one arena, the backend each node runs on, fx_plan_run.
 * Which nodes are fused: src/model/fusion.c.
 *
 * Threads: fast plans set OpenBLAS to one thread, process-wide, once at
 * create (openblas_set_num_threads(1)), and parallelise every kernel with
 * OpenMP instead (omp_get_max_threads() at create), so that one pool of
 * threads runs everything; see src/ops/conv_fast.c for why.  Any other
 * sgemm caller in the process then also runs single-threaded. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fxscreen/grad.h"
#include "model/memplan.h"
#include "model/ops_common.h"
#include "model/plan_internal.h"
#include "ops/hd.h"
#include "ops/ops_internal.h"

static size_t tensor_bytes(const fx_plan *p, const fx_tensor *t)
{
    size_t es = t->dt == FX_DT_FLOAT ? p->esz : fx_dtype_size(t->dt);
    return (size_t)fx_shape_numel(&t->shape) * es;
}

/* Roots and last-use steps (INT_MAX: never freed). Inputs count as step -1. */
static void liveness(fx_plan *p, int *def, int *last)
{
    const fx_graph *g = p->g;
    for (int t = 0; t < g->n_t; t++)
        p->root[t] = -1, def[t] = INT_MAX, last[t] = -1;
    for (int i = 0; i < g->n_inputs; i++)
        p->root[g->inputs[i]] = g->inputs[i], def[g->inputs[i]] = -1;
    for (int s = 0; s < g->n_nodes; s++) {
        const fx_node *n = &g->nodes[s];
        const plan_fuse *f = &p->fuse[s];
        if (f->skip)
            continue; /* its tensors are read / written by the fused node */
        for (int k = 0; k <= n->n_in + 1; k++) {
            int t = k == 0 && n->n_in ? f->in0
                    : k < n->n_in     ? n->in[k]
                    : k == n->n_in    ? f->res
                                      : f->gate;
            if (is_runtime(g, t) && last[p->root[t]] < s)
                last[p->root[t]] = s;
        }
        for (int k = 0; f->cat >= 0 && k < g->nodes[f->cat].n_in; k++) {
            int t = g->nodes[f->cat].in[k]; /* the fused Concat's pieces */
            if (is_runtime(g, t) && last[p->root[t]] < s)
                last[p->root[t]] = s;
        }
        for (int k = 1; f->expand >= 0 && k < g->nodes[f->expand].n_in; k++) {
            int t = g->nodes[f->expand].in[k]; /* the fused expansion's weights, bias */
            if (is_runtime(g, t) && last[p->root[t]] < s)
                last[p->root[t]] = s;
        }
        for (int k = 0; k < n->n_out; k++) {
            int t = k ? n->out[k] : f->out;
            int view = (n->def->kind & FX_OPK_VIEW) && k == 0;
            p->root[t] = view ? p->root[n->in[0]] : t;
            if (!view)
                def[t] = s, last[t] = s;
        }
        if (f->gap >= 0) /* the fused pool's output, written by this node */
            p->root[f->gap] = f->gap, def[f->gap] = s, last[f->gap] = s;
    }
    for (int t = 0; t < g->n_t; t++)
        if (p->keep[t] && p->root[t] >= 0)
            last[p->root[t]] = INT_MAX;
}

/* First-fit: at each step allocate the node's outputs, then free the roots
 * whose last reader was this step (so no output overlaps its inputs). */
static fx_status assign_offsets(fx_plan *p, const int *def, const int *last, fx_error *err)
{
    const fx_graph *g = p->g;
    fx_memplan m = {0};
    fx_status st = FX_OK;
    for (int s = -1; s < g->n_nodes && st == FX_OK; s++) {
        for (int t = 0; t < g->n_t; t++)
            if (def[t] == s && p->root[t] == t) {
                size_t b = tensor_bytes(p, &g->t[t]);
                fx_memplan_alloc(&m, b, &p->offset[t]);
                p->naive += fx_memplan_round(b ? b : 1);
            }
        for (int t = 0; t < g->n_t; t++)
            if (def[t] <= s && p->root[t] == t && last[t] == s &&
                fx_memplan_free(&m, p->offset[t], tensor_bytes(p, &g->t[t])))
                st = fx_error_set(err, FX_ERR_NOMEM, "plan: out of memory");
    }
    p->peak = m.peak;
    fx_memplan_release(&m);
    return st;
}

/* A def step is used once: mark freed roots so the loop above frees each once. */
static void fix_last_for_free(const fx_graph *g, int *last, const int *def)
{
    for (int t = 0; t < g->n_t; t++)
        if (def[t] != INT_MAX && last[t] < def[t])
            last[t] = def[t];
}

static fx_status mark_keep(fx_plan *p, const fx_plan_opts *o, fx_error *err)
{
    const fx_graph *g = p->g;
    for (int i = 0; i < g->n_outputs; i++)
        p->keep[g->outputs[i]] = 1;
    for (int i = 0; o && i < o->n_keep; i++) {
        fx_status st = fx_graph_check_readable(g, o->keep[i], err);
        if (st != FX_OK) {
            fx_error_prefix(err, "plan: cannot keep");
            return st;
        }
        int t = fx_graph_find(g, o->keep[i]);
        p->keep[t] = 1;
    }
    int nk = o && o->grad ? fx_grad_num_keep(o->grad) : 0;
    for (int i = 0; i < nk; i++) /* the backward's forward values (named by the graph) */
        p->keep[fx_graph_find(g, fx_grad_keep(o->grad)[i])] = 1;
    return FX_OK;
}

static fx_status reserve(fx_plan *p, fx_error *err)
{
    const fx_graph *g = p->g;
    int64_t ws = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const fx_node *n = &g->nodes[i];
        if (n->n_in > p->max_io)
            p->max_io = n->n_in;
        if (n->n_out > p->max_io)
            p->max_io = n->n_out;
        if (p->fast && p->be->host_memory && !strcmp(n->op_type, "Conv")) {
            int e = p->fuse[i].expand;
            int64_t w = e >= 0 ? fx_conv_expand_dw_ws_floats(&g->nodes[e].b.u.conv, &n->b.u.conv,
                                                             p->threads)
                               : fx_conv2d_fast_ws_floats_mt(&n->b.u.conv, p->threads);
            ws = w > ws ? w : ws;
        }
    }
    fx_status st =
        p->be->alloc(p->bectx, p->peak ? p->peak : FX_MEMPLAN_ALIGN, (void **)&p->arena, err);
    if (st != FX_OK)
        return st;
    p->ws = ws > 0 ? malloc((size_t)ws * sizeof(float)) : NULL;
    p->inb = calloc((size_t)p->max_io + 1, sizeof *p->inb);
    p->outb = calloc((size_t)p->max_io + 1, sizeof *p->outb);
    if ((ws > 0 && !p->ws) || !p->inb || !p->outb)
        return fx_error_set(err, FX_ERR_NOMEM, "plan: out of memory (%lld scratch floats)",
                            (long long)ws);
    /* Constants every node reads, in the backend's memory; kept tensors'
     * host copies where the arena is not host memory. */
    for (int i = 0; i < g->n_nodes; i++) /* views never run: their shape inputs stay */
        for (int k = 0; !(g->nodes[i].def->kind & FX_OPK_VIEW) && k < g->nodes[i].n_in; k++) {
            int t = g->nodes[i].in[k];
            if (t >= 0 && g->t[t].kind == FX_T_CONST && !p->cptr[t] &&
                (st = p->be->constant(p->bectx, &g->t[t], &p->cptr[t], err)) != FX_OK)
                return st;
        }
    for (int t = 0; !p->be->host_memory && t < g->n_t; t++)
        if (p->keep[t] && p->root[t] >= 0 && g->t[t].dt == FX_DT_FLOAT &&
            !(p->host[t] = malloc(tensor_bytes(p, &g->t[t]) / p->esz * sizeof(float) + 1)))
            return fx_error_set(err, FX_ERR_NOMEM, "plan: out of memory (host copies)");
    return FX_OK;
}

/* Every node the backend would run but cannot, listed in why (up to cap). */
static int check_backend(const fx_plan *p, char *why, size_t cap)
{
    const fx_graph *g = p->g;
    int bad = 0;
    size_t len = 0;
    if (cap)
        why[0] = '\0';
    for (int i = 0; i < g->n_nodes; i++) {
        const fx_node *n = &g->nodes[i];
        char r[160];
        if ((n->def->kind & FX_OPK_VIEW) || p->fuse[i].skip ||
            p->be->supports_node(p->bectx, g, n, r, sizeof r))
            continue;
        if (cap > len + 1)
            len += (size_t)snprintf(why + len, cap - len, "%s%s (node '%s'): %s", bad ? "; " : "",
                                    n->op_type, n->name, r);
        if (len >= cap)
            len = cap - 1;
        bad++;
    }
    return bad;
}

static fx_status create_backend(fx_plan *p, const fx_plan_opts *o, fx_error *err)
{
    fx_backend_cfg cfg = {.device_index = o ? o->device_index : 0,
                          .precision = o ? o->precision : FX_PREC_DEFAULT,
                          .graphs = !(o && (o->no_graphs || o->profile))};
    fx_device_kind dev = o && o->device == FX_DEVICE_CUDA ? FX_DEVICE_CUDA : FX_DEVICE_CPU;
    if (dev == FX_DEVICE_CUDA && !p->fast)
        return fx_error_set(err, FX_ERR_USAGE, "plan: reference kernels run on the CPU only");
    fx_status st = fx_backend_create(dev, p->g, &cfg, &p->be, &p->bectx, err);
    if (st == FX_OK)
        p->esz = p->be->elem_size(p->bectx);
    return st;
}

int fx_plan_unsupported(const fx_graph *g, fx_device_kind device, char *why, size_t cap)
{
    if (cap)
        why[0] = '\0';
#ifdef FX_HAVE_CUDA
    if (device == FX_DEVICE_CUDA && g->prepared) {
        /* The check needs only the fusion decisions, not memory or a device. */
        fx_plan p = {.g = g, .be = &fx_backend_cuda, .fast = 1};
        p.keep = calloc((size_t)g->n_t + 1, 1);
        p.fuse = calloc((size_t)g->n_nodes + 1, sizeof *p.fuse);
        int bad = -1;
        if (p.keep && p.fuse && mark_keep(&p, NULL, NULL) == FX_OK) {
            fx_plan_fusion(&p);
            bad = check_backend(&p, why, cap);
        }
        free(p.keep);
        free(p.fuse);
        if (bad < 0)
            snprintf(why, cap, "out of memory");
        return bad < 0 ? 1 : bad;
    }
#else
    (void)g, (void)device;
#endif
    return 0;
}

/* The fx_exec_fast for step s (buffers from the arena and constants). */
static void node_exec(fx_plan *p, int s, fx_exec_fast *x, fx_conv_expand *xe)
{
    const fx_graph *g = p->g;
    const fx_node *n = &g->nodes[s];
    const plan_fuse *f = &p->fuse[s];
    for (int k = 0; k < n->n_in; k++) {
        int t = k ? n->in[k] : f->in0;
        p->inb[k] = t >= 0 ? fx_plan_buffer(p, t) : NULL;
    }
    for (int k = 0; k < n->n_out; k++)
        p->outb[k] = fx_plan_buffer(p, k ? n->out[k] : f->out);
    int c_in = f->pre ? n->b.u.conv.c_in : 0, n_src = f->cat >= 0 ? g->nodes[f->cat].n_in : 0;
    for (int k = 0; k < n_src; k++)
        f->src[k] = fx_plan_buffer(p, g->nodes[f->cat].in[k]);
    *xe = (fx_conv_expand){0};
    if (f->expand >= 0) {
        const fx_node *en = &g->nodes[f->expand];
        const plan_fuse *ef = &p->fuse[f->expand];
        *xe = (fx_conv_expand){&en->b.u.conv,
                               fx_plan_buffer(p, en->in[1]),
                               en->n_in > 2 && en->in[2] >= 0 ? fx_plan_buffer(p, en->in[2]) : NULL,
                               ef->act,
                               ef->lo,
                               ef->hi,
                               f->expand_wt};
    }
    *x = (fx_exec_fast){{g, p->inb, p->outb, p->ws, p->fast},
                        p->threads,
                        {f->res >= 0 ? fx_plan_buffer(p, f->res) : NULL, f->act, f->lo, f->hi,
                         f->gate >= 0 ? fx_plan_buffer(p, f->gate) : f->pre,
                         f->pre ? f->pre + c_in : NULL, f->pre_relu, f->gate >= 0, f->src, f->src_c,
                         n_src, f->gap >= 0 ? fx_plan_buffer(p, f->gap) : NULL},
                        f->expand >= 0 ? xe : NULL};
}

static int runs_node(const fx_plan *p, int s)
{
    return !(p->g->nodes[s].def->kind & FX_OPK_VIEW) && !p->fuse[s].skip;
}

fx_status fx_plan_create(const fx_graph *g, const fx_plan_opts *opts, fx_plan **out, fx_error *err)
{
    *out = NULL;
    if (!g->prepared)
        return fx_error_set(err, FX_ERR_USAGE, "plan: graph not prepared");
    if (g->n_inputs != 1)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "plan: %d graph inputs (want 1)", g->n_inputs);
    fx_plan *p = calloc(1, sizeof *p);
    int *def = malloc(((size_t)g->n_t + 1) * sizeof *def);
    int *last = malloc(((size_t)g->n_t + 1) * sizeof *last);
    fx_status st = FX_ERR_NOMEM;
    if (!p || !def || !last)
        goto fail;
    p->g = g;
    p->fast = !(opts && opts->use_reference);
    p->poison = opts && opts->poison;
    p->profile = opts && opts->profile;
    p->threads = fx_omp_max_threads();
    if ((st = create_backend(p, opts, err)) != FX_OK)
        goto fail;
    st = FX_ERR_NOMEM;
    if (p->fast && p->be->host_memory)
        openblas_set_num_threads(1); /* process-wide: see the top comment */
    p->root = malloc(((size_t)g->n_t + 1) * sizeof *p->root);
    p->offset = calloc((size_t)g->n_t + 1, sizeof *p->offset);
    p->keep = calloc((size_t)g->n_t + 1, 1);
    p->fuse = calloc((size_t)g->n_nodes + 1, sizeof *p->fuse);
    p->cptr = calloc((size_t)g->n_t + 1, sizeof *p->cptr);
    p->host = calloc((size_t)g->n_t + 1, sizeof *p->host);
    p->stale = calloc((size_t)g->n_t + 1, 1);
    if (!p->root || !p->offset || !p->keep || !p->fuse || !p->cptr || !p->host || !p->stale)
        goto fail;
    if ((st = mark_keep(p, opts, err)) != FX_OK)
        goto fail;
    fx_plan_fusion(p);
    char why[FX_ERROR_MSG_MAX - 64];
    int bad = check_backend(p, why, sizeof why);
    if (bad) {
        st = fx_error_set(err, FX_ERR_UNSUPPORTED, "plan: the %s backend cannot run %d node%s: %s",
                          p->be->name, bad, bad > 1 ? "s" : "", why);
        goto fail;
    }
    liveness(p, def, last);
    fix_last_for_free(g, last, def);
    if ((st = assign_offsets(p, def, last, err)) != FX_OK || (st = reserve(p, err)) != FX_OK)
        goto fail;
    for (int s = 0; p->be->prepare_node && s < g->n_nodes; s++) {
        fx_exec_fast x;
        fx_conv_expand xe;
        if (!runs_node(p, s))
            continue;
        node_exec(p, s, &x, &xe);
        if ((st = p->be->prepare_node(p->bectx, s, &g->nodes[s], &x, err)) != FX_OK)
            goto fail;
    }
    if (opts && opts->grad && (st = fx_plan_backward_create(p, opts->grad, err)) != FX_OK)
        goto fail;
    free(def);
    free(last);
    *out = p;
    return FX_OK;
fail:
    if (st == FX_ERR_NOMEM && (!err || err->code != FX_ERR_NOMEM))
        fx_error_set(err, st, "plan: out of memory");
    free(def);
    free(last);
    fx_plan_destroy(p);
    return st;
}

void fx_plan_destroy(fx_plan *p)
{
    if (!p)
        return;
    fx_plan_backward_destroy(p); /* its memory is the backend's */
    for (int t = 0; p->host && t < p->g->n_t; t++)
        free(p->host[t]);
    if (p->be && p->arena)
        p->be->free(p->bectx, p->arena);
    if (p->be)
        p->be->destroy(p->bectx);
    free(p->host);
    free(p->stale);
    free(p->cptr);
    free(p->root);
    free(p->offset);
    free(p->keep);
    free(p->ws);
    free(p->inb);
    free(p->outb);
    for (int i = 0; p->fuse && i < p->g->n_nodes; i++) {
        free(p->fuse[i].pre);
        free(p->fuse[i].expand_wt);
        free(p->fuse[i].src);
        free(p->fuse[i].src_c);
    }
    free(p->fuse);
    free(p);
}

void *fx_plan_buffer(const fx_plan *p, int t)
{
    const fx_tensor *x = &p->g->t[t];
    if (x->kind == FX_T_CONST)
        return (void *)p->cptr[t];
    return p->root[t] >= 0 ? p->arena + p->offset[p->root[t]] : NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Profile label of a node: its op type, Conv split by kernel path. */
static void profile_label(const fx_node *n, char *buf, size_t cap)
{
    const fx_conv2d_params *c = &n->b.u.conv;
    if (strcmp(n->op_type, "Conv"))
        snprintf(buf, cap, "%s", n->op_type);
    else if (c->c_in == c->groups)
        snprintf(buf, cap, "Conv dw");
    else if (c->kh == 1 && c->kw == 1 && c->stride_h == 1 && c->stride_w == 1)
        snprintf(buf, cap, "Conv 1x1");
    else
        snprintf(buf, cap, "Conv %dx%d", c->kh, c->kw);
}

static void profile_add(fx_plan *p, const fx_node *n, double sec)
{
    char label[24];
    profile_label(n, label, sizeof label);
    int i = 0;
    while (i < p->n_prof && strcmp(p->prof[i].label, label))
        i++;
    if (i == p->n_prof) {
        if (i == PLAN_MAX_PROF)
            i--; /* out of slots: the last one collects the rest */
        else
            snprintf(p->prof[p->n_prof++].label, sizeof p->prof[i].label, "%s", label);
    }
    p->prof[i].seconds += sec;
    p->prof[i].calls++;
}

fx_status fx_plan_profile(const fx_plan *p, int i, const char **label, double *seconds,
                          long long *calls)
{
    if (!p->profile || i < 0 || i >= p->n_prof)
        return FX_ERR_USAGE;
    *label = p->prof[i].label;
    *seconds = p->prof[i].seconds;
    *calls = p->prof[i].calls;
    return FX_OK;
}

/* The node loop (or a CUDA graph's replay) on what is in the arena; once
 * more, node by node, when the backend abandoned a capture. */
static fx_status run_nodes(fx_plan *p, fx_error *err)
{
    const fx_graph *g = p->g;
    const fx_backend_ops *be = p->be;
    for (int attempt = 0; attempt < 2; attempt++) {
        int replayed = 0, rerun = 0;
        fx_status st = be->begin ? be->begin(p->bectx, &replayed, err) : FX_OK;
        if (st != FX_OK)
            return st;
        for (int s = 0; !replayed && st == FX_OK && s < g->n_nodes; s++) {
            const fx_node *n = &g->nodes[s];
            if (!runs_node(p, s))
                continue; /* same bytes, aliased; or run by a fused node */
            fx_exec_fast x;
            fx_conv_expand xe;
            node_exec(p, s, &x, &xe);
            double t0 = p->profile ? now_s() : 0.0;
            fx_error e; /* not zeroed whole: 1 KiB per node on the hot path */
            e.code = FX_OK, e.msg[0] = '\0';
            st = be->run_node(p->bectx, s, n, &x, &e);
            if (st == FX_OK && p->profile && !be->host_memory)
                st = be->sync(p->bectx, &e);
            if (p->profile)
                profile_add(p, n, now_s() - t0);
            if (st != FX_OK)
                fx_error_set(err, st, "node '%s' (%s): kernel failed (%s)", n->name, n->op_type,
                             e.msg[0] ? e.msg : fx_status_str(st));
        }
        if (be->end) {
            fx_error e = {0};
            fx_status se = be->end(p->bectx, st != FX_OK, &rerun, &e);
            if (st == FX_OK && se != FX_OK)
                st = fx_error_set(err, se, "%s", e.msg);
        }
        if (!rerun)
            return st;
    }
    return fx_error_set(err, FX_ERR_INTERNAL, "plan: the backend asked to rerun twice");
}

fx_status fx_plan_run(fx_plan *p, const float *input, fx_error *err)
{
    const fx_graph *g = p->g;
    const fx_backend_ops *be = p->be;
    if (!input)
        return fx_error_set(err, FX_ERR_USAGE, "plan: NULL input");
    fx_status st;
    int in = g->inputs[0];
    if ((p->poison && (st = be->poison(p->bectx, p->arena, p->peak, err)) != FX_OK) ||
        (st = be->upload(p->bectx, fx_plan_buffer(p, in), input, fx_shape_numel(&g->t[in].shape),
                         err)) != FX_OK ||
        (st = run_nodes(p, err)) != FX_OK)
        return st;
    /* Host copies are made when read (fx_plan_host): what nobody reads
     * (most of a CAM region's tensors on a GPU) never crosses. */
    for (int t = 0; !be->host_memory && t < g->n_t; t++)
        p->stale[t] = p->host[t] != NULL;
    return be->sync(p->bectx, err);
}

fx_status fx_plan_rerun(fx_plan *p, fx_error *err)
{
    fx_status st = run_nodes(p, err);
    return st != FX_OK ? st : p->be->sync(p->bectx, err);
}

const float *fx_plan_host(const fx_plan *p, int t, fx_error *err)
{
    fx_plan *q = (fx_plan *)p; /* the copy is a cache of the device's values */
    if (p->be->host_memory)
        return fx_plan_buffer(p, t);
    if (q->stale[t]) {
        if (p->be->download(p->bectx, p->host[t], fx_plan_buffer(p, t),
                            fx_shape_numel(&p->g->t[t].shape), err) != FX_OK)
            return NULL;
        q->stale[t] = 0;
    }
    return p->host[t];
}

const float *fx_plan_tensor(const fx_plan *p, const char *name, fx_shape *shape)
{
    int t = fx_graph_find(p->g, name);
    if (t < 0 || !p->keep[t] || p->g->t[t].dt != FX_DT_FLOAT)
        return NULL;
    if (shape)
        *shape = p->g->t[t].shape;
    if (p->g->t[t].kind == FX_T_CONST)
        return p->g->t[t].data; /* the graph's host copy, on every backend */
    return fx_plan_host(p, t, NULL);
}

size_t fx_plan_peak_bytes(const fx_plan *p)
{
    return p->peak;
}

size_t fx_plan_naive_bytes(const fx_plan *p)
{
    return p->naive;
}
