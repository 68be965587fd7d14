// Dispatchers of the elementwise ops: check, broadcast, allocate, launch.
#include "drcnn/ops/elementwise.h"

#include <algorithm>
#include <cmath>

#include "dispatch.h"
#include "drcnn/ops/reduce.h"

namespace drcnn::ops {

using runtime::on_device;

namespace {
constexpr const char* binary_name(BinaryKind k) {
  switch (k) {
    case BinaryKind::Add: return "add";
    case BinaryKind::Sub: return "sub";
    case BinaryKind::Mul: return "mul";
    case BinaryKind::Div: return "div";
    case BinaryKind::Pow: return "pow";
    case BinaryKind::Maximum: return "maximum";
    case BinaryKind::Minimum: return "minimum";
    case BinaryKind::Eq: return "eq";
    case BinaryKind::Ne: return "ne";
    case BinaryKind::Lt: return "lt";
    case BinaryKind::Le: return "le";
    case BinaryKind::Gt: return "gt";
    case BinaryKind::Ge: return "ge";
    case BinaryKind::ReluBackward: return "relu_backward";
    case BinaryKind::SigmoidBackward: return "sigmoid_backward";
  }
  return "binary";
}
constexpr const char* unary_name(UnaryKind k) {
  switch (k) {
    case UnaryKind::Neg: return "neg";
    case UnaryKind::Abs: return "abs";
    case UnaryKind::Exp: return "exp";
    case UnaryKind::Log: return "log";
    case UnaryKind::Sqrt: return "sqrt";
    case UnaryKind::Relu: return "relu";
    case UnaryKind::Sigmoid: return "sigmoid";
    case UnaryKind::AddScalar: return "add";
    case UnaryKind::MulScalar: return "mul";
    case UnaryKind::PowScalar: return "pow";
    case UnaryKind::Clamp: return "clamp";
  }
  return "unary";
}
constexpr bool floating_only(BinaryKind k) {
  return k == BinaryKind::Div || k == BinaryKind::Pow || k == BinaryKind::ReluBackward ||
         k == BinaryKind::SigmoidBackward;
}
constexpr bool floating_only(UnaryKind k) {
  return k == UnaryKind::Exp || k == UnaryKind::Log || k == UnaryKind::Sqrt || k == UnaryKind::Sigmoid ||
         k == UnaryKind::PowScalar;
}

void check_arithmetic(const char* op, DType d, bool floating) {
  if (floating) {
    DRCNN_CHECK(d == DType::Float32 || d == DType::Float64, op, ": expected a float32 or float64 tensor, got ", d);
  } else {
    DRCNN_CHECK(d == DType::Float32 || d == DType::Float64 || d == DType::Int32 || d == DType::Int64, op,
                ": expected float32, float64, int32 or int64, got ", d);
  }
}

Tensor binary_op(BinaryKind kind, const Tensor& a, const Tensor& b) {
  const char* op = binary_name(kind);
  runtime::check_same_device(op, {&a, &b});
  runtime::check_same_dtype(op, a, b);
  check_arithmetic(op, a.dtype(), floating_only(kind));
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(shape, is_comparison(kind) ? DType::Bool : a.dtype(), a.device());
  if (out.numel() == 0) return out;
  const ElementwiseLaunch l = runtime::make_elementwise_launch(out, {&a, &b});
  on_device(
      a.device(), op, [&] { cpu::binary(kind, a.dtype(), l); },
      [&](auto s) { cuda::binary(s, kind, a.dtype(), l); });
  return out;
}

Tensor unary_op(UnaryKind kind, const Tensor& x, double s0 = 0.0, double s1 = 0.0) {
  const char* op = unary_name(kind);
  runtime::check_defined(op, x, "input");
  check_arithmetic(op, x.dtype(), floating_only(kind));
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  ElementwiseLaunch l = runtime::make_elementwise_launch(out, {&x});
  l.scalar[0] = s0;
  l.scalar[1] = s1;
  on_device(
      x.device(), op, [&] { cpu::unary(kind, x.dtype(), l); }, [&](auto s) { cuda::unary(s, kind, x.dtype(), l); });
  return out;
}

// [lo, hi_excl) of the integer dtypes the arithmetic ops support, as exact doubles.
std::pair<double, double> integer_range(DType d) {
  if (d == DType::Int32) return {-2147483648.0, 2147483648.0};
  return {-9223372036854775808.0, 9223372036854775808.0};  // Int64
}

void check_scalar_fits(const char* op, const Tensor& a, double s) {
  DRCNN_CHECK(std::isfinite(s) || is_floating(a.dtype()), op, ": non-finite scalar ", s, " for an ", a.dtype(),
              " tensor");
  DRCNN_CHECK(is_floating(a.dtype()) || s == std::trunc(s), op, ": scalar ", s,
              " is not integral but the tensor is ", a.dtype(), " (convert the tensor to float first)");
  if (a.dtype() == DType::Int32 || a.dtype() == DType::Int64) {
    // Converting an out-of-range double to the integer type is undefined behaviour.
    const auto [lo, hi_excl] = integer_range(a.dtype());
    DRCNN_CHECK(s >= lo && s < hi_excl, op, ": scalar ", s, " does not fit in ", a.dtype());
  }
}

// a > s / a < s for a real scalar s. Floating tensors compare with s converted to their dtype
// (torch's rule). Integer tensors compare exactly: converting s first would make
// int(-2) > -2.5 false (-2 > -2), so s becomes floor(s) for gt and ceil(s) for lt, which
// selects the same integers; scalars beyond the dtype's range give a constant answer.
Tensor compare_scalar(BinaryKind kind, const Tensor& a, double s) {
  const char* op = binary_name(kind);
  runtime::check_defined(op, a, "input");
  check_arithmetic(op, a.dtype(), false);
  if (is_floating(a.dtype())) return binary_op(kind, a, Tensor::full({}, s, a.dtype(), a.device()));
  if (std::isnan(s)) return Tensor::zeros(a.shape(), DType::Bool, a.device());  // NaN compares false
  const bool gt = kind == BinaryKind::Gt;
  const double t = gt ? std::floor(s) : std::ceil(s);
  const auto [lo, hi_excl] = integer_range(a.dtype());
  // gt: every a > t when t < lo, none when t >= hi; lt: every a < t when t >= hi, none when t < lo.
  if (t < lo || t >= hi_excl) {
    const bool all = gt ? t < lo : t >= hi_excl;
    return Tensor::full(a.shape(), all ? 1.0 : 0.0, DType::Bool, a.device());
  }
  return binary_op(kind, a, Tensor::full({}, t, a.dtype(), a.device()));
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Pow, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Minimum, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_op(BinaryKind::Ge, a, b); }
Tensor relu_backward(const Tensor& grad, const Tensor& x) { return binary_op(BinaryKind::ReluBackward, grad, x); }
Tensor sigmoid_backward(const Tensor& grad, const Tensor& y) {
  return binary_op(BinaryKind::SigmoidBackward, grad, y);
}

Tensor gt(const Tensor& a, double s) { return compare_scalar(BinaryKind::Gt, a, s); }
Tensor lt(const Tensor& a, double s) { return compare_scalar(BinaryKind::Lt, a, s); }

Tensor add(const Tensor& a, double s) {
  runtime::check_defined("add", a, "input");
  check_scalar_fits("add", a, s);
  return unary_op(UnaryKind::AddScalar, a, s);
}
Tensor mul(const Tensor& a, double s) {
  runtime::check_defined("mul", a, "input");
  check_scalar_fits("mul", a, s);
  return unary_op(UnaryKind::MulScalar, a, s);
}
Tensor pow(const Tensor& a, double exponent) { return unary_op(UnaryKind::PowScalar, a, exponent); }
Tensor neg(const Tensor& x) { return unary_op(UnaryKind::Neg, x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryKind::Abs, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryKind::Exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryKind::Log, x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryKind::Sqrt, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryKind::Relu, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryKind::Sigmoid, x); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  DRCNN_CHECK(!(hi < lo), "clamp: lo ", lo, " is greater than hi ", hi);
  runtime::check_defined("clamp", x, "input");
  if (!is_floating(x.dtype())) {
    DRCNN_CHECK(lo == std::trunc(lo) && hi == std::trunc(hi), "clamp: bounds ", lo, ", ", hi,
                " must be integral for an ", x.dtype(), " tensor");
    if (x.dtype() == DType::Int32 || x.dtype() == DType::Int64) {
      // Bounds beyond the dtype's range saturate to it (converting them would be undefined).
      const double tmin = integer_range(x.dtype()).first;
      const double tmax = x.dtype() == DType::Int32 ? 2147483647.0 : 9223372036854774784.0;  // largest double < 2^63
      lo = std::clamp(lo, tmin, tmax);
      hi = std::clamp(hi, tmin, tmax);
    }
  }
  return unary_op(UnaryKind::Clamp, x, lo, hi);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  runtime::check_same_device("where", {&cond, &a, &b});
  DRCNN_CHECK(cond.dtype() == DType::Bool, "where: cond must be a bool tensor, got ", cond.dtype());
  runtime::check_same_dtype("where", a, b);
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  const ElementwiseLaunch l = runtime::make_elementwise_launch(out, {&cond, &a, &b});
  on_device(
      a.device(), "where", [&] { cpu::where(a.dtype(), l); }, [&](auto s) { cuda::where(s, a.dtype(), l); });
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  runtime::check_defined("sum_to", x, "input");
  if (x.shape() == shape) return x;
  DRCNN_CHECK(broadcast_shapes(shape, x.shape(), "sum_to") == x.shape(), "sum_to: shape ", shape,
              " does not broadcast to the gradient's shape ", x.shape());
  Tensor r = x;
  const int lead = x.ndim() - shape.ndim();
  for (int d = 0; d < lead; ++d) r = sum(r, 0);
  for (int d = 0; d < shape.ndim(); ++d)
    if (shape[d] == 1 && r.shape()[d] != 1) r = sum(r, d, true);
  return r.reshape(shape);
}
}  // namespace drcnn::ops
