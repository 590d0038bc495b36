/* Sharded runs on Slurm (include/fxscreen/slurm.h): the two batch scripts,
 * their submission through sbatch, and the progress table. */
#include "fxscreen/slurm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"
#include "fxscreen/loader.h"
#include "fxscreen/merge.h"
#include "fxscreen/shard.h"
#include "fxscreen/source.h"
#include "job/run_internal.h"

/* s as one POSIX shell word: '...' with each ' written '\''. */
static void sh_word(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    fputc('\'', f);
}

/* Digits of the shard directories' names: 4, or more for larger arrays. */
static int shard_width(int n)
{
    int w = 1;
    for (int v = n - 1; v >= 10; v /= 10)
        w++;
    return w < 4 ? 4 : w;
}

/* A value written after "#SBATCH --opt=": sbatch splits those lines on
 * white space, so one is refused rather than silently cut. */
static fx_status check_value(const char *opt, const char *v, fx_error *err)
{
    if (!*v || strpbrk(v, " \t\r\n'\""))
        return fx_error_set(err, FX_ERR_USAGE,
                            "slurm submit: %s '%s': give one word without spaces or quotes", opt,
                            v);
    return FX_OK;
}

/* The #SBATCH lines both scripts share. */
static void common_lines(FILE *f, const fx_slurm_submit *s, const char *cwd)
{
    fputs("#SBATCH --chdir=", f);
    fputs(cwd, f);
    fputs("\n#SBATCH --ntasks=1\n", f);
    if (s->partition)
        fprintf(f, "#SBATCH --partition=%s\n", s->partition);
    if (s->time)
        fprintf(f, "#SBATCH --time=%s\n", s->time);
    if (s->nsbatch_args) {
        fputs("# submitted with these sbatch options too (on its command line):", f);
        for (int i = 0; i < s->nsbatch_args; i++)
            fputc(' ', f), sh_word(f, s->sbatch_args[i]);
        fputc('\n', f);
    }
}

static fx_status write_script(const char *path, const char *text, size_t n, fx_error *err)
{
    FILE *f = fopen(path, "w");
    int bad = !f || fwrite(text, 1, n, f) != n;
    if (f)
        bad |= fclose(f) != 0;
    if (bad || chmod(path, 0755) != 0)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return FX_OK;
}

/* OUT/slurm/shard.sbatch and merge.sbatch. */
static fx_status write_scripts(const fx_slurm_submit *s, const char *fx, const char *out,
                               const char *cwd, const char *model, fx_error *err)
{
    char *text = NULL, path[PATH_MAX];
    size_t n = 0;
    int w = shard_width(s->shards);
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return fx_error_set(err, FX_ERR_NOMEM, "slurm submit: out of memory");
    fprintf(f,
            "#!/bin/sh\n"
            "# One shard of a sharded `fxscreen run` (written by `fxscreen slurm submit`).\n"
            "# Array task i processes inputs i, i+N, i+2N, ... into OUT/shards/NNNN; a\n"
            "# requeued task finds its run.json there and resumes where it stopped.\n"
            "#SBATCH --job-name=fxscreen\n"
            "#SBATCH --array=0-%d\n"
            "#SBATCH --requeue\n"
            "#SBATCH --open-mode=append\n"
            "#SBATCH --output=%s/slurm/logs/shard-%%a.out\n",
            s->shards - 1, out);
    if (s->gpus_per_task > 0)
        fprintf(f, "#SBATCH --gpus-per-task=%d\n", s->gpus_per_task);
    if (s->cpus_per_task > 0)
        fprintf(f, "#SBATCH --cpus-per-task=%d\n", s->cpus_per_task);
    common_lines(f, s, cwd);
    fprintf(f,
            "set -eu\n"
            "shard=$(printf '%%0%dd' \"$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))\")\n"
            "out=",
            w);
    sh_word(f, out);
    fputs("/shards/$shard\n"
          "echo \"fxscreen: array job ${SLURM_ARRAY_JOB_ID:-?} task ${SLURM_ARRAY_TASK_ID} "
          "on $(hostname), restart ${SLURM_RESTART_COUNT:-0}, "
          "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}\"\n"
          "if [ -f \"$out/run.json\" ]; then\n    exec ",
          f);
    sh_word(f, fx);
    fputs(" run --quiet --resume \"$out\"\nfi\nexec ", f);
    sh_word(f, fx);
    fputs(" run --quiet --shard slurm --model ", f);
    sh_word(f, model);
    fputs(" --out \"$out\"", f);
    for (int i = 0; i < s->nrun_args; i++)
        fputc(' ', f), sh_word(f, s->run_args[i]);
    fputs(" --", f);
    for (int i = 0; i < s->nsources; i++)
        fputc(' ', f), sh_word(f, s->sources[i]);
    fputc('\n', f);
    fclose(f);
    snprintf(path, sizeof path, "%s/slurm/shard.sbatch", out);
    fx_status st = text ? write_script(path, text, n, err)
                        : fx_error_set(err, FX_ERR_NOMEM, "slurm submit: out of memory");
    free(text);
    if (st != FX_OK)
        return st;
    text = NULL, n = 0;
    if (!(f = open_memstream(&text, &n)))
        return fx_error_set(err, FX_ERR_NOMEM, "slurm submit: out of memory");
    fprintf(f,
            "#!/bin/sh\n"
            "# Merges the shards of OUT into OUT/results.h5 and OUT/summary.csv once every\n"
            "# array task has ended (--dependency=afterany:ARRAY); shards whose requeued\n"
            "# tasks are still queued make it submit itself again after them.\n"
            "#SBATCH --job-name=fxscreen-merge\n"
            "#SBATCH --output=%s/slurm/logs/merge.out\n",
            out);
    common_lines(f, s, cwd);
    fputs("exec ", f);
    sh_word(f, fx);
    fputs(" slurm merge ", f);
    sh_word(f, out);
    fputc('\n', f);
    fclose(f);
    snprintf(path, sizeof path, "%s/slurm/merge.sbatch", out);
    st = text ? write_script(path, text, n, err)
              : fx_error_set(err, FX_ERR_NOMEM, "slurm submit: out of memory");
    free(text);
    return st;
}

/* Runs argv, its stdout and stderr into out (NUL-terminated, cut to n);
 * the exit status, or -1 when it could not be started. */
static int run_capture(char *const argv[], char *out, size_t n)
{
    int fd[2];
    out[0] = '\0';
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t used = 0;
    ssize_t r;
    char sink[512];
    while ((r = read(fd[0], used + 1 < n ? out + used : sink,
                     used + 1 < n ? n - 1 - used : sizeof sink)) > 0 ||
           (r < 0 && errno == EINTR))
        if (r > 0 && used + 1 < n)
            used += (size_t)r;
    out[used] = '\0';
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* sbatch --parsable [extra...] [dep] SCRIPT: the job id into id. */
static fx_status sbatch(const char *const *extra, int nextra, const char *dep, const char *script,
                        char *id, size_t idn, fx_error *err)
{
    char **argv = calloc((size_t)nextra + 5, sizeof *argv), out[2048];
    if (!argv)
        return fx_error_set(err, FX_ERR_NOMEM, "slurm submit: out of memory");
    int k = 0;
    argv[k++] = "sbatch";
    argv[k++] = "--parsable";
    for (int i = 0; i < nextra; i++)
        argv[k++] = (char *)extra[i];
    if (dep)
        argv[k++] = (char *)dep;
    argv[k++] = (char *)script;
    int rc = run_capture(argv, out, sizeof out);
    free(argv);
    size_t len = strcspn(out, ";\n"); /* "JOBID" or "JOBID;CLUSTER" */
    for (char *c = out; *c; c++)      /* sbatch's message on one line */
        if (*c == '\n')
            *c = *(c + 1) ? ' ' : '\0';
    if (rc == 127 || rc < 0)
        return fx_error_set(err, FX_ERR_IO,
                            "slurm submit: cannot run sbatch (is Slurm's client installed and "
                            "on PATH?); the scripts are in place: %s",
                            script);
    if (rc != 0 || len == 0 || len >= idn || strspn(out, "0123456789") != len)
        return fx_error_set(err, FX_ERR_IO, "slurm submit: sbatch %s refused (exit %d): %s", script,
                            rc, out);
    memcpy(id, out, len);
    id[len] = '\0';
    return FX_OK;
}

/* OUT/slurm/jobs.json, through a temporary file renamed into place. */
static fx_status jobs_save(const char *out_dir, const cJSON *o, fx_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/slurm/jobs.json", out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *text = cJSON_Print(o);
    FILE *f = text ? fopen(tmp, "w") : NULL;
    int bad = !f || fputs(text, f) < 0 || fputc('\n', f) == EOF;
    if (f)
        bad |= fclose(f) != 0;
    free(text);
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return fx_error_set(err, FX_ERR_IO, "%s: cannot write", path);
    }
    return FX_OK;
}

/* What jobs.json says; o owned (cJSON_Delete), the strings point into it. */
typedef struct jobs_rec {
    cJSON *o;
    const char *array, *merge;
    int shards;
    size_t inputs;
} jobs_rec;

static fx_status jobs_read(const char *out_dir, jobs_rec *j, fx_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/slurm/jobs.json", out_dir);
    uint8_t *raw = NULL;
    size_t n = 0;
    memset(j, 0, sizeof *j);
    if (fx_read_file(path, 1 << 20, &raw, &n, NULL) != FX_OK)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: cannot read (is %s the --out DIR of `fxscreen slurm submit`?)",
                            path, out_dir);
    j->o = cJSON_ParseWithLength((const char *)raw, n);
    free(raw);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j->o, "array_job"),
                *m = cJSON_GetObjectItemCaseSensitive(j->o, "merge_job"),
                *sh = cJSON_GetObjectItemCaseSensitive(j->o, "shards"),
                *in = cJSON_GetObjectItemCaseSensitive(j->o, "inputs");
    if (!cJSON_IsString(a) || !cJSON_IsString(m) || !cJSON_IsNumber(sh) || !cJSON_IsNumber(in) ||
        sh->valuedouble < 1 || sh->valuedouble > FX_SHARD_MAX || in->valuedouble < 0) {
        cJSON_Delete(j->o);
        j->o = NULL;
        return fx_error_set(err, FX_ERR_USAGE, "%s: not written by `fxscreen slurm submit`", path);
    }
    j->array = a->valuestring, j->merge = m->valuestring;
    j->shards = (int)sh->valuedouble;
    j->inputs = (size_t)in->valuedouble;
    return FX_OK;
}

static fx_status write_jobs(const char *out, const fx_slurm_submit *s, const fx_slurm_jobs *j,
                            const char *sha, fx_error *err)
{
    char path[PATH_MAX], when[32];
    fx_iso8601_now(when, sizeof when);
    snprintf(path, sizeof path, "%s/slurm/jobs.json", out);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "fxscreen_version", FX_VERSION);
    cJSON_AddStringToObject(o, "submitted", when);
    cJSON_AddStringToObject(o, "array_job", j->array_job);
    cJSON_AddStringToObject(o, "merge_job", j->merge_job);
    cJSON_AddNumberToObject(o, "shards", s->shards);
    cJSON_AddNumberToObject(o, "inputs", (double)j->inputs);
    cJSON_AddStringToObject(o, "inputs_sha256", sha);
    cJSON *args = cJSON_AddArrayToObject(o, "sbatch_args");
    for (int i = 0; i < s->nsbatch_args; i++)
        cJSON_AddItemToArray(args, cJSON_CreateString(s->sbatch_args[i]));
    fx_status st = jobs_save(out, o, err);
    cJSON_Delete(o);
    return st;
}

fx_status fx_slurm_submit_run(const fx_slurm_submit *s, fx_slurm_jobs *jobs, fx_error *err)
{
    char out[PATH_MAX], fx[PATH_MAX], model[PATH_MAX], cwd[PATH_MAX], path[PATH_MAX + 32];
    char sha[FX_SHA256_HEX];
    memset(jobs, 0, sizeof *jobs);
    if (s->shards < 1 || s->shards > FX_SHARD_MAX)
        return fx_error_set(err, FX_ERR_USAGE, "slurm submit: --shards %d: give 1..%d", s->shards,
                            FX_SHARD_MAX);
    if (s->gpus_per_task > 1)
        return fx_error_set(err, FX_ERR_USAGE,
                            "slurm submit: --gpus-per-task %d: a task runs one engine on one "
                            "GPU; ask for 1 and more --shards instead",
                            s->gpus_per_task);
    if ((s->partition && check_value("--partition", s->partition, err) != FX_OK) ||
        (s->time && check_value("--time", s->time, err) != FX_OK))
        return FX_ERR_USAGE;
    if (!realpath(s->fxscreen, fx))
        return fx_error_set(err, FX_ERR_USAGE, "slurm submit: cannot find the fxscreen binary %s",
                            s->fxscreen);
    if (!realpath(s->model, model))
        return fx_error_set(err, FX_ERR_USAGE, "slurm submit: --model %s: %s", s->model,
                            strerror(errno));
    if (!getcwd(cwd, sizeof cwd))
        return fx_error_set(err, FX_ERR_IO, "slurm submit: cannot read the working directory");
    if (strpbrk(cwd, "\n") || strpbrk(s->out_dir, "\n"))
        return fx_error_set(err, FX_ERR_USAGE, "slurm submit: a path with a newline");
    /* The list, once here: the sources must be readable from this node, and
     * the count says how the shards will split. */
    fx_status st = fx_source_list(s->sources, s->nsources, &jobs->inputs, sha, err);
    if (st != FX_OK) {
        fx_error_prefix(err, "slurm submit");
        return st;
    }
    if ((st = fx_mkdirs(s->out_dir, err)) != FX_OK)
        return st;
    if (!realpath(s->out_dir, out))
        return fx_error_set(err, FX_ERR_IO, "%s: %s", s->out_dir, strerror(errno));
    static const char *const taken[] = {"slurm/jobs.json", "results.h5", "shards", NULL};
    for (int k = 0; taken[k]; k++) {
        snprintf(path, sizeof path, "%s/%s", out, taken[k]);
        if (access(path, F_OK) == 0)
            return fx_error_set(err, FX_ERR_USAGE,
                                "slurm submit: %s exists: %s already holds a run (see `fxscreen "
                                "slurm status %s`); submit into a fresh --out DIR",
                                path, out, out);
    }
    snprintf(path, sizeof path, "%s/slurm/logs", out);
    if ((st = fx_mkdirs(path, err)) != FX_OK)
        return st;
    snprintf(path, sizeof path, "%s/shards", out);
    if ((st = fx_mkdirs(path, err)) != FX_OK)
        return st;
    if ((st = write_scripts(s, fx, out, cwd, model, err)) != FX_OK)
        return st;
    if (s->log)
        fprintf(s->log,
                "slurm submit: %zu inputs in %d shards of %zu or %zu; scripts in %s/slurm\n",
                jobs->inputs, s->shards, fx_shard_rows((fx_shard){0, s->shards}, jobs->inputs),
                fx_shard_rows((fx_shard){s->shards - 1, s->shards}, jobs->inputs), out);
    if (!s->dry_run) {
        char dep[96];
        snprintf(path, sizeof path, "%s/slurm/shard.sbatch", out);
        if ((st = sbatch(s->sbatch_args, s->nsbatch_args, NULL, path, jobs->array_job,
                         sizeof jobs->array_job, err)) != FX_OK)
            return st;
        /* afterany, not afterok: Slurm never satisfies an array's afterok
         * once one of its tasks has ended badly, even after that task was
         * requeued and succeeded; `fxscreen slurm merge` checks the shards
         * itself and waits again for tasks that are queued. */
        snprintf(dep, sizeof dep, "--dependency=afterany:%s", jobs->array_job);
        snprintf(path, sizeof path, "%s/slurm/merge.sbatch", out);
        st = sbatch(s->sbatch_args, s->nsbatch_args, dep, path, jobs->merge_job,
                    sizeof jobs->merge_job, err);
        if (st != FX_OK && s->log)
            fprintf(s->log,
                    "slurm submit: the array job %s is submitted but the merge is not; "
                    "merge later with `sbatch --dependency=afterany:%s %s`\n",
                    jobs->array_job, jobs->array_job, path);
    }
    fx_status st2 = write_jobs(out, s, jobs, sha, err);
    return st != FX_OK ? st : st2;
}

/* ---- status --------------------------------------------------------------------------- */

/* Complete records of a summary.csv after its header; 0 if absent. */
static size_t csv_rows(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    long lines = 0;
    if (fx_csv_read_record(f, &buf, &cap, &lines) == 1)
        while (fx_csv_read_record(f, &buf, &cap, &lines) == 1)
            n++;
    /* A record cut by a kill has no final newline: it is not complete. */
    if (n > 0 && (fseek(f, -1, SEEK_END) != 0 || fgetc(f) != '\n'))
        n--;
    free(buf);
    fclose(f);
    return n;
}

/* Whether results.h5 carries input_sha256: the run walked its whole list. */
static int h5_complete(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    if (access(path, F_OK) != 0)
        return 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int done = f >= 0 && H5Aexists(f, "input_sha256") > 0;
    if (f >= 0)
        H5Fclose(f);
    return done;
}

/* squeue's state of each pending or running task of the array (by task
 * id; others stay ""); 0 when squeue does not answer. */
static int squeue_states(const char *job, int n, char (*state)[16])
{
    char fmt[] = "%K %T", *argv[] = {"squeue", "-h", "-r", "-j", (char *)job, "-o", fmt, NULL};
    char out[1 << 16];
    if (!job[0] || run_capture(argv, out, sizeof out) != 0)
        return 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        int task;
        char st[16];
        if (sscanf(line, "%d %15s", &task, st) == 2 && task >= 0 && task < n)
            snprintf(state[task], sizeof state[task], "%s", st);
    }
    return 1;
}

fx_status fx_slurm_status(const char *out_dir, FILE *out, fx_error *err)
{
    char path[PATH_MAX + 64], array[64], merge[64];
    jobs_rec j;
    fx_status st = jobs_read(out_dir, &j, err);
    if (st != FX_OK)
        return st;
    snprintf(array, sizeof array, "%s", j.array);
    snprintf(merge, sizeof merge, "%s", j.merge);
    int N = j.shards, w = shard_width(N);
    size_t inputs = j.inputs, total = 0, done = 0;
    cJSON_Delete(j.o);
    char(*state)[16] = calloc((size_t)N, sizeof *state);
    if (!state)
        return fx_error_set(err, FX_ERR_NOMEM, "slurm status: out of memory");
    int queued = squeue_states(array, N, state);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fprintf(out, "%s: %zu inputs in %d shards; array job %s, merge job %s\n", out_dir, inputs, N,
            array[0] ? array : "(not submitted)", merge[0] ? merge : "(not submitted)");
    fprintf(out, "%-*s %15s  %s\n", w + 1, "shard", "rows", "state");
    for (int i = 0; i < N; i++) {
        char dir[PATH_MAX + 32];
        snprintf(dir, sizeof dir, "%s/shards/%0*d", out_dir, w, i);
        size_t want = fx_shard_rows((fx_shard){i, N}, inputs);
        snprintf(path, sizeof path, "%s/run.json", dir);
        int started = access(path, F_OK) == 0;
        snprintf(path, sizeof path, "%s/summary.csv", dir);
        size_t rows = started ? csv_rows(path) : 0;
        int complete = started && h5_complete(dir);
        const char *what = complete ? "done" : !started ? "not started" : "partial";
        char rc[48];
        snprintf(rc, sizeof rc, "%zu/%zu", rows, want);
        fprintf(out, "%0*d  %15s  %s", w, i, rc, what);
        if (state[i][0])
            fprintf(out, " (Slurm: %s)", state[i]);
        else if (queued && !complete)
            fputs(" (Slurm: not queued: failed or cancelled? `scontrol requeue` resumes it)", out);
        fputc('\n', out);
        total += rows;
        done += complete;
    }
    snprintf(path, sizeof path, "%s/results.h5", out_dir);
    int merged = access(path, F_OK) == 0;
    fprintf(out, "%zu/%zu rows (%.0f%%), %zu/%d shards done; %s\n", total, inputs,
            inputs ? 100.0 * (double)total / (double)inputs : 100.0, done, N,
            merged ? "merged into results.h5" : "not merged yet");
    free(state);
    return FX_OK;
}

/* ---- the merge job ------------------------------------------------------------------------ */

fx_status fx_slurm_merge(const char *out_dir, FILE *log, fx_error *err)
{
    jobs_rec j;
    fx_status st = jobs_read(out_dir, &j, err);
    if (st != FX_OK)
        return st;
    int N = j.shards, w = shard_width(N), nbad = 0;
    char **dirs = calloc((size_t)N, sizeof *dirs), (*state)[16] = calloc((size_t)N, 16);
    char *waiting = NULL, *failed = NULL;
    size_t wn = 0, fn = 0;
    FILE *wf = open_memstream(&waiting, &wn), *ff = open_memstream(&failed, &fn);
    if (!dirs || !state || !wf || !ff) {
        st = fx_error_set(err, FX_ERR_NOMEM, "slurm merge: out of memory");
        goto done;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int queued = squeue_states(j.array, N, state);
    for (int i = 0; i < N && st == FX_OK; i++) {
        size_t len = strlen(out_dir) + 32;
        if (!(dirs[i] = malloc(len))) {
            st = fx_error_set(err, FX_ERR_NOMEM, "slurm merge: out of memory");
            break;
        }
        snprintf(dirs[i], len, "%s/shards/%0*d", out_dir, w, i);
        if (h5_complete(dirs[i]))
            continue;
        nbad++;
        if (state[i][0]) /* requeued (or still to run): wait for it */
            fprintf(wf, "%s%s_%d", ftell(wf) ? ":" : "", j.array, i);
        else
            fprintf(ff, "%s%d", ftell(ff) ? ", " : "", i);
    }
    fclose(wf), wf = NULL;
    fclose(ff), ff = NULL;
    if (st != FX_OK)
        goto done;
    if (nbad == 0) {
        fx_merge_result res;
        st = fx_merge_run(out_dir, (const char *const *)dirs, N, log, &res, err);
        if (st == FX_OK && log)
            fprintf(log, "slurm merge: %d shards, %zu rows into %s/results.h5\n", res.shards,
                    res.rows, out_dir);
    } else if (failed[0])
        st = fx_error_set(err, FX_ERR_USAGE,
                          "slurm merge: shard(s) %s of %s did not finish and are not queued%s: "
                          "requeue their tasks (`scontrol requeue %s_I`), then merge again "
                          "(`sbatch --dependency=afterany:%s %s/slurm/merge.sbatch`)",
                          failed, out_dir, queued ? "" : " (squeue did not answer)", j.array,
                          j.array, out_dir);
    else {
        /* Shards whose tasks were requeued: this job comes again after them. */
        char dep[4096], path[PATH_MAX + 32], id[64];
        if (strlen(waiting) + 32 > sizeof dep) /* very many: after the whole array */
            snprintf(waiting, strlen(waiting) + 1, "%s", j.array);
        snprintf(dep, sizeof dep, "--dependency=afterany:%s", waiting);
        snprintf(path, sizeof path, "%s/slurm/merge.sbatch", out_dir);
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(j.o, "sbatch_args"), *a;
        const char *extra[64];
        int nextra = 0;
        cJSON_ArrayForEach(a, args) if (cJSON_IsString(a) && nextra < 64) extra[nextra++] =
            a->valuestring;
        st = sbatch(extra, nextra, dep, path, id, sizeof id, err);
        if (st == FX_OK) {
            cJSON_ReplaceItemInObjectCaseSensitive(j.o, "merge_job", cJSON_CreateString(id));
            st = jobs_save(out_dir, j.o, err);
            if (log)
                fprintf(log,
                        "slurm merge: %d shard(s) not finished, their tasks queued again (%s); "
                        "the merge comes again as job %s after them\n",
                        nbad, waiting, id);
        }
    }
done:
    if (wf)
        fclose(wf);
    if (ff)
        fclose(ff);
    free(waiting);
    free(failed);
    for (int i = 0; dirs && i < N; i++)
        free(dirs[i]);
    free(dirs);
    free(state);
    cJSON_Delete(j.o);
    return st;
}
