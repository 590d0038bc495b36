/* fxscreen model info|run: inspect an ONNX model, or run it on an HDF5
 * batch (the scripting and conformance door).  The work is the graph
 * library (fx_onnx_load, fx_graph_prepare, fx_plan_run); this file parses
 * arguments, formats the table and moves tensors through HDF5. */
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/graph.h"
#include "fxscreen/h5util.h"
#include "fxscreen/keras.h"
#include "fxscreen/onnx.h"
#include "fxscreen/sha256.h"

#define MAX_DUMP 64

static void model_usage(FILE *f)
{
    fprintf(f, "usage: fxscreen model info MODEL [--input-size HxW] [--batch N]\n"
               "       fxscreen model run MODEL --input IN.h5 --output OUT.h5 [--dump NAME,...]\n"
               "       fxscreen model cam MODEL --input IN.h5 --output OUT.h5 [--method M] ...\n"
               "                          (class activation maps; `model cam --help`)\n"
               "\n"
               "info   prints every node (after BatchNorm folding and the other load-time\n"
               "       rewrites) with its op, output shape, parameters, multiply-accumulates\n"
               "       and output tensor (the name --dump takes),\n"
               "       the totals, the inputs and outputs, the suggested Grad-CAM layer\n"
               "       (the last 4-D tensor with spatial extent > 1 before global pooling)\n"
               "       and whether the CUDA backend runs every node (else which it cannot).\n"
               "  --input-size HxW  input height x width (default: the model's, if static,\n"
               "                    else 224x224)\n"
               "  --batch N         batch size the MACs are counted for (default 1)\n"
               "\n"
               "run    reads the float32 NCHW dataset /input of IN.h5 (batch and H x W are\n"
               "       taken from its shape) and writes OUT.h5 with every graph output and\n"
               "       every --dump tensor as a float32 dataset named after the tensor, '/' in\n"
               "       the name replaced by '_' (attribute `tensor` keeps the original name).\n"
               "       Root attributes: model, model_sha256, fxscreen_version.\n"
               "  --dump NAME,...   intermediate tensors to write too (the output tensor\n"
               "                    names `model info` prints; may be repeated)\n"
               "  --device D        auto (default: the GPU when one answers and runs every\n"
               "                    node, else the CPU with a notice), cpu, cuda or cuda:N\n"
               "  --precision P     the GPU's arithmetic: fp32 (default), tf32, fp16, bf16\n"
               "\n"
               "Exit codes: 0 ok, 1 runtime failure, 2 usage/model error (unsupported ops are\n"
               "all listed at once).\n");
}

/* ---- shared: load, check, prepare ---------------------------------------- */

static void shape_str(const fx_shape *s, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? " x %" PRId64 : "%" PRId64, s->d[i]);
    if (s->rank == 0)
        snprintf(buf, n, "scalar");
}

/* Loads and checks the model.  Returns an exit code (0 on success). */
static int load_model(const char *path, fx_graph **g)
{
    fx_error err = {0};
    fx_status st = fx_model_load(path, g, &err);
    if (st != FX_OK) {
        fprintf(stderr, "model: %s\n", err.msg);
        return st == FX_ERR_NOMEM || st == FX_ERR_INTERNAL ? FX_EXIT_FAIL : FX_EXIT_USAGE;
    }
    if (fx_graph_check_supported(*g, &err) != FX_OK) {
        fprintf(stderr, "model: %s: %s\n", path, err.msg);
        fx_graph_destroy(*g);
        *g = NULL;
        return FX_EXIT_USAGE;
    }
    return FX_EXIT_OK;
}

static int prepare_model(fx_graph *g, const char *path, int batch, int h, int w)
{
    fx_error err = {0};
    fx_status st = fx_graph_prepare(g, batch, h, w, &err);
    if (st == FX_OK)
        return FX_EXIT_OK;
    fprintf(stderr, "model: %s: cannot prepare for batch %d, input %dx%d: %s\n", path, batch, h, w,
            err.msg);
    return st == FX_ERR_NOMEM || st == FX_ERR_INTERNAL ? FX_EXIT_FAIL : FX_EXIT_USAGE;
}

/* The model's declared input H x W if static (both > 0), else 0. */
static void static_input_size(const fx_graph *g, int *h, int *w)
{
    fx_shape s;
    *h = *w = 0;
    const char *in = fx_graph_num_inputs(g) > 0 ? fx_graph_input_name(g, 0) : NULL;
    if (in && fx_graph_tensor_shape(g, in, &s, NULL) == FX_OK && s.rank == 4 && s.d[2] > 0 &&
        s.d[3] > 0 && s.d[2] <= INT32_MAX && s.d[3] <= INT32_MAX) {
        *h = (int)s.d[2];
        *w = (int)s.d[3];
    }
}

static int parse_size(const char *s, int *h, int *w)
{
    char *e;
    long a = strtol(s, &e, 10);
    if (e == s || (*e != 'x' && *e != 'X'))
        return -1;
    const char *s2 = e + 1;
    long b = strtol(s2, &e, 10);
    if (e == s2 || *e || a < 1 || b < 1 || a > 65536 || b > 65536)
        return -1;
    *h = (int)a;
    *w = (int)b;
    return 0;
}

static void human(double v, char *buf, size_t n)
{
    if (v >= 1e9)
        snprintf(buf, n, "%.2f G", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, n, "%.2f M", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.2f k", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
}

/* ---- info ------------------------------------------------------------------ */

static int model_info(int argc, char **argv)
{
    static const struct option opts[] = {{"input-size", required_argument, 0, 's'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *size = NULL;
    int batch = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': size = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 'h': model_usage(stdout); return FX_EXIT_OK;
        default: model_usage(stderr); return FX_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                "model info: %s; usage: fxscreen model info MODEL [--input-size HxW] "
                "[--batch N]\n",
                optind >= argc ? "no MODEL given" : "give exactly one MODEL");
        return FX_EXIT_USAGE;
    }
    if (batch < 1 || batch > 65536) {
        fprintf(stderr, "model info: --batch must be 1..65536\n");
        return FX_EXIT_USAGE;
    }
    int h = 0, w = 0;
    if (size && parse_size(size, &h, &w)) {
        fprintf(stderr, "model info: --input-size '%s': write HxW, e.g. 224x224\n", size);
        return FX_EXIT_USAGE;
    }
    const char *path = argv[optind];
    fx_graph *g = NULL;
    int rc = load_model(path, &g);
    if (rc)
        return rc;
    const char *size_from = "--input-size";
    if (!size) {
        static_input_size(g, &h, &w);
        size_from = "the model";
        if (!h) {
            h = w = 224;
            size_from = "default; the model's input size is dynamic";
        }
    }
    rc = prepare_model(g, path, batch, h, w);
    if (rc) {
        if (!size)
            fprintf(stderr, "model info: give the input size with --input-size HxW\n");
        fx_graph_destroy(g);
        return rc;
    }

    char sha[FX_SHA256_HEX] = "?";
    fx_sha256_file(path, sha, NULL);
    printf("model: %s\nsha256: %s\nopset: %d\nbatch %d, input %dx%d (%s)\n\n", path, sha,
           fx_graph_opset(g), batch, h, w, size_from);

    int nn = fx_graph_num_nodes(g);
    int wname = 4, wop = 2;
    for (int i = 0; i < nn; i++) {
        fx_node_info ni;
        if (fx_graph_node_info(g, i, &ni) != FX_OK)
            continue;
        int a = ni.name ? (int)strlen(ni.name) : 0, b = ni.op_type ? (int)strlen(ni.op_type) : 0;
        wname = a > wname ? a : wname;
        wop = b > wop ? b : wop;
    }
    wname = wname > 60 ? 60 : wname;
    printf("%-*s  %-*s  %-22s %12s %16s  %s\n", wname, "node", wop, "op", "output shape", "params",
           "MACs", "output tensor (--dump NAME)");
    int64_t tp = 0, tm = 0;
    for (int i = 0; i < nn; i++) {
        fx_node_info ni;
        if (fx_graph_node_info(g, i, &ni) != FX_OK)
            continue;
        char sh[96];
        shape_str(&ni.out_shape, sh, sizeof sh);
        printf("%-*s  %-*s  %-22s %12" PRId64 " %16" PRId64 "  %s\n", wname, ni.name ? ni.name : "",
               wop, ni.op_type ? ni.op_type : "", sh, ni.params, ni.macs,
               ni.output ? ni.output : "");
        tp += ni.params;
        tm += ni.macs;
    }
    char hp[32], hm[32];
    human((double)tp, hp, sizeof hp);
    human((double)tm, hm, sizeof hm);
    printf("\ntotal: %d nodes, %" PRId64 " parameters (%s), %" PRId64
           " MACs (%s) at batch %d, input %dx%d\n",
           nn, tp, hp, tm, hm, batch, h, w);

    for (int k = 0; k < 2; k++) {
        int n = k ? fx_graph_num_outputs(g) : fx_graph_num_inputs(g);
        printf("%s:", k ? "outputs" : "inputs");
        for (int i = 0; i < n; i++) {
            const char *nm = k ? fx_graph_output_name(g, i) : fx_graph_input_name(g, i);
            fx_shape s;
            char sh[96] = "?";
            if (fx_graph_tensor_shape(g, nm, &s, NULL) == FX_OK)
                shape_str(&s, sh, sizeof sh);
            printf("%s %s (%s)", i ? "," : "", nm, sh);
        }
        printf("\n");
    }

    fx_plan *p = NULL;
    fx_error err = {0};
    if (fx_plan_create(g, NULL, &p, &err) == FX_OK) {
        printf("activation memory: %.1f MiB planned (%.1f MiB without buffer reuse)\n",
               (double)fx_plan_peak_bytes(p) / 1048576.0,
               (double)fx_plan_naive_bytes(p) / 1048576.0);
        fx_plan_destroy(p);
    } else {
        printf("activation memory: no plan: %s\n", err.msg);
    }

    const char *cam = fx_graph_cam_layer(g);
    fx_shape cs;
    if (cam && fx_graph_tensor_shape(g, cam, &cs, NULL) == FX_OK && cs.rank == 4)
        printf("suggested Grad-CAM layer: %s (%" PRId64 " x %" PRId64 " x %" PRId64 ")\n", cam,
               cs.d[1], cs.d[2], cs.d[3]);
    else
        printf("suggested Grad-CAM layer: none (no 4-D tensor with spatial extent > 1 before "
               "global pooling)\n");
#ifdef FX_HAVE_CUDA
    char why[FX_ERROR_MSG_MAX];
    int bad = fx_plan_unsupported(g, FX_DEVICE_CUDA, why, sizeof why);
    if (bad)
        printf("CUDA backend: cannot run %d node%s: %s\n", bad, bad > 1 ? "s" : "", why);
    else
        printf("CUDA backend: runs every node\n");
#else
    printf("CUDA backend: not in this build\n");
#endif
    fx_graph_destroy(g);
    return FX_EXIT_OK;
}

/* ---- run ------------------------------------------------------------------- */

/* Writes one tensor as a float32 dataset named after it ('/' -> '_'). */
static fx_status write_tensor(hid_t f, const char *tensor, const float *data, const fx_shape *s,
                              fx_error *err)
{
    char name[1024];
    snprintf(name, sizeof name, "%s", tensor);
    for (char *q = name; *q; q++)
        if (*q == '/')
            *q = '_';
    if (!name[0] || !strcmp(name, "."))
        return fx_error_set(err, FX_ERR_USAGE, "tensor '%s' has no usable dataset name", tensor);
    if (H5Lexists(f, name, H5P_DEFAULT) > 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "tensor '%s': dataset '%s' already written (two tensor names "
                            "differ only in '/' vs '_')",
                            tensor, name);
    hsize_t dims[FX_OPS_MAX_RANK];
    for (int i = 0; i < s->rank; i++)
        dims[i] = (hsize_t)s->d[i];
    hid_t sp = s->rank ? H5Screate_simple(s->rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t ds = sp >= 0
                   ? H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                   : -1;
    fx_status st = FX_OK;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = fx_error_set(err, FX_ERR_IO, "cannot write dataset '%s'", name);
    else
        st = fx_h5_attr_str(ds, "tensor", tensor, err);
    if (ds >= 0)
        H5Dclose(ds);
    if (sp >= 0)
        H5Sclose(sp);
    return st;
}

static int model_run(int argc, char **argv)
{
    static const struct option opts[] = {{"input", required_argument, 0, 'i'},
                                         {"output", required_argument, 0, 'o'},
                                         {"dump", required_argument, 0, 'd'},
                                         {"device", required_argument, 0, 'D'},
                                         {"precision", required_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *in = NULL, *outp = NULL;
    char *dumpbuf[MAX_DUMP];
    const char *dump[MAX_DUMP];
    int ndump = 0, nbuf = 0, c, rc = FX_EXIT_USAGE, dev_index = 0;
    fx_device_kind dev = FX_DEVICE_AUTO;
    fx_precision prec = FX_PREC_DEFAULT;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:d:D:P:h", opts, NULL)) != -1) {
        switch (c) {
        case 'D':
            if (!fx_cli_device("model run", optarg, &dev, &dev_index))
                goto cleanup;
            break;
        case 'P':
            if (!fx_cli_precision("model run", optarg, &prec))
                goto cleanup;
            break;
        case 'i': in = optarg; break;
        case 'o': outp = optarg; break;
        case 'd': {
            if (nbuf == MAX_DUMP) {
                fprintf(stderr, "model run: too many --dump options\n");
                goto cleanup;
            }
            char *copy = strdup(optarg), *save = NULL;
            if (!copy) {
                rc = FX_EXIT_FAIL;
                goto cleanup;
            }
            dumpbuf[nbuf++] = copy;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (ndump == MAX_DUMP) {
                    fprintf(stderr, "model run: at most %d --dump names\n", MAX_DUMP);
                    goto cleanup;
                }
                dump[ndump++] = t;
            }
            break;
        }
        case 'h':
            model_usage(stdout);
            rc = FX_EXIT_OK;
            goto cleanup;
        default: model_usage(stderr); goto cleanup;
        }
    }
    if (optind != argc - 1 || !in || !outp) {
        fprintf(stderr,
                "model run: %s; usage: fxscreen model run MODEL --input IN.h5 --output "
                "OUT.h5 [--dump NAME,...]\n",
                optind >= argc       ? "no MODEL given"
                : optind != argc - 1 ? "give exactly one MODEL"
                : !in                ? "--input IN.h5 is required"
                                     : "--output OUT.h5 is required");
        goto cleanup;
    }
    const char *path = argv[optind];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    float *x = NULL;
    hsize_t dims[4];
    fx_graph *g = NULL;
    fx_plan *p = NULL;
    hid_t f = -1;
    char tmp[4096] = "";
    fx_error err = {0};
    if ((rc = fx_cli_read_input("model run", in, 1u << 20, 1, &x, dims)))
        goto cleanup;
    if ((rc = load_model(path, &g)))
        goto done;
    if ((rc = prepare_model(g, path, (int)dims[0], (int)dims[2], (int)dims[3])))
        goto done;
    fx_shape is;
    const char *iname = fx_graph_input_name(g, 0);
    if (fx_graph_tensor_shape(g, iname, &is, &err) == FX_OK && is.rank == 4 &&
        is.d[1] != (int64_t)dims[1]) {
        fprintf(stderr, "model run: %s has %llu channels; %s's input '%s' wants %" PRId64 "\n", in,
                (unsigned long long)dims[1], path, iname, is.d[1]);
        rc = FX_EXIT_USAGE;
        goto done;
    }
    for (int i = 0; i < ndump; i++) {
        if (fx_graph_check_readable(g, dump[i], &err) != FX_OK) {
            fprintf(stderr,
                    "model run: --dump: %s: %s; `fxscreen model info %s` lists the "
                    "tensors that can be dumped\n",
                    path, err.msg, path);
            rc = FX_EXIT_USAGE;
            goto done;
        }
    }
    fx_device_kind got;
    char notice[FX_ERROR_MSG_MAX];
    if (fx_plan_pick_device(g, dev, &got, notice, sizeof notice, &err) != FX_OK) {
        fprintf(stderr, "model run: %s: %s\n", path, err.msg);
        rc = FX_EXIT_USAGE;
        goto done;
    }
    if (notice[0])
        fprintf(stderr, "model run: %s\n", notice);
    fx_plan_opts po = {
        .keep = dump, .n_keep = ndump, .device = got, .device_index = dev_index, .precision = prec};
    if (fx_plan_create(g, &po, &p, &err) != FX_OK || fx_plan_run(p, x, &err) != FX_OK) {
        fprintf(stderr, "model run: %s: %s\n", path, err.msg);
        rc = FX_EXIT_FAIL;
        goto done;
    }

    /* Written beside the target and renamed at the end: no half file on failure. */
    snprintf(tmp, sizeof tmp, "%s.tmp", outp);
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr,
                "model run: cannot create %s (check the --output directory exists and "
                "is writable)\n",
                tmp);
        tmp[0] = '\0';
        rc = FX_EXIT_USAGE;
        goto done;
    }
    char sha[FX_SHA256_HEX];
    rc = FX_EXIT_FAIL;
    if (fx_sha256_file(path, sha, &err) != FX_OK || fx_h5_attr_str(f, "model", path, &err) ||
        fx_h5_attr_str(f, "model_sha256", sha, &err) ||
        fx_h5_attr_str(f, "fxscreen_version", FX_VERSION, &err) ||
        fx_h5_attr_str(f, "input", in, &err)) {
        fprintf(stderr, "model run: %s: %s\n", tmp, err.msg);
        goto done;
    }
    int nout = fx_graph_num_outputs(g);
    for (int i = 0; i < nout + ndump; i++) {
        const char *t = i < nout ? fx_graph_output_name(g, i) : dump[i - nout];
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= !strcmp(t, j < nout ? fx_graph_output_name(g, j) : dump[j - nout]);
        if (seen)
            continue;
        fx_shape s;
        const float *v = fx_plan_tensor(p, t, &s);
        if (!v) {
            fprintf(stderr, "model run: tensor '%s' is not readable after the run (a bug)\n", t);
            goto done;
        }
        fx_status st = write_tensor(f, t, v, &s, &err);
        if (st != FX_OK) {
            fprintf(stderr, "model run: %s: %s\n", outp, err.msg);
            rc = st == FX_ERR_USAGE ? FX_EXIT_USAGE : FX_EXIT_FAIL;
            goto done;
        }
    }
    if (H5Fclose(f) < 0) {
        f = -1;
        fprintf(stderr, "model run: cannot finish writing %s\n", tmp);
        goto done;
    }
    f = -1;
    if (rename(tmp, outp)) {
        fprintf(stderr, "model run: cannot rename %s to %s: %s\n", tmp, outp, strerror(errno));
        goto done;
    }
    tmp[0] = '\0';
    fprintf(stderr, "model run: %llu x %llu x %llu x %llu -> %s (%d outputs, %d dumped)\n",
            (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
            (unsigned long long)dims[3], outp, nout, ndump);
    rc = FX_EXIT_OK;
done:
    if (f >= 0)
        H5Fclose(f);
    if (tmp[0])
        remove(tmp);
    fx_plan_destroy(p);
    fx_graph_destroy(g);
    free(x);
cleanup:
    for (int i = 0; i < nbuf; i++)
        free(dumpbuf[i]);
    return rc;
}

int fx_cmd_model(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        model_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? FX_EXIT_USAGE : FX_EXIT_OK;
    }
    if (!strcmp(argv[1], "info"))
        return model_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run"))
        return model_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "cam"))
        return fx_cmd_model_cam(argc - 1, argv + 1);
    fprintf(stderr,
            "model: unknown subcommand '%s'; use 'info', 'run' or 'cam' (fxscreen model --help)\n",
            argv[1]);
    return FX_EXIT_USAGE;
}
