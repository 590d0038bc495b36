/* fxscreen eval --results DIR --labels labels.csv: argument parsing and exit
 * codes; the work is fx_eval_job_run() (src/eval/eval.c). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/eval.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: fxscreen eval --results DIR --labels labels.csv [--threshold T] [--json PATH]\n"
            "                     [--bootstrap[=N]] [--seed S] [--at-sensitivity X]\n"
            "                     [--at-specificity X] [--calibration-bins B]\n"
            "                     [--group-by COLUMN] [--compare DIR2] [--plots DIR]\n"
            "                     [--faithfulness[=N|all] --model M [--faith-percentiles P,...]\n"
            "                      [--faith-noise X] [--faith-inputs]]\n"
            "  --results DIR    the output directory of `fxscreen run`: DIR/summary.csv\n"
            "                   (path,status,probability,prediction,peak_x,peak_y,...) and,\n"
            "                   if present, DIR/results.h5 (its root attribute `threshold`)\n"
            "  --labels FILE    ground truth: path,label[,cx,cy],x0,y0,x1,y1 as `fxscreen synth`\n"
            "                   writes it (paths relative to FILE's directory; box empty when\n"
            "                   normal)\n"
            "  --threshold T    decision threshold in [0, 1]: prediction = probability >= T\n"
            "                   (default: results.h5's `threshold`, else 0.5)\n"
            "  --json PATH      where to write the JSON report (default DIR/eval.json)\n"
            "  --bootstrap[=N]  stratified bootstrap 95%% CIs (percentile) of AUROC,\n"
            "                   sensitivity, specificity, PPV, NPV and kappa; N replicates\n"
            "                   (default 10000), --seed S (default 1)\n"
            "  --at-sensitivity X, --at-specificity X   the operating point reaching\n"
            "                   sensitivity (specificity) >= X, beside Youden's J (always)\n"
            "  --calibration-bins B   equal-width bins of the reliability table (10)\n"
            "  --group-by COLUMN  AUROC, sensitivity and specificity per value of a\n"
            "                   labels.csv column (body part, site, view), else of a\n"
            "                   summary.csv column (its DICOM body_part, view_position...)\n"
            "  --compare DIR2   a second run on the same labels: paired DeLong test of the\n"
            "                   AUROC difference and McNemar's test at each run's threshold\n"
            "  --plots DIR      roc, pr (with 95%% bootstrap bands and the operating point),\n"
            "                   reliability and histogram as .png and .svg, and curves.json\n"
            "  --faithfulness[=N|all]  CAM faithfulness by ROAD (Rong et al. 2022, as\n"
            "                   pytorch-grad-cam): the change of the positive probability when\n"
            "                   the most (MoRF) or least (LeRF) relevant pixels of each map are\n"
            "                   removed by noisy linear imputation, beside a random map; on N\n"
            "                   ok rows sampled with --seed (default 50), the originals decoded\n"
            "                   again; per image in DIR/faithfulness.h5.  Needs --model M, the\n"
            "                   run's model (checked by SHA-256)\n"
            "  --faith-percentiles P,...  pixels kept below these percentiles of the map\n"
            "                   (default 10,20,...,90: 90%% down to 10%% removed)\n"
            "  --faith-noise X  the imputation's noise (default 0.01; 0: none)\n"
            "  --faith-inputs   faithfulness.h5 also holds each preprocessed input\n"
            "\n"
            "Rows join on realpath (summary paths relative to the current directory), else\n"
            "on a basename that only one label has. Error rows are excluded and counted.\n"
            "Prints AUROC (DeLong 95%% CI), sensitivity, specificity, PPV, NPV, accuracy\n"
            "(Wilson 95%% CIs), Cohen's kappa, the confusion matrix and the pointing-game\n"
            "hit rate (peak inside the true box grown by 10%% of its width/height per side).\n");
}

int fx_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"results", required_argument, 0, 'r'},
                                         {"labels", required_argument, 0, 'l'},
                                         {"threshold", required_argument, 0, 't'},
                                         {"json", required_argument, 0, 'j'},
                                         {"bootstrap", optional_argument, 0, 'B'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"at-sensitivity", required_argument, 0, 'A'},
                                         {"at-specificity", required_argument, 0, 'P'},
                                         {"calibration-bins", required_argument, 0, 'C'},
                                         {"group-by", required_argument, 0, 'G'},
                                         {"compare", required_argument, 0, 'X'},
                                         {"plots", required_argument, 0, 'L'},
                                         {"faithfulness", optional_argument, 0, 'F'},
                                         {"model", required_argument, 0, 'M'},
                                         {"faith-percentiles", required_argument, 0, 'Q'},
                                         {"faith-noise", required_argument, 0, 'N'},
                                         {"faith-inputs", no_argument, 0, 'I'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    fx_eval_job job = {.seed = 1, .at_sensitivity = NAN, .at_specificity = NAN};
    fx_faith_opts faith;
    fx_faith_opts_default(&faith);
    int c, want_faith = 0;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:l:t:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': job.results_dir = optarg; break;
        case 'l': job.labels_path = optarg; break;
        case 'j': job.json_path = optarg; break;
        case 't': {
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(v) || v < 0.0 || v > 1.0) {
                fprintf(stderr, "eval: --threshold '%s': give a number in [0, 1]\n", optarg);
                return FX_EXIT_USAGE;
            }
            job.threshold = v;
            job.threshold_given = 1;
            break;
        }
        case 'B': {
            long v = optarg ? (errno = 0, strtol(optarg, &end, 10)) : 10000;
            if (optarg && (errno || *end || end == optarg))
                v = -1;
            if (v < 1 || v > FX_EVAL_MAX_BOOTSTRAP) {
                fprintf(stderr, "eval: --bootstrap '%s': give 1..%d replicates\n", optarg,
                        FX_EVAL_MAX_BOOTSTRAP);
                return FX_EXIT_USAGE;
            }
            job.bootstrap = (int)v;
            break;
        }
        case 'S': {
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg || optarg[0] == '-') {
                fprintf(stderr, "eval: --seed '%s': give 0..2^64-1\n", optarg);
                return FX_EXIT_USAGE;
            }
            job.seed = v;
            break;
        }
        case 'A':
        case 'P': {
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || *end || end == optarg || !(v > 0.0 && v <= 1.0)) {
                fprintf(stderr, "eval: --at-%s '%s': give a number in (0, 1]\n",
                        c == 'A' ? "sensitivity" : "specificity", optarg);
                return FX_EXIT_USAGE;
            }
            *(c == 'A' ? &job.at_sensitivity : &job.at_specificity) = v;
            break;
        }
        case 'C': {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 1 || v > FX_EVAL_MAX_BINS) {
                fprintf(stderr, "eval: --calibration-bins '%s': give 1..%d\n", optarg,
                        FX_EVAL_MAX_BINS);
                return FX_EXIT_USAGE;
            }
            job.calibration_bins = (int)v;
            break;
        }
        case 'G': job.group_by = optarg; break;
        case 'X': job.compare_dir = optarg; break;
        case 'L': job.plots_dir = optarg; break;
        case 'F': {
            want_faith = 1;
            if (!optarg)
                break;
            if (!strcmp(optarg, "all"))
                faith.images = 0;
            else if (!fx_cli_parse_int(optarg, 1, 1000000, &faith.images)) {
                fprintf(stderr, "eval: --faithfulness=%s: give a number of images or all\n",
                        optarg);
                return FX_EXIT_USAGE;
            }
            break;
        }
        case 'M': faith.model = optarg; break;
        case 'Q': {
            faith.npct = 0;
            for (char *p = optarg; *p;) {
                errno = 0;
                double v = strtod(p, &end);
                if (errno || end == p || !(v > 0 && v < 100) || faith.npct == FX_FAITH_MAX_PCT ||
                    (*end && *end != ',')) {
                    fprintf(stderr,
                            "eval: --faith-percentiles '%s': give up to %d numbers in (0, 100), "
                            "comma-separated\n",
                            optarg, FX_FAITH_MAX_PCT);
                    return FX_EXIT_USAGE;
                }
                faith.pct[faith.npct++] = v;
                p = *end ? end + 1 : end;
            }
            if (faith.npct == 0) {
                fprintf(stderr, "eval: --faith-percentiles: give at least one percentile\n");
                return FX_EXIT_USAGE;
            }
            break;
        }
        case 'N': {
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || *end || end == optarg || !(v >= 0 && v <= 10)) {
                fprintf(stderr, "eval: --faith-noise '%s': give a number in [0, 10]\n", optarg);
                return FX_EXIT_USAGE;
            }
            faith.noise = v;
            break;
        }
        case 'I': faith.store_inputs = 1; break;
        case 'h': eval_usage(stdout); return FX_EXIT_OK;
        default: eval_usage(stderr); return FX_EXIT_USAGE;
        }
    }
    if (!job.results_dir || !job.labels_path || optind < argc) {
        fprintf(stderr, "eval: %s\n",
                !job.results_dir ? "--results DIR is required (the directory `fxscreen run` wrote)"
                : !job.labels_path ? "--labels FILE is required (a labels.csv)"
                                   : "unexpected argument; give everything as --options");
        eval_usage(stderr);
        return FX_EXIT_USAGE;
    }
    if (want_faith && !faith.model) {
        fprintf(stderr, "eval: --faithfulness needs --model M (the model the run used)\n");
        return FX_EXIT_USAGE;
    }
    if (!want_faith && faith.model) {
        fprintf(stderr, "eval: --model is for --faithfulness; give both or neither\n");
        return FX_EXIT_USAGE;
    }
    if (want_faith) {
        faith.seed = job.seed;
        faith.log = stderr;
        job.faith = &faith;
    }
    fx_eval_report rep;
    fx_error err = {0};
    fx_status st = fx_eval_job_run(&job, &rep, &err);
    if (st != FX_OK) {
        fx_eval_report_free(&rep);
        fprintf(stderr, "eval: %s\n", err.msg);
        return st == FX_ERR_USAGE || st == FX_ERR_CONFIG || st == FX_ERR_FORMAT ? FX_EXIT_USAGE
                                                                                : FX_EXIT_FAIL;
    }
    fx_eval_report_print(stdout, &rep);
    fx_eval_report_free(&rep);
    return FX_EXIT_OK;
}
