// Elementwise ops (include/drcnn/ops/elementwise.h) against the float64 references: every op
// on random inputs in contiguous and strided layouts, broadcasting, 0-size dims, integer
// dtypes, NaN behaviour, hand-computed values and every error.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <functional>

#include "common/allclose.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/elementwise.h"
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

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
struct BinaryCase {
  const char* name;
  BinaryFn op;
  std::function<double(double, double)> ref;
  double lo, hi;       // input range of a (b uses [lo_b, hi_b])
  double lo_b, hi_b;
  double ulps;         // tolerance in units of the dtype's epsilon (see the table)
};

// Tolerances, relative to |expected|, in units of epsilon(T):
// add/sub/mul/div/maximum/minimum are single IEEE operations, correctly rounded: the result is
// within 0.5 ulp of the exact value the float64 reference computes from the same inputs
// (for f64 the reference performs the very same rounding, so the difference is 0).
// pow goes through libm's pow/powf (not correctly rounded: glibc documents < 1 ulp), plus
// the 0.5 ulp rounding of the f32 result: 2 eps.
std::vector<BinaryCase> binary_cases() {
  return {
      {"add", &ops::add, [](double a, double b) { return a + b; }, -1, 1, -1, 1, 1},
      {"sub", &ops::sub, [](double a, double b) { return a - b; }, -1, 1, -1, 1, 1},
      {"mul", &ops::mul, [](double a, double b) { return a * b; }, -1, 1, -1, 1, 1},
      {"div", &ops::div, [](double a, double b) { return a / b; }, -1, 1, 0.5, 2, 1},
      {"pow", static_cast<BinaryFn>(&ops::pow), [](double a, double b) { return std::pow(a, b); }, 0.1, 3, -2, 2, 2},
      {"maximum", &ops::maximum, [](double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); },
       -1, 1, -1, 1, 0},
      {"minimum", &ops::minimum, [](double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b); },
       -1, 1, -1, 1, 0},
  };
}

// The reference computes in float64 from the stored values; for f64 inputs it is the same
// arithmetic, so with the f64 result rounded identically the two agree to the last bit.
template <typename T>
double tol(double ulps) {
  return std::is_same_v<T, double> ? ulps * kEps<double> : ulps * kEps<float>;
}

// Shape pairs that broadcast: equal, row/column, leading dims, 0-d, and 0-size.
const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{4, 5}, {4, 5}}, {{4, 1}, {1, 5}}, {{3, 4, 5}, {5}}, {{5}, {3, 4, 5}}, {{}, {2, 3}},
    {{2, 3}, {}},     {{3, 1, 2}, {4, 1}}, {{0, 5}, {1, 5}}, {{3, 0}, {3, 1}}, {{0}, {}}};
}  // namespace

// ============================================================================ binary
TEMPLATE_TEST_CASE("ops/binary: every op matches the reference over layouts and broadcasting", "[ops][cpu]", float,
                   double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 100;
  for (const auto& c : binary_cases()) {
    for (const auto& [sa, sb] : kBroadcastPairs) {
      for (const auto& la : layouts(sa, seed++, dt, c.lo, c.hi)) {
        for (const auto& lb : layouts(sb, seed++, dt, c.lo_b, c.hi_b)) {
          INFO(c.name << ": a " << fmt::format("{}", sa) << " " << la.name << ", b " << fmt::format("{}", sb) << " "
                      << lb.name);
          const Tensor out = c.op(la.t, lb.t);
          CHECK(out.dtype() == dt);
          CHECK(out.is_contiguous());
          expect_allclose(out, ref::binary(ref::from_tensor(la.t), ref::from_tensor(lb.t), c.ref),
                          tol<TestType>(c.ulps), 0);
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("ops/binary: large broadcast inputs take the parallel path correctly", "[ops][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  // 300 x 257 = 77100 outputs (> the 32768 parallel grain); b is a transposed column slice.
  const Tensor a = random_tensor({300, 257}, 1, dt);
  const Tensor b = random_tensor({257, 600}, 2, dt).slice(1, 0, 600, 2).transpose(0, 1).narrow(1, 0, 1);  // [300, 1]
  const Tensor out = ops::mul(a, b);
  expect_allclose(out, ref::binary(ref::from_tensor(a), ref::from_tensor(b), std::multiplies<double>()),
                  tol<TestType>(1), 0);
  const Tensor a3 = random_tensor({64, 1, 600}, 3, dt);
  const Tensor b3 = random_tensor({600, 40}, 4, dt).transpose(0, 1);  // [40, 600] strided
  expect_allclose(ops::add(a3, b3), ref::binary(ref::from_tensor(a3), ref::from_tensor(b3), std::plus<double>()),
                  tol<TestType>(1), 0);
}

TEST_CASE("ops/binary: integer dtypes compute exactly", "[ops][cpu]") {
  for (DType dt : {DType::Int32, DType::Int64}) {
    INFO(drcnn::dtype_name(dt));
    for (const auto& la : layouts({3, 4}, 7, dt, -50, 50)) {
      for (const auto& lb : layouts({4}, 8, dt, -50, 50)) {
        const auto ra = ref::from_tensor(la.t), rb = ref::from_tensor(lb.t);
        const Tensor s = ops::add(la.t, lb.t);
        CHECK(s.dtype() == dt);
        expect_equal(s, ref::binary(ra, rb, std::plus<double>()).data);
        expect_equal(ops::sub(la.t, lb.t), ref::binary(ra, rb, std::minus<double>()).data);
        expect_equal(ops::mul(la.t, lb.t), ref::binary(ra, rb, std::multiplies<double>()).data);
        expect_equal(ops::maximum(la.t, lb.t), ref::binary(ra, rb, [](double x, double y) { return std::max(x, y); }).data);
        expect_equal(ops::minimum(la.t, lb.t), ref::binary(ra, rb, [](double x, double y) { return std::min(x, y); }).data);
      }
    }
  }
  // int32 arithmetic wraps like the C++ type would not: stay inside the range, but check
  // that int64 keeps values beyond 2^31.
  const Tensor big = Tensor::from_vector<int64_t>({int64_t(1) << 40, -(int64_t(1) << 35)});
  expect_equal(ops::add(big, big), {double(int64_t(1) << 41), -double(int64_t(1) << 36)});
}

TEST_CASE("ops/binary: hand-computed values and operators", "[ops][cpu]") {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector<float>({10, 20}, {2});
  expect_equal(a + b, {11, 22, 13, 24});
  expect_equal(a - b, {-9, -18, -7, -16});
  expect_equal(a * b, {10, 40, 30, 80});
  expect_allclose(b / a, {10, 10, 10.0 / 3.0, 5}, kEps<float>, 0);  // 10/3 rounds in f32
  expect_equal(-a, {-1, -2, -3, -4});
  expect_equal(ops::pow(a, Tensor::full({}, 2.0)), {1, 4, 9, 16});
  expect_equal(ops::maximum(a, Tensor::full({}, 2.5)), {2.5, 2.5, 3, 4});
  expect_equal(ops::minimum(a, Tensor::full({}, 2.5)), {1, 2, 2.5, 2.5});
  expect_equal(ops::div(Tensor::from_vector<double>({1, -1, 0}), Tensor::zeros({3}, DType::Float64)),
               {INFINITY, -INFINITY, NAN});
  // The result is a new tensor: inputs unchanged, output independent.
  Tensor out = a + b;
  out.fill_(0);
  expect_equal(a, {1, 2, 3, 4});
}

TEST_CASE("ops/binary: maximum and minimum propagate NaN from either side", "[ops][cpu]") {
  const Tensor a = Tensor::from_vector<float>({NAN, 1, NAN, 2, -INFINITY});
  const Tensor b = Tensor::from_vector<float>({1, NAN, NAN, 3, INFINITY});
  expect_equal(ops::maximum(a, b), {NAN, NAN, NAN, 3, INFINITY});
  expect_equal(ops::minimum(a, b), {NAN, NAN, NAN, 2, -INFINITY});
  expect_equal(ops::add(a, b), {NAN, NAN, NAN, 5, NAN});
}

TEST_CASE("ops/binary: errors name the op, the dtypes and the shapes", "[ops][cpu]") {
  const Tensor f = Tensor::zeros({2, 3});
  const Tensor d = Tensor::zeros({2, 3}, DType::Float64);
  const Tensor i = Tensor::zeros({2, 3}, DType::Int64);
  REQUIRE_THROWS_WITH(ops::add(f, d), Contains("add: operands must have the same dtype, got float32 and float64"));
  REQUIRE_THROWS_WITH(ops::mul(i, f), Contains("mul: operands must have the same dtype, got int64 and float32"));
  REQUIRE_THROWS_WITH(ops::sub(f, Tensor::zeros({4})),
                      Contains("sub: shapes [2, 3] and [4] cannot be broadcast together"));
  REQUIRE_THROWS_WITH(ops::maximum(f, Tensor::zeros({3, 3})), Contains("maximum") && Contains("cannot be broadcast"));
  REQUIRE_THROWS_WITH(ops::div(i, i), Contains("div: expected a float32 or float64 tensor, got int64"));
  REQUIRE_THROWS_WITH(ops::pow(i, i), Contains("pow: expected a float32 or float64 tensor, got int64"));
  const Tensor u8 = Tensor::zeros({2}, DType::UInt8);
  REQUIRE_THROWS_WITH(ops::add(u8, u8), Contains("add: expected float32, float64, int32 or int64, got uint8"));
  const Tensor h = Tensor::zeros({2}, DType::Float16);
  REQUIRE_THROWS_WITH(ops::mul(h, h), Contains("mul: expected float32, float64, int32 or int64, got float16"));
  const Tensor bl = Tensor::zeros({2}, DType::Bool);
  REQUIRE_THROWS_WITH(ops::add(bl, bl), Contains("add") && Contains("got bool"));
  REQUIRE_THROWS_WITH(ops::add(f, Tensor()), Contains("add: operand 1 is an undefined tensor"));
  REQUIRE_THROWS_WITH(ops::add(Tensor(), f), Contains("add: operand 0 is an undefined tensor"));
}

// ============================================================================ unary
namespace {
using UnaryFn = Tensor (*)(const Tensor&);
struct UnaryCase {
  const char* name;
  UnaryFn op;
  std::function<double(double)> ref;
  double lo, hi;
  double ulps;  // relative tolerance in eps(T) (see below)
};
// neg/abs/relu are exact. sqrt is correctly rounded (IEEE): 0.5 ulp of the f32 result.
// exp/log: glibc's expf/logf/exp/log are < 1 ulp; plus the f32 result rounding: 2 eps.
// sigmoid: exp (< 1 ulp) then one add and one divide (0.5 ulp each), and the library's
// branch for x < 0 (e / (1 + e)) rounds differently from the reference's 1/(1 + exp(-x)):
// 4 eps.
std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", &ops::neg, [](double x) { return -x; }, -2, 2, 0},
      {"abs", &ops::abs, [](double x) { return std::abs(x); }, -2, 2, 0},
      {"relu", &ops::relu, [](double x) { return x > 0 ? x : (std::isnan(x) ? x : 0.0); }, -2, 2, 0},
      {"exp", &ops::exp, [](double x) { return std::exp(x); }, -10, 10, 2},
      {"log", &ops::log, [](double x) { return std::log(x); }, 0.01, 100, 2},
      {"sqrt", &ops::sqrt, [](double x) { return std::sqrt(x); }, 0, 100, 1},
      {"sigmoid", &ops::sigmoid, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, -20, 20, 4},
  };
}
}  // namespace

TEMPLATE_TEST_CASE("ops/unary: every op matches the reference over layouts", "[ops][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 500;
  for (const auto& c : unary_cases()) {
    for (const Shape& s : {Shape{5, 7}, Shape{2, 3, 4}, Shape{}, Shape{0, 3}, Shape{40000}}) {
      for (const auto& l : layouts(s, seed++, dt, c.lo, c.hi)) {
        INFO(c.name << " " << fmt::format("{}", s) << " " << l.name);
        const Tensor out = c.op(l.t);
        CHECK(out.shape() == s);
        CHECK(out.dtype() == dt);
        // log near 1 has a tiny result: relative error is still bounded by the ulp rule
        // because libm's log is accurate relative to its result.
        expect_allclose(out, ref::unary(ref::from_tensor(l.t), c.ref), tol<TestType>(c.ulps), 0);
      }
    }
  }
}

TEMPLATE_TEST_CASE("ops/unary: scalar forms convert the scalar to the tensor's dtype", "[ops][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const auto T = [](double s) { return double(TestType(s)); };  // the scalar as the op sees it
  for (const auto& l : layouts({6, 5}, 900, dt, 0.1, 4)) {
    INFO(l.name);
    const auto x = ref::from_tensor(l.t);
    // One IEEE add/mul of stored values: 0.5 ulp.
    expect_allclose(ops::add(l.t, 0.1), ref::unary(x, [&](double v) { return v + T(0.1); }), tol<TestType>(1), 0);
    expect_allclose(ops::mul(l.t, -3.3), ref::unary(x, [&](double v) { return v * T(-3.3); }), tol<TestType>(1), 0);
    // libm pow: < 1 ulp plus result rounding.
    expect_allclose(ops::pow(l.t, 1.7), ref::unary(x, [&](double v) { return std::pow(v, T(1.7)); }),
                    tol<TestType>(2), 0);
    expect_allclose(ops::pow(l.t, 2.0), ref::unary(x, [&](double v) { return v * v; }), tol<TestType>(1), 0);
    // clamp selects one of x, lo, hi: exact.
    expect_equal(ops::clamp(l.t, 1.0, 2.5), ref::unary(x, [](double v) { return std::clamp(v, 1.0, 2.5); }).data);
  }
}

TEST_CASE("ops/unary: integer dtypes", "[ops][cpu]") {
  for (DType dt : {DType::Int32, DType::Int64}) {
    INFO(drcnn::dtype_name(dt));
    for (const auto& l : layouts({4, 3}, 77, dt, -20, 20)) {
      const auto x = ref::from_tensor(l.t);
      expect_equal(ops::neg(l.t), ref::unary(x, [](double v) { return -v; }).data);
      expect_equal(ops::abs(l.t), ref::unary(x, [](double v) { return std::abs(v); }).data);
      expect_equal(ops::relu(l.t), ref::unary(x, [](double v) { return std::max(v, 0.0); }).data);
      expect_equal(ops::clamp(l.t, -5, 7), ref::unary(x, [](double v) { return std::clamp(v, -5.0, 7.0); }).data);
      expect_equal(ops::add(l.t, 3.0), ref::unary(x, [](double v) { return v + 3; }).data);
      expect_equal(ops::mul(l.t, -2.0), ref::unary(x, [](double v) { return v * -2; }).data);
      CHECK(ops::neg(l.t).dtype() == dt);
    }
    const Tensor i = Tensor::ones({2}, dt);
    REQUIRE_THROWS_WITH(ops::exp(i), Contains("exp: expected a float32 or float64 tensor, got"));
    REQUIRE_THROWS_WITH(ops::log(i), Contains("log: expected a float32 or float64 tensor"));
    REQUIRE_THROWS_WITH(ops::sqrt(i), Contains("sqrt: expected a float32 or float64 tensor"));
    REQUIRE_THROWS_WITH(ops::sigmoid(i), Contains("sigmoid: expected a float32 or float64 tensor"));
    REQUIRE_THROWS_WITH(ops::pow(i, 2.0), Contains("pow: expected a float32 or float64 tensor"));
    REQUIRE_THROWS_WITH(ops::add(i, 0.5), Contains("add: scalar 0.5 is not integral"));
    REQUIRE_THROWS_WITH(ops::mul(i, 1.5), Contains("mul: scalar 1.5 is not integral"));
    REQUIRE_THROWS_WITH(ops::add(i, INFINITY), Contains("add: non-finite scalar inf"));
    REQUIRE_THROWS_WITH(ops::clamp(i, 0.5, 2), Contains("clamp: bounds 0.5, 2 must be integral"));
  }
}

TEST_CASE("ops/unary: NaN, infinities and hand-computed values", "[ops][cpu]") {
  const Tensor x = Tensor::from_vector<float>({NAN, -INFINITY, INFINITY, -0.0f, 0.0f, -1.0f, 2.0f});
  expect_equal(ops::relu(x), {NAN, 0, INFINITY, 0, 0, 0, 2});
  expect_equal(ops::clamp(x, -0.5, 0.5), {NAN, -0.5, 0.5, 0, 0, -0.5, 0.5});
  expect_equal(ops::abs(x), {NAN, INFINITY, INFINITY, 0, 0, 1, 2});
  expect_equal(ops::neg(x), {NAN, INFINITY, -INFINITY, 0, 0, 1, -2});
  expect_equal(ops::exp(x).narrow(0, 0, 5), {NAN, 0, INFINITY, 1, 1});
  expect_equal(ops::sigmoid(x).narrow(0, 0, 5), {NAN, 0, 1, 0.5, 0.5});
  // Large |x| never produces NaN (exp of a positive number is never taken).
  expect_equal(ops::sigmoid(Tensor::from_vector<float>({-1000, 1000, -100})), {0, 1, std::exp(-100.0f)});
  expect_allclose(ops::sigmoid(Tensor::from_vector<double>({-800, 800, -30})), {0, 1, 1.0 / (1.0 + std::exp(30.0))},
                  4 * kEps<double>, 0);
  expect_equal(ops::log(Tensor::from_vector<float>({0, -1, 1, INFINITY})), {-INFINITY, NAN, 0, INFINITY});
  expect_equal(ops::sqrt(Tensor::from_vector<float>({-1, 0, 4, INFINITY})), {NAN, 0, 2, INFINITY});
  expect_equal(ops::pow(Tensor::from_vector<float>({2, -2, 0}), 3.0), {8, -8, 0});
  expect_equal(ops::pow(Tensor::from_vector<float>({4, 0}), -0.5), {0.5, INFINITY});
  // -0.0: relu and clamp keep a zero (either sign); abs makes it +0.
  CHECK_FALSE(std::signbit(ops::abs(Tensor::full({}, -0.0)).item<float>()));
  REQUIRE_THROWS_WITH(ops::clamp(x, 1, 0), Contains("clamp: lo 1 is greater than hi 0"));
  REQUIRE_THROWS_WITH(ops::relu(Tensor()), Contains("relu: input is an undefined tensor"));
  REQUIRE_THROWS_WITH(ops::exp(Tensor::zeros({1}, DType::Float16)), Contains("exp: expected a float32 or float64"));
}

// ============================================================================ comparisons
TEMPLATE_TEST_CASE("ops/compare: comparisons match the reference, NaN compares false except ne", "[ops][cpu]", float,
                   double, int32_t, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  using Fn = Tensor (*)(const Tensor&, const Tensor&);
  const std::vector<std::tuple<const char*, Fn, std::function<double(double, double)>>> cases = {
      {"eq", &ops::eq, [](double a, double b) { return double(a == b); }},
      {"ne", &ops::ne, [](double a, double b) { return double(a != b); }},
      {"lt", static_cast<Fn>(&ops::lt), [](double a, double b) { return double(a < b); }},
      {"le", &ops::le, [](double a, double b) { return double(a <= b); }},
      {"gt", static_cast<Fn>(&ops::gt), [](double a, double b) { return double(a > b); }},
      {"ge", &ops::ge, [](double a, double b) { return double(a >= b); }},
  };
  // Few distinct values, so that equality happens often.
  for (const auto& [name, op, f] : cases) {
    for (const auto& la : layouts({3, 4}, 31, dt, 0, 3)) {
      for (const auto& lb : layouts({4}, 32, dt, 0, 3)) {
        INFO(name << " " << la.name << " " << lb.name);
        Tensor a = la.t, b = lb.t;
        if constexpr (std::is_floating_point_v<TestType>) {  // quantise in place (keeps the layout) to make ties
          a.copy_(a.to(DType::Int32));
          b.copy_(b.to(DType::Int32));
        }
        const Tensor out = op(a, b);
        CHECK(out.dtype() == DType::Bool);
        expect_equal(out, ref::binary(ref::from_tensor(a), ref::from_tensor(b), f).data);
      }
    }
  }
  if constexpr (std::is_floating_point_v<TestType>) {
    const Tensor n = Tensor::from_vector<TestType>({NAN, NAN, 1});
    const Tensor m = Tensor::from_vector<TestType>({NAN, 1, NAN});
    expect_equal(ops::eq(n, m), {0, 0, 0});
    expect_equal(ops::ne(n, m), {1, 1, 1});
    expect_equal(ops::lt(n, m), {0, 0, 0});
    expect_equal(ops::le(n, m), {0, 0, 0});
    expect_equal(ops::gt(n, m), {0, 0, 0});
    expect_equal(ops::ge(n, m), {0, 0, 0});
    expect_equal(ops::gt(n, 0.5), {0, 0, 1});
    expect_equal(ops::lt(n, 1.5), {0, 0, 1});
  }
  const Tensor v = Tensor::from_vector<TestType>({1, 2, 3});
  expect_equal(ops::gt(v, 2.0), {0, 0, 1});
  expect_equal(ops::lt(v, 2.0), {1, 0, 0});
  CHECK(ops::eq(Tensor::zeros({0, 2}, dt), Tensor::zeros({2}, dt)).shape() == Shape{0, 2});
}

TEST_CASE("ops/compare: errors", "[ops][cpu]") {
  REQUIRE_THROWS_WITH(ops::eq(Tensor::zeros({2}), Tensor::zeros({2}, DType::Int32)),
                      Contains("eq: operands must have the same dtype, got float32 and int32"));
  REQUIRE_THROWS_WITH(ops::lt(Tensor::zeros({2}), Tensor::zeros({3})), Contains("lt: shapes [2] and [3] cannot"));
  REQUIRE_THROWS_WITH(ops::gt(Tensor(), 1.0), Contains("gt: input is an undefined tensor"));
}

// ============================================================================ where
TEMPLATE_TEST_CASE("ops/where: selects with broadcasting over layouts", "[ops][cpu]", float, double, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  // cond [3, 1]: contiguous, a strided column of a [3, 2] bool tensor, and expanded from [1, 1].
  const std::vector<std::pair<const char*, Tensor>> conds = {
      {"contiguous", Tensor::from_vector<bool>({true, false, true}, {3, 1})},
      {"strided", Tensor::from_vector<bool>({false, true, true, false, false, true}, {3, 2}).slice(1, 0, 2, 2)},
      {"expanded", Tensor::from_vector<bool>({true}, {1, 1}).expand({3, 1})}};
  for (const auto& [cname, cond] : conds) {
    for (const auto& la : layouts({4}, 12, dt, -9, 9)) {
      for (const auto& lb : layouts({2, 1, 1}, 13, dt, -9, 9)) {
        INFO(cname << " " << la.name << " " << lb.name);
        const Tensor out = ops::where(cond, la.t, lb.t);
        CHECK(out.shape() == Shape{2, 3, 4});
        expect_equal(out,
                     ref::where(ref::from_tensor(cond), ref::from_tensor(la.t), ref::from_tensor(lb.t)).data);
      }
    }
  }
}

TEST_CASE("ops/where: every dtype, NaN passes through, errors", "[ops][cpu]") {
  const Tensor cond = Tensor::from_vector<bool>({true, false, true});
  expect_equal(ops::where(cond, Tensor::from_vector<float>({NAN, 1, 2}), Tensor::from_vector<float>({5, NAN, 7})),
               {NAN, NAN, 2});
  for (DType dt : {DType::Float16, DType::BFloat16, DType::UInt8, DType::Bool, DType::Int32}) {
    INFO(drcnn::dtype_name(dt));
    expect_equal(ops::where(cond, Tensor::ones({3}, dt), Tensor::zeros({1}, dt)), {1, 0, 1});
  }
  CHECK(ops::where(cond, Tensor::ones({0, 3}), Tensor::ones({3})).shape() == Shape{0, 3});
  REQUIRE_THROWS_WITH(ops::where(Tensor::ones({3}), Tensor::ones({3}), Tensor::ones({3})),
                      Contains("where: cond must be a bool tensor, got float32"));
  REQUIRE_THROWS_WITH(ops::where(cond, Tensor::ones({3}), Tensor::ones({3}, DType::Float64)),
                      Contains("where: operands must have the same dtype, got float32 and float64"));
  REQUIRE_THROWS_WITH(ops::where(cond, Tensor::ones({4}), Tensor::ones({3})),
                      Contains("where: shapes [3] and [4] cannot be broadcast"));
}

// ============================================================================ backward helpers
TEMPLATE_TEST_CASE("ops/backward helpers: relu_backward and sigmoid_backward", "[ops][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  for (const auto& lg : layouts({5, 6}, 41, dt)) {
    for (const auto& lx : layouts({5, 6}, 42, dt, -1, 1)) {
      const auto g = ref::from_tensor(lg.t), x = ref::from_tensor(lx.t);
      // relu'(x) = 1 for x > 0, 0 for x <= 0 (0 at x == 0, torch's choice): exact.
      expect_equal(ops::relu_backward(lg.t, lx.t),
                   ref::binary(g, x, [](double gv, double xv) { return xv > 0 ? gv : 0.0; }).data);
      // g * y * (1 - y): two multiplies and one subtract, 0.5 ulp each (1 - y is exact for
      // y in [0.5, 1] by Sterbenz, but not below): 2 eps.
      expect_allclose(ops::sigmoid_backward(lg.t, lx.t),
                      ref::binary(g, x, [](double gv, double yv) { return gv * yv * (1 - yv); }), tol<TestType>(2),
                      tol<TestType>(2) * 0.25);
    }
  }
  expect_equal(ops::relu_backward(Tensor::from_vector<float>({1, 2, 3}), Tensor::from_vector<float>({-1, 0, 1})),
               {0, 0, 3});
  REQUIRE_THROWS_WITH(ops::relu_backward(Tensor::ones({2}, DType::Int64), Tensor::ones({2}, DType::Int64)),
                      Contains("relu_backward: expected a float32 or float64 tensor, got int64"));
}

// ============================================================================ sum_to
TEMPLATE_TEST_CASE("ops/sum_to: sums broadcast dims back to the operand's shape", "[ops][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const std::vector<std::pair<Shape, Shape>> cases = {{{3, 4, 5}, {4, 1}}, {{3, 4, 5}, {1, 5}}, {{3, 4, 5}, {5}},
                                                      {{3, 4, 5}, {}},     {{3, 4, 5}, {3, 1, 1}}, {{3, 4, 5}, {3, 4, 5}},
                                                      {{2, 0, 3}, {3}},    {{2, 0, 3}, {2, 1, 1}}};
  for (const auto& [from, to] : cases) {
    for (const auto& l : layouts(from, 61, dt)) {
      INFO(fmt::format("{} -> {} ", from, to) << l.name);
      const Tensor out = ops::sum_to(l.t, to);
      // sum_to reduces one dim at a time, and each stage rounds its (compensated) partial sums
      // to T once: |error| <= stages * eps * sum|x| over the summed elements (cancellation can
      // make that large relative to the result, so the bound is absolute).
      const auto x = ref::from_tensor(l.t);
      const auto abs_sums = ref::sum_to(ref::unary(x, [](double v) { return std::abs(v); }), to.vec());
      const double max_abs_sum = abs_sums.data.empty() ? 0.0 : *std::max_element(abs_sums.data.begin(), abs_sums.data.end());
      const int stages = from.ndim();  // upper bound on the number of reduced dims
      expect_allclose(out, ref::sum_to(x, to.vec()), tol<TestType>(1), stages * kEps<TestType> * max_abs_sum);
    }
  }
  REQUIRE_THROWS_WITH(ops::sum_to(Tensor::zeros({3, 4}), {5}), Contains("sum_to") && Contains("cannot be broadcast"));
  REQUIRE_THROWS_WITH(ops::sum_to(Tensor::zeros({4}), {3, 4}),
                      Contains("sum_to: shape [3, 4] does not broadcast to the gradient's shape [4]"));
}

// ============================================================================ integer scalars
TEST_CASE("ops/compare: integer tensors against real scalars compare exactly", "[ops][cpu]") {
  // gt/lt(a, s) mean a > s and a < s for the real number s, as torch's type promotion gives;
  // converting s to the integer type first would turn -2 > -2.5 into -2 > -2 (false).
  for (DType dt : {DType::Int32, DType::Int64}) {
    INFO(drcnn::dtype_name(dt));
    const Tensor a = Tensor::from_vector<int64_t>({-3, -2, -1, 0, 1, 2, 3}).to(dt);
    const auto ra = ref::from_tensor(a);
    for (double s : {-2.5, -2.0, -0.5, 0.0, 0.5, 2.5, 3.0, 1e10, -1e10, 1e30, -1e30, 9.3e18, -9.3e18}) {
      INFO("s " << s);
      expect_equal(ops::gt(a, s), ref::unary(ra, [s](double v) { return double(v > s); }).data);
      expect_equal(ops::lt(a, s), ref::unary(ra, [s](double v) { return double(v < s); }).data);
    }
    expect_equal(ops::gt(a, NAN), std::vector<double>(7, 0.0));
    expect_equal(ops::lt(a, NAN), std::vector<double>(7, 0.0));
    expect_equal(ops::gt(a, INFINITY), std::vector<double>(7, 0.0));
    expect_equal(ops::lt(a, INFINITY), std::vector<double>(7, 1.0));
  }
  // Floating tensors compare with the scalar converted to their dtype (as torch does):
  // float(0.1) > float(0.1) is false even though float(0.1) > 0.1 in real numbers.
  expect_equal(ops::gt(Tensor::full({1}, 0.1, DType::Float32), 0.1), {0});
}

TEST_CASE("ops/unary: integer scalars must fit the dtype, clamp bounds saturate", "[ops][cpu]") {
  const Tensor i32 = Tensor::from_vector<int32_t>({-5, 0, 7});
  REQUIRE_THROWS_WITH(ops::add(i32, 3e9), Contains("add: scalar 3000000000 does not fit in int32"));
  REQUIRE_THROWS_WITH(ops::mul(i32, -3e9), Contains("mul: scalar -3000000000 does not fit in int32"));
  REQUIRE_THROWS_WITH(ops::add(Tensor::ones({1}, DType::Int64), 1e19), Contains("add: scalar") && Contains("does not fit in int64"));
  expect_equal(ops::add(i32, 2147483000.0), {2147482995.0, 2147483000.0, 2147483007.0});
  // Bounds beyond the dtype's range clamp nothing on that side (no undefined conversion).
  expect_equal(ops::clamp(i32, -1e10, 1e10), {-5, 0, 7});
  expect_equal(ops::clamp(i32, -1e10, 3), {-5, 0, 3});
  expect_equal(ops::clamp(i32, 1e10, 2e10), {2147483647.0, 2147483647.0, 2147483647.0});
  expect_equal(ops::clamp(Tensor::from_vector<int64_t>({-5, 7}), -1e30, 0), {-5, 0});
}
