// CUDA launcher of the box-op bodies (include/drcnn/ops/detail/box_body.h): one thread per
// box or pair, grid-stride. Covered on the CPU by tests/ops/test_box_ops.cpp (same bodies) and
// on a GPU by tests/cuda/test_cuda_box_ops.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/box_body.h"

namespace drcnn::ops::cuda {
void box_op(Stream s, BoxKind kind, DType dtype, const BoxLaunch& l) {
  detail::run_box(kind, dtype, l, cuda_detail::CudaLaunch{cuda_detail::to_cuda(s)});
}
}  // namespace drcnn::ops::cuda
