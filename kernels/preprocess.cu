// Resize + pad/crop + normalise + channel replication on the GPU: steps 3-6
// of fxscreen/prep.h.  The per-axis weight tables come from the C reference
// (fx_axis_plan_build in src/prep/resize.c) and are uploaded, so the GPU does
// exactly the reference's taps in the same order (rows, then columns) with
// double accumulators; results differ only by FMA contraction.
#include <cuda_runtime.h>

#include <new>

#include "fxscreen/cuda_kernels.h"
#include "prep/prep_internal.h"

namespace
{

// A device copy of one fx_axis_plan.
struct dev_plan {
    int *first = nullptr, *count = nullptr;
    float *w = nullptr;
    size_t cap_f = 0, cap_c = 0, cap_w = 0;
};

// Tables uploaded as kernel arguments by value.
struct plan_view {
    const int *first, *count;
    const float *w;
    int n, stride, src_lo;
};

} // namespace

struct fx_cuda_prep {
    fx_axis_plan hx{}, hy{}; // host plans
    dev_plan dx, dy;
    float *d_src = nullptr, *d_tmp = nullptr, *d_out = nullptr;
    size_t cap_src = 0, cap_tmp = 0, cap_out = 0; // floats
    // fx_prep_run_cuda: the raw plane, its histogram, the window table,
    // the windowed plane
    void *d_raw = nullptr;
    unsigned *d_hist = nullptr;
    float *d_lut = nullptr, *d_plane = nullptr;
    size_t cap_raw = 0, cap_hist = 0, cap_lut = 0, cap_plane = 0;
    uint64_t *h_hist = nullptr; // 65536
    unsigned *h_hist32 = nullptr;
    float *h_lut = nullptr;
    cudaStream_t stream = nullptr;
};

#define FX_CK(call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return fx_error_set(err, FX_ERR_DEVICE, "%s: %s (%s:%d)", #call,                       \
                                cudaGetErrorString(e_), __FILE__, __LINE__);                       \
    } while (0)

// Grow a device buffer of T to hold n elements (contents are not kept).
template <typename T> static fx_status grow(T **p, size_t *cap, size_t n, fx_error *err)
{
    if (n <= *cap && *p)
        return FX_OK;
    if (*p) {
        FX_CK(cudaFree(*p));
        *p = nullptr;
        *cap = 0;
    }
    FX_CK(cudaMalloc((void **)p, (n ? n : 1) * sizeof(T)));
    *cap = n;
    return FX_OK;
}

static fx_status upload(const fx_axis_plan *h, dev_plan *d, cudaStream_t s, plan_view *v,
                        fx_error *err)
{
    size_t n = (size_t)(h->n > 0 ? h->n : 1), nw = n * (size_t)h->stride;
    fx_status st;
    if ((st = grow(&d->first, &d->cap_f, n, err)) || (st = grow(&d->count, &d->cap_c, n, err)) ||
        (st = grow(&d->w, &d->cap_w, nw, err)))
        return st;
    if (h->n > 0) {
        FX_CK(cudaMemcpyAsync(d->first, h->first, (size_t)h->n * sizeof(int),
                              cudaMemcpyHostToDevice, s));
        FX_CK(cudaMemcpyAsync(d->count, h->count, (size_t)h->n * sizeof(int),
                              cudaMemcpyHostToDevice, s));
        FX_CK(cudaMemcpyAsync(d->w, h->w, (size_t)h->n * (size_t)h->stride * sizeof(float),
                              cudaMemcpyHostToDevice, s));
    }
    *v = plan_view{d->first, d->count, d->w, h->n, h->stride, h->src_lo};
    return FX_OK;
}

// Horizontal pass: tmp[r][i] = sum_k wx[i][k] * src[row0 + r][first_x[i] + k],
// for r < rows, i < px.n.  Grid-stride in y: a tall image can exceed 65535 blocks.
__global__ void hpass(const float *__restrict__ src, int sw, int row0, int rows, plan_view px,
                      float *__restrict__ tmp)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= px.n)
        return;
    const float *w = px.w + (size_t)i * px.stride;
    int first = px.first[i], count = px.count[i];
    for (int r = blockIdx.y * blockDim.y + threadIdx.y; r < rows; r += gridDim.y * blockDim.y) {
        const float *s = src + (size_t)(row0 + r) * sw + first;
        double acc = 0.0;
        for (int k = 0; k < count; k++)
            acc += (double)w[k] * (double)s[k];
        tmp[(size_t)r * px.n + i] = (float)acc;
    }
}

struct norm_args {
    int out_w, out_h, ox, oy, channels;
    float pad, mean[3], std[3];
};

// Vertical pass fused with pad/crop, normalisation and channel replication:
// out[c][y][x] = (v - mean[c]) / std[c], v = pad outside the visible window.
__global__ void vpass_norm(const float *__restrict__ tmp, int nx, plan_view py, norm_args a,
                           float *__restrict__ out)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    if (x >= a.out_w)
        return;
    size_t npix = (size_t)a.out_w * a.out_h;
    for (int y = blockIdx.y * blockDim.y + threadIdx.y; y < a.out_h; y += gridDim.y * blockDim.y) {
        float v = a.pad;
        int i = y - a.oy, j = x - a.ox;
        if (i >= 0 && i < py.n && j >= 0 && j < nx) {
            const float *w = py.w + (size_t)i * py.stride;
            const float *t = tmp + (size_t)(py.first[i] - py.src_lo) * nx + j;
            double acc = 0.0;
            for (int k = 0; k < py.count[i]; k++)
                acc += (double)w[k] * (double)t[(size_t)k * nx];
            v = (float)acc;
        }
        for (int c = 0; c < a.channels; c++)
            out[c * npix + (size_t)y * a.out_w + x] = (v - a.mean[c]) / a.std[c];
    }
}

extern "C" fx_cuda_prep *fx_cuda_prep_create(void)
{
    return new (std::nothrow) fx_cuda_prep(); // empty: no GPU touched yet
}

extern "C" void fx_cuda_prep_destroy(fx_cuda_prep *c)
{
    if (!c)
        return;
    // Errors while freeing are ignored: nothing useful can be done with them.
    cudaFree(c->d_src);
    cudaFree(c->d_tmp);
    cudaFree(c->d_out);
    cudaFree(c->dx.first);
    cudaFree(c->dx.count);
    cudaFree(c->dx.w);
    cudaFree(c->dy.first);
    cudaFree(c->dy.count);
    cudaFree(c->dy.w);
    cudaFree(c->d_raw);
    cudaFree(c->d_hist);
    cudaFree(c->d_lut);
    cudaFree(c->d_plane);
    free(c->h_hist);
    free(c->h_hist32);
    free(c->h_lut);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    fx_axis_plan_free(&c->hx);
    fx_axis_plan_free(&c->hy);
    delete c;
}

static unsigned grid_dim(size_t n, unsigned block, unsigned max)
{
    size_t g = (n + block - 1) / block;
    return (unsigned)(g < 1 ? 1 : g > max ? max : g);
}

extern "C" fx_status fx_prep_resize_norm_cuda(fx_cuda_prep *c, const float *src, int sh, int sw,
                                              int src_on_device, const fx_prep_config *cfg,
                                              float *out, int out_on_device, fx_prep_geom *geom,
                                              fx_error *err)
{
    if (!c || !src || !cfg || !out || sh < 1 || sw < 1)
        return fx_error_set(err, FX_ERR_USAGE, "fx_prep_resize_norm_cuda: bad arguments");
    fx_status st = fx_prep_config_validate(cfg, err);
    if (st)
        return st;
    fx_prep_geom g;
    fx_prep_geometry(sw, sh, cfg, &g);
    g.win_lo = 0;
    g.win_hi = 1;
    int rx, ox, nx, ry, oy, ny;
    fx_prep_visible(g.new_w, g.off_x, cfg->out_w, &rx, &ox, &nx);
    fx_prep_visible(g.new_h, g.off_y, cfg->out_h, &ry, &oy, &ny);
    if ((st = fx_axis_plan_build(&c->hx, sw, g.new_w, rx, nx, err)) ||
        (st = fx_axis_plan_build(&c->hy, sh, g.new_h, ry, ny, err)))
        return st;
    if (!c->stream)
        FX_CK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    cudaStream_t s = c->stream;

    plan_view vx, vy;
    if ((st = upload(&c->hx, &c->dx, s, &vx, err)) || (st = upload(&c->hy, &c->dy, s, &vy, err)))
        return st;
    int row0 = c->hy.src_hi > c->hy.src_lo ? c->hy.src_lo : 0;
    int rows = c->hy.src_hi - c->hy.src_lo;
    const float *d_src = src;
    int krow0 = row0; // first needed row, as a row index into d_src
    if (!src_on_device) {
        // Only the source rows the vertical taps read are uploaded (a crop
        // skips the rest).
        size_t n = (size_t)rows * (size_t)sw;
        if ((st = grow(&c->d_src, &c->cap_src, n, err)))
            return st;
        if (n)
            FX_CK(cudaMemcpyAsync(c->d_src, src + (size_t)row0 * sw, n * sizeof(float),
                                  cudaMemcpyHostToDevice, s));
        d_src = c->d_src;
        krow0 = 0;
    }
    size_t nout = (size_t)cfg->channels * cfg->out_h * cfg->out_w;
    if ((st = grow(&c->d_tmp, &c->cap_tmp, (size_t)rows * (size_t)nx, err)))
        return st;
    float *d_out = out;
    if (!out_on_device && (st = grow(&c->d_out, &c->cap_out, nout, err)))
        return st;
    if (!out_on_device)
        d_out = c->d_out;

    if (nx > 0 && rows > 0) {
        dim3 b(32, 8), gr(grid_dim((size_t)nx, 32, 1u << 30), grid_dim((size_t)rows, 8, 65535));
        hpass<<<gr, b, 0, s>>>(d_src, sw, krow0, rows, vx, c->d_tmp);
        FX_CK(cudaGetLastError());
    }
    norm_args a;
    a.out_w = cfg->out_w;
    a.out_h = cfg->out_h;
    a.ox = ox;
    a.oy = oy;
    a.channels = cfg->channels;
    a.pad = cfg->pad_value;
    for (int k = 0; k < 3; k++) {
        a.mean[k] = cfg->mean[k];
        a.std[k] = cfg->std[k];
    }
    if (ny == 0 || nx == 0)
        vy.n = 0; // nothing visible: all pad
    dim3 b(32, 8),
        gr(grid_dim((size_t)cfg->out_w, 32, 1u << 30), grid_dim((size_t)cfg->out_h, 8, 65535));
    vpass_norm<<<gr, b, 0, s>>>(c->d_tmp, nx, vy, a, d_out);
    FX_CK(cudaGetLastError());
    if (!out_on_device)
        FX_CK(cudaMemcpyAsync(out, d_out, nout * sizeof(float), cudaMemcpyDeviceToHost, s));
    FX_CK(cudaStreamSynchronize(s));
    if (geom)
        *geom = g;
    return FX_OK;
}

// ---- the whole of fx_prep_run on the GPU (integer planes) --------------------------

// 65536 (or 256) bins; shared-memory bins when they fit, else global atomics.
template <typename T> __global__ void k_hist(const T *p, size_t n, unsigned *hist)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        atomicAdd(&hist[p[i]], 1u);
}

// plane[i] = lut[raw[i]]: the window (and invert) of fx_prep_window_lut.
template <typename T> __global__ void k_window(const T *p, size_t n, const float *lut, float *out)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = lut[p[i]];
}

extern "C" int fx_prep_cuda_eligible(const fx_image *img, const fx_prep_config *cfg)
{
    (void)cfg;
    return img && (img->info.type == FX_PIX_U8 || img->info.type == FX_PIX_U16);
}

extern "C" fx_status fx_prep_run_cuda(fx_cuda_prep *c, const fx_image *img,
                                      const fx_prep_config *cfg, fx_prep_scratch *s, float *out,
                                      fx_prep_geom *geom, fx_image_stats *stats, fx_error *err)
{
    if (!c || !img || !img->pixels || !cfg || !s || !out || !fx_prep_cuda_eligible(img, cfg))
        return fx_error_set(err, FX_ERR_USAGE, "fx_prep_run_cuda: bad arguments");
    int w = img->info.width, h = img->info.height;
    if (w < 1 || h < 1)
        return fx_error_set(err, FX_ERR_USAGE, "fx_prep_run_cuda: bad image %d x %d", w, h);
    fx_status st = fx_prep_check(img, cfg, err);
    if (st)
        return st;
    int u8 = img->info.type == FX_PIX_U8;
    size_t n = (size_t)w * (size_t)h, bins = u8 ? 256 : 65536, es = u8 ? 1 : 2;
    if (!c->h_hist && !(c->h_hist = (uint64_t *)malloc(65536 * sizeof(uint64_t))))
        return fx_error_set(err, FX_ERR_NOMEM, "fx_prep_run_cuda: out of memory");
    if (!c->h_hist32 && !(c->h_hist32 = (unsigned *)malloc(65536 * sizeof(unsigned))))
        return fx_error_set(err, FX_ERR_NOMEM, "fx_prep_run_cuda: out of memory");
    if (!c->h_lut && !(c->h_lut = (float *)malloc(65536 * sizeof(float))))
        return fx_error_set(err, FX_ERR_NOMEM, "fx_prep_run_cuda: out of memory");
    if (n > 0xffffffffu)
        return fx_error_set(err, FX_ERR_LIMIT, "fx_prep_run_cuda: over 2^32 pixels");
    if (!c->stream)
        FX_CK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    cudaStream_t q = c->stream;
    if ((st = grow((char **)&c->d_raw, &c->cap_raw, n * es, err)) ||
        (st = grow(&c->d_hist, &c->cap_hist, 65536, err)) ||
        (st = grow(&c->d_lut, &c->cap_lut, 65536, err)) ||
        (st = grow(&c->d_plane, &c->cap_plane, n, err)))
        return st;
    // 1. the decoded plane as it was stored (1 or 2 bytes a pixel) ...
    FX_CK(cudaMemcpyAsync(c->d_raw, img->pixels, n * es, cudaMemcpyHostToDevice, q));
    unsigned blocks = grid_dim(n, 256, 65535u * 8);
    // ... its histogram there, back for the exact percentiles and the stats
    // (the same host functions as fx_prep_run: fx_prep_bounds, _hist_stats)
    int hist = stats || fx_prep_needs_hist(img, cfg);
    if (hist) {
        FX_CK(cudaMemsetAsync(c->d_hist, 0, bins * sizeof(unsigned), q));
        if (u8)
            k_hist<<<blocks, 256, 0, q>>>((const uint8_t *)c->d_raw, n, c->d_hist);
        else
            k_hist<<<blocks, 256, 0, q>>>((const uint16_t *)c->d_raw, n, c->d_hist);
        FX_CK(cudaGetLastError());
        FX_CK(cudaMemcpyAsync(c->h_hist32, c->d_hist, bins * sizeof(unsigned),
                              cudaMemcpyDeviceToHost, q));
        FX_CK(cudaStreamSynchronize(q));
        for (size_t v = 0; v < bins; v++)
            c->h_hist[v] = c->h_hist32[v];
        if (stats)
            fx_prep_hist_stats(c->h_hist, bins, n, stats);
    }
    double lo, hi;
    if ((st = fx_prep_bounds(img, cfg, hist ? c->h_hist : NULL, bins, s, &lo, &hi, err)))
        return st;
    // 2. the window (and invert) through fx_prep_window_lut's table
    fx_prep_window_lut(bins, lo, hi, cfg->invert, c->h_lut);
    FX_CK(cudaMemcpyAsync(c->d_lut, c->h_lut, bins * sizeof(float), cudaMemcpyHostToDevice, q));
    if (u8)
        k_window<<<blocks, 256, 0, q>>>((const uint8_t *)c->d_raw, n, c->d_lut, c->d_plane);
    else
        k_window<<<blocks, 256, 0, q>>>((const uint16_t *)c->d_raw, n, c->d_lut, c->d_plane);
    FX_CK(cudaGetLastError());
    // 3-6. resize, pad / crop, normalise, channels, into out on the host
    // (the same stream: it waits for the window)
    if ((st = fx_prep_resize_norm_cuda(c, c->d_plane, h, w, 1, cfg, out, 0, geom, err)))
        return st;
    if (geom)
        geom->win_lo = lo, geom->win_hi = hi;
    return FX_OK;
}
