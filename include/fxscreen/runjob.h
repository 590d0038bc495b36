/* fxscreen: the `run` job (screening: model + Grad-CAM over many images).
 *
 * sources -> reader pool (N threads, preprocessing)
 *         -> consumer thread, batches in input order: engine (one fx_plan at
 *            the job's batch size; a short last batch is zero-padded and the
 *            pad rows ignored) + CAM (gradient w.r.t. the CAM layer, method,
 *            normalise, upsample, locate in original pixels)
 *         -> bounded queue (2 batches) -> ONE writer thread: results.h5 and
 *            summary.csv, both flushed (CSV fsync'd) after every batch.
 * HDF5 is used by one thread at a time: the calling thread before the writer
 * starts and after it is joined, the writer in between.
 *
 * DIR/results.h5 (one row per input, in input order):
 *   /score       float32 (N, K)   graph output 0 as the model gives it
 *   /probability float32 (N)      softmax of the logits, class 1 (fracture),
 *                                 or sigmoid of the single logit (K == 1)
 *   /prediction  int8 (N)         probability >= threshold (1/0); -1 on error
 *   /heatmap     uint8 (N, H, W)  CAM of the fracture class at model-input
 *                                 resolution, x255; one image per chunk, deflate
 *   /peak_xy     float32 (N, 2)   the map's peak in original-image pixels
 *   /bbox        float32 (N, 4)   x0, y0, x1, y1 around map >= 0.5 * peak,
 *                                 original pixels
 *   /path, /error strings; /status int8 (0 ok, else a negative fx_status)
 *   error rows: NaN score/probability/peak/bbox, prediction -1, zero heatmap
 *   root attributes: fxscreen_version, model, model_sha256, config (effective
 *   YAML), cam_method, cam_layer, threshold, start_time, end_time
 *   /dicom/{sop_instance_uid, study_instance_uid, series_instance_uid,
 *          accession_number, modality, body_part, view_position} strings,
 *                                empty for other formats (no patient data)
 *   /pixel_spacing float32 (N, 2) mm between rows, columns; NaN unknown
 *   /bbox_mm     float32 (N, 4)   /bbox in millimetres where the spacing is known
 *   /frames      int32 (N)        frames in the file (the first is read); 0 non-DICOM
 *   /index       int64 (N)        the input's position in the whole list (a
 *                                 shard's row r is input I + N * r; shard.h)
 *   once the whole list was walked: input_count, input_sha256 (complete);
 *   a shard: shard_index, shard_count, shard_inputs, shard_inputs_sha256
 * DIR/summary.csv: path,status,probability,prediction,peak_x,peak_y,x0,y0,x1,y1,error,
 *   then the identifiers, pixel_spacing_row,pixel_spacing_col,x0_mm,y0_mm,x1_mm,y1_mm,frames
 * DIR/run.json: the run's parameters, written at start, read by --resume.
 *
 * Crash safety: results.h5 is written in HDF5's SWMR mode (ordered metadata
 * flushes), so a process killed at any moment leaves a file that opens; the
 * CSV is appended after the HDF5 flush of the same batch.  Resume takes the
 * minimum row count over every dataset and the CSV's complete records,
 * truncates everything back to it, skips that many inputs and appends.  A
 * results.h5 that still cannot be opened is moved aside to results.h5.bad and
 * the run starts again from row 0 (slower, still every input exactly once). */
#ifndef FXSCREEN_RUNJOB_H
#define FXSCREEN_RUNJOB_H

#include <signal.h>
#include <stdio.h>

#include "fxscreen/cam.h"
#include "fxscreen/device.h"

/* Engines per GPU when --streams is not given: two, so that one engine's
 * upload and download overlap the other's compute (issue 12). */
#define FX_RUN_STREAMS 2
#include "fxscreen/pool.h"
#include "fxscreen/prepjob.h"
#include "fxscreen/shard.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The run sections of a model sidecar (models/NAME.yaml) or --config file,
 * beside the preprocessing keys of prep.h (which `prep` reads and `run`
 * shares; `prep` ignores these):
 *   model:   {classes: [normal, fracture], positive: fracture, threshold: 0.5}
 *   cam:     {layer: NAME, method: gradcam, box_fraction: 0.5}
 *   overlay: {colormap: inferno, opacity: 0.5}
 * Every key is optional; "not given" is the value fx_run_config_init sets.
 * Effective value: the command line, else the file, else the default
 * (classes: none; positive: 1, or the single logit; threshold 0.5; layer:
 * the suggested one; gradcam; box 0.5 of the peak; inferno; opacity 0.5). */
#define FX_RUN_MAX_CLASSES 16
#define FX_RUN_NAME_MAX    64
typedef struct fx_run_config {
    int nclasses;                                      /* 0: not given */
    char classes[FX_RUN_MAX_CLASSES][FX_RUN_NAME_MAX]; /* names of the logits, in order */
    int positive;        /* index of the fracture class (its probability is
                            /probability and its map /heatmap); -1 not given */
    double threshold;    /* prediction = probability >= threshold; NaN not given */
    char cam_layer[512]; /* "" not given */
    int cam_method;      /* fx_cam_method; -1 not given */
    double box_fraction; /* box around map >= fraction * peak, (0, 1]; NaN not given */
    int colormap;        /* fx_colormap (overlay.h); -1 not given */
    double opacity;      /* overlay alpha where the map is 1, [0, 1]; NaN not given */
} fx_run_config;

/* Everything "not given". */
void fx_run_config_init(fx_run_config *rc);

/* Read the model/cam/overlay sections of a YAML file (other top-level keys
 * are the preprocessing config's and are skipped here).  A bad value or an
 * unknown key inside these sections is FX_ERR_CONFIG naming the file, line,
 * key and fix; on error rc is unchanged. */
fx_status fx_run_config_load(const char *path, fx_run_config *rc, fx_error *err);

typedef enum fx_overlay_mode {
    FX_OVERLAY_NONE = 0,
    FX_OVERLAY_POSITIVES, /* one PNG per image predicted positive */
    FX_OVERLAY_ALL
} fx_overlay_mode;

#define FX_OVERLAY_SIZE_DEFAULT 1024

typedef struct fx_run_job {
    /* What to run (ignored with resume: taken from DIR/run.json). */
    const char *model;          /* ONNX file */
    const char *config;         /* YAML path or NULL (then the model's sidecar
                                   M.yaml if it exists, else the defaults) */
    const char *const *sources; /* specs, see source.h ("-" cannot be resumed) */
    int nsources;
    FILE *stdin_fp;             /* for "-" */
    int batch;                  /* engine and pool batch, >= 1 */
    int threads;                /* reader threads; <= 0: online cores */
    int method;                 /* fx_cam_method; -1: the config's, else gradcam */
    const char *layer;          /* CAM layer or NULL: the config's, else fx_graph_cam_layer */
    double threshold;           /* on /probability; NaN: the config's, else 0.5 */
    fx_overlay_mode overlays;   /* DIR/overlays/NNNNNNNN_NAME.png (see above) */
    int overlay_size;           /* their longer side at most this (area average); 0: 1024
                                   (FX_OVERLAY_SIZE_DEFAULT), -1: the original's size */
    fx_device_kind device;      /* auto: CUDA if it runs the model, else the CPU (notice) */
    fx_device_list devices;     /* CUDA: one engine per entry (cuda:N, cuda:0,1, cuda:all);
                                   n = 0: cuda:0 */
    fx_precision precision;     /* on the GPU; FX_PREC_DEFAULT: FX_PREC_GPU_DEFAULT */
    fx_device_kind prep_device; /* the readers' preprocessing: CPU (AUTO too) or CUDA (the
                                   first listed GPU; integer planes; issue 12) */
    int streams;                /* CUDA: engines (each its own stream) per listed GPU, so one's
                                   transfers overlap another's compute; 0: 2 (FX_RUN_STREAMS) */
    fx_shard shard;             /* count 0: every input (see shard.h) */
    /* Where, and how. */
    const char *out_dir;                               /* created if missing */
    int resume;                                        /* 1: continue the run recorded in out_dir */
    const volatile sig_atomic_t *cancel;               /* polled between batches; may be NULL */
    int count_first;                                   /* count the inputs first (ETA) */
    void (*progress)(void *ctx, const fx_progress *p); /* after each batch; may be NULL */
    void *progress_ctx;
    FILE *log; /* one-line notices (device fallback, resume); may be NULL */
} fx_run_job;

typedef struct fx_run_job_result {
    size_t total, ok, errors; /* rows written by this call */
    size_t resumed_from;      /* rows kept from an earlier call (resume) */
    double seconds;
    int cancelled;                   /* stopped early on request; outputs are valid */
    size_t overlays, overlay_errors; /* PNGs written / not written (noticed in the log) */
    /* Seconds spent per stage by this call, summed over the threads doing it
     * (stages overlap, so they add up to more than `seconds` when the pool
     * and the writer keep up): reading + decoding files and preprocessing
     * (reader threads), inference and CAM (consumer), HDF5 + CSV writing and
     * overlays (writer). */
    double decode_s, prep_s, infer_s, cam_s, write_s, overlay_s;
} fx_run_job_result;

/* Run (or resume) the job.  Errors: FX_ERR_USAGE / FX_ERR_CONFIG /
 * FX_ERR_UNSUPPORTED / FX_ERR_DEVICE for unusable arguments, config, model
 * or device (checked before any output is written), FX_ERR_IO when an output
 * cannot be written, FX_ERR_NOMEM.  Inputs that fail are rows, not errors. */
fx_status fx_run_job_run(const fx_run_job *job, fx_run_job_result *res, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
