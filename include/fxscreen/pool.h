/* fxscreen: the reader pool.  N worker threads read, decode and preprocess
 * images into fixed-size batches; the consumer takes batches in input order.
 *
 * Contract (after libvips's threadpool):
 *   allocate  (under the pool lock, one thread at a time): claim the next
 *             input index and its path from the source;
 *   work      (concurrent, touches only the claimed slot row and the
 *             worker's own scratch): read, decode, preprocess;
 *   consume   (the caller's thread): fx_pool_next() returns batch k only
 *             when every item of it is done, for k = 0, 1, 2, ... in order.
 * Back-pressure: there are `queue` batch slots; a worker that would start
 * batch k + queue waits until the consumer released batch k.  Memory is
 * therefore bounded by queue * batch items plus one decoded image per worker,
 * whatever the archive size.  Batch tensors are page-aligned (4096 B) so a
 * GPU stage can pin (cudaHostRegister) them once. */
#ifndef FXSCREEN_POOL_H
#define FXSCREEN_POOL_H

#include <signal.h>
#include <stddef.h>

#include "fxscreen/image.h"
#include "fxscreen/prep.h"
#include "fxscreen/source.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_pool_config {
    int threads;           /* workers; <= 0: online cores */
    int batch;             /* items per batch, >= 1 */
    int queue;             /* batch slots in flight, >= 2 (default 2 + threads/batch) */
    int keep_plane01;      /* also fill fx_batch.plane01 ([0,1] plane, for uint8 stores) */
    int overlay_side;      /* > 0: also make each item's overlay base (fx_overlay_base, at
                              most this many pixels on its longer side) in fx_item.ov */
    size_t max_file_bytes; /* refuse larger files; 0 = 1 GiB */
    int prep_cuda;         /* 1: preprocess integer planes on CUDA device prep_cuda_device
                              (fx_prep_run_cuda); others, plane01 and device failures on
                              the CPU (fx_pool_prep_fallbacks) */
    int prep_cuda_device;
    fx_prep_config prep; /* output size/channels, windowing, megapixel limit */
} fx_pool_config;

/* One input's outcome. Strings are owned by the batch. */
typedef struct fx_item {
    size_t index; /* position in the input order (0-based) */
    char *path;
    fx_status status;             /* FX_OK or why it failed */
    char error[FX_ERROR_MSG_MAX]; /* "" when ok; names the file and the reason */
    fx_image_info info;           /* decoded header; zero if the header was not read */
    fx_image_stats stats;         /* min/max/mean in stored units (ok items) */
    fx_prep_geom geom;            /* how original pixels map to model pixels (ok items) */
    double decode_s;              /* seconds reading + decoding the file (one worker thread) */
    double prep_s;                /* seconds preprocessing it */
    uint8_t *ov;                  /* overlay base in the batch's buffer, or NULL */
    int ov_w, ov_h;               /* its size; 0 when not made (the writer decodes again) */
} fx_item;

/* A batch handed to the consumer; valid until fx_pool_release(). */
typedef struct fx_batch {
    size_t number; /* batch k of the run */
    size_t first;  /* index of items[0] */
    int count;     /* items in this batch (only the last may be short) */
    int channels, height, width;
    fx_item *items;        /* [count] */
    float *tensor;         /* (count, C, H, W) NCHW float32; rows of failed items are 0 */
    float *plane01;        /* (count, H, W) or NULL (see keep_plane01) */
    uint8_t *overlay_base; /* (count, overlay_side^2) or NULL (see overlay_side) */
} fx_batch;

typedef struct fx_pool fx_pool;

/* Start the workers over src (borrowed: it must outlive the pool). */
fx_status fx_pool_create(const fx_pool_config *cfg, fx_source *src, fx_pool **out, fx_error *err);

/* Block until the next batch in order is complete.  Returns FX_OK with
 * *batch = NULL at the end of the input (or after fx_pool_cancel once the
 * claimed items are done). */
fx_status fx_pool_next(fx_pool *p, fx_batch **batch);

/* Hand a batch's slot back to the workers. */
void fx_pool_release(fx_pool *p, fx_batch *batch);

/* Stop claiming new inputs; items already claimed are finished and
 * delivered by fx_pool_next.  Safe to call from any thread, not from a
 * signal handler (poll a flag and call it from the consumer instead). */
void fx_pool_cancel(fx_pool *p);

/* The jobs' consume step: once *cancel is set (a Ctrl-C flag; may be NULL)
 * cancel the pool and set *cancelled, then return the next batch as
 * fx_pool_next does, NULL at the end. */
fx_batch *fx_pool_next_polled(fx_pool *p, const volatile sig_atomic_t *cancel, int *cancelled);

/* The pool's batch slots: count, and slot i's tensor (batch x C x H x W
 * floats, page-aligned, fixed for the pool's life) with its size in bytes,
 * for a GPU stage to pin once (fx_cuda_pin) and unpin before
 * fx_pool_destroy. */
int fx_pool_num_slots(const fx_pool *p);
float *fx_pool_slot_tensor(const fx_pool *p, int i, size_t *bytes);

/* prep_cuda: items the GPU failed to preprocess (the CPU did), and the
 * first failure's message into first[0..cap); counted as workers finish
 * items. */
size_t fx_pool_prep_fallbacks(fx_pool *p, char *first, size_t cap);

/* Inputs claimed so far (for progress). */
size_t fx_pool_claimed(fx_pool *p);

/* Join the workers and free everything (cancels first if still running). */
void fx_pool_destroy(fx_pool *p);

/* Process one file the way a worker does: read, decode, stats, preprocess
 * into out (C,H,W) and optionally plane01 (H,W).  Fills item (its path is
 * not touched). dec/scratch are the caller's reusable buffers. */
typedef struct fx_worker_buf {
    void *plane; /* decoded plane, grown as needed */
    size_t plane_cap;
    fx_prep_scratch *scratch;
    struct fx_cuda_prep *cuda;        /* prep_cuda: this thread's GPU buffers and stream */
    size_t gpu_fallbacks;             /* items the GPU failed on and the CPU preprocessed */
    char gpu_error[FX_ERROR_MSG_MAX]; /* the first such failure */
} fx_worker_buf;
void fx_pool_process_one(const fx_pool_config *cfg, const char *path, fx_worker_buf *buf,
                         float *out, float *plane01, fx_item *item);
/* The same on bytes already in memory (an archive member; data borrowed);
 * data NULL reads the file at path.  path names the input in messages. */
void fx_pool_process_bytes(const fx_pool_config *cfg, const char *path, const uint8_t *data,
                           size_t size, fx_worker_buf *buf, float *out, float *plane01,
                           fx_item *item);
void fx_worker_buf_free(fx_worker_buf *buf);

#ifdef __cplusplus
}
#endif
#endif
