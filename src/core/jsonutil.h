/* Small cJSON helpers shared by the Keras importer and serve's v2 parser. */
#ifndef FX_CORE_JSONUTIL_H
#define FX_CORE_JSONUTIL_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The numbers of v, a number or a (possibly nested) array of numbers, into
 * out[0..cap) in order, *n of them; -1 on anything else or more than cap. */
int fx_json_floats(const cJSON *v, float *out, size_t cap, size_t *n);

#endif
