/* HDF5 helpers for the writer sinks: see include/fxscreen/h5util.h. */
#include "fxscreen/h5util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FX_H5_MAX_RANK 8

hid_t fx_h5_create_file(const char *path, fx_error *err)
{
    /* HDF5's adaptive metadata cache grows towards 32 MiB as the chunk index
     * of a many-row dataset grows; cap it so peak memory does not depend on
     * the number of images. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* The 1.10 format indexes chunks of an extendible dataset with an
     * extensible array instead of a v1 B-tree: appends stay O(1) and the
     * index does not pile up in memory.  Readers need HDF5 >= 1.10. */
    if (fapl >= 0)
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    /* Freed HDF5 blocks go to the library's free lists; cap them (process
     * wide, the library's own setting) so they do not grow with the run. */
    H5set_free_list_limits(1 << 20, 1 << 18, 1 << 20, 1 << 18, 1 << 20, 1 << 18);
    H5AC_cache_config_t mdc;
    memset(&mdc, 0, sizeof mdc);
    mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    hid_t f = -1;
    if (fapl >= 0 && H5Pget_mdc_config(fapl, &mdc) >= 0) {
        mdc.set_initial_size = 1;
        mdc.initial_size = 1 << 20;
        mdc.max_size = 4 << 20;
        mdc.min_size = 1 << 20;
        if (H5Pset_mdc_config(fapl, &mdc) >= 0)
            f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    }
    if (fapl >= 0)
        H5Pclose(fapl);
    if (f < 0)
        fx_error_set(err, FX_ERR_IO, "%s: cannot create HDF5 file", path);
    return f;
}

hid_t fx_h5_ext_create(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims,
                       hsize_t chunk_rows, int deflate, fx_error *err)
{
    hsize_t cur[FX_H5_MAX_RANK], max[FX_H5_MAX_RANK], chunk[FX_H5_MAX_RANK];
    if (rank < 1 || rank > FX_H5_MAX_RANK) {
        fx_error_set(err, FX_ERR_INTERNAL, "dataset %s: rank %d out of range", name, rank);
        return -1;
    }
    cur[0] = 0;
    max[0] = H5S_UNLIMITED;
    chunk[0] = chunk_rows > 0 ? chunk_rows : 1;
    for (int d = 1; d < rank; d++)
        cur[d] = max[d] = chunk[d] = dims[d - 1];
    hid_t space = H5Screate_simple(rank, cur, max);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0)
        goto done;
    if (deflate > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)deflate) < 0))
        goto done;
    ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
done:
    if (ds < 0)
        fx_error_set(err, FX_ERR_IO, "cannot create HDF5 dataset %s", name);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return ds;
}

fx_status fx_h5_ext_append(hid_t dset, hid_t memtype, hsize_t rows, const void *data, fx_error *err)
{
    if (rows == 0)
        return FX_OK;
    hsize_t dims[FX_H5_MAX_RANK], start[FX_H5_MAX_RANK] = {0}, count[FX_H5_MAX_RANK];
    hid_t space = H5Dget_space(dset);
    int rank = space >= 0 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
    if (space >= 0)
        H5Sclose(space);
    if (rank < 1)
        return fx_error_set(err, FX_ERR_IO, "HDF5: cannot read dataset extent");
    start[0] = dims[0];
    dims[0] += rows;
    if (H5Dset_extent(dset, dims) < 0)
        return fx_error_set(err, FX_ERR_IO, "HDF5: cannot extend dataset");
    for (int d = 0; d < rank; d++)
        count[d] = d == 0 ? rows : dims[d];
    hid_t fspace = H5Dget_space(dset);
    hid_t mspace = H5Screate_simple(rank, count, NULL);
    herr_t rc = -1;
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0)
        rc = H5Dwrite(dset, memtype, mspace, fspace, H5P_DEFAULT, data);
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    return rc < 0 ? fx_error_set(err, FX_ERR_IO, "HDF5: write failed (disk full?)") : FX_OK;
}

hid_t fx_h5_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

fx_status fx_h5_ext_append_str(hid_t dset, hsize_t rows, const char *const *strs, fx_error *err)
{
    const char *v[1024];
    hid_t t = fx_h5_str_type();
    fx_status st = FX_OK;
    for (hsize_t done = 0; done < rows && st == FX_OK;) {
        hsize_t k = rows - done < 1024 ? rows - done : 1024;
        for (hsize_t i = 0; i < k; i++)
            v[i] = strs[done + i] ? strs[done + i] : "";
        st = fx_h5_ext_append(dset, t, k, v, err);
        done += k;
    }
    H5Tclose(t);
    return st;
}

hid_t fx_h5_f16_type(void)
{
    /* The layout h5py and numpy use for float16: sign bit 15, 5-bit
     * exponent at bit 10 with bias 15, 10-bit mantissa. */
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    H5Tset_precision(t, 16);
    return t;
}

static fx_status attr_write(hid_t obj, const char *name, hid_t type, const void *v, fx_error *err)
{
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a >= 0 ? H5Awrite(a, type, v) : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    return rc < 0 ? fx_error_set(err, FX_ERR_IO, "HDF5: cannot write attribute %s", name) : FX_OK;
}

fx_status fx_h5_attr_str(hid_t obj, const char *name, const char *value, fx_error *err)
{
    hid_t t = fx_h5_str_type();
    const char *v = value ? value : "";
    fx_status st = attr_write(obj, name, t, &v, err);
    H5Tclose(t);
    return st;
}

fx_status fx_h5_attr_i64(hid_t obj, const char *name, int64_t value, fx_error *err)
{
    return attr_write(obj, name, H5T_NATIVE_INT64, &value, err);
}

void fx_h5_attr_close(hid_t a, hid_t t, hid_t sp)
{
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
}

char *fx_h5_attr_read_str(hid_t obj, const char *name, size_t max)
{
    if (H5Aexists(obj, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    char *out = NULL;
    if (t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_STRING &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Tis_variable_str(t) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t)); /* UTF-8 from h5py, ASCII from Keras 2 */
            char *v = NULL;
            if (H5Aread(a, mt, &v) >= 0 && v)
                out = strdup(v);
            if (v)
                H5free_memory(v);
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(t);
            out = n < max ? calloc(n + 1, 1) : NULL;
            if (out && H5Aread(a, t, out) < 0) {
                free(out);
                out = NULL;
            }
        }
    }
    fx_h5_attr_close(a, t, sp);
    return out;
}

int fx_h5_attr_read_i64(hid_t obj, const char *name, int64_t *out)
{
    if (H5Aexists(obj, name) <= 0)
        return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), sp = a < 0 ? -1 : H5Aget_space(a);
    int ok =
        sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, H5T_NATIVE_INT64, out) >= 0;
    if (sp >= 0)
        H5Sclose(sp);
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

uint16_t fx_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) /* inf / NaN (keep a mantissa bit for NaN) */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {                          /* subnormal or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
        half++; /* may carry into the exponent: that is the right rounding */
    return (uint16_t)half;
}

void fx_iso8601_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void *fx_h5_read_all(hid_t f, const char *name, hid_t mem, size_t n, size_t per, size_t size)
{
    void *buf = malloc(n * per * size + 1);
    hid_t d = buf ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t pts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int ok = d >= 0 && pts == (hssize_t)(n * per) &&
             H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (!ok)
        free(buf);
    return ok ? buf : NULL;
}

char **fx_h5_read_strings(hid_t f, const char *name, size_t n)
{
    char **raw = calloc(n + 1, sizeof *raw), **out = calloc(n + 1, sizeof *out);
    hid_t d = raw && out ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    hid_t t = d >= 0 ? fx_h5_str_type() : -1, sp = d >= 0 ? H5Dget_space(d) : -1;
    int ok = d >= 0 && t >= 0 && sp >= 0 && H5Sget_simple_extent_npoints(sp) == (hssize_t)n &&
             H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = (out[i] = strdup(raw[i] ? raw[i] : "")) != NULL;
    if (d >= 0 && t >= 0 && sp >= 0 && raw)
        H5Dvlen_reclaim(t, sp, H5P_DEFAULT, raw);
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    free(raw);
    if (!ok && out) {
        fx_h5_strings_free(out, n);
        out = NULL;
    }
    return out;
}

void fx_h5_strings_free(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

int fx_h5_read_rows(hid_t f, const char *name, hid_t mem, size_t r0, size_t k, void *buf)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), fs = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[8], start[8] = {0}, count[8];
    int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
    int ok = rank >= 1 && rank <= 8 && H5Sget_simple_extent_dims(fs, dims, NULL) == rank &&
             r0 + k <= dims[0];
    for (int i = 0; ok && i < rank; i++)
        count[i] = i ? dims[i] : (hsize_t)k;
    start[0] = r0;
    hid_t ms = ok ? H5Screate_simple(rank, count, NULL) : -1;
    ok = ok && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
         H5Dread(d, mem, ms, fs, H5P_DEFAULT, buf) >= 0;
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    if (d >= 0)
        H5Dclose(d);
    return ok;
}
