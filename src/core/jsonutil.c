/* Small cJSON helpers (src/core/jsonutil.h). */
#include "core/jsonutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int floats_at(const cJSON *v, float *out, size_t cap, size_t *n)
{
    if (cJSON_IsNumber(v)) {
        if (*n >= cap)
            return -1;
        out[(*n)++] = (float)v->valuedouble;
        return 0;
    }
    if (!cJSON_IsArray(v))
        return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (floats_at(e, out, cap, n))
            return -1;
    }
    return 0;
}

int fx_json_floats(const cJSON *v, float *out, size_t cap, size_t *n)
{
    *n = 0;
    return floats_at(v, out, cap, n);
}

fx_status fx_json_save(const cJSON *o, const char *path, fx_error *err)
{
    char *text = o ? cJSON_Print(o) : NULL;
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!text || !tmp) {
        free(text), free(tmp);
        return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int bad = !f || fputs(text, f) < 0 || fputc('\n', f) == EOF;
    if (f) {
        bad |= fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
    }
    int e = errno;
    if (!bad && rename(tmp, path) != 0)
        bad = 1, e = errno;
    free(text);
    if (bad) {
        remove(tmp);
        free(tmp);
        return fx_error_set(err, FX_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    return FX_OK;
}
