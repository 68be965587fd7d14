// Differentiable functions on Variables. Each has a backward tested by finite differences in
// tests/autograd. Arguments that carry no gradient (indices, masks) are Tensors.
//
// Each forward is the Tensor op of the same name (include/drcnn/ops/*.h), so shapes, dtypes and
// errors are that op's; the backward is built from Tensor ops too and runs on any device.
// Only inputs that require grad get a gradient. Implementation:
// src/autograd/functions.cpp.
#pragma once
#include <utility>
#include <vector>

#include "drcnn/autograd/variable.h"

namespace drcnn {

// Elementwise (binary ops broadcast; gradients are summed back to each input's shape).
Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable div(const Variable& a, const Variable& b);
Variable add(const Variable& a, double s);
Variable mul(const Variable& a, double s);
Variable neg(const Variable& x);
Variable exp(const Variable& x);
Variable log(const Variable& x);
Variable sqrt(const Variable& x);
Variable abs(const Variable& x);      // d|x|/dx taken as 0 at x == 0
Variable pow(const Variable& x, double exponent);
/// d/db = a^b log(a), taken as 0 where a == 0 and b >= 0 (as torch); NaN for a < 0.
Variable pow(const Variable& a, const Variable& b);
Variable relu(const Variable& x);     // gradient 0 at x == 0
Variable sigmoid(const Variable& x);
Variable clamp(const Variable& x, double lo, double hi);  // gradient passes where lo <= x <= hi
/// Gradient goes to a where cond is true and to b elsewhere.
Variable where(const Tensor& cond, const Variable& a, const Variable& b);
Variable maximum(const Variable& a, const Variable& b);  // ties send the gradient to a
Variable minimum(const Variable& a, const Variable& b);

// Reductions.
Variable sum(const Variable& x);
Variable sum(const Variable& x, int dim, bool keepdim = false);
Variable mean(const Variable& x);
Variable mean(const Variable& x, int dim, bool keepdim = false);
/// Max/min values along dim; the gradient flows to the arg position (first on ties).
Variable max(const Variable& x, int dim, bool keepdim = false);
Variable min(const Variable& x, int dim, bool keepdim = false);

// Linear algebra.
/// [M, K] @ [K, N], or batched [B, M, K] @ [B, K, N] where a batch of 1 broadcasts (its
/// gradient is summed over the batch).
Variable matmul(const Variable& a, const Variable& b);
/// x [N, in] @ weight [out, in]^T + bias [out]; bias may be undefined.
Variable linear(const Variable& x, const Variable& weight, const Variable& bias = Variable());

// Indexing.
Variable index_select(const Variable& x, int dim, const Tensor& index);
Variable gather(const Variable& x, int dim, const Tensor& index);
Variable index_add(const Variable& self, int dim, const Tensor& index, const Variable& src);
/// src may be larger than index (torch semantics): the part outside index's extents gets a
/// zero gradient.
Variable scatter_add(const Variable& self, int dim, const Tensor& index, const Variable& src);
/// The k largest/smallest values along dim (gradient scattered back to their positions) and
/// their int64 indices.
std::pair<Variable, Tensor> topk(const Variable& x, int64_t k, int dim = -1, bool largest = true);

// Shape (views where the Tensor op is a view).
Variable reshape(const Variable& x, const Shape& shape);
Variable narrow(const Variable& x, int dim, int64_t start, int64_t length);
Variable permute(const Variable& x, const std::vector<int>& perm);
Variable transpose(const Variable& x, int dim0, int dim1);
Variable expand(const Variable& x, const Shape& shape);
Variable squeeze(const Variable& x, int dim);
Variable unsqueeze(const Variable& x, int dim);
Variable flatten(const Variable& x, int start_dim = 0, int end_dim = -1);
Variable contiguous(const Variable& x);
Variable concat(const std::vector<Variable>& xs, int dim);
Variable stack(const std::vector<Variable>& xs, int dim);

inline Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
inline Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
inline Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
inline Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
inline Variable operator-(const Variable& a) { return neg(a); }
inline Variable operator+(const Variable& a, double s) { return add(a, s); }
inline Variable operator*(const Variable& a, double s) { return mul(a, s); }
inline Variable operator*(double s, const Variable& a) { return mul(a, s); }
}  // namespace drcnn
