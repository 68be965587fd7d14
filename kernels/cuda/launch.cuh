// parallel_for_cuda: the CUDA launcher of every single-source body (grid-stride loop, one
// body invocation per index). Included only by kernels/cuda/*.cu.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/cuda_check.h"
#include "drcnn/config.h"
#include "drcnn/core/device.h"

namespace drcnn::cuda_detail {

template <typename F>
__global__ void parallel_for_kernel(int64_t n, F f) {
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

inline cudaStream_t to_cuda(Stream s) { return static_cast<cudaStream_t>(s.handle); }

/// Runs f(i) for i in [0, n) on `stream`. 256 threads a block; at most 65536 blocks (the
/// grid-stride loop covers the rest). Launch errors are checked at once.
template <typename F>
void parallel_for_cuda(cudaStream_t stream, int64_t n, const F& f) {
  if (n <= 0) return;  // a zero-size grid is a launch error
  constexpr int kThreads = 256;
  const auto blocks = unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, 65536));
  parallel_for_kernel<<<blocks, kThreads, 0, stream>>>(n, f);
  DRCNN_CUDA_CHECK(cudaGetLastError());
#if DRCNN_SYNC_DEBUG
  DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));  // pinpoints asynchronous faults
#endif
}

/// Launcher object for the shared dispatch switches (ops/detail/*_dispatch.h).
struct CudaLaunch {
  cudaStream_t stream;
  template <typename Body>
  void operator()(int64_t n, const Body& body) const {
    parallel_for_cuda(stream, n, body);
  }
};
}  // namespace drcnn::cuda_detail
