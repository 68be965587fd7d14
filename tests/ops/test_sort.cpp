// sort / argsort / topk (include/drcnn/ops/sort.h) against a stable insertion sort with NaN
// greatest: every dim, both orders, layouts, ties, NaN, 0-size and 0-d inputs, errors.
#include <catch2/catch.hpp>

#include <cmath>

#include "common/allclose.h"
#include "drcnn/ops/sort.h"
#include "reference/reference.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
using drcnn::test::expect_equal;
using drcnn::test::layouts;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

TEMPLATE_TEST_CASE("ops/sort: values and indices match a stable reference on every dim", "[ops][cpu]", float, double,
                   int32_t, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 1;
  // Two value ranges: wide (few ties) and [0, 3] (mostly ties, so stability decides indices).
  for (const auto& [lo, hi] : {std::pair<double, double>{-100, 100}, std::pair<double, double>{0, 3}}) {
    for (const Shape& s : {Shape{3, 4, 5}, Shape{17}, Shape{2, 1, 9}}) {
      for (const auto& l : layouts(s, seed++, dt, lo, hi)) {
        Tensor x = l.t;
        if constexpr (std::is_floating_point_v<TestType>)
          if (hi == 3) x.copy_(x.to(DType::Int32));  // whole numbers, in place: many exact ties
        const auto rx = ref::from_tensor(x);
        for (int dim = -s.ndim(); dim < s.ndim(); ++dim) {
          for (bool desc : {false, true}) {
            INFO(fmt::format("{} ", s) << l.name << " range " << hi << " dim " << dim << " descending " << desc);
            const auto [v, i] = ops::sort(x, dim, desc);
            const auto [rv, ri] = ref::sort(rx, dim, desc);
            CHECK(v.dtype() == dt);
            CHECK(i.dtype() == DType::Int64);
            expect_allclose(v, rv, 0, 0);
            expect_allclose(i, ri, 0, 0);
            expect_allclose(ops::argsort(x, dim, desc), ri, 0, 0);
          }
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("ops/sort: NaN is the greatest value and ties keep their order", "[ops][cpu]", float, double) {
  const Tensor x = Tensor::from_vector<TestType>({3, NAN, 1, INFINITY, NAN, -INFINITY, 1, -0.0, 0.0, 3});
  const auto [va, ia] = ops::sort(x, 0, false);
  expect_equal(va, {-INFINITY, -0.0, 0.0, 1, 1, 3, 3, INFINITY, NAN, NAN});
  expect_equal(ia, {5, 7, 8, 2, 6, 0, 9, 3, 1, 4});  // -0.0 == 0.0: a tie, kept in order
  const auto [vd, id] = ops::sort(x, 0, true);
  expect_equal(vd, {NAN, NAN, INFINITY, 3, 3, 1, 1, -0.0, 0.0, -INFINITY});
  expect_equal(id, {1, 4, 3, 0, 9, 2, 6, 7, 8, 5});
  const auto [rv, ri] = ref::sort(ref::from_tensor(x), 0, true);
  expect_allclose(id, ri, 0, 0);
  // A long row with many NaNs and ties, both orders, against the reference.
  Tensor y = drcnn::test::random_tensor<TestType>({3, 500}, 9, 0, 5);
  y.copy_(y.to(DType::Int32));
  y.slice(1, 0, 500, 7).fill_(NAN);
  for (bool desc : {false, true}) {
    const auto [v, i] = ops::sort(y, 1, desc);
    const auto [r_v, r_i] = ref::sort(ref::from_tensor(y), 1, desc);
    expect_allclose(v, r_v, 0, 0);
    expect_allclose(i, r_i, 0, 0);
  }
}

TEST_CASE("ops/sort: many rows take the parallel path", "[ops][cpu]") {
  const Tensor x = drcnn::test::random_tensor({2000, 40}, 5, DType::Int64, 0, 9);
  const auto [v, i] = ops::sort(x.transpose(0, 1), 0, true);  // rows along the strided dim
  const auto [rv, ri] = ref::sort(ref::from_tensor(x.transpose(0, 1)), 0, true);
  expect_allclose(v, rv, 0, 0);
  expect_allclose(i, ri, 0, 0);
}

TEST_CASE("ops/sort: 0-d, 0-size and errors", "[ops][cpu]") {
  const auto [v0, i0] = ops::sort(Tensor::full({}, 4.0));
  CHECK(v0.ndim() == 0);
  expect_equal(v0, {4});
  expect_equal(i0, {0});
  const auto [ve, ie] = ops::sort(Tensor::zeros({3, 0}), 1);
  CHECK(ve.shape() == Shape{3, 0});
  CHECK(ie.shape() == Shape{3, 0});
  CHECK(ops::sort(Tensor::zeros({0, 4}), 1).first.shape() == Shape{0, 4});
  CHECK(ops::argsort(Tensor::zeros({0})).shape() == Shape{0});
  REQUIRE_THROWS_WITH(ops::sort(Tensor::zeros({2}, DType::Bool)),
                      Contains("sort: expected float32, float64, int32 or int64, got bool"));
  REQUIRE_THROWS_WITH(ops::sort(Tensor::zeros({2}, DType::Float16)), Contains("sort") && Contains("got float16"));
  REQUIRE_THROWS_WITH(ops::sort(Tensor::zeros({2, 2}), 2), Contains("sort: dimension 2 is out of range"));
  REQUIRE_THROWS_WITH(ops::sort(Tensor()), Contains("sort: input is an undefined tensor"));
  REQUIRE_THROWS_WITH(ops::argsort(Tensor::zeros({2}, DType::UInt8)), Contains("got uint8"));
}

// ============================================================================ topk
TEMPLATE_TEST_CASE("ops/topk: the k largest or smallest in sorted order, ties by position", "[ops][cpu]", float,
                   double, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 50;
  const Shape s{4, 6, 5};
  for (const auto& l : layouts(s, seed++, dt, 0, 4)) {
    Tensor x = l.t;
    if constexpr (std::is_floating_point_v<TestType>) x.copy_(x.to(DType::Int32));  // ties
    const auto rx = ref::from_tensor(x);
    for (int dim = 0; dim < 3; ++dim) {
      for (int64_t k : {int64_t(0), int64_t(1), int64_t(3), s[dim]}) {
        for (bool largest : {true, false}) {
          INFO(l.name << " dim " << dim << " k " << k << " largest " << largest);
          const auto [v, i] = ops::topk(x, k, dim, largest);
          Shape want = s;
          want[dim] = k;
          CHECK(v.shape() == want);
          const auto [rv, ri] = ref::topk(rx, k, dim, largest);
          expect_allclose(v, rv, 0, 0);
          expect_allclose(i, ri, 0, 0);
        }
      }
    }
  }
}

TEST_CASE("ops/topk: hand-computed values, NaN counts as largest, errors", "[ops][cpu]") {
  const Tensor x = Tensor::from_vector<float>({1, 5, 3, 5, NAN, 2});
  auto [v, i] = ops::topk(x, 3);
  expect_equal(v, {NAN, 5, 5});
  expect_equal(i, {4, 1, 3});
  auto [vs, is] = ops::topk(x, 2, 0, false);
  expect_equal(vs, {1, 2});
  expect_equal(is, {0, 5});
  auto [v0, i0] = ops::topk(x, 0);
  CHECK(v0.shape() == Shape{0});
  auto [vz, iz] = ops::topk(Tensor::zeros({0}), 0);
  CHECK(vz.numel() == 0);
  auto [vd, id] = ops::topk(Tensor::full({}, 3.0), 1);
  expect_equal(vd, {3});
  expect_equal(id, {0});
  REQUIRE_THROWS_WITH(ops::topk(x, 7), Contains("topk: k = 7 is out of range for dimension 0 of extent 6"));
  REQUIRE_THROWS_WITH(ops::topk(x, -1), Contains("topk: k = -1 is out of range"));
  REQUIRE_THROWS_WITH(ops::topk(Tensor::zeros({2, 3}), 4, 1), Contains("topk: k = 4 is out of range for dimension 1 of extent 3"));
  REQUIRE_THROWS_WITH(ops::topk(Tensor::zeros({2, 3}), 1, 2), Contains("topk: dimension 2 is out of range"));
  REQUIRE_THROWS_WITH(ops::topk(Tensor::full({}, 3.0), 2), Contains("topk: k = 2 is out of range"));
  REQUIRE_THROWS_WITH(ops::topk(Tensor::zeros({3}, DType::Bool), 1),
                      Contains("topk: expected float32, float64, int32 or int64, got bool"));
  REQUIRE_THROWS_WITH(ops::topk(Tensor(), 1), Contains("topk: input is an undefined tensor"));
}
