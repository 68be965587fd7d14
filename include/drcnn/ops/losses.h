// Loss functions on Tensors (forward only; the Variable versions are in
// include/drcnn/autograd/losses.h). Floating inputs (float32 / float64) of one dtype and device.
//
// Reduction (mmdet's weight_reduce_loss):
//   None: the per-element (per-row for cross_entropy) losses;
//   Sum:  their sum (0-d);
//   Mean: their sum / denominator (0-d), where the denominator is avg_factor when given, else
//         the number of elements (cross_entropy: the number of rows whose label is not
//         ignore_index; 0 such rows give 0, not NaN).
// avg_factor is only accepted with Mean (mmdet raises otherwise) and must be > 0.
// Kernels: include/drcnn/ops/detail/loss_body.h. Tests: tests/ops/test_losses.cpp.
#pragma once
#include <cstdint>
#include <optional>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

enum class Reduction { None, Sum, Mean };

struct LossReduce {
  Reduction reduction = Reduction::Mean;
  std::optional<double> avg_factor;
};

/// 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = pred - target (same shapes).
/// beta >= 0; beta < 1e-5 is exact L1.
Tensor smooth_l1_loss(const Tensor& pred, const Tensor& target, double beta = 1.0, LossReduce r = {});
/// |pred - target|.
Tensor l1_loss(const Tensor& pred, const Tensor& target, LossReduce r = {});
/// max(x, 0) - x y + log1p(exp(-|x|)); targets of the logits' shape.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, LossReduce r = {});
/// Softmax cross-entropy: logits [N, C], labels int64 [N] in [0, C) or ignore_index;
/// optional per-sample weight [N] of the logits' dtype (undefined Tensor = none).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& weight = Tensor(), LossReduce r = {},
                     int64_t ignore_index = -100);

/// Fused forward + elementwise backward: loss (unreduced) and d loss_i / d input_i.
struct LossAndGrad {
  Tensor loss;  // per element (per row for cross_entropy)
  Tensor grad;  // input's shape
  double denom = 1.0;  // what Mean divides by (cross_entropy: the non-ignored count)
  /// The sum of `loss`, when the backend computed it inside the fused launch (CPU with
  /// want_sum: double accumulation over fixed chunks, independent of the thread count);
  /// otherwise empty and reduce_loss sums `loss`.
  std::optional<double> sum;
};
/// want_sum: also fill LossAndGrad::sum where the backend can (the CPU).
LossAndGrad smooth_l1_loss_fused(const Tensor& pred, const Tensor& target, double beta, bool need_grad,
                                 bool want_sum = false);
LossAndGrad l1_loss_fused(const Tensor& pred, const Tensor& target, bool need_grad, bool want_sum = false);
LossAndGrad binary_cross_entropy_with_logits_fused(const Tensor& logits, const Tensor& target, bool need_grad,
                                                   bool want_sum = false);
LossAndGrad cross_entropy_fused(const Tensor& logits, const Tensor& labels, const Tensor& weight,
                                int64_t ignore_index, bool need_grad, bool want_sum = false);

/// Applies a reduction to unreduced losses; `count` is the Mean denominator without avg_factor.
Tensor reduce_loss(const Tensor& loss, LossReduce r, double count, const char* op);
/// reduce_loss of a fused result: uses f.sum when present (no second pass over the losses).
Tensor reduce_loss(const LossAndGrad& f, LossReduce r, const char* op);
/// The factor the gradient of reduce_loss scales by (1 for None/Sum, 1/denominator for Mean).
double reduce_loss_scale(LossReduce r, double count, const char* op);
}  // namespace drcnn::ops
