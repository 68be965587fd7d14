// Segmented top-k (include/drcnn/ops/topk.h): hand cases (ties, k larger than a segment,
// empty segments, NaN, signed zeros, k = 0), random inputs against the std::stable_sort
// reference of tests/reference/topk_ref.h (compared exactly: selection is not arithmetic),
// the dense and compact forms, and every bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/allclose.h"
#include "drcnn/ops/detail/topk_body.h"
#include "drcnn/ops/topk.h"
#include "reference/topk_ref.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_equal;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor scores_of(const std::vector<double>& v, DType dt) { return Tensor::from_vector<double>(v).to(dt); }
Tensor offsets_of(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(v); }

void check_against_ref(const ops::SegmentTopK& r, const ref::TopKRef& e, int64_t S, int64_t k) {
  REQUIRE(r.values.shape() == Shape{S, k});
  REQUIRE(r.indices.shape() == Shape{S, k});
  REQUIRE(r.counts.shape() == Shape{S});
  REQUIRE(r.indices.dtype() == DType::Int64);
  REQUIRE(r.counts.dtype() == DType::Int64);
  expect_equal(r.counts, e.counts);
  expect_equal(r.indices, e.indices);
  expect_equal(r.values, e.values);  // the selected scores themselves, exactly
}

/// Random scores with many ties (quantised), a few NaN, infinities and signed zeros.
std::vector<double> random_scores(int64_t n, uint64_t seed, bool ties) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-3, 3);
  std::uniform_int_distribution<int> special(0, 99);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) {
    x = ties ? std::round(u(rng) * 4) / 4 : u(rng);
    const int c = special(rng);
    if (c == 0) x = kNaN;
    else if (c == 1) x = kInf;
    else if (c == 2) x = -kInf;
    else if (c == 3) x = -0.0;
    else if (c == 4) x = 0.0;
  }
  return v;
}

std::vector<int64_t> random_offsets(int64_t S, uint64_t seed, int64_t max_len) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> len(0, max_len);
  std::vector<int64_t> off = {0};
  for (int64_t s = 0; s < S; ++s) off.push_back(off.back() + (s % 5 == 3 ? 0 : len(rng)));  // some empty
  return off;
}
}  // namespace

// ============================================================================ hand cases
TEST_CASE("ops/segment_topk: ties, short and empty segments, NaN and signed zeros", "[ops][cpu][topk]") {
  //                               seg 0 [0, 4)     seg 1 [4, 5)  seg 2 empty  seg 3 [5, 10)
  const std::vector<double> v = {3, 1, 3, 2, /**/ 5, /**/ 0, -0.0, kNaN, -kInf, 1};
  for (DType dt : {DType::Float32, DType::Float64}) {
    const auto r = ops::segment_topk(scores_of(v, dt), offsets_of({0, 4, 5, 5, 10}), 3);
    expect_equal(r.counts, {3, 1, 0, 3});
    // Ties: the two 3s in index order; -0 ties with 0 and comes after it (index order).
    expect_equal(r.indices, {0, 2, 3, /**/ 4, -1, -1, /**/ -1, -1, -1, /**/ 9, 5, 6});
    expect_equal(r.values, {3, 3, 2, /**/ 5, -kInf, -kInf, /**/ -kInf, -kInf, -kInf, /**/ 1, 0, 0});
    // The selected -0.0 keeps its sign (values are the input's own).
    const auto vals = r.values.to(DType::Float64).to_vector<double>();
    CHECK(std::signbit(vals[11]));
    CHECK_FALSE(std::signbit(vals[10]));
    // k = 5: -inf is kept ahead of NaN; NaN last.
    const auto r5 = ops::segment_topk(scores_of(v, dt), offsets_of({0, 4, 5, 5, 10}), 5);
    expect_equal(r5.counts, {4, 1, 0, 5});
    expect_equal(r5.indices.narrow(0, 3, 1), {9, 5, 6, 8, 7});
    expect_equal(r5.values.narrow(0, 3, 1), {1, 0, 0, -kInf, kNaN});
    expect_equal(r5.indices.narrow(0, 0, 1), {0, 2, 3, 1, -1});
  }
}

TEST_CASE("ops/segment_topk: all NaN, all equal, k = 0 and no segments", "[ops][cpu][topk]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const auto nan = ops::segment_topk(scores_of({kNaN, kNaN, 1, kNaN}, dt), offsets_of({0, 2, 4}), 2);
    expect_equal(nan.counts, {2, 2});
    expect_equal(nan.indices, {0, 1, 2, 3});  // NaNs in index order; the number first
    expect_equal(nan.values, {kNaN, kNaN, 1, kNaN});
    const auto eq = ops::segment_topk(scores_of(std::vector<double>(7, 0.5), dt), offsets_of({0, 7}), 4);
    expect_equal(eq.indices, {0, 1, 2, 3});
    const auto k0 = ops::segment_topk(scores_of({1, 2, 3}, dt), offsets_of({0, 1, 3}), 0);
    CHECK(k0.values.shape() == Shape{2, 0});
    CHECK(k0.indices.shape() == Shape{2, 0});
    expect_equal(k0.counts, {0, 0});
    const auto none = ops::segment_topk(scores_of({}, dt), offsets_of({0}), 3);
    CHECK(none.values.shape() == Shape{0, 3});
    CHECK(none.counts.shape() == Shape{0});
    const auto empty = ops::segment_topk(scores_of({}, dt), offsets_of({0, 0, 0}), 2);
    expect_equal(empty.counts, {0, 0});
    expect_equal(empty.indices, {-1, -1, -1, -1});
  }
}

// ============================================================================ random vs reference
TEST_CASE("ops/segment_topk: random segments match the stable-sort reference exactly", "[ops][cpu][topk]") {
  int cases = 0;
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (bool ties : {true, false}) {
      for (int64_t k : {int64_t(1), int64_t(7), int64_t(50), int64_t(400)}) {
        const uint64_t seed = uint64_t(100 * k + (ties ? 1 : 0) + (dt == DType::Float32 ? 7 : 0));
        const auto off = random_offsets(13, seed, 300);
        auto v = random_scores(off.back(), seed + 1, ties);
        if (dt == DType::Float32) for (auto& x : v) x = double(float(x));  // the values the kernel sees
        const auto r = ops::segment_topk(scores_of(v, dt), offsets_of(off), k);
        check_against_ref(r, ref::segment_topk(v, off, k), 13, k);
        ++cases;
      }
    }
  }
  CHECK(cases == 16);
}

// The CUDA partial top-k (kernels/cuda/topk.cu: a radix select of each segment's k-th key,
// then only the survivors sorted) runs its shared bodies here serially, against the reference.
template <typename T>
void check_radix_select(const std::vector<double>& v, const std::vector<int64_t>& off, int64_t k) {
  using K = typename drcnn::ops::detail::TopKKeyType<T>::type;
  std::vector<K> keys(v.size());
  for (size_t i = 0; i < v.size(); ++i) keys[i] = drcnn::ops::detail::topk_key(T(v[i]));
  const auto order = drcnn::ops::detail::radix_select_host(keys.data(), off, k);
  const auto e = ref::segment_topk(v, off, k);
  for (size_t s = 0; s + 1 < off.size(); ++s) {
    const int64_t count = std::min<int64_t>(k, off[s + 1] - off[s]);
    REQUIRE(double(count) == e.counts[s]);
    for (int64_t j = 0; j < count; ++j) {
      INFO("segment " << s << ", slot " << j);
      REQUIRE(double(order[size_t(off[s] + j)]) == e.indices[s * size_t(k) + size_t(j)]);
    }
  }
}

TEST_CASE("ops/segment_topk: the CUDA radix select's bodies, run serially, pick the reference's first k",
          "[ops][cpu][topk]") {
  int cases = 0;
  for (bool ties : {true, false}) {
    for (int64_t k : {int64_t(1), int64_t(2), int64_t(300), int64_t(2000), int64_t(20000)}) {
      const uint64_t seed = uint64_t(k) * 3 + (ties ? 1 : 0);
      for (const auto& off : {std::vector<int64_t>{0, 20000}, random_offsets(9, seed, 6000)}) {
        auto v = random_scores(off.back(), seed, ties);
        check_radix_select<double>(v, off, k);
        for (auto& x : v) x = double(float(x));
        check_radix_select<float>(v, off, k);
        ++cases;
      }
    }
  }
  // Every key equal (the k-th's bin holds everything at every digit), all NaN, and a tie that
  // straddles the k-th position: the first `remaining` equal keys in index order are kept.
  check_radix_select<float>(std::vector<double>(5000, 0.25), {0, 0, 2000, 2000, 5000}, 7);
  check_radix_select<double>(std::vector<double>(5000, kNaN), {0, 5000}, 4999);
  std::vector<double> straddle(4000, 1.0);
  for (size_t i = 0; i < straddle.size(); i += 3) straddle[i] = 2.0;  // 1334 twos, then ones
  check_radix_select<float>(straddle, {0, 4000}, 1500);
  check_radix_select<double>(straddle, {0, 1000, 4000}, 1334);
  CHECK(cases == 20);
}

TEST_CASE("ops/segment_topk: RPN-sized segments (2 images x 5 levels, k 2000)", "[ops][cpu][topk]") {
  // The pre-NMS top-2000 per level of two 800x1344 images (spec B.7): segments of 201600 ...
  // 819 scores, so both the nth_element path (len > k) and the whole-segment path (len <= k).
  const std::vector<int64_t> lens = {201600, 50400, 12600, 3150, 819};
  std::vector<int64_t> off = {0};
  for (int img = 0; img < 2; ++img) for (int64_t L : lens) off.push_back(off.back() + L);
  auto v = random_scores(off.back(), 99, true);
  for (auto& x : v) x = double(float(x));
  const auto r = ops::segment_topk(scores_of(v, DType::Float32), offsets_of(off), 2000);
  check_against_ref(r, ref::segment_topk(v, off, 2000), 10, 2000);
}

TEST_CASE("ops/segment_topk_dense: rows of a strided S x L matrix, column indices", "[ops][cpu][topk]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const int64_t S = 6, L = 37, k = 10;
    auto v = random_scores(S * L, 5, true);
    if (dt == DType::Float32) for (auto& x : v) x = double(float(x));
    // Stored transposed, so the [S, L] view is strided.
    const Tensor t = Tensor::from_vector<double>(v, Shape{S, L}).to(dt).transpose(0, 1).contiguous().transpose(0, 1);
    REQUIRE_FALSE(t.is_contiguous());
    std::vector<int64_t> off;
    for (int64_t s = 0; s <= S; ++s) off.push_back(s * L);
    check_against_ref(ops::segment_topk_dense(t, k), ref::segment_topk(v, off, k, /*relative=*/true), S, k);
    const auto big_k = ops::segment_topk_dense(t, 50);
    check_against_ref(big_k, ref::segment_topk(v, off, 50, true), S, 50);
  }
}

TEST_CASE("ops/segment_topk_compact: the selections concatenated in segment order", "[ops][cpu][topk]") {
  const std::vector<double> v = {3, 1, 3, 2, /**/ 5, /**/ 0, -0.0, kNaN, -kInf, 1};
  const auto [values, indices] = ops::segment_topk_compact(scores_of(v, DType::Float32), offsets_of({0, 4, 5, 5, 10}), 3);
  expect_equal(indices, {0, 2, 3, 4, 9, 5, 6});
  expect_equal(values, {3, 3, 2, 5, 1, 0, 0});
  const auto off = random_offsets(9, 3, 80);
  const auto rv = random_scores(off.back(), 4, true);
  const auto [cv, ci] = ops::segment_topk_compact(scores_of(rv, DType::Float64), offsets_of(off), 20);
  const auto e = ref::segment_topk(rv, off, 20);
  std::vector<double> ev, ei;
  for (size_t i = 0; i < e.indices.size(); ++i) {
    if (e.indices[i] >= 0) ev.push_back(e.values[i]), ei.push_back(e.indices[i]);
  }
  expect_equal(ci, ei);
  expect_equal(cv, ev);
  const auto [ev0, ei0] = ops::segment_topk_compact(scores_of({1, 2}, DType::Float32), offsets_of({0, 2}), 0);
  CHECK(ei0.numel() == 0);
  CHECK(ev0.numel() == 0);
}

// ============================================================================ bad inputs
TEST_CASE("ops/segment_topk: bad inputs are errors naming the op", "[ops][cpu][topk]") {
  const Tensor s = scores_of({1, 2, 3, 4}, DType::Float32);
  REQUIRE_THROWS_WITH(ops::segment_topk(s, offsets_of({0, 3, 2, 4}), 2),
                      Contains("segment_topk: offsets must be non-decreasing, got offsets[1] = 3 > offsets[2] = 2"));
  REQUIRE_THROWS_WITH(ops::segment_topk(s, offsets_of({0, 2, 3}), 2),
                      Contains("segment_topk: the last offset must equal the number of scores (4), got 3"));
  REQUIRE_THROWS_WITH(ops::segment_topk(s, offsets_of({0, 2, 5}), 2),
                      Contains("the last offset must equal the number of scores (4), got 5"));
  REQUIRE_THROWS_WITH(ops::segment_topk(s, offsets_of({1, 2, 4}), 2), Contains("segment_topk: offsets[0] must be 0, got 1"));
  REQUIRE_THROWS_WITH(ops::segment_topk(s, offsets_of({0, 4}), -1), Contains("segment_topk: k must be >= 0, got -1"));
  REQUIRE_THROWS_WITH(ops::segment_topk(s, offsets_of({}), 1),
                      Contains("segment_topk: offsets must be 1-D [S + 1] with at least one entry, got shape"));
  REQUIRE_THROWS_WITH(ops::segment_topk(s, Tensor::from_vector<int32_t>({0, 4}), 1),
                      Contains("segment_topk: offsets must be int64, got int32"));
  REQUIRE_THROWS_WITH(ops::segment_topk(s.reshape({2, 2}), offsets_of({0, 4}), 1),
                      Contains("segment_topk: scores must be 1-D [N], got shape"));
  REQUIRE_THROWS_WITH(ops::segment_topk(Tensor::from_vector<int64_t>({1, 2}), offsets_of({0, 2}), 1),
                      Contains("segment_topk: scores must be float32 or float64, got int64"));
  REQUIRE_THROWS_WITH(ops::segment_topk(Tensor(), offsets_of({0}), 1), Contains("segment_topk"));
  REQUIRE_THROWS_WITH(ops::segment_topk_dense(s, 1), Contains("segment_topk_dense: scores must be 2-D [S, L], got shape"));
  REQUIRE_THROWS_WITH(ops::segment_topk_dense(s.reshape({2, 2}), -3), Contains("segment_topk_dense: k must be >= 0, got -3"));
  REQUIRE_THROWS_WITH(ops::segment_topk_compact(s, offsets_of({0, 3, 2, 4}), 1),
                      Contains("segment_topk_compact: offsets must be non-decreasing"));
}
