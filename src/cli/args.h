/* fxscreen CLI: small argument helpers shared by the subcommands. */
#ifndef FX_CLI_ARGS_H
#define FX_CLI_ARGS_H

/* Parse a whole decimal integer in [lo, hi] into *out. Returns 1 on success,
 * 0 (and *out untouched) on garbage, trailing characters or out of range. */
int fx_cli_parse_int(const char *s, long lo, long hi, int *out);

#include "fxscreen/prepjob.h"

/* Progress callback for the jobs: one carriage-returned line on stderr with
 * count, errors, images/s and ETA; ctx is the command name ("prep", "run"). */
void fx_cli_progress(void *ctx, const fx_progress *p);

#endif
