// Grad-CAM on the GPU (src/cam/cam_gpu.c): channel weights, the weighted
// map on the layer's grid, ReLU + min-max per image, bilinear upsampling to
// the model input with uint8 quantisation, and each map's peak and box, in
// the arithmetic of src/cam/cam_hd.h that the CPU code runs.  Reductions
// run in a different order from the CPU's loops (double sums where the CPU
// sums in double), so values may differ in the last bits; min, max, the
// first maximum and the box are order-free.
#include "cam/cam_hd.h"
#include "cam/cam_internal.h"
#include "cu_common.cuh"

#define CAM_THREADS 256

// Sum over a block (CAM_THREADS threads) in shared memory; every thread
// gets the total.
__device__ double block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = CAM_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double t = sh[0];
    __syncthreads();
    return t;
}

// One block per (image, channel): sa = sum A, then the method's weight.
template <typename T>
__global__ void k_cam_weights(fx_cam_method m, int hw, const T *A, const float *G, double *wt)
{
    __shared__ double sh[CAM_THREADS];
    int64_t base = (int64_t)blockIdx.x * hw;
    double sa = 0.0, s = 0.0;
    for (int j = threadIdx.x; j < hw; j += CAM_THREADS)
        sa += fx_ld(A, base + j);
    sa = block_sum(sa, sh);
    for (int j = threadIdx.x; j < hw; j += CAM_THREADS)
        s += fx_hd_cam_wterm(m, G[base + j], fx_ld(A, base + j), sa);
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        wt[blockIdx.x] = fx_hd_cam_weight(m, s, sa, hw);
}

// One thread per (image, pixel): the sum over channels.
template <typename T>
__global__ void k_cam_combine(fx_cam_method m, int n, int c, int hw, const T *A, const float *G,
                              const double *wt, float *low)
{
    FX_CU_LOOP(e, (int64_t)n * hw)
    {
        int64_t i = e / hw, j = e % hw;
        int weighted = fx_hd_cam_channel_weighted(m);
        double s = 0.0;
        for (int ch = 0; ch < c; ch++) {
            int64_t at = (i * c + ch) * hw + j;
            s += fx_hd_cam_pixel(m, weighted ? wt[i * c + ch] : 0.0, fx_ld(A, at),
                                 weighted ? 0.0 : G[at]);
        }
        low[e] = (float)s;
    }
}

extern "C" fx_status fx_cu_cam_map(void *stream, fx_cu_dtype dt, fx_cam_method m, int n, int c,
                                   int hw, const void *A, const float *G, double *wt, float *low,
                                   fx_error *err)
{
    if (n < 1 || c < 1 || hw < 1)
        return FX_OK;
    if (fx_hd_cam_channel_weighted(m)) {
        FX_CU_DISPATCH(
            dt, (k_cam_weights<T><<<(unsigned)(n * c), CAM_THREADS, 0, FX_CU_STREAM(stream)>>>(
                    m, hw, (const T *)A, G, wt)));
        fx_status st = fx_cu_launched("cam_weights", err);
        if (st != FX_OK)
            return st;
    }
    int64_t total = (int64_t)n * hw;
    FX_CU_DISPATCH(
        dt, (k_cam_combine<T><<<fx_cu_blocks(total), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                m, n, c, hw, (const T *)A, G, wt, low)));
    return fx_cu_launched("cam_combine", err);
}

// dA[q, :] = v[q]: the GAP + Gemm shortcut's constant planes.
__global__ void k_cam_expand(int64_t nc, int hw, const float *v, float *dA)
{
    FX_CU_LOOP(e, nc * hw) dA[e] = v[e / hw];
}

extern "C" fx_status fx_cu_cam_expand(void *stream, int64_t nc, int hw, const float *v, float *dA,
                                      fx_error *err)
{
    if (nc < 1 || hw < 1)
        return FX_OK;
    k_cam_expand<<<fx_cu_blocks(nc * hw), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(nc, hw, v, dA);
    return fx_cu_launched("cam_expand", err);
}

__device__ float block_min_max(float v, int is_max, float *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = CAM_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float o = sh[threadIdx.x + s];
            sh[threadIdx.x] = is_max ? fmaxf(sh[threadIdx.x], o) : fminf(sh[threadIdx.x], o);
        }
        __syncthreads();
    }
    float t = sh[0];
    __syncthreads();
    return t;
}

// One block per image: ReLU, minus the minimum, over (max + 1e-7), as
// fx_cam_normalize.
__global__ void k_cam_normalize(int hw, float *low)
{
    __shared__ float sh[CAM_THREADS];
    float *p = low + (int64_t)blockIdx.x * hw, lo = INFINITY, hi = -INFINITY;
    for (int j = threadIdx.x; j < hw; j += CAM_THREADS) {
        p[j] = p[j] > 0.0f ? p[j] : 0.0f;
        lo = fminf(lo, p[j]);
    }
    lo = block_min_max(lo, 0, sh);
    for (int j = threadIdx.x; j < hw; j += CAM_THREADS) {
        p[j] -= lo;
        hi = fmaxf(hi, p[j]);
    }
    hi = block_min_max(hi, 1, sh);
    for (int j = threadIdx.x; j < hw; j += CAM_THREADS)
        p[j] /= 1e-7f + hi;
}

extern "C" fx_status fx_cu_cam_normalize(void *stream, int n, int hw, float *low, fx_error *err)
{
    if (n < 1 || hw < 1)
        return FX_OK;
    k_cam_normalize<<<(unsigned)n, CAM_THREADS, 0, FX_CU_STREAM(stream)>>>(hw, low);
    return fx_cu_launched("cam_normalize", err);
}

// One thread per output pixel: the bilinear value and its uint8 heat.
__global__ void k_cam_upsample(int n, int h, int w, int H, int W, const float *low, float *cam,
                               uint8_t *heat)
{
    FX_CU_LOOP(e, (int64_t)n * H * W)
    {
        int64_t i = e / ((int64_t)H * W), r = e % ((int64_t)H * W);
        int y0, y1, x0, x1;
        float ly, lx;
        fx_hd_cam_src((int)(r / W), h, H, &y0, &y1, &ly);
        fx_hd_cam_src((int)(r % W), w, W, &x0, &x1, &lx);
        float v = fx_hd_cam_lerp2(low + i * h * w, w, y0, y1, ly, x0, x1, lx);
        cam[e] = v;
        heat[e] = fx_hd_cam_quant(v);
    }
}

extern "C" fx_status fx_cu_cam_upsample(void *stream, int n, int h, int w, int H, int W,
                                        const float *low, float *cam, uint8_t *heat, fx_error *err)
{
    int64_t total = (int64_t)n * H * W;
    if (total < 1)
        return FX_OK;
    k_cam_upsample<<<fx_cu_blocks(total), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(n, h, w, H, W,
                                                                                    low, cam, heat);
    return fx_cu_launched("cam_upsample", err);
}

// One block per image: the first maximum (the smallest index among equal
// values, as the CPU's scan), then the box of every pixel >= frac * peak.
__global__ void k_cam_locate(int H, int W, double frac, const float *cam, fx_cam_px *out)
{
    __shared__ float sv[CAM_THREADS];
    __shared__ int64_t si[CAM_THREADS];
    __shared__ int sb[4][CAM_THREADS];
    const float *p = cam + (int64_t)blockIdx.x * H * W;
    int64_t hw = (int64_t)H * W, bi = -1;
    float bv = -INFINITY;
    for (int64_t j = threadIdx.x; j < hw; j += CAM_THREADS)
        if (bi < 0 || p[j] > bv)
            bv = p[j], bi = j;
    sv[threadIdx.x] = bv, si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = CAM_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float ov = sv[threadIdx.x + s];
            int64_t oi = si[threadIdx.x + s];
            int64_t mi = si[threadIdx.x];
            if (oi >= 0 && (mi < 0 || ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < mi)))
                sv[threadIdx.x] = ov, si[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    float peak = sv[0];
    int64_t at = si[0];
    float thr = (float)(frac * peak);
    int x0 = W, y0 = H, x1 = -1, y1 = -1;
    for (int64_t j = threadIdx.x; j < hw; j += CAM_THREADS)
        if (p[j] >= thr) {
            int x = (int)(j % W), y = (int)(j / W);
            x0 = min(x0, x), x1 = max(x1, x), y0 = min(y0, y), y1 = max(y1, y);
        }
    sb[0][threadIdx.x] = x0, sb[1][threadIdx.x] = y0, sb[2][threadIdx.x] = x1,
    sb[3][threadIdx.x] = y1;
    __syncthreads();
    for (int s = CAM_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            sb[0][threadIdx.x] = min(sb[0][threadIdx.x], sb[0][threadIdx.x + s]);
            sb[1][threadIdx.x] = min(sb[1][threadIdx.x], sb[1][threadIdx.x + s]);
            sb[2][threadIdx.x] = max(sb[2][threadIdx.x], sb[2][threadIdx.x + s]);
            sb[3][threadIdx.x] = max(sb[3][threadIdx.x], sb[3][threadIdx.x + s]);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = fx_cam_px{peak, at, sb[0][0], sb[1][0], sb[2][0], sb[3][0]};
}

extern "C" fx_status fx_cu_cam_locate(void *stream, int n, int H, int W, double frac,
                                      const float *cam, fx_cam_px *out, fx_error *err)
{
    if (n < 1 || H < 1 || W < 1)
        return FX_OK;
    k_cam_locate<<<(unsigned)n, CAM_THREADS, 0, FX_CU_STREAM(stream)>>>(H, W, frac, cam, out);
    return fx_cu_launched("cam_locate", err);
}

// ---- EigenCAM: the projection of fx_cam_compute's eigen_one, in double ----------
// Per image: X = A as (hw, c) minus its column means; the top eigenvector u
// of the smaller Gram matrix (X X^T when hw <= c, else X^T X) by power
// iteration from the column with the largest diagonal (the CPU's start and
// stopping rule); v = X^T u (or u itself); the map X v / |v|, signed so that
// sum(v) >= 0.

// One block per (image, channel): Xc = A minus the channel's mean, (n, c, hw).
template <typename T> __global__ void k_eig_center(int hw, const T *A, double *Xc)
{
    __shared__ double sh[CAM_THREADS];
    int64_t base = (int64_t)blockIdx.x * hw;
    double s = 0.0;
    for (int j = threadIdx.x; j < hw; j += CAM_THREADS)
        s += fx_ld(A, base + j);
    double mean = block_sum(s, sh) / hw;
    for (int j = threadIdx.x; j < hw; j += CAM_THREADS)
        Xc[base + j] = fx_ld(A, base + j) - mean;
}

// G (n, d, d): entry (a, b) summed over the other dimension.
__global__ void k_eig_gram(int n, int c, int hw, int d, const double *Xc, double *G)
{
    FX_CU_LOOP(e, (int64_t)n * d * d)
    {
        int64_t i = e / ((int64_t)d * d);
        int a = (int)((e / d) % d), b = (int)(e % d);
        const double *x = Xc + i * c * hw;
        double s = 0.0;
        if (d == hw)
            for (int k = 0; k < c; k++)
                s += x[(int64_t)k * hw + a] * x[(int64_t)k * hw + b];
        else
            for (int k = 0; k < hw; k++)
                s += x[(int64_t)a * hw + k] * x[(int64_t)b * hw + k];
        G[e] = s;
    }
}

// One block per image: power iteration on G into u (n, d); tmp: (n, d).
__global__ void k_eig_power(int d, const double *Gall, double *uall, double *tall)
{
    __shared__ double sh[CAM_THREADS];
    __shared__ int best;
    const double *G = Gall + (int64_t)blockIdx.x * d * d;
    double *v = uall + (int64_t)blockIdx.x * d, *tmp = tall + (int64_t)blockIdx.x * d;
    if (threadIdx.x == 0) {
        best = 0;
        for (int i = 1; i < d; i++)
            if (G[(int64_t)i * d + i] > G[(int64_t)best * d + best])
                best = i;
    }
    __syncthreads();
    double nrm = 0.0;
    for (int i = threadIdx.x; i < d; i += CAM_THREADS)
        nrm += G[(int64_t)i * d + best] * G[(int64_t)i * d + best];
    nrm = sqrt(block_sum(nrm, sh));
    for (int i = threadIdx.x; i < d; i += CAM_THREADS)
        v[i] = nrm > 0 ? G[(int64_t)i * d + best] / nrm : (i == 0);
    __syncthreads();
    for (int it = 0; it < 20000; it++) {
        double n2 = 0.0;
        for (int i = threadIdx.x; i < d; i += CAM_THREADS) {
            double s = 0.0;
            for (int j = 0; j < d; j++)
                s += G[(int64_t)i * d + j] * v[j];
            tmp[i] = s, n2 += s * s;
        }
        n2 = sqrt(block_sum(n2, sh)); // its barriers also publish tmp
        if (n2 == 0.0)
            return;
        double diff = 0.0;
        for (int i = threadIdx.x; i < d; i += CAM_THREADS) {
            double x = tmp[i] / n2;
            diff += (x - v[i]) * (x - v[i]);
            v[i] = x;
        }
        if (block_sum(diff, sh) < 1e-26)
            return;
    }
}

// v (n, c): X^T u over the pixels when d == hw, else u itself.
__global__ void k_eig_v(int n, int c, int hw, int d, const double *Xc, const double *u, double *v)
{
    FX_CU_LOOP(e, (int64_t)n * c)
    {
        int64_t i = e / c, k = e % c;
        double s = 0.0;
        if (d == hw)
            for (int j = 0; j < hw; j++)
                s += Xc[(i * c + k) * hw + j] * u[i * d + j];
        else
            s = u[i * d + k];
        v[e] = s;
    }
}

// One block per image: sum(v) and |v| into st (n, 2).
__global__ void k_eig_norm(int c, const double *v, double *st)
{
    __shared__ double sh[CAM_THREADS];
    const double *p = v + (int64_t)blockIdx.x * c;
    double s = 0.0, q = 0.0;
    for (int k = threadIdx.x; k < c; k += CAM_THREADS)
        s += p[k], q += p[k] * p[k];
    s = block_sum(s, sh);
    q = block_sum(q, sh);
    if (threadIdx.x == 0)
        st[2 * blockIdx.x] = s, st[2 * blockIdx.x + 1] = sqrt(q);
}

// The map low (n, hw): sign * X v / |v|.
__global__ void k_eig_map(int n, int c, int hw, const double *Xc, const double *v, const double *st,
                          float *low)
{
    FX_CU_LOOP(e, (int64_t)n * hw)
    {
        int64_t i = e / hw, j = e % hw;
        double s = 0.0;
        for (int k = 0; k < c; k++)
            s += Xc[(i * c + k) * hw + j] * v[i * c + k];
        double vn = st[2 * i + 1], sign = st[2 * i] < 0.0 ? -1.0 : 1.0;
        low[e] = vn > 0.0 ? (float)(sign * s / vn) : 0.0f;
    }
}

extern "C" size_t fx_cu_cam_eigen_bytes(int n, int c, int hw)
{
    size_t d = (size_t)(hw <= c ? hw : c);
    return sizeof(double) * ((size_t)n * c * hw + (size_t)n * d * d + 2 * (size_t)n * d +
                             (size_t)n * c + 2 * (size_t)n);
}

extern "C" fx_status fx_cu_cam_eigen(void *stream, fx_cu_dtype dt, int n, int c, int hw,
                                     const void *A, void *scratch, float *low, fx_error *err)
{
    if (n < 1 || c < 1 || hw < 1)
        return FX_OK;
    int d = hw <= c ? hw : c;
    double *Xc = (double *)scratch, *G = Xc + (size_t)n * c * hw, *u = G + (size_t)n * d * d;
    double *tmp = u + (size_t)n * d, *v = tmp + (size_t)n * d, *st = v + (size_t)n * c;
    cudaStream_t s = FX_CU_STREAM(stream);
    FX_CU_DISPATCH(
        dt, (k_eig_center<T><<<(unsigned)(n * c), CAM_THREADS, 0, s>>>(hw, (const T *)A, Xc)));
    k_eig_gram<<<fx_cu_blocks((int64_t)n * d * d), FX_CU_THREADS, 0, s>>>(n, c, hw, d, Xc, G);
    k_eig_power<<<(unsigned)n, CAM_THREADS, 0, s>>>(d, G, u, tmp);
    k_eig_v<<<fx_cu_blocks((int64_t)n * c), FX_CU_THREADS, 0, s>>>(n, c, hw, d, Xc, u, v);
    k_eig_norm<<<(unsigned)n, CAM_THREADS, 0, s>>>(c, v, st);
    k_eig_map<<<fx_cu_blocks((int64_t)n * hw), FX_CU_THREADS, 0, s>>>(n, c, hw, Xc, v, st, low);
    return fx_cu_launched("cam_eigen", err);
}
