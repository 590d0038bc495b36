// Element-wise kernels: unary activations, broadcasting binaries (PRelu
// too), the conv epilogue, inference BatchNorm, storage-type conversion and
// Gemm's C term.  The arithmetic of each element is src/ops/hd.h's, the
// same the CPU references run.
#include "cu_common.cuh"

template <typename T>
__global__ void k_unary(int64_t n, fx_unary_kind k, float alpha, float beta, const T *x, T *y)
{
    FX_CU_LOOP(i, n) fx_st(y, i, fx_hd_unary(k, fx_ld(x, i), alpha, beta));
}

extern "C" fx_status fx_cu_unary(void *stream, fx_cu_dtype dt, int64_t n, fx_unary_kind k,
                                 float alpha, float beta, const void *x, void *y, fx_error *err)
{
    if (n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt, (k_unary<T><<<fx_cu_blocks(n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                           n, k, alpha, beta, (const T *)x, (T *)y)));
    return fx_cu_launched("unary", err);
}

template <typename T> __global__ void k_binary(fx_cu_bin b, const T *a, const T *bb, T *y)
{
    FX_CU_LOOP(e, b.n)
    {
        float va = fx_ld(a, fx_hd_offset(e, b.rank, b.dims, b.as));
        float vb = fx_ld(bb, fx_hd_offset(e, b.rank, b.dims, b.bs));
        fx_st(y, e, fx_hd_binary(b.op, va, vb));
    }
}

extern "C" fx_status fx_cu_binary(void *stream, fx_cu_dtype dt, const fx_cu_bin *b, const void *a,
                                  const void *bb, void *y, fx_error *err)
{
    if (b->n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt, (k_binary<T><<<fx_cu_blocks(b->n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                           *b, (const T *)a, (const T *)bb, (T *)y)));
    return fx_cu_launched("binary", err);
}

template <typename T>
__global__ void k_epilogue(int64_t total, int64_t c, int64_t spatial, const T *bias, const T *res,
                           fx_unary_kind act, float lo, float hi, T *y)
{
    FX_CU_LOOP(i, total)
    {
        float b = bias ? fx_ld(bias, (i / spatial) % c) : 0.0f;
        float r = res ? fx_ld(res, i) : 0.0f;
        fx_st(y, i, fx_hd_epilogue(fx_ld(y, i), b, r, act, lo, hi));
    }
}

extern "C" fx_status fx_cu_epilogue(void *stream, fx_cu_dtype dt, int64_t n, int64_t c,
                                    int64_t spatial, const void *bias, const void *res,
                                    fx_unary_kind act, float lo, float hi, void *y, fx_error *err)
{
    int64_t total = n * c * spatial;
    if (total <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt,
                   (k_epilogue<T><<<fx_cu_blocks(total), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                       total, c, spatial, (const T *)bias, (const T *)res, act, lo, hi, (T *)y)));
    return fx_cu_launched("conv epilogue", err);
}

template <typename T>
__global__ void k_batchnorm(int64_t total, int64_t c, int64_t spatial, const float *ab,
                            fx_unary_kind act, float lo, float hi, const T *x, T *y)
{
    FX_CU_LOOP(i, total)
    {
        int64_t ch = (i / spatial) % c;
        fx_st(y, i, fx_hd_unary(act, fmaf(ab[ch], fx_ld(x, i), ab[c + ch]), lo, hi));
    }
}

extern "C" fx_status fx_cu_batchnorm(void *stream, fx_cu_dtype dt, int64_t n, int64_t c,
                                     int64_t spatial, const float *ab, fx_unary_kind act, float lo,
                                     float hi, const void *x, void *y, fx_error *err)
{
    int64_t total = n * c * spatial;
    if (total <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt,
                   (k_batchnorm<T><<<fx_cu_blocks(total), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                       total, c, spatial, ab, act, lo, hi, (const T *)x, (T *)y)));
    return fx_cu_launched("batchnorm", err);
}

template <typename S, typename D> __global__ void k_convert(int64_t n, const S *x, D *y)
{
    FX_CU_LOOP(i, n) fx_st(y, i, fx_ld(x, i));
}

extern "C" fx_status fx_cu_convert(void *stream, fx_cu_dtype from, fx_cu_dtype to, int64_t n,
                                   const void *x, void *y, fx_error *err)
{
    if (n <= 0)
        return FX_OK;
    unsigned g = fx_cu_blocks(n);
    cudaStream_t s = FX_CU_STREAM(stream);
    switch (from) {
    case FX_CU_F32:
        FX_CU_DISPATCH(
            to, (k_convert<float, T><<<g, FX_CU_THREADS, 0, s>>>(n, (const float *)x, (T *)y)));
        break;
    case FX_CU_F16:
        FX_CU_DISPATCH(
            to, (k_convert<__half, T><<<g, FX_CU_THREADS, 0, s>>>(n, (const __half *)x, (T *)y)));
        break;
    case FX_CU_BF16:
        FX_CU_DISPATCH(to, (k_convert<__nv_bfloat16, T>
                            <<<g, FX_CU_THREADS, 0, s>>>(n, (const __nv_bfloat16 *)x, (T *)y)));
        break;
    default: return fx_error_set(err, FX_ERR_INTERNAL, "cuda: unknown storage type %d", (int)from);
    }
    return fx_cu_launched("convert", err);
}

template <typename T>
__global__ void k_gemm_c(int64_t m, int64_t n, float beta, const T *c, int64_t c_rows,
                         int64_t c_cols, T *y)
{
    FX_CU_LOOP(e, m * n)
    {
        int64_t i = e / n, j = e % n;
        float v =
            c ? beta * fx_ld(c, (c_rows == 1 ? 0 : i) * c_cols + (c_cols == 1 ? 0 : j)) : 0.0f;
        fx_st(y, e, v);
    }
}

extern "C" fx_status fx_cu_gemm_c(void *stream, fx_cu_dtype dt, int64_t m, int64_t n, float beta,
                                  const void *c, int64_t c_rows, int64_t c_cols, void *y,
                                  fx_error *err)
{
    if (m * n <= 0)
        return FX_OK;
    FX_CU_DISPATCH(dt,
                   (k_gemm_c<T><<<fx_cu_blocks(m * n), FX_CU_THREADS, 0, FX_CU_STREAM(stream)>>>(
                       m, n, beta, (const T *)c, c_rows, c_cols, (T *)y)));
    return fx_cu_launched("gemm C", err);
}
