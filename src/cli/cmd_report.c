/* fxscreen report DIR: argument parsing; the work is fx_report_write(). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/report.h"

static void report_usage(FILE *f)
{
    fprintf(f,
            "usage: fxscreen report DIR [options]\n"
            "Write the triage report of a `fxscreen run` directory: one self-contained HTML file\n"
            "that opens offline (no network, nothing beside it): the run's summary, the eval\n"
            "metrics and plots when `fxscreen eval` ran on DIR, and the worklist sorted by\n"
            "probability with a Grad-CAM thumbnail per row (the originals are decoded again),\n"
            "filter, search, keyboard navigation, the full-size overlay beside the original,\n"
            "the error rows with their reasons, and a print layout.\n"
            "  --out FILE      the report (default DIR/report.html)\n"
            "  --plots DIR2    the eval plots' directory (default DIR/plots when present)\n"
            "  --title TEXT    the page's title\n"
            "  --thumb N       thumbnail's longer side, 16..512 px (default 160)\n"
            "  --view N        full-size view's longer side, 64..4096 px (default 1024)\n"
            "  --views N|all   rows with an embedded full-size view, highest probability\n"
            "                  first (default 1000; each adds about 100-300 KB)\n"
            "  --quality Q     JPEG quality of the pictures, 30..100 (default 85)\n"
            "  --quiet         no summary line\n");
}

int fx_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},     {"plots", required_argument, 0, 'p'},
        {"title", required_argument, 0, 't'},   {"thumb", required_argument, 0, 'T'},
        {"view", required_argument, 0, 'V'},    {"views", required_argument, 0, 'n'},
        {"quality", required_argument, 0, 'Q'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    fx_report_opts o;
    fx_report_opts_default(&o);
    int quiet = 0, c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'p': o.plots = optarg; break;
        case 't': o.title = optarg; break;
        case 'T': bad |= !fx_cli_parse_int(optarg, -1000000, 1000000, &o.thumb); break;
        case 'V': bad |= !fx_cli_parse_int(optarg, -1000000, 1000000, &o.view); break;
        case 'n':
            if (!strcmp(optarg, "all"))
                o.views = -1;
            else
                bad |= !fx_cli_parse_int(optarg, 0, 1000000, &o.views);
            break;
        case 'Q': bad |= !fx_cli_parse_int(optarg, -1000000, 1000000, &o.quality); break;
        case 'q': quiet = 1; break;
        case 'h': report_usage(stdout); return FX_EXIT_OK;
        default: report_usage(stderr); return FX_EXIT_USAGE;
        }
    }
    if (bad || optind != argc - 1) {
        fprintf(stderr, "report: %s\n",
                bad ? "--thumb, --view, --views and --quality take whole numbers"
                    : "give one run directory");
        report_usage(stderr);
        return FX_EXIT_USAGE;
    }
    fx_report_result res;
    fx_error err = {0};
    fx_status st = fx_report_write(argv[optind], &o, quiet ? NULL : stderr, &res, &err);
    if (st != FX_OK) {
        fprintf(stderr, "report: %s\n", err.msg);
        return st == FX_ERR_USAGE ? FX_EXIT_USAGE : FX_EXIT_FAIL;
    }
    if (!quiet) {
        fprintf(stderr, "report: %zu rows (%zu errors), %zu with pictures, %zu full-size views",
                res.rows, res.errors, res.pictured, res.views);
        if (res.unreadable)
            fprintf(stderr, ", %zu originals not readable again (listed without pictures)",
                    res.unreadable);
        fprintf(stderr, "; wrote %s (%.1f MB)\n", res.out, (double)res.bytes / 1e6);
    }
    return FX_EXIT_OK;
}
