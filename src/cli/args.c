#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int fx_cli_parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

void fx_cli_progress(void *ctx, const fx_progress *p)
{
    double rate = p->seconds > 0 ? (double)p->done / p->seconds : 0;
    fprintf(stderr, "\r%s: %zu", (const char *)ctx, p->done);
    if (p->total >= 0)
        fprintf(stderr, "/%ld", p->total);
    fprintf(stderr, " images, %zu errors, %.1f img/s", p->errors, rate);
    if (p->total >= 0 && rate > 0) {
        double eta = ((double)p->total - (double)p->done) / rate;
        fprintf(stderr, ", ETA %dm%02ds", (int)(eta / 60), (int)eta % 60);
    }
    fputs("   ", stderr);
    fflush(stderr);
}
