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

#endif
