// Philox4x32-10 (include/drcnn/ops/detail/philox.h) against the Random123 known-answer vectors,
// and Tensor::rand / Tensor::randn: wiring to the generator state, determinism, statistics.
#include <catch2/catch.hpp>

#include <cmath>

#include "common/allclose.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/detail/philox.h"

using drcnn::DType;
using drcnn::Generator;
using drcnn::Tensor;
namespace detail = drcnn::ops::detail;

namespace {
// Random123's counter words c0..c3 and key words k0, k1, packed as the body expects them:
// the counter as two uint64 with the low words first, the key as one uint64 with k0 low.
detail::Philox4x32 philox_words(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  const uint64_t lo = uint64_t(c0) | (uint64_t(c1) << 32);
  const uint64_t hi = uint64_t(c2) | (uint64_t(c3) << 32);
  const uint64_t key = uint64_t(k0) | (uint64_t(k1) << 32);
  return detail::philox4x32_10(lo, hi, key);
}
}  // namespace

TEST_CASE("core/random: philox4x32-10 matches the Random123 known-answer vectors", "[core][cpu]") {
  // Random123 kat_vectors, "philox4x32 10" lines: ctr[4] key[2] -> out[4].
  SECTION("zero counter, zero key") {
    const auto r = philox_words(0, 0, 0, 0, 0, 0);
    CHECK(r.v[0] == 0x6627e8d5u);
    CHECK(r.v[1] == 0xe169c58du);
    CHECK(r.v[2] == 0xbc57ac4cu);
    CHECK(r.v[3] == 0x9b00dbd8u);
  }
  SECTION("all-ones counter and key") {
    const auto r = philox_words(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
    CHECK(r.v[0] == 0x408f276du);
    CHECK(r.v[1] == 0x41c83b0eu);
    CHECK(r.v[2] == 0xa20bc7c6u);
    CHECK(r.v[3] == 0x6d5451fdu);
  }
  SECTION("pi digits") {
    const auto r = philox_words(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
    CHECK(r.v[0] == 0xd16cfe09u);
    CHECK(r.v[1] == 0x94fdccebu);
    CHECK(r.v[2] == 0x5001e420u);
    CHECK(r.v[3] == 0x24126ea1u);
  }
}

TEST_CASE("core/random: Generator advance reserves counters", "[core][cpu]") {
  Generator g(42, 10);
  CHECK(g.advance(5) == 10);
  CHECK(g.offset == 15);
  CHECK(g.advance(0) == 15);
  CHECK(g.seed == 42);
}

TEMPLATE_TEST_CASE("core/random: rand element i comes from counter offset + i", "[core][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  Generator g(1234, 77);
  const Tensor t = Tensor::rand({300}, g, dt);
  CHECK(g.offset == 377);
  const auto v = t.to_vector<double>();
  int64_t bad = 0;
  for (int64_t i = 0; i < 300; ++i) {
    const auto r = detail::philox4x32_10(77 + uint64_t(i), 0, 1234);
    double expect;
    if constexpr (std::is_same_v<TestType, float>) {
      expect = double(r.v[0] >> 8) / 16777216.0;  // 24 random bits
    } else {
      // 53 bits from words 0 and 1.
      const uint64_t bits = ((uint64_t(r.v[0]) << 21) ^ (r.v[1] >> 11)) & ((uint64_t(1) << 53) - 1);
      expect = double(bits) / 9007199254740992.0;
    }
    if (v[size_t(i)] != expect) ++bad;
  }
  CHECK(bad == 0);
}

TEMPLATE_TEST_CASE("core/random: determinism by seed and offset", "[core][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  Generator a(7), b(7);
  const Tensor x1 = Tensor::rand({1000}, a, dt);
  const Tensor x2 = Tensor::rand({1000}, b, dt);
  CHECK(drcnn::test::bitwise_equal(x1, x2));
  // Two draws of 400 and 600 equal one draw of 1000: the offset advances by numel.
  Generator c(7);
  const auto first = Tensor::rand({400}, c, dt).to_vector<double>();
  const auto second = Tensor::rand({2, 300}, c, dt).to_vector<double>();
  const auto all = x1.to_vector<double>();
  CHECK(std::equal(first.begin(), first.end(), all.begin()));
  CHECK(std::equal(second.begin(), second.end(), all.begin() + 400));
  // Restoring a saved state replays the draw.
  Generator d(7, 400);
  CHECK(Tensor::rand({600}, d, dt).to_vector<double>() == second);
  // Other seeds differ (almost every element: equal f32 draws have probability 2^-24 each).
  Generator e(8);
  const auto other = Tensor::rand({1000}, e, dt).to_vector<double>();
  int64_t same = 0;
  for (size_t i = 0; i < all.size(); ++i) same += other[i] == all[i];
  CHECK(same <= 2);
  // randn is deterministic too.
  Generator f(9), g(9);
  CHECK(drcnn::test::bitwise_equal(Tensor::randn({3, 5}, f, dt), Tensor::randn({3, 5}, g, dt)));
}

TEMPLATE_TEST_CASE("core/random: rand is uniform on 0 to 1, 1 excluded", "[core][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  constexpr int64_t n = 1000000;
  Generator g(2024);
  const auto v = Tensor::rand({n}, g, dt).to_vector<double>();
  double lo = 1, hi = 0;
  long double s = 0, s2 = 0;
  std::vector<int64_t> bins(100, 0);
  for (double x : v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    s += x;
    s2 += (long double)x * x;
    ++bins[size_t(std::min(99.0, x * 100))];
  }
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  const double mean = double(s / n), var = double(s2 / n) - mean * mean;
  // Mean of n U(0,1): sd sqrt(1/12/n) = 2.9e-4; 5 sd bound (false alarm ~6e-7).
  CHECK(std::abs(mean - 0.5) < 5 * std::sqrt(1.0 / 12.0 / n));
  // Sample variance of U(0,1): Var(x^2 - ...) ~ (1/80 - 1/144)/n -> sd 7.5e-5; 5 sd bound.
  CHECK(std::abs(var - 1.0 / 12.0) < 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
  // Chi-square over 100 equal bins: 99 dof, mean 99, sd sqrt(198) = 14.1; 99 + 6 sd = 184.
  double chi2 = 0;
  const double expect = double(n) / 100;
  for (int64_t c : bins) chi2 += (c - expect) * (c - expect) / expect;
  CHECK(chi2 < 99 + 6 * std::sqrt(198.0));
}

TEMPLATE_TEST_CASE("core/random: randn has mean 0 and variance 1", "[core][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  constexpr int64_t n = 1000000;
  Generator g(99);
  const auto v = Tensor::randn({n}, g, dt).to_vector<double>();
  long double s = 0, s2 = 0, s4 = 0;
  int64_t non_finite = 0, beyond_1sd = 0;
  for (double x : v) {
    non_finite += !std::isfinite(x);
    beyond_1sd += std::abs(x) > 1.0;
    s += x;
    s2 += (long double)x * x;
    s4 += (long double)x * x * x * x;
  }
  CHECK(non_finite == 0);
  const double mean = double(s / n), m2 = double(s2 / n), m4 = double(s4 / n);
  // Mean of n N(0,1): sd 1/sqrt(n) = 1e-3; 5 sd.
  CHECK(std::abs(mean) < 5.0 / std::sqrt(double(n)));
  // E[x^2] = 1 with Var(x^2) = 2 -> sd sqrt(2/n) = 1.4e-3; 5 sd.
  CHECK(std::abs(m2 - 1.0) < 5 * std::sqrt(2.0 / n));
  // E[x^4] = 3 with Var(x^4) = 105 - 9 = 96 -> sd 9.8e-3; 5 sd. (Catches a wrong tail shape.)
  CHECK(std::abs(m4 - 3.0) < 5 * std::sqrt(96.0 / n));
  // P(|x| > 1) = 0.3173; binomial sd sqrt(p(1-p)/n) = 4.7e-4; 5 sd.
  const double p = 0.31731050786291415;
  CHECK(std::abs(double(beyond_1sd) / n - p) < 5 * std::sqrt(p * (1 - p) / n));
}

TEST_CASE("core/random: rand rejects integer dtypes and handles empty shapes", "[core][cpu]") {
  Generator g(1);
  REQUIRE_THROWS_WITH(Tensor::rand({3}, g, DType::Int64), Catch::Contains("Tensor::rand") && Catch::Contains("int64"));
  REQUIRE_THROWS_WITH(Tensor::randn({3}, g, DType::Float16), Catch::Contains("Tensor::randn"));
  const uint64_t before = g.offset;
  const Tensor e = Tensor::rand({0, 4}, g);
  CHECK(e.numel() == 0);
  CHECK(g.offset == before);
}
