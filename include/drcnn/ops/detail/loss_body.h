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
template <typename T>
struct SmoothL1Body {
  T* loss;
  T* grad;  // may be null
  const T* pred;
  const T* target;
  double beta;
  DRCNN_HD void operator()(int64_t i) const {
    const T d = pred[i] - target[i];
    const T ad = hd::abs(d);
    const T sgn = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
    if (beta < kSmoothL1MinBeta) {
      loss[i] = ad;
      if (grad) grad[i] = sgn;
    } else if (ad < T(beta)) {
      loss[i] = T(0.5) * d * d / T(beta);
      if (grad) grad[i] = d / T(beta);
    } else {
      loss[i] = ad - T(0.5 * beta);
      if (grad) grad[i] = sgn;
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
/// Writes lse[n] (the row's log-sum-exp) for the backward body. Labels were range-checked on
/// the host; weight may be null (all ones).
template <typename T>
struct CrossEntropyRowBody {
  T* loss;
  T* lse;
  const T* logits;
  const int64_t* labels;
  const T* weight;
  int64_t C;
  int64_t ignore_index;
  DRCNN_HD void operator()(int64_t n) const {
    const T* x = logits + n * C;
    T m = x[0];
    for (int64_t c = 1; c < C; ++c) m = x[c] > m ? x[c] : m;
    T s = T(0);
    for (int64_t c = 0; c < C; ++c) s += hd::exp(x[c] - m);
    const T l = m + hd::log(s);
    lse[n] = l;
    const int64_t y = labels[n];
    if (y == ignore_index) {
      loss[n] = T(0);
      return;
    }
    const T w = weight ? weight[n] : T(1);
    loss[n] = w * (l - x[y]);
  }
};

/// Gradient of CrossEntropyRowBody's loss[n] w.r.t. logits, one invocation per element (n, c):
/// w[n] (softmax(x_n)_c - [c == y_n]); 0 on ignored rows.
template <typename T>
struct CrossEntropyGradBody {
  T* grad;
  const T* logits;
  const T* lse;
  const int64_t* labels;
  const T* weight;
  int64_t C;
  int64_t ignore_index;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t n = i / C, c = i % C;
    const int64_t y = labels[n];
    if (y == ignore_index) {
      grad[i] = T(0);
      return;
    }
    const T w = weight ? weight[n] : T(1);
    const T p = hd::exp(logits[i] - lse[n]);
    grad[i] = w * (p - (c == y ? T(1) : T(0)));
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
};
struct CrossEntropyLaunch {
  int64_t N = 0, C = 0, ignore_index = -100;
  void* loss = nullptr;
  void* lse = nullptr;
  void* grad = nullptr;  // when non-null the gradient pass runs too
  const void* logits = nullptr;
  const int64_t* labels = nullptr;
  const void* weight = nullptr;
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
      case LossKind::SmoothL1: launch(l.n, SmoothL1Body<T>{loss, grad, a, b, l.beta}); break;
      case LossKind::L1: launch(l.n, L1Body<T>{loss, grad, a, b}); break;
      case LossKind::BceWithLogits: launch(l.n, BceWithLogitsBody<T>{loss, grad, a, b}); break;
    }
  });
}
template <typename Launch>
void run_cross_entropy(DType dtype, const CrossEntropyLaunch& l, Launch launch) {
  dispatch_floating(dtype, "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = static_cast<const T*>(l.logits);
    const T* w = static_cast<const T*>(l.weight);
    launch(l.N, CrossEntropyRowBody<T>{static_cast<T*>(l.loss), static_cast<T*>(l.lse), x, l.labels, w, l.C,
                                       l.ignore_index});
    if (l.grad)
      launch(l.N * l.C, CrossEntropyGradBody<T>{static_cast<T*>(l.grad), x, static_cast<const T*>(l.lse), l.labels,
                                                w, l.C, l.ignore_index});
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
