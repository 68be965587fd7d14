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
void nn_op(Stream s, NnKind kind, DType dtype, const NnLaunch& l) {
  const cudaStream_t stream = cuda_detail::to_cuda(s);
  detail::run_nn(kind, dtype, l, [stream](int64_t n, const auto& body, int64_t) {
    cuda_detail::parallel_for_cuda(stream, n, body);
  });
}
}  // namespace drcnn::ops::cuda
