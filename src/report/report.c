/* fxscreen report DIR: the run's summary, its evaluation and the worklist
 * in one self-contained HTML file (see include/fxscreen/report.h).
 *
 * Flow: run.json gives the model and the effective config (loaded back
 * through a memfd by fx_screen_settings_yaml, as --config would load it, so
 * the pictures are windowed as the model saw them); results.h5 gives every row, read whole except
 * the heat maps, which are read 256 rows at a time (HDF5 is not
 * thread-safe) and rendered in parallel (report_img.c); eval.json and the
 * plots' SVGs come along when present.  Everything the page shows travels
 * in one JSON document (cJSON) inside the page, beside the embedded
 * stylesheet and script (src/report/web). */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"
#include "fxscreen/loader.h"
#include "fxscreen/report.h"
#include "fxscreen/screen.h"
#include "pool/reread.h"
#include "report/report_internal.h"

#define CHUNK 256                 /* heat maps read and rendered per step */
#define HELD  ((size_t)256 << 20) /* archive members' bytes held per step, at most */

void fx_report_opts_default(fx_report_opts *o)
{
    *o = (fx_report_opts){.thumb = 160, .view = 1024, .views = 1000, .quality = 85};
}

/* The rows of results.h5, whole but the heat maps. */
typedef struct rows {
    size_t n;
    char **path, **error;
    int8_t *status, *pred;
    float *prob, *peak, *bbox;
    int H, W;
    char *start, *end, *classes, *method, *layer, *model_sha;
    double threshold, positive;
} rows;

static void rows_free(rows *r)
{
    fx_h5_strings_free(r->path, r->n);
    fx_h5_strings_free(r->error, r->n);
    free(r->status), free(r->pred);
    free(r->prob), free(r->peak), free(r->bbox);
    free(r->start), free(r->end), free(r->classes), free(r->method), free(r->layer);
    free(r->model_sha);
}

static double attr_f64(hid_t f, const char *name)
{
    double v = NAN;
    hid_t a = H5Aexists(f, name) > 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
    if (a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
        v = NAN;
    if (a >= 0)
        H5Aclose(a);
    return v;
}

static fx_status rows_read(hid_t f, const char *h5, rows *r, fx_error *err)
{
    hid_t d = H5Dopen2(f, "heatmap", H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[3] = {0, 0, 0};
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank == 3)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (rank != 3 || dims[1] < 1 || dims[2] < 1 || dims[1] > 8192 || dims[2] > 8192)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: no /heatmap (rows, H, W): not an fxscreen run's", h5);
    size_t n = (size_t)dims[0];
    r->n = n, r->H = (int)dims[1], r->W = (int)dims[2];
    r->path = fx_h5_read_strings(f, "path", n);
    r->error = fx_h5_read_strings(f, "error", n);
    r->status = fx_h5_read_all(f, "status", H5T_NATIVE_INT8, n, 1, 1);
    r->pred = fx_h5_read_all(f, "prediction", H5T_NATIVE_INT8, n, 1, 1);
    r->prob = fx_h5_read_all(f, "probability", H5T_NATIVE_FLOAT, n, 1, sizeof(float));
    r->peak = fx_h5_read_all(f, "peak_xy", H5T_NATIVE_FLOAT, n, 2, sizeof(float));
    r->bbox = fx_h5_read_all(f, "bbox", H5T_NATIVE_FLOAT, n, 4, sizeof(float));
    if (!r->path || !r->error || !r->status || !r->pred || !r->prob || !r->peak || !r->bbox)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: path, error, status, prediction, probability, peak_xy or bbox "
                            "missing or not %zu rows: not an fxscreen run's results",
                            h5, n);
    r->start = fx_h5_attr_read_str(f, "start_time", 64);
    r->end = fx_h5_attr_read_str(f, "end_time", 64);
    r->classes = fx_h5_attr_read_str(f, "classes", 4096);
    r->method = fx_h5_attr_read_str(f, "cam_method", 64);
    r->layer = fx_h5_attr_read_str(f, "cam_layer", 1024);
    r->model_sha = fx_h5_attr_read_str(f, "model_sha256", 128);
    r->threshold = attr_f64(f, "threshold");
    r->positive = attr_f64(f, "positive_class");
    return FX_OK;
}

/* The run's settings from its effective config (run.json), loaded as
 * --config loads a file. */
static fx_status settings(const char *yaml, const char *where, rp_ctx *c, fx_error *err)
{
    fx_run_config eff;
    fx_status st = fx_screen_settings_yaml(yaml, where, &c->prep, &eff, err);
    if (st != FX_OK)
        return st;
    c->ov =
        (fx_overlay_opts){.cmap = eff.colormap >= 0 ? (fx_colormap)eff.colormap : FX_CMAP_INFERNO,
                          .opacity = isfinite(eff.opacity) ? eff.opacity : 0.5,
                          .invert = c->prep.invert,
                          .draw_box = 1};
    return FX_OK;
}

/* A JSON file (run.json, eval.json), NULL when unreadable or not JSON. */
static cJSON *parse_file(const char *path)
{
    uint8_t *b = NULL;
    size_t n = 0;
    cJSON *j = fx_read_file(path, (size_t)64 << 20, &b, &n, NULL) == FX_OK
                   ? cJSON_ParseWithLength((const char *)b, n)
                   : NULL;
    free(b);
    return j;
}

/* Order of the worklist: probability highest first, error rows last, ties
 * by row. */
static const rows *sort_rows;
static int by_prob(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int ei = sort_rows->status[i] != 0, ej = sort_rows->status[j] != 0;
    if (ei != ej)
        return ei - ej;
    float pi = sort_rows->prob[i], pj = sort_rows->prob[j];
    if (!ei && pi != pj)
        return pi > pj ? -1 : 1;
    return i < j ? -1 : i > j;
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *floats(const float *v, int k)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < k; i++)
        cJSON_AddItemToArray(a, num_or_null(v[i]));
    return a;
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    cJSON_AddItemToObject(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* The eval plots that exist, as SVG data URIs. */
static cJSON *plots(const char *dir)
{
    static const char *const names[] = {"roc", "pr", "reliability", "histogram"};
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && dir && i < sizeof names / sizeof names[0]; i++) {
        char p[4200];
        uint8_t *s = NULL;
        size_t n = 0;
        snprintf(p, sizeof p, "%s/%s.svg", dir, names[i]);
        char *uri = fx_read_file(p, (size_t)16 << 20, &s, &n, NULL) == FX_OK
                        ? rp_data_uri("image/svg+xml", s, n)
                        : NULL;
        if (uri)
            cJSON_AddItemToObject(o, names[i], cJSON_CreateString(uri));
        free(s), free(uri);
    }
    return o;
}

/* The page: the data as JSON in a script element ('<' escaped as \u003c,
 * valid JSON that no "</script>" in a path can end), the style and the
 * script inline, and a CSP that forbids any network access. */
static fx_status write_html(const char *out, const char *title, const char *json, size_t *bytes,
                            fx_error *err)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return fx_error_set(err, FX_ERR_IO, "%s: %s", tmp, strerror(errno));
    rp_asset css = rp_asset_css(), js = rp_asset_js();
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
          "<meta name=\"generator\" content=\"fxscreen report\">\n<title>",
          f);
    for (const char *p = title; *p; p++) {
        switch (*p) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        default: fputc(*p, f);
        }
    }
    fputs("</title>\n<style>\n", f);
    fwrite(css.data, 1, css.size, f);
    fputs("</style>\n</head>\n<body>\n<noscript><p>This report needs JavaScript to list its "
          "rows.</p></noscript>\n<script type=\"application/json\" id=\"fx-data\">",
          f);
    for (const char *p = json; *p; p++) {
        if (*p == '<')
            fputs("\\u003c", f);
        else
            fputc(*p, f);
    }
    fputs("</script>\n<script>\n", f);
    fwrite(js.data, 1, js.size, f);
    fputs("</script>\n</body>\n</html>\n", f);
    int bad = ferror(f);
    long size = ftell(f);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, out)) {
        int e = errno;
        unlink(tmp);
        return fx_error_set(err, FX_ERR_IO, "%s: cannot write the report: %s", out, strerror(e));
    }
    *bytes = size > 0 ? (size_t)size : 0;
    return FX_OK;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

fx_status fx_report_write(const char *dir, const fx_report_opts *o, FILE *log,
                          fx_report_result *res, fx_error *err)
{
    memset(res, 0, sizeof *res);
    if (!dir || !o)
        return fx_error_set(err, FX_ERR_USAGE, "report: no run directory");
    if (o->thumb < 16 || o->thumb > 512 || o->view < 64 || o->view > 4096 || o->views < -1 ||
        o->quality < 30 || o->quality > 100)
        return fx_error_set(err, FX_ERR_USAGE,
                            "report: --thumb 16..512, --view 64..4096, --views >= 0 (or all), "
                            "--quality 30..100");
    char rj[4200], h5[4200], ej[4200], pd[4200];
    snprintf(rj, sizeof rj, "%s/run.json", dir);
    snprintf(h5, sizeof h5, "%s/results.h5", dir);
    snprintf(ej, sizeof ej, "%s/eval.json", dir);
    snprintf(pd, sizeof pd, "%s/plots", dir);
    snprintf(res->out, sizeof res->out, "%s", o->out ? o->out : "");
    if (!o->out)
        snprintf(res->out, sizeof res->out, "%s/report.html", dir);
    if (access(rj, R_OK) || access(h5, R_OK))
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: no run.json or results.h5: give the --out directory of "
                            "`fxscreen run`",
                            dir);
    cJSON *run = parse_file(rj), *data = cJSON_CreateObject();
    const cJSON *effj = cJSON_GetObjectItemCaseSensitive(run, "effective_config");
    rp_ctx c = {.thumb = o->thumb, .view = o->view, .quality = o->quality};
    rows r = {0};
    rp_pics *pics = NULL;
    size_t *order = NULL;
    uint8_t *heat = NULL;
    char *json = NULL;
    hid_t f = -1;
    fx_status st = FX_OK;
    if (!run || !cJSON_IsString(effj) || !data)
        st = fx_error_set(err, FX_ERR_USAGE, "%s: not the run.json of `fxscreen run`", rj);
    if (st == FX_OK)
        st = settings(effj->valuestring, rj, &c, err);
    if (st == FX_OK) {
        H5E_BEGIN_TRY
        {
            f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
        }
        H5E_END_TRY;
        if (f < 0)
            st = fx_error_set(err, FX_ERR_USAGE, "%s: not an HDF5 file", h5);
    }
    if (st == FX_OK) {
        H5E_BEGIN_TRY
        {
            st = rows_read(f, h5, &r, err);
        }
        H5E_END_TRY;
    }
    c.heat_h = r.H, c.heat_w = r.W;
    if (st == FX_OK && r.n > 0) {
        pics = calloc(r.n, sizeof *pics);
        order = malloc(r.n * sizeof *order);
        heat = malloc((size_t)CHUNK * (size_t)r.H * (size_t)r.W);
        if (!pics || !order || !heat)
            st = fx_error_set(err, FX_ERR_NOMEM, "report: out of memory for %zu rows", r.n);
    }
    /* Which rows get the full-size view: the first `views` ok rows by
     * probability (the worklist's head, what a reader opens first). */
    char *want_view = st == FX_OK ? calloc(r.n + 1, 1) : NULL;
    if (st == FX_OK && !want_view)
        st = fx_error_set(err, FX_ERR_NOMEM, "report: out of memory");
    if (st == FX_OK) {
        for (size_t i = 0; i < r.n; i++)
            order[i] = i;
        sort_rows = &r;
        qsort(order, r.n, sizeof *order, by_prob);
        size_t k = 0;
        for (size_t i = 0; i < r.n && (o->views < 0 || k < (size_t)o->views); i++)
            if (r.status[order[i]] == 0)
                want_view[order[i]] = 1, k++;
    }
    char **why = st == FX_OK ? calloc(r.n + 1, sizeof *why) : NULL; /* why a row has no picture */
    const cJSON *cwdj = cJSON_GetObjectItemCaseSensitive(run, "cwd");
    const char *cwd = cJSON_IsString(cwdj) ? cwdj->valuestring : NULL;
    char **where = st == FX_OK ? calloc(CHUNK, sizeof *where) : NULL;
    uint8_t **held = st == FX_OK ? calloc(CHUNK, sizeof *held) : NULL;
    size_t *held_n = st == FX_OK ? calloc(CHUNK, sizeof *held_n) : NULL;
    fx_reread *rr = st == FX_OK ? fx_reread_create(cwd) : NULL;
    if (st == FX_OK && (!why || !where || !held || !held_n || !rr))
        st = fx_error_set(err, FX_ERR_NOMEM, "report: out of memory");
    for (size_t r0 = 0, k = 0; st == FX_OK && r0 < r.n; r0 += k) {
        /* This step's rows: their inputs resolved, archive members read
         * (in order, on this thread) up to HELD bytes. */
        size_t bytes = 0;
        for (k = 0; k < CHUNK && r0 + k < r.n && bytes < HELD; k++) {
            size_t i = r0 + k;
            if (r.status[i] != 0)
                continue;
            int member = fx_reread_archive_part(r.path[i]) > 0;
            fx_error e = {0};
            if (member && fx_reread_member(rr, r.path[i], &held[k], &held_n[k], &e) != FX_OK)
                why[i] = strdup(e.msg);
            bytes += held_n[k];
            /* a member is decoded from its bytes, named by its row's path */
            where[k] = member ? strdup(r.path[i]) : fx_path_from(cwd, r.path[i]);
            if (!where[k] && !why[i])
                why[i] = strdup("out of memory");
        }
        int ok;
        H5E_BEGIN_TRY
        {
            ok = fx_h5_read_rows(f, "heatmap", H5T_NATIVE_UINT8, r0, k, heat);
        }
        H5E_END_TRY;
        if (!ok) {
            st = fx_error_set(err, FX_ERR_IO, "%s: cannot read /heatmap rows %zu..%zu", h5, r0,
                              r0 + k - 1);
            break;
        }
#pragma omp parallel
        {
            fx_prep_scratch *s = fx_prep_scratch_create();
#pragma omp for schedule(dynamic, 1)
            for (size_t i = r0; i < r0 + k; i++) {
                if (r.status[i] != 0 || why[i] || !where[i - r0])
                    continue;
                fx_error e = {0};
                const float *bb = r.bbox + 4 * i;
                if (!s || rp_render(&c, where[i - r0], held[i - r0], held_n[i - r0],
                                    heat + (i - r0) * (size_t)r.H * (size_t)r.W, bb, want_view[i],
                                    s, &pics[i], &e) != FX_OK)
                    why[i] = strdup(s ? e.msg : "out of memory");
            }
            fx_prep_scratch_destroy(s);
        }
        for (size_t j = 0; j < k; j++) {
            free(where[j]), free(held[j]);
            where[j] = NULL, held[j] = NULL, held_n[j] = 0;
        }
        if (log && (r0 + k) / 1000 != r0 / 1000 && r0 + k < r.n)
            fprintf(log, "report: %zu of %zu rows rendered\n", r0 + k, r.n);
    }
    fx_reread_destroy(rr);
    for (size_t j = 0; where && held && j < CHUNK; j++)
        free(where[j]), free(held[j]);
    free(where), free(held), free(held_n);
    /* The document. */
    if (st == FX_OK) {
        char created[32], title[512];
        fx_iso8601_now(created, sizeof created);
        if (o->title)
            snprintf(title, sizeof title, "%s", o->title);
        else
            snprintf(title, sizeof title, "fxscreen triage report: %s", base_name(dir));
        add_str(data, "title", title);
        add_str(data, "created", created);
        add_str(data, "dir", dir);
        cJSON *rn = cJSON_AddObjectToObject(data, "run");
        static const char *const keep[] = {"fxscreen_version", "model",   "model_sha256", "config",
                                           "effective_config", "device",  "precision",    "batch",
                                           "overlays",         "sources", "shard"};
        for (size_t i = 0; rn && i < sizeof keep / sizeof keep[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(run, keep[i]);
            if (v)
                cJSON_AddItemToObject(rn, keep[i], cJSON_Duplicate(v, 1));
        }
        add_str(rn, "start_time", r.start);
        add_str(rn, "end_time", r.end);
        add_str(rn, "classes", r.classes);
        add_str(rn, "cam_method", r.method);
        add_str(rn, "cam_layer", r.layer);
        cJSON_AddItemToObject(rn, "threshold", num_or_null(r.threshold));
        cJSON_AddItemToObject(rn, "positive_class", num_or_null(r.positive));
        cJSON *ev = parse_file(ej);
        cJSON_AddItemToObject(data, "eval", ev ? ev : cJSON_CreateNull());
        cJSON_AddItemToObject(data, "plots", plots(o->plots ? o->plots : pd));
        cJSON *view = cJSON_AddObjectToObject(data, "view");
        cJSON_AddNumberToObject(view, "thumb", o->thumb);
        cJSON_AddNumberToObject(view, "size", o->view);
        cJSON_AddNumberToObject(view, "embedded", o->views);
        cJSON *arr = cJSON_AddArrayToObject(data, "rows");
        for (size_t i = 0; arr && i < r.n; i++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, row);
            cJSON_AddNumberToObject(row, "row", (double)i);
            add_str(row, "path", r.path[i]);
            int ok = r.status[i] == 0;
            add_str(row, "status", ok ? "ok" : "error");
            if (!ok) {
                add_str(row, "error", r.error[i]);
                res->errors++;
                continue;
            }
            cJSON_AddItemToObject(row, "p", num_or_null(r.prob[i]));
            cJSON_AddNumberToObject(row, "pred", r.pred[i]);
            cJSON_AddItemToObject(row, "peak", floats(r.peak + 2 * i, 2));
            cJSON_AddItemToObject(row, "bbox", floats(r.bbox + 4 * i, 4));
            if (pics[i].thumb) {
                /* References: the strings live in pics until the page is written. */
                cJSON_AddItemToObject(row, "thumb", cJSON_CreateStringReference(pics[i].thumb));
                res->pictured++;
            } else {
                add_str(row, "nopic", why[i] ? why[i] : "not rendered");
                res->unreadable++;
            }
            if (pics[i].overlay) {
                cJSON_AddItemToObject(row, "overlay", cJSON_CreateStringReference(pics[i].overlay));
                cJSON_AddItemToObject(row, "original",
                                      cJSON_CreateStringReference(pics[i].original));
                res->views++;
            }
        }
        res->rows = r.n;
        json = cJSON_PrintUnformatted(data);
        if (!json)
            st = fx_error_set(err, FX_ERR_NOMEM, "report: out of memory for the page");
        if (st == FX_OK)
            st = write_html(res->out, title, json, &res->bytes, err);
    }
    for (size_t i = 0; why && i < r.n; i++)
        free(why[i]);
    free(why);
    for (size_t i = 0; pics && i < r.n; i++)
        rp_pics_free(&pics[i]);
    free(pics), free(order), free(heat), free(want_view), free(json);
    if (f >= 0)
        H5Fclose(f);
    rows_free(&r);
    cJSON_Delete(run);
    cJSON_Delete(data);
    return st;
}
