// fail_status: the one place CUDA-family errors are formatted and thrown.
#include "cuda/cuda_check.h"

#include <cuda_runtime_api.h>

#include <string>

#include "drcnn/config.h"
#include "drcnn/core/error.h"

namespace drcnn::detail {

void fail_status(StatusLibrary lib, const char* expr, const char* file, int line, const char* func,
                 const char* library_message) {
  int device = -1;
  cudaGetDevice(&device);  // best effort, for the message only
  // A failing runtime call also records its error as the thread's "last error". A non-sticky
  // one (invalid argument, CUB's invalid configuration...) would otherwise be reported again by
  // the next launch's cudaGetLastError(), blaming an unrelated kernel after the caller caught
  // this exception. Sticky errors (a faulted context) persist regardless.
  if (lib == StatusLibrary::Cuda) cudaGetLastError();
  std::string msg = fmt::format("drcnn: {} failed: {} (device {}) [at {}:{} in {}]", expr,
                                library_message ? library_message : "unknown error", device, file, line, func);
  switch (lib) {
    case StatusLibrary::Cuda:
      msg += ". Errors from earlier asynchronous launches surface here";
      if (!DRCNN_SYNC_DEBUG) msg += "; rebuild with -DDRCNN_SYNC_DEBUG=ON to find the launch";
      throw CudaError(msg);
    case StatusLibrary::Cublas: throw CublasError(msg);
    case StatusLibrary::Cudnn: throw CudnnError(msg);
  }
  throw CudaError(msg);
}
}  // namespace drcnn::detail
