// CPU launcher of the reduction body. Tests: tests/ops/test_reduce.cpp.
#include <algorithm>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/reduce_body.h"

namespace drcnn::ops::cpu {
void reduce(ReduceKind kind, DType dtype, const ReduceLaunch& l) {
  // Each output is a serial loop over R elements: parallelise over outputs once the total
  // work (outputs x R) reaches kParallelGrain, even for few outputs. A fixed grain of 2 forked
  // threads for every tiny reduction, which costs milliseconds each on a loaded machine.
  const int64_t grain = std::max<int64_t>(2, kParallelGrain / std::max<int64_t>(1, l.R));
  detail::run_reduce(kind, dtype, l, [grain](int64_t n, const auto& body) { parallel_for_cpu(n, body, grain); });
}
}  // namespace drcnn::ops::cpu
