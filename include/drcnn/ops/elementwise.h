// Elementwise ops on Tensors (no autograd; see autograd/functions.h for Variables).
// Binary ops broadcast with numpy rules; both operands must have the same dtype and device.
// Floating-only ops (exp, log, sqrt, sigmoid, pow, div) reject integer tensors.
#pragma once
#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// Elementwise a + b, a - b, a * b, a / b (broadcast). Requires: same dtype and device.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);  // float32/float64 only
/// a ** b (broadcast), float32/float64.
Tensor pow(const Tensor& a, const Tensor& b);
/// NaN-propagating elementwise maximum / minimum (torch.maximum / torch.minimum).
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

/// Tensor-scalar forms; the scalar is converted to the tensor's dtype (integer tensors need
/// an integral scalar).
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double exponent);

Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
/// max(x, 0); NaN stays NaN.
Tensor relu(const Tensor& x);
/// 1 / (1 + exp(-x)), computed without overflow for large |x|.
Tensor sigmoid(const Tensor& x);
/// min(max(x, lo), hi); NaN stays NaN. Requires: lo <= hi.
Tensor clamp(const Tensor& x, double lo, double hi);

/// Comparisons (broadcast) returning bool tensors. NaN compares false except in ne.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);

/// cond ? a : b (all three broadcast). Requires: cond is bool; a and b share dtype and device.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

/// Fused backward helpers: grad * (x > 0), and grad * y * (1 - y) with y = sigmoid output.
Tensor relu_backward(const Tensor& grad, const Tensor& x);
Tensor sigmoid_backward(const Tensor& grad, const Tensor& y);

/// Sums `x` over the broadcast dims so that the result has `shape` (the adjoint of expand).
Tensor sum_to(const Tensor& x, const Shape& shape);
}  // namespace drcnn::ops

namespace drcnn {
inline Tensor operator+(const Tensor& a, const Tensor& b) { return ops::add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return ops::sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return ops::mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return ops::div(a, b); }
inline Tensor operator-(const Tensor& a) { return ops::neg(a); }
}  // namespace drcnn
