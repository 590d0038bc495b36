/* The DICOM loader's internals: the header (fx_dcm_header), read in C by
 * the structural walk (src/io/dicom_check.c), and the thin C interface to
 * GDCM's pixel decode (src/io/dicom_gdcm.cpp, the only C++ in the project).
 * src/io/dicom.c is the loader table's entry and does the pixel arithmetic
 * (bits stored, sign, MONOCHROME1, rescale) in C.  Nothing is cached between
 * calls but each thread's helper process, so they are thread-safe as the
 * loader table requires. */
#ifndef FX_IO_DICOM_INTERNAL_H
#define FX_IO_DICOM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FX_DCM_UID 72

typedef struct fx_dcm_header {
    int has_pixels;              /* (7FE0,0010) present */
    int width, height, frames;   /* Columns, Rows, NumberOfFrames (1 when absent) */
    int samples;                 /* SamplesPerPixel */
    int bits_alloc, bits_stored; /* BitsAllocated, BitsStored */
    int high_bit;
    int is_signed;           /* PixelRepresentation 1 */
    double slope, intercept; /* Rescale Slope/Intercept (1, 0 when absent) */
    int has_window;          /* the first Window Center/Width pair */
    double win_center, win_width;
    char photometric[32];       /* "MONOCHROME2", ... */
    char ts_uid[FX_DCM_UID];    /* transfer syntax UID */
    char ts_name[96];           /* GDCM's name for it */
    char sop_class[FX_DCM_UID]; /* SOP Class UID */
    /* Identifiers for the outputs (no patient name, ID or birth date). */
    char sop_instance[FX_DCM_UID], study[FX_DCM_UID], series[FX_DCM_UID];
    char accession[FX_DCM_UID], modality[20], body_part[72], view_position[20];
    double spacing_row, spacing_col; /* mm (Pixel Spacing, else Imager Pixel Spacing); 0 unknown */
} fx_dcm_header;

/* The strict structural walk (src/io/dicom_check.c) every file passes
 * before GDCM reads it: 0, or -1 with the reason in msg.  On 0, h (when not
 * NULL) receives the header, read from the top-level elements in C: the
 * header never needs GDCM. */
int fx_dcm_check(const uint8_t *bytes, size_t n, fx_dcm_header *h, char *msg, size_t msgn);

/* Decodes the pixel data (every codec GDCM has) and copies frame 0 as
 * stored: width * height samples of bits_alloc bits (8, 16 or 32), host
 * byte order, into raw (room for that many bytes).  0, or -1 with msg. */
int fx_dcm_decode_frame0(const uint8_t *bytes, size_t n, const fx_dcm_header *h, void *raw,
                         char *msg, size_t msgn);

#ifndef __cplusplus
#include "fxscreen/status.h"

/* fx_dcm_decode_frame0 in this thread's helper process (dicom_helper.c),
 * so that GDCM aborting on a damaged stream costs one error row, not the
 * process.  *pix points at the decoded frame (bytes long) in memory shared
 * with the helper, valid until fx_dcm_helper_done, which zeroes it and the
 * file's copy.  Errors name the transfer syntax or carry GDCM's message. */
fx_status fx_dcm_helper_decode(const uint8_t *bytes, size_t n, const fx_dcm_header *h,
                               size_t pix_bytes, const void **pix, fx_error *err);
void fx_dcm_helper_done(void);
#endif

#ifdef __cplusplus
}
#endif
#endif
