/* `fxscreen synth`: write a directory of synthetic radiographs + labels.csv. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/synth.h"

static void synth_usage(FILE *f)
{
    fprintf(f,
            "usage: fxscreen synth --out DIR [options]\n"
            "Write N synthetic radiographs of long bones (about half fractured by default)\n"
            "and DIR/labels.csv with header path,label,cx,cy,x0,y0,x1,y1 (fracture centre\n"
            "and half-open box [x0,x1)x[y0,y1) in pixels; empty for normal images).\n"
            "The same seed gives byte-identical files whatever --threads.\n"
            "\n"
            "  -o, --out DIR            output directory (created if missing; required)\n"
            "  -n, --n N                number of images (default 16)\n"
            "  -s, --seed S             random seed, 0..2^64-1 (default 1)\n"
            "      --size PX            side of the square images, %d..%d (default 512)\n"
            "      --bits 8|16          8: full 0..255; 16: 12-bit detector values 0..%d\n"
            "                           stored in 16-bit samples (default 8)\n"
            "      --format png|tiff    PNG, or TIFF with Deflate (default png)\n"
            "      --fracture-rate R    probability an image is fractured, 0..1 (default 0.5)\n"
            "  -j, --threads T          OpenMP threads, 0 = all cores (default 0)\n"
            "  -h, --help               this text\n",
            FX_SYNTH_MIN_SIZE, FX_SYNTH_MAX_SIZE, FX_SYNTH_MAX_16BIT);
}

/* Print a usage error that names the fix; returns exit status 2. */
static int synth_bad(const char *what)
{
    fprintf(stderr, "synth: %s\nTry 'fxscreen synth --help'.\n", what);
    return FX_EXIT_USAGE;
}

int fx_cmd_synth(int argc, char **argv)
{
    enum { OPT_SIZE = 256, OPT_BITS, OPT_FORMAT, OPT_RATE };
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"n", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"size", required_argument, NULL, OPT_SIZE},
        {"bits", required_argument, NULL, OPT_BITS},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"fracture-rate", required_argument, NULL, OPT_RATE},
        {"threads", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fx_synth_opts o;
    fx_synth_opts_default(&o);
    char msg[300];
    optind = 0; /* full getopt reset: main may have parsed its own options */
    opterr = 0; /* we print our own messages */
    int c;
    while ((c = getopt_long(argc, argv, ":o:n:s:j:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out_dir = optarg; break;
        case 'n':
            if (!fx_cli_parse_int(optarg, 1, 10000000, &o.n)) {
                snprintf(msg, sizeof msg, "--n must be an integer 1..10000000 (got '%s')", optarg);
                return synth_bad(msg);
            }
            break;
        case 's': {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                snprintf(msg, sizeof msg, "--seed must be an unsigned integer (got '%s')", optarg);
                return synth_bad(msg);
            }
            o.seed = (uint64_t)v;
            break;
        }
        case OPT_SIZE:
            if (!fx_cli_parse_int(optarg, FX_SYNTH_MIN_SIZE, FX_SYNTH_MAX_SIZE, &o.size)) {
                snprintf(msg, sizeof msg, "--size must be an integer %d..%d (got '%s')",
                         FX_SYNTH_MIN_SIZE, FX_SYNTH_MAX_SIZE, optarg);
                return synth_bad(msg);
            }
            break;
        case OPT_BITS:
            if (!fx_cli_parse_int(optarg, 8, 16, &o.bits) || (o.bits != 8 && o.bits != 16)) {
                snprintf(msg, sizeof msg, "--bits must be 8 or 16 (got '%s')", optarg);
                return synth_bad(msg);
            }
            break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "png"))
                o.format = FX_SYNTH_PNG;
            else if (!strcmp(optarg, "tiff") || !strcmp(optarg, "tif"))
                o.format = FX_SYNTH_TIFF;
            else {
                snprintf(msg, sizeof msg, "--format must be png or tiff (got '%s')", optarg);
                return synth_bad(msg);
            }
            break;
        case OPT_RATE: {
            char *end;
            errno = 0;
            double r = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(r >= 0 && r <= 1)) {
                snprintf(msg, sizeof msg, "--fracture-rate must be a number in 0..1 (got '%s')",
                         optarg);
                return synth_bad(msg);
            }
            o.fracture_rate = r;
            break;
        }
        case 'j':
            if (!fx_cli_parse_int(optarg, 0, 1024, &o.threads)) {
                snprintf(msg, sizeof msg, "--threads must be an integer 0..1024 (got '%s')",
                         optarg);
                return synth_bad(msg);
            }
            break;
        case 'h': synth_usage(stdout); return FX_EXIT_OK;
        case ':':
            snprintf(msg, sizeof msg, "option '%s' needs a value", argv[optind - 1]);
            return synth_bad(msg);
        default:
            snprintf(msg, sizeof msg, "unknown option '%s'", argv[optind - 1]);
            return synth_bad(msg);
        }
    }
    if (optind < argc) {
        snprintf(msg, sizeof msg, "unexpected argument '%s' (options take --name VALUE)",
                 argv[optind]);
        return synth_bad(msg);
    }
    if (!o.out_dir || !o.out_dir[0])
        return synth_bad("an output directory is required: add --out DIR");

    fx_error err = {0};
    int k = 0;
    fx_status st = fx_synth_run_ex(&o, &k, &err);
    if (st != FX_OK) {
        fprintf(stderr, "synth: %s\n", err.msg[0] ? err.msg : fx_status_str(st));
        return st == FX_ERR_USAGE ? FX_EXIT_USAGE : FX_EXIT_FAIL;
    }
    printf("synth: wrote %d images (%d fractured) to %s\n", o.n, k, o.out_dir);
    return FX_EXIT_OK;
}
