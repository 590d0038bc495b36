/* fxscreen: which part of the input a run processes.
 *
 * A sharded run (`fxscreen run --shard I/N`) takes the inputs whose index
 * in the whole list is I modulo N: deterministic, balanced by count (the
 * shards differ by at most one input), and stable when re-run over the same
 * list.  Its outputs record the shard, the whole list's size and its
 * SHA-256 (fx_source_list), so that `fxscreen merge` can put the shards'
 * rows back in input order and refuse shards that do not belong together. */
#ifndef FXSCREEN_SHARD_H
#define FXSCREEN_SHARD_H

#include <stddef.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FX_SHARD_MAX 100000 /* shards in one run */

typedef struct fx_shard {
    int index; /* 0 <= index < count */
    int count; /* 0: not sharded (the whole input) */
} fx_shard;

/* --shard SPEC [--shards N]:
 *   "I/N"    explicit (N from the spec; shards must be 0 or N);
 *   "slurm"  a Slurm job array task: SLURM_ARRAY_TASK_ID minus
 *            SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT (shards: 0 or
 *            the same count);
 *   "k8s"    a Kubernetes Indexed Job: JOB_COMPLETION_INDEX of `shards`.
 * FX_ERR_USAGE naming the variable or value and the fix.  `how` gets a few
 * words on where the shard came from, for the run's log (may be NULL). */
fx_status fx_shard_parse(const char *spec, int shards, fx_shard *out, char *how, size_t how_n,
                         fx_error *err);

/* Rows shard s has over a list of `inputs` items. */
size_t fx_shard_rows(fx_shard s, size_t inputs);

/* Index in the whole list of the shard's row r. */
size_t fx_shard_input(fx_shard s, size_t r);

#ifdef __cplusplus
}
#endif
#endif
