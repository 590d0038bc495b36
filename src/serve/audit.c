/* serve's audit trail: one JSON line per answered request, appended and
 * fsync'd before the answer is queued, each carrying the SHA-256 of the
 * line before it ("prev"; 64 zeros for the first), so an edited or removed
 * line breaks the chain that `fxscreen audit verify` walks.  Never pixels,
 * never a token: who (the token's name and role), from where, which route,
 * the status, the image's SHA-256 and the result.  SIGHUP reopens the file
 * (log rotation); the chain continues from the last line written. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/sha256.h"
#include "serve/serve_internal.h"

struct sv_audit {
    pthread_mutex_t mu;
    char *path;
    int fd;
    char prev[FX_SHA256_HEX]; /* hash of the last line written */
};

/* The hash of the last line of the file at fd (64 zeros when empty). */
static void last_hash(int fd, char prev[FX_SHA256_HEX])
{
    memset(prev, '0', 64);
    prev[64] = 0;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end <= 0)
        return;
    size_t n = end > 65536 ? 65536 : (size_t)end;
    char *buf = malloc(n + 1);
    if (!buf)
        return;
    if (pread(fd, buf, n, end - (off_t)n) == (ssize_t)n) {
        size_t e = n;
        while (e > 0 && buf[e - 1] == '\n')
            e--;
        size_t s = e;
        while (s > 0 && buf[s - 1] != '\n')
            s--;
        uint8_t d[FX_SHA256_BYTES];
        fx_sha256_buf(buf + s, e - s, d);
        fx_sha256_hex(d, prev);
    }
    free(buf);
}

static fx_status audit_open(sv_audit *a, fx_error *err)
{
    int fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    int rd = open(a->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || rd < 0) {
        if (fd >= 0)
            close(fd);
        if (rd >= 0)
            close(rd);
        return fx_error_set(err, FX_ERR_USAGE, "serve: --audit %s: cannot open: %s", a->path,
                            strerror(errno));
    }
    last_hash(rd, a->prev);
    close(rd);
    a->fd = fd;
    return FX_OK;
}

fx_status sv_audit_open(const char *path, sv_audit **out, fx_error *err)
{
    *out = NULL;
    sv_audit *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&a->mu, NULL);
    fx_status st = audit_open(a, err);
    if (st != FX_OK) {
        sv_audit_close(a);
        return st;
    }
    *out = a;
    return FX_OK;
}

void sv_audit_close(sv_audit *a)
{
    if (!a)
        return;
    if (a->fd > 0)
        close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

int sv_audit_reopen(sv_audit *a)
{
    pthread_mutex_lock(&a->mu);
    char keep[FX_SHA256_HEX];
    memcpy(keep, a->prev, sizeof keep);
    int old = a->fd;
    fx_error e = {0};
    int rc = audit_open(a, &e) == FX_OK ? 0 : -1;
    if (rc == 0) {
        close(old);
        /* A fresh file after rotation: the chain goes on from the last line
         * written to the old one (verify takes --prev HASH for it). */
        memcpy(a->prev, keep, sizeof keep);
    } else
        a->fd = old;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int sv_audit_write(sv_audit *a, cJSON *entry)
{
    char when[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof when - k, ".%03ldZ", ts.tv_nsec / 1000000);
    cJSON_AddStringToObject(entry, "time", when);
    pthread_mutex_lock(&a->mu);
    cJSON_AddStringToObject(entry, "prev", a->prev);
    char *line = cJSON_PrintUnformatted(entry);
    int rc = -1;
    if (line) {
        size_t n = strlen(line);
        line[n] = '\n'; /* written with its newline, hashed without */
        if (write(a->fd, line, n + 1) == (ssize_t)(n + 1) && fsync(a->fd) == 0) {
            uint8_t d[FX_SHA256_BYTES];
            fx_sha256_buf(line, n, d);
            fx_sha256_hex(d, a->prev);
            rc = 0;
        }
        line[n] = 0;
        free(line);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

char *sv_audit_tail(sv_audit *a, int max_lines)
{
    pthread_mutex_lock(&a->mu);
    int rd = open(a->path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    off_t end = rd >= 0 ? lseek(rd, 0, SEEK_END) : -1;
    size_t n = end > 0 ? (end > (1 << 20) ? (1 << 20) : (size_t)end) : 0;
    if (rd >= 0 && (buf = malloc(n + 1)) && pread(rd, buf, n, end - (off_t)n) == (ssize_t)n) {
        buf[n] = 0;
        /* Back from the end: the start of the max_lines-th last line. */
        size_t s = n > 0 && buf[n - 1] == '\n' ? n - 1 : n;
        int lines = 0;
        while (s > 0) {
            if (buf[s - 1] == '\n' && ++lines == max_lines)
                break;
            s--;
        }
        memmove(buf, buf + s, n - s + 1);
    }
    if (rd >= 0)
        close(rd);
    pthread_mutex_unlock(&a->mu);
    return buf;
}

int fx_audit_verify(const char *path, const char *first_prev, FILE *report)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(report, "audit verify: %s: cannot open: %s\n", path, strerror(errno));
        return 2;
    }
    char prev[FX_SHA256_HEX];
    snprintf(prev, sizeof prev, "%s", first_prev ? first_prev : "");
    if (!first_prev)
        memset(prev, '0', 64), prev[64] = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long no = 0;
    int bad = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        no++;
        if (line[len - 1] == '\n')
            line[--len] = 0;
        cJSON *j = cJSON_Parse(line);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prev");
        if (!j || !cJSON_IsString(p)) {
            fprintf(report, "audit verify: %s: line %ld is not an audit entry (edited?)\n", path,
                    no);
            bad = 1;
        } else if (strcmp(p->valuestring, prev)) {
            fprintf(report,
                    "audit verify: %s: line %ld does not follow line %ld (a line before it was "
                    "edited, removed or inserted)\n",
                    path, no, no - 1);
            bad = 1;
        }
        cJSON_Delete(j);
        uint8_t d[FX_SHA256_BYTES];
        fx_sha256_buf(line, (size_t)len, d);
        fx_sha256_hex(d, prev);
        if (bad)
            break;
    }
    free(line);
    fclose(f);
    if (!bad)
        fprintf(report, "audit verify: %s: %ld lines, chain intact (last %.16s...)\n", path, no,
                prev);
    return bad;
}
