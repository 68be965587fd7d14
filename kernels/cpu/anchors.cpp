// CPU launcher of the anchor bodies (include/drcnn/ops/detail/anchor_body.h): one body
// invocation per anchor, OpenMP static partition. Tests: tests/ops/test_anchors.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/anchor_body.h"

namespace drcnn::ops::cpu {
void anchors(AnchorKind kind, DType dtype, const AnchorLaunch& l) {
  detail::run_anchor(kind, dtype, l, [](int64_t n, const auto& body) { parallel_for_cpu(n, body); });
}
}  // namespace drcnn::ops::cpu
