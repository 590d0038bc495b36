/* fxscreen: small helpers over HDF5 for the writer sinks.
 *
 * HDF5 is used from one thread only (the writer); these helpers keep the
 * datasets extendible along the first axis so rows can be appended batch by
 * batch and a file is valid after every append (H5Fflush). */
#ifndef FXSCREEN_H5UTIL_H
#define FXSCREEN_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Create (truncate) an HDF5 file for a long-running writer: the metadata
 * cache is capped at a few MiB so memory stays flat however many rows are
 * appended.  Returns the file id or < 0 (err filled). */
hid_t fx_h5_create_file(const char *path, fx_error *err);

/* Create dataset `name` of shape (0, dims[0], ..., dims[rank-2]) extendible
 * in the first axis, chunked as (chunk_rows, dims...), deflate level
 * `deflate` (0 = none) with byte shuffle. Returns the dataset id or < 0. */
hid_t fx_h5_ext_create(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims,
                       hsize_t chunk_rows, int deflate, fx_error *err);

/* Append `rows` rows of `memtype` from data (rows * prod(dims) elements). */
fx_status fx_h5_ext_append(hid_t dset, hid_t memtype, hsize_t rows, const void *data,
                           fx_error *err);

/* Append variable-length strings (NULL is written as ""). */
fx_status fx_h5_ext_append_str(hid_t dset, hsize_t rows, const char *const *strs, fx_error *err);

/* Variable-length UTF-8 string type (caller H5Tclose()s it). */
hid_t fx_h5_str_type(void);

/* IEEE half-precision float type as h5py writes it (caller H5Tclose()s it). */
hid_t fx_h5_f16_type(void);

/* Write a scalar string / int64 / double attribute on obj. */
fx_status fx_h5_attr_str(hid_t obj, const char *name, const char *value, fx_error *err);
fx_status fx_h5_attr_i64(hid_t obj, const char *name, int64_t value, fx_error *err);

/* A scalar string attribute (variable or fixed length, fixed ones under
 * max bytes) of obj, malloc'd; NULL if absent or not a string. */
char *fx_h5_attr_read_str(hid_t obj, const char *name, size_t max);
/* Closes an attribute, its type and its space, each when >= 0. */
void fx_h5_attr_close(hid_t a, hid_t t, hid_t sp);
/* A scalar numeric attribute as int64: 1, or 0 if absent or not one. */
int fx_h5_attr_read_i64(hid_t obj, const char *name, int64_t *out);

/* Readers for finished files (the report, ROAD); call them inside
 * H5E_BEGIN_TRY when a missing dataset is an expected answer. */
/* The whole dataset `name` (n rows of per values of size bytes, read as
 * mem) into a new buffer; NULL when absent or not n * per values. */
void *fx_h5_read_all(hid_t f, const char *name, hid_t mem, size_t n, size_t per, size_t size);
/* A variable-length string dataset of n rows as n malloc'd strings (free
 * with fx_h5_strings_free); NULL when absent or not n rows. */
char **fx_h5_read_strings(hid_t f, const char *name, size_t n);
void fx_h5_strings_free(char **s, size_t n);
/* Rows [r0, r0 + k) of dataset `name` (any rank, whole along the other
 * axes) as mem into buf: 1, or 0 on failure. */
int fx_h5_read_rows(hid_t f, const char *name, hid_t mem, size_t r0, size_t k, void *buf);

/* Float32 -> IEEE binary16 bits, round to nearest even (inf/NaN kept). */
uint16_t fx_f32_to_f16(float f);

/* Current UTC time as ISO 8601 "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 21 bytes). */
void fx_iso8601_now(char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
