/* fxscreen: the triage report of a run directory.
 *
 * fx_report_write reads DIR (run.json, results.h5, and when present
 * eval.json and the eval plots) and writes one self-contained HTML file
 * (default DIR/report.html): no network, no file beside it needed.  It
 * holds the run's summary (model and its SHA-256, effective config, sources,
 * counts, start/end time), the eval metrics and plots when the run was
 * evaluated, and the worklist: every row sorted by probability with a
 * thumbnail of its Grad-CAM overlay, the prediction, confidence, peak and
 * box, and the error rows with their reasons.  Pictures are JPEG data URIs
 * rendered from the originals (decoded again, windowed as the model saw
 * them) and the heat maps of results.h5, with the run's colour map and
 * opacity: a thumbnail for each row, and the full-size view (the overlay
 * beside the original) for the first `views` rows by probability.  The page
 * (src/report/web) filters, searches, sorts, moves by keyboard, draws only
 * the rows in sight (so 10,000 rows stay responsive) and prints.
 *
 * Threads: the rows are rendered in parallel (OpenMP); the result is the
 * same for any thread count. */
#ifndef FXSCREEN_REPORT_H
#define FXSCREEN_REPORT_H

#include <stdio.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_report_opts {
    const char *out;   /* NULL: DIR/report.html */
    const char *plots; /* the eval plots' directory; NULL: DIR/plots when present */
    const char *title; /* NULL: "fxscreen triage report: <DIR's name>" */
    int thumb;         /* thumbnail's longer side, 16..512 (default 160) */
    int view;          /* full-size view's longer side, 64..4096 (default 1024) */
    int views;         /* rows with an embedded full-size view, by probability,
                          highest first; -1 all (default 1000) */
    int quality;       /* JPEG quality, 30..100 (default 85) */
} fx_report_opts;

void fx_report_opts_default(fx_report_opts *o);

typedef struct fx_report_result {
    size_t rows, errors; /* rows of results.h5; error rows among them */
    size_t pictured;     /* rows with a thumbnail */
    size_t views;        /* rows with the full-size view */
    size_t unreadable;   /* ok rows whose original could not be decoded again
                            (moved, deleted): listed without pictures */
    size_t bytes;        /* size of the HTML file */
    char out[4200];      /* its path */
} fx_report_result;

/* Write the report of run directory dir.  log (may be NULL) gets one line
 * per 1,000 rows rendered.  FX_ERR_USAGE naming the file when dir has no
 * run.json or results.h5 or they are not fxscreen's, or for options out of
 * range; FX_ERR_IO naming the output.  The file is written under a
 * temporary name and renamed, so a reader never sees half a report. */
fx_status fx_report_write(const char *dir, const fx_report_opts *o, FILE *log,
                          fx_report_result *res, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
