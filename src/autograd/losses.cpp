// Variable versions of the losses: one fused launch gives the loss and d loss_i / d input;
// the GradFn only scales that by the upstream gradient.
#include "drcnn/autograd/losses.h"

#include "drcnn/ops/elementwise.h"

namespace drcnn {

namespace {
/// Wraps a fused result: reduces the loss and records a GradFn that multiplies the saved
/// elementwise gradient by g (broadcast per row for cross_entropy's [N] losses over [N, C]).
/// For Sum/Mean g is 0-d: the Mean's 1/denominator is folded into it first, so the backward makes
/// one full-size pass (grad * (g * scale)) instead of two; on the CPU that pass is the scalar
/// multiply (g read on the host), not the broadcasting tensor multiply.
Variable finish(const Variable& x, ops::LossAndGrad f, ops::LossReduce r, const char* op, bool per_row) {
  const double scale = ops::reduce_loss_scale(r, f.denom, op);
  Tensor out = ops::reduce_loss(f, r, op);
  const bool none = r.reduction == ops::Reduction::None;
  return Variable::make(
      std::move(out), {x},
      [grad = f.grad, scale, none, per_row](std::vector<Variable>& in, const Tensor& g) {
        // None: g has the loss's shape ([N] per row -> [N, 1] against [N, C]); else g is 0-d.
        if (none) {
          in[0].add_grad(ops::mul(grad, per_row ? g.reshape(Shape{g.numel(), 1}) : g));
          return;
        }
        if (g.device().is_cpu()) {
          // One contiguous scalar multiply (reading a 0-d CPU tensor costs nothing).
          in[0].add_grad(ops::mul(grad, g.item<double>() * scale));
          return;
        }
        in[0].add_grad(ops::mul(grad, scale != 1.0 ? ops::mul(g, scale) : g));
      },
      op);
}

bool needs_grad(const Variable& x) { return x.requires_grad() && grad_mode_enabled(); }
bool wants_sum(ops::LossReduce r) { return r.reduction != ops::Reduction::None; }

const Tensor& arg(const Variable& v, const char* op) {
  DRCNN_CHECK(v.defined(), op, ": argument is an undefined Variable");
  return v.data();
}
}  // namespace

Variable smooth_l1_loss(const Variable& pred, const Tensor& target, double beta, ops::LossReduce r) {
  const Tensor& p = arg(pred, "smooth_l1_loss");
  return finish(pred, ops::smooth_l1_loss_fused(p, target, beta, needs_grad(pred), wants_sum(r)), r, "smooth_l1_loss", false);
}
Variable l1_loss(const Variable& pred, const Tensor& target, ops::LossReduce r) {
  const Tensor& p = arg(pred, "l1_loss");
  return finish(pred, ops::l1_loss_fused(p, target, needs_grad(pred), wants_sum(r)), r, "l1_loss", false);
}
Variable binary_cross_entropy_with_logits(const Variable& logits, const Tensor& target, ops::LossReduce r) {
  const Tensor& x = arg(logits, "binary_cross_entropy_with_logits");
  return finish(logits, ops::binary_cross_entropy_with_logits_fused(x, target, needs_grad(logits), wants_sum(r)), r,
                "binary_cross_entropy_with_logits", false);
}
Variable cross_entropy(const Variable& logits, const Tensor& labels, const Tensor& weight, ops::LossReduce r,
                       int64_t ignore_index) {
  const Tensor& x = arg(logits, "cross_entropy");
  return finish(logits, ops::cross_entropy_fused(x, labels, weight, ignore_index, needs_grad(logits), wants_sum(r)), r,
                "cross_entropy", true);
}
}  // namespace drcnn
