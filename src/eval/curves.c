/* ROC and precision-recall curves and their bootstrap bands
 * (include/fxscreen/eval.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fxscreen/eval.h"

void fx_eval_curves_free(fx_eval_curves *c)
{
    free(c->thr), free(c->fpr), free(c->tpr), free(c->prec);
    free(c->roc_lo), free(c->roc_hi), free(c->pr_lo), free(c->pr_hi);
    memset(c, 0, sizeof *c);
}

typedef struct sy {
    double s;
    int y;
} sy;

static int cmp_sy_desc(const void *a, const void *b)
{
    double x = ((const sy *)a)->s, y = ((const sy *)b)->s;
    return (x < y) - (x > y);
}

/* The curve's vertices over distinct thresholds, highest first: at t, the
 * rows with score >= t are predicted positive.  Returns the vertex count;
 * arrays of n + 1. thr may be NULL. */
static int sweep(sy *o, size_t n, double *thr, double *fpr, double *tpr, double *prec)
{
    size_t np = 0, nq = 0, tp = 0, fp = 0;
    for (size_t i = 0; i < n; i++)
        np += o[i].y == 1, nq += o[i].y == 0;
    qsort(o, n, sizeof *o, cmp_sy_desc);
    int k = 0;
    for (size_t i = 0; i < n;) {
        double t = o[i].s;
        for (; i < n && o[i].s == t; i++)
            tp += o[i].y == 1, fp += o[i].y == 0;
        if (thr)
            thr[k] = t;
        fpr[k] = nq ? (double)fp / (double)nq : NAN;
        tpr[k] = np ? (double)tp / (double)np : NAN;
        prec[k] = (double)tp / (double)(tp + fp);
        k++;
    }
    return k;
}

/* Pointwise: ROC's TPR at each FPR grid value (the highest vertex at or left
 * of it), PR's precision at each recall grid value (the highest at or right
 * of it: interpolated precision). */
static void on_grid(const double *fpr, const double *tpr, const double *prec, int k, int g,
                    double *roc, double *pr)
{
    for (int j = 0; j < g; j++) {
        double v = (double)j / (g - 1), best_r = 0, best_p = NAN;
        for (int i = 0; i < k; i++) {
            if (fpr[i] <= v + 1e-12 && tpr[i] > best_r)
                best_r = tpr[i];
            if (tpr[i] >= v - 1e-12 && (isnan(best_p) || prec[i] > best_p))
                best_p = prec[i];
        }
        roc[j] = best_r;
        pr[j] = best_p;
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* NumPy's linear percentile of the finite values in v (sorted in place). */
static double pct(double *v, size_t m, double q)
{
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (isfinite(v[i]))
            v[k++] = v[i];
    if (!k)
        return NAN;
    qsort(v, k, sizeof *v, cmp_d);
    double h = (double)(k - 1) * q;
    size_t lo = (size_t)floor(h);
    return v[lo] + (lo + 1 < k ? (h - (double)lo) * (v[lo + 1] - v[lo]) : 0.0);
}

fx_status fx_eval_curves_compute(const double *score, const int *label, size_t n, int reps,
                                 uint64_t seed, fx_eval_curves *c, fx_error *err)
{
    memset(c, 0, sizeof *c);
    size_t np = 0, nq = 0;
    for (size_t i = 0; i < n; i++)
        np += label[i] == 1, nq += label[i] == 0;
    size_t m = np + nq, G = FX_EVAL_CURVE_GRID;
    sy *o = malloc((m + 1) * sizeof *o);
    size_t *pos = malloc((np + 1) * sizeof *pos), *neg = malloc((nq + 1) * sizeof *neg);
    double *f = malloc((m + 1) * sizeof *f), *t = malloc((m + 1) * sizeof *t),
           *pr = malloc((m + 1) * sizeof *pr);
    double *roc_r = reps > 0 ? malloc((size_t)reps * G * sizeof *roc_r) : NULL,
           *pr_r = reps > 0 ? malloc((size_t)reps * G * sizeof *pr_r) : NULL;
    double *col = reps > 0 ? malloc((size_t)reps * sizeof *col) : NULL;
    c->thr = malloc((m + 1) * sizeof *c->thr), c->fpr = malloc((m + 1) * sizeof *c->fpr);
    c->tpr = malloc((m + 1) * sizeof *c->tpr), c->prec = malloc((m + 1) * sizeof *c->prec);
    int ok = o && pos && neg && f && t && pr && c->thr && c->fpr && c->tpr && c->prec &&
             (reps <= 0 || (roc_r && pr_r && col));
    if (ok && reps > 0) {
        c->roc_lo = malloc(G * sizeof(double)), c->roc_hi = malloc(G * sizeof(double));
        c->pr_lo = malloc(G * sizeof(double)), c->pr_hi = malloc(G * sizeof(double));
        ok = c->roc_lo && c->roc_hi && c->pr_lo && c->pr_hi;
    }
    if (ok) {
        size_t k = 0;
        np = nq = 0;
        for (size_t i = 0; i < n; i++)
            if (label[i] == 0 || label[i] == 1) {
                o[k++] = (sy){score[i], label[i]};
                if (label[i] == 1)
                    pos[np++] = i;
                else
                    neg[nq++] = i;
            }
        c->n = sweep(o, m, c->thr, c->fpr, c->tpr, c->prec);
        c->reps = reps, c->seed = seed;
    }
    for (int b = 0; ok && b < reps && np && nq; b++) {
        /* The replicates of fx_eval_bootstrap: the same stream and order. */
        uint64_t k0 = (uint64_t)b * m;
        for (size_t j = 0; j < np; j++) {
            uint64_t r = fx_eval_rand(seed, k0 + j);
            o[j] = (sy){score[pos[((r >> 32) * (uint64_t)np) >> 32]], 1};
        }
        for (size_t j = 0; j < nq; j++) {
            uint64_t r = fx_eval_rand(seed, k0 + np + j);
            o[np + j] = (sy){score[neg[((r >> 32) * (uint64_t)nq) >> 32]], 0};
        }
        int kv = sweep(o, m, NULL, f, t, pr);
        on_grid(f, t, pr, kv, (int)G, roc_r + (size_t)b * G, pr_r + (size_t)b * G);
    }
    for (size_t j = 0; ok && reps > 0 && j < G; j++) {
        for (int q = 0; q < 2; q++) {
            const double *src = q ? pr_r : roc_r;
            for (int b = 0; b < reps; b++)
                col[b] = np && nq ? src[(size_t)b * G + j] : NAN;
            double lo = pct(col, (size_t)reps, 0.025);
            for (int b = 0; b < reps; b++)
                col[b] = np && nq ? src[(size_t)b * G + j] : NAN;
            double hi = pct(col, (size_t)reps, 0.975);
            (q ? c->pr_lo : c->roc_lo)[j] = lo;
            (q ? c->pr_hi : c->roc_hi)[j] = hi;
        }
    }
    free(o), free(pos), free(neg), free(f), free(t), free(pr), free(roc_r), free(pr_r), free(col);
    if (!ok) {
        fx_eval_curves_free(c);
        return fx_error_set(err, FX_ERR_NOMEM, "curves: out of memory");
    }
    return FX_OK;
}
