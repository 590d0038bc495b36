/* Input sources: directories, list files, stdin lists, single files.
 * See include/fxscreen/source.h for the contract. */
#include "fxscreen/source.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/loader.h"
#include "fxscreen/sha256.h"
#include "pool/archive.h"

/* One directory on the walk stack: its sorted entry names and a cursor. */
typedef struct dir_frame {
    char *path;
    char **names;
    size_t n, i;
    dev_t dev;
    ino_t ino;
} dir_frame;

typedef enum spec_kind { SPEC_DIR, SPEC_LIST, SPEC_FILE } spec_kind;

struct fx_source {
    char **specs;
    int nspecs, cur; /* spec being read; cur == nspecs at the end */
    int cur_started; /* the current spec has been opened */
    FILE *stdin_fp;
    /* directory walk */
    dir_frame *stack;
    size_t depth, cap;
    /* list reader */
    FILE *list;
    int list_owned; /* fclose on finish (not for stdin) */
    char *list_dir; /* base for relative paths; NULL = cwd */
    int csv_col;    /* -1: plain list; else the `path` column */
    char *line;
    size_t line_cap;
    long line_no;
    /* archive being read (a spec or a list entry) */
    fx_archive *ar;
    int count_only; /* fx_source_list: member names without their bytes */
    /* Every item passed, yielded or not: the list's size and digest. */
    size_t seen;
    fx_sha256 digest;
    int ended;
    /* Shard filter: only items with index % shard_n == shard_i are yielded;
     * the others' bytes are never read (archive members are skipped). */
    size_t shard_i, shard_n;
    int skip_data; /* the next archive member's bytes are not wanted */
};

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

static int has_suffix_ci(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int is_list_name(const char *s)
{
    return has_suffix_ci(s, ".txt") || has_suffix_ci(s, ".lst") || has_suffix_ci(s, ".list") ||
           has_suffix_ci(s, ".csv");
}

static spec_kind classify(const char *spec)
{
    struct stat st;
    if (strcmp(spec, "-") == 0)
        return SPEC_LIST;
    if (stat(spec, &st) == 0 && S_ISDIR(st.st_mode))
        return SPEC_DIR;
    return is_list_name(spec) ? SPEC_LIST : SPEC_FILE;
}

static void item_set(fx_source_item *it, char *path, fx_status st, const char *fmt, const char *a,
                     const char *b)
{
    it->path = path;
    it->status = st;
    it->error[0] = '\0';
    if (fmt)
        snprintf(it->error, sizeof it->error, fmt, a, b);
}

/* ---- directory walk ------------------------------------------------------ */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void frame_free(dir_frame *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Read and sort dir's entry names. Returns 0 or an errno value. */
static int read_names(const char *dir, char ***names, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno;
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", and hidden files (e.g. macOS "._x.png") */
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                rc = ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        if (!(v[n] = xstrdup(e->d_name))) {
            rc = ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    qsort(v, n, sizeof *v, cmp_names);
    *names = v;
    *count = n;
    return 0;
}

/* Push dir onto the stack; on failure fill it with the error. Takes path. */
static int push_dir(fx_source *s, char *path, const struct stat *st, fx_source_item *it)
{
    for (size_t k = 0; k < s->depth; k++) {
        if (s->stack[k].dev == st->st_dev && s->stack[k].ino == st->st_ino) {
            item_set(it, path, FX_ERR_IO, "symlink loop: directory already visited as %s%s",
                     s->stack[k].path, "");
            return 1;
        }
    }
    if (s->depth == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        dir_frame *ns = realloc(s->stack, nc * sizeof *ns);
        if (!ns) {
            item_set(it, path, FX_ERR_NOMEM, "out of memory walking the directory%s%s", "", "");
            return 1;
        }
        s->stack = ns;
        s->cap = nc;
    }
    dir_frame f = {.path = path, .dev = st->st_dev, .ino = st->st_ino};
    int e = read_names(path, &f.names, &f.n);
    if (e) {
        item_set(it, path, FX_ERR_IO, "cannot read directory: %s%s", strerror(e), "");
        return 1;
    }
    s->stack[s->depth++] = f;
    return 0;
}

/* Advance the walk: 1 with an item, 0 when the tree is exhausted. */
static int walk_next(fx_source *s, fx_source_item *it)
{
    while (s->depth > 0) {
        dir_frame *f = &s->stack[s->depth - 1];
        if (f->i == f->n) {
            frame_free(f);
            s->depth--;
            continue;
        }
        char *p = path_join(f->path, f->names[f->i++]);
        if (!p) {
            item_set(it, xstrdup(f->path), FX_ERR_NOMEM, "out of memory%s%s", "", "");
            return 1;
        }
        struct stat st;
        if (stat(p, &st) != 0) {
            /* A dangling symlink with an image suffix is still an input. */
            if (fx_loader_suffix_known(p)) {
                item_set(it, p, FX_ERR_IO, "cannot stat: %s%s", strerror(errno), "");
                return 1;
            }
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (push_dir(s, p, &st, it))
                return 1;
            continue;
        }
        if (fx_loader_suffix_known(p) ||
            (S_ISREG(st.st_mode) && fx_path_no_extension(p) && fx_loader_sniff_file(p))) {
            item_set(it, p, FX_OK, NULL, NULL, NULL);
            return 1;
        }
        free(p);
    }
    return 0;
}

/* ---- list files ---------------------------------------------------------- */

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* Open the list behind spec; detects CSV by a header containing "path". */
static fx_status open_list(fx_source *s, const char *spec, fx_error *err)
{
    if (strcmp(spec, "-") == 0) {
        s->list = s->stdin_fp;
        s->list_owned = 0;
        s->list_dir = NULL;
    } else {
        s->list = fopen(spec, "r");
        if (!s->list)
            return fx_error_set(err, FX_ERR_USAGE, "%s: cannot open list file: %s", spec,
                                strerror(errno));
        s->list_owned = 1;
        const char *slash = strrchr(spec, '/');
        s->list_dir = slash ? strndup(spec, (size_t)(slash - spec + 1)) : NULL;
    }
    s->csv_col = -1;
    s->line_no = 0;
    int csv = has_suffix_ci(spec, ".csv");
    long pos = ftell(s->list);
    if (getline(&s->line, &s->line_cap, s->list) < 0)
        return FX_OK; /* empty list */
    s->line_no = 1;
    chomp(s->line);
    if (!csv && strchr(s->line, ',') != NULL)
        csv = 1; /* stdin or .txt that is really CSV */
    if (!csv) {
        /* Plain list: re-read the first line as a path. */
        if (pos >= 0 && fseek(s->list, pos, SEEK_SET) == 0)
            s->line_no = 0;
        else
            s->line_no = -1; /* unseekable (stdin): first line kept in s->line */
        return FX_OK;
    }
    char *fields[256];
    int nf = fx_csv_split(s->line, fields, 256);
    for (int k = 0; k < nf; k++)
        if (strcmp(fields[k], "path") == 0)
            s->csv_col = k;
    if (s->csv_col < 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: CSV list has no 'path' column in its header line; name the "
                            "image column 'path'",
                            strcmp(spec, "-") == 0 ? "stdin" : spec);
    return FX_OK;
}

static void close_list(fx_source *s)
{
    if (s->list && s->list_owned)
        fclose(s->list);
    s->list = NULL;
    free(s->list_dir);
    s->list_dir = NULL;
}

static int list_next(fx_source *s, fx_source_item *it)
{
    for (;;) {
        if (s->line_no == -1) {
            s->line_no = 1; /* first line of an unseekable plain list, already read */
        } else {
            if (getline(&s->line, &s->line_cap, s->list) < 0)
                return 0;
            s->line_no++;
            chomp(s->line);
        }
        char *p = s->line;
        if (s->csv_col >= 0) {
            char *fields[256];
            int nf = fx_csv_split(s->line, fields, 256);
            if (nf == 1 && fields[0][0] == '\0')
                continue;
            p = s->csv_col < nf ? fields[s->csv_col] : (char *)"";
        } else {
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == '#')
                continue;
            size_t n = strlen(p);
            while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                p[--n] = '\0';
        }
        if (*p == '\0') {
            if (s->csv_col >= 0) {
                char where[64];
                snprintf(where, sizeof where, "line %ld", s->line_no);
                item_set(it, xstrdup(where), FX_ERR_FORMAT, "list %s has an empty path%s", where,
                         "");
                return 1;
            }
            continue;
        }
        char *full = (p[0] != '/' && s->list_dir) ? path_join(s->list_dir, p) : xstrdup(p);
        item_set(it, full, FX_OK, NULL, NULL, NULL);
        return 1;
    }
}

/* ---- the source ---------------------------------------------------------- */

fx_status fx_source_create(const char *const *specs, int n, FILE *stdin_fp, fx_source **out,
                           fx_error *err)
{
    *out = NULL;
    if (n <= 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "no input given; name a directory, a list file "
                            "or '-' for a list on stdin");
    int dashes = 0;
    for (int i = 0; i < n; i++) {
        dashes += strcmp(specs[i], "-") == 0;
        spec_kind k = classify(specs[i]);
        if (k == SPEC_LIST && strcmp(specs[i], "-") != 0) {
            FILE *f = fopen(specs[i], "r");
            if (!f)
                return fx_error_set(err, FX_ERR_USAGE, "%s: cannot open list file: %s", specs[i],
                                    strerror(errno));
            fclose(f);
        }
    }
    if (dashes > 1)
        return fx_error_set(err, FX_ERR_USAGE, "'-' (stdin) given %d times; give it once", dashes);
    fx_source *s = calloc(1, sizeof *s);
    if (!s || !(s->specs = calloc((size_t)n, sizeof *s->specs)))
        goto nomem;
    s->nspecs = n;
    s->stdin_fp = stdin_fp;
    fx_sha256_init(&s->digest);
    for (int i = 0; i < n; i++)
        if (!(s->specs[i] = xstrdup(specs[i])))
            goto nomem;
    *out = s;
    return FX_OK;
nomem:
    fx_source_destroy(s);
    return fx_error_set(err, FX_ERR_NOMEM, "out of memory creating the input source");
}

/* Start spec s->cur. Returns 1 if it yielded an item right away. */
static int start_spec(fx_source *s, fx_source_item *it)
{
    const char *spec = s->specs[s->cur];
    s->cur_started = 1;
    switch (classify(spec)) {
    case SPEC_DIR: {
        struct stat st;
        char *p = xstrdup(spec);
        if (stat(spec, &st) != 0) {
            item_set(it, p, FX_ERR_IO, "cannot stat: %s%s", strerror(errno), "");
            return 1;
        }
        return push_dir(s, p, &st, it);
    }
    case SPEC_LIST: {
        fx_error e = {0};
        if (open_list(s, spec, &e) != FX_OK) {
            item_set(it, xstrdup(spec), e.code, "%s%s", e.msg, "");
            close_list(s);
            return 1;
        }
        return 0;
    }
    case SPEC_FILE:
        item_set(it, xstrdup(spec), FX_OK, NULL, NULL, NULL);
        s->cur_started = 2; /* single file: done after this item */
        return 1;
    }
    return 0;
}

/* The next member of the open archive: 1 (an item), or 0 when it ended
 * (closed). */
static int archive_item(fx_source *s, fx_source_item *it)
{
    fx_archive_member m;
    fx_error e = {0};
    int r = fx_archive_next(s->ar, s->skip_data, &m, &e);
    if (r == 1) {
        item_set(it, m.name, m.status, m.status != FX_OK ? "%s%s" : NULL, e.msg, "");
        it->data = m.data;
        it->size = m.size;
        return 1;
    }
    fx_archive_close(s->ar);
    s->ar = NULL;
    if (r < 0) { /* damaged past reading: one error row for the rest */
        item_set(it, xstrdup("(archive)"), e.code, "%s%s", e.msg, "");
        return 1;
    }
    return 0;
}

/* An item naming an archive opens it instead of being yielded: 1 if it
 * did (the item is consumed, or replaced by an error). */
static int open_archive_item(fx_source *s, fx_source_item *it)
{
    if (it->status != FX_OK || !it->path || !fx_archive_is_name(it->path))
        return 0;
    fx_error e = {0};
    if (fx_archive_open(it->path, &s->ar, &e) != FX_OK) {
        it->status = e.code;
        snprintf(it->error, sizeof it->error, "%s", e.msg);
        return 0; /* yielded as an error row */
    }
    free(it->path);
    memset(it, 0, sizeof *it);
    return 1;
}

/* The next item of the whole list, whatever the shard. */
static int next_any(fx_source *s, fx_source_item *it)
{
    memset(it, 0, sizeof *it);
    while (s->cur < s->nspecs) {
        if (s->ar) {
            if (archive_item(s, it))
                return 1;
            continue;
        }
        if (!s->cur_started) {
            if (start_spec(s, it)) {
                if (open_archive_item(s, it))
                    continue;
                return 1;
            }
            continue;
        } else if (s->cur_started == 1) {
            if (s->depth > 0 && walk_next(s, it))
                return 1;
            if (s->list && list_next(s, it)) {
                if (open_archive_item(s, it))
                    continue;
                return 1;
            }
        }
        close_list(s);
        s->cur++;
        s->cur_started = 0;
    }
    return 0;
}

int fx_source_next(fx_source *s, fx_source_item *it)
{
    for (;;) {
        int mine = s->shard_n <= 1 || s->seen % s->shard_n == s->shard_i;
        s->skip_data = s->count_only || !mine;
        if (!next_any(s, it)) {
            s->ended = 1;
            return 0;
        }
        /* Each path with its NUL, so that ("ab","c") and ("a","bc") differ. */
        const char *p = it->path ? it->path : "";
        fx_sha256_update(&s->digest, p, strlen(p) + 1);
        it->index = s->seen++;
        if (mine)
            return 1;
        free(it->path);
        free(it->data);
        memset(it, 0, sizeof *it);
    }
}

void fx_source_set_shard(fx_source *s, size_t index, size_t count)
{
    s->shard_i = count > 1 ? index % count : 0;
    s->shard_n = count > 1 ? count : 1;
}

int fx_source_digest(const fx_source *s, size_t *count, char hex[FX_SHA256_HEX])
{
    fx_sha256 c = s->digest; /* finalising a copy leaves the walk's running */
    uint8_t d[FX_SHA256_BYTES];
    fx_sha256_final(&c, d);
    fx_sha256_hex(d, hex);
    *count = s->seen;
    return s->ended;
}

fx_status fx_source_list(const char *const *specs, int n, size_t *count, char hex[FX_SHA256_HEX],
                         fx_error *err)
{
    for (int i = 0; i < n; i++)
        if (strcmp(specs[i], "-") == 0)
            return fx_error_set(err, FX_ERR_USAGE,
                                "the list read from stdin ('-') cannot be walked twice; "
                                "pass it as a list file");
    fx_source *s;
    fx_status st = fx_source_create(specs, n, NULL, &s, err);
    if (st != FX_OK)
        return st;
    fx_source_item it;
    s->count_only = 1;
    while (fx_source_next(s, &it)) {
        free(it.path);
        free(it.data);
    }
    fx_source_digest(s, count, hex);
    fx_source_destroy(s);
    return FX_OK;
}

long fx_source_count(const char *const *specs, int n)
{
    size_t count;
    char hex[FX_SHA256_HEX];
    return fx_source_list(specs, n, &count, hex, NULL) == FX_OK ? (long)count : -1;
}

void fx_source_destroy(fx_source *s)
{
    if (!s)
        return;
    fx_archive_close(s->ar);
    while (s->depth > 0)
        frame_free(&s->stack[--s->depth]);
    free(s->stack);
    close_list(s);
    free(s->line);
    if (s->specs)
        for (int i = 0; i < s->nspecs; i++)
            free(s->specs[i]);
    free(s->specs);
    free(s);
}
