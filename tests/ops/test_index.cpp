// gather / index_select / scatter_add / index_add (include/drcnn/ops/index.h) against the
// references written from the definitions: every dim, layouts of input and index, duplicate
// indices, dtypes, 0-size extents, determinism, and every error (the bad index is named).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/allclose.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/index.h"
#include "reference/reference.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
using drcnn::test::expect_equal;
using drcnn::test::layouts;
using drcnn::test::random_index;
using drcnn::test::random_tensor;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
template <typename T>
constexpr double kEps = std::numeric_limits<T>::epsilon();

std::vector<int64_t> as_vec(const Tensor& index) {
  std::vector<int64_t> v;
  for (double d : drcnn::test::strided_values(index)) v.push_back(int64_t(d));
  return v;
}

// Index tensors of `shape` with values in [0, hi) in three layouts.
std::vector<std::pair<const char*, Tensor>> index_layouts(const Shape& shape, uint64_t seed, int64_t hi) {
  std::vector<std::pair<const char*, Tensor>> out;
  out.push_back({"contiguous", random_index(shape, seed, hi)});
  if (shape.ndim() >= 2) {
    Shape r;
    std::vector<int> rev;
    for (int d = shape.ndim() - 1; d >= 0; --d) {
      r.push_back(shape[d]);
      rev.push_back(d);
    }
    out.push_back({"transposed", random_index(r, seed + 1, hi).permute(rev)});
  }
  if (shape.ndim() >= 1) {
    Shape wide = shape;
    wide[shape.ndim() - 1] *= 2;
    Tensor w = random_index(wide, seed + 2, hi);
    w.slice(shape.ndim() - 1, 1, wide[shape.ndim() - 1], 2).fill_(-7);  // a wrong read would be out of range
    out.push_back({"strided", w.slice(shape.ndim() - 1, 0, wide[shape.ndim() - 1], 2)});
  }
  return out;
}

// A deep copy that keeps t's strides and offset (a private copy of its whole storage), so an
// in-place op can be tested on exactly the layout t has.
Tensor layout_copy(const Tensor& t) {
  auto st = std::make_shared<drcnn::Storage>(t.storage()->bytes(), t.device());
  std::memcpy(st->data(), t.storage()->data(), t.storage()->bytes());
  return Tensor::from_storage(st, t.shape(), t.strides(), t.offset(), t.dtype());
}

struct ThreadGuard {
  ~ThreadGuard() { drcnn::set_cpu_threads(0); }
};
}  // namespace

// ============================================================================ gather
TEMPLATE_TEST_CASE("ops/gather: matches the definition on every dim and layout", "[ops][cpu]", float, double,
                   int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const Shape xs{3, 4, 5};
  uint64_t seed = 1;
  for (int dim = 0; dim < 3; ++dim) {
    // index: extent 6 along dim (more than x has: gather may repeat), <= x elsewhere.
    Shape is = {2, 3, 4};
    is[dim] = 6;
    for (const auto& lx : layouts(xs, seed++, dt, -9, 9)) {
      for (const auto& [iname, index] : index_layouts(is, seed++, xs[dim])) {
        INFO("dim " << dim << " x " << lx.name << " index " << iname);
        const Tensor out = ops::gather(lx.t, dim, index);
        CHECK(out.shape() == is);
        CHECK(out.dtype() == dt);
        // A copy of selected elements: exact.
        expect_allclose(out, ref::gather(ref::from_tensor(lx.t), dim, ref::from_tensor(index)), 0, 0);
        if (dim == 2) expect_allclose(ops::gather(lx.t, -1, index), ref::gather(ref::from_tensor(lx.t), 2, ref::from_tensor(index)), 0, 0);
      }
    }
  }
}

TEST_CASE("ops/gather: hand-computed values, every dtype, 0-size", "[ops][cpu]") {
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  const Tensor idx = Tensor::from_vector<int64_t>({0, 0, 1, 0}, {2, 2});
  expect_equal(ops::gather(x, 1, idx), {1, 1, 4, 3});  // torch.gather docs example
  expect_equal(ops::gather(x, 0, idx), {1, 2, 3, 2});
  for (DType dt : {DType::Float16, DType::BFloat16, DType::Int32, DType::UInt8, DType::Bool}) {
    INFO(drcnn::dtype_name(dt));
    const Tensor xd = Tensor::from_vector<float>({0, 1, 1, 0}, {2, 2}).to(dt);
    expect_equal(ops::gather(xd, 1, idx), {0, 0, 0, 1});
  }
  CHECK(ops::gather(x, 1, Tensor::zeros({2, 0}, DType::Int64)).shape() == Shape{2, 0});
  CHECK(ops::gather(Tensor::zeros({0, 3}), 1, Tensor::zeros({0, 2}, DType::Int64)).shape() == Shape{0, 2});
  // The index may be an expanded view.
  expect_equal(ops::gather(x, 1, Tensor::from_vector<int64_t>({1}, {1, 1}).expand({2, 3})), {2, 2, 2, 4, 4, 4});
}

TEST_CASE("ops/gather: errors name the op and the bad index", "[ops][cpu]") {
  const Tensor x = Tensor::ones({3, 4});
  REQUIRE_THROWS_WITH(ops::gather(x, 1, Tensor::from_vector<int64_t>({0, 4, 1}, {1, 3})),
                      Contains("gather: index 4 is out of range for a dimension of extent 4") &&
                          Contains("expected 0 <= index < 4"));
  REQUIRE_THROWS_WITH(ops::gather(x, 0, Tensor::from_vector<int64_t>({0, -1}, {1, 2})),
                      Contains("gather: index -1 is out of range for a dimension of extent 3"));
  REQUIRE_THROWS_WITH(ops::gather(x, 1, Tensor::from_vector<int32_t>({0}, {1, 1})),
                      Contains("gather: index must be int64, got int32"));
  REQUIRE_THROWS_WITH(ops::gather(x, 1, Tensor::zeros({3}, DType::Int64)),
                      Contains("gather: index must have the input's rank 2, got shape [3]"));
  REQUIRE_THROWS_WITH(ops::gather(x, 1, Tensor::zeros({4, 1}, DType::Int64)),
                      Contains("gather: index shape [4, 1] exceeds the input's shape [3, 4] in dimension 0"));
  REQUIRE_THROWS_WITH(ops::gather(x, 2, Tensor::zeros({1, 1}, DType::Int64)),
                      Contains("gather: dimension 2 is out of range"));
  REQUIRE_THROWS_WITH(ops::gather(Tensor::zeros({2, 0}), 1, Tensor::zeros({2, 1}, DType::Int64)),
                      Contains("gather: cannot index dimension 1 of extent 0"));
  REQUIRE_THROWS_WITH(ops::gather(x, 0, Tensor()), Contains("gather: operand 1 is an undefined tensor"));
}

// ============================================================================ index_select
TEMPLATE_TEST_CASE("ops/index_select: matches the definition on every dim and layout", "[ops][cpu]", float, double,
                   int32_t, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const Shape xs{3, 4, 5};
  uint64_t seed = 100;
  for (int dim = 0; dim < 3; ++dim) {
    for (const auto& lx : layouts(xs, seed++, dt, -9, 9)) {
      for (int64_t n : {int64_t(0), int64_t(1), int64_t(7)}) {
        for (const auto& [iname, index] : index_layouts({n}, seed++, xs[dim])) {
          INFO("dim " << dim << " x " << lx.name << " index " << iname << " n " << n);
          const Tensor out = ops::index_select(lx.t, dim, index);
          Shape os = xs;
          os[dim] = n;
          CHECK(out.shape() == os);
          expect_allclose(out, ref::index_select(ref::from_tensor(lx.t), dim, as_vec(index)), 0, 0);
        }
      }
    }
  }
  expect_equal(ops::index_select(Tensor::from_vector<TestType>({10, 20, 30}), 0, Tensor::from_vector<int64_t>({2, 2, 0})),
               {30, 30, 10});
}

TEST_CASE("ops/index_select: errors", "[ops][cpu]") {
  const Tensor x = Tensor::ones({3, 4});
  REQUIRE_THROWS_WITH(ops::index_select(x, 0, Tensor::from_vector<int64_t>({1, 3})),
                      Contains("index_select: index 3 is out of range for a dimension of extent 3"));
  REQUIRE_THROWS_WITH(ops::index_select(x, -1, Tensor::from_vector<int64_t>({-4})),
                      Contains("index_select: index -4 is out of range for a dimension of extent 4"));
  REQUIRE_THROWS_WITH(ops::index_select(x, 0, Tensor::zeros({1, 1}, DType::Int64)),
                      Contains("index_select: index must be 1-D, got shape [1, 1]"));
  REQUIRE_THROWS_WITH(ops::index_select(x, 0, Tensor::zeros({1}, DType::Float32)),
                      Contains("index_select: index must be int64, got float32"));
  REQUIRE_THROWS_WITH(ops::index_select(x, 3, Tensor::zeros({1}, DType::Int64)),
                      Contains("index_select: dimension 3 is out of range"));
  REQUIRE_THROWS_WITH(ops::index_select(Tensor::zeros({0, 2}), 0, Tensor::zeros({1}, DType::Int64)),
                      Contains("index_select: cannot index dimension 0 of extent 0"));
}

// ============================================================================ scatter_add
TEMPLATE_TEST_CASE("ops/scatter_add: matches the definition with duplicates on every dim", "[ops][cpu]", float, double,
                   int32_t, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const Shape ss{3, 4, 5};
  uint64_t seed = 200;
  for (int dim = 0; dim < 3; ++dim) {
    // index [2, 3, 4] with extent 6 along dim: many duplicate targets. src [3, 3, 6] >= index.
    Shape is = {2, 3, 4};
    is[dim] = 6;
    Shape srcs = {3, 3, 6};
    srcs[dim] = 7;
    for (const auto& lself : layouts(ss, seed++, dt, -9, 9)) {
      for (const auto& [iname, index] : index_layouts(is, seed++, ss[dim])) {
        for (const auto& lsrc : layouts(srcs, seed++, dt, -9, 9)) {
          INFO("dim " << dim << " self " << lself.name << " index " << iname << " src " << lsrc.name);
          const auto expect = ref::scatter_add(ref::from_tensor(lself.t), dim, ref::from_tensor(index),
                                               ref::from_tensor(lsrc.t));
          // Each output sums at most 1 + 6 terms of magnitude <= 9, in the same order as the
          // reference (ascending position): f64 and integers are exact; f32 rounds each
          // partial sum once, <= 6 * eps/2 * (7 * 9) in total.
          const double atol = std::is_same_v<TestType, float> ? 6 * kEps<float> / 2 * 7 * 9 : 0.0;
          const Tensor out = ops::scatter_add(lself.t, dim, index, lsrc.t);
          CHECK(out.is_contiguous());
          expect_allclose(out, expect, 0, atol);
          if (lself.name != "expanded") {  // in place into the same (possibly strided) layout
            Tensor view = layout_copy(lself.t);
            Tensor& r = ops::scatter_add_(view, dim, index, lsrc.t);
            CHECK(&r == &view);
            expect_allclose(view, expect, 0, atol);
          }
        }
      }
    }
  }
}

TEST_CASE("ops/scatter_add: hand-computed values and in-place into a transposed view", "[ops][cpu]") {
  Tensor self = Tensor::zeros({2, 5});
  const Tensor src = Tensor::ones({2, 5});
  const Tensor idx = Tensor::from_vector<int64_t>({0, 1, 2, 4, 0, 1, 2, 3, 4, 0}, {2, 5});
  ops::scatter_add_(self, 1, idx, src);
  expect_equal(self, {2, 1, 1, 0, 1, 1, 1, 1, 1, 1});  // row 0 hits column 0 twice
  // Into a transposed view: the base tensor receives the sums.
  Tensor base = Tensor::zeros({3, 2});
  Tensor t = base.transpose(0, 1);  // [2, 3]
  ops::scatter_add_(t, 1, Tensor::from_vector<int64_t>({2, 2, 0, 1}, {2, 2}), Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2}));
  expect_equal(base, {0, 3, 0, 4, 3, 0});
  // The out-of-place form leaves self unchanged.
  const Tensor orig = Tensor::zeros({3});
  const Tensor out = ops::scatter_add(orig, 0, Tensor::from_vector<int64_t>({1, 1}), Tensor::ones({2}));
  expect_equal(out, {0, 2, 0});
  expect_equal(orig, {0, 0, 0});
  // Empty index: nothing changes.
  expect_equal(ops::scatter_add(orig, 0, Tensor::zeros({0}, DType::Int64), Tensor::ones({2})), {0, 0, 0});
}

TEST_CASE("ops/scatter_add: errors", "[ops][cpu]") {
  Tensor self = Tensor::zeros({3, 4});
  const Tensor src = Tensor::ones({3, 4});
  REQUIRE_THROWS_WITH(ops::scatter_add_(self, 1, Tensor::from_vector<int64_t>({0, 9}, {1, 2}), src),
                      Contains("scatter_add: index 9 is out of range for a dimension of extent 4"));
  REQUIRE_THROWS_WITH(ops::scatter_add_(self, 0, Tensor::from_vector<int64_t>({-2}, {1, 1}), src),
                      Contains("scatter_add: index -2 is out of range for a dimension of extent 3"));
  REQUIRE_THROWS_WITH(ops::scatter_add_(self, 0, Tensor::zeros({1, 1}, DType::Int32), src),
                      Contains("scatter_add: index must be int64, got int32"));
  REQUIRE_THROWS_WITH(ops::scatter_add_(self, 0, Tensor::zeros({4}, DType::Int64), src),
                      Contains("scatter_add: index must have self's rank 2, got shape [4]"));
  REQUIRE_THROWS_WITH(ops::scatter_add_(self, 0, Tensor::zeros({1, 5}, DType::Int64), Tensor::ones({1, 5})),
                      Contains("scatter_add: index shape [1, 5] exceeds self's shape [3, 4] in dimension 1"));
  REQUIRE_THROWS_WITH(ops::scatter_add_(self, 0, Tensor::zeros({2, 2}, DType::Int64), Tensor::ones({1, 2})),
                      Contains("scatter_add: index shape [2, 2] exceeds src's shape [1, 2] in dimension 0"));
  REQUIRE_THROWS_WITH(ops::scatter_add_(self, 0, Tensor::zeros({1, 1}, DType::Int64), Tensor::ones({3, 4}, DType::Float64)),
                      Contains("scatter_add: operands must have the same dtype, got float32 and float64"));
  Tensor u8 = Tensor::zeros({3}, DType::UInt8);
  REQUIRE_THROWS_WITH(ops::scatter_add_(u8, 0, Tensor::zeros({1}, DType::Int64), Tensor::ones({1}, DType::UInt8)),
                      Contains("drcnn: scatter_add: expected float32, float64, int32 or int64, got uint8"));
  Tensor empty_dim = Tensor::zeros({0, 2});
  REQUIRE_THROWS_WITH(ops::scatter_add_(empty_dim, 0, Tensor::zeros({1, 1}, DType::Int64), Tensor::ones({1, 1})),
                      Contains("scatter_add: cannot index dimension 0 of extent 0"));
}

// ============================================================================ index_add
TEMPLATE_TEST_CASE("ops/index_add: matches the definition with duplicates on every dim", "[ops][cpu]", float, double,
                   int32_t, int64_t) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const Shape ss{3, 4, 5};
  uint64_t seed = 300;
  for (int dim = 0; dim < 3; ++dim) {
    for (const auto& lself : layouts(ss, seed++, dt, -9, 9)) {
      for (const auto& [iname, index] : index_layouts({6}, seed++, ss[dim])) {
        Shape srcs = ss;
        srcs[dim] = 6;
        for (const auto& lsrc : layouts(srcs, seed++, dt, -9, 9)) {
          INFO("dim " << dim << " self " << lself.name << " index " << iname << " src " << lsrc.name);
          const auto expect = ref::index_add(ref::from_tensor(lself.t), dim, as_vec(index), ref::from_tensor(lsrc.t));
          const double atol = std::is_same_v<TestType, float> ? 6 * kEps<float> / 2 * 7 * 9 : 0.0;  // as scatter_add
          expect_allclose(ops::index_add(lself.t, dim, index, lsrc.t), expect, 0, atol);
          if (lself.name != "expanded") {
            Tensor view = layout_copy(lself.t);
            CHECK(&ops::index_add_(view, dim, index, lsrc.t) == &view);
            expect_allclose(view, expect, 0, atol);
          }
        }
      }
    }
  }
}

TEST_CASE("ops/index_add: hand-computed values", "[ops][cpu]") {
  Tensor self = Tensor::ones({5, 3});
  const Tensor src = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
  ops::index_add_(self, 0, Tensor::from_vector<int64_t>({0, 4, 0}), src);  // torch.index_add_ docs pattern
  expect_equal(self, {9, 11, 13, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 6, 7});
  expect_equal(ops::index_add(Tensor::zeros({2}), 0, Tensor::zeros({0}, DType::Int64), Tensor::zeros({0})), {0, 0});
}

TEST_CASE("ops/index_add: errors", "[ops][cpu]") {
  Tensor self = Tensor::zeros({3, 4});
  REQUIRE_THROWS_WITH(ops::index_add_(self, 0, Tensor::from_vector<int64_t>({0, 3}), Tensor::ones({2, 4})),
                      Contains("index_add: index 3 is out of range for a dimension of extent 3"));
  REQUIRE_THROWS_WITH(ops::index_add_(self, 1, Tensor::from_vector<int64_t>({-1}), Tensor::ones({3, 1})),
                      Contains("index_add: index -1 is out of range for a dimension of extent 4"));
  REQUIRE_THROWS_WITH(ops::index_add_(self, 0, Tensor::from_vector<int64_t>({0}), Tensor::ones({2, 4})),
                      Contains("index_add: src must have shape [1, 4], got [2, 4]"));
  REQUIRE_THROWS_WITH(ops::index_add_(self, 0, Tensor::zeros({1, 1}, DType::Int64), Tensor::ones({1, 4})),
                      Contains("index_add: index must be 1-D, got shape [1, 1]"));
  REQUIRE_THROWS_WITH(ops::index_add_(self, 0, Tensor::zeros({1}, DType::Int32), Tensor::ones({1, 4})),
                      Contains("index_add: index must be int64, got int32"));
  REQUIRE_THROWS_WITH(ops::index_add_(self, 0, Tensor::zeros({1}, DType::Int64), Tensor::ones({1, 4}, DType::Int64)),
                      Contains("index_add: operands must have the same dtype, got float32 and int64"));
  Tensor b = Tensor::zeros({3}, DType::Bool);
  REQUIRE_THROWS_WITH(ops::index_add_(b, 0, Tensor::zeros({1}, DType::Int64), Tensor::ones({1}, DType::Bool)),
                      Contains("drcnn: index_add: expected float32, float64, int32 or int64, got bool"));
  REQUIRE_THROWS_WITH(ops::index_add_(self, 2, Tensor::zeros({1}, DType::Int64), Tensor::ones({1, 4})),
                      Contains("index_add: dimension 2 is out of range"));
}

TEST_CASE("ops/index_add: large inputs are exact and independent of the thread count", "[ops][cpu]") {
  ThreadGuard guard;
  // 64 slices x 5000 indices into 1000 rows: the CPU launcher runs slices in parallel, each
  // slice accumulating its indices in order, like the reference: f64 results are identical.
  const Tensor self = random_tensor<double>({1000, 64}, 1);
  const Tensor index = random_index({5000}, 2, 1000);
  const Tensor src = random_tensor<double>({5000, 64}, 3);
  const Tensor out = ops::index_add(self, 0, index, src);
  expect_allclose(out, ref::index_add(ref::from_tensor(self), 0, as_vec(index), ref::from_tensor(src)), 0, 0);
  const Tensor self32 = self.to(DType::Float32), src32 = src.to(DType::Float32);
  drcnn::set_cpu_threads(1);
  const Tensor one = ops::index_add(self32, 0, index, src32);
  const Tensor g1 = ops::gather(src32, 0, random_index({3000, 64}, 4, 5000));
  drcnn::set_cpu_threads(2);
  const Tensor two = ops::index_add(self32, 0, index, src32);
  const Tensor g2 = ops::gather(src32, 0, random_index({3000, 64}, 4, 5000));
  CHECK(drcnn::test::bitwise_equal(one, two));
  CHECK(drcnn::test::bitwise_equal(g1, g2));
}
