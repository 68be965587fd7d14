// Reduction body: one invocation = one output element (o, i) of x viewed as [outer, R, inner].
// Float sums use Neumaier's compensated summation, so f32 sums of millions of terms keep
// ~f32 precision independently of the order the backend would otherwise choose.
#pragma once
#include <cstdint>
#include <type_traits>

#include "drcnn/ops/detail/math.h"
#include "drcnn/ops/launch.h"

namespace drcnn::ops::detail {

/// Neumaier's compensated running sum: comp collects the low-order bits lost by sum.
template <typename T>
struct NeumaierSum {
  T sum = T(0), comp = T(0);
  DRCNN_HD void add(T v) {
    const T t = sum + v;
    const bool sum_larger = hd::abs(sum) >= hd::abs(v);  // branch-free: both lanes of the select
    const T big = sum_larger ? sum : v, small = sum_larger ? v : sum;
    comp += (big - t) + small;
    sum = t;
  }
};

template <typename T, ReduceKind kKind>
struct ReduceBody {
  using Out = std::conditional_t<kKind == ReduceKind::ArgMax || kKind == ReduceKind::ArgMin, int64_t, T>;
  const T* in;
  Out* out;
  int64_t outer, R, inner, last_R;
  double scale;

  DRCNN_HD void operator()(int64_t idx) const {
    const int64_t o = idx / inner, i = idx % inner;
    const int64_t n = o == outer - 1 ? last_R : R;
    const T* p = in + o * R * inner + i;
    if constexpr (kKind == ReduceKind::Sum || kKind == ReduceKind::Mean) {
      if constexpr (std::is_floating_point_v<T>) {
        // kLanes independent compensated accumulators (element r goes to lane r % kLanes, the
        // last n % kLanes to lane 0; constant lane indices keep the lanes in registers):
        // breaks the serial dependency of one running sum, so the loop runs at memory speed.
        // The lane split is fixed, so results stay identical across threads and backends.
        constexpr int kLanes = 8;
        NeumaierSum<T> lane[kLanes];
        int64_t r = 0;
        for (; r + kLanes <= n; r += kLanes)
          for (int l = 0; l < kLanes; ++l) lane[l].add(p[(r + l) * inner]);
        for (; r < n; ++r) lane[0].add(p[r * inner]);
        NeumaierSum<T> acc;
        for (int l = 0; l < kLanes; ++l) acc.add(lane[l].sum);
        T comp = acc.comp;
        for (int l = 0; l < kLanes; ++l) comp += lane[l].comp;
        // Once an infinity enters, a sum is inf (or NaN) and its compensation picked up
        // inf - inf = NaN: return the plain sum then, as IEEE addition would ([inf, 1] sums to
        // inf, not NaN).
        const T total = hd::isfinite(acc.sum) ? acc.sum + comp : acc.sum;
        out[idx] = T(double(total) * scale);
      } else {
        T sum = T(0);
        for (int64_t r = 0; r < n; ++r) sum += p[r * inner];
        out[idx] = scale == 1.0 ? sum : T(double(sum) * scale);
      }
    } else {
      // Max/Min/ArgMax/ArgMin: first NaN wins (NaN propagates, as torch); ties keep the first index.
      int64_t best = 0;
      T bv = p[0];
      for (int64_t r = 1; r < n && !hd::isnan(bv); ++r) {
        const T v = p[r * inner];
        const bool better = (kKind == ReduceKind::Max || kKind == ReduceKind::ArgMax) ? (v > bv) : (v < bv);
        if (better || hd::isnan(v)) {
          bv = v;
          best = r;
        }
      }
      if constexpr (kKind == ReduceKind::ArgMax || kKind == ReduceKind::ArgMin) out[idx] = best;
      else out[idx] = bv;
    }
  }
};

/// Calls launch(n, body) with the body for (kind, dtype).
template <typename Launch>
void run_reduce(ReduceKind kind, DType dtype, const ReduceLaunch& l, Launch&& launch) {
  dispatch_arithmetic(dtype, "reduce", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n = l.outer * l.inner;
    auto go = [&](auto kind_tag) {
      constexpr ReduceKind K = decltype(kind_tag)::value;
      using Body = ReduceBody<T, K>;
      launch(n, Body{static_cast<const T*>(l.in), static_cast<typename Body::Out*>(l.out), l.outer, l.R,
                     l.inner, l.last_R, l.scale});
    };
    switch (kind) {
      case ReduceKind::Sum: return go(std::integral_constant<ReduceKind, ReduceKind::Sum>{});
      case ReduceKind::Mean: return go(std::integral_constant<ReduceKind, ReduceKind::Mean>{});
      case ReduceKind::Max: return go(std::integral_constant<ReduceKind, ReduceKind::Max>{});
      case ReduceKind::Min: return go(std::integral_constant<ReduceKind, ReduceKind::Min>{});
      case ReduceKind::ArgMax: return go(std::integral_constant<ReduceKind, ReduceKind::ArgMax>{});
      case ReduceKind::ArgMin: return go(std::integral_constant<ReduceKind, ReduceKind::ArgMin>{});
    }
  });
}
}  // namespace drcnn::ops::detail
