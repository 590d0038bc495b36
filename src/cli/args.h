/* fxscreen CLI: small argument helpers shared by the subcommands. */
#ifndef FX_CLI_ARGS_H
#define FX_CLI_ARGS_H

/* Parse a whole decimal integer in [lo, hi] into *out. Returns 1 on success,
 * 0 (and *out untouched) on garbage, trailing characters or out of range. */
int fx_cli_parse_int(const char *s, long lo, long hi, int *out);

#include <hdf5.h>

#include "fxscreen/device.h"
#include "fxscreen/prepjob.h"

/* --device / --precision values: 1 on success, else 0 after a message on
 * stderr naming the accepted values ("cmd: --device 'x': use ..."). */
int fx_cli_device(const char *cmd, const char *arg, fx_device_kind *kind, int *index);
int fx_cli_precision(const char *cmd, const char *arg, fx_precision *prec);

/* One of `run`'s job options by its getopt letter (c config, l layer, O
 * overlays, Z overlay-size, b batch, t threads, M method, T threshold, d
 * device, P precision) into job; `slurm submit` passes the same options on
 * and checks them here.  --overlays' optional mode may be the next word of
 * argv (optind advanced; *arg set to it).  1 done, 0 not such an option, -1
 * after a message on stderr starting with cmd. */
struct fx_run_job;
int fx_cli_run_option(const char *cmd, int c, const char **arg, int argc, char **argv,
                      struct fx_run_job *job);

/* Progress callback for the jobs: one carriage-returned line on stderr with
 * count, errors, images/s and ETA; ctx is the command name ("prep", "run"). */
void fx_cli_progress(void *ctx, const fx_progress *p);

/* Read the dataset /input of the HDF5 file `path` (rank 4, N x C x H x W,
 * every dimension 1..max_dim) into a new float32 buffer (caller frees *out).
 * float_only: refuse a non-float dataset instead of letting HDF5 convert it.
 * Messages on stderr start with `cmd` ("model run").  Returns an exit code:
 * 0, 2 (unusable input, naming the fix) or 1 (out of memory, read failure). */
int fx_cli_read_input(const char *cmd, const char *path, unsigned max_dim, int float_only,
                      float **out, hsize_t dims[4]);

#endif
