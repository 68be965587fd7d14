// Layers: torch's names, shapes and default initialisation; forward equal to the ops they wrap;
// BatchNorm's modes and counters; FrozenBatchNorm2d loading a BatchNorm2d state; Sequential.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/allclose.h"
#include "drcnn/autograd/conv.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/layers/layers.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"

using namespace drcnn;

namespace {
std::map<std::string, Variable> by_name(const std::vector<std::pair<std::string, Variable>>& v) {
  return {v.begin(), v.end()};
}
double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to_vector<double>()) m = std::max(m, std::abs(x));
  return m;
}
}  // namespace

TEST_CASE("layers: Conv2d has torch's parameters, initialisation and forward", "[layers][cpu]") {
  Generator gen(3);
  Conv2d<float> conv({.in_channels = 8, .out_channels = 16, .kernel_size = 3, .stride = 2, .padding = 1}, gen);
  auto p = by_name(conv.named_parameters());
  REQUIRE(p.size() == 2);
  CHECK(p.at("weight").shape() == Shape{16, 8, 3, 3});
  CHECK(p.at("bias").shape() == Shape{16});
  // kaiming_uniform(a = sqrt(5)) gives the bound 1 / sqrt(fan_in) for weight and bias alike.
  const double bound = 1.0 / std::sqrt(72.0);
  CHECK(max_abs(p.at("weight").data()) <= bound);
  CHECK(max_abs(p.at("weight").data()) > 0.9 * bound);
  CHECK(max_abs(p.at("bias").data()) <= bound);
  const Variable x(Tensor::randn({2, 8, 9, 7}, gen));
  ops::Conv2dParams cp;
  cp.stride = {2, 2};
  cp.padding = {1, 1};
  const Tensor expected = ops::conv2d(x.data(), p.at("weight").data(), p.at("bias").data(), cp);
  test::expect_allclose(conv.forward(x).data(), expected, 0, 0);
  CHECK_THROWS_WITH(conv.forward(Variable(Tensor::randn({2, 4, 9, 7}, gen))), Catch::Contains("8 channels"));
  CHECK_THROWS_WITH(conv.forward(Variable(Tensor::randn({2, 8, 9, 7}, gen, DType::Float64))),
                    Catch::Contains("expected a float32 input"));
  Conv2d<double> nobias({.in_channels = 4, .out_channels = 4, .kernel_size = 1, .groups = 2, .bias = false}, gen);
  CHECK(nobias.named_parameters().size() == 1);
  CHECK(nobias.weight().shape() == Shape{4, 2, 1, 1});
  CHECK_THROWS_WITH(Conv2d<float>({.in_channels = 3, .out_channels = 4, .kernel_size = 3, .groups = 2}, gen),
                    Catch::Contains("groups dividing"));
}

TEST_CASE("layers: Linear has torch's parameters and forward", "[layers][cpu]") {
  Generator gen(4);
  Linear<double> fc({.in_features = 6, .out_features = 3}, gen);
  auto p = by_name(fc.named_parameters());
  CHECK(p.at("weight").shape() == Shape{3, 6});
  CHECK(max_abs(p.at("weight").data()) <= 1.0 / std::sqrt(6.0));
  const Variable x(Tensor::randn({5, 6}, gen, DType::Float64));
  test::expect_allclose(fc.forward(x).data(), linear(x, p.at("weight"), p.at("bias")).data(), 0, 0);
}

TEST_CASE("layers: FrozenBatchNorm2d uses buffers and drops num_batches_tracked on load", "[layers][cpu]") {
  FrozenBatchNorm2d<double> bn(2, 1e-5);
  CHECK(bn.named_parameters().empty());
  CHECK(bn.named_buffers().size() == 4);
  const NamedTensors state{{"weight", Tensor::from_vector<double>({2.0, 0.5})},
                           {"bias", Tensor::from_vector<double>({1.0, -1.0})},
                           {"running_mean", Tensor::from_vector<double>({0.5, 3.0})},
                           {"running_var", Tensor::from_vector<double>({4.0, 0.25})},
                           {"num_batches_tracked", Tensor::zeros({}, DType::Int64)}};
  bn.load_state_dict(state);  // strict, yet num_batches_tracked is accepted
  const Tensor x = Tensor::from_vector<double>({1.0, 2.0, 3.0, 4.0}, {1, 2, 2, 1});
  // y = (x - mean) * w / sqrt(var + eps) + b, by hand.
  const double s0 = 2.0 / std::sqrt(4.0 + 1e-5), s1 = 0.5 / std::sqrt(0.25 + 1e-5);
  test::expect_allclose(bn.forward(Variable(x)).data(),
                        std::vector<double>{(1 - 0.5) * s0 + 1, (2 - 0.5) * s0 + 1, (3 - 3) * s1 - 1, (4 - 3) * s1 - 1},
                        1e-15, 1e-15);
}

TEST_CASE("layers: BatchNorm2d trains on batch statistics, counts batches and evaluates on running ones",
          "[layers][cpu]") {
  Generator gen(5);
  BatchNorm2d<double> bn(3);
  auto b = by_name(bn.named_buffers());
  CHECK(b.count("num_batches_tracked") == 1);
  const Variable x(Tensor::randn({4, 3, 5, 5}, gen, DType::Float64));
  bn.train();
  const Tensor y = bn.forward(x).data();
  // Training output: per channel mean 0 and biased variance 1 - eps-ish.
  const Tensor mean_c = ops::mean(ops::mean(ops::mean(y, 3), 2), 0);
  CHECK(max_abs(mean_c) < 1e-12);
  CHECK(b.at("num_batches_tracked").data().item<int64_t>() == 1);
  CHECK(max_abs(b.at("running_mean").data()) > 0);
  bn.eval();
  const Tensor running_mean = b.at("running_mean").data().clone(), running_var = b.at("running_var").data().clone();
  const Tensor ye = bn.forward(x).data();
  CHECK(b.at("num_batches_tracked").data().item<int64_t>() == 1);
  test::expect_allclose(b.at("running_mean").data(), running_mean, 0, 0);
  // Eval output = (x - running_mean) / sqrt(running_var + eps) (weight 1, bias 0).
  const std::vector<double> xv = x.data().to_vector<double>(), m = running_mean.to_vector<double>(),
                            v = running_var.to_vector<double>();
  std::vector<double> expected(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    const size_t c = (i / 25) % 3;
    expected[i] = (xv[i] - m[c]) / std::sqrt(v[c] + 1e-5);
  }
  test::expect_allclose(ye, expected, 1e-13, 1e-13);
}

TEST_CASE("layers: GroupNorm, MaxPool2d, ReLU and Sequential", "[layers][cpu]") {
  Generator gen(6);
  auto seq = std::make_shared<Sequential>();
  seq->push_back(std::make_shared<Conv2d<double>>(Conv2d<double>::Options{.in_channels = 2, .out_channels = 4, .kernel_size = 3, .padding = 1}, gen));
  seq->push_back(std::make_shared<GroupNorm<double>>(2, 4));
  seq->push_back(std::make_shared<ReLU>());
  seq->push_back(std::make_shared<MaxPool2d>(ops::MaxPool2dOptions::square(2)));
  std::vector<std::string> names;
  for (auto& [n, p] : seq->named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
  const Variable x(Tensor::randn({1, 2, 6, 8}, gen, DType::Float64));
  const Tensor y = seq->forward(x).data();
  CHECK(y.shape() == Shape{1, 4, 3, 4});
  // By hand: conv, group norm over (2 channels x 48 pixels) per group, relu, 2x2 max.
  auto p = by_name(seq->named_parameters());
  ops::Conv2dParams cp;
  cp.padding = {1, 1};
  const std::vector<double> c = ops::conv2d(x.data(), p.at("0.weight").data(), p.at("0.bias").data(), cp).to_vector<double>();
  std::vector<double> gn(c.size());
  for (int g = 0; g < 2; ++g) {
    double mean = 0, var = 0;
    for (int i = 0; i < 96; ++i) mean += c[g * 96 + i];
    mean /= 96;
    for (int i = 0; i < 96; ++i) var += (c[g * 96 + i] - mean) * (c[g * 96 + i] - mean);
    var /= 96;
    for (int i = 0; i < 96; ++i) gn[g * 96 + i] = std::max(0.0, (c[g * 96 + i] - mean) / std::sqrt(var + 1e-5));
  }
  std::vector<double> expected;
  for (int ch = 0; ch < 4; ++ch)
    for (int oy = 0; oy < 3; ++oy)
      for (int ox = 0; ox < 4; ++ox) {
        double m = -1e300;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) m = std::max(m, gn[ch * 48 + (2 * oy + dy) * 8 + 2 * ox + dx]);
        expected.push_back(m);
      }
  test::expect_allclose(y, expected, 1e-12, 1e-12);
}
