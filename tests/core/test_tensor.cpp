// Tensor (include/drcnn/core/tensor.h): factories, views, copies, conversions, host access,
// printing, 0-size dimensions and the error message of every bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "common/allclose.h"
#include "drcnn/config.h"
#include "drcnn/core/tensor.h"
#include "reference/reference.h"

using Catch::Contains;
using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
using drcnn::test::expect_equal;
using drcnn::test::strided_values;

namespace {
const DType kAllDTypes[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16,
                            DType::Int32,   DType::Int64,   DType::UInt8,   DType::Bool};

// [0, 1, ..., n-1] as float32 in `shape`, made without arange (from_vector only).
Tensor iota(const Shape& shape) {
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return Tensor::from_vector<float>(v, shape);
}
bool shares_storage(const Tensor& a, const Tensor& b) { return a.storage() == b.storage(); }
}  // namespace

// ============================================================================ factories
TEST_CASE("core/tensor: empty has the requested shape, dtype, device and row-major strides", "[core][cpu]") {
  const Tensor t = Tensor::empty({2, 3, 4}, DType::Float64);
  CHECK(t.defined());
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.strides() == Shape{12, 4, 1});
  CHECK(t.numel() == 24);
  CHECK(t.ndim() == 3);
  CHECK(t.dtype() == DType::Float64);
  CHECK(t.element_size() == 8);
  CHECK(t.device() == Device::cpu());
  CHECK(t.offset() == 0);
  CHECK(t.is_contiguous());
  CHECK(t.size(-1) == 4);
  CHECK(t.stride(0) == 12);
  const Tensor s = Tensor::empty({});
  CHECK(s.ndim() == 0);
  CHECK(s.numel() == 1);
  const Tensor z = Tensor::empty({3, 0, 2});
  CHECK(z.numel() == 0);
  CHECK(z.is_contiguous());
  CHECK_FALSE(Tensor().defined());
}

TEST_CASE("core/tensor: zeros, ones and full in every dtype", "[core][cpu]") {
  for (DType dt : kAllDTypes) {
    INFO("dtype " << drcnn::dtype_name(dt));
    const Tensor z = Tensor::zeros({2, 3}, dt);
    CHECK(z.dtype() == dt);
    expect_equal(z, std::vector<double>(6, 0.0));
    expect_equal(Tensor::ones({4}, dt), std::vector<double>(4, 1.0));
  }
  expect_equal(Tensor::full({3}, 2.5, DType::Float32), {2.5, 2.5, 2.5});
  expect_equal(Tensor::full({2}, 2.7, DType::Int32), {2, 2});     // static_cast truncates
  expect_equal(Tensor::full({2}, -2.7, DType::Int64), {-2, -2});  // toward zero
  expect_equal(Tensor::full({2}, 200.0, DType::UInt8), {200, 200});
  expect_equal(Tensor::full({2}, 0.25, DType::Bool), {1, 1});     // value != 0
  expect_equal(Tensor::full({2}, 0.1, DType::Float16), {0.0999755859375, 0.0999755859375});  // f16 0x2E66
  expect_equal(Tensor::full({1}, 1e6, DType::Float16), {INFINITY});                         // overflows f16
  expect_equal(Tensor::full({2}, 0.1, DType::BFloat16), {0.10009765625, 0.10009765625});    // bf16 0x3DCD
  expect_equal(Tensor::full({}, NAN, DType::Float64), {NAN});
  CHECK(Tensor::full({0, 5}, 3.0).numel() == 0);
}

TEST_CASE("core/tensor: arange with integer, fractional and negative steps", "[core][cpu]") {
  const Tensor a = Tensor::arange(5);
  CHECK(a.dtype() == DType::Int64);
  CHECK(a.shape() == Shape{5});
  expect_equal(a, {0, 1, 2, 3, 4});
  expect_equal(Tensor::arange(-3, 3, 2), {-3, -1, 1});
  expect_equal(Tensor::arange(0, 1, 0.25, DType::Float32), {0, 0.25, 0.5, 0.75});
  // ceil((1 - 0) / 0.3) = 4 elements; values are start + i * step computed in double.
  expect_equal(Tensor::arange(0, 1, 0.3, DType::Float64), {0, 0.3, 0.6, 0.8999999999999999});
  expect_equal(Tensor::arange(5, 0, -1), {5, 4, 3, 2, 1});
  expect_equal(Tensor::arange(1, -1, -0.5, DType::Float32), {1, 0.5, 0, -0.5});
  expect_equal(Tensor::arange(0, 10, 3, DType::Int32), {0, 3, 6, 9});
  // Empty ranges.
  CHECK(Tensor::arange(3, 3).shape() == Shape{0});
  CHECK(Tensor::arange(0, 0, -1).numel() == 0);
  CHECK(Tensor::arange(int64_t(0)).numel() == 0);
  // Bad ranges.
  REQUIRE_THROWS_WITH(Tensor::arange(0, 5, 0), Contains("Tensor::arange") && Contains("step must be non-zero"));
  REQUIRE_THROWS_WITH(Tensor::arange(0, 5, -1), Contains("Tensor::arange") && Contains("moves away from end"));
  REQUIRE_THROWS_WITH(Tensor::arange(0, INFINITY, 1), Contains("Tensor::arange") && Contains("finite"));
  REQUIRE_THROWS_WITH(Tensor::arange(0, 1e300, 1), Contains("Tensor::arange") && Contains("too many to address"));
  REQUIRE_THROWS_WITH(Tensor::arange(0, 1, 1e-300), Contains("Tensor::arange") && Contains("too many to address"));
}

TEST_CASE("core/tensor: from_vector in every host type, including bool", "[core][cpu]") {
  const Tensor f = Tensor::from_vector<float>({1.5f, -2.f, 3.f, 4.f}, {2, 2});
  CHECK(f.dtype() == DType::Float32);
  CHECK(f.shape() == Shape{2, 2});
  expect_equal(f, {1.5, -2, 3, 4});
  const Tensor b = Tensor::from_vector<bool>({true, false, true});
  CHECK(b.dtype() == DType::Bool);
  CHECK(b.element_size() == 1);
  expect_equal(b, {1, 0, 1});
  CHECK(b.to_vector<bool>() == std::vector<bool>{true, false, true});
  expect_equal(Tensor::from_vector<int64_t>({-5, 7}), {-5, 7});
  expect_equal(Tensor::from_vector<int32_t>({-5, 7}), {-5, 7});
  expect_equal(Tensor::from_vector<uint8_t>({0, 255}), {0, 255});
  expect_equal(Tensor::from_vector<double>({}, {0, 3}), {});
  const Tensor h = Tensor::from_vector<drcnn::Half>({drcnn::Half(1.5f), drcnn::Half(-0.25f)});
  CHECK(h.dtype() == DType::Float16);
  expect_equal(h, {1.5, -0.25});
  REQUIRE_THROWS_WITH(Tensor::from_vector<float>({1, 2, 3}, {2, 2}),
                      Contains("Tensor::from_vector") && Contains("3 values cannot fill shape [2, 2]"));
}

// ============================================================================ views
TEST_CASE("core/tensor: reshape of a contiguous tensor is a view", "[core][cpu]") {
  const Tensor x = iota({2, 3, 4});
  const Tensor r = x.reshape({6, 4});
  CHECK(shares_storage(r, x));
  CHECK(r.data_ptr() == x.data_ptr());
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.strides() == Shape{4, 1});
  expect_equal(r, strided_values(x));
  CHECK(x.reshape({-1, 4}).shape() == Shape{6, 4});
  CHECK(x.reshape({2, -1}).shape() == Shape{2, 12});
  CHECK(x.reshape({-1}).shape() == Shape{24});
  CHECK(x.reshape({1, 24, 1}).is_contiguous());
  // Writing through the view changes the original.
  r.narrow(0, 5, 1).fill_(-1);
  CHECK(strided_values(x)[23] == -1);
}

TEST_CASE("core/tensor: reshape copies only when the strides do not allow a view", "[core][cpu]") {
  const Tensor x = iota({4, 6});
  const Tensor t = x.transpose(0, 1);  // [6, 4], strides [1, 6]
  // Merging the two dims of a transposed tensor needs a copy.
  const Tensor flat = t.reshape({24});
  CHECK_FALSE(shares_storage(flat, x));
  expect_equal(flat, drcnn::ref::permute(drcnn::ref::from_tensor(x), {1, 0}).data);
  // Splitting the last dim of the transposed tensor is still a view.
  const Tensor split = t.reshape({6, 2, 2});
  CHECK(shares_storage(split, x));
  CHECK(split.strides() == Shape{1, 12, 6});
  expect_equal(split, strided_values(t));
  // A sliced tensor whose rows are contiguous keeps viewing its rows.
  const Tensor rows = x.slice(0, 0, 4, 2);  // [2, 6], strides [12, 1]
  const Tensor rv = rows.reshape({2, 3, 2});
  CHECK(shares_storage(rv, x));
  expect_equal(rv, strided_values(rows));
  CHECK_FALSE(shares_storage(rows.reshape({12}), x));
  // An expanded tensor: splitting keeps stride 0, merging copies.
  const Tensor e = Tensor::from_vector<float>({1, 2, 3}, {3, 1}).expand({3, 4});
  const Tensor es = e.reshape({3, 2, 2});
  CHECK(es.strides() == Shape{1, 0, 0});
  expect_equal(es, strided_values(e));
  expect_equal(e.reshape({12}), {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
}

TEST_CASE("core/tensor: reshape of 0-d, 1-element and 0-size tensors", "[core][cpu]") {
  const Tensor s = Tensor::full({}, 7.0);
  const Tensor s1 = s.reshape({1});
  CHECK(s1.shape() == Shape{1});
  CHECK(shares_storage(s1, s));
  CHECK(s.reshape({1, 1}).shape() == Shape{1, 1});
  CHECK(s.reshape({-1}).shape() == Shape{1});
  CHECK(s1.reshape({}).ndim() == 0);
  expect_equal(s.reshape({1, 1, 1}), {7});
  const Tensor z = Tensor::zeros({0, 3});
  CHECK(z.reshape({3, 0}).shape() == Shape{3, 0});
  CHECK(z.reshape({-1, 3}).shape() == Shape{0, 3});
  CHECK(z.reshape({0}).shape() == Shape{0});
  REQUIRE_THROWS_WITH(z.reshape({-1, 0}), Contains("reshape") && Contains("cannot infer -1"));
}

TEST_CASE("core/tensor: reshape errors", "[core][cpu]") {
  const Tensor x = iota({2, 3});
  REQUIRE_THROWS_WITH(x.reshape({5}), Contains("reshape") && Contains("shape [5] holds 5 elements") &&
                                          Contains("shape [2, 3] has 6"));
  REQUIRE_THROWS_WITH(x.reshape({-1, -1}), Contains("reshape") && Contains("more than one -1"));
  REQUIRE_THROWS_WITH(x.reshape({4, -1}), Contains("reshape") && Contains("cannot infer -1"));
  REQUIRE_THROWS_WITH(x.reshape({-2, 3}), Contains("reshape") && Contains("invalid extent -2"));
  REQUIRE_THROWS_WITH(Tensor().reshape({1}), Contains("reshape") && Contains("undefined"));
}

TEST_CASE("core/tensor: narrow", "[core][cpu]") {
  const Tensor x = iota({4, 5});
  const Tensor n = x.narrow(1, 1, 3);
  CHECK(n.shape() == Shape{4, 3});
  CHECK(shares_storage(n, x));
  CHECK_FALSE(n.is_contiguous());
  expect_equal(n, {1, 2, 3, 6, 7, 8, 11, 12, 13, 16, 17, 18});
  expect_equal(x.narrow(0, -1, 1), {15, 16, 17, 18, 19});  // negative start counts from the end
  CHECK(x.narrow(0, 4, 0).shape() == Shape{0, 5});
  CHECK(x.narrow(0, 1, 2).is_contiguous());
  REQUIRE_THROWS_WITH(x.narrow(0, 2, 3), Contains("narrow") && Contains("start 2 and length 3 do not fit") &&
                                             Contains("extent 4"));
  REQUIRE_THROWS_WITH(x.narrow(1, 0, -1), Contains("narrow") && Contains("do not fit"));
  REQUIRE_THROWS_WITH(x.narrow(2, 0, 1), Contains("narrow") && Contains("dimension 2 is out of range"));
}

TEST_CASE("core/tensor: slice with steps and negative bounds", "[core][cpu]") {
  const Tensor x = iota({10});
  expect_equal(x.slice(0, 1, 8, 3), {1, 4, 7});
  expect_equal(x.slice(0, -3, 10), {7, 8, 9});
  expect_equal(x.slice(0, -4, -1, 2), {6, 8});
  expect_equal(x.slice(0, 0, 100, 4), {0, 4, 8});    // end clamps to the extent
  expect_equal(x.slice(0, -100, 2), {0, 1});         // start clamps to 0
  CHECK(x.slice(0, 7, 3).numel() == 0);               // start after end: empty
  CHECK(x.slice(0, 10, 12).numel() == 0);
  const Tensor s = x.slice(0, 1, 10, 2);
  CHECK(s.strides() == Shape{2});
  CHECK(shares_storage(s, x));
  const Tensor m = iota({4, 6}).slice(1, 1, 6, 2);
  expect_equal(m, {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
  REQUIRE_THROWS_WITH(x.slice(0, 0, 5, 0), Contains("slice") && Contains("step must be positive"));
  REQUIRE_THROWS_WITH(x.slice(0, 0, 5, -1), Contains("slice") && Contains("step must be positive, got -1"));
  REQUIRE_THROWS_WITH(x.slice(1, 0, 5), Contains("slice") && Contains("dimension 1 is out of range"));
}

TEST_CASE("core/tensor: select", "[core][cpu]") {
  const Tensor x = iota({3, 4});
  expect_equal(x.select(0, 1), {4, 5, 6, 7});
  expect_equal(x.select(1, -1), {3, 7, 11});
  CHECK(x.select(1, 2).shape() == Shape{3});
  CHECK(x.select(0, 0).select(0, 2).ndim() == 0);
  CHECK(x.select(0, 2).select(0, 3).item<float>() == 11.f);
  REQUIRE_THROWS_WITH(x.select(0, 3), Contains("select") && Contains("index 3 is out of range") && Contains("extent 3"));
  REQUIRE_THROWS_WITH(x.select(1, -5), Contains("select") && Contains("index -5 is out of range"));
  REQUIRE_THROWS_WITH(x.select(-3, 0), Contains("select") && Contains("dimension -3 is out of range"));
}

TEST_CASE("core/tensor: permute and transpose", "[core][cpu]") {
  const Tensor x = iota({2, 3, 4});
  const auto rx = drcnn::ref::from_tensor(x);
  const std::vector<std::vector<int>> perms = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {2, 1, 0}, {0, 2, 1}};
  for (const auto& p : perms) {
    const Tensor y = x.permute(p);
    CHECK(shares_storage(y, x));
    expect_allclose(y, drcnn::ref::permute(rx, p), 0, 0);
  }
  CHECK(x.permute({-1, 0, 1}).shape() == Shape{4, 2, 3});
  const Tensor t = x.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.strides() == Shape{1, 4, 12});
  expect_allclose(t, drcnn::ref::permute(rx, {2, 1, 0}), 0, 0);
  expect_allclose(x.transpose(-1, -2), drcnn::ref::permute(rx, {0, 2, 1}), 0, 0);
  CHECK(x.transpose(1, 1).is_same(x));
  REQUIRE_THROWS_WITH(x.permute({0, 0, 1}), Contains("permute") && Contains("dimension 0 appears twice"));
  REQUIRE_THROWS_WITH(x.permute({0, 1}), Contains("permute") && Contains("got 2 dims for a tensor with 3"));
  REQUIRE_THROWS_WITH(x.permute({0, 1, 3}), Contains("permute") && Contains("dimension 3 is out of range"));
  REQUIRE_THROWS_WITH(x.transpose(0, 3), Contains("transpose") && Contains("out of range"));
}

TEST_CASE("core/tensor: expand broadcasts size-1 dims with stride 0", "[core][cpu]") {
  const Tensor c = Tensor::from_vector<float>({1, 2, 3}, {3, 1});
  const Tensor e = c.expand({3, 4});
  CHECK(e.shape() == Shape{3, 4});
  CHECK(e.strides() == Shape{1, 0});
  CHECK(shares_storage(e, c));
  CHECK_FALSE(e.is_contiguous());
  expect_equal(e, {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  expect_equal(c.expand({-1, 2}), {1, 1, 2, 2, 3, 3});
  const Tensor lead = c.expand({2, 3, 2});
  CHECK(lead.strides() == Shape{0, 1, 0});
  expect_equal(lead, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  expect_equal(Tensor::full({}, 5.0).expand({2, 2}), {5, 5, 5, 5});
  CHECK(c.expand({3, 0}).numel() == 0);
  CHECK(c.expand({0, 3, 1}).numel() == 0);
  REQUIRE_THROWS_WITH(c.expand({4, 4}), Contains("expand") && Contains("extent 3 in dimension 0 must be 1"));
  REQUIRE_THROWS_WITH(c.expand({3}), Contains("expand") && Contains("fewer dims"));
  REQUIRE_THROWS_WITH(c.expand({-1, 3, 1}), Contains("expand") && Contains("new leading dimension"));
}

TEST_CASE("core/tensor: squeeze, unsqueeze and flatten", "[core][cpu]") {
  const Tensor x = iota({2, 1, 3, 1});
  CHECK(x.squeeze().shape() == Shape{2, 3});
  CHECK(x.squeeze(1).shape() == Shape{2, 3, 1});
  CHECK(x.squeeze(-1).shape() == Shape{2, 1, 3});
  CHECK(x.squeeze(0).shape() == Shape{2, 1, 3, 1});  // extent 2: unchanged
  CHECK(shares_storage(x.squeeze(), x));
  expect_equal(x.squeeze(), strided_values(x));
  const Tensor y = iota({2, 3});
  CHECK(y.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(y.unsqueeze(1).shape() == Shape{2, 1, 3});
  CHECK(y.unsqueeze(2).shape() == Shape{2, 3, 1});
  CHECK(y.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(y.unsqueeze(-3).shape() == Shape{1, 2, 3});
  CHECK(y.unsqueeze(1).is_contiguous());
  CHECK(Tensor::full({}, 1.0).unsqueeze(0).shape() == Shape{1});
  expect_equal(y.transpose(0, 1).unsqueeze(1), {0, 3, 1, 4, 2, 5});
  REQUIRE_THROWS_WITH(y.unsqueeze(3), Contains("unsqueeze") && Contains("dimension 3 is out of range"));
  REQUIRE_THROWS_WITH(y.squeeze(2), Contains("squeeze") && Contains("dimension 2 is out of range"));
  const Tensor z = iota({2, 3, 4, 5});
  CHECK(z.flatten().shape() == Shape{120});
  CHECK(z.flatten(1).shape() == Shape{2, 60});
  CHECK(z.flatten(1, 2).shape() == Shape{2, 12, 5});
  CHECK(z.flatten(-2, -1).shape() == Shape{2, 3, 20});
  CHECK(z.flatten(2, 2).shape() == Shape{2, 3, 4, 5});
  CHECK(shares_storage(z.flatten(1), z));
  CHECK(Tensor::full({}, 2.0).flatten().shape() == Shape{1});
  expect_equal(z.transpose(0, 1).flatten(0, 1).select(1, 0).select(1, 0),
               {0, 60, 20, 80, 40, 100});
  REQUIRE_THROWS_WITH(z.flatten(2, 1), Contains("flatten") && Contains("start_dim 2 is after end_dim 1"));
}

TEST_CASE("core/tensor: views of 0-size tensors", "[core][cpu]") {
  const Tensor z = Tensor::zeros({0, 3});
  CHECK(z.transpose(0, 1).shape() == Shape{3, 0});
  CHECK(z.narrow(1, 1, 2).shape() == Shape{0, 2});
  CHECK(z.slice(1, 0, 3, 2).shape() == Shape{0, 2});
  CHECK(z.unsqueeze(0).shape() == Shape{1, 0, 3});
  CHECK(z.unsqueeze(0).squeeze().shape() == Shape{0, 3});
  CHECK(z.flatten().shape() == Shape{0});
  CHECK(z.select(1, 2).shape() == Shape{0});
  CHECK(z.transpose(0, 1).contiguous().shape() == Shape{3, 0});
  CHECK(z.clone().shape() == Shape{0, 3});
  CHECK(z.to(DType::Int64).dtype() == DType::Int64);
  CHECK(z.to_vector<float>().empty());
  Tensor w = Tensor::empty({2, 0});
  w.fill_(3.0);
  w.copy_(Tensor::ones({0}));
  CHECK(w.numel() == 0);
  REQUIRE_THROWS_WITH(z.select(0, 0), Contains("select") && Contains("out of range"));
}

TEST_CASE("core/tensor: is_contiguous", "[core][cpu]") {
  const Tensor x = iota({3, 4});
  CHECK(x.is_contiguous());
  CHECK_FALSE(x.transpose(0, 1).is_contiguous());
  CHECK(x.narrow(0, 1, 2).is_contiguous());
  CHECK_FALSE(x.narrow(1, 1, 2).is_contiguous());
  CHECK(x.select(0, 1).is_contiguous());
  CHECK_FALSE(x.select(1, 1).is_contiguous());
  CHECK(x.unsqueeze(1).is_contiguous());
  CHECK(iota({1, 4}).transpose(0, 1).is_contiguous());  // size-1 dims' strides do not matter
  CHECK(Tensor::full({}, 1.0).is_contiguous());
}

// ============================================================================ copies
TEST_CASE("core/tensor: contiguous and clone", "[core][cpu]") {
  const Tensor x = iota({3, 4});
  CHECK(x.contiguous().is_same(x));
  const Tensor t = x.transpose(0, 1);
  const Tensor c = t.contiguous();
  CHECK(c.is_contiguous());
  CHECK_FALSE(shares_storage(c, x));
  expect_equal(c, strided_values(t));
  Tensor k = x.clone();
  CHECK_FALSE(shares_storage(k, x));
  CHECK(k.is_contiguous());
  k.fill_(9);
  expect_equal(x, strided_values(iota({3, 4})));  // the original is untouched
  const Tensor sc = x.slice(1, 0, 4, 3).clone();
  expect_equal(sc, {0, 3, 4, 7, 8, 11});
  expect_equal(Tensor::from_vector<bool>({true, false}).expand({2, 2}).clone(), {1, 0, 1, 0});
  REQUIRE_THROWS_WITH(Tensor().clone(), Contains("clone") && Contains("undefined"));
  REQUIRE_THROWS_WITH(Tensor().contiguous(), Contains("contiguous") && Contains("undefined"));
}

TEST_CASE("core/tensor: copy_ broadcasts and converts dtypes", "[core][cpu]") {
  Tensor d = Tensor::zeros({2, 3});
  d.copy_(Tensor::from_vector<float>({1, 2, 3}));
  expect_equal(d, {1, 2, 3, 1, 2, 3});
  d.copy_(Tensor::from_vector<float>({7, 8}, {2, 1}));
  expect_equal(d, {7, 7, 7, 8, 8, 8});
  d.copy_(Tensor::full({}, 4.0, DType::Float64));
  expect_equal(d, std::vector<double>(6, 4));
  d.copy_(Tensor::from_vector<int64_t>({-1, 0, 5, 6, 7, 8}, {2, 3}));
  expect_equal(d, {-1, 0, 5, 6, 7, 8});
  Tensor i = Tensor::zeros({4}, DType::Int32);
  i.copy_(Tensor::from_vector<double>({-2.9, -0.5, 0.5, 2.9}));
  expect_equal(i, {-2, 0, 0, 2});
  // Into a strided destination: writes land in the base tensor.
  Tensor base = Tensor::zeros({3, 3});
  base.transpose(0, 1).copy_(iota({3, 3}));
  expect_equal(base, {0, 3, 6, 1, 4, 7, 2, 5, 8});
  Tensor base2 = Tensor::zeros({2, 4});
  base2.slice(1, 0, 4, 2).copy_(Tensor::from_vector<float>({1, 2}, {2, 1}));
  expect_equal(base2, {1, 0, 1, 0, 2, 0, 2, 0});
  REQUIRE_THROWS_WITH(d.copy_(Tensor::zeros({4})), Contains("copy_") && Contains("cannot be broadcast"));
  REQUIRE_THROWS_WITH(Tensor::zeros({3}).copy_(Tensor::zeros({2, 3})),
                      Contains("copy_") && Contains("does not broadcast to the destination's shape [3]"));
  REQUIRE_THROWS_WITH(d.copy_(Tensor()), Contains("copy_") && Contains("undefined"));
}

TEST_CASE("core/tensor: fill_ writes through views", "[core][cpu]") {
  Tensor x = Tensor::zeros({3, 4});
  x.select(1, 2).fill_(5);
  x.narrow(0, 0, 1).fill_(1);
  expect_equal(x, {1, 1, 1, 1, 0, 0, 5, 0, 0, 0, 5, 0});
  Tensor b = Tensor::zeros({3}, DType::Bool);
  b.fill_(-3);
  expect_equal(b, {1, 1, 1});
  x.zero_();
  expect_equal(x, std::vector<double>(12, 0));
  REQUIRE_THROWS_WITH(Tensor().fill_(1), Contains("fill_") && Contains("undefined"));
}

TEST_CASE("core/tensor: to(DType) between all 8 dtypes", "[core][cpu]") {
  // Small non-negative integers are exact in every dtype (bool: 0/1).
  const std::vector<double> ints = {0, 1, 2, 3, 5, 100};
  const std::vector<double> bools = {0, 1, 1, 0, 1, 0};
  for (DType from : kAllDTypes) {
    const bool from_bool = from == DType::Bool;
    const std::vector<double>& src_vals = from_bool ? bools : ints;
    Tensor src = Tensor::empty({2, 3}, from);
    src.copy_(Tensor::from_vector<double>(src_vals, {2, 3}));
    expect_equal(src, src_vals);
    for (DType to : kAllDTypes) {
      INFO("from " << drcnn::dtype_name(from) << " to " << drcnn::dtype_name(to));
      const Tensor out = src.to(to);
      CHECK(out.dtype() == to);
      CHECK(out.shape() == Shape{2, 3});
      std::vector<double> want = src_vals;
      if (to == DType::Bool)
        for (double& v : want) v = v != 0;
      expect_equal(out, want);
      // Non-contiguous sources convert too.
      std::vector<double> tw = {want[0], want[3], want[1], want[4], want[2], want[5]};
      expect_equal(src.transpose(0, 1).to(to), tw);
    }
    CHECK(src.to(from).is_same(src));
  }
}

TEST_CASE("core/tensor: to(DType) value semantics", "[core][cpu]") {
  const Tensor f = Tensor::from_vector<float>({-2.7f, -0.5f, 0.f, 0.5f, 1.5f, 2.5f, 100.25f});
  expect_equal(f.to(DType::Int32), {-2, 0, 0, 0, 1, 2, 100});   // truncation toward zero
  expect_equal(f.to(DType::Int64), {-2, 0, 0, 0, 1, 2, 100});
  expect_equal(f.to(DType::Bool), {1, 1, 0, 1, 1, 1, 1});
  expect_equal(Tensor::from_vector<float>({0.7f, 255.9f}).to(DType::UInt8), {0, 255});
  expect_equal(Tensor::from_vector<float>({-0.0f, NAN}).to(DType::Bool), {0, 1});  // NaN != 0
  // Rounding to f16 / bf16 is round-to-nearest-even of the float value.
  expect_equal(Tensor::from_vector<float>({0.1f, 65519.f, 65520.f, 1e-8f}).to(DType::Float16),
               {0.0999755859375, 65504, INFINITY, 0});
  expect_equal(Tensor::from_vector<float>({0.1f, 3.14159f}).to(DType::BFloat16), {0.10009765625, 3.140625});
  expect_equal(Tensor::from_vector<double>({1.0 + 1e-12}).to(DType::Float32), {1.0});
  expect_equal(Tensor::from_vector<int64_t>({(int64_t(1) << 40) + 1}).to(DType::Float64),
               {double((int64_t(1) << 40) + 1)});
  // f16 -> f32 -> f16 conversions through tensors.
  const Tensor h = Tensor::from_vector<float>({1.f, -2.5f, 6e-8f}).to(DType::Float16);
  expect_equal(h.to(DType::Float32), {1, -2.5, std::ldexp(1.0, -24)});
  expect_equal(h.to(DType::BFloat16), {1, -2.5, 5.9604644775390625e-08});
  REQUIRE_THROWS_WITH(Tensor().to(DType::Int32), Contains("to") && Contains("undefined"));
}

// ============================================================================ host access
TEST_CASE("core/tensor: item and to_vector", "[core][cpu]") {
  CHECK(Tensor::full({}, 3.5, DType::Float64).item<double>() == 3.5);
  CHECK(Tensor::full({1, 1}, 3.5).item<int64_t>() == 3);
  CHECK(Tensor::full({1}, 1.0, DType::Bool).item<bool>());
  CHECK(Tensor::full({1}, -7, DType::Int32).item<float>() == -7.f);
  CHECK(float(Tensor::full({}, 0.5).item<drcnn::Half>()) == 0.5f);
  const auto v = iota({2, 3}).transpose(0, 1).to_vector<int32_t>();
  CHECK(v == std::vector<int32_t>{0, 3, 1, 4, 2, 5});
  CHECK(Tensor::from_vector<float>({0.f, 2.f}).to_vector<bool>() == std::vector<bool>{false, true});
  CHECK(Tensor::from_vector<double>({1.9, -1.9}).to_vector<int64_t>() == std::vector<int64_t>{1, -1});
  REQUIRE_THROWS_WITH(iota({2}).item<float>(), Contains("item") && Contains("expected a tensor with one element") &&
                                                   Contains("[2]"));
  REQUIRE_THROWS_WITH(Tensor::zeros({0}).item<float>(), Contains("item") && Contains("one element"));
  REQUIRE_THROWS_WITH(Tensor().to_vector<float>(), Contains("to_vector") && Contains("undefined"));
}

TEST_CASE("core/tensor: typed access checks dtype, rank and contiguity", "[core][cpu]") {
  const Tensor x = iota({2, 3});
  CHECK(x.data<float>() == x.data_ptr());
  REQUIRE_THROWS_WITH(x.data<int64_t>(), Contains("Tensor::data") && Contains("dtype float32, expected int64"));
  REQUIRE_THROWS_WITH(x.data<double>(), Contains("Tensor::data") && Contains("expected float64"));
  const auto v = x.view<const float, 2>();
  CHECK(v(1, 2) == 5.f);
  CHECK(x.transpose(0, 1).view<float, 2>()(2, 1) == 5.f);
  REQUIRE_THROWS_WITH((x.view<float, 3>()), Contains("Tensor::view") && Contains("2 dimensions, view asked for 3"));
  REQUIRE_THROWS_WITH((x.view<int32_t, 2>()), Contains("Tensor::view") && Contains("expected int32"));
  CHECK(x.flat<const float>()(4) == 4.f);
  REQUIRE_THROWS_WITH(x.transpose(0, 1).flat<float>(), Contains("Tensor::flat") && Contains("not contiguous"));
  REQUIRE_THROWS_WITH(Tensor().data_ptr(), Contains("data_ptr") && Contains("undefined"));
  REQUIRE_THROWS_WITH(x.size(2), Contains("Tensor::size") && Contains("dimension 2 is out of range") &&
                                     Contains("expected -2..1"));
  REQUIRE_THROWS_WITH(x.stride(-3), Contains("Tensor::stride") && Contains("dimension -3 is out of range"));
}

TEST_CASE("core/tensor: bad shapes and devices are rejected with clear messages", "[core][cpu]") {
  REQUIRE_THROWS_WITH(Tensor::empty({2, -1}), Contains("Tensor::empty") && Contains("negative extent -1") &&
                                                  Contains("dimension 1"));
  REQUIRE_THROWS_WITH(Tensor::zeros({-3}), Contains("negative extent -3"));
  // An element count whose byte size does not fit in memory's address range.
  REQUIRE_THROWS_WITH(Tensor::empty({int64_t(1) << 40, int64_t(1) << 40}),
                      Contains("Tensor::empty") && Contains("too many elements"));
  REQUIRE_THROWS_WITH(Tensor::empty({int64_t(1) << 61}, DType::Float64),
                      Contains("Tensor::empty") && Contains("too many elements"));
  // Without a usable device (always so in a CPU-only build; on this machine also in a CUDA
  // build) the message names the device and why it is unusable.
  if (drcnn::cuda::device_count() == 0) {
    const std::string reason = drcnn::cuda::unavailable_reason();
#if !DRCNN_WITH_CUDA
    CHECK_THAT(reason, Contains("built without CUDA"));
#endif
    REQUIRE_THROWS_WITH(Tensor::empty({2}, DType::Float32, Device::cuda(0)),
                        Contains("Tensor::empty") && Contains("cuda:0") && Contains(reason));
    REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::Float32, Device::cuda(0)), Contains("cuda:0") && Contains(reason));
    REQUIRE_THROWS_WITH(iota({2}).to(Device::cuda(0)), Contains("to(cuda:0)") && Contains(reason));
  }
  const Tensor x = iota({2});
  CHECK(x.to(Device::cpu()).is_same(x));  // same device returns *this
}

TEST_CASE("core/tensor: from_storage checks the strided extent", "[core][cpu]") {
  const Tensor x = iota({12});
  const Tensor v = Tensor::from_storage(x.storage(), {3, 2}, {4, 2}, 1, DType::Float32);
  expect_equal(v, {1, 3, 5, 7, 9, 11});
  REQUIRE_THROWS_WITH(Tensor::from_storage(x.storage(), {3, 2}, {4, 2}, 2, DType::Float32),
                      Contains("Tensor::from_storage") && Contains("reaches element 12") &&
                          Contains("holds 12 elements"));
  CHECK(Tensor::from_storage(x.storage(), {6}, {1}, 0, DType::Float64).numel() == 6);  // 48 bytes
  REQUIRE_THROWS_WITH(Tensor::from_storage(x.storage(), {7}, {1}, 0, DType::Float64),
                      Contains("Tensor::from_storage") && Contains("holds 6 elements of float64"));
  REQUIRE_THROWS_WITH(Tensor::from_storage(nullptr, {1}, {1}, 0, DType::Float32), Contains("null storage"));
  REQUIRE_THROWS_WITH(Tensor::from_storage(x.storage(), {1}, {1}, -1, DType::Float32),
                      Contains("negative offset -1"));
  REQUIRE_THROWS_WITH(Tensor::from_storage(x.storage(), {2, 2}, {1}, 0, DType::Float32), Contains("differ in rank"));
}

// ============================================================================ printing
TEST_CASE("core/tensor: to_string", "[core][cpu]") {
  CHECK(drcnn::to_string(Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2})) ==
        "tensor([[1, 2], [3, 4]], shape=[2, 2], dtype=float32, device=cpu)");
  CHECK(drcnn::to_string(Tensor::from_vector<double>({0.5, -1.25, 1e-7})) ==
        "tensor([0.5, -1.25, 1e-07], shape=[3], dtype=float64, device=cpu)");
  CHECK(drcnn::to_string(Tensor::full({}, 3.5, DType::Float64)) == "tensor(3.5, shape=[], dtype=float64, device=cpu)");
  CHECK(drcnn::to_string(Tensor::arange(4).reshape({2, 1, 2})) ==
        "tensor([[[0, 1]], [[2, 3]]], shape=[2, 1, 2], dtype=int64, device=cpu)");
  CHECK(drcnn::to_string(Tensor::from_vector<bool>({true, false})) ==
        "tensor([1, 0], shape=[2], dtype=bool, device=cpu)");
  CHECK(drcnn::to_string(Tensor::zeros({0})) == "tensor([], shape=[0], dtype=float32, device=cpu)");
  CHECK(drcnn::to_string(Tensor::zeros({2, 0})) == "tensor([], shape=[2, 0], dtype=float32, device=cpu)");
  CHECK(drcnn::to_string(Tensor::zeros({100})) == "tensor(<100 elements>, shape=[100], dtype=float32, device=cpu)");
  CHECK(drcnn::to_string(Tensor()) == "tensor(undefined)");
  CHECK(drcnn::to_string(Tensor::from_vector<float>({NAN, INFINITY})) ==
        "tensor([nan, inf], shape=[2], dtype=float32, device=cpu)");
  CHECK(fmt::format("{}", iota({2}).transpose(0, 0)) == "tensor([0, 1], shape=[2], dtype=float32, device=cpu)");
}

// ============================================================================ more views
TEST_CASE("core/tensor: reshape of random views keeps row-major order", "[core][cpu]") {
  // Every view below, reshaped to every factorisation of its element count, must list the same
  // values in the same row-major order; wrong view strides would scramble them.
  const std::vector<std::vector<int64_t>> shapes_of_24 = {{24}, {2, 12}, {12, 2}, {4, 6}, {6, 4}, {2, 3, 4},
                                                          {4, 3, 2}, {2, 2, 6}, {1, 24, 1}, {3, 1, 8}, {2, 2, 2, 3}};
  const Tensor base = iota({4, 6, 5});
  std::vector<std::pair<const char*, Tensor>> views = {
      {"narrow", base.narrow(2, 1, 1).squeeze(2)},                        // [4, 6] strides [30, 5]
      {"transpose", base.select(2, 0).transpose(0, 1)},                   // [6, 4]
      {"slice", base.slice(1, 0, 6, 2).narrow(2, 0, 2)},                  // [4, 3, 2]
      {"permute", base.narrow(2, 0, 2).permute({2, 0, 1})},               // [2, 4, 6]... 48 elements
      {"expand", base.select(2, 3).select(1, 0).unsqueeze(1).expand({4, 6})},  // [4, 6] stride 0
      {"unsqueezed", base.narrow(2, 0, 1).narrow(1, 0, 6)},               // [4, 6, 1]
  };
  for (auto& [name, v] : views) {
    if (v.numel() != 24) v = v.flatten().narrow(0, 0, 24);
    const std::vector<double> want = strided_values(v);
    for (const auto& s : shapes_of_24) {
      INFO(name << " -> " << fmt::format("{}", Shape(s)));
      const Tensor r = v.reshape(Shape(s));
      CHECK(r.shape() == Shape(s));
      expect_equal(r, want);
      // The result is a view exactly when it shares storage; either way, writes to a view must
      // reach the source.
      if (r.storage() == v.storage() && v.strides().vec() != std::vector<int64_t>(size_t(v.ndim()), 0)) {
        CHECK(r.data_ptr() == v.data_ptr());
      }
    }
  }
}

TEST_CASE("core/tensor: at most kMaxDims dimensions", "[core][cpu]") {
  const Tensor x = Tensor::zeros({1, 1, 1, 1, 1, 1, 1, 2});
  CHECK(x.ndim() == drcnn::kMaxDims);
  REQUIRE_THROWS_WITH(x.unsqueeze(0), Contains("Shape: more than 8 dimensions"));
  REQUIRE_THROWS_WITH(Tensor::zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}), Contains("Shape: more than 8 dimensions"));
  REQUIRE_THROWS_WITH(x.reshape({1, 1, 1, 1, 1, 1, 1, 1, 2}), Contains("more than 8 dimensions"));
}

TEST_CASE("core/tensor: integer fills must be representable", "[core][cpu]") {
  // static_cast of NaN, inf or an out-of-range double to an integer is undefined behaviour.
  REQUIRE_THROWS_WITH(Tensor::full({2}, NAN, DType::Int32), Contains("fill_") && Contains("nan") && Contains("int32"));
  REQUIRE_THROWS_WITH(Tensor::full({2}, INFINITY, DType::Int64), Contains("fill_") && Contains("int64"));
  REQUIRE_THROWS_WITH(Tensor::full({2}, -1, DType::UInt8), Contains("fill_") && Contains("-1") && Contains("uint8"));
  REQUIRE_THROWS_WITH(Tensor::full({2}, 256, DType::UInt8), Contains("fill_") && Contains("256"));
  REQUIRE_THROWS_WITH(Tensor::full({2}, 3e9, DType::Int32), Contains("fill_") && Contains("int32"));
  REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::Int64).fill_(1e19), Contains("fill_") && Contains("int64"));
  expect_equal(Tensor::full({1}, 255.9, DType::UInt8), {255});       // truncates into range
  expect_equal(Tensor::full({1}, -0.9, DType::UInt8), {0});
  expect_equal(Tensor::full({1}, 2147483647.0, DType::Int32), {2147483647});
  expect_equal(Tensor::full({1}, -2147483648.0, DType::Int32), {-2147483648.0});
  expect_equal(Tensor::full({1}, -9223372036854775808.0, DType::Int64), {-9223372036854775808.0});
  expect_equal(Tensor::full({1}, NAN, DType::Bool), {1});            // bool is value != 0: NaN is true
}

TEST_CASE("core/tensor: copy_ rejects a partly overlapping contiguous source", "[core][cpu]") {
  Tensor x = Tensor::arange(10, DType::Float32);
  // Self-copy is a no-op.
  x.copy_(x);
  CHECK(x.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Shifted by one element within the same storage: rejected, nothing written.
  Tensor dst = x.narrow(0, 1, 5);
  REQUIRE_THROWS_WITH(dst.copy_(x.narrow(0, 0, 5)), Contains("copy_") && Contains("partly overlaps"));
  CHECK(x.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Disjoint halves of one storage are fine.
  x.narrow(0, 5, 5).copy_(x.narrow(0, 0, 5));
  CHECK(x.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4});
}
