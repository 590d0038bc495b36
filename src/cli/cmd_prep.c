/* fxscreen prep SOURCES... --out DIR: argument parsing, Ctrl-C and the
 * progress line; the work is fx_prep_job_run(). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/prepjob.h"

/* The only process-wide state: set by the SIGINT handler, polled by the job. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void prep_usage(FILE *f)
{
    fprintf(f,
            "usage: fxscreen prep SOURCES... --out DIR [options]\n"
            "  SOURCES     directories (recursive: PNG, TIFF, JPEG, JPEG 2000, DICOM), archives\n"
            "              (.tar[.gz|.zst|.xz|.bz2], .zip), list files (*.txt *.lst *.csv with a\n"
            "              'path' column), '-' for a list on stdin, or image files\n"
            "  --out DIR   writes DIR/prep.h5 and DIR/summary.csv\n"
            "  --config C  preprocessing YAML (default: configs/default.yaml values)\n"
            "  --threads N reader threads (default: online cores)\n"
            "  --batch N   images per batch (default 16)\n"
            "  --store T   float16|uint8 for /images (overrides the config)\n"
            "  --quiet     no progress line\n");
}

int fx_cmd_prep(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},     {"config", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'}, {"batch", required_argument, 0, 'b'},
        {"store", required_argument, 0, 's'},   {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *out = NULL, *config = NULL, *store = NULL;
    int threads = 0, batch = 16, quiet = 0, c;
    fx_error err = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:c:t:b:s:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'c': config = optarg; break;
        case 't':
            if (!fx_cli_parse_int(optarg, 0, 1024, &threads)) {
                fprintf(stderr, "prep: --threads '%s': give 0..1024 (0 = online cores)\n", optarg);
                return FX_EXIT_USAGE;
            }
            break;
        case 'b':
            if (!fx_cli_parse_int(optarg, 1, 4096, &batch)) {
                fprintf(stderr, "prep: --batch '%s': give 1..4096\n", optarg);
                return FX_EXIT_USAGE;
            }
            break;
        case 's': store = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': prep_usage(stdout); return FX_EXIT_OK;
        default: prep_usage(stderr); return FX_EXIT_USAGE;
        }
    }
    if (!out || optind >= argc) {
        fprintf(stderr, "prep: %s\n", !out ? "--out DIR is required" : "no SOURCES given");
        prep_usage(stderr);
        return FX_EXIT_USAGE;
    }
    fx_prep_job job = {0};
    fx_prep_config_default(&job.pool.prep);
    if (config && fx_prep_config_load(config, &job.pool.prep, &err) != FX_OK) {
        fprintf(stderr, "prep: %s\n", err.msg);
        return FX_EXIT_USAGE;
    }
    if (store) {
        if (!strcmp(store, "float16"))
            job.pool.prep.store = FX_STORE_F16;
        else if (!strcmp(store, "uint8"))
            job.pool.prep.store = FX_STORE_U8;
        else {
            fprintf(stderr, "prep: --store '%s': use float16 or uint8\n", store);
            return FX_EXIT_USAGE;
        }
    }
    job.sources = (const char *const *)(argv + optind);
    job.nsources = argc - optind;
    job.stdin_fp = stdin;
    job.out_dir = out;
    job.pool.threads = threads;
    job.pool.batch = batch;
    job.cancel = &interrupted;
    int show = !quiet && isatty(STDERR_FILENO);
    job.count_first = show;
    job.progress = show ? fx_cli_progress : NULL;
    job.progress_ctx = (void *)"prep";

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    fx_prep_job_result res;
    fx_status st = fx_prep_job_run(&job, &res, &err);
    if (show)
        fputc('\n', stderr);
    if (st != FX_OK) {
        fprintf(stderr, "prep: %s\n", err.msg);
        return st == FX_ERR_USAGE || st == FX_ERR_CONFIG ? FX_EXIT_USAGE : FX_EXIT_FAIL;
    }
    if (res.total == 0)
        fprintf(stderr, "prep: no inputs found (directories are searched for PNG, TIFF, JPEG, "
                        "JPEG 2000 and DICOM files; lists name one path or archive per line)\n");
    fprintf(
        stderr,
        "prep: %zu images (%zu ok, %zu errors) in %.2f s%s; wrote %s/prep.h5 and %s/summary.csv\n",
        res.total, res.ok, res.errors, res.seconds, res.cancelled ? ", interrupted" : "", out, out);
    return res.cancelled ? FX_EXIT_INTERRUPTED : FX_EXIT_OK;
}
