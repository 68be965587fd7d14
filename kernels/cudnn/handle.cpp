// cuDNN handles (one per thread and device, for the convolutions of kernels/cudnn/conv.cpp) and the run-time library versions reported by drcnn_info. Compiled as C++.
#include "cudnn/handle.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <map>

#include "cuda/cuda_check.h"
#include "drcnn/core/allocator.h"
#include "drcnn/core/device.h"

namespace drcnn::cudnn_detail {
namespace {
struct HandleCache {
  std::map<int, cudnnHandle_t> handles;
  ~HandleCache() {
    for (auto& [dev, h] : handles) cudnnDestroy(h);
  }
};
}  // namespace

cudnnHandle_t handle(Stream stream) {
  thread_local HandleCache cache;
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  auto it = cache.handles.find(device);
  cudnnHandle_t h = nullptr;
  if (it == cache.handles.end()) {
    // cudnnCreate allocates device memory: retried once after flushing the caching allocator.
    DRCNN_CUDNN_CHECK(call_with_flush_retry(
        allocator_for(Device::cuda(device)), [&] { return cudnnCreate(&h); }, [](cudnnStatus_t st) {
          return st == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
                 st == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
        }));
    cache.handles.emplace(device, h);
  } else {
    h = it->second;
  }
  DRCNN_CUDNN_CHECK(cudnnSetStream(h, static_cast<cudaStream_t>(stream.handle)));
  return h;
}
}  // namespace drcnn::cudnn_detail

namespace drcnn::cuda {
RuntimeVersions runtime_versions() {
  RuntimeVersions v;
  if (cudaRuntimeGetVersion(&v.runtime) != cudaSuccess) v.runtime = 0;
  if (cudaDriverGetVersion(&v.driver) != cudaSuccess) v.driver = 0;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    v.cublas = major * 10000 + minor * 100 + patch;
  v.cudnn = long(cudnnGetVersion());
  cudaGetLastError();  // the queries above must not leave an error behind
  return v;
}
}  // namespace drcnn::cuda
