// CUDA launchers of the reduction bodies (ops/detail/reduce_body.h):
//   - many outputs or short reductions: one thread per output element (o, i), ReduceBody, the
//     CPU's body and fixed lane split, so results match the CPU bit for bit (no FMA in the
//     compensated sum: fast-math is off and the body uses no a*b+c patterns);
//   - few long outputs (detail::reduce_use_block): one block of kReduceBlockLanes threads per
//     output, ReduceBlockBody's lanes merged by the fixed shared-memory tree. Extrema equal the
//     CPU's exactly; sums are compensated in another fixed order (last-bit differences, bounded
//     in tests/cuda/test_cuda_parity.cpp, which also checks the bits against the host
//     emulation detail::reduce_block_host that tests/ops/test_reduce.cpp proves).
// Covered by tests/ops/test_reduce.cpp (CPU) and tests/cuda/test_cuda_parity.cpp.
#include <algorithm>

#include "cuda/launch.cuh"
#include "drcnn/ops/detail/reduce_body.h"

namespace drcnn::ops::cuda {
namespace {
using detail::kReduceBlockLanes;

template <typename Body>
__global__ void __launch_bounds__(kReduceBlockLanes) reduce_block_kernel(int64_t n_out, Body body) {
  __shared__ typename Body::Partial part[kReduceBlockLanes];
  const int t = int(threadIdx.x);
  for (int64_t idx = blockIdx.x; idx < n_out; idx += gridDim.x) {
    part[t] = body.lane(idx, t, kReduceBlockLanes);
    __syncthreads();
    for (int s = kReduceBlockLanes / 2; s > 0; s /= 2) {
      if (t < s) part[t] = Body::merge(part[t], part[t + s]);
      __syncthreads();
    }
    if (t == 0) body.finish(idx, part[0]);
    __syncthreads();  // part[0] is read before the next output overwrites it
  }
}
}  // namespace

void reduce(Stream s, ReduceKind kind, DType dtype, const ReduceLaunch& l) {
  const cudaStream_t stream = cuda_detail::to_cuda(s);
  if (!detail::reduce_use_block(l)) {
    detail::run_reduce(kind, dtype, l, cuda_detail::CudaLaunch{stream});
    return;
  }
  detail::run_reduce_block(kind, dtype, l, [stream](int64_t n_out, const auto& body) {
    if (n_out <= 0) return;
    const auto blocks = unsigned(std::min<int64_t>(n_out, 65535));
    reduce_block_kernel<<<blocks, kReduceBlockLanes, 0, stream>>>(n_out, body);
    DRCNN_CUDA_CHECK(cudaGetLastError());
#if DRCNN_SYNC_DEBUG
    DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
#endif
  });
}
}  // namespace drcnn::ops::cuda
