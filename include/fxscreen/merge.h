/* fxscreen: `fxscreen merge`, the shards of a sharded run (shard.h) put
 * back together as one run's outputs.
 *
 * Checks first, writes nothing until every check holds: each directory is
 * a complete shard (its run walked the whole list: results.h5 carries
 * input_sha256, and every dataset and summary.csv have the shard's row
 * count), all were made by the same model (SHA-256), the same effective
 * config and the same input list (count and SHA-256), each shard I of N is
 * given exactly once, and every row's /index is the input the shard owns.
 * A refusal names the directory at fault.
 *
 * Then OUT/results.h5 (every dataset with the shards' types, chunks and
 * filters; the root attributes of shard 0, start_time the earliest,
 * end_time the latest, input_count/input_sha256, merged_shards), and
 * OUT/summary.csv (the shards' records verbatim), in input order, both
 * written under temporary names and renamed at the end; the overlays are
 * hard-linked (copied across file systems) under their global row numbers;
 * OUT/merge.json records the shards.  Memory: one block of rows per
 * dataset (at most ~8 MiB) whatever the number of rows. */
#ifndef FXSCREEN_MERGE_H
#define FXSCREEN_MERGE_H

#include <stddef.h>
#include <stdio.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_merge_result {
    int shards;
    size_t rows, overlays;
} fx_merge_result;

/* FX_ERR_USAGE for shards that do not belong together or are incomplete
 * (nothing written), FX_ERR_IO when an output cannot be written. */
fx_status fx_merge_run(const char *out_dir, const char *const *shard_dirs, int n, FILE *log,
                       fx_merge_result *res, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
