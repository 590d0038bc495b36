/* File-system and CSV helpers: see include/fxscreen/fsutil.h. */
#include "fxscreen/fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void fx_csv_field(FILE *f, const char *s)
{
    if (!s)
        s = "";
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int fx_csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *r = line, *w = line;
    while (n < max) {
        fields[n++] = w;
        if (*r == '"') {
            r++;
            for (;;) {
                if (*r == '\0')
                    break;
                if (*r == '"' && r[1] == '"') {
                    *w++ = '"';
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
        }
        while (*r && *r != ',')
            *w++ = *r++;
        if (*r == ',') {
            *w++ = '\0';
            r++;
            continue;
        }
        *w = '\0';
        break;
    }
    return n;
}

/* Make room for n + 2 bytes in *buf. Returns 0, or -1 when out of memory. */
static int csv_reserve(char **buf, size_t *cap, size_t n)
{
    if (*buf && n + 2 <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 256;
    while (nc < n + 2)
        nc *= 2;
    char *nb = realloc(*buf, nc);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

int fx_csv_read_record(FILE *f, char **buf, size_t *cap, long *lines)
{
    size_t n = 0;
    int inq = 0, any = 0, c = EOF;
    if (csv_reserve(buf, cap, 0) != 0)
        return -1;
    while ((c = getc_unlocked(f)) != EOF) {
        any = 1;
        if (c == '"')
            inq = !inq; /* "" inside quotes toggles twice: parity is the state */
        if (c == '\n') {
            if (lines)
                (*lines)++;
            if (!inq)
                break;
        }
        if (csv_reserve(buf, cap, n) != 0)
            return -1;
        (*buf)[n++] = (char)c;
    }
    if (ferror(f))
        return -1;
    if (!any)
        return 0;
    if (c == EOF && lines)
        (*lines)++; /* last line without a newline */
    if (n > 0 && (*buf)[n - 1] == '\r')
        n--;
    (*buf)[n] = '\0';
    return 1;
}

fx_status fx_mkdirs(const char *path, fx_error *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return fx_error_set(err, FX_ERR_USAGE, "output directory name is empty or too long");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return fx_error_set(err, FX_ERR_IO, "%s: cannot create directory: %s", buf,
                                    strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return fx_error_set(err, FX_ERR_IO, "%s: exists and is not a directory", path);
    return FX_OK;
}

double fx_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int fx_path_no_extension(const char *path)
{
    const char *b = strrchr(path, '/');
    const char *dot = strrchr(b ? b + 1 : path, '.');
    if (!dot)
        return 1;
    for (const char *q = dot + 1; *q; q++)
        if (*q < '0' || *q > '9')
            return 0;
    return 1;
}

char *fx_path_from(const char *dir, const char *path)
{
    if (path[0] == '/' || !dir || !dir[0])
        return strdup(path);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, path);
    return s;
}
