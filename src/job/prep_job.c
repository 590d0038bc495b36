/* The prep job: see include/fxscreen/prepjob.h. */
#include "fxscreen/prepjob.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"

/* The DICOM identifier columns of prep.h5 (/dicom/NAME) and summary.csv. */
static const char *const id_names[7] = {
    "sop_instance_uid", "study_instance_uid", "series_instance_uid", "accession_number",
    "modality",         "body_part",          "view_position"};

static const char *id_field(const fx_image_ids *d, int k)
{
    const char *f[7] = {d->sop_instance_uid, d->study_instance_uid, d->series_instance_uid,
                        d->accession_number, d->modality,           d->body_part,
                        d->view_position};
    return f[k];
}

typedef struct prep_out {
    hid_t file, images, path, status, error, size, bits;
    hid_t ids[7], spacing, frames;
    FILE *csv;
    fx_store_type store;
    size_t item_elems; /* elements of one /images row */
    uint16_t *h16;     /* conversion buffer for one batch */
    uint8_t *u8;
} prep_out;

static void prep_out_close(prep_out *o)
{
    hid_t *ids[] = {&o->images, &o->path,    &o->status, &o->error,  &o->size,
                    &o->bits,   &o->spacing, &o->frames, &o->ids[0], &o->ids[1],
                    &o->ids[2], &o->ids[3],  &o->ids[4], &o->ids[5], &o->ids[6]};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (*ids[i] > 0)
            H5Dclose(*ids[i]);
    if (o->file > 0)
        H5Fclose(o->file);
    if (o->csv)
        fclose(o->csv);
    free(o->h16);
    free(o->u8);
    memset(o, 0, sizeof *o);
}

static fx_status prep_out_open(prep_out *o, const char *dir, const fx_pool_config *pc,
                               fx_error *err)
{
    char path[4200];
    memset(o, 0, sizeof *o);
    const fx_prep_config *c = &pc->prep;
    o->store = c->store;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors come back as our messages */
    snprintf(path, sizeof path, "%s/prep.h5", dir);
    o->file = fx_h5_create_file(path, err);
    if (o->file < 0)
        return FX_ERR_IO;
    hsize_t dims[3];
    hid_t f16 = fx_h5_f16_type(), str = fx_h5_str_type();
    if (c->store == FX_STORE_F16) {
        dims[0] = (hsize_t)c->channels, dims[1] = (hsize_t)c->out_h, dims[2] = (hsize_t)c->out_w;
        o->images = fx_h5_ext_create(o->file, "images", f16, 4, dims, 1, 4, err);
        o->item_elems = (size_t)c->channels * (size_t)c->out_h * (size_t)c->out_w;
    } else {
        dims[0] = (hsize_t)c->out_h, dims[1] = (hsize_t)c->out_w;
        o->images = fx_h5_ext_create(o->file, "images", H5T_STD_U8LE, 3, dims, 1, 4, err);
        o->item_elems = (size_t)c->out_h * (size_t)c->out_w;
    }
    hsize_t two = 2;
    o->path = fx_h5_ext_create(o->file, "path", str, 1, NULL, 1024, 4, err);
    o->status = fx_h5_ext_create(o->file, "status", H5T_STD_I8LE, 1, NULL, 4096, 4, err);
    o->error = fx_h5_ext_create(o->file, "error", str, 1, NULL, 1024, 4, err);
    o->size = fx_h5_ext_create(o->file, "original_size", H5T_STD_I32LE, 2, &two, 4096, 4, err);
    o->bits = fx_h5_ext_create(o->file, "bit_depth", H5T_STD_U8LE, 1, NULL, 4096, 4, err);
    hid_t g = H5Gcreate2(o->file, "dicom", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0)
        H5Gclose(g);
    for (int k = 0; k < 7; k++) {
        char name[64];
        snprintf(name, sizeof name, "dicom/%s", id_names[k]);
        o->ids[k] = fx_h5_ext_create(o->file, name, str, 1, NULL, 1024, 4, err);
    }
    o->spacing = fx_h5_ext_create(o->file, "pixel_spacing", H5T_IEEE_F32LE, 2, &two, 4096, 4, err);
    o->frames = fx_h5_ext_create(o->file, "frames", H5T_STD_I32LE, 1, NULL, 4096, 4, err);
    H5Tclose(f16);
    H5Tclose(str);
    if (o->images < 0 || o->path < 0 || o->status < 0 || o->error < 0 || o->size < 0 ||
        o->bits < 0 || o->spacing < 0 || o->frames < 0)
        return FX_ERR_IO;
    for (int k = 0; k < 7; k++)
        if (o->ids[k] < 0)
            return FX_ERR_IO;
    char *yaml = fx_prep_config_to_yaml(c);
    char when[32];
    fx_iso8601_now(when, sizeof when);
    fx_status st = fx_h5_attr_str(o->file, "config", yaml, err);
    free(yaml);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "fxscreen_version", FX_VERSION, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "created", when, err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "images_layout",
                            c->store == FX_STORE_F16
                                ? "NCHW float16, normalised model input"
                                : "NHW uint8, windowed [0,1] plane x255 before normalisation",
                            err);
    if (st == FX_OK)
        st = fx_h5_attr_str(o->file, "status_codes",
                            "0 ok, -1 io, -2 format, -3 unsupported, -4 limit, -5 nomem", err);
    if (st != FX_OK)
        return st;
    o->h16 = malloc(sizeof *o->h16 * o->item_elems * (size_t)pc->batch);
    o->u8 = malloc(o->item_elems * (size_t)pc->batch);
    if (!o->h16 || !o->u8)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory for the output buffers");
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    o->csv = fopen(path, "w");
    if (!o->csv)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fputs("path,status,width,height,bit_depth,min,max,mean,error", o->csv);
    for (int k = 0; k < 7; k++)
        fprintf(o->csv, ",%s", id_names[k]);
    fputs(",pixel_spacing_row,pixel_spacing_col,frames\n", o->csv);
    return FX_OK;
}

static fx_status prep_out_append(prep_out *o, const fx_batch *b, fx_error *err)
{
    size_t n = (size_t)b->count, elems = n * o->item_elems;
    fx_status st;
    if (o->store == FX_STORE_F16) {
        for (size_t i = 0; i < elems; i++)
            o->h16[i] = fx_f32_to_f16(b->tensor[i]);
        hid_t f16 = fx_h5_f16_type();
        st = fx_h5_ext_append(o->images, f16, n, o->h16, err);
        H5Tclose(f16);
    } else {
        for (size_t i = 0; i < elems; i++) {
            float v = b->plane01[i] * 255.0f + 0.5f;
            o->u8[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        st = fx_h5_ext_append(o->images, H5T_NATIVE_UINT8, n, o->u8, err);
    }
    const char *paths[4096], *errs[4096];
    int8_t status[4096];
    int32_t size[2 * 4096];
    uint8_t bits[4096];
    for (size_t r = 0; r < n; r++) {
        const fx_item *it = &b->items[r];
        paths[r] = it->path;
        errs[r] = it->error;
        status[r] = (int8_t)it->status;
        size[2 * r] = it->info.width;
        size[2 * r + 1] = it->info.height;
        bits[r] = (uint8_t)it->info.bit_depth;
    }
    if (st == FX_OK)
        st = fx_h5_ext_append_str(o->path, n, paths, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->status, H5T_NATIVE_INT8, n, status, err);
    if (st == FX_OK)
        st = fx_h5_ext_append_str(o->error, n, errs, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->size, H5T_NATIVE_INT32, n, size, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->bits, H5T_NATIVE_UINT8, n, bits, err);
    float spacing[2 * 4096];
    int32_t frames[4096];
    for (size_t r = 0; r < n; r++) {
        const fx_image_info *in = &b->items[r].info;
        int known = in->ids.pixel_spacing[0] > 0 && in->ids.pixel_spacing[1] > 0;
        spacing[2 * r] = known ? (float)in->ids.pixel_spacing[0] : NAN;
        spacing[2 * r + 1] = known ? (float)in->ids.pixel_spacing[1] : NAN;
        frames[r] = in->frames;
    }
    for (int k = 0; k < 7 && st == FX_OK; k++) {
        for (size_t r = 0; r < n; r++)
            paths[r] = id_field(&b->items[r].info.ids, k); /* the buffer reused */
        st = fx_h5_ext_append_str(o->ids[k], n, paths, err);
    }
    if (st == FX_OK)
        st = fx_h5_ext_append(o->spacing, H5T_NATIVE_FLOAT, n, spacing, err);
    if (st == FX_OK)
        st = fx_h5_ext_append(o->frames, H5T_NATIVE_INT32, n, frames, err);
    if (st == FX_OK && H5Fflush(o->file, H5F_SCOPE_LOCAL) < 0)
        st = fx_error_set(err, FX_ERR_IO, "prep.h5: flush failed (disk full?)");
    for (size_t r = 0; r < n; r++) {
        const fx_item *it = &b->items[r];
        fx_csv_field(o->csv, it->path);
        if (it->status == FX_OK)
            fprintf(o->csv, ",ok,%d,%d,%d,%.6g,%.6g,%.6g,", it->info.width, it->info.height,
                    it->info.bit_depth, it->stats.min, it->stats.max, it->stats.mean);
        else {
            fputs(",error,", o->csv);
            if (it->info.width > 0)
                fprintf(o->csv, "%d,%d,%d", it->info.width, it->info.height, it->info.bit_depth);
            else
                fputs(",,", o->csv);
            fputs(",,,,", o->csv);
            fx_csv_field(o->csv, it->error);
        }
        for (int k = 0; k < 7; k++)
            fputc(',', o->csv), fx_csv_field(o->csv, id_field(&it->info.ids, k));
        if (!isnan(spacing[2 * r])) /* the file's decimal value, not its float32 copy */
            fprintf(o->csv, ",%.9g,%.9g", it->info.ids.pixel_spacing[0],
                    it->info.ids.pixel_spacing[1]);
        else
            fputs(",,", o->csv);
        if (frames[r] > 0)
            fprintf(o->csv, ",%d", frames[r]);
        else
            fputc(',', o->csv);
        fputc('\n', o->csv);
    }
    if (st == FX_OK && (fflush(o->csv) != 0 || ferror(o->csv)))
        st = fx_error_set(err, FX_ERR_IO, "summary.csv: write failed: %s", strerror(errno));
    return st;
}

fx_status fx_prep_job_run(const fx_prep_job *job, fx_prep_job_result *res, fx_error *err)
{
    memset(res, 0, sizeof *res);
    fx_pool_config pc = job->pool;
    pc.keep_plane01 = pc.prep.store == FX_STORE_U8;
    fx_status st = fx_prep_config_validate(&pc.prep, err);
    if (st != FX_OK)
        return st;
    fx_source *src = NULL;
    fx_pool *pool = NULL;
    prep_out out = {0};
    if ((st = fx_source_create(job->sources, job->nsources, job->stdin_fp, &src, err)) != FX_OK)
        return st;
    long total = job->count_first ? fx_source_count(job->sources, job->nsources) : -1;
    if ((st = fx_mkdirs(job->out_dir, err)) != FX_OK)
        goto done;
    if ((st = prep_out_open(&out, job->out_dir, &pc, err)) != FX_OK)
        goto done;
    if ((st = fx_pool_create(&pc, src, &pool, err)) != FX_OK)
        goto done;
    double t0 = fx_now_s();
    for (;;) {
        fx_batch *b = fx_pool_next_polled(pool, job->cancel, &res->cancelled);
        if (!b)
            break;
        st = prep_out_append(&out, b, err);
        for (int r = 0; r < b->count; r++) {
            if (b->items[r].status == FX_OK)
                res->ok++;
            else
                res->errors++;
        }
        res->total += (size_t)b->count;
        fx_pool_release(pool, b);
        if (st != FX_OK)
            break;
        if (job->progress) {
            fx_progress p = {res->total, total, res->errors, fx_now_s() - t0};
            job->progress(job->progress_ctx, &p);
        }
    }
    res->seconds = fx_now_s() - t0;
done:
    fx_pool_destroy(pool);
    prep_out_close(&out);
    fx_source_destroy(src);
    return st;
}
