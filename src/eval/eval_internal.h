/* Internals shared by the eval job (src/eval/eval.c) and its research
 * sections (src/eval/research.c): bootstrap, operating points, calibration
 * computed for the report, written into eval.json and printed. */
#ifndef FX_EVAL_INTERNAL_H
#define FX_EVAL_INTERNAL_H

#include <cJSON.h>
#include <stdio.h>

#include "fxscreen/eval.h"

/* eval.json numbers: finite as numbers, NaN/inf as null; [lo, hi]. */
cJSON *ev_num(double v);
cJSON *ev_ci95(double lo, double hi);

/* ---- shared by the bootstrap, the operating points and the curves
 * (src/eval/stats.c) ---- */

/* splitmix64's finalizer: fx_eval_rand(seed, k) = ev_mix64(seed + (k + 1) *
 * 0x9E3779B97F4A7C15); ROAD derives its streams' seeds with it. */
uint64_t ev_mix64(uint64_t z);

/* The rows of each class in input order: pos (label 1), neg (label 0). */
typedef struct ev_strata {
    size_t *pos, *neg, np, nq;
} ev_strata;
fx_status ev_strata_make(const int *label, size_t n, ev_strata *s, fx_error *err);
void ev_strata_free(ev_strata *s);

/* Replicate b of fx_eval_bootstrap's scheme: s[0..np) the positives'
 * scores drawn, s[np..np+nq) the negatives'. */
void ev_replicate(const double *score, const ev_strata *st, uint64_t seed, size_t b, double *s);

/* The 2.5th and 97.5th percentiles (NumPy's linear rule) of the finite
 * values of v[0..m), v reordered; NaN with valid 0 when there are none. */
fx_interval ev_interval95(double *v, size_t m);

/* A score and its label, for the ROC vertices. */
typedef struct ev_pair {
    double s;
    int y;
} ev_pair;
/* o sorted by score, highest first; per distinct score t (highest first)
 * thr[k] = t (thr may be NULL) and tp[k], fp[k] = the positives and
 * negatives scoring >= t.  Returns the vertex count (<= n). */
size_t ev_vertices(ev_pair *o, size_t n, double *thr, size_t *tp, size_t *fp);

/* eval.json (src/eval/eval_out.c): written through a temporary file. */
fx_status ev_write_json(const fx_eval_report *r, const char *results_dir, fx_error *err);

/* The research statistics of the evaluated rows into rep, as job asks. */
fx_status ev_research(const fx_eval_job *job, const double *score, const int *label, size_t n,
                      fx_eval_report *rep, fx_error *err);
/* --group-by: rep->groups from each row's group value (sorted by value). */
fx_status ev_subgroups(const char *const *group, const double *score, const int *label, size_t n,
                       fx_eval_report *rep, fx_error *err);
/* --plots DIR: roc, pr, reliability and histogram as .png and .svg, and
 * curves.json (the curves and bands drawn). */
fx_status ev_plots(const fx_eval_job *job, const double *score, const int *label, size_t n,
                   const fx_eval_report *r, fx_error *err);
/* Their eval.json members (bootstrap, operating_points, calibration). */
void ev_research_json(cJSON *o, const fx_eval_report *r);
/* Their part of the printed table. */
void ev_research_print(FILE *f, const fx_eval_report *r);

/* --faithfulness's section of eval.json and of the table (faith.c). */
void ev_faith_json(cJSON *o, const fx_faith_result *r);
void ev_faith_print(FILE *f, const fx_faith_result *r);

#endif
