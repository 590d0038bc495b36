/* Research statistics of `fxscreen eval` (include/fxscreen/eval.h): the
 * stratified bootstrap, operating points and calibration.  Pure functions
 * on arrays, like metrics.c; the resampling is counter-based so that a
 * NumPy implementation of the same scheme reproduces every replicate. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "fxscreen/eval.h"

uint64_t ev_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t fx_eval_rand(uint64_t seed, uint64_t k)
{
    return ev_mix64(seed + (k + 1) * 0x9E3779B97F4A7C15ull); /* splitmix64 */
}

/* Draw k of the stream as an index in [0, n): the high 32 bits scaled
 * (Lemire's multiply-shift; n < 2^32). */
static size_t draw(uint64_t seed, uint64_t k, size_t n)
{
    return (size_t)(((fx_eval_rand(seed, k) >> 32) * (uint64_t)n) >> 32);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

fx_interval ev_interval95(double *v, size_t m)
{
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (isfinite(v[i]))
            v[k++] = v[i];
    fx_interval ci = {NAN, NAN, k};
    if (k == 0)
        return ci;
    qsort(v, k, sizeof *v, cmp_double);
    for (int side = 0; side < 2; side++) {
        double h = (double)(k - 1) * (side ? 0.975 : 0.025);
        size_t lo = (size_t)floor(h);
        double frac = h - (double)lo, x = v[lo] + (lo + 1 < k ? frac * (v[lo + 1] - v[lo]) : 0.0);
        if (side)
            ci.hi = x;
        else
            ci.lo = x;
    }
    return ci;
}

fx_status ev_strata_make(const int *label, size_t n, ev_strata *s, fx_error *err)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++)
        s->np += label[i] == 1, s->nq += label[i] == 0;
    s->pos = malloc((s->np + 1) * sizeof *s->pos), s->neg = malloc((s->nq + 1) * sizeof *s->neg);
    if (!s->pos || !s->neg) {
        ev_strata_free(s);
        return fx_error_set(err, FX_ERR_NOMEM, "eval: out of memory");
    }
    s->np = s->nq = 0;
    for (size_t i = 0; i < n; i++) {
        if (label[i] == 1)
            s->pos[s->np++] = i;
        else if (label[i] == 0)
            s->neg[s->nq++] = i;
    }
    return FX_OK;
}

void ev_strata_free(ev_strata *s)
{
    free(s->pos), free(s->neg);
    memset(s, 0, sizeof *s);
}

void ev_replicate(const double *score, const ev_strata *st, uint64_t seed, size_t b, double *s)
{
    /* np draws among the positives, then nq among the negatives, from the
     * stream at b * m (stratified: the class counts stay those of the data). */
    uint64_t k0 = (uint64_t)b * (st->np + st->nq);
    for (size_t j = 0; j < st->np; j++)
        s[j] = score[st->pos[draw(seed, k0 + j, st->np)]];
    for (size_t j = 0; j < st->nq; j++)
        s[st->np + j] = score[st->neg[draw(seed, k0 + st->np + j, st->nq)]];
}

fx_status fx_eval_bootstrap(const double *score, const int *label, size_t n, double threshold,
                            int reps, uint64_t seed, fx_bootstrap *out, fx_error *err)
{
    memset(out, 0, sizeof *out);
    out->reps = reps, out->seed = seed;
    if (reps < 1 || reps > FX_EVAL_MAX_BOOTSTRAP)
        return fx_error_set(err, FX_ERR_USAGE, "bootstrap: %d replicates: give 1..%d", reps,
                            FX_EVAL_MAX_BOOTSTRAP);
    ev_strata cl;
    fx_status st = ev_strata_make(label, n, &cl, err);
    if (st != FX_OK)
        return st;
    size_t m = cl.np + cl.nq, R = (size_t)reps;
    if (m >= ((size_t)1 << 32)) {
        ev_strata_free(&cl);
        return fx_error_set(err, FX_ERR_USAGE, "bootstrap: too many rows (%zu)", m);
    }
    double *s = malloc((m + 1) * sizeof *s), *stat = malloc(R * FX_BOOT_N * sizeof *stat);
    double *col = malloc(R * sizeof *col);
    int *y = malloc((m + 1) * sizeof *y);
    if (!s || !stat || !col || !y)
        st = fx_error_set(err, FX_ERR_NOMEM, "bootstrap: out of memory");
    for (size_t i = 0; st == FX_OK && i < m; i++)
        y[i] = i < cl.np;
    for (size_t b = 0; b < R && st == FX_OK; b++) {
        ev_replicate(score, &cl, seed, b, s);
        fx_auroc au;
        st = fx_eval_auroc(s, y, m, &au, err);
        fx_confusion cm = fx_eval_confusion(s, y, m, threshold);
        fx_rates r = fx_eval_rates(&cm);
        double *v = stat + b * FX_BOOT_N;
        v[FX_BOOT_AUROC] = au.auc;
        v[FX_BOOT_SENS] = r.sensitivity.value;
        v[FX_BOOT_SPEC] = r.specificity.value;
        v[FX_BOOT_PPV] = r.ppv.value;
        v[FX_BOOT_NPV] = r.npv.value;
        v[FX_BOOT_KAPPA] = fx_eval_kappa(&cm);
    }
    for (int k = 0; k < FX_BOOT_N && st == FX_OK; k++) { /* one statistic at a time */
        for (size_t b = 0; b < R; b++)
            col[b] = stat[b * FX_BOOT_N + k];
        out->ci[k] = ev_interval95(col, R);
    }
    free(s), free(stat), free(col), free(y);
    ev_strata_free(&cl);
    return st;
}

static int cmp_pair_desc(const void *a, const void *b)
{
    double x = ((const ev_pair *)a)->s, y = ((const ev_pair *)b)->s;
    return (x < y) - (x > y);
}

size_t ev_vertices(ev_pair *o, size_t n, double *thr, size_t *tp, size_t *fp)
{
    qsort(o, n, sizeof *o, cmp_pair_desc);
    size_t k = 0, p = 0, q = 0;
    for (size_t i = 0; i < n;) {
        double t = o[i].s;
        for (; i < n && o[i].s == t; i++)
            p += o[i].y == 1, q += o[i].y == 0;
        if (thr)
            thr[k] = t;
        tp[k] = p, fp[k] = q;
        k++;
    }
    return k;
}

fx_status fx_eval_operating_point(const double *score, const int *label, size_t n, fx_op_kind kind,
                                  double target, fx_oppoint *out, fx_error *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind, out->target = target, out->threshold = NAN, out->youden = NAN;
    ev_pair *o = malloc((n + 1) * sizeof *o);
    double *thr = malloc((n + 1) * sizeof *thr);
    size_t *tp = malloc((n + 1) * sizeof *tp), *fp = malloc((n + 1) * sizeof *fp);
    if (!o || !thr || !tp || !fp) {
        free(o), free(thr), free(tp), free(fp);
        return fx_error_set(err, FX_ERR_NOMEM, "operating point: out of memory");
    }
    size_t m = 0, np = 0, nq = 0;
    for (size_t i = 0; i < n; i++)
        if (label[i] == 0 || label[i] == 1) {
            o[m++] = (ev_pair){score[i], label[i]};
            np += label[i] == 1, nq += label[i] == 0;
        }
    /* The vertices from the top: threshold t = a score, so everything at
     * or above it is predicted positive. */
    size_t nv = ev_vertices(o, m, thr, tp, fp), best_tp = 0, best_fp = 0;
    double best_t = NAN, best_j = -INFINITY;
    int found = 0;
    if (kind == FX_OP_SPECIFICITY && nq > 0 && target <= 1.0 && m > 0) {
        /* Above every score nothing is positive: specificity 1.  The
         * highest score + 1, as scikit-learn's roc_curve (1.2) begins. */
        best_t = thr[0] + 1.0;
        found = 1;
    }
    for (size_t v = 0; v < nv; v++) {
        double sens = np ? (double)tp[v] / (double)np : NAN,
               fpr = nq ? (double)fp[v] / (double)nq : NAN;
        if (kind == FX_OP_SENSITIVITY && sens >= target) {
            found = 1, best_t = thr[v], best_tp = tp[v], best_fp = fp[v]; /* the largest t */
            break;
        }
        if (kind == FX_OP_SPECIFICITY && 1.0 - fpr >= target) /* the smallest such t */
            found = 1, best_t = thr[v], best_tp = tp[v], best_fp = fp[v];
        if (kind == FX_OP_YOUDEN && sens - fpr > best_j) /* ties: the larger t */
            found = 1, best_j = sens - fpr, best_t = thr[v], best_tp = tp[v], best_fp = fp[v];
    }
    free(o), free(thr), free(tp), free(fp);
    if (!found || np == 0 || nq == 0)
        return FX_OK; /* threshold NaN: not reachable or a class is absent */
    out->threshold = best_t;
    out->cm = (fx_confusion){best_tp, best_fp, nq - best_fp, np - best_tp};
    out->rates = fx_eval_rates(&out->cm);
    out->youden = out->rates.sensitivity.value + out->rates.specificity.value - 1.0;
    return FX_OK;
}

fx_status fx_eval_calibration(const double *prob, const int *label, size_t n, int bins,
                              fx_calibration *out, fx_error *err)
{
    memset(out, 0, sizeof *out);
    if (bins < 1 || bins > FX_EVAL_MAX_BINS)
        return fx_error_set(err, FX_ERR_USAGE, "calibration: %d bins: give 1..%d", bins,
                            FX_EVAL_MAX_BINS);
    out->bins = bins;
    double sum_p[FX_EVAL_MAX_BINS] = {0}, sum_y[FX_EVAL_MAX_BINS] = {0}, brier = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (label[i] != 0 && label[i] != 1)
            continue;
        double p = prob[i];
        if (!(p >= 0.0 && p <= 1.0))
            return fx_error_set(err, FX_ERR_USAGE, "calibration: probability %g not in [0, 1]", p);
        /* sklearn's calibration_curve(strategy="uniform"): edges i * (1/B)
         * as np.linspace makes them; the bin is the number of inner edges
         * below p (a p on an edge falls into the bin below it). */
        int b = 0;
        while (b < bins - 1 && (double)(b + 1) * (1.0 / bins) < p)
            b++;
        sum_p[b] += p, sum_y[b] += label[i];
        out->count[b]++;
        brier += (p - label[i]) * (p - label[i]);
        m++;
    }
    out->n = m;
    out->brier = m ? brier / (double)m : NAN;
    double ece = 0;
    for (int b = 0; b < bins; b++) {
        out->mean_prob[b] = out->count[b] ? sum_p[b] / (double)out->count[b] : NAN;
        out->frac_pos[b] = out->count[b] ? sum_y[b] / (double)out->count[b] : NAN;
        if (out->count[b])
            ece += (double)out->count[b] / (double)m * fabs(out->mean_prob[b] - out->frac_pos[b]);
    }
    out->ece = m ? ece : NAN;
    return FX_OK;
}

fx_status fx_eval_paired_delong(const double *score_a, const double *score_b, const int *label,
                                size_t n, fx_paired_auroc *out, fx_error *err)
{
    *out = (fx_paired_auroc){n, 0, 0, NAN, NAN, NAN, NAN, NAN, NAN};
    double *va = malloc((n + 1) * sizeof *va), *vb = malloc((n + 1) * sizeof *vb);
    fx_auroc a, b;
    fx_status st = va && vb ? FX_OK : fx_error_set(err, FX_ERR_NOMEM, "DeLong: out of memory");
    if (st == FX_OK)
        st = fx_eval_auroc_components(score_a, label, n, &a, va, err);
    if (st == FX_OK)
        st = fx_eval_auroc_components(score_b, label, n, &b, vb, err);
    if (st == FX_OK) {
        out->npos = a.npos, out->nneg = a.nneg;
        out->auc_a = a.auc, out->auc_b = b.auc, out->diff = a.auc - b.auc;
    }
    if (st == FX_OK && a.npos >= 2 && a.nneg >= 2) {
        /* 2 x 2 covariances over the positives (s10) and negatives (s01). */
        double s10[3] = {0}, s01[3] = {0}; /* aa, bb, ab */
        for (size_t i = 0; i < n; i++) {
            double da = va[i] - a.auc, db = vb[i] - b.auc;
            double *s = label[i] == 1 ? s10 : s01;
            s[0] += da * da, s[1] += db * db, s[2] += da * db;
        }
        double m = (double)a.npos, k = (double)a.nneg, var[3];
        for (int q = 0; q < 3; q++)
            var[q] = s10[q] / (m - 1.0) / m + s01[q] / (k - 1.0) / k;
        double v = var[0] + var[1] - 2.0 * var[2];
        if (v > 0) {
            out->se = sqrt(v);
            out->z = out->diff / out->se;
            out->p = erfc(fabs(out->z) / sqrt(2.0));
        }
    }
    free(va);
    free(vb);
    return st;
}

fx_mcnemar fx_eval_mcnemar(const int *correct_a, const int *correct_b, size_t n)
{
    fx_mcnemar r = {0, 0, NAN, NAN, NAN};
    for (size_t i = 0; i < n; i++) {
        r.b += correct_a[i] && !correct_b[i];
        r.c += !correct_a[i] && correct_b[i];
    }
    size_t t = r.b + r.c, lo = r.b < r.c ? r.b : r.c;
    if (t == 0)
        return r;
    double d = fabs((double)r.b - (double)r.c) - 1.0;
    r.chi2 = d > 0 ? d * d / (double)t : 0.0;
    r.p_chi2 = erfc(sqrt(r.chi2 / 2.0)); /* chi-square(1) upper tail */
    /* P(X <= lo) for X ~ Bin(t, 1/2), summed in log space. */
    double sum = 0;
    for (size_t i = 0; i <= lo; i++)
        sum += exp(lgamma((double)t + 1) - lgamma((double)i + 1) - lgamma((double)(t - i) + 1) -
                   (double)t * log(2.0));
    r.p_exact = fmin(1.0, 2.0 * sum);
    return r;
}
