// Differentiable losses on Variables. The forward is the fused Tensor op of
// include/drcnn/ops/losses.h (same shapes, dtypes, errors, reductions); the gradient w.r.t.
// the first argument comes from the fused backward body computed in the same launch, scaled
// by the upstream gradient (and 1/denominator for Mean). Targets, labels and weights are
// Tensors and get no gradient. Implementation: src/autograd/losses.cpp;
// tests: tests/autograd/test_loss_gradcheck.cpp.
#pragma once
#include <cstdint>

#include "drcnn/autograd/variable.h"
#include "drcnn/ops/losses.h"

namespace drcnn {

Variable smooth_l1_loss(const Variable& pred, const Tensor& target, double beta = 1.0, ops::LossReduce r = {});
Variable l1_loss(const Variable& pred, const Tensor& target, ops::LossReduce r = {});
Variable binary_cross_entropy_with_logits(const Variable& logits, const Tensor& target, ops::LossReduce r = {});
Variable cross_entropy(const Variable& logits, const Tensor& labels, const Tensor& weight = Tensor(),
                       ops::LossReduce r = {}, int64_t ignore_index = -100);
}  // namespace drcnn
