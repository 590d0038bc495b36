/* Archive members as inputs (src/pool/archive.c): the source's reader of
 * tar and zip files through libarchive.  Not thread-safe per archive. */
#ifndef FX_POOL_ARCHIVE_H
#define FX_POOL_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/status.h"

typedef struct fx_archive fx_archive;

/* One member: name "ARCHIVE!/member/path" and its bytes, both malloc'd and
 * handed to the caller; status not FX_OK (with no data) for a member that
 * could not be read, the reason in the error passed to fx_archive_next. */
typedef struct fx_archive_member {
    char *name;
    uint8_t *data;
    size_t size;
    fx_status status;
} fx_archive_member;

/* 1 if path names an archive by its suffix (.tar, .tar.gz, .tgz, .tar.zst,
 * .tzst, .tar.xz, .txz, .tar.bz2, .tbz2, .zip; any case). */
int fx_archive_is_name(const char *path);

/* FX_ERR_IO naming libarchive's reason when it cannot be opened. */
fx_status fx_archive_open(const char *path, fx_archive **out, fx_error *err);

/* The next member that is an input: 1 (m filled; m->status says whether
 * its bytes were read), 0 at the end, -1 when the archive is damaged past
 * reading (err says why; nothing more comes).  skip_data: names only
 * (counting); members without an extension are still read to be sniffed. */
/* The same over bytes in memory (borrowed until close; the fuzz target). */
fx_status fx_archive_open_memory(const void *data, size_t n, fx_archive **out, fx_error *err);

int fx_archive_next(fx_archive *a, int skip_data, fx_archive_member *m, fx_error *err);

void fx_archive_close(fx_archive *a);

#endif
