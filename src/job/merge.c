/* `fxscreen merge`: the shards of a sharded run as one run's outputs
 * (include/fxscreen/merge.h).  Shard I of N holds inputs I, I+N, I+2N...
 * (shard.h), so global row g is row g / N of shard g % N: every dataset is
 * copied in blocks of "rounds" (one row of each shard), read straight into
 * their interleaved places with a strided memory selection. */
#include "fxscreen/merge.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/jsonutil.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"
#include "fxscreen/loader.h"
#include "job/run_internal.h"
#include "out/results.h"

#define MERGE_BLOCK_BYTES ((size_t)8 << 20)

typedef struct shard_in {
    const char *dir;
    run_params p;
    hid_t file;
    size_t rows; /* the shard's share of the list */
    FILE *csv;
    char *start, *end; /* start_time / end_time attributes */
} shard_in;

typedef struct merge {
    shard_in *s; /* by shard index once checked (s[i].p.shard.index == i) */
    int n;
    size_t inputs;
    char *buf;
    size_t cap;
} merge;

static void shard_close(shard_in *s)
{
    if (s->file >= 0)
        H5Fclose(s->file);
    if (s->csv)
        fclose(s->csv);
    free(s->start);
    free(s->end);
    run_params_free(&s->p);
}

/* Rows (first axis) of dataset `name` of f; -1 if it is missing. */
static long long dset_rows(hid_t f, const char *name)
{
    if (H5Lexists(f, "dicom", H5P_DEFAULT) <= 0 && !strncmp(name, "dicom/", 6))
        return -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[8];
    long long r = -1;
    if (sp >= 0 && H5Sget_simple_extent_ndims(sp) >= 1 && H5Sget_simple_extent_ndims(sp) <= 8 &&
        H5Sget_simple_extent_dims(sp, dims, NULL) >= 0)
        r = (long long)dims[0];
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    return r;
}

/* One shard directory on its own: a sharded run, complete, consistent. */
static fx_status open_shard(shard_in *s, fx_error *err)
{
    char path[PATH_MAX];
    if (run_params_load(s->dir, &s->p, err) != FX_OK)
        return FX_ERR_USAGE;
    if (s->p.shard.count < 1)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: not a shard (its run.json has no shard: made without --shard)",
                            s->dir);
    int I = s->p.shard.index, N = s->p.shard.count;
    snprintf(path, sizeof path, "%s/results.h5", s->dir);
    s->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->file < 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: cannot be opened (shard %d/%d still running, or killed: "
                            "resume it with `fxscreen run --resume %s`)",
                            path, I, N, s->dir);
    s->rows = fx_shard_rows(s->p.shard, s->p.inputs);
    int64_t si = -1, sc = -1, count = -1;
    char *sha = fx_h5_attr_read_str(s->file, "input_sha256", 128);
    int complete = sha && fx_h5_attr_read_i64(s->file, "input_count", &count);
    int same = complete && (size_t)count == s->p.inputs && !strcmp(sha, s->p.inputs_sha) &&
               fx_h5_attr_read_i64(s->file, "shard_index", &si) && si == I &&
               fx_h5_attr_read_i64(s->file, "shard_count", &sc) && sc == N;
    free(sha);
    long long have = dset_rows(s->file, "index");
    if (!complete)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: shard %d/%d is incomplete (%lld of %zu rows): resume it with "
                            "`fxscreen run --resume %s`",
                            s->dir, I, N, have < 0 ? 0 : have, s->rows, s->dir);
    if (!same)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: results.h5 and run.json disagree on the shard or its input "
                            "list (files from different runs?); run shard %d/%d again",
                            s->dir, I, N);
    for (int d = 0; d < FX_RD_N; d++) {
        long long r = dset_rows(s->file, fx_results_dsets[d]);
        if (r != (long long)s->rows)
            return fx_error_set(err, FX_ERR_USAGE,
                                "%s: results.h5 /%s has %lld rows, shard %d/%d of %zu inputs "
                                "has %zu; run the shard again",
                                s->dir, fx_results_dsets[d], r, I, N, s->p.inputs, s->rows);
    }
    snprintf(path, sizeof path, "%s/summary.csv", s->dir);
    long recs = fx_results_csv_rows(path);
    if (recs != (long)s->rows)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: %ld complete records where shard %d/%d has %zu rows; run the "
                            "shard again",
                            path, recs, I, N, s->rows);
    if (!(s->csv = fopen(path, "rb")))
        return fx_error_set(err, FX_ERR_USAGE, "%s: cannot open: %s", path, strerror(errno));
    s->start = fx_h5_attr_read_str(s->file, "start_time", 64);
    s->end = fx_h5_attr_read_str(s->file, "end_time", 64);
    return FX_OK;
}

/* The shards against each other (shard a is the first given); sorted by
 * index into m->s on success. */
static fx_status check_together(merge *m, fx_error *err)
{
    const shard_in *a = &m->s[0];
    int N = a->p.shard.count;
    for (int k = 1; k < m->n; k++) {
        const shard_in *b = &m->s[k];
        if (b->p.shard.count != N)
            return fx_error_set(err, FX_ERR_USAGE, "%s: shard %d of %d, but %s is one of %d",
                                b->dir, b->p.shard.index, b->p.shard.count, a->dir, N);
        if (b->p.inputs != a->p.inputs || strcmp(b->p.inputs_sha, a->p.inputs_sha))
            return fx_error_set(err, FX_ERR_USAGE,
                                "%s: another input list than %s's (%zu inputs, SHA-256 %.12s..., "
                                "against %zu, %.12s...)",
                                b->dir, a->dir, b->p.inputs, b->p.inputs_sha, a->p.inputs,
                                a->p.inputs_sha);
        if (!b->p.model_sha || !a->p.model_sha || strcmp(b->p.model_sha, a->p.model_sha))
            return fx_error_set(err, FX_ERR_USAGE,
                                "%s: made with another model than %s (%s, SHA-256 %.12s..., "
                                "against %s, %.12s...)",
                                b->dir, a->dir, b->p.model, b->p.model_sha ? b->p.model_sha : "?",
                                a->p.model, a->p.model_sha ? a->p.model_sha : "?");
        if (!b->p.effective || !a->p.effective || strcmp(b->p.effective, a->p.effective))
            return fx_error_set(err, FX_ERR_USAGE,
                                "%s: made with another config than %s (compare the "
                                "effective_config of their run.json)",
                                b->dir, a->dir);
    }
    shard_in *by = calloc((size_t)N, sizeof *by);
    if (!by)
        return fx_error_set(err, FX_ERR_NOMEM, "merge: out of memory");
    for (int k = 0; k < m->n; k++) {
        int I = m->s[k].p.shard.index;
        if (by[I].dir) {
            fx_error_set(err, FX_ERR_USAGE, "shard %d/%d given twice: %s and %s", I, N, by[I].dir,
                         m->s[k].dir);
            free(by);
            return FX_ERR_USAGE;
        }
        by[I] = m->s[k];
    }
    char missing[256] = "";
    int nmiss = 0;
    for (int I = 0; I < N; I++)
        if (!by[I].dir && nmiss++ < 12)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%d",
                     nmiss > 1 ? ", " : "", I);
    if (nmiss) {
        free(by);
        return fx_error_set(err, FX_ERR_USAGE,
                            "%d of %d shards missing (%s%s); pass every shard's directory", nmiss,
                            N, missing, nmiss > 12 ? ", ..." : "");
    }
    free(m->s);
    m->s = by;
    m->n = N;
    m->inputs = by[0].p.inputs;
    return FX_OK;
}

/* Every row's /index is the input the shard owns (I + N * row). */
static fx_status check_index(const merge *m, fx_error *err)
{
    enum { BLOCK = 65536 };
    int64_t *v = malloc(BLOCK * sizeof *v);
    fx_status st = v ? FX_OK : fx_error_set(err, FX_ERR_NOMEM, "merge: out of memory");
    for (int I = 0; I < m->n && st == FX_OK; I++) {
        const shard_in *s = &m->s[I];
        hid_t d = H5Dopen2(s->file, "index", H5P_DEFAULT), fs = H5Dget_space(d);
        for (size_t r0 = 0; r0 < s->rows && st == FX_OK; r0 += BLOCK) {
            hsize_t start = r0, count = s->rows - r0 < BLOCK ? s->rows - r0 : BLOCK;
            hid_t ms = H5Screate_simple(1, &count, NULL);
            if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
                H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, v) < 0)
                st = fx_error_set(err, FX_ERR_IO, "%s/results.h5: cannot read /index", s->dir);
            for (hsize_t k = 0; k < count && st == FX_OK; k++)
                if (v[k] != (int64_t)fx_shard_input(s->p.shard, r0 + k))
                    st = fx_error_set(err, FX_ERR_USAGE,
                                      "%s: row %zu holds input %lld, but shard %d/%d's row %zu "
                                      "is input %zu (not written by `fxscreen run --shard`?)",
                                      s->dir, (size_t)(r0 + k), (long long)v[k], I, m->n,
                                      (size_t)(r0 + k), fx_shard_input(s->p.shard, r0 + k));
            H5Sclose(ms);
        }
        H5Sclose(fs);
        H5Dclose(d);
    }
    free(v);
    return st;
}

/* Root attributes of shard 0, but the shard's own and the times. */
static herr_t copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *out_file)
{
    (void)info;
    static const char *const skip[] = {"shard_index", "shard_count",  "shard_inputs",
                                       "start_time",  "end_time",     "shard_inputs_sha256",
                                       "input_count", "input_sha256", NULL};
    for (int k = 0; skip[k]; k++)
        if (!strcmp(name, skip[k]))
            return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    size_t bytes = H5Tget_size(t) * (size_t)(np > 0 ? np : 1);
    void *buf = calloc(1, bytes);
    herr_t rc = -1;
    if (buf && H5Aread(a, t, buf) >= 0) {
        hid_t o = H5Acreate2(*(hid_t *)out_file, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        rc = o >= 0 && H5Awrite(o, t, buf) >= 0 ? 0 : -1;
        if (o >= 0)
            H5Aclose(o);
        if (H5Tdetect_class(t, H5T_VLEN) > 0 || H5Tis_variable_str(t) > 0)
            H5Dvlen_reclaim(t, sp, H5P_DEFAULT, buf);
    }
    free(buf);
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* Dataset `name` of every shard into out, in input order. */
static fx_status copy_dataset(merge *m, hid_t out, const char *name, fx_error *err)
{
    hid_t *src = calloc((size_t)m->n, sizeof *src);
    if (!src)
        return fx_error_set(err, FX_ERR_NOMEM, "merge: out of memory");
    for (int I = 0; I < m->n; I++)
        src[I] = H5Dopen2(m->s[I].file, name, H5P_DEFAULT);
    hid_t type = H5Dget_type(src[0]), dcpl = H5Dget_create_plist(src[0]);
    hid_t sp0 = H5Dget_space(src[0]), lcpl = H5Pcreate(H5P_LINK_CREATE);
    hsize_t dims[8], maxd[8], mdims[8];
    int rank = H5Sget_simple_extent_dims(sp0, dims, NULL);
    size_t row = H5Tget_size(type);
    for (int k = 1; k < rank; k++)
        row *= dims[k];
    for (int k = 0; k < rank; k++)
        maxd[k] = k ? dims[k] : H5S_UNLIMITED, mdims[k] = dims[k];
    mdims[0] = 0;
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t fsp = H5Screate_simple(rank, mdims, maxd);
    hid_t d = H5Dcreate2(out, name, type, fsp, lcpl, dcpl, H5P_DEFAULT);
    H5Sclose(fsp);
    fx_status st = d < 0 ? fx_error_set(err, FX_ERR_IO, "merge: cannot create /%s", name) : FX_OK;
    /* Rounds per block: one row of every shard each, the block bounded. */
    size_t per_round = row * (size_t)m->n, rounds_max = m->s[0].rows;
    size_t R = MERGE_BLOCK_BYTES / (per_round ? per_round : 1);
    R = R < 1 ? 1 : R > rounds_max ? (rounds_max ? rounds_max : 1) : R;
    char *buf = st == FX_OK ? calloc(R * (size_t)m->n, row ? row : 1) : NULL;
    if (st == FX_OK && !buf)
        st = fx_error_set(err, FX_ERR_NOMEM, "merge: out of memory for a block of /%s", name);
    int vlen = H5Tis_variable_str(type) > 0 || H5Tdetect_class(type, H5T_VLEN) > 0;
    for (size_t r0 = 0; r0 < rounds_max && st == FX_OK; r0 += R) {
        hsize_t g = 0, bdims[8];
        memcpy(bdims, dims, sizeof(hsize_t) * (size_t)rank);
        bdims[0] = (hsize_t)(R * (size_t)m->n);
        hid_t ms = H5Screate_simple(rank, bdims, NULL);
        for (int I = 0; I < m->n && st == FX_OK; I++) {
            size_t have = m->s[I].rows > r0 ? m->s[I].rows - r0 : 0;
            hsize_t c = have < R ? have : R, start[8] = {0}, mstart[8] = {0}, stride[8], count[8];
            if (!c)
                continue;
            for (int k = 0; k < rank; k++)
                stride[k] = k ? 1 : (hsize_t)m->n, count[k] = k ? dims[k] : c;
            start[0] = r0, mstart[0] = (hsize_t)I;
            hid_t fs = H5Dget_space(src[I]);
            if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                H5Sselect_hyperslab(ms, H5S_SELECT_SET, mstart, stride, count, NULL) < 0 ||
                H5Dread(src[I], type, ms, fs, H5P_DEFAULT, buf) < 0)
                st = fx_error_set(err, FX_ERR_IO, "%s/results.h5: cannot read /%s", m->s[I].dir,
                                  name);
            H5Sclose(fs);
            g += c;
        }
        /* The filled places are the block's first g rows: a short last
         * round has rows from shards 0..k-1 only (they hold one more). */
        if (st == FX_OK)
            st = fx_h5_ext_append(d, type, g, buf, err);
        if (vlen && g) {
            hsize_t s0[8] = {0}, cnt[8];
            memcpy(cnt, dims, sizeof(hsize_t) * (size_t)rank);
            cnt[0] = g;
            H5Sselect_hyperslab(ms, H5S_SELECT_SET, s0, NULL, cnt, NULL);
            H5Dvlen_reclaim(type, ms, H5P_DEFAULT, buf);
        }
        H5Sclose(ms);
    }
    free(buf);
    if (d >= 0)
        H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp0);
    H5Pclose(dcpl);
    H5Tclose(type);
    for (int I = 0; I < m->n; I++)
        H5Dclose(src[I]);
    free(src);
    return st;
}

static fx_status write_h5(merge *m, const char *path, fx_error *err)
{
    hid_t f = fx_h5_create_file(path, err);
    if (f < 0)
        return FX_ERR_IO;
    fx_status st = FX_OK;
    if (H5Aiterate2(m->s[0].file, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_attr, &f) < 0)
        st =
            fx_error_set(err, FX_ERR_IO, "%s: cannot copy the attributes of %s", path, m->s[0].dir);
    for (int d = 0; d < FX_RD_N && st == FX_OK; d++)
        st = copy_dataset(m, f, fx_results_dsets[d], err);
    const char *first = NULL, *last = NULL; /* ISO 8601 UTC sorts as text */
    for (int I = 0; I < m->n; I++) {
        if (m->s[I].start && (!first || strcmp(m->s[I].start, first) < 0))
            first = m->s[I].start;
        if (m->s[I].end && (!last || strcmp(m->s[I].end, last) > 0))
            last = m->s[I].end;
    }
    if (st == FX_OK)
        st = fx_h5_attr_str(f, "start_time", first ? first : "", err);
    if (st == FX_OK)
        st = fx_h5_attr_str(f, "end_time", last ? last : "", err);
    if (st == FX_OK)
        st = fx_h5_attr_i64(f, "input_count", (int64_t)m->inputs, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(f, "input_sha256", m->s[0].p.inputs_sha, err);
    if (st == FX_OK)
        st = fx_h5_attr_i64(f, "merged_shards", m->n, err);
    if (H5Fclose(f) < 0 && st == FX_OK)
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot close (disk full?)", path);
    return st;
}

static fx_status write_csv(merge *m, const char *path, fx_error *err)
{
    FILE *o = fopen(path, "w");
    if (!o)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fputs(FX_RESULTS_CSV_HEADER "\n", o);
    fx_status st = FX_OK;
    for (int I = 0; I < m->n && st == FX_OK; I++)
        if (fseek(m->s[I].csv, 0, SEEK_SET) != 0 ||
            fx_csv_read_record(m->s[I].csv, &m->buf, &m->cap, NULL) != 1)
            st = fx_error_set(err, FX_ERR_IO, "%s/summary.csv: cannot read", m->s[I].dir);
    for (size_t g = 0; g < m->inputs && st == FX_OK; g++) {
        shard_in *s = &m->s[g % (size_t)m->n];
        if (fx_csv_read_record(s->csv, &m->buf, &m->cap, NULL) != 1)
            st = fx_error_set(err, FX_ERR_IO, "%s/summary.csv: cannot read", s->dir);
        else
            fputs(m->buf, o), fputc('\n', o);
    }
    if (fflush(o) != 0 || ferror(o) || fsync(fileno(o)) != 0)
        if (st == FX_OK)
            st = fx_error_set(err, FX_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    fclose(o);
    return st;
}

/* A hard link, or a copy where the shards live on another file system. */
static int link_or_copy(const char *from, const char *to)
{
    if (link(from, to) == 0)
        return 0;
    uint8_t *data = NULL;
    size_t n = 0;
    if (fx_read_file(from, (size_t)1 << 31, &data, &n, NULL) != FX_OK)
        return -1;
    FILE *f = fopen(to, "wb");
    int bad = !f || fwrite(data, 1, n, f) != n;
    if (f)
        bad |= fclose(f) != 0;
    free(data);
    return bad ? -1 : 0;
}

/* OUT/overlays/GGGGGGGG_NAME.png from each shard's RRRRRRRR_NAME.png. */
static fx_status merge_overlays(merge *m, const char *out_dir, fx_merge_result *res, FILE *log,
                                fx_error *err)
{
    char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
    int made = 0;
    for (int I = 0; I < m->n; I++) {
        snprintf(dir, sizeof dir, "%s/overlays", m->s[I].dir);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end;
            unsigned long long r = strtoull(e->d_name, &end, 10);
            size_t len = strlen(e->d_name);
            if (end != e->d_name + 8 || *end != '_' || len < 13 ||
                strcmp(e->d_name + len - 4, ".png") || r >= m->s[I].rows)
                continue; /* not a finished overlay (NAME.png.tmp.PID and the like) */
            if (!made) {
                snprintf(to, sizeof to, "%s/overlays", out_dir);
                fx_status st = fx_mkdirs(to, err);
                if (st != FX_OK) {
                    closedir(d);
                    return st;
                }
                made = 1;
            }
            snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
            snprintf(to, sizeof to, "%s/overlays/%08zu%s", out_dir,
                     fx_shard_input(m->s[I].p.shard, (size_t)r), end);
            if (link_or_copy(from, to) == 0)
                res->overlays++;
            else if (log)
                fprintf(log, "merge: overlay %s not copied to %s: %s\n", from, to, strerror(errno));
        }
        closedir(d);
    }
    return FX_OK;
}

/* OUT/merge.json: where the rows came from. */
static fx_status write_record(const merge *m, const char *out_dir, fx_error *err)
{
    char path[PATH_MAX], abs[PATH_MAX];
    snprintf(path, sizeof path, "%s/merge.json", out_dir);
    cJSON *o = cJSON_CreateObject(), *dirs = cJSON_AddArrayToObject(o, "shards");
    cJSON_AddStringToObject(o, "fxscreen_version", FX_VERSION);
    cJSON_AddStringToObject(o, "model", m->s[0].p.model);
    cJSON_AddStringToObject(o, "model_sha256", m->s[0].p.model_sha);
    cJSON_AddNumberToObject(o, "inputs", (double)m->inputs);
    cJSON_AddStringToObject(o, "inputs_sha256", m->s[0].p.inputs_sha);
    for (int I = 0; I < m->n; I++)
        cJSON_AddItemToArray(dirs,
                             cJSON_CreateString(realpath(m->s[I].dir, abs) ? abs : m->s[I].dir));
    fx_status st = fx_json_save(o, path, err);
    cJSON_Delete(o);
    return st;
}

fx_status fx_merge_run(const char *out_dir, const char *const *shard_dirs, int n, FILE *log,
                       fx_merge_result *res, fx_error *err)
{
    memset(res, 0, sizeof *res);
    if (n < 1)
        return fx_error_set(err, FX_ERR_USAGE, "merge: name the shards' directories");
    /* Every shard's results.h5 and summary.csv stay open while rows are
     * interleaved: room for two descriptors a shard. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    merge m = {.n = n};
    if (!(m.s = calloc((size_t)n, sizeof *m.s)))
        return fx_error_set(err, FX_ERR_NOMEM, "merge: out of memory");
    for (int k = 0; k < n; k++)
        m.s[k].dir = shard_dirs[k], m.s[k].file = -1;
    fx_status st = FX_OK;
    for (int k = 0; k < n && st == FX_OK; k++)
        st = open_shard(&m.s[k], err);
    if (st == FX_OK)
        st = check_together(&m, err);
    if (st == FX_OK)
        st = check_index(&m, err);
    char h5[PATH_MAX], csv[PATH_MAX], tmp_h5[PATH_MAX + 8], tmp_csv[PATH_MAX + 8];
    snprintf(h5, sizeof h5, "%s/results.h5", out_dir);
    snprintf(csv, sizeof csv, "%s/summary.csv", out_dir);
    snprintf(tmp_h5, sizeof tmp_h5, "%s.tmp", h5);
    snprintf(tmp_csv, sizeof tmp_csv, "%s.tmp", csv);
    if (st == FX_OK && (access(h5, F_OK) == 0 || access(csv, F_OK) == 0))
        st = fx_error_set(err, FX_ERR_USAGE,
                          "%s already holds results; merge into a fresh --out DIR", out_dir);
    if (st == FX_OK)
        st = fx_mkdirs(out_dir, err);
    if (st == FX_OK)
        st = write_h5(&m, tmp_h5, err);
    if (st == FX_OK)
        st = write_csv(&m, tmp_csv, err);
    if (st == FX_OK && (rename(tmp_h5, h5) != 0 || rename(tmp_csv, csv) != 0))
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot rename into place: %s", out_dir,
                          strerror(errno));
    if (st != FX_OK) {
        remove(tmp_h5);
        remove(tmp_csv);
    }
    if (st == FX_OK)
        st = merge_overlays(&m, out_dir, res, log, err);
    if (st == FX_OK)
        st = write_record(&m, out_dir, err);
    if (st == FX_OK) {
        res->shards = m.n;
        res->rows = m.inputs;
    }
    for (int k = 0; k < m.n; k++) /* closing one never opened is harmless */
        shard_close(&m.s[k]);
    free(m.s);
    free(m.buf);
    return st;
}
