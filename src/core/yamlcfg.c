/* Shared YAML config reading: see yamlcfg.h. */
#include "core/yamlcfg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fx_status fx_ycfg_parse_file(const char *path, yaml_document_t *doc, fx_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fx_error_set(err, FX_ERR_CONFIG, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    fx_status st = FX_OK;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return fx_error_set(err, FX_ERR_NOMEM, "%s: yaml parser init failed", path);
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, doc))
        st = fx_error_set(err, FX_ERR_CONFIG, "%s: line %lu: YAML syntax: %s; fix the file", path,
                          (unsigned long)parser.problem_mark.line + 1,
                          parser.problem ? parser.problem : "parse error");
    yaml_parser_delete(&parser);
    fclose(f);
    return st;
}

fx_status fx_ycfg_fail(fx_ycfg *L, const yaml_node_t *at, const char *key, const char *fmt, ...)
{
    char why[FX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return fx_error_set(L->err, FX_ERR_CONFIG, "%s: line %lu: key '%s': %s", L->path,
                        (unsigned long)at->start_mark.line + 1, key, why);
}

const char *fx_ycfg_scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

fx_status fx_ycfg_double(fx_ycfg *L, const yaml_node_t *n, const char *key, double *out)
{
    const char *s = fx_ycfg_scalar(n);
    if (!s || !*s)
        return fx_ycfg_fail(L, n, key, "expected a number; write e.g. %s: 1.0", key);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return fx_ycfg_fail(L, n, key, "'%s' is not a finite number; write e.g. %s: 1.0", s, key);
    *out = v;
    return FX_OK;
}

fx_status fx_ycfg_int(fx_ycfg *L, const yaml_node_t *n, const char *key, int lo, int hi, int *out)
{
    const char *s = fx_ycfg_scalar(n);
    if (!s || !*s)
        return fx_ycfg_fail(L, n, key, "expected an integer; write e.g. %s: %d", key,
                            hi < 256 ? hi : 256);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno == ERANGE)
        return fx_ycfg_fail(L, n, key, "'%s' is not an integer; write e.g. %s: %d", s, key,
                            hi < 256 ? hi : 256);
    if (v < lo || v > hi)
        return fx_ycfg_fail(L, n, key, "%ld is outside %d..%d; pick a value in range", v, lo, hi);
    *out = (int)v;
    return FX_OK;
}

int fx_ycfg_enum(const yaml_node_t *n, const char *const *names, int count)
{
    const char *s = fx_ycfg_scalar(n);
    for (int i = 0; s && i < count; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

fx_status fx_ycfg_need_map(fx_ycfg *L, const yaml_node_t *n, const char *key, const char *example)
{
    if (n->type != YAML_MAPPING_NODE)
        return fx_ycfg_fail(L, n, key, "expected a mapping; write e.g. %s: %s", key, example);
    return FX_OK;
}

void fx_ycfg_pair(fx_ycfg *L, const yaml_node_pair_t *p, const char *prefix, yaml_node_t **k,
                  yaml_node_t **v, char *kname, size_t n)
{
    *k = yaml_document_get_node(L->doc, p->key);
    *v = yaml_document_get_node(L->doc, p->value);
    snprintf(kname, n, "%s%s", prefix, fx_ycfg_scalar(*k) ? fx_ycfg_scalar(*k) : "?");
}

/* A repeated key is almost always an edit mistake (YAML leaves it undefined). */
fx_status fx_ycfg_check_dup(fx_ycfg *L, const yaml_node_t *map, const yaml_node_pair_t *upto,
                            const yaml_node_t *key, const char *kname)
{
    const char *ks = fx_ycfg_scalar(key);
    if (!ks)
        return fx_ycfg_fail(L, key, kname, "keys must be plain words; see configs/default.yaml");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < upto; p++) {
        const char *o = fx_ycfg_scalar(yaml_document_get_node(L->doc, p->key));
        if (o && strcmp(o, ks) == 0)
            return fx_ycfg_fail(L, key, kname, "given twice; keep one");
    }
    return FX_OK;
}
