// Reductions (include/drcnn/ops/reduce.h) against the float64 references: every dim, keepdim,
// layouts, integer dtypes, NaN/inf rules, empty extents, errors, the accuracy of long f32 sums
// and their bitwise independence of the thread count.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "common/allclose.h"
#include "common/gpu_order_emulation.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/reduce.h"
#include "reference/reference.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
using drcnn::test::expect_equal;
using drcnn::test::layouts;
using drcnn::test::random_tensor;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
template <typename T>
constexpr double kEps = std::numeric_limits<T>::epsilon();

// Bound for one compensated (Neumaier) sum of n terms rounded once to T:
// |error| <= eps/2 |S| (final rounding) + eps/2 |S| (compensation residue) + n eps^2 sum|x|.
// Returned as (rtol, atol) for expect_allclose.
template <typename T>
std::pair<double, double> neumaier_tol(int64_t n, double sum_abs) {
  return {kEps<T>, double(n) * kEps<T> * kEps<T> * sum_abs};
}

double sum_abs(const ref::RefTensor& x) {
  long double s = 0;
  for (double v : x.data) s += std::abs(v);
  return double(s);
}

// Restores the default thread count when a test changes it.
struct ThreadGuard {
  ~ThreadGuard() { drcnn::set_cpu_threads(0); }
};
}  // namespace

TEMPLATE_TEST_CASE("ops/reduce: sum and mean over each dim match the reference", "[ops][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 1;
  for (const Shape& s : {Shape{3, 4, 5}, Shape{7}, Shape{2, 1, 6}, Shape{1, 300}}) {
    for (const auto& l : layouts(s, seed++, dt)) {
      const auto x = ref::from_tensor(l.t);
      const double sa = sum_abs(x);
      for (int dim = -s.ndim(); dim < s.ndim(); ++dim) {
        for (bool keepdim : {false, true}) {
          INFO(fmt::format("{} ", s) << l.name << " dim " << dim << " keepdim " << keepdim);
          const int64_t n = s[dim < 0 ? dim + s.ndim() : dim];
          const auto [rtol, atol] = neumaier_tol<TestType>(n, sa);
          const Tensor su = ops::sum(l.t, dim, keepdim);
          CHECK(su.dtype() == dt);
          expect_allclose(su, ref::sum(x, dim, keepdim), rtol, atol);
          // mean = (compensated sum) * (1/n) in double, rounded to T: one more rounding.
          expect_allclose(ops::mean(l.t, dim, keepdim), ref::mean(x, dim, keepdim), rtol + kEps<TestType> / 2,
                          atol / double(n));
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("ops/reduce: max, min, argmax, argmin over each dim match the reference", "[ops][cpu]", float,
                   double, int32_t, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 40;
  // Integer inputs in [-3, 3] make ties common, so "first index wins" is exercised.
  const double lo = std::is_integral_v<TestType> ? -3 : -1, hi = std::is_integral_v<TestType> ? 3 : 1;
  for (const Shape& s : {Shape{3, 4, 5}, Shape{9}, Shape{2, 1, 6}}) {
    for (const auto& l : layouts(s, seed++, dt, lo, hi)) {
      const auto x = ref::from_tensor(l.t);
      for (int dim = -s.ndim(); dim < s.ndim(); ++dim) {
        for (bool keepdim : {false, true}) {
          INFO(fmt::format("{} ", s) << l.name << " dim " << dim << " keepdim " << keepdim);
          // Selections, not arithmetic: exact.
          expect_allclose(ops::max(l.t, dim, keepdim), ref::max(x, dim, keepdim), 0, 0);
          expect_allclose(ops::min(l.t, dim, keepdim), ref::min(x, dim, keepdim), 0, 0);
          const Tensor am = ops::argmax(l.t, dim, keepdim);
          CHECK(am.dtype() == DType::Int64);
          expect_allclose(am, ref::argmax(x, dim, keepdim), 0, 0);
          expect_allclose(ops::argmin(l.t, dim, keepdim), ref::argmin(x, dim, keepdim), 0, 0);
        }
      }
      expect_equal(ops::max(l.t), {*std::max_element(x.data.begin(), x.data.end())});
      expect_equal(ops::min(l.t), {*std::min_element(x.data.begin(), x.data.end())});
    }
  }
}

TEST_CASE("ops/reduce: integer sums are exact", "[ops][cpu]") {
  for (DType dt : {DType::Int32, DType::Int64}) {
    for (const auto& l : layouts({4, 6}, 9, dt, -1000, 1000)) {
      INFO(drcnn::dtype_name(dt) << " " << l.name);
      const auto x = ref::from_tensor(l.t);
      expect_allclose(ops::sum(l.t, 1), ref::sum(x, 1, false), 0, 0);
      expect_allclose(ops::sum(l.t, 0, true), ref::sum(x, 0, true), 0, 0);
      const Tensor all = ops::sum(l.t);
      CHECK(all.dtype() == dt);
      CHECK(all.ndim() == 0);
      expect_equal(all, {double(ref::sum_all(x))});
    }
  }
  // int64 sums beyond 2^31.
  const Tensor big = Tensor::full({5000}, double(int64_t(1) << 33), DType::Int64);
  CHECK(ops::sum(big).item<int64_t>() == 5000 * (int64_t(1) << 33));
  REQUIRE_THROWS_WITH(ops::mean(Tensor::ones({3}, DType::Int64)),
                      Contains("mean: expected a float32 or float64 tensor, got int64"));
  REQUIRE_THROWS_WITH(ops::mean(Tensor::ones({3}, DType::Int32), 0),
                      Contains("mean: expected a float32 or float64 tensor, got int32"));
}

TEMPLATE_TEST_CASE("ops/reduce: full reductions match the reference across chunk boundaries", "[ops][cpu]", float,
                   double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  // Sizes around kReduceChunk (4096): one chunk, exactly one, one plus one, several.
  for (int64_t n : {int64_t(1), int64_t(17), int64_t(4095), int64_t(4096), int64_t(4097), int64_t(3 * 4096 + 5)}) {
    for (const auto& l : layouts({n}, uint64_t(n), dt)) {
      INFO("n " << n << " " << l.name);
      const auto x = ref::from_tensor(l.t);
      const double sa = sum_abs(x);
      // Two stages: each chunk partial is rounded to T once (<= eps/2 of sum|x| in the chunk,
      // so <= eps/2 sum|x| in total), then the partials are summed compensated.
      const double rtol = kEps<TestType>, atol = kEps<TestType> * sa;
      const Tensor s = ops::sum(l.t);
      CHECK(s.ndim() == 0);
      CHECK(s.dtype() == dt);
      expect_allclose(s, {double(ref::sum_all(x))}, rtol, atol);
      expect_allclose(ops::mean(l.t), {double(ref::sum_all(x) / n)}, rtol + kEps<TestType> / 2, atol / double(n));
      expect_equal(ops::max(l.t), {*std::max_element(x.data.begin(), x.data.end())});
      expect_equal(ops::min(l.t), {*std::min_element(x.data.begin(), x.data.end())});
    }
  }
}

TEST_CASE("ops/reduce: f32 sum of 1e7 elements is accurate (Neumaier)", "[ops][cpu]") {
  constexpr int64_t n = 10000000;
  const Tensor tenth = Tensor::full({n}, 0.1, DType::Float32);
  const long double exact = (long double)n * (long double)0.1f;  // every element is float(0.1)
  const double got = ops::sum(tenth).item<double>();
  // Positive terms: |error| <= eps * S for the two rounding stages, eps(f32) = 1.2e-7.
  INFO("sum " << got << " vs " << double(exact));
  CHECK(std::abs(got - double(exact)) <= 1e-6 * double(exact));
  CHECK(std::abs(got - double(exact)) <= 2 * kEps<float> * double(exact));
  // A naive float loop is far off (here by ~1%), so the check above has teeth.
  float naive = 0;
  for (int64_t i = 0; i < n; ++i) naive += 0.1f;
  CHECK(std::abs(double(naive) - double(exact)) > 1e-3 * double(exact));
  // mean of the same data.
  CHECK(std::abs(ops::mean(tenth).item<double>() - 0.1f) <= 2 * kEps<float> * 0.1);
  // Random data of mixed sign: the bound is absolute, eps * sum|x| (see above).
  const Tensor r = random_tensor<float>({n}, 77, -1, 2);
  const auto x = ref::from_tensor(r);
  const long double s = ref::sum_all(x);
  const double rs = ops::sum(r).item<double>();
  CHECK(std::abs(rs - double(s)) <= 1e-6 * std::abs(double(s)));
  CHECK(std::abs(rs - double(s)) <= kEps<float> * std::abs(double(s)) + kEps<float> * sum_abs(x));
}

TEST_CASE("ops/reduce: results are bitwise identical with 1 and 2 threads", "[ops][cpu]") {
  ThreadGuard guard;
  const Tensor big = random_tensor<float>({3000000}, 5, -1, 1);
  const Tensor mat = random_tensor<float>({600, 700}, 6, -1, 1);
  auto run = [&] {
    return std::vector<Tensor>{ops::sum(big),         ops::mean(big),          ops::max(big),
                               ops::sum(mat, 0),      ops::sum(mat, 1),        ops::mean(mat.transpose(0, 1), 1),
                               ops::argmax(mat, 0),   ops::min(mat, 1)};
  };
  drcnn::set_cpu_threads(1);
  const auto one = run();
  drcnn::set_cpu_threads(2);
  CHECK(drcnn::cpu_threads() == 2);
  const auto two = run();
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("result " << i);
    CHECK(drcnn::test::bitwise_equal(one[i], two[i]));
  }
}

TEST_CASE("ops/reduce: NaN and infinity rules", "[ops][cpu]") {
  const Tensor x = Tensor::from_vector<float>({1, NAN, 3, NAN}, {1, 4});
  expect_equal(ops::max(x, 1), {NAN});
  expect_equal(ops::min(x, 1), {NAN});
  expect_equal(ops::argmax(x, 1), {1});  // the first NaN
  expect_equal(ops::argmin(x, 1), {1});
  expect_equal(ops::max(x), {NAN});
  expect_equal(ops::sum(x), {NAN});
  const Tensor lead = Tensor::from_vector<double>({NAN, 5, 7});
  expect_equal(ops::argmax(lead, 0), {0});
  expect_equal(ops::argmin(lead, 0), {0});
  // Ties: the first occurrence.
  expect_equal(ops::argmax(Tensor::from_vector<float>({3, 5, 5, 1}), 0), {1});
  expect_equal(ops::argmin(Tensor::from_vector<float>({2, 1, 1, 4}), 0), {1});
  expect_equal(ops::argmax(Tensor::from_vector<float>({-INFINITY, -INFINITY}), 0), {0});
  expect_equal(ops::max(Tensor::from_vector<float>({-INFINITY, -INFINITY}), 0), {-INFINITY});
  // A NaN in a later chunk of a full reduction still wins.
  Tensor big = Tensor::zeros({10000});
  big.narrow(0, 9000, 1).fill_(NAN);
  expect_equal(ops::max(big), {NAN});
  expect_equal(ops::min(big), {NAN});
  // Sums with infinities: inf + finite = inf, inf + -inf = NaN (as IEEE addition).
  expect_equal(ops::sum(Tensor::from_vector<float>({INFINITY, 1, 2})), {INFINITY});
  expect_equal(ops::sum(Tensor::from_vector<float>({1, -INFINITY, 2}), 0), {-INFINITY});
  expect_equal(ops::sum(Tensor::from_vector<float>({INFINITY, -INFINITY})), {NAN});
  expect_equal(ops::mean(Tensor::from_vector<double>({INFINITY, 1}), 0), {INFINITY});
  expect_equal(ops::sum(Tensor::from_vector<float>({3e38f, 3e38f})), {INFINITY});  // overflow
  Tensor inf_chunk = Tensor::ones({9000});
  inf_chunk.narrow(0, 5000, 1).fill_(INFINITY);
  expect_equal(ops::sum(inf_chunk), {INFINITY});
  expect_equal(ops::mean(inf_chunk), {INFINITY});
  Tensor col = Tensor::ones({3, 2}, DType::Float64);
  col.select(0, 1).select(0, 1).fill_(-INFINITY);
  expect_equal(ops::sum(col, 0), {3, -INFINITY});
}

TEMPLATE_TEST_CASE("ops/reduce: the CUDA block reduction's arithmetic (host emulation) matches the reference",
                   "[ops][cpu]", float, double) {
  // Sums: the lanes' Neumaier sums merged by compensated additions, the same bound as the
  // serial body (tolerance derivation at neumaier_tol). Extrema: selections, so exactly the
  // reference and exactly ops::max & co. (the CPU body). R below, at and far above the 256
  // lanes; inner > 1 strides the lanes' reads.
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 500;
  using K = ops::ReduceKind;
  for (const Shape& s : {Shape{2, 100, 1}, Shape{3, 256, 2}, Shape{4, 5000, 1}, Shape{2, 1500, 3}, Shape{1, 300000, 1}}) {
    for (bool ties : {false, true}) {
      // ties: values on a grid of 1/4 in [-2, 2] (many equal extrema: the first index must win).
      std::vector<double> v = drcnn::test::random_values(s.numel(), seed++, -2, 2);
      if (ties)
        for (double& e : v) e = std::round(e * 4) / 4;
      const Tensor x = Tensor::from_vector<double>(v, s).to(dt);
      const auto rx = ref::from_tensor(x);
      INFO(fmt::format("{} ", s) << (ties ? "ties" : "continuous"));
      const auto [rtol, atol] = neumaier_tol<TestType>(s[1], sum_abs(rx));
      expect_allclose(drcnn::test::block_reduce(K::Sum, x), ref::sum(rx, 1, false), rtol, atol);
      expect_allclose(drcnn::test::block_reduce(K::Mean, x), ref::mean(rx, 1, false), rtol + kEps<TestType> / 2, atol / double(s[1]));
      expect_allclose(drcnn::test::block_reduce(K::Max, x), ref::max(rx, 1, false), 0, 0);
      expect_allclose(drcnn::test::block_reduce(K::Min, x), ref::min(rx, 1, false), 0, 0);
      expect_allclose(drcnn::test::block_reduce(K::ArgMax, x), ref::argmax(rx, 1, false), 0, 0);
      expect_allclose(drcnn::test::block_reduce(K::ArgMin, x), ref::argmin(rx, 1, false), 0, 0);
      CHECK(drcnn::test::bitwise_equal(drcnn::test::block_reduce(K::Max, x), ops::max(x, 1)));
      CHECK(drcnn::test::bitwise_equal(drcnn::test::block_reduce(K::ArgMin, x), ops::argmin(x, 1)));
    }
  }
  // NaN and infinity rules of the serial body: the first NaN wins (two NaNs in different
  // lanes, the later one in a lower lane), sums with infinities as IEEE addition.
  Tensor y = Tensor::zeros({1, 5000, 1}, dt);
  y.narrow(1, 3000, 1).fill_(NAN);  // lane 3000 % 256 = 184
  y.narrow(1, 4097, 1).fill_(NAN);  // lane 1, later element
  CHECK(drcnn::test::block_reduce(K::ArgMax, y).item<int64_t>() == 3000);
  CHECK(drcnn::test::block_reduce(K::ArgMin, y).item<int64_t>() == 3000);
  CHECK(std::isnan(drcnn::test::block_reduce(K::Max, y).item<double>()));
  CHECK(std::isnan(drcnn::test::block_reduce(K::Sum, y).item<double>()));
  // Two NaNs in one lane (300 and 556 are both lane 44): the lane keeps its first.
  Tensor y1 = Tensor::zeros({1, 5000, 1}, dt);
  y1.narrow(1, 556, 1).fill_(NAN);
  y1.narrow(1, 300, 1).fill_(NAN);
  CHECK(drcnn::test::block_reduce(K::ArgMax, y1).item<int64_t>() == 300);
  CHECK(drcnn::test::block_reduce(K::ArgMin, y1).item<int64_t>() == 300);
  Tensor z = Tensor::ones({1, 5000, 1}, dt);
  z.narrow(1, 77, 1).fill_(INFINITY);
  CHECK(drcnn::test::block_reduce(K::Sum, z).item<double>() == INFINITY);
  CHECK(drcnn::test::block_reduce(K::Mean, z).item<double>() == INFINITY);
  z.narrow(1, 78, 1).fill_(-INFINITY);
  CHECK(std::isnan(drcnn::test::block_reduce(K::Sum, z).item<double>()));
  // Signed zeros tie: max keeps the first one's sign, as the CPU body.
  Tensor zeros = Tensor::zeros({1, 2000, 1}, dt);
  zeros.narrow(1, 5, 1).fill_(-0.0);
  CHECK(drcnn::test::bitwise_equal(drcnn::test::block_reduce(K::Max, zeros), ops::max(zeros, 1)));
  CHECK(drcnn::test::block_reduce(K::ArgMax, zeros).item<int64_t>() == 0);
  // The f32 case of the Neumaier test above: 1e6 x float(0.1), exact sum known.
  if constexpr (std::is_same_v<TestType, float>) {
    const Tensor tenth = Tensor::full({1, 1000000, 1}, 0.1, DType::Float32);
    const double exact = 1e6 * double(0.1f), got = drcnn::test::block_reduce(K::Sum, tenth).item<double>();
    CHECK(std::abs(got - exact) <= 2 * kEps<float> * exact);
  }
}

TEST_CASE("ops/reduce: the CUDA block reduction's integer sums and extrema are exact (host emulation)", "[ops][cpu]") {
  using K = ops::ReduceKind;
  for (DType dt : {DType::Int32, DType::Int64}) {
    const Tensor x = random_tensor({3, 4000, 2}, 77, dt, -3, 3);  // many ties
    const auto rx = ref::from_tensor(x);
    INFO(drcnn::dtype_name(dt));
    expect_allclose(drcnn::test::block_reduce(K::Sum, x), ref::sum(rx, 1, false), 0, 0);
    expect_allclose(drcnn::test::block_reduce(K::Max, x), ref::max(rx, 1, false), 0, 0);
    expect_allclose(drcnn::test::block_reduce(K::ArgMax, x), ref::argmax(rx, 1, false), 0, 0);
    expect_allclose(drcnn::test::block_reduce(K::ArgMin, x), ref::argmin(rx, 1, false), 0, 0);
  }
}

TEST_CASE("ops/reduce: hand-computed values", "[ops][cpu]") {
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  expect_equal(ops::sum(x, 0), {5, 7, 9});
  expect_equal(ops::sum(x, 1), {6, 15});
  expect_equal(ops::sum(x, -1, true), {6, 15});
  CHECK(ops::sum(x, -1, true).shape() == Shape{2, 1});
  expect_equal(ops::mean(x, 1), {2, 5});
  expect_equal(ops::mean(x), {3.5});
  expect_equal(ops::max(x, 0), {4, 5, 6});
  expect_equal(ops::argmax(x, 1), {2, 2});
  expect_equal(ops::argmin(x, 0), {0, 0, 0});
  expect_equal(ops::sum(x), {21});
  // Cancellation a naive f32 loop gets wrong: 1e8 + 1 - 1e8 = 1 with compensation.
  expect_equal(ops::sum(Tensor::from_vector<float>({1e8f, 1.f, -1e8f}), 0), {1});
  expect_equal(ops::sum(Tensor::from_vector<float>({1e8f, 1.f, -1e8f})), {1});
}

TEST_CASE("ops/reduce: 0-d inputs and 0-size dims", "[ops][cpu]") {
  const Tensor s = Tensor::full({}, 2.5, DType::Float64);
  CHECK(ops::sum(s, 0).ndim() == 0);
  expect_equal(ops::sum(s, 0), {2.5});
  expect_equal(ops::max(s, -1), {2.5});
  expect_equal(ops::argmax(s, 0), {0});
  expect_equal(ops::mean(s), {2.5});
  CHECK(ops::sum(s, 0, true).ndim() == 0);  // keepdim of a 0-d tensor stays 0-d (torch)
  REQUIRE_THROWS_WITH(ops::sum(s, 1), Contains("sum: dimension 1 is out of range"));
  const Tensor z = Tensor::zeros({0, 3});
  // Sum over an empty extent is 0; over a non-empty one of an empty tensor is empty.
  CHECK(ops::sum(z, 0).shape() == Shape{3});
  expect_equal(ops::sum(z, 0), {0, 0, 0});
  expect_equal(ops::sum(z, 0, true), {0, 0, 0});
  CHECK(ops::sum(z, 1).shape() == Shape{0});
  CHECK(ops::max(z, 1).shape() == Shape{0});
  CHECK(ops::argmax(z, 1, true).shape() == Shape{0, 1});
  CHECK(ops::mean(z, 1).shape() == Shape{0});
  expect_equal(ops::sum(z), {0});
  CHECK(ops::sum(z).ndim() == 0);
  expect_equal(ops::sum(Tensor::zeros({0}, DType::Int32)), {0});
  REQUIRE_THROWS_WITH(ops::max(z, 0), Contains("max: cannot reduce dimension 0 of extent 0") && Contains("[0, 3]"));
  REQUIRE_THROWS_WITH(ops::min(z, 0), Contains("min: cannot reduce dimension 0 of extent 0"));
  REQUIRE_THROWS_WITH(ops::argmax(z, 0), Contains("argmax: cannot reduce dimension 0 of extent 0"));
  REQUIRE_THROWS_WITH(ops::argmin(z, -2), Contains("argmin: cannot reduce dimension 0 of extent 0"));
  REQUIRE_THROWS_WITH(ops::mean(z, 0), Contains("mean: cannot reduce dimension 0 of extent 0"));
  REQUIRE_THROWS_WITH(ops::max(z), Contains("max: cannot reduce an empty tensor (shape [0, 3])"));
  REQUIRE_THROWS_WITH(ops::min(z), Contains("min: cannot reduce an empty tensor"));
  REQUIRE_THROWS_WITH(ops::mean(z), Contains("mean: cannot reduce an empty tensor"));
}

TEST_CASE("ops/reduce: dtype, dim and undefined-input errors", "[ops][cpu]") {
  const Tensor x = Tensor::ones({2, 3});
  REQUIRE_THROWS_WITH(ops::sum(x, 2), Contains("sum: dimension 2 is out of range for a tensor with 2 dimensions"));
  REQUIRE_THROWS_WITH(ops::argmax(x, -3), Contains("argmax: dimension -3 is out of range"));
  REQUIRE_THROWS_WITH(ops::sum(Tensor::ones({2}, DType::Bool)),
                      Contains("sum: expected float32, float64, int32 or int64, got bool"));
  REQUIRE_THROWS_WITH(ops::max(Tensor::ones({2}, DType::UInt8), 0), Contains("max: expected float32") &&
                                                                        Contains("got uint8"));
  REQUIRE_THROWS_WITH(ops::sum(Tensor::ones({2}, DType::Float16), 0), Contains("sum") && Contains("got float16"));
  REQUIRE_THROWS_WITH(ops::mean(Tensor::ones({2}, DType::BFloat16)), Contains("mean") && Contains("got bfloat16"));
  REQUIRE_THROWS_WITH(ops::sum(Tensor()), Contains("sum: input is an undefined tensor"));
  REQUIRE_THROWS_WITH(ops::argmin(Tensor(), 0), Contains("argmin: input is an undefined tensor"));
}
