// Float64 references for the losses (spec: SmoothL1 per mmdet/fvcore, L1, BCE with logits,
// softmax cross-entropy). They share no code with include/drcnn/ops/detail/loss_body.h and use
// the textbook formulas (BCE through log(sigmoid), CE through log(sum(exp))), which are only
// accurate for moderate inputs: the random tests keep |x| <= 8.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace drcnn::ref {

inline std::vector<double> smooth_l1(const std::vector<double>& p, const std::vector<double>& t, double beta) {
  std::vector<double> out(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double d = std::fabs(p[i] - t[i]);
    out[i] = (beta > 0 && d < beta) ? 0.5 * d * d / beta : d - 0.5 * beta;
  }
  return out;
}

inline std::vector<double> l1(const std::vector<double>& p, const std::vector<double>& t) {
  std::vector<double> out(p.size());
  for (size_t i = 0; i < p.size(); ++i) out[i] = std::fabs(p[i] - t[i]);
  return out;
}

inline std::vector<double> bce_with_logits(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double s = 1.0 / (1.0 + std::exp(-x[i]));
    out[i] = -(y[i] * std::log(s) + (1.0 - y[i]) * std::log(1.0 - s));
  }
  return out;
}

/// Per-row losses of softmax cross-entropy on row-major logits [N, C]; weight empty = ones.
inline std::vector<double> cross_entropy(const std::vector<double>& x, const std::vector<int64_t>& labels, int64_t C,
                                         const std::vector<double>& weight, int64_t ignore_index = -100) {
  std::vector<double> out(labels.size(), 0.0);
  for (size_t n = 0; n < labels.size(); ++n) {
    if (labels[n] == ignore_index) continue;
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += std::exp(x[n * size_t(C) + size_t(c)]);
    const double w = weight.empty() ? 1.0 : weight[n];
    out[n] = -w * std::log(std::exp(x[n * size_t(C) + size_t(labels[n])]) / z);
  }
  return out;
}
}  // namespace drcnn::ref
