/* fxscreen CLI: one entry point per subcommand, dispatched by src/cli/main.c.
 * Each takes the subcommand's own argv (argv[0] is the subcommand name) and
 * returns the process exit code:
 *   0   the run completed (inputs that failed are rows in the outputs)
 *   1   a runtime failure (an output could not be written, out of memory)
 *   2   usage or configuration error (the message names the fix)
 *   130 interrupted (Ctrl-C); outputs written so far are valid */
#ifndef FX_CLI_COMMANDS_H
#define FX_CLI_COMMANDS_H

enum { FX_EXIT_OK = 0, FX_EXIT_FAIL = 1, FX_EXIT_USAGE = 2, FX_EXIT_INTERRUPTED = 130 };

/* `fxscreen synth`: write synthetic radiographs and labels.csv (cmd_synth.c). */
int fx_cmd_synth(int argc, char **argv);

/* `fxscreen prep`: decode + preprocess into prep.h5 and summary.csv (cmd_prep.c). */
int fx_cmd_prep(int argc, char **argv);

/* `fxscreen model info|run`: inspect an ONNX model or run it on /input of an
 * HDF5 file, writing outputs and dumped tensors (cmd_model.c). */
int fx_cmd_model(int argc, char **argv);

/* `fxscreen model cam`: class activation maps for /input of an HDF5 file
 * (cmd_cam.c; argv[0] is "cam"). */
int fx_cmd_model_cam(int argc, char **argv);

/* `fxscreen run`: screen images with a model + Grad-CAM into results.h5 and summary.csv (cmd_run.c). */
int fx_cmd_run(int argc, char **argv);

/* `fxscreen merge`: the shards of a sharded run as one run's outputs (cmd_merge.c). */
int fx_cmd_merge(int argc, char **argv);

/* `fxscreen slurm submit|status`: a sharded run as a Slurm job array (cmd_slurm.c). */
int fx_cmd_slurm(int argc, char **argv);

/* `fxscreen eval`: screening statistics of a run's results against labels.csv (cmd_eval.c). */
int fx_cmd_eval(int argc, char **argv);

/* fxscreen report DIR: the run's triage report (report.html). */
int fx_cmd_report(int argc, char **argv);

/* `fxscreen serve`: the web app and REST API (cmd_serve.c). */
int fx_cmd_serve(int argc, char **argv);

/* `fxscreen audit verify`: the hash chain of serve's audit trail (cmd_serve.c). */
int fx_cmd_audit(int argc, char **argv);

#endif
