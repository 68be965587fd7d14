// CUDA launchers of the elementwise, fill, copy, cast, arange and random bodies
// (include/drcnn/ops/detail/). One thread per output element, grid-stride.
// Covered on the CPU by tests/ops/test_elementwise.cpp and tests/core/test_tensor.cpp (same
// bodies); on a GPU by tests/cuda/test_cuda_parity.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/elementwise_dispatch.h"
#include "drcnn/ops/detail/philox.h"

namespace drcnn::ops::cuda {
using cuda_detail::CudaLaunch;
using cuda_detail::to_cuda;

void unary(Stream s, UnaryKind kind, DType dtype, const ElementwiseLaunch& l) {
  detail::run_unary(kind, dtype, l, CudaLaunch{to_cuda(s)});
}
void binary(Stream s, BinaryKind kind, DType dtype, const ElementwiseLaunch& l) {
  detail::run_binary(kind, dtype, l, CudaLaunch{to_cuda(s)});
}
void where(Stream s, DType dtype, const ElementwiseLaunch& l) { detail::run_where(dtype, l, CudaLaunch{to_cuda(s)}); }
void fill(Stream s, DType dtype, const ElementwiseLaunch& l) { detail::run_fill(dtype, l, CudaLaunch{to_cuda(s)}); }
void copy(Stream s, size_t element_size, const ElementwiseLaunch& l) {
  detail::run_copy(element_size, l, CudaLaunch{to_cuda(s)});
}
void cast(Stream s, DType out, DType in, const ElementwiseLaunch& l) {
  detail::run_cast(out, in, l, CudaLaunch{to_cuda(s)});
}
void arange(Stream s, DType dtype, int64_t n, void* out, double start, double step) {
  detail::run_arange(dtype, n, out, start, step, CudaLaunch{to_cuda(s)});
}
void random(Stream s, DType dtype, bool normal, int64_t n, void* out, uint64_t seed, uint64_t offset) {
  dispatch_floating(dtype, "random", [&](auto tag) {
    using T = typename decltype(tag)::type;
    cuda_detail::parallel_for_cuda(to_cuda(s), n, detail::RandomBody<T>{static_cast<T*>(out), seed, offset, normal});
  });
}
}  // namespace drcnn::ops::cuda
