// The seed's (maskrcnn-benchmark's) whole inference path: a checkpoint with the seed's own names,
// converted by tools/convert_checkpoint.py, run with the converter's YAML (preset
// seed_dynamic_rcnn_r50_fpn_1x, model.box_convention maskrcnn_benchmark), must give the seed's
// proposals and detections. The reference is tools/golden_seed_detector.py, a float64 / float32
// transcription of hkzhang95/DynamicRCNN's test path written apart from drcnn
// (tests/data/checkpoints/seed_tiny*; docs/checkpoints.md, docs/conventions.md).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "common/converted_model.h"
#include "common/golden.h"
#include "drcnn/autograd/variable.h"
#include "drcnn/io/config.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/detector.h"

namespace {

using namespace drcnn;

// The golden's two proposal settings: "capped" (per level 300 before NMS, 120 after it, 250 per
// image: both caps cut) and "preset" (the seed's 1000 / 1000 / 1000).
std::vector<std::string> overrides(const std::string& setting) {
  if (setting == "capped")
    return {"model.rpn_test.nms_pre=300", "model.rpn_test.max_per_level=120", "model.rpn_test.max_per_img=250"};
  return {};
}

struct SeedRun {
  models::RpnProposals proposals;
  Instances detections;
};

template <typename T>
SeedRun run_seed(const io::RunConfig& cfg, const test::Golden& g) {
  const DType dtype = sizeof(T) == 8 ? DType::Float64 : DType::Float32;
  const auto model = test::converted_detector<T>(cfg.model, "seed_tiny.safetensors");
  const std::vector<int64_t> size = g["size"].to_vector<int64_t>();
  const std::vector<double> scale = g["scale"].to_vector<double>();
  const std::vector<int64_t> orig = g["orig"].to_vector<int64_t>();
  const ImageList images(g["image"].to(dtype), {ImageSize{size[0], size[1]}});
  SeedRun out;
  {
    const NoGradGuard no_grad;
    out.proposals = model->proposals(model->features(images.tensor()), images, false).at(0);
  }
  out.detections = model->predict(images, {{scale[0], scale[1]}}, {ImageSize{orig[0], orig[1]}}).at(0);
  return out;
}

double max_gap(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to(DType::Float64).to_vector<double>(), y = b.to(DType::Float64).to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// For each box of `a` [N, 4], the largest coordinate difference to the nearest box of `b`; the
// maximum over a.
double nearest_gap(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to(DType::Float64).to_vector<double>(), y = b.to(DType::Float64).to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i + 3 < x.size(); i += 4) {
    double best = INFINITY;
    for (size_t j = 0; j + 3 < y.size(); j += 4) {
      double d = 0;
      for (size_t k = 0; k < 4; ++k) d = std::max(d, std::abs(x[i + k] - y[j + k]));
      best = std::min(best, d);
    }
    worst = std::max(worst, best);
  }
  return worst;
}

}  // namespace

TEST_CASE("seed checkpoint: the converter's YAML names the seed's preset and the weights load", "[checkpoint]") {
  const io::RunConfig cfg = io::resolve_config(test::checkpoint_path("seed_tiny.yaml"), {});
  CHECK(cfg.model.name == "seed_dynamic_rcnn_r50_fpn_1x");
  CHECK(cfg.model.box_convention == models::BoxConvention::MaskrcnnBenchmark);
  CHECK(cfg.model.anchors.detectron);
  CHECK(cfg.model.backbone.style == models::ResNetStyle::Caffe);
  CHECK(cfg.model.backbone.norm.eps == 0.0);
  CHECK_FALSE(cfg.model.roi_head.aligned);
  CHECK(cfg.model.roi_head.sampling_ratio == 2);
  CHECK(cfg.model.rpn_test.nms_pre == 1000);
  CHECK(cfg.model.rpn_test.max_per_level == 1000);
  CHECK(cfg.model.rpn_test.max_per_img == 1000);
  CHECK(cfg.model.rpn_test.nms_iou == 0.85);
  CHECK(cfg.data.normalize.mean == std::array<float, 3>{102.9801f, 115.9465f, 122.7717f});
  CHECK_FALSE(cfg.data.normalize.to_rgb);
  const io::SafetensorsFile weights = io::load_safetensors(test::checkpoint_path("seed_tiny.safetensors"));
  Generator gen(0);
  models::TwoStageDetector<float> model(cfg.model, gen);
  CHECK(model.state_dict().size() == weights.tensors.size());
  REQUIRE_NOTHROW(model.load_state_dict(weights.tensors));
  // The detector hands the convention to the stages that apply it.
  CHECK(model.config().rpn_test.convention == models::BoxConvention::MaskrcnnBenchmark);
  CHECK(model.config().rpn_train.convention == models::BoxConvention::MaskrcnnBenchmark);
  CHECK(model.config().roi_head.convention == models::BoxConvention::MaskrcnnBenchmark);
  CHECK(model.config().rpn_loss.convention == models::BoxConvention::MaskrcnnBenchmark);
}

TEST_CASE("seed checkpoint: float64 proposals and detections equal the seed's", "[checkpoint]") {
  const test::Golden g = test::load_golden("checkpoints/seed_tiny_io");
  for (const std::string setting : {"capped", "preset"}) {
    INFO("setting " << setting);
    const io::RunConfig cfg = io::resolve_config(test::checkpoint_path("seed_tiny.yaml"), overrides(setting));
    const SeedRun r = run_seed<double>(cfg, g);
    const std::string s = "_" + setting + "_f64";
    // Proposals: the same boxes in the same (descending objectness) order.
    REQUIRE(r.proposals.boxes.size(0) == g["prop_boxes" + s].size(0));
    test::expect_golden_close("seed proposals" + s, r.proposals.boxes, g["prop_boxes" + s], 1e-9, 1e-9);
    test::expect_golden_close("seed proposal scores" + s, r.proposals.scores, g["prop_scores" + s], 1e-9, 1e-12);
    // Detections: the seed's order (class-major, proposal order within a class), in the
    // original image's pixels.
    REQUIRE(r.detections.size() == g["scores" + s].size(0));
    CHECK(r.detections.labels.to_vector<int64_t>() == g["labels" + s].to_vector<int64_t>());
    test::expect_golden_close("seed boxes" + s, r.detections.boxes.tensor(), g["boxes" + s], 1e-9, 1e-9);
    test::expect_golden_close("seed scores" + s, r.detections.scores, g["scores" + s], 1e-9, 1e-12);
  }
}

TEST_CASE("seed checkpoint: float32 proposals and detections equal the seed's", "[checkpoint]") {
  const test::Golden g = test::load_golden("checkpoints/seed_tiny_io");
  for (const std::string setting : {"capped", "preset"}) {
    INFO("setting " << setting);
    const io::RunConfig cfg = io::resolve_config(test::checkpoint_path("seed_tiny.yaml"), overrides(setting));
    const SeedRun r = run_seed<float>(cfg, g);
    const std::string s32 = "_" + setting + "_f32", s64 = "_" + setting + "_f64";
    // The float32 allowance is the seed's own: twice the gap between its float32 and float64
    // results in this golden. Its proposal lists have the same length in both, but proposals of
    // nearly equal objectness trade places under float32 rounding, so proposals are compared as
    // sets (each one's distance to the nearest float64 proposal; the scores sorted, as they
    // are); its detection lists are equal in length, labels and order, compared in place.
    REQUIRE(g["prop_scores" + s32].size(0) == g["prop_scores" + s64].size(0));
    REQUIRE(g["scores" + s32].size(0) == g["scores" + s64].size(0));
    const double prop_allow = 2 * nearest_gap(g["prop_boxes" + s32], g["prop_boxes" + s64]);
    const double pscore_allow = 2 * max_gap(g["prop_scores" + s32], g["prop_scores" + s64]);
    const double box_allow = 2 * max_gap(g["boxes" + s32], g["boxes" + s64]);
    const double score_allow = 2 * max_gap(g["scores" + s32], g["scores" + s64]);
    REQUIRE(score_allow > 0);
    REQUIRE(score_allow < 1e-2);  // a sanity bound on the golden itself
    REQUIRE(prop_allow < 1.0);
    REQUIRE(r.proposals.boxes.size(0) == g["prop_boxes" + s64].size(0));
    const double prop_gap = nearest_gap(r.proposals.boxes, g["prop_boxes" + s64]);
    INFO("proposal boxes: farthest from a float64 proposal " << prop_gap << " px (allowed " << prop_allow << ")");
    CHECK(prop_gap <= prop_allow);
    test::expect_golden_close("seed f32 proposal scores" + s32, r.proposals.scores, g["prop_scores" + s64], 0,
                              pscore_allow);
    REQUIRE(r.detections.size() == g["scores" + s64].size(0));
    CHECK(r.detections.labels.to_vector<int64_t>() == g["labels" + s64].to_vector<int64_t>());
    test::expect_golden_close("seed f32 boxes vs f64" + s32, r.detections.boxes.tensor(), g["boxes" + s64], 0, box_allow);
    test::expect_golden_close("seed f32 scores vs f64" + s32, r.detections.scores, g["scores" + s64], 0, score_allow);
    test::expect_golden_close("seed f32 boxes vs f32" + s32, r.detections.boxes.tensor(), g["boxes" + s32], 0, box_allow);
    test::expect_golden_close("seed f32 scores vs f32" + s32, r.detections.scores, g["scores" + s32], 0, score_allow);
  }
}

TEST_CASE("seed checkpoint: MMDetection's box rules do not give the seed's results", "[checkpoint]") {
  // The golden tells the conventions apart: the same weights under box_convention mmdet.
  const test::Golden g = test::load_golden("checkpoints/seed_tiny_io");
  const io::RunConfig cfg = io::resolve_config(test::checkpoint_path("seed_tiny.yaml"), {"model.box_convention=mmdet"});
  const SeedRun r = run_seed<double>(cfg, g);
  const Tensor& want = g["boxes_preset_f64"];
  const bool same = r.detections.size() == want.size(0) && max_gap(r.detections.boxes.tensor(), want) < 1e-3;
  CHECK_FALSE(same);
}
