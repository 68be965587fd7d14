// CPU launcher of the reduction body. Tests: tests/ops/test_reduce.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/reduce_body.h"

namespace drcnn::ops::cpu {
void reduce(ReduceKind kind, DType dtype, const ReduceLaunch& l) {
  // Each output is a long serial loop: parallelise over outputs even for few of them.
  detail::run_reduce(kind, dtype, l, [](int64_t n, const auto& body) { parallel_for_cpu(n, body, 2); });
}
}  // namespace drcnn::ops::cpu
