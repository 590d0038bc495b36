/* The eval job's research sections (src/eval/eval_internal.h): bootstrap
 * intervals, operating points and calibration for the report, eval.json
 * and the printed table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "eval/eval_internal.h"
#include "eval/plot.h"
#include "fxscreen/fsutil.h"

fx_status ev_research(const fx_eval_job *job, const double *score, const int *label, size_t n,
                      fx_eval_report *rep, fx_error *err)
{
    fx_status st = fx_eval_operating_point(score, label, n, FX_OP_YOUDEN, NAN, &rep->youden, err);
    rep->at_sens.target = rep->at_spec.target = NAN;
    if (st == FX_OK && job->at_sensitivity > 0)
        st = fx_eval_operating_point(score, label, n, FX_OP_SENSITIVITY, job->at_sensitivity,
                                     &rep->at_sens, err);
    if (st == FX_OK && job->at_specificity > 0)
        st = fx_eval_operating_point(score, label, n, FX_OP_SPECIFICITY, job->at_specificity,
                                     &rep->at_spec, err);
    if (st == FX_OK)
        st = fx_eval_calibration(score, label, n,
                                 job->calibration_bins > 0 ? job->calibration_bins : 10, &rep->cal,
                                 err);
    if (st == FX_OK && job->bootstrap > 0)
        st = fx_eval_bootstrap(score, label, n, rep->threshold, job->bootstrap, job->seed,
                               &rep->boot, err);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

fx_status ev_subgroups(const char *const *group, const double *score, const int *label, size_t n,
                       fx_eval_report *rep, fx_error *err)
{
    const char **sorted = malloc((n + 1) * sizeof *sorted);
    double *gs = malloc((n + 1) * sizeof *gs);
    int *gy = malloc((n + 1) * sizeof *gy);
    fx_status st =
        sorted && gs && gy ? FX_OK : fx_error_set(err, FX_ERR_NOMEM, "eval: out of memory");
    size_t ng = 0;
    if (st == FX_OK) {
        memcpy(sorted, group, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_str);
        for (size_t i = 0; i < n; i++)
            ng += i == 0 || strcmp(sorted[i], sorted[i - 1]);
        if (!(rep->groups = calloc(ng + 1, sizeof *rep->groups)))
            st = fx_error_set(err, FX_ERR_NOMEM, "eval: out of memory");
    }
    for (size_t i = 0; i < n && st == FX_OK; i++) {
        if (i > 0 && !strcmp(sorted[i], sorted[i - 1]))
            continue;
        fx_eval_group *g = &rep->groups[rep->ngroups++];
        if (!(g->value = strdup(sorted[i]))) {
            st = fx_error_set(err, FX_ERR_NOMEM, "eval: out of memory");
            break;
        }
        size_t k = 0; /* the group's rows, in input order */
        for (size_t j = 0; j < n; j++)
            if (!strcmp(group[j], g->value))
                gs[k] = score[j], gy[k] = label[j], k++;
        g->n = k;
        st = fx_eval_auroc(gs, gy, k, &g->auroc, err);
        g->cm = fx_eval_confusion(gs, gy, k, rep->threshold);
        g->rates = fx_eval_rates(&g->cm);
    }
    free(sorted), free(gs), free(gy);
    return st;
}

static const char *const boot_names[FX_BOOT_N] = {"auroc", "sensitivity", "specificity",
                                                  "ppv",   "npv",         "kappa"};

static cJSON *oppoint_json(const fx_oppoint *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "target", ev_num(p->target));
    cJSON_AddItemToObject(o, "threshold", ev_num(p->threshold));
    cJSON_AddItemToObject(o, "sensitivity", ev_num(p->rates.sensitivity.value));
    cJSON_AddItemToObject(o, "specificity", ev_num(p->rates.specificity.value));
    cJSON_AddItemToObject(o, "ppv", ev_num(p->rates.ppv.value));
    cJSON_AddItemToObject(o, "npv", ev_num(p->rates.npv.value));
    cJSON_AddItemToObject(o, "youden_j", ev_num(p->youden));
    cJSON_AddNumberToObject(o, "tp", (double)p->cm.tp);
    cJSON_AddNumberToObject(o, "fp", (double)p->cm.fp);
    cJSON_AddNumberToObject(o, "tn", (double)p->cm.tn);
    cJSON_AddNumberToObject(o, "fn", (double)p->cm.fn);
    return o;
}

void ev_research_json(cJSON *o, const fx_eval_report *r)
{
    cJSON *ops = cJSON_AddObjectToObject(o, "operating_points");
    cJSON_AddItemToObject(ops, "youden", oppoint_json(&r->youden));
    if (!isnan(r->at_sens.target))
        cJSON_AddItemToObject(ops, "at_sensitivity", oppoint_json(&r->at_sens));
    if (!isnan(r->at_spec.target))
        cJSON_AddItemToObject(ops, "at_specificity", oppoint_json(&r->at_spec));
    cJSON_AddStringToObject(ops, "rule",
                            "thresholds are the scores (prediction = score >= threshold); "
                            "at_sensitivity: the largest reaching it, at_specificity: the "
                            "smallest, youden: max sensitivity + specificity - 1 (ties: larger)");
    const fx_calibration *c = &r->cal;
    cJSON *cal = cJSON_AddObjectToObject(o, "calibration");
    cJSON_AddItemToObject(cal, "brier", ev_num(c->brier));
    cJSON_AddItemToObject(cal, "ece", ev_num(c->ece));
    cJSON_AddNumberToObject(cal, "bins", c->bins);
    cJSON_AddStringToObject(cal, "strategy",
                            "uniform bins as sklearn's calibration_curve (a probability on an "
                            "inner edge falls into the bin below); ece = sum count/n * "
                            "|mean probability - fraction positive|");
    cJSON *tab = cJSON_AddArrayToObject(cal, "reliability");
    for (int b = 0; b < c->bins; b++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "lo", (double)b / c->bins);
        cJSON_AddNumberToObject(row, "hi", (double)(b + 1) / c->bins);
        cJSON_AddNumberToObject(row, "count", (double)c->count[b]);
        cJSON_AddItemToObject(row, "mean_probability", ev_num(c->mean_prob[b]));
        cJSON_AddItemToObject(row, "fraction_positive", ev_num(c->frac_pos[b]));
        cJSON_AddItemToArray(tab, row);
    }
    if (r->group_by[0]) {
        cJSON *sg = cJSON_AddObjectToObject(o, "subgroups");
        cJSON_AddStringToObject(sg, "column", r->group_by);
        cJSON_AddStringToObject(sg, "from", r->group_source);
        cJSON *arr = cJSON_AddArrayToObject(sg, "groups");
        for (size_t g = 0; g < r->ngroups; g++) {
            const fx_eval_group *G = &r->groups[g];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "value", G->value);
            cJSON_AddNumberToObject(e, "n", (double)G->n);
            cJSON_AddNumberToObject(e, "positives", (double)G->auroc.npos);
            cJSON_AddNumberToObject(e, "negatives", (double)G->auroc.nneg);
            cJSON *au = cJSON_AddObjectToObject(e, "auroc");
            cJSON_AddItemToObject(au, "value", ev_num(G->auroc.auc));
            cJSON_AddItemToObject(au, "ci95", ev_ci95(G->auroc.lo, G->auroc.hi));
            const fx_proportion *pr[4] = {&G->rates.sensitivity, &G->rates.specificity,
                                          &G->rates.ppv, &G->rates.npv};
            static const char *const pn[4] = {"sensitivity", "specificity", "ppv", "npv"};
            for (int q = 0; q < 4; q++) {
                cJSON *pe = cJSON_AddObjectToObject(e, pn[q]);
                cJSON_AddItemToObject(pe, "value", ev_num(pr[q]->value));
                cJSON_AddItemToObject(pe, "ci95", ev_ci95(pr[q]->lo, pr[q]->hi));
            }
            cJSON_AddItemToArray(arr, e);
        }
    }
    if (r->compared) {
        const fx_eval_compare *c = &r->compare;
        cJSON *cm = cJSON_AddObjectToObject(o, "compare");
        cJSON_AddStringToObject(cm, "results_dir_b", c->dir);
        cJSON_AddItemToObject(cm, "threshold_b", ev_num(c->threshold));
        cJSON_AddStringToObject(cm, "threshold_b_source", c->threshold_source);
        cJSON_AddNumberToObject(cm, "evaluated_b", (double)c->rows_b);
        cJSON_AddNumberToObject(cm, "paired", (double)c->n);
        cJSON *d = cJSON_AddObjectToObject(cm, "delong");
        cJSON_AddItemToObject(d, "auroc_a", ev_num(c->delong.auc_a));
        cJSON_AddItemToObject(d, "auroc_b", ev_num(c->delong.auc_b));
        cJSON_AddItemToObject(d, "difference", ev_num(c->delong.diff));
        cJSON_AddItemToObject(d, "se", ev_num(c->delong.se));
        cJSON_AddItemToObject(d, "z", ev_num(c->delong.z));
        cJSON_AddItemToObject(d, "p", ev_num(c->delong.p));
        cJSON_AddItemToObject(d, "ci95_difference",
                              ev_ci95(c->delong.diff - FX_EVAL_Z95 * c->delong.se,
                                      c->delong.diff + FX_EVAL_Z95 * c->delong.se));
        cJSON *mn = cJSON_AddObjectToObject(cm, "mcnemar");
        cJSON_AddNumberToObject(mn, "a_right_b_wrong", (double)c->mcnemar.b);
        cJSON_AddNumberToObject(mn, "a_wrong_b_right", (double)c->mcnemar.c);
        cJSON_AddItemToObject(mn, "chi2", ev_num(c->mcnemar.chi2));
        cJSON_AddItemToObject(mn, "p_chi2", ev_num(c->mcnemar.p_chi2));
        cJSON_AddItemToObject(mn, "p_exact", ev_num(c->mcnemar.p_exact));
    }
    if (r->boot.reps <= 0)
        return;
    cJSON *bo = cJSON_AddObjectToObject(o, "bootstrap");
    cJSON_AddNumberToObject(bo, "replicates", r->boot.reps);
    cJSON_AddNumberToObject(bo, "seed", (double)r->boot.seed);
    cJSON_AddStringToObject(bo, "scheme",
                            "stratified by class, percentile 95% intervals (see eval.h: "
                            "fx_eval_bootstrap); threshold as the report's");
    for (int k = 0; k < FX_BOOT_N; k++) {
        cJSON *e = cJSON_AddObjectToObject(bo, boot_names[k]);
        cJSON_AddItemToObject(e, "ci95", ev_ci95(r->boot.ci[k].lo, r->boot.ci[k].hi));
        cJSON_AddNumberToObject(e, "valid_replicates", (double)r->boot.ci[k].valid);
    }
}

static void print_op(FILE *f, const char *name, const fx_oppoint *p)
{
    if (isnan(p->threshold)) {
        fprintf(f, "  %-22s not reachable\n", name);
        return;
    }
    fprintf(f, "  %-22s %9.6f  %8.4f  %8.4f  %8.4f  %8.4f\n", name, p->threshold,
            p->rates.sensitivity.value, p->rates.specificity.value, p->rates.ppv.value,
            p->rates.npv.value);
}

void ev_research_print(FILE *f, const fx_eval_report *r)
{
    char name[64];
    fprintf(f, "\n  operating point        threshold  sensitiv  specific       PPV       NPV\n");
    print_op(f, "Youden's J", &r->youden);
    if (!isnan(r->at_sens.target)) {
        snprintf(name, sizeof name, "sensitivity >= %g", r->at_sens.target);
        print_op(f, name, &r->at_sens);
    }
    if (!isnan(r->at_spec.target)) {
        snprintf(name, sizeof name, "specificity >= %g", r->at_spec.target);
        print_op(f, name, &r->at_spec);
    }
    const fx_calibration *c = &r->cal;
    fprintf(f, "\n  calibration: Brier %.4f, ECE %.4f (%d bins)\n", c->brier, c->ece, c->bins);
    fprintf(f, "    bin            count  mean prob  fraction +\n");
    for (int b = 0; b < c->bins; b++)
        if (c->count[b])
            fprintf(f, "    [%.2f, %.2f]  %7zu   %8.4f   %8.4f\n", (double)b / c->bins,
                    (double)(b + 1) / c->bins, c->count[b], c->mean_prob[b], c->frac_pos[b]);
    if (r->group_by[0]) {
        fprintf(f, "\n  by %s (%s)%*s  n     AUROC  sensitiv  specific\n", r->group_by,
                r->group_source, 4, "");
        for (size_t g = 0; g < r->ngroups; g++) {
            const fx_eval_group *G = &r->groups[g];
            fprintf(f, "    %-24.24s %6zu  %8.4f  %8.4f  %8.4f\n",
                    G->value[0] ? G->value : "(empty)", G->n, G->auroc.auc,
                    G->rates.sensitivity.value, G->rates.specificity.value);
        }
    }
    if (r->compared) {
        const fx_eval_compare *c = &r->compare;
        fprintf(f, "\n  compared with %s (%zu images paired; its threshold %g, %s)\n", c->dir, c->n,
                c->threshold, c->threshold_source);
        fprintf(f, "    AUROC %.4f vs %.4f: difference %.4f, paired DeLong z %.3f, p %.4g\n",
                c->delong.auc_a, c->delong.auc_b, c->delong.diff, c->delong.z, c->delong.p);
        fprintf(f, "    McNemar: %zu right only here, %zu only there; p %.4g (exact %.4g)\n",
                c->mcnemar.b, c->mcnemar.c, c->mcnemar.p_chi2, c->mcnemar.p_exact);
    }
    if (r->boot.reps <= 0)
        return;
    fprintf(f, "\n  bootstrap 95%% CI (%d replicates, seed %llu, stratified by class)\n",
            r->boot.reps, (unsigned long long)r->boot.seed);
    for (int k = 0; k < FX_BOOT_N; k++) {
        const fx_interval *ci = &r->boot.ci[k];
        if (isfinite(ci->lo))
            fprintf(f, "    %-12s [%.4f, %.4f]\n", boot_names[k], ci->lo, ci->hi);
        else
            fprintf(f, "    %-12s [n/a]\n", boot_names[k]);
    }
}

/* ---- plots ---------------------------------------------------------------------- */

#define C_BLUE   0x1f77b4
#define C_ORANGE 0xff7f0e
#define C_GREY   0x7f7f7f
#define C_RED    0xd62728

static fx_status save(fx_plot *p, const char *dir, const char *name, fx_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fx_status st =
        p ? fx_plot_save(p, path, err) : fx_error_set(err, FX_ERR_NOMEM, "plot: out of memory");
    fx_plot_destroy(p);
    return st;
}

/* curves.json: the curves and bands the plots draw (for checks and reuse). */
static fx_status curves_json(const fx_eval_curves *c, const char *dir, fx_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/curves.json", dir);
    cJSON *o = cJSON_CreateObject();
    static const char *const names[] = {"thresholds", "fpr", "tpr", "precision"};
    const double *arr[] = {c->thr, c->fpr, c->tpr, c->prec};
    for (int k = 0; k < 4; k++) {
        cJSON *a = cJSON_AddArrayToObject(o, names[k]);
        for (int i = 0; i < c->n; i++)
            cJSON_AddItemToArray(a, ev_num(arr[k][i]));
    }
    if (c->roc_lo) {
        cJSON *b = cJSON_AddObjectToObject(o, "bands");
        cJSON_AddNumberToObject(b, "replicates", c->reps);
        cJSON_AddNumberToObject(b, "seed", (double)c->seed);
        cJSON_AddNumberToObject(b, "grid", FX_EVAL_CURVE_GRID);
        static const char *const bn[] = {"roc_tpr_lo", "roc_tpr_hi", "pr_precision_lo",
                                         "pr_precision_hi"};
        const double *ba[] = {c->roc_lo, c->roc_hi, c->pr_lo, c->pr_hi};
        for (int k = 0; k < 4; k++) {
            cJSON *a = cJSON_AddArrayToObject(b, bn[k]);
            for (int i = 0; i < FX_EVAL_CURVE_GRID; i++)
                cJSON_AddItemToArray(a, ev_num(ba[k][i]));
        }
    }
    fx_status st = fx_json_save(o, path, err);
    cJSON_Delete(o);
    return st;
}

fx_status ev_plots(const fx_eval_job *job, const double *score, const int *label, size_t n,
                   const fx_eval_report *r, fx_error *err)
{
    const char *dir = job->plots_dir;
    fx_status st = fx_mkdirs(dir, err);
    if (st != FX_OK)
        return st;
    /* The bands: the report's bootstrap replicates, else 1,000. */
    int reps = r->boot.reps > 0 ? r->boot.reps : 1000;
    fx_eval_curves c;
    if ((st = fx_eval_curves_compute(score, label, n, reps, job->seed, &c, err)) != FX_OK)
        return st;
    double grid[FX_EVAL_CURVE_GRID];
    for (int i = 0; i < FX_EVAL_CURVE_GRID; i++)
        grid[i] = (double)i / (FX_EVAL_CURVE_GRID - 1);
    int have = c.n > 0 && r->auroc.npos > 0 && r->auroc.nneg > 0;
    double *x = malloc(sizeof *x * (size_t)(c.n + 2)), *y = malloc(sizeof *y * (size_t)(c.n + 2));
    if (!x || !y)
        st = fx_error_set(err, FX_ERR_NOMEM, "plots: out of memory");
    char leg[128], pt[128];
    snprintf(pt, sizeof pt, "threshold %g", r->threshold);
    /* ROC: from (0, 0) through every vertex. */
    if (st == FX_OK) {
        fx_plot *p = fx_plot_create("ROC curve", "False positive rate (1 - specificity)",
                                    "True positive rate (sensitivity)", 0, 1, 0, 1);
        if (p && have) {
            x[0] = y[0] = 0;
            for (int i = 0; i < c.n; i++)
                x[i + 1] = c.fpr[i], y[i + 1] = c.tpr[i];
            double d[2] = {0, 1};
            fx_plot_line(p, d, d, 2, C_GREY, 1, "chance");
            if (c.roc_lo)
                fx_plot_band(p, grid, c.roc_lo, c.roc_hi, FX_EVAL_CURVE_GRID, C_BLUE, 0.25,
                             "95% bootstrap band");
            snprintf(leg, sizeof leg, "AUROC %.3f", r->auroc.auc);
            fx_plot_line(p, x, y, c.n + 1, C_BLUE, 0, leg);
            fx_plot_point(p, 1 - r->rates.specificity.value, r->rates.sensitivity.value, C_RED, pt);
        }
        st = save(p, dir, "roc", err);
    }
    /* Precision-recall: every vertex; the prevalence as chance. */
    if (st == FX_OK) {
        fx_plot *p = fx_plot_create("Precision-recall curve", "Recall (sensitivity)",
                                    "Precision (PPV)", 0, 1, 0, 1);
        if (p && have) {
            for (int i = 0; i < c.n; i++)
                x[i] = c.tpr[i], y[i] = c.prec[i];
            double prev = (double)r->auroc.npos / (double)(r->auroc.npos + r->auroc.nneg);
            double d[2] = {0, 1}, e[2] = {prev, prev};
            fx_plot_line(p, d, e, 2, C_GREY, 1, "prevalence");
            if (c.pr_lo)
                fx_plot_band(p, grid, c.pr_lo, c.pr_hi, FX_EVAL_CURVE_GRID, C_BLUE, 0.25,
                             "95% bootstrap band");
            fx_plot_line(p, x, y, c.n, C_BLUE, 0, "precision-recall");
            if (!isnan(r->rates.ppv.value))
                fx_plot_point(p, r->rates.sensitivity.value, r->rates.ppv.value, C_RED, pt);
        }
        st = save(p, dir, "pr", err);
    }
    /* Reliability diagram. */
    if (st == FX_OK) {
        fx_plot *p = fx_plot_create("Reliability diagram", "Mean predicted probability",
                                    "Fraction of fractures", 0, 1, 0, 1);
        int k = 0;
        for (int b = 0; b < r->cal.bins; b++)
            if (r->cal.count[b])
                x[k] = r->cal.mean_prob[b], y[k] = r->cal.frac_pos[b], k++;
        if (p) {
            double d[2] = {0, 1};
            fx_plot_line(p, d, d, 2, C_GREY, 1, "perfect calibration");
            snprintf(leg, sizeof leg, "model (ECE %.3f)", r->cal.ece);
            if (k)
                fx_plot_line(p, x, y, k, C_BLUE, 0, leg);
            for (int i = 0; i < k; i++)
                fx_plot_point(p, x[i], y[i], C_BLUE, NULL);
        }
        st = save(p, dir, "reliability", err);
    }
    /* Score histograms per class, 20 bins. */
    if (st == FX_OK) {
        enum { NB = 20 };
        double edges[NB + 1], h[2][NB] = {{0}}, top = 1;
        for (int b = 0; b <= NB; b++)
            edges[b] = (double)b / NB;
        for (size_t i = 0; i < n; i++)
            if (label[i] == 0 || label[i] == 1) {
                int b = (int)(score[i] * NB);
                b = b < 0 ? 0 : b >= NB ? NB - 1 : b;
                h[label[i]][b]++;
            }
        for (int b = 0; b < NB; b++)
            top = fmax(top, fmax(h[0][b], h[1][b]));
        fx_plot *p = fx_plot_create("Scores by class", "Predicted probability of fracture",
                                    "Images", 0, 1, 0, top * 1.1);
        if (p) {
            fx_plot_bars(p, edges, h[0], NB, C_BLUE, 0.5, "normal");
            fx_plot_bars(p, edges, h[1], NB, C_ORANGE, 0.5, "fracture");
            double tx[2] = {r->threshold, r->threshold}, ty[2] = {0, top * 1.1};
            fx_plot_line(p, tx, ty, 2, C_RED, 1, pt);
        }
        st = save(p, dir, "histogram", err);
    }
    if (st == FX_OK)
        st = curves_json(&c, dir, err);
    free(x), free(y);
    fx_eval_curves_free(&c);
    return st;
}
