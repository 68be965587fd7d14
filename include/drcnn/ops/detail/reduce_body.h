// Reduction body: one invocation = one output element (o, i) of x viewed as [outer, R, inner].
// Float sums use Neumaier's compensated summation, so f32 sums of millions of terms keep
// ~f32 precision independently of the order the backend would otherwise choose.
// ReduceBlockBody (below): the same reduction split over the lanes of one CUDA block, for few
// long outputs; the CPU runs it only in tests (reduce_block_host), to prove its arithmetic.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

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

/// Few outputs, each long (the assigner's max over ~270k anchors for each of K boxes): one
/// thread per output leaves the GPU idle, so the CUDA backend gives each output a block of
/// kReduceBlockLanes lanes. Lane t folds the elements r = t, t + L, t + 2L, ... in order (for
/// float sums a Neumaier sum, as ReduceBody's lanes), then the L partials are merged by a fixed
/// binary tree: for s = L/2, L/4, ..., 1, partial[t] = merge(partial[t], partial[t + s]) for
/// every t < s. Fixed order: deterministic. kernels/cuda/reduce.cu runs exactly lane(), merge()
/// and finish(); reduce_block_host runs them in the same order on the host, so
/// tests/ops/test_reduce.cpp proves the arithmetic against float64 and
/// tests/cuda/test_cuda_parity.cpp proves the kernel gives the host's bits.
/// Results: max/min/argmax/argmin equal ReduceBody's exactly (first NaN wins, ties keep the
/// first index: merge compares indices); sums are compensated sums in another order, so they
/// may differ from ReduceBody's in the last bits (both within eps |S| + n eps^2 sum|x|).
inline constexpr int kReduceBlockLanes = 256;
/// The CUDA backend takes the block path when R >= kReduceBlockMinR and the outputs number at
/// most kReduceBlockMaxOutputs (a first guess: below that the per-output threads do not fill
/// an H100's 132 SMs x 2048 threads, and each walks at least 1024 elements).
inline constexpr int64_t kReduceBlockMinR = 1024, kReduceBlockMaxOutputs = 16384;
inline bool reduce_use_block(const ReduceLaunch& l) {
  return l.R >= kReduceBlockMinR && l.outer * l.inner <= kReduceBlockMaxOutputs;
}

/// A lane's partial: (sum, compensation) for float sums, (sum, -) for integer sums, (value,
/// index) for the extrema (index -1: the lane saw no element). Trivial, so it can live in
/// CUDA shared memory; made by the functions below.
template <typename T>
struct ReducePartial {
  T a, b;
  int64_t index;
};

template <typename T, ReduceKind kKind>
struct ReduceBlockBody {
  using Out = std::conditional_t<kKind == ReduceKind::ArgMax || kKind == ReduceKind::ArgMin, int64_t, T>;
  using Partial = ReducePartial<T>;
  static constexpr bool kSum = kKind == ReduceKind::Sum || kKind == ReduceKind::Mean;
  static constexpr bool kLargest = kKind == ReduceKind::Max || kKind == ReduceKind::ArgMax;
  const T* in;
  Out* out;
  int64_t outer, R, inner, last_R;
  double scale;

  /// Lane t of `lanes` over output idx.
  DRCNN_HD Partial lane(int64_t idx, int t, int lanes) const {
    const int64_t o = idx / inner, i = idx % inner;
    const int64_t n = o == outer - 1 ? last_R : R;
    const T* p = in + o * R * inner + i;
    Partial r;
    if constexpr (kSum) {
      if constexpr (std::is_floating_point_v<T>) {
        NeumaierSum<T> acc;
        for (int64_t e = t; e < n; e += lanes) acc.add(p[e * inner]);
        r.a = acc.sum;
        r.b = acc.comp;
      } else {
        T sum = T(0);
        for (int64_t e = t; e < n; e += lanes) sum += p[e * inner];
        r.a = sum;
        r.b = T(0);
      }
      r.index = 0;
    } else {
      // ReduceBody's rule over this lane's elements: the first NaN, else the first extremum.
      r.a = T(0);
      r.b = T(0);
      r.index = -1;
      for (int64_t e = t; e < n; e += lanes) {
        const T v = p[e * inner];
        if (r.index < 0 || better(v, r.a) || hd::isnan(v)) {
          r.a = v;
          r.index = e;
        }
        if (hd::isnan(r.a)) break;
      }
    }
    return r;
  }

  /// x before y in the wanted order (strictly larger for max, smaller for min).
  DRCNN_HD static bool better(T x, T y) { return kLargest ? x > y : x < y; }

  DRCNN_HD static Partial merge(const Partial& x, const Partial& y) {
    if constexpr (kSum) {
      Partial r;
      if constexpr (std::is_floating_point_v<T>) {
        NeumaierSum<T> acc;
        acc.sum = x.a;
        acc.comp = x.b;
        acc.add(y.a);
        r.a = acc.sum;
        r.b = acc.comp + y.b;
      } else {
        r.a = x.a + y.a;
        r.b = T(0);
      }
      r.index = 0;
      return r;
    } else {
      if (x.index < 0) return y;
      if (y.index < 0) return x;
      const bool xn = hd::isnan(x.a), yn = hd::isnan(y.a);
      if (xn || yn) {
        if (xn && yn) return x.index < y.index ? x : y;  // the first NaN
        return xn ? x : y;
      }
      if (better(x.a, y.a)) return x;
      if (better(y.a, x.a)) return y;
      return x.index < y.index ? x : y;  // ties (+0 and -0 included): the first index
    }
  }

  DRCNN_HD void finish(int64_t idx, const Partial& r) const {
    if constexpr (kSum) {
      if constexpr (std::is_floating_point_v<T>) {
        // As ReduceBody: once an infinity entered, the compensation may be NaN; the plain sum.
        const T total = hd::isfinite(r.a) ? r.a + r.b : r.a;
        out[idx] = T(double(total) * scale);
      } else {
        out[idx] = scale == 1.0 ? r.a : T(double(r.a) * scale);
      }
    } else if constexpr (kKind == ReduceKind::ArgMax || kKind == ReduceKind::ArgMin) {
      out[idx] = r.index;
    } else {
      out[idx] = r.a;
    }
  }
};

/// The block reduction of output idx run on the host, in the CUDA kernel's order (tests).
template <typename Body>
void reduce_block_host(const Body& body, int64_t idx) {
  typename Body::Partial part[kReduceBlockLanes];
  for (int t = 0; t < kReduceBlockLanes; ++t) part[t] = body.lane(idx, t, kReduceBlockLanes);
  for (int s = kReduceBlockLanes / 2; s > 0; s /= 2)
    for (int t = 0; t < s; ++t) part[t] = Body::merge(part[t], part[t + s]);
  body.finish(idx, part[0]);
}

/// Calls launch(n, body) with Body<T, kind> for (kind, dtype): n = outer * inner outputs.
template <template <typename, ReduceKind> class Body, typename Launch>
void dispatch_reduce(ReduceKind kind, DType dtype, const ReduceLaunch& l, Launch&& launch) {
  dispatch_arithmetic(dtype, "reduce", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto go = [&](auto kind_tag) {
      using B = Body<T, decltype(kind_tag)::value>;
      launch(l.outer * l.inner, B{static_cast<const T*>(l.in), static_cast<typename B::Out*>(l.out), l.outer, l.R,
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

/// Calls launch(n, body) with the block body for (kind, dtype): n outputs, each to be run as
/// one block (CUDA) or by reduce_block_host (tests).
template <typename Launch>
void run_reduce_block(ReduceKind kind, DType dtype, const ReduceLaunch& l, Launch&& launch) {
  dispatch_reduce<ReduceBlockBody>(kind, dtype, l, std::forward<Launch>(launch));
}

/// Calls launch(n, body) with the body for (kind, dtype).
template <typename Launch>
void run_reduce(ReduceKind kind, DType dtype, const ReduceLaunch& l, Launch&& launch) {
  dispatch_reduce<ReduceBody>(kind, dtype, l, std::forward<Launch>(launch));
}
}  // namespace drcnn::ops::detail
