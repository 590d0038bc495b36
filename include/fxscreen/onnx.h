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

/* Load path into a new graph (caller destroys it with fx_graph_destroy).
 * Errors name the file and the reason (not ONNX, opset out of range, missing
 * external data, ...).  The load ends with fx_graph_check_supported, so a
 * model with unsupported ops (including any node outside the ai.onnx domain,
 * listed as "domain::Op") fails here with FX_ERR_UNSUPPORTED and one message
 * listing every one of them with its node names; *out is then NULL.
 * Initializers become constants (also those listed as graph inputs):
 * FLOAT, FLOAT16 (exactly) and DOUBLE (rounded) as float32, INT32 and INT64
 * as int64; from raw_data (little-endian), the typed fields or external data
 * (location/offset/length relative to the model's directory; absolute paths,
 * '..' and symlinks leading out of it are refused).  Constant nodes' tensors
 * are converted the same way.  Input dims given by dim_param or not at all
 * are dynamic (-1). */
fx_status fx_onnx_load(const char *path, fx_graph **out, fx_error *err);

/* Same from memory; base_dir resolves external data (NULL: none allowed).
 * Messages name no file: callers prefix it. */
fx_status fx_onnx_load_memory(const void *bytes, size_t n, const char *base_dir, fx_graph **out,
                              fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
