// CUDA launcher of the anchor bodies (include/drcnn/ops/detail/anchor_body.h): one thread per
// anchor, grid-stride. Covered on the CPU by tests/ops/test_anchors.cpp (same bodies) and on a
// GPU by tests/cuda/test_cuda_anchors.cpp (bit-exact parity).
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/anchor_body.h"

namespace drcnn::ops::cuda {
void anchors(Stream s, AnchorKind kind, DType dtype, const AnchorLaunch& l) {
  detail::run_anchor(kind, dtype, l, cuda_detail::CudaLaunch{cuda_detail::to_cuda(s)});
}
}  // namespace drcnn::ops::cuda
