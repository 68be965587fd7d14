// CPU launchers of the gather and scatter-add bodies. Scatter runs j serially inside each
// slice and slices in parallel: slices write disjoint elements, so the result is
// deterministic. Tests: tests/ops/test_index.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/index_body.h"

namespace drcnn::ops::cpu {

void index_gather(DType dtype, const IndexLaunch& l) {
  dispatch_all(dtype, "index_gather", [&](auto tag) {
    using T = typename decltype(tag)::type;
    parallel_for_cpu(l.slices * l.J, detail::FlatSliceJ<detail::IndexGatherBody<T>>{{l}, l.J});
  });
}

void index_scatter_add(DType dtype, const IndexLaunch& l) {
  dispatch_arithmetic(dtype, "index_scatter_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const detail::IndexScatterAddBody<T> body{l};
    parallel_for_cpu(
        l.slices,
        [&](int64_t s) {
          for (int64_t j = 0; j < l.J; ++j) body(s, j);
        },
        l.J > 0 ? std::max<int64_t>(1, kParallelGrain / l.J) : kParallelGrain);
  });
}
}  // namespace drcnn::ops::cpu
