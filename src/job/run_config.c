/* The run sections of a model sidecar: see fx_run_config in runjob.h.
 * The file is the same one the preprocessing config comes from; this reads
 * only model/cam/overlay and leaves the other keys to prep/config.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/yamlcfg.h"
#include "fxscreen/overlay.h"
#include "fxscreen/runjob.h"

void fx_run_config_init(fx_run_config *rc)
{
    memset(rc, 0, sizeof *rc);
    rc->positive = -1;
    rc->threshold = NAN;
    rc->cam_method = -1;
    rc->box_fraction = NAN;
    rc->colormap = -1;
    rc->opacity = NAN;
}

/* A number in [lo, hi] (lo excluded when open_lo). */
static fx_status get_unit(fx_ycfg *L, const yaml_node_t *v, const char *key, double lo, int open_lo,
                          double hi, double *out)
{
    double d;
    fx_status st = fx_ycfg_double(L, v, key, &d);
    if (st != FX_OK)
        return st;
    if (!(open_lo ? d > lo : d >= lo) || !(d <= hi))
        return fx_ycfg_fail(L, v, key, "%g outside %s%g, %g]; use e.g. 0.5", d, open_lo ? "(" : "[",
                            lo, hi);
    *out = d;
    return FX_OK;
}

/* A plain word no longer than FX_RUN_NAME_MAX - 1 into out. */
static fx_status get_name(fx_ycfg *L, const yaml_node_t *v, const char *key, char *out, size_t n)
{
    const char *s = fx_ycfg_scalar(v);
    if (!s || !*s)
        return fx_ycfg_fail(L, v, key, "expected a name");
    if (strlen(s) >= n)
        return fx_ycfg_fail(L, v, key, "'%s' is longer than %zu characters; shorten it", s, n - 1);
    snprintf(out, n, "%s", s);
    return FX_OK;
}

/* What the section readers fill: the config, and model.positive's node
 * (a class name can only be resolved once model.classes is read). */
typedef struct run_loader {
    fx_ycfg y;
    fx_run_config *rc;
    const yaml_node_t *positive;
} run_loader;

/* One key of a section: set it in L->rc, or fail naming it. */
typedef fx_status (*key_fn)(run_loader *L, const char *key, yaml_node_t *k, yaml_node_t *v,
                            const char *kname);

/* Walks the mapping of section `name`: duplicate keys fail, each key goes to fn. */
static fx_status load_section(run_loader *L, yaml_node_t *map, const char *name,
                              const char *example, key_fn fn)
{
    fx_status st = fx_ycfg_need_map(&L->y, map, name, example);
    if (st)
        return st;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", name);
    FX_YCFG_FOR_PAIRS(map, p)
    {
        if (st)
            break;
        yaml_node_t *k, *v;
        char kname[96];
        fx_ycfg_pair(&L->y, p, prefix, &k, &v, kname, sizeof kname);
        if ((st = fx_ycfg_check_dup(&L->y, map, p, k, kname)) == FX_OK)
            st = fn(L, fx_ycfg_scalar(k), k, v, kname);
    }
    return st;
}

static fx_status model_key(run_loader *L, const char *key, yaml_node_t *k, yaml_node_t *v,
                           const char *kname)
{
    fx_run_config *rc = L->rc;
    fx_status st = FX_OK;
    if (!strcmp(key, "classes")) {
        int n = v->type == YAML_SEQUENCE_NODE
                    ? (int)(v->data.sequence.items.top - v->data.sequence.items.start)
                    : 0;
        if (n < 1 || n > FX_RUN_MAX_CLASSES)
            return fx_ycfg_fail(&L->y, v, kname,
                                "expected a list of 1..%d names, one per logit "
                                "in order; write e.g. classes: [normal, fracture]",
                                FX_RUN_MAX_CLASSES);
        for (int i = 0; i < n && !st; i++)
            st = get_name(&L->y, yaml_document_get_node(L->y.doc, v->data.sequence.items.start[i]),
                          kname, rc->classes[i], FX_RUN_NAME_MAX);
        for (int i = 0; i < n && !st; i++)
            for (int j = 0; j < i && !st; j++)
                if (!strcmp(rc->classes[i], rc->classes[j]))
                    st = fx_ycfg_fail(&L->y, v, kname, "'%s' is listed twice", rc->classes[i]);
        rc->nclasses = n;
        return st;
    }
    if (!strcmp(key, "positive")) {
        L->positive = v;
        return FX_OK;
    }
    if (!strcmp(key, "threshold"))
        return get_unit(&L->y, v, kname, 0, 0, 1, &rc->threshold);
    return fx_ycfg_fail(&L->y, k, kname, "unknown key; model takes classes, positive, threshold");
}

/* model.positive: a name among model.classes, or an index. */
static fx_status resolve_positive(run_loader *L)
{
    const char *s = fx_ycfg_scalar(L->positive);
    for (int i = 0; s && i < L->rc->nclasses; i++)
        if (!strcmp(s, L->rc->classes[i])) {
            L->rc->positive = i;
            return FX_OK;
        }
    if (s && *s >= '0' && *s <= '9')
        return fx_ycfg_int(&L->y, L->positive, "model.positive", 0, FX_RUN_MAX_CLASSES - 1,
                           &L->rc->positive);
    return fx_ycfg_fail(&L->y, L->positive, "model.positive",
                        "'%s' is neither a class index nor one of "
                        "model.classes; write e.g. positive: fracture",
                        s ? s : "(not a word)");
}

static fx_status cam_key(run_loader *L, const char *key, yaml_node_t *k, yaml_node_t *v,
                         const char *kname)
{
    if (!strcmp(key, "layer"))
        return get_name(&L->y, v, kname, L->rc->cam_layer, sizeof L->rc->cam_layer);
    if (!strcmp(key, "method")) {
        fx_cam_method m;
        fx_error e = {0};
        const char *s = fx_ycfg_scalar(v);
        if (!s || fx_cam_method_parse(s, &m, &e) != FX_OK)
            return fx_ycfg_fail(&L->y, v, kname, "%s", s ? e.msg : "expected a method name");
        L->rc->cam_method = (int)m;
        return FX_OK;
    }
    if (!strcmp(key, "box_fraction"))
        return get_unit(&L->y, v, kname, 0, 1, 1, &L->rc->box_fraction);
    return fx_ycfg_fail(&L->y, k, kname, "unknown key; cam takes layer, method, box_fraction");
}

static fx_status overlay_key(run_loader *L, const char *key, yaml_node_t *k, yaml_node_t *v,
                             const char *kname)
{
    if (!strcmp(key, "colormap")) {
        fx_colormap c;
        const char *s = fx_ycfg_scalar(v);
        if (!s || fx_colormap_parse(s, &c) != 0)
            return fx_ycfg_fail(&L->y, v, kname,
                                "'%s' is not a colormap; use inferno, viridis, "
                                "magma, plasma or cividis",
                                s ? s : "(not a word)");
        L->rc->colormap = (int)c;
        return FX_OK;
    }
    if (!strcmp(key, "opacity"))
        return get_unit(&L->y, v, kname, 0, 0, 1, &L->rc->opacity);
    return fx_ycfg_fail(&L->y, k, kname, "unknown key; overlay takes colormap, opacity");
}

fx_status fx_run_config_load(const char *path, fx_run_config *rc, fx_error *err)
{
    yaml_document_t doc;
    fx_status st = fx_ycfg_parse_file(path, &doc, err);
    if (st != FX_OK)
        return st;
    fx_run_config c = *rc;
    run_loader L = {.y = {.path = path, .doc = &doc, .err = err}, .rc = &c};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        /* Duplicates and non-mapping roots are the prep loader's to report. */
        FX_YCFG_FOR_PAIRS(root, p)
        {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            yaml_node_t *v = yaml_document_get_node(&doc, p->value);
            const char *ks = fx_ycfg_scalar(k);
            if (!ks)
                continue;
            if (!strcmp(ks, "model"))
                st = load_section(&L, v, "model",
                                  "{classes: [normal, fracture], positive: fracture, "
                                  "threshold: 0.5}",
                                  model_key);
            else if (!strcmp(ks, "cam"))
                st = load_section(&L, v, "cam", "{layer: NAME, method: gradcam}", cam_key);
            else if (!strcmp(ks, "overlay"))
                st = load_section(&L, v, "overlay", "{colormap: inferno, opacity: 0.5}",
                                  overlay_key);
            if (st)
                break;
        }
    }
    if (st == FX_OK && L.positive)
        st = resolve_positive(&L);
    if (st == FX_OK && c.positive >= 0 && c.nclasses > 0 && c.positive >= c.nclasses)
        st = fx_error_set(err, FX_ERR_CONFIG,
                          "%s: key 'model.positive': index %d but "
                          "model.classes names %d classes; use 0..%d",
                          path, c.positive, c.nclasses, c.nclasses - 1);
    if (st == FX_OK)
        *rc = c;
    yaml_document_delete(&doc);
    return st;
}
