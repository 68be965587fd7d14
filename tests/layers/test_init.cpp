// Weight initialisers: torch.nn.init's gains and fans, the bounds and moments of each draw,
// reproducibility by seed, bad inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "drcnn/layers/init.h"

using namespace drcnn;

namespace {
struct Moments {
  double mean = 0, var = 0, min = 1e300, max = -1e300;
};
Moments moments(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  Moments m;
  for (double x : v) m.mean += x, m.min = std::min(m.min, x), m.max = std::max(m.max, x);
  m.mean /= double(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= double(v.size());
  return m;
}
}  // namespace

TEST_CASE("layers/init: gains and fans follow torch.nn.init", "[layers][cpu]") {
  CHECK(init::calculate_gain(init::Nonlinearity::Relu) == Approx(std::sqrt(2.0)).epsilon(1e-15));
  CHECK(init::calculate_gain(init::Nonlinearity::Tanh) == Approx(5.0 / 3.0).epsilon(1e-15));
  CHECK(init::calculate_gain(init::Nonlinearity::Linear) == 1.0);
  // torch: leaky_relu gain with a = sqrt(5) (nn.Conv2d's default init) is sqrt(2 / 6).
  CHECK(init::calculate_gain(init::Nonlinearity::LeakyRelu, std::sqrt(5.0)) == Approx(std::sqrt(1.0 / 3.0)).epsilon(1e-15));
  const Tensor conv = Tensor::empty({64, 3, 7, 7});
  CHECK(init::fans(conv) == std::pair<int64_t, int64_t>{147, 3136});
  CHECK(init::fans(Tensor::empty({10, 20})) == std::pair<int64_t, int64_t>{20, 10});
  CHECK_THROWS_WITH(init::fans(Tensor::empty({5})), Catch::Contains("at least 2 dims"));
}

TEST_CASE("layers/init: kaiming, xavier, uniform and normal draws have the stated bounds and moments", "[layers][cpu]") {
  // n = 2^18 samples: the sample mean has standard error sigma / 512 and the sample variance a
  // relative standard error of about sqrt(2 / n) = 0.28% (normal) or less (uniform); the checks
  // allow 5 standard errors.
  Generator gen(123);
  Tensor w = Tensor::empty({256, 64, 4, 4});  // fan_in 1024, fan_out 4096
  const double n_se = 5.0 / 512.0;

  init::kaiming_uniform_(w, gen, 0, init::FanMode::FanIn, init::Nonlinearity::Relu);
  double b = std::sqrt(2.0) * std::sqrt(3.0 / 1024.0);
  Moments m = moments(w);
  CHECK(m.min >= -b);
  CHECK(m.max <= b);
  CHECK(m.max > 0.999 * b);
  CHECK(std::abs(m.mean) < n_se * b / std::sqrt(3.0));
  CHECK(m.var == Approx(b * b / 3.0).epsilon(5 * std::sqrt(0.8 / 262144.0)));

  init::kaiming_normal_(w, gen, 0, init::FanMode::FanOut, init::Nonlinearity::Relu);  // mmdet ResNet init
  double s = std::sqrt(2.0 / 4096.0);
  m = moments(w);
  CHECK(std::abs(m.mean) < n_se * s);
  CHECK(std::sqrt(m.var) == Approx(s).epsilon(5 * std::sqrt(0.5 / 262144.0)));

  init::xavier_uniform_(w, gen);  // mmdet FPN init
  b = std::sqrt(6.0 / (1024.0 + 4096.0));
  m = moments(w);
  CHECK(m.min >= -b);
  CHECK(m.max <= b);
  CHECK(m.var == Approx(b * b / 3.0).epsilon(5 * std::sqrt(0.8 / 262144.0)));

  Tensor v = Tensor::empty({262144}, DType::Float64);
  init::normal_(v, gen, 0.5, 0.01);  // box head init: normal std 0.001 / 0.01
  m = moments(v);
  CHECK(std::abs(m.mean - 0.5) < n_se * 0.01);
  CHECK(std::sqrt(m.var) == Approx(0.01).epsilon(5 * std::sqrt(0.5 / 262144.0)));

  init::uniform_(v, gen, -2.0, 3.0);
  m = moments(v);
  CHECK(m.min >= -2.0);
  CHECK(m.max < 3.0);
  CHECK(std::abs(m.mean - 0.5) < n_se * 5.0 / std::sqrt(12.0));

  init::constant_(v, 0.125);
  m = moments(v);
  CHECK(m.min == 0.125);
  CHECK(m.max == 0.125);
}

TEST_CASE("layers/init: the same seed gives the same weights, and the generator advances", "[layers][cpu]") {
  Generator g1(5), g2(5);
  Tensor a = Tensor::empty({8, 4, 3, 3}), b = Tensor::empty({8, 4, 3, 3});
  init::kaiming_uniform_(a, g1);
  init::kaiming_uniform_(b, g2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  CHECK(g1.offset == 288);
  init::kaiming_uniform_(a, g1);
  CHECK(a.to_vector<float>() != b.to_vector<float>());
}

TEST_CASE("layers/init: bad targets and parameters are rejected", "[layers][cpu]") {
  Generator gen(1);
  Tensor i = Tensor::zeros({4, 4}, DType::Int64);
  CHECK_THROWS_WITH(init::normal_(i, gen), Catch::Contains("must be float32 or float64"));
  Tensor v = Tensor::empty({4});
  CHECK_THROWS_WITH(init::kaiming_uniform_(v, gen), Catch::Contains("at least 2 dims"));
  Tensor e = Tensor::empty({0, 4});
  CHECK_THROWS_WITH(init::xavier_uniform_(e, gen), Catch::Contains("is 0"));
  CHECK_THROWS_WITH(init::uniform_(v, gen, 1.0, 0.0), Catch::Contains("lo <= hi"));
  CHECK_THROWS_WITH(init::normal_(v, gen, 0.0, -1.0), Catch::Contains("std >= 0"));
}
