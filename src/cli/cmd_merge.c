/* fxscreen merge --out DIR SHARD_DIRS...: argument parsing; the work is
 * fx_merge_run(). */
#include <getopt.h>
#include <stdio.h>

#include "cli/commands.h"
#include "fxscreen/merge.h"

static void merge_usage(FILE *f)
{
    fprintf(f, "usage: fxscreen merge --out DIR SHARD_DIRS...\n"
               "Merge the --out directories of `fxscreen run --shard I/N` (every shard, once)\n"
               "into DIR/results.h5 and DIR/summary.csv in input order, as one unsharded run\n"
               "writes them; overlays are linked under their global row numbers.  Refuses\n"
               "(exit 2, nothing written) shards that are incomplete, missing or given twice,\n"
               "or made with another model, config or input list, naming the directory.\n"
               "  --out DIR  a fresh directory (created if missing)\n"
               "  --quiet    no summary line\n");
}

int fx_cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': merge_usage(stdout); return FX_EXIT_OK;
        default: merge_usage(stderr); return FX_EXIT_USAGE;
        }
    }
    if (!out || optind >= argc) {
        fprintf(stderr, "merge: %s\n", !out ? "--out DIR is required" : "no SHARD_DIRS given");
        merge_usage(stderr);
        return FX_EXIT_USAGE;
    }
    fx_merge_result res;
    fx_error err = {0};
    fx_status st =
        fx_merge_run(out, (const char *const *)(argv + optind), argc - optind, stderr, &res, &err);
    if (st != FX_OK) {
        fprintf(stderr, "merge: %s\n", err.msg);
        return st == FX_ERR_USAGE ? FX_EXIT_USAGE : FX_EXIT_FAIL;
    }
    if (!quiet)
        fprintf(stderr, "merge: %d shards, %zu rows into %s/results.h5 and %s/summary.csv%s\n",
                res.shards, res.rows, out, out, res.overlays ? " (and overlays/)" : "");
    return FX_EXIT_OK;
}
