/* Base64 for serve's JSON bodies (OpenSSL's codec underneath). */
#ifndef FX_SERVE_BASE64_H
#define FX_SERVE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Base64 (standard alphabet, padding optional, whitespace allowed, a
 * "data:...;base64," prefix skipped) into a malloc'd buffer; -1 if bad. */
int sv_base64_decode(const char *s, uint8_t **out, size_t *n);

#endif
