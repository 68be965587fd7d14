// Stochastic gradient descent with momentum and weight decay, torch.optim.SGD's update rule
// (MMDetection's optimizer: lr 0.02 for 16 images, momentum 0.9, weight decay 1e-4 on every
// parameter). Definitions: src/train/sgd.cpp; tests: tests/train/test_sgd.cpp.
#pragma once
#include <vector>

#include "drcnn/autograd/variable.h"

namespace drcnn::train {

struct SgdOptions {
  double lr = 0.02;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  double dampening = 0.0;
  bool nesterov = false;
  /// Throws drcnn::Error naming the field: lr, momentum, weight_decay, dampening finite and
  /// >= 0; nesterov needs momentum > 0 and dampening 0 (as torch).
  void validate() const;
};

/// For each parameter with a gradient (others are skipped, as torch skips grad None):
///   d = grad + weight_decay * p
///   buf = d on the parameter's first step, else momentum * buf + (1 - dampening) * d
///   d = nesterov ? d + momentum * buf : buf        (when momentum > 0)
///   p = p - lr * d
class Sgd {
 public:
  Sgd(std::vector<Variable> params, const SgdOptions& options);
  void step();
  /// Drops every parameter's gradient.
  void zero_grad();
  double lr() const { return m_opt.lr; }
  /// Changes the learning rate (warm-up and step schedules); lr finite and >= 0.
  void set_lr(double lr);
  const SgdOptions& options() const { return m_opt; }
  const std::vector<Variable>& params() const { return m_params; }
  /// Momentum buffers in parameter order; undefined for a parameter that never stepped.
  /// Checkpoints save them and restore them with set_momentum_buffers.
  const std::vector<Tensor>& momentum_buffers() const { return m_buffers; }
  /// Requires one entry per parameter, each undefined or of the parameter's shape, dtype and
  /// device; nothing changes when any entry is wrong.
  void set_momentum_buffers(std::vector<Tensor> buffers);

 private:
  std::vector<Variable> m_params;
  std::vector<Tensor> m_buffers;
  SgdOptions m_opt;
};

/// torch.nn.utils.clip_grad_norm_ (L2): total = sqrt(sum of every gradient's squared L2 norm)
/// (accumulated in float64), and when total > max_norm every gradient is multiplied by
/// max_norm / (total + 1e-6). Parameters without a gradient are skipped. Returns the total
/// norm before clipping (inf / NaN propagate: nothing is scaled then). max_norm > 0.
double clip_grad_norm(const std::vector<Variable>& params, double max_norm);

}  // namespace drcnn::train
