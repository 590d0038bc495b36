// Data-movement kernels: the strided copy every shape op lowers to
// (Transpose, Slice, Concat, Split, Gather; offsets from fx_hd_offset as
// the host executor in src/backend/lower.c computes them) and Pad (the
// source index per axis from fx_hd_pad_src, as the CPU reference).
#include "cu_common.cuh"

template <typename T> __global__ void k_map(fx_cu_map m, const T *x, T *y)
{
    FX_CU_LOOP(e, m.n)
    {
        y[m.ybase + fx_hd_offset(e, m.rank, m.dims, m.ys)] =
            x[m.xbase + fx_hd_offset(e, m.rank, m.dims, m.xs)];
    }
}

extern "C" fx_status fx_cu_map_copy(void *stream, fx_cu_dtype dt, const fx_cu_map *m, const void *x,
                                    void *y, fx_error *err)
{
    if (m->n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt, (k_map<T><<<fx_cu_blocks(m->n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                           *m, (const T *)x, (T *)y)));
    return fx_cu_launched("strided copy", err);
}

template <typename T>
__global__ void k_pad(fx_pad_params p, fx_shape o, int64_t n, const T *x, T *y)
{
    int64_t xs[FX_OPS_MAX_RANK], acc = 1;
    for (int d = p.x.rank - 1; d >= 0; d--) {
        xs[d] = acc;
        acc *= p.x.d[d];
    }
    FX_CU_LOOP(e, n)
    {
        int64_t off = 0, rest = e;
        for (int d = o.rank - 1; d >= 0 && off >= 0; d--) {
            int64_t s = fx_hd_pad_src((int)p.mode, rest % o.d[d], p.pads[d], p.x.d[d]);
            rest /= o.d[d];
            off = s < 0 ? -1 : off + s * xs[d];
        }
        fx_st(y, e, off < 0 ? p.value : fx_ld(x, off));
    }
}

extern "C" fx_status fx_cu_pad(void *stream, fx_cu_dtype dt, const fx_pad_params *p, const void *x,
                               void *y, fx_error *err)
{
    fx_shape o;
    fx_status st = fx_pad_out_shape(p, &o, err);
    if (st != FX_OK)
        return st;
    int64_t n = fx_shape_numel(&o);
    if (n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt, (k_pad<T><<<fx_cu_blocks(n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                           *p, o, n, (const T *)x, (T *)y)));
    return fx_cu_launched("pad", err);
}
