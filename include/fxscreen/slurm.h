/* fxscreen: a sharded run (shard.h) as a Slurm job array, and its merge
 * (merge.h) as a job that depends on it.
 *
 * OUT/slurm/shard.sbatch   the array: task i runs `fxscreen run --shard
 *                          slurm` into OUT/shards/NNNN, or `--resume`s it when
 *                          its run.json exists (a requeued task: preempted,
 *                          node failure, `scontrol requeue`); --requeue set
 * OUT/slurm/merge.sbatch   `fxscreen slurm merge OUT` (fx_slurm_merge),
 *                          submitted with --dependency=afterany:ARRAY
 * OUT/slurm/logs/          each task's output (appended across requeues)
 * OUT/slurm/jobs.json      the job ids, shard count and the input list's
 *                          size and SHA-256 at submission
 * A task's GPUs are Slurm's: it binds them through CUDA_VISIBLE_DEVICES, and
 * the run's `--device` (default auto) takes the first visible one. */
#ifndef FXSCREEN_SLURM_H
#define FXSCREEN_SLURM_H

#include <limits.h>
#include <stdio.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_slurm_submit {
    const char *fxscreen; /* the binary the jobs run (made absolute) */
    const char *model;
    const char *out_dir;
    const char *const *sources; /* as `run` takes them; relative to the cwd */
    int nsources;
    const char *const *run_args; /* more `fxscreen run` options, e.g. "--batch", "16" */
    int nrun_args;
    int shards;                     /* array tasks, >= 1 */
    int gpus_per_task;              /* 0: none asked for */
    int cpus_per_task;              /* 0: Slurm's default */
    const char *partition, *time;   /* NULL: the cluster's defaults */
    const char *const *sbatch_args; /* passed to both sbatch calls as given */
    int nsbatch_args;
    int dry_run; /* write the scripts, submit nothing */
    FILE *log;
} fx_slurm_submit;

typedef struct fx_slurm_jobs {
    char array_job[64], merge_job[64]; /* "" with dry_run */
    size_t inputs;
} fx_slurm_jobs;

/* Lists the inputs, writes the scripts and submits them (sbatch from
 * PATH).  FX_ERR_USAGE for unusable arguments or an OUT that already holds
 * a run; FX_ERR_IO when sbatch is missing or refuses (its message quoted). */
fx_status fx_slurm_submit_run(const fx_slurm_submit *s, fx_slurm_jobs *jobs, fx_error *err);

/* Each shard's progress from its outputs (and Slurm's state of its task
 * when squeue answers), as a table on out. */
fx_status fx_slurm_status(const char *out_dir, FILE *out, fx_error *err);

/* The merge job: when every shard is complete, fx_merge_run into OUT.
 * When some are not but their tasks are queued again (requeued after a
 * kill, a failure or preemption), submits OUT/slurm/merge.sbatch again with
 * --dependency=afterany on those tasks and returns FX_OK.  (Slurm never
 * satisfies an array's afterok once a task ended badly, even after that
 * task was requeued and succeeded: hence afterany and these checks.)  A
 * shard neither complete nor queued is FX_ERR_USAGE naming it and the
 * command that finishes the job (fx_slurm_requeue). */
fx_status fx_slurm_merge(const char *out_dir, FILE *log, fx_error *err);

/* The tasks of the shards that are neither complete nor queued back in the
 * queue (`scontrol requeue`; they resume their shards), and the merge job
 * submitted again after them when it is no longer queued.  FX_ERR_IO naming
 * the manual commands when Slurm has forgotten the array (MinJobAge). */
fx_status fx_slurm_requeue(const char *out_dir, FILE *log, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
