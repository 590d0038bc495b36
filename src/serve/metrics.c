/* serve's counters: atomics bumped where the event happens; /metrics only
 * formats them (Prometheus text exposition format 0.0.4). */
#include <stdio.h>
#include <stdlib.h>

#include "serve/serve_internal.h"

static const int status_codes[SV_STATUS_CODES] = {200, 201, 204, 400, 404, 405,
                                                  413, 415, 422, 429, 500, 503};
static const double latency_le[SV_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                                      0.5,   1.0,  2.5,   5.0,  10.0, 30.0};
static const int batch_le[SV_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

void sv_metrics_request(sv_metrics *m, int route, int status, double seconds)
{
    int s = SV_STATUS_CODES - 2; /* an unlisted status counts as 500 */
    for (int i = 0; i < SV_STATUS_CODES; i++)
        if (status_codes[i] == status)
            s = i;
    if (route < 0 || route >= m->nroutes)
        route = SV_ROUTE_OTHER;
    atomic_fetch_add(&m->requests[route][s], 1);
    int b = SV_LATENCY_BUCKETS;
    for (int i = 0; i < SV_LATENCY_BUCKETS; i++)
        if (seconds <= latency_le[i]) {
            b = i;
            break;
        }
    atomic_fetch_add(&m->latency[b], 1);
    atomic_fetch_add(&m->latency_us, (unsigned long)(seconds * 1e6 + 0.5));
    atomic_fetch_add(&m->latency_n, 1);
}

void sv_metrics_batch(sv_metrics *m, int n)
{
    int b = SV_BATCH_BUCKETS;
    for (int i = 0; i < SV_BATCH_BUCKETS; i++)
        if (n <= batch_le[i]) {
            b = i;
            break;
        }
    atomic_fetch_add(&m->batch[b], 1);
    atomic_fetch_add(&m->batch_images, (unsigned long)n);
    atomic_fetch_add(&m->batch_n, 1);
}

char *sv_metrics_text(const sv_metrics *m)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    if (!f)
        return NULL;
    fputs("# HELP fxscreen_http_requests_total HTTP requests answered, by route and status.\n"
          "# TYPE fxscreen_http_requests_total counter\n",
          f);
    for (int r = 0; r < m->nroutes; r++)
        for (int s = 0; s < SV_STATUS_CODES; s++) {
            unsigned long v = atomic_load(&m->requests[r][s]);
            if (v)
                fprintf(f, "fxscreen_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n",
                        m->route_name[r], status_codes[s], v);
        }
    fputs("# HELP fxscreen_http_request_duration_seconds Time from the request's headers to "
          "its answer.\n# TYPE fxscreen_http_request_duration_seconds histogram\n",
          f);
    unsigned long cum = 0;
    for (int i = 0; i <= SV_LATENCY_BUCKETS; i++) {
        cum += atomic_load(&m->latency[i]);
        if (i < SV_LATENCY_BUCKETS)
            fprintf(f, "fxscreen_http_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
                    latency_le[i], cum);
        else
            fprintf(f, "fxscreen_http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
    }
    fprintf(f, "fxscreen_http_request_duration_seconds_sum %.6f\n",
            atomic_load(&m->latency_us) / 1e6);
    fprintf(f, "fxscreen_http_request_duration_seconds_count %lu\n", atomic_load(&m->latency_n));
    fputs("# HELP fxscreen_batch_size Images per engine batch.\n"
          "# TYPE fxscreen_batch_size histogram\n",
          f);
    cum = 0;
    for (int i = 0; i <= SV_BATCH_BUCKETS; i++) {
        cum += atomic_load(&m->batch[i]);
        if (i < SV_BATCH_BUCKETS)
            fprintf(f, "fxscreen_batch_size_bucket{le=\"%d\"} %lu\n", batch_le[i], cum);
        else
            fprintf(f, "fxscreen_batch_size_bucket{le=\"+Inf\"} %lu\n", cum);
    }
    fprintf(f, "fxscreen_batch_size_sum %lu\nfxscreen_batch_size_count %lu\n",
            atomic_load(&m->batch_images), atomic_load(&m->batch_n));
    fprintf(f,
            "# HELP fxscreen_queue_depth Images waiting for the engine.\n"
            "# TYPE fxscreen_queue_depth gauge\nfxscreen_queue_depth %ld\n",
            atomic_load(&m->queue_depth));
    fprintf(f,
            "# HELP fxscreen_images_total Images screened.\n"
            "# TYPE fxscreen_images_total counter\nfxscreen_images_total %lu\n",
            atomic_load(&m->images));
    fprintf(f,
            "# HELP fxscreen_image_errors_total Uploads that could not be screened (not an "
            "image, damaged, too large, engine error).\n"
            "# TYPE fxscreen_image_errors_total counter\nfxscreen_image_errors_total %lu\n",
            atomic_load(&m->image_errors));
    fprintf(f,
            "# HELP fxscreen_results_stored Results held in memory.\n"
            "# TYPE fxscreen_results_stored gauge\nfxscreen_results_stored %lu\n"
            "# HELP fxscreen_results_bytes Bytes of results held in memory.\n"
            "# TYPE fxscreen_results_bytes gauge\nfxscreen_results_bytes %lu\n",
            atomic_load(&m->results), atomic_load(&m->result_bytes));
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
