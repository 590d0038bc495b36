/* eval --faithfulness: ROAD over a finished run (include/fxscreen/faith.h).
 *
 * Per sampled ok row, on the main thread: decode the original again
 * (relative paths from run.json's cwd), preprocess it with the run's
 * effective config, read its map from results.h5 and draw a uniform random
 * map.  Then, in parallel (OpenMP, one CHOLMOD workspace per solve), the
 * 4 x P imputed inputs: MoRF and LeRF of the map and of the random map at
 * each percentile.  The engine (the run's model, checked by SHA-256)
 * scores the original and the imputed inputs in batches; a change is the
 * positive probability after minus before.  Each row's numbers go to
 * DIR/faithfulness.h5 as they come. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "fxscreen/faith.h"
#include "fxscreen/h5util.h"
#include "fxscreen/loader.h"
#include "fxscreen/screen.h"
#include "job/run_internal.h"
#include "pool/reread.h"

#define BATCH 8

void fx_faith_opts_default(fx_faith_opts *o)
{
    memset(o, 0, sizeof *o);
    o->images = 50;
    o->npct = 9;
    for (int i = 0; i < 9; i++)
        o->pct[i] = 10.0 * (i + 1);
    o->noise = 0.01;
    o->seed = 1;
}

/* The k-th value of stream (seed, a, b): fx_eval_rand on a seed of its own. */
static uint64_t draw(uint64_t seed, uint64_t a, uint64_t b, uint64_t k)
{
    return fx_eval_rand(seed + ev_mix64(a * 0x9E3779B97F4A7C15ull + b + 1), k);
}

/* The output file: one row per measured image. */
typedef struct out {
    hid_t f, path, row, prob, map, rmap, morf, lerf, rmorf, rlerf, input;
} out;

static fx_status out_open(out *o, const char *path, int P, int C, int H, int W, int inputs,
                          const fx_faith_opts *opt, fx_error *err)
{
    memset(o, -1, sizeof *o);
    if ((o->f = fx_h5_create_file(path, err)) < 0)
        return FX_ERR_IO;
    hid_t st = fx_h5_str_type();
    hsize_t hw[2] = {(hsize_t)H, (hsize_t)W}, p[1] = {(hsize_t)P},
            chw[3] = {(hsize_t)C, hw[0], hw[1]};
    o->path = fx_h5_ext_create(o->f, "path", st, 1, NULL, 64, 0, err);
    o->row = fx_h5_ext_create(o->f, "row", H5T_NATIVE_INT64, 1, NULL, 64, 0, err);
    o->prob = fx_h5_ext_create(o->f, "probability", H5T_NATIVE_FLOAT, 1, NULL, 64, 0, err);
    o->map = fx_h5_ext_create(o->f, "map", H5T_NATIVE_FLOAT, 3, hw, 1, 4, err);
    o->rmap = fx_h5_ext_create(o->f, "random_map", H5T_NATIVE_FLOAT, 3, hw, 1, 4, err);
    o->morf = fx_h5_ext_create(o->f, "morf", H5T_NATIVE_DOUBLE, 2, p, 64, 0, err);
    o->lerf = fx_h5_ext_create(o->f, "lerf", H5T_NATIVE_DOUBLE, 2, p, 64, 0, err);
    o->rmorf = fx_h5_ext_create(o->f, "random_morf", H5T_NATIVE_DOUBLE, 2, p, 64, 0, err);
    o->rlerf = fx_h5_ext_create(o->f, "random_lerf", H5T_NATIVE_DOUBLE, 2, p, 64, 0, err);
    if (inputs)
        o->input = fx_h5_ext_create(o->f, "input", H5T_NATIVE_FLOAT, 4, chw, 1, 4, err);
    H5Tclose(st);
    if (o->path < 0 || o->row < 0 || o->prob < 0 || o->map < 0 || o->rmap < 0 || o->morf < 0 ||
        o->lerf < 0 || o->rmorf < 0 || o->rlerf < 0 || (inputs && o->input < 0))
        return FX_ERR_IO;
    hsize_t np = (hsize_t)P;
    hid_t sp = H5Screate_simple(1, &np, NULL);
    hid_t a = H5Acreate2(o->f, "percentiles", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_DOUBLE, opt->pct) >= 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    char num[64];
    snprintf(num, sizeof num, "%.17g", opt->noise);
    fx_status s = ok ? fx_h5_attr_str(o->f, "noise", num, err)
                     : fx_error_set(err, FX_ERR_IO, "%s: cannot write its attributes", path);
    if (s == FX_OK)
        s = fx_h5_attr_i64(o->f, "seed", (int64_t)opt->seed, err);
    if (s == FX_OK)
        s = fx_h5_attr_str(o->f, "definition",
                           "ROAD (Rong et al. 2022) as pytorch-grad-cam: morf[p] = probability "
                           "after removing map >= percentile p of the map (noisy linear "
                           "imputation) minus before; lerf[p] the same on 1 - map",
                           err);
    return s;
}

static void out_close(out *o)
{
    hid_t *ids[] = {&o->path, &o->row,  &o->prob,  &o->map,   &o->rmap,
                    &o->morf, &o->lerf, &o->rmorf, &o->rlerf, &o->input};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (*ids[i] >= 0)
            H5Dclose(*ids[i]);
    if (o->f >= 0)
        H5Fclose(o->f);
}

/* The rows measured: every ok row, or a seeded sample of them in row order. */
static size_t *sample(const int8_t *status, size_t n, int want, uint64_t seed, size_t *k)
{
    size_t nok = 0;
    for (size_t i = 0; i < n; i++)
        nok += status[i] == 0;
    size_t *ok = malloc((nok + 1) * sizeof *ok);
    if (!ok)
        return NULL;
    for (size_t i = 0, j = 0; i < n; i++)
        if (status[i] == 0)
            ok[j++] = i;
    size_t m = want > 0 && (size_t)want < nok ? (size_t)want : nok;
    for (size_t i = 0; i < m; i++) { /* partial Fisher-Yates */
        size_t j = i + (size_t)(draw(seed, 0, 0, i) % (nok - i));
        size_t t = ok[i];
        ok[i] = ok[j], ok[j] = t;
    }
    for (size_t i = 1; i < m; i++) /* back into row order (insertion: m is small) */
        for (size_t j = i; j > 0 && ok[j - 1] > ok[j]; j--) {
            size_t t = ok[j];
            ok[j] = ok[j - 1], ok[j - 1] = t;
        }
    *k = m;
    return ok;
}

fx_status fx_faith_run(const char *dir, const fx_faith_opts *o, fx_faith_result *res, fx_error *err)
{
    memset(res, 0, sizeof *res);
#ifdef FX_NO_ROAD
    (void)dir, (void)o;
    return fx_error_set(err, FX_ERR_UNSUPPORTED,
                        "faithfulness: this is a static build, without CHOLMOD: run eval "
                        "--faithfulness with the default build (make)");
#endif
    if (!o->model)
        return fx_error_set(err, FX_ERR_USAGE, "faithfulness: --model M is required (the run's)");
    if (o->npct < 1 || o->npct > FX_FAITH_MAX_PCT || o->images < 0 || !(o->noise >= 0))
        return fx_error_set(err, FX_ERR_USAGE, "faithfulness: bad options");
    for (int i = 0; i < o->npct; i++)
        if (!(o->pct[i] > 0 && o->pct[i] < 100))
            return fx_error_set(err, FX_ERR_USAGE,
                                "faithfulness: percentile %g: give values in (0, 100)", o->pct[i]);
    const int P = o->npct, V = 4 * P; /* variants: map MoRF, map LeRF, random MoRF, random LeRF */
    res->npct = P, res->noise = o->noise, res->seed = o->seed;
    memcpy(res->pct, o->pct, (size_t)P * sizeof *o->pct);
    snprintf(res->h5, sizeof res->h5, "%s/faithfulness.h5", dir);

    run_params rp;
    fx_status st = run_params_load(dir, &rp, err);
    if (st != FX_OK)
        return st;
    fx_prep_config pc;
    fx_run_config eff;
    fx_screen *m = NULL;
    hid_t f = -1;
    out ob;
    memset(&ob, -1, sizeof ob);
    int8_t *status = NULL;
    char **paths = NULL;
    size_t n = 0, *rows = NULL, nrows = 0;
    float *x = NULL, *map = NULL, *rmap = NULL, *imp = NULL, *probs = NULL;
    uint8_t *heat = NULL;
    double *sum = calloc((size_t)V, sizeof *sum);
    char *none = calloc((size_t)V, 1); /* this image: variant v not measurable */
    size_t *valid = calloc((size_t)V, sizeof *valid);
    fx_prep_scratch *scratch = fx_prep_scratch_create();
    fx_reread *rr = NULL;
    if (!sum || !none || !valid || !scratch)
        st = fx_error_set(err, FX_ERR_NOMEM, "faithfulness: out of memory");
    char rj[4200];
    snprintf(rj, sizeof rj, "%s/run.json", dir);
    if (st == FX_OK && !(rr = fx_reread_create(rp.cwd)))
        st = fx_error_set(err, FX_ERR_NOMEM, "faithfulness: out of memory");
    if (st == FX_OK)
        st = fx_screen_settings_yaml(rp.effective ? rp.effective : "", rj, &pc, &eff, err);
    if (st == FX_OK) {
        fx_screen_opts so = {.batch = BATCH, .device = FX_DEVICE_AUTO, .log_prefix = "eval"};
        st = fx_screen_create(o->model, rj, &pc, &eff, &so, &m, err);
    }
    if (st == FX_OK && rp.model_sha && strcmp(fx_screen_sha256(m), rp.model_sha))
        st = fx_error_set(err, FX_ERR_USAGE,
                          "faithfulness: %s is not the model of this run (run.json model_sha256 "
                          "%.12s...): ROAD must score the model that made the maps",
                          o->model, rp.model_sha);
    int C = 0, H = 0, W = 0;
    if (st == FX_OK) {
        fx_screen_input(m, &C, &H, &W);
        char h5[4200];
        snprintf(h5, sizeof h5, "%s/results.h5", dir);
        H5E_BEGIN_TRY
        {
            f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
            hid_t d = f >= 0 ? H5Dopen2(f, "status", H5P_DEFAULT) : -1;
            hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
            n = sp >= 0 ? (size_t)H5Sget_simple_extent_npoints(sp) : 0;
            if (sp >= 0)
                H5Sclose(sp);
            if (d >= 0)
                H5Dclose(d);
            status = f >= 0 ? fx_h5_read_all(f, "status", H5T_NATIVE_INT8, n, 1, 1) : NULL;
            paths = f >= 0 ? fx_h5_read_strings(f, "path", n) : NULL;
        }
        H5E_END_TRY;
        if (!status || !paths)
            st = fx_error_set(err, FX_ERR_USAGE, "%s: not an fxscreen run's results", h5);
    }
    size_t hw = (size_t)H * (size_t)W, item = (size_t)C * hw;
    if (st == FX_OK) {
        rows = sample(status, n, o->images, o->seed, &nrows);
        x = malloc(item * sizeof *x);
        map = malloc(hw * sizeof *map);
        rmap = malloc(hw * sizeof *rmap);
        heat = malloc(hw);
        imp = malloc((size_t)(V + 1) * item * sizeof *imp);
        probs = malloc((size_t)(V + 1) * sizeof *probs);
        if (!rows || !x || !map || !rmap || !heat || !imp || !probs)
            st = fx_error_set(err, FX_ERR_NOMEM, "faithfulness: out of memory");
    }
    if (st == FX_OK && (st = out_open(&ob, res->h5, P, C, H, W, o->store_inputs, o, err)) != FX_OK)
        fx_error_prefix(err, "%s", res->h5);
    double prob_sum = 0;
    for (size_t r = 0; st == FX_OK && r < nrows; r++) {
        size_t row = rows[r];
        /* The input as the run made it, and its maps. */
        fx_decode_limits lim = {pc.max_megapixels};
        fx_image img;
        fx_error e = {0};
        fx_prep_geom g;
        int ok = fx_reread_decode(rr, paths[row], &lim, &img, &e) == FX_OK;
        if (ok) {
            ok = fx_prep_run(&img, &pc, scratch, x, NULL, &g, NULL, &e) == FX_OK;
            fx_image_free(&img);
        }
        int got;
        H5E_BEGIN_TRY
        {
            got = fx_h5_read_rows(f, "heatmap", H5T_NATIVE_UINT8, row, 1, heat);
        }
        H5E_END_TRY;
        if (!got) {
            st = fx_error_set(err, FX_ERR_USAGE, "%s/results.h5: no /heatmap row %zu", dir, row);
            break;
        }
        if (!ok) { /* moved, deleted: counted, not measured */
            res->skipped++;
            continue;
        }
        for (size_t i = 0; i < hw; i++) {
            map[i] = (float)heat[i] / 255.0f;
            rmap[i] = (float)((double)(draw(o->seed, 1, row, i) >> 40) / 16777216.0);
        }
        memcpy(imp, x, item * sizeof *x);
        int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : bad)
        for (int v = 0; v < V; v++) {
            uint8_t *keep = malloc(hw);
            fx_error ve = {0};
            float *dst = imp + (size_t)(v + 1) * item;
            if (!keep) {
                bad = 1;
                continue;
            }
            fx_road_keep(v < 2 * P ? map : rmap, hw, o->pct[v % P], (v / P) % 2 == 0, keep);
            if (fx_road_impute(x, C, H, W, keep, o->noise, draw(o->seed, 2 + (uint64_t)v, row, 0),
                               dst, &ve) != FX_OK) {
                /* Nothing kept (the map's ties reach the threshold, e.g. a
                 * map zero over p% of the image at MoRF p): the system is
                 * singular, no change is measurable; NaN, left out of the
                 * means (pytorch-grad-cam's spsolve returns numbers there). */
                if (ve.code == FX_ERR_FORMAT)
                    memcpy(dst, x, item * sizeof *x), none[v] = 1;
                else
                    bad = 1;
            }
            free(keep);
        }
        if (bad) {
            st =
                fx_error_set(err, FX_ERR_NOMEM, "faithfulness: imputation failed (out of memory?)");
            break;
        }
        for (int b0 = 0; st == FX_OK && b0 < V + 1; b0 += BATCH) {
            int k = V + 1 - b0 < BATCH ? V + 1 - b0 : BATCH;
            st = fx_screen_probs(m, imp + (size_t)b0 * item, k, probs + b0, err);
        }
        if (st != FX_OK)
            break;
        double d[4][FX_FAITH_MAX_PCT];
        for (int v = 0; v < V; v++) {
            double c = none[v] ? NAN : (double)probs[v + 1] - (double)probs[0];
            d[v / P][v % P] = c;
            if (!isnan(c))
                sum[v] += c, valid[v]++;
            none[v] = 0;
        }
        prob_sum += probs[0];
        res->images++;
        int64_t r64 = (int64_t)row;
        const char *pp = paths[row];
        fx_status ws = fx_h5_ext_append_str(ob.path, 1, &pp, err);
        if (ws == FX_OK)
            ws = fx_h5_ext_append(ob.row, H5T_NATIVE_INT64, 1, &r64, err);
        if (ws == FX_OK)
            ws = fx_h5_ext_append(ob.prob, H5T_NATIVE_FLOAT, 1, probs, err);
        if (ws == FX_OK)
            ws = fx_h5_ext_append(ob.map, H5T_NATIVE_FLOAT, 1, map, err);
        if (ws == FX_OK)
            ws = fx_h5_ext_append(ob.rmap, H5T_NATIVE_FLOAT, 1, rmap, err);
        hid_t dd[4] = {ob.morf, ob.lerf, ob.rmorf, ob.rlerf};
        for (int q = 0; q < 4 && ws == FX_OK; q++)
            ws = fx_h5_ext_append(dd[q], H5T_NATIVE_DOUBLE, 1, d[q], err);
        if (ws == FX_OK && o->store_inputs)
            ws = fx_h5_ext_append(ob.input, H5T_NATIVE_FLOAT, 1, x, err);
        st = ws;
        if (o->log && (res->images % 10 == 0 || r + 1 == nrows))
            fprintf(o->log, "eval: faithfulness %zu of %zu images\n", res->images, nrows);
    }
    if (st == FX_OK && res->images == 0)
        st = fx_error_set(err, FX_ERR_USAGE,
                          "faithfulness: no image measured (%zu originals could not be read "
                          "again: run eval from where they are)",
                          res->skipped);
    if (st == FX_OK) {
        double ni = (double)res->images;
        double *dst[4] = {res->morf, res->lerf, res->rand_morf, res->rand_lerf};
        size_t *cnt[4] = {res->valid_morf, res->valid_lerf, res->valid_rand_morf,
                          res->valid_rand_lerf};
        for (int v = 0; v < V; v++) {
            dst[v / P][v % P] = valid[v] ? sum[v] / (double)valid[v] : NAN;
            cnt[v / P][v % P] = valid[v];
        }
        double a[4] = {0, 0, 0, 0};
        for (int q = 0; q < 4; q++) { /* over the percentiles that were measurable */
            int k = 0;
            for (int i = 0; i < P; i++)
                if (!isnan(dst[q][i]))
                    a[q] += dst[q][i], k++;
            a[q] = k ? a[q] / k : NAN;
        }
        res->morf_avg = a[0], res->lerf_avg = a[1];
        res->rand_morf_avg = a[2], res->rand_lerf_avg = a[3];
        res->combined = (a[1] - a[0]) / 2;
        res->rand_combined = (a[3] - a[2]) / 2;
        res->prob_mean = prob_sum / ni;
    }
    out_close(&ob);
    if (f >= 0)
        H5Fclose(f);
    fx_h5_strings_free(paths, n);
    free(status), free(rows), free(x), free(map), free(rmap), free(heat), free(imp), free(probs);
    free(sum), free(none), free(valid);
    fx_prep_scratch_destroy(scratch);
    fx_reread_destroy(rr);
    fx_screen_destroy(m);
    run_params_free(&rp);
    return st;
}

static cJSON *series(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, ev_num(v[i]));
    return a;
}

void ev_faith_json(cJSON *o, const fx_faith_result *r)
{
    cJSON *fj = cJSON_AddObjectToObject(o, "faithfulness");
    cJSON_AddStringToObject(
        fj, "method",
        "ROAD (Rong et al. 2022), noisy linear imputation, as pytorch-grad-cam: "
        "change = positive probability after removal minus before; morf "
        "removes map >= percentile p, lerf removes 1 - map >= percentile p; "
        "combined = (mean lerf - mean morf) / 2");
    cJSON_AddNumberToObject(fj, "images", (double)r->images);
    cJSON_AddNumberToObject(fj, "skipped", (double)r->skipped);
    cJSON_AddItemToObject(fj, "noise", ev_num(r->noise));
    cJSON_AddNumberToObject(fj, "seed", (double)r->seed);
    cJSON_AddItemToObject(fj, "percentiles", series(r->pct, r->npct));
    cJSON_AddItemToObject(fj, "probability_mean", ev_num(r->prob_mean));
    cJSON_AddStringToObject(fj, "unmeasurable",
                            "a percentile where every pixel would be removed (the map's ties "
                            "reach the threshold) gives no value for that image: null when no "
                            "image had one; *_valid count the images behind each mean");
    const char *names[2] = {"cam", "random"};
    for (int q = 0; q < 2; q++) {
        cJSON *m = cJSON_AddObjectToObject(fj, names[q]);
        cJSON_AddItemToObject(m, "morf", series(q ? r->rand_morf : r->morf, r->npct));
        cJSON_AddItemToObject(m, "lerf", series(q ? r->rand_lerf : r->lerf, r->npct));
        double vm[FX_FAITH_MAX_PCT], vl[FX_FAITH_MAX_PCT];
        for (int i = 0; i < r->npct; i++) {
            vm[i] = (double)(q ? r->valid_rand_morf : r->valid_morf)[i];
            vl[i] = (double)(q ? r->valid_rand_lerf : r->valid_lerf)[i];
        }
        cJSON_AddItemToObject(m, "morf_valid", series(vm, r->npct));
        cJSON_AddItemToObject(m, "lerf_valid", series(vl, r->npct));
        cJSON_AddItemToObject(m, "morf_mean", ev_num(q ? r->rand_morf_avg : r->morf_avg));
        cJSON_AddItemToObject(m, "lerf_mean", ev_num(q ? r->rand_lerf_avg : r->lerf_avg));
        cJSON_AddItemToObject(m, "combined", ev_num(q ? r->rand_combined : r->combined));
    }
    cJSON_AddStringToObject(fj, "per_image", r->h5);
}

void ev_faith_print(FILE *f, const fx_faith_result *r)
{
    fprintf(f,
            "\n  CAM faithfulness (ROAD, %zu images, noise %g): change of the positive "
            "probability\n  (mean before %.4f; more negative MoRF and less negative LeRF is "
            "better)\n",
            r->images, r->noise, r->prob_mean);
    fprintf(f, "  percentile   MoRF CAM  MoRF rand   LeRF CAM  LeRF rand\n");
    for (int i = 0; i < r->npct; i++)
        fprintf(f, "  %10g  %9.4f  %9.4f  %9.4f  %9.4f\n", r->pct[i], r->morf[i], r->rand_morf[i],
                r->lerf[i], r->rand_lerf[i]);
    fprintf(f, "  %10s  %9.4f  %9.4f  %9.4f  %9.4f\n", "mean", r->morf_avg, r->rand_morf_avg,
            r->lerf_avg, r->rand_lerf_avg);
    fprintf(f, "  ROAD combined: CAM %.4f, random map %.4f\n", r->combined, r->rand_combined);
    if (r->skipped)
        fprintf(f, "  (%zu sampled rows skipped: their originals could not be read again)\n",
                r->skipped);
}
