/* The results sink of `fxscreen run` (src/out/results.h): results.h5 and
 * summary.csv, their appends and their crash recovery. */
#include "out/results.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fxscreen/cam.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"

void fx_result_batch_clear(fx_result_batch *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->path[i]);
        o->path[i] = NULL;
        free(o->error[i]);
        o->error[i] = NULL;
    }
    o->n = 0;
}

void fx_result_batch_free(fx_result_batch *o)
{
    if (o->path)
        fx_result_batch_clear(o);
    free(o->score);
    free(o->prob);
    free(o->pred);
    free(o->heat);
    free(o->peak);
    free(o->bbox);
    free(o->status);
    free(o->ids);
    free(o->frames);
    free(o->index);
    free(o->ovbase);
    free(o->ov_w);
    free(o->ov_h);
    free(o->geom);
    free(o->path);
    free(o->error);
    memset(o, 0, sizeof *o);
}

fx_status fx_result_batch_alloc(fx_result_batch *o, int batch, int S, int H, int W, fx_error *err)
{
    size_t b = (size_t)batch;
    memset(o, 0, sizeof *o);
    o->score = malloc(b * (size_t)S * sizeof(float));
    o->prob = malloc(b * sizeof(float));
    o->pred = malloc(b);
    o->heat = malloc(b * (size_t)H * (size_t)W);
    o->peak = malloc(b * 2 * sizeof(float));
    o->bbox = malloc(b * 4 * sizeof(float));
    o->status = malloc(b);
    o->ids = calloc(b, sizeof *o->ids);
    o->frames = calloc(b, sizeof *o->frames);
    o->index = calloc(b, sizeof *o->index);
    o->geom = calloc(b, sizeof *o->geom);
    o->path = calloc(b, sizeof(char *));
    o->error = calloc(b, sizeof(char *));
    if (!o->score || !o->prob || !o->pred || !o->heat || !o->peak || !o->bbox || !o->status ||
        !o->ids || !o->frames || !o->index || !o->geom || !o->path || !o->error)
        return fx_error_set(err, FX_ERR_NOMEM, "run: out of memory for the output buffers");
    return FX_OK;
}

void fx_results_init(fx_results *o, const char *dir)
{
    memset(o, 0, sizeof *o);
    o->file = -1;
    for (int d = 0; d < FX_RD_N; d++)
        o->ds[d] = -1;
    snprintf(o->h5_path, sizeof o->h5_path, "%s/results.h5", dir);
    snprintf(o->csv_path, sizeof o->csv_path, "%s/summary.csv", dir);
}

const char *const fx_results_dsets[FX_RD_N] = {"score",
                                               "probability",
                                               "prediction",
                                               "heatmap",
                                               "peak_xy",
                                               "bbox",
                                               "path",
                                               "status",
                                               "error",
                                               "dicom/sop_instance_uid",
                                               "dicom/study_instance_uid",
                                               "dicom/series_instance_uid",
                                               "dicom/accession_number",
                                               "dicom/modality",
                                               "dicom/body_part",
                                               "dicom/view_position",
                                               "pixel_spacing",
                                               "bbox_mm",
                                               "frames",
                                               "index"};

/* Rank of each dataset (rows first). */
static int dset_rank(int d)
{
    return d == FX_RD_HEAT ? 3
           : (d == FX_RD_SCORE || d == FX_RD_PEAK || d == FX_RD_BBOX || d == FX_RD_SPACING ||
              d == FX_RD_BBOX_MM)
               ? 2
               : 1;
}

void fx_results_close(fx_results *o)
{
    for (int d = 0; d < FX_RD_N; d++)
        if (o->ds[d] > 0)
            H5Dclose(o->ds[d]);
    if (o->file > 0)
        H5Fclose(o->file);
    if (o->csv)
        fclose(o->csv);
    o->file = -1;
    o->csv = NULL;
    for (int d = 0; d < FX_RD_N; d++)
        o->ds[d] = -1;
}

static fx_status csv_sync(FILE *f, const char *path, fx_error *err)
{
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
        return fx_error_set(err, FX_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return FX_OK;
}

static fx_status h5_attr_f64(fx_results *o, const char *name, double v, fx_error *err)
{
    fx_status st = FX_OK;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o->file, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0)
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot write attribute %s", o->h5_path, name);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return st;
}

/* A fresh results.h5 (datasets, attributes, SWMR on) and summary.csv. */
fx_status fx_results_create(fx_results *o, const fx_results_meta *m, fx_error *err)
{
    const fx_run_config *eff = m->eff;
    o->file = fx_h5_create_file(o->h5_path, err);
    if (o->file < 0)
        return FX_ERR_IO;
    hid_t str = fx_h5_str_type();
    hsize_t sdim = (hsize_t)m->S, hw[2] = {(hsize_t)m->H, (hsize_t)m->W}, two = 2, four = 4;
    o->ds[FX_RD_SCORE] = fx_h5_ext_create(o->file, "score", H5T_IEEE_F32LE, 2, &sdim, 1024, 4, err);
    o->ds[FX_RD_PROB] =
        fx_h5_ext_create(o->file, "probability", H5T_IEEE_F32LE, 1, NULL, 1024, 4, err);
    o->ds[FX_RD_PRED] =
        fx_h5_ext_create(o->file, "prediction", H5T_STD_I8LE, 1, NULL, 4096, 4, err);
    o->ds[FX_RD_HEAT] = fx_h5_ext_create(o->file, "heatmap", H5T_STD_U8LE, 3, hw, 1, 4, err);
    o->ds[FX_RD_PEAK] = fx_h5_ext_create(o->file, "peak_xy", H5T_IEEE_F32LE, 2, &two, 1024, 4, err);
    o->ds[FX_RD_BBOX] = fx_h5_ext_create(o->file, "bbox", H5T_IEEE_F32LE, 2, &four, 1024, 4, err);
    o->ds[FX_RD_PATH] = fx_h5_ext_create(o->file, "path", str, 1, NULL, 1024, 4, err);
    o->ds[FX_RD_STATUS] = fx_h5_ext_create(o->file, "status", H5T_STD_I8LE, 1, NULL, 4096, 4, err);
    o->ds[FX_RD_ERROR] = fx_h5_ext_create(o->file, "error", str, 1, NULL, 1024, 4, err);
    hid_t g = H5Gcreate2(o->file, "dicom", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0)
        H5Gclose(g);
    for (int d = FX_RD_SOP; d <= FX_RD_VIEW; d++)
        o->ds[d] = fx_h5_ext_create(o->file, fx_results_dsets[d], str, 1, NULL, 1024, 4, err);
    o->ds[FX_RD_SPACING] =
        fx_h5_ext_create(o->file, "pixel_spacing", H5T_IEEE_F32LE, 2, &two, 1024, 4, err);
    o->ds[FX_RD_BBOX_MM] =
        fx_h5_ext_create(o->file, "bbox_mm", H5T_IEEE_F32LE, 2, &four, 1024, 4, err);
    o->ds[FX_RD_FRAMES] = fx_h5_ext_create(o->file, "frames", H5T_STD_I32LE, 1, NULL, 4096, 4, err);
    o->ds[FX_RD_INDEX] = fx_h5_ext_create(o->file, "index", H5T_STD_I64LE, 1, NULL, 4096, 4, err);
    H5Tclose(str);
    for (int d = 0; d < FX_RD_N; d++)
        if (o->ds[d] < 0)
            return FX_ERR_IO;
    char when[32], classes[FX_RUN_MAX_CLASSES * (FX_RUN_NAME_MAX + 1) + 1] = "";
    fx_iso8601_now(when, sizeof when);
    for (int k = 0; k < eff->nclasses; k++) {
        strcat(classes, k ? "," : "");
        strcat(classes, eff->classes[k]);
    }
    fx_status st = fx_h5_attr_str(o->file, "fxscreen_version", FX_VERSION, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "model", m->model, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "model_sha256", m->model_sha, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "config", m->config_yaml, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "cam_method",
                            fx_cam_method_name((fx_cam_method)eff->cam_method), err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "cam_layer", m->cam_layer, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "start_time", when, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "classes", classes, err);
    if (st == FX_OK)
        st = h5_attr_f64(o, "threshold", eff->threshold, err);
    if (st == FX_OK)
        st = h5_attr_f64(o, "box_fraction", eff->box_fraction, err);
    if (st == FX_OK)
        st = h5_attr_f64(o, "positive_class", eff->positive, err);
    if (st == FX_OK && m->shard.count > 0) {
        st = fx_h5_attr_i64(o->file, "shard_index", m->shard.index, err);
        if (st == FX_OK)
            st = fx_h5_attr_i64(o->file, "shard_count", m->shard.count, err);
        if (st == FX_OK)
            st = fx_h5_attr_i64(o->file, "shard_inputs", (int64_t)m->inputs, err);
        if (st == FX_OK)
            st = fx_h5_attr_str(o->file, "shard_inputs_sha256", m->inputs_sha, err);
    }
    if (st != FX_OK)
        return st;
    /* From here on metadata is flushed in an order that keeps the file
     * readable whenever the process dies (no new objects or attributes). */
    if (H5Fflush(o->file, H5F_SCOPE_LOCAL) < 0 || H5Fstart_swmr_write(o->file) < 0)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot start SWMR writing", o->h5_path);
    if (!(o->csv = fopen(o->csv_path, "w")))
        return fx_error_set(err, FX_ERR_IO, "%s: cannot create: %s", o->csv_path, strerror(errno));
    fputs(FX_RESULTS_CSV_HEADER "\n", o->csv);
    return csv_sync(o->csv, o->csv_path, err);
}

/* Opens results.h5 after a crash: clears the "open for writing" flags a
 * killed SWMR writer leaves behind (what h5clear -s does). */
static hid_t h5_open_crashed(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return -1;
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    hbool_t clear = 1;
    if (H5Pexist(fapl, "clear_status_flags") > 0)
        H5Pset(fapl, "clear_status_flags", &clear);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    return f;
}

/* Rows of dataset ds (first axis) and, when dims is non-NULL, the rest. */
static long long h5_rows(hid_t ds, int want_rank, hsize_t *dims)
{
    hsize_t d[8];
    hid_t sp = H5Dget_space(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r != want_rank || r > 8 || H5Sget_simple_extent_dims(sp, d, NULL) < 0) {
        if (sp >= 0)
            H5Sclose(sp);
        return -1;
    }
    H5Sclose(sp);
    if (dims)
        memcpy(dims, d, sizeof(hsize_t) * (size_t)r);
    return (long long)d[0];
}

/* Complete records of summary.csv (after a valid header); -1 if absent or
 * without a whole header line.  With ends_out, the record end offsets go to
 * *ends_out (malloc'd; [0] the header's end). */
static long csv_complete_rows(const char *path, long **ends_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *buf = NULL;
    size_t cap = 0;
    long n = -1, ncap = 0, *ends = NULL;
    if (fx_csv_read_record(f, &buf, &cap, NULL) == 1 && !strcmp(buf, FX_RESULTS_CSV_HEADER)) {
        n = 0;
        long hdr_end = ftell(f);
        for (;;) {
            if (fx_csv_read_record(f, &buf, &cap, NULL) != 1)
                break;
            long pos = ftell(f);
            if (pos <= 0 || fseek(f, pos - 1, SEEK_SET) != 0 || fgetc(f) != '\n')
                break; /* a record cut short by the kill: not complete */
            if (ends_out && n + 1 >= ncap) {
                long *g = realloc(ends, sizeof *g * (size_t)(ncap = 2 * ncap + 64));
                if (!g)
                    break;
                ends = g;
            }
            if (ends_out)
                ends[n + 1] = pos;
            n++;
        }
        if (ends_out && !ends && (ends = malloc(sizeof *ends)) == NULL)
            n = -1;
        else if (ends_out)
            ends[0] = hdr_end;
    }
    free(buf);
    fclose(f);
    if (ends_out)
        *ends_out = ends;
    return n;
}

long fx_results_csv_rows(const char *csv_path)
{
    return csv_complete_rows(csv_path, NULL);
}

/* Copies the first `bytes` bytes of src to dst (fsync'd), then renames. */
static fx_status csv_cut(const char *path, long bytes, fx_error *err)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0 || fsync(fd) != 0) {
        if (fd >= 0)
            close(fd);
        return fx_error_set(err, FX_ERR_IO, "%s: cannot truncate: %s", path, strerror(errno));
    }
    close(fd);
    return FX_OK;
}

/* Whether rows [c, n) of ds read back, c being the first row of the chunk
 * that holds row n - 1.  A kill -9 while an append rewrote that compressed
 * chunk can leave it unreadable, its committed rows included (seen: inflate()
 * failed on /score after a kill in the test); earlier chunks are full and
 * never rewritten. */
static int h5_tail_readable(hid_t ds, long long n)
{
    if (n <= 0)
        return 1;
    hid_t sp = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds), ty = H5Dget_type(ds), ms = -1;
    hsize_t dims[8], cdims[8], start[8] = {0}, count[8];
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int ok = r >= 1 && r <= 8 && dcpl >= 0 && ty >= 0 &&
             H5Sget_simple_extent_dims(sp, dims, NULL) >= 0 && H5Pget_chunk(dcpl, r, cdims) == r &&
             cdims[0] > 0 && (hsize_t)n <= dims[0];
    void *buf = NULL;
    if (ok) {
        size_t bytes = H5Tget_size(ty);
        for (int i = 0; i < r; i++)
            count[i] = dims[i];
        start[0] = (hsize_t)(n - 1) / cdims[0] * cdims[0];
        count[0] = (hsize_t)n - start[0];
        for (int i = 0; i < r; i++)
            bytes *= count[i];
        ms = H5Screate_simple(r, count, NULL);
        buf = calloc(1, bytes ? bytes : 1);
        ok = ms >= 0 && buf &&
             H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(ds, ty, ms, sp, H5P_DEFAULT, buf) >= 0;
        if (ok && H5Tis_variable_str(ty) > 0)
            H5Dvlen_reclaim(ty, ms, H5P_DEFAULT, buf);
    }
    free(buf);
    if (ms >= 0)
        H5Sclose(ms);
    if (ty >= 0)
        H5Tclose(ty);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return ok;
}

/* Recovers DIR's outputs to their longest consistent prefix; *rows gets it. */
fx_status fx_results_recover(fx_results *o, const fx_results_meta *m, size_t *rows, FILE *log,
                             fx_error *err)
{
    *rows = 0;
    long *ends = NULL;
    long csv_rows = csv_complete_rows(o->csv_path, &ends);
    hid_t f = access(o->h5_path, F_OK) == 0 ? h5_open_crashed(o->h5_path) : -1;
    long long n = csv_rows;
    int h5_ok = f >= 0;
    for (int d = 0; d < FX_RD_N && h5_ok; d++) {
        o->ds[d] = H5Lexists(f, fx_results_dsets[d], H5P_DEFAULT) > 0
                       ? H5Dopen2(f, fx_results_dsets[d], H5P_DEFAULT)
                       : -1;
        if (o->ds[d] < 0) {
            h5_ok = 0;
            break;
        }
        hsize_t dims[3] = {0};
        int rank = dset_rank(d);
        long long r = h5_rows(o->ds[d], rank, dims);
        if (r < 0)
            h5_ok = 0;
        else if ((d == FX_RD_SCORE && dims[1] != (hsize_t)m->S) ||
                 (d == FX_RD_HEAT && (dims[1] != (hsize_t)m->H || dims[2] != (hsize_t)m->W))) {
            free(ends);
            for (int e = 0; e <= d; e++)
                if (o->ds[e] >= 0)
                    H5Dclose(o->ds[e]), o->ds[e] = -1;
            H5Fclose(f);
            return fx_error_set(err, FX_ERR_USAGE,
                                "%s: made with another model or input size "
                                "than run.json names; start a new run",
                                o->h5_path);
        }
        if (r < n)
            n = r;
    }
    /* Check that the committed rows' last chunk reads back, cut every
     * dataset back to the n committed rows and reopen for SWMR writing.
     * After a SIGKILL that chunk can be half rewritten, and HDF5 may then
     * also refuse the cut (seen once in the kill -9 test: "cannot truncate
     * /score"): such a file is treated like one that cannot be read back. */
    for (int d = 0; d < FX_RD_N && h5_ok && csv_rows >= 0; d++)
        h5_ok = h5_tail_readable(o->ds[d], n);
    for (int d = 0; d < FX_RD_N && h5_ok && csv_rows >= 0; d++) {
        hsize_t dims[3];
        int rank = dset_rank(d);
        if (h5_rows(o->ds[d], rank, dims) > n) {
            dims[0] = (hsize_t)n;
            if (H5Dset_extent(o->ds[d], dims) < 0)
                h5_ok = 0;
        }
    }
    if (h5_ok && csv_rows >= 0 && (H5Fflush(f, H5F_SCOPE_LOCAL) < 0 || H5Fstart_swmr_write(f) < 0))
        h5_ok = 0;
    if (!h5_ok || csv_rows < 0) {
        for (int d = 0; d < FX_RD_N; d++)
            if (o->ds[d] >= 0)
                H5Dclose(o->ds[d]), o->ds[d] = -1;
        if (f >= 0)
            H5Fclose(f);
        free(ends);
        if (!h5_ok && access(o->h5_path, F_OK) == 0) {
            char bad[PATH_MAX + 8];
            snprintf(bad, sizeof bad, "%s.bad", o->h5_path);
            rename(o->h5_path, bad);
            if (log)
                fprintf(log,
                        "run: %s could not be read back or cut to its %lld committed rows; "
                        "moved to %s, starting again\n",
                        o->h5_path, n, bad);
        }
        return fx_results_create(o, m, err);
    }
    o->file = f;
    fx_status st = csv_cut(o->csv_path, ends[n], err);
    free(ends);
    if (st != FX_OK)
        return st;
    if (!(o->csv = fopen(o->csv_path, "a")))
        return fx_error_set(err, FX_ERR_IO, "%s: cannot open: %s", o->csv_path, strerror(errno));
    *rows = (size_t)n;
    return FX_OK;
}

static void csv_num(FILE *f, float v)
{
    if (!isnan(v))
        fprintf(f, "%.9g", (double)v);
}

/* Appends one batch to both outputs and makes it durable. */
fx_status fx_results_append(fx_results *o, const fx_result_batch *b, fx_error *err)
{
    hsize_t n = (hsize_t)b->n;
    fx_status st = fx_h5_ext_append(o->ds[FX_RD_SCORE], H5T_NATIVE_FLOAT, n, b->score, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_PROB], H5T_NATIVE_FLOAT, n, b->prob, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_PRED], H5T_NATIVE_INT8, n, b->pred, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_HEAT], H5T_NATIVE_UINT8, n, b->heat, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_PEAK], H5T_NATIVE_FLOAT, n, b->peak, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_BBOX], H5T_NATIVE_FLOAT, n, b->bbox, err);
    if (st == FX_OK)
        st = fx_h5_ext_append_str(o->ds[FX_RD_PATH], n, (const char *const *)b->path, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_STATUS], H5T_NATIVE_INT8, n, b->status, err);
    if (st == FX_OK)
        st = fx_h5_ext_append_str(o->ds[FX_RD_ERROR], n, (const char *const *)b->error, err);
    const char **col = calloc((size_t)b->n + 1, sizeof *col);
    float *mm = malloc(((size_t)b->n * 6 + 1) * sizeof *mm), *sp = mm + 4 * (size_t)b->n;
    if (st == FX_OK && (!col || !mm))
        st = fx_error_set(err, FX_ERR_NOMEM, "run: out of memory for the output rows");
    for (int d = FX_RD_SOP; d <= FX_RD_VIEW && st == FX_OK; d++) {
        for (int i = 0; i < b->n; i++) {
            const fx_image_ids *id = &b->ids[i];
            col[i] = d == FX_RD_SOP         ? id->sop_instance_uid
                     : d == FX_RD_STUDY     ? id->study_instance_uid
                     : d == FX_RD_SERIES    ? id->series_instance_uid
                     : d == FX_RD_ACCESSION ? id->accession_number
                     : d == FX_RD_MODALITY  ? id->modality
                     : d == FX_RD_BODY      ? id->body_part
                                            : id->view_position;
        }
        st = fx_h5_ext_append_str(o->ds[d], n, col, err);
    }
    for (int i = 0; st == FX_OK && i < b->n; i++) {
        const double *ps = b->ids[i].pixel_spacing; /* row spacing (y), column spacing (x) */
        int known = ps[0] > 0 && ps[1] > 0;
        sp[2 * i] = known ? (float)ps[0] : NAN, sp[2 * i + 1] = known ? (float)ps[1] : NAN;
        for (int k = 0; k < 4; k++)
            mm[4 * i + k] = known ? (float)(b->bbox[4 * i + k] * ps[k % 2 ? 0 : 1]) : NAN;
    }
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_SPACING], H5T_NATIVE_FLOAT, n, sp, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_BBOX_MM], H5T_NATIVE_FLOAT, n, mm, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_FRAMES], H5T_NATIVE_INT, n, b->frames, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->ds[FX_RD_INDEX], H5T_NATIVE_INT64, n, b->index, err);
    if (st == FX_OK && H5Fflush(o->file, H5F_SCOPE_LOCAL) < 0)
        st = fx_error_set(err, FX_ERR_IO, "%s: flush failed (disk full?)", o->h5_path);
    if (st != FX_OK) {
        free(col);
        free(mm);
        return st;
    }
    /* The CSV goes second: its complete rows never outnumber the HDF5's. */
    for (int i = 0; i < b->n; i++) {
        fx_csv_field(o->csv, b->path[i]);
        fputs(b->status[i] == FX_OK ? ",ok," : ",error,", o->csv);
        csv_num(o->csv, b->prob[i]);
        if (b->pred[i] >= 0)
            fprintf(o->csv, ",%d", b->pred[i]);
        else
            fputc(',', o->csv);
        for (int k = 0; k < 2; k++)
            fputc(',', o->csv), csv_num(o->csv, b->peak[2 * i + k]);
        for (int k = 0; k < 4; k++)
            fputc(',', o->csv), csv_num(o->csv, b->bbox[4 * i + k]);
        fputc(',', o->csv);
        fx_csv_field(o->csv, b->error[i]);
        const fx_image_ids *id = &b->ids[i];
        const char *f[7] = {id->sop_instance_uid, id->study_instance_uid, id->series_instance_uid,
                            id->accession_number, id->modality,           id->body_part,
                            id->view_position};
        for (int k = 0; k < 7; k++)
            fputc(',', o->csv), fx_csv_field(o->csv, f[k]);
        for (int k = 0; k < 2; k++) /* the file's decimal value, not its float32 copy */
            if (isnan(sp[2 * i + k]))
                fputc(',', o->csv);
            else
                fprintf(o->csv, ",%.9g", id->pixel_spacing[k]);
        for (int k = 0; k < 4; k++)
            fputc(',', o->csv), csv_num(o->csv, mm[4 * i + k]);
        if (b->frames[i] > 0)
            fprintf(o->csv, ",%d", b->frames[i]);
        else
            fputc(',', o->csv);
        fputc('\n', o->csv);
    }
    free(col);
    free(mm);
    return csv_sync(o->csv, o->csv_path, err);
}

/* Closes the outputs and stamps end_time (after SWMR: reopened normally). */
fx_status fx_results_finish(fx_results *o, size_t walk_count, const char *walk_sha, fx_error *err)
{
    int had_file = o->file > 0;
    fx_results_close(o);
    if (!had_file)
        return FX_OK;
    hid_t f = H5Fopen(o->h5_path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot reopen to stamp end_time", o->h5_path);
    char when[32];
    fx_iso8601_now(when, sizeof when);
    if (H5Aexists(f, "end_time") > 0)
        H5Adelete(f, "end_time");
    fx_status st = fx_h5_attr_str(f, "end_time", when, err);
    if (st == FX_OK && walk_sha) { /* replaced when a finished run is resumed */
        for (int k = 0; k < 2; k++)
            if (H5Aexists(f, k ? "input_sha256" : "input_count") > 0)
                H5Adelete(f, k ? "input_sha256" : "input_count");
        st = fx_h5_attr_i64(f, "input_count", (int64_t)walk_count, err);
        if (st == FX_OK)
            st = fx_h5_attr_str(f, "input_sha256", walk_sha, err);
    }
    if (H5Fclose(f) < 0 && st == FX_OK)
        st = fx_error_set(err, FX_ERR_IO, "%s: cannot close", o->h5_path);
    return st;
}
