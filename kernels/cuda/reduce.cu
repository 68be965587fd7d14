// CUDA launcher of the reduction body: one thread per output element (o, i), the same body
// and the same fixed chunking as the CPU, so results match the CPU bit for bit (no FMA in the
// compensated sum: fast-math is off and the body uses no a*b+c patterns).
// Covered by tests/ops/test_reduce.cpp (CPU) and tests/cuda/test_cuda_parity.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/reduce_body.h"

namespace drcnn::ops::cuda {
void reduce(Stream s, ReduceKind kind, DType dtype, const ReduceLaunch& l) {
  detail::run_reduce(kind, dtype, l, cuda_detail::CudaLaunch{cuda_detail::to_cuda(s)});
}
}  // namespace drcnn::ops::cuda
