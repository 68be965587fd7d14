// drcnn's layer ops against PyTorch 1.13 / torchvision 0.14 (tests/data/nn/*.safetensors,
// written by tools/golden_nn.py): forward values and the gradients autograd gives, in float32
// and float64. The case list and each case's parameters come from the file. Each comparison
// prints its max errors (ctest -V shows them). Tolerances are stated per op below.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/allclose.h"
#include "common/golden.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/autograd/nn.h"
#include "drcnn/ops/nn.h"

using namespace drcnn;
using drcnn::test::load_golden;

namespace {

std::vector<std::string> cases_of(const test::Golden& g) {
  std::vector<std::string> out;
  std::stringstream ss(g.meta("cases"));
  for (std::string c; std::getline(ss, c, ',');) out.push_back(c);
  REQUIRE_FALSE(out.empty());
  return out;
}

std::vector<int64_t> params_of(const test::Golden& g, const std::string& c) { return g[c + ".params"].to_vector<int64_t>(); }

const char* const kTags[] = {"f32", "f64"};
bool is_f32(const char* tag) { return std::string(tag) == "f32"; }

/// sum(y * g) backward from a Variable, so the golden's grad_output seeds the gradients.
void backward_with(Variable& y, const Tensor& g) { y.backward(g); }
}  // namespace

TEST_CASE("golden/pytorch: max_pool2d values, indices and gradients equal PyTorch exactly", "[golden][ops][cpu]") {
  // Values are copied, indices follow the same scan rule, and aten's backward adds each output's
  // gradient in output order, which is the order our gather sums in: exact in both dtypes.
  const auto g = load_golden("nn/max_pool2d");
  for (const auto& c : cases_of(g)) {
    const auto p = params_of(g, c);  // N C H W, kh kw, sh sw, ph pw, dh dw, ceil, rounding
    ops::MaxPool2dOptions o;
    o.kernel_size = {p[4], p[5]};
    o.stride = {p[6], p[7]};
    o.padding = {p[8], p[9]};
    o.dilation = {p[10], p[11]};
    o.ceil_mode = p[12] != 0;
    for (const char* tag : kTags) {
      const std::string k = c + "." + tag + ".";
      INFO("case " << k);
      Variable x(g[k + "input"], true);
      Variable y = max_pool2d(x, o);
      test::expect_golden_close("max_pool2d " + k + "output", y.data(), g[k + "output"], 0, 0);
      const auto r = ops::max_pool2d_with_indices(x.data(), o);
      CHECK(r.indices.to_vector<int64_t>() == g[k + "indices"].to_vector<int64_t>());
      backward_with(y, g[k + "grad_output"]);
      test::expect_golden_close("max_pool2d " + k + "grad_input", x.grad(), g[k + "grad_input"], 0, 0);
    }
  }
}

TEST_CASE("golden/pytorch: upsample_nearest2d equals F.interpolate(mode nearest, size) exactly", "[golden][ops][cpu]") {
  // The same float source-index rule, and the backward sums in output order as aten does: exact.
  const auto g = load_golden("nn/upsample_nearest2d");
  for (const auto& c : cases_of(g)) {
    const auto p = params_of(g, c);  // H W OH OW
    for (const char* tag : kTags) {
      const std::string k = c + "." + tag + ".";
      INFO("case " << k);
      const Tensor in = g[k + "input"];
      if (!is_f32(tag)) {  // the input formula is reproducible: sin(0.37 i + 0.5)
        const auto v = in.to_vector<double>();
        for (size_t i = 0; i < v.size(); ++i) REQUIRE(std::abs(v[i] - std::sin(0.37 * double(i) + 0.5)) < 1e-15);
      }
      Variable x(in, true);
      Variable y = upsample_nearest2d(x, p[2], p[3]);
      test::expect_golden_close("upsample " + k + "output", y.data(), g[k + "output"], 0, 0);
      backward_with(y, g[k + "grad_output"]);
      test::expect_golden_close("upsample " + k + "grad_input", x.grad(), g[k + "grad_input"], 0, 0);
    }
  }
}

TEST_CASE("golden/torchvision: FrozenBatchNorm2d with eps 1e-5 and 0", "[golden][ops][cpu]") {
  // Same expression as torchvision (scale = w * rsqrt(var + eps), shift = b - mean * scale,
  // x * scale + shift, no contraction on the host); allowed 2 float ulps (rtol 2.4e-7) /
  // 1e-15 (f64) should the rounding of rsqrt differ, atol 1e-7 / 1e-15 near zero.
  const auto g = load_golden("nn/frozen_batch_norm2d");
  for (const auto& c : cases_of(g)) {
    const auto p = params_of(g, c);  // N C H W, eps code (10^-code, 0 for 0)
    const double eps = p[4] == 0 ? 0.0 : std::pow(10.0, -double(p[4]));
    for (const char* tag : kTags) {
      const std::string k = c + "." + tag + ".";
      INFO("case " << k);
      const double rtol = is_f32(tag) ? 2.4e-7 : 1e-15, atol = is_f32(tag) ? 1e-7 : 1e-15;
      Variable x(g[k + "input"], true);
      Variable y = frozen_batch_norm2d(x, g[k + "weight"], g[k + "bias"], g[k + "running_mean"], g[k + "running_var"], eps);
      test::expect_golden_close("frozen_bn " + k + "output", y.data(), g[k + "output"], rtol, atol);
      backward_with(y, g[k + "grad_output"]);
      test::expect_golden_close("frozen_bn " + k + "grad_input", x.grad(), g[k + "grad_input"], rtol, atol);
    }
  }
}

TEST_CASE("golden/pytorch: batch_norm training (3 running-stat updates) and eval, with gradients", "[golden][ops][cpu]") {
  // Statistics are summed in double on both sides but in different orders and forms (aten: mean
  // then sum of squared deviations; ours: fixed chunks, corrected two-pass); the outputs, O(1),
  // go through float coefficients: f32 rtol/atol 1e-5; f64 1e-12. Gradients sum 90 terms per
  // channel: f32 atol 1e-5 relative to sums of O(10).
  const auto g = load_golden("nn/batch_norm2d");
  const double momentum = std::stod(g.meta("momentum")), eps = std::stod(g.meta("eps"));
  for (const auto& c : cases_of(g)) {
    const auto p = params_of(g, c);  // N C H W training
    const bool training = p[4] != 0;
    for (const char* tag : kTags) {
      const std::string k = c + "." + tag + ".";
      INFO("case " << k);
      const double rtol = is_f32(tag) ? 1e-5 : 1e-12, atol = is_f32(tag) ? 1e-5 : 1e-12;
      const Tensor rm = g[k + "running_mean_in"].clone(), rv = g[k + "running_var_in"].clone();
      Variable w(g[k + "weight"], true), b(g[k + "bias"], true);
      Variable x, y;
      for (int step = 0; step < (training ? 3 : 1); ++step) {
        x = Variable(g[k + "input" + std::to_string(step)], true);
        y = batch_norm2d(x, w, b, rm, rv, training, momentum, eps);
      }
      test::expect_golden_close("batch_norm " + k + "output", y.data(), g[k + "output"], rtol, atol);
      test::expect_golden_close("batch_norm " + k + "running_mean", rm, g[k + "running_mean"], rtol, atol);
      test::expect_golden_close("batch_norm " + k + "running_var", rv, g[k + "running_var"], rtol, atol);
      w.zero_grad();
      b.zero_grad();
      backward_with(y, g[k + "grad_output"]);
      test::expect_golden_close("batch_norm " + k + "grad_input", x.grad(), g[k + "grad_input"], rtol, atol);
      test::expect_golden_close("batch_norm " + k + "grad_weight", w.grad(), g[k + "grad_weight"], rtol, atol * 10);
      test::expect_golden_close("batch_norm " + k + "grad_bias", b.grad(), g[k + "grad_bias"], rtol, atol * 10);
    }
  }
}

TEST_CASE("golden/pytorch: group_norm for 1, 2, 4 and 8 groups, with gradients", "[golden][ops][cpu]") {
  // aten's GroupNorm computes moments in float (f32) with its own order; we sum in double:
  // f32 rtol/atol 1e-5 (outputs O(1)), gradients of w/b sum 40 terms: atol 1e-4; f64 1e-12.
  const auto g = load_golden("nn/group_norm");
  const double eps = std::stod(g.meta("eps"));
  for (const auto& c : cases_of(g)) {
    const auto p = params_of(g, c);  // N C H W groups
    for (const char* tag : kTags) {
      const std::string k = c + "." + tag + ".";
      INFO("case " << k);
      const double rtol = is_f32(tag) ? 1e-5 : 1e-12, atol = is_f32(tag) ? 1e-5 : 1e-12;
      Variable x(g[k + "input"], true), w(g[k + "weight"], true), b(g[k + "bias"], true);
      Variable y = group_norm(x, p[4], w, b, eps);
      test::expect_golden_close("group_norm " + k + "output", y.data(), g[k + "output"], rtol, atol);
      backward_with(y, g[k + "grad_output"]);
      test::expect_golden_close("group_norm " + k + "grad_input", x.grad(), g[k + "grad_input"], rtol, atol);
      test::expect_golden_close("group_norm " + k + "grad_weight", w.grad(), g[k + "grad_weight"], rtol, atol * 10);
      test::expect_golden_close("group_norm " + k + "grad_bias", b.grad(), g[k + "grad_bias"], rtol, atol * 10);
    }
  }
}

TEST_CASE("golden/pytorch: linear forward and the three gradients", "[golden][ops][cpu]") {
  // Dot products of 7 (forward) or 5 (weight gradient) terms in another order than MKL/OpenBLAS:
  // f32 rtol 1e-6 / atol 1e-6; f64 1e-14.
  const auto g = load_golden("nn/linear");
  for (const char* tag : kTags) {
    const std::string k = std::string("linear.") + tag + ".";
    const double tol = is_f32(tag) ? 1e-6 : 1e-14;
    Variable x(g[k + "input"], true), w(g[k + "weight"], true), b(g[k + "bias"], true);
    Variable y = linear(x, w, b);
    test::expect_golden_close("linear " + k + "output", y.data(), g[k + "output"], tol, tol);
    backward_with(y, g[k + "grad_output"]);
    test::expect_golden_close("linear " + k + "grad_input", x.grad(), g[k + "grad_input"], tol, tol);
    test::expect_golden_close("linear " + k + "grad_weight", w.grad(), g[k + "grad_weight"], tol, tol);
    test::expect_golden_close("linear " + k + "grad_bias", b.grad(), g[k + "grad_bias"], tol, tol);
  }
}
