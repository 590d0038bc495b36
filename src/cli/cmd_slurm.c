/* fxscreen slurm submit|status: argument parsing; the work is
 * fx_slurm_submit_run() and fx_slurm_status(). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/cam.h"
#include "fxscreen/runjob.h"
#include "fxscreen/shard.h"
#include "fxscreen/slurm.h"

static void slurm_usage(FILE *f)
{
    fprintf(f, "usage: fxscreen slurm submit --model M --out DIR --shards N [options] SOURCES...\n"
               "       fxscreen slurm status DIR\n"
               "       fxscreen slurm requeue DIR\n"
               "       fxscreen slurm merge DIR   (what the merge job runs)\n"
               "submit: a Slurm job array of N tasks, task i running `fxscreen run --shard i/N`\n"
               "  into DIR/shards/NNNN (requeued tasks resume), and a merge job after it\n"
               "  (--dependency=afterany) writing DIR/results.h5 and DIR/summary.csv.\n"
               "  --gpus-per-task G  0 (default: no GPU asked for) to 16; the task's run uses\n"
               "                     the GPUs Slurm binds (CUDA_VISIBLE_DEVICES), above 1 with\n"
               "                     one engine on each (--device cuda:all unless given)\n"
               "  --cpus-per-task C  reader threads per task (default: Slurm's)\n"
               "  --partition P, --time T   the array's and the merge's partition and limit\n"
               "  --sbatch-arg ARG   one more sbatch option for both jobs (repeatable), e.g.\n"
               "                     --sbatch-arg=--account=radiology\n"
               "  --dry-run          write DIR/slurm/*.sbatch, submit nothing\n"
               "  run's options, passed to every task: --config, --batch, --threads, --method,\n"
               "  --layer, --threshold, --overlays[=all|positives], --overlay-size, --device,\n"
               "  --precision, --streams, --prep-device\n"
               "status: each shard's rows and state from its outputs, and Slurm's state of\n"
               "  its task while squeue lists it.\n");
}

static int cmd_submit(int argc, char **argv, const char *self)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"out", required_argument, 0, 'o'},
                                         {"shards", required_argument, 0, 'n'},
                                         {"gpus-per-task", required_argument, 0, 'g'},
                                         {"cpus-per-task", required_argument, 0, 'u'},
                                         {"partition", required_argument, 0, 'p'},
                                         {"time", required_argument, 0, 'w'},
                                         {"sbatch-arg", required_argument, 0, 'a'},
                                         {"dry-run", no_argument, 0, 'D'},
                                         {"config", required_argument, 0, 'c'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"threads", required_argument, 0, 't'},
                                         {"method", required_argument, 0, 'M'},
                                         {"layer", required_argument, 0, 'l'},
                                         {"threshold", required_argument, 0, 'T'},
                                         {"overlays", optional_argument, 0, 'O'},
                                         {"device", required_argument, 0, 'd'},
                                         {"precision", required_argument, 0, 'P'},
                                         {"streams", required_argument, 0, 'E'},
                                         {"prep-device", required_argument, 0, 'G'},
                                         {"overlay-size", required_argument, 0, 'Z'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    fx_slurm_submit s = {.fxscreen = self, .log = stderr};
    fx_run_job checked = {0}; /* the run options parsed only to check them */
    /* Worst case every argument is an option with its value: 2 slots each. */
    const char **run_args = calloc((size_t)argc * 2 + 1, sizeof *run_args);
    const char **sb_args = calloc((size_t)argc + 1, sizeof *sb_args);
    char **flags = calloc((size_t)argc + 1, sizeof *flags);
    int c, rc = FX_EXIT_USAGE, li, nflags = 0;
    if (!run_args || !sb_args || !flags)
        goto done;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:n:h", opts, &li)) != -1) {
        switch (c) {
        case 'm': s.model = optarg; break;
        case 'o': s.out_dir = optarg; break;
        case 'n':
            if (!fx_cli_parse_int(optarg, 1, FX_SHARD_MAX, &s.shards)) {
                fprintf(stderr, "slurm submit: --shards '%s': give 1..%d\n", optarg, FX_SHARD_MAX);
                goto done;
            }
            break;
        case 'g':
        case 'u':
            if (!fx_cli_parse_int(optarg, 0, 1024,
                                  c == 'g' ? &s.gpus_per_task : &s.cpus_per_task)) {
                fprintf(stderr, "slurm submit: --%s '%s': give a count\n", opts[li].name, optarg);
                goto done;
            }
            break;
        case 'p': s.partition = optarg; break;
        case 'w': s.time = optarg; break;
        case 'a':
            if (optarg[0] != '-') {
                fprintf(stderr,
                        "slurm submit: --sbatch-arg '%s': give an sbatch option "
                        "(--sbatch-arg=--account=NAME)\n",
                        optarg);
                goto done;
            }
            sb_args[s.nsbatch_args++] = optarg;
            break;
        case 'D': s.dry_run = 1; break;
        case 'h':
            slurm_usage(stdout);
            rc = FX_EXIT_OK;
            goto done;
        case 'c':
        case 'b':
        case 't':
        case 'M':
        case 'l':
        case 'T':
        case 'O':
        case 'd':
        case 'P':
        case 'E':
        case 'G':
        case 'Z': {
            const char *arg = optarg;
            /* Checked as run will take it, so that a bad value stops here and
             * not in every array task. */
            if (fx_cli_run_option("slurm submit", c, &arg, argc, argv, &checked) < 0)
                goto done;
            /* "--NAME" then the value; --overlays' optional value as --overlays=V. */
            if (!(flags[nflags] = malloc(strlen(opts[li].name) + (arg ? strlen(arg) : 0) + 4)))
                goto done;
            sprintf(flags[nflags], "--%s%s%s", opts[li].name, c == 'O' && arg ? "=" : "",
                    c == 'O' && arg ? arg : "");
            run_args[s.nrun_args++] = flags[nflags++];
            if (c != 'O')
                run_args[s.nrun_args++] = arg;
            break;
        }
        default: slurm_usage(stderr); goto done;
        }
    }
    if (!s.model || !s.out_dir || !s.shards || optind >= argc) {
        fprintf(stderr, "slurm submit: %s\n",
                !s.model     ? "--model M is required"
                : !s.out_dir ? "--out DIR is required"
                : !s.shards  ? "--shards N is required"
                             : "no SOURCES given");
        slurm_usage(stderr);
        goto done;
    }
    s.sources = (const char *const *)(argv + optind);
    s.nsources = argc - optind;
    s.run_args = run_args;
    s.sbatch_args = sb_args;
    fx_slurm_jobs jobs;
    fx_error err = {0};
    fx_status st = fx_slurm_submit_run(&s, &jobs, &err);
    if (st != FX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        rc = st == FX_ERR_USAGE ? FX_EXIT_USAGE : FX_EXIT_FAIL;
        goto done;
    }
    if (s.dry_run)
        fprintf(stderr,
                "slurm submit: dry run: submit with `sbatch %s/slurm/shard.sbatch`, then "
                "`sbatch --dependency=afterok:ARRAY_JOB %s/slurm/merge.sbatch`\n",
                s.out_dir, s.out_dir);
    else {
        printf("%s %s\n", jobs.array_job, jobs.merge_job);
        fprintf(stderr,
                "slurm submit: array job %s (%d tasks), merge job %s; progress: "
                "`fxscreen slurm status %s`\n",
                jobs.array_job, s.shards, jobs.merge_job, s.out_dir);
    }
    rc = FX_EXIT_OK;
done:
    for (int i = 0; i < nflags; i++)
        free(flags[i]);
    free(flags);
    free(run_args);
    free(sb_args);
    return rc;
}

int fx_cmd_slurm(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "submit"))
        return cmd_submit(argc - 1, argv + 1, "/proc/self/exe");
    if (argc == 3 && !strcmp(argv[1], "status")) {
        fx_error err = {0};
        if (fx_slurm_status(argv[2], stdout, &err) != FX_OK) {
            fprintf(stderr, "slurm status: %s\n", err.msg);
            return FX_EXIT_USAGE;
        }
        return FX_EXIT_OK;
    }
    if (argc == 3 && (!strcmp(argv[1], "merge") || !strcmp(argv[1], "requeue"))) {
        fx_error err = {0};
        fx_status st = !strcmp(argv[1], "merge") ? fx_slurm_merge(argv[2], stderr, &err)
                                                 : fx_slurm_requeue(argv[2], stderr, &err);
        if (st != FX_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return st == FX_ERR_USAGE ? FX_EXIT_USAGE : FX_EXIT_FAIL;
        }
        return FX_EXIT_OK;
    }
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        slurm_usage(stdout);
        return FX_EXIT_OK;
    }
    slurm_usage(stderr);
    return FX_EXIT_USAGE;
}
