// Reductions: Softmax along one axis of (outer, len, inner) (max, then exp
// sums in double, as the CPU reference) and ReduceMean over any axes
// (fx_cu_red, double sums).  One thread per output position: the heads
// these serve are small.
#include "cu_common.cuh"

template <typename T>
__global__ void k_softmax(int64_t outer, int64_t len, int64_t inner, const T *x, T *y)
{
    FX_CU_LOOP(e, outer * inner)
    {
        int64_t base = (e / inner) * len * inner + e % inner;
        float m = -INFINITY;
        for (int64_t j = 0; j < len; j++) {
            float v = fx_ld(x, base + j * inner);
            m = v > m ? v : m;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < len; j++)
            sum += exp((double)fx_ld(x, base + j * inner) - m);
        for (int64_t j = 0; j < len; j++)
            fx_st(y, base + j * inner, (float)(exp((double)fx_ld(x, base + j * inner) - m) / sum));
    }
}

extern "C" fx_status fx_cu_softmax(void *stream, fx_cu_dtype dt, int64_t outer, int64_t len,
                                   int64_t inner, const void *x, void *y, fx_error *err)
{
    if (outer * inner <= 0 || len <= 0)
        return FX_OK;
    FX_CU_DISPATCH(
        dt, (k_softmax<T><<<fx_cu_blocks(outer * inner), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                outer, len, inner, (const T *)x, (T *)y)));
    return fx_cu_launched("softmax", err);
}

template <typename T> __global__ void k_reduce_mean(fx_cu_red d, const T *x, T *y)
{
    FX_CU_LOOP(e, d.n_out)
    {
        int64_t base = fx_hd_offset(e, d.nout, d.odims, d.ostr);
        double sum = 0.0;
        for (int64_t r = 0; r < d.n_red; r++)
            sum += fx_ld(x, base + fx_hd_offset(r, d.nred, d.rdims, d.rstr));
        fx_st(y, e, (float)(sum / (double)d.n_red)); /* n_red 0: NaN, as the reference */
    }
}

extern "C" fx_status fx_cu_reduce_mean(void *stream, fx_cu_dtype dt, const fx_cu_red *d,
                                       const void *x, void *y, fx_error *err)
{
    if (d->n_out <= 0)
        return FX_OK;
    FX_CU_DISPATCH(
        dt, (k_reduce_mean<T><<<fx_cu_blocks(d->n_out), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                *d, (const T *)x, (T *)y)));
    return fx_cu_launched("reduce mean", err);
}
