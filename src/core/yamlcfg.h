/* Internal: the pieces every YAML config reader shares (libyaml document
 * API, for line numbers): load a file, walk mappings, read typed scalars,
 * and fail with "FILE: line N: key 'a.b': why; fix" messages.
 * Used by the preprocessing config (prep/config.c) and the run sections of
 * a model sidecar (job/run_config.c), which read the same file. */
#ifndef FX_CORE_YAMLCFG_H
#define FX_CORE_YAMLCFG_H

#include <stddef.h>
#include <yaml.h>

#include "fxscreen/status.h"

typedef struct fx_ycfg {
    const char *path;     /* for messages */
    yaml_document_t *doc; /* borrowed */
    fx_error *err;
} fx_ycfg;

/* Parse path into *doc (FX_ERR_CONFIG naming the file and line on a syntax
 * error); on success the caller owns *doc (yaml_document_delete). */
fx_status fx_ycfg_parse_file(const char *path, yaml_document_t *doc, fx_error *err);

/* FX_ERR_CONFIG "path: line N: key 'key': why". */
fx_status fx_ycfg_fail(fx_ycfg *L, const yaml_node_t *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The text of a scalar node, NULL for mappings and sequences. */
const char *fx_ycfg_scalar(const yaml_node_t *n);

fx_status fx_ycfg_double(fx_ycfg *L, const yaml_node_t *n, const char *key, double *out);
fx_status fx_ycfg_int(fx_ycfg *L, const yaml_node_t *n, const char *key, int lo, int hi, int *out);
/* Index of the scalar among names[count], or -1. */
int fx_ycfg_enum(const yaml_node_t *n, const char *const *names, int count);
fx_status fx_ycfg_need_map(fx_ycfg *L, const yaml_node_t *n, const char *key, const char *example);
/* Key and value of one pair, with the dotted key name ("prefix" + key). */
void fx_ycfg_pair(fx_ycfg *L, const yaml_node_pair_t *p, const char *prefix, yaml_node_t **k,
                  yaml_node_t **v, char *kname, size_t n);
/* A key that is not a plain word, or that repeats an earlier key of map. */
fx_status fx_ycfg_check_dup(fx_ycfg *L, const yaml_node_t *map, const yaml_node_pair_t *upto,
                            const yaml_node_t *key, const char *kname);

#define FX_YCFG_FOR_PAIRS(map, p)                                                                  \
    for (yaml_node_pair_t *p = (map)->data.mapping.pairs.start; p < (map)->data.mapping.pairs.top; \
         p++)

#endif
