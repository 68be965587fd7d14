// Variable conv2d (include/drcnn/autograd/conv.h): forward through ops::conv2d, backward
// through one ops::conv2d_backward call with a mask of the gradients needed.
#include "drcnn/autograd/conv.h"

namespace drcnn {

namespace {
/// A stride-0 zero of `like`'s shape, dtype and device: stands in for an operand whose values
/// the requested gradients never read (conv2d_backward checks only its shape).
Tensor stand_in(const Shape& shape, const Tensor& like) {
  return Tensor::zeros(Shape{1, 1, 1, 1}, like.dtype(), like.device()).expand(shape);
}
}  // namespace

Variable conv2d(const Variable& input, const Variable& weight, const Variable& bias, const ops::Conv2dParams& p) {
  DRCNN_CHECK(input.defined(), "conv2d: argument 'input' is an undefined Variable");
  DRCNN_CHECK(weight.defined(), "conv2d: argument 'weight' is an undefined Variable");
  const Tensor& xd = input.data();
  const Tensor& wd = weight.data();
  const bool record = grad_mode_enabled();
  // The backend may keep the input converted for backward-weights (ops::Conv2dSaved): only when
  // backward will compute grad_weight.
  ops::Conv2dSaved saved;
  const bool save = record && weight.requires_grad();
  Tensor out = ops::conv2d(xd, wd, bias.defined() ? bias.data() : Tensor(), p, save ? &saved : nullptr);
  // What backward will need: x for grad_weight, w for grad_input (shapes only otherwise).
  const Tensor keep_x = record && weight.requires_grad() ? xd : Tensor();
  const Tensor keep_w = record && input.requires_grad() ? wd : Tensor();
  const Shape x_shape = xd.shape(), w_shape = wd.shape();
  std::vector<Variable> inputs{input, weight};
  if (bias.defined()) inputs.push_back(bias);
  return Variable::make(
      std::move(out), std::move(inputs),
      [keep_x, keep_w, x_shape, w_shape, p, saved](std::vector<Variable>& in, const Tensor& g) {
        ops::Conv2dGradMask m;
        m.input = in[0].requires_grad();
        m.weight = in[1].requires_grad();
        m.bias = in.size() > 2 && in[2].requires_grad();
        if (!m.input && !m.weight && !m.bias) return;
        DRCNN_CHECK(!(m.weight && !keep_x.defined()) && !(m.input && !keep_w.defined()),
                    "conv2d: requires_grad of an input changed between forward and backward");
        const Tensor x = keep_x.defined() ? keep_x : stand_in(x_shape, g);
        const Tensor w = keep_w.defined() ? keep_w : stand_in(w_shape, g);
        const ops::Conv2dGrads r = ops::conv2d_backward(g, x, w, p, m, saved);
        if (m.input) in[0].add_grad(r.input);
        if (m.weight) in[1].add_grad(r.weight);
        if (m.bias) in[2].add_grad(r.bias);
      },
      "conv2d");
}
}  // namespace drcnn
