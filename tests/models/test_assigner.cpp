// MaxIoUAssigner (include/drcnn/models/assigner.h): hand-computed cases for every rule, and a
// float64 brute-force reference (plain loops over the IoU matrix written from mmdet's rules) on
// random boxes. Assignments are integers, so the comparisons are exact.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "common/allclose.h"
#include "common/random.h"
#include "drcnn/models/assigner.h"
#include "drcnn/ops/box_ops.h"
#include "reference/assigner_ref.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::models::AssignResult;
using drcnn::models::MaxIoUAssigner;
using drcnn::models::MaxIoUAssignerOptions;
using drcnn::test::expect_equal;

namespace {

Tensor boxes(const std::vector<double>& v, DType dt = DType::Float32) {
  return Tensor::from_vector<double>(v, Shape{int64_t(v.size()) / 4, 4}).to(dt);
}
Tensor longs(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(v, Shape{int64_t(v.size())}); }
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

double identity(double x) { return x; }
double to_f32(double x) { return double(float(x)); }

// Random boxes on an integer grid (exact IoUs in float64 whatever the evaluation order, and many
// ties): x1, y1 in [0, 24], w, h in [0, 10] (zero-area boxes included).
std::vector<double> grid_boxes(int64_t n, uint64_t seed) {
  const auto xy = drcnn::test::random_ints(2 * n, seed, 0, 24);
  const auto wh = drcnn::test::random_ints(2 * n, seed + 77, 0, 10);
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) {
    const double x = double(xy[size_t(2 * i)]), y = double(xy[size_t(2 * i + 1)]);
    v.insert(v.end(), {x, y, x + double(wh[size_t(2 * i)]), y + double(wh[size_t(2 * i + 1)])});
  }
  return v;
}

std::vector<MaxIoUAssignerOptions> option_sets() {
  MaxIoUAssignerOptions range;  // mmdet tuple neg_iou_thr, first-argmax low-quality, min_pos 0
  range.pos_iou_thr = 0.6;
  range.neg_iou_lo = 0.1;
  range.neg_iou_hi = 0.4;
  range.min_pos_iou = 0.0;
  range.gt_max_assign_all = false;
  MaxIoUAssignerOptions lq0 = MaxIoUAssignerOptions::rpn();  // mmdet's default min_pos_iou 0
  lq0.min_pos_iou = 0.0;
  return {MaxIoUAssignerOptions::rpn(), MaxIoUAssignerOptions::rcnn(0.5), MaxIoUAssignerOptions::rcnn(0.7),
          MaxIoUAssignerOptions::rcnn(0.4), range, lq0};
}

}  // namespace

TEST_CASE("assigner mmdet docstring example", "[models][assigner]") {
  MaxIoUAssignerOptions o;  // MaxIoUAssigner(0.5, 0.5)
  o.pos_iou_thr = 0.5;
  o.neg_iou_hi = 0.5;
  const AssignResult r = MaxIoUAssigner(o).assign(boxes({0, 0, 10, 10, 10, 10, 20, 20}), boxes({0, 0, 10, 9}));
  CHECK(r.num_gts == 1);
  CHECK(ints(r.gt_inds) == std::vector<int64_t>{1, 0});
  expect_equal(r.max_overlaps, {double(0.9f), 0.0});  // 90 / 100, in float32
  CHECK_FALSE(r.labels.defined());
  // Strided inputs (a transposed copy viewed back): the same assignment.
  const Tensor strided = boxes({0, 0, 10, 10, 10, 10, 20, 20}).transpose(0, 1).contiguous().transpose(0, 1);
  REQUIRE_FALSE(strided.is_contiguous());
  CHECK(ints(MaxIoUAssigner(o).assign(strided, boxes({0, 0, 10, 9})).gt_inds) == std::vector<int64_t>{1, 0});
}

TEST_CASE("assigner ties go to the first GT, and low-quality matching lets a later GT overwrite",
          "[models][assigner]") {
  // Two identical GTs; the candidate has IoU 1 with both.
  const Tensor gt = boxes({0, 0, 10, 10, 0, 0, 10, 10});
  const Tensor cand = boxes({0, 0, 10, 10, 40, 40, 50, 50});
  const Tensor labels = longs({3, 7});
  const AssignResult no_lq = MaxIoUAssigner(MaxIoUAssignerOptions::rcnn(0.5)).assign(cand, gt, labels);
  CHECK(ints(no_lq.gt_inds) == std::vector<int64_t>{1, 0});  // argmax: first occurrence
  CHECK(ints(no_lq.labels) == std::vector<int64_t>{3, -1});
  const AssignResult lq = MaxIoUAssigner(MaxIoUAssignerOptions::rpn()).assign(cand, gt, labels);
  CHECK(ints(lq.gt_inds) == std::vector<int64_t>{2, 0});  // GT 1's loop iteration runs last
  CHECK(ints(lq.labels) == std::vector<int64_t>{7, -1});

  // mmdet's comment: A has IoU 0.9 with GT 0 and 0.889 with GT 1, and A is GT 1's best box, so
  // step 4 reassigns A to GT 1 although GT 0 overlaps it more.
  const Tensor gt2 = boxes({0, 0, 10, 10, 0, 0, 10, 8});
  const Tensor a = boxes({0, 0, 10, 9, 30, 30, 40, 40});
  CHECK(ints(MaxIoUAssigner(MaxIoUAssignerOptions::rpn()).assign(a, gt2).gt_inds) == std::vector<int64_t>{2, 0});
  CHECK(ints(MaxIoUAssigner(MaxIoUAssignerOptions::rcnn(0.5)).assign(a, gt2).gt_inds) == std::vector<int64_t>{1, 0});
}

TEST_CASE("assigner low-quality match of a GT with no candidate above the positive threshold",
          "[models][assigner]") {
  const Tensor gt = boxes({0, 0, 10, 10});
  // IoUs: 100/200 = 0.5, 0.5, 50/150 = 1/3, 0.
  const Tensor cand = boxes({0, 0, 10, 20, 0, 0, 20, 10, 5, 0, 15, 10, 50, 50, 60, 60});
  MaxIoUAssignerOptions o = MaxIoUAssignerOptions::rpn();  // 0.7 / 0.3 / min_pos 0.3
  AssignResult r = MaxIoUAssigner(o).assign(cand, gt);
  // Both anchors tied at the GT's best IoU get it; the 1/3 one stays in the ignore band.
  CHECK(ints(r.gt_inds) == std::vector<int64_t>{1, 1, -1, 0});
  expect_equal(r.max_overlaps, {0.5, 0.5, double(float(50.0) / float(150.0)), 0.0});
  o.gt_max_assign_all = false;  // only the first best anchor
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt).gt_inds) == std::vector<int64_t>{1, -1, -1, 0});
  o.match_low_quality = false;
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt).gt_inds) == std::vector<int64_t>{-1, -1, -1, 0});
}

TEST_CASE("assigner min_pos_iou gates the low-quality match", "[models][assigner]") {
  const Tensor gt = boxes({0, 0, 10, 10});
  const Tensor cand = boxes({0, 0, 10, 40, 0, 0, 10, 80});  // IoU 0.25 and 0.125
  MaxIoUAssignerOptions o = MaxIoUAssignerOptions::rpn();
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt).gt_inds) == std::vector<int64_t>{0, 0});  // 0.25 < 0.3
  o.min_pos_iou = 0.2;
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt).gt_inds) == std::vector<int64_t>{1, 0});
  o.min_pos_iou = 0.25;  // >= is inclusive
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt).gt_inds) == std::vector<int64_t>{1, 0});
}

TEST_CASE("assigner negative range and ignore band", "[models][assigner]") {
  const Tensor gt = boxes({0, 0, 10, 10});
  // IoUs 0, 0.25, 0.5, 1.
  const Tensor cand = boxes({20, 20, 30, 30, 0, 0, 10, 40, 0, 0, 10, 20, 0, 0, 10, 10});
  MaxIoUAssignerOptions o;
  o.pos_iou_thr = 0.6;
  o.neg_iou_lo = 0.1;  // mmdet neg_iou_thr=(0.1, 0.5)
  o.neg_iou_hi = 0.5;
  o.match_low_quality = false;
  // IoU 0 is below the range: ignored; 0.25 negative; 0.5 is not < 0.5: ignored; 1 positive.
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt).gt_inds) == std::vector<int64_t>{-1, 0, -1, 1});
  o.neg_iou_lo = 0.0;
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt).gt_inds) == std::vector<int64_t>{0, 0, -1, 1});
  // R-CNN (pos = neg): no band, 0.5 is positive.
  CHECK(ints(MaxIoUAssigner(MaxIoUAssignerOptions::rcnn(0.5)).assign(cand, gt).gt_inds) ==
        std::vector<int64_t>{0, 0, 1, 1});
}

TEST_CASE("assigner ignore boxes by iof", "[models][assigner]") {
  const Tensor gt = boxes({0, 0, 10, 10});
  const Tensor ignore = boxes({100, 100, 200, 200});
  // Inside the ignore box (iof 1), half inside (iof 0.5, not > 0.5), far away, on the GT.
  const Tensor cand = boxes({110, 110, 120, 120, 90, 100, 110, 110, 300, 300, 310, 310, 0, 0, 10, 10});
  MaxIoUAssignerOptions o = MaxIoUAssignerOptions::rpn();
  o.ignore_iof_thr = 0.5;
  const AssignResult r = MaxIoUAssigner(o).assign(cand, gt, longs({4}), ignore);
  CHECK(ints(r.gt_inds) == std::vector<int64_t>{-1, 0, 0, 1});
  expect_equal(r.max_overlaps, {-1.0, 0.0, 0.0, 1.0});  // the ignored column was set to -1
  CHECK(ints(r.labels) == std::vector<int64_t>{-1, -1, -1, 4});
  o.ignore_iof_thr = -1;  // off: the ignore boxes change nothing
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt, longs({4}), ignore).gt_inds) == std::vector<int64_t>{0, 0, 0, 1});
}

TEST_CASE("assigner images without GT and without candidates", "[models][assigner]") {
  for (const auto& o : option_sets()) {
    const AssignResult r = MaxIoUAssigner(o).assign(boxes({0, 0, 5, 5, 1, 1, 3, 3}), boxes({}), longs({}));
    CHECK(r.num_gts == 0);
    CHECK(ints(r.gt_inds) == std::vector<int64_t>{0, 0});
    expect_equal(r.max_overlaps, {0.0, 0.0});
    CHECK(ints(r.labels) == std::vector<int64_t>{-1, -1});
    const AssignResult e = MaxIoUAssigner(o).assign(boxes({}), boxes({0, 0, 5, 5}), longs({2}));
    CHECK(e.num_gts == 1);
    CHECK(e.gt_inds.numel() == 0);
    CHECK(e.max_overlaps.numel() == 0);
    CHECK(e.labels.numel() == 0);
  }
}

TEST_CASE("assigner zero-area proposals and GTs", "[models][assigner]") {
  // A zero-area proposal inside the GT has IoU 0 (union floored at 1e-6, never NaN).
  const Tensor gt = boxes({0, 0, 10, 10});
  const AssignResult r = MaxIoUAssigner(MaxIoUAssignerOptions::rpn()).assign(boxes({5, 5, 5, 5, 0, 0, 10, 10}), gt);
  CHECK(ints(r.gt_inds) == std::vector<int64_t>{0, 1});
  expect_equal(r.max_overlaps, {0.0, 1.0});
  // A zero-area GT overlaps nothing: its best IoU is 0. With min_pos_iou 0.3 nothing happens; with
  // mmdet's default min_pos_iou 0 every candidate tied at 0 is "matched" to it (mmdet's behaviour).
  const Tensor gt0 = boxes({3, 3, 3, 3});
  const Tensor cand = boxes({0, 0, 10, 10, 20, 20, 30, 30});
  CHECK(ints(MaxIoUAssigner(MaxIoUAssignerOptions::rpn()).assign(cand, gt0).gt_inds) == std::vector<int64_t>{0, 0});
  MaxIoUAssignerOptions o = MaxIoUAssignerOptions::rpn();
  o.min_pos_iou = 0.0;
  CHECK(ints(MaxIoUAssigner(o).assign(cand, gt0).gt_inds) == std::vector<int64_t>{1, 1});
}

TEST_CASE("assigner add_gt prepends the GTs with overlap 1", "[models][assigner]") {
  const Tensor gt = boxes({0, 0, 10, 10, 20, 20, 30, 30});
  AssignResult r = MaxIoUAssigner(MaxIoUAssignerOptions::rcnn(0.5))
                       .assign(boxes({0, 0, 10, 9, 50, 50, 60, 60}), gt, longs({5, 6}));
  r.add_gt(longs({5, 6}));
  CHECK(r.num_gts == 2);
  CHECK(r.num_preds() == 4);
  CHECK(ints(r.gt_inds) == std::vector<int64_t>{1, 2, 1, 0});
  expect_equal(r.max_overlaps, {1.0, 1.0, double(0.9f), 0.0});
  CHECK(ints(r.labels) == std::vector<int64_t>{5, 6, 5, -1});
  // Without labels only the length of gt_labels matters.
  AssignResult u = MaxIoUAssigner(MaxIoUAssignerOptions::rcnn(0.5)).assign(boxes({50, 50, 60, 60}), gt);
  u.add_gt(longs({0, 0}));
  CHECK(ints(u.gt_inds) == std::vector<int64_t>{1, 2, 0});
  CHECK_FALSE(u.labels.defined());
}

TEST_CASE("assigner matches the float64 brute-force reference on random grid boxes", "[models][assigner]") {
  const std::vector<int64_t> ks{0, 1, 3, 8, 20}, ns{0, 1, 17, 300};
  const auto opts = option_sets();
  int cases = 0;
  for (int64_t k : ks)
    for (int64_t n : ns)
      for (size_t oi = 0; oi < opts.size(); ++oi) {
        const uint64_t seed = uint64_t(1000 * k + 10 * n) + oi;
        const auto g = grid_boxes(k, seed);
        auto c = grid_boxes(n, seed + 5);
        // Every third candidate is a GT moved by -1..1 per coordinate: many high IoUs and ties.
        const auto jitter = drcnn::test::random_ints(4 * n, seed + 7, -1, 1);
        for (int64_t j = 0; k > 0 && j < n; j += 3)
          for (int64_t q = 0; q < 4; ++q)
            c[size_t(4 * j + q)] = g[size_t(4 * (j % k) + q)] + double(jitter[size_t(4 * j + q)]);
        for (int64_t j = 0; j < n; ++j) {  // keep x1 <= x2, y1 <= y2
          c[size_t(4 * j + 2)] = std::max(c[size_t(4 * j + 2)], c[size_t(4 * j)]);
          c[size_t(4 * j + 3)] = std::max(c[size_t(4 * j + 3)], c[size_t(4 * j + 1)]);
        }
        const auto labels = drcnn::test::random_ints(k, seed + 9, 0, 79);
        const drcnn::ref::AssignRef ref = drcnn::ref::assign(drcnn::ref::iou_matrix(g, c), size_t(n), opts[oi], identity);
        const AssignResult r = MaxIoUAssigner(opts[oi]).assign(boxes(c, DType::Float64), boxes(g, DType::Float64),
                                                               longs(labels));
        INFO("K " << k << " N " << n << " options " << oi);
        CHECK(ints(r.gt_inds) == ref.gt_inds);
        expect_equal(r.max_overlaps, ref.max_overlaps);  // exact: integer coordinates
        std::vector<int64_t> want_labels(size_t(n), -1);
        for (size_t j = 0; j < size_t(n); ++j)
          if (ref.gt_inds[j] > 0) want_labels[j] = labels[size_t(ref.gt_inds[j] - 1)];
        CHECK(ints(r.labels) == want_labels);
        ++cases;
      }
  CHECK(cases == 120);
}

TEST_CASE("assigner rules match the reference on float32 IoU matrices with continuous boxes",
          "[models][assigner]") {
  // The rules alone: both sides see the same float32 IoU matrix (ops::box_iou), and the reference
  // rounds the thresholds to float32 as torch compares a float32 tensor with a Python float.
  const auto opts = option_sets();
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const int64_t k = int64_t(seed) * 3, n = 400;
    const Tensor g = drcnn::test::random_tensor<float>({k, 4}, seed, 0.0, 60.0);
    const Tensor c = drcnn::test::random_tensor<float>({n, 4}, seed + 50, 0.0, 60.0);
    // Make them valid xyxy: x2 = x1 + |w| via box_iou's own inputs (sorted per axis).
    auto fix = [](const Tensor& t) {
      std::vector<float> v = t.to_vector<float>();
      for (size_t i = 0; i < v.size(); i += 4) {
        if (v[i] > v[i + 2]) std::swap(v[i], v[i + 2]);
        if (v[i + 1] > v[i + 3]) std::swap(v[i + 1], v[i + 3]);
      }
      return Tensor::from_vector<float>(v, t.shape());
    };
    const Tensor gf = fix(g), cf = fix(c);
    const Tensor iou_t = drcnn::ops::box_iou(gf, cf);
    const std::vector<double> flat = iou_t.to_vector<double>();
    std::vector<std::vector<double>> iou(static_cast<size_t>(k), std::vector<double>(static_cast<size_t>(n)));
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < n; ++j) iou[size_t(i)][size_t(j)] = flat[size_t(i * n + j)];
    for (size_t oi = 0; oi < opts.size(); ++oi) {
      INFO("seed " << seed << " options " << oi);
      const drcnn::ref::AssignRef ref = drcnn::ref::assign(iou, size_t(n), opts[oi], to_f32);
      const AssignResult r = MaxIoUAssigner(opts[oi]).assign(cf, gf);
      CHECK(ints(r.gt_inds) == ref.gt_inds);
      expect_equal(r.max_overlaps, ref.max_overlaps);
    }
  }
}

TEST_CASE("assigner rejects bad inputs naming the op", "[models][assigner]") {
  const MaxIoUAssigner a(MaxIoUAssignerOptions::rpn());
  CHECK_THROWS_WITH(a.assign(Tensor::zeros({3, 5}), boxes({0, 0, 1, 1})),
                    Contains("MaxIoUAssigner::assign") && Contains("candidates"));
  CHECK_THROWS_WITH(a.assign(boxes({0, 0, 1, 1}), boxes({0, 0, 1, 1}, DType::Float64)),
                    Contains("share dtype and device"));
  CHECK_THROWS_WITH(a.assign(boxes({0, 0, 1, 1}), boxes({0, 0, 1, 1}), longs({1, 2})),
                    Contains("gt_labels must be int64 [1]"));
  MaxIoUAssignerOptions o;
  o.neg_iou_lo = 0.5;
  o.neg_iou_hi = 0.2;
  CHECK_THROWS_WITH(MaxIoUAssigner(o), Contains("reversed"));
}
