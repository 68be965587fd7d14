// CPU launchers of the elementwise, fill, copy, cast, arange and random bodies
// (include/drcnn/ops/detail/). Tests: tests/ops/test_elementwise.cpp, tests/core/test_tensor.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/elementwise_dispatch.h"
#include "drcnn/ops/detail/philox.h"

namespace drcnn::ops::cpu {
namespace {
struct CpuLaunch {
  template <typename Body>
  void operator()(int64_t n, const Body& body) const {
    parallel_for_cpu(n, body);
  }
};
}  // namespace

void unary(UnaryKind kind, DType dtype, const ElementwiseLaunch& l) { detail::run_unary(kind, dtype, l, CpuLaunch{}); }
void binary(BinaryKind kind, DType dtype, const ElementwiseLaunch& l) {
  detail::run_binary(kind, dtype, l, CpuLaunch{});
}
void where(DType dtype, const ElementwiseLaunch& l) { detail::run_where(dtype, l, CpuLaunch{}); }
void fill(DType dtype, const ElementwiseLaunch& l) { detail::run_fill(dtype, l, CpuLaunch{}); }
void copy(size_t element_size, const ElementwiseLaunch& l) { detail::run_copy(element_size, l, CpuLaunch{}); }
void cast(DType out, DType in, const ElementwiseLaunch& l) { detail::run_cast(out, in, l, CpuLaunch{}); }
void arange(DType dtype, int64_t n, void* out, double start, double step) {
  detail::run_arange(dtype, n, out, start, step, CpuLaunch{});
}
void random(DType dtype, bool normal, int64_t n, void* out, uint64_t seed, uint64_t offset) {
  dispatch_floating(dtype, "random", [&](auto tag) {
    using T = typename decltype(tag)::type;
    parallel_for_cpu(n, detail::RandomBody<T>{static_cast<T*>(out), seed, offset, normal});
  });
}
}  // namespace drcnn::ops::cpu
