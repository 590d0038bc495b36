/* A first-fit arena allocator for the plan's liveness-based memory plan
 * (src/model/memplan.c).  Offsets only: nothing is allocated here. */
#ifndef FX_MODEL_MEMPLAN_H
#define FX_MODEL_MEMPLAN_H

#include <stddef.h>

#define FX_MEMPLAN_ALIGN 64

typedef struct fx_memplan {
    struct fx_range { size_t off, size; } *free_list; /* sorted by off, merged */
    int n_free, cap_free;
    size_t top;  /* current end of the arena */
    size_t peak; /* largest top seen */
} fx_memplan;

/* Reserve size bytes (rounded up to FX_MEMPLAN_ALIGN) in the first free
 * range that fits, else at the top; *off receives the offset.  -1 on OOM. */
int fx_memplan_alloc(fx_memplan *m, size_t size, size_t *off);

/* Give back a range from fx_memplan_alloc (same size).  -1 on OOM. */
int fx_memplan_free(fx_memplan *m, size_t off, size_t size);

void fx_memplan_release(fx_memplan *m);

static inline size_t fx_memplan_round(size_t n)
{
    return (n + FX_MEMPLAN_ALIGN - 1) / FX_MEMPLAN_ALIGN * FX_MEMPLAN_ALIGN;
}

#endif
