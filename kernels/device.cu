// CUDA device discovery behind a plain C function (fxscreen/cuda_kernels.h).
#include <cuda_runtime.h>

#include "fxscreen/cuda_kernels.h"

extern "C" fx_status fx_cuda_device_count(int *count, fx_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        *count = 0;
        (void)cudaGetLastError(); // clear the sticky-free error so later calls start clean
        return fx_error_set(err, FX_ERR_DEVICE, "cudaGetDeviceCount: %s (%s)",
                            cudaGetErrorString(e), cudaGetErrorName(e));
    }
    *count = n;
    return FX_OK;
}

extern "C" fx_status fx_cuda_use_device(int index, fx_error *err)
{
    cudaError_t e = cudaSetDevice(index);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return fx_error_set(err, FX_ERR_DEVICE, "cudaSetDevice(%d): %s", index,
                            cudaGetErrorString(e));
    }
    return FX_OK;
}

extern "C" fx_status fx_cuda_pin(void *ptr, size_t bytes, fx_error *err)
{
    cudaError_t e = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return fx_error_set(err, FX_ERR_DEVICE, "cudaHostRegister of %zu bytes: %s", bytes,
                            cudaGetErrorString(e));
    }
    return FX_OK;
}

extern "C" void fx_cuda_unpin(void *ptr)
{
    if (cudaHostUnregister(ptr) != cudaSuccess)
        (void)cudaGetLastError(); /* not pinned: nothing to undo */
}
