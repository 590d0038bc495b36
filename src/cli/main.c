/* fxscreen: command-line entry.  Thin: parses the subcommand and hands off
 * to src/cli/cmd_*.c, which call the library. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"synth", fx_cmd_synth, "generate synthetic radiographs with ground truth"},
    {"prep", fx_cmd_prep, "decode + preprocess inputs into prep.h5 and summary.csv (dataset QA)"},
    {"model", fx_cmd_model, "inspect an ONNX model (info) or run it on an HDF5 batch (run)"},
    {"run", fx_cmd_run,
     "screen images: model + Grad-CAM into results.h5 and summary.csv (--resume)"},
    {"merge", fx_cmd_merge, "merge the shards of `run --shard I/N` into one run's outputs"},
    {"slurm", fx_cmd_slurm, "submit a sharded run as a Slurm job array + merge; show progress"},
    {"serve", fx_cmd_serve,
     "the web app and REST API: upload an X-ray, get prediction, confidence, overlay"},
    {"audit", fx_cmd_audit, "verify the hash chain of a serve --audit trail"},
    {"eval", fx_cmd_eval,
     "score a run's results against labels: AUROC, sens/spec, kappa, pointing game"},
    {"report", fx_cmd_report, "write a run's triage report: one self-contained report.html"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: fxscreen COMMAND [options]   (fxscreen COMMAND --help for details)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nexit codes: 0 completed (failed inputs are rows), 1 runtime failure,\n"
               "            2 usage/config error, 130 interrupted (outputs stay valid)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return FX_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return FX_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("fxscreen %s\n", FX_VERSION);
        return FX_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "fxscreen: unknown command '%s'; run 'fxscreen --help' for the list\n",
            argv[1]);
    return FX_EXIT_USAGE;
}
