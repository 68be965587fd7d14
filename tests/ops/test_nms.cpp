// NMS (include/drcnn/ops/nms.h) on the CPU: hand cases (identical boxes, ties, the threshold
// boundary, empty, single, zero-area boxes, NaN scores, max_output), the mask-word body,
// random clustered sets against the float64 reference of tests/reference/nms_ref.h (keep lists
// compared exactly), batched_nms on both paths against the per-group reference, thread-count
// independence and every bad input.
//
// Why exact equality with a float64 reference is sound here: the random boxes have integer
// coordinates in [0, 512), so widths, areas, intersections and unions are integers below 2^19,
// exact in float32 and float64; only the final division rounds. For a threshold t = a / b with
// b <= 20, an IoU q = inter / union that is not exactly t differs from it by at least
// 1 / (20 * 2^19) ~ 9.5e-8, more than one float32 ulp near t (<= 6e-8), so float32 q > float(t)
// exactly when q > t, and q == t gives float(q) == float(t) (not suppressed) in both.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/nms_body.h"
#include "drcnn/ops/nms.h"
#include "reference/nms_ref.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor boxes_t(const std::vector<double>& v, DType dt) {
  return Tensor::from_vector<double>(v, Shape{int64_t(v.size()) / 4, 4}).to(dt);
}
Tensor scores_t(const std::vector<double>& v, DType dt) {
  return Tensor::from_vector<double>(v, Shape{int64_t(v.size())}).to(dt);
}
std::vector<int64_t> keep_of(const Tensor& t) {
  REQUIRE(t.dtype() == DType::Int64);
  REQUIRE(t.ndim() == 1);
  return t.to_vector<int64_t>();
}
std::vector<int64_t> run_nms(const std::vector<double>& b, const std::vector<double>& s, double thr, DType dt,
                             int64_t max_output = -1) {
  return keep_of(ops::nms(boxes_t(b, dt), scores_t(s, dt), thr, max_output));
}

/// Clustered boxes with integer coordinates in [0, 512) (RPN-like: many near-duplicates around
/// a few objects, plus loose boxes), and scores on a 1/64 grid in [0, 1) (many exact ties).
struct BoxSet {
  std::vector<double> boxes, scores;
  std::vector<int64_t> ids;
};
BoxSet clustered(int64_t n, uint64_t seed, int64_t groups = 1) {
  std::mt19937_64 rng(seed);
  auto uni = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t clusters = std::max<int64_t>(1, n / 24);
  std::vector<std::array<int64_t, 4>> c(static_cast<size_t>(clusters));
  for (auto& k : c) {
    const int64_t w = uni(8, 160), h = uni(8, 160);
    k = {uni(0, 511 - w), uni(0, 511 - h), w, h};
  }
  BoxSet s;
  for (int64_t i = 0; i < n; ++i) {
    const auto& k = c[size_t(uni(0, clusters - 1))];
    const bool loose = uni(0, 9) == 0;
    const int64_t jx = loose ? 80 : 1 + k[2] / 6, jy = loose ? 80 : 1 + k[3] / 6;
    int64_t x1 = k[0] + uni(-jx, jx), y1 = k[1] + uni(-jy, jy);
    int64_t x2 = k[0] + k[2] + uni(-jx, jx), y2 = k[1] + k[3] + uni(-jy, jy);
    x1 = std::clamp<int64_t>(x1, 0, 511), x2 = std::clamp<int64_t>(x2, 0, 511);
    y1 = std::clamp<int64_t>(y1, 0, 511), y2 = std::clamp<int64_t>(y2, 0, 511);
    if (x2 < x1) std::swap(x1, x2);
    if (y2 < y1) std::swap(y1, y2);
    s.boxes.insert(s.boxes.end(), {double(x1), double(y1), double(x2), double(y2)});
    s.scores.push_back(double(uni(0, 63)) / 64.0);
    s.ids.push_back(uni(0, groups - 1));
  }
  return s;
}

/// The same values as t in a non-contiguous layout: boxes through a transposed storage,
/// scores as column 0 of an [N, 2] tensor (stride 2).
Tensor strided(const Tensor& t) {
  Tensor s;
  if (t.ndim() == 2) {
    s = t.transpose(0, 1).contiguous().transpose(0, 1);
  } else {
    std::vector<double> v;
    for (double x : t.to_vector<double>()) v.insert(v.end(), {x, -1.0});
    s = Tensor::from_vector<double>(v, Shape{t.size(0), 2}).to(t.dtype()).select(1, 0);
  }
  REQUIRE_FALSE(s.is_contiguous());
  return s;
}

struct ThreadGuard {
  explicit ThreadGuard(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadGuard() { drcnn::set_cpu_threads(0); }
};

const DType kDtypes[] = {DType::Float32, DType::Float64};
}  // namespace

TEST_CASE("ops/nms: identical boxes keep only the best, tied scores keep input order", "[ops][nms]") {
  for (DType dt : kDtypes) {
    const std::vector<double> same = {10, 10, 50, 40, 10, 10, 50, 40, 10, 10, 50, 40, 10, 10, 50, 40};
    CHECK(run_nms(same, {0.2, 0.9, 0.5, 0.9}, 0.5, dt) == std::vector<int64_t>{1});
    CHECK(run_nms(same, {0.3, 0.3, 0.3, 0.3}, 0.5, dt) == std::vector<int64_t>{0});
    // Disjoint boxes with equal scores: all kept, in input order.
    const std::vector<double> apart = {0, 0, 1, 1, 5, 5, 6, 6, 10, 10, 11, 11, 20, 0, 21, 1};
    CHECK(run_nms(apart, {0.5, 0.5, 0.5, 0.5}, 0.5, dt) == std::vector<int64_t>{0, 1, 2, 3});
    CHECK(run_nms(apart, {0.1, 0.5, 0.5, 0.7}, 0.5, dt) == std::vector<int64_t>{3, 1, 2, 0});
    // -0.0 and +0.0 are equal scores.
    CHECK(run_nms(apart, {-0.0, 0.0, -0.0, 0.0}, 0.5, dt) == std::vector<int64_t>{0, 1, 2, 3});
  }
}

TEST_CASE("ops/nms: an IoU equal to the threshold does not suppress", "[ops][nms]") {
  for (DType dt : kDtypes) {
    // IoU([0,0,3,1], [1,0,4,1]) = 2 / 4 = 0.5 exactly.
    const std::vector<double> half = {0, 0, 3, 1, 1, 0, 4, 1};
    CHECK(run_nms(half, {0.9, 0.8}, 0.5, dt) == std::vector<int64_t>{0, 1});
    // The threshold is compared in the box dtype: the next value below 0.5 in that dtype
    // suppresses (in float32, double's nextafter(0.5, 0) rounds back to 0.5 and does not).
    const double below = dt == DType::Float32 ? double(std::nextafter(0.5f, 0.0f)) : std::nextafter(0.5, 0.0);
    CHECK(run_nms(half, {0.9, 0.8}, below, dt) == std::vector<int64_t>{0});
    if (dt == DType::Float32) CHECK(run_nms(half, {0.9, 0.8}, std::nextafter(0.5, 0.0), dt) == std::vector<int64_t>{0, 1});
    CHECK(run_nms(half, {0.9, 0.8}, 0.49, dt) == std::vector<int64_t>{0});
    // IoU = 1 / 3: the IoU and the threshold round to the same value in the box dtype.
    const std::vector<double> third = {0, 0, 2, 1, 1, 0, 3, 1};
    CHECK(run_nms(third, {0.9, 0.8}, 1.0 / 3.0, dt) == std::vector<int64_t>{0, 1});
    CHECK(run_nms(third, {0.9, 0.8}, 0.33, dt) == std::vector<int64_t>{0});
    // Identical boxes have IoU 1: threshold 1 keeps both, anything below removes one.
    CHECK(run_nms({0, 0, 2, 2, 0, 0, 2, 2}, {0.5, 0.6}, 1.0, dt) == std::vector<int64_t>{1, 0});
    CHECK(run_nms({0, 0, 2, 2, 0, 0, 2, 2}, {0.5, 0.6}, 0.999, dt) == std::vector<int64_t>{1});
    // A negative threshold suppresses every non-NaN IoU, disjoint boxes too (IoU 0 > -0.1).
    CHECK(run_nms({0, 0, 1, 1, 5, 5, 6, 6}, {0.5, 0.6}, -0.1, dt) == std::vector<int64_t>{1});
    // +inf suppresses nothing.
    CHECK(run_nms({0, 0, 2, 2, 0, 0, 2, 2}, {0.5, 0.6}, INFINITY, dt) == std::vector<int64_t>{1, 0});
  }
}

TEST_CASE("ops/nms: empty, single and zero-area inputs", "[ops][nms]") {
  for (DType dt : kDtypes) {
    const Tensor none = ops::nms(Tensor::empty({0, 4}, dt), Tensor::empty({0}, dt), 0.5);
    CHECK(none.shape() == Shape{0});
    CHECK(none.dtype() == DType::Int64);
    CHECK(run_nms({1, 2, 3, 4}, {0.1}, 0.5, dt) == std::vector<int64_t>{0});
    // Two identical points (union 0) never suppress each other (torchvision: 0/0 = NaN > thr
    // is false); nor does a point inside a box (IoU 0).
    CHECK(run_nms({3, 3, 3, 3, 3, 3, 3, 3}, {0.9, 0.8}, 0.5, dt) == std::vector<int64_t>{0, 1});
    CHECK(run_nms({0, 0, 10, 10, 5, 5, 5, 5}, {0.9, 0.8}, 0.0, dt) == std::vector<int64_t>{0, 1});
    CHECK(run_nms({0, 0, 10, 0, 0, 0, 10, 0}, {0.9, 0.8}, 0.5, dt) == std::vector<int64_t>{0, 1});
    // A box with a NaN coordinate never suppresses and is never suppressed.
    CHECK(run_nms({0, 0, 2, 2, 0, 0, kNaN, 2, 0, 0, 2, 2}, {0.9, 0.8, 0.7}, 0.5, dt) == std::vector<int64_t>{0, 1});
  }
}

TEST_CASE("ops/nms: NaN scores come after every number and take part like any box", "[ops][nms]") {
  for (DType dt : kDtypes) {
    const std::vector<double> apart = {0, 0, 1, 1, 5, 5, 6, 6, 10, 10, 11, 11, 20, 0, 21, 1};
    CHECK(run_nms(apart, {kNaN, 0.5, kNaN, 0.9}, 0.5, dt) == std::vector<int64_t>{3, 1, 0, 2});
    CHECK(run_nms(apart, {kNaN, -INFINITY, kNaN, INFINITY}, 0.5, dt) == std::vector<int64_t>{3, 1, 0, 2});
    // Overlapping: the finite-scored box suppresses the NaN-scored ones; among NaN scores the
    // first in input order is visited first.
    const std::vector<double> same = {0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4};
    CHECK(run_nms(same, {kNaN, 0.1, kNaN}, 0.5, dt) == std::vector<int64_t>{1});
    CHECK(run_nms(same, {kNaN, kNaN, kNaN}, 0.5, dt) == std::vector<int64_t>{0});
    const auto s = clustered(300, 77);
    std::vector<double> sc = s.scores;
    for (size_t i = 0; i < sc.size(); i += 3) sc[i] = kNaN;
    CHECK(run_nms(s.boxes, sc, 0.5, dt) == ref::nms(s.boxes, sc, 0.5));
  }
}

TEST_CASE("ops/nms: max_output caps the keep list", "[ops][nms]") {
  const auto s = clustered(700, 5);
  for (DType dt : kDtypes) {
    const auto all = run_nms(s.boxes, s.scores, 0.5, dt);
    REQUIRE(all.size() > 20);
    for (int64_t cap : {int64_t(0), int64_t(1), int64_t(7), int64_t(20), int64_t(all.size()), int64_t(all.size()) + 5, int64_t(10000)}) {
      const auto k = run_nms(s.boxes, s.scores, 0.5, dt, cap);
      const size_t expect = std::min(all.size(), size_t(cap));
      CHECK(k == std::vector<int64_t>(all.begin(), all.begin() + long(expect)));
    }
  }
}

TEST_CASE("ops/nms: the host mask word equals the bit-by-bit definition", "[ops][nms]") {
  // nms_mask_word packs 64 byte flags on the host and loops bit by bit on the device; both
  // must equal "bit j set iff begin <= j < end and nms_suppresses(p, box j)".
  namespace d = drcnn::ops::detail;
  const auto s = clustered(64 * 3, 11);
  std::vector<float> soa(4 * 64);
  for (int j = 0; j < 64; ++j)
    for (int c = 0; c < 4; ++c) soa[size_t(c * 64 + j)] = float(s.boxes[size_t(4 * (64 + j) + c)]);
  const d::NmsColumns<float> cols{soa.data(), soa.data() + 64, soa.data() + 128, soa.data() + 192};
  int nonzero = 0;
  for (int r = 0; r < 64; ++r) {
    const float p[4] = {float(s.boxes[size_t(4 * r)]), float(s.boxes[size_t(4 * r + 1)]),
                        float(s.boxes[size_t(4 * r + 2)]), float(s.boxes[size_t(4 * r + 3)])};
    for (auto [begin, end] : {std::pair{0, 64}, std::pair{r, 64}, std::pair{0, 17}, std::pair{5, 6}, std::pair{9, 9}}) {
      uint64_t expect = 0;
      for (int j = begin; j < end; ++j) {
        const float q[4] = {soa[size_t(j)], soa[size_t(64 + j)], soa[size_t(128 + j)], soa[size_t(192 + j)]};
        if (d::nms_suppresses(p, q, 0.3f)) expect |= uint64_t(1) << j;
      }
      const uint64_t got = d::nms_mask_word(p, cols, begin, end, 0.3f);
      CHECK(got == expect);
      nonzero += got != 0;
    }
  }
  CHECK(nonzero > 0);
  CHECK(d::nms_bit_range(0, 64) == ~uint64_t(0));
  CHECK(d::nms_bit_range(3, 5) == uint64_t(0x18));
  CHECK(d::nms_bit_range(7, 7) == 0);
}

TEST_CASE("ops/nms: random clustered boxes match the float64 reference exactly", "[ops][nms]") {
  // Sizes around the 64-box blocks and larger sets; thresholds with small denominators (see
  // the file comment for why the comparison is exact).
  const int64_t sizes[] = {1, 2, 5, 63, 64, 65, 127, 128, 129, 300, 1000, 3000};
  const double thrs[] = {0.3, 0.5, 0.7, 0.85};
  uint64_t seed = 100;
  int64_t kept_total = 0, suppressed_total = 0;
  for (int64_t n : sizes) {
    for (double thr : thrs) {
      const auto s = clustered(n, ++seed);
      const auto expect = ref::nms(s.boxes, s.scores, thr);
      kept_total += int64_t(expect.size());
      suppressed_total += n - int64_t(expect.size());
      for (DType dt : kDtypes) {
        INFO("n " << n << ", thr " << thr << ", " << drcnn::dtype_name(dt));
        CHECK(run_nms(s.boxes, s.scores, thr, dt) == expect);
      }
    }
  }
  // The sets exercise both outcomes.
  CHECK(kept_total > 1000);
  CHECK(suppressed_total > 1000);
}

TEST_CASE("ops/nms: float64 with continuous coordinates matches the reference", "[ops][nms]") {
  // Off the integer grid the float64 kernel and the float64 reference still agree exactly:
  // both evaluate inter / ((area_a + area_b) - inter) in that order, so the IoUs are the same
  // doubles (the 1e-6 union floor never applies to boxes this large).
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t n : {int64_t(100), int64_t(1500)}) {
    std::vector<double> b, sc;
    for (int64_t i = 0; i < n; ++i) {
      const double x = u(rng) * 200, y = u(rng) * 200, w = 5 + u(rng) * 80, h = 5 + u(rng) * 80;
      b.insert(b.end(), {x, y, x + w, y + h});
      sc.push_back(u(rng));
    }
    for (double thr : {0.1, 0.5, 0.7}) CHECK(run_nms(b, sc, thr, DType::Float64) == ref::nms(b, sc, thr));
  }
}

TEST_CASE("ops/nms: strided boxes and scores give the contiguous result", "[ops][nms]") {
  const auto s = clustered(333, 9);
  for (DType dt : kDtypes) {
    const Tensor b = boxes_t(s.boxes, dt), sc = scores_t(s.scores, dt);
    CHECK(keep_of(ops::nms(strided(b), strided(sc), 0.6)) == ref::nms(s.boxes, s.scores, 0.6));
  }
}

TEST_CASE("ops/nms: the CPU result does not depend on the thread count", "[ops][nms]") {
  // 12000 boxes: large enough that the column sweeps run in parallel (kernels/cpu/nms.cpp
  // goes parallel above 2^20 box pairs per group of row blocks).
  const auto s = clustered(12000, 21);
  const Tensor b = boxes_t(s.boxes, DType::Float32), sc = scores_t(s.scores, DType::Float32);
  std::vector<int64_t> one, two, four;
  {
    ThreadGuard g(1);
    one = keep_of(ops::nms(b, sc, 0.7));
  }
  {
    ThreadGuard g(2);
    two = keep_of(ops::nms(b, sc, 0.7));
  }
  {
    ThreadGuard g(4);
    four = keep_of(ops::nms(b, sc, 0.7));
  }
  CHECK(one == ref::nms(s.boxes, s.scores, 0.7));
  CHECK(two == one);
  CHECK(four == one);
}

TEST_CASE("ops/nms_fixed: the nms keep list padded with -1, count on the device", "[ops][nms]") {
  const auto s = clustered(500, 31);
  for (DType dt : kDtypes) {
    const Tensor b = boxes_t(s.boxes, dt), sc = scores_t(s.scores, dt);
    const auto all = keep_of(ops::nms(b, sc, 0.5));
    for (int64_t cap : {int64_t(0), int64_t(1), int64_t(50), int64_t(all.size()), int64_t(600)}) {
      const ops::NmsFixed f = ops::nms_fixed(b, sc, 0.5, cap);
      REQUIRE(f.keep.shape() == Shape{cap});
      REQUIRE(f.count.shape() == Shape{1});
      REQUIRE(f.count.dtype() == DType::Int64);
      const int64_t k = f.count.item<int64_t>();
      CHECK(k == std::min<int64_t>(cap, int64_t(all.size())));
      const auto v = keep_of(f.keep);
      for (int64_t i = 0; i < cap; ++i) CHECK(v[size_t(i)] == (i < k ? all[size_t(i)] : -1));
    }
    const ops::NmsFixed e = ops::nms_fixed(Tensor::empty({0, 4}, dt), Tensor::empty({0}, dt), 0.5, 3);
    CHECK(keep_of(e.keep) == std::vector<int64_t>{-1, -1, -1});
    CHECK(e.count.item<int64_t>() == 0);
  }
}

TEST_CASE("ops/batched_nms: offset and per-group paths match the per-group reference", "[ops][nms]") {
  // Integer coordinates < 512 and ids < 16: the shifted coordinates (< 16 * 512 + 512) are
  // exact in float32, so the offset path computes the same IoUs as per-group NMS.
  uint64_t seed = 500;
  for (int64_t n : {int64_t(1), int64_t(70), int64_t(700), int64_t(2500)}) {
    for (int64_t groups : {int64_t(1), int64_t(3), int64_t(16)}) {
      const auto s = clustered(n, ++seed, groups);
      const Tensor ids = Tensor::from_vector<int64_t>(s.ids, Shape{n});
      for (DType dt : kDtypes) {
        const Tensor b = boxes_t(s.boxes, dt), sc = scores_t(s.scores, dt);
        for (int64_t cap : {int64_t(-1), int64_t(25)}) {
          const auto expect = ref::batched_nms(s.boxes, s.scores, s.ids, 0.5, cap);
          INFO("n " << n << ", groups " << groups << ", cap " << cap << ", " << drcnn::dtype_name(dt));
          CHECK(keep_of(ops::batched_nms(b, sc, ids, 0.5, cap)) == expect);     // offsets (n < 10000)
          CHECK(keep_of(ops::batched_nms(b, sc, ids, 0.5, cap, 0)) == expect);  // per group
          CHECK(keep_of(ops::batched_nms(b, sc, ids, 0.5, cap, n)) == expect);  // boundary: n >= split
        }
      }
    }
  }
}

TEST_CASE("ops/batched_nms: boxes of different groups never suppress each other", "[ops][nms]") {
  for (DType dt : kDtypes) {
    const Tensor b = boxes_t({0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4, 1, 1, 4, 4}, dt);
    const Tensor sc = scores_t({0.5, 0.9, 0.7, 0.6}, dt);
    const Tensor ids = Tensor::from_vector<int64_t>({3, 7, 3, 7}, Shape{4});
    for (int64_t split : {int64_t(10000), int64_t(0)}) {
      CHECK(keep_of(ops::batched_nms(b, sc, ids, 0.5, -1, split)) == std::vector<int64_t>{1, 2});
      CHECK(keep_of(ops::batched_nms(b, sc, ids, 0.99, -1, split)) == std::vector<int64_t>{1, 2, 3});
      CHECK(keep_of(ops::batched_nms(b, sc, ids, 1.0, -1, split)) == std::vector<int64_t>{1, 2, 3, 0});
      CHECK(keep_of(ops::batched_nms(b, sc, ids, 0.5, 1, split)) == std::vector<int64_t>{1});
      CHECK(keep_of(ops::batched_nms(b, sc, ids, 0.5, 0, split)).empty());
      // Negative ids are groups like any other (offsets shift those boxes below zero).
      const Tensor neg = Tensor::from_vector<int64_t>({-2, 5, -2, 5}, Shape{4});
      CHECK(keep_of(ops::batched_nms(b, sc, neg, 0.5, -1, split)) == std::vector<int64_t>{1, 2});
    }
    CHECK(ops::batched_nms(Tensor::empty({0, 4}, dt), Tensor::empty({0}, dt), Tensor::empty({0}, DType::Int64), 0.5)
              .shape() == Shape{0});
  }
}

TEST_CASE("ops/nms: bad inputs name the op and what arrived", "[ops][nms]") {
  const Tensor b = Tensor::zeros({3, 4}), s = Tensor::zeros({3});
  CHECK_THROWS_WITH(ops::nms(Tensor::zeros({3, 5}), s, 0.5), Contains("nms: boxes must have shape [N, 4]"));
  CHECK_THROWS_WITH(ops::nms(Tensor::zeros({12}), s, 0.5), Contains("nms: boxes must have shape [N, 4]"));
  CHECK_THROWS_WITH(ops::nms(b, Tensor::zeros({3, 1}), 0.5), Contains("nms: scores must have shape [N]"));
  CHECK_THROWS_WITH(ops::nms(b, Tensor::zeros({4}), 0.5), Contains("nms: boxes and scores must have the same N"));
  CHECK_THROWS_WITH(ops::nms(b, Tensor::zeros({3}, DType::Float64), 0.5),
                    Contains("nms: scores must have the boxes' dtype"));
  CHECK_THROWS_WITH(ops::nms(Tensor::zeros({3, 4}, DType::Int64), Tensor::zeros({3}, DType::Int64), 0.5),
                    Contains("nms: boxes must be float32 or float64"));
  CHECK_THROWS_WITH(ops::nms(b, s, kNaN), Contains("nms: iou_threshold must not be NaN"));
  CHECK_THROWS_WITH(ops::nms(b, s, 0.5, -2), Contains("nms: max_output must be >= -1"));
  CHECK_THROWS_WITH(ops::nms(Tensor(), s, 0.5), Contains("nms"));
  CHECK_THROWS_WITH(ops::nms_fixed(b, s, 0.5, -1), Contains("nms_fixed: max_output"));
  const Tensor ids = Tensor::zeros({3}, DType::Int64);
  CHECK_THROWS_WITH(ops::batched_nms(b, s, Tensor::zeros({3}, DType::Int32), 0.5),
                    Contains("batched_nms: idxs must be int64"));
  CHECK_THROWS_WITH(ops::batched_nms(b, s, Tensor::zeros({2}, DType::Int64), 0.5),
                    Contains("batched_nms: idxs must have shape [N] with N = 3"));
  CHECK_THROWS_WITH(ops::batched_nms(b, s, ids, 0.5, -1, -1), Contains("batched_nms: split_threshold"));
  CHECK_THROWS_WITH(ops::batched_nms(b, s, ids, kNaN), Contains("batched_nms: iou_threshold must not be NaN"));
  CHECK_THROWS_WITH(ops::batched_nms(b, Tensor::zeros({2}), ids, 0.5),
                    Contains("batched_nms: boxes and scores must have the same N"));
}
