// Two training-only rules of the seed (maskrcnn-benchmark) against a float64 transcription of its
// code (tools/golden_seed_training_rules.py -> tests/data/maskrcnn_benchmark/): the proposals'
// FPN_POST_NMS_PER_BATCH selection (RpnProposalConfig::per_batch) and the RPN targets with
// STRADDLE_THRESH 0 (RpnLossConfig::allowed_border, ops::anchor_inside_flags), both under
// BoxConvention::MaskrcnnBenchmark. docs/conventions.md, "maskrcnn-benchmark".
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "common/golden.h"
#include "drcnn/autograd/variable.h"
#include "drcnn/models/detector.h"
#include "drcnn/models/rpn.h"
#include "drcnn/models/rpn_loss.h"
#include "drcnn/ops/anchors.h"
#include "drcnn/ops/shape_ops.h"

namespace {

using namespace drcnn;

// The seed's anchors (ANCHOR_SIZES 32..512 at strides 4..64, ratios 0.5 / 1 / 2) for the golden's
// 64 x 96 batch.
ops::AnchorConfig seed_anchors() {
  ops::AnchorConfig a;
  a.detectron = true;
  return a;
}
const std::vector<ops::FeatureSize> kSizes{{16, 24}, {8, 12}, {4, 6}, {2, 3}, {1, 2}};

std::vector<models::RpnLevelOutput> head_outputs(const test::Golden& g) {
  std::vector<models::RpnLevelOutput> out;
  for (int l = 0; l < 5; ++l)
    out.push_back({Variable(g["objectness_" + std::to_string(l)].to(DType::Float64), true),
                   Variable(g["deltas_" + std::to_string(l)].to(DType::Float64), true)});
  return out;
}

// One 60 x 90 image of the rpn_targets golden with the ground truths `gt_key`: the seed's
// anchors, their visibility (STRADDLE_THRESH 0), the target, and the valid flags (one image:
// its padded extent is the batch, every anchor is valid; the seed has no valid flags).
struct RpnCase {
  std::vector<Tensor> anchors;
  Tensor inside;
  std::vector<Instances> targets;
  std::vector<Tensor> valid;
};
RpnCase rpn_case(const test::Golden& g, const std::string& gt_key) {
  RpnCase c;
  c.anchors = ops::grid_anchors(seed_anchors(), kSizes, DType::Float64);
  const std::vector<int64_t> size = g["image_size"].to_vector<int64_t>();
  c.inside = ops::anchor_inside_flags(ops::concat(c.anchors, 0), size[0], size[1], 0.0);
  const Tensor gt = g[gt_key];
  c.targets.emplace_back(ImageSize{size[0], size[1]}, Boxes(gt), Tensor::zeros({gt.size(0)}, DType::Int64));
  c.valid = {ops::concat(ops::anchor_valid_flags(seed_anchors(), kSizes, 64, 96), 0)};
  return c;
}

}  // namespace

TEST_CASE("seed training rules: proposals over the batch (FPN_POST_NMS_PER_BATCH)", "[seed][rpn]") {
  const test::Golden g = test::load_golden("maskrcnn_benchmark/proposals_per_batch");
  const std::vector<Tensor> anchors = ops::grid_anchors(seed_anchors(), kSizes, DType::Float64);
  const std::vector<int64_t> s = g["image_sizes"].to_vector<int64_t>();
  const std::vector<ImageSize> sizes{{s[0], s[1]}, {s[2], s[3]}};
  models::RpnProposalConfig cfg;
  cfg.convention = models::BoxConvention::MaskrcnnBenchmark;
  cfg.nms_pre = 300;        // PRE_NMS_TOP_N
  cfg.max_per_level = 150;  // POST_NMS_TOP_N
  cfg.max_per_img = 200;    // FPN_POST_NMS_TOP_N = 200 x 2 images
  cfg.per_batch = true;
  const std::vector<models::RpnProposals> p = models::generate_proposals(head_outputs(g), anchors, sizes, cfg);
  REQUIRE(p.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    INFO("image " << i);
    const std::string k = std::to_string(i);
    REQUIRE(p[i].boxes.size(0) == g["count_" + k].to_vector<int64_t>().at(0));
    test::expect_golden_close("per-batch proposals " + k, p[i].boxes, g["boxes_" + k], 1e-9, 1e-9);
    test::expect_golden_close("per-batch scores " + k, p[i].scores, g["scores_" + k], 1e-9, 1e-12);
  }
  // The golden tells the rules apart: per image, each image keeps 200.
  REQUIRE(g["count_0"].to_vector<int64_t>().at(0) != 200);
  cfg.per_batch = false;
  const std::vector<models::RpnProposals> q = models::generate_proposals(head_outputs(g), anchors, sizes, cfg);
  CHECK(q[0].boxes.size(0) == 200);
  CHECK(q[1].boxes.size(0) == 200);
}

TEST_CASE("seed training rules: RPN targets with STRADDLE_THRESH 0 (assign, then ignore the outside)",
          "[seed][rpn]") {
  const test::Golden g = test::load_golden("maskrcnn_benchmark/rpn_targets");
  const RpnCase c = rpn_case(g, "gt");
  const std::vector<Tensor>& anchors = c.anchors;
  const Tensor& inside = c.inside;
  const std::vector<int64_t> size = g["image_size"].to_vector<int64_t>();
  // The seed's visibility (add_visibility_to against the unpadded image).
  CHECK(inside.to_vector<bool>() == g["visible"].to_vector<bool>());
  CHECK(ops::anchor_inside_flags(ops::concat(anchors, 0), size[0], size[1], -1.0).to_vector<bool>() ==
        std::vector<bool>(size_t(inside.size(0)), true));
  const std::vector<Instances>& targets = c.targets;
  const std::vector<Tensor>& valid = c.valid;
  models::RpnLossConfig cfg;
  cfg.convention = models::BoxConvention::MaskrcnnBenchmark;
  cfg.sampler = models::RandomSamplerOptions{1 << 20, 0.5, -1.0, false};  // every positive and negative
  cfg.regression_loss = models::RpnRegressionLoss::SmoothL1;
  cfg.smooth_l1_beta = 1.0 / 9.0;
  Generator gen(0);
  const models::RpnLossOutput out = models::rpn_loss(head_outputs(g), anchors, valid, targets, cfg, gen, {inside});
  CHECK(out.num_pos == g["num_pos"].to_vector<int64_t>().at(0));
  CHECK(out.num_neg == g["num_neg"].to_vector<int64_t>().at(0));
  test::expect_golden_close("seed rpn loss_cls", out.loss_cls.data().reshape({1}), g["loss_cls"], 1e-12, 0);
  test::expect_golden_close("seed rpn loss_bbox", out.loss_bbox.data().reshape({1}), g["loss_bbox"], 1e-12, 0);

  // MMDetection's order (the outside anchors dropped before assigning) gives a corner ground truth
  // a low-quality positive the seed does not have.
  std::vector<bool> both = valid[0].to_vector<bool>();
  const std::vector<bool> in = inside.to_vector<bool>();
  for (size_t j = 0; j < both.size(); ++j) both[j] = both[j] && in[j];
  Generator gen2(0);
  const models::RpnLossOutput drop_first =
      models::rpn_loss(head_outputs(g), anchors, {Tensor::from_vector(both, valid[0].shape())}, targets, cfg, gen2);
  CHECK(drop_first.num_pos > out.num_pos);
}

TEST_CASE("seed training rules: the RPN Matcher's low-quality matches", "[seed][rpn]") {
  // Two overlapping ground truths and a 6 x 6 one whose best IoU (0.035) is under MMDetection's
  // min_pos_iou 0.3: Matcher(0.7, 0.3, allow_low_quality_matches=True) has no minimum and gives
  // each such anchor its own best ground truth; the seed's preset says so.
  const test::Golden g = test::load_golden("maskrcnn_benchmark/rpn_targets");
  const RpnCase c = rpn_case(g, "gt2");
  const std::vector<Tensor>& anchors = c.anchors;
  const Tensor& inside = c.inside;
  const std::vector<Instances>& targets = c.targets;
  const std::vector<Tensor>& valid = c.valid;
  models::RpnLossConfig cfg = models::DetectorConfig::seed_dynamic_rcnn_r50_fpn_1x(3).rpn_loss;
  CHECK(cfg.assigner.min_pos_iou == 0.0);
  CHECK(cfg.assigner.low_quality_own_best);
  cfg.convention = models::BoxConvention::MaskrcnnBenchmark;
  cfg.sampler = models::RandomSamplerOptions{1 << 20, 0.5, -1.0, false};
  Generator gen(0);
  const models::RpnLossOutput out = models::rpn_loss(head_outputs(g), anchors, valid, targets, cfg, gen, {inside});
  CHECK(out.num_pos == g["num_pos2"].to_vector<int64_t>().at(0));
  CHECK(out.num_neg == g["num_neg2"].to_vector<int64_t>().at(0));
  test::expect_golden_close("seed matcher loss_cls", out.loss_cls.data().reshape({1}), g["loss_cls2"], 1e-12, 0);
  test::expect_golden_close("seed matcher loss_bbox", out.loss_bbox.data().reshape({1}), g["loss_bbox2"], 1e-12, 0);
  // MMDetection's rule on the same anchors gives other targets.
  cfg.assigner = models::MaxIoUAssignerOptions::rpn();
  Generator gen2(0);
  const models::RpnLossOutput mm = models::rpn_loss(head_outputs(g), anchors, valid, targets, cfg, gen2, {inside});
  CHECK((mm.num_pos != out.num_pos ||
         std::abs(mm.loss_bbox.data().to_vector<double>()[0] - out.loss_bbox.data().to_vector<double>()[0]) > 1e-6));
}
