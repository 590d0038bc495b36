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

int fx_device_parse_list(const char *s, fx_device_kind *kind, fx_device_list *list)
{
    fx_device_list l = {1, 0, {0}};
    fx_device_kind k;
    if (s && !strcmp(s, "cuda:all")) {
        *kind = FX_DEVICE_CUDA;
        *list = (fx_device_list){0, 1, {0}};
        return 0;
    }
    if (s && !strncmp(s, "cuda:", 5) && strchr(s, ',')) {
        l.n = 0;
        for (const char *p = s + 5;; p++) {
            char *end;
            long v = strtol(p, &end, 10);
            if (*p < '0' || *p > '9' || v > 63 || l.n == FX_MAX_ENGINES || (*end && *end != ','))
                return -1;
            l.index[l.n++] = (int)v;
            if (!*end)
                break;
            p = end;
        }
        *kind = FX_DEVICE_CUDA;
        *list = l;
        return 0;
    }
    if (fx_device_parse_spec(s, &k, &l.index[0]))
        return -1;
    *kind = k;
    *list = l;
    return 0;
}

void fx_device_list_spec(fx_device_kind kind, const fx_device_list *list, char *out, size_t n)
{
    if (kind != FX_DEVICE_CUDA || (!list->all && list->n == 1 && list->index[0] == 0)) {
        snprintf(out, n, "%s", fx_device_name(kind));
        return;
    }
    if (list->all) {
        snprintf(out, n, "cuda:all");
        return;
    }
    size_t len = (size_t)snprintf(out, n, "cuda:");
    for (int i = 0; i < list->n && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%d", i ? "," : "", list->index[i]);
}

fx_status fx_device_list_resolve(fx_device_list *list, fx_error *err)
{
    if (!list->all)
        return FX_OK;
#ifdef FX_HAVE_CUDA
    int count = 0;
    fx_status st = fx_cuda_device_count(&count, err);
    if (st != FX_OK) {
        fx_error_prefix(err, "--device cuda:all");
        return st;
    }
    if (count < 1)
        return fx_error_set(err, FX_ERR_DEVICE,
                            "--device cuda:all: the CUDA runtime reports 0 devices; use --device "
                            "cpu or auto");
    list->n = count < FX_MAX_ENGINES ? count : FX_MAX_ENGINES;
    for (int i = 0; i < list->n; i++)
        list->index[i] = i;
    list->all = 0;
    return FX_OK;
#else
    return fx_error_set(err, FX_ERR_DEVICE,
                        "--device cuda:all: this build has no CUDA support; use --device cpu or "
                        "auto");
#endif
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

void fx_device_cuda_why(char *why, size_t n)
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
    fx_device_cuda_why(why, sizeof why);
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
