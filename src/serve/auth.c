/* serve's sign-in: bearer tokens with roles, from a YAML file of hashes.
 *
 *   tokens:
 *     - {name: dr-lee, role: clinician, sha256: <64 hex>}
 *
 * Only the SHA-256 of a token is stored; a presented token is hashed and
 * compared with every entry in constant time (no early exit, no length
 * leak: all hashes are 32 bytes).  Failed attempts are counted per client
 * address in a small table; past SV_AUTH_FAILS within SV_AUTH_WINDOW
 * seconds that address gets 429 until the window passes. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/yamlcfg.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/sha256.h"
#include "serve/serve_internal.h"

#define SV_AUTH_FAILS  10
#define SV_AUTH_WINDOW 60.0
#define SV_AUTH_SLOTS  256

typedef struct sv_token {
    char name[64];
    sv_role role;
    uint8_t hash[32];
} sv_token;

typedef struct fail_slot {
    char addr[64];
    double since;
    int count;
} fail_slot;

struct sv_auth {
    sv_token *t;
    int n;
    pthread_mutex_t mu;
    fail_slot fails[SV_AUTH_SLOTS];
};

const char *sv_role_name(sv_role r)
{
    return r == SV_ROLE_ADMIN ? "admin" : r == SV_ROLE_SERVICE ? "service" : "clinician";
}

int sv_role_parse(const char *s, sv_role *r)
{
    if (!strcmp(s, "clinician"))
        *r = SV_ROLE_CLINICIAN;
    else if (!strcmp(s, "service"))
        *r = SV_ROLE_SERVICE;
    else if (!strcmp(s, "admin"))
        *r = SV_ROLE_ADMIN;
    else
        return -1;
    return 0;
}

static int unhex(const char *s, uint8_t out[32])
{
    if (strlen(s) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        int hi = isdigit((unsigned char)s[2 * i]) ? s[2 * i] - '0' : tolower(s[2 * i]) - 'a' + 10;
        int lo = isdigit((unsigned char)s[2 * i + 1]) ? s[2 * i + 1] - '0'
                                                      : tolower(s[2 * i + 1]) - 'a' + 10;
        if (hi < 0 || hi > 15 || lo < 0 || lo > 15)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

fx_status sv_auth_load(const char *path, sv_auth **out, fx_error *err)
{
    *out = NULL;
    yaml_document_t doc;
    fx_status st = fx_ycfg_parse_file(path, &doc, err);
    if (st != FX_OK)
        return st;
    fx_ycfg L = {path, &doc, err};
    sv_auth *a = calloc(1, sizeof *a);
    if (!a) {
        yaml_document_delete(&doc);
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&a->mu, NULL);
    yaml_node_t *root = yaml_document_get_root_node(&doc), *list = NULL;
    if (root && root->type == YAML_MAPPING_NODE)
        FX_YCFG_FOR_PAIRS(root, p)
        {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            if (fx_ycfg_scalar(k) && !strcmp(fx_ycfg_scalar(k), "tokens"))
                list = yaml_document_get_node(&doc, p->value);
        }
    if (!list || list->type != YAML_SEQUENCE_NODE) {
        st = fx_ycfg_fail(&L, root, "tokens",
                          "want a list: tokens: [{name: NAME, role: clinician|service|admin, "
                          "sha256: HEX}] (fxscreen serve token add writes it)");
        goto done;
    }
    size_t cap = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (!(a->t = calloc(cap ? cap : 1, sizeof *a->t))) {
        st = fx_error_set(err, FX_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *m = yaml_document_get_node(&doc, *it);
        if ((st = fx_ycfg_need_map(&L, m, "tokens[]",
                                   "{name: dr-lee, role: clinician, sha256: HEX}")))
            goto done;
        sv_token *t = &a->t[a->n];
        int have = 0;
        FX_YCFG_FOR_PAIRS(m, p)
        {
            yaml_node_t *k, *v;
            char kname[64];
            fx_ycfg_pair(&L, p, "tokens[].", &k, &v, kname, sizeof kname);
            const char *ks = fx_ycfg_scalar(k), *vs = fx_ycfg_scalar(v);
            if (!ks || !vs) {
                st = fx_ycfg_fail(&L, v, kname, "want a plain value");
                goto done;
            }
            if (!strcmp(ks, "name") && strlen(vs) < sizeof t->name)
                snprintf(t->name, sizeof t->name, "%s", vs), have |= 1;
            else if (!strcmp(ks, "role") && !sv_role_parse(vs, &t->role))
                have |= 2;
            else if (!strcmp(ks, "sha256") && !unhex(vs, t->hash))
                have |= 4;
            else {
                st = fx_ycfg_fail(&L, v, kname,
                                  "want name (under 64 characters), role (clinician, service or "
                                  "admin) or sha256 (64 hex digits)");
                goto done;
            }
        }
        if (have != 7) {
            st = fx_ycfg_fail(&L, m, "tokens[]", "each token needs name, role and sha256");
            goto done;
        }
        a->n++;
    }
    if (a->n == 0)
        st = fx_ycfg_fail(&L, list, "tokens", "no tokens: add one with fxscreen serve token add");
done:
    yaml_document_delete(&doc);
    if (st != FX_OK) {
        sv_auth_free(a);
        return st;
    }
    *out = a;
    return FX_OK;
}

void sv_auth_free(sv_auth *a)
{
    if (!a)
        return;
    if (a->t)
        explicit_bzero(a->t, (size_t)a->n * sizeof *a->t);
    free(a->t);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* The slot of addr (found, or the oldest reused); under the lock. */
static fail_slot *slot_of(sv_auth *a, const char *addr, double now)
{
    fail_slot *oldest = &a->fails[0];
    for (int i = 0; i < SV_AUTH_SLOTS; i++) {
        fail_slot *f = &a->fails[i];
        if (!strcmp(f->addr, addr))
            return f;
        if (f->since < oldest->since)
            oldest = f;
    }
    snprintf(oldest->addr, sizeof oldest->addr, "%s", addr);
    oldest->since = now, oldest->count = 0;
    return oldest;
}

int sv_auth_check(sv_auth *a, const char *addr, const char *header, sv_user *u)
{
    double now = fx_now_s();
    pthread_mutex_lock(&a->mu);
    fail_slot *f = slot_of(a, addr, now);
    if (now - f->since > SV_AUTH_WINDOW)
        f->since = now, f->count = 0;
    int limited = f->count >= SV_AUTH_FAILS;
    pthread_mutex_unlock(&a->mu);
    if (limited)
        return SV_AUTH_LIMITED;
    const char *tok = NULL;
    if (header && !strncasecmp(header, "Bearer ", 7))
        tok = header + 7;
    if (!tok || !*tok)
        return SV_AUTH_NONE;
    uint8_t h[32];
    fx_sha256_buf(tok, strlen(tok), h);
    int hit = -1;
    for (int i = 0; i < a->n; i++) { /* every entry, every byte: constant time */
        uint8_t d = 0;
        for (int k = 0; k < 32; k++)
            d |= (uint8_t)(h[k] ^ a->t[i].hash[k]);
        int eq = d == 0;
        hit = eq && hit < 0 ? i : hit;
    }
    if (hit < 0) {
        pthread_mutex_lock(&a->mu);
        f = slot_of(a, addr, now);
        f->count++;
        pthread_mutex_unlock(&a->mu);
        return SV_AUTH_BAD;
    }
    snprintf(u->name, sizeof u->name, "%s", a->t[hit].name);
    u->role = a->t[hit].role;
    return SV_AUTH_OK;
}

fx_status fx_serve_token_add(const char *file, const char *name, const char *role, char *token_out,
                             size_t n, fx_error *err)
{
    sv_role r;
    if (sv_role_parse(role, &r))
        return fx_error_set(err, FX_ERR_USAGE,
                            "serve token add: role '%s': use clinician, service "
                            "or admin",
                            role);
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.' && *p != '@')
            return fx_error_set(err, FX_ERR_USAGE,
                                "serve token add: name '%s': use letters, "
                                "digits and - _ . @",
                                name);
    if (!*name || strlen(name) > 63 || n < 65)
        return fx_error_set(err, FX_ERR_USAGE, "serve token add: a name of 1..63 characters");
    uint8_t raw[FX_SHA256_BYTES], h[FX_SHA256_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t k = getrandom(raw + got, sizeof raw - got, 0);
        if (k < 0)
            return fx_error_set(err, FX_ERR_IO, "serve token add: no randomness");
        got += (size_t)k;
    }
    fx_sha256_hex(raw, token_out); /* 32 random bytes as 64 hex characters */
    explicit_bzero(raw, sizeof raw);
    fx_sha256_buf(token_out, 64, h);
    char hh[FX_SHA256_HEX];
    fx_sha256_hex(h, hh);
    FILE *f = fopen(file, "a+");
    if (!f)
        return fx_error_set(err, FX_ERR_IO, "serve token add: cannot open %s", file);
    fseek(f, 0, SEEK_END);
    if (ftell(f) == 0)
        fputs("# fxscreen serve --auth: bearer tokens, as SHA-256 hashes only\ntokens:\n", f);
    fprintf(f, "  - {name: %s, role: %s, sha256: %s}\n", name, role, hh);
    if (fclose(f) != 0)
        return fx_error_set(err, FX_ERR_IO, "serve token add: cannot write %s", file);
    return FX_OK;
}
