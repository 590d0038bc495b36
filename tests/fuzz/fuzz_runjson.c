/* libFuzzer target for what `run --resume`, `merge` and `--shard` parse:
 * run.json (src/job/run_json.c, its "shard" object included) and the
 * --shard spec (src/job/shard.c).  The input up to its first NUL is the
 * spec (with --shards taken from its first byte), the rest is run.json.
 * Build: make build/fuzz/fuzz_runjson   Smoke: tests/fuzz/smoke.sh */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fxscreen/shard.h"
#include "job/run_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t spec_n = nul ? (size_t)(nul - data) : 0;
    if (nul && spec_n < 64) {
        char spec[64];
        memcpy(spec, data, spec_n);
        spec[spec_n] = '\0';
        fx_shard sh;
        char how[96];
        if (fx_shard_parse(spec, spec_n ? data[0] % 8 : 0, &sh, how, sizeof how, NULL) == FX_OK) {
            volatile size_t r = fx_shard_rows(sh, 1000) + fx_shard_input(sh, 3);
            (void)r;
        }
    }
    const uint8_t *json = nul ? nul + 1 : data;
    size_t json_n = size - (size_t)(json - data);
    run_params p;
    if (run_params_parse((const char *)json, json_n, &p)) {
        volatile size_t sum = 0;
        for (int i = 0; i < p.nsources; i++)
            sum += strlen(p.sources[i]);
        sum += strlen(p.model) + (p.inputs_sha ? strlen(p.inputs_sha) : 0);
        run_params_free(&p);
    }
    return 0;
}
