// maskrcnn-benchmark's box conventions (`legacy` in include/drcnn/ops/box_ops.h and nms.h) against
// tools/golden_maskrcnn_benchmark.py: a float64 transcription of the seed's boxlist_iou,
// BoxCoder, clip_to_image, remove_small_boxes, nms.cu and LevelMapper, written apart from drcnn
// (tests/data/maskrcnn_benchmark/). The same inputs without `legacy` must differ, so each golden
// tells the conventions apart.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/golden.h"
#include "drcnn/ops/anchors.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/nms.h"

using drcnn::DType;
using drcnn::Tensor;
using drcnn::test::expect_golden_close;
namespace ops = drcnn::ops;

namespace {
double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = drcnn::test::strided_values(a), y = drcnn::test::strided_values(b);
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}
std::vector<int64_t> ints(const Tensor& t) { return t.contiguous().to_vector<int64_t>(); }
// The seed's nms returns the kept positions in ascending input order, drcnn's in score order.
std::vector<int64_t> sorted(const Tensor& t) {
  std::vector<int64_t> v = ints(t);
  std::sort(v.begin(), v.end());
  return v;
}
}  // namespace

TEST_CASE("legacy boxes: IoU, area, encode, decode, clip, small boxes, levels equal maskrcnn-benchmark's",
          "[ops][boxes][legacy]") {
  const auto g = drcnn::test::load_golden("maskrcnn_benchmark/boxes");
  // BoxCoder(weights (10, 10, 5, 5)) is drcnn's stds (0.1, 0.1, 0.2, 0.2): the seed multiplies by
  // the weight where drcnn divides by the std, so results agree to a few ulps, not bit for bit.
  const std::array<double, 4> means{0, 0, 0, 0}, stds{0.1, 0.1, 0.2, 0.2}, unit{1, 1, 1, 1};
  const double clip = 16.0 / 1000.0;  // |ln| = log(1000 / 16), BoxCoder's bbox_xform_clip

  const Tensor iou = ops::box_iou(g["iou_a"], g["iou_b"], true);
  expect_golden_close("legacy box_iou f64", iou, g["iou"], 1e-15, 1e-15);
  CHECK(max_abs_diff(ops::box_iou(g["iou_a"], g["iou_b"]), g["iou"]) > 0.05);
  expect_golden_close("legacy box_iou f32", ops::box_iou(g["iou_a"].to(DType::Float32), g["iou_b"].to(DType::Float32), true),
                      g["iou"], 2e-6, 2e-6);

  const Tensor enc = ops::box_encode(g["proposals"], g["gts"], means, stds, true);
  expect_golden_close("legacy box_encode f64", enc, g["encode"], 1e-13, 1e-13);
  CHECK(max_abs_diff(ops::box_encode(g["proposals"], g["gts"], means, stds), g["encode"]) > 1e-3);

  const Tensor dec = ops::box_decode(g["proposals"], g["deltas"], means, stds, std::nullopt, clip, true);
  expect_golden_close("legacy box_decode f64", dec, g["decode"], 1e-13, 1e-11);
  // Row 1's dh = -60 / 5 = -12 is clamped below by MMDetection's rule only.
  CHECK(max_abs_diff(ops::box_decode(g["proposals"], g["deltas"], means, stds, std::nullopt, clip), g["decode"]) > 0.5);
  const Tensor rpn = ops::box_decode(g["proposals"], g["rpn_deltas"], means, unit, std::nullopt, clip, true);
  expect_golden_close("legacy box_decode (RPN weights 1) f64", rpn, g["rpn_decode"], 1e-13, 1e-11);

  // clip_to_image(remove_empty=False) on an image of width 250 and height 190: x to [0, 249].
  const Tensor clipped = ops::box_clip(g["decode"].reshape({-1, 4}), 190.0, 250.0, true);
  expect_golden_close("legacy box_clip f64", clipped, g["clip"], 0, 0);
  // box_decode clipping in one step gives the same as decode then clip.
  const Tensor dec_clip =
      ops::box_decode(g["proposals"], g["deltas"], means, stds, ops::ImageShape{190.0, 250.0}, clip, true);
  expect_golden_close("legacy box_decode + clip f64", dec_clip.reshape({-1, 4}), g["clip"], 1e-13, 1e-11);

  CHECK(ints(ops::remove_small_boxes(g["small"], 3.0, true)) == ints(g["keep_small"]));
  CHECK(ints(ops::remove_small_boxes(g["small"], 3.0)) != ints(g["keep_small"]));

  const Tensor levels = ops::map_roi_levels_legacy(g["rois"]);
  CHECK(ints(levels) == ints(g["levels"]));
  CHECK(ints(ops::map_roi_levels_legacy(g["rois"].to(DType::Float32))) == ints(g["levels"]));

  // box_area with +1, by hand: [0, 0, 9, 4] is 10 x 5 pixels.
  const Tensor area = ops::box_area(Tensor::from_vector<double>({0, 0, 9, 4, 2, 3, 2, 3}, drcnn::Shape{2, 4}), true);
  CHECK(area.to_vector<double>() == std::vector<double>{50.0, 1.0});
}

TEST_CASE("legacy NMS keeps what the seed's nms.cu keeps", "[ops][nms][legacy]") {
  const auto g = drcnn::test::load_golden("maskrcnn_benchmark/nms");
  for (const std::string t : {"0.3", "0.5", "0.7"}) {
    INFO("threshold " << t);
    const double thr = std::stod(t);
    const std::vector<int64_t> want = ints(g["keep_" + t]);
    CHECK(sorted(ops::nms(g["boxes"], g["scores"], thr, -1, true)) == want);
    CHECK(sorted(ops::nms(g["boxes"].to(DType::Float32), g["scores"].to(DType::Float32), thr, -1, true)) == want);
    CHECK(sorted(ops::nms(g["boxes"], g["scores"], thr)) != want);  // the continuous rule differs here
    // nms_fixed and batched_nms (one group) take the same rule.
    const ops::NmsFixed f = ops::nms_fixed(g["boxes"], g["scores"], thr, 200, true);
    CHECK(f.count.item<int64_t>() == int64_t(want.size()));
    const Tensor one_group = Tensor::zeros({g["boxes"].size(0)}, DType::Int64);
    CHECK(sorted(ops::batched_nms(g["boxes"], g["scores"], one_group, thr, -1, 10000, true)) == want);
    CHECK(sorted(ops::batched_nms(g["boxes"], g["scores"], one_group, thr, -1, 0, true)) == want);
  }
  // Exactly at the threshold (+1 IoU 50 / 100 = 0.5): nms.cu keeps the second box (IoU > thr).
  const std::vector<int64_t> k = ints(g["keep_0.5"]);
  CHECK(std::find(k.begin(), k.end(), 151) != k.end());
}

TEST_CASE("legacy boxes: clipping needs an image of at least one pixel", "[ops][boxes][legacy]") {
  const Tensor b = Tensor::zeros({1, 4}, DType::Float64);
  CHECK_THROWS_WITH(ops::box_clip(b, 0.5, 10.0, true),
                    Catch::Contains("box_clip: with legacy (+1) boxes the image must be at least 1 x 1"));
  CHECK_NOTHROW(ops::box_clip(b, 0.5, 10.0));
}

TEST_CASE("detectron anchors equal the seed's generate_anchors and grid", "[ops][anchors][legacy]") {
  const auto g = drcnn::test::load_golden("maskrcnn_benchmark/anchors");
  ops::AnchorConfig c;  // strides 4..64, ratios 0.5 / 1 / 2, scales {8}: the seed's sizes 32..512
  c.detectron = true;
  const std::vector<ops::FeatureSize> sizes(5, ops::FeatureSize{3, 5});
  for (DType dt : {DType::Float32, DType::Float64}) {
    const std::vector<Tensor> grid = ops::grid_anchors(c, sizes, dt);
    for (int level = 0; level < 5; ++level) {
      const std::string s = std::to_string(c.strides[size_t(level)]);
      // Integers and halves: exact in float32 and float64 (the seed's cell anchors are float32).
      expect_golden_close("detectron base anchors stride " + s, ops::base_anchors(c, level, dt), g["base_" + s], 0, 0);
      expect_golden_close("detectron grid anchors stride " + s, grid[size_t(level)], g["grid_" + s], 0, 0);
    }
  }
  ops::AnchorConfig mmdet;  // the default differs (no rounding, centre 0)
  CHECK(max_abs_diff(ops::base_anchors(mmdet, 0, DType::Float64), g["base_4"]) > 1.0);
  c.center_offset = 0.5;
  CHECK_THROWS_WITH(ops::base_anchors(c, 0), Catch::Contains("center_offset must be 0, got 0.5"));
}

