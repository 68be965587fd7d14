// CUDA launchers of the loss bodies (include/drcnn/ops/detail/loss_body.h), one thread per
// element (per row for the cross-entropy forward). Parity: tests/cuda/test_cuda_losses.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/loss_body.h"

namespace drcnn::ops::cuda {
using cuda_detail::CudaLaunch;
using cuda_detail::to_cuda;

void loss(Stream s, detail::LossKind kind, DType dtype, const detail::LossLaunch& l) {
  detail::run_loss(kind, dtype, l, CudaLaunch{to_cuda(s)});
}
void cross_entropy(Stream s, DType dtype, const detail::CrossEntropyLaunch& l) {
  detail::run_cross_entropy(dtype, l, CudaLaunch{to_cuda(s)});
}
}  // namespace drcnn::ops::cuda
