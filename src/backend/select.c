/* Choosing the engine's device for a prepared graph (--device). */
#include <stdio.h>

#include "backend/backend.h"

fx_status fx_plan_pick_device(const fx_graph *g, fx_device_kind want, fx_device_kind *got,
                              char *notice, size_t n, fx_error *err)
{
    char why[FX_ERROR_MSG_MAX - 160];
    fx_status st = fx_device_resolve(want, got, notice, n, err);
    if (st != FX_OK || *got == FX_DEVICE_CPU)
        return st;
    int bad = fx_plan_unsupported(g, FX_DEVICE_CUDA, why, sizeof why);
    if (!bad)
        return FX_OK;
    if (want == FX_DEVICE_CUDA)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "--device cuda: the CUDA backend cannot run %d node%s: %s; use "
                            "--device auto (runs the model on the CPU) or cpu",
                            bad, bad > 1 ? "s" : "", why);
    *got = FX_DEVICE_CPU;
    if (notice && n)
        snprintf(notice, n, "the CUDA backend cannot run %d node%s (%s); running on CPU", bad,
                 bad > 1 ? "s" : "", why);
    return FX_OK;
}
