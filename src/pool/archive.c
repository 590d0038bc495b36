/* Archives as sources: tar (plain, gzip, zstd, xz, bzip2) and zip through
 * libarchive.  Members are read into memory in archive order and never
 * extracted to disk; each becomes an input named "ARCHIVE!/member/path".
 * Taken: regular members whose name has a loader's suffix, or no extension
 * and first bytes a loader recognises (DICOM); skipped: directories, links,
 * hidden names and macOS resource forks (a component starting with '.',
 * "__MACOSX/").  The source calls this under the pool's lock, so reading is
 * sequential (as a compressed stream must be) and decoding stays parallel. */
#include "pool/archive.h"

#ifndef FX_NO_ARCHIVE
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/loader.h"

#define MEMBER_MAX ((size_t)1 << 30) /* as the pool's file limit */

struct fx_archive {
    struct archive *a;
    char *path;
    int done;
};

int fx_archive_is_name(const char *path)
{
    static const char *const suf[] = {".tar",    ".tar.gz", ".tgz",     ".tar.zst", ".tzst",
                                      ".tar.xz", ".txz",    ".tar.bz2", ".tbz2",    ".zip"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof suf / sizeof suf[0]; i++) {
        size_t k = strlen(suf[i]);
        if (n > k && !strcasecmp(path + n - k, suf[i]))
            return 1;
    }
    return 0;
}

/* A reader for every tar flavour and zip, any compression; NULL when out
 * of memory. */
static fx_archive *reader_new(const char *path)
{
    fx_archive *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path)) || !(r->a = archive_read_new())) {
        fx_archive_close(r);
        return NULL;
    }
    archive_read_support_filter_all(r->a);
    archive_read_support_format_tar(r->a);
    archive_read_support_format_gnutar(r->a);
    archive_read_support_format_zip(r->a);
    return r;
}

fx_status fx_archive_open(const char *path, fx_archive **out, fx_error *err)
{
    *out = NULL;
    fx_archive *r = reader_new(path);
    if (!r)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory opening an archive");
    if (archive_read_open_filename(r->a, path, 1 << 20) != ARCHIVE_OK) {
        fx_status st =
            fx_error_set(err, FX_ERR_IO, "cannot read the archive: %s",
                         archive_error_string(r->a) ? archive_error_string(r->a) : "unknown error");
        fx_archive_close(r);
        return st;
    }
    *out = r;
    return FX_OK;
}

fx_status fx_archive_open_memory(const void *data, size_t n, fx_archive **out, fx_error *err)
{
    *out = NULL;
    fx_archive *r = reader_new("(memory)");
    if (!r)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory opening an archive");
    if (archive_read_open_memory(r->a, data, n) != ARCHIVE_OK) {
        fx_status st = fx_error_set(err, FX_ERR_FORMAT, "not an archive: %s",
                                    archive_error_string(r->a) ? archive_error_string(r->a) : "?");
        fx_archive_close(r);
        return st;
    }
    *out = r;
    return FX_OK;
}

/* A member name to skip: hidden components and macOS resource forks. */
static int skip_name(const char *name)
{
    if (!strncmp(name, "__MACOSX/", 9))
        return 1;
    for (const char *p = name; *p; p++)
        if (*p == '.' && (p == name || p[-1] == '/') && p[1] != '/' && p[1] != '\0' &&
            !(p[1] == '.' && (p[2] == '/' || p[2] == '\0')))
            return 1;
    return 0;
}

int fx_archive_next(fx_archive *r, int skip_data, fx_archive_member *m, fx_error *err)
{
    memset(m, 0, sizeof *m);
    while (!r->done) {
        struct archive_entry *e;
        int rc = archive_read_next_header(r->a, &e);
        if (rc == ARCHIVE_EOF) {
            r->done = 1;
            return 0;
        }
        if (rc == ARCHIVE_FATAL || rc == ARCHIVE_RETRY) {
            r->done = 1;
            fx_error_set(err, FX_ERR_FORMAT, "damaged archive: %s",
                         archive_error_string(r->a) ? archive_error_string(r->a) : "unknown");
            return -1;
        }
        const char *name = archive_entry_pathname(e);
        while (name && (name[0] == '/' || (name[0] == '.' && name[1] == '/')))
            name += name[0] == '/' ? 1 : 2; /* "./a.png" (tar -C dir .) is "a.png" */
        if (!name || !*name || archive_entry_filetype(e) != AE_IFREG || skip_name(name))
            continue;
        int known = fx_loader_suffix_known(name), bare = !known && fx_path_no_extension(name);
        if (!known && !bare)
            continue;
        size_t len = strlen(r->path) + strlen(name) + 3;
        if (!(m->name = malloc(len)))
            return fx_error_set(err, FX_ERR_NOMEM, "out of memory"), -1;
        snprintf(m->name, len, "%s!/%s", r->path, name);
        la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        if (size > (la_int64_t)MEMBER_MAX) {
            m->status = fx_error_set(err, FX_ERR_LIMIT, "archive member of %lld bytes, over %zu",
                                     (long long)size, MEMBER_MAX);
            return 1;
        }
        if (skip_data && known)
            return 1; /* counting: no need for the bytes */
        /* Read the member into memory (size may be unknown in a stream). */
        size_t cap = size > 0 ? (size_t)size : 65536, n = 0;
        uint8_t *buf = malloc(cap ? cap : 1);
        for (;;) {
            if (!buf) {
                free(m->name);
                m->name = NULL;
                return fx_error_set(err, FX_ERR_NOMEM, "out of memory"), -1;
            }
            if (n == cap) {
                if (cap >= MEMBER_MAX)
                    break;
                uint8_t *nb = realloc(buf, cap * 2);
                if (!nb) {
                    free(buf);
                    buf = NULL;
                    continue;
                }
                buf = nb, cap *= 2;
            }
            la_ssize_t k = archive_read_data(r->a, buf + n, cap - n);
            if (k < 0) {
                free(buf);
                r->done = 1; /* the stream is lost after a data error */
                m->status = fx_error_set(err, FX_ERR_FORMAT, "damaged archive member: %s",
                                         archive_error_string(r->a) ? archive_error_string(r->a)
                                                                    : "read error");
                return 1;
            }
            if (k == 0)
                break;
            n += (size_t)k;
        }
        if (bare && !fx_loader_find(buf, n)) { /* no extension and not an image */
            free(buf);
            free(m->name);
            m->name = NULL;
            continue;
        }
        if (skip_data) {
            free(buf);
            return 1;
        }
        m->data = buf, m->size = n;
        return 1;
    }
    return 0;
}

void fx_archive_close(fx_archive *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    free(r->path);
    free(r);
}
#else /* FX_NO_ARCHIVE: a build without libarchive (static) */
#include <string.h>
#include <strings.h>

int fx_archive_is_name(const char *path)
{
    size_t n = strlen(path);
    return (n > 4 && !strcasecmp(path + n - 4, ".tar")) ||
           (n > 4 && !strcasecmp(path + n - 4, ".zip")) ||
           (n > 7 && !strcasecmp(path + n - 7, ".tar.gz"));
}

fx_status fx_archive_open_memory(const void *data, size_t n, fx_archive **out, fx_error *err)
{
    (void)data, (void)n;
    *out = NULL;
    return fx_error_set(err, FX_ERR_UNSUPPORTED, "this build reads no archives");
}

fx_status fx_archive_open(const char *path, fx_archive **out, fx_error *err)
{
    *out = NULL;
    return fx_error_set(err, FX_ERR_UNSUPPORTED,
                        "%s: this build reads no archives (static builds leave libarchive out)",
                        path);
}

int fx_archive_next(fx_archive *a, int skip_data, fx_archive_member *m, fx_error *err)
{
    (void)a, (void)skip_data, (void)m, (void)err;
    return 0;
}

void fx_archive_close(fx_archive *a)
{
    (void)a;
}
#endif
