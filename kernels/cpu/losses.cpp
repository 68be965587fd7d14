// CPU launchers of the loss bodies (include/drcnn/ops/detail/loss_body.h).
// Tests: tests/ops/test_losses.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/loss_body.h"

namespace drcnn::ops::cpu {
namespace {
struct CpuLossLaunch {
  template <typename Body>
  void operator()(int64_t n, const Body& body) const {
    parallel_for_cpu(n, body);
  }
};
}  // namespace

void loss(detail::LossKind kind, DType dtype, const detail::LossLaunch& l) {
  detail::run_loss(kind, dtype, l, CpuLossLaunch{});
}
void cross_entropy(DType dtype, const detail::CrossEntropyLaunch& l) {
  detail::run_cross_entropy(dtype, l, CpuLossLaunch{});
}
}  // namespace drcnn::ops::cpu
