/* bench/decode: decode+preprocess rate of the reader pool on synthetic
 * 2048x2048 16-bit PNG and TIFF sets, at 1 and 2 threads, beside libpng's and
 * libtiff's own bare decode of the same files in the same run.
 *
 *   build/bench/decode [--dir D] [--n N] [--size PX] [--reps R]
 *
 * Files are generated once with fx_synth_render (not timed).  Bare decode:
 * one thread, the library's own API reading the file and decoding every row
 * into one buffer (libpng: png_read_row with png_set_swap; libtiff:
 * TIFFReadEncodedStrip).  Pool: fx_pool over the same files with the default
 * preprocessing (percentile window, area resize to 256x256, float32 NCHW).
 * Plain loop: the pool worker's per-file function on one thread without the
 * pool, so pool / plain is what the threads, queues and batching cost.
 * libspng (where the build found it): its decode of the PNGs from memory,
 * the same output.  fx decode: fxscreen's loader alone (file read, header, load into one
 * buffer; PNG: the libdeflate fast path of src/io/png_fast.c), so its
 * rate beside the bare decode is the decoder's own speed-up.
 * Each figure is the median of R runs.  Prints a Markdown table.
 * --ab: instead, the PNG fast path against libpng alone, in memory,
 * alternating (see ab_png). */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <time.h>

#include "fxscreen/loader.h"
#include "fxscreen/pool.h"
#include "fxscreen/synth.h"
#include "io/png_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int ensure_files(const char *dir, const char *ext, int n, int size, char **paths,
                        double *mbytes)
{
    fx_synth_opts o;
    fx_synth_opts_default(&o);
    o.size = size;
    o.bits = 16;
    o.seed = 424242;
    mkdir(dir, 0777);
    *mbytes = 0;
    for (int i = 0; i < n; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/b%04d.%s", dir, i, ext);
        paths[i] = strdup(p);
        struct stat st;
        if (stat(p, &st) != 0) {
            fx_image img;
            fx_error err = {0};
            if (fx_synth_render(&o, (uint64_t)i, &img, NULL, &err) != FX_OK ||
                (ext[0] == 'p' ? fx_png_save(p, &img, &err)
                               : fx_tiff_save(p, &img, FX_TIFF_DEFLATE, &err)) != FX_OK) {
                fprintf(stderr, "decode: cannot make %s: %s\n", p, err.msg);
                return -1;
            }
            fx_image_free(&img);
            stat(p, &st);
        }
        *mbytes += (double)st.st_size / 1e6;
    }
    return 0;
}

/* libpng's own decode of one file into buf (16-bit kept, swapped to host). */
static int bare_png(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    png_set_swap(png);
    size_t rb = png_get_rowbytes(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    if (rb * h > cap)
        png_error(png, "buffer too small");
    for (png_uint_32 y = 0; y < h; y++)
        png_read_row(png, buf + y * rb, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return 0;
}

#ifdef FX_HAVE_SPNG
#include <spng.h>
/* libspng's decode of one file (read whole, as fxscreen does) into buf,
 * 16-bit swapped to host order as the other rows. */
static int bare_spng(const char *path, uint8_t *buf, size_t cap)
{
    uint8_t *bytes = NULL;
    size_t n = 0, out = 0;
    fx_error err = {0};
    if (fx_read_file(path, 0, &bytes, &n, &err) != FX_OK)
        return -1;
    spng_ctx *c = spng_ctx_new(0);
    int bad = !c || spng_set_png_buffer(c, bytes, n) ||
              spng_decoded_image_size(c, SPNG_FMT_PNG, &out) || out > cap ||
              spng_decode_image(c, buf, out, SPNG_FMT_PNG, 0);
    for (size_t i = 0; !bad && i + 1 < out; i += 2) {
        uint8_t t = buf[i];
        buf[i] = buf[i + 1], buf[i + 1] = t;
    }
    spng_ctx_free(c);
    free(bytes);
    return bad ? -1 : 0;
}
#endif

static int bare_tiff(const char *path, uint8_t *buf, size_t cap)
{
    TIFF *t = TIFFOpen(path, "r");
    if (!t)
        return -1;
    tstrip_t ns = TIFFNumberOfStrips(t);
    tmsize_t ss = TIFFStripSize(t), off = 0;
    for (tstrip_t s = 0; s < ns; s++) {
        if ((size_t)(off + ss) > cap)
            break;
        tmsize_t got = TIFFReadEncodedStrip(t, s, buf + off, ss);
        if (got < 0) {
            TIFFClose(t);
            return -1;
        }
        off += got;
    }
    TIFFClose(t);
    return 0;
}

static double time_bare(int png, char **paths, int n, uint8_t *buf, size_t cap)
{
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        if ((png ? bare_png(paths[i], buf, cap) : bare_tiff(paths[i], buf, cap)) != 0)
            fprintf(stderr, "decode: bare decode failed on %s\n", paths[i]);
    return now_s() - t0;
}

/* A file's bytes and header (the image no larger than cap bytes);
 * FX_OK, or the error in err. */
static fx_status read_header(const char *path, size_t cap, uint8_t **bytes, size_t *nb,
                             const fx_loader **ld, fx_image_info *info, fx_error *err)
{
    *ld = NULL;
    fx_status st = fx_read_file(path, 0, bytes, nb, err);
    if (st == FX_OK)
        st = fx_decode_header(ld, *bytes, *nb, NULL, info, err);
    if (st == FX_OK && fx_image_bytes(info) > cap)
        st = fx_error_set(err, FX_ERR_LIMIT, "larger than the benchmark's buffer");
    return st;
}

/* fxscreen's own decode (fx_read_file, header, the loader's load: for
 * these PNGs the libdeflate fast path) into buf, one thread, no prep. */
static double time_fx(char **paths, int n, uint8_t *buf, size_t cap)
{
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        uint8_t *bytes = NULL;
        size_t nb = 0;
        const fx_loader *ld;
        fx_image_info info;
        fx_error err = {0};
        if (read_header(paths[i], cap, &bytes, &nb, &ld, &info, &err) != FX_OK ||
            ld->load(bytes, nb, &info, buf, &err) != FX_OK)
            fprintf(stderr, "decode: fx decode failed on %s: %s\n", paths[i], err.msg);
        free(bytes);
    }
    return now_s() - t0;
}

/* --ab: the PNG decoders alone on the same bytes in memory (no file
 * reads), the fast path and libpng alternating for 11 rounds over the
 * files; prints each round and the median libpng / fast time ratio. */
static void ab_png(char **paths, int n, uint8_t *buf, size_t cap)
{
    uint8_t **b = calloc((size_t)n, sizeof *b);
    size_t *nb = calloc((size_t)n, sizeof *nb);
    fx_image_info *info = calloc((size_t)n, sizeof *info);
    fx_error err = {0};
    for (int i = 0; i < n; i++) {
        const fx_loader *ld;
        if (read_header(paths[i], cap, &b[i], &nb[i], &ld, &info[i], &err) != FX_OK) {
            fprintf(stderr, "decode: %s: %s\n", paths[i], err.msg);
            exit(1);
        }
    }
    double r[11];
    for (int round = 0; round < 11; round++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            if (fx_png_load_fast(b[i], nb[i], &info[i], buf) != FX_OK)
                fprintf(stderr, "decode: the fast path declined %s\n", paths[i]);
        double t1 = now_s();
        for (int i = 0; i < n; i++)
            fx_png_load_libpng(b[i], nb[i], &info[i], buf, &err);
        double t2 = now_s();
        r[round] = (t2 - t1) / (t1 - t0);
        printf("round %2d: fast path %.1f ms/image, libpng %.1f ms/image, libpng/fast %.2f\n",
               round, (t1 - t0) * 1e3 / n, (t2 - t1) * 1e3 / n, r[round]);
    }
    double med = median(r, 11); /* sorts r */
    printf("median libpng/fast time ratio: %.2f (min %.2f, max %.2f), %d files in memory\n", med,
           r[0], r[10], n);
    for (int i = 0; i < n; i++)
        free(b[i]);
    free(b), free(nb), free(info);
}

/* The same per-file work as a pool worker (read, decode, stats, prep) in a
 * plain loop on this thread: pool time over this is the pool's own cost. */
static double time_plain(char **paths, int n)
{
    fx_pool_config c = {0};
    fx_prep_config_default(&c.prep);
    fx_worker_buf wb = {0};
    size_t per = (size_t)c.prep.channels * (size_t)c.prep.out_h * (size_t)c.prep.out_w;
    float *out = malloc(per * sizeof *out);
    fx_item item;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        fx_pool_process_one(&c, paths[i], &wb, out, NULL, &item);
        if (item.status != FX_OK)
            fprintf(stderr, "decode: %s\n", item.error);
    }
    double t = now_s() - t0;
    fx_worker_buf_free(&wb);
    free(out);
    return t;
}

static double time_pool(char **paths, int n, int threads)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += strlen(paths[i]) + 1;
    char *list = malloc(len + 1), *w = list;
    for (int i = 0; i < n; i++)
        w += sprintf(w, "%s\n", paths[i]);
    FILE *in = fmemopen(list, len, "r");
    fx_pool_config c = {0};
    fx_prep_config_default(&c.prep);
    c.threads = threads;
    c.batch = 4;
    const char *specs[] = {"-"};
    fx_source *src;
    fx_pool *pool;
    fx_error err = {0};
    double t0 = now_s();
    if (fx_source_create(specs, 1, in, &src, &err) != FX_OK ||
        fx_pool_create(&c, src, &pool, &err) != FX_OK) {
        fprintf(stderr, "decode: %s\n", err.msg);
        exit(1);
    }
    fx_batch *b;
    int failed = 0;
    while (fx_pool_next(pool, &b) == FX_OK && b) {
        for (int r = 0; r < b->count; r++)
            failed += b->items[r].status != FX_OK;
        fx_pool_release(pool, b);
    }
    double t = now_s() - t0;
    fx_pool_destroy(pool);
    fx_source_destroy(src);
    fclose(in);
    free(list);
    if (failed)
        fprintf(stderr, "decode: %d inputs failed in the pool\n", failed);
    return t;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp/fx_bench_decode";
    int n = 24, size = 2048, reps = 3, ab = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--ab"))
            ab = 1;
        else if (!strcmp(argv[i], "--dir") && v)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--n") && v)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && v)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && v)
            reps = atoi(argv[++i]);
        else
            n = 0; /* unknown: the usage line */
    }
    if (n < 1 || reps < 1 || reps > 31) {
        fprintf(stderr, "usage: decode [--dir D] [--n N>=1] [--size PX] [--reps 1..31] [--ab]\n");
        return 2;
    }
    mkdir(dir, 0777);
    size_t cap = (size_t)size * (size_t)size * 2;
    uint8_t *buf = malloc(cap);
    double mpix = (double)size * size / 1e6;
    printf("| set | what | threads | images/s | MB/s (file) | MPix/s | vs bare |\n");
    printf("|---|---|---|---|---|---|---|\n");
    const char *exts[] = {"png", "tif"};
    for (int f = 0; f < 2; f++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s", dir, exts[f]);
        char **paths = calloc((size_t)n, sizeof *paths);
        double mb;
        if (ensure_files(sub, exts[f], n, size, paths, &mb) != 0)
            return 1;
        if (ab) {
            if (f == 0)
                ab_png(paths, n, buf, cap);
            for (int i = 0; i < n; i++)
                free(paths[i]);
            free(paths);
            continue;
        }
        double tb[31], tf[31], ts[31], tp[31], t1[31], t2[31];
        time_bare(f == 0, paths, n, buf, cap); /* warm the page cache */
        for (int r = 0; r < reps; r++) {
            tb[r] = time_bare(f == 0, paths, n, buf, cap);
            tf[r] = time_fx(paths, n, buf, cap);
            ts[r] = 0;
#ifdef FX_HAVE_SPNG
            if (f == 0) {
                double t0 = now_s();
                for (int i = 0; i < n; i++)
                    if (bare_spng(paths[i], buf, cap))
                        fprintf(stderr, "decode: libspng failed on %s\n", paths[i]);
                ts[r] = now_s() - t0;
            }
#endif
            tp[r] = time_plain(paths, n);
            t1[r] = time_pool(paths, n, 1);
            t2[r] = time_pool(paths, n, 2);
        }
        double b = median(tb, reps), fd = median(tf, reps), sp = median(ts, reps);
        double pl = median(tp, reps);
        double p1 = median(t1, reps), p2 = median(t2, reps);
        const char *set = f == 0 ? "PNG 16-bit" : "TIFF 16-bit Deflate";
        const char *lib = f == 0 ? "libpng bare decode" : "libtiff bare decode";
        printf("| %s %dpx x%d | %s | 1 | %.2f | %.1f | %.1f | 1.00 |\n", set, size, n, lib, n / b,
               mb / b, n * mpix / b);
        if (sp > 0)
            printf("| %s %dpx x%d | libspng bare decode | 1 | %.2f | %.1f | %.1f | %.2f "
                   "(spng/libpng rate %.2fx) |\n",
                   set, size, n, n / sp, mb / sp, n * mpix / sp, sp / b, b / sp);
        printf("| %s %dpx x%d | fx decode (loader), no prep | 1 | %.2f | %.1f | %.1f | %.2f "
               "(fx/bare rate %.2fx) |\n",
               set, size, n, n / fd, mb / fd, n * mpix / fd, fd / b, b / fd);
        printf(
            "| %s %dpx x%d | fx decode+prep, plain loop (no pool) | 1 | %.2f | %.1f | %.1f | %.2f "
            "|\n",
            set, size, n, n / pl, mb / pl, n * mpix / pl, pl / b);
        printf("| %s %dpx x%d | fx pool decode+prep | 1 | %.2f | %.1f | %.1f | %.2f (pool vs plain "
               "loop: %.3f) |\n",
               set, size, n, n / p1, mb / p1, n * mpix / p1, p1 / b, p1 / pl);
        printf("| %s %dpx x%d | fx pool decode+prep | 2 | %.2f | %.1f | %.1f | %.2f (2 vs 1 "
               "thread: %.2fx) |\n",
               set, size, n, n / p2, mb / p2, n * mpix / p2, p2 / b, p1 / p2);
        for (int i = 0; i < n; i++)
            free(paths[i]);
        free(paths);
    }
    free(buf);
    return 0;
}
