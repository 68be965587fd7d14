// CUDA launchers of gather / scatter-add: one thread per (slice, j). Scatter accumulates with
// atomicAdd (detail::atomic_add), so its summation order is not fixed on the GPU; the CPU path
// is deterministic. Covered by tests/ops/test_index.cpp (CPU) and tests/cuda/test_cuda_parity.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/index_body.h"

namespace drcnn::ops::cuda {
using cuda_detail::to_cuda;

void index_gather(Stream s, DType dtype, const IndexLaunch& l) {
  dispatch_all(dtype, "index_gather", [&](auto tag) {
    using T = typename decltype(tag)::type;
    cuda_detail::parallel_for_cuda(to_cuda(s), l.slices * l.J,
                                   detail::FlatSliceJ<detail::IndexGatherBody<T>>{{l}, l.J});
  });
}

void index_scatter_add(Stream s, DType dtype, const IndexLaunch& l) {
  dispatch_arithmetic(dtype, "index_scatter_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    cuda_detail::parallel_for_cuda(to_cuda(s), l.slices * l.J,
                                   detail::FlatSliceJ<detail::IndexScatterAddBody<T>>{{l}, l.J});
  });
}
}  // namespace drcnn::ops::cuda
