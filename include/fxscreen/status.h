/* fxscreen: one status type for the whole library.
 *
 * Every fallible function returns an fx_status (FX_OK = 0, negative on
 * failure) and, when the caller passes a non-NULL fx_error, fills it with a
 * message that names the file (or object) and the reason.  There is no
 * global or thread-local error buffer: the detail travels with the call. */
#ifndef FXSCREEN_STATUS_H
#define FXSCREEN_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fx_status {
    FX_OK = 0,
    FX_ERR_IO = -1,          /* open/read/write failed (errno detail in msg) */
    FX_ERR_FORMAT = -2,      /* input is damaged: bad magic, CRC, zlib, truncation */
    FX_ERR_UNSUPPORTED = -3, /* valid input in a layout we do not handle */
    FX_ERR_LIMIT = -4,       /* over a configured limit (megapixels, bytes) */
    FX_ERR_NOMEM = -5,       /* allocation failed */
    FX_ERR_USAGE = -6,       /* bad command line or API argument */
    FX_ERR_CONFIG = -7,      /* bad configuration file or value */
    FX_ERR_INTERNAL = -8,    /* a bug: an invariant did not hold */
    FX_ERR_DEVICE = -9,      /* CUDA / cuDNN / cuBLAS failure or no device */
    FX_ERR_CANCELLED = -10,  /* stopped on request (Ctrl-C) */
} fx_status;

#define FX_ERROR_MSG_MAX 1024

/* Error detail: code plus a human-readable message.  Zero-initialise. */
typedef struct fx_error {
    fx_status code;
    char msg[FX_ERROR_MSG_MAX];
} fx_error;

/* Short constant name of a status ("format error", ...). Never NULL. */
const char *fx_status_str(fx_status s);

/* Set err (if non-NULL) to code and a printf-style message; returns code so
 * that callers can write `return fx_error_set(err, FX_ERR_IO, ...)`. */
fx_status fx_error_set(fx_error *err, fx_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message, e.g. with the file name: "a.png: <msg>". */
void fx_error_prefix(fx_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset to FX_OK with an empty message. */
void fx_error_clear(fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
