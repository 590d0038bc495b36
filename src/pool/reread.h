/* A finished run's inputs read again (src/pool/reread.c): the triage report
 * and ROAD decode the originals once more.  Plain files are named relative
 * to the directory the run started in (fx_path_from); archive members
 * ("ARCHIVE!/member") are read from their archive in archive order, the
 * order the run read them, through one cursor.  Not thread-safe: one
 * reader per thread (the callers read on their main thread). */
#ifndef FX_POOL_REREAD_H
#define FX_POOL_REREAD_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/loader.h"
#include "fxscreen/status.h"

typedef struct fx_reread fx_reread;

/* cwd: run.json's cwd (NULL: paths as they are).  NULL when out of memory. */
fx_reread *fx_reread_create(const char *cwd);
void fx_reread_destroy(fx_reread *r);

/* The length of path's ARCHIVE part ("ARCHIVE!/member" with ARCHIVE an
 * archive by its suffix), or 0 for a plain file. */
size_t fx_reread_archive_part(const char *path);

/* The bytes of archive member path (malloc'd into *bytes, *n): the archive
 * is resolved from cwd, walked forward from where the last member was
 * found, and once more from its start when the member is not ahead.
 * FX_ERR_IO / FX_ERR_FORMAT naming the archive or the member. */
fx_status fx_reread_member(fx_reread *r, const char *path, uint8_t **bytes, size_t *n,
                           fx_error *err);

/* Input path decoded again: a member from its archive, a file from cwd.
 * Errors as fx_decode_file's, naming path. */
fx_status fx_reread_decode(fx_reread *r, const char *path, const fx_decode_limits *lim,
                           fx_image *img, fx_error *err);

#endif
