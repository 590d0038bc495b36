/* fx_onnx_dump MODEL.onnx
 *
 * Loads MODEL with fx_onnx_load (the real path: graph builder + support
 * check).  On failure prints `error <status name>: <message>` and exits 2.
 * On success imports it once more through a printing sink
 * (src/model/onnx_internal.h) and prints what the importer produced, in its
 * call order:
 *   opset N
 *   const NAME DTYPE dims... sum=S wsum=W    (initializers)
 *   input NAME DTYPE dims...                 (-1 = dynamic)
 *   output NAME
 *   node NAME OPTYPE in... -> out...
 *   attr NODE NAME tensor DTYPE dims... sum=S wsum=W   (tensor attributes)
 * DTYPE is f32 or i64; dims are space-separated ("scalar" for rank 0);
 * empty names print as ''.  S is the sum of the elements in double, W the sum
 * of element i times (i % 7 + 1) (catches permuted or shifted data), both
 * %.9g for f32, exact integers for i64 (modulo 2^64).  Used by tests/py/test_onnx_import.py. */
#include <inttypes.h>
#include <stdio.h>

#include "fxscreen/onnx.h"
#include "model/onnx_internal.h"

static const char *nm(const char *s)
{
    return s && *s ? s : "''";
}

static void print_dims(const fx_shape *s)
{
    if (s->rank == 0)
        printf(" scalar");
    for (int i = 0; i < s->rank; i++)
        printf(" %" PRId64, s->d[i]);
}

/* " DTYPE dims... sum=S wsum=W" for a constant tensor. */
static void print_tensor(fx_dtype dt, const fx_shape *s, const void *data)
{
    printf(" %s", dt == FX_DT_FLOAT ? "f32" : "i64");
    print_dims(s);
    int64_t n = fx_shape_numel(s);
    if (dt == FX_DT_FLOAT) {
        const float *f = data;
        double sum = 0, wsum = 0;
        for (int64_t i = 0; i < n; i++) {
            sum += f[i];
            wsum += (double)f[i] * (double)(i % 7 + 1);
        }
        printf(" sum=%.9g wsum=%.9g\n", sum, wsum);
    } else {
        /* unsigned: wraps modulo 2^64 like numpy's int64 sums, never UB */
        const int64_t *q = data;
        uint64_t sum = 0, wsum = 0;
        for (int64_t i = 0; i < n; i++) {
            sum += (uint64_t)q[i];
            wsum += (uint64_t)q[i] * (uint64_t)(i % 7 + 1);
        }
        printf(" sum=%" PRId64 " wsum=%" PRId64 "\n", (int64_t)sum, (int64_t)wsum);
    }
}

static void p_opset(void *ctx, int opset)
{
    (void)ctx;
    printf("opset %d\n", opset);
}

static fx_status p_constant(void *ctx, const char *name, fx_dtype dt, const fx_shape *shape,
                            const void *data, fx_error *err)
{
    (void)ctx;
    (void)err;
    printf("const %s", nm(name));
    print_tensor(dt, shape, data);
    return FX_OK;
}

static fx_status p_input(void *ctx, const char *name, fx_dtype dt, const fx_shape *shape,
                         fx_error *err)
{
    (void)ctx;
    (void)err;
    printf("input %s %s", nm(name), dt == FX_DT_FLOAT ? "f32" : "i64");
    print_dims(shape);
    printf("\n");
    return FX_OK;
}

static fx_status p_output(void *ctx, const char *name, fx_error *err)
{
    (void)ctx;
    (void)err;
    printf("output %s\n", nm(name));
    return FX_OK;
}

static fx_status p_node(void *ctx, const char *name, const char *op_type, const char *const *inputs,
                        int n_in, const char *const *outputs, int n_out, const fx_attr *attrs,
                        int n_attrs, fx_error *err)
{
    (void)ctx;
    (void)err;
    printf("node %s %s", nm(name), op_type);
    for (int k = 0; k < n_in; k++)
        printf(" %s", nm(inputs[k]));
    printf(" ->");
    for (int k = 0; k < n_out; k++)
        printf(" %s", nm(outputs[k]));
    printf("\n");
    for (int a = 0; a < n_attrs; a++) {
        if (attrs[a].type != FX_ATTR_TENSOR)
            continue;
        printf("attr %s %s tensor", nm(name), attrs[a].name);
        print_tensor(attrs[a].t_dtype, &attrs[a].t_shape, attrs[a].t_data);
    }
    return FX_OK;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
        return 64;
    }
    fx_graph *g = NULL;
    fx_error err = {0};
    fx_status st = fx_onnx_load(argv[1], &g, &err);
    if (st != FX_OK) {
        printf("error %s: %s\n", fx_status_str(st), err.msg);
        return 2;
    }
    fx_graph_destroy(g);
    const fx_onnx_sink sink = {NULL, p_opset, p_constant, p_input, p_output, p_node};
    st = fx_onnx_import_file(argv[1], &sink, &err);
    if (st != FX_OK) { /* cannot happen after a successful load */
        printf("error %s: %s\n", fx_status_str(st), err.msg);
        return 2;
    }
    return 0;
}
