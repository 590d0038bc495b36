/* The results sink of `fxscreen run`: results.h5 (HDF5, SWMR) and
 * summary.csv, appended one batch at a time and made durable after each,
 * and their crash recovery.  One thread at a time (the run's writer
 * thread).  Layout and guarantees: README ("fxscreen run") and
 * docs/ARCHITECTURE.md ("Crash safety"). */
#ifndef FX_OUT_RESULTS_H
#define FX_OUT_RESULTS_H

#include <hdf5.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "fxscreen/image.h"
#include "fxscreen/prep.h"
#include "fxscreen/runjob.h"
#include "fxscreen/shard.h"

#define FX_RESULTS_CSV_HEADER                                                                      \
    "path,status,probability,prediction,peak_x,peak_y,x0,y0,x1,y1,error,sop_instance_uid,"         \
    "study_instance_uid,series_instance_uid,accession_number,modality,body_part,view_position,"    \
    "pixel_spacing_row,pixel_spacing_col,x0_mm,y0_mm,x1_mm,y1_mm,frames"

/* One batch of result rows, as the engine side fills it. */
typedef struct fx_result_batch {
    int n;
    size_t row0;        /* row of item 0 in the outputs */
    fx_prep_geom *geom; /* (n) for the overlays */
    float *score;       /* (n, S) */
    float *prob;        /* (n) */
    int8_t *pred;       /* (n) */
    uint8_t *heat;      /* (n, H, W) */
    float *peak;        /* (n, 2) */
    float *bbox;        /* (n, 4) */
    int8_t *status;     /* (n) */
    fx_image_ids *ids;  /* (n) DICOM identifiers, empty for other formats */
    int *frames;        /* (n) frames in the file (0 unknown) */
    int64_t *index;     /* (n) position of each row's input in the whole list */
    /* Overlay bases from the readers (--overlay-size), or NULL: row i's is
     * ov_w[i] x ov_h[i] bytes at ovbase + i * ov_bytes (ov_w 0: none). */
    uint8_t *ovbase;
    int *ov_w, *ov_h;
    size_t ov_bytes;
    char **path;  /* (n) owned */
    char **error; /* (n) owned */
} fx_result_batch;

/* Room for `batch` rows of S scores and H x W heatmaps. */
fx_status fx_result_batch_alloc(fx_result_batch *o, int batch, int S, int H, int W, fx_error *err);
/* Frees the rows' strings; n = 0. */
void fx_result_batch_clear(fx_result_batch *o);
void fx_result_batch_free(fx_result_batch *o);

/* What results.h5 records about the run (borrowed). */
typedef struct fx_results_meta {
    int S, H, W; /* scores per image; heatmap size */
    const char *model, *model_sha, *cam_layer, *config_yaml;
    const fx_run_config *eff;
    /* A sharded run (count > 0): its shard, and the whole list's size and
     * SHA-256 when it started. */
    fx_shard shard;
    size_t inputs;
    const char *inputs_sha;
} fx_results_meta;

enum {
    FX_RD_SCORE,
    FX_RD_PROB,
    FX_RD_PRED,
    FX_RD_HEAT,
    FX_RD_PEAK,
    FX_RD_BBOX,
    FX_RD_PATH,
    FX_RD_STATUS,
    FX_RD_ERROR,
    FX_RD_SOP, /* the DICOM identifiers: strings, then spacing, bbox_mm, frames */
    FX_RD_STUDY,
    FX_RD_SERIES,
    FX_RD_ACCESSION,
    FX_RD_MODALITY,
    FX_RD_BODY,
    FX_RD_VIEW,
    FX_RD_SPACING,
    FX_RD_BBOX_MM,
    FX_RD_FRAMES,
    FX_RD_INDEX,
    FX_RD_N
};

typedef struct fx_results {
    hid_t file;
    hid_t ds[FX_RD_N];
    FILE *csv;
    char h5_path[PATH_MAX], csv_path[PATH_MAX];
} fx_results;

/* DIR/results.h5 and DIR/summary.csv, nothing opened yet. */
void fx_results_init(fx_results *o, const char *dir);
/* Fresh outputs: datasets, attributes, SWMR on; the CSV header. */
fx_status fx_results_create(fx_results *o, const fx_results_meta *m, fx_error *err);
/* After an interruption: both outputs cut to their longest common committed
 * prefix (*rows), or, when results.h5 cannot be read back or cut, that file
 * moved aside (*.bad, a line on log) and the outputs created afresh. */
fx_status fx_results_recover(fx_results *o, const fx_results_meta *m, size_t *rows, FILE *log,
                             fx_error *err);
/* Complete records of a summary.csv after its header (a record cut short
 * by a kill does not count); -1 when absent or without the header. */
long fx_results_csv_rows(const char *csv_path);
/* One batch to both outputs, HDF5 first, then the CSV, each flushed/fsync'd. */
fx_status fx_results_append(fx_results *o, const fx_result_batch *b, fx_error *err);
/* Closes and stamps end_time; when the run has walked its whole input
 * list (walk_sha != NULL) also input_count and input_sha256, which mark
 * the outputs complete. */
fx_status fx_results_finish(fx_results *o, size_t walk_count, const char *walk_sha, fx_error *err);

/* The dataset names of results.h5, by FX_RD_* (for readers: merge). */
extern const char *const fx_results_dsets[FX_RD_N];
void fx_results_close(fx_results *o);

#endif
