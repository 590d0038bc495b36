/* Device choice: CPU, CUDA, or AUTO (CUDA if built with it and present). */
#include "fxscreen/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FX_HAVE_CUDA
#include "fxscreen/cuda_kernels.h"
#endif

int fx_device_parse(const char *s, fx_device_kind *out)
{
    return fx_device_parse_spec(s, out, NULL);
}

int fx_device_parse_spec(const char *s, fx_device_kind *out, int *index)
{
    if (s && !strncmp(s, "cuda:", 5)) {
        char *end;
        long v = strtol(s + 5, &end, 10);
        if (s[5] < '0' || s[5] > '9' || *end || v < 0 || v > 63)
            return -1;
        *out = FX_DEVICE_CUDA;
        if (index)
            *index = (int)v;
        return 0;
    }
    if (index && s)
        *index = 0;
    static const struct {
        const char *name;
        fx_device_kind kind;
    } names[] = {{"auto", FX_DEVICE_AUTO}, {"cpu", FX_DEVICE_CPU}, {"cuda", FX_DEVICE_CUDA}};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].kind;
            return 0;
        }
    return -1;
}

const char *fx_device_name(fx_device_kind k)
{
    switch (k) {
    case FX_DEVICE_AUTO: return "auto";
    case FX_DEVICE_CPU: return "cpu";
    case FX_DEVICE_CUDA: return "cuda";
    }
    return "?";
}

/* Why CUDA cannot be used, or "" when it can. */
static void cuda_unavailable(char *why, size_t n)
{
#ifdef FX_HAVE_CUDA
    fx_error e = {0};
    int count = 0;
    if (fx_cuda_device_count(&count, &e) != FX_OK)
        snprintf(why, n, "%s", e.msg);
    else if (count < 1)
        snprintf(why, n, "the CUDA runtime reports 0 devices");
    else
        why[0] = '\0';
#else
    snprintf(why, n, "this build has no CUDA support (nvcc was not found or CUDA=0)");
#endif
}

fx_status fx_device_resolve(fx_device_kind want, fx_device_kind *got, char *notice, size_t n,
                            fx_error *err)
{
    if (notice && n)
        notice[0] = '\0';
    if (want == FX_DEVICE_CPU) {
        *got = FX_DEVICE_CPU;
        return FX_OK;
    }
    if (want != FX_DEVICE_AUTO && want != FX_DEVICE_CUDA)
        return fx_error_set(err, FX_ERR_USAGE, "device: unknown kind %d", (int)want);
    char why[FX_ERROR_MSG_MAX - 64];
    cuda_unavailable(why, sizeof why);
    if (!why[0]) {
        *got = FX_DEVICE_CUDA;
        return FX_OK;
    }
    if (want == FX_DEVICE_CUDA)
        return fx_error_set(err, FX_ERR_DEVICE, "--device cuda: %s; use --device cpu or auto", why);
    *got = FX_DEVICE_CPU;
    if (notice && n)
        snprintf(notice, n, "no CUDA device found (%s); running on CPU", why);
    return FX_OK;
}

static const char *const prec_names[] = {"default", "fp32", "tf32", "fp16", "bf16"};

int fx_precision_parse(const char *s, fx_precision *out)
{
    for (int i = 0; s && i < (int)(sizeof prec_names / sizeof prec_names[0]); i++)
        if (!strcmp(s, prec_names[i])) {
            *out = (fx_precision)i;
            return 0;
        }
    return -1;
}

const char *fx_precision_name(fx_precision p)
{
    return (unsigned)p < sizeof prec_names / sizeof prec_names[0] ? prec_names[p] : "?";
}
