// End to end: a 2-layer MLP learns a smooth 2-D regression target with plain SGD in float32,
// using only autograd (linear, relu, sub, mul, mean) and in-place parameter updates.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "drcnn/autograd/functions.h"
#include "drcnn/ops/elementwise.h"

using namespace drcnn;

namespace {
struct Mlp {
  Variable w1, b1, w2, b2;
  Variable forward(const Variable& x) const { return linear(relu(linear(x, w1, b1)), w2, b2); }
  std::vector<Variable*> params() { return {&w1, &b1, &w2, &b2}; }
};

/// He-initialised weight [out, in] (randn * sqrt(2 / in)), requiring grad.
Variable he_weight(int64_t out, int64_t in, Generator& gen) {
  return Variable(ops::mul(Tensor::randn({out, in}, gen), std::sqrt(2.0 / double(in))), true);
}
}  // namespace

TEST_CASE("autograd/training: an MLP trained with SGD cuts the loss by at least 10x", "[autograd][cpu]") {
  Generator gen(7);
  constexpr int64_t kN = 256, kHidden = 32;
  // Inputs x ~ N(0, 1) [N, 2]; target y = sin(x0) + 0.5 x1 * x0 [N, 1] (computed on the host).
  const Tensor x = Tensor::randn({kN, 2}, gen);
  const std::vector<float> xs = x.to_vector<float>();
  std::vector<float> ys(kN);
  for (int64_t i = 0; i < kN; ++i) ys[size_t(i)] = std::sin(xs[size_t(2 * i)]) + 0.5f * xs[size_t(2 * i + 1)] * xs[size_t(2 * i)];
  const Variable input(x), target(Tensor::from_vector<float>(ys, {kN, 1}));

  Mlp net{he_weight(kHidden, 2, gen), Variable(Tensor::zeros({kHidden}), true), he_weight(1, kHidden, gen),
          Variable(Tensor::zeros({1}), true)};
  auto loss_of = [&] {
    const Variable d = net.forward(input) - target;
    return mean(d * d);
  };

  const float initial = loss_of().data().item<float>();
  constexpr double kLr = 0.05;
  constexpr int kSteps = 1500;
  float final_loss = initial;
  for (int step = 0; step < kSteps; ++step) {
    Variable loss = loss_of();
    final_loss = loss.data().item<float>();
    loss.backward();
    NoGradGuard no_grad;
    for (Variable* p : net.params()) {
      REQUIRE(p->has_grad());
      p->mutable_data() = ops::sub(p->data(), ops::mul(p->grad(), kLr));
      p->zero_grad();
    }
  }
  final_loss = loss_of().data().item<float>();
  INFO("initial loss " << initial << ", final loss " << final_loss << " after " << kSteps << " steps");
  REQUIRE(std::isfinite(final_loss));
  // The brief's bar: at least a 10x reduction on the training set.
  REQUIRE(final_loss * 10.0f <= initial);
}
