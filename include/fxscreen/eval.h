/* fxscreen: screening statistics for `fxscreen eval`.
 *
 * Two layers:
 *   - pure functions on arrays (src/eval/metrics.c): AUROC with a DeLong
 *     interval, the confusion matrix at a threshold, sensitivity,
 *     specificity, PPV, NPV and accuracy with Wilson score intervals,
 *     Cohen's kappa, and the pointing-game hit test.  No I/O, no global state.
 *   - the job (src/eval/eval.c): joins a results directory's summary.csv to a
 *     labels.csv, computes everything, writes eval.json and prints a table.
 *
 * Conventions: label 1 = fractured (positive), 0 = normal.  A score is the
 * model's probability of the fracture class; prediction = (score >= threshold).
 * A statistic whose denominator is 0 is NaN here and null in eval.json.
 * All 95% intervals use z = 1.959963984540054 (the 0.975 normal quantile). */
#ifndef FXSCREEN_EVAL_H
#define FXSCREEN_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fxscreen/faith.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FX_EVAL_Z95 1.959963984540054

/* Growth of the true box for the pointing game, as a fraction of the box's
 * width (x) and height (y) added on EACH side. */
#define FX_EVAL_POINTING_MARGIN 0.1

/* ---- AUROC ------------------------------------------------------------- */

typedef struct fx_auroc {
    size_t npos, nneg; /* label 1 / label 0 counts */
    double auc;        /* P(score_pos > score_neg) + 0.5 P(equal): the Mann-Whitney
                          statistic / (npos*nneg); equals sklearn's roc_auc_score.
                          NaN when npos == 0 or nneg == 0 */
    double se;         /* DeLong (1988) standard error: sqrt(S10/npos + S01/nneg),
                          S10, S01 the sample variances (n-1 denominators) of the
                          structural components. NaN when npos < 2 or nneg < 2 */
    double lo, hi;     /* auc -/+ z*se clipped to [0, 1] (Wald interval on the
                          DeLong variance, as pROC's ci.auc(method="delong")).
                          NaN when se is NaN */
} fx_auroc;

/* AUROC of score (n values) against label (n values, 0 or 1; any other value
 * is FX_ERR_USAGE) with its DeLong interval, in O(n log n) via midranks
 * (Sun & Xu 2014).  Allocates scratch (FX_ERR_NOMEM).  Scores must not be
 * NaN (FX_ERR_USAGE).  out is fully written on FX_OK. */
fx_status fx_eval_auroc(const double *score, const int *label, size_t n, fx_auroc *out,
                        fx_error *err);

/* The same, and each observation's DeLong structural component into v (n
 * values, when npos and nneg > 0): for a positive i, V10 = (negatives
 * below + half those tied) / nneg; for a negative j, V01 = (positives above
 * + half those tied) / npos. */
fx_status fx_eval_auroc_components(const double *score, const int *label, size_t n, fx_auroc *out,
                                   double *v, fx_error *err);

/* ---- confusion matrix and the proportions ------------------------------- */

typedef struct fx_confusion {
    /* tp: truth 1, pred 1; fp: truth 0, pred 1; tn: truth 0, pred 0; fn: truth 1, pred 0 */
    size_t tp, fp, tn, fn;
} fx_confusion;

/* Confusion matrix of prediction = (score[i] >= threshold) against label[i]
 * (0 or 1; other labels are ignored). Pure; never fails. */
fx_confusion fx_eval_confusion(const double *score, const int *label, size_t n, double threshold);

/* A proportion x/n with its 95% Wilson score interval:
 *   p = x/n,  c = (p + z^2/(2n)) / (1 + z^2/n),
 *   h = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/(4n^2)),  [lo, hi] = [c - h, c + h]
 * (clamped to [0, 1] against rounding).  n == 0: value, lo, hi are NaN. */
typedef struct fx_proportion {
    size_t x, n;
    double value, lo, hi;
} fx_proportion;

fx_proportion fx_eval_wilson(size_t x, size_t n);

/* The confusion matrix's proportions, each with its Wilson interval:
 * sensitivity TP/(TP+FN), specificity TN/(TN+FP), PPV TP/(TP+FP),
 * NPV TN/(TN+FN), accuracy (TP+TN)/N. */
typedef struct fx_rates {
    fx_proportion sensitivity, specificity, ppv, npv, accuracy;
} fx_rates;

fx_rates fx_eval_rates(const fx_confusion *cm);

/* Cohen's kappa of prediction vs truth from the confusion matrix:
 * (po - pe) / (1 - pe), po = (TP+TN)/N,
 * pe = ((TP+FP)(TP+FN) + (TN+FN)(TN+FP)) / N^2.  NaN when N == 0 or pe == 1
 * (both raters constant and equal; sklearn's cohen_kappa_score is NaN there too). */
double fx_eval_kappa(const fx_confusion *cm);

/* ---- pointing game ------------------------------------------------------ */

/* 1 when the peak (px, py) lies in the true box [x0, x1) x [y0, y1) grown by
 * FX_EVAL_POINTING_MARGIN of its width and height on each side, exactly:
 *   gx = 0.1 * (x1 - x0), gy = 0.1 * (y1 - y0),
 *   hit = x0 - gx <= px < x1 + gx  and  y0 - gy <= py < y1 + gy
 * in double precision, with no clipping to the image; else 0.  A box with
 * x1 <= x0 or y1 <= y0, or a NaN coordinate, is never hit. */
int fx_eval_pointing_hit(double px, double py, double x0, double y0, double x1, double y1);

/* ---- bootstrap, operating points, calibration (src/eval/stats.c) --------- */

/* The bootstrap's random stream: splitmix64 of seed + (k + 1) * 0x9E3779B97F4A7C15
 * (z ^= z >> 30, z *= 0xBF58476D1CE4E5B9; z ^= z >> 27, z *= 0x94D049BB133111EB;
 * z ^= z >> 31).  Counter-based: value k needs no other. */
uint64_t fx_eval_rand(uint64_t seed, uint64_t k);

#define FX_EVAL_MAX_BOOTSTRAP 1000000
enum {
    FX_BOOT_AUROC,
    FX_BOOT_SENS,
    FX_BOOT_SPEC,
    FX_BOOT_PPV,
    FX_BOOT_NPV,
    FX_BOOT_KAPPA,
    FX_BOOT_N
};

/* A percentile interval over the replicates where the statistic is
 * defined (valid of them); NaN when none is. */
typedef struct fx_interval {
    double lo, hi;
    size_t valid;
} fx_interval;

typedef struct fx_bootstrap {
    int reps;
    uint64_t seed;
    fx_interval ci[FX_BOOT_N]; /* by FX_BOOT_* */
} fx_bootstrap;

/* Stratified bootstrap 95% intervals of AUROC and, at `threshold`,
 * sensitivity, specificity, PPV, NPV and kappa.  Scheme (reproducible in
 * NumPy): P = the indices with label 1 in input order, Q those with label
 * 0, m = |P| + |Q|; replicate b takes P[d(b*m + j, |P|)] for j < |P|, then
 * Q[d(b*m + |P| + j, |Q|)] for j < |Q|, where d(k, n) = ((fx_eval_rand(seed,
 * k) >> 32) * n) >> 32.  Interval: the 2.5th and 97.5th percentiles of the
 * replicates where the statistic is defined, interpolated linearly between
 * order statistics (NumPy's default). */
fx_status fx_eval_bootstrap(const double *score, const int *label, size_t n, double threshold,
                            int reps, uint64_t seed, fx_bootstrap *out, fx_error *err);

typedef enum fx_op_kind {
    FX_OP_YOUDEN,      /* max sensitivity + specificity - 1 (ties: the larger threshold) */
    FX_OP_SENSITIVITY, /* the largest threshold with sensitivity >= target */
    FX_OP_SPECIFICITY  /* the smallest threshold with specificity >= target */
} fx_op_kind;

/* An operating point: thresholds are the data's distinct scores
 * (prediction = score >= threshold), or the highest score + 1 (where
 * scikit-learn's roc_curve begins) when only predicting nothing positive
 * reaches the specificity.  threshold NaN
 * when no threshold reaches the target or a class is absent. */
typedef struct fx_oppoint {
    fx_op_kind kind;
    double target, threshold, youden;
    fx_confusion cm;
    fx_rates rates;
} fx_oppoint;

fx_status fx_eval_operating_point(const double *score, const int *label, size_t n, fx_op_kind kind,
                                  double target, fx_oppoint *out, fx_error *err);

/* Two models' AUROCs on the same images (paired), compared by DeLong,
 * DeLong & Clarke-Pearson (1988): with V the structural components of each
 * model, S10 and S01 their 2 x 2 sample covariances (n - 1 denominators)
 * over the positives and over the negatives, var = S10/npos + S01/nneg,
 * se = sqrt(var_AA + var_BB - 2 var_AB), z = (auc_a - auc_b) / se,
 * p = erfc(|z| / sqrt 2) (two-sided).  NaN where a class has fewer than 2
 * images or se is 0. */
typedef struct fx_paired_auroc {
    size_t n, npos, nneg;
    double auc_a, auc_b, diff, se, z, p;
} fx_paired_auroc;

fx_status fx_eval_paired_delong(const double *score_a, const double *score_b, const int *label,
                                size_t n, fx_paired_auroc *out, fx_error *err);

/* McNemar's test of two classifiers on the same images: b = images A gets
 * right and B wrong, c = the reverse; chi2 = (|b - c| - 1)^2 / (b + c)
 * (continuity-corrected) with p its chi-square(1) tail, and the exact
 * two-sided binomial p = min(1, 2 P(X <= min(b, c))), X ~ Bin(b + c, 1/2).
 * NaN when b + c == 0. */
typedef struct fx_mcnemar {
    size_t b, c;
    double chi2, p_chi2, p_exact;
} fx_mcnemar;

fx_mcnemar fx_eval_mcnemar(const int *correct_a, const int *correct_b, size_t n);

/* The ROC and precision-recall curves: one vertex per distinct score,
 * highest first (at threshold thr[i], score >= thr[i] is positive), and,
 * with reps > 0, pointwise 95% percentile bands over the replicates of
 * fx_eval_bootstrap (same seed, same draws) on the grid i / (G - 1):
 * the ROC's TPR at each FPR (the highest vertex at or left of it) and
 * the interpolated precision at each recall (the highest at or right). */
#define FX_EVAL_CURVE_GRID 101
typedef struct fx_eval_curves {
    int n;
    double *thr, *fpr, *tpr, *prec; /* n each; recall is tpr */
    int reps;
    uint64_t seed;
    double *roc_lo, *roc_hi, *pr_lo, *pr_hi; /* FX_EVAL_CURVE_GRID each, or NULL */
} fx_eval_curves;

fx_status fx_eval_curves_compute(const double *score, const int *label, size_t n, int reps,
                                 uint64_t seed, fx_eval_curves *c, fx_error *err);
void fx_eval_curves_free(fx_eval_curves *c);

#define FX_EVAL_MAX_BINS 100

/* Calibration of probabilities (label 0/1 rows): Brier score mean (p - y)^2;
 * `bins` equal-width bins over [0, 1] as sklearn's calibration_curve
 * (strategy "uniform": a p on an inner edge falls into the bin below);
 * per bin the count, mean probability and fraction of positives (NaN when
 * empty); ECE = sum over bins of count/n * |mean probability - fraction|. */
typedef struct fx_calibration {
    int bins;
    size_t n;
    double brier, ece;
    size_t count[FX_EVAL_MAX_BINS];
    double mean_prob[FX_EVAL_MAX_BINS], frac_pos[FX_EVAL_MAX_BINS];
} fx_calibration;

fx_status fx_eval_calibration(const double *prob, const int *label, size_t n, int bins,
                              fx_calibration *out, fx_error *err);

/* ---- the job ------------------------------------------------------------ */

typedef struct fx_eval_job {
    const char *results_dir; /* holds summary.csv and (optionally) results.h5 */
    const char *labels_path; /* labels.csv: path,label[,cx,cy],x0,y0,x1,y1 */
    const char *json_path;   /* NULL: results_dir/eval.json */
    int threshold_given;     /* 1: use `threshold`, whatever results.h5 says */
    double threshold;        /* used when threshold_given (else 0.5 when there is no results.h5) */
    int bootstrap;           /* replicates; 0: no bootstrap */
    uint64_t seed;           /* of the bootstrap */
    double at_sensitivity;   /* operating points; NaN: not asked for */
    double at_specificity;
    int calibration_bins;       /* 0: 10 */
    const char *group_by;       /* a labels.csv column, else a summary.csv one; NULL: none */
    const char *compare_dir;    /* a second run on the same labels; NULL: none */
    const char *plots_dir;      /* ROC, PR, reliability, histograms as PNG + SVG; NULL: none */
    const fx_faith_opts *faith; /* CAM faithfulness by ROAD (faith.h); NULL: none */
} fx_eval_job;

/* One subgroup of --group-by: its rows' AUROC and rates at the threshold. */
typedef struct fx_eval_group {
    char *value; /* owned */
    size_t n;
    fx_auroc auroc;
    fx_confusion cm;
    fx_rates rates;
} fx_eval_group;

/* --compare DIR2: the rows both runs evaluated (same labels), paired. */
typedef struct fx_eval_compare {
    char dir[4096];
    double threshold;             /* DIR2's, by the same rules as the main run's */
    const char *threshold_source; /* static */
    size_t rows_b;                /* rows DIR2 evaluated */
    size_t n;                     /* paired: labels evaluated by both */
    fx_paired_auroc delong;       /* A = the main run, B = DIR2 */
    fx_mcnemar mcnemar;           /* each at its own threshold */
} fx_eval_compare;

typedef struct fx_eval_report {
    /* inputs */
    char summary_path[4096], labels_path[4096], results_h5[4096], json_path[4096];
    int have_results_h5; /* results.h5 existed (its threshold attribute was read) */
    double threshold;
    const char *threshold_source; /* "--threshold", "results.h5" or "default" (static) */
    /* the join */
    size_t rows;             /* data rows in summary.csv */
    size_t rows_error;       /* status != ok: excluded (counted whether matched or not) */
    size_t rows_unmatched;   /* ok rows with no label (basename absent or ambiguous) */
    size_t rows_duplicate;   /* ok rows whose label was already taken by an earlier row: excluded */
    size_t matched_basename; /* ok rows matched by the basename fallback (included in n) */
    size_t labels;           /* data rows in labels.csv */
    size_t labels_unmatched; /* labels no summary row (ok or error) matched */
    /* evaluated rows whose `prediction` column != (probability >= threshold) */
    size_t prediction_mismatch;
    size_t n; /* evaluated rows: ok and matched, first match per label */
    /* statistics */
    fx_auroc auroc;
    fx_confusion cm;
    fx_rates rates;
    double kappa;
    /* pointing game: fractured images with a box */
    size_t pg_fractured_box;             /* evaluated label-1 rows whose label has a box */
    size_t pg_no_peak;                   /* ... of which the result has no peak */
    fx_proportion pointing;              /* hits / (pg_fractured_box - pg_no_peak) */
    fx_bootstrap boot;                   /* boot.reps 0: not asked for */
    fx_oppoint youden, at_sens, at_spec; /* at_*: kind's target NaN when not asked for */
    fx_calibration cal;
    char group_by[64], group_source[16]; /* "" without --group-by; "labels.csv"/"summary.csv" */
    fx_eval_group *groups;               /* ngroups, by value; owned */
    size_t ngroups;
    int compared; /* compare holds --compare's result */
    fx_eval_compare compare;
    int faith_done; /* faith holds --faithfulness's result */
    fx_faith_result faith;
    char created[32]; /* ISO 8601 UTC */
} fx_eval_report;

/* Run the evaluation: read results_dir/summary.csv and labels_path, join
 * them (summary paths as given to `run`, i.e. relative to the current
 * directory; label paths relative to the labels file's directory; both
 * normalised with realpath(3); a row whose realpath is not among the labels
 * falls back to its basename when exactly one label has that basename),
 * take the threshold (job->threshold if given, else results.h5's root
 * attribute `threshold` if results.h5 exists, else 0.5), compute every
 * statistic into *rep and write eval.json.  Errors: FX_ERR_USAGE (missing
 * input file, missing column, bad threshold), FX_ERR_FORMAT (a malformed
 * row, named by file and line; results.h5 without a numeric `threshold`),
 * FX_ERR_IO (eval.json not writable), FX_ERR_NOMEM. */
fx_status fx_eval_job_run(const fx_eval_job *job, fx_eval_report *rep, fx_error *err);

/* Frees what the report owns (its subgroups); safe on a zeroed report. */
void fx_eval_report_free(fx_eval_report *rep);

/* Print the report as a readable table (stdout in the CLI). */
void fx_eval_report_print(FILE *f, const fx_eval_report *rep);

#ifdef __cplusplus
}
#endif
#endif
