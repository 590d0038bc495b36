/* The loader table's colour rule (io/loader.h), written once for every
 * loader: ITU-R BT.601 luma of an RGB sample, in double.  Integer planes
 * round it half away from zero (round(); the values are never negative),
 * float planes keep it as is. */
#ifndef FX_IO_LUMA_H
#define FX_IO_LUMA_H

static inline double fx_luma601(double r, double g, double b)
{
    return 0.299 * r + 0.587 * g + 0.114 * b;
}

#endif
