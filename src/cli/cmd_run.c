/* fxscreen run --model M --out DIR SOURCES... | fxscreen run --resume DIR:
 * argument parsing, Ctrl-C and the progress line; the work is
 * fx_run_job_run(). */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/runjob.h"

/* The only process-wide state: set by the SIGINT handler, polled by the job. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: fxscreen run --model M.onnx --out DIR [options] SOURCES...\n"
            "       fxscreen run --resume DIR\n"
            "  SOURCES       directories, list files or image files (as `fxscreen prep`)\n"
            "  --model M     ONNX classifier: K >= 2 logits (the fracture class is the\n"
            "                config's model.positive, default 1) or 1 sigmoid logit\n"
            "  --out DIR     writes DIR/results.h5, DIR/summary.csv and DIR/run.json\n"
            "  --config C    the model's sidecar YAML: preprocessing keys plus the model:,\n"
            "                cam: and overlay: sections (default: M.yaml beside the model\n"
            "                if it exists, else configs/default.yaml values)\n"
            "  --batch N     images per engine batch (default 8)\n"
            "  --threads N   reader threads (default: online cores)\n"
            "  --method M    gradcam, gradcam++, xgradcam, hirescam, layercam, eigencam\n"
            "                (default: cam.method of the config, else gradcam)\n"
            "  --layer NAME  CAM layer (default: cam.layer, else the suggested one, see\n"
            "                `fxscreen model info`)\n"
            "  --threshold T prediction = probability >= T (default: model.threshold, else 0.5)\n"
            "  --overlays [all|positives]  also write DIR/overlays/ROW_NAME.png: the original\n"
            "                with the heatmap blended on top, for predicted positives (default)\n"
            "                or all images (colormap/opacity: the config's overlay: section)\n"
            "  --overlay-size N|full  the overlays' longer side at most N pixels (area\n"
            "                average; default 1024), or the original's size\n"
            "  --device D    auto (default: the GPU when one answers and runs the model,\n"
            "                else the CPU with a notice), cpu, cuda or cuda:N; cuda:N,M,...\n"
            "                or cuda:all run one engine per GPU listed (an ordinal may repeat),\n"
            "                fed by the same readers and written in input order\n"
            "  --precision P the GPU's arithmetic: fp32 (default), tf32, fp16 or bf16\n"
            "  --streams S   engines per GPU, each on its own stream, so that one's\n"
            "                transfers overlap another's compute (default 2; 1..8)\n"
            "  --prep-device cpu|cuda  where the readers preprocess (window, resize, pad,\n"
            "                normalise) 8/16-bit images (default cpu; cuda: the first\n"
            "                listed GPU, within 1e-5 of the CPU)\n"
            "  --shard I/N   process only inputs I, I+N, I+2N, ... of the list (0 <= I < N),\n"
            "                for `fxscreen merge`; `--shard slurm` takes I and N from a Slurm\n"
            "                job array task, `--shard k8s --shards N` I from a Kubernetes\n"
            "                Indexed Job (JOB_COMPLETION_INDEX)\n"
            "  --resume DIR  continue an interrupted run (every input ends up exactly once)\n"
            "  --quiet       no progress line\n");
}

int fx_cli_run_option(const char *cmd, int c, const char **arg, int argc, char **argv,
                      fx_run_job *job)
{
    const char *v = *arg;
    char *end;
    fx_error err = {0};
    switch (c) {
    case 'c': job->config = v; return 1;
    case 'l': job->layer = v; return 1;
    case 'O':
        /* `--overlays all` as well as `--overlays=all`: a following word
         * that names a mode is taken as the mode, not as a source. */
        if (!v && optind < argc &&
            (!strcmp(argv[optind], "all") || !strcmp(argv[optind], "positives")))
            *arg = v = argv[optind++];
        if (!v || !strcmp(v, "positives"))
            job->overlays = FX_OVERLAY_POSITIVES;
        else if (!strcmp(v, "all"))
            job->overlays = FX_OVERLAY_ALL;
        else {
            fprintf(stderr, "%s: --overlays '%s': use all or positives\n", cmd, v);
            return -1;
        }
        return 1;
    case 'Z':
        if (!strcmp(v, "full"))
            job->overlay_size = -1;
        else if (!fx_cli_parse_int(v, 64, 16384, &job->overlay_size)) {
            fprintf(stderr, "%s: --overlay-size '%s': give 64..16384 pixels or full\n", cmd, v);
            return -1;
        }
        return 1;
    case 'b':
        if (!fx_cli_parse_int(v, 1, 4096, &job->batch)) {
            fprintf(stderr, "%s: --batch '%s': give 1..4096\n", cmd, v);
            return -1;
        }
        return 1;
    case 't':
        if (!fx_cli_parse_int(v, 0, 1024, &job->threads)) {
            fprintf(stderr, "%s: --threads '%s': give 0..1024 (0 = online cores)\n", cmd, v);
            return -1;
        }
        return 1;
    case 'M': {
        fx_cam_method cm;
        if (fx_cam_method_parse(v, &cm, &err) != FX_OK) {
            fprintf(stderr, "%s: --method: %s\n", cmd, err.msg);
            return -1;
        }
        job->method = (int)cm;
        return 1;
    }
    case 'T':
        job->threshold = strtod(v, &end);
        if (*end || !(job->threshold >= 0.0 && job->threshold <= 1.0)) {
            fprintf(stderr, "%s: --threshold '%s': want a number in [0, 1]\n", cmd, v);
            return -1;
        }
        return 1;
    case 'd':
        if (!fx_device_parse_list(v, &job->device, &job->devices))
            return 1;
        fprintf(stderr,
                "%s: --device '%s': use auto, cpu, cuda, cuda:N, cuda:N,M,... or cuda:all\n", cmd,
                v);
        return -1;
    case 'P': return fx_cli_precision(cmd, v, &job->precision) ? 1 : -1;
    case 'G':
        if (!strcmp(v, "cpu") || !strcmp(v, "cuda")) {
            job->prep_device = v[1] == 'p' ? FX_DEVICE_CPU : FX_DEVICE_CUDA;
            return 1;
        }
        fprintf(stderr, "%s: --prep-device '%s': use cpu or cuda\n", cmd, v);
        return -1;
    case 'E':
        if (fx_cli_parse_int(v, 1, 8, &job->streams))
            return 1;
        fprintf(stderr, "%s: --streams '%s': give 1..8 engines per GPU\n", cmd, v);
        return -1;
    default: return 0;
    }
}

int fx_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"out", required_argument, 0, 'o'},
                                         {"config", required_argument, 0, 'c'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"threads", required_argument, 0, 't'},
                                         {"method", required_argument, 0, 'M'},
                                         {"layer", required_argument, 0, 'l'},
                                         {"threshold", required_argument, 0, 'T'},
                                         {"device", required_argument, 0, 'd'},
                                         {"resume", required_argument, 0, 'r'},
                                         {"precision", required_argument, 0, 'P'},
                                         {"streams", required_argument, 0, 'E'},
                                         {"prep-device", required_argument, 0, 'G'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {"overlays", optional_argument, 0, 'O'},
                                         {"shard", required_argument, 0, 'S'},
                                         {"overlay-size", required_argument, 0, 'Z'},
                                         {"shards", required_argument, 0, 'N'},
                                         {0, 0, 0, 0}};
    fx_run_job job = {.batch = 8, .method = -1, .threshold = NAN, .device = FX_DEVICE_AUTO};
    const char *resume = NULL, *shard = NULL;
    int quiet = 0, shards = 0, c;
    fx_error err = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:c:b:t:M:l:T:d:P:r:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': job.model = optarg; break;
        case 'o': job.out_dir = optarg; break;
        case 'r': resume = optarg; break;
        case 'q': quiet = 1; break;
        case 'S': shard = optarg; break;
        case 'N':
            if (!fx_cli_parse_int(optarg, 1, FX_SHARD_MAX, &shards)) {
                fprintf(stderr, "run: --shards '%s': give 1..%d\n", optarg, FX_SHARD_MAX);
                return FX_EXIT_USAGE;
            }
            break;
        case 'h': run_usage(stdout); return FX_EXIT_OK;
        default: {
            const char *arg = optarg;
            int r = fx_cli_run_option("run", c, &arg, argc, argv, &job);
            if (r == 0)
                run_usage(stderr);
            if (r <= 0)
                return FX_EXIT_USAGE;
        }
        }
    }
    if (resume) {
        if (job.model || job.out_dir || job.config || optind < argc || job.overlays ||
            job.method >= 0 || job.layer || !isnan(job.threshold) || shard || shards ||
            job.overlay_size || job.streams || job.prep_device) {
            fprintf(stderr, "run: --resume DIR takes everything from DIR/run.json; give no "
                            "--model, --out, --config, --overlays, --method, --layer, "
                            "--threshold, --shard, --overlay-size, --streams, --prep-device or "
                            "SOURCES with it\n");
            return FX_EXIT_USAGE;
        }
        job.out_dir = resume;
        job.resume = 1;
    } else if (!job.model || !job.out_dir || optind >= argc) {
        fprintf(stderr, "run: %s\n",
                !job.model     ? "--model M.onnx is required"
                : !job.out_dir ? "--out DIR is required"
                               : "no SOURCES given");
        run_usage(stderr);
        return FX_EXIT_USAGE;
    }
    if (!shard && shards) {
        fprintf(stderr, "run: --shards N goes with --shard k8s (or --shard I/N)\n");
        return FX_EXIT_USAGE;
    }
    char how[96];
    if (shard && fx_shard_parse(shard, shards, &job.shard, how, sizeof how, &err) != FX_OK) {
        fprintf(stderr, "run: %s\n", err.msg);
        return FX_EXIT_USAGE;
    }
    if (shard && !quiet)
        fprintf(stderr, "run: %s\n", how);
    job.sources = (const char *const *)(argv + optind);
    job.nsources = argc - optind;
    job.stdin_fp = stdin;
    job.cancel = &interrupted;
    job.log = stderr;
    int show = !quiet && isatty(STDERR_FILENO);
    job.count_first = show;
    job.progress = show ? fx_cli_progress : NULL;
    job.progress_ctx = (void *)"run";

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    fx_run_job_result res;
    fx_status st = fx_run_job_run(&job, &res, &err);
    if (show)
        fputc('\n', stderr);
    if (st != FX_OK) {
        fprintf(stderr, "run: %s\n", err.msg);
        return st == FX_ERR_USAGE || st == FX_ERR_CONFIG || st == FX_ERR_UNSUPPORTED ||
                       st == FX_ERR_DEVICE
                   ? FX_EXIT_USAGE
                   : FX_EXIT_FAIL;
    }
    if (res.total + res.resumed_from == 0 && job.shard.count > 0)
        fprintf(stderr,
                "run: shard %d/%d has no inputs (more shards than inputs); its empty "
                "outputs still merge\n",
                job.shard.index, job.shard.count);
    else if (res.total + res.resumed_from == 0)
        fprintf(stderr, "run: no inputs found (directories are searched for PNG, TIFF, JPEG, "
                        "JPEG 2000 and DICOM files; lists name one path or archive per line)\n");
    if (!quiet || res.cancelled)
        fprintf(stderr,
                "run: %zu images (%zu ok, %zu errors) in %.2f s%s; %s/results.h5 and "
                "%s/summary.csv hold %zu rows\n",
                res.total, res.ok, res.errors, res.seconds,
                res.cancelled ? ", interrupted (continue with --resume)" : "", job.out_dir,
                job.out_dir, res.total + res.resumed_from);
    if (!quiet && res.total > 0) {
        double per = 1000.0 / (double)res.total;
        fprintf(stderr,
                "run: per image (ms, summed over threads): decode %.1f, preprocess %.1f, "
                "inference %.1f, CAM %.1f, write %.1f, overlays %.1f\n",
                res.decode_s * per, res.prep_s * per, res.infer_s * per, res.cam_s * per,
                res.write_s * per, res.overlay_s * per);
    }
    if (res.overlays || res.overlay_errors)
        fprintf(stderr, "run: %zu overlays in %s/overlays/%s\n", res.overlays, job.out_dir,
                res.overlay_errors ? " (some failed: see the notices above)" : "");
    return res.cancelled ? FX_EXIT_INTERRUPTED : FX_EXIT_OK;
}
