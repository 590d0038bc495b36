/* fxscreen: SHA-256 (FIPS 180-4), for recording which model file produced
 * an output (`model run` attributes, results.h5).  Plain C, no state
 * outside the context; not constant-time (nothing secret is hashed). */
#ifndef FXSCREEN_SHA256_H
#define FXSCREEN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FX_SHA256_BYTES 32
#define FX_SHA256_HEX   65 /* 64 hex digits + NUL */

/* Streaming context: init, update any number of times, final once. */
typedef struct fx_sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf; /* bytes pending in buf (< 64) */
} fx_sha256;

void fx_sha256_init(fx_sha256 *c);
void fx_sha256_update(fx_sha256 *c, const void *data, size_t n);
/* Writes the 32-byte digest; the context must be re-initialised to reuse. */
void fx_sha256_final(fx_sha256 *c, uint8_t out[FX_SHA256_BYTES]);

/* One-shot digest of a buffer. */
void fx_sha256_buf(const void *data, size_t n, uint8_t out[FX_SHA256_BYTES]);

/* Lower-case hex of a digest into hex (FX_SHA256_HEX bytes, NUL-terminated). */
void fx_sha256_hex(const uint8_t digest[FX_SHA256_BYTES], char hex[FX_SHA256_HEX]);

/* Hex digest of a file's bytes.  FX_ERR_IO (naming the file and errno's
 * reason) if it cannot be opened or read. */
fx_status fx_sha256_file(const char *path, char hex[FX_SHA256_HEX], fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
