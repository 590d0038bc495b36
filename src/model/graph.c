/* The graph IR: tensors by name, nodes, the builder calls of graph.h and
 * the support check.  Op semantics live in bind.c and ops_*.c. */
#include <stdio.h>
#include <string.h>

#include "model/graph_internal.h"

static char *dupstr(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

size_t fx_dtype_size(fx_dtype dt)
{
    return dt == FX_DT_INT64 ? 8 : 4;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

fx_graph *fx_graph_create(void)
{
    fx_graph *g = calloc(1, sizeof *g);
    if (g)
        g->rewrites = FX_REWRITE_DEFAULT;
    return g;
}

void fx_node_free(fx_node *n)
{
    FX_FREE(n->name);
    FX_FREE(n->op_type);
    FX_FREE(n->in);
    FX_FREE(n->out);
    for (int a = 0; a < n->n_attrs; a++) {
        fx_nattr *at = &n->attrs[a];
        FX_FREE(at->name);
        FX_FREE(at->s);
        FX_FREE(at->ints);
        FX_FREE(at->floats);
        FX_FREE(at->t_data);
    }
    FX_FREE(n->attrs);
    FX_FREE(n->b.ints);
    n->n_attrs = 0;
}

void fx_graph_destroy(fx_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++)
        fx_node_free(&g->nodes[i]);
    for (int i = 0; i < g->n_t; i++) {
        FX_FREE(g->t[i].name);
        FX_FREE(g->t[i].data);
    }
    free(g->nodes);
    free(g->t);
    free(g->inputs);
    free(g->outputs);
    free(g->hash);
    free(g);
}

void fx_graph_set_opset(fx_graph *g, int opset)
{
    g->opset = opset;
}

int fx_graph_opset(const fx_graph *g)
{
    return g->opset;
}

void fx_graph_set_rewrites(fx_graph *g, unsigned flags)
{
    g->rewrites = flags;
}

/* ---- name table -------------------------------------------------------- */

int fx_graph_find(const fx_graph *g, const char *name)
{
    if (!g->hash_cap || !name)
        return -1;
    size_t mask = (size_t)g->hash_cap - 1;
    for (size_t h = hash_str(name) & mask;; h = (h + 1) & mask) {
        int v = g->hash[h];
        if (!v)
            return -1;
        if (!strcmp(g->t[v - 1].name, name))
            return v - 1;
    }
}

static void hash_put(fx_graph *g, int idx)
{
    size_t mask = (size_t)g->hash_cap - 1;
    size_t h = hash_str(g->t[idx].name) & mask;
    while (g->hash[h])
        h = (h + 1) & mask;
    g->hash[h] = idx + 1;
}

static int hash_grow(fx_graph *g)
{
    int cap = g->hash_cap ? g->hash_cap * 2 : 256;
    int *h = calloc((size_t)cap, sizeof *h);
    if (!h)
        return -1;
    free(g->hash);
    g->hash = h;
    g->hash_cap = cap;
    for (int i = 0; i < g->n_t; i++)
        hash_put(g, i);
    return 0;
}

int fx_graph_intern(fx_graph *g, const char *name)
{
    int i = fx_graph_find(g, name);
    if (i >= 0)
        return i;
    if (g->n_t == g->cap_t) {
        int cap = g->cap_t ? g->cap_t * 2 : 64;
        fx_tensor *t = realloc(g->t, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        g->t = t;
        g->cap_t = cap;
    }
    if ((g->n_t + 1) * 2 > g->hash_cap && hash_grow(g))
        return -1;
    fx_tensor *t = &g->t[g->n_t];
    memset(t, 0, sizeof *t);
    t->name = dupstr(name);
    if (!t->name)
        return -1;
    t->producer = -1;
    t->folded_into = -1;
    t->dt = FX_DT_FLOAT;
    hash_put(g, g->n_t);
    return g->n_t++;
}

static int push_index(int **arr, int *n, int *cap, int v)
{
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 8;
        int *a = realloc(*arr, (size_t)c * sizeof *a);
        if (!a)
            return -1;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

static void remove_index(int *arr, int *n, int v)
{
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (arr[i] != v)
            arr[k++] = arr[i];
    *n = k;
}

static fx_status check_shape(const fx_shape *s, int allow_dynamic, const char *what,
                             const char *name, fx_error *err)
{
    if (!s || s->rank < 0 || s->rank > FX_OPS_MAX_RANK)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "%s '%s': rank %d (at most %d)", what, name,
                            s ? s->rank : -1, FX_OPS_MAX_RANK);
    for (int i = 0; i < s->rank; i++)
        if (s->d[i] < 0 && !allow_dynamic)
            return fx_error_set(err, FX_ERR_FORMAT, "%s '%s': dim %d is %lld", what, name, i,
                                (long long)s->d[i]);
    return FX_OK;
}

static fx_status check_building(const fx_graph *g, const char *name, fx_error *err)
{
    if (g->prepared)
        return fx_error_set(err, FX_ERR_USAGE, "graph: cannot add '%s' after prepare",
                            name ? name : "");
    if (!name)
        return fx_error_set(err, FX_ERR_USAGE, "graph: NULL name");
    return FX_OK;
}

/* ---- builder ----------------------------------------------------------- */

fx_status fx_graph_add_input(fx_graph *g, const char *name, fx_dtype dt, const fx_shape *shape,
                             fx_error *err)
{
    fx_status st = check_building(g, name, err);
    if (st == FX_OK)
        st = check_shape(shape, 1, "input", name, err);
    if (st != FX_OK)
        return st;
    int i = fx_graph_intern(g, name);
    if (i < 0)
        return fx_error_set(err, FX_ERR_NOMEM, "graph: out of memory adding input '%s'", name);
    fx_tensor *t = &g->t[i];
    if (t->kind == FX_T_CONST) /* old exporters list initializers as inputs too */
        return FX_OK;
    if (t->kind != FX_T_UNDEF)
        return fx_error_set(err, FX_ERR_FORMAT, "graph: input '%s' defined twice", name);
    t->kind = FX_T_INPUT;
    t->dt = dt;
    t->shape = *shape;
    t->shape_known = 1; /* as declared; dims < 0 stay dynamic until prepare */
    if (push_index(&g->inputs, &g->n_inputs, &g->cap_inputs, i))
        return fx_error_set(err, FX_ERR_NOMEM, "graph: out of memory adding input '%s'", name);
    return FX_OK;
}

fx_status fx_graph_add_output(fx_graph *g, const char *name, fx_error *err)
{
    fx_status st = check_building(g, name, err);
    if (st != FX_OK)
        return st;
    int i = fx_graph_intern(g, name);
    if (i < 0)
        return fx_error_set(err, FX_ERR_NOMEM, "graph: out of memory adding output '%s'", name);
    if (g->t[i].is_output)
        return FX_OK;
    g->t[i].is_output = 1;
    if (push_index(&g->outputs, &g->n_outputs, &g->cap_outputs, i))
        return fx_error_set(err, FX_ERR_NOMEM, "graph: out of memory adding output '%s'", name);
    return FX_OK;
}

fx_status fx_graph_add_constant(fx_graph *g, const char *name, fx_dtype dt, const fx_shape *shape,
                                const void *data, fx_error *err)
{
    fx_status st = check_building(g, name, err);
    if (st == FX_OK)
        st = check_shape(shape, 0, "constant", name, err);
    if (st != FX_OK)
        return st;
    if (dt != FX_DT_FLOAT && dt != FX_DT_INT64)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "constant '%s': dtype %d", name, (int)dt);
    int64_t n = fx_shape_numel(shape);
    if (n < 0 || (n > 0 && !data))
        return fx_error_set(err, FX_ERR_FORMAT, "constant '%s': bad shape or no data", name);
    int i = fx_graph_intern(g, name);
    if (i < 0)
        return fx_error_set(err, FX_ERR_NOMEM, "graph: out of memory adding '%s'", name);
    fx_tensor *t = &g->t[i];
    if (t->kind == FX_T_INPUT) /* an initializer shadowing an input: a constant */
        remove_index(g->inputs, &g->n_inputs, i);
    else if (t->kind != FX_T_UNDEF)
        return fx_error_set(err, FX_ERR_FORMAT, "graph: constant '%s' defined twice", name);
    size_t bytes = (size_t)n * fx_dtype_size(dt);
    t->data = malloc(bytes ? bytes : 1);
    if (!t->data)
        return fx_error_set(err, FX_ERR_NOMEM, "constant '%s': out of memory (%zu bytes)", name,
                            bytes);
    if (bytes)
        memcpy(t->data, data, bytes);
    t->kind = FX_T_CONST;
    t->dt = dt;
    t->shape = *shape;
    t->shape_known = 1;
    return FX_OK;
}

static fx_status copy_attr(fx_nattr *d, const fx_attr *s)
{
    d->name = dupstr(s->name);
    d->type = s->type;
    d->i = s->i;
    d->f = s->f;
    d->n = s->n;
    if (!d->name)
        return FX_ERR_NOMEM;
    if (s->type == FX_ATTR_STRING && !(d->s = dupstr(s->s)))
        return FX_ERR_NOMEM;
    if (s->type == FX_ATTR_INTS && s->n > 0) {
        if (!s->ints || !(d->ints = malloc((size_t)s->n * sizeof *d->ints)))
            return s->ints ? FX_ERR_NOMEM : FX_ERR_FORMAT;
        memcpy(d->ints, s->ints, (size_t)s->n * sizeof *d->ints);
    }
    if (s->type == FX_ATTR_FLOATS && s->n > 0) {
        if (!s->floats || !(d->floats = malloc((size_t)s->n * sizeof *d->floats)))
            return s->floats ? FX_ERR_NOMEM : FX_ERR_FORMAT;
        memcpy(d->floats, s->floats, (size_t)s->n * sizeof *d->floats);
    }
    if (s->type == FX_ATTR_TENSOR) {
        int64_t n = fx_shape_numel(&s->t_shape);
        if (n < 0 || (s->t_dtype != FX_DT_FLOAT && s->t_dtype != FX_DT_INT64) ||
            (n > 0 && !s->t_data))
            return FX_ERR_FORMAT;
        size_t bytes = (size_t)n * fx_dtype_size(s->t_dtype);
        d->t_dtype = s->t_dtype;
        d->t_shape = s->t_shape;
        if (!(d->t_data = malloc(bytes ? bytes : 1)))
            return FX_ERR_NOMEM;
        if (bytes)
            memcpy(d->t_data, s->t_data, bytes);
    }
    return FX_OK;
}

static fx_status node_fill(fx_graph *g, fx_node *n, const char *name, const char *op_type,
                           const char *const *inputs, int n_in, const char *const *outputs,
                           int n_out, const fx_attr *attrs, int n_attrs)
{
    n->op_type = dupstr(op_type);
    n->in = malloc((size_t)(n_in > 0 ? n_in : 1) * sizeof *n->in);
    n->out = malloc((size_t)n_out * sizeof *n->out);
    n->attrs = calloc((size_t)(n_attrs > 0 ? n_attrs : 1), sizeof *n->attrs);
    if (!n->op_type || !n->in || !n->out || !n->attrs)
        return FX_ERR_NOMEM;
    char made[256];
    if (!name || !*name) {
        snprintf(made, sizeof made, "%s_%s", op_type, outputs[0]);
        name = made;
    }
    if (!(n->name = dupstr(name)))
        return FX_ERR_NOMEM;
    for (int k = 0; k < n_in; k++) {
        n->in[k] = (!inputs[k] || !*inputs[k]) ? -1 : fx_graph_intern(g, inputs[k]);
        if (inputs[k] && *inputs[k] && n->in[k] < 0)
            return FX_ERR_NOMEM;
        n->n_in = k + 1;
    }
    for (int k = 0; k < n_attrs; k++) {
        n->n_attrs = k + 1;
        fx_status st = copy_attr(&n->attrs[k], &attrs[k]);
        if (st != FX_OK)
            return st;
    }
    for (int k = 0; k < n_out; k++) {
        int t = (!outputs[k] || !*outputs[k]) ? -2 : fx_graph_intern(g, outputs[k]);
        if (t == -1)
            return FX_ERR_NOMEM;
        n->out[k] = t;
        n->n_out = k + 1;
    }
    return FX_OK;
}

/* Outputs named "" (unused optional outputs) get a private name. */
static fx_status name_unused_outputs(fx_graph *g, fx_node *n)
{
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] != -2)
            continue;
        char made[320];
        snprintf(made, sizeof made, "%s:unused%d", n->name, k);
        n->out[k] = fx_graph_intern(g, made);
        if (n->out[k] < 0)
            return FX_ERR_NOMEM;
    }
    return FX_OK;
}

fx_status fx_graph_add_node(fx_graph *g, const char *name, const char *op_type,
                            const char *const *inputs, int n_in, const char *const *outputs,
                            int n_out, const fx_attr *attrs, int n_attrs, fx_error *err)
{
    fx_status st = check_building(g, op_type, err);
    if (st != FX_OK)
        return st;
    if (n_in < 0 || n_out < 1 || n_attrs < 0 || (n_in && !inputs) || !outputs ||
        (n_attrs && !attrs))
        return fx_error_set(err, FX_ERR_USAGE, "node '%s' (%s): bad argument counts",
                            name ? name : "", op_type);
    if (!outputs[0] || !*outputs[0])
        return fx_error_set(err, FX_ERR_FORMAT, "node '%s' (%s): first output has no name",
                            name ? name : "", op_type);
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        fx_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return fx_error_set(err, FX_ERR_NOMEM, "graph: out of memory");
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    fx_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    st = node_fill(g, n, name, op_type, inputs, n_in, outputs, n_out, attrs, n_attrs);
    if (st == FX_OK)
        st = name_unused_outputs(g, n);
    for (int k = 0; st == FX_OK && k < n->n_out; k++) {
        fx_tensor *t = &g->t[n->out[k]];
        if (t->kind != FX_T_UNDEF)
            st = FX_ERR_FORMAT;
        else {
            t->kind = FX_T_NODE;
            t->producer = g->n_nodes;
        }
    }
    if (st != FX_OK) {
        const char *nm = n->name ? n->name : (name ? name : "");
        fx_error_set(err, st, "node '%s' (%s): %s", nm, op_type,
                     st == FX_ERR_NOMEM    ? "out of memory"
                     : st == FX_ERR_FORMAT ? "bad attribute or output already defined"
                                           : "invalid");
        fx_node_free(n);
        return st;
    }
    g->n_nodes++;
    return FX_OK;
}

/* ---- attributes -------------------------------------------------------- */

const fx_nattr *fx_node_attr(const fx_node *n, const char *name)
{
    for (int a = 0; a < n->n_attrs; a++)
        if (!strcmp(n->attrs[a].name, name))
            return &n->attrs[a];
    return NULL;
}

int64_t fx_attr_int(const fx_node *n, const char *name, int64_t def)
{
    const fx_nattr *a = fx_node_attr(n, name);
    return a && a->type == FX_ATTR_INT ? a->i : def;
}

float fx_attr_float(const fx_node *n, const char *name, float def)
{
    const fx_nattr *a = fx_node_attr(n, name);
    if (a && a->type == FX_ATTR_FLOAT)
        return a->f;
    return a && a->type == FX_ATTR_INT ? (float)a->i : def;
}

/* ---- support check ------------------------------------------------------ */

int fx_graph_op_known(const char *op_type)
{
    return op_type && fx_op_find(op_type) != NULL;
}

/* One unsupported op type: its first node and how many nodes use it. */
typedef struct op_group {
    const char *type;
    int first, count;
} op_group;

/* Room that a group's entry needs at least: ", Type (NNNNN nodes: 'first',
 * and NNNNN more)".  Kept free for every later group, so each type is
 * named with its first node. */
static size_t group_min_len(const fx_graph *g, const op_group *o)
{
    return strlen(o->type) + strlen(g->nodes[o->first].name) + 40;
}

/* Append one group: "Type (node 'a')" or "Type (23 nodes: 'a', 'b', and 21
 * more)", listing as many node names as fit in cap minus `reserve`. */
static void list_group(const fx_graph *g, const op_group *o, size_t reserve, char *msg, size_t cap)
{
    size_t len = strlen(msg);
    if (o->count > 1)
        snprintf(msg + len, cap - len, "%s%s (%d nodes: ", len > 17 ? ", " : "", o->type, o->count);
    else
        snprintf(msg + len, cap - len, "%s%s (node ", len > 17 ? ", " : "", o->type);
    int listed = 0;
    for (int j = o->first; j < g->n_nodes && listed < o->count; j++) {
        if (strcmp(g->nodes[j].op_type, o->type))
            continue;
        len = strlen(msg);
        size_t piece = strlen(g->nodes[j].name) + 4, tail = listed + 1 < o->count ? 24 : 0;
        if (len + piece + tail + 2 + reserve >= cap)
            break;
        snprintf(msg + len, cap - len, "%s'%s'", listed ? ", " : "", g->nodes[j].name);
        listed++;
    }
    len = strlen(msg);
    if (listed < o->count)
        snprintf(msg + len, cap - len, "%sand %d more)", listed ? ", " : "", o->count - listed);
    else
        snprintf(msg + len, cap - len, ")");
}

fx_status fx_graph_check_supported(const fx_graph *g, fx_error *err)
{
    op_group *grp = calloc((size_t)g->n_nodes + 1, sizeof *grp);
    char msg[FX_ERROR_MSG_MAX] = "unsupported ops: ";
    if (!grp)
        return fx_error_set(err, FX_ERR_NOMEM, "graph: out of memory");
    int ng = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const char *type = g->nodes[i].op_type;
        if (fx_graph_op_known(type))
            continue;
        int k = 0;
        while (k < ng && strcmp(grp[k].type, type))
            k++;
        if (k == ng)
            grp[ng++] = (op_group){type, i, 0};
        grp[k].count++;
    }
    /* Every type is named with its count; node names fill what is left of
     * the message, the types listed later keeping room for themselves. */
    for (int k = 0; k < ng; k++) {
        size_t reserve = 0;
        for (int m = k + 1; m < ng; m++)
            reserve += group_min_len(g, &grp[m]);
        list_group(g, &grp[k], reserve, msg, sizeof msg);
    }
    free(grp);
    if (ng)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "%s", msg);
    return FX_OK;
}

/* ---- simple queries ----------------------------------------------------- */

int fx_graph_num_nodes(const fx_graph *g)
{
    return g->n_nodes;
}

int fx_graph_num_inputs(const fx_graph *g)
{
    return g->n_inputs;
}

int fx_graph_num_outputs(const fx_graph *g)
{
    return g->n_outputs;
}

const char *fx_graph_input_name(const fx_graph *g, int i)
{
    return i >= 0 && i < g->n_inputs ? g->t[g->inputs[i]].name : NULL;
}

const char *fx_graph_output_name(const fx_graph *g, int i)
{
    return i >= 0 && i < g->n_outputs ? g->t[g->outputs[i]].name : NULL;
}

fx_status fx_graph_tensor_shape(const fx_graph *g, const char *name, fx_shape *out, fx_error *err)
{
    int i = fx_graph_find(g, name);
    if (i < 0 || !g->t[i].shape_known)
        return fx_error_set(err, FX_ERR_USAGE, "graph: no tensor '%s'%s", name ? name : "",
                            i >= 0 ? " with a known shape" : "");
    *out = g->t[i].shape;
    return FX_OK;
}

fx_status fx_graph_check_readable(const fx_graph *g, const char *name, fx_error *err)
{
    if (!g || !name)
        return fx_error_set(err, FX_ERR_USAGE, "fx_graph_check_readable: NULL argument");
    int i = fx_graph_find(g, name);
    if (i < 0)
        return fx_error_set(err, FX_ERR_USAGE, "no tensor '%s' in the graph", name);
    const fx_tensor *t = &g->t[i];
    if (t->folded_into >= 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "tensor '%s' was folded away at load: its Conv and the "
                            "BatchNormalization after it run as one conv, which writes '%s'",
                            name, g->t[t->folded_into].name);
    if (t->kind == FX_T_CONST)
        return fx_error_set(err, FX_ERR_USAGE,
                            "tensor '%s' is a constant after the load-time rewrites (weights, or "
                            "shape arithmetic folded at load), not an activation",
                            name);
    if (t->kind != FX_T_INPUT && (t->kind != FX_T_NODE || t->producer < 0))
        return fx_error_set(err, FX_ERR_USAGE,
                            "tensor '%s' was removed by the load-time rewrites (an Identity, "
                            "Dropout or zero Pad elided, or nothing that reaches an output "
                            "reads it)",
                            name);
    if (!t->shape_known || t->dt != FX_DT_FLOAT)
        return fx_error_set(err, FX_ERR_USAGE, "tensor '%s' is %s, not a float32 activation", name,
                            t->shape_known ? "int64" : "of unknown shape");
    return FX_OK;
}
