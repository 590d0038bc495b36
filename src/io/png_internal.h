/* Internals of the PNG loader shared by png.c, png_fast.c and the tests. */
#ifndef FX_IO_PNG_INTERNAL_H
#define FX_IO_PNG_INTERNAL_H

#include "fxscreen/loader.h"

/* The fast path (png_fast.c): non-interlaced 8/16-bit grey files that are
 * plainly valid, decoded with libdeflate into the caller's plane (as
 * loader.h's load()).  FX_ERR_UNSUPPORTED for anything else, damage
 * included: the caller then decodes with libpng.  No error detail. */
fx_status fx_png_load_fast(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels);

/* libpng's decode of the same (every layout; the reference of the fast path). */
fx_status fx_png_load_libpng(const uint8_t *b, size_t n, const fx_image_info *info, void *pixels,
                             fx_error *err);

#endif
