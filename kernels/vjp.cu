// The backward kernels of the CUDA backend (src/backend/cuda_vjp.c): each
// ACCUMULATES into float32 input gradients from float32 output gradients,
// reading forward values in the plan's storage type.  The per-element
// arithmetic is src/ops/hd.h's, the same the CPU references (vjp.c) run.
// Where several outputs feed one input element (broadcasts, pools, Gather
// with repeated indices) the sums go through atomicAdd, so their order,
// and the last bits, may differ from the CPU's.
#include "cu_common.cuh"

template <typename T>
__global__ void k_unary_vjp(int64_t n, fx_unary_kind k, float alpha, float beta, const T *x,
                            const T *y, const float *dy, float *dx)
{
    FX_CU_LOOP(i, n)
    {
        float xv = x ? fx_ld(x, i) : 0.0f, yv = y ? fx_ld(y, i) : 0.0f;
        dx[i] += fx_hd_unary_vjp(k, alpha, beta, xv, yv, dy[i]);
    }
}

extern "C" fx_status fx_cu_unary_vjp(void *stream, fx_cu_dtype dt, int64_t n, fx_unary_kind k,
                                     float alpha, float beta, const void *x, const void *y,
                                     const float *dy, float *dx, fx_error *err)
{
    if (n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt, (k_unary_vjp<T><<<fx_cu_blocks(n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                           n, k, alpha, beta, (const T *)x, (const T *)y, dy, dx)));
    return fx_cu_launched("unary_vjp", err);
}

__global__ void k_acc(int64_t n, float scale, const float *dy, float *dx)
{
    FX_CU_LOOP(i, n) dx[i] += scale * dy[i];
}

extern "C" fx_status fx_cu_acc(void *stream, int64_t n, float scale, const float *dy, float *dx,
                               fx_error *err)
{
    if (n <= 0)
        return FX_OK;
    k_acc<<<fx_cu_blocks(n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(n, scale, dy, dx);
    return fx_cu_launched("acc", err);
}

template <typename T>
__global__ void k_binary_vjp(fx_cu_bin b, int wrt_b, const T *a, const T *bb, const float *dy,
                             float *dx)
{
    FX_CU_LOOP(e, b.n)
    {
        int64_t oa = fx_hd_offset(e, b.rank, b.dims, b.as);
        int64_t ob = fx_hd_offset(e, b.rank, b.dims, b.bs);
        float g = fx_hd_binary_vjp(b.op, wrt_b, fx_ld(a, oa), fx_ld(bb, ob), dy[e]);
        atomicAdd(&dx[wrt_b ? ob : oa], g);
    }
}

extern "C" fx_status fx_cu_binary_vjp(void *stream, fx_cu_dtype dt, const fx_cu_bin *b, int wrt_b,
                                      const void *a, const void *bb, const float *dy, float *dx,
                                      fx_error *err)
{
    if (b->n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt,
                   (k_binary_vjp<T><<<fx_cu_blocks(b->n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                       *b, wrt_b, (const T *)a, (const T *)bb, dy, dx)));
    return fx_cu_launched("binary_vjp", err);
}

// The reverse of a strided copy (fx_cu_map): dx[x side] += dy[y side].
__global__ void k_map_vjp(fx_cu_map m, const float *dy, float *dx)
{
    FX_CU_LOOP(e, m.n)
    {
        atomicAdd(&dx[m.xbase + fx_hd_offset(e, m.rank, m.dims, m.xs)],
                  dy[m.ybase + fx_hd_offset(e, m.rank, m.dims, m.ys)]);
    }
}

extern "C" fx_status fx_cu_map_vjp(void *stream, const fx_cu_map *m, const float *dy, float *dx,
                                   fx_error *err)
{
    if (m->n <= 0)
        return FX_OK;
    k_map_vjp<<<fx_cu_blocks(m->n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(*m, dy, dx);
    return fx_cu_launched("map_vjp", err);
}

// BatchNormalization (inference): dx += ab[c] dy (ab: fx_hd_bn_coeffs' a).
__global__ void k_bn_vjp(int64_t total, int64_t c, int64_t spatial, const float *ab,
                         const float *dy, float *dx)
{
    FX_CU_LOOP(i, total) dx[i] += ab[(i / spatial) % c] * dy[i];
}

extern "C" fx_status fx_cu_batchnorm_vjp(void *stream, int64_t n, int64_t c, int64_t spatial,
                                         const float *ab, const float *dy, float *dx, fx_error *err)
{
    int64_t total = n * c * spatial;
    if (total <= 0)
        return FX_OK;
    k_bn_vjp<<<fx_cu_blocks(total), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(total, c, spatial, ab,
                                                                              dy, dx);
    return fx_cu_launched("batchnorm_vjp", err);
}

// Global pools: the mean spreads dy / spatial over the plane; the max sends
// dy to the plane's first maximum (one thread per plane, as the reference).
template <typename T>
__global__ void k_gpool_vjp(int64_t rows, int64_t spatial, int is_max, const T *x, const float *dy,
                            float *dx)
{
    if (!is_max) {
        FX_CU_LOOP(i, rows * spatial) dx[i] += dy[i / spatial] / (float)spatial;
        return;
    }
    FX_CU_LOOP(r, rows)
    {
        int64_t at = 0;
        float best = fx_ld(x, r * spatial);
        for (int64_t i = 1; i < spatial; i++) {
            float v = fx_ld(x, r * spatial + i);
            if (v > best)
                best = v, at = i;
        }
        dx[r * spatial + at] += dy[r];
    }
}

extern "C" fx_status fx_cu_global_pool_vjp(void *stream, fx_cu_dtype dt, int64_t rows,
                                           int64_t spatial, int is_max, const void *x,
                                           const float *dy, float *dx, fx_error *err)
{
    int64_t n = is_max ? rows : rows * spatial;
    if (n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt, (k_gpool_vjp<T><<<fx_cu_blocks(n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                           rows, spatial, is_max, (const T *)x, dy, dx)));
    return fx_cu_launched("global_pool_vjp", err);
}

// MaxPool: dy to the window's first maximum in scan order; AveragePool: dy /
// count over the window (fx_hd_avg_axis, as the forward).  One thread per
// output element.
template <typename T>
__global__ void k_pool2d_vjp(fx_pool2d_params p, int oh, int ow, int is_max, const T *x,
                             const float *dy, float *dx)
{
    int64_t total = (int64_t)p.n * p.c * oh * ow;
    FX_CU_LOOP(e, total)
    {
        int ox = (int)(e % ow), oy = (int)((e / ow) % oh);
        int64_t plane = (e / ((int64_t)oh * ow)) * p.h * p.w;
        float g = dy[e];
        if (is_max) {
            float v = -INFINITY;
            int64_t at = -1;
            for (int ky = 0; ky < p.kh; ky++) {
                int iy = oy * p.stride_h - p.pad_t + ky * p.dil_h;
                if (iy < 0 || iy >= p.h)
                    continue;
                for (int kx = 0; kx < p.kw; kx++) {
                    int ix = ox * p.stride_w - p.pad_l + kx * p.dil_w;
                    if (ix < 0 || ix >= p.w)
                        continue;
                    float t = fx_ld(x, plane + (int64_t)iy * p.w + ix);
                    if (fx_hd_max_takes(at >= 0, v, t))
                        v = t, at = (int64_t)iy * p.w + ix;
                }
            }
            if (at >= 0)
                atomicAdd(&dx[plane + at], g);
        } else {
            int y0, y1, x0, x1;
            int ph = fx_hd_avg_axis(oy * p.stride_h - p.pad_t, p.kh, p.h, p.pad_b, &y0, &y1);
            int pw = fx_hd_avg_axis(ox * p.stride_w - p.pad_l, p.kw, p.w, p.pad_r, &x0, &x1);
            int count = p.count_include_pad ? ph * pw : (y1 - y0) * (x1 - x0);
            if (count <= 0)
                continue;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++)
                    atomicAdd(&dx[plane + (int64_t)iy * p.w + ix], g / (float)count);
        }
    }
}

extern "C" fx_status fx_cu_pool2d_vjp(void *stream, fx_cu_dtype dt, const fx_pool2d_params *p,
                                      int is_max, const void *x, const float *dy, float *dx,
                                      fx_error *err)
{
    int oh, ow;
    fx_status st = fx_pool2d_out_hw(p, &oh, &ow, err);
    if (st != FX_OK)
        return st;
    int64_t total = (int64_t)p->n * p->c * oh * ow;
    if (total <= 0)
        return FX_OK;
    FX_CU_DISPATCH(
        dt, (k_pool2d_vjp<T><<<fx_cu_blocks(total), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                *p, oh, ow, is_max, (const T *)x, dy, dx)));
    return fx_cu_launched(is_max ? "maxpool_vjp" : "avgpool_vjp", err);
}
