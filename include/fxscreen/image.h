/* fxscreen: a decoded radiograph, one plane at native resolution.
 *
 * Decoders always produce a single grey plane (RGB is reduced to luma, see
 * io/loader.h), row-major, no padding between rows:
 *   FX_PIX_U8  : uint8_t  [height][width], full range 0..255
 *   FX_PIX_U16 : uint16_t [height][width], full range 0..65535 (native byte order)
 *   FX_PIX_F32 : float    [height][width], values as stored in the file
 * bit_depth keeps what the file held (1, 2, 4, 8, 16 or 32); 1/2/4-bit grey
 * is scaled to the full 8-bit range, 16-bit stays 16-bit. */
#ifndef FXSCREEN_IMAGE_H
#define FXSCREEN_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fx_pixtype { FX_PIX_U8 = 1, FX_PIX_U16 = 2, FX_PIX_F32 = 3 } fx_pixtype;

/* Identifiers some formats carry (DICOM), copied to the outputs; empty
 * strings and 0 for the others.  No patient name, ID or birth date is ever
 * read into it. */
typedef struct fx_image_ids {
    char sop_instance_uid[65], study_instance_uid[65], series_instance_uid[65];
    char accession_number[17], modality[17], body_part[65], view_position[17];
    double pixel_spacing[2]; /* mm between rows, between columns; 0 unknown */
} fx_image_ids;

/* What a header read tells before any pixel is decoded. */
typedef struct fx_image_info {
    int width, height; /* pixels */
    int bit_depth;     /* bits per sample in the file: 1,2,4,8,16,32 */
    int channels;      /* samples per pixel in the file (1..4), informative */
    fx_pixtype type;   /* storage type of the decoded plane */
    /* What some formats carry beside the pixels (DICOM); 0 when absent. */
    int frames;                   /* frames in the file (the first is decoded) */
    int has_window;               /* a window from the file (DICOM Window Center/Width, */
    double win_center, win_width; /* on the decoded values: window: {mode: dicom}) */
    fx_image_ids ids;
} fx_image_info;

/* Owned image: pixels is malloc'd (or borrowed, see `owned`). */
typedef struct fx_image {
    fx_image_info info;
    void *pixels; /* (height, width) of info.type */
    int owned;    /* 1: fx_image_free releases pixels */
} fx_image;

/* Bytes per sample of a storage type (1, 2 or 4). */
size_t fx_pixtype_size(fx_pixtype t);

/* width*height*elem with overflow check; returns 0 on overflow. */
size_t fx_image_bytes(const fx_image_info *info);

/* Release owned pixels and zero the struct. Safe on a zeroed struct. */
void fx_image_free(fx_image *img);

/* Intensity statistics over the plane (in stored units). */
typedef struct fx_image_stats {
    double min, max, mean;
} fx_image_stats;
void fx_image_stats_compute(const fx_image *img, fx_image_stats *out);

#ifdef __cplusplus
}
#endif
#endif
