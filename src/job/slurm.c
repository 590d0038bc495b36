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

#include "core/jsonutil.h"
#include "fxscreen/device.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"
#include "fxscreen/loader.h"
#include "fxscreen/merge.h"
#include "fxscreen/shard.h"
#include "fxscreen/source.h"
#include "job/run_internal.h"
#include "out/results.h"

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
            "# requeued task finds its run.json there and resumes where it stopped.  The\n"
            "# task id is the shard (not --shard slurm), so that `sbatch --array=3,7` of\n"
            "# this script reruns shards 3 and 7 alone.\n"
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
            "shard=$(printf '%%0%dd' \"$SLURM_ARRAY_TASK_ID\")\n"
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
    fprintf(f, " run --quiet --shard \"$SLURM_ARRAY_TASK_ID/%d\" --model ", s->shards);
    sh_word(f, model);
    fputs(" --out \"$out\"", f);
    int has_device = 0;
    for (int i = 0; i < s->nrun_args; i++) {
        fputc(' ', f), sh_word(f, s->run_args[i]);
        has_device |= !strcmp(s->run_args[i], "--device");
    }
    if (s->gpus_per_task > 1 && !has_device) /* one engine per GPU Slurm gives the task */
        fputs(" --device cuda:all", f);
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
            "#SBATCH --open-mode=append\n"
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
    /* The job id is the last line that is "JOBID" or "JOBID;CLUSTER" (the
     * output holds stderr too: sbatch's warnings come before it). */
    const char *line = NULL;
    size_t len = 0;
    for (const char *p = out; *p; p += strcspn(p, "\n"), p += *p == '\n') {
        size_t digits = strspn(p, "0123456789");
        if (digits > 0 && (p[digits] == ';' || p[digits] == '\n' || !p[digits]))
            line = p, len = digits;
    }
    for (char *c = out; *c; c++) /* sbatch's message on one line */
        if (*c == '\n')
            *c = *(c + 1) ? ' ' : '\0';
    if (rc == 127 || rc < 0)
        return fx_error_set(err, FX_ERR_IO,
                            "slurm submit: cannot run sbatch (is Slurm's client installed and "
                            "on PATH?); the scripts are in place: %s",
                            script);
    if (rc != 0 || !line || len >= idn)
        return fx_error_set(err, FX_ERR_IO, "slurm submit: sbatch %s refused (exit %d): %s", script,
                            rc, out);
    memcpy(id, line, len);
    id[len] = '\0';
    return FX_OK;
}

/* OUT/slurm/jobs.json. */
static fx_status jobs_save(const char *out_dir, const cJSON *o, fx_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/slurm/jobs.json", out_dir);
    return fx_json_save(o, path, err);
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
    if (s->gpus_per_task > FX_MAX_ENGINES)
        return fx_error_set(err, FX_ERR_USAGE,
                            "slurm submit: --gpus-per-task %d: a task runs at most %d engines; "
                            "ask for fewer and more --shards instead",
                            s->gpus_per_task, FX_MAX_ENGINES);
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
                         sizeof jobs->array_job, err)) != FX_OK) {
            snprintf(path, sizeof path, "%s/shards", out);
            rmdir(path); /* still empty: submitting again into OUT works */
            return st;
        }
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

/* ---- the merge job and requeue ---------------------------------------------------------- */

/* The shards of a submitted run: which are complete, Slurm's state of the
 * others' tasks. */
typedef struct scan {
    jobs_rec j;
    int n, w, incomplete;
    char **dirs;
    char (*state)[16]; /* squeue's state of task i, "" when not queued */
    int *complete;
    int queued;  /* squeue answered */
    char *ids;   /* incomplete tasks that are queued, "A_i:A_j" (afterany form) */
    char *lost;  /* incomplete shards that are not queued, "i, j" */
    char *array; /* the same as "i,j" for sbatch --array / scontrol (A_i,A_j) */
} scan;

static void scan_free(scan *c)
{
    for (int i = 0; c->dirs && i < c->n; i++)
        free(c->dirs[i]);
    free(c->dirs);
    free(c->state);
    free(c->complete);
    free(c->ids);
    free(c->lost);
    free(c->array);
    cJSON_Delete(c->j.o);
}

static fx_status scan_shards(const char *out_dir, scan *c, fx_error *err)
{
    memset(c, 0, sizeof *c);
    fx_status st = jobs_read(out_dir, &c->j, err);
    if (st != FX_OK)
        return st;
    c->n = c->j.shards, c->w = shard_width(c->n);
    c->dirs = calloc((size_t)c->n, sizeof *c->dirs);
    c->state = calloc((size_t)c->n, sizeof *c->state);
    c->complete = calloc((size_t)c->n, sizeof *c->complete);
    size_t a = 0, b = 0, d = 0;
    FILE *fa = open_memstream(&c->ids, &a), *fb = open_memstream(&c->lost, &b),
         *fd = open_memstream(&c->array, &d);
    if (!c->dirs || !c->state || !c->complete || !fa || !fb || !fd)
        st = fx_error_set(err, FX_ERR_NOMEM, "slurm: out of memory");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (st == FX_OK)
        c->queued = squeue_states(c->j.array, c->n, c->state);
    for (int i = 0; i < c->n && st == FX_OK; i++) {
        size_t len = strlen(out_dir) + 32;
        if (!(c->dirs[i] = malloc(len))) {
            st = fx_error_set(err, FX_ERR_NOMEM, "slurm: out of memory");
            break;
        }
        snprintf(c->dirs[i], len, "%s/shards/%0*d", out_dir, c->w, i);
        if ((c->complete[i] = h5_complete(c->dirs[i])))
            continue;
        c->incomplete++;
        if (c->state[i][0]) /* requeued, or still to run */
            fprintf(fa, "%s%s_%d", ftell(fa) ? ":" : "", c->j.array, i);
        else {
            fprintf(fb, "%s%d", ftell(fb) ? ", " : "", i);
            fprintf(fd, "%s%d", ftell(fd) ? "," : "", i);
        }
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    if (fd)
        fclose(fd);
    if (st == FX_OK && (!c->ids || !c->lost || !c->array))
        st = fx_error_set(err, FX_ERR_NOMEM, "slurm: out of memory");
    return st;
}

/* Submits OUT/slurm/merge.sbatch again after the tasks in `after` (the
 * afterany form), with the submission's sbatch options; jobs.json updated. */
static fx_status resubmit_merge(const char *out_dir, scan *c, const char *after, FILE *log,
                                fx_error *err)
{
    char dep[4096], path[PATH_MAX + 32], id[64];
    /* Very many tasks: after the whole array instead (same effect). */
    snprintf(dep, sizeof dep, "--dependency=afterany:%s",
             strlen(after) + 32 < sizeof dep ? after : c->j.array);
    snprintf(path, sizeof path, "%s/slurm/merge.sbatch", out_dir);
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(c->j.o, "sbatch_args"), *a;
    const char *extra[64];
    int nextra = 0;
    cJSON_ArrayForEach(a, args) if (cJSON_IsString(a) && nextra < 64) extra[nextra++] =
        a->valuestring;
    fx_status st = sbatch(extra, nextra, after[0] ? dep : NULL, path, id, sizeof id, err);
    if (st != FX_OK)
        return st;
    cJSON_ReplaceItemInObjectCaseSensitive(c->j.o, "merge_job", cJSON_CreateString(id));
    c->j.merge = cJSON_GetObjectItemCaseSensitive(c->j.o, "merge_job")->valuestring;
    if (log)
        fprintf(log, "slurm: the merge comes again as job %s%s%s\n", id, after[0] ? " after " : "",
                after);
    return jobs_save(out_dir, c->j.o, err);
}

fx_status fx_slurm_merge(const char *out_dir, FILE *log, fx_error *err)
{
    scan c;
    fx_status st = scan_shards(out_dir, &c, err);
    if (st == FX_OK && c.incomplete == 0) {
        fx_merge_result res;
        st = fx_merge_run(out_dir, (const char *const *)c.dirs, c.n, log, &res, err);
        if (st == FX_OK && log)
            fprintf(log, "slurm merge: %d shards, %zu rows into %s/results.h5\n", res.shards,
                    res.rows, out_dir);
    } else if (st == FX_OK && c.lost[0])
        st = fx_error_set(err, FX_ERR_USAGE,
                          "slurm merge: shard(s) %s of %s did not finish and are not queued%s: "
                          "`fxscreen slurm requeue %s` runs them again and merges after",
                          c.lost, out_dir, c.queued ? "" : " (squeue did not answer)", out_dir);
    else if (st == FX_OK) {
        if (log)
            fprintf(log, "slurm merge: %d shard(s) not finished, their tasks queued again (%s)\n",
                    c.incomplete, c.ids);
        st = resubmit_merge(out_dir, &c, c.ids, log, err);
    }
    scan_free(&c);
    return st;
}

fx_status fx_slurm_requeue(const char *out_dir, FILE *log, fx_error *err)
{
    scan c;
    fx_status st = scan_shards(out_dir, &c, err);
    char out[2048], task[96], path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/results.h5", out_dir);
    int merged = access(path, F_OK) == 0, merge_queued = 0;
    if (st == FX_OK && c.j.merge[0]) {
        char fmt[] = "%T", *argv[] = {"squeue", "-h", "-j", (char *)c.j.merge, "-o", fmt, NULL};
        merge_queued = run_capture(argv, out, sizeof out) == 0 && out[0] != '\0';
    }
    if (st == FX_OK && !c.queued)
        st = fx_error_set(err, FX_ERR_IO,
                          "slurm requeue: squeue does not answer (is Slurm's client on PATH and "
                          "the cluster up?)");
    /* The lost shards' tasks back in the queue; they resume their shards. */
    char *ids = NULL;
    size_t idn = 0;
    FILE *f = st == FX_OK ? open_memstream(&ids, &idn) : NULL;
    if (st == FX_OK && !f)
        st = fx_error_set(err, FX_ERR_NOMEM, "slurm: out of memory");
    if (f)
        fputs(c.ids, f);
    for (int i = 0; i < c.n && st == FX_OK; i++) {
        if (c.complete[i] || c.state[i][0])
            continue;
        snprintf(task, sizeof task, "%s_%d", c.j.array, i);
        char *argv[] = {"scontrol", "requeue", task, NULL};
        if (run_capture(argv, out, sizeof out) != 0) {
            out[strcspn(out, "\n")] = '\0';
            st = fx_error_set(err, FX_ERR_IO,
                              "slurm requeue: scontrol requeue %s: %s (Slurm forgets ended jobs "
                              "after MinJobAge); run the shards again as a new array: `sbatch "
                              "--array=%s %s/slurm/shard.sbatch`, then `sbatch "
                              "--dependency=afterany:NEWJOB %s/slurm/merge.sbatch`",
                              task, out, c.array, out_dir, out_dir);
            break;
        }
        fprintf(f, "%s%s", ftell(f) ? ":" : "", task);
        if (log)
            fprintf(log, "slurm requeue: shard %d (task %s) queued again; it resumes\n", i, task);
    }
    if (f)
        fclose(f);
    if (st == FX_OK && !ids)
        st = fx_error_set(err, FX_ERR_NOMEM, "slurm: out of memory");
    /* A merge that already ran (and refused) or was never submitted. */
    if (st == FX_OK && !merged && !merge_queued)
        st = resubmit_merge(out_dir, &c, ids, log, err);
    else if (st == FX_OK && log && !c.incomplete)
        fprintf(log, "slurm requeue: every shard is complete%s\n",
                merged ? " and merged" : "; the merge job is queued");
    free(ids);
    scan_free(&c);
    return st;
}

fx_status fx_slurm_status(const char *out_dir, FILE *out, fx_error *err)
{
    scan c;
    fx_status st = scan_shards(out_dir, &c, err);
    if (st != FX_OK) {
        scan_free(&c);
        return st;
    }
    char path[PATH_MAX + 64];
    size_t total = 0, done = 0;
    fprintf(out, "%s: %zu inputs in %d shards; array job %s, merge job %s\n", out_dir, c.j.inputs,
            c.n, c.j.array[0] ? c.j.array : "(not submitted)",
            c.j.merge[0] ? c.j.merge : "(not submitted)");
    fprintf(out, "%-*s %15s  %s\n", c.w + 1, "shard", "rows", "state");
    for (int i = 0; i < c.n; i++) {
        snprintf(path, sizeof path, "%s/run.json", c.dirs[i]);
        int started = access(path, F_OK) == 0;
        snprintf(path, sizeof path, "%s/summary.csv", c.dirs[i]);
        long recs = started ? fx_results_csv_rows(path) : 0;
        size_t rows = recs > 0 ? (size_t)recs : 0;
        char rc[48];
        snprintf(rc, sizeof rc, "%zu/%zu", rows, fx_shard_rows((fx_shard){i, c.n}, c.j.inputs));
        fprintf(out, "%0*d  %15s  %s", c.w, i, rc,
                c.complete[i] ? "done"
                : !started    ? "not started"
                              : "partial");
        if (c.state[i][0])
            fprintf(out, " (Slurm: %s)", c.state[i]);
        else if (c.queued && !c.complete[i])
            fprintf(out,
                    " (Slurm: not queued: failed or cancelled? `fxscreen slurm requeue %s` "
                    "resumes it)",
                    out_dir);
        fputc('\n', out);
        total += rows;
        done += (size_t)c.complete[i];
    }
    snprintf(path, sizeof path, "%s/results.h5", out_dir);
    fprintf(out, "%zu/%zu rows (%.0f%%), %zu/%d shards done; %s\n", total, c.j.inputs,
            c.j.inputs ? 100.0 * (double)total / (double)c.j.inputs : 100.0, done, c.n,
            access(path, F_OK) == 0 ? "merged into results.h5" : "not merged yet");
    scan_free(&c);
    return FX_OK;
}
