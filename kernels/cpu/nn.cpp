// CPU launcher of the layer-op bodies (include/drcnn/ops/detail/nn_body.h): OpenMP static
// partition, each invocation writes only its own outputs. The grain shrinks with the work one
// invocation does (a reduction chunk is 1024 elements, a pooling window kh * kw), so heavy
// bodies still spread over the threads. Tests: tests/ops/test_nn.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/nn_body.h"

namespace drcnn::ops::cpu {
void nn_op(NnKind kind, DType dtype, const NnLaunch& l) {
  detail::run_nn(kind, dtype, l, [](int64_t n, const auto& body, int64_t cost) {
    parallel_for_cpu(n, body, cost > 1 ? kParallelGrain / cost + 1 : kParallelGrain);
  });
}
}  // namespace drcnn::ops::cpu
