/* An Open Inference Protocol (KServe v2) infer request, parsed and checked
 * without the network: kserve.c runs it on a received body, and
 * tests/fuzz/fuzz_v2.c on hostile bytes.  JSON through cJSON; the
 * binary-tensor extension (Inference-Header-Content-Length) read here.
 *
 * One input: INPUT, FP32 (N, C, H, W), copied out as floats, or IMAGE,
 * BYTES (N) image files, kept as slices of the body (binary) or decoded
 * from base64 (JSON).  Outputs: the seven below, each as JSON or binary. */
#ifndef FX_SERVE_V2_REQUEST_H
#define FX_SERVE_V2_REQUEST_H

#include <stddef.h>
#include <stdint.h>

enum {
    SV_V2_LOGITS,
    SV_V2_PROBABILITIES,
    SV_V2_PROBABILITY,
    SV_V2_PREDICTION,
    SV_V2_HEATMAP,
    SV_V2_PEAK,
    SV_V2_BBOX,
    SV_V2_NOUT
};
typedef struct sv_v2_output {
    const char *name, *datatype;
    int by_default; /* returned when the request names no outputs */
} sv_v2_output;
extern const sv_v2_output sv_v2_outputs[SV_V2_NOUT];

typedef struct sv_v2_model {
    int C, H, W; /* the model's input */
    int max_n;   /* images per request */
} sv_v2_model;

typedef struct sv_v2_request {
    char *id;             /* the request's id, or NULL */
    int n;                /* images */
    int image;            /* 1: IMAGE, 0: INPUT */
    float *x;             /* INPUT: (n, C, H, W) */
    const uint8_t **file; /* IMAGE: n files: slices of the body, or owned below */
    size_t *file_n;
    uint8_t **own;                /* IMAGE: the decoded base64 of file i, or NULL */
    int want[SV_V2_NOUT];         /* 0: not returned, 1: as JSON, 2: as binary */
    int order[SV_V2_NOUT], nwant; /* the outputs in the order asked */
} sv_v2_request;

/* Parses body[0..n): a JSON header of header_len bytes (-1: all of it),
 * then binary tensor data.  0 and *q filled (IMAGE slices point into body,
 * which must outlive q), or an HTTP status (400, 503 out of memory) with
 * the reason in msg; q is then empty.  Free with sv_v2_request_free. */
int sv_v2_parse(const uint8_t *body, size_t n, long header_len, const sv_v2_model *m,
                sv_v2_request *q, char *msg, size_t msg_n);
/* Frees IMAGE's decoded files (zeroed) and the slices; the rest stays. */
void sv_v2_request_free_files(sv_v2_request *q);
/* Frees q, zeroing what held patient data. */
void sv_v2_request_free(sv_v2_request *q, const sv_v2_model *m);

#endif
