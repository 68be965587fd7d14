// Differentiable functions: the forward is one Tensor op, the backward is built from Tensor
// ops too, so every function runs wherever the ops run (CPU and CUDA) with no kernel of its own.
// GradFns capture only what they need (a result, an operand, an index) and compute a gradient
// only for inputs that require one. Gradients of broadcasting binaries are summed back to each
// operand's shape with ops::sum_to. Each backward is checked by finite differences in
// tests/autograd/test_gradcheck.cpp.

#include "drcnn/autograd/functions.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/matmul.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/ops/sort.h"

namespace drcnn {

namespace {
using Inputs = std::vector<Variable>;

/// The tensor of an argument; an undefined Variable is an error naming the op and argument.
const Tensor& arg(const Variable& v, const char* op, const char* name) {
  DRCNN_CHECK(v.defined(), op, ": argument '", name, "' is an undefined Variable");
  return v.data();
}

/// A 0-d zero of t's dtype and device; `where` broadcasts it.
Tensor zero_like(const Tensor& t) { return Tensor::zeros(Shape{}, t.dtype(), t.device()); }

/// g where mask, else 0; then summed back to `shape` (the adjoint of broadcasting).
Tensor masked_to(const Tensor& mask, const Tensor& g, const Shape& shape) {
  return ops::sum_to(ops::where(mask, g, zero_like(g)), shape);
}

/// Re-inserts a reduced dim so that g broadcasts against the input again.
Tensor keep_dim(const Tensor& g, int dim, bool keepdim) { return keepdim ? g : g.unsqueeze(dim); }

/// Shared by max/min along a dim: the values and the argmax/argmin position, whose backward
/// scatters the gradient to that position (first one on ties).
Variable extremum(const Variable& x, int dim, bool keepdim, bool is_max) {
  const char* op = is_max ? "max" : "min";
  const Tensor& xd = arg(x, op, "x");
  const int d = wrap_dim(dim, xd.ndim(), op);
  Tensor values = is_max ? ops::max(xd, d, keepdim) : ops::min(xd, d, keepdim);
  Tensor pos;  // [.., 1, ..] int64
  if (x.requires_grad() && grad_mode_enabled()) pos = is_max ? ops::argmax(xd, d, true) : ops::argmin(xd, d, true);
  const Shape shape = xd.shape();
  return Variable::make(
      std::move(values), {x},
      [pos, shape, d, keepdim](Inputs& in, const Tensor& g) {
        in[0].add_grad(ops::scatter_add(Tensor::zeros(shape, g.dtype(), g.device()), d, pos, keep_dim(g, d, keepdim)));
      },
      op);
}
}  // namespace

// ================================================================== elementwise
Variable add(const Variable& a, const Variable& b) {
  const Tensor &ad = arg(a, "add", "a"), &bd = arg(b, "add", "b");
  return Variable::make(
      ops::add(ad, bd), {a, b},
      [sa = ad.shape(), sb = bd.shape()](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(ops::sum_to(g, sa));
        if (in[1].requires_grad()) in[1].add_grad(ops::sum_to(g, sb));
      },
      "add");
}

Variable sub(const Variable& a, const Variable& b) {
  const Tensor &ad = arg(a, "sub", "a"), &bd = arg(b, "sub", "b");
  return Variable::make(
      ops::sub(ad, bd), {a, b},
      [sa = ad.shape(), sb = bd.shape()](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(ops::sum_to(g, sa));
        if (in[1].requires_grad()) in[1].add_grad(ops::sum_to(ops::neg(g), sb));
      },
      "sub");
}

Variable mul(const Variable& a, const Variable& b) {
  const Tensor &ad = arg(a, "mul", "a"), &bd = arg(b, "mul", "b");
  // d(ab)/da = b and d(ab)/db = a: keep an operand only if the other side needs it.
  Tensor keep_a = b.requires_grad() ? ad : Tensor(), keep_b = a.requires_grad() ? bd : Tensor();
  return Variable::make(
      ops::mul(ad, bd), {a, b},
      [keep_a, keep_b](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(ops::sum_to(ops::mul(g, keep_b), in[0].shape()));
        if (in[1].requires_grad()) in[1].add_grad(ops::sum_to(ops::mul(g, keep_a), in[1].shape()));
      },
      "mul");
}

Variable div(const Variable& a, const Variable& b) {
  const Tensor &ad = arg(a, "div", "a"), &bd = arg(b, "div", "b");
  Tensor out = ops::div(ad, bd);
  // d(a/b)/da = 1/b; d(a/b)/db = -a/b^2 = -out/b.
  return Variable::make(
      out, {a, b},
      [out, bd](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(ops::sum_to(ops::div(g, bd), in[0].shape()));
        if (in[1].requires_grad())
          in[1].add_grad(ops::sum_to(ops::neg(ops::div(ops::mul(g, out), bd)), in[1].shape()));
      },
      "div");
}

Variable add(const Variable& a, double s) {
  return Variable::make(
      ops::add(arg(a, "add", "a"), s), {a}, [](Inputs& in, const Tensor& g) { in[0].add_grad(g); }, "add_scalar");
}

Variable mul(const Variable& a, double s) {
  return Variable::make(
      ops::mul(arg(a, "mul", "a"), s), {a}, [s](Inputs& in, const Tensor& g) { in[0].add_grad(ops::mul(g, s)); },
      "mul_scalar");
}

Variable neg(const Variable& x) {
  return Variable::make(
      ops::neg(arg(x, "neg", "x")), {x}, [](Inputs& in, const Tensor& g) { in[0].add_grad(ops::neg(g)); }, "neg");
}

Variable exp(const Variable& x) {
  Tensor out = ops::exp(arg(x, "exp", "x"));
  return Variable::make(
      out, {x}, [out](Inputs& in, const Tensor& g) { in[0].add_grad(ops::mul(g, out)); }, "exp");
}

Variable log(const Variable& x) {
  const Tensor& xd = arg(x, "log", "x");
  return Variable::make(
      ops::log(xd), {x}, [xd](Inputs& in, const Tensor& g) { in[0].add_grad(ops::div(g, xd)); }, "log");
}

Variable sqrt(const Variable& x) {
  Tensor out = ops::sqrt(arg(x, "sqrt", "x"));
  return Variable::make(
      out, {x}, [out](Inputs& in, const Tensor& g) { in[0].add_grad(ops::div(ops::mul(g, 0.5), out)); }, "sqrt");
}

Variable abs(const Variable& x) {
  const Tensor& xd = arg(x, "abs", "x");
  return Variable::make(
      ops::abs(xd), {x},
      [xd](Inputs& in, const Tensor& g) {
        // sign(x) with sign(0) = 0: g where x > 0, -g where x < 0, 0 elsewhere (and at NaN).
        const Tensor z = zero_like(g);
        in[0].add_grad(ops::where(ops::gt(xd, 0.0), g, ops::where(ops::lt(xd, 0.0), ops::neg(g), z)));
      },
      "abs");
}

Variable pow(const Variable& x, double exponent) {
  const Tensor& xd = arg(x, "pow", "x");
  return Variable::make(
      ops::pow(xd, exponent), {x},
      [xd, exponent](Inputs& in, const Tensor& g) {
        // e * x^(e-1); e == 0 is a constant, whose x^-1 would turn 0 * inf into NaN at x = 0.
        if (exponent == 0.0) {
          in[0].add_grad(Tensor::zeros(xd.shape(), xd.dtype(), xd.device()));
          return;
        }
        in[0].add_grad(ops::mul(ops::mul(g, ops::pow(xd, exponent - 1.0)), exponent));
      },
      "pow_scalar");
}

Variable pow(const Variable& a, const Variable& b) {
  const Tensor &ad = arg(a, "pow", "a"), &bd = arg(b, "pow", "b");
  Tensor out = ops::pow(ad, bd);
  return Variable::make(
      out, {a, b},
      [ad, bd, out](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) {  // b * a^(b-1)
          const Tensor da = ops::mul(bd, ops::pow(ad, ops::add(bd, -1.0)));
          in[0].add_grad(ops::sum_to(ops::mul(g, da), ad.shape()));
        }
        if (in[1].requires_grad()) {
          // a^b * log(a). At a == 0 with b >= 0 the limit is 0 (not 0 * -inf = NaN), as in
          // PyTorch's pow_backward_exponent; a < 0 gives NaN (no real derivative).
          const Tensor z = zero_like(g);
          const Tensor db = ops::mul(out, ops::log(ad));
          const DType dt = g.dtype();
          const Tensor at_zero = ops::gt(ops::mul(ops::eq(ad, z).to(dt), ops::ge(bd, z).to(dt)), 0.5);  // a == 0 && b >= 0
          in[1].add_grad(ops::sum_to(ops::where(at_zero, z, ops::mul(g, db)), bd.shape()));
        }
      },
      "pow");
}

Variable relu(const Variable& x) {
  const Tensor& xd = arg(x, "relu", "x");
  return Variable::make(
      ops::relu(xd), {x}, [xd](Inputs& in, const Tensor& g) { in[0].add_grad(ops::relu_backward(g, xd)); }, "relu");
}

Variable sigmoid(const Variable& x) {
  Tensor out = ops::sigmoid(arg(x, "sigmoid", "x"));
  return Variable::make(
      out, {x}, [out](Inputs& in, const Tensor& g) { in[0].add_grad(ops::sigmoid_backward(g, out)); }, "sigmoid");
}

Variable clamp(const Variable& x, double lo, double hi) {
  const Tensor& xd = arg(x, "clamp", "x");
  return Variable::make(
      ops::clamp(xd, lo, hi), {x},
      [xd, lo, hi](Inputs& in, const Tensor& g) {
        // Passes where lo <= x <= hi (bounds included, as torch.clamp).
        const Tensor z = zero_like(g);
        in[0].add_grad(ops::where(ops::lt(xd, lo), z, ops::where(ops::gt(xd, hi), z, g)));
      },
      "clamp");
}

Variable where(const Tensor& cond, const Variable& a, const Variable& b) {
  const Tensor &ad = arg(a, "where", "a"), &bd = arg(b, "where", "b");
  return Variable::make(
      ops::where(cond, ad, bd), {a, b},
      [cond](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(masked_to(cond, g, in[0].shape()));
        if (in[1].requires_grad())
          in[1].add_grad(ops::sum_to(ops::where(cond, zero_like(g), g), in[1].shape()));
      },
      "where");
}

namespace {
Variable pick(const Variable& a, const Variable& b, bool is_max) {
  const char* op = is_max ? "maximum" : "minimum";
  const Tensor &ad = arg(a, op, "a"), &bd = arg(b, op, "b");
  Tensor out = is_max ? ops::maximum(ad, bd) : ops::minimum(ad, bd);
  // The gradient goes to a where a won or tied, to b elsewhere. Broadcast to out's shape.
  Tensor to_a = is_max ? ops::ge(ad, bd) : ops::le(ad, bd);
  return Variable::make(
      std::move(out), {a, b},
      [to_a](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(masked_to(to_a, g, in[0].shape()));
        if (in[1].requires_grad()) in[1].add_grad(ops::sum_to(ops::where(to_a, zero_like(g), g), in[1].shape()));
      },
      op);
}
}  // namespace

Variable maximum(const Variable& a, const Variable& b) { return pick(a, b, true); }
Variable minimum(const Variable& a, const Variable& b) { return pick(a, b, false); }

// ================================================================== reductions
Variable sum(const Variable& x) {
  const Tensor& xd = arg(x, "sum", "x");
  return Variable::make(
      ops::sum(xd), {x}, [s = xd.shape()](Inputs& in, const Tensor& g) { in[0].add_grad(g.expand(s)); }, "sum");
}

Variable sum(const Variable& x, int dim, bool keepdim) {
  const Tensor& xd = arg(x, "sum", "x");
  const int d = wrap_dim(dim, xd.ndim(), "sum");
  return Variable::make(
      ops::sum(xd, d, keepdim), {x},
      [s = xd.shape(), d, keepdim](Inputs& in, const Tensor& g) { in[0].add_grad(keep_dim(g, d, keepdim).expand(s)); },
      "sum_dim");
}

Variable mean(const Variable& x) {
  const Tensor& xd = arg(x, "mean", "x");
  Tensor out = ops::mean(xd);
  return Variable::make(
      std::move(out), {x},
      [s = xd.shape()](Inputs& in, const Tensor& g) {
        in[0].add_grad(ops::mul(g, 1.0 / double(s.numel())).expand(s));
      },
      "mean");
}

Variable mean(const Variable& x, int dim, bool keepdim) {
  const Tensor& xd = arg(x, "mean", "x");
  const int d = wrap_dim(dim, xd.ndim(), "mean");
  Tensor out = ops::mean(xd, d, keepdim);
  return Variable::make(
      std::move(out), {x},
      [s = xd.shape(), d, keepdim](Inputs& in, const Tensor& g) {
        in[0].add_grad(keep_dim(ops::mul(g, 1.0 / double(s[d])), d, keepdim).expand(s));
      },
      "mean_dim");
}

Variable max(const Variable& x, int dim, bool keepdim) { return extremum(x, dim, keepdim, true); }
Variable min(const Variable& x, int dim, bool keepdim) { return extremum(x, dim, keepdim, false); }

// ================================================================== linear algebra
Variable matmul(const Variable& a, const Variable& b) {
  const Tensor &ad = arg(a, "matmul", "a"), &bd = arg(b, "matmul", "b");
  Tensor keep_a = b.requires_grad() ? ad : Tensor(), keep_b = a.requires_grad() ? bd : Tensor();
  return Variable::make(
      ops::matmul(ad, bd), {a, b},
      [keep_a, keep_b](Inputs& in, const Tensor& g) {
        // 2-D: dA = G B^T, dB = A^T G. 3-D batched the same per batch; an operand with batch 1
        // was broadcast, so its gradient sums over the batch. Transposed views need no copy.
        const int last = g.ndim() - 1;
        if (in[0].requires_grad()) {
          Tensor da = ops::matmul(g, keep_b.transpose(last - 1, last));
          in[0].add_grad(ops::sum_to(da, in[0].shape()));
        }
        if (in[1].requires_grad()) {
          Tensor db = ops::matmul(keep_a.transpose(last - 1, last), g);
          in[1].add_grad(ops::sum_to(db, in[1].shape()));
        }
      },
      "matmul");
}

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  const Tensor &xd = arg(x, "linear", "x"), &wd = arg(weight, "linear", "weight");
  const Tensor bd = bias.defined() ? bias.data() : Tensor();
  Tensor keep_x = weight.requires_grad() ? xd : Tensor(), keep_w = x.requires_grad() ? wd : Tensor();
  std::vector<Variable> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return Variable::make(
      ops::linear(xd, wd, bd), std::move(inputs),
      [keep_x, keep_w](Inputs& in, const Tensor& g) {  // g [N, out]
        if (in[0].requires_grad()) in[0].add_grad(ops::matmul(g, keep_w));                  // [N, in]
        if (in[1].requires_grad()) in[1].add_grad(ops::matmul(g.transpose(0, 1), keep_x));  // [out, in]
        if (in.size() > 2 && in[2].requires_grad()) in[2].add_grad(ops::sum(g, 0));         // [out]
      },
      "linear");
}

// ================================================================== indexing
Variable index_select(const Variable& x, int dim, const Tensor& index) {
  const Tensor& xd = arg(x, "index_select", "x");
  const int d = wrap_dim(dim, xd.ndim(), "index_select");
  return Variable::make(
      ops::index_select(xd, d, index), {x},
      [s = xd.shape(), d, index](Inputs& in, const Tensor& g) {
        in[0].add_grad(ops::index_add(Tensor::zeros(s, g.dtype(), g.device()), d, index, g));
      },
      "index_select");
}

Variable gather(const Variable& x, int dim, const Tensor& index) {
  const Tensor& xd = arg(x, "gather", "x");
  const int d = wrap_dim(dim, xd.ndim(), "gather");
  return Variable::make(
      ops::gather(xd, d, index), {x},
      [s = xd.shape(), d, index](Inputs& in, const Tensor& g) {
        in[0].add_grad(ops::scatter_add(Tensor::zeros(s, g.dtype(), g.device()), d, index, g));
      },
      "gather");
}

Variable index_add(const Variable& self, int dim, const Tensor& index, const Variable& src) {
  const Tensor &sd = arg(self, "index_add", "self"), &srcd = arg(src, "index_add", "src");
  const int d = wrap_dim(dim, sd.ndim(), "index_add");
  return Variable::make(
      ops::index_add(sd, d, index, srcd), {self, src},
      [d, index](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(g);
        if (in[1].requires_grad()) in[1].add_grad(ops::index_select(g, d, index));
      },
      "index_add");
}

Variable scatter_add(const Variable& self, int dim, const Tensor& index, const Variable& src) {
  const Tensor &sd = arg(self, "scatter_add", "self"), &srcd = arg(src, "scatter_add", "src");
  const int d = wrap_dim(dim, sd.ndim(), "scatter_add");
  return Variable::make(
      ops::scatter_add(sd, d, index, srcd), {self, src},
      [d, index](Inputs& in, const Tensor& g) {
        if (in[0].requires_grad()) in[0].add_grad(g);
        if (!in[1].requires_grad()) return;
        // Only src's leading index-shaped block was scattered (torch semantics); the rest of
        // src did not reach the output and gets a zero gradient.
        Tensor picked = ops::gather(g, d, index);  // index's shape
        if (picked.shape() == in[1].shape()) {
          in[1].add_grad(picked);
          return;
        }
        Tensor gsrc = Tensor::zeros(in[1].shape(), g.dtype(), g.device());
        Tensor block = gsrc;
        for (int i = 0; i < index.ndim(); ++i) block = block.narrow(i, 0, index.size(i));
        block.copy_(picked);
        in[1].add_grad(gsrc);
      },
      "scatter_add");
}

std::pair<Variable, Tensor> topk(const Variable& x, int64_t k, int dim, bool largest) {
  const Tensor& xd = arg(x, "topk", "x");
  const int d = wrap_dim(dim, xd.ndim(), "topk");
  auto [values, indices] = ops::topk(xd, k, d, largest);
  Variable out = Variable::make(
      std::move(values), {x},
      [s = xd.shape(), d, indices = indices](Inputs& in, const Tensor& g) {
        in[0].add_grad(ops::scatter_add(Tensor::zeros(s, g.dtype(), g.device()), d, indices, g));
      },
      "topk");
  return {std::move(out), indices};
}

// ================================================================== shape
Variable reshape(const Variable& x, const Shape& shape) {
  const Tensor& xd = arg(x, "reshape", "x");
  return Variable::make(
      xd.reshape(shape), {x}, [s = xd.shape()](Inputs& in, const Tensor& g) { in[0].add_grad(g.reshape(s)); },
      "reshape");
}

Variable narrow(const Variable& x, int dim, int64_t start, int64_t length) {
  const Tensor& xd = arg(x, "narrow", "x");
  const int d = wrap_dim(dim, xd.ndim(), "narrow");
  return Variable::make(
      xd.narrow(d, start, length), {x},
      [s = xd.shape(), d, start, length](Inputs& in, const Tensor& g) {
        Tensor gx = Tensor::zeros(s, g.dtype(), g.device());
        Tensor window = gx.narrow(d, start, length);  // fresh buffer: safe to write
        window.copy_(g);
        in[0].add_grad(gx);
      },
      "narrow");
}

Variable permute(const Variable& x, const std::vector<int>& perm) {
  const Tensor& xd = arg(x, "permute", "x");
  Tensor out = xd.permute(perm);  // validates perm
  std::vector<int> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[size_t(wrap_dim(perm[i], xd.ndim(), "permute"))] = int(i);
  return Variable::make(
      std::move(out), {x}, [inverse](Inputs& in, const Tensor& g) { in[0].add_grad(g.permute(inverse)); },
      "permute");
}

Variable transpose(const Variable& x, int dim0, int dim1) {
  return Variable::make(
      arg(x, "transpose", "x").transpose(dim0, dim1), {x},
      [dim0, dim1](Inputs& in, const Tensor& g) { in[0].add_grad(g.transpose(dim0, dim1)); }, "transpose");
}

Variable expand(const Variable& x, const Shape& shape) {
  const Tensor& xd = arg(x, "expand", "x");
  return Variable::make(
      xd.expand(shape), {x}, [s = xd.shape()](Inputs& in, const Tensor& g) { in[0].add_grad(ops::sum_to(g, s)); },
      "expand");
}

namespace {
/// A view whose gradient is the output gradient in the input's shape (squeeze, unsqueeze, flatten).
Variable same_elements(const Variable& x, Tensor out, const char* name) {
  return Variable::make(
      std::move(out), {x}, [s = x.shape()](Inputs& in, const Tensor& g) { in[0].add_grad(g.reshape(s)); }, name);
}
}  // namespace

Variable squeeze(const Variable& x, int dim) {
  return same_elements(x, arg(x, "squeeze", "x").squeeze(dim), "squeeze");
}
Variable unsqueeze(const Variable& x, int dim) {
  return same_elements(x, arg(x, "unsqueeze", "x").unsqueeze(dim), "unsqueeze");
}
Variable flatten(const Variable& x, int start_dim, int end_dim) {
  return same_elements(x, arg(x, "flatten", "x").flatten(start_dim, end_dim), "flatten");
}

Variable contiguous(const Variable& x) {
  return Variable::make(
      arg(x, "contiguous", "x").contiguous(), {x}, [](Inputs& in, const Tensor& g) { in[0].add_grad(g); },
      "contiguous");
}

Variable concat(const std::vector<Variable>& xs, int dim) {
  DRCNN_CHECK(!xs.empty(), "concat: expected at least one variable, got none");
  std::vector<Tensor> parts;
  parts.reserve(xs.size());
  for (const Variable& v : xs) parts.push_back(arg(v, "concat", "xs[i]"));
  const int d = wrap_dim(dim, parts[0].ndim(), "concat");
  Tensor out = ops::concat(parts, d);
  std::vector<int64_t> extents;
  for (const Tensor& t : parts) extents.push_back(t.size(d));
  return Variable::make(
      std::move(out), xs,
      [d, extents](Inputs& in, const Tensor& g) {
        int64_t start = 0;
        for (size_t i = 0; i < in.size(); ++i) {
          if (in[i].requires_grad()) in[i].add_grad(g.narrow(d, start, extents[i]));
          start += extents[i];
        }
      },
      "concat");
}

Variable stack(const std::vector<Variable>& xs, int dim) {
  DRCNN_CHECK(!xs.empty(), "stack: expected at least one variable, got none");
  std::vector<Tensor> parts;
  parts.reserve(xs.size());
  for (const Variable& v : xs) parts.push_back(arg(v, "stack", "xs[i]"));
  const int d = wrap_dim(dim, parts[0].ndim() + 1, "stack");
  return Variable::make(
      ops::stack(parts, d), xs,
      [d](Inputs& in, const Tensor& g) {
        for (size_t i = 0; i < in.size(); ++i)
          if (in[i].requires_grad()) in[i].add_grad(g.select(d, int64_t(i)));
      },
      "stack");
}
}  // namespace drcnn
