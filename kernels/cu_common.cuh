// Shared by the kernels/*.cu op families: storage-type loads and stores
// (arithmetic is always float), the dtype dispatch, grid sizing and the
// launch check.  Internal to kernels/.
#ifndef FX_CU_COMMON_CUH
#define FX_CU_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "backend/cuda_ops.h"

template <typename T> __device__ __forceinline__ float fx_ld(const T *p, int64_t i);
template <> __device__ __forceinline__ float fx_ld<float>(const float *p, int64_t i)
{
    return p[i];
}
template <> __device__ __forceinline__ float fx_ld<__half>(const __half *p, int64_t i)
{
    return __half2float(p[i]);
}
template <> __device__ __forceinline__ float fx_ld<__nv_bfloat16>(const __nv_bfloat16 *p, int64_t i)
{
    return __bfloat162float(p[i]);
}

template <typename T> __device__ __forceinline__ void fx_st(T *p, int64_t i, float v);
template <> __device__ __forceinline__ void fx_st<float>(float *p, int64_t i, float v)
{
    p[i] = v;
}
template <> __device__ __forceinline__ void fx_st<__half>(__half *p, int64_t i, float v)
{
    p[i] = __float2half_rn(v);
}
template <>
__device__ __forceinline__ void fx_st<__nv_bfloat16>(__nv_bfloat16 *p, int64_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}

// Runs BODY with T bound to the storage type of dt (FX_ERR_INTERNAL through
// err for an unknown one).
#define FX_CU_DISPATCH(dt, BODY)                                                                   \
    do {                                                                                           \
        switch (dt) {                                                                              \
        case FX_CU_F32: {                                                                          \
            typedef float T;                                                                       \
            BODY;                                                                                  \
        } break;                                                                                   \
        case FX_CU_F16: {                                                                          \
            typedef __half T;                                                                      \
            BODY;                                                                                  \
        } break;                                                                                   \
        case FX_CU_BF16: {                                                                         \
            typedef __nv_bfloat16 T;                                                               \
            BODY;                                                                                  \
        } break;                                                                                   \
        default:                                                                                   \
            return fx_error_set(err, FX_ERR_INTERNAL, "cuda: unknown storage type %d", (int)(dt)); \
        }                                                                                          \
    } while (0)

#define FX_CU_THREADS 256

// Blocks for n elements with grid-stride loops (capped: the loops cover the rest).
static inline unsigned fx_cu_blocks(int64_t n)
{
    int64_t b = (n + FX_CU_THREADS - 1) / FX_CU_THREADS;
    return (unsigned)(b < 1 ? 1 : b > 65535 * 8 ? 65535 * 8 : b);
}

#define FX_CU_LOOP(i, n)                                                                           \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

// After a launch: FX_ERR_DEVICE naming the kernel when it did not start.
static inline fx_status fx_cu_launched(const char *kernel, fx_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        return FX_OK;
    return fx_error_set(err, FX_ERR_DEVICE, "%s: launch failed: %s (%s)", kernel,
                        cudaGetErrorString(e), cudaGetErrorName(e));
}

#define FX_CU_STREAM(s) ((cudaStream_t)(s))

#endif
