/* ONNX import: ModelProto (protobuf-c, src/model/onnx.proto) -> builder calls.
 *
 * protobuf-c checks the wire format; everything after it here treats the
 * message as hostile: counts are compared with shapes before anything is
 * allocated, shapes are checked for negative dims and overflow, external
 * data must stay inside the model's directory and fit in its file. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxscreen/loader.h"
#include "fxscreen/onnx.h"
#include "onnx.pb-c.h"
#include "onnx_internal.h"

#define ONNX_OPSET_MIN 11
#define ONNX_OPSET_MAX 21
#define ONNX_IR_MIN    3  /* opset_import exists from IR 3 on */
#define ONNX_IR_MAX    10 /* IR 10 = ONNX 1.16/1.17; later ones add types we do not read */
/* protobuf messages cannot exceed 2 GiB; bigger weights use external data. */
#define ONNX_MAX_MODEL_BYTES ((size_t)2 << 30)

enum {
    DT_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    DT_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
    DT_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
    DT_FLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16,
    DT_DOUBLE = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE,
};

static const char *str0(const char *s)
{
    return s ? s : "";
}

/* "", absent and "ai.onnx" all name the default operator set. */
static int is_onnx_domain(const char *d)
{
    return !d || !*d || !strcmp(d, "ai.onnx");
}

/* ---- element conversion --------------------------------------------------- */

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* IEEE binary16 -> binary32; exact for every value (float32 is a superset),
 * NaN payloads kept. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f)
        bits = sign | 0x7f800000u | man << 13;
    else if (exp)
        bits = sign | (exp + 112) << 23 | man << 13; /* rebias 15 -> 127 */
    else {
        /* zero or subnormal: man * 2^-24, exact in float32 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* double -> float rounding to nearest; out-of-range finite values become
 * +-inf explicitly (the C conversion would be undefined). */
static float double_to_float(double d)
{
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return d > 0 ? INFINITY : -INFINITY;
    return (float)d;
}

/* Bytes per element of ONNX type odt as stored, and the dtype it becomes;
 * 0 for types we do not import. */
static size_t elem_size(int32_t odt, fx_dtype *out)
{
    switch (odt) {
    case DT_FLOAT: *out = FX_DT_FLOAT; return 4;
    case DT_FLOAT16: *out = FX_DT_FLOAT; return 2;
    case DT_DOUBLE: *out = FX_DT_FLOAT; return 8;
    case DT_INT32: *out = FX_DT_INT64; return 4;
    case DT_INT64: *out = FX_DT_INT64; return 8;
    default: return 0;
    }
}

static const char *onnx_type_name(int32_t odt)
{
    static const char *const names[] = {"UNDEFINED",  "FLOAT",   "UINT8",  "INT8",   "UINT16",
                                        "INT16",      "INT32",   "INT64",  "STRING", "BOOL",
                                        "FLOAT16",    "DOUBLE",  "UINT32", "UINT64", "COMPLEX64",
                                        "COMPLEX128", "BFLOAT16"};
    return odt >= 0 && odt < (int32_t)(sizeof names / sizeof *names) ? names[odt] : "unknown";
}

/* Decode n little-endian elements of type odt from raw into out. */
static void decode_raw(int32_t odt, const uint8_t *raw, size_t n, void *out)
{
    float *f = out;
    int64_t *q = out;
    for (size_t i = 0; i < n; i++) {
        switch (odt) {
        case DT_FLOAT: {
            uint32_t b = le32(raw + 4 * i);
            memcpy(&f[i], &b, 4);
            break;
        }
        case DT_FLOAT16: f[i] = half_to_float(le16(raw + 2 * i)); break;
        case DT_DOUBLE: {
            uint64_t b = le64(raw + 8 * i);
            double d;
            memcpy(&d, &b, 8);
            f[i] = double_to_float(d);
            break;
        }
        case DT_INT32: {
            uint32_t b = le32(raw + 4 * i);
            int32_t v;
            memcpy(&v, &b, 4);
            q[i] = v;
            break;
        }
        default: { /* DT_INT64 */
            uint64_t b = le64(raw + 8 * i);
            memcpy(&q[i], &b, 8);
            break;
        }
        }
    }
}

/* Number of values t holds in the typed field that type odt uses. */
static size_t typed_count(const Onnx__TensorProto *t, int32_t odt)
{
    switch (odt) {
    case DT_FLOAT: return t->n_float_data;
    case DT_FLOAT16: /* float16 bits travel in int32_data */
    case DT_INT32: return t->n_int32_data;
    case DT_DOUBLE: return t->n_double_data;
    default: return t->n_int64_data;
    }
}

/* Convert n values of the typed field (typed_count(t, odt) == n) into out. */
static void decode_typed(const Onnx__TensorProto *t, int32_t odt, size_t n, void *out)
{
    float *f = out;
    int64_t *q = out;
    for (size_t i = 0; i < n; i++) {
        switch (odt) {
        case DT_FLOAT: f[i] = t->float_data[i]; break;
        case DT_FLOAT16:
            f[i] = half_to_float((uint16_t)((uint32_t)t->int32_data[i] & 0xffffu));
            break;
        case DT_DOUBLE: f[i] = double_to_float(t->double_data[i]); break;
        case DT_INT32: q[i] = t->int32_data[i]; break;
        default: q[i] = t->int64_data[i]; break;
        }
    }
}

/* ---- external data ---------------------------------------------------------- */

/* Strict decimal parse of a non-negative integer; -1 if s is not one. */
static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s)
        return -1;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return 0;
}

/* 1 if loc is a relative path without ".." components (either separator:
 * files written on Windows use '\'). */
static int location_is_inside(const char *loc)
{
    if (loc[0] == '/' || loc[0] == '\\')
        return 0;
    for (const char *p = loc; *p;) {
        size_t len = strcspn(p, "/\\");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p += len;
        if (*p)
            p++;
    }
    return 1;
}

/* 1 if the resolved path lies below the resolved directory (a symlink inside
 * the directory must not lead out of it either). */
static int resolved_inside(const char *dir, const char *file)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return 1;
    return !strncmp(dir, file, n) && file[n] == '/';
}

/* The external-data keys of t: location (required), offset, length. */
static fx_status external_keys(const Onnx__TensorProto *t, const char *label, const char **loc,
                               uint64_t *off, int *has_len, uint64_t *len, fx_error *err)
{
    *loc = NULL;
    *off = 0;
    *has_len = 0;
    for (size_t k = 0; k < t->n_external_data; k++) {
        const char *key = str0(t->external_data[k]->key), *val = t->external_data[k]->value;
        int bad = 0;
        if (!strcmp(key, "location"))
            *loc = val;
        else if (!strcmp(key, "offset"))
            bad = parse_u64(val, off);
        else if (!strcmp(key, "length")) {
            bad = parse_u64(val, len);
            *has_len = 1;
        }
        if (bad)
            return fx_error_set(err, FX_ERR_FORMAT, "%s: external data %s '%s' is not a number",
                                label, key, str0(val));
    }
    if (!*loc || !**loc)
        return fx_error_set(err, FX_ERR_FORMAT, "%s: external data without a location", label);
    return FX_OK;
}

/* Read `want` bytes at `off` of fd (path for messages) into a new buffer,
 * after checking that the file holds them. */
static fx_status read_slice(int fd, const char *label, const char *loc, uint64_t off, size_t want,
                            uint8_t **out, fx_error *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return fx_error_set(err, FX_ERR_IO, "%s: external data '%s' is not a regular file", label,
                            loc);
    uint64_t size = (uint64_t)sb.st_size;
    if (off > size || want > size - off || off > (uint64_t)INT64_MAX)
        return fx_error_set(err, FX_ERR_FORMAT,
                            "%s: external data '%s' is %llu bytes, too short for %zu bytes at "
                            "offset %llu",
                            label, loc, (unsigned long long)size, want, (unsigned long long)off);
    uint8_t *buf = malloc(want ? want : 1);
    if (!buf)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: cannot allocate %zu bytes", label, want);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, buf + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            return fx_error_set(err, FX_ERR_IO, "%s: reading external data '%s': %s", label, loc,
                                r < 0 ? strerror(errno) : "file shrank");
        }
        got += (size_t)r;
    }
    *out = buf;
    return FX_OK;
}

/* The `want` bytes of t's external data, resolved against base_dir, into a
 * new buffer (caller frees). */
static fx_status external_bytes(const Onnx__TensorProto *t, const char *base_dir, const char *label,
                                size_t want, uint8_t **out, fx_error *err)
{
    const char *loc;
    uint64_t off, len = 0;
    int has_len;
    fx_status st = external_keys(t, label, &loc, &off, &has_len, &len, err);
    if (st != FX_OK)
        return st;
    if (!base_dir)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "%s: external data '%s' needs the model's directory (loaded from "
                            "memory)",
                            label, loc);
    if (!location_is_inside(loc))
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "%s: external data location '%s' is absolute or leaves the model's "
                            "directory",
                            label, loc);
    if (has_len && len != want)
        return fx_error_set(err, FX_ERR_FORMAT,
                            "%s: external data length %llu, but the tensor needs %zu bytes", label,
                            (unsigned long long)len, want);

    size_t plen = strlen(base_dir) + strlen(loc) + 2;
    char *path = malloc(plen), *rdir = NULL, *rfile = NULL;
    if (!path)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", label);
    snprintf(path, plen, "%s/%s", base_dir, loc);
    rdir = realpath(base_dir, NULL);
    rfile = realpath(path, NULL);
    int fd = -1;
    if (!rdir || !rfile)
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot open external data '%s': %s", label, loc,
                          strerror(errno));
    else if (!resolved_inside(rdir, rfile))
        st = fx_error_set(err, FX_ERR_UNSUPPORTED,
                          "%s: external data '%s' resolves outside the model's directory", label,
                          loc);
    else if ((fd = open(rfile, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot open external data '%s': %s", label, loc,
                          strerror(errno));
    else
        st = read_slice(fd, label, loc, off, want, out, err);
    if (fd >= 0)
        close(fd);
    free(path);
    free(rdir);
    free(rfile);
    return st;
}

/* ---- tensors ------------------------------------------------------------------ */

/* A converted tensor: float32 or int64, row-major; data is malloc'd. */
typedef struct onnx_tensor {
    fx_dtype dt;
    fx_shape shape;
    void *data;
} onnx_tensor;

/* t's shape and element count, checked: rank, dims >= 0, no overflow, and
 * small enough that numel * 8 bytes is addressable. */
static fx_status tensor_shape(const Onnx__TensorProto *t, const char *label, fx_shape *s,
                              size_t *numel, fx_error *err)
{
    if (t->n_dims > FX_OPS_MAX_RANK)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "%s: rank %zu (at most %d)", label, t->n_dims,
                            FX_OPS_MAX_RANK);
    memset(s, 0, sizeof *s);
    s->rank = (int)t->n_dims;
    for (int i = 0; i < s->rank; i++) {
        if (t->dims[i] < 0)
            return fx_error_set(err, FX_ERR_FORMAT, "%s: negative dimension %lld", label,
                                (long long)t->dims[i]);
        s->d[i] = t->dims[i];
    }
    int64_t n = fx_shape_numel(s);
    if (n < 0 || (uint64_t)n > SIZE_MAX / 8)
        return fx_error_set(err, FX_ERR_LIMIT, "%s: element count overflows", label);
    *numel = (size_t)n;
    return FX_OK;
}

/* Convert t into *ct (float16/double -> float32, int32 -> int64).  The data
 * source (external file, raw_data, typed field) is checked against the
 * shape before the output is allocated, so the allocation is bounded by
 * what the file really holds. */
static fx_status tensor_convert(const Onnx__TensorProto *t, const char *base_dir, const char *label,
                                onnx_tensor *ct, fx_error *err)
{
    ct->data = NULL;
    int32_t odt = t->has_data_type ? t->data_type : 0;
    size_t esize = elem_size(odt, &ct->dt);
    if (!esize)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "%s: data type %s (%d) not supported (float, float16, double, int32, "
                            "int64)",
                            label, onnx_type_name(odt), (int)odt);
    size_t n = 0;
    fx_status st = tensor_shape(t, label, &ct->shape, &n, err);
    if (st != FX_OK)
        return st;
    size_t need = n * esize, out_bytes = n * (ct->dt == FX_DT_FLOAT ? 4 : 8);

    uint8_t *ext = NULL;
    const uint8_t *raw = NULL;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        st = external_bytes(t, base_dir, label, need, &ext, err);
        if (st != FX_OK)
            return st;
        raw = ext;
    } else if (t->has_raw_data && t->raw_data.len > 0) {
        if (t->raw_data.len != need)
            return fx_error_set(err, FX_ERR_FORMAT,
                                "%s: raw_data is %zu bytes, the shape needs %zu", label,
                                t->raw_data.len, need);
        raw = t->raw_data.data;
    } else if (typed_count(t, odt) != n) {
        return fx_error_set(err, FX_ERR_FORMAT, "%s: %zu values for %zu elements", label,
                            typed_count(t, odt), n);
    }
    ct->data = malloc(out_bytes ? out_bytes : 1);
    if (!ct->data) {
        free(ext);
        return fx_error_set(err, FX_ERR_NOMEM, "%s: cannot allocate %zu bytes", label, out_bytes);
    }
    if (raw)
        decode_raw(odt, raw, n, ct->data);
    else
        decode_typed(t, odt, n, ct->data);
    free(ext);
    return FX_OK;
}

/* ---- attributes and nodes ---------------------------------------------------- */

/* The attribute's type; files from before IR 4 may leave `type` out, so it
 * is then inferred from the field that is set. */
static int attr_type(const Onnx__AttributeProto *a)
{
    if (a->has_type)
        return (int)a->type;
    if (a->t)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->n_floats)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (a->n_ints)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_strings)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    if (a->has_s)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->has_f)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

/* Map attribute ap of node `node` into *a.  *own receives a buffer a points
 * into (string copy, tensor data) for the caller to free; *skip is set for
 * kinds fx_attr has no place for (graphs, lists of strings or tensors):
 * no op the graph binds uses them, and ops that do are unsupported anyway. */
static fx_status attr_convert(const Onnx__AttributeProto *ap, const char *node,
                              const char *base_dir, fx_attr *a, void **own, int *skip,
                              fx_error *err)
{
    const char *name = str0(ap->name);
    memset(a, 0, sizeof *a);
    *own = NULL;
    *skip = 0;
    if (!*name)
        return fx_error_set(err, FX_ERR_FORMAT, "node '%s': attribute without a name", node);
    if (ap->ref_attr_name && *ap->ref_attr_name)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "node '%s': attribute '%s' refers to a function attribute", node, name);
    a->name = name;
    switch (attr_type(ap)) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        a->type = FX_ATTR_FLOAT;
        a->f = ap->f;
        return FX_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        a->type = FX_ATTR_INT;
        a->i = ap->i;
        return FX_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
        char *s = malloc(ap->s.len + 1); /* bytes -> C string */
        if (!s)
            return fx_error_set(err, FX_ERR_NOMEM, "node '%s': out of memory", node);
        if (ap->s.len)
            memcpy(s, ap->s.data, ap->s.len);
        s[ap->s.len] = '\0';
        *own = s;
        a->type = FX_ATTR_STRING;
        a->s = s;
        return FX_OK;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: {
        int ints = attr_type(ap) == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        size_t n = ints ? ap->n_ints : ap->n_floats;
        if (n > INT_MAX)
            return fx_error_set(err, FX_ERR_LIMIT, "node '%s': attribute '%s' too long", node,
                                name);
        a->type = ints ? FX_ATTR_INTS : FX_ATTR_FLOATS;
        a->ints = ints ? ap->ints : NULL;
        a->floats = ints ? NULL : ap->floats;
        a->n = (int)n;
        return FX_OK;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        if (!ap->t)
            return fx_error_set(err, FX_ERR_FORMAT, "node '%s': tensor attribute '%s' is empty",
                                node, name);
        char label[256];
        snprintf(label, sizeof label, "node '%s' attribute '%s'", node, name);
        onnx_tensor ct;
        fx_status st = tensor_convert(ap->t, base_dir, label, &ct, err);
        if (st != FX_OK)
            return st;
        *own = ct.data;
        a->type = FX_ATTR_TENSOR;
        a->t_dtype = ct.dt;
        a->t_shape = ct.shape;
        a->t_data = ct.data;
        return FX_OK;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED:
        return fx_error_set(err, FX_ERR_FORMAT, "node '%s': attribute '%s' has no value", node,
                            name);
    default: *skip = 1; return FX_OK;
    }
}

/* 0 if all n strings are non-NULL and n fits an int. */
static int check_names(char *const *names, size_t n)
{
    if (n > INT_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!names[i])
            return -1;
    return 0;
}

/* Feed one node to the sink: op_type qualified with its domain outside
 * ai.onnx (so the support check names it as such), attributes mapped. */
static fx_status import_node(const Onnx__NodeProto *np, const char *base_dir,
                             const fx_onnx_sink *sink, fx_error *err)
{
    const char *name = str0(np->name), *op = str0(np->op_type);
    if (!*op)
        return fx_error_set(err, FX_ERR_FORMAT, "node '%s' has no op_type", name);
    if (check_names(np->input, np->n_input) || check_names(np->output, np->n_output) ||
        np->n_attribute > INT_MAX)
        return fx_error_set(err, FX_ERR_FORMAT, "node '%s' (%s): bad input/output lists", name, op);
    char *qual = NULL;
    if (!is_onnx_domain(np->domain)) {
        size_t len = strlen(np->domain) + strlen(op) + 3;
        if (!(qual = malloc(len)))
            return fx_error_set(err, FX_ERR_NOMEM, "node '%s': out of memory", name);
        snprintf(qual, len, "%s::%s", np->domain, op);
    }
    size_t na = np->n_attribute;
    fx_attr *attrs = calloc(na ? na : 1, sizeof *attrs);
    void **own = calloc(na ? na : 1, sizeof *own);
    fx_status st = FX_OK;
    int kept = 0;
    if (!attrs || !own)
        st = fx_error_set(err, FX_ERR_NOMEM, "node '%s': out of memory", name);
    for (size_t k = 0; st == FX_OK && k < na; k++) {
        int skip;
        st = attr_convert(np->attribute[k], name, base_dir, &attrs[kept], &own[k], &skip, err);
        kept += st == FX_OK && !skip;
    }
    if (st == FX_OK)
        st = sink->add_node(sink->ctx, name, qual ? qual : op, (const char *const *)np->input,
                            (int)np->n_input, (const char *const *)np->output, (int)np->n_output,
                            attrs, kept, err);
    for (size_t k = 0; own && k < na; k++)
        free(own[k]);
    free(own);
    free(attrs);
    free(qual);
    return st;
}

/* ---- graph inputs ---------------------------------------------------------------- */

/* dtype and shape of a graph input; a dim_param or missing dim is dynamic
 * (-1).  An input without a shape is refused: its rank is unknown. */
static fx_status input_type(const Onnx__ValueInfoProto *vi, const char *name, fx_dtype *dt,
                            fx_shape *s, fx_error *err)
{
    const Onnx__TypeProto__Tensor *tt = vi->type ? vi->type->tensor_type : NULL;
    if (!tt)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "input '%s' is not a tensor", name);
    int32_t et = tt->has_elem_type ? tt->elem_type : 0;
    if (et == DT_FLOAT)
        *dt = FX_DT_FLOAT;
    else if (et == DT_INT64)
        *dt = FX_DT_INT64;
    else
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "input '%s': element type %s (%d)", name,
                            onnx_type_name(et), (int)et);
    if (!tt->shape)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "input '%s' has no shape", name);
    if (tt->shape->n_dim > FX_OPS_MAX_RANK)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "input '%s': rank %zu (at most %d)", name,
                            tt->shape->n_dim, FX_OPS_MAX_RANK);
    memset(s, 0, sizeof *s);
    s->rank = (int)tt->shape->n_dim;
    for (int i = 0; i < s->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d->has_dim_value && d->dim_value < 0)
            return fx_error_set(err, FX_ERR_FORMAT, "input '%s': negative dimension %lld", name,
                                (long long)d->dim_value);
        s->d[i] = d->has_dim_value ? d->dim_value : -1;
    }
    return FX_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Graph inputs that are not initializers (those are constants; exporters
 * before IR 4 listed every initializer as an input too). */
static fx_status import_inputs(const Onnx__GraphProto *g, const fx_onnx_sink *sink, fx_error *err)
{
    size_t ni = g->n_initializer;
    const char **names = malloc((ni ? ni : 1) * sizeof *names);
    if (!names)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < ni; k++)
        names[k] = str0(g->initializer[k]->name);
    qsort(names, ni, sizeof *names, cmp_str);
    fx_status st = FX_OK;
    for (size_t k = 0; st == FX_OK && k < g->n_input; k++) {
        const char *name = str0(g->input[k]->name);
        fx_dtype dt = FX_DT_FLOAT;
        fx_shape s = {0};
        if (!*name)
            st = fx_error_set(err, FX_ERR_FORMAT, "graph input %zu has no name", k);
        else if (bsearch(&name, names, ni, sizeof *names, cmp_str))
            continue;
        else if ((st = input_type(g->input[k], name, &dt, &s, err)) == FX_OK)
            st = sink->add_input(sink->ctx, name, dt, &s, err);
    }
    free(names);
    return st;
}

/* ---- the model ------------------------------------------------------------------- */

/* The ai.onnx opset, which must be in ONNX_OPSET_MIN..MAX. */
static fx_status model_opset(const Onnx__ModelProto *m, int *opset, fx_error *err)
{
    int64_t v = -1;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[k];
        if (!is_onnx_domain(o->domain))
            continue;
        if (!o->has_version || (v >= 0 && v != o->version))
            return fx_error_set(err, FX_ERR_FORMAT, "bad or conflicting ai.onnx opset_import");
        v = o->version;
    }
    if (v < 0)
        return fx_error_set(err, FX_ERR_FORMAT, "no opset_import for the ai.onnx domain");
    if (v < ONNX_OPSET_MIN || v > ONNX_OPSET_MAX)
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "opset %lld of ai.onnx is not supported (supported: %d..%d)",
                            (long long)v, ONNX_OPSET_MIN, ONNX_OPSET_MAX);
    *opset = (int)v;
    return FX_OK;
}

static fx_status import_initializers(const Onnx__GraphProto *g, const char *base_dir,
                                     const fx_onnx_sink *sink, fx_error *err)
{
    if (g->n_sparse_initializer)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "sparse initializers are not supported");
    for (size_t k = 0; k < g->n_initializer; k++) {
        Onnx__TensorProto *t = g->initializer[k]; /* its raw_data is freed once converted */
        const char *name = str0(t->name);
        if (!*name)
            return fx_error_set(err, FX_ERR_FORMAT, "initializer %zu has no name", k);
        char label[256];
        snprintf(label, sizeof label, "initializer '%s'", name);
        onnx_tensor ct;
        fx_status st = tensor_convert(t, base_dir, label, &ct, err);
        if (st == FX_OK && t->has_raw_data && t->raw_data.data) {
            /* converted: the message's copy of the weights goes now, not at
             * the end, so the parsed model and the graph's constants are
             * not both held in full (with the file's bytes freed after
             * parsing: peak ~2x the weights; 4.0x before, one 96 MiB tensor) */
            free(t->raw_data.data);
            t->raw_data.data = NULL;
            t->raw_data.len = 0;
        }
        if (st == FX_OK)
            st = sink->add_constant(sink->ctx, name, ct.dt, &ct.shape, ct.data, err);
        free(ct.data);
        if (st != FX_OK)
            return st;
    }
    return FX_OK;
}

static fx_status import_model(const Onnx__ModelProto *m, const char *base_dir,
                              const fx_onnx_sink *sink, fx_error *err)
{
    if (!m->has_ir_version || !m->graph)
        return fx_error_set(err, FX_ERR_FORMAT, "not an ONNX model (no %s)",
                            m->has_ir_version ? "graph" : "ir_version");
    if (m->ir_version < ONNX_IR_MIN || m->ir_version > ONNX_IR_MAX)
        return fx_error_set(err, FX_ERR_UNSUPPORTED, "IR version %lld not supported (%d..%d)",
                            (long long)m->ir_version, ONNX_IR_MIN, ONNX_IR_MAX);
    int opset = 0;
    fx_status st = model_opset(m, &opset, err);
    if (st != FX_OK)
        return st;
    sink->set_opset(sink->ctx, opset);
    const Onnx__GraphProto *g = m->graph;
    st = import_initializers(g, base_dir, sink, err);
    if (st == FX_OK)
        st = import_inputs(g, sink, err);
    for (size_t k = 0; st == FX_OK && k < g->n_output; k++) {
        const char *name = str0(g->output[k]->name);
        st = *name ? sink->add_output(sink->ctx, name, err)
                   : fx_error_set(err, FX_ERR_FORMAT, "graph output %zu has no name", k);
    }
    for (size_t k = 0; st == FX_OK && k < g->n_node; k++)
        st = import_node(g->node[k], base_dir, sink, err);
    return st;
}

/* Parse n bytes into a ModelProto (the system allocator: import_initializers
 * frees raw_data fields with free()). */
static fx_status unpack_model(const void *bytes, size_t n, Onnx__ModelProto **m, fx_error *err)
{
    static const uint8_t empty[1];
    *m = onnx__model_proto__unpack(NULL, n, bytes ? bytes : empty);
    if (!*m)
        return fx_error_set(err, FX_ERR_FORMAT,
                            "not an ONNX model (protobuf parse failed: damaged or truncated)");
    return FX_OK;
}

fx_status fx_onnx_import(const void *bytes, size_t n, const char *base_dir,
                         const fx_onnx_sink *sink, fx_error *err)
{
    if ((!bytes && n) || !sink)
        return fx_error_set(err, FX_ERR_USAGE, "fx_onnx_import: NULL argument");
    Onnx__ModelProto *m;
    fx_status st = unpack_model(bytes, n, &m, err);
    if (st != FX_OK)
        return st;
    st = import_model(m, base_dir, sink, err);
    onnx__model_proto__free_unpacked(m, NULL);
    return st;
}

/* The directory part of path ("." for a bare name); malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, slash ? path : ".", len);
        d[len] = '\0';
    }
    return d;
}

fx_status fx_onnx_import_file(const char *path, const fx_onnx_sink *sink, fx_error *err)
{
    if (!path || !sink)
        return fx_error_set(err, FX_ERR_USAGE, "fx_onnx_import_file: NULL argument");
    uint8_t *bytes = NULL;
    size_t n = 0;
    char *dir = NULL;
    Onnx__ModelProto *m = NULL;
    fx_status st = fx_read_file(path, ONNX_MAX_MODEL_BYTES, &bytes, &n, err);
    if (st == FX_OK && !(dir = dir_of(path)))
        st = fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    if (st == FX_OK)
        st = unpack_model(bytes, n, &m, err);
    free(bytes); /* parsed: the file's bytes are not needed while converting */
    bytes = NULL;
    if (st == FX_OK)
        st = import_model(m, dir, sink, err);
    if (m)
        onnx__model_proto__free_unpacked(m, NULL);
    free(dir);
    if (st != FX_OK)
        fx_error_prefix(err, "%s", path);
    return st;
}

/* ---- the graph sink and the public entry points ------------------------------ */

static void g_set_opset(void *ctx, int opset)
{
    fx_graph_set_opset(ctx, opset);
}

static fx_status g_add_constant(void *ctx, const char *name, fx_dtype dt, const fx_shape *shape,
                                const void *data, fx_error *err)
{
    return fx_graph_add_constant(ctx, name, dt, shape, data, err);
}

static fx_status g_add_input(void *ctx, const char *name, fx_dtype dt, const fx_shape *shape,
                             fx_error *err)
{
    return fx_graph_add_input(ctx, name, dt, shape, err);
}

static fx_status g_add_output(void *ctx, const char *name, fx_error *err)
{
    return fx_graph_add_output(ctx, name, err);
}

static fx_status g_add_node(void *ctx, const char *name, const char *op_type,
                            const char *const *inputs, int n_in, const char *const *outputs,
                            int n_out, const fx_attr *attrs, int n_attrs, fx_error *err)
{
    return fx_graph_add_node(ctx, name, op_type, inputs, n_in, outputs, n_out, attrs, n_attrs, err);
}

static fx_onnx_sink graph_sink(fx_graph *g)
{
    fx_onnx_sink s = {g, g_set_opset, g_add_constant, g_add_input, g_add_output, g_add_node};
    return s;
}

/* Shared tail of both loaders: the support check, then hand over or free. */
static fx_status finish(fx_graph *g, fx_status st, const char *path, fx_graph **out, fx_error *err)
{
    if (st == FX_OK && (st = fx_graph_check_supported(g, err)) != FX_OK && path)
        fx_error_prefix(err, "%s", path);
    if (st != FX_OK) {
        fx_graph_destroy(g);
        return st;
    }
    *out = g;
    return FX_OK;
}

fx_status fx_onnx_load(const char *path, fx_graph **out, fx_error *err)
{
    if (!path || !out)
        return fx_error_set(err, FX_ERR_USAGE, "fx_onnx_load: NULL argument");
    *out = NULL;
    fx_graph *g = fx_graph_create();
    if (!g)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
    fx_onnx_sink sink = graph_sink(g);
    return finish(g, fx_onnx_import_file(path, &sink, err), path, out, err);
}

fx_status fx_onnx_load_memory(const void *bytes, size_t n, const char *base_dir, fx_graph **out,
                              fx_error *err)
{
    if (!out)
        return fx_error_set(err, FX_ERR_USAGE, "fx_onnx_load_memory: NULL argument");
    *out = NULL;
    fx_graph *g = fx_graph_create();
    if (!g)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    fx_onnx_sink sink = graph_sink(g);
    return finish(g, fx_onnx_import(bytes, n, base_dir, &sink, err), NULL, out, err);
}
