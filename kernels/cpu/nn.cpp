// CPU launcher of the layer-op bodies (include/drcnn/ops/detail/nn_body.h): OpenMP static
// partition, each invocation writes only its own outputs. The grain shrinks with the work one
// invocation does (a reduction chunk is 1024 elements, a pooling window kh * kw), so heavy
// bodies still spread over the threads; the per-channel elementwise bodies run a whole
// (n, c) row per invocation (body.row), which vectorises. Max-pool backward is a scatter per
// plane here (below). Tests: tests/ops/test_nn.cpp.
#include <algorithm>

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

/// Max-pool backward as a scatter, one (n, c) plane per invocation: zero the plane, then add
/// each output's gradient at its recorded index, outputs in order. MaxPoolBackwardBody (the
/// CUDA form) gathers instead: every input sums, from 0 and in output order, the gradients of
/// the outputs whose window covers it and whose index names it. The scatter adds the same
/// gradients to each input in the same order, starting from the same +0, so the sums are the
/// same bit for bit; an index outside its output's window (or outside the plane) is skipped,
/// as the gather never matches it. One output's index is read once instead of once per input
/// of its window, and no input computes its window range (four int64 divisions).
template <typename T>
void max_pool_backward_scatter(const NnLaunch& l) {
  const PoolGeometry& p = l.geo;
  const int64_t in = p.H * p.W, out = p.OH * p.OW;
  if (in == 0) return;
  const T* g = static_cast<const T*>(l.g);
  T* dx = static_cast<T*>(l.y);
  const int64_t* idx = l.cidx;
  parallel_for_cpu(
      l.n / in,
      [&](int64_t q) {
        T* d = dx + q * in;
        std::fill(d, d + in, T(0));
        const T* gq = g + q * out;
        const int64_t* iq = idx + q * out;
        for (int64_t oh = 0; oh < p.OH; ++oh) {
          const int64_t r0 = oh * p.sh - p.ph, r1 = r0 + (p.kh - 1) * p.dh;
          for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t o = oh * p.OW + ow, t = iq[o];
            if (t < 0 || t >= in) continue;
            const int64_t th = t / p.W, tw = t - th * p.W, c0 = ow * p.sw - p.pw;
            if (th < r0 || th > r1 || tw < c0 || tw > c0 + (p.kw - 1) * p.dw) continue;
            d[t] += gq[o];
          }
        }
      },
      kParallelGrain / (in + out) + 1);
}
}  // namespace

void nn_op(NnKind kind, DType dtype, const NnLaunch& l) {
  if (kind == NnKind::MaxPoolBackward)
    return dispatch_floating(dtype, "nn_op", [&](auto tag) { max_pool_backward_scatter<typename decltype(tag)::type>(l); });
  detail::run_nn(kind, dtype, l, CpuNnLaunch{});
}
}  // namespace drcnn::ops::cpu
