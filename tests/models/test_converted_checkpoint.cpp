// A checkpoint written by MMDetection 3.3 and converted by tools/convert_checkpoint.py, loaded
// the way drcnn_detect loads one (the converter's YAML through io::resolve_config, the
// safetensors by name, strictly), must give MMDetection's own detections on the same input
// (tools/make_checkpoint_goldens.py -> tests/data/checkpoints/; docs/checkpoints.md).
#include <catch2/catch.hpp>

#include <algorithm>
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

template <typename T>
Instances predict_golden(const io::RunConfig& cfg, const test::Golden& io_golden) {
  const DType dtype = sizeof(T) == 8 ? DType::Float64 : DType::Float32;
  const auto model = test::converted_detector<T>(cfg.model, "mmdet_tiny.safetensors");
  const std::vector<int64_t> size = io_golden["size"].to_vector<int64_t>();
  const std::vector<double> scale = io_golden["scale"].to_vector<double>();
  const std::vector<int64_t> orig = io_golden["orig"].to_vector<int64_t>();
  return model
      ->predict(ImageList(io_golden["image"].to(dtype), {ImageSize{size[0], size[1]}}), {{scale[0], scale[1]}},
               {ImageSize{orig[0], orig[1]}})
      .at(0);
}

}  // namespace

TEST_CASE("converted MMDetection checkpoint: the implied config and the names load", "[checkpoint]") {
  const io::RunConfig cfg = io::resolve_config(test::checkpoint_path("mmdet_tiny.yaml"), {});
  CHECK(cfg.model.num_classes == 3);
  CHECK(cfg.model.backbone.depth == 18);
  CHECK(cfg.model.backbone.base_width == 4);
  CHECK(cfg.model.neck.out_channels == 8);
  CHECK(cfg.model.roi_head.bbox_head.fc_out_channels == 16);
  CHECK(cfg.model.rpn_test.small_box_rule == models::RpnSmallBoxRule::StrictAlways);
  const io::SafetensorsFile weights = io::load_safetensors(test::checkpoint_path("mmdet_tiny.safetensors"));
  CHECK(weights.metadata.at("classes") == "[\"raccoon\", \"cat\", \"dog\"]");
  Generator gen(0);
  models::TwoStageDetector<float> model(cfg.model, gen);
  CHECK(model.state_dict().size() == weights.tensors.size());
  REQUIRE_NOTHROW(model.load_state_dict(weights.tensors));

  // The same file against a config with another class count: one error naming the tensors.
  io::RunConfig other = io::resolve_config(test::checkpoint_path("mmdet_tiny.yaml"), {"model.num_classes=4"});
  models::TwoStageDetector<float> wrong(other.model, gen);
  try {
    wrong.load_state_dict(weights.tensors);
    FAIL("a 3-class checkpoint loaded into a 4-class model");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("roi_head.bbox_head.fc_cls.weight") != std::string::npos);
    CHECK(msg.find("roi_head.bbox_head.fc_reg.bias") != std::string::npos);
  }
}

TEST_CASE("converted MMDetection checkpoint: float64 detections equal MMDetection's", "[checkpoint]") {
  const io::RunConfig cfg = io::resolve_config(test::checkpoint_path("mmdet_tiny.yaml"), {});
  const test::Golden g = test::load_golden("checkpoints/mmdet_tiny_io");
  const Instances det = predict_golden<double>(cfg, g);
  // MMDetection in float64 with float64 base anchors (it builds them in float32 otherwise:
  // docs/conventions.md); both sides differ only by rounding.
  REQUIRE(det.size() == g["scores_f64"].size(0));
  CHECK(det.labels.to_vector<int64_t>() == g["labels_f64"].to_vector<int64_t>());
  test::expect_golden_close("mmdet_tiny f64 boxes", det.boxes.tensor(), g["boxes_f64"], 1e-9, 1e-9);
  test::expect_golden_close("mmdet_tiny f64 scores", det.scores, g["scores_f64"], 1e-9, 1e-12);
}

TEST_CASE("converted MMDetection checkpoint: float32 detections equal MMDetection's", "[checkpoint]") {
  const io::RunConfig cfg = io::resolve_config(test::checkpoint_path("mmdet_tiny.yaml"), {});
  const test::Golden g = test::load_golden("checkpoints/mmdet_tiny_io");
  const Instances det = predict_golden<float>(cfg, g);
  REQUIRE(det.size() == g["scores_f32"].size(0));
  CHECK(det.labels.to_vector<int64_t>() == g["labels_f32"].to_vector<int64_t>());
  // The float32 rounding allowance is MMDetection's own: how far its float32 detections are from
  // its float64 ones (scores 8.2e-6, boxes 9.2e-6 px in this golden). drcnn's float32 results must
  // be as close to the float64 truth as twice that, and to MMDetection's float32 results too.
  const auto max_gap = [](const Tensor& a, const Tensor& b) {
    const std::vector<double> x = a.to(DType::Float64).to_vector<double>(), y = b.to(DType::Float64).to_vector<double>();
    double m = 0;
    for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
    return m;
  };
  const double score_allow = 2 * max_gap(g["scores_f32"], g["scores_f64"]);
  const double box_allow = 2 * max_gap(g["boxes_f32"], g["boxes_f64"]);
  REQUIRE(score_allow > 0);
  REQUIRE(score_allow < 1e-4);  // a sanity bound on the golden itself
  test::expect_golden_close("mmdet_tiny f32 boxes vs MMDetection f64", det.boxes.tensor(), g["boxes_f64"], 0, box_allow);
  test::expect_golden_close("mmdet_tiny f32 scores vs MMDetection f64", det.scores, g["scores_f64"], 0, score_allow);
  test::expect_golden_close("mmdet_tiny f32 boxes vs MMDetection f32", det.boxes.tensor(), g["boxes_f32"], 0, box_allow);
  test::expect_golden_close("mmdet_tiny f32 scores vs MMDetection f32", det.scores, g["scores_f32"], 0, score_allow);
}
