// Finite-difference checks of the differentiable losses (include/drcnn/autograd/losses.h), in
// float64 on the CPU, with gradcheck's default tolerances (eps 1e-6, rtol 1e-4, atol 1e-6).
// SmoothL1/L1 samples keep |pred - target| at least 0.1 away from 0 and from beta (the kinks).
#include <catch2/catch.hpp>

#include "common/gradcheck.h"
#include "common/random.h"
#include "drcnn/autograd/losses.h"

using namespace drcnn;
using drcnn::test::gradcheck;
using In = std::vector<Variable>;
using ops::LossReduce;
using ops::Reduction;

namespace {
/// target + d with |d| in [0.1, 0.4] or [0.6, 1.5] (random sign): away from 0 and from 0.5.
std::pair<Variable, Tensor> pred_target(const Shape& shape, uint64_t seed) {
  const auto t = test::random_values(shape.numel(), seed, -1, 1);
  const auto u = test::random_values(shape.numel(), seed + 1, 0, 1);
  const auto s = test::random_ints(shape.numel(), seed + 2, 0, 3);
  std::vector<double> p(t.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double mag = (s[i] & 1) ? 0.1 + 0.3 * u[i] : 0.6 + 0.9 * u[i];
    p[i] = t[i] + ((s[i] & 2) ? mag : -mag);
  }
  return {Variable(Tensor::from_vector<double>(p, shape), true), Tensor::from_vector<double>(t, shape)};
}
const LossReduce kReductions[] = {{Reduction::None, {}}, {Reduction::Sum, {}}, {Reduction::Mean, {}},
                                  {Reduction::Mean, 3.5}};
}  // namespace

TEST_CASE("autograd/smooth_l1_loss: gradcheck, beta 0.5 and 0, every reduction", "[autograd]") {
  auto [p, t] = pred_target(Shape{6, 4}, 1);
  for (double beta : {0.5, 0.0})
    for (const auto& r : kReductions) {
      const auto res = gradcheck([&, beta](In in) { return smooth_l1_loss(in[0], t, beta, r); }, {p});
      INFO(res.report);
      REQUIRE(res.ok);
    }
}

TEST_CASE("autograd/l1_loss: gradcheck, every reduction", "[autograd]") {
  auto [p, t] = pred_target(Shape{5, 3}, 11);
  for (const auto& r : kReductions) {
    const auto res = gradcheck([&](In in) { return l1_loss(in[0], t, r); }, {p});
    INFO(res.report);
    REQUIRE(res.ok);
  }
}

TEST_CASE("autograd/binary_cross_entropy_with_logits: gradcheck, every reduction", "[autograd]") {
  const Variable x(test::random_tensor<double>(Shape{4, 5}, 21, -6, 6), true);
  const Tensor y = test::random_tensor<double>(Shape{4, 5}, 22, 0, 1);
  for (const auto& r : kReductions) {
    const auto res = gradcheck([&](In in) { return binary_cross_entropy_with_logits(in[0], y, r); }, {x});
    INFO(res.report);
    REQUIRE(res.ok);
  }
}

TEST_CASE("autograd/cross_entropy: gradcheck with weights and ignored rows, every reduction", "[autograd]") {
  const Variable x(test::random_tensor<double>(Shape{6, 4}, 31, -3, 3), true);
  const Tensor labels = Tensor::from_vector<int64_t>({0, 3, -100, 1, 2, 3});
  const Tensor w = test::random_tensor<double>(Shape{6}, 32, 0.5, 2);
  for (const auto& r : kReductions) {
    for (bool weighted : {false, true}) {
      const auto res =
          gradcheck([&](In in) { return cross_entropy(in[0], labels, weighted ? w : Tensor(), r); }, {x});
      INFO(res.report);
      REQUIRE(res.ok);
    }
  }
  // The ignored row gets exactly zero gradient.
  Variable v(test::random_tensor<double>(Shape{6, 4}, 33, -3, 3), true);
  cross_entropy(v, labels).backward();
  for (int64_t c = 0; c < 4; ++c) CHECK(v.grad().to_vector<double>()[size_t(2 * 4 + c)] == 0.0);
}

TEST_CASE("autograd/losses: no gradient is computed without requires_grad", "[autograd]") {
  const Variable x(test::random_tensor<double>(Shape{3, 2}, 41), false);
  const Variable l = smooth_l1_loss(x, test::random_tensor<double>(Shape{3, 2}, 42), 1.0);
  CHECK(!l.requires_grad());
  CHECK(l.data().ndim() == 0);
}
