/* Keras files (include/fxscreen/keras.h): HDF5 as model.save("x.h5")
 * writes it, and .keras zip archives, read through the HDF5 library (from
 * memory for the archive's weights: nothing is extracted to disk) and
 * libarchive; the model config goes to keras.c, the weights come back here
 * by layer.
 *
 * Legacy HDF5: root attributes keras_version and model_config (JSON); group
 * model_weights/<top layer> with attribute weight_names, the datasets in
 * the layer's weight order ("c1/kernel:0", or "c1/kernel" from Keras 3; a
 * nested model's group holds all of its layers' weights, each prefixed by
 * the inner layer's name).  .keras: config.json, metadata.json
 * (keras_version) and model.weights.h5 with "<path>/vars/<i>". */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"
#include "fxscreen/keras.h"
#include "fxscreen/onnx.h"
#include "model/keras_internal.h"

#ifndef FX_NO_ARCHIVE
#include <archive.h>
#include <archive_entry.h>
#endif

#define KR_MAX_CONFIG  ((size_t)64 << 20)
#define KR_MAX_WEIGHTS ((size_t)4 << 30)
#define KR_MAX_ELEMS   ((int64_t)1 << 31)

static const unsigned char h5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

static int is_h5(const unsigned char *h, size_t n)
{
    return n >= 8 && !memcmp(h, h5_magic, 8);
}

static int is_zip(const unsigned char *h, size_t n)
{
    return n >= 4 && !memcmp(h, "PK\3\4", 4);
}

int fx_keras_sniff(const void *head, size_t n)
{
    return is_h5(head, n) || is_zip(head, n);
}

/* HDF5 prints its error stack on every failure unless told otherwise; the
 * importer reports its own errors.  Silenced around each call into it. */
typedef struct h5_quiet {
    H5E_auto2_t fn;
    void *data;
} h5_quiet;
static h5_quiet quiet_on(void)
{
    h5_quiet q = {0};
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}
static void quiet_off(h5_quiet q)
{
    H5Eset_auto2(H5E_DEFAULT, q.fn, q.data);
}


/* A 1-D string array attribute: *n strings in one malloc'd block (the
 * array, then the text).  An empty or non-string attribute gives n = 0. */
static char **attr_strs(hid_t obj, const char *name, int *n)
{
    *n = 0;
    if (H5Aexists(obj, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    hssize_t k = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    char **out = NULL;
    if (t >= 0 && k > 0 && k < 1000000 && H5Tget_class(t) == H5T_STRING) {
        int var = H5Tis_variable_str(t) > 0;
        size_t fixed = var ? 0 : H5Tget_size(t);
        char **v = var ? calloc((size_t)k, sizeof *v) : NULL;
        char *buf = var ? NULL : calloc((size_t)k, fixed + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, var ? H5T_VARIABLE : fixed);
        H5Tset_cset(mt, H5Tget_cset(t));
        int ok = (var ? v != NULL : buf != NULL) && H5Aread(a, mt, var ? (void *)v : buf) >= 0;
        size_t text = 0;
        for (hssize_t i = 0; ok && i < k; i++)
            text += (var ? (v[i] ? strlen(v[i]) : 0) : strnlen(buf + i * fixed, fixed)) + 1;
        out = ok ? malloc((size_t)k * sizeof *out + text) : NULL;
        char *p = out ? (char *)(out + k) : NULL;
        for (hssize_t i = 0; out && i < k; i++) {
            size_t len = var ? (v[i] ? strlen(v[i]) : 0) : strnlen(buf + i * fixed, fixed);
            memcpy(p, var ? (v[i] ? v[i] : "") : buf + i * fixed, len);
            p[len] = 0;
            out[i] = p;
            p += len + 1;
        }
        if (out)
            *n = (int)k;
        if (var && v && ok)
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
        free(v);
        free(buf);
        H5Tclose(mt);
    }
    fx_h5_attr_close(a, t, sp);
    return out;
}

/* ---- weights ------------------------------------------------------------------ */

typedef struct kr_file_weights {
    kr_weights base;
    hid_t file;
    int legacy; /* 1: model_weights/<top>/..., 0: .keras "<path>/vars/<i>" */
} kr_file_weights;

/* A float dataset into data and shape (Keras order). */
static fx_status read_dataset(hid_t d, const kr_layer_ref *ref, int i, float **data,
                              fx_shape *shape, fx_error *err)
{
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    hsize_t dims[FX_OPS_MAX_RANK];
    fx_status st = FX_OK;
    if (t < 0 || H5Tget_class(t) != H5T_FLOAT || rank < 0 || rank > FX_OPS_MAX_RANK)
        st = fx_error_set(err, FX_ERR_FORMAT,
                          "layer '%s': weight %d is not a float array of rank "
                          "<= %d",
                          ref->name, i, FX_OPS_MAX_RANK);
    int64_t n = 1;
    if (st == FX_OK) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        shape->rank = rank;
        for (int k = 0; k < rank; k++) {
            shape->d[k] = (int64_t)dims[k];
            n = dims[k] && n > KR_MAX_ELEMS / (int64_t)dims[k] ? KR_MAX_ELEMS
                                                               : n * (int64_t)dims[k];
        }
        if (n >= KR_MAX_ELEMS)
            st = fx_error_set(err, FX_ERR_FORMAT, "layer '%s': weight %d is too large", ref->name,
                              i);
    }
    if (st == FX_OK && !(*data = malloc((size_t)(n ? n : 1) * sizeof(float))))
        st = fx_error_set(err, FX_ERR_NOMEM, "out of memory for layer '%s'", ref->name);
    if (st == FX_OK && n &&
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0) {
        free(*data);
        *data = NULL;
        st = fx_error_set(err, FX_ERR_FORMAT, "layer '%s': weight %d cannot be read (damaged file)",
                          ref->name, i);
    }
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    return st;
}

/* Whether a weight name belongs to layer: the component before the last
 * is the layer's name ("c1/kernel:0", "Conv1/kernel", and Keras 3's
 * "sequential/dense_1/kernel" for a layer of the outer model). */
static int owner_is(const char *wname, const char *layer)
{
    const char *last = strrchr(wname, '/');
    if (!last)
        return 0;
    const char *start = last;
    while (start > wname && start[-1] != '/')
        start--;
    size_t n = (size_t)(last - start);
    return n == strlen(layer) && !strncmp(start, layer, n);
}

static fx_status file_get(kr_weights *base, const kr_layer_ref *ref, int i, const fx_shape *expect,
                          float **data, fx_shape *shape, fx_error *err)
{
    kr_file_weights *w = (kr_file_weights *)base;
    char path[1024];
    hid_t d = -1, g = -1;
    h5_quiet q = quiet_on();
    if (w->legacy) {
        snprintf(path, sizeof path, "model_weights/%s", ref->top);
        g = H5Lexists(w->file, "model_weights", H5P_DEFAULT) > 0 &&
                    H5Lexists(w->file, path, H5P_DEFAULT) > 0
                ? H5Gopen2(w->file, path, H5P_DEFAULT)
                : -1;
        int n = 0, seen = 0;
        char **names = g < 0 ? NULL : attr_strs(g, "weight_names", &n);
        for (int k = 0; k < n && d < 0; k++) /* the layer's own, in order */
            if (owner_is(names[k], ref->name) && seen++ == i)
                d = H5Dopen2(g, names[k], H5P_DEFAULT);
        free(names);
    } else {
        snprintf(path, sizeof path, "%s/vars/%d", ref->kpath, i);
        if (H5Lexists(w->file, ref->kpath, H5P_DEFAULT) > 0 &&
            H5Lexists(w->file, path, H5P_DEFAULT) > 0)
            d = H5Dopen2(w->file, path, H5P_DEFAULT);
    }
    fx_status st = d < 0 ? fx_error_set(err, FX_ERR_FORMAT,
                                        "layer '%s': weight %d is missing from the file (a "
                                        "model saved with other layers, or damaged)",
                                        ref->name, i)
                         : read_dataset(d, ref, i, data, shape, err);
    if (d >= 0)
        H5Dclose(d);
    if (g >= 0)
        H5Gclose(g);
    quiet_off(q);
    int same = st == FX_OK && (expect->rank < 0 || shape->rank == expect->rank);
    for (int k = 0; same && expect->rank >= 0 && k < shape->rank; k++)
        same = expect->d[k] < 0 || expect->d[k] == shape->d[k];
    if (st == FX_OK && !same) {
        free(*data);
        *data = NULL;
        char a[96] = "", b[96] = "";
        for (int k = 0; k < shape->rank; k++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", k ? ", " : "",
                     (long long)shape->d[k]);
        for (int k = 0; k < expect->rank; k++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", k ? ", " : "",
                     (long long)expect->d[k]);
        st = fx_error_set(err, FX_ERR_FORMAT,
                          "layer '%s': weight %d has shape [%s] where the config implies [%s]",
                          ref->name, i, a, b);
    }
    return st;
}

/* ---- the files ---------------------------------------------------------------- */

/* Keras's major version from "2.15.0" / "3.4.1"; FX_ERR_UNSUPPORTED otherwise. */
static fx_status keras_major(const char *v, int *major, fx_error *err)
{
    int m = v ? atoi(v) : 0;
    if (m != 2 && m != 3)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "saved by Keras %s: this reader takes files from Keras 2.x (tf.keras) "
                            "and 3.x; re-save it with one of them",
                            v && *v ? v : "(no version recorded)");
    *major = m;
    return FX_OK;
}

static fx_status load_h5(hid_t f, const char *config_json, int major, int legacy, fx_graph **out,
                         fx_error *err)
{
    kr_file_weights w = {{file_get}, f, legacy};
    return kr_build(config_json, strlen(config_json), major, &w.base, out, err);
}

static fx_status load_legacy(const char *path, fx_graph **out, fx_error *err)
{
    h5_quiet q = quiet_on();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        quiet_off(q);
        return fx_error_set(err, FX_ERR_FORMAT, "not a readable HDF5 file (damaged or truncated)");
    }
    char *config = fx_h5_attr_read_str(f, "model_config", KR_MAX_CONFIG),
         *version = fx_h5_attr_read_str(f, "keras_version", KR_MAX_CONFIG);
    int weights_only =
        !config && (H5Aexists(f, "layer_names") > 0 || H5Lexists(f, "layers", H5P_DEFAULT) > 0 ||
                    H5Lexists(f, "model_weights", H5P_DEFAULT) > 0);
    quiet_off(q);
    int major = 0;
    fx_status st = FX_OK;
    if (!config)
        st = fx_error_set(err, FX_ERR_FORMAT,
                          weights_only
                              ? "weights only (from save_weights): no model config to build the "
                                "network from; save the whole model with model.save(\"x.h5\") or "
                                "model.save(\"x.keras\")"
                              : "an HDF5 file but not a Keras model (no model_config attribute)");
    if (st == FX_OK)
        st = keras_major(version, &major, err);
    if (st == FX_OK)
        st = load_h5(f, config, major, 1, out, err);
    free(config);
    free(version);
    q = quiet_on();
    H5Fclose(f);
    quiet_off(q);
    return st;
}

#ifndef FX_NO_ARCHIVE
/* The members config.json, metadata.json and model.weights.h5 into memory. */
static fx_status read_zip(const char *path, char **config, size_t *config_n, char **meta,
                          size_t *meta_n, void **weights, size_t *weights_n, fx_error *err)
{
    struct archive *a = archive_read_new();
    if (!a)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    archive_read_support_format_zip(a);
    fx_status st = FX_OK;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK)
        st = fx_error_set(err, FX_ERR_FORMAT, "not a readable zip archive: %s",
                          archive_error_string(a));
    struct archive_entry *e;
    while (st == FX_OK) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            st = fx_error_set(err, FX_ERR_FORMAT, "damaged zip archive: %s",
                              archive_error_string(a));
            break;
        }
        const char *name = archive_entry_pathname(e);
        void **dst = !name                               ? NULL
                     : !strcmp(name, "config.json")      ? (void **)config
                     : !strcmp(name, "metadata.json")    ? (void **)meta
                     : !strcmp(name, "model.weights.h5") ? weights
                                                         : NULL;
        size_t *dn = dst == (void **)config ? config_n : dst == (void **)meta ? meta_n : weights_n;
        if (!dst || *dst)
            continue;
        size_t cap = dst == weights ? KR_MAX_WEIGHTS : KR_MAX_CONFIG, n = 0, room = 1 << 20;
        char *b = malloc(room + 1);
        for (;;) {
            if (!b) {
                st = fx_error_set(err, FX_ERR_NOMEM, "out of memory reading %s", name);
                break;
            }
            if (n == room) {
                if (room >= cap) {
                    st = fx_error_set(err, FX_ERR_FORMAT, "%s is over %zu MiB", name, cap >> 20);
                    break;
                }
                char *nb = realloc(b, room * 2 + 1);
                if (!nb) {
                    free(b);
                    b = NULL;
                    continue;
                }
                b = nb, room *= 2;
            }
            la_ssize_t got = archive_read_data(a, b + n, room - n);
            if (got < 0) {
                st = fx_error_set(err, FX_ERR_FORMAT, "damaged zip member %s: %s", name,
                                  archive_error_string(a));
                break;
            }
            if (got == 0)
                break;
            n += (size_t)got;
        }
        if (st != FX_OK) {
            free(b);
            break;
        }
        b[n] = 0;
        *dst = b, *dn = n;
    }
    archive_read_free(a);
    return st;
}

static fx_status load_zip(const char *path, fx_graph **out, fx_error *err)
{
    char *config = NULL, *meta = NULL;
    void *weights = NULL;
    size_t config_n = 0, meta_n = 0, weights_n = 0;
    fx_status st = read_zip(path, &config, &config_n, &meta, &meta_n, &weights, &weights_n, err);
    if (st == FX_OK && !config)
        st = fx_error_set(err, FX_ERR_FORMAT,
                          "a zip archive without config.json: not a .keras model");
    cJSON *m = st == FX_OK && meta ? cJSON_ParseWithLength(meta, meta_n) : NULL;
    int major = 0;
    if (st == FX_OK)
        st = keras_major(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "keras_version")),
                         &major, err);
    cJSON_Delete(m);
    if (st == FX_OK && !weights)
        st = fx_error_set(err, FX_ERR_FORMAT, "a .keras archive without model.weights.h5");
    hid_t f = -1;
    if (st == FX_OK) {
        h5_quiet q = quiet_on();
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        /* The weights from memory, read only: the core driver over the
         * archive member, never backed by a file. */
        if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0 &&
            H5Pset_file_image(fapl, weights, weights_n) >= 0)
            f = H5Fopen("model.weights.h5", H5F_ACC_RDONLY, fapl);
        if (fapl >= 0)
            H5Pclose(fapl);
        quiet_off(q);
        if (f < 0)
            st = fx_error_set(err, FX_ERR_FORMAT,
                              "model.weights.h5 in the archive is not readable HDF5 (damaged)");
    }
    if (st == FX_OK) {
        kr_file_weights w = {{file_get}, f, 0};
        st = kr_build(config, config_n, major, &w.base, out, err);
    }
    if (f >= 0) {
        h5_quiet q = quiet_on();
        H5Fclose(f);
        quiet_off(q);
    }
    free(config);
    free(meta);
    free(weights);
    return st;
}
#endif

/* The first bytes of path into head (*n of them); -1 if it cannot be opened. */
static int read_head(const char *path, unsigned char head[8], size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    *n = fread(head, 1, 8, fp);
    fclose(fp);
    return 0;
}

/* The Keras file at path, whose first bytes are head. */
static fx_status load_as(const char *path, const unsigned char *head, size_t n, fx_graph **out,
                         fx_error *err)
{
    *out = NULL;
    fx_status st;
    if (is_h5(head, n))
        st = load_legacy(path, out, err);
    else if (is_zip(head, n)) {
#ifndef FX_NO_ARCHIVE
        st = load_zip(path, out, err);
#else
        st = fx_error_set(err, FX_ERR_UNSUPPORTED,
                          "a .keras archive: this build has no libarchive (static builds leave "
                          "it out); save the model as .h5 or use a full build");
#endif
    } else
        st = fx_error_set(err, FX_ERR_FORMAT, "not a Keras model (neither HDF5 nor a zip archive)");
    if (st == FX_OK && (st = fx_graph_check_supported(*out, err)) != FX_OK) {
        fx_graph_destroy(*out);
        *out = NULL;
    }
    if (st != FX_OK)
        fx_error_prefix(err, "%s", path);
    return st;
}

fx_status fx_keras_load(const char *path, fx_graph **out, fx_error *err)
{
    unsigned char head[8];
    size_t n = 0;
    *out = NULL;
    if (read_head(path, head, &n))
        return fx_error_set(err, FX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return load_as(path, head, n, out, err);
}

fx_status fx_model_load(const char *path, fx_graph **out, fx_error *err)
{
    unsigned char head[8];
    size_t n = 0;
    if (!read_head(path, head, &n) && fx_keras_sniff(head, n))
        return load_as(path, head, n, out, err);
    return fx_onnx_load(path, out, err); /* its errors, a missing file included */
}
