/* Reader pool: order, error rows, back-pressure bound, cancel, thread-count
 * independence.  Inputs are uniform grey PNGs of value v_i, so the expected
 * tensor is known without running our preprocessing: v_i/255 everywhere
 * (window none, mean 0, std 1). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/loader.h"
#include "fxscreen/pool.h"

#define N_IMG 37
static char dir[64];
static char listbuf[N_IMG * 80 + 200];
static int value_of[N_IMG + 2]; /* -1 for inputs that must fail */

static void make_inputs(void)
{
    strcpy(dir, "/tmp/fx_test_pool_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    size_t off = 0;
    for (int i = 0; i < N_IMG; i++) {
        char p[128];
        int w = 20 + i * 3, h = 15 + (i * 7) % 40; /* all different sizes */
        uint8_t *px = malloc((size_t)w * h);
        memset(px, (i * 37 + 11) % 256, (size_t)w * h);
        fx_image img = {.info = {w, h, 8, 1, FX_PIX_U8}, .pixels = px};
        if (i == 5) { /* a damaged file */
            snprintf(p, sizeof p, "%s/bad_%02d.png", dir, i);
            FILE *f = fopen(p, "w");
            fputs("\x89PNG\r\n\x1a\nthis is not a png", f);
            fclose(f);
            value_of[i] = -1;
        } else if (i == 11) { /* a missing file */
            snprintf(p, sizeof p, "%s/missing_%02d.png", dir, i);
            value_of[i] = -1;
        } else {
            snprintf(p, sizeof p, "%s/img_%02d.png", dir, i);
            fx_error err = {0};
            if (fx_png_save(p, &img, &err) != FX_OK)
                fprintf(stderr, "save: %s\n", err.msg);
            value_of[i] = (i * 37 + 11) % 256;
        }
        free(px);
        off += (size_t)snprintf(listbuf + off, sizeof listbuf - off, "%s\n", p);
    }
}

static void config(fx_pool_config *c, int threads, int batch, int queue)
{
    memset(c, 0, sizeof *c);
    fx_prep_config_default(&c->prep);
    c->prep.window = FX_WINDOW_NONE;
    c->prep.out_h = 9;
    c->prep.out_w = 11;
    c->prep.fit = FX_FIT_CROP; /* uniform images: crop leaves no padding */
    c->prep.channels = 3;
    for (int k = 0; k < 3; k++) {
        c->prep.mean[k] = 0;
        c->prep.std[k] = 1;
    }
    c->threads = threads;
    c->batch = batch;
    c->queue = queue;
}

/* Run the whole input; check order and values; returns total seen. */
static int run_all(int threads, int batch, int queue, float *keep /* N_IMG*C*H*W or NULL */)
{
    fx_pool_config c;
    config(&c, threads, batch, queue);
    FILE *in = fmemopen(listbuf, strlen(listbuf), "r");
    const char *specs[] = {"-"};
    fx_source *src;
    fx_pool *pool;
    fx_error err = {0};
    CHECK(fx_source_create(specs, 1, in, &src, &err) == FX_OK);
    CHECK(fx_pool_create(&c, src, &pool, &err) == FX_OK);
    size_t per = 3 * 9 * 11, seen = 0, nb = 0;
    fx_batch *b;
    int max_in_flight_ok = 1;
    while (fx_pool_next(pool, &b) == FX_OK && b) {
        CHECK(b->number == nb);
        CHECK(b->first == seen);
        CHECK(((uintptr_t)b->tensor % 4096) == 0);
        size_t slots = (size_t)(queue >= 2 ? queue : 2);
        if (fx_pool_claimed(pool) > (nb + slots) * (size_t)batch)
            max_in_flight_ok = 0;
        for (int r = 0; r < b->count; r++) {
            const fx_item *it = &b->items[r];
            int i = (int)(b->first + (size_t)r);
            CHECK(it->index == (size_t)i);
            char want[16];
            snprintf(want, sizeof want, "_%02d.png", i);
            CHECK_MSG(strstr(it->path, want) != NULL, "item %d path %s", i, it->path);
            if (value_of[i] < 0) {
                CHECK_MSG(it->status != FX_OK && strstr(it->error, it->path) != NULL,
                          "item %d should fail with its path in the message: %s", i, it->error);
            } else {
                CHECK_MSG(it->status == FX_OK, "item %d: %s", i, it->error);
                CHECK(it->info.width == 20 + i * 3);
            }
            const float *t = b->tensor + (size_t)r * per;
            float want_v = value_of[i] < 0 ? 0.0f : (float)value_of[i] / 255.0f;
            int bad = 0;
            for (size_t k = 0; k < per; k++)
                bad += fabsf(t[k] - want_v) > 1e-6f;
            CHECK_MSG(bad == 0, "item %d: %d values differ from %g", i, bad, want_v);
            if (keep)
                memcpy(keep + (size_t)i * per, t, per * sizeof(float));
        }
        seen += (size_t)b->count;
        nb++;
        usleep(2000); /* a slow consumer: workers must wait, not run ahead */
        fx_pool_release(pool, b);
    }
    CHECK(max_in_flight_ok);
    fx_pool_destroy(pool);
    fx_source_destroy(src);
    fclose(in);
    return (int)seen;
}

static void test_order_values_errors(void)
{
    CHECK(run_all(2, 4, 2, NULL) == N_IMG);
    CHECK(run_all(1, 1, 2, NULL) == N_IMG);
    CHECK(run_all(3, 37, 2, NULL) == N_IMG);
    CHECK(run_all(4, 64, 3, NULL) == N_IMG); /* one short batch */
}

static void test_threads_do_not_change_results(void)
{
    size_t per = 3 * 9 * 11;
    float *a = calloc(N_IMG * per, sizeof(float)), *b = calloc(N_IMG * per, sizeof(float));
    run_all(1, 5, 2, a);
    run_all(4, 5, 2, b);
    CHECK(memcmp(a, b, N_IMG * per * sizeof(float)) == 0);
    free(a);
    free(b);
}

static void test_cancel(void)
{
    fx_pool_config c;
    config(&c, 2, 4, 2);
    FILE *in = fmemopen(listbuf, strlen(listbuf), "r");
    const char *specs[] = {"-"};
    fx_source *src;
    fx_pool *pool;
    fx_error err = {0};
    CHECK(fx_source_create(specs, 1, in, &src, &err) == FX_OK);
    CHECK(fx_pool_create(&c, src, &pool, &err) == FX_OK);
    fx_batch *b;
    size_t seen = 0;
    CHECK(fx_pool_next(pool, &b) == FX_OK && b);
    seen += (size_t)b->count;
    fx_pool_cancel(pool);
    fx_pool_release(pool, b);
    while (fx_pool_next(pool, &b) == FX_OK && b) {
        CHECK(b->first == seen); /* still in order, no gaps */
        seen += (size_t)b->count;
        fx_pool_release(pool, b);
    }
    /* At most the batches already claimed when cancel came: 2 slots of 4. */
    CHECK_MSG(seen >= 4 && seen <= 12, "seen %zu after cancel", seen);
    fx_pool_destroy(pool);
    fx_source_destroy(src);
    fclose(in);
}

static void test_bad_config(void)
{
    fx_pool_config c;
    config(&c, 1, 0, 2);
    fx_pool *pool;
    fx_error err = {0};
    CHECK(fx_pool_create(&c, NULL, &pool, &err) == FX_ERR_USAGE);
    CHECK(strstr(err.msg, "batch") != NULL);
}

int main(void)
{
    make_inputs();
    RUN(test_order_values_errors);
    RUN(test_threads_do_not_change_results);
    RUN(test_cancel);
    RUN(test_bad_config);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return check_summary();
}
