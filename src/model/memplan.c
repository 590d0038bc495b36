/* First-fit offset allocator for the memory plan. */
#include <stdlib.h>
#include <string.h>

#include "model/memplan.h"

static void remove_at(fx_memplan *m, int i)
{
    memmove(&m->free_list[i], &m->free_list[i + 1],
            (size_t)(m->n_free - i - 1) * sizeof *m->free_list);
    m->n_free--;
}

int fx_memplan_alloc(fx_memplan *m, size_t size, size_t *off)
{
    size = fx_memplan_round(size ? size : 1);
    for (int i = 0; i < m->n_free; i++) {
        struct fx_range *r = &m->free_list[i];
        if (r->size >= size) {
            *off = r->off;
            r->off += size;
            r->size -= size;
            if (!r->size)
                remove_at(m, i);
            return 0;
        }
    }
    /* a free range touching the top grows instead of leaving a hole */
    if (m->n_free && m->free_list[m->n_free - 1].off + m->free_list[m->n_free - 1].size == m->top) {
        *off = m->free_list[m->n_free - 1].off;
        m->n_free--;
    } else
        *off = m->top;
    m->top = *off + size;
    if (m->top > m->peak)
        m->peak = m->top;
    return 0;
}

int fx_memplan_free(fx_memplan *m, size_t off, size_t size)
{
    size = fx_memplan_round(size ? size : 1);
    if (m->n_free == m->cap_free) {
        int cap = m->cap_free ? m->cap_free * 2 : 16;
        struct fx_range *f = realloc(m->free_list, (size_t)cap * sizeof *f);
        if (!f)
            return -1;
        m->free_list = f;
        m->cap_free = cap;
    }
    int i = 0;
    while (i < m->n_free && m->free_list[i].off < off)
        i++;
    memmove(&m->free_list[i + 1], &m->free_list[i], (size_t)(m->n_free - i) * sizeof *m->free_list);
    m->free_list[i] = (struct fx_range){off, size};
    m->n_free++;
    if (i + 1 < m->n_free && off + size == m->free_list[i + 1].off) {
        m->free_list[i].size += m->free_list[i + 1].size;
        remove_at(m, i + 1);
    }
    if (i > 0 && m->free_list[i - 1].off + m->free_list[i - 1].size == off) {
        m->free_list[i - 1].size += m->free_list[i].size;
        remove_at(m, i);
    }
    if (m->n_free && m->free_list[m->n_free - 1].off + m->free_list[m->n_free - 1].size == m->top) {
        m->top = m->free_list[m->n_free - 1].off; /* the arena end shrinks back */
        m->n_free--;
    }
    return 0;
}

void fx_memplan_release(fx_memplan *m)
{
    free(m->free_list);
    memset(m, 0, sizeof *m);
}
