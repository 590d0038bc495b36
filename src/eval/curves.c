/* ROC and precision-recall curves and their bootstrap bands
 * (include/fxscreen/eval.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "fxscreen/eval.h"

void fx_eval_curves_free(fx_eval_curves *c)
{
    free(c->thr), free(c->fpr), free(c->tpr), free(c->prec);
    free(c->roc_lo), free(c->roc_hi), free(c->pr_lo), free(c->pr_hi);
    memset(c, 0, sizeof *c);
}

/* Rates at each vertex: fpr, tpr and precision from the counts. */
static void rates(const size_t *tp, const size_t *fp, size_t k, size_t np, size_t nq, double *fpr,
                  double *tpr, double *prec)
{
    for (size_t i = 0; i < k; i++) {
        fpr[i] = nq ? (double)fp[i] / (double)nq : NAN;
        tpr[i] = np ? (double)tp[i] / (double)np : NAN;
        prec[i] = (double)tp[i] / (double)(tp[i] + fp[i]);
    }
}

/* Pointwise: ROC's TPR at each FPR grid value (the highest vertex at or left
 * of it), PR's precision at each recall grid value (the highest at or right
 * of it: interpolated precision). */
static void on_grid(const double *fpr, const double *tpr, const double *prec, size_t k, int g,
                    double *roc, double *pr)
{
    for (int j = 0; j < g; j++) {
        double v = (double)j / (g - 1), best_r = 0, best_p = NAN;
        for (size_t i = 0; i < k; i++) {
            if (fpr[i] <= v + 1e-12 && tpr[i] > best_r)
                best_r = tpr[i];
            if (tpr[i] >= v - 1e-12 && (isnan(best_p) || prec[i] > best_p))
                best_p = prec[i];
        }
        roc[j] = best_r;
        pr[j] = best_p;
    }
}

fx_status fx_eval_curves_compute(const double *score, const int *label, size_t n, int reps,
                                 uint64_t seed, fx_eval_curves *c, fx_error *err)
{
    memset(c, 0, sizeof *c);
    ev_strata cl;
    fx_status st = ev_strata_make(label, n, &cl, err);
    if (st != FX_OK)
        return st;
    size_t np = cl.np, nq = cl.nq, m = np + nq, G = FX_EVAL_CURVE_GRID;
    ev_pair *o = malloc((m + 1) * sizeof *o);
    size_t *tp = malloc((m + 1) * sizeof *tp), *fp = malloc((m + 1) * sizeof *fp);
    double *s = malloc((m + 1) * sizeof *s), *f = malloc((m + 1) * sizeof *f),
           *t = malloc((m + 1) * sizeof *t), *pr = malloc((m + 1) * sizeof *pr);
    double *roc_r = reps > 0 ? malloc((size_t)reps * G * sizeof *roc_r) : NULL,
           *pr_r = reps > 0 ? malloc((size_t)reps * G * sizeof *pr_r) : NULL;
    double *col = reps > 0 ? malloc((size_t)reps * sizeof *col) : NULL;
    c->thr = malloc((m + 1) * sizeof *c->thr), c->fpr = malloc((m + 1) * sizeof *c->fpr);
    c->tpr = malloc((m + 1) * sizeof *c->tpr), c->prec = malloc((m + 1) * sizeof *c->prec);
    int ok = o && tp && fp && s && f && t && pr && c->thr && c->fpr && c->tpr && c->prec &&
             (reps <= 0 || (roc_r && pr_r && col));
    if (ok && reps > 0) {
        c->roc_lo = malloc(G * sizeof(double)), c->roc_hi = malloc(G * sizeof(double));
        c->pr_lo = malloc(G * sizeof(double)), c->pr_hi = malloc(G * sizeof(double));
        ok = c->roc_lo && c->roc_hi && c->pr_lo && c->pr_hi;
    }
    if (ok) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (label[i] == 0 || label[i] == 1)
                o[k++] = (ev_pair){score[i], label[i]};
        size_t nv = ev_vertices(o, m, c->thr, tp, fp);
        rates(tp, fp, nv, np, nq, c->fpr, c->tpr, c->prec);
        c->n = (int)nv;
        c->reps = reps, c->seed = seed;
    }
    for (int b = 0; ok && b < reps && np && nq; b++) {
        ev_replicate(score, &cl, seed, (size_t)b, s); /* fx_eval_bootstrap's replicate b */
        for (size_t j = 0; j < m; j++)
            o[j] = (ev_pair){s[j], j < np};
        size_t nv = ev_vertices(o, m, NULL, tp, fp);
        rates(tp, fp, nv, np, nq, f, t, pr);
        on_grid(f, t, pr, nv, (int)G, roc_r + (size_t)b * G, pr_r + (size_t)b * G);
    }
    for (size_t j = 0; ok && reps > 0 && j < G; j++) {
        for (int q = 0; q < 2; q++) {
            const double *src = q ? pr_r : roc_r;
            for (int b = 0; b < reps; b++)
                col[b] = np && nq ? src[(size_t)b * G + j] : NAN;
            fx_interval ci = ev_interval95(col, (size_t)reps);
            (q ? c->pr_lo : c->roc_lo)[j] = ci.lo;
            (q ? c->pr_hi : c->roc_hi)[j] = ci.hi;
        }
    }
    free(o), free(tp), free(fp), free(s), free(f), free(t), free(pr);
    free(roc_r), free(pr_r), free(col);
    ev_strata_free(&cl);
    if (!ok) {
        fx_eval_curves_free(c);
        return fx_error_set(err, FX_ERR_NOMEM, "curves: out of memory");
    }
    return FX_OK;
}
