/* The CPU backend: host memory, the OpenMP fast kernels (or the references
 * for a reference plan) through each op's executor in src/model/ops_*.c.
 * It can run every op the graph binds and every fusion the plan makes, and
 * the backward through the plain-C VJPs (src/model/vjp_exec.c). */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/memplan.h"
#include "model/vjp.h"

static int cpu_supports(void *ctx, const fx_graph *g, const fx_node *n, char *why, size_t cap)
{
    (void)ctx, (void)g, (void)n, (void)why, (void)cap;
    return 1;
}

static size_t cpu_elem_size(void *ctx)
{
    (void)ctx;
    return sizeof(float);
}

static fx_status cpu_alloc(void *ctx, size_t bytes, void **out, fx_error *err)
{
    (void)ctx;
    size_t rounded = (bytes + FX_MEMPLAN_ALIGN - 1) / FX_MEMPLAN_ALIGN * FX_MEMPLAN_ALIGN;
    if (!(*out = aligned_alloc(FX_MEMPLAN_ALIGN, rounded ? rounded : FX_MEMPLAN_ALIGN)))
        return fx_error_set(err, FX_ERR_NOMEM, "plan: out of memory (%zu arena bytes)", bytes);
    return FX_OK;
}

static void cpu_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static fx_status cpu_constant(void *ctx, const fx_tensor *t, const void **out, fx_error *err)
{
    (void)ctx, (void)err;
    *out = t->data; /* the graph's own copy: nothing to upload */
    return FX_OK;
}

static fx_status cpu_run_node(void *ctx, int s, const fx_node *n, const fx_exec_fast *x,
                              fx_error *err)
{
    (void)ctx, (void)s, (void)err;
    return n->def->exec(n, &x->x);
}

static fx_status cpu_upload(void *ctx, void *dst, const float *src, int64_t n, fx_error *err)
{
    (void)ctx, (void)err;
    if (dst != src)
        memcpy(dst, src, (size_t)n * sizeof(float));
    return FX_OK;
}

static fx_status cpu_download(void *ctx, float *dst, const void *src, int64_t n, fx_error *err)
{
    return cpu_upload(ctx, dst, src, n, err);
}

static fx_status cpu_poison(void *ctx, void *ptr, size_t bytes, fx_error *err)
{
    (void)ctx, (void)err;
    memset(ptr, 0xff, bytes); /* all-ones bytes are NaN floats */
    return FX_OK;
}

static fx_status cpu_sync(void *ctx, fx_error *err)
{
    (void)ctx, (void)err;
    return FX_OK;
}

static int cpu_supports_vjp(void *ctx, const fx_graph *g, const fx_node *n, const char *need,
                            char *why, size_t cap)
{
    (void)ctx;
    return fx_vjp_supported(g, n, need, why, cap);
}

static fx_status cpu_run_vjp(void *ctx, int s, const fx_node *n, const fx_vjp_io *io, fx_error *err)
{
    (void)ctx, (void)s, (void)err;
    return fx_vjp_exec(n, io);
}

static fx_status cpu_zero(void *ctx, void *ptr, size_t bytes, fx_error *err)
{
    (void)ctx, (void)err;
    memset(ptr, 0, bytes);
    return FX_OK;
}

static fx_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes, fx_error *err)
{
    (void)ctx, (void)err;
    memcpy(dst, src, bytes);
    return FX_OK;
}

static void cpu_destroy(void *ctx)
{
    (void)ctx;
}

const fx_backend_ops fx_backend_cpu = {
    .name = "cpu",
    .fusions = FX_FUSE_EPILOGUE | FX_FUSE_CPU,
    .supports_node = cpu_supports,
    .elem_size = cpu_elem_size,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .constant = cpu_constant,
    .run_node = cpu_run_node,
    .upload = cpu_upload,
    .download = cpu_download,
    .poison = cpu_poison,
    .sync = cpu_sync,
    .destroy = cpu_destroy,
    .host_memory = 1,
    .supports_vjp = cpu_supports_vjp,
    .run_vjp = cpu_run_vjp,
    .zero = cpu_zero,
    .copy_in = cpu_copy,
    .copy_out = cpu_copy,
};

fx_status fx_backend_create(fx_device_kind device, const fx_graph *g, const fx_backend_cfg *cfg,
                            const fx_backend_ops **ops, void **ctx, fx_error *err)
{
    *ctx = NULL;
    if (device != FX_DEVICE_CUDA) {
        *ops = &fx_backend_cpu;
        return FX_OK;
    }
#ifdef FX_HAVE_CUDA
    *ops = &fx_backend_cuda;
    return fx_backend_cuda_create(g, cfg, ctx, err);
#else
    (void)g, (void)cfg;
    return fx_error_set(err, FX_ERR_DEVICE,
                        "--device cuda: this build has no CUDA support (nvcc was not found or "
                        "CUDA=0); use --device cpu or auto");
#endif
}
