/* fxscreen: ONNX model import into the graph IR (include/fxscreen/graph.h).
 *
 * Reads the ModelProto with protobuf-c from our own subset of the ONNX
 * schema (src/model/onnx.proto): opsets 11..21 of the ai.onnx domain,
 * initializers in float32 (float16 and int64 converted/kept as they appear),
 * external-data files resolved relative to the model's directory, a dynamic
 * batch dimension.  Every unsupported op is reported at once, with node
 * names, by fx_graph_check_supported. */
#ifndef FXSCREEN_ONNX_H
#define FXSCREEN_ONNX_H

#include "fxscreen/graph.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load path into a new graph (caller destroys it).  Errors name the file and
 * the reason (not ONNX, opset out of range, missing external data, ...). */
fx_status fx_onnx_load(const char *path, fx_graph **out, fx_error *err);

/* Same from memory; base_dir resolves external data (NULL: none allowed). */
fx_status fx_onnx_load_memory(const void *bytes, size_t n, const char *base_dir, fx_graph **out,
                              fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
