// SGD (include/drcnn/train/sgd.h).
#include "drcnn/train/sgd.h"

#include <cmath>

#include "drcnn/core/error.h"
#include "drcnn/ops/device_checks.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"

namespace drcnn::train {

void SgdOptions::validate() const {
  const auto check = [](double v, const char* name) {
    DRCNN_CHECK(std::isfinite(v) && v >= 0, "Sgd: ", name, " must be finite and >= 0, got ", v);
  };
  check(lr, "lr");
  check(momentum, "momentum");
  check(weight_decay, "weight_decay");
  check(dampening, "dampening");
  DRCNN_CHECK(!nesterov || (momentum > 0 && dampening == 0),
              "Sgd: nesterov needs momentum > 0 and dampening 0, got momentum ", momentum, " and dampening ", dampening);
}

Sgd::Sgd(std::vector<Variable> params, const SgdOptions& options) : m_params(std::move(params)), m_opt(options) {
  m_opt.validate();
  for (size_t i = 0; i < m_params.size(); ++i)
    DRCNN_CHECK(m_params[i].defined() && m_params[i].is_leaf(), "Sgd: parameter ", i, " is ",
                m_params[i].defined() ? "not a leaf" : "undefined");
  m_buffers.resize(m_params.size());
}

void Sgd::set_lr(double lr) {
  DRCNN_CHECK(std::isfinite(lr) && lr >= 0, "Sgd::set_lr: lr must be finite and >= 0, got ", lr);
  m_opt.lr = lr;
}

void Sgd::step() {
  // Once per step: the deferred kernel error flags of the forward and backward just run
  // (ops/device_checks.h), so a bad index fails the step that produced it.
  ops::check_device_errors();
  for (size_t i = 0; i < m_params.size(); ++i) {
    Variable& p = m_params[i];
    if (!p.has_grad()) continue;
    Tensor d = p.grad();
    if (m_opt.weight_decay != 0) d = ops::add(d, ops::mul(p.data(), m_opt.weight_decay));
    if (m_opt.momentum != 0) {
      Tensor& buf = m_buffers[i];
      buf = buf.defined() ? ops::add(ops::mul(buf, m_opt.momentum), ops::mul(d, 1.0 - m_opt.dampening)) : d.clone();
      d = m_opt.nesterov ? ops::add(d, ops::mul(buf, m_opt.momentum)) : buf;
    }
    p.mutable_data() = ops::sub(p.data(), ops::mul(d, m_opt.lr));
  }
}

void Sgd::zero_grad() {
  for (Variable& p : m_params) p.zero_grad();
}

void Sgd::set_momentum_buffers(std::vector<Tensor> buffers) {
  DRCNN_CHECK(buffers.size() == m_params.size(), "Sgd::set_momentum_buffers: ", buffers.size(), " buffers for ",
              m_params.size(), " parameters");
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (!buffers[i].defined()) continue;
    const Tensor& p = m_params[i].data();
    DRCNN_CHECK(buffers[i].shape() == p.shape() && buffers[i].dtype() == p.dtype() && buffers[i].device() == p.device(),
                "Sgd::set_momentum_buffers: buffer ", i, " is ", buffers[i].dtype(), " ", buffers[i].shape(),
                ", the parameter ", p.dtype(), " ", p.shape());
  }
  m_buffers = std::move(buffers);
}

double clip_grad_norm(const std::vector<Variable>& params, double max_norm) {
  DRCNN_CHECK(std::isfinite(max_norm) && max_norm > 0, "clip_grad_norm: max_norm must be finite and > 0, got ",
              max_norm);
  double sq = 0;
  for (const Variable& p : params) {
    if (!p.has_grad()) continue;
    const Tensor g = p.grad().to(DType::Float64);
    sq += ops::sum(ops::mul(g, g)).to(Device::cpu()).item<double>();
  }
  const double total = std::sqrt(sq);
  if (!(total > max_norm) || !std::isfinite(total)) return total;
  const double coef = max_norm / (total + 1e-6);
  for (const Variable& p : params) {
    if (!p.has_grad()) continue;
    Variable handle = p;
    const Tensor scaled = ops::mul(p.grad(), coef);
    handle.zero_grad();
    handle.add_grad(scaled);
  }
  return total;
}

}  // namespace drcnn::train
