// gradcheck: autograd's gradient against central finite differences, in float64 on the CPU.
//
//   auto r = drcnn::test::gradcheck([](std::vector<Variable> in) { return mul(in[0], in[1]); },
//                                   {Variable(a, true), Variable(b, true)});
//   INFO(r.report);
//   REQUIRE(r.ok);
//
// The scalar checked is L(x) = sum(f(x) * w) for a fixed random weight w (so every output
// element counts, with a different weight, and a gradient that is wrong only for some elements
// cannot cancel out). For every element j of every input i that requires grad:
//   analytic = dL/dx_ij from backward(),  numeric = (L(x + eps e_ij) - L(x - eps e_ij)) / (2 eps)
// and the two must satisfy |analytic - numeric| <= atol + rtol * |numeric|.
// Inputs may be non-contiguous views (each element is perturbed through its strides) but must
// not overlap in memory (no expanded stride-0 inputs, no two views of one buffer).
// Keep samples away from kinks (relu/abs at 0, clamp bounds, max ties): there the finite
// difference straddles two branches.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "drcnn/autograd/functions.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"

namespace drcnn::test {

struct GradcheckResult {
  bool ok = true;
  int64_t checked = 0;      // elements compared
  int64_t mismatches = 0;
  double max_abs_err = 0;   // over all compared elements
  double max_rel_err = 0;   // |a - n| / |n| over the elements whose abs error exceeds atol
  std::string report;       // the first mismatches (input, element, both values) + the maxima
};

namespace detail {
/// Address of the row-major element `flat` of a CPU float64 tensor, through its strides.
inline double* element_ptr(const Tensor& t, int64_t flat) {
  double* p = t.data<double>();
  for (int d = t.ndim() - 1; d >= 0; --d) {
    const int64_t n = t.size(d);
    p += (flat % n) * t.stride(d);
    flat /= n;
  }
  return p;
}

/// sum(out * w) in double, without recording.
inline double weighted_sum(const Tensor& out, const Tensor& w) { return ops::sum(ops::mul(out, w)).item<double>(); }
}  // namespace detail

/// Compares autograd's gradient with central finite differences (see the file comment).
/// f: std::vector<Variable> -> Variable. Requires: every input is a float64 CPU tensor.
/// Leaves the inputs' values as they were; overwrites their grad.
inline GradcheckResult gradcheck(const std::function<Variable(std::vector<Variable>)>& f, std::vector<Variable> inputs,
                                 double eps = 1e-6, double rtol = 1e-4, double atol = 1e-6, uint64_t seed = 20240611) {
  GradcheckResult r;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Variable& v = inputs[i];
    DRCNN_CHECK(v.defined() && v.dtype() == DType::Float64 && v.device().is_cpu(), "gradcheck: input ", i,
                " must be a float64 CPU variable");
    for (int d = 0; d < v.ndim(); ++d)
      DRCNN_CHECK(v.data().stride(d) != 0 || v.size(d) <= 1, "gradcheck: input ", i,
                  " is expanded (stride 0); perturbing one element would move several");
    inputs[i].zero_grad();
  }

  // Analytic: one backward of sum(f(x) * w).
  const Variable out = f(inputs);
  DRCNN_CHECK(out.defined() && out.dtype() == DType::Float64, "gradcheck: f must return a float64 variable");
  Generator gen(seed);
  // Weights in [0.5, 1.5): distinct per output, none close to zero.
  const Tensor w = ops::add(Tensor::rand(out.shape(), gen, DType::Float64), 0.5);
  Variable loss = sum(mul(out, Variable(w)));
  if (loss.requires_grad()) loss.backward();

  // Numeric: perturb each element in turn, evaluating without a graph.
  NoGradGuard no_grad;
  auto eval = [&] { return detail::weighted_sum(f(inputs).data(), w); };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    const Tensor& x = inputs[i].data();
    const bool has = inputs[i].has_grad();
    const Tensor g = has ? inputs[i].grad().contiguous() : Tensor();
    if (has && g.shape() != x.shape()) {
      r.ok = false;
      r.report += fmt::format("input {}: gradient has shape {} but the input has shape {}\n", i, g.shape(), x.shape());
      continue;
    }
    const double* gp = has ? g.data<double>() : nullptr;
    for (int64_t j = 0; j < x.numel(); ++j) {
      double* p = detail::element_ptr(x, j);
      const double saved = *p;
      *p = saved + eps;
      const double plus = eval();
      *p = saved - eps;
      const double minus = eval();
      *p = saved;
      const double numeric = (plus - minus) / (2 * eps);
      const double analytic = has ? gp[j] : 0.0;
      const double abs_err = std::abs(analytic - numeric);
      const double rel_err = abs_err / std::max(std::abs(numeric), 1e-300);
      ++r.checked;
      r.max_abs_err = std::max(r.max_abs_err, abs_err);
      if (abs_err > atol) r.max_rel_err = std::max(r.max_rel_err, rel_err);
      if (!(abs_err <= atol + rtol * std::abs(numeric))) {  // written so that NaN fails
        r.ok = false;
        if (r.mismatches++ < 8)
          r.report += fmt::format("input {} element {}: autograd {:.10g} vs finite difference {:.10g} (abs err {:.3g})\n",
                                  i, j, analytic, numeric, abs_err);
      }
    }
  }
  r.report += fmt::format("gradcheck: {} elements, {} mismatches, max abs err {:.3g}, max rel err {:.3g} "
                          "(eps {}, rtol {}, atol {})",
                          r.checked, r.mismatches, r.max_abs_err, r.max_rel_err, eps, rtol, atol);
  return r;
}
}  // namespace drcnn::test
