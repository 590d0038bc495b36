// Pooling kernels: MaxPool / AveragePool 2-D (one thread per output
// element; AveragePool's window and divisor from fx_hd_avg_axis, as the CPU
// reference) and the global pools (one block per (n, c) plane).
#include "cu_common.cuh"

template <typename T>
__global__ void k_pool2d(fx_pool2d_params p, int oh, int ow, int is_max, const T *x, T *y)
{
    int64_t total = (int64_t)p.n * p.c * oh * ow;
    FX_CU_LOOP(e, total)
    {
        int ox = (int)(e % ow), oy = (int)((e / ow) % oh);
        const T *xp = x + (e / ((int64_t)oh * ow)) * p.h * p.w;
        float v;
        if (is_max) {
            v = -INFINITY;
            for (int ky = 0; ky < p.kh; ky++) {
                int iy = oy * p.stride_h - p.pad_t + ky * p.dil_h;
                if (iy < 0 || iy >= p.h)
                    continue;
                for (int kx = 0; kx < p.kw; kx++) {
                    int ix = ox * p.stride_w - p.pad_l + kx * p.dil_w;
                    if (ix < 0 || ix >= p.w)
                        continue;
                    float t = fx_ld(xp, (int64_t)iy * p.w + ix);
                    if (t > v || isnan(t)) // NaN propagates, as in PyTorch and the reference
                        v = t;
                }
            }
        } else {
            int y0, y1, x0, x1;
            int ph = fx_hd_avg_axis(oy * p.stride_h - p.pad_t, p.kh, p.h, p.pad_b, &y0, &y1);
            int pw = fx_hd_avg_axis(ox * p.stride_w - p.pad_l, p.kw, p.w, p.pad_r, &x0, &x1);
            double sum = 0.0;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++)
                    sum += fx_ld(xp, (int64_t)iy * p.w + ix);
            int count = p.count_include_pad ? ph * pw : (y1 - y0) * (x1 - x0);
            v = count > 0 ? (float)(sum / count) : 0.0f;
        }
        fx_st(y, e, v);
    }
}

extern "C" fx_status fx_cu_pool2d(void *stream, fx_cu_dtype dt, const fx_pool2d_params *p,
                                  int is_max, const void *x, void *y, fx_error *err)
{
    int oh, ow;
    fx_status st = fx_pool2d_out_hw(p, &oh, &ow, err);
    if (st != FX_OK)
        return st;
    int64_t total = (int64_t)p->n * p->c * oh * ow;
    FX_CU_DISPATCH(dt,
                   (k_pool2d<T><<<fx_cu_blocks(total), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                       *p, oh, ow, is_max, (const T *)x, (T *)y)));
    return fx_cu_launched(is_max ? "maxpool" : "avgpool", err);
}

// One block per plane: each thread folds a strided part, then a tree in
// shared memory (double sums for the mean, as the reference accumulates).
template <typename T>
__global__ void k_global_pool(int64_t rows, int64_t spatial, int is_max, const T *x, T *y)
{
    __shared__ double part[FX_CU_THREADS];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xp = x + r * spatial;
        double acc = is_max ? -INFINITY : 0.0;
        for (int64_t i = threadIdx.x; i < spatial; i += blockDim.x) {
            double v = fx_ld(xp, i);
            acc = is_max ? (v > acc || isnan(v) ? v : acc) : acc + v;
        }
        part[threadIdx.x] = acc;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if ((int)threadIdx.x < s) {
                double a = part[threadIdx.x], b = part[threadIdx.x + s];
                part[threadIdx.x] = is_max ? (b > a || isnan(b) ? b : a) : a + b;
            }
            __syncthreads();
        }
        if (threadIdx.x == 0)
            fx_st(y, r, (float)(is_max ? part[0] : part[0] / (double)spatial));
        __syncthreads(); // part[] is reused by the next row
    }
}

extern "C" fx_status fx_cu_global_pool(void *stream, fx_cu_dtype dt, int64_t rows, int64_t spatial,
                                       int is_max, const void *x, void *y, fx_error *err)
{
    if (rows <= 0 || spatial <= 0)
        return FX_OK;
    unsigned g = (unsigned)(rows < 65535 * 8 ? rows : 65535 * 8);
    FX_CU_DISPATCH(dt, (k_global_pool<T><<<g, FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                           rows, spatial, is_max, (const T *)x, (T *)y)));
    return fx_cu_launched("global pool", err);
}
