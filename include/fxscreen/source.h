/* fxscreen: where input paths come from.
 *
 * A source is an ordered stream of image paths built from several specs:
 *   DIR        recursive walk, entries sorted by byte order within each
 *              directory, depth first; only files whose extension belongs to a
 *              loader (.png .tif .tiff .jpg .jpeg .jp2 .j2k .dcm ...) are taken; names starting
 * with '.' are skipped; symlinks are followed, and a directory reached twice on the current path (a
 * symlink loop) becomes an error item. LIST       a file named *.txt, *.lst, *.list or *.csv: one
 * path per line
 *              ('#' comments and blank lines skipped), or CSV with a header
 *              that has a `path` column (RFC 4180 quoting).  Relative paths
 *              are taken relative to the list file's directory.
 *   -          the same list format read from standard input (relative to cwd).
 *   ARCHIVE    a .tar, .tar.gz/.tgz, .tar.zst, .tar.xz, .tar.bz2 or .zip file (also
 *              when named in a list): its image members in archive order, read
 *              into memory by libarchive (never extracted), each named
 *              "ARCHIVE!/member/path" (src/pool/archive.c says which members).
 *   FILE       any other file: that one image (whatever its extension; the
 *              loader is chosen by magic bytes later).
 * In directories, files without an extension (or with digits only after the
 * last dot, as DICOM UIDs) are taken when their first bytes are an image.
 * The stream is produced lazily (memory is bounded by the widest directory,
 * not by the archive size).  Items that cannot be listed (an unreadable
 * directory, a missing path, a loop) are still yielded, with an error, so
 * that every input ends up as a row.  Not thread-safe: the reader pool calls
 * it under its lock. */
#ifndef FXSCREEN_SOURCE_H
#define FXSCREEN_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fxscreen/sha256.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_source fx_source;

/* One yielded input. path (and data) are malloc'd and owned by the
 * receiver.  data != NULL: the input's bytes (an archive member); else the
 * receiver reads the file at path. */
typedef struct fx_source_item {
    char *path;
    uint8_t *data;
    size_t size;
    size_t index;     /* position in the whole list (every shard counted) */
    fx_status status; /* FX_OK, or why the path could not be listed */
    char error[FX_ERROR_MSG_MAX];
} fx_source_item;

/* Create a source over specs[0..n). stdin_fp is used for "-" (pass stdin;
 * tests pass a memory stream).  Fails (FX_ERR_USAGE) only when a spec is
 * unusable as a whole: a list file that cannot be opened, "-" given twice, a
 * CSV without a `path` column, no specs. */
fx_status fx_source_create(const char *const *specs, int n, FILE *stdin_fp, fx_source **out,
                           fx_error *err);

/* Next item, in order. Returns 1 and fills *item, or 0 at the end. */
int fx_source_next(fx_source *s, fx_source_item *item);

/* Yield only the items whose index in the whole list is index (mod count):
 * shard `index` of `count`, round robin, so shards differ in size by at
 * most one item whatever the list.  The others are passed over without
 * reading their bytes.  Call before the first fx_source_next. */
void fx_source_set_shard(fx_source *s, size_t index, size_t count);

/* Items passed so far (every shard's) and the SHA-256 of their paths in
 * order (each with its NUL); 1 once the walk has reached the end. */
int fx_source_digest(const fx_source *s, size_t *count, char hex[FX_SHA256_HEX]);

/* The whole list's size and digest (as fx_source_digest at the end) by a
 * separate walk that reads names only.  FX_ERR_USAGE for '-' (stdin cannot
 * be read twice) or unusable specs. */
fx_status fx_source_list(const char *const *specs, int n, size_t *count, char hex[FX_SHA256_HEX],
                         fx_error *err);

/* Total number of items the specs yield, by a separate walk (for progress
 * ETA); -1 when unknown (stdin). Does not disturb s. */
long fx_source_count(const char *const *specs, int n);

void fx_source_destroy(fx_source *s);

#ifdef __cplusplus
}
#endif
#endif
