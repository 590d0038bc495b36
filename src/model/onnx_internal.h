/* fxscreen: the ONNX importer's inside, for model/onnx.c and its tests.
 *
 * The importer walks a ModelProto and feeds what it finds to a "sink": a
 * small table of builder calls with the signatures of graph.h's builder.
 * fx_onnx_load uses a sink that forwards to fx_graph_*; the test tool
 * tests/tools/fx_onnx_dump.c uses one that prints every call, so tests see
 * exactly what the importer produced (names, shapes, converted values)
 * before the graph rewrites anything. */
#ifndef FXSCREEN_ONNX_INTERNAL_H
#define FXSCREEN_ONNX_INTERNAL_H

#include <stddef.h>

#include "fxscreen/graph.h"
#include "fxscreen/status.h"

/* Builder calls, in the order the importer makes them: set_opset once,
 * add_constant per initializer, add_input per non-initializer graph input,
 * add_output per graph output, add_node per node (topological order as in
 * the file).  Each returns FX_OK or an error (which stops the import).
 * Borrowed pointers are valid only during the call. */
typedef struct fx_onnx_sink {
    void *ctx;
    void (*set_opset)(void *ctx, int opset);
    fx_status (*add_constant)(void *ctx, const char *name, fx_dtype dt, const fx_shape *shape,
                              const void *data, fx_error *err);
    fx_status (*add_input)(void *ctx, const char *name, fx_dtype dt, const fx_shape *shape,
                           fx_error *err);
    fx_status (*add_output)(void *ctx, const char *name, fx_error *err);
    /* op_type is "Conv" for the ai.onnx domain, "domain::Op" for any other. */
    fx_status (*add_node)(void *ctx, const char *name, const char *op_type,
                          const char *const *inputs, int n_in, const char *const *outputs,
                          int n_out, const fx_attr *attrs, int n_attrs, fx_error *err);
} fx_onnx_sink;

/* Parse the model in bytes[0..n) and feed it to sink.  base_dir resolves
 * external data files (NULL: a tensor with external data is refused).
 * Messages name the tensor/node and the reason, not the file. */
fx_status fx_onnx_import(const void *bytes, size_t n, const char *base_dir,
                         const fx_onnx_sink *sink, fx_error *err);

/* Read path and import it with its directory as base_dir; messages are
 * prefixed with path. */
fx_status fx_onnx_import_file(const char *path, const fx_onnx_sink *sink, fx_error *err);

#endif
