// CUDA launcher of the fused SGD step (include/drcnn/ops/detail/sgd_body.h): one grid over the
// blocks of every parameter of one dtype. Tests: tests/cuda/test_cuda_sgd.cpp (CPU parity).
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/sgd_body.h"

namespace drcnn::ops::detail::cuda {
template <typename T>
void sgd_step(Stream s, const SgdLaunch<T>& l) {
  cuda_detail::parallel_for_cuda(cuda_detail::to_cuda(s), l.num_blocks * kSgdBlock, SgdStepBody<T>{l});
}
template void sgd_step<float>(Stream, const SgdLaunch<float>&);
template void sgd_step<double>(Stream, const SgdLaunch<double>&);
}  // namespace drcnn::ops::detail::cuda
