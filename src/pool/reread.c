/* A finished run's inputs read again: see src/pool/reread.h. */
#include "pool/reread.h"

#include <stdlib.h>
#include <string.h>

#include "fxscreen/fsutil.h"
#include "pool/archive.h"

struct fx_reread {
    char *cwd;
    char *arch; /* the open archive, resolved */
    fx_archive *a;
};

fx_reread *fx_reread_create(const char *cwd)
{
    fx_reread *r = calloc(1, sizeof *r);
    if (r && cwd && !(r->cwd = strdup(cwd))) {
        free(r);
        return NULL;
    }
    return r;
}

static void close_archive(fx_reread *r)
{
    if (r->a)
        fx_archive_close(r->a);
    free(r->arch);
    r->a = NULL, r->arch = NULL;
}

void fx_reread_destroy(fx_reread *r)
{
    if (!r)
        return;
    close_archive(r);
    free(r->cwd);
    free(r);
}

size_t fx_reread_archive_part(const char *path)
{
    for (const char *p = strstr(path, "!/"); p; p = strstr(p + 1, "!/")) {
        char *a = strndup(path, (size_t)(p - path));
        int yes = a && fx_archive_is_name(a);
        free(a);
        if (yes)
            return (size_t)(p - path);
    }
    return 0;
}

fx_status fx_reread_decode(fx_reread *r, const char *path, const fx_decode_limits *lim,
                           fx_image *img, fx_error *err)
{
    if (!fx_reread_archive_part(path)) {
        char *full = fx_path_from(r->cwd, path);
        fx_status st = full ? fx_decode_file(full, lim, img, err)
                            : fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
        free(full);
        return st;
    }
    uint8_t *b = NULL;
    size_t n = 0;
    fx_status st = fx_reread_member(r, path, &b, &n, err);
    if (st == FX_OK && (st = fx_decode_memory(b, n, lim, img, err)) != FX_OK)
        fx_error_prefix(err, "%s", path);
    free(b);
    return st;
}

fx_status fx_reread_member(fx_reread *r, const char *path, uint8_t **bytes, size_t *n,
                           fx_error *err)
{
    *bytes = NULL, *n = 0;
    size_t ap = fx_reread_archive_part(path);
    if (!ap)
        return fx_error_set(err, FX_ERR_USAGE, "%s: not an archive member", path);
    char *name = strndup(path, ap), *arch = name ? fx_path_from(r->cwd, name) : NULL;
    free(name);
    if (!arch)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
    const char *member = path + ap + 2;
    fx_status st = FX_OK;
    for (int pass = 0; pass < 2 && st == FX_OK; pass++) {
        if (!r->arch || strcmp(r->arch, arch) || pass == 1) {
            close_archive(r);
            if ((st = fx_archive_open(arch, &r->a, err)) != FX_OK)
                break;
            if (!(r->arch = strdup(arch))) {
                st = fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
        }
        fx_archive_member m;
        int rc;
        while ((rc = fx_archive_next(r->a, 0, &m, err)) == 1) {
            const char *sep = strstr(m.name, "!/");
            int hit = sep && !strcmp(sep + 2, member);
            free(m.name);
            if (hit && m.status == FX_OK) {
                *bytes = m.data, *n = m.size;
                free(arch);
                return FX_OK;
            }
            free(m.data);
            if (hit) { /* err holds why the member could not be read */
                st = m.status;
                break;
            }
        }
        if (rc < 0 && pass == 1)
            st = FX_ERR_FORMAT; /* err says why the archive stopped */
    }
    if (st == FX_OK)
        st = fx_error_set(err, FX_ERR_FORMAT, "%s: the member is no longer in its archive", path);
    free(arch);
    return st;
}
