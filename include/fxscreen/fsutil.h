/* fxscreen: small file-system and CSV helpers shared by the jobs. */
#ifndef FXSCREEN_FSUTIL_H
#define FXSCREEN_FSUTIL_H

#include <stdio.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mkdir -p: create path and its parents (mode 0777 & ~umask).  FX_ERR_IO
 * naming the directory that could not be made, or path if it exists and is
 * not a directory. */
fx_status fx_mkdirs(const char *path, fx_error *err);

/* Write one CSV field, quoted per RFC 4180 when it needs it (NULL = ""). */
void fx_csv_field(FILE *f, const char *s);

#ifdef __cplusplus
}
#endif
#endif
