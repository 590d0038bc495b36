#include "cli/args.h"
#include "cli/commands.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int fx_cli_parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

void fx_cli_progress(void *ctx, const fx_progress *p)
{
    double rate = p->seconds > 0 ? (double)p->done / p->seconds : 0;
    fprintf(stderr, "\r%s: %zu", (const char *)ctx, p->done);
    if (p->total >= 0)
        fprintf(stderr, "/%ld", p->total);
    fprintf(stderr, " images, %zu errors, %.1f img/s", p->errors, rate);
    if (p->total >= 0 && rate > 0) {
        double eta = ((double)p->total - (double)p->done) / rate;
        fprintf(stderr, ", ETA %dm%02ds", (int)(eta / 60), (int)eta % 60);
    }
    fputs("   ", stderr);
    fflush(stderr);
}

int fx_cli_read_input(const char *cmd, const char *path, unsigned max_dim, int float_only,
                      float **out, hsize_t dims[4])
{
    int rc = FX_EXIT_USAGE;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = -1, sp = -1, ty = -1;
    if (f < 0) {
        fprintf(stderr,
                "%s: %s: cannot open as HDF5 (--input wants an .h5 file with a "
                "float32 dataset /input of shape N x C x H x W)\n",
                cmd, path);
        return rc;
    }
    if (H5Lexists(f, "input", H5P_DEFAULT) <= 0 || (ds = H5Dopen2(f, "input", H5P_DEFAULT)) < 0) {
        fprintf(stderr,
                "%s: %s: no dataset /input (write the batch there as float32 "
                "N x C x H x W)\n",
                cmd, path);
        goto done;
    }
    sp = H5Dget_space(ds);
    ty = H5Dget_type(ds);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int not_float = float_only && H5Tget_class(ty) != H5T_FLOAT;
    if (rank != 4 || not_float) {
        fprintf(stderr,
                "%s: %s: /input must be a rank-4 %sdataset (N x C x H x W), "
                "found rank %d%s\n",
                cmd, path, float_only ? "float " : "", rank,
                not_float ? " of a non-float type" : "");
        goto done;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; i < 4; i++)
        if (dims[i] < 1 || dims[i] > max_dim) {
            fprintf(stderr, "%s: %s: /input dimension %d is %llu (want 1..%u)\n", cmd, path, i,
                    (unsigned long long)dims[i], max_dim);
            goto done;
        }
    if (dims[0] * dims[1] > SIZE_MAX / sizeof(float) / dims[2] / dims[3]) {
        fprintf(stderr, "%s: %s: /input is too large\n", cmd, path);
        goto done;
    }
    size_t n = (size_t)(dims[0] * dims[1] * dims[2] * dims[3]);
    rc = FX_EXIT_FAIL;
    if (!(*out = malloc(n * sizeof(float)))) {
        fprintf(stderr, "%s: out of memory reading %s (%zu floats)\n", cmd, path, n);
        goto done;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        fprintf(stderr, "%s: %s: cannot read /input\n", cmd, path);
        free(*out);
        *out = NULL;
        goto done;
    }
    rc = FX_EXIT_OK;
done:
    if (ty >= 0)
        H5Tclose(ty);
    if (sp >= 0)
        H5Sclose(sp);
    if (ds >= 0)
        H5Dclose(ds);
    H5Fclose(f);
    return rc;
}

int fx_cli_device(const char *cmd, const char *arg, fx_device_kind *kind, int *index)
{
    if (!fx_device_parse_spec(arg, kind, index))
        return 1;
    fprintf(stderr, "%s: --device '%s': use auto, cpu, cuda or cuda:N\n", cmd, arg);
    return 0;
}

int fx_cli_precision(const char *cmd, const char *arg, fx_precision *prec)
{
    if (!fx_precision_parse(arg, prec))
        return 1;
    fprintf(stderr, "%s: --precision '%s': use fp32, tf32, fp16 or bf16\n", cmd, arg);
    return 0;
}
