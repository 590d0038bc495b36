/* libFuzzer target for the Keras importer's config reader (src/model/keras.c,
 * keras_layers.c): the input is a model config (JSON, as model_config or
 * config.json hold it), built into a graph with zero weights of the shapes
 * the builder asks for (the HDF5 side is the HDF5 library's), then checked
 * as a loaded model is.  The first byte picks Keras 2 or 3 semantics.
 * Build: make build/fuzz/fuzz_keras   Smoke: tests/fuzz/smoke.sh */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/keras_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fx_status zeros(kr_weights *w, const kr_layer_ref *ref, int i, const fx_shape *expect,
                       float **out, fx_shape *shape, fx_error *err)
{
    (void)w;
    *shape = expect->rank < 0 ? (fx_shape){.rank = 1, .d = {1}} : *expect;
    int64_t n = 1;
    for (int k = 0; k < shape->rank; k++) {
        if (shape->d[k] < 0)
            shape->d[k] = 1;
        n *= shape->d[k];
        if (n > (1 << 22))
            return fx_error_set(err, FX_ERR_FORMAT, "layer '%s': weight %d too large", ref->name,
                                i);
    }
    *out = calloc((size_t)(n ? n : 1), sizeof(float));
    return *out ? FX_OK : fx_error_set(err, FX_ERR_NOMEM, "out of memory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    kr_weights w = {zeros};
    fx_graph *g = NULL;
    fx_error err = {0};
    if (kr_build((const char *)data + 1, size - 1, data[0] & 1 ? 3 : 2, &w, &g, &err) == FX_OK) {
        fx_graph_check_supported(g, &err);
        fx_graph_destroy(g);
    }
    return 0;
}
