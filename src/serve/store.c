/* serve's results store: id -> JSON, overlay PNG and image PNG, in memory
 * only, for a TTL and within a byte budget.  A list in insertion order (so
 * the oldest is first to go); lookups scan it, which stays cheap because
 * the budget bounds it to thousands of entries at most. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "fxscreen/fsutil.h"
#include "serve/serve_internal.h"

typedef struct entry {
    char id[SV_ID_LEN + 1];
    char owner[64];
    double t;
    char *json;
    sv_visual v;
    size_t bytes;
    struct entry *next;
} entry;

struct sv_store {
    pthread_mutex_t mu;
    entry *head, *tail;
    size_t bytes, count, max_bytes;
    double ttl;
    sv_metrics *m;
};

sv_store *sv_store_create(double ttl_s, size_t max_bytes, sv_metrics *m)
{
    sv_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->ttl = ttl_s, s->max_bytes = max_bytes, s->m = m;
    return s;
}

void sv_visual_free(sv_visual *v)
{
    /* Patient data: zeroed before the memory goes back. */
    if (v->grey)
        explicit_bzero(v->grey, (size_t)v->w * (size_t)v->h);
    if (v->heat)
        explicit_bzero(v->heat, (size_t)v->W * (size_t)v->H);
    free(v->grey);
    free(v->heat);
    v->grey = v->heat = NULL;
}

static void entry_free(entry *e)
{
    explicit_bzero(e->json, strlen(e->json));
    free(e->json);
    sv_visual_free(&e->v);
    free(e);
}

/* Drops the head (the oldest); under the lock. */
static void drop_head(sv_store *s)
{
    entry *e = s->head;
    s->head = e->next;
    if (!s->head)
        s->tail = NULL;
    s->bytes -= e->bytes;
    s->count--;
    entry_free(e);
}

/* Expired entries, then the oldest while over budget; under the lock. */
static void sweep(sv_store *s, size_t incoming)
{
    double now = fx_now_s();
    while (s->head && now - s->head->t > s->ttl)
        drop_head(s);
    while (s->head && s->bytes + incoming > s->max_bytes)
        drop_head(s);
    atomic_store(&s->m->results, s->count);
    atomic_store(&s->m->result_bytes, s->bytes);
}

void sv_store_destroy(sv_store *s)
{
    if (!s)
        return;
    while (s->head)
        drop_head(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int sv_store_put(sv_store *s, const char *id, const char *owner, char *json, sv_visual *v)
{
    entry *e = calloc(1, sizeof *e);
    if (!e) {
        free(json);
        sv_visual_free(v);
        return -1;
    }
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->owner, sizeof e->owner, "%s", owner);
    e->t = fx_now_s();
    e->json = json;
    e->v = *v;
    e->bytes = sizeof *e + strlen(json) + (size_t)v->w * v->h + (size_t)v->W * v->H;
    pthread_mutex_lock(&s->mu);
    sweep(s, e->bytes);
    if (s->tail)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->bytes += e->bytes;
    s->count++;
    atomic_store(&s->m->results, s->count);
    atomic_store(&s->m->result_bytes, s->bytes);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void sv_store_sweep(sv_store *s)
{
    pthread_mutex_lock(&s->mu);
    sweep(s, 0);
    pthread_mutex_unlock(&s->mu);
}

/* The live entry with this id and owner; under the lock.  Another owner's
 * result is "unknown" (404), not "forbidden": its existence is not told. */
static entry *find(sv_store *s, const char *id, const char *owner)
{
    sweep(s, 0);
    for (entry *e = s->head; e; e = e->next)
        if (!strcmp(e->id, id))
            return strcmp(e->owner, owner) ? NULL : e;
    return NULL;
}

char *sv_store_json(sv_store *s, const char *id, const char *owner)
{
    pthread_mutex_lock(&s->mu);
    entry *e = find(s, id, owner);
    char *out = e ? strdup(e->json) : NULL;
    pthread_mutex_unlock(&s->mu);
    return out;
}

int sv_store_visual(sv_store *s, const char *id, const char *owner, sv_visual *v)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&s->mu);
    entry *e = find(s, id, owner);
    if (e) {
        size_t n = (size_t)e->v.w * e->v.h, m = (size_t)e->v.W * e->v.H;
        *v = e->v;
        v->grey = malloc(n);
        v->heat = malloc(m);
        if (v->grey && v->heat) {
            memcpy(v->grey, e->v.grey, n);
            memcpy(v->heat, e->v.heat, m);
        } else
            sv_visual_free(v);
    }
    pthread_mutex_unlock(&s->mu);
    return v->grey ? 0 : -1;
}

void sv_new_id(char id[SV_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[SV_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k > 0)
            got += (size_t)k;
    }
    for (size_t i = 0; i < sizeof r; i++) {
        id[2 * i] = hex[r[i] >> 4];
        id[2 * i + 1] = hex[r[i] & 15];
    }
    id[SV_ID_LEN] = 0;
}
