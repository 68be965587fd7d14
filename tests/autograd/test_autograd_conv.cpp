// Finite-difference checks of the Variable conv2d (include/drcnn/autograd/conv.h) in float64
// on the CPU, with gradcheck's default tolerances (eps 1e-6, rtol 1e-4, atol 1e-6): conv2d is
// linear in each operand, so central differences are exact up to rounding (~1e-10 here).
#include <catch2/catch.hpp>

#include "common/gradcheck.h"
#include "common/random.h"
#include "drcnn/autograd/conv.h"

using namespace drcnn;
using drcnn::test::gradcheck;
using In = std::vector<Variable>;

namespace {
ops::Conv2dParams params(std::array<int64_t, 2> s, std::array<int64_t, 2> p, std::array<int64_t, 2> d, int64_t g) {
  ops::Conv2dParams c;
  c.stride = s;
  c.padding = p;
  c.dilation = d;
  c.groups = g;
  return c;
}
Variable leaf(const Shape& s, uint64_t seed, bool grad = true) {
  return Variable(test::random_tensor(s, seed, DType::Float64), grad);
}
}  // namespace

TEST_CASE("autograd/conv2d: gradcheck of input, weight and bias over strides, padding, dilation, groups",
          "[autograd][conv]") {
  struct Case {
    Shape x, w;
    ops::Conv2dParams p;
  };
  const std::vector<Case> cases = {
      {{2, 3, 6, 7}, {4, 3, 3, 3}, params({1, 1}, {1, 1}, {1, 1}, 1)},
      {{1, 4, 7, 6}, {4, 2, 3, 2}, params({2, 1}, {0, 1}, {1, 2}, 2)},
      {{2, 4, 5, 5}, {4, 1, 3, 3}, params({1, 1}, {2, 2}, {2, 2}, 4)},  // depthwise, dilated
      {{1, 3, 5, 6}, {5, 3, 1, 1}, params({1, 1}, {0, 0}, {1, 1}, 1)},  // pointwise
      {{1, 2, 9, 8}, {3, 2, 4, 4}, params({3, 2}, {1, 2}, {1, 1}, 1)},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    const auto x = leaf(c.x, seed++), w = leaf(c.w, seed++), b = leaf({c.w[0]}, seed++);
    const auto r = gradcheck([&](In in) { return conv2d(in[0], in[1], in[2], c.p); }, {x, w, b});
    INFO(r.report);
    REQUIRE(r.ok);
    CHECK(r.checked == c.x.numel() + c.w.numel() + c.w[0]);
  }
}

TEST_CASE("autograd/conv2d: no bias, and gradients only where required", "[autograd][conv]") {
  const auto p = params({2, 2}, {1, 1}, {1, 1}, 1);
  const auto x = leaf({1, 2, 6, 6}, 11), w = leaf({3, 2, 3, 3}, 12);
  auto r = gradcheck([&](In in) { return conv2d(in[0], in[1], Variable(), p); }, {x, w});
  INFO(r.report);
  REQUIRE(r.ok);
  // Frozen weight: only the input gets a gradient (the weight keeps none).
  const auto xf = leaf({1, 2, 6, 6}, 13), wf = leaf({3, 2, 3, 3}, 14, false);
  r = gradcheck([&](In in) { return conv2d(in[0], in[1], Variable(), p); }, {xf, wf});
  INFO(r.report);
  REQUIRE(r.ok);
  CHECK_FALSE(wf.has_grad());
  // Input without gradient (a data image): weight and bias only.
  const auto xi = leaf({1, 2, 6, 6}, 15, false), wi = leaf({3, 2, 3, 3}, 16), bi = leaf({3}, 17);
  r = gradcheck([&](In in) { return conv2d(in[0], in[1], in[2], p); }, {xi, wi, bi});
  INFO(r.report);
  REQUIRE(r.ok);
  CHECK_FALSE(xi.has_grad());
}

TEST_CASE("autograd/conv2d: chained convolutions back-propagate through both", "[autograd][conv]") {
  const auto x = leaf({1, 2, 7, 7}, 21), w1 = leaf({3, 2, 3, 3}, 22), w2 = leaf({2, 3, 1, 1}, 23);
  const auto r = gradcheck(
      [&](In in) { return conv2d(relu(conv2d(in[0], in[1], Variable(), params({1, 1}, {1, 1}, {1, 1}, 1))), in[2]); },
      {x, w1, w2});
  INFO(r.report);
  REQUIRE(r.ok);
}

TEST_CASE("autograd/conv2d: undefined arguments are errors naming conv2d", "[autograd][conv]") {
  const auto w = leaf({3, 2, 3, 3}, 31);
  REQUIRE_THROWS_WITH(conv2d(Variable(), w), Catch::Contains("conv2d: argument 'input' is an undefined Variable"));
  REQUIRE_THROWS_WITH(conv2d(leaf({1, 2, 5, 5}, 32), Variable()),
                      Catch::Contains("conv2d: argument 'weight' is an undefined Variable"));
}
