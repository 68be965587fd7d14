// Box ops (include/drcnn/ops/box_ops.h): hand-computed cases, the float64 references of
// tests/reference/box_reference.h on random boxes (f32 and f64, contiguous and strided),
// empty inputs and every error. Set DRCNN_BOX_REPORT=1 to print the max errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "common/allclose.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/detail/box_body.h"
#include "reference/box_reference.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
using drcnn::test::expect_equal;
using drcnn::test::strided_values;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
Tensor boxes_f(const std::vector<double>& v, DType dt = DType::Float32, int64_t cols = 4) {
  return Tensor::from_vector<double>(v, Shape{int64_t(v.size()) / cols, cols}).to(dt);
}

/// n random boxes: x1, y1 in [0, 100), w, h in [wlo, whi); returned as dtype dt.
Tensor random_boxes(int64_t n, uint64_t seed, DType dt, double wlo = 0.5, double whi = 60.0) {
  const auto xy = drcnn::test::random_values(2 * n, seed, 0.0, 100.0);
  const auto wh = drcnn::test::random_values(2 * n, seed + 1000, wlo, whi);
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) {
    v.push_back(xy[size_t(2 * i)]);
    v.push_back(xy[size_t(2 * i + 1)]);
    v.push_back(xy[size_t(2 * i)] + wh[size_t(2 * i)]);
    v.push_back(xy[size_t(2 * i + 1)] + wh[size_t(2 * i + 1)]);
  }
  return boxes_f(v, dt);
}

/// The same values in a strided layout (a transposed [4, N] storage).
Tensor strided(const Tensor& t) {
  Tensor s = t.transpose(0, 1).contiguous().transpose(0, 1);
  REQUIRE_FALSE(s.is_contiguous());
  return s;
}

std::vector<double> values(const Tensor& t) { return strided_values(t); }

void check_close(const char* what, const Tensor& actual, const std::vector<double>& expected, double rtol,
                 double atol) {
  const auto r = drcnn::test::compare_close(values(actual), expected, rtol, atol);
  if (std::getenv("DRCNN_BOX_REPORT")) std::printf("%s (%s): %s\n", what, std::string(drcnn::dtype_name(actual.dtype())).c_str(), r.text.c_str());
  INFO(what << ": " << r.text);
  CHECK(r.mismatches == 0);
}

// Tolerances vs the float64 reference (relative, plus an absolute floor for cancellation):
// f64 results differ from the reference only by rounding order (~1e-15 relative);
// f32 carries float rounding of coordinates up to ~200 (ulp ~1.5e-5) divided by sizes >= 0.5.
double rtol_of(DType dt) { return dt == DType::Float64 ? 1e-12 : 2e-5; }
double atol_of(DType dt) { return dt == DType::Float64 ? 1e-11 : 2e-4; }

const std::array<double, 4> kZero = {0, 0, 0, 0}, kOne = {1, 1, 1, 1};
const std::array<double, 4> kRcnnStds = {0.1, 0.1, 0.2, 0.2};
}  // namespace

// ============================================================================ hand-computed
TEST_CASE("ops/box_area: hand-computed areas, reversed boxes are negative", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    expect_equal(ops::box_area(boxes_f({0, 0, 2, 3, 1, 1, 1, 5, 5, 5, 4, 7}, dt)), {6, 0, -2});
  }
}

TEST_CASE("ops/box_iou: identical, disjoint, touching, partial, nested and zero-area boxes", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor a = boxes_f({0, 0, 2, 2, 0, 0, 0, 0}, dt);
    const Tensor b = boxes_f({0, 0, 2, 2,     // identical
                              5, 5, 6, 6,     // disjoint
                              2, 0, 4, 2,     // touching along x = 2
                              1, 1, 3, 3,     // partial: inter 1, union 7
                              0.5, 0.5, 1.5, 1.5,  // nested: inter 1, union 4
                              1, 1, 1, 1},    // zero area inside a
                             dt);
    const Tensor iou = ops::box_iou(a, b);
    REQUIRE(iou.shape() == Shape{2, 6});
    expect_allclose(iou, {1, 0, 0, 1.0 / 7, 0.25, 0, 0, 0, 0, 0, 0, 0}, 1e-7, 0);
    const Tensor iof = ops::box_iof(a, b);
    expect_allclose(iof, {1, 0, 0, 0.25, 0.25, 0, 0, 0, 0, 0, 0, 0}, 1e-7, 0);
    // iof of the nested box over the big one is 1 (its own area).
    expect_allclose(ops::box_iof(boxes_f({0.5, 0.5, 1.5, 1.5}, dt), boxes_f({0, 0, 2, 2}, dt)), {1}, 1e-7, 0);
    for (double v : values(iou)) CHECK_FALSE(std::isnan(v));
  }
}

TEST_CASE("ops/box_iou: the CPU matrix rows equal the shared per-pair body bitwise (NMS's IoU)", "[ops][cpu]") {
  // kernels/cpu/box_ops.cpp computes the IoU / IoF matrix with its own vectorised row loop; it
  // must give exactly box_overlap() (what NMS and the CUDA kernel use), including zero-area,
  // reversed and NaN boxes, for column counts that are not a multiple of the vector width, on
  // 1 and 2 threads.
  const int before = drcnn::cpu_threads();
  for (DType dt : {DType::Float32, DType::Float64})
    for (int64_t m : {1, 7, 13, 100}) {
      Tensor a = random_boxes(37, 11, dt, 0.0, 40.0), b = random_boxes(m, 12, dt, 0.0, 40.0);
      std::vector<double> av = values(a);
      av[0] = av[2];                                      // zero width
      av[5] = av[7] + 3;                                  // reversed (negative height)
      av[8] = std::numeric_limits<double>::quiet_NaN();   // NaN coordinate
      a = boxes_f(av, dt);
      for (int threads : {1, 2}) {
        drcnn::set_cpu_threads(threads);
        for (bool iof : {false, true}) {
          const Tensor out = iof ? ops::box_iof(a, b) : ops::box_iou(a, b);
          const std::vector<double> got = values(out);
          int64_t differ = 0;
          for (int64_t i = 0; i < a.size(0); ++i)
            for (int64_t j = 0; j < m; ++j) {
              double want;
              if (dt == DType::Float32)
                want = ops::detail::box_overlap(a.data<float>() + 4 * i, b.data<float>() + 4 * j, iof);
              else
                want = ops::detail::box_overlap(a.data<double>() + 4 * i, b.data<double>() + 4 * j, iof);
              const double g = got[size_t(i * m + j)];
              if (!(g == want || (std::isnan(g) && std::isnan(want)))) ++differ;
            }
          INFO(drcnn::dtype_name(dt) << " m " << m << " threads " << threads << " iof " << iof);
          CHECK(differ == 0);
        }
      }
    }
  drcnn::set_cpu_threads(before);
}

TEST_CASE("ops/box_encode: identical boxes give zero deltas, a shifted box its offsets", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor p = boxes_f({0, 0, 10, 20, 0, 0, 10, 20}, dt);
    const Tensor g = boxes_f({0, 0, 10, 20, 5, -10, 25, 30}, dt);
    // second: centre (15, 10) vs (5, 10), size (20, 40) vs (10, 20).
    expect_allclose(ops::box_encode(p, g), {0, 0, 0, 0, 1.0, 0.0, std::log(2.0), std::log(2.0)}, 1e-6, 1e-7);
    expect_allclose(ops::box_encode(p, g, kZero, kRcnnStds),
                    {0, 0, 0, 0, 10.0, 0.0, std::log(2.0) / 0.2, std::log(2.0) / 0.2}, 1e-6, 1e-6);
    expect_allclose(ops::box_encode(p, g, {0.5, 0, 0, 0}, kOne), {-0.5, 0, 0, 0, 0.5, 0, std::log(2.0), std::log(2.0)},
                    1e-6, 1e-7);
  }
}

TEST_CASE("ops/box_decode: round trip, dw dh clamp, clipping at the image border, class groups", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float64 ? 1e-12 : 2e-4;
    // Sizes in [2, 60): every size ratio stays inside the clamp (1000/16), so decode inverts encode.
    const Tensor p = random_boxes(50, 3, dt, 2.0, 60.0);
    const Tensor g = random_boxes(50, 4, dt, 2.0, 60.0);
    const Tensor d = ops::box_encode(p, g, kZero, kRcnnStds);
    expect_allclose(ops::box_decode(p, d, kZero, kRcnnStds), values(g), 0, tol);
    // dw = 10 is clamped to ln(1000/16): width 10 -> 10 * 62.5 = 625, centred at 5.
    const Tensor r = boxes_f({0, 0, 10, 10}, dt);
    const double big = 10 * 1000.0 / 16;
    expect_allclose(ops::box_decode(r, boxes_f({0, 0, 10, -10}, dt)),
                    {5 - big / 2, 5 - 10.0 / 62.5 / 2 * 1, 5 + big / 2, 5 + 10.0 / 62.5 / 2}, 1e-5, 1e-5);
    // Clipping to (height 8, width 100): a box shifted by one width left goes to x in [0, 0].
    expect_allclose(ops::box_decode(r, boxes_f({-1, 0.5, 0, 0}, dt), kZero, kOne, ops::ImageShape{8, 100}),
                    {0, 5, 0, 8}, 0, 1e-6);
    // Class-specific deltas: K = 2 groups per row decode against the same roi.
    const Tensor dk = boxes_f({0, 0, 0, 0, 0.1, 0, 0, 0}, dt, 8);
    expect_allclose(ops::box_decode(r, dk), {0, 0, 10, 10, 1, 0, 11, 10}, 1e-6, 1e-6);
  }
}

TEST_CASE("ops/box_clip: boxes crossing the image border are cut, inside ones kept", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor b = boxes_f({-5, -1, 30, 12, 1, 2, 3, 4, 40, 20, 50, 30, 0, 0, 32, 10}, dt);
    expect_equal(ops::box_clip(b, 10, 32), {0, 0, 30, 10, 1, 2, 3, 4, 32, 10, 32, 10, 0, 0, 32, 10});
    const auto n = values(ops::box_clip(boxes_f({NAN, 0, 1, 1}, dt), 5, 5));
    CHECK(std::isnan(n[0]));
  }
}

TEST_CASE("ops/remove_small_boxes: both sides at least min_size, NaN dropped", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor b = boxes_f({0, 0, 2, 2,  // kept (exactly 2)
                              0, 0, 1, 5,  // too narrow
                              0, 0, 5, 1.5,  // too short
                              NAN, 0, 5, 5,  // NaN
                              3, 3, 9, 9},  // kept
                             dt);
    const Tensor keep = ops::remove_small_boxes(b, 2);
    REQUIRE(keep.dtype() == DType::Int64);
    expect_equal(keep, {0, 4});
    expect_equal(ops::remove_small_boxes(b, 0), {0, 1, 2, 4});
  }
}

TEST_CASE("ops/map_roi_levels: finest_scale 56 thresholds and clamping", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    // sides 10, 56, 111, 112, 224, 448, 1000, 0 and a reversed box.
    const Tensor rois = boxes_f({0, 0, 0, 10, 10, 1, 0, 0, 56, 56, 0, 0, 0, 111, 111, 0, 0, 0, 112, 112,
                                 0, 0, 0, 224, 224, 0, 0, 0, 448, 448, 0, 0, 0, 1000, 1000, 0, 3, 3, 3, 3,
                                 0, 5, 0, 0, 5},
                                dt, 5);
    const Tensor lv = ops::map_roi_levels(rois, 4);
    REQUIRE(lv.dtype() == DType::Int64);
    expect_equal(lv, {0, 0, 0, 1, 2, 3, 3, 0, 0});
    expect_equal(ops::map_roi_levels(rois, 1), {0, 0, 0, 0, 0, 0, 0, 0, 0});
    expect_equal(ops::map_roi_levels(rois, 4, 28), {0, 1, 1, 2, 3, 3, 3, 0, 0});
  }
}

// ============================================================================ vs reference
TEST_CASE("ops/box_iou: iou, iof and area match the float64 reference on random boxes", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    // Widths from 0 (degenerate) up, many overlaps among boxes in [0, 160].
    const Tensor a = random_boxes(37, 11, dt, 0.0, 60.0), b = random_boxes(53, 12, dt, 0.0, 60.0);
    const auto va = values(a), vb = values(b);
    check_close("box_iou", ops::box_iou(a, b), ref::box_overlaps(va, vb, false), rtol_of(dt), 1e-6);
    check_close("box_iou strided", ops::box_iou(strided(a), strided(b)), ref::box_overlaps(va, vb, false),
                rtol_of(dt), 1e-6);
    check_close("box_iof", ops::box_iof(a, b), ref::box_overlaps(va, vb, true), rtol_of(dt), 1e-6);
    check_close("box_area", ops::box_area(strided(a)), ref::box_area(va), rtol_of(dt), 0);
  }
}

TEST_CASE("ops/box_encode: encode and decode match the float64 reference on random boxes", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor p = random_boxes(200, 21, dt), g = random_boxes(200, 22, dt);
    const auto vp = values(p), vg = values(g);
    for (const auto& [means, stds] : {std::pair{kZero, kOne}, std::pair{kZero, kRcnnStds},
                                      std::pair{std::array<double, 4>{0.1, -0.2, 0.05, 0}, kRcnnStds}}) {
      const double scale = 1.0 / stds[0];
      check_close("box_encode", ops::box_encode(strided(p), g, means, stds), ref::box_encode(vp, vg, means, stds),
                  rtol_of(dt), atol_of(dt) * scale);
    }
    // Decode with random deltas (some beyond the dw/dh clamp), K = 3 groups, with and without clipping.
    const Tensor d = drcnn::test::random_tensor(Shape{200, 12}, 23, dt, -6.0, 6.0);
    const auto vd = values(d);
    check_close("box_decode", ops::box_decode(p, d, kZero, kRcnnStds),
                ref::box_decode(vp, vd, 3, kZero, kRcnnStds, -1, 0, 0.016), rtol_of(dt), atol_of(dt) * 100);
    check_close("box_decode clip", ops::box_decode(p, strided(d), {0.1, 0, 0, -0.1}, kOne, ops::ImageShape{120, 90}),
                ref::box_decode(vp, vd, 3, {0.1, 0, 0, -0.1}, kOne, 120, 90, 0.016), rtol_of(dt),
                atol_of(dt) * 100);
    check_close("box_decode ratio", ops::box_decode(p, d, kZero, kOne, std::nullopt, 0.1),
                ref::box_decode(vp, vd, 3, kZero, kOne, -1, 0, 0.1), rtol_of(dt), atol_of(dt) * 10);
  }
}

TEST_CASE("ops/box_clip: clip, small-box removal and levels match the float64 reference", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor b = random_boxes(300, 31, dt, -20.0, 80.0);
    const auto vb = values(b);
    check_close("box_clip", ops::box_clip(strided(b), 70, 110), ref::box_clip(vb, 70, 110), 0, 0);
    for (double ms : {0.0, 5.0, 33.3}) {
      const auto expected = ref::remove_small_boxes(vb, ms);
      expect_equal(ops::remove_small_boxes(strided(b), ms), std::vector<double>(expected.begin(), expected.end()));
    }
    // RoIs with sides up to 800: levels 0..3 all occur.
    std::vector<double> r;
    const auto xy = drcnn::test::random_values(600, 32, 0, 500), wh = drcnn::test::random_values(600, 33, 0, 800);
    for (size_t i = 0; i < 300; ++i) r.insert(r.end(), {double(i % 2), xy[2 * i], xy[2 * i + 1], xy[2 * i] + wh[2 * i],
                                                        xy[2 * i + 1] + wh[2 * i + 1]});
    const Tensor rois = boxes_f(r, dt, 5);
    std::vector<double> margin;
    const auto expected = ref::map_roi_levels(values(rois), 4, 56, &margin);
    const auto got = values(ops::map_roi_levels(rois, 4));
    int64_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (got[i] != double(expected[i]) && margin[i] > 1e-4) ++bad;  // f32 may round either way at a boundary
    CHECK(bad == 0);
  }
}

// ============================================================================ empty and errors
TEST_CASE("ops/box_iou: every op accepts empty inputs", "[ops][cpu]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor e = Tensor::empty({0, 4}, dt), b = random_boxes(3, 41, dt);
    CHECK(ops::box_area(e).shape() == Shape{0});
    CHECK(ops::box_iou(e, b).shape() == Shape{0, 3});
    CHECK(ops::box_iou(b, e).shape() == Shape{3, 0});
    CHECK(ops::box_iof(e, e).shape() == Shape{0, 0});
    CHECK(ops::box_encode(e, e).shape() == Shape{0, 4});
    CHECK(ops::box_decode(e, Tensor::empty({0, 8}, dt), kZero, kOne, ops::ImageShape{5, 5}).shape() == Shape{0, 8});
    CHECK(ops::box_clip(e, 3, 3).shape() == Shape{0, 4});
    const Tensor k = ops::remove_small_boxes(e, 1);
    CHECK(k.shape() == Shape{0});
    CHECK(k.dtype() == DType::Int64);
    CHECK(ops::map_roi_levels(Tensor::empty({0, 5}, dt), 4).shape() == Shape{0});
  }
}

TEST_CASE("ops/box_iou: bad inputs name the op, what arrived and what was expected", "[ops][cpu]") {
  const Tensor b = random_boxes(3, 51, DType::Float32);
  const Tensor b64 = b.to(DType::Float64);
  const Tensor wrong = Tensor::zeros({3, 5});
  REQUIRE_THROWS_WITH(ops::box_iou(wrong, b), Contains("box_iou: a must have shape [N, 4], got shape"));
  REQUIRE_THROWS_WITH(ops::box_iof(b, Tensor::zeros({4})), Contains("box_iof: b must have shape [N, 4]"));
  REQUIRE_THROWS_WITH(ops::box_iou(b, b64), Contains("box_iou: a and b must have the same dtype"));
  REQUIRE_THROWS_WITH(ops::box_area(b.to(DType::Int64)), Contains("box_area: boxes must be float32 or float64"));
  REQUIRE_THROWS_WITH(ops::box_area(Tensor()), Contains("box_area"));
  REQUIRE_THROWS_WITH(ops::box_encode(b, b.narrow(0, 0, 2)),
                      Contains("box_encode: proposals and gt must have the same number of boxes"));
  REQUIRE_THROWS_WITH(ops::box_encode(b, b, kZero, {1, 0, 1, 1}), Contains("box_encode: stds[1] must be finite and > 0"));
  REQUIRE_THROWS_WITH(ops::box_encode(b, b, {0, NAN, 0, 0}, kOne), Contains("box_encode: means[1] must be finite"));
  REQUIRE_THROWS_WITH(ops::box_decode(b, Tensor::zeros({3, 6})),
                      Contains("box_decode: deltas must have shape [N, 4 * K] with K >= 1, got shape"));
  REQUIRE_THROWS_WITH(ops::box_decode(b, Tensor::zeros({2, 4})),
                      Contains("box_decode: rois and deltas must have the same number of rows"));
  REQUIRE_THROWS_WITH(ops::box_decode(b, b64), Contains("box_decode: rois and deltas must have the same dtype"));
  REQUIRE_THROWS_WITH(ops::box_decode(b, b, kZero, kOne, ops::ImageShape{-1, 5}),
                      Contains("box_decode: image size must be finite and >= 0, got height -1"));
  REQUIRE_THROWS_WITH(ops::box_decode(b, b, kZero, kOne, std::nullopt, 0),
                      Contains("box_decode: wh_ratio_clip must be finite and > 0, got 0"));
  REQUIRE_THROWS_WITH(ops::box_clip(b, 5, -2), Contains("box_clip: image size must be finite and >= 0"));
  REQUIRE_THROWS_WITH(ops::remove_small_boxes(b, -1), Contains("remove_small_boxes: min_size must be finite and >= 0"));
  REQUIRE_THROWS_WITH(ops::remove_small_boxes(wrong, 1), Contains("remove_small_boxes: boxes must have shape [N, 4]"));
  REQUIRE_THROWS_WITH(ops::map_roi_levels(b, 4), Contains("map_roi_levels: rois must have shape [N, 5], got shape"));
  REQUIRE_THROWS_WITH(ops::map_roi_levels(wrong, 0), Contains("map_roi_levels: num_levels must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(ops::map_roi_levels(wrong, 4, 0), Contains("map_roi_levels: finest_scale must be finite and > 0"));
}
