/* Small cJSON helpers (src/core/jsonutil.h). */
#include "core/jsonutil.h"

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
