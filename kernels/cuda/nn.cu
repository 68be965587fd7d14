// CUDA launcher of the layer-op bodies (include/drcnn/ops/detail/nn_body.h): max pooling,
// nearest upsampling and the norms. One thread per output element for the forward bodies, one
// per INPUT element for the pooling/upsampling backward (gather form: no atomics, the same
// summation order as the CPU), one WARP per (segment, 1024-element chunk) for the norms'
// partial sums (lanes stride through the chunk, so reads coalesce; the lanes' sums are added
// by a fixed __shfl_down_sync tree: NormPartialBody::lane_sums and norm_lane_tree, which the
// host emulation norm_partial_warp_host runs in the same order) and one thread per channel
// or group for their coefficients; grid-stride.
// Covered on the CPU by tests/ops/test_nn.cpp (same bodies; the warp order by its host
// emulation) and on a GPU by tests/cuda/test_cuda_nn.cpp (the warp's bits vs the emulation).
#include <algorithm>

#include "cuda/launch.cuh"
#include "drcnn/ops/detail/nn_body.h"

namespace drcnn::ops::cuda {
namespace {
using detail::kNormLanes;
static_assert(kNormLanes == 32, "one warp per chunk");

template <typename T>
__global__ void norm_partial_warp_kernel(int64_t n, detail::NormPartialBody<T> body) {
  const int lane = int(threadIdx.x) % kNormLanes;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / kNormLanes;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kNormLanes; i < n; i += warps) {
    double s0, s1;
    body.lane_sums(i, lane, s0, s1);
    for (int off = kNormLanes / 2; off > 0; off /= 2) {  // norm_lane_tree's order
      s0 = s0 + __shfl_down_sync(0xffffffffu, s0, off);
      s1 = s1 + __shfl_down_sync(0xffffffffu, s1, off);
    }
    if (lane == 0) {
      body.p0[i] = s0;
      body.p1[i] = s1;
    }
  }
}

struct CudaNnLaunch {
  cudaStream_t stream;
  template <typename Body>
  void operator()(int64_t n, const Body& body, int64_t) const {
    cuda_detail::parallel_for_cuda(stream, n, body);
  }
  /// The norms' partial sums: a warp per chunk (blockDim a multiple of 32, so a warp never
  /// straddles two blocks and every lane of it runs the same iterations).
  template <typename T>
  void operator()(int64_t n, const detail::NormPartialBody<T>& body, int64_t) const {
    if (n <= 0) return;
    constexpr int kThreads = 256, kWarpsPerBlock = kThreads / kNormLanes;
    const auto blocks = unsigned(std::min<int64_t>((n + kWarpsPerBlock - 1) / kWarpsPerBlock, 65536));
    norm_partial_warp_kernel<T><<<blocks, kThreads, 0, stream>>>(n, body);
    DRCNN_CUDA_CHECK(cudaGetLastError());
#if DRCNN_SYNC_DEBUG
    DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
#endif
  }
  /// One thread per element of the rows (the body's per-element operator), not per row.
  template <typename Body>
  void rows(int64_t n, int64_t, int64_t, const Body& body) const {
    cuda_detail::parallel_for_cuda(stream, n, body);
  }
};
}  // namespace

void nn_op(Stream s, NnKind kind, DType dtype, const NnLaunch& l) {
  detail::run_nn(kind, dtype, l, CudaNnLaunch{cuda_detail::to_cuda(s)});
}
}  // namespace drcnn::ops::cuda
