/* Keras layers into graph nodes (src/model/keras_internal.h): one function
 * per layer kind, weights transposed from channels_last once, here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "model/keras_internal.h"

static int pair_of(const cJSON *o, const char *k, int dflt, int *v)
{
    const cJSON *a = kr_item(o, k);
    if (!a || cJSON_IsNull(a)) {
        v[0] = v[1] = dflt;
        return dflt < 0 ? -1 : 0;
    }
    if (cJSON_IsNumber(a)) {
        v[0] = v[1] = a->valueint;
        return 0;
    }
    if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == 2 &&
        cJSON_IsNumber(cJSON_GetArrayItem(a, 0)) && cJSON_IsNumber(cJSON_GetArrayItem(a, 1))) {
        v[0] = cJSON_GetArrayItem(a, 0)->valueint;
        v[1] = cJSON_GetArrayItem(a, 1)->valueint;
        return 0;
    }
    return -1;
}

static fx_status bad(kb *b, const char *layer, const char *fmt, const char *what)
{
    return fx_error_set(b->err, FX_ERR_FORMAT, "layer '%.100s': %s%.100s", layer, fmt,
                        what ? what : "");
}

/* ---- emitting --------------------------------------------------------------------- */

static void fresh(kb *b, const char *base, const char *what, char *out)
{
    snprintf(out, KR_NAME, "%.150s/%s_%d", base, what, b->made++);
}

static fx_status node(kb *b, const char *op, const char *const *in, int n_in, const char *out,
                      const fx_attr *attrs, int n_attrs)
{
    const char *outs[1] = {out};
    return fx_graph_add_node(b->g, out, op, in, n_in, outs, 1, attrs, n_attrs, b->err);
}

static fx_status node1(kb *b, const char *op, const char *in, const char *out)
{
    return node(b, op, &in, 1, out, NULL, 0);
}

static fx_status constant(kb *b, const char *name, const fx_shape *s, const float *data)
{
    return fx_graph_add_constant(b->g, name, FX_DT_FLOAT, s, data, b->err);
}

static fx_status constant_i64(kb *b, const char *name, const int64_t *v, int n)
{
    fx_shape s = {.rank = 1, .d = {n}};
    return fx_graph_add_constant(b->g, name, FX_DT_INT64, &s, v, b->err);
}

static fx_status transpose(kb *b, const char *in, const char *out, const int64_t *perm, int n)
{
    fx_attr a = {.name = "perm", .type = FX_ATTR_INTS, .ints = perm, .n = n};
    return node(b, "Transpose", &in, 1, out, &a, 1);
}

/* x op c (a scalar or per-channel constant shaped for x). */
static fx_status with_const(kb *b, const char *op, const char *x, const float *c, int nc,
                            const kt *t, const char *out)
{
    char cn[KR_NAME];
    fresh(b, out, "c", cn);
    fx_shape s = {.rank = 1, .d = {nc}};
    if (nc > 1 && t->rank == 4)
        s = (fx_shape){.rank = 3, .d = {nc, 1, 1}};
    fx_status st = constant(b, cn, &s, c);
    const char *in[2] = {x, cn};
    return st == FX_OK ? node(b, op, in, 2, out, NULL, 0) : st;
}

/* The activation `act` from in to out; out's tensor gets pre = in for a
 * sigmoid or softmax.  FX_ERR_UNSUPPORTED for an unknown name. */
static fx_status activation(kb *b, const char *layer, const char *act, const char *in,
                            const kt *shape, kt *out)
{
    fx_status st = FX_OK;
    const char *o = out->name;
    out->pre[0] = 0;
    if (!act || !strcmp(act, "linear")) {
        if (strcmp(in, o))
            st = node1(b, "Identity", in, o);
    } else if (!strcmp(act, "relu"))
        st = node1(b, "Relu", in, o);
    else if (!strcmp(act, "relu6")) {
        fx_attr a[2] = {{.name = "min", .type = FX_ATTR_FLOAT, .f = 0},
                        {.name = "max", .type = FX_ATTR_FLOAT, .f = 6}};
        st = node(b, "Clip", &in, 1, o, a, 2);
    } else if (!strcmp(act, "sigmoid")) {
        st = node1(b, "Sigmoid", in, o);
        snprintf(out->pre, KR_NAME, "%s", in);
    } else if (!strcmp(act, "softmax")) {
        fx_attr a = {.name = "axis", .type = FX_ATTR_INT, .i = shape->rank == 4 ? 1 : -1};
        st = node(b, "Softmax", &in, 1, o, &a, 1);
        snprintf(out->pre, KR_NAME, "%s", in);
    } else if (!strcmp(act, "tanh"))
        st = node1(b, "Tanh", in, o);
    else if (!strcmp(act, "swish") || !strcmp(act, "silu")) {
        char s[KR_NAME];
        fresh(b, o, "sigmoid", s);
        const char *mi[2] = {in, s};
        if ((st = node1(b, "Sigmoid", in, s)) == FX_OK)
            st = node(b, "Mul", mi, 2, o, NULL, 0);
    } else if (!strcmp(act, "hard_sigmoid")) {
        /* Keras 2: clip(0.2 x + 0.5); Keras 3: relu6(x + 3) / 6. */
        fx_attr a[2] = {
            {.name = "alpha", .type = FX_ATTR_FLOAT, .f = b->major == 2 ? 0.2f : 1.0f / 6},
            {.name = "beta", .type = FX_ATTR_FLOAT, .f = 0.5f}};
        st = node(b, "HardSigmoid", &in, 1, o, a, 2);
    } else if (!strcmp(act, "hard_swish") || !strcmp(act, "hard_silu"))
        st = node1(b, "HardSwish", in, o);
    else if (!strcmp(act, "elu")) {
        fx_attr a = {.name = "alpha", .type = FX_ATTR_FLOAT, .f = 1.0f};
        st = node(b, "Elu", &in, 1, o, &a, 1);
    } else if (!strcmp(act, "selu"))
        st = node1(b, "Selu", in, o);
    else if (!strcmp(act, "gelu"))
        st = node1(b, "Gelu", in, o);
    else
        return fx_error_set(b->err, FX_ERR_UNSUPPORTED, "layer '%s': activation '%s'", layer, act);
    return st;
}

/* The activation of a layer's config: a name, or {"class_name": ...}. */
const char *kr_act_name(const cJSON *cfg)
{
    const cJSON *a = kr_item(cfg, "activation");
    if (cJSON_IsString(a))
        return a->valuestring;
    if (cJSON_IsObject(a)) {
        const char *c = kr_str(a, "class_name");
        const char *n = kr_str(kr_item(a, "config"), "name");
        return n ? n : c;
    }
    return NULL;
}

int kr_act_known(const char *a)
{
    static const char *const ok[] = {"linear",    "relu",  "relu6", "sigmoid",      "softmax",
                                     "tanh",      "swish", "silu",  "hard_sigmoid", "hard_swish",
                                     "hard_silu", "elu",   "selu",  "gelu"};
    for (size_t i = 0; a && i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(a, ok[i]))
            return 1;
    return !a;
}

/* ---- layers ---------------------------------------------------------------------- */

static fx_status weight(kb *b, const call *c, int i, fx_shape expect, float **w, fx_shape *got)
{
    return b->w->get(b->w, &c->ref, i, &expect, w, got, b->err);
}

static int64_t chan(const kt *t)
{
    return t->d[t->rank - 1];
}

static fx_status conv(kb *b, const call *c, int depthwise)
{
    const kt *x = &c->in[0];
    kt *y = c->out;
    int k[2], s[2], d[2];
    if (x->rank != 4)
        return bad(b, c->name, "needs a 4-D input", NULL);
    if (pair_of(c->cfg, "kernel_size", -1, k) || pair_of(c->cfg, "strides", 1, s) ||
        pair_of(c->cfg, "dilation_rate", 1, d) || k[0] < 1 || k[1] < 1 || s[0] < 1 || s[1] < 1 ||
        d[0] < 1 || d[1] < 1 || k[0] > 1024 || k[1] > 1024)
        return bad(b, c->name, "bad kernel_size, strides or dilation_rate", NULL);
    const char *pad = kr_str(c->cfg, "padding");
    if (!pad || (strcmp(pad, "same") && strcmp(pad, "valid")))
        return bad(b, c->name, "padding must be 'same' or 'valid', not ", pad ? pad : "(none)");
    int64_t cin = chan(x), groups = depthwise ? cin : (int64_t)kr_num(c->cfg, "groups", 1);
    int64_t mult = depthwise ? (int64_t)kr_num(c->cfg, "depth_multiplier", 1) : 0;
    int64_t filters = depthwise ? cin * mult : (int64_t)kr_num(c->cfg, "filters", -1);
    int sep = !strncmp(c->cls, "Separable", 9);
    if (sep) {
        mult = (int64_t)kr_num(c->cfg, "depth_multiplier", 1);
        groups = cin;
    }
    if (cin < 1 || filters < 1 || groups < 1 || cin % groups || (depthwise && mult < 1) ||
        (sep && mult < 1) || filters > (1 << 20) || mult > 4096)
        return bad(b, c->name, "filters, groups or depth_multiplier do not fit the input", NULL);
    int bias = kr_bool(c->cfg, "use_bias", 1);
    float *w = NULL, *bw = NULL;
    fx_shape got;
    fx_status st = FX_OK;
    int64_t ks[2] = {k[0], k[1]}, ss[2] = {s[0], s[1]}, ds[2] = {d[0], d[1]};
    char wn[KR_NAME], bn[KR_NAME], mid[KR_NAME];
    /* One or two convolutions: a depthwise (groups = C), then for
     * SeparableConv2D a pointwise one. */
    for (int pass = 0; pass < (sep ? 2 : 1) && st == FX_OK; pass++) {
        int dw = depthwise || (sep && pass == 0);
        int64_t co = dw ? cin * mult : filters, ci = dw ? 1 : (sep ? cin * mult : cin / groups);
        int kh = sep && pass ? 1 : k[0], kw = sep && pass ? 1 : k[1];
        fx_shape e = dw ? (fx_shape){.rank = 4, .d = {kh, kw, cin, mult}}
                        : (fx_shape){.rank = 4, .d = {kh, kw, ci, co}};
        if ((st = weight(b, c, pass, e, &w, &got)) != FX_OK)
            break;
        float *oihw = malloc((size_t)(co * ci * kh * kw) * sizeof(float));
        if (!oihw) {
            free(w);
            return fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
                for (int64_t a = 0; a < (dw ? cin : ci); a++)
                    for (int64_t o = 0; o < (dw ? mult : co); o++) {
                        float v = w[((i * kw + j) * (dw ? cin : ci) + a) * (dw ? mult : co) + o];
                        int64_t oc = dw ? a * mult + o : o, ic = dw ? 0 : a;
                        oihw[((oc * ci + ic) * kh + i) * kw + j] = v;
                    }
        free(w);
        w = NULL;
        fresh(b, c->name, pass ? "pointwise" : "kernel", wn);
        fx_shape ws = {.rank = 4, .d = {co, ci, kh, kw}};
        st = constant(b, wn, &ws, oihw);
        free(oihw);
        int last = !sep || pass == 1;
        int has_b = last && bias;
        if (st == FX_OK && has_b) {
            fx_shape e2 = {.rank = 1, .d = {co}};
            if ((st = weight(b, c, sep ? 2 : 1, e2, &bw, &got)) == FX_OK) {
                fresh(b, c->name, "bias", bn);
                st = constant(b, bn, &e2, bw);
                free(bw);
            }
        }
        if (st != FX_OK)
            break;
        int64_t one[2] = {1, 1}, pads[4] = {0, 0, 0, 0};
        int same = !strcmp(pad, "same") && !(sep && pass);
        fx_attr a[6] = {
            {.name = "kernel_shape", .type = FX_ATTR_INTS, .ints = sep && pass ? one : ks, .n = 2},
            {.name = "strides", .type = FX_ATTR_INTS, .ints = sep && pass ? one : ss, .n = 2},
            {.name = "dilations", .type = FX_ATTR_INTS, .ints = sep && pass ? one : ds, .n = 2},
            {.name = "group",
             .type = FX_ATTR_INT,
             .i = dw    ? cin
                  : sep ? 1
                        : groups},
            same ? (fx_attr){.name = "auto_pad", .type = FX_ATTR_STRING, .s = "SAME_UPPER"}
                 : (fx_attr){.name = "pads", .type = FX_ATTR_INTS, .ints = pads, .n = 4}};
        const char *in[3] = {pass ? mid : x->name, wn, bn};
        char *o =
            last ? (kr_act_name(c->cfg) && strcmp(kr_act_name(c->cfg), "linear") ? mid : y->name)
                 : mid;
        char pre[KR_NAME];
        if (last && o == mid) {
            fresh(b, c->name, "conv", pre);
            o = pre;
        }
        if (!last)
            fresh(b, c->name, "depthwise", mid);
        st = node(b, "Conv", in, has_b ? 3 : 2, last ? o : mid, a, 5);
        if (st == FX_OK && last) {
            y->rank = 4;
            y->d[0] = -1, y->d[3] = filters;
            for (int q = 0; q < 2; q++) {
                int64_t n = x->d[1 + q];
                int64_t eff = (int64_t)(k[q] - 1) * d[q] + 1;
                y->d[1 + q] = n < 0                  ? -1
                              : !strcmp(pad, "same") ? (n + s[q] - 1) / s[q]
                                                     : (n - eff) / s[q] + 1;
            }
            if (o != y->name)
                st = activation(b, c->name, kr_act_name(c->cfg), o, y, y);
        }
    }
    return st;
}

static fx_status batchnorm(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    const cJSON *ax = kr_item(c->cfg, "axis");
    int axis = cJSON_IsArray(ax) && cJSON_GetArraySize(ax) == 1
                   ? cJSON_GetArrayItem(ax, 0)->valueint
               : cJSON_IsNumber(ax) ? ax->valueint
                                    : -1;
    if ((axis != -1 && axis != x->rank - 1) || (x->rank != 2 && x->rank != 4))
        return bad(b, c->name, "normalises an axis other than the channels, or a tensor of rank 3",
                   NULL);
    int64_t C = chan(x);
    int scale = kr_bool(c->cfg, "scale", 1), center = kr_bool(c->cfg, "center", 1);
    float *p[4] = {0}, *ones = malloc((size_t)C * sizeof(float)), *zeros = calloc((size_t)C, 4);
    fx_status st =
        ones && zeros && C > 0 ? FX_OK : fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; ones && i < C; i++)
        ones[i] = 1;
    fx_shape e = {.rank = 1, .d = {C}}, got;
    int wi = 0;
    for (int k = 0; k < 4 && st == FX_OK; k++) {
        if ((k == 0 && !scale) || (k == 1 && !center))
            continue;
        st = weight(b, c, wi++, e, &p[k], &got);
    }
    const char *names[5] = {x->name};
    char cn[4][KR_NAME];
    for (int k = 0; k < 4 && st == FX_OK; k++) {
        fresh(b, c->name, (const char *[]){"gamma", "beta", "mean", "var"}[k], cn[k]);
        st = constant(b, cn[k], &e, p[k] ? p[k] : k == 0 ? ones : zeros);
        names[k + 1] = cn[k];
    }
    for (int k = 0; k < 4; k++)
        free(p[k]);
    free(ones);
    free(zeros);
    fx_attr a = {
        .name = "epsilon", .type = FX_ATTR_FLOAT, .f = (float)kr_num(c->cfg, "epsilon", 1e-3)};
    if (st == FX_OK)
        st = node(b, "BatchNormalization", names, 5, c->out->name, &a, 1);
    return st; /* the shape is x's, as apply set it */
}

static fx_status dense(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    kt *y = c->out;
    int64_t units = (int64_t)kr_num(c->cfg, "units", -1), in = chan(x);
    if (units < 1 || units > (1 << 24))
        return bad(b, c->name, "bad units", NULL);
    float *w = NULL, *bw = NULL;
    fx_shape got, e = {.rank = 2, .d = {in, units}};
    fx_status st = weight(b, c, 0, e, &w, &got);
    char wn[KR_NAME], bn[KR_NAME], pre[KR_NAME];
    if (st == FX_OK) {
        fresh(b, c->name, "kernel", wn);
        st = constant(b, wn, &got, w);
        free(w);
    }
    int bias = kr_bool(c->cfg, "use_bias", 1);
    if (st == FX_OK && bias) {
        fx_shape e2 = {.rank = 1, .d = {units}};
        if ((st = weight(b, c, 1, e2, &bw, &got)) == FX_OK) {
            fresh(b, c->name, "bias", bn);
            st = constant(b, bn, &e2, bw);
            free(bw);
        }
    }
    const char *act = kr_act_name(c->cfg);
    int has_act = act && strcmp(act, "linear");
    char name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    if (has_act)
        fresh(b, c->name, "dense", pre);
    const char *o = has_act ? pre : name;
    *y = (kt){.rank = x->rank};
    memcpy(y->d, x->d, sizeof x->d);
    y->d[x->rank - 1] = units;
    snprintf(y->name, KR_NAME, "%s", name);
    if (st == FX_OK && x->rank == 2) {
        const char *in3[3] = {x->name, wn, bn};
        st = node(b, "Gemm", in3, bias ? 3 : 2, o, NULL, 0);
    } else if (st == FX_OK && x->rank == 3) { /* (N, T, C): the last axis is stored last */
        char mm[KR_NAME];
        fresh(b, c->name, "matmul", mm);
        const char *mi[2] = {x->name, wn}, *ai[2] = {mm, bn};
        st = node(b, "MatMul", mi, 2, bias ? mm : o, NULL, 0);
        if (st == FX_OK && bias)
            st = node(b, "Add", ai, 2, o, NULL, 0);
    } else if (st == FX_OK) { /* on the last axis of an N-D tensor: in NHWC order */
        char t1[KR_NAME], mm[KR_NAME], t2[KR_NAME];
        int64_t to[4] = {0, 2, 3, 1}, back[4] = {0, 3, 1, 2};
        fresh(b, c->name, "nhwc", t1);
        fresh(b, c->name, "matmul", mm);
        fresh(b, c->name, "biased", t2);
        const char *mi[2] = {t1, wn}, *ai[2] = {mm, bn};
        if (x->rank != 4)
            return bad(b, c->name, "Dense on a tensor of rank over 4", NULL);
        if ((st = transpose(b, x->name, t1, to, 4)) == FX_OK &&
            (st = node(b, "MatMul", mi, 2, bias ? mm : t2, NULL, 0)) == FX_OK && bias)
            st = node(b, "Add", ai, 2, t2, NULL, 0);
        if (st == FX_OK)
            st = transpose(b, t2, o, back, 4);
    }
    if (st == FX_OK && has_act)
        st = activation(b, c->name, act, pre, y, y);
    return st;
}

static fx_status pool(kb *b, const call *c, const char *op)
{
    const kt *x = &c->in[0];
    kt *y = c->out;
    int k[2], s[2];
    if (x->rank != 4 || pair_of(c->cfg, "pool_size", 2, k) || k[0] < 1 || k[1] < 1)
        return bad(b, c->name, "bad pool_size or input", NULL);
    if (pair_of(c->cfg, "strides", -1, s))
        s[0] = k[0], s[1] = k[1];
    if (s[0] < 1 || s[1] < 1)
        return bad(b, c->name, "bad strides", NULL);
    const char *pad = kr_str(c->cfg, "padding");
    int same = pad && !strcmp(pad, "same");
    int64_t ks[2] = {k[0], k[1]}, ss[2] = {s[0], s[1]}, pads[4] = {0};
    fx_attr a[3] = {{.name = "kernel_shape", .type = FX_ATTR_INTS, .ints = ks, .n = 2},
                    {.name = "strides", .type = FX_ATTR_INTS, .ints = ss, .n = 2},
                    same ? (fx_attr){.name = "auto_pad", .type = FX_ATTR_STRING, .s = "SAME_UPPER"}
                         : (fx_attr){.name = "pads", .type = FX_ATTR_INTS, .ints = pads, .n = 4}};
    char name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    fx_status st = node(b, op, (const char *[]){x->name}, 1, name, a, 3);
    *y = (kt){.rank = 4, .d = {-1, -1, -1, chan(x)}};
    snprintf(y->name, KR_NAME, "%s", name);
    for (int q = 0; q < 2; q++)
        y->d[1 + q] = x->d[1 + q] < 0 ? -1
                      : same          ? (x->d[1 + q] + s[q] - 1) / s[q]
                                      : (x->d[1 + q] - k[q]) / s[q] + 1;
    return st;
}

static fx_status global_pool(kb *b, const call *c, const char *op)
{
    const kt *x = &c->in[0];
    kt *y = c->out;
    if (x->rank != 4)
        return bad(b, c->name, "needs a 4-D input", NULL);
    int keep = kr_bool(c->cfg, "keepdims", 0);
    char mid[KR_NAME];
    char name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    if (!keep)
        fresh(b, c->name, "pooled", mid);
    fx_status st = node1(b, op, x->name, keep ? name : mid);
    fx_attr a = {.name = "axis", .type = FX_ATTR_INT, .i = 1};
    if (st == FX_OK && !keep)
        st = node(b, "Flatten", (const char *[]){mid}, 1, name, &a, 1);
    *y = keep ? (kt){.rank = 4, .d = {-1, 1, 1, chan(x)}} : (kt){.rank = 2, .d = {-1, chan(x)}};
    snprintf(y->name, KR_NAME, "%s", name);
    return st;
}

/* ((top, bottom), (left, right)) from an int, a pair or a pair of pairs. */
static int pads_of(const cJSON *cfg, const char *key, int64_t *p)
{
    const cJSON *a = kr_item(cfg, key);
    if (cJSON_IsNumber(a)) {
        p[0] = p[1] = p[2] = p[3] = a->valueint;
        return 0;
    }
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2)
        return -1;
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (cJSON_IsNumber(e))
            p[2 * i] = p[2 * i + 1] = e->valueint;
        else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                 cJSON_IsNumber(cJSON_GetArrayItem(e, 0)) &&
                 cJSON_IsNumber(cJSON_GetArrayItem(e, 1)))
            p[2 * i] = cJSON_GetArrayItem(e, 0)->valueint,
                  p[2 * i + 1] = cJSON_GetArrayItem(e, 1)->valueint;
        else
            return -1;
    }
    for (int i = 0; i < 4; i++)
        if (p[i] < 0 || p[i] > 65536)
            return -1;
    return 0;
}

static fx_status zero_pad(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    int64_t p[4]; /* top, bottom, left, right */
    if (x->rank != 4 || pads_of(c->cfg, "padding", p))
        return bad(b, c->name, "bad padding or input", NULL);
    int64_t onnx[8] = {0, 0, p[0], p[2], 0, 0, p[1], p[3]};
    char pn[KR_NAME];
    fresh(b, c->name, "pads", pn);
    fx_status st = constant_i64(b, pn, onnx, 8);
    const char *in[2] = {x->name, pn};
    if (st == FX_OK)
        st = node(b, "Pad", in, 2, c->out->name, NULL, 0);
    kt *y = c->out;
    y->rank = 4;
    y->d[0] = -1, y->d[3] = chan(x);
    y->d[1] = x->d[1] < 0 ? -1 : x->d[1] + p[0] + p[1];
    y->d[2] = x->d[2] < 0 ? -1 : x->d[2] + p[2] + p[3];
    return st;
}

static fx_status crop(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    int64_t p[4];
    if (x->rank != 4 || pads_of(c->cfg, "cropping", p))
        return bad(b, c->name, "bad cropping or input", NULL);
    int64_t starts[2] = {p[0], p[2]},
            ends[2] = {p[1] ? -p[1] : INT64_MAX, p[3] ? -p[3] : INT64_MAX}, axes[2] = {2, 3};
    char sn[KR_NAME], en[KR_NAME], an[KR_NAME];
    fresh(b, c->name, "starts", sn);
    fresh(b, c->name, "ends", en);
    fresh(b, c->name, "axes", an);
    fx_status st = constant_i64(b, sn, starts, 2);
    if (st == FX_OK)
        st = constant_i64(b, en, ends, 2);
    if (st == FX_OK)
        st = constant_i64(b, an, axes, 2);
    const char *in[4] = {x->name, sn, en, an};
    if (st == FX_OK)
        st = node(b, "Slice", in, 4, c->out->name, NULL, 0);
    kt *y = c->out;
    y->rank = 4;
    y->d[0] = -1, y->d[3] = chan(x);
    y->d[1] = x->d[1] < 0 ? -1 : x->d[1] - p[0] - p[1];
    y->d[2] = x->d[2] < 0 ? -1 : x->d[2] - p[2] - p[3];
    return st;
}

/* Add, Subtract, Multiply, Average, Maximum over c->n_in tensors. */
static fx_status merge(kb *b, const call *c)
{
    if (c->has_scalar) { /* x + s, x * s, x - s, s - x */
        int add = !strcmp(c->cls, "Add"), mul = !strcmp(c->cls, "Multiply"),
            sub = !strcmp(c->cls, "Subtract");
        if (c->n_in != 1 || !(add || mul || sub))
            return bad(b, c->name, "a number among the inputs of ", c->cls);
        float v = (float)c->scalar, minus = -1.0f;
        char name[KR_NAME], mid[KR_NAME];
        snprintf(name, KR_NAME, "%s", c->out->name);
        fx_status st;
        if (sub && c->scalar_first) { /* s - x = (x * -1) + s */
            fresh(b, c->name, "negated", mid);
            st = with_const(b, "Mul", c->in[0].name, &minus, 1, &c->in[0], mid);
            if (st == FX_OK)
                st = with_const(b, "Add", mid, &v, 1, &c->in[0], name);
        } else {
            if (sub)
                v = -v;
            st = with_const(b, mul ? "Mul" : "Add", c->in[0].name, &v, 1, &c->in[0], name);
        }
        return st;
    }
    if (c->n_in < 2 || (!strcmp(c->cls, "Subtract") && c->n_in != 2))
        return bad(b, c->name, "needs two or more inputs (Subtract: two)", NULL);
    const char *op = !strcmp(c->cls, "Multiply")   ? "Mul"
                     : !strcmp(c->cls, "Subtract") ? "Sub"
                                                   : "Add";
    int avg = !strcmp(c->cls, "Average"), mx = !strcmp(c->cls, "Maximum");
    char acc[KR_NAME], nxt[KR_NAME];
    snprintf(acc, KR_NAME, "%s", c->in[0].name);
    fx_status st = FX_OK;
    for (int i = 1; i < c->n_in && st == FX_OK; i++) {
        int last = i == c->n_in - 1 && !avg;
        if (last)
            snprintf(nxt, KR_NAME, "%s", c->out->name);
        else
            fresh(b, c->name, "acc", nxt);
        if (mx) { /* max(a, b) = a + relu(b - a) */
            char d[KR_NAME], r[KR_NAME];
            fresh(b, c->name, "diff", d);
            fresh(b, c->name, "relu", r);
            const char *sub[2] = {c->in[i].name, acc}, *add[2] = {acc, r};
            if ((st = node(b, "Sub", sub, 2, d, NULL, 0)) == FX_OK &&
                (st = node1(b, "Relu", d, r)) == FX_OK)
                st = node(b, "Add", add, 2, nxt, NULL, 0);
        } else {
            const char *in[2] = {acc, c->in[i].name};
            st = node(b, op, in, 2, nxt, NULL, 0);
        }
        snprintf(acc, KR_NAME, "%s", nxt);
    }
    kt *y = c->out;
    char name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    if (st == FX_OK && avg) {
        float inv = 1.0f / (float)c->n_in;
        st = with_const(b, "Mul", acc, &inv, 1, &c->in[0], name);
    }
    /* The broadcast shape of the inputs. */
    *y = c->in[0];
    for (int i = 1; i < c->n_in; i++)
        for (int k = 0; k < y->rank && k < c->in[i].rank; k++)
            if (y->d[k] == 1 || y->d[k] < 0)
                y->d[k] = c->in[i].d[k];
    snprintf(y->name, KR_NAME, "%s", name);
    y->pre[0] = 0;
    return st;
}

static fx_status concat(kb *b, const call *c)
{
    int axis = (int)kr_num(c->cfg, "axis", -1), r = c->in[0].rank;
    if (axis < 0)
        axis += r;
    if (c->n_in < 1 || axis < 1 || axis >= r || c->n_in > 4096)
        return bad(b, c->name, "bad axis or inputs", NULL);
    const char **in = malloc((size_t)c->n_in * sizeof *in);
    if (!in)
        return fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
    int64_t sum = 0;
    for (int i = 0; i < c->n_in; i++) {
        in[i] = c->in[i].name;
        sum = sum < 0 || c->in[i].d[axis] < 0 ? -1 : sum + c->in[i].d[axis];
        if (c->in[i].rank != r) {
            free(in);
            return bad(b, c->name, "inputs of different ranks", NULL);
        }
    }
    /* Keras axis -> NCHW axis for 4-D: H 1->2, W 2->3, C 3->1. */
    int ax = r == 4 ? (axis == 3 ? 1 : axis + 1) : axis;
    fx_attr a = {.name = "axis", .type = FX_ATTR_INT, .i = ax};
    fx_status st = node(b, "Concat", in, c->n_in, c->out->name, &a, 1);
    free(in);
    kt *y = c->out;
    char name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    *y = c->in[0];
    y->d[axis] = sum;
    y->pre[0] = 0;
    snprintf(y->name, KR_NAME, "%s", name);
    return st;
}

/* Flatten and Reshape: the Keras element order is NHWC. */
static fx_status reshape(kb *b, const call *c, int flatten)
{
    const kt *x = &c->in[0];
    kt *y = c->out;
    char src[KR_NAME], name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    snprintf(src, KR_NAME, "%s", x->name);
    fx_status st = FX_OK;
    if (x->rank == 4) {
        int64_t to[4] = {0, 2, 3, 1};
        fresh(b, c->name, "nhwc", src);
        st = transpose(b, x->name, src, to, 4);
    }
    if (flatten) {
        int64_t n = 1;
        for (int k = 1; k < x->rank; k++)
            n = n < 0 || x->d[k] < 0 ? -1 : n * x->d[k];
        fx_attr a = {.name = "axis", .type = FX_ATTR_INT, .i = 1};
        if (st == FX_OK)
            st = node(b, "Flatten", (const char *[]){src}, 1, name, &a, 1);
        *y = (kt){.rank = 2, .d = {-1, n}};
        snprintf(y->name, KR_NAME, "%s", name);
        return st;
    }
    const cJSON *ts = kr_item(c->cfg, "target_shape"), *e;
    int64_t shape[FX_OPS_MAX_RANK] = {0};
    int r = 1;
    if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) < 1 || cJSON_GetArraySize(ts) > 3)
        return bad(b, c->name, "target_shape must have 1 to 3 dims", NULL);
    cJSON_ArrayForEach(e, ts)
    {
        if (!cJSON_IsNumber(e) || e->valueint < -1 || e->valueint == 0)
            return bad(b, c->name, "bad target_shape", NULL);
        shape[r++] = e->valueint;
    }
    char sn[KR_NAME], mid[KR_NAME];
    fresh(b, c->name, "shape", sn);
    if (r == 4)
        fresh(b, c->name, "nhwc_out", mid);
    if (st == FX_OK)
        st = constant_i64(b, sn, shape, r); /* shape[0] = 0: keep the batch */
    const char *in[2] = {src, sn};
    if (st == FX_OK)
        st = node(b, "Reshape", in, 2, r == 4 ? mid : name, NULL, 0);
    if (st == FX_OK && r == 4) {
        int64_t back[4] = {0, 3, 1, 2};
        st = transpose(b, mid, name, back, 4);
    }
    *y = (kt){.rank = r, .d = {-1}};
    for (int k = 1; k < r; k++)
        y->d[k] = shape[k];
    snprintf(y->name, KR_NAME, "%s", name);
    return st;
}

static fx_status permute(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    const cJSON *dims = kr_item(c->cfg, "dims");
    int r = x->rank, p[FX_OPS_MAX_RANK] = {0};
    if (!cJSON_IsArray(dims) || cJSON_GetArraySize(dims) != r - 1 || r > FX_OPS_MAX_RANK)
        return bad(b, c->name, "dims must name every non-batch axis once", NULL);
    int seen = 0;
    for (int i = 1; i < r; i++) {
        const cJSON *e = cJSON_GetArrayItem(dims, i - 1);
        if (!cJSON_IsNumber(e) || e->valueint < 1 || e->valueint >= r || (seen >> e->valueint & 1))
            return bad(b, c->name, "dims must name every non-batch axis once", NULL);
        p[i] = e->valueint;
        seen |= 1 << p[i];
    }
    /* NCHW -> NHWC, the Keras permutation, back to NCHW (for rank 4). */
    int64_t perm[FX_OPS_MAX_RANK];
    static const int to[4] = {0, 2, 3, 1}, back[4] = {0, 3, 1, 2};
    for (int i = 0; i < r; i++)
        perm[i] = r == 4 ? to[p[back[i]]] : p[i];
    kt *y = c->out;
    char name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    fx_status st = transpose(b, x->name, name, perm, r);
    *y = (kt){.rank = r};
    for (int i = 0; i < r; i++)
        y->d[i] = x->d[p[i]];
    snprintf(y->name, KR_NAME, "%s", name);
    return st;
}

static fx_status relu_layer(kb *b, const call *c, int leaky_only)
{
    const kt *x = &c->in[0];
    double mv = leaky_only ? -1 : kr_num(c->cfg, "max_value", -1);
    double slope = leaky_only ? kr_num(c->cfg, b->major == 2 ? "alpha" : "negative_slope",
                                       kr_num(c->cfg, "alpha", 0.3))
                              : kr_num(c->cfg, "negative_slope", 0);
    double th = leaky_only ? 0 : kr_num(c->cfg, "threshold", 0);
    if (th != 0 || (mv >= 0 && slope != 0))
        return fx_error_set(b->err, FX_ERR_UNSUPPORTED,
                            "layer '%s': ReLU with a threshold, or with both max_value and "
                            "negative_slope",
                            c->name);
    fx_status st;
    if (mv >= 0) {
        fx_attr a[2] = {{.name = "min", .type = FX_ATTR_FLOAT, .f = 0},
                        {.name = "max", .type = FX_ATTR_FLOAT, .f = (float)mv}};
        st = node(b, "Clip", (const char *[]){x->name}, 1, c->out->name, a, 2);
    } else if (slope != 0) {
        fx_attr a = {.name = "alpha", .type = FX_ATTR_FLOAT, .f = (float)slope};
        st = node(b, "LeakyRelu", (const char *[]){x->name}, 1, c->out->name, &a, 1);
    } else
        st = node1(b, "Relu", x->name, c->out->name);
    return st;
}

static fx_status prelu(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    fx_shape e = {.rank = x->rank - 1}, got;
    for (int k = 1; k < x->rank; k++)
        e.d[k - 1] = -1;
    e.d[x->rank - 2] = chan(x);
    float *w = NULL;
    fx_status st = weight(b, c, 0, e, &w, &got);
    if (st != FX_OK)
        return st;
    char sn[KR_NAME];
    fresh(b, c->name, "slope", sn);
    fx_shape s = got;
    float *t = w;
    if (x->rank == 4 && got.rank == 3) { /* (h, w, C) -> (C, h, w) */
        int64_t h = got.d[0], wd = got.d[1], C = got.d[2];
        t = malloc((size_t)(h * wd * C) * sizeof(float));
        for (int64_t i = 0; t && i < h; i++)
            for (int64_t j = 0; j < wd; j++)
                for (int64_t k = 0; k < C; k++)
                    t[(k * h + i) * wd + j] = w[(i * wd + j) * C + k];
        s = (fx_shape){.rank = 3, .d = {C, h, wd}};
    }
    st = t ? constant(b, sn, &s, t) : fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
    if (t != w)
        free(t);
    free(w);
    const char *in[2] = {x->name, sn};
    return st == FX_OK ? node(b, "PRelu", in, 2, c->out->name, NULL, 0) : st;
}

static fx_status rescaling(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    /* A number, or one per channel. */
    float sc[4096], of[4096];
    size_t ns, no;
    if (fx_json_floats(kr_item(c->cfg, "scale"), sc, 4096, &ns) || ns < 1)
        return bad(b, c->name, "bad scale", NULL);
    if (!kr_item(c->cfg, "offset"))
        of[0] = 0, no = 1;
    else if (fx_json_floats(kr_item(c->cfg, "offset"), of, 4096, &no) || no < 1)
        return bad(b, c->name, "bad offset", NULL);
    char mid[KR_NAME];
    fresh(b, c->name, "scaled", mid);
    fx_status st = with_const(b, "Mul", x->name, sc, (int)ns, x, mid);
    if (st == FX_OK)
        st = with_const(b, "Add", mid, of, (int)no, x, c->out->name);
    return st;
}

static fx_status normalization(kb *b, const call *c)
{
    const kt *x = &c->in[0];
    if (kr_bool(c->cfg, "invert", 0))
        return fx_error_set(b->err, FX_ERR_UNSUPPORTED, "layer '%s': Normalization(invert=True)",
                            c->name);
    int64_t C = chan(x);
    if (C < 1 || C > 4096)
        return bad(b, c->name, "needs a known channel count up to 4096", NULL);
    float mean[4096], var[4096];
    size_t nm = 0, nv = 0;
    fx_status st = FX_OK;
    if (kr_item(c->cfg, "mean") && !cJSON_IsNull(kr_item(c->cfg, "mean"))) {
        if (fx_json_floats(kr_item(c->cfg, "mean"), mean, 4096, &nm) ||
            fx_json_floats(kr_item(c->cfg, "variance"), var, 4096, &nv))
            return bad(b, c->name, "bad mean or variance", NULL);
    } else {
        fx_shape any = {.rank = -1}, got;
        for (int k = 0; k < 2 && st == FX_OK; k++) {
            float *w = NULL;
            if ((st = weight(b, c, k, any, &w, &got)) != FX_OK)
                break;
            int64_t n = fx_shape_numel(&got);
            if (n != 1 && n != C)
                st = bad(b, c->name, "mean or variance is neither one value nor one per channel",
                         NULL);
            for (int64_t i = 0; st == FX_OK && i < n; i++)
                (k ? var : mean)[i] = w[i];
            *(k ? &nv : &nm) = (size_t)n;
            free(w);
        }
    }
    if (st != FX_OK)
        return st;
    if ((nm != 1 && (int64_t)nm != C) || (nv != 1 && (int64_t)nv != C) || nm != nv)
        return bad(b, c->name, "mean and variance do not match the channels", NULL);
    /* (x - mean) / max(sqrt(var), epsilon), as Keras computes it. */
    for (size_t i = 0; i < nv; i++) {
        float sd = sqrtf(var[i]);
        var[i] = 1.0f / (sd > 1e-7f ? sd : 1e-7f);
    }
    char mid[KR_NAME];
    fresh(b, c->name, "centred", mid);
    st = with_const(b, "Sub", x->name, mean, (int)nm, x, mid);
    if (st == FX_OK)
        st = with_const(b, "Mul", mid, var, (int)nv, x, c->out->name);
    return st;
}

/* ---- one layer ------------------------------------------------------------------- */

fx_status kr_layer(kb *b, call *c)
{
    const char *k = c->cls;
    kt *y = c->out;
    const kt *x = &c->in[0];
    char name[KR_NAME];
    snprintf(name, KR_NAME, "%s", y->name);
    /* Shape-preserving layers keep x's dims. */
    *y = *x;
    snprintf(y->name, KR_NAME, "%s", name);
    y->pre[0] = 0;
    if (!strcmp(k, "Conv2D") || !strcmp(k, "Convolution2D") || !strncmp(k, "Separable", 9))
        return conv(b, c, 0);
    if (!strcmp(k, "DepthwiseConv2D"))
        return conv(b, c, 1);
    if (!strcmp(k, "BatchNormalization"))
        return batchnorm(b, c);
    if (!strcmp(k, "Dense"))
        return dense(b, c);
    if (!strcmp(k, "Activation"))
        return activation(b, c->name, kr_act_name(c->cfg), x->name, x, y);
    if (!strcmp(k, "ReLU"))
        return relu_layer(b, c, 0);
    if (!strcmp(k, "LeakyReLU"))
        return relu_layer(b, c, 1);
    if (!strcmp(k, "PReLU"))
        return prelu(b, c);
    if (!strcmp(k, "ELU")) {
        fx_attr a = {
            .name = "alpha", .type = FX_ATTR_FLOAT, .f = (float)kr_num(c->cfg, "alpha", 1)};
        return node(b, "Elu", (const char *[]){x->name}, 1, name, &a, 1);
    }
    if (!strcmp(k, "Softmax")) {
        const cJSON *ax = kr_item(c->cfg, "axis");
        int a0 = cJSON_IsArray(ax) ? cJSON_GetArrayItem(ax, 0)->valueint
                                   : (int)kr_num(c->cfg, "axis", -1);
        if (a0 != -1 && a0 != x->rank - 1)
            return bad(b, c->name, "softmax over an axis other than the last", NULL);
        return activation(b, c->name, "softmax", x->name, x, y);
    }
    if (!strcmp(k, "MaxPooling2D") || !strcmp(k, "MaxPool2D"))
        return pool(b, c, "MaxPool");
    if (!strcmp(k, "AveragePooling2D") || !strcmp(k, "AvgPool2D"))
        return pool(b, c, "AveragePool");
    if (!strcmp(k, "GlobalAveragePooling2D") || !strcmp(k, "GlobalAvgPool2D"))
        return global_pool(b, c, "GlobalAveragePool");
    if (!strcmp(k, "GlobalMaxPooling2D") || !strcmp(k, "GlobalMaxPool2D"))
        return global_pool(b, c, "GlobalMaxPool");
    if (!strcmp(k, "ZeroPadding2D"))
        return zero_pad(b, c);
    if (!strcmp(k, "Cropping2D"))
        return crop(b, c);
    if (!strcmp(k, "Add") || !strcmp(k, "Subtract") || !strcmp(k, "Multiply") ||
        !strcmp(k, "Average") || !strcmp(k, "Maximum"))
        return merge(b, c);
    if (!strcmp(k, "Concatenate"))
        return concat(b, c);
    if (!strcmp(k, "Flatten"))
        return reshape(b, c, 1);
    if (!strcmp(k, "Reshape"))
        return reshape(b, c, 0);
    if (!strcmp(k, "Permute"))
        return permute(b, c);
    if (!strcmp(k, "Rescaling"))
        return rescaling(b, c);
    if (!strcmp(k, "Normalization"))
        return normalization(b, c);
    /* Dropout and noise: identity at inference. */
    return node1(b, "Identity", x->name, name);
}
