// Dispatchers of the losses: check, make contiguous, allocate, launch the fused bodies, reduce.
#include "drcnn/ops/losses.h"

#include <cmath>

#include "dispatch.h"
#include "drcnn/ops/detail/loss_body.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"

namespace drcnn::ops {

using runtime::on_device;

namespace {
void check_floating(const char* op, const Tensor& t, const char* name) {
  DRCNN_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", name,
              " must be float32 or float64, got ", t.dtype());
}

void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  runtime::check_defined(op, a, "input");
  runtime::check_defined(op, b, "target");
  runtime::check_same_device(op, {&a, &b});
  check_floating(op, a, "input");
  runtime::check_same_dtype(op, a, b);
  DRCNN_CHECK(a.shape() == b.shape(), op, ": input shape ", a.shape(), " and target shape ", b.shape(),
              " differ");
}

LossAndGrad elementwise_loss(detail::LossKind kind, const char* op, const Tensor& a_in, const Tensor& b_in,
                             double beta, bool need_grad, bool want_sum) {
  check_pair(op, a_in, b_in);
  const Tensor a = a_in.contiguous(), b = b_in.contiguous();
  LossAndGrad r;
  r.loss = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (need_grad) r.grad = Tensor::empty(a.shape(), a.dtype(), a.device());
  r.denom = double(a.numel());
  if (a.numel() == 0) return r;
  detail::LossLaunch l;
  l.n = a.numel();
  l.loss = r.loss.data_ptr();
  l.grad = need_grad ? r.grad.data_ptr() : nullptr;
  l.a = a.data_ptr();
  l.b = b.data_ptr();
  l.beta = beta;
  double sum = 0;
  if (want_sum && a.device().is_cpu()) l.sum = &sum;
  on_device(
      a.device(), op, [&] { cpu::loss(kind, a.dtype(), l); }, [&](auto s) { cuda::loss(s, kind, a.dtype(), l); });
  if (l.sum) r.sum = sum;
  return r;
}

double mean_denominator(LossReduce r, double count, const char* op) {
  if (r.avg_factor) {
    DRCNN_CHECK(r.reduction == Reduction::Mean, op, ": avg_factor can only be used with reduction Mean");
    DRCNN_CHECK(*r.avg_factor > 0 && std::isfinite(*r.avg_factor), op, ": avg_factor must be a positive finite number, got ",
                *r.avg_factor);
    return *r.avg_factor;
  }
  return count;
}
}  // namespace

double reduce_loss_scale(LossReduce r, double count, const char* op) {
  const double d = mean_denominator(r, count, op);
  if (r.reduction != Reduction::Mean) return 1.0;
  return d > 0 ? 1.0 / d : 0.0;  // an empty mean is 0, not NaN
}

Tensor reduce_loss(const Tensor& loss, LossReduce r, double count, const char* op) {
  const double scale = reduce_loss_scale(r, count, op);
  switch (r.reduction) {
    case Reduction::None: return loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: return mul(sum(loss), scale);
  }
  return loss;
}

Tensor reduce_loss(const LossAndGrad& f, LossReduce r, const char* op) {
  if (!f.sum || r.reduction == Reduction::None) return reduce_loss(f.loss, r, f.denom, op);
  const double scale = reduce_loss_scale(r, f.denom, op);
  return Tensor::full(Shape{}, *f.sum * scale, f.loss.dtype(), f.loss.device());
}

LossAndGrad smooth_l1_loss_fused(const Tensor& pred, const Tensor& target, double beta, bool need_grad,
                                 bool want_sum) {
  DRCNN_CHECK(beta >= 0 && std::isfinite(beta), "smooth_l1_loss: beta must be finite and >= 0, got ", beta);
  return elementwise_loss(detail::LossKind::SmoothL1, "smooth_l1_loss", pred, target, beta, need_grad, want_sum);
}
LossAndGrad l1_loss_fused(const Tensor& pred, const Tensor& target, bool need_grad, bool want_sum) {
  return elementwise_loss(detail::LossKind::L1, "l1_loss", pred, target, 0.0, need_grad, want_sum);
}
LossAndGrad binary_cross_entropy_with_logits_fused(const Tensor& logits, const Tensor& target, bool need_grad,
                                                   bool want_sum) {
  return elementwise_loss(detail::LossKind::BceWithLogits, "binary_cross_entropy_with_logits", logits, target, 0.0,
                          need_grad, want_sum);
}

LossAndGrad cross_entropy_fused(const Tensor& logits_in, const Tensor& labels_in, const Tensor& weight_in,
                                int64_t ignore_index, bool need_grad, bool want_sum) {
  const char* op = "cross_entropy";
  runtime::check_defined(op, logits_in, "logits");
  runtime::check_defined(op, labels_in, "labels");
  check_floating(op, logits_in, "logits");
  DRCNN_CHECK(labels_in.dtype() == DType::Int64, op, ": labels must be int64, got ", labels_in.dtype());
  DRCNN_CHECK(logits_in.ndim() == 2, op, ": logits must be [N, C], got shape ", logits_in.shape());
  const int64_t N = logits_in.size(0), C = logits_in.size(1);
  DRCNN_CHECK(labels_in.ndim() == 1 && labels_in.size(0) == N, op, ": labels must be [", N, "], got shape ",
              labels_in.shape());
  runtime::check_same_device(op, {&logits_in, &labels_in});
  if (weight_in.defined()) {
    runtime::check_same_device(op, {&logits_in, &weight_in});
    DRCNN_CHECK(weight_in.dtype() == logits_in.dtype(), op, ": weight dtype ", weight_in.dtype(),
                " differs from the logits' ", logits_in.dtype());
    DRCNN_CHECK(weight_in.ndim() == 1 && weight_in.size(0) == N, op, ": weight must be [", N, "], got shape ",
                weight_in.shape());
  }
  DRCNN_CHECK(C > 0 || N == 0, op, ": logits have 0 classes");
  // Labels are checked on the host (a device-side out-of-range label would read out of bounds).
  const std::vector<int64_t> host_labels = labels_in.to_vector<int64_t>();
  int64_t kept = 0;
  for (size_t n = 0; n < host_labels.size(); ++n) {
    const int64_t y = host_labels[n];
    if (y == ignore_index) continue;
    DRCNN_CHECK(y >= 0 && y < C, op, ": label ", y, " at row ", n, " is out of range [0, ", C,
                ") and is not ignore_index ", ignore_index);
    ++kept;
  }
  const Tensor logits = logits_in.contiguous(), labels = labels_in.contiguous();
  const Tensor weight = weight_in.defined() ? weight_in.contiguous() : Tensor();
  LossAndGrad r;
  r.loss = Tensor::empty(Shape{N}, logits.dtype(), logits.device());
  if (need_grad) r.grad = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  r.denom = double(kept);
  if (N == 0) return r;
  detail::CrossEntropyLaunch l;
  l.N = N;
  l.C = C;
  l.ignore_index = ignore_index;
  l.loss = r.loss.data_ptr();
  l.grad = need_grad ? r.grad.data_ptr() : nullptr;
  l.logits = logits.data_ptr();
  l.labels = labels.data<int64_t>();
  l.weight = weight.defined() ? weight.data_ptr() : nullptr;
  double sum = 0;
  if (want_sum && logits.device().is_cpu()) l.sum = &sum;
  on_device(
      logits.device(), op, [&] { cpu::cross_entropy(logits.dtype(), l); },
      [&](auto s) { cuda::cross_entropy(s, logits.dtype(), l); });
  if (l.sum) r.sum = sum;
  return r;
}

Tensor smooth_l1_loss(const Tensor& pred, const Tensor& target, double beta, LossReduce r) {
  const bool want_sum = r.reduction != Reduction::None;
  return reduce_loss(smooth_l1_loss_fused(pred, target, beta, false, want_sum), r, "smooth_l1_loss");
}
Tensor l1_loss(const Tensor& pred, const Tensor& target, LossReduce r) {
  const bool want_sum = r.reduction != Reduction::None;
  return reduce_loss(l1_loss_fused(pred, target, false, want_sum), r, "l1_loss");
}
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, LossReduce r) {
  const bool want_sum = r.reduction != Reduction::None;
  return reduce_loss(binary_cross_entropy_with_logits_fused(logits, target, false, want_sum), r,
                     "binary_cross_entropy_with_logits");
}
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& weight, LossReduce r,
                     int64_t ignore_index) {
  const bool want_sum = r.reduction != Reduction::None;
  return reduce_loss(cross_entropy_fused(logits, labels, weight, ignore_index, false, want_sum), r, "cross_entropy");
}
}  // namespace drcnn::ops
