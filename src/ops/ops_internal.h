/* Helpers shared by the src/ops files (not part of the public API). */
#ifndef FX_OPS_INTERNAL_H
#define FX_OPS_INTERNAL_H

#include "fxscreen/ops.h"

/* Row-major element strides of s (strides[i] = prod(d[i+1..])). */
static inline void fx_ops_strides(const fx_shape *s, int64_t *strides)
{
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        strides[i] = acc;
        acc *= s->d[i];
    }
}

/* Normalise a possibly negative axis; -1 when out of [-rank, rank). */
static inline int fx_ops_axis(int axis, int rank)
{
    if (axis < -rank || axis >= rank)
        return -1;
    return axis < 0 ? axis + rank : axis;
}

/* Product of d[lo..hi-1]. */
static inline int64_t fx_ops_prod(const fx_shape *s, int lo, int hi)
{
    int64_t p = 1;
    for (int i = lo; i < hi; i++)
        p *= s->d[i];
    return p;
}

/* Advance a row-major multi-index over dims d[0..rank-1]; the last axis
 * moves fastest. */
static inline void fx_ops_next_index(int64_t *idx, const int64_t *d, int rank)
{
    for (int i = rank - 1; i >= 0; i--) {
        if (++idx[i] < d[i])
            return;
        idx[i] = 0;
    }
}

#endif
