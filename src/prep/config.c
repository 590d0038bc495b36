/* Preprocessing configuration: defaults, YAML load (libyaml document API,
 * for line numbers), validation and YAML output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/yamlcfg.h"
#include "fxscreen/prep.h"

void fx_prep_config_default(fx_prep_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->window = FX_WINDOW_PERCENTILE;
    cfg->p_lo = 0.5;
    cfg->p_hi = 99.5;
    cfg->w_lo = 0;
    cfg->w_hi = 65535;
    cfg->invert = 0;
    cfg->out_h = 256;
    cfg->out_w = 256;
    cfg->fit = FX_FIT_PAD;
    cfg->pad_value = 0.0f;
    cfg->channels = 1;
    for (int c = 0; c < 3; c++) {
        cfg->mean[c] = 0.5f;
        cfg->std[c] = 0.25f;
    }
    cfg->max_megapixels = 100;
    cfg->store = FX_STORE_F16;
}

#define FX_OUT_MAX 8192

fx_status fx_prep_config_validate(const fx_prep_config *cfg, fx_error *err)
{
#define BAD(...) return fx_error_set(err, FX_ERR_CONFIG, __VA_ARGS__)
    if (cfg->window != FX_WINDOW_NONE && cfg->window != FX_WINDOW_PERCENTILE &&
        cfg->window != FX_WINDOW_FIXED && cfg->window != FX_WINDOW_DICOM)
        BAD("key 'window.mode': unknown mode %d; use percentile, fixed, dicom or none",
            (int)cfg->window);
    if (cfg->window == FX_WINDOW_PERCENTILE || cfg->window == FX_WINDOW_DICOM) {
        if (!(cfg->p_lo >= 0 && cfg->p_lo <= 100) || !(cfg->p_hi >= 0 && cfg->p_hi <= 100))
            BAD("key 'window.low'/'window.high': percentiles %g, %g outside [0, 100]; "
                "use e.g. low: 0.5, high: 99.5",
                cfg->p_lo, cfg->p_hi);
        if (!(cfg->p_lo < cfg->p_hi))
            BAD("key 'window.low': percentile low %g must be below high %g; swap them", cfg->p_lo,
                cfg->p_hi);
    }
    if (cfg->window == FX_WINDOW_FIXED) {
        if (!isfinite(cfg->w_lo) || !isfinite(cfg->w_hi))
            BAD("key 'window.low'/'window.high': fixed window must be finite numbers");
        if (!(cfg->w_lo < cfg->w_hi))
            BAD("key 'window.low': fixed low %g must be below high %g; swap them", cfg->w_lo,
                cfg->w_hi);
    }
    if (cfg->invert != 0 && cfg->invert != 1)
        BAD("key 'invert': must be true or false");
    if (cfg->out_h < 1 || cfg->out_h > FX_OUT_MAX)
        BAD("key 'input.height': %d outside 1..%d; use e.g. 256", cfg->out_h, FX_OUT_MAX);
    if (cfg->out_w < 1 || cfg->out_w > FX_OUT_MAX)
        BAD("key 'input.width': %d outside 1..%d; use e.g. 256", cfg->out_w, FX_OUT_MAX);
    if (cfg->fit != FX_FIT_PAD && cfg->fit != FX_FIT_CROP)
        BAD("key 'fit': unknown mode %d; use pad or crop", (int)cfg->fit);
    if (!(cfg->pad_value >= 0.0f && cfg->pad_value <= 1.0f))
        BAD("key 'pad_value': %g outside [0, 1] (windowed units); use e.g. 0.0",
            (double)cfg->pad_value);
    if (cfg->channels != 1 && cfg->channels != 3)
        BAD("key 'input.channels': %d; use 1 or 3", cfg->channels);
    for (int c = 0; c < cfg->channels; c++) {
        if (!isfinite(cfg->mean[c]))
            BAD("key 'normalize.mean': value %d is not finite", c);
        if (!isfinite(cfg->std[c]) || cfg->std[c] == 0.0f)
            BAD("key 'normalize.std': value %d is %g; use a finite non-zero number", c,
                (double)cfg->std[c]);
    }
    if (!(cfg->max_megapixels >= 0) || !isfinite(cfg->max_megapixels))
        BAD("key 'limits.max_megapixels': %g; use a number >= 0 (0 = no limit)",
            cfg->max_megapixels);
    if (cfg->store != FX_STORE_F16 && cfg->store != FX_STORE_U8)
        BAD("key 'store': unknown type %d; use float16 or uint8", (int)cfg->store);
#undef BAD
    return FX_OK;
}

/* ---- YAML load ---------------------------------------------------------- */

typedef struct loader {
    fx_ycfg y;
    int n_mean, n_std; /* values given, 0 when the key is absent */
} loader;

static fx_status load_window(loader *L, yaml_node_t *map, fx_prep_config *cfg)
{
    static const char *const modes[] = {"none", "percentile", "fixed", "dicom"};
    fx_status st =
        fx_ycfg_need_map(&L->y, map, "window", "{mode: percentile, low: 0.5, high: 99.5}");
    if (st)
        return st;
    /* mode first: it decides what low/high mean. */
    const yaml_node_t *low = NULL, *high = NULL;
    FX_YCFG_FOR_PAIRS(map, p)
    {
        yaml_node_t *k, *v;
        char kname[96];
        fx_ycfg_pair(&L->y, p, "window.", &k, &v, kname, sizeof kname);
        if ((st = fx_ycfg_check_dup(&L->y, map, p, k, kname)))
            return st;
        const char *ks = fx_ycfg_scalar(k);
        if (strcmp(ks, "mode") == 0) {
            int m = fx_ycfg_enum(v, modes, 4);
            if (m < 0)
                return fx_ycfg_fail(&L->y, v, kname,
                                    "'%s' is not a mode; use percentile, fixed, dicom or none",
                                    fx_ycfg_scalar(v) ? fx_ycfg_scalar(v) : "(not a word)");
            cfg->window = (fx_window_mode)m;
        } else if (strcmp(ks, "low") == 0) {
            low = v;
        } else if (strcmp(ks, "high") == 0) {
            high = v;
        } else {
            return fx_ycfg_fail(&L->y, k, kname, "unknown key; window takes mode, low, high");
        }
    }
    if ((low || high) && cfg->window == FX_WINDOW_NONE)
        return fx_ycfg_fail(&L->y, low ? low : high, low ? "window.low" : "window.high",
                            "not used with mode none; remove it or set mode: "
                            "percentile|fixed|dicom");
    double *plo = cfg->window == FX_WINDOW_FIXED ? &cfg->w_lo : &cfg->p_lo;
    double *phi = cfg->window == FX_WINDOW_FIXED ? &cfg->w_hi : &cfg->p_hi;
    if (low && (st = fx_ycfg_double(&L->y, low, "window.low", plo)))
        return st;
    if (high && (st = fx_ycfg_double(&L->y, high, "window.high", phi)))
        return st;
    if (cfg->window == FX_WINDOW_PERCENTILE || cfg->window == FX_WINDOW_DICOM) {
        if (low && !(*plo >= 0 && *plo <= 100))
            return fx_ycfg_fail(&L->y, low, "window.low",
                                "percentile %g outside [0, 100]; use e.g. 0.5", *plo);
        if (high && !(*phi >= 0 && *phi <= 100))
            return fx_ycfg_fail(&L->y, high, "window.high",
                                "percentile %g outside [0, 100]; use e.g. 99.5", *phi);
    }
    if ((low || high) && !(*plo < *phi))
        return fx_ycfg_fail(&L->y, low ? low : high, low ? "window.low" : "window.high",
                            "low %g must be below high %g; swap them", *plo, *phi);
    return FX_OK;
}

static fx_status load_floats(loader *L, yaml_node_t *v, const char *key, float *out, int *count)
{
    double d;
    fx_status st;
    if (v->type == YAML_SCALAR_NODE) { /* `mean: 0.5` is taken as [0.5] */
        if ((st = fx_ycfg_double(&L->y, v, key, &d)))
            return st;
        out[0] = out[1] = out[2] = (float)d;
        *count = 1;
        return FX_OK;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fx_ycfg_fail(&L->y, v, key,
                            "expected a list of 1 or 3 numbers; write e.g. %s: [0.5]", key);
    int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n != 1 && n != 3)
        return fx_ycfg_fail(&L->y, v, key, "has %d values; give 1 (grey) or 3 (one per channel)",
                            n);
    for (int i = 0; i < n; i++) {
        yaml_node_t *it = yaml_document_get_node(L->y.doc, v->data.sequence.items.start[i]);
        if ((st = fx_ycfg_double(&L->y, it, key, &d)))
            return st;
        out[i] = (float)d;
    }
    if (n == 1)
        out[1] = out[2] = out[0];
    *count = n;
    return FX_OK;
}

static fx_status load_root(loader *L, yaml_node_t *root, fx_prep_config *cfg)
{
    static const char *const fits[] = {"pad", "crop"};
    static const char *const stores[] = {"float16", "uint8"};
    static const char *const bools[] = {"false", "true"};
    fx_status st;
    yaml_node_t *mean_node = NULL, *std_node = NULL;
    if (root->type != YAML_MAPPING_NODE)
        return fx_ycfg_fail(&L->y, root, "(top)",
                            "the file must be a mapping of keys; see configs/default.yaml");
    FX_YCFG_FOR_PAIRS(root, p)
    {
        yaml_node_t *k, *v;
        char kname[96];
        fx_ycfg_pair(&L->y, p, "", &k, &v, kname, sizeof kname);
        if ((st = fx_ycfg_check_dup(&L->y, root, p, k, kname)))
            return st;
        const char *ks = fx_ycfg_scalar(k);
        if (strcmp(ks, "window") == 0) {
            if ((st = load_window(L, v, cfg)))
                return st;
        } else if (strcmp(ks, "invert") == 0) {
            int b = fx_ycfg_enum(v, bools, 2);
            if (b < 0)
                return fx_ycfg_fail(&L->y, v, kname, "expected true or false");
            cfg->invert = b;
        } else if (strcmp(ks, "input") == 0) {
            if ((st = fx_ycfg_need_map(&L->y, v, kname, "{height: 256, width: 256, channels: 1}")))
                return st;
            FX_YCFG_FOR_PAIRS(v, q)
            {
                yaml_node_t *k2, *v2;
                char kn2[96];
                fx_ycfg_pair(&L->y, q, "input.", &k2, &v2, kn2, sizeof kn2);
                if ((st = fx_ycfg_check_dup(&L->y, v, q, k2, kn2)))
                    return st;
                const char *s2 = fx_ycfg_scalar(k2);
                if (strcmp(s2, "height") == 0)
                    st = fx_ycfg_int(&L->y, v2, kn2, 1, FX_OUT_MAX, &cfg->out_h);
                else if (strcmp(s2, "width") == 0)
                    st = fx_ycfg_int(&L->y, v2, kn2, 1, FX_OUT_MAX, &cfg->out_w);
                else if (strcmp(s2, "channels") == 0) {
                    st = fx_ycfg_int(&L->y, v2, kn2, 1, 3, &cfg->channels);
                    if (!st && cfg->channels == 2)
                        st = fx_ycfg_fail(&L->y, v2, kn2, "2 channels; use 1 or 3");
                } else
                    st = fx_ycfg_fail(&L->y, k2, kn2,
                                      "unknown key; input takes height, width, channels");
                if (st)
                    return st;
            }
        } else if (strcmp(ks, "fit") == 0) {
            int f = fx_ycfg_enum(v, fits, 2);
            if (f < 0)
                return fx_ycfg_fail(&L->y, v, kname, "expected pad or crop");
            cfg->fit = (fx_fit_mode)f;
        } else if (strcmp(ks, "pad_value") == 0) {
            double d;
            if ((st = fx_ycfg_double(&L->y, v, kname, &d)))
                return st;
            if (!(d >= 0 && d <= 1))
                return fx_ycfg_fail(&L->y, v, kname,
                                    "%g outside [0, 1] (windowed units); use e.g. 0.0", d);
            cfg->pad_value = (float)d;
        } else if (strcmp(ks, "normalize") == 0) {
            if ((st = fx_ycfg_need_map(&L->y, v, kname, "{mean: [0.5], std: [0.25]}")))
                return st;
            FX_YCFG_FOR_PAIRS(v, q)
            {
                yaml_node_t *k2, *v2;
                char kn2[96];
                fx_ycfg_pair(&L->y, q, "normalize.", &k2, &v2, kn2, sizeof kn2);
                if ((st = fx_ycfg_check_dup(&L->y, v, q, k2, kn2)))
                    return st;
                const char *s2 = fx_ycfg_scalar(k2);
                if (strcmp(s2, "mean") == 0) {
                    st = load_floats(L, v2, kn2, cfg->mean, &L->n_mean);
                    mean_node = v2;
                } else if (strcmp(s2, "std") == 0) {
                    st = load_floats(L, v2, kn2, cfg->std, &L->n_std);
                    for (int i = 0; !st && i < L->n_std; i++)
                        if (cfg->std[i] == 0.0f)
                            st = fx_ycfg_fail(&L->y, v2, kn2, "value %d is 0; use a non-zero std",
                                              i);
                    std_node = v2;
                } else
                    st = fx_ycfg_fail(&L->y, k2, kn2, "unknown key; normalize takes mean, std");
                if (st)
                    return st;
            }
        } else if (strcmp(ks, "limits") == 0) {
            if ((st = fx_ycfg_need_map(&L->y, v, kname, "{max_megapixels: 100}")))
                return st;
            FX_YCFG_FOR_PAIRS(v, q)
            {
                yaml_node_t *k2, *v2;
                char kn2[96];
                fx_ycfg_pair(&L->y, q, "limits.", &k2, &v2, kn2, sizeof kn2);
                if ((st = fx_ycfg_check_dup(&L->y, v, q, k2, kn2)))
                    return st;
                if (strcmp(fx_ycfg_scalar(k2), "max_megapixels") == 0) {
                    if ((st = fx_ycfg_double(&L->y, v2, kn2, &cfg->max_megapixels)))
                        return st;
                    if (cfg->max_megapixels < 0)
                        return fx_ycfg_fail(&L->y, v2, kn2,
                                            "negative; use a number >= 0 (0 = no limit)");
                } else
                    return fx_ycfg_fail(&L->y, k2, kn2, "unknown key; limits takes max_megapixels");
            }
        } else if (strcmp(ks, "store") == 0) {
            int s = fx_ycfg_enum(v, stores, 2);
            if (s < 0)
                return fx_ycfg_fail(&L->y, v, kname, "expected float16 or uint8");
            cfg->store = (fx_store_type)s;
        } else if (strcmp(ks, "model") && strcmp(ks, "cam") && strcmp(ks, "overlay")) {
            /* model/cam/overlay are the sidecar's run sections: fx_run_config_load
             * reads and checks them; preprocessing has no use for them. */
            return fx_ycfg_fail(&L->y, k, kname,
                                "unknown key; known keys: window, invert, input, fit, "
                                "pad_value, normalize, limits, store (and model, cam, "
                                "overlay for fxscreen run)");
        }
    }
    /* Three mean/std values for a grey model is a mismatch, not a broadcast. */
    if (cfg->channels == 1 && (L->n_mean == 3 || L->n_std == 3)) {
        const yaml_node_t *at = L->n_mean == 3 ? mean_node : std_node;
        return fx_ycfg_fail(&L->y, at, L->n_mean == 3 ? "normalize.mean" : "normalize.std",
                            "3 values but input.channels is 1; give one value or set channels: 3");
    }
    return FX_OK;
}

fx_status fx_prep_config_load(const char *path, fx_prep_config *cfg, fx_error *err)
{
    yaml_document_t doc;
    fx_status st = fx_ycfg_parse_file(path, &doc, err);
    if (st != FX_OK)
        return st;
    /* Load into a copy so a failed load leaves cfg untouched. */
    fx_prep_config c = *cfg;
    loader L = {.y = {.path = path, .doc = &doc, .err = err}};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) /* an empty file keeps every default */
        st = load_root(&L, root, &c);
    if (st == FX_OK) {
        st = fx_prep_config_validate(&c, err);
        if (st != FX_OK)
            fx_error_prefix(err, "%s", path);
    }
    if (st == FX_OK)
        *cfg = c;
    yaml_document_delete(&doc);
    return st;
}

/* ---- YAML output -------------------------------------------------------- */

char *fx_prep_config_to_yaml(const fx_prep_config *cfg)
{
    static const char *const modes[] = {"none", "percentile", "fixed", "dicom"};
    char win[160], mean[96], sd[96];
    int wm = cfg->window >= 0 && cfg->window <= 3 ? (int)cfg->window : 1;
    if (cfg->window == FX_WINDOW_PERCENTILE || cfg->window == FX_WINDOW_DICOM)
        snprintf(win, sizeof win, "{mode: %s, low: %.17g, high: %.17g}", modes[wm], cfg->p_lo,
                 cfg->p_hi);
    else if (cfg->window == FX_WINDOW_FIXED)
        snprintf(win, sizeof win, "{mode: fixed, low: %.17g, high: %.17g}", cfg->w_lo, cfg->w_hi);
    else
        snprintf(win, sizeof win, "{mode: %s}", modes[wm]);
    /* %.9g round-trips a float exactly. */
    if (cfg->channels == 3) {
        snprintf(mean, sizeof mean, "[%.9g, %.9g, %.9g]", (double)cfg->mean[0],
                 (double)cfg->mean[1], (double)cfg->mean[2]);
        snprintf(sd, sizeof sd, "[%.9g, %.9g, %.9g]", (double)cfg->std[0], (double)cfg->std[1],
                 (double)cfg->std[2]);
    } else {
        snprintf(mean, sizeof mean, "[%.9g]", (double)cfg->mean[0]);
        snprintf(sd, sizeof sd, "[%.9g]", (double)cfg->std[0]);
    }
    const char *fmt = "window: %s\n"
                      "invert: %s\n"
                      "input: {height: %d, width: %d, channels: %d}\n"
                      "fit: %s\n"
                      "pad_value: %.9g\n"
                      "normalize: {mean: %s, std: %s}\n"
                      "limits: {max_megapixels: %.17g}\n"
                      "store: %s\n";
#define FX_YAML_ARGS                                                                               \
    win, cfg->invert ? "true" : "false", cfg->out_h, cfg->out_w, cfg->channels,                    \
        cfg->fit == FX_FIT_CROP ? "crop" : "pad", (double)cfg->pad_value, mean, sd,                \
        cfg->max_megapixels, cfg->store == FX_STORE_U8 ? "uint8" : "float16"
    int n = snprintf(NULL, 0, fmt, FX_YAML_ARGS);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        snprintf(s, (size_t)n + 1, fmt, FX_YAML_ARGS);
#undef FX_YAML_ARGS
    return s;
}
