// CUDA launcher of the layer-op bodies (include/drcnn/ops/detail/nn_body.h): max pooling,
// nearest upsampling and the norms. One thread per output element for the forward bodies, one
// per INPUT element for the pooling/upsampling backward (gather form: no atomics, the same
// summation order as the CPU), one per (segment, 1024-element chunk) for the norms' partial
// sums and one per channel or group for their coefficients; grid-stride.
// Covered on the CPU by tests/ops/test_nn.cpp (same bodies) and on a GPU by
// tests/cuda/test_cuda_nn.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/nn_body.h"

namespace drcnn::ops::cuda {
namespace {
struct CudaNnLaunch {
  cudaStream_t stream;
  template <typename Body>
  void operator()(int64_t n, const Body& body, int64_t) const {
    cuda_detail::parallel_for_cuda(stream, n, body);
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
