/* fxscreen: choosing where compute runs (CPU or a CUDA GPU).
 *
 * A build has CUDA when the Makefile found nvcc (it then defines
 * FX_HAVE_CUDA); even then the machine may have no GPU, so the choice is made
 * at run time by fx_device_resolve. */
#ifndef FXSCREEN_DEVICE_H
#define FXSCREEN_DEVICE_H

#include <stddef.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fx_device_kind { FX_DEVICE_AUTO = 0, FX_DEVICE_CPU, FX_DEVICE_CUDA } fx_device_kind;

/* Parse "auto", "cpu" or "cuda" (case-sensitive).  Returns 0 and sets *out,
 * or -1 (and leaves *out alone) for anything else. */
int fx_device_parse(const char *s, fx_device_kind *out);

/* "auto", "cpu" or "cuda". Never NULL. */
const char *fx_device_name(fx_device_kind k);

/* Decide where to run.
 *   CPU  -> CPU.
 *   AUTO -> CUDA when the build has CUDA and at least one device answers,
 *           else CPU, with a one-line notice ("no CUDA device found (why);
 *           running on CPU") written into notice[0..n).
 *   CUDA -> CUDA, or FX_ERR_DEVICE naming why it is unavailable.
 * notice (may be NULL) is set to "" when there is nothing to say. */
fx_status fx_device_resolve(fx_device_kind want, fx_device_kind *got, char *notice, size_t n,
                            fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
