/* The reader pool: see include/fxscreen/pool.h for the contract. */
#include "fxscreen/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FX_HAVE_CUDA
#include "fxscreen/cuda_kernels.h"
#endif
#include "fxscreen/fsutil.h"
#include "fxscreen/loader.h"
#include "fxscreen/overlay.h"

#define FX_POOL_ALIGN 4096

/* One batch slot of the ring. Slot s carries batches s, s+Q, s+2Q, ... */
typedef struct slot {
    fx_batch b;
    size_t allowed; /* the batch number that may fill this slot next */
    int done;       /* items finished for the batch now in the slot */
} slot;

struct fx_pool {
    fx_pool_config cfg;
    fx_source *src;
    int nthreads;
    pthread_t *threads;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t slot_free; /* a slot was released */
    pthread_cond_t ready;     /* an item finished */
    slot *slots;
    int nslots;
    size_t next_index; /* next input to claim */
    size_t end_index;  /* inputs in the run, once known (SIZE_MAX before) */
    size_t next_out;   /* next batch number to hand out */
    int cancelled;
    size_t item_floats;  /* C*H*W */
    size_t plane_floats; /* H*W */
    size_t ov_bytes;     /* overlay_side^2: one item's overlay base */
    size_t gpu_fallbacks;
    char gpu_error[FX_ERROR_MSG_MAX];
};

static void *aligned_alloc_zero(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = FX_POOL_ALIGN;
    bytes = (bytes + FX_POOL_ALIGN - 1) / FX_POOL_ALIGN * FX_POOL_ALIGN;
    if (posix_memalign(&p, FX_POOL_ALIGN, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

void fx_worker_buf_free(fx_worker_buf *buf)
{
    free(buf->plane);
    fx_prep_scratch_destroy(buf->scratch);
#ifdef FX_HAVE_CUDA
    fx_cuda_prep_destroy(buf->cuda);
#endif
    memset(buf, 0, sizeof *buf);
}

/* Read (unless data holds the bytes) + two-phase decode into buf->plane
 * (reused across images). */
static fx_status decode_into(const fx_pool_config *cfg, const char *path, const uint8_t *data,
                             size_t size, fx_worker_buf *buf, fx_image *img, fx_error *err)
{
    uint8_t *bytes = NULL;
    size_t n = 0;
    size_t max_bytes = cfg->max_file_bytes ? cfg->max_file_bytes : ((size_t)1 << 30);
    fx_status st = data ? FX_OK : fx_read_file(path, max_bytes, &bytes, &n, err);
    if (st != FX_OK)
        return st;
    if (data) /* an archive member, in memory: borrowed */
        bytes = (uint8_t *)data, n = size;
    memset(img, 0, sizeof *img);
    const fx_loader *ld = NULL;
    fx_decode_limits lim = {cfg->prep.max_megapixels};
    if ((st = fx_decode_header(&ld, bytes, n, &lim, &img->info, err)) != FX_OK)
        goto done;
    size_t need = fx_image_bytes(&img->info);
    if (need > buf->plane_cap) {
        void *np = realloc(buf->plane, need);
        if (!np) {
            st = fx_error_set(err, FX_ERR_NOMEM, "out of memory for a %dx%d plane", img->info.width,
                              img->info.height);
            goto done;
        }
        buf->plane = np;
        buf->plane_cap = need;
    }
    img->pixels = buf->plane;
    img->owned = 0;
    st = ld->load(bytes, n, &img->info, img->pixels, err);
done:
    if (!data)
        free(bytes);
    return st;
}

void fx_pool_process_one(const fx_pool_config *cfg, const char *path, fx_worker_buf *buf,
                         float *out, float *plane01, fx_item *item)
{
    fx_pool_process_bytes(cfg, path, NULL, 0, buf, out, plane01, item);
}

/* prep_cuda: the item preprocessed on the GPU (1), or not (0: not asked,
 * not an integer plane, plane01 wanted, or the device failed, which is
 * counted and left to the CPU: the image is not at fault). */
static int prep_on_gpu(const fx_pool_config *cfg, const fx_image *img, float *plane01,
                       fx_worker_buf *buf, float *out, fx_item *item)
{
#ifdef FX_HAVE_CUDA
    if (!cfg->prep_cuda || plane01 || !fx_prep_cuda_eligible(img, &cfg->prep))
        return 0;
    fx_error e = {0};
    fx_status st = FX_OK;
    if (!buf->cuda) {
        if ((st = fx_cuda_use_device(cfg->prep_cuda_device, &e)) == FX_OK &&
            !(buf->cuda = fx_cuda_prep_create()))
            st = fx_error_set(&e, FX_ERR_NOMEM, "out of memory");
    }
    if (st == FX_OK)
        st = fx_prep_run_cuda(buf->cuda, img, &cfg->prep, buf->scratch, out, &item->geom,
                              &item->stats, &e);
    if (st == FX_OK)
        return 1;
    if (st != FX_ERR_DEVICE && st != FX_ERR_NOMEM)
        return 0; /* the image's own problem (a limit): the CPU says it the same way */
    if (!buf->gpu_fallbacks++)
        snprintf(buf->gpu_error, sizeof buf->gpu_error, "%s", e.msg);
    return 0;
#else
    (void)cfg, (void)img, (void)plane01, (void)buf, (void)out, (void)item;
    return 0;
#endif
}

void fx_pool_process_bytes(const fx_pool_config *cfg, const char *path, const uint8_t *data,
                           size_t size, fx_worker_buf *buf, float *out, float *plane01,
                           fx_item *item)
{
    fx_error err = {0};
    fx_image img;
    item->status = FX_OK;
    item->error[0] = '\0';
    memset(&item->info, 0, sizeof item->info);
    double t0 = fx_now_s();
    fx_status st = decode_into(cfg, path, data, size, buf, &img, &err);
    double t1 = fx_now_s();
    item->decode_s = t1 - t0;
    item->prep_s = 0;
    if (st == FX_OK) {
        item->info = img.info;
        if (!buf->scratch && !(buf->scratch = fx_prep_scratch_create()))
            st = fx_error_set(&err, FX_ERR_NOMEM, "out of memory for preprocessing scratch");
        else if (!prep_on_gpu(cfg, &img, plane01, buf, out, item))
            st = fx_prep_run(&img, &cfg->prep, buf->scratch, out, plane01, &item->geom,
                             &item->stats, &err);
        /* The overlay's base while the plane is decoded; a failure leaves
         * ov_w 0, and the writer decodes the file again instead. */
        fx_error oe = {0};
        if (st == FX_OK && item->ov && cfg->overlay_side > 0 &&
            fx_overlay_base(&img, &item->geom, cfg->prep.invert, cfg->overlay_side, item->ov,
                            &item->ov_w, &item->ov_h, &oe) != FX_OK)
            item->ov_w = item->ov_h = 0;
        item->prep_s = fx_now_s() - t1;
    } else if (img.info.width > 0) {
        item->info = img.info; /* header was read: keep size/bit depth for the row */
    }
    if (st != FX_OK) {
        item->status = st;
        snprintf(item->error, sizeof item->error, "%s: %s", path, err.msg);
        memset(out, 0,
               sizeof(float) * (size_t)cfg->prep.channels * (size_t)cfg->prep.out_h *
                   (size_t)cfg->prep.out_w);
        if (plane01)
            memset(plane01, 0, sizeof(float) * (size_t)cfg->prep.out_h * (size_t)cfg->prep.out_w);
    }
}

/* Worker: claim under the lock, work outside it, report under it. */
static void *worker_main(void *arg)
{
    fx_pool *p = arg;
    fx_worker_buf buf = {0};
    const size_t B = (size_t)p->cfg.batch;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->cancelled || p->next_index >= p->end_index)
            break;
        size_t i = p->next_index, k = i / B;
        slot *sl = &p->slots[k % (size_t)p->nslots];
        if (sl->allowed != k) { /* back-pressure: slot still holds batch k - Q */
            pthread_cond_wait(&p->slot_free, &p->mu);
            continue;
        }
        fx_source_item src;
        if (!fx_source_next(p->src, &src)) {
            p->end_index = i;
            pthread_cond_broadcast(&p->ready);
            pthread_cond_broadcast(&p->slot_free);
            break;
        }
        p->next_index = i + 1;
        int r = (int)(i % B);
        if (r == 0) {
            sl->done = 0;
            sl->b.number = k;
            sl->b.first = i;
        }
        fx_item *it = &sl->b.items[r];
        memset(it, 0, sizeof *it);
        if (sl->b.overlay_base)
            it->ov = sl->b.overlay_base + (size_t)r * p->ov_bytes;
        it->index = i;
        it->path = src.path;
        float *out = sl->b.tensor + (size_t)r * p->item_floats;
        float *pl = sl->b.plane01 ? sl->b.plane01 + (size_t)r * p->plane_floats : NULL;
        pthread_mutex_unlock(&p->mu);

        if (src.status != FX_OK || !src.path) {
            it->status = src.status != FX_OK ? src.status : FX_ERR_NOMEM;
            snprintf(it->error, sizeof it->error, "%s: %s", src.path ? src.path : "?", src.error);
            memset(out, 0, sizeof(float) * p->item_floats);
            if (pl)
                memset(pl, 0, sizeof(float) * p->plane_floats);
        } else {
            fx_pool_process_bytes(&p->cfg, src.path, src.data, src.size, &buf, out, pl, it);
        }
        free(src.data); /* an archive member's bytes, decoded now */

        pthread_mutex_lock(&p->mu);
        if (buf.gpu_fallbacks) { /* moved to the pool's count */
            if (!p->gpu_fallbacks)
                snprintf(p->gpu_error, sizeof p->gpu_error, "%s", buf.gpu_error);
            p->gpu_fallbacks += buf.gpu_fallbacks;
            buf.gpu_fallbacks = 0;
        }
        sl->done++;
        pthread_cond_broadcast(&p->ready);
    }
    pthread_mutex_unlock(&p->mu);
    fx_worker_buf_free(&buf);
    return NULL;
}

fx_status fx_pool_create(const fx_pool_config *cfg, fx_source *src, fx_pool **out, fx_error *err)
{
    *out = NULL;
    fx_status st = fx_prep_config_validate(&cfg->prep, err);
    if (st != FX_OK)
        return st;
    if (cfg->batch < 1 || cfg->batch > 4096)
        return fx_error_set(err, FX_ERR_USAGE, "batch size %d out of range; use 1..4096",
                            cfg->batch);
    fx_pool *p = calloc(1, sizeof *p);
    if (!p)
        return fx_error_set(err, FX_ERR_NOMEM, "out of memory creating the reader pool");
    p->cfg = *cfg;
    p->src = src;
    p->end_index = SIZE_MAX;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    p->nthreads = cfg->threads > 0 ? cfg->threads : (online > 0 ? (int)online : 1);
    p->nslots = cfg->queue >= 2 ? cfg->queue : 2 + (p->nthreads + cfg->batch - 1) / cfg->batch;
    p->item_floats = (size_t)cfg->prep.channels * (size_t)cfg->prep.out_h * (size_t)cfg->prep.out_w;
    p->plane_floats = (size_t)cfg->prep.out_h * (size_t)cfg->prep.out_w;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->slot_free, NULL);
    pthread_cond_init(&p->ready, NULL);
    p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
    p->threads = calloc((size_t)p->nthreads, sizeof *p->threads);
    if (!p->slots || !p->threads)
        goto nomem;
    for (int s = 0; s < p->nslots; s++) {
        fx_batch *b = &p->slots[s].b;
        p->slots[s].allowed = (size_t)s;
        b->channels = cfg->prep.channels;
        b->height = cfg->prep.out_h;
        b->width = cfg->prep.out_w;
        b->items = calloc((size_t)cfg->batch, sizeof *b->items);
        b->tensor = aligned_alloc_zero(sizeof(float) * p->item_floats * (size_t)cfg->batch);
        if (cfg->keep_plane01)
            b->plane01 = aligned_alloc_zero(sizeof(float) * p->plane_floats * (size_t)cfg->batch);
        p->ov_bytes =
            cfg->overlay_side > 0 ? (size_t)cfg->overlay_side * (size_t)cfg->overlay_side : 0;
        if (p->ov_bytes)
            b->overlay_base = malloc(p->ov_bytes * (size_t)cfg->batch);
        if (!b->items || !b->tensor || (cfg->keep_plane01 && !b->plane01) ||
            (p->ov_bytes && !b->overlay_base))
            goto nomem;
    }
    for (int t = 0; t < p->nthreads; t++) {
        if (pthread_create(&p->threads[t], NULL, worker_main, p) != 0) {
            fx_pool_destroy(p);
            return fx_error_set(err, FX_ERR_NOMEM, "cannot start reader thread %d", t);
        }
        p->started++;
    }
    *out = p;
    return FX_OK;
nomem:
    fx_pool_destroy(p);
    return fx_error_set(err, FX_ERR_NOMEM, "out of memory for %d batch slots of %d items",
                        p->nslots, cfg->batch);
}

fx_status fx_pool_next(fx_pool *p, fx_batch **batch)
{
    const size_t B = (size_t)p->cfg.batch;
    *batch = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t k = p->next_out, first = k * B;
        size_t end = p->cancelled && p->end_index == SIZE_MAX ? p->next_index : p->end_index;
        if (first >= end && (p->end_index != SIZE_MAX || p->cancelled)) {
            /* All delivered; after a cancel, wait for workers to leave claimed items. */
            break;
        }
        slot *sl = &p->slots[k % (size_t)p->nslots];
        size_t want = end - first < B ? end - first : B;
        int filled = sl->allowed == k && sl->b.number == k && first < p->next_index;
        if (filled && (size_t)sl->done == want &&
            (want == B || p->end_index != SIZE_MAX || p->cancelled)) {
            sl->b.count = (int)want;
            p->next_out = k + 1;
            *batch = &sl->b;
            break;
        }
        pthread_cond_wait(&p->ready, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return FX_OK;
}

void fx_pool_release(fx_pool *p, fx_batch *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&p->mu);
    for (int r = 0; r < b->count; r++) {
        free(b->items[r].path);
        b->items[r].path = NULL;
    }
    slot *sl = &p->slots[b->number % (size_t)p->nslots];
    sl->allowed = b->number + (size_t)p->nslots;
    sl->done = 0;
    pthread_cond_broadcast(&p->slot_free);
    pthread_mutex_unlock(&p->mu);
}

fx_batch *fx_pool_next_polled(fx_pool *p, const volatile sig_atomic_t *cancel, int *cancelled)
{
    if (cancel && *cancel && !*cancelled) {
        fx_pool_cancel(p);
        *cancelled = 1;
    }
    fx_batch *b;
    fx_pool_next(p, &b);
    return b;
}

void fx_pool_cancel(fx_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->cancelled = 1;
    pthread_cond_broadcast(&p->slot_free);
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->mu);
}

size_t fx_pool_prep_fallbacks(fx_pool *p, char *first, size_t cap)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->gpu_fallbacks;
    if (cap)
        snprintf(first, cap, "%s", p->gpu_error);
    pthread_mutex_unlock(&p->mu);
    return n;
}

int fx_pool_num_slots(const fx_pool *p)
{
    return p->nslots;
}

float *fx_pool_slot_tensor(const fx_pool *p, int i, size_t *bytes)
{
    *bytes = sizeof(float) * p->item_floats * (size_t)p->cfg.batch;
    return i >= 0 && i < p->nslots ? p->slots[i].b.tensor : NULL;
}

size_t fx_pool_claimed(fx_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->next_index;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void fx_pool_destroy(fx_pool *p)
{
    if (!p)
        return;
    fx_pool_cancel(p);
    for (int t = 0; t < p->started; t++)
        pthread_join(p->threads[t], NULL);
    if (p->slots) {
        for (int s = 0; s < p->nslots; s++) {
            fx_batch *b = &p->slots[s].b;
            if (b->items)
                for (int r = 0; r < p->cfg.batch; r++)
                    free(b->items[r].path);
            free(b->items);
            free(b->tensor);
            free(b->plane01);
            free(b->overlay_base);
        }
    }
    free(p->slots);
    free(p->threads);
    pthread_cond_destroy(&p->slot_free);
    pthread_cond_destroy(&p->ready);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
