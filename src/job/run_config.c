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

static fx_status load_model(fx_ycfg *L, yaml_node_t *map, fx_run_config *rc)
{
    fx_status st = fx_ycfg_need_map(L, map, "model",
                                    "{classes: [normal, fracture], "
                                    "positive: fracture, threshold: 0.5}");
    if (st)
        return st;
    const yaml_node_t *pos = NULL;
    FX_YCFG_FOR_PAIRS(map, p)
    {
        if (st)
            break;
        yaml_node_t *k, *v;
        char kname[96];
        fx_ycfg_pair(L, p, "model.", &k, &v, kname, sizeof kname);
        if ((st = fx_ycfg_check_dup(L, map, p, k, kname)))
            return st;
        const char *ks = fx_ycfg_scalar(k);
        if (!strcmp(ks, "classes")) {
            int n = v->type == YAML_SEQUENCE_NODE
                        ? (int)(v->data.sequence.items.top - v->data.sequence.items.start)
                        : 0;
            if (n < 1 || n > FX_RUN_MAX_CLASSES)
                return fx_ycfg_fail(L, v, kname,
                                    "expected a list of 1..%d names, one per logit "
                                    "in order; write e.g. classes: [normal, fracture]",
                                    FX_RUN_MAX_CLASSES);
            for (int i = 0; i < n && !st; i++)
                st = get_name(L, yaml_document_get_node(L->doc, v->data.sequence.items.start[i]),
                              kname, rc->classes[i], FX_RUN_NAME_MAX);
            for (int i = 0; i < n && !st; i++)
                for (int j = 0; j < i && !st; j++)
                    if (!strcmp(rc->classes[i], rc->classes[j]))
                        st = fx_ycfg_fail(L, v, kname, "'%s' is listed twice", rc->classes[i]);
            rc->nclasses = n;
        } else if (!strcmp(ks, "positive")) {
            pos = v; /* a name needs classes, which may come later */
        } else if (!strcmp(ks, "threshold")) {
            st = get_unit(L, v, kname, 0, 0, 1, &rc->threshold);
        } else {
            st = fx_ycfg_fail(L, k, kname, "unknown key; model takes classes, positive, threshold");
        }
    }
    if (st || !pos)
        return st;
    const char *s = fx_ycfg_scalar(pos);
    for (int i = 0; s && i < rc->nclasses; i++)
        if (!strcmp(s, rc->classes[i])) {
            rc->positive = i;
            return FX_OK;
        }
    if (s && *s >= '0' && *s <= '9')
        return fx_ycfg_int(L, pos, "model.positive", 0, FX_RUN_MAX_CLASSES - 1, &rc->positive);
    return fx_ycfg_fail(L, pos, "model.positive",
                        "'%s' is neither a class index nor one of "
                        "model.classes; write e.g. positive: fracture",
                        s ? s : "(not a word)");
}

static fx_status load_cam(fx_ycfg *L, yaml_node_t *map, fx_run_config *rc)
{
    fx_status st = fx_ycfg_need_map(L, map, "cam", "{layer: NAME, method: gradcam}");
    if (st)
        return st;
    FX_YCFG_FOR_PAIRS(map, p)
    {
        if (st)
            break;
        yaml_node_t *k, *v;
        char kname[96];
        fx_ycfg_pair(L, p, "cam.", &k, &v, kname, sizeof kname);
        if ((st = fx_ycfg_check_dup(L, map, p, k, kname)))
            return st;
        const char *ks = fx_ycfg_scalar(k);
        if (!strcmp(ks, "layer")) {
            st = get_name(L, v, kname, rc->cam_layer, sizeof rc->cam_layer);
        } else if (!strcmp(ks, "method")) {
            fx_cam_method m;
            fx_error e = {0};
            const char *s = fx_ycfg_scalar(v);
            if (!s || fx_cam_method_parse(s, &m, &e) != FX_OK)
                st = fx_ycfg_fail(L, v, kname, "%s", s ? e.msg : "expected a method name");
            else
                rc->cam_method = (int)m;
        } else if (!strcmp(ks, "box_fraction")) {
            st = get_unit(L, v, kname, 0, 1, 1, &rc->box_fraction);
        } else {
            st = fx_ycfg_fail(L, k, kname, "unknown key; cam takes layer, method, box_fraction");
        }
    }
    return st;
}

static fx_status load_overlay(fx_ycfg *L, yaml_node_t *map, fx_run_config *rc)
{
    fx_status st = fx_ycfg_need_map(L, map, "overlay", "{colormap: inferno, opacity: 0.5}");
    if (st)
        return st;
    FX_YCFG_FOR_PAIRS(map, p)
    {
        if (st)
            break;
        yaml_node_t *k, *v;
        char kname[96];
        fx_ycfg_pair(L, p, "overlay.", &k, &v, kname, sizeof kname);
        if ((st = fx_ycfg_check_dup(L, map, p, k, kname)))
            return st;
        const char *ks = fx_ycfg_scalar(k);
        if (!strcmp(ks, "colormap")) {
            fx_colormap c;
            const char *s = fx_ycfg_scalar(v);
            if (!s || fx_colormap_parse(s, &c) != 0)
                st = fx_ycfg_fail(L, v, kname,
                                  "'%s' is not a colormap; use inferno, viridis, "
                                  "magma, plasma or cividis",
                                  s ? s : "(not a word)");
            else
                rc->colormap = (int)c;
        } else if (!strcmp(ks, "opacity")) {
            st = get_unit(L, v, kname, 0, 0, 1, &rc->opacity);
        } else {
            st = fx_ycfg_fail(L, k, kname, "unknown key; overlay takes colormap, opacity");
        }
    }
    return st;
}

fx_status fx_run_config_load(const char *path, fx_run_config *rc, fx_error *err)
{
    yaml_document_t doc;
    fx_status st = fx_ycfg_parse_file(path, &doc, err);
    if (st != FX_OK)
        return st;
    fx_run_config c = *rc;
    fx_ycfg L = {.path = path, .doc = &doc, .err = err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        /* Duplicates and non-mapping roots are the prep loader's to report. */
        FX_YCFG_FOR_PAIRS(root, p)
        {
            yaml_node_t *k, *v;
            char kname[96];
            fx_ycfg_pair(&L, p, "", &k, &v, kname, sizeof kname);
            const char *ks = fx_ycfg_scalar(k);
            if (!ks)
                continue;
            if (!strcmp(ks, "model"))
                st = load_model(&L, v, &c);
            else if (!strcmp(ks, "cam"))
                st = load_cam(&L, v, &c);
            else if (!strcmp(ks, "overlay"))
                st = load_overlay(&L, v, &c);
            if (st)
                break;
        }
    }
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
