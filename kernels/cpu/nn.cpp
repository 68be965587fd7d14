// CPU launcher of the layer-op bodies (include/drcnn/ops/detail/nn_body.h): OpenMP static
// partition, each invocation writes only its own outputs. The grain shrinks with the work one
// invocation does (a reduction chunk is 1024 elements, a pooling window kh * kw), so heavy
// bodies still spread over the threads; the per-channel elementwise bodies run a whole
// (n, c) row per invocation (body.row), which vectorises. Tests: tests/ops/test_nn.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/nn_body.h"

namespace drcnn::ops::cpu {
namespace {
struct CpuNnLaunch {
  template <typename Body>
  void operator()(int64_t n, const Body& body, int64_t cost) const {
    parallel_for_cpu(n, body, cost > 1 ? kParallelGrain / cost + 1 : kParallelGrain);
  }
  template <typename Body>
  void rows(int64_t n, int64_t row_len, int64_t row_cost, const Body& body) const {
    parallel_for_cpu(n / row_len, [&body](int64_t r) { body.row(r); }, kParallelGrain / row_cost + 1);
  }
};
}  // namespace

void nn_op(NnKind kind, DType dtype, const NnLaunch& l) { detail::run_nn(kind, dtype, l, CpuNnLaunch{}); }
}  // namespace drcnn::ops::cpu
