/* The eval report written out: eval.json (cJSON) and the printed table
 * (include/fxscreen/eval.h); the job that fills the report is eval.c. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "eval/eval_internal.h"
#include "fxscreen/eval.h"

/* ---- eval.json ----------------------------------------------------------- */

/* Numbers as cJSON prints them (the shortest that reads back); NaN and
 * infinities as null. */
cJSON *ev_num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

cJSON *ev_ci95(double lo, double hi)
{
    cJSON *a = cJSON_CreateArray();
    if (a) {
        cJSON_AddItemToArray(a, ev_num(lo));
        cJSON_AddItemToArray(a, ev_num(hi));
    }
    return a;
}

/* Adds key -> {value, ci95, then each (name, count) pair}, and returns it. */
static cJSON *add_stat(cJSON *o, const char *key, double value, double lo, double hi)
{
    cJSON *p = cJSON_CreateObject();
    if (p) {
        cJSON_AddItemToObject(p, "value", ev_num(value));
        cJSON_AddItemToObject(p, "ci95", ev_ci95(lo, hi));
    }
    cJSON_AddItemToObject(o, key, p);
    return p;
}

static void add_prop(cJSON *o, const char *key, const fx_proportion *p)
{
    cJSON *j = add_stat(o, key, p->value, p->lo, p->hi);
    cJSON_AddNumberToObject(j, "x", (double)p->x);
    cJSON_AddNumberToObject(j, "n", (double)p->n);
    cJSON_AddStringToObject(j, "ci_method", "Wilson score");
}

static void add_counts(cJSON *o, const char *key, const char *const *names, const size_t *v, int n)
{
    cJSON *c = cJSON_CreateObject();
    for (int i = 0; c && i < n; i++)
        cJSON_AddNumberToObject(c, names[i], (double)v[i]);
    cJSON_AddItemToObject(o, key, c);
}

/* eval.json's tree (NULL when out of memory: cJSON's adders take NULL). */
static cJSON *report_json(const fx_eval_report *r, const char *results_dir)
{
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "fxscreen_version", FX_VERSION);
    cJSON_AddStringToObject(o, "created", r->created);
    cJSON_AddItemToObject(in, "results_dir", str_or_null(results_dir));
    cJSON_AddItemToObject(in, "summary_csv", str_or_null(r->summary_path));
    cJSON_AddItemToObject(in, "results_h5", str_or_null(r->have_results_h5 ? r->results_h5 : NULL));
    cJSON_AddItemToObject(in, "labels_csv", str_or_null(r->labels_path));
    cJSON_AddItemToObject(o, "inputs", in);
    cJSON_AddItemToObject(o, "threshold", ev_num(r->threshold));
    cJSON_AddItemToObject(o, "threshold_source", str_or_null(r->threshold_source));
    static const char *const cn[] = {
        "summary_rows",        "error_rows", "unmatched_rows",   "duplicate_rows",
        "matched_by_basename", "label_rows", "unmatched_labels", "prediction_mismatch",
        "evaluated",           "positives",  "negatives"};
    const size_t cv[] = {r->rows,
                         r->rows_error,
                         r->rows_unmatched,
                         r->rows_duplicate,
                         r->matched_basename,
                         r->labels,
                         r->labels_unmatched,
                         r->prediction_mismatch,
                         r->n,
                         r->auroc.npos,
                         r->auroc.nneg};
    add_counts(o, "counts", cn, cv, 11);
    cJSON *au = add_stat(o, "auroc", r->auroc.auc, r->auroc.lo, r->auroc.hi);
    cJSON_AddItemToObject(au, "se", ev_num(r->auroc.se));
    cJSON_AddStringToObject(au, "ci_method", "DeLong variance, Wald interval clipped to [0,1]");
    static const char *const mn[] = {"tp", "fp", "tn", "fn"};
    const size_t mv[] = {r->cm.tp, r->cm.fp, r->cm.tn, r->cm.fn};
    add_counts(o, "confusion_matrix", mn, mv, 4);
    cJSON *cm = cJSON_GetObjectItemCaseSensitive(o, "confusion_matrix"),
          *rows = cJSON_CreateArray();
    const size_t m[2][2] = {{r->cm.tn, r->cm.fp}, {r->cm.fn, r->cm.tp}};
    for (int i = 0; rows && i < 2; i++) {
        cJSON *row = cJSON_CreateArray();
        for (int j = 0; row && j < 2; j++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)m[i][j]));
        cJSON_AddItemToArray(rows, row);
    }
    cJSON_AddItemToObject(cm, "matrix", rows);
    cJSON_AddStringToObject(cm, "layout", "rows truth 0,1; columns prediction 0,1");
    add_prop(o, "sensitivity", &r->rates.sensitivity);
    add_prop(o, "specificity", &r->rates.specificity);
    add_prop(o, "ppv", &r->rates.ppv);
    add_prop(o, "npv", &r->rates.npv);
    add_prop(o, "accuracy", &r->rates.accuracy);
    cJSON_AddItemToObject(o, "kappa", ev_num(r->kappa));
    static const char *const pn[] = {"fractured_with_box", "without_peak", "hits", "n"};
    const size_t pv[] = {r->pg_fractured_box, r->pg_no_peak, r->pointing.x, r->pointing.n};
    add_counts(o, "pointing_game", pn, pv, 4);
    cJSON *pg = cJSON_GetObjectItemCaseSensitive(o, "pointing_game");
    cJSON_AddItemToObject(pg, "rate", ev_num(r->pointing.value));
    cJSON_AddItemToObject(pg, "ci95", ev_ci95(r->pointing.lo, r->pointing.hi));
    cJSON_AddStringToObject(pg, "rule",
                            "hit iff x0-0.1w <= peak_x < x1+0.1w and y0-0.1h <= peak_y < y1+0.1h "
                            "(w=x1-x0, h=y1-y0; true box half-open); n = fractured images with a "
                            "box and a peak");
    ev_research_json(o, r);
    if (r->faith_done)
        ev_faith_json(o, &r->faith);
    return o;
}

fx_status ev_write_json(const fx_eval_report *r, const char *results_dir, fx_error *err)
{
    cJSON *o = report_json(r, results_dir);
    fx_status st = o ? fx_json_save(o, r->json_path, err)
                     : fx_error_set(err, FX_ERR_NOMEM, "eval: out of memory for eval.json");
    cJSON_Delete(o);
    if (st == FX_ERR_IO)
        fx_error_prefix(err, "eval (pass --json PATH elsewhere)");
    return st;
}

/* ---- the table ------------------------------------------------------------ */

static void print_value(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%8.4f", v);
    else
        fprintf(f, "%8s", "n/a");
}

static void print_ci(FILE *f, double lo, double hi)
{
    if (isfinite(lo) && isfinite(hi))
        fprintf(f, "  [%.4f, %.4f]", lo, hi);
    else
        fprintf(f, "  %-16s", "[n/a]");
}

static void print_prop(FILE *f, const char *name, const char *what, const fx_proportion *p)
{
    fprintf(f, "  %-14s", name);
    print_value(f, p->value);
    print_ci(f, p->lo, p->hi);
    fprintf(f, "  %zu/%zu %s\n", p->x, p->n, what);
}

void fx_eval_report_print(FILE *f, const fx_eval_report *r)
{
    fprintf(f, "eval: %zu images evaluated (%zu fractured, %zu normal) at threshold %g (%s)\n",
            r->n, r->auroc.npos, r->auroc.nneg, r->threshold, r->threshold_source);
    fprintf(f,
            "  summary.csv: %zu rows, %zu error rows excluded, %zu unmatched, %zu duplicates, "
            "%zu matched by basename\n",
            r->rows, r->rows_error, r->rows_unmatched, r->rows_duplicate, r->matched_basename);
    fprintf(f, "  labels.csv:  %zu rows, %zu without a result row\n", r->labels,
            r->labels_unmatched);
    if (r->prediction_mismatch)
        fprintf(f, "  note: %zu rows' prediction column differs from probability >= %g\n",
                r->prediction_mismatch, r->threshold);
    fprintf(f, "\n  %-14s%8s  %-16s  %s\n", "metric", "value", "95% CI", "count");
    fprintf(f, "  %-14s", "AUROC");
    print_value(f, r->auroc.auc);
    print_ci(f, r->auroc.lo, r->auroc.hi);
    fprintf(f, "  %zu+ / %zu- (DeLong)\n", r->auroc.npos, r->auroc.nneg);
    print_prop(f, "sensitivity", "TP/(TP+FN)", &r->rates.sensitivity);
    print_prop(f, "specificity", "TN/(TN+FP)", &r->rates.specificity);
    print_prop(f, "PPV", "TP/(TP+FP)", &r->rates.ppv);
    print_prop(f, "NPV", "TN/(TN+FN)", &r->rates.npv);
    print_prop(f, "accuracy", "", &r->rates.accuracy);
    fprintf(f, "  %-14s", "Cohen's kappa");
    print_value(f, r->kappa);
    fputc('\n', f);
    fprintf(f, "\n  confusion matrix     pred 0   pred 1\n");
    fprintf(f, "    truth 0 (normal)  %7zu  %7zu\n", r->cm.tn, r->cm.fp);
    fprintf(f, "    truth 1 (fracture)%7zu  %7zu\n", r->cm.fn, r->cm.tp);
    fprintf(f, "\n  %-14s", "pointing game");
    print_value(f, r->pointing.value);
    print_ci(f, r->pointing.lo, r->pointing.hi);
    fprintf(f, "  %zu/%zu hits (fractured with a box and a peak; %zu of %zu had no peak)\n",
            r->pointing.x, r->pointing.n, r->pg_no_peak, r->pg_fractured_box);
    ev_research_print(f, r);
    if (r->faith_done)
        ev_faith_print(f, &r->faith);
    fprintf(f, "\nwrote %s\n", r->json_path);
}
