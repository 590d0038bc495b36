/* fxscreen: Keras model import into the graph IR (include/fxscreen/graph.h),
 * with no Python and no TensorFlow.
 *
 * Files: HDF5 as `model.save("x.h5")` writes it (tf.keras 2.x and Keras 3's
 * legacy HDF5), and Keras 3 `.keras` zip archives (config.json +
 * model.weights.h5), chosen by content.  Sequential and Functional models,
 * nested models included (a keras.applications base inside a Sequential or
 * Functional model with a new head).  channels_last becomes the engine's
 * NCHW at import (weights transposed once); `padding="same"` follows
 * TensorFlow's asymmetric padding.  A final sigmoid or softmax is left out
 * of the graph, whose output is then the logits (the screening core applies
 * it again).  Tensors are named after their Keras layers, so `--layer` takes
 * a Keras layer name.  Unsupported layers are all listed at once, with
 * their names; Lambda layers and custom objects (Python code) are refused. */
#ifndef FXSCREEN_KERAS_H
#define FXSCREEN_KERAS_H

#include <stddef.h>

#include "fxscreen/graph.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the first bytes are an HDF5 file's or a zip archive's (a Keras
 * model, then, rather than ONNX). */
int fx_keras_sniff(const void *head, size_t n);

/* Load path into a new graph (caller destroys it), checked as fx_onnx_load
 * checks ONNX (fx_graph_check_supported).  Messages name the reason: not a
 * Keras model, a weights-only file (save_weights), an unsupported Keras
 * version, a damaged file, unsupported layers. */
fx_status fx_keras_load(const char *path, fx_graph **out, fx_error *err);

/* A model file of either kind (ONNX, or Keras by content). */
fx_status fx_model_load(const char *path, fx_graph **out, fx_error *err);

#ifdef __cplusplus
}
#endif
#endif
