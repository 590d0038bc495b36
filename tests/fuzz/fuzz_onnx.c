/* libFuzzer target for the ONNX importer: protobuf-c unpack, then every
 * check and conversion of model/onnx.c and the graph builder, through
 * fx_onnx_load_memory with no base directory (external data is refused, so
 * the fuzzer never opens files).  Any crash, leak, hang or sanitizer report
 * is a bug.
 * Build: make build/fuzz/fuzz_onnx   Smoke: tests/fuzz/smoke.sh
 * Seeds: tests/fuzz/corpus_onnx/ (tests/fuzz/make_corpus_onnx.py). */
#include <stddef.h>
#include <stdint.h>

#include "fxscreen/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fx_graph *g = NULL;
    fx_error err = {0};
    if (fx_onnx_load_memory(data, size, NULL, &g, &err) == FX_OK)
        fx_graph_destroy(g);
    return 0;
}
