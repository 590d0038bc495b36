/* fxscreen: image format loaders behind one small table.
 *
 * Loaders decode from memory (the bytes of a whole file), so the same code
 * serves files on disk, members of archives and uploads that must never
 * touch the disk.  Decoding is two-phase, as in libspng:
 *   1. header(): parse just enough to know width/height/type;
 *   2. the caller checks limits and supplies the buffer (e.g. a batch slot);
 *   3. load(): decode into that buffer.
 * The loader for a buffer is chosen by its magic bytes (sniff), never by the
 * file's extension. Loaders keep no state between calls and are thread-safe.
 *
 * Colour handling (radiographs are grey): RGB/RGBA/palette are reduced to one
 * plane by ITU-R BT.601 luma, round(0.299 R + 0.587 G + 0.114 B), computed in
 * double and rounded half away from zero; alpha is ignored (dropped). */
#ifndef FXSCREEN_LOADER_H
#define FXSCREEN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/image.h"
#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_loader {
    const char *name;            /* "png", "tiff" */
    const char *const *suffixes; /* NULL-terminated, lower case, with dot: ".png" */
    /* 1 if the first n bytes look like this format (n may be < 16). */
    int (*sniff)(const uint8_t *bytes, size_t n);
    /* Parse the header of the whole file in bytes[0..n). Fills info.
     * Errors: FX_ERR_FORMAT (damaged), FX_ERR_UNSUPPORTED (layout). */
    fx_status (*header)(const uint8_t *bytes, size_t n, fx_image_info *info, fx_error *err);
    /* Decode into pixels, which the caller sized as fx_image_bytes(info) for
     * the info that header() returned.  On error the buffer content is
     * unspecified. */
    fx_status (*load)(const uint8_t *bytes, size_t n, const fx_image_info *info, void *pixels,
                      fx_error *err);
} fx_loader;

/* The built-in table, NULL-terminated. */
const fx_loader *const *fx_loaders(void);

/* Loader whose sniff() accepts bytes, or NULL. */
const fx_loader *fx_loader_find(const uint8_t *bytes, size_t n);

/* 1 if path's extension (case-insensitive) belongs to any loader. */
int fx_loader_suffix_known(const char *path);

/* 1 if the first bytes of the file at path are a format some loader reads
 * (DICOM files often have no extension).  0 when unreadable. */
int fx_loader_sniff_file(const char *path);
/* Limits checked after header(), before any pixel buffer is allocated. */
typedef struct fx_decode_limits {
    double max_megapixels; /* width*height/1e6; 0 = no limit */
} fx_decode_limits;

/* Phase one of a decode: sniff (when *ld is NULL; *ld receives the loader),
 * read the header into info, and check the limits and the byte count before
 * any pixel buffer is allocated.  The caller then allocates
 * fx_image_bytes(info) bytes (or reuses a buffer) and calls (*ld)->load(). */
fx_status fx_decode_header(const fx_loader **ld, const uint8_t *bytes, size_t n,
                           const fx_decode_limits *lim, fx_image_info *info, fx_error *err);

/* Convenience for one buffer: sniff, header, check limits, allocate, load.
 * On success img owns a malloc'd plane (free with fx_image_free).  Error
 * messages do not name the file: callers prefix it. */
fx_status fx_decode_memory(const uint8_t *bytes, size_t n, const fx_decode_limits *lim,
                           fx_image *img, fx_error *err);

/* As fx_decode_memory, but with the loader forced (ld != NULL skips sniffing;
 * used by the fuzz targets and when the format is known).  ld NULL = sniff. */
fx_status fx_decode_memory_as(const fx_loader *ld, const uint8_t *bytes, size_t n,
                              const fx_decode_limits *lim, fx_image *img, fx_error *err);

/* Read a whole file into a malloc'd buffer (caller frees *bytes).  Refuses
 * directories, non-regular files and files over max_bytes (0 = no limit). */
fx_status fx_read_file(const char *path, size_t max_bytes, uint8_t **bytes, size_t *n,
                       fx_error *err);

/* fx_read_file + fx_decode_memory, with the path prefixed to any message. */
fx_status fx_decode_file(const char *path, const fx_decode_limits *lim, fx_image *img,
                         fx_error *err);

/* Loader entry points (io/png.c, io/tiff.c, io/jpeg.c, io/jp2.c, io/dicom.c). */
extern const fx_loader fx_png_loader;
extern const fx_loader fx_tiff_loader;
extern const fx_loader fx_jpeg_loader;  /* io/jpeg.c, libjpeg-turbo */
extern const fx_loader fx_jp2_loader;   /* io/jp2.c, OpenJPEG */
extern const fx_loader fx_dicom_loader; /* io/dicom.c, through GDCM; not in static builds */

/* Writers used by synth and tests (io/png_save.c, io/tiff_save.c).
 * pixels: (height, width) grey, type U8 or U16 (TIFF also F32). */
typedef enum fx_tiff_compression {
    FX_TIFF_NONE = 0,
    FX_TIFF_LZW,
    FX_TIFF_DEFLATE,
    FX_TIFF_PACKBITS,
} fx_tiff_compression;
fx_status fx_png_save(const char *path, const fx_image *img, fx_error *err);
fx_status fx_tiff_save(const char *path, const fx_image *img, fx_tiff_compression comp,
                       fx_error *err);
/* 8-bit RGB PNG: rgb is (height, width, 3) row-major, borrowed.  zlib_level
 * 0..9, libdeflate's level (overlays use 1: fast, a little larger); every
 * row SUB-filtered.  Deterministic bytes; on error no file is left at path. */
fx_status fx_png_save_rgb8(const char *path, int width, int height, const uint8_t *rgb,
                           int zlib_level, fx_error *err);

/* An 8-bit grey (channels 1) or RGB (channels 3) PNG encoded into memory:
 * *out is malloc'd (caller frees), *n its length.  The encoder of
 * fx_png_save_rgb8 (libdeflate, SUB filter, level 0..9), so the bytes are
 * deterministic.  Used for serve's overlays, which never touch the disk. */
fx_status fx_png_encode(int width, int height, int channels, const uint8_t *px, int zlib_level,
                        uint8_t **out, size_t *n, fx_error *err);
#ifdef __cplusplus
}
#endif
#endif
