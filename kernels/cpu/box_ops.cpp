// CPU launcher of the box-op bodies (include/drcnn/ops/detail/box_body.h): one body
// invocation per box or pair, OpenMP static partition. Tests: tests/ops/test_box_ops.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/box_body.h"

namespace drcnn::ops::cpu {
void box_op(BoxKind kind, DType dtype, const BoxLaunch& l) {
  detail::run_box(kind, dtype, l, [](int64_t n, const auto& body) { parallel_for_cpu(n, body); });
}
}  // namespace drcnn::ops::cpu
