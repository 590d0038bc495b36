/* The Keras model config (JSON) into graph nodes (src/model/keras_internal.h).
 *
 * A first pass over the whole config (nested models included) collects
 * every layer the importer cannot take, so one message lists them all.
 * Then the layers are applied in dependency order, container by container
 * (Sequential: a chain; Functional: inbound nodes, in both Keras 2's
 * [[name, node, tensor, kwargs]] and Keras 3's {"args": [keras tensors]}
 * forms); a nested model called on a tensor is built in place.
 *
 * Layout: Keras tensors are channels_last; graph tensors are NCHW for
 * 4-D tensors and as they are otherwise.  Each tensor carries its Keras
 * rank and dims, so axis arguments, Flatten (NHWC element order) and Dense
 * weights come out right: Flatten and Reshape of a 4-D tensor go through
 * an explicit Transpose to NHWC first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/keras_internal.h"

/* ---- small helpers ----------------------------------------------------------------- */

/* Keras's layer-class to snake_case (as its .keras weights paths use). */
static void snake(const char *cls, char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; cls[i] && k + 2 < n; i++) {
        char c = cls[i];
        int up = c >= 'A' && c <= 'Z';
        int prev_low = i > 0 && ((cls[i - 1] >= 'a' && cls[i - 1] <= 'z'));
        int next_low = up && cls[i + 1] >= 'a' && cls[i + 1] <= 'z';
        /* "(.)([A-Z][a-z]+)" then "([a-z])([A-Z])" */
        if (up && i > 0 && (prev_low || next_low))
            out[k++] = '_';
        out[k++] = up ? (char)(c + 32) : c;
    }
    out[k] = 0;
}

/* ---- the tensor table ------------------------------------------------------------ */

static void key_of(char *key, size_t n, const char *scope, const char *layer, int node, int tensor)
{
    snprintf(key, n, "%s|%s|%d|%d", scope, layer, node, tensor);
}

static const kt *find(const kb *b, const char *key)
{
    for (int i = b->ntab - 1; i >= 0; i--)
        if (!strcmp(b->tab[i].key, key))
            return &b->tab[i].t;
    return NULL;
}

static fx_status put(kb *b, const char *key, const kt *t)
{
    if (b->ntab == b->cap) {
        int cap = b->cap ? b->cap * 2 : 256;
        kt_entry *nt = realloc(b->tab, (size_t)cap * sizeof *nt);
        if (!nt)
            return fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
        b->tab = nt, b->cap = cap;
    }
    if (!(b->tab[b->ntab].key = strdup(key)))
        return fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
    b->tab[b->ntab++].t = *t;
    return FX_OK;
}

static int name_used(const kb *b, const char *name)
{
    for (int i = 0; i < b->ntab; i++)
        if (!strcmp(b->tab[i].t.name, name))
            return 1;
    return 0;
}

/* ---- the first pass: what is not supported ----------------------------------------- */

static const char *const supported[] = {"InputLayer",
                                        "Conv2D",
                                        "Convolution2D",
                                        "DepthwiseConv2D",
                                        "SeparableConv2D",
                                        "SeparableConvolution2D",
                                        "BatchNormalization",
                                        "Dense",
                                        "Activation",
                                        "ReLU",
                                        "LeakyReLU",
                                        "PReLU",
                                        "ELU",
                                        "Softmax",
                                        "MaxPooling2D",
                                        "MaxPool2D",
                                        "AveragePooling2D",
                                        "AvgPool2D",
                                        "GlobalAveragePooling2D",
                                        "GlobalAvgPool2D",
                                        "GlobalMaxPooling2D",
                                        "GlobalMaxPool2D",
                                        "ZeroPadding2D",
                                        "Cropping2D",
                                        "Add",
                                        "Subtract",
                                        "Multiply",
                                        "Average",
                                        "Maximum",
                                        "Concatenate",
                                        "Flatten",
                                        "Reshape",
                                        "Permute",
                                        "Dropout",
                                        "SpatialDropout2D",
                                        "GaussianNoise",
                                        "GaussianDropout",
                                        "AlphaDropout",
                                        "ActivityRegularization",
                                        "Rescaling",
                                        "Normalization",
                                        "Functional",
                                        "Model",
                                        "Sequential"};

static void unsupported(kb *b, const char *what, const char *layer)
{
    char line[300];
    snprintf(line, sizeof line, "%s%.100s (layer '%.100s')", b->n_unsupported ? ", " : "", what,
             layer ? layer : "?");
    size_t n = strlen(line);
    char *u = realloc(b->unsupported, b->un_len + n + 1);
    if (!u)
        return;
    memcpy(u + b->un_len, line, n + 1);
    b->unsupported = u, b->un_len += n;
    b->n_unsupported++;
}

static void check_layers(kb *b, const cJSON *layers, int depth)
{
    const cJSON *l;
    cJSON_ArrayForEach(l, layers)
    {
        const char *cls = kr_str(l, "class_name");
        const cJSON *cfg = kr_item(l, "config");
        const char *name = kr_str(cfg, "name");
        if (!name)
            name = kr_str(l, "name");
        const char *module = kr_str(l, "module");
        size_t i = 0;
        while (cls && i < sizeof supported / sizeof supported[0] && strcmp(cls, supported[i]))
            i++;
        if (!cls)
            unsupported(b, "a layer without class_name", name);
        else if (!strcmp(cls, "Lambda") || !strcmp(cls, "TFOpLambda"))
            unsupported(b, "Lambda (Python code; rewrite it as Keras layers)", name);
        else if (i == sizeof supported / sizeof supported[0] ||
                 (module && strncmp(module, "keras", 5)))
            unsupported(b, cls, name);
        else if (kr_str(cfg, "data_format") && strcmp(kr_str(cfg, "data_format"), "channels_last"))
            unsupported(b, "data_format channels_first", name);
        else if (!kr_act_known(kr_act_name(cfg))) {
            char w[160];
            snprintf(w, sizeof w, "activation '%.100s'", kr_act_name(cfg));
            unsupported(b, w, name);
        } else if ((!strcmp(cls, "Functional") || !strcmp(cls, "Model") ||
                    !strcmp(cls, "Sequential"))) {
            if (depth > 16)
                unsupported(b, "models nested over 16 deep", name);
            else
                check_layers(b, kr_item(cfg, "layers"), depth + 1);
        }
    }
}

/* ---- containers ------------------------------------------------------------------ */

static fx_status build_model(kb *b, const char *cls, const cJSON *cfg, const char *scope,
                             const char *kscope, const char *top, const kt *in, int n_in, kt *out,
                             int depth);

/* Applies one layer to its inputs; out->name is set by the caller. */
static fx_status apply(kb *b, call *c, const char *scope, int depth)
{
    const char *k = c->cls;
    if (!strcmp(k, "Functional") || !strcmp(k, "Model") || !strcmp(k, "Sequential")) {
        char sc[KR_NAME], ks[KR_NAME];
        snprintf(sc, KR_NAME, "%s%s%s", scope, *scope ? "/" : "", c->name);
        snprintf(ks, KR_NAME, "%s", c->ref.kpath);
        return build_model(b, k, c->cfg, sc, ks, c->ref.top, c->in, c->n_in, c->out, depth + 1);
    }
    return kr_layer(b, c);
}

/* The input shape of an InputLayer (or a Sequential's first layer):
 * batch_input_shape (Keras 2) or batch_shape (Keras 3). */
static int shape_of(const cJSON *s, kt *t)
{
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) < 2 || cJSON_GetArraySize(s) > FX_OPS_MAX_RANK)
        return -1;
    t->rank = cJSON_GetArraySize(s);
    for (int i = 0; i < t->rank; i++) {
        const cJSON *e = cJSON_GetArrayItem(s, i);
        t->d[i] = cJSON_IsNumber(e) ? (int64_t)e->valuedouble : -1;
        if (t->d[i] == 0 || t->d[i] > (1 << 20))
            return -1;
    }
    return 0;
}

static int input_shape(const cJSON *cfg, kt *t)
{
    const cJSON *s = kr_item(cfg, "batch_shape");
    return shape_of(s ? s : kr_item(cfg, "batch_input_shape"), t);
}

/* The graph's input from a Keras input shape (rank 4, channels last). */
static fx_status graph_input(kb *b, const char *name, kt *t)
{
    if (b->g && fx_graph_num_inputs(b->g) > 0)
        return fx_error_set(b->err, FX_ERR_UNSUPPORTED,
                            "a model with more than one input (second: '%s'); fxscreen models take "
                            "one image",
                            name);
    if (t->rank != 4 || t->d[3] < 1)
        return fx_error_set(b->err, FX_ERR_UNSUPPORTED,
                            "input '%s' is not an image (height, width, channels), channels_last",
                            name);
    fx_shape s = {.rank = 4, .d = {-1, t->d[3], t->d[1], t->d[2]}};
    snprintf(t->name, KR_NAME, "%s", name);
    return fx_graph_add_input(b->g, name, FX_DT_FLOAT, &s, b->err);
}

/* The graph name of a layer's output in scope: the layer's own name,
 * unless a tensor has it already (a nested model's layer named as an
 * outer one): then scope/name. */
static void out_name(kb *b, const char *scope, const char *layer, int node_i, char *out)
{
    if (node_i)
        snprintf(out, KR_NAME, "%.200s#%d", layer, node_i);
    else
        snprintf(out, KR_NAME, "%.250s", layer);
    if (*scope && name_used(b, out)) {
        char tmp[KR_NAME];
        snprintf(tmp, KR_NAME, "%.120s/%.120s", scope, out);
        snprintf(out, KR_NAME, "%s", tmp);
    }
}

/* The .keras weight paths of a container's layers: "layers/<snake>[_k]" in
 * order, counted per snake name (the order Keras walks them). */
static char **kpaths(const cJSON *layers, const char *kscope)
{
    int n = cJSON_GetArraySize(layers);
    char **p = calloc((size_t)(n ? n : 1), sizeof *p);
    char(*sn)[96] = calloc((size_t)(n ? n : 1), sizeof *sn);
    for (int i = 0; p && sn && i < n; i++) {
        const char *cls = kr_str(cJSON_GetArrayItem(layers, i), "class_name");
        snake(cls ? cls : "layer", sn[i], sizeof sn[i]);
        int same = 0;
        for (int j = 0; j < i; j++)
            same += !strcmp(sn[j], sn[i]);
        char buf[KR_NAME * 2];
        if (same)
            snprintf(buf, sizeof buf, "%s%slayers/%s_%d", kscope, *kscope ? "/" : "", sn[i], same);
        else
            snprintf(buf, sizeof buf, "%s%slayers/%s", kscope, *kscope ? "/" : "", sn[i]);
        p[i] = strdup(buf);
    }
    free(sn);
    return p;
}

static void kpaths_free(char **p, int n)
{
    for (int i = 0; p && i < n; i++)
        free(p[i]);
    free(p);
}

/* A Keras tensor reference: ["name", node, tensor(, kwargs)] (Keras 2) or
 * {"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}. */
static int tensor_ref(const cJSON *r, const char **layer, int *node_i, int *tensor_i)
{
    if (cJSON_IsObject(r))
        r = kr_item(kr_item(r, "config"), "keras_history");
    if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) < 3 || !cJSON_IsString(cJSON_GetArrayItem(r, 0)))
        return -1;
    *layer = cJSON_GetArrayItem(r, 0)->valuestring;
    *node_i = cJSON_GetArrayItem(r, 1)->valueint;
    *tensor_i = cJSON_GetArrayItem(r, 2)->valueint;
    return *node_i < 0 || *tensor_i < 0 ? -1 : 0;
}

/* The tensors an inbound node feeds: Keras 2: a list of refs; Keras 3:
 * {"args": [ref, or a list of refs]}.  Up to cap; -1 if malformed. */
static int node_refs(const cJSON *nd, const cJSON **refs, int cap)
{
    int n = 0;
    const cJSON *e;
    if (cJSON_IsObject(nd)) {
        const cJSON *args = kr_item(nd, "args");
        cJSON_ArrayForEach(e, args)
        {
            if (cJSON_IsArray(e)) {
                const cJSON *f;
                cJSON_ArrayForEach(f, e)
                {
                    if (n >= cap)
                        return -1;
                    refs[n++] = f;
                }
            } else if (cJSON_IsObject(e) || cJSON_IsNumber(e)) { /* a number: x + 3.0 */
                if (n >= cap)
                    return -1;
                refs[n++] = e;
            }
        }
        return n;
    }
    if (!cJSON_IsArray(nd))
        return -1;
    cJSON_ArrayForEach(e, nd)
    {
        if (n >= cap)
            return -1;
        refs[n++] = e;
    }
    return n;
}

/* A list of [name, node, tensor] refs, or one such ref (Keras 3 writes a
 * single input or output flat). */
static int ref_list(const cJSON *a, const cJSON **refs, int cap)
{
    if (cJSON_IsArray(a) && cJSON_IsString(cJSON_GetArrayItem(a, 0))) {
        refs[0] = a;
        return 1;
    }
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (n >= cap)
            return -1;
        refs[n++] = e;
    }
    return n;
}

#define KR_MAX_IN 1024

static fx_status build_functional(kb *b, const cJSON *cfg, const char *scope, const char *kscope,
                                  const char *top, const kt *in, int n_in, kt *out, int depth)
{
    const cJSON *layers = kr_item(cfg, "layers");
    int nl = cJSON_GetArraySize(layers);
    if (!cJSON_IsArray(layers) || nl < 1)
        return fx_error_set(b->err, FX_ERR_FORMAT, "model '%s' has no layers", scope);
    const cJSON **refs = malloc(KR_MAX_IN * sizeof *refs);
    kt *ins = malloc(KR_MAX_IN * sizeof *ins);
    char *done = calloc((size_t)nl, 1);
    char **kp = kpaths(layers, kscope);
    fx_status st =
        refs && ins && done && kp ? FX_OK : fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
    char key[KR_NAME * 2];
    /* The model's inputs: the graph's (top level) or the caller's. */
    const cJSON *il[64];
    int ni = st == FX_OK ? ref_list(kr_item(cfg, "input_layers"), il, 64) : 0;
    if (st == FX_OK && (ni < 1 || (in && ni != n_in)))
        st = fx_error_set(b->err, FX_ERR_FORMAT, "model '%s': bad input_layers",
                          *scope ? scope : "top");
    for (int i = 0; st == FX_OK && i < ni; i++) {
        const char *ln;
        int a, t;
        if (tensor_ref(il[i], &ln, &a, &t)) {
            st = fx_error_set(b->err, FX_ERR_FORMAT, "bad input_layers entry");
            break;
        }
        kt x = {0};
        if (in)
            x = in[i];
        else {
            const cJSON *l = NULL;
            for (int j = 0; j < nl && !l; j++)
                if (kr_str(cJSON_GetArrayItem(layers, j), "name") &&
                    !strcmp(kr_str(cJSON_GetArrayItem(layers, j), "name"), ln))
                    l = cJSON_GetArrayItem(layers, j);
            if (!l || input_shape(kr_item(l, "config"), &x))
                st =
                    fx_error_set(b->err, FX_ERR_FORMAT, "input layer '%s' has no usable shape", ln);
            else
                st = graph_input(b, ln, &x);
        }
        key_of(key, sizeof key, scope, ln, 0, 0);
        if (st == FX_OK)
            st = put(b, key, &x);
    }
    /* Layers in dependency order: passes until none is left. */
    for (int left = nl, progress = 1; st == FX_OK && left && progress;) {
        progress = 0;
        for (int i = 0; i < nl && st == FX_OK; i++) {
            if (done[i])
                continue;
            const cJSON *l = cJSON_GetArrayItem(layers, i), *cf = kr_item(l, "config");
            const char *cls = kr_str(l, "class_name"), *name = kr_str(l, "name");
            if (!name)
                name = kr_str(cf, "name");
            if (!cls || !name) {
                st = fx_error_set(b->err, FX_ERR_FORMAT, "a layer without class_name or name");
                break;
            }
            const cJSON *nodes = kr_item(l, "inbound_nodes"), *nd;
            if (!strcmp(cls, "InputLayer")) {
                done[i] = 1, left--, progress = 1;
                continue;
            }
            /* Ready when every inbound tensor of every node exists. */
            int ready = 1;
            cJSON_ArrayForEach(nd, nodes)
            {
                int nr = node_refs(nd, refs, KR_MAX_IN);
                for (int r = 0; r < nr && ready; r++) {
                    const char *ln;
                    int a, t;
                    if (tensor_ref(refs[r], &ln, &a, &t))
                        continue;
                    key_of(key, sizeof key, scope, ln, a, t);
                    ready = find(b, key) != NULL;
                }
            }
            if (!ready)
                continue;
            int node_i = 0;
            cJSON_ArrayForEach(nd, nodes)
            {
                int nr = node_refs(nd, refs, KR_MAX_IN);
                if (nr < 1) {
                    st = fx_error_set(b->err, FX_ERR_FORMAT, "layer '%s': bad inbound node", name);
                    break;
                }
                int nt = 0, scalars = 0, scalar_first = 0;
                double scalar = 0;
                for (int r = 0; r < nr && st == FX_OK; r++) {
                    const char *ln;
                    int a, t;
                    const kt *found = NULL;
                    if (cJSON_IsNumber(refs[r])) { /* Keras 3's ops: x + 3.0, x * (1 / 6) */
                        scalar = refs[r]->valuedouble, scalar_first = r == 0, scalars++;
                        continue;
                    }
                    if (!tensor_ref(refs[r], &ln, &a, &t)) {
                        key_of(key, sizeof key, scope, ln, a, t);
                        found = find(b, key);
                    }
                    if (!found) {
                        st = fx_error_set(b->err, FX_ERR_FORMAT, "layer '%s': bad inbound tensor",
                                          name);
                        break;
                    }
                    ins[nt++] = *found;
                }
                if (st == FX_OK && (nt < 1 || scalars > 1))
                    st = fx_error_set(b->err, FX_ERR_UNSUPPORTED,
                                      "layer '%s': called on %d tensors and %d numbers", name, nt,
                                      scalars);
                if (st != FX_OK)
                    break;
                kt y = {0};
                out_name(b, scope, name, node_i, y.name);
                call c = {cls,          name,  cf, {name, *scope ? top : name, kp[i]},
                          ins,          nt,    &y, scalars,
                          scalar_first, scalar};
                if ((st = apply(b, &c, scope, depth)) != FX_OK)
                    break;
                key_of(key, sizeof key, scope, name, node_i, 0);
                st = put(b, key, &y);
                /* Keras 2 counts a nested model's own construction as its
                 * node 0: callers then name the call node 1. */
                key_of(key, sizeof key, scope, name, node_i + 1, 0);
                if (st == FX_OK &&
                    (!strcmp(cls, "Functional") || !strcmp(cls, "Model") ||
                     !strcmp(cls, "Sequential")) &&
                    !find(b, key))
                    st = put(b, key, &y);
                node_i++;
            }
            done[i] = 1, left--, progress = 1; /* (a layer never called: no tensor) */
        }
        if (st == FX_OK && left && !progress)
            st = fx_error_set(b->err, FX_ERR_FORMAT,
                              "model '%s': layers whose inputs never appear (a cycle, or a "
                              "damaged config)",
                              *scope ? scope : "top");
    }
    const cJSON *ol[64];
    int no = st == FX_OK ? ref_list(kr_item(cfg, "output_layers"), ol, 64) : 0;
    if (st == FX_OK && no != 1)
        st = fx_error_set(b->err, FX_ERR_UNSUPPORTED,
                          "model '%s' has %d outputs: fxscreen takes one (the class scores)",
                          *scope ? scope : "top", no);
    if (st == FX_OK) {
        const char *ln;
        int a, t;
        const kt *o = NULL;
        if (!tensor_ref(ol[0], &ln, &a, &t)) {
            key_of(key, sizeof key, scope, ln, a, t);
            o = find(b, key);
        }
        if (!o)
            st = fx_error_set(b->err, FX_ERR_FORMAT, "model '%s': its output layer is not built",
                              *scope ? scope : "top");
        else
            *out = *o;
    }
    free(refs);
    free(ins);
    free(done);
    kpaths_free(kp, nl);
    return st;
}

static fx_status build_sequential(kb *b, const cJSON *cfg, const char *scope, const char *kscope,
                                  const char *top, const kt *in, int n_in, kt *out, int depth)
{
    const cJSON *layers = kr_item(cfg, "layers");
    int nl = cJSON_GetArraySize(layers);
    if (!cJSON_IsArray(layers) || nl < 1)
        return fx_error_set(b->err, FX_ERR_FORMAT, "model '%s' has no layers", scope);
    if (in && n_in != 1)
        return fx_error_set(b->err, FX_ERR_FORMAT, "Sequential '%s' called on %d tensors", scope,
                            n_in);
    char **kp = kpaths(layers, kscope);
    if (!kp)
        return fx_error_set(b->err, FX_ERR_NOMEM, "out of memory");
    kt x = {0};
    fx_status st = FX_OK;
    int first = 0;
    if (in)
        x = *in;
    else {
        const cJSON *l0 = cJSON_GetArrayItem(layers, 0);
        const char *cls = kr_str(l0, "class_name");
        const char *nm = kr_str(kr_item(l0, "config"), "name");
        const cJSON *shape_cfg = kr_item(l0, "config");
        if (cls && !strcmp(cls, "InputLayer"))
            first = 1;
        else if (!kr_item(shape_cfg, "batch_input_shape") && !kr_item(shape_cfg, "batch_shape")) {
            /* Keras 3: the Sequential's build_input_shape. */
            if (shape_of(kr_item(cfg, "build_input_shape"), &x))
                st = fx_error_set(b->err, FX_ERR_FORMAT,
                                  "Sequential model without an input shape (build it on an "
                                  "Input before saving)");
            nm = "input";
        }
        if (st == FX_OK && x.rank == 0 && input_shape(shape_cfg, &x))
            st = fx_error_set(b->err, FX_ERR_FORMAT, "the first layer has no usable input shape");
        if (st == FX_OK)
            st = graph_input(b, nm ? nm : "input", &x);
    }
    for (int i = first; i < nl && st == FX_OK; i++) {
        const cJSON *l = cJSON_GetArrayItem(layers, i), *cf = kr_item(l, "config");
        const char *cls = kr_str(l, "class_name"), *name = kr_str(cf, "name");
        if (!cls || !name) {
            st = fx_error_set(b->err, FX_ERR_FORMAT, "a layer without class_name or name");
            break;
        }
        if (!strcmp(cls, "InputLayer"))
            continue;
        kt y = {0};
        out_name(b, scope, name, 0, y.name);
        call c = {cls, name, cf, {name, *scope ? top : name, kp[i]}, &x, 1, &y, 0, 0, 0};
        if ((st = apply(b, &c, scope, depth)) != FX_OK)
            break;
        char key[KR_NAME * 2];
        key_of(key, sizeof key, scope, name, 0, 0);
        st = put(b, key, &y);
        x = y;
    }
    *out = x;
    kpaths_free(kp, nl);
    return st;
}

static fx_status build_model(kb *b, const char *cls, const cJSON *cfg, const char *scope,
                             const char *kscope, const char *top, const kt *in, int n_in, kt *out,
                             int depth)
{
    if (depth > 16)
        return fx_error_set(b->err, FX_ERR_UNSUPPORTED, "models nested over 16 deep");
    if (!strcmp(cls, "Sequential"))
        return build_sequential(b, cfg, scope, kscope, top, in, n_in, out, depth);
    return build_functional(b, cfg, scope, kscope, top, in, n_in, out, depth);
}

fx_status kr_build(const char *json, size_t n, int keras_major, kr_weights *w, fx_graph **out,
                   fx_error *err)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, n);
    const char *cls = kr_str(root, "class_name");
    const cJSON *cfg = kr_item(root, "config");
    if (!cls || !cJSON_IsObject(cfg)) {
        cJSON_Delete(root);
        return fx_error_set(err, FX_ERR_FORMAT,
                            "the model config is not Keras JSON "
                            "({\"class_name\", \"config\"})");
    }
    if (strcmp(cls, "Sequential") && strcmp(cls, "Functional") && strcmp(cls, "Model")) {
        fx_status st = fx_error_set(err, FX_ERR_UNSUPPORTED,
                                    "a %.100s model: this reader takes Sequential and Functional "
                                    "models (a subclassed model holds Python code)",
                                    cls);
        cJSON_Delete(root);
        return st;
    }
    kb b = {.w = w, .major = keras_major, .err = err};
    check_layers(&b, kr_item(cfg, "layers"), 0);
    fx_status st = FX_OK;
    if (b.n_unsupported)
        st = fx_error_set(err, FX_ERR_UNSUPPORTED, "unsupported layers: %s", b.unsupported);
    if (st == FX_OK && !(b.g = fx_graph_create()))
        st = fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    kt y = {0};
    if (st == FX_OK)
        st = build_model(&b, cls, cfg, "", "", "", NULL, 0, &y, 0);
    /* The logits: a final sigmoid or softmax is the screening core's job. */
    if (st == FX_OK && y.rank != 2)
        st = fx_error_set(err, FX_ERR_UNSUPPORTED,
                          "the model's output has rank %d: fxscreen takes a (batch, classes) "
                          "output",
                          y.rank);
    if (st == FX_OK)
        st = fx_graph_add_output(b.g, y.pre[0] ? y.pre : y.name, err);
    for (int i = 0; i < b.ntab; i++)
        free(b.tab[i].key);
    free(b.tab);
    free(b.unsupported);
    cJSON_Delete(root);
    if (st != FX_OK) {
        fx_graph_destroy(b.g);
        return st;
    }
    *out = b.g;
    return FX_OK;
}
