// Finite-difference checks of every differentiable function in autograd/functions.h, in
// float64 on the CPU, plus a few gradients computed by hand and compared exactly.
//
// Tolerances: gradcheck's defaults (eps 1e-6, rtol 1e-4, atol 1e-6). Central differences in
// float64 have truncation error ~eps^2 * |f'''| ~ 1e-12 and rounding error ~1e-16 * |L| / eps
// ~ 1e-9 for the O(10) losses here, far inside atol; a wrong backward is off by O(1).
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <random>

#include "common/allclose.h"
#include "common/gradcheck.h"
#include "common/random.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/ops/matmul.h"

using namespace drcnn;
using drcnn::test::gradcheck;
using drcnn::test::random_tensor;
using In = std::vector<Variable>;

namespace {
/// A float64 leaf requiring grad, uniform in [lo, hi).
Variable leaf(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return Variable(random_tensor<double>(shape, seed, lo, hi), true);
}
/// Values with |x| in [0.2, 1): random sign, away from the kinks of relu/abs at 0.
Variable leaf_off_zero(const Shape& shape, uint64_t seed) {
  std::vector<double> v = test::random_values(shape.numel(), seed, 0.2, 1.0);
  const std::vector<int64_t> s = test::random_ints(shape.numel(), seed + 1, 0, 1);
  for (size_t i = 0; i < v.size(); ++i) v[i] = s[i] ? v[i] : -v[i];
  return Variable(Tensor::from_vector<double>(v, shape), true);
}
/// A shuffled 0.1 * (0..n-1) plus noise < 0.01: all values at least 0.09 apart (no ties for
/// max/min/topk/maximum, so the finite difference never crosses a switch of the arg position).
Variable leaf_distinct(const Shape& shape, uint64_t seed) {
  std::vector<double> v(size_t(shape.numel()));
  std::iota(v.begin(), v.end(), 0.0);
  std::mt19937_64 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  const std::vector<double> noise = test::random_values(shape.numel(), seed + 1, 0.0, 0.01);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * v[i] - 0.5 + noise[i];
  return Variable(Tensor::from_vector<double>(v, shape), true);
}
/// A leaf whose data is a transposed (non-contiguous) view of a [cols, rows] buffer.
Variable leaf_transposed(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = random_tensor<double>({cols, rows}, seed).transpose(0, 1);
  REQUIRE_FALSE(t.is_contiguous());
  return Variable(t, true);
}
Tensor index_of(const std::vector<int64_t>& v, const Shape& shape) { return Tensor::from_vector<int64_t>(v, shape); }
Tensor index_of(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(v); }
}  // namespace

/// Runs gradcheck and fails with its report (input, element, both values, max errors).
#define REQUIRE_GRADCHECK(f, ...)                 \
  do {                                            \
    const auto r_ = gradcheck(f, __VA_ARGS__);    \
    INFO(r_.report);                              \
    REQUIRE(r_.ok);                               \
    REQUIRE(r_.checked > 0);                      \
  } while (0)

// ------------------------------------------------------------------ elementwise binaries
TEST_CASE("autograd/add: gradient matches finite differences, with broadcasting", "[autograd][cpu]") {
  auto f = [](In x) { return add(x[0], x[1]); };
  SECTION("same shape") { REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({3, 4}, 2)}); }
  SECTION("row vector") { REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({4}, 2)}); }
  SECTION("both broadcast") { REQUIRE_GRADCHECK(f, {leaf({3, 1}, 1), leaf({1, 4}, 2)}); }
  SECTION("0-d") { REQUIRE_GRADCHECK(f, {leaf({2, 3}, 1), leaf(Shape{}, 2)}); }
  SECTION("transposed view") { REQUIRE_GRADCHECK(f, {leaf_transposed(3, 4, 1), leaf({3, 4}, 2)}); }
  SECTION("only one input requires grad") {
    Variable c(random_tensor<double>({4}, 3), false);
    REQUIRE_GRADCHECK([c](In x) { return add(c, x[0]); }, {leaf({3, 4}, 1)});
  }
}

TEST_CASE("autograd/sub: gradient matches finite differences, with broadcasting", "[autograd][cpu]") {
  auto f = [](In x) { return sub(x[0], x[1]); };
  REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({3, 4}, 2)});
  REQUIRE_GRADCHECK(f, {leaf({2, 1, 4}, 3), leaf({3, 1}, 4)});
}

TEST_CASE("autograd/mul: gradient matches finite differences, with broadcasting", "[autograd][cpu]") {
  auto f = [](In x) { return mul(x[0], x[1]); };
  REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({3, 4}, 2)});
  REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({3, 1}, 2)});
  REQUIRE_GRADCHECK(f, {leaf_transposed(4, 3, 5), leaf({3}, 6)});
  REQUIRE_GRADCHECK([](In x) { return mul(x[0], x[0]); }, {leaf({5}, 7)});  // same input twice
}

TEST_CASE("autograd/div: gradient matches finite differences, with broadcasting", "[autograd][cpu]") {
  auto f = [](In x) { return div(x[0], x[1]); };
  // Denominators in [0.5, 2): away from the pole at 0.
  REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({3, 4}, 2, 0.5, 2.0)});
  REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({4}, 2, 0.5, 2.0)});
  REQUIRE_GRADCHECK(f, {leaf({4}, 1), leaf({3, 4}, 2, -2.0, -0.5)});
}

TEST_CASE("autograd/add_scalar and mul_scalar: gradient matches finite differences", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return add(x[0], 2.5); }, {leaf({3, 2}, 1)});
  REQUIRE_GRADCHECK([](In x) { return mul(x[0], -1.75); }, {leaf({3, 2}, 1)});
  REQUIRE_GRADCHECK([](In x) { return 3.0 * x[0] + 1.0; }, {leaf_transposed(2, 3, 2)});
}

TEST_CASE("autograd/pow: gradient matches finite differences", "[autograd][cpu]") {
  for (double e : {2.0, 3.0, -1.5, 0.5, 1.0}) {
    INFO("exponent " << e);
    REQUIRE_GRADCHECK([e](In x) { return pow(x[0], e); }, {leaf({3, 4}, 1, 0.3, 2.0)});
  }
  SECTION("exponent 0 has a zero gradient, also at x = 0") {
    Variable x(Tensor::from_vector<double>({0.0, 1.0, -2.0}), true);
    sum(pow(x, 0.0)).backward();
    test::expect_equal(x.grad(), {0.0, 0.0, 0.0});
  }
  SECTION("tensor exponent, broadcast") {
    auto f = [](In x) { return pow(x[0], x[1]); };
    REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1, 0.3, 2.0), leaf({3, 4}, 2)});
    REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1, 0.3, 2.0), leaf({4}, 2)});
    REQUIRE_GRADCHECK(f, {leaf({4}, 1, 0.3, 2.0), leaf({2, 4}, 2)});
  }
  SECTION("tensor exponent: d/db at a == 0 is 0, not NaN") {
    Variable a(Tensor::from_vector<double>({0.0, 2.0}), true);
    Variable b(Tensor::from_vector<double>({2.0, 3.0}), true);
    sum(pow(a, b)).backward();
    // d/da = b a^(b-1) = {0, 12}; d/db = a^b log a = {0 (limit), 8 log 2}.
    test::expect_allclose(a.grad(), {0.0, 12.0}, 1e-15, 0.0);
    test::expect_allclose(b.grad(), {0.0, 8.0 * std::log(2.0)}, 1e-15, 0.0);
  }
}

// ------------------------------------------------------------------ elementwise unaries
TEST_CASE("autograd/neg, exp, log, sqrt: gradient matches finite differences", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return neg(x[0]); }, {leaf({3, 4}, 1)});
  REQUIRE_GRADCHECK([](In x) { return -x[0]; }, {leaf_transposed(3, 4, 1)});
  REQUIRE_GRADCHECK([](In x) { return exp(x[0]); }, {leaf({3, 4}, 2)});
  REQUIRE_GRADCHECK([](In x) { return log(x[0]); }, {leaf({3, 4}, 3, 0.2, 3.0)});  // x > 0
  REQUIRE_GRADCHECK([](In x) { return sqrt(x[0]); }, {leaf({3, 4}, 4, 0.2, 3.0)});  // away from the pole of d/dx at 0
}

TEST_CASE("autograd/abs: gradient matches finite differences away from 0, and is 0 at 0", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return abs(x[0]); }, {leaf_off_zero({4, 5}, 1)});
  Variable x(Tensor::from_vector<double>({-2.0, 0.0, 3.0}), true);
  sum(abs(x)).backward();
  test::expect_equal(x.grad(), {-1.0, 0.0, 1.0});
}

TEST_CASE("autograd/relu: gradient matches finite differences away from 0, and is 0 at 0", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return relu(x[0]); }, {leaf_off_zero({4, 5}, 1)});
  REQUIRE_GRADCHECK([](In x) { return relu(x[0]); }, {leaf_transposed(3, 2, 2)});  // uniform: |x| > 1e-6 here
  Variable x(Tensor::from_vector<double>({-2.0, 0.0, 3.0}), true);
  sum(relu(x)).backward();
  test::expect_equal(x.grad(), {0.0, 0.0, 1.0});
}

TEST_CASE("autograd/sigmoid: gradient matches finite differences", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return sigmoid(x[0]); }, {leaf({3, 4}, 1, -4.0, 4.0)});
}

TEST_CASE("autograd/clamp: gradient matches finite differences away from the bounds", "[autograd][cpu]") {
  // Values 0.2 away from the bounds -0.5 and 0.5: some below, some inside, some above.
  Variable x(Tensor::from_vector<double>({-1.2, -0.9, -0.3, -0.1, 0.05, 0.25, 0.7, 1.4}, {2, 4}), true);
  REQUIRE_GRADCHECK([](In v) { return clamp(v[0], -0.5, 0.5); }, {x});
  SECTION("the gradient passes at the bounds themselves (lo <= x <= hi)") {
    Variable b(Tensor::from_vector<double>({-0.5, 0.5, -0.6, 0.6}), true);
    sum(clamp(b, -0.5, 0.5)).backward();
    test::expect_equal(b.grad(), {1.0, 1.0, 0.0, 0.0});
  }
}

TEST_CASE("autograd/where: gradient goes to a where cond holds, to b elsewhere", "[autograd][cpu]") {
  Tensor cond = Tensor::from_vector<bool>({true, false, false, true, true, false}, {2, 3});
  REQUIRE_GRADCHECK([cond](In x) { return where(cond, x[0], x[1]); }, {leaf({2, 3}, 1), leaf({2, 3}, 2)});
  SECTION("broadcast a, b and cond") {
    Tensor row = Tensor::from_vector<bool>({true, false, true}, {3});
    REQUIRE_GRADCHECK([row](In x) { return where(row, x[0], x[1]); }, {leaf({2, 1}, 3), leaf({2, 3}, 4)});
    REQUIRE_GRADCHECK([cond](In x) { return where(cond, x[0], x[1]); }, {leaf({3}, 5), leaf(Shape{}, 6)});
  }
}

TEST_CASE("autograd/maximum and minimum: gradient matches finite differences without ties", "[autograd][cpu]") {
  // a and b interleave (a from one distinct set, b = a shifted) so that neither side always wins
  // and |a - b| >= 0.035 everywhere (no tie within eps).
  Variable a = leaf_distinct({3, 4}, 1);
  Variable b(ops::add(leaf_distinct({3, 4}, 2).data(), 0.045), true);
  REQUIRE_GRADCHECK([](In x) { return maximum(x[0], x[1]); }, {a, b});
  REQUIRE_GRADCHECK([](In x) { return minimum(x[0], x[1]); }, {a, b});
  SECTION("broadcast") {
    Variable row(Tensor::from_vector<double>({-0.345, 0.025, 0.455, 0.865}), true);  // >= 0.015 from every a
    REQUIRE_GRADCHECK([](In x) { return maximum(x[0], x[1]); }, {a, row});
    REQUIRE_GRADCHECK([](In x) { return minimum(x[0], x[1]); }, {row, a});
  }
  SECTION("ties send the gradient to a") {
    Variable p(Tensor::from_vector<double>({1.0, 2.0}), true), q(Tensor::from_vector<double>({1.0, 3.0}), true);
    sum(maximum(p, q)).backward();
    test::expect_equal(p.grad(), {1.0, 0.0});
    test::expect_equal(q.grad(), {0.0, 1.0});
  }
}

// ------------------------------------------------------------------ reductions
TEST_CASE("autograd/sum: gradient matches finite differences (all and along a dim)", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return sum(x[0]); }, {leaf({3, 4}, 1)});
  for (int dim : {0, 1, -1})
    for (bool keep : {false, true}) {
      INFO("dim " << dim << " keepdim " << keep);
      REQUIRE_GRADCHECK([dim, keep](In x) { return sum(x[0], dim, keep); }, {leaf({3, 4, 2}, 2)});
    }
  REQUIRE_GRADCHECK([](In x) { return sum(x[0], 0); }, {leaf_transposed(3, 4, 3)});
}

TEST_CASE("autograd/mean: gradient matches finite differences (all and along a dim)", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return mean(x[0]); }, {leaf({3, 4}, 1)});
  for (int dim : {0, 2})
    for (bool keep : {false, true}) {
      INFO("dim " << dim << " keepdim " << keep);
      REQUIRE_GRADCHECK([dim, keep](In x) { return mean(x[0], dim, keep); }, {leaf({3, 4, 2}, 2)});
    }
}

TEST_CASE("autograd/max and min along a dim: gradient flows to the arg position", "[autograd][cpu]") {
  for (int dim : {0, 1})
    for (bool keep : {false, true}) {
      INFO("dim " << dim << " keepdim " << keep);
      REQUIRE_GRADCHECK([dim, keep](In x) { return max(x[0], dim, keep); }, {leaf_distinct({4, 5}, 1)});
      REQUIRE_GRADCHECK([dim, keep](In x) { return min(x[0], dim, keep); }, {leaf_distinct({4, 5}, 2)});
    }
  SECTION("ties: the first position gets the gradient") {
    Variable x(Tensor::from_vector<double>({3.0, 1.0, 3.0, 1.0}, {1, 4}), true);
    sum(max(x, 1)).backward();
    test::expect_equal(x.grad(), {1.0, 0.0, 0.0, 0.0});
    Variable y(Tensor::from_vector<double>({3.0, 1.0, 3.0, 1.0}, {1, 4}), true);
    sum(min(y, 1)).backward();
    test::expect_equal(y.grad(), {0.0, 1.0, 0.0, 0.0});
  }
}

// ------------------------------------------------------------------ linear algebra
TEST_CASE("autograd/matmul: gradient matches finite differences (2-D, views, batched)", "[autograd][cpu]") {
  auto f = [](In x) { return matmul(x[0], x[1]); };
  SECTION("2-D") { REQUIRE_GRADCHECK(f, {leaf({3, 4}, 1), leaf({4, 5}, 2)}); }
  SECTION("2-D transposed views") { REQUIRE_GRADCHECK(f, {leaf_transposed(3, 4, 1), leaf_transposed(4, 2, 2)}); }
  SECTION("batched") { REQUIRE_GRADCHECK(f, {leaf({2, 3, 4}, 1), leaf({2, 4, 5}, 2)}); }
  SECTION("batch-1 a broadcasts") { REQUIRE_GRADCHECK(f, {leaf({1, 3, 4}, 1), leaf({3, 4, 2}, 2)}); }
  SECTION("batch-1 b broadcasts") { REQUIRE_GRADCHECK(f, {leaf({3, 2, 4}, 1), leaf({1, 4, 3}, 2)}); }
  SECTION("only b requires grad") {
    Variable a(random_tensor<double>({3, 4}, 5), false);
    REQUIRE_GRADCHECK([a](In x) { return matmul(a, x[0]); }, {leaf({4, 2}, 6)});
  }
}

TEST_CASE("autograd/linear: gradient matches finite differences for x, weight and bias", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return linear(x[0], x[1], x[2]); }, {leaf({5, 3}, 1), leaf({4, 3}, 2), leaf({4}, 3)});
  REQUIRE_GRADCHECK([](In x) { return linear(x[0], x[1]); }, {leaf({5, 3}, 1), leaf({4, 3}, 2)});
  REQUIRE_GRADCHECK([](In x) { return linear(x[0], x[1], x[2]); },
                    {leaf_transposed(5, 3, 4), leaf_transposed(2, 3, 5), leaf({2}, 6)});
}

// ------------------------------------------------------------------ indexing
TEST_CASE("autograd/index_select: gradient accumulates over repeated indices", "[autograd][cpu]") {
  Tensor idx = index_of({2, 0, 2, 3});
  REQUIRE_GRADCHECK([idx](In x) { return index_select(x[0], 0, idx); }, {leaf({4, 3}, 1)});
  REQUIRE_GRADCHECK([idx](In x) { return index_select(x[0], 1, idx); }, {leaf({2, 5}, 2)});
  REQUIRE_GRADCHECK([idx](In x) { return index_select(x[0], 0, idx); }, {leaf_transposed(4, 3, 3)});
}

TEST_CASE("autograd/gather: gradient matches finite differences", "[autograd][cpu]") {
  Tensor idx = index_of({0, 2, 2, 1, 0, 0}, {2, 3});
  REQUIRE_GRADCHECK([idx](In x) { return gather(x[0], 1, idx); }, {leaf({2, 4}, 1)});
  Tensor idx0 = index_of({1, 0, 2, 1}, {2, 2});
  REQUIRE_GRADCHECK([idx0](In x) { return gather(x[0], 0, idx0); }, {leaf({3, 3}, 2)});
}

TEST_CASE("autograd/index_add: gradient for self (identity) and src (index_select)", "[autograd][cpu]") {
  Tensor idx = index_of({1, 3, 1});
  REQUIRE_GRADCHECK([idx](In x) { return index_add(x[0], 0, idx, x[1]); }, {leaf({4, 2}, 1), leaf({3, 2}, 2)});
  REQUIRE_GRADCHECK([idx](In x) { return index_add(x[0], 1, idx, x[1]); }, {leaf({2, 5}, 3), leaf({2, 3}, 4)});
}

TEST_CASE("autograd/scatter_add: gradient for self (identity) and src (gather)", "[autograd][cpu]") {
  Tensor idx = index_of({0, 2, 2, 1, 0, 0}, {2, 3});
  REQUIRE_GRADCHECK([idx](In x) { return scatter_add(x[0], 1, idx, x[1]); }, {leaf({2, 4}, 1), leaf({2, 3}, 2)});
  SECTION("src larger than index: the unused part of src gets zero gradient") {
    REQUIRE_GRADCHECK([idx](In x) { return scatter_add(x[0], 1, idx, x[1]); }, {leaf({3, 4}, 1), leaf({3, 5}, 2)});
  }
}

TEST_CASE("autograd/topk: gradient is scattered back to the chosen positions", "[autograd][cpu]") {
  for (bool largest : {true, false}) {
    INFO("largest " << largest);
    REQUIRE_GRADCHECK([largest](In x) { return topk(x[0], 2, 1, largest).first; }, {leaf_distinct({3, 5}, 1)});
    REQUIRE_GRADCHECK([largest](In x) { return topk(x[0], 3, 0, largest).first; }, {leaf_distinct({4, 2}, 2)});
  }
  Variable x(Tensor::from_vector<double>({0.5, 3.0, -1.0, 2.0}), true);
  auto [values, indices] = topk(x, 2);
  test::expect_equal(indices, {1.0, 3.0});
  sum(values).backward();
  test::expect_equal(x.grad(), {0.0, 1.0, 0.0, 1.0});
}

// ------------------------------------------------------------------ shape
TEST_CASE("autograd/views: reshape, narrow, permute, transpose, expand", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return reshape(x[0], {4, -1}); }, {leaf({2, 3, 2}, 1)});
  REQUIRE_GRADCHECK([](In x) { return reshape(x[0], {6}); }, {leaf_transposed(2, 3, 2)});  // copies
  REQUIRE_GRADCHECK([](In x) { return narrow(x[0], 1, 1, 2); }, {leaf({3, 4}, 3)});
  REQUIRE_GRADCHECK([](In x) { return narrow(x[0], 0, 2, 1); }, {leaf_transposed(3, 4, 4)});
  REQUIRE_GRADCHECK([](In x) { return permute(x[0], {2, 0, 1}); }, {leaf({2, 3, 4}, 5)});
  REQUIRE_GRADCHECK([](In x) { return transpose(x[0], 0, 2); }, {leaf({2, 3, 4}, 6)});
  REQUIRE_GRADCHECK([](In x) { return expand(x[0], {2, 3, 4}); }, {leaf({3, 1}, 7)});
  REQUIRE_GRADCHECK([](In x) { return expand(x[0], {3, -1}); }, {leaf({1, 4}, 8)});
}

TEST_CASE("autograd/views: squeeze, unsqueeze, flatten, contiguous", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return squeeze(x[0], 1); }, {leaf({3, 1, 2}, 1)});
  REQUIRE_GRADCHECK([](In x) { return squeeze(x[0], 0); }, {leaf({3, 2}, 2)});  // extent 3: a no-op
  REQUIRE_GRADCHECK([](In x) { return unsqueeze(x[0], 2); }, {leaf({3, 2}, 3)});
  REQUIRE_GRADCHECK([](In x) { return flatten(x[0], 1); }, {leaf({2, 3, 2}, 4)});
  REQUIRE_GRADCHECK([](In x) { return flatten(x[0]); }, {leaf_transposed(3, 2, 5)});
  REQUIRE_GRADCHECK([](In x) { return contiguous(x[0]); }, {leaf_transposed(3, 2, 6)});
}

TEST_CASE("autograd/concat and stack: each input gets its slice of the gradient", "[autograd][cpu]") {
  REQUIRE_GRADCHECK([](In x) { return concat({x[0], x[1], x[2]}, 1); }, {leaf({2, 3}, 1), leaf({2, 1}, 2), leaf({2, 2}, 3)});
  REQUIRE_GRADCHECK([](In x) { return concat({x[0], x[1]}, 0); }, {leaf_transposed(2, 3, 4), leaf({1, 3}, 5)});
  REQUIRE_GRADCHECK([](In x) { return stack({x[0], x[1]}, 0); }, {leaf({2, 3}, 6), leaf({2, 3}, 7)});
  REQUIRE_GRADCHECK([](In x) { return stack({x[0], x[1], x[0]}, 2); }, {leaf({2, 3}, 8), leaf({2, 3}, 9)});
  SECTION("an input without grad is skipped") {
    Variable c(random_tensor<double>({2, 3}, 10), false);
    REQUIRE_GRADCHECK([c](In x) { return concat({c, x[0]}, 0); }, {leaf({1, 3}, 11)});
  }
}

// ------------------------------------------------------------------ composites
TEST_CASE("autograd/composite: a 2-layer MLP loss matches finite differences", "[autograd][cpu]") {
  // loss = mean((linear(relu(linear(x, w1, b1)), w2, b2) - y)^2), with x fixed.
  // The inputs are chosen so that no hidden pre-activation lies within 1e-3 of relu's kink
  // (checked below), where a finite difference would straddle it.
  Tensor x = random_tensor<double>({6, 3}, 1);
  Tensor y = random_tensor<double>({6, 2}, 2);
  Variable w1 = leaf({5, 3}, 3), b1 = leaf({5}, 4), w2 = leaf({2, 5}, 5), b2 = leaf({2}, 6);
  const Tensor pre = ops::linear(x, w1.data(), b1.data());
  for (double v : pre.to_vector<double>()) REQUIRE(std::abs(v) > 1e-3);
  auto loss = [x, y](In p) {
    Variable h = relu(linear(Variable(x), p[0], p[1]));
    Variable d = linear(h, p[2], p[3]) - Variable(y);
    return mean(d * d);
  };
  REQUIRE_GRADCHECK(loss, {w1, b1, w2, b2});
  SECTION("a longer expression using most functions") {
    auto g = [](In p) {
      Variable a = sigmoid(matmul(p[0], transpose(p[1], 0, 1)));                   // [3, 3]
      Variable b = concat({exp(a), log(a + 1.0)}, 1);                                // [3, 6]
      Variable c = sum(reshape(b, {3, 2, 3}), 1) / sqrt(pow(p[2], 2.0) + 1.0);      // [3, 3]
      return max(stack({c, narrow(b, 1, 0, 3) * 0.5}, 0), 0);                      // [3, 3]
    };
    REQUIRE_GRADCHECK(g, {leaf({3, 4}, 7), leaf({3, 4}, 8), leaf({3}, 9)});
  }
}

// ------------------------------------------------------------------ exact gradients
TEST_CASE("autograd/exact: hand-computed gradients", "[autograd][cpu]") {
  const std::vector<double> v{1.5, -2.0, 0.25, 4.0};
  SECTION("d/dx sum(x * x) = 2x") {
    Variable x(Tensor::from_vector<double>(v), true);
    sum(x * x).backward();
    test::expect_equal(x.grad(), {3.0, -4.0, 0.5, 8.0});
  }
  SECTION("d/dx sum(3x + 2) = 3 and d/dx mean(x) = 1/n") {
    Variable x(Tensor::from_vector<double>(v), true);
    sum(3.0 * x + 2.0).backward();
    test::expect_equal(x.grad(), {3.0, 3.0, 3.0, 3.0});
    x.zero_grad();
    mean(x).backward();
    test::expect_equal(x.grad(), {0.25, 0.25, 0.25, 0.25});
  }
  SECTION("d/da sum(a @ b) = rowsums of b broadcast, d/db = colsums of a") {
    Variable a(Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2}), true);
    Variable b(Tensor::from_vector<double>({5, 6, 7, 8}, {2, 2}), true);
    sum(matmul(a, b)).backward();
    test::expect_equal(a.grad(), {11, 15, 11, 15});  // dL/da_ik = sum_j b_kj
    test::expect_equal(b.grad(), {4, 4, 6, 6});      // dL/db_kj = sum_i a_ik
  }
  SECTION("float32 works too: d/dx sum(x / 2) = 0.5") {
    Variable x(Tensor::from_vector<float>({1.0f, 2.0f}), true);
    sum(x * 0.5).backward();
    REQUIRE(x.grad().dtype() == DType::Float32);
    test::expect_equal(x.grad(), {0.5, 0.5});
  }
}
