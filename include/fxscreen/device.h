/* fxscreen: choosing where compute runs (CPU or a CUDA GPU).
 *
 * A build has CUDA when the Makefile found nvcc (it then defines
 * FX_HAVE_CUDA); even then the machine may have no GPU, so the choice is made
 * at run time by fx_device_resolve. */
#ifndef FXSCREEN_DEVICE_H
#define FXSCREEN_DEVICE_H

#include <stddef.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fx_device_kind { FX_DEVICE_AUTO = 0, FX_DEVICE_CPU, FX_DEVICE_CUDA } fx_device_kind;

/* Parse "auto", "cpu", "cuda" or "cuda:N" (N a device ordinal, 0..63;
 * case-sensitive).  Returns 0 and sets *out, or -1 (and leaves *out alone)
 * for anything else. */
int fx_device_parse(const char *s, fx_device_kind *out);

/* The same, also giving the ordinal (0 unless "cuda:N"); index may be NULL. */
int fx_device_parse_spec(const char *s, fx_device_kind *out, int *index);

/* The engines of a `run` (issue 12): one per listed CUDA ordinal, fed by
 * one reader pool and written by one writer.  An ordinal may repeat
 * ("cuda:0,0": two engines on one GPU); "cuda:all" is one per device
 * found when the run starts (all = 1, n = 0 until fx_device_list_resolve). */
#define FX_MAX_ENGINES 16
typedef struct fx_device_list {
    int n;
    int all;
    int index[FX_MAX_ENGINES];
} fx_device_list;

/* Parse what fx_device_parse_spec takes plus "cuda:N,M,..." and
 * "cuda:all" into *kind and *list (n = 1, index 0 for a single device).
 * 0, or -1 (both left alone) for anything else. */
int fx_device_parse_list(const char *s, fx_device_kind *kind, fx_device_list *list);

/* The spelling --device takes back ("cuda:0,1", "cuda:all", "cpu"). */
void fx_device_list_spec(fx_device_kind kind, const fx_device_list *list, char *out, size_t n);

/* "cuda:all": one entry per device the CUDA runtime reports (at most
 * FX_MAX_ENGINES); FX_ERR_DEVICE naming why when none answers.  Any other
 * list is left as it is. */
fx_status fx_device_list_resolve(fx_device_list *list, fx_error *err);

/* The engine's arithmetic on a GPU: activations and weights stored as
 * float32 (FP32: TF32 tensor cores off; TF32: on), or as fp16 / bf16 with
 * fp32 accumulation.  The CPU engine always computes in float32.
 * FX_PREC_DEFAULT: the GPU default, FX_PREC_GPU_DEFAULT (README says why). */
typedef enum fx_precision {
    FX_PREC_DEFAULT = 0,
    FX_PREC_FP32,
    FX_PREC_TF32,
    FX_PREC_FP16,
    FX_PREC_BF16,
} fx_precision;
#define FX_PREC_GPU_DEFAULT FX_PREC_FP32

/* "fp32", "tf32", "fp16", "bf16" (and "default"); 0 or -1 as above. */
int fx_precision_parse(const char *s, fx_precision *out);
const char *fx_precision_name(fx_precision p);

/* "auto", "cpu" or "cuda". Never NULL. */
const char *fx_device_name(fx_device_kind k);

/* Why CUDA cannot be used here (no CUDA in this build, no driver, no
 * device), or "" when it can. */
void fx_device_cuda_why(char *why, size_t n);

/* Decide where to run.
 *   CPU  -> CPU.
 *   AUTO -> CUDA when the build has CUDA and at least one device answers,
 *           else CPU, with a one-line notice ("no CUDA device found (why);
 *           running on CPU") written into notice[0..n).
 *   CUDA -> CUDA, or FX_ERR_DEVICE naming why it is unavailable.
 * notice (may be NULL) is set to "" when there is nothing to say. */
fx_status fx_device_resolve(fx_device_kind want, fx_device_kind *got, char *notice, size_t n,
                            fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
