// Status checks for the CUDA runtime, cuBLAS and cuDNN. Included by kernels/cuda/*.cu and the
// cuBLAS/cuDNN wrappers; never by a public header. Every failure throws the matching
// drcnn::Error subclass with the call, file:line, function and the library's own message.
#pragma once

namespace drcnn::detail {
enum class StatusLibrary { Cuda, Cublas, Cudnn };
/// Throws CudaError / CublasError / CudnnError (defined in kernels/cuda/cuda_check.cpp, which
/// also appends the hint about asynchronous errors and DRCNN_SYNC_DEBUG for CUDA errors).
[[noreturn]] void fail_status(StatusLibrary lib, const char* expr, const char* file, int line, const char* func,
                              const char* library_message);
}  // namespace drcnn::detail

#define DRCNN_CHECK_STATUS(expr, ok, to_string, lib)                                              \
  do {                                                                                            \
    const auto drcnn_status_ = (expr);                                                            \
    if (drcnn_status_ != (ok))                                                                    \
      ::drcnn::detail::fail_status(lib, #expr, __FILE__, __LINE__, __func__, to_string(drcnn_status_)); \
  } while (0)

#define DRCNN_CUDA_CHECK(expr) \
  DRCNN_CHECK_STATUS(expr, cudaSuccess, cudaGetErrorString, ::drcnn::detail::StatusLibrary::Cuda)
#define DRCNN_CUBLAS_CHECK(expr) \
  DRCNN_CHECK_STATUS(expr, CUBLAS_STATUS_SUCCESS, cublasGetStatusString, ::drcnn::detail::StatusLibrary::Cublas)
#define DRCNN_CUDNN_CHECK(expr) \
  DRCNN_CHECK_STATUS(expr, CUDNN_STATUS_SUCCESS, cudnnGetErrorString, ::drcnn::detail::StatusLibrary::Cudnn)
