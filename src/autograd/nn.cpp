// Variable versions of the layer ops (include/drcnn/autograd/nn.h): the forward is the Tensor
// op; each GradFn keeps only what its backward op needs (indices, saved statistics, inputs).
#include "drcnn/autograd/nn.h"

namespace drcnn {

namespace {
using Inputs = std::vector<Variable>;

const Tensor& arg(const Variable& v, const char* op, const char* name) {
  DRCNN_CHECK(v.defined(), op, ": ", name, " is an undefined Variable");
  return v.data();
}
Tensor data_or_empty(const Variable& v) { return v.defined() ? v.data() : Tensor(); }

/// Inputs list (x, weight?, bias?) and where weight and bias sit in it (-1: absent).
struct AffineInputs {
  std::vector<Variable> list;
  int w = -1, b = -1;
  AffineInputs(const Variable& x, const Variable& weight, const Variable& bias) : list{x} {
    if (weight.defined()) w = int(list.size()), list.push_back(weight);
    if (bias.defined()) b = int(list.size()), list.push_back(bias);
  }
};

void add_affine_grads(Inputs& in, int w, int b, const ops::NormGrads& g) {
  if (in[0].requires_grad()) in[0].add_grad(g.grad_input);
  if (w >= 0 && in[size_t(w)].requires_grad()) in[size_t(w)].add_grad(g.grad_weight);
  if (b >= 0 && in[size_t(b)].requires_grad()) in[size_t(b)].add_grad(g.grad_bias);
}
}  // namespace

Variable max_pool2d(const Variable& x, const ops::MaxPool2dOptions& o) {
  const Tensor& xd = arg(x, "max_pool2d", "x");
  ops::MaxPool2dResult r = ops::max_pool2d_with_indices(xd, o);
  return Variable::make(
      std::move(r.output), {x},
      [idx = r.indices, s = xd.shape(), o](Inputs& in, const Tensor& g) {
        in[0].add_grad(ops::max_pool2d_backward(g, idx, s, o));
      },
      "max_pool2d");
}

Variable upsample_nearest2d(const Variable& x, int64_t out_h, int64_t out_w) {
  const Tensor& xd = arg(x, "upsample_nearest2d", "x");
  return Variable::make(
      ops::upsample_nearest2d(xd, out_h, out_w), {x},
      [s = xd.shape()](Inputs& in, const Tensor& g) { in[0].add_grad(ops::upsample_nearest2d_backward(g, s)); },
      "upsample_nearest2d");
}

Variable frozen_batch_norm2d(const Variable& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                             const Tensor& running_var, double eps) {
  const Tensor& xd = arg(x, "frozen_batch_norm2d", "x");
  Tensor y = ops::frozen_batch_norm2d(xd, weight, bias, running_mean, running_var, eps);
  // A recorded GradFn keeps its own copies ([C] each): the module may load new statistics in
  // place before backward. Nothing is copied when no graph is recorded.
  const bool record = x.requires_grad() && grad_mode_enabled();
  return Variable::make(
      std::move(y), {x},
      [w = record ? weight.clone() : weight, v = record ? running_var.clone() : running_var, eps](Inputs& in,
                                                                                                  const Tensor& g) {
        in[0].add_grad(ops::frozen_batch_norm2d_backward(g, w, v, eps));
      },
      "frozen_batch_norm2d");
}

Variable batch_norm2d(const Variable& x, const Variable& weight, const Variable& bias, const Tensor& running_mean,
                      const Tensor& running_var, bool training, double momentum, double eps) {
  const Tensor& xd = arg(x, "batch_norm2d", "x");
  const Tensor wd = data_or_empty(weight);
  ops::BatchNormResult r =
      ops::batch_norm2d(xd, wd, data_or_empty(bias), running_mean, running_var, training, momentum, eps);
  AffineInputs ai(x, weight, bias);
  return Variable::make(
      std::move(r.output), std::move(ai.list),
      [xd, wd, m = r.save_mean, s = r.save_invstd, training, wi = ai.w, bi = ai.b](Inputs& in, const Tensor& g) {
        // Without a weight but with a bias, the bias gradient still needs sum(g): pass ones.
        const Tensor w = wd.defined() || bi < 0 ? wd : Tensor::ones({xd.size(1)}, xd.dtype(), xd.device());
        add_affine_grads(in, wi, bi, ops::batch_norm2d_backward(g, xd, w, m, s, training));
      },
      "batch_norm2d");
}

Variable group_norm(const Variable& x, int64_t groups, const Variable& weight, const Variable& bias, double eps) {
  const Tensor& xd = arg(x, "group_norm", "x");
  const Tensor wd = data_or_empty(weight);
  ops::GroupNormResult r = ops::group_norm(xd, groups, wd, data_or_empty(bias), eps);
  AffineInputs ai(x, weight, bias);
  return Variable::make(
      std::move(r.output), std::move(ai.list),
      [xd, wd, m = r.mean, s = r.rstd, groups, wi = ai.w, bi = ai.b](Inputs& in, const Tensor& g) {
        const Tensor w = wd.defined() || bi < 0 ? wd : Tensor::ones({xd.size(1)}, xd.dtype(), xd.device());
        add_affine_grads(in, wi, bi, ops::group_norm_backward(g, xd, m, s, w, groups));
      },
      "group_norm");
}
}  // namespace drcnn
