/* Small cJSON helpers shared by the Keras importer, serve's v2 parser and
 * the JSON files the jobs write (run.json, eval.json, jobs.json, ...). */
#ifndef FX_CORE_JSONUTIL_H
#define FX_CORE_JSONUTIL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "fxscreen/status.h"

/* The numbers of v, a number or a (possibly nested) array of numbers, into
 * out[0..cap) in order, *n of them; -1 on anything else or more than cap. */
int fx_json_floats(const cJSON *v, float *out, size_t cap, size_t *n);

/* o pretty-printed with a final newline into path, through path.tmp
 * (flushed, fsync'd) renamed into place, so a reader never sees half a
 * file.  FX_ERR_NOMEM, or FX_ERR_IO naming path and the reason. */
fx_status fx_json_save(const cJSON *o, const char *path, fx_error *err);

#endif
