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
    double t;
    char *json;
    uint8_t *png[2]; /* overlay, image */
    size_t png_n[2];
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

static void entry_free(entry *e)
{
    free(e->json);
    free(e->png[0]);
    free(e->png[1]);
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

int sv_store_put(sv_store *s, const char *id, char *json, uint8_t *overlay, size_t overlay_n,
                 uint8_t *image, size_t image_n)
{
    entry *e = calloc(1, sizeof *e);
    if (!e) {
        free(json);
        free(overlay);
        free(image);
        return -1;
    }
    snprintf(e->id, sizeof e->id, "%s", id);
    e->t = fx_now_s();
    e->json = json;
    e->png[0] = overlay, e->png_n[0] = overlay_n;
    e->png[1] = image, e->png_n[1] = image_n;
    e->bytes = sizeof *e + strlen(json) + overlay_n + image_n;
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

uint8_t *sv_store_get(sv_store *s, const char *id, int what, size_t *n)
{
    uint8_t *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    sweep(s, 0);
    for (entry *e = s->head; e; e = e->next) {
        if (strcmp(e->id, id))
            continue;
        const void *src = what == 0 ? (const void *)e->json : e->png[what - 1];
        size_t len = what == 0 ? strlen(e->json) : e->png_n[what - 1];
        if (src && (out = malloc(len ? len : 1))) {
            memcpy(out, src, len);
            *n = len;
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return out;
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
