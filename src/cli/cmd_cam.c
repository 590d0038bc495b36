/* fxscreen model cam: class activation maps for an HDF5 batch.  The work is
 * the cam library (include/fxscreen/cam.h); this file parses arguments and
 * moves tensors through HDF5, mirroring `model run`. */
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/cam.h"
#include "fxscreen/h5util.h"
#include "fxscreen/keras.h"
#include "fxscreen/onnx.h"
#include "fxscreen/sha256.h"

#define CAM_MAX_TARGETS 4096

static void cam_usage(FILE *f)
{
    fprintf(f, "usage: fxscreen model cam MODEL --input IN.h5 --output OUT.h5\n"
               "                          [--method M] [--layer NAME] [--target K[,K...]]\n"
               "                          [--frac F] [--no-shortcut]\n"
               "\n"
               "Reads the float32 NCHW dataset /input of IN.h5 and writes OUT.h5 with\n"
               "  /cam         N x H x W float32, the maps at input resolution in [0, 1]\n"
               "  /cam_lowres  N x h x w float32, the same on the layer's grid\n"
               "  /target      N int32, the class each map explains\n"
               "  /logits      N x K float32\n"
               "  /peak        N x 2 float64 (x, y) of each map's maximum, input pixels\n"
               "  /box         N x 4 float64 (x0, y0, x1, y1) around the pixels >= F * peak\n"
               "and root attributes layer, method, shortcut, frac, model, model_sha256,\n"
               "fxscreen_version, input.\n"
               "  --method M     gradcam (default), gradcam++, xgradcam, hirescam, layercam,\n"
               "                 eigencam\n"
               "  --layer NAME   the feature map (default: the suggested Grad-CAM layer that\n"
               "                 `fxscreen model info` prints)\n"
               "  --target K     class to explain: one for every image, or one per image\n"
               "                 (comma-separated; -1 = predicted).  Default: the predicted\n"
               "                 class; for a one-logit (sigmoid) model, the fracture logit\n"
               "  --frac F       box threshold as a fraction of the peak (default 0.5)\n"
               "  --no-shortcut  always run the backward pass (tests; the exact GAP + Gemm\n"
               "                 shortcut gives the same maps)\n"
               "  --device D     where the forward runs: auto (default: the GPU when one\n"
               "                 answers and runs every node, else the CPU with a notice), cpu,\n"
               "                 cuda or cuda:N; the maps are computed on the CPU\n"
               "  --precision P  the GPU's arithmetic: fp32 (default), tf32, fp16, bf16\n");
}

static fx_status put(hid_t f, const char *name, hid_t type, hid_t mem, int rank,
                     const hsize_t *dims, const void *data, fx_error *err)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = sp >= 0 ? H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    fx_status st = FX_OK;
    if (ds < 0 || H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = fx_error_set(err, FX_ERR_IO, "cannot write dataset /%s", name);
    if (ds >= 0)
        H5Dclose(ds);
    if (sp >= 0)
        H5Sclose(sp);
    return st;
}

/* Writes every dataset and attribute of the result into the open file f. */
static fx_status write_result(hid_t f, const fx_cam_result *r, const char *model, const char *in,
                              const char *method, double frac, fx_error *err)
{
    hsize_t d3[3] = {(hsize_t)r->n, (hsize_t)r->in_h, (hsize_t)r->in_w};
    hsize_t l3[3] = {(hsize_t)r->n, (hsize_t)r->h, (hsize_t)r->w};
    hsize_t d1[1] = {(hsize_t)r->n}, k2[2] = {(hsize_t)r->n, (hsize_t)r->k};
    hsize_t p2[2] = {(hsize_t)r->n, 2}, b2[2] = {(hsize_t)r->n, 4};
    double *peak = malloc((size_t)r->n * 6 * sizeof(double)), *box = peak + 2 * r->n;
    char sha[FX_SHA256_HEX];
    if (!peak)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    for (int i = 0; i < r->n; i++) {
        fx_cam_region g;
        fx_cam_locate(r->cam + (size_t)i * r->in_h * r->in_w, r->in_h, r->in_w, NULL, frac, &g);
        peak[2 * i] = g.peak_x, peak[2 * i + 1] = g.peak_y;
        box[4 * i] = g.x0, box[4 * i + 1] = g.y0, box[4 * i + 2] = g.x1, box[4 * i + 3] = g.y1;
    }
    fx_status st = put(f, "cam", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d3, r->cam, err);
    if (st == FX_OK)
        st = put(f, "cam_lowres", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, l3, r->cam_low, err);
    if (st == FX_OK)
        st = put(f, "target", H5T_STD_I32LE, H5T_NATIVE_INT, 1, d1, r->target, err);
    if (st == FX_OK)
        st = put(f, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, k2, r->logits, err);
    if (st == FX_OK)
        st = put(f, "peak", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, p2, peak, err);
    if (st == FX_OK)
        st = put(f, "box", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, b2, box, err);
    free(peak);
    if (st == FX_OK && (st = fx_sha256_file(model, sha, err)) == FX_OK &&
        (st = fx_h5_attr_str(f, "layer", r->layer, err)) == FX_OK &&
        (st = fx_h5_attr_str(f, "method", method, err)) == FX_OK &&
        (st = fx_h5_attr_i64(f, "shortcut", r->shortcut, err)) == FX_OK &&
        (st = fx_h5_attr_str(f, "model", model, err)) == FX_OK &&
        (st = fx_h5_attr_str(f, "model_sha256", sha, err)) == FX_OK &&
        (st = fx_h5_attr_str(f, "fxscreen_version", FX_VERSION, err)) == FX_OK)
        st = fx_h5_attr_str(f, "input", in, err);
    if (st == FX_OK) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "frac", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &frac) < 0)
            st = fx_error_set(err, FX_ERR_IO, "cannot write attribute frac");
        if (a >= 0)
            H5Aclose(a);
        H5Sclose(sp);
    }
    return st;
}

/* "K" or "K,K,...": count parsed into t; -1 on a bad list. */
static int parse_targets(const char *s, int *t)
{
    int n = 0;
    for (const char *q = s; *q && n < CAM_MAX_TARGETS;) {
        char *end;
        errno = 0;
        long v = strtol(q, &end, 10);
        if (end == q || errno || v < -1 || v > 1 << 20 || (*end && *end != ','))
            return -1;
        t[n++] = (int)v;
        q = *end ? end + 1 : end;
    }
    return n;
}

typedef struct cam_args {
    const char *in, *out, *model, *layer, *method, *targets;
    double frac;
    int no_shortcut;
    fx_device_kind device;
    int device_index;
    fx_precision precision;
} cam_args;

/* Parses argv into a; exit code (-1: go on). */
static int cam_parse(int argc, char **argv, cam_args *a)
{
    static const struct option opts[] = {{"input", required_argument, 0, 'i'},
                                         {"output", required_argument, 0, 'o'},
                                         {"layer", required_argument, 0, 'l'},
                                         {"method", required_argument, 0, 'm'},
                                         {"target", required_argument, 0, 't'},
                                         {"frac", required_argument, 0, 'f'},
                                         {"no-shortcut", no_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {"device", required_argument, 0, 'D'},
                                         {"precision", required_argument, 0, 'P'},
                                         {0, 0, 0, 0}};
    int c;
    char *end;
    *a = (cam_args){.method = "gradcam", .frac = 0.5};
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:l:m:t:f:nD:P:h", opts, NULL)) != -1) {
        switch (c) {
        case 'D':
            if (!fx_cli_device("model cam", optarg, &a->device, &a->device_index))
                return FX_EXIT_USAGE;
            break;
        case 'P':
            if (!fx_cli_precision("model cam", optarg, &a->precision))
                return FX_EXIT_USAGE;
            break;
        case 'i': a->in = optarg; break;
        case 'o': a->out = optarg; break;
        case 'l': a->layer = optarg; break;
        case 'm': a->method = optarg; break;
        case 't': a->targets = optarg; break;
        case 'n': a->no_shortcut = 1; break;
        case 'f':
            a->frac = strtod(optarg, &end);
            if (*end || !(a->frac > 0.0 && a->frac <= 1.0)) {
                fprintf(stderr, "model cam: --frac '%s': want a number in (0, 1]\n", optarg);
                return FX_EXIT_USAGE;
            }
            break;
        case 'h': cam_usage(stdout); return FX_EXIT_OK;
        default: cam_usage(stderr); return FX_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !a->in || !a->out) {
        fprintf(stderr,
                "model cam: %s; usage: fxscreen model cam MODEL --input IN.h5 --output "
                "OUT.h5 [--method M] [--layer NAME] [--target K]\n",
                optind >= argc       ? "no MODEL given"
                : optind != argc - 1 ? "give exactly one MODEL"
                : !a->in             ? "--input IN.h5 is required"
                                     : "--output OUT.h5 is required");
        return FX_EXIT_USAGE;
    }
    a->model = argv[optind];
    return -1;
}

/* Targets for a batch of n: from --target (one for all, or one each). */
static int cam_targets(const cam_args *a, int n, int **out)
{
    int t[CAM_MAX_TARGETS], k = a->targets ? parse_targets(a->targets, t) : 0;
    if (k < 0 || (k > 1 && k != n)) {
        fprintf(stderr,
                "model cam: --target '%s': give one class, or %d comma-separated classes "
                "(one per image; -1 = predicted)\n",
                a->targets, n);
        return FX_EXIT_USAGE;
    }
    if (!(*out = malloc((size_t)n * sizeof **out)))
        return FX_EXIT_FAIL;
    for (int i = 0; i < n; i++)
        (*out)[i] = k == 0 ? -1 : k == 1 ? t[0] : t[i];
    return FX_EXIT_OK;
}

/* Writes OUT.h5 through a temporary file renamed at the end. */
static int cam_write(const cam_args *a, const fx_cam_result *r)
{
    char tmp[4096];
    fx_error err = {0};
    snprintf(tmp, sizeof tmp, "%s.tmp", a->out);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr,
                "model cam: cannot create %s (check the --output directory exists and is "
                "writable)\n",
                tmp);
        return FX_EXIT_USAGE;
    }
    fx_status st = write_result(f, r, a->model, a->in, a->method, a->frac, &err);
    if (H5Fclose(f) < 0 && st == FX_OK)
        st = fx_error_set(&err, FX_ERR_IO, "cannot finish writing %s", tmp);
    if (st == FX_OK && rename(tmp, a->out))
        st = fx_error_set(&err, FX_ERR_IO, "cannot rename %s to %s: %s", tmp, a->out,
                          strerror(errno));
    if (st != FX_OK) {
        fprintf(stderr, "model cam: %s\n", err.msg);
        remove(tmp);
        return FX_EXIT_FAIL;
    }
    return FX_EXIT_OK;
}

int fx_cmd_model_cam(int argc, char **argv)
{
    cam_args a;
    int rc = cam_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    fx_cam_opts o = {.no_shortcut = a.no_shortcut};
    fx_error err = {0};
    if (fx_cam_method_parse(a.method, &o.method, &err) != FX_OK) {
        fprintf(stderr, "model cam: %s\n", err.msg);
        return FX_EXIT_USAGE;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    float *x = NULL;
    int *targets = NULL;
    hsize_t dims[4];
    fx_graph *g = NULL;
    fx_cam_result r = {0};
    fx_status st;
    if ((rc = fx_cli_read_input("model cam", a.in, 1u << 16, 0, &x, dims)) ||
        (rc = cam_targets(&a, (int)dims[0], &targets)))
        goto done;
    rc = FX_EXIT_USAGE;
    if ((st = fx_model_load(a.model, &g, &err)) != FX_OK ||
        (st = fx_graph_check_supported(g, &err)) != FX_OK ||
        (st = fx_graph_prepare(g, (int)dims[0], (int)dims[2], (int)dims[3], &err)) != FX_OK) {
        fprintf(stderr, "model cam: %s: %s\n", a.model, err.msg);
        rc = st == FX_ERR_NOMEM || st == FX_ERR_INTERNAL ? FX_EXIT_FAIL : FX_EXIT_USAGE;
        goto done;
    }
    o.layer = a.layer;
    o.targets = targets;
    char notice[FX_ERROR_MSG_MAX];
    if (fx_plan_pick_device(g, a.device, &o.device, notice, sizeof notice, &err) != FX_OK) {
        fprintf(stderr, "model cam: %s: %s\n", a.model, err.msg);
        goto done;
    }
    if (notice[0])
        fprintf(stderr, "model cam: %s\n", notice);
    o.device_index = a.device_index;
    o.precision = a.precision;
    if ((st = fx_cam_run(g, x, &o, &r, &err)) != FX_OK) {
        fprintf(stderr, "model cam: %s: %s\n", a.model, err.msg);
        rc = st == FX_ERR_USAGE || st == FX_ERR_UNSUPPORTED ? FX_EXIT_USAGE : FX_EXIT_FAIL;
        goto done;
    }
    if ((rc = cam_write(&a, &r)) == FX_EXIT_OK)
        fprintf(stderr, "model cam: %s of '%s' (%d x %d) for %d images -> %s%s\n", a.method,
                r.layer, r.h, r.w, r.n, a.out, r.shortcut ? " (GAP+Gemm shortcut)" : "");
done:
    fx_cam_result_free(&r);
    fx_graph_destroy(g);
    free(targets);
    free(x);
    return rc;
}
