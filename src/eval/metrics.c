/* Screening statistics on arrays: see include/fxscreen/eval.h. */
#include <math.h>
#include <stdlib.h>

#include "fxscreen/eval.h"

/* One observation for the AUROC sort. */
typedef struct obs {
    double s; /* score */
    int y;    /* label 0/1 */
    size_t i; /* index in the caller's arrays */
} obs;

static int cmp_obs(const void *a, const void *b)
{
    double x = ((const obs *)a)->s, y = ((const obs *)b)->s;
    return (x > y) - (x < y);
}

/* Midranks (1-based; a tie group shares the mean of its ranks) of the
 * observations in sorted o[0..n) whose label is `want` (-1 = all), written to
 * rank[o[k].i]. */
static void midranks(const obs *o, size_t n, int want, double *rank)
{
    size_t r = 0; /* ranks handed out so far */
    size_t k = 0;
    while (k < n) {
        if (want >= 0 && o[k].y != want) {
            k++;
            continue;
        }
        /* the tie group: every selected observation with score o[k].s */
        size_t cnt = 0, e = k;
        while (e < n && o[e].s == o[k].s) {
            cnt += want < 0 || o[e].y == want;
            e++;
        }
        double mid = (double)r + ((double)cnt + 1.0) / 2.0;
        for (size_t q = k; q < e; q++)
            if (want < 0 || o[q].y == want)
                rank[o[q].i] = mid;
        r += cnt;
        k = e;
    }
}

fx_status fx_eval_auroc(const double *score, const int *label, size_t n, fx_auroc *out,
                        fx_error *err)
{
    return fx_eval_auroc_components(score, label, n, out, NULL, err);
}

fx_status fx_eval_auroc_components(const double *score, const int *label, size_t n, fx_auroc *out,
                                   double *v, fx_error *err)
{
    *out = (fx_auroc){0, 0, NAN, NAN, NAN, NAN};
    for (size_t i = 0; i < n; i++) {
        if (label[i] != 0 && label[i] != 1)
            return fx_error_set(err, FX_ERR_USAGE, "AUROC: label %zu is %d (want 0 or 1)", i,
                                label[i]);
        if (isnan(score[i]))
            return fx_error_set(err, FX_ERR_USAGE, "AUROC: score %zu is NaN", i);
        out->npos += label[i] == 1;
    }
    out->nneg = n - out->npos;
    if (out->npos == 0 || out->nneg == 0)
        return FX_OK;

    obs *o = malloc(n * sizeof *o);
    double *rz = malloc(n * sizeof *rz), *rc = malloc(n * sizeof *rc);
    if (!o || !rz || !rc) {
        free(o);
        free(rz);
        free(rc);
        return fx_error_set(err, FX_ERR_NOMEM, "AUROC: out of memory for %zu scores", n);
    }
    for (size_t i = 0; i < n; i++)
        o[i] = (obs){score[i], label[i], i};
    qsort(o, n, sizeof *o, cmp_obs);
    midranks(o, n, -1, rz); /* ranks among all */
    midranks(o, n, 1, rc);  /* ranks among positives ... */
    midranks(o, n, 0, rc);  /* ... and among negatives (disjoint indices) */

    double m = (double)out->npos, k = (double)out->nneg;
    /* AUC = (sum of positive ranks - m(m+1)/2) / (m k); the sum is exact (halves). */
    double rsum = 0;
    for (size_t i = 0; i < n; i++)
        if (label[i] == 1)
            rsum += rz[i];
    double auc = (rsum - m * (m + 1.0) / 2.0) / (m * k);
    out->auc = auc;
    for (size_t i = 0; v && i < n; i++) /* the structural components (below) */
        v[i] = label[i] == 1 ? (rz[i] - rc[i]) / k : 1.0 - (rz[i] - rc[i]) / m;

    if (out->npos >= 2 && out->nneg >= 2) {
        /* Structural components: V10 (positive i) = (#neg below + half #neg tied) / k
         * = (rz - rc) / k; V01 (negative j) = 1 - (rz - rc) / m. */
        double s10 = 0, s01 = 0;
        for (size_t i = 0; i < n; i++) {
            double v = label[i] == 1 ? (rz[i] - rc[i]) / k : 1.0 - (rz[i] - rc[i]) / m;
            double d = v - auc;
            if (label[i] == 1)
                s10 += d * d;
            else
                s01 += d * d;
        }
        s10 /= m - 1.0;
        s01 /= k - 1.0;
        out->se = sqrt(s10 / m + s01 / k);
        out->lo = fmax(0.0, auc - FX_EVAL_Z95 * out->se);
        out->hi = fmin(1.0, auc + FX_EVAL_Z95 * out->se);
    }
    free(o);
    free(rz);
    free(rc);
    return FX_OK;
}

fx_confusion fx_eval_confusion(const double *score, const int *label, size_t n, double threshold)
{
    fx_confusion cm = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int pred = score[i] >= threshold;
        if (label[i] == 1) {
            if (pred)
                cm.tp++;
            else
                cm.fn++;
        } else if (label[i] == 0) {
            if (pred)
                cm.fp++;
            else
                cm.tn++;
        }
    }
    return cm;
}

fx_proportion fx_eval_wilson(size_t x, size_t n)
{
    fx_proportion p = {x, n, NAN, NAN, NAN};
    if (n == 0)
        return p;
    double nn = (double)n, ph = (double)x / nn, z2 = FX_EVAL_Z95 * FX_EVAL_Z95;
    double den = 1.0 + z2 / nn;
    double c = (ph + z2 / (2.0 * nn)) / den;
    double h = FX_EVAL_Z95 / den * sqrt(ph * (1.0 - ph) / nn + z2 / (4.0 * nn * nn));
    p.value = ph;
    p.lo = fmax(0.0, c - h);
    p.hi = fmin(1.0, c + h);
    return p;
}

fx_rates fx_eval_rates(const fx_confusion *cm)
{
    fx_rates r;
    r.sensitivity = fx_eval_wilson(cm->tp, cm->tp + cm->fn);
    r.specificity = fx_eval_wilson(cm->tn, cm->tn + cm->fp);
    r.ppv = fx_eval_wilson(cm->tp, cm->tp + cm->fp);
    r.npv = fx_eval_wilson(cm->tn, cm->tn + cm->fn);
    r.accuracy = fx_eval_wilson(cm->tp + cm->tn, cm->tp + cm->tn + cm->fp + cm->fn);
    return r;
}

double fx_eval_kappa(const fx_confusion *cm)
{
    double tp = (double)cm->tp, fp = (double)cm->fp, tn = (double)cm->tn, fn = (double)cm->fn;
    double n = tp + fp + tn + fn;
    if (n == 0)
        return NAN;
    double po = (tp + tn) / n;
    double pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n);
    if (pe >= 1.0)
        return NAN;
    return (po - pe) / (1.0 - pe);
}

int fx_eval_pointing_hit(double px, double py, double x0, double y0, double x1, double y1)
{
    if (!(x1 > x0) || !(y1 > y0) || isnan(px) || isnan(py))
        return 0;
    double gx = FX_EVAL_POINTING_MARGIN * (x1 - x0), gy = FX_EVAL_POINTING_MARGIN * (y1 - y0);
    return x0 - gx <= px && px < x1 + gx && y0 - gy <= py && py < y1 + gy;
}
