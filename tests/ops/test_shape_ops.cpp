// concat / stack (include/drcnn/ops/shape_ops.h) against the references: every dim, strided
// inputs, 0-size pieces, every dtype, and each error.
#include <catch2/catch.hpp>

#include "common/allclose.h"
#include "drcnn/ops/shape_ops.h"
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

TEMPLATE_TEST_CASE("ops/concat: joins along every dim, strided inputs and empty pieces", "[ops][cpu]", float, double,
                   int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  uint64_t seed = 1;
  for (int dim = 0; dim < 3; ++dim) {
    for (int64_t e0 : {int64_t(0), int64_t(2)}) {
      Shape s0 = {2, 3, 4}, s1 = {2, 3, 4}, s2 = {2, 3, 4};
      s0[dim] = e0;
      s1[dim] = 1;
      s2[dim] = 3;
      const auto l0 = layouts(s0, seed++, dt, -9, 9), l1 = layouts(s1, seed++, dt, -9, 9),
                 l2 = layouts(s2, seed++, dt, -9, 9);
      for (size_t k = 0; k < l0.size(); ++k) {
        const Tensor& a = l0[k].t;
        const Tensor& b = l1[(k + 1) % l1.size()].t;
        const Tensor& c = l2[(k + 2) % l2.size()].t;
        INFO("dim " << dim << " e0 " << e0 << " layouts " << l0[k].name << ", " << l1[(k + 1) % l1.size()].name << ", "
                    << l2[(k + 2) % l2.size()].name);
        const Tensor out = ops::concat({a, b, c}, dim);
        CHECK(out.dtype() == dt);
        CHECK(out.is_contiguous());
        expect_allclose(out, ref::concat({ref::from_tensor(a), ref::from_tensor(b), ref::from_tensor(c)}, dim), 0, 0);
        expect_allclose(ops::concat({a, b, c}, dim - 3), ref::concat({ref::from_tensor(a), ref::from_tensor(b), ref::from_tensor(c)}, dim), 0, 0);
      }
    }
  }
}

TEST_CASE("ops/concat: hand-computed values, every dtype, single input", "[ops][cpu]") {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector<float>({5, 6}, {1, 2});
  expect_equal(ops::concat({a, b}, 0), {1, 2, 3, 4, 5, 6});
  expect_equal(ops::concat({a, b.transpose(0, 1)}, 1), {1, 2, 5, 3, 4, 6});
  const Tensor single = ops::concat({a}, 0);
  expect_equal(single, {1, 2, 3, 4});
  CHECK(single.storage() != a.storage());  // always a new tensor
  for (DType dt : {DType::Float16, DType::BFloat16, DType::Int32, DType::UInt8, DType::Bool}) {
    INFO(drcnn::dtype_name(dt));
    const Tensor out = ops::concat({Tensor::ones({2}, dt), Tensor::zeros({1}, dt)}, 0);
    CHECK(out.dtype() == dt);
    expect_equal(out, {1, 1, 0});
  }
  CHECK(ops::concat({Tensor::zeros({0, 2}), Tensor::zeros({0, 2})}, 0).shape() == Shape{0, 2});
  CHECK(ops::concat({Tensor::zeros({0, 2}), Tensor::zeros({0, 3})}, 1).shape() == Shape{0, 5});
}

TEST_CASE("ops/concat: errors", "[ops][cpu]") {
  const Tensor a = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(ops::concat({}, 0), Contains("concat: expected at least one tensor, got none"));
  REQUIRE_THROWS_WITH(ops::concat({a, Tensor::zeros({2, 3}, DType::Float64)}, 0),
                      Contains("concat: tensor 1 has dtype float64, tensor 0 has float32"));
  REQUIRE_THROWS_WITH(ops::concat({a, Tensor::zeros({3})}, 0),
                      Contains("concat: tensor 1 has shape [3], tensor 0 has [2, 3] (ranks differ)"));
  REQUIRE_THROWS_WITH(ops::concat({a, a, Tensor::zeros({2, 4})}, 0),
                      Contains("concat: tensor 2 has shape [2, 4] but tensor 0 has [2, 3]; they may differ only in "
                               "dimension 0"));
  REQUIRE_THROWS_WITH(ops::concat({a, a}, 2), Contains("concat: dimension 2 is out of range"));
  REQUIRE_THROWS_WITH(ops::concat({a, Tensor()}, 0), Contains("concat: tensor 1 is undefined"));
  REQUIRE_THROWS_WITH(ops::concat({Tensor(), a}, 0), Contains("concat: tensor 0 is an undefined tensor"));
  REQUIRE_THROWS_WITH(ops::concat({Tensor::full({}, 1.0), Tensor::full({}, 2.0)}, 0),
                      Contains("concat: dimension 0 is out of range for a tensor with 0 dimensions"));
}

TEMPLATE_TEST_CASE("ops/stack: joins along a new dim at every position", "[ops][cpu]", float, double, int32_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const Shape s{3, 4};
  const auto la = layouts(s, 11, dt, -9, 9), lb = layouts(s, 12, dt, -9, 9);
  for (int dim = -3; dim <= 2; ++dim) {
    for (size_t k = 0; k < la.size(); ++k) {
      const Tensor& a = la[k].t;
      const Tensor& b = lb[(k + 2) % lb.size()].t;
      INFO("dim " << dim << " " << la[k].name << " " << lb[(k + 2) % lb.size()].name);
      const Tensor out = ops::stack({a, b, a}, dim);
      Shape want = s;
      want.insert(dim < 0 ? dim + 3 : dim, 3);
      CHECK(out.shape() == want);
      expect_allclose(out, ref::stack({ref::from_tensor(a), ref::from_tensor(b), ref::from_tensor(a)}, dim), 0, 0);
    }
  }
  expect_equal(ops::stack({Tensor::full({}, 1.0, dt), Tensor::full({}, 2.0, dt)}, 0), {1, 2});
  CHECK(ops::stack({Tensor::zeros({0, 2}, dt)}, 1).shape() == Shape{0, 1, 2});
}

TEST_CASE("ops/stack: errors", "[ops][cpu]") {
  const Tensor a = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(ops::stack({}, 0), Contains("stack: expected at least one tensor, got none"));
  REQUIRE_THROWS_WITH(ops::stack({a, Tensor::zeros({3, 2})}, 0),
                      Contains("stack: tensor 1 has shape [3, 2] but tensor 0 has [2, 3] (stack needs equal shapes)"));
  REQUIRE_THROWS_WITH(ops::stack({a, a}, 3), Contains("stack: dimension 3 is out of range"));
  REQUIRE_THROWS_WITH(ops::stack({a, a}, -4), Contains("stack: dimension -4 is out of range"));
  REQUIRE_THROWS_WITH(ops::stack({a, Tensor::zeros({2, 3}, DType::Int64)}, 0),
                      Contains("stack: tensor 1 has dtype int64, tensor 0 has float32"));
  REQUIRE_THROWS_WITH(ops::stack({a, Tensor()}, 0), Contains("stack: tensor 1 is undefined"));
}
