// CPU launchers of the elementwise, fill, copy, cast, arange and random bodies
// (include/drcnn/ops/detail/). Tests: tests/ops/test_elementwise.cpp, tests/core/test_tensor.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/elementwise_dispatch.h"
#include "drcnn/ops/detail/philox.h"

namespace drcnn::ops::cpu {
namespace {
/// Operands of an OffsetCalc<k>.
template <int k>
constexpr int operand_count(const detail::OffsetCalc<k>&) {
  return k;
}

struct CpuLaunch {
  template <typename Body>
  void operator()(int64_t n, const Body& body) const {
    // A strided body with two or more (collapsed) dimensions runs row by row: the offsets of a
    // row's first element as the body computes them, then each next element's by adding the
    // innermost strides. The same elements get the same operation (at), so the same results.
    if constexpr (requires { body.oc.ndim; }) {
      if (body.oc.ndim >= 2 && n > 0) return rows(n, body);
    }
    parallel_for_cpu(n, body);
  }

  template <typename Body>
  static void rows(int64_t n, const Body& body) {
    constexpr int k = operand_count(decltype(body.oc){});
    const auto& oc = body.oc;
    const int last = oc.ndim - 1;
    const int64_t inner = oc.size[last];
    int64_t step[k];
    for (int j = 0; j < k; ++j) step[j] = oc.stride[j][last];
    parallel_for_cpu(
        n / inner,
        [&](int64_t r) {
          int64_t o[k];
          oc.offsets(r * inner, o);
          for (int64_t e = 0; e < inner; ++e) {
            body.at(o);
            for (int j = 0; j < k; ++j) o[j] += step[j];
          }
        },
        kParallelGrain / inner + 1);
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
