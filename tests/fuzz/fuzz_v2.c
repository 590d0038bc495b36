/* libFuzzer target for serve's Open Inference Protocol request parser
 * (src/serve/v2_request.c): JSON header, binary-tensor extension, INPUT
 * tensors and IMAGE files.  The first byte says whether a header length is
 * given (bit 0) and the next two bytes give it; the rest is the body.  A
 * 1 x 4 x 4 model keeps tensors small.  Every slice of an accepted request
 * is read, so a slice past the body is an ASan report.
 * Build: make build/fuzz/fuzz_v2   Smoke: tests/fuzz/smoke.sh */
#include <stddef.h>
#include <stdint.h>

#include "serve/v2_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    long header_len = data[0] & 1 ? (long)(data[1] | data[2] << 8) : -1;
    const sv_v2_model m = {.C = 1, .H = 4, .W = 4, .max_n = 8};
    sv_v2_request q;
    char msg[512];
    if (sv_v2_parse(data + 3, size - 3, header_len, &m, &q, msg, sizeof msg) == 0) {
        volatile unsigned sum = 0;
        for (int i = 0; q.image && i < q.n; i++)
            for (size_t k = 0; k < q.file_n[i]; k++)
                sum += q.file[i][k];
        for (int i = 0; !q.image && i < q.n * 16; i++)
            sum += q.x[i] > 0;
        sv_v2_request_free(&q, &m);
    }
    return 0;
}
