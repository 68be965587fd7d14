// Loss kernel bodies, shared by kernels/cpu/losses.cpp and kernels/cuda/losses.cu. Each body
// is fused: one invocation writes the loss and, when `grad` is non-null, d loss / d input for
// the same element (or row). All operands are contiguous (the dispatcher makes them so).
// Tests: tests/ops/test_losses.cpp (CPU), tests/cuda/test_cuda_losses.cpp (parity).
#pragma once
#include <cstdint>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops::detail {

/// Below this beta SmoothL1 is exact L1 (never divides by beta).
constexpr double kSmoothL1MinBeta = 1e-5;

// log1p for the loss bodies (hd:: has none): std:: on the host, CUDA's overloads on the device.
DRCNN_HD float loss_log1p(float x) { return ::log1pf(x); }
DRCNN_HD double loss_log1p(double x) { return ::log1p(x); }

/// SmoothL1 (fvcore / mmdet): 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = pred - target.
/// Gradient d/dpred: d / beta inside the quadratic zone, sign(d) outside (0 at d == 0).
/// The constants are precomputed in T by make() (no per-element division or double arithmetic)
/// and the zone is a select, not a branch, so the CPU loop vectorises. beta < kSmoothL1MinBeta is
/// exact L1: make() sets beta to 0, so the zone test `|d| < 0` is never true and |d| - 0 = |d|.
template <typename T>
struct SmoothL1Body {
  T* loss;
  T* grad;  // may be null
  const T* pred;
  const T* target;
  T beta;           // the zone's bound (0 for exact L1)
  T half_inv_beta;  // 0.5 / beta (0 for exact L1)
  T inv_beta;       // 1 / beta (0 for exact L1)
  T half_beta;      // 0.5 * beta (0 for exact L1)
  static SmoothL1Body make(T* loss, T* grad, const T* pred, const T* target, double beta) {
    if (beta < kSmoothL1MinBeta) return {loss, grad, pred, target, T(0), T(0), T(0), T(0)};
    return {loss, grad, pred, target, T(beta), T(0.5 / beta), T(1.0 / beta), T(0.5 * beta)};
  }
  DRCNN_HD void operator()(int64_t i) const {
    const T d = pred[i] - target[i];
    const T ad = hd::abs(d);
    // Both arms are computed before the selects (an arithmetic op inside a ?: arm keeps it a
    // branch for the vectoriser under -ftrapping-math).
    const bool quad = ad < beta;
    const T lin = ad - half_beta;
    const T sq = d * d * half_inv_beta;
    loss[i] = quad ? sq : lin;
    if (grad) {
      const T slope = d * inv_beta;
      const T sgn = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
      grad[i] = quad ? slope : sgn;
    }
  }
};

/// L1: |pred - target|; gradient sign(d), 0 at d == 0.
template <typename T>
struct L1Body {
  T* loss;
  T* grad;
  const T* pred;
  const T* target;
  DRCNN_HD void operator()(int64_t i) const {
    const T d = pred[i] - target[i];
    loss[i] = hd::abs(d);
    if (grad) grad[i] = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
  }
};

/// Binary cross-entropy with logits x and targets y in [0, 1], stable for any |x|:
/// max(x, 0) - x y + log1p(exp(-|x|)); gradient sigmoid(x) - y.
template <typename T>
struct BceWithLogitsBody {
  T* loss;
  T* grad;
  const T* logit;
  const T* target;
  DRCNN_HD void operator()(int64_t i) const {
    const T x = logit[i], y = target[i];
    const T e = hd::exp(-hd::abs(x));  // in (0, 1]
    loss[i] = (x > T(0) ? x : T(0)) - x * y + loss_log1p(e);
    if (grad) {
      const T s = x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      grad[i] = s - y;
    }
  }
};

/// Softmax cross-entropy, one invocation per row n of logits [N, C]:
/// loss[n] = w[n] (lse(x_n) - x_n[y_n]); rows with y_n == ignore_index give 0.
/// When grad is non-null the same invocation writes the row's gradient
/// w[n] (softmax(x_n)_c - [c == y_n]) (0 on ignored rows) with one exp per logit: exp(x_c - m)
/// is stored in grad, summed, then scaled by w / sum. Labels were range-checked on the
/// host; weight may be null (all ones).
template <typename T>
struct CrossEntropyRowBody {
  T* loss;
  T* grad;  // [N, C], may be null
  const T* logits;
  const int64_t* labels;
  const T* weight;
  int64_t C;
  int64_t ignore_index;
  static constexpr int kBlock = 16;  // exp block without grad (a multiple of 4)
  /// Four partial sums, element c of a row into lane c % 4 (no single serial add chain).
  struct Acc4 {
    T a0, a1, a2, a3;
    /// Adds v[0..k); v[0] is a row position that is a multiple of 4.
    DRCNN_HD void add(const T* v, int64_t k) {
      int64_t c = 0;
      for (; c + 4 <= k; c += 4) {
        a0 += v[c];
        a1 += v[c + 1];
        a2 += v[c + 2];
        a3 += v[c + 3];
      }
      if (c < k) a0 += v[c];
      if (c + 1 < k) a1 += v[c + 1];
      if (c + 2 < k) a2 += v[c + 2];
    }
    DRCNN_HD T total() const { return (a0 + a1) + (a2 + a3); }
  };
  DRCNN_HD static T max2(T a, T b) { return b > a ? b : a; }
  DRCNN_HD void operator()(int64_t n) const {
    const T* x = logits + n * C;
    T* g = grad ? grad + n * C : nullptr;
    // Row max in four lanes (max is exact: the lanes only shorten the latency chain).
    T m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0];
    int64_t c = 1;
    for (; c + 4 <= C; c += 4) {
      m0 = max2(m0, x[c]);
      m1 = max2(m1, x[c + 1]);
      m2 = max2(m2, x[c + 2]);
      m3 = max2(m3, x[c + 3]);
    }
    for (; c < C; ++c) m0 = max2(m0, x[c]);
    const T m = max2(max2(m0, m1), max2(m2, m3));
    // exp(x - m) into grad (or a small block) first, then summed: the exp calls stay out of the
    // add chain. With or without grad the lanes and their order are the same (same loss).
    Acc4 acc{T(0), T(0), T(0), T(0)};
    if (g) {
      for (c = 0; c < C; ++c) g[c] = hd::exp(x[c] - m);
      acc.add(g, C);
    } else {
      T buf[kBlock];
      for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
        const int64_t k = C - c0 < kBlock ? C - c0 : kBlock;
        for (c = 0; c < k; ++c) buf[c] = hd::exp(x[c0 + c] - m);
        acc.add(buf, k);
      }
    }
    const T s = acc.total();
    const int64_t y = labels[n];
    if (y == ignore_index) {
      loss[n] = T(0);
      if (g)
        for (c = 0; c < C; ++c) g[c] = T(0);
      return;
    }
    const T w = weight ? weight[n] : T(1);
    loss[n] = w * (m + hd::log(s) - x[y]);
    if (g) {
      const T ws = w / s;
      for (c = 0; c < C; ++c) g[c] *= ws;
      g[y] -= w;
    }
  }
};

/// Which body a launch runs.
enum class LossKind { SmoothL1, L1, BceWithLogits };

/// Pointers of an elementwise loss launch (dtype-erased).
struct LossLaunch {
  int64_t n = 0;
  void* loss = nullptr;
  void* grad = nullptr;
  const void* a = nullptr;  // pred / logits
  const void* b = nullptr;  // target
  double beta = 0;
  /// CPU only (the CUDA launcher ignores it): when non-null, the launcher also writes the sum of
  /// the n losses here, accumulated in double over fixed chunks (independent of the thread count).
  double* sum = nullptr;
};
struct CrossEntropyLaunch {
  int64_t N = 0, C = 0, ignore_index = -100;
  void* loss = nullptr;
  void* grad = nullptr;  // when non-null the row body writes the gradient too
  const void* logits = nullptr;
  const int64_t* labels = nullptr;
  const void* weight = nullptr;
  double* sum = nullptr;  // CPU only, as LossLaunch::sum (the sum of the N row losses)
};

/// The dtype switch shared by both backends; Launch is (n, body) -> void.
template <typename Launch>
void run_loss(LossKind kind, DType dtype, const LossLaunch& l, Launch launch) {
  dispatch_floating(dtype, "loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* loss = static_cast<T*>(l.loss);
    T* grad = static_cast<T*>(l.grad);
    const T* a = static_cast<const T*>(l.a);
    const T* b = static_cast<const T*>(l.b);
    switch (kind) {
      case LossKind::SmoothL1: launch(l.n, SmoothL1Body<T>::make(loss, grad, a, b, l.beta)); break;
      case LossKind::L1: launch(l.n, L1Body<T>{loss, grad, a, b}); break;
      case LossKind::BceWithLogits: launch(l.n, BceWithLogitsBody<T>{loss, grad, a, b}); break;
    }
  });
}
template <typename Launch>
void run_cross_entropy(DType dtype, const CrossEntropyLaunch& l, Launch launch) {
  dispatch_floating(dtype, "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(l.N, CrossEntropyRowBody<T>{static_cast<T*>(l.loss), static_cast<T*>(l.grad),
                                       static_cast<const T*>(l.logits), l.labels, static_cast<const T*>(l.weight),
                                       l.C, l.ignore_index});
  });
}
}  // namespace drcnn::ops::detail

namespace drcnn::ops::cpu {
void loss(detail::LossKind kind, DType dtype, const detail::LossLaunch& l);
void cross_entropy(DType dtype, const detail::CrossEntropyLaunch& l);
}  // namespace drcnn::ops::cpu
namespace drcnn::ops::cuda {
void loss(Stream s, detail::LossKind kind, DType dtype, const detail::LossLaunch& l);
void cross_entropy(Stream s, DType dtype, const detail::CrossEntropyLaunch& l);
}  // namespace drcnn::ops::cuda
