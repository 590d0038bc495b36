/* Binders and executors of the data-movement and shape-arithmetic ops:
 * Concat, Split, Transpose, Pad, the views (Flatten, Reshape, Squeeze,
 * Unsqueeze, Identity, Dropout), Constant, ConstantOfShape, Shape, Gather,
 * Cast, Slice.  Those that exporters use on int64 shape tensors (Concat,
 * Gather, Slice, Cast, the views) work on both dtypes; with constant inputs
 * prepare evaluates them once. */
#include <limits.h>

#include "model/ops_common.h"

static size_t esize_of(const fx_exec *x, const fx_node *n)
{
    return fx_dtype_size(x->g->t[n->out[0]].dt);
}

/* ---- Concat ------------------------------------------------------------------ */

fx_status fx_bind_concat(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_shape shapes[64];
    if (n->n_in < 1 || n->n_in > 64)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "%d inputs (1..64)", n->n_in);
    fx_status st;
    for (int k = 0; k < n->n_in; k++) {
        if ((st = fx_need_input(g, n, k, 0, err)) != FX_OK)
            return st;
        if (fx_in(g, n, k)->dt != fx_in(g, n, 0)->dt)
            return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "mixed dtypes");
        shapes[k] = fx_in(g, n, k)->shape;
    }
    fx_concat_params p = {n->n_in, shapes, (int)fx_attr_int(n, "axis", 0)};
    fx_shape o;
    if ((st = fx_concat_out_shape(&p, &o, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (Concat)", n->name);
        return st;
    }
    n->b.axis = fx_axis(p.axis, o.rank);
    fx_set_out(g, n, 0, fx_in(g, n, 0)->dt, &o);
    return FX_OK;
}

/* Byte-wise concat: for each outer index, each input's (d[axis] * inner) run. */
fx_status fx_exec_concat(const fx_node *n, const fx_exec *x)
{
    const fx_shape *o = &x->g->t[n->out[0]].shape;
    size_t es = esize_of(x, n);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < n->b.axis; i++)
        outer *= o->d[i];
    for (int i = n->b.axis + 1; i < o->rank; i++)
        inner *= o->d[i];
    size_t row = (size_t)(o->d[n->b.axis] * inner) * es; /* one outer index of y */
    /* Outer rows (images, for a channel concat) are independent: copy them
     * in parallel in fast plans (densenet's concats at batch 32). */
#pragma omp parallel for schedule(static) if (x->fast && outer > 1 && outer * row >= (1 << 20))
    for (int64_t r = 0; r < outer; r++) {
        char *y = (char *)x->out[0] + (size_t)r * row;
        for (int k = 0; k < n->n_in; k++) {
            size_t run = (size_t)(in_shape(x, n, k)->d[n->b.axis] * inner) * es;
            memcpy(y, (const char *)x->in[k] + (size_t)r * run, run);
            y += run;
        }
    }
    return FX_OK;
}

/* ---- Split ------------------------------------------------------------------- */

fx_status fx_bind_split(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    const fx_shape *x = &fx_in(g, n, 0)->shape;
    int axis = fx_axis(fx_attr_int(n, "axis", 0), x->rank);
    if (axis < 0)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "axis out of range");
    const int64_t *sizes = NULL;
    int64_t ns = -1;
    if (fx_in(g, n, 1) && (st = fx_const_ints(g, n, 1, &sizes, &ns, err)) != FX_OK)
        return st;
    if (!fx_in(g, n, 1))
        fx_attr_ints(n, "split", &sizes, &ns);
    if (ns >= 0 && ns != n->n_out)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "%lld sizes for %d outputs", (long long)ns,
                        n->n_out);
    if (!(n->b.ints = malloc((size_t)n->n_out * sizeof *n->b.ints)))
        return NODE_ERR(err, n, FX_ERR_NOMEM, "out of memory");
    int64_t dim = x->d[axis], chunk = (dim + n->n_out - 1) / n->n_out, sum = 0;
    for (int k = 0; k < n->n_out; k++) { /* num_outputs (18): last chunk smaller */
        n->b.ints[k] = ns >= 0 ? sizes[k] : (dim - sum < chunk ? dim - sum : chunk);
        sum += n->b.ints[k];
        fx_shape o = *x;
        o.d[axis] = n->b.ints[k];
        fx_set_out(g, n, k, FX_DT_FLOAT, &o);
    }
    if (sum != dim)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "sizes sum to %lld, axis has %lld",
                        (long long)sum, (long long)dim);
    n->b.n_ints = n->n_out;
    n->b.axis = axis;
    return FX_OK;
}

fx_status fx_exec_split(const fx_node *n, const fx_exec *x)
{
    fx_split_params p = {*in_shape(x, n, 0), n->b.axis, n->n_out, n->b.ints};
    return fx_op_split_ref(&p, x->in[0], (float *const *)x->out);
}

/* ---- Transpose, Pad ------------------------------------------------------------ */

fx_status fx_bind_transpose(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    fx_transpose_params *p = &n->b.u.tr;
    p->x = fx_in(g, n, 0)->shape;
    const int64_t *perm;
    int64_t np;
    fx_attr_ints(n, "perm", &perm, &np);
    if (np >= 0 && np != p->x.rank)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "perm has %lld values for rank %d",
                        (long long)np, p->x.rank);
    for (int i = 0; i < p->x.rank; i++)
        p->perm[i] = np >= 0 ? (int)perm[i] : p->x.rank - 1 - i;
    fx_shape o;
    if ((st = fx_transpose_out_shape(p, &o, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (Transpose)", n->name);
        return st;
    }
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_transpose(const fx_node *n, const fx_exec *x)
{
    return fx_op_transpose_ref(&n->b.u.tr, x->in[0], x->out[0]);
}

/* Pads from the input (opset >= 11, with optional axes from 18) or the
 * attribute (older). */
static fx_status pad_amounts(const fx_graph *g, fx_node *n, fx_pad_params *p, fx_error *err)
{
    const int64_t *pads, *axes = NULL;
    int64_t np, na = -1;
    fx_status st;
    int r = p->x.rank;
    if (fx_in(g, n, 1)) {
        if ((st = fx_const_ints(g, n, 1, &pads, &np, err)) != FX_OK)
            return st;
        if (fx_in(g, n, 3) && (st = fx_const_ints(g, n, 3, &axes, &na, err)) != FX_OK)
            return st;
    } else
        fx_attr_ints(n, "pads", &pads, &np);
    int nax = na >= 0 ? (int)na : r;
    if (np != 2 * nax || nax > r)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "%lld pads for %d axes", (long long)np, nax);
    memset(p->pads, 0, sizeof p->pads);
    for (int i = 0; i < nax; i++) {
        int ax = axes ? fx_axis(axes[i], r) : i;
        if (ax < 0)
            return NODE_ERR(err, n, FX_ERR_FORMAT, "pad axis out of range");
        p->pads[ax] = pads[i];
        p->pads[r + ax] = pads[nax + i];
    }
    return FX_OK;
}

fx_status fx_bind_pad(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 1, err);
    if (st != FX_OK)
        return st;
    fx_pad_params *p = &n->b.u.pad;
    p->x = fx_in(g, n, 0)->shape;
    if ((st = pad_amounts(g, n, p, err)) != FX_OK)
        return st;
    const char *mode = fx_attr_str(n, "mode", "constant");
    p->mode = !strcmp(mode, "reflect") ? FX_PADMODE_REFLECT
              : !strcmp(mode, "edge")  ? FX_PADMODE_EDGE
                                       : FX_PADMODE_CONSTANT;
    if (p->mode == FX_PADMODE_CONSTANT && strcmp(mode, "constant"))
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "mode '%s'", mode);
    p->value = fx_attr_float(n, "value", 0.0f);
    if (fx_in(g, n, 2) && (st = fx_const_scalar(g, n, 2, &p->value, err)) != FX_OK)
        return st;
    fx_shape o;
    if ((st = fx_pad_out_shape(p, &o, err)) != FX_OK) {
        fx_error_prefix(err, "node '%s' (Pad)", n->name);
        return st;
    }
    fx_set_out(g, n, 0, FX_DT_FLOAT, &o);
    return FX_OK;
}

fx_status fx_exec_pad(const fx_node *n, const fx_exec *x)
{
    const fx_pad_params *p = &n->b.u.pad;
    int zero = 1;
    for (int i = 0; i < 2 * p->x.rank; i++)
        zero &= p->pads[i] == 0;
    if (x->fast && zero) { /* torch exports AvgPool as Pad(0) + AveragePool (densenet) */
        memcpy(x->out[0], x->in[0], (size_t)fx_shape_numel(&p->x) * sizeof(float));
        return FX_OK;
    }
    return fx_op_pad_ref(&n->b.u.pad, x->in[0], x->out[0]);
}

/* ---- views ------------------------------------------------------------------- */

static fx_status reshape_shape(const fx_graph *g, fx_node *n, const fx_shape *x, fx_shape *o,
                               fx_error *err)
{
    const int64_t *s;
    int64_t ns;
    fx_status st = fx_const_ints(g, n, 1, &s, &ns, err);
    if (st != FX_OK)
        return st;
    if (ns > FX_OPS_MAX_RANK)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "rank %lld", (long long)ns);
    int allowzero = (int)fx_attr_int(n, "allowzero", 0), infer = -1;
    int64_t known = 1;
    o->rank = (int)ns;
    for (int i = 0; i < ns; i++) {
        o->d[i] = s[i];
        if (s[i] == 0 && !allowzero) {
            if (i >= x->rank)
                return NODE_ERR(err, n, FX_ERR_FORMAT, "0 at dim %d beyond input rank", i);
            o->d[i] = x->d[i];
        }
        if (s[i] == -1) {
            if (infer >= 0)
                return NODE_ERR(err, n, FX_ERR_FORMAT, "more than one -1 in shape");
            infer = i;
        } else if (o->d[i] < 0)
            return NODE_ERR(err, n, FX_ERR_FORMAT, "dim %d is %lld", i, (long long)o->d[i]);
        else
            known *= o->d[i];
    }
    if (infer >= 0)
        o->d[infer] = known ? fx_shape_numel(x) / known : 0;
    return FX_OK;
}

/* Axes of Squeeze/Unsqueeze: input 1 (opset >= 13) or attribute; count -1 if none. */
static fx_status view_axes(const fx_graph *g, fx_node *n, const int64_t **axes, int64_t *na,
                           fx_error *err)
{
    if (fx_in(g, n, 1))
        return fx_const_ints(g, n, 1, axes, na, err);
    fx_attr_ints(n, "axes", axes, na);
    return FX_OK;
}

static fx_status squeeze_shape(const fx_node *n, const int64_t *axes, int64_t na,
                               const fx_shape *x, fx_shape *o, fx_error *err)
{
    int drop[FX_OPS_MAX_RANK] = {0};
    for (int i = 0; i < na; i++) {
        int a = fx_axis(axes[i], x->rank);
        if (a < 0 || x->d[a] != 1)
            return NODE_ERR(err, n, FX_ERR_FORMAT, "axis %lld is not a dim of size 1",
                            (long long)axes[i]);
        drop[a] = 1;
    }
    o->rank = 0;
    for (int i = 0; i < x->rank; i++)
        if (!(na > 0 ? drop[i] : x->d[i] == 1))
            o->d[o->rank++] = x->d[i];
    return FX_OK;
}

static fx_status unsqueeze_shape(const fx_node *n, const int64_t *axes, int64_t na,
                                 const fx_shape *x, fx_shape *o, fx_error *err)
{
    int r = x->rank + (int)na, ins[FX_OPS_MAX_RANK] = {0};
    if (na < 1 || r > FX_OPS_MAX_RANK)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "%lld axes on rank %d", (long long)na,
                        x->rank);
    for (int i = 0; i < na; i++) {
        int a = fx_axis(axes[i], r);
        if (a < 0 || ins[a])
            return NODE_ERR(err, n, FX_ERR_FORMAT, "bad or repeated axis %lld",
                            (long long)axes[i]);
        ins[a] = 1;
    }
    o->rank = r;
    for (int i = 0, k = 0; i < r; i++)
        o->d[i] = ins[i] ? 1 : x->d[k++];
    return FX_OK;
}

fx_status fx_bind_view(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 0, err);
    if (st != FX_OK)
        return st;
    const fx_tensor *xt = fx_in(g, n, 0);
    const fx_shape *x = &xt->shape;
    fx_shape o = *x;
    const int64_t *axes = NULL;
    int64_t na = -1;
    const char *t = n->op_type;
    if (!strcmp(t, "Flatten")) {
        int axis = fx_axis(fx_attr_int(n, "axis", 1), x->rank + 1);
        if (axis < 0)
            return NODE_ERR(err, n, FX_ERR_FORMAT, "axis out of range");
        int64_t outer = 1;
        for (int i = 0; i < axis; i++)
            outer *= x->d[i];
        o = (fx_shape){2, {outer, outer ? fx_shape_numel(x) / outer : 0}};
        if (!outer && axis < x->rank) {
            o.d[1] = 1;
            for (int i = axis; i < x->rank; i++)
                o.d[1] *= x->d[i];
        }
    } else if (!strcmp(t, "Reshape"))
        st = reshape_shape(g, n, x, &o, err);
    else if (!strcmp(t, "Squeeze") || !strcmp(t, "Unsqueeze")) {
        if ((st = view_axes(g, n, &axes, &na, err)) == FX_OK)
            st = t[0] == 'S' ? squeeze_shape(n, axes, na, x, &o, err)
                             : unsqueeze_shape(n, axes, na, x, &o, err);
    } else if (!strcmp(t, "Dropout") && n->n_out > 1 &&
               (fx_tensor_num_consumers(g, n->out[1]) || g->t[n->out[1]].is_output))
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "the mask output");
    if (st != FX_OK)
        return st;
    if (fx_shape_numel(&o) != fx_shape_numel(x))
        return NODE_ERR(err, n, FX_ERR_FORMAT, "%lld elements cannot become %lld",
                        (long long)fx_shape_numel(x), (long long)fx_shape_numel(&o));
    fx_set_out(g, n, 0, xt->dt, &o);
    return FX_OK;
}

/* Views alias their input in the plan; this copy is used when folding. */
fx_status fx_exec_view(const fx_node *n, const fx_exec *x)
{
    if (x->out[0] != x->in[0])
        memcpy(x->out[0], x->in[0],
               (size_t)fx_shape_numel(in_shape(x, n, 0)) * esize_of(x, n));
    return FX_OK;
}

/* ---- Constant, ConstantOfShape, Shape ----------------------------------------- */

/* The value of a Constant: its attribute as (dtype, shape, data). */
static fx_status constant_value(const fx_node *n, fx_dtype *dt, fx_shape *s, const void **data,
                                fx_error *err)
{
    static const float zero = 0; /* read-only */
    for (int a = 0; a < n->n_attrs; a++) {
        const fx_nattr *at = &n->attrs[a];
        int scalar = !strcmp(at->name, "value_float") || !strcmp(at->name, "value_int");
        *s = (fx_shape){scalar ? 0 : 1, {at->n}};
        if (!strcmp(at->name, "value") && at->type == FX_ATTR_TENSOR) {
            *dt = at->t_dtype, *s = at->t_shape, *data = at->t_data;
        } else if (at->type == FX_ATTR_FLOAT && !strcmp(at->name, "value_float")) {
            *dt = FX_DT_FLOAT, *data = &at->f;
        } else if (at->type == FX_ATTR_INT && !strcmp(at->name, "value_int")) {
            *dt = FX_DT_INT64, *data = &at->i;
        } else if (at->type == FX_ATTR_FLOATS && !strcmp(at->name, "value_floats")) {
            *dt = FX_DT_FLOAT, *data = at->floats ? (const void *)at->floats : &zero;
        } else if (at->type == FX_ATTR_INTS && !strcmp(at->name, "value_ints")) {
            *dt = FX_DT_INT64, *data = at->ints ? (const void *)at->ints : &zero;
        } else
            continue;
        return FX_OK;
    }
    return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "no value / value_float(s) / value_int(s)");
}

fx_status fx_bind_constant(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_dtype dt;
    fx_shape s;
    const void *data;
    fx_status st = constant_value(n, &dt, &s, &data, err);
    if (st == FX_OK)
        fx_set_out(g, n, 0, dt, &s);
    return st;
}

fx_status fx_exec_constant(const fx_node *n, const fx_exec *x)
{
    fx_dtype dt;
    fx_shape s;
    const void *data;
    fx_status st = constant_value(n, &dt, &s, &data, NULL);
    if (st == FX_OK)
        memcpy(x->out[0], data, (size_t)fx_shape_numel(&s) * fx_dtype_size(dt));
    return st;
}

fx_status fx_bind_const_of_shape(fx_graph *g, fx_node *n, fx_error *err)
{
    const int64_t *d;
    int64_t nd;
    fx_status st = fx_const_ints(g, n, 0, &d, &nd, err);
    if (st != FX_OK)
        return st;
    if (nd > FX_OPS_MAX_RANK)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "rank %lld", (long long)nd);
    fx_shape o = {(int)nd, {0}};
    for (int i = 0; i < nd; i++)
        o.d[i] = d[i];
    const fx_nattr *v = fx_node_attr(n, "value");
    fx_dtype dt = v && v->type == FX_ATTR_TENSOR ? v->t_dtype : FX_DT_FLOAT;
    if (fx_shape_numel(&o) < 0)
        return NODE_ERR(err, n, FX_ERR_FORMAT, "bad shape");
    fx_set_out(g, n, 0, dt, &o);
    return FX_OK;
}

fx_status fx_exec_const_of_shape(const fx_node *n, const fx_exec *x)
{
    const fx_nattr *v = fx_node_attr(n, "value");
    size_t es = esize_of(x, n);
    int64_t total = fx_shape_numel(&x->g->t[n->out[0]].shape);
    char zero[8] = {0};
    const void *src = v && v->type == FX_ATTR_TENSOR && fx_shape_numel(&v->t_shape) > 0
                          ? v->t_data : zero;
    for (int64_t i = 0; i < total; i++)
        memcpy((char *)x->out[0] + (size_t)i * es, src, es);
    return FX_OK;
}

static void shape_range(const fx_node *n, int rank, int *lo, int *hi)
{
    int64_t s = fx_attr_int(n, "start", 0), e = fx_attr_int(n, "end", rank);
    if (s < 0)
        s += rank;
    if (e < 0)
        e += rank;
    *lo = (int)(s < 0 ? 0 : s > rank ? rank : s);
    *hi = (int)(e < 0 ? 0 : e > rank ? rank : e);
    if (*hi < *lo)
        *hi = *lo;
}

fx_status fx_bind_shape(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 0, err);
    if (st != FX_OK)
        return st;
    int lo, hi;
    shape_range(n, fx_in(g, n, 0)->shape.rank, &lo, &hi);
    fx_shape o = {1, {hi - lo}};
    fx_set_out(g, n, 0, FX_DT_INT64, &o);
    return FX_OK;
}

fx_status fx_exec_shape(const fx_node *n, const fx_exec *x)
{
    const fx_shape *s = in_shape(x, n, 0);
    int lo, hi;
    shape_range(n, s->rank, &lo, &hi);
    memcpy(x->out[0], &s->d[lo], (size_t)(hi - lo) * sizeof(int64_t));
    return FX_OK;
}

/* ---- Gather --------------------------------------------------------------------- */

fx_status fx_bind_gather(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 0, err);
    if (st == FX_OK)
        st = fx_need_input(g, n, 1, 0, err);
    if (st != FX_OK)
        return st;
    const fx_tensor *d = fx_in(g, n, 0), *ix = fx_in(g, n, 1);
    int axis = fx_axis(fx_attr_int(n, "axis", 0), d->shape.rank);
    if (axis < 0 || ix->dt != FX_DT_INT64 || ix->kind != FX_T_CONST)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED,
                        axis < 0 ? "axis out of range" : "indices must be constant int64");
    int r = d->shape.rank - 1 + ix->shape.rank;
    if (r > FX_OPS_MAX_RANK)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "output rank %d", r);
    int64_t ni = fx_shape_numel(&ix->shape), dim = d->shape.d[axis];
    for (int64_t i = 0; i < ni; i++) {
        int64_t v = ((const int64_t *)ix->data)[i];
        if (v < -dim || v >= dim)
            return NODE_ERR(err, n, FX_ERR_FORMAT, "index %lld out of [-%lld, %lld)",
                            (long long)v, (long long)dim, (long long)dim);
    }
    fx_shape o = {r, {0}};
    int k = 0;
    for (int i = 0; i < axis; i++)
        o.d[k++] = d->shape.d[i];
    for (int i = 0; i < ix->shape.rank; i++)
        o.d[k++] = ix->shape.d[i];
    for (int i = axis + 1; i < d->shape.rank; i++)
        o.d[k++] = d->shape.d[i];
    n->b.axis = axis;
    fx_set_out(g, n, 0, d->dt, &o);
    return FX_OK;
}

fx_status fx_exec_gather(const fx_node *n, const fx_exec *x)
{
    const fx_shape *d = in_shape(x, n, 0), *is = in_shape(x, n, 1);
    size_t es = esize_of(x, n);
    int64_t outer = 1, inner = 1, dim = d->d[n->b.axis], ni = fx_shape_numel(is);
    for (int i = 0; i < n->b.axis; i++)
        outer *= d->d[i];
    for (int i = n->b.axis + 1; i < d->rank; i++)
        inner *= d->d[i];
    const int64_t *ix = x->in[1];
    const char *src = x->in[0];
    char *y = x->out[0];
    size_t run = (size_t)inner * es;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < ni; i++) {
            int64_t v = ix[i] < 0 ? ix[i] + dim : ix[i];
            memcpy(y, src + (size_t)(o * dim + v) * run, run);
            y += run;
        }
    return FX_OK;
}

/* ---- Cast ----------------------------------------------------------------------- */

fx_status fx_bind_cast(fx_graph *g, fx_node *n, fx_error *err)
{
    fx_status st = fx_need_input(g, n, 0, 0, err);
    if (st != FX_OK)
        return st;
    int64_t to = fx_attr_int(n, "to", 0);
    if (to != FX_DT_FLOAT && to != FX_DT_INT64)
        return NODE_ERR(err, n, FX_ERR_UNSUPPORTED, "cast to dtype %lld (float, int64 only)",
                        (long long)to);
    fx_set_out(g, n, 0, (fx_dtype)to, &fx_in(g, n, 0)->shape);
    return FX_OK;
}

fx_status fx_exec_cast(const fx_node *n, const fx_exec *x)
{
    fx_dtype from = x->g->t[n->in[0]].dt, to = x->g->t[n->out[0]].dt;
    int64_t total = fx_shape_numel(in_shape(x, n, 0));
    if (from == to)
        return fx_exec_view(n, x);
    for (int64_t i = 0; i < total; i++) {
        if (to == FX_DT_FLOAT)
            ((float *)x->out[0])[i] = (float)((const int64_t *)x->in[0])[i];
        else
            ((int64_t *)x->out[0])[i] = (int64_t)((const float *)x->in[0])[i];
    }
    return FX_OK;
}

/* ---- Slice ---------------------------------------------------------------------- */

/* ONNX clamping of one axis: start/end into the valid range for the step. */
static void slice_axis(int64_t dim, int64_t s, int64_t e, int64_t step, int64_t *start,
                       int64_t *count)
{
    if (s < 0)
        s += dim;
    if (e < 0)
        e += dim;
    if (step > 0) {
        s = s < 0 ? 0 : s > dim ? dim : s;
        e = e < 0 ? 0 : e > dim ? dim : e;
        *count = e > s ? (e - s + step - 1) / step : 0;
    } else {
        s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
        e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
        *count = s > e ? (s - e - step - 1) / -step : 0;
    }
    *start = s;
}

/* starts, ends, axes, steps: inputs 1..4 (opset >= 10) or attributes. */
static fx_status slice_args(const fx_graph *g, fx_node *n, const int64_t **v, int64_t *c,
                            fx_error *err)
{
    static const char *names[4] = {"starts", "ends", "axes", "steps"};
    for (int k = 0; k < 4; k++) {
        c[k] = -1, v[k] = NULL;
        fx_status st = FX_OK;
        if (n->n_in > 1 && fx_in(g, n, k + 1))
            st = fx_const_ints(g, n, k + 1, &v[k], &c[k], err);
        else if (n->n_in <= 1)
            fx_attr_ints(n, names[k], &v[k], &c[k]);
        if (st != FX_OK)
            return st;
    }
    if (c[0] < 0 || c[1] != c[0] || (c[2] >= 0 && c[2] != c[0]) || (c[3] >= 0 && c[3] != c[0]))
        return NODE_ERR(err, n, FX_ERR_FORMAT, "starts/ends/axes/steps lengths differ");
    return FX_OK;
}

fx_status fx_bind_slice(fx_graph *g, fx_node *n, fx_error *err)
{
    const int64_t *v[4];
    int64_t c[4];
    fx_status st = fx_need_input(g, n, 0, 0, err);
    if (st == FX_OK)
        st = slice_args(g, n, v, c, err);
    if (st != FX_OK)
        return st;
    const fx_shape *x = &fx_in(g, n, 0)->shape;
    int r = x->rank;
    if (!(n->b.ints = malloc(2 * FX_OPS_MAX_RANK * sizeof *n->b.ints)))
        return NODE_ERR(err, n, FX_ERR_NOMEM, "out of memory");
    fx_shape o = *x;
    for (int i = 0; i < r; i++)
        n->b.ints[i] = 0, n->b.ints[FX_OPS_MAX_RANK + i] = 1;
    for (int i = 0; i < c[0]; i++) {
        int a = fx_axis(v[2] ? v[2][i] : i, r);
        int64_t step = v[3] ? v[3][i] : 1;
        if (a < 0 || step == 0)
            return NODE_ERR(err, n, FX_ERR_FORMAT, "bad axis or zero step");
        slice_axis(x->d[a], v[0][i], v[1][i], step, &n->b.ints[a], &o.d[a]);
        n->b.ints[FX_OPS_MAX_RANK + a] = step;
    }
    fx_set_out(g, n, 0, fx_in(g, n, 0)->dt, &o);
    return FX_OK;
}

fx_status fx_exec_slice(const fx_node *n, const fx_exec *x)
{
    const fx_shape *xs = in_shape(x, n, 0), *o = &x->g->t[n->out[0]].shape;
    size_t es = esize_of(x, n);
    int64_t st[FX_OPS_MAX_RANK], idx[FX_OPS_MAX_RANK] = {0}, total = fx_shape_numel(o);
    int64_t acc = 1;
    for (int i = xs->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= xs->d[i];
    }
    const int64_t *start = n->b.ints, *step = n->b.ints + FX_OPS_MAX_RANK;
    for (int64_t e = 0; e < total; e++) {
        int64_t off = 0;
        for (int i = 0; i < o->rank; i++)
            off += (start[i] + idx[i] * step[i]) * st[i];
        memcpy((char *)x->out[0] + (size_t)e * es, (const char *)x->in[0] + (size_t)off * es, es);
        for (int i = o->rank - 1; i >= 0; i--) {
            if (++idx[i] < o->d[i])
                break;
            idx[i] = 0;
        }
    }
    return FX_OK;
}
