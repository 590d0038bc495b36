/* Shards of a run's input (include/fxscreen/shard.h). */
#include "fxscreen/shard.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole decimal number in [lo, hi]; 0 when s is not one. */
static int parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (!s || !*s)
        return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* An environment variable as a number; FX_ERR_USAGE naming it otherwise. */
static fx_status env_num(const char *name, const char *what, long lo, long hi, long *out,
                         fx_error *err)
{
    const char *v = getenv(name);
    if (!v)
        return fx_error_set(err, FX_ERR_USAGE, "--shard %s: %s is not set (%s)", what, name,
                            !strcmp(what, "slurm") ? "submit with sbatch --array=0-N-1"
                                                   : "run in an Indexed Job, or give --shard I/N");
    if (!parse_num(v, lo, hi, out))
        return fx_error_set(err, FX_ERR_USAGE, "--shard %s: %s='%s' is not a number in %ld..%ld",
                            what, name, v, lo, hi);
    return FX_OK;
}

fx_status fx_shard_parse(const char *spec, int shards, fx_shard *out, char *how, size_t how_n,
                         fx_error *err)
{
    long i = 0, n = 0, min = 0;
    char buf[64] = "";
    fx_status st = FX_OK;
    memset(out, 0, sizeof *out);
    if (shards < 0 || shards > FX_SHARD_MAX)
        return fx_error_set(err, FX_ERR_USAGE, "--shards %d: give 1..%d", shards, FX_SHARD_MAX);
    if (!strcmp(spec, "slurm")) {
        if ((st = env_num("SLURM_ARRAY_TASK_COUNT", "slurm", 1, FX_SHARD_MAX, &n, err)) != FX_OK ||
            (st = env_num("SLURM_ARRAY_TASK_ID", "slurm", 0, INT_MAX, &i, err)) != FX_OK)
            return st;
        const char *m = getenv("SLURM_ARRAY_TASK_MIN");
        if (m && !parse_num(m, 0, INT_MAX, &min))
            return fx_error_set(err, FX_ERR_USAGE,
                                "--shard slurm: SLURM_ARRAY_TASK_MIN='%s' is not a number", m);
        i -= min;
        if (i < 0 || i >= n)
            return fx_error_set(err, FX_ERR_USAGE,
                                "--shard slurm: array task %s is not one of %ld consecutive "
                                "tasks from %ld; submit with --array=0-%ld (no step)",
                                getenv("SLURM_ARRAY_TASK_ID"), n, min, n - 1);
        const char *job = getenv("SLURM_ARRAY_JOB_ID");
        snprintf(buf, sizeof buf, "Slurm array job %s task %s", job ? job : "?",
                 getenv("SLURM_ARRAY_TASK_ID"));
    } else if (!strcmp(spec, "k8s")) {
        if (shards < 1)
            return fx_error_set(err, FX_ERR_USAGE,
                                "--shard k8s needs --shards N (the Indexed Job's completions)");
        n = shards;
        if ((st = env_num("JOB_COMPLETION_INDEX", "k8s", 0, n - 1, &i, err)) != FX_OK)
            return st;
        snprintf(buf, sizeof buf, "Kubernetes completion index %ld", i);
    } else {
        const char *slash = strchr(spec, '/');
        char first[32];
        size_t len = slash ? (size_t)(slash - spec) : 0;
        if (!slash || len >= sizeof first)
            return fx_error_set(err, FX_ERR_USAGE,
                                "--shard '%s': give I/N (0 <= I < N), slurm or k8s", spec);
        memcpy(first, spec, len);
        first[len] = '\0';
        if (!parse_num(slash + 1, 1, FX_SHARD_MAX, &n) || !parse_num(first, 0, n - 1, &i))
            return fx_error_set(err, FX_ERR_USAGE,
                                "--shard '%s': give I/N with 0 <= I < N <= %d (shards count "
                                "from 0)",
                                spec, FX_SHARD_MAX);
        snprintf(buf, sizeof buf, "--shard %s", spec);
    }
    if (shards && shards != n)
        return fx_error_set(err, FX_ERR_USAGE,
                            "--shards %d disagrees with --shard %s (%ld shards); give one of them",
                            shards, spec, n);
    out->index = (int)i;
    out->count = (int)n;
    if (how)
        snprintf(how, how_n, "%s", buf);
    return FX_OK;
}

size_t fx_shard_rows(fx_shard s, size_t inputs)
{
    if (s.count <= 1)
        return inputs;
    size_t n = (size_t)s.count, i = (size_t)s.index;
    return inputs / n + (i < inputs % n);
}

size_t fx_shard_input(fx_shard s, size_t r)
{
    return s.count <= 1 ? r : (size_t)s.index + (size_t)s.count * r;
}
