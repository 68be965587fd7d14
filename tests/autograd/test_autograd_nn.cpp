// Finite-difference checks of the differentiable layer ops (include/drcnn/autograd/nn.h) in
// float64 on the CPU, with gradcheck's default tolerances (eps 1e-6, rtol 1e-4, atol 1e-6).
// Max pooling uses distinct values at least 0.01 apart (a perturbation of 1e-6 never changes
// the argmax); the norms are smooth everywhere. Also: graph bookkeeping (which inputs get
// gradients, running stats updated but never differentiated, no recording under NoGradGuard).
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <numeric>
#include <random>

#include "common/allclose.h"
#include "common/gradcheck.h"
#include "common/random.h"
#include "drcnn/autograd/nn.h"

using namespace drcnn;
using drcnn::test::gradcheck;
using In = std::vector<Variable>;

namespace {
void require_gradcheck(const std::function<Variable(std::vector<Variable>)>& f, std::vector<Variable> inputs) {
  const auto res = gradcheck(f, std::move(inputs));
  INFO(res.report);
  REQUIRE(res.ok);
}

/// A leaf of distinct values (a shuffled 0.01-spaced ramp, shifted to be centred): no ties.
Variable distinct_leaf(const Shape& s, uint64_t seed) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  std::iota(v.begin(), v.end(), 0.0);
  std::mt19937_64 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  for (auto& x : v) x = 0.01 * x - 0.005 * double(s.numel());
  return Variable(Tensor::from_vector<double>(v, s), true);
}
Variable leaf(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return Variable(test::random_tensor<double>(s, seed, lo, hi), true);
}
using Pool = ops::MaxPool2dOptions;
}  // namespace

TEST_CASE("autograd/max_pool2d: gradcheck for stem, overlapping, ceil-mode, dilated and P6 pools", "[autograd]") {
  for (const auto& o : {Pool::square(3, 2, 1), Pool::square(3, 1, 1), Pool::square(2, 2, 1, 1, true), Pool::square(3, 2, 1, 2), Pool::square(1, 2)}) {
    const Variable x = distinct_leaf(Shape{2, 2, 7, 6}, 7);
    require_gradcheck([&](In in) { return max_pool2d(in[0], o); }, {x});
  }
  // A non-contiguous input.
  const Variable xt(distinct_leaf(Shape{1, 2, 6, 5}, 9).data().transpose(2, 3), true);
  require_gradcheck([](In in) { return max_pool2d(in[0], Pool::square(2, 1)); }, {xt});
}

TEST_CASE("autograd/upsample_nearest2d: gradcheck for 2x, odd FPN sizes and downsampling", "[autograd]") {
  const std::pair<Shape, std::pair<int64_t, int64_t>> cases[] = {
      {Shape{1, 2, 3, 4}, {6, 8}}, {Shape{2, 1, 7, 4}, {13, 7}}, {Shape{1, 2, 5, 5}, {3, 2}}};
  uint64_t seed = 20;
  for (const auto& [s, hw] : cases) {
    const Variable x = leaf(s, ++seed);
    require_gradcheck([&, hw = hw](In in) { return upsample_nearest2d(in[0], hw.first, hw.second); }, {x});
  }
}

TEST_CASE("autograd/frozen_batch_norm2d: gradcheck w.r.t. x, eps 1e-5 and 0", "[autograd]") {
  const Tensor w = test::random_tensor<double>(Shape{3}, 31, 0.5, 2), b = test::random_tensor<double>(Shape{3}, 32);
  const Tensor m = test::random_tensor<double>(Shape{3}, 33), v = test::random_tensor<double>(Shape{3}, 34, 0.2, 2);
  for (double eps : {1e-5, 0.0}) {
    require_gradcheck([&](In in) { return frozen_batch_norm2d(in[0], w, b, m, v, eps); }, {leaf(Shape{2, 3, 4, 3}, 35)});
  }
}

TEST_CASE("autograd/batch_norm2d: gradcheck for x, weight and bias in training and eval mode", "[autograd]") {
  for (bool training : {true, false}) {
    INFO("training " << training);
    // Fresh running stats per evaluation would be ideal; training updates them in place, but
    // the output (batch statistics) does not depend on them, so gradcheck's repeated calls
    // see the same function. In eval they are never written.
    const Tensor rm = test::random_tensor<double>(Shape{3}, 41), rv = test::random_tensor<double>(Shape{3}, 42, 0.5, 2);
    const Variable x = leaf(Shape{3, 3, 4, 2}, 43), w = leaf(Shape{3}, 44, 0.5, 2), b = leaf(Shape{3}, 45);
    require_gradcheck([&](In in) { return batch_norm2d(in[0], in[1], in[2], rm, rv, training, 0.1, 1e-5); },
                      (In{x, w, b}));
    // affine=False, and bias without weight.
    require_gradcheck([&](In in) { return batch_norm2d(in[0], Variable(), Variable(), rm, rv, training); }, {x});
    require_gradcheck([&](In in) { return batch_norm2d(in[0], Variable(), in[1], rm, rv, training); }, (In{x, b}));
  }
  // [N, C] input (BatchNorm1d-like) in training mode.
  require_gradcheck([](In in) { return batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), true); },
                    (In{leaf(Shape{5, 3}, 46), leaf(Shape{3}, 47, 0.5, 2), leaf(Shape{3}, 48)}));
}

TEST_CASE("autograd/group_norm: gradcheck for x, weight and bias", "[autograd]") {
  for (int64_t G : {1, 2, 4}) {
    INFO("groups " << G);
    const Variable x = leaf(Shape{2, 4, 3, 3}, 50 + uint64_t(G)), w = leaf(Shape{4}, 60, 0.5, 2), b = leaf(Shape{4}, 61);
    require_gradcheck([G](In in) { return group_norm(in[0], G, in[1], in[2]); }, (In{x, w, b}));
    require_gradcheck([G](In in) { return group_norm(in[0], G); }, {x});
    require_gradcheck([G](In in) { return group_norm(in[0], G, Variable(), in[1]); }, (In{x, b}));
  }
}

TEST_CASE("autograd/batch_norm2d: training updates the running stats once per forward, never differentiated", "[autograd]") {
  const Tensor rm = Tensor::zeros({2}, DType::Float64), rv = Tensor::ones({2}, DType::Float64);
  const Variable x = leaf(Shape{4, 2, 3, 3}, 70), w = leaf(Shape{2}, 71, 0.5, 2), b = leaf(Shape{2}, 72);
  Variable y = batch_norm2d(x, w, b, rm, rv, true, 0.5);
  const auto after_forward = test::strided_values(rm);
  CHECK(after_forward != std::vector<double>{0, 0});
  sum(y).backward();
  CHECK(test::strided_values(rm) == after_forward);  // backward leaves them alone
  REQUIRE(x.has_grad());
  REQUIRE(w.has_grad());
  REQUIRE(b.has_grad());
  // sum over a normalised channel is constant: dL/dx = 0 and dL/dw = sum(xhat) = 0, dL/db = count.
  test::expect_allclose(x.grad(), std::vector<double>(72, 0.0), 0, 1e-12);
  test::expect_allclose(w.grad(), {0, 0}, 0, 1e-12);
  test::expect_allclose(b.grad(), {36, 36}, 1e-14, 0);
}

TEST_CASE("autograd/nn: no graph is recorded under NoGradGuard, frozen BN keeps no parameter gradient", "[autograd]") {
  const Variable x = leaf(Shape{1, 2, 4, 4}, 80);
  {
    NoGradGuard guard;
    CHECK_FALSE(max_pool2d(x, Pool::square(2, 2)).requires_grad());
    CHECK_FALSE(upsample_nearest2d(x, 8, 8).requires_grad());
    CHECK_FALSE(group_norm(x, 2).requires_grad());
  }
  const Tensor p = Tensor::ones({2}, DType::Float64), z = Tensor::zeros({2}, DType::Float64);
  Variable y = frozen_batch_norm2d(x, p, z, z, p, 0.0);
  CHECK(y.grad_fn_name() == "frozen_batch_norm2d");
  sum(y).backward();
  test::expect_allclose(x.grad(), std::vector<double>(32, 1.0), 0, 0);  // scale 1 with eps 0
}
