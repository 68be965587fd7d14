// The detector's configuration presets, module names and API contracts.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "drcnn/models/detector.h"

using namespace drcnn;

TEST_CASE("detector presets hold MMDetection's hyperparameters", "[models][detector]") {
  const auto d = models::DetectorConfig::dynamic_rcnn_r50_fpn_1x();
  CHECK(d.backbone.depth == 50);
  CHECK(d.backbone.frozen_stages == 1);
  CHECK(d.backbone.norm_eval);
  CHECK(d.rpn_train.nms_pre == 2000);
  CHECK(d.rpn_train.nms_iou == 0.85);
  CHECK(d.rpn_train.max_per_img == 1000);
  CHECK(d.rpn_test.nms_pre == 1000);
  CHECK(d.rpn_test.nms_iou == 0.85);
  CHECK(d.rpn_loss.sampler.num == 256);
  CHECK(d.rpn_loss.sampler.pos_fraction == 0.5);
  CHECK(d.rpn_loss.assigner.pos_iou_thr == 0.7);
  CHECK(d.rpn_loss.assigner.neg_iou_hi == 0.3);
  CHECK(d.rpn_loss.assigner.min_pos_iou == 0.3);
  CHECK(d.rpn_loss.regression_loss == models::RpnRegressionLoss::L1);
  CHECK(d.roi_head.sampler.num == 512);
  CHECK(d.roi_head.sampler.pos_fraction == 0.25);
  CHECK(d.roi_head.sampler.add_gt_as_proposals);
  CHECK(d.roi_head.bbox_head.fc_out_channels == 1024);
  CHECK(d.roi_head.bbox_head.num_classes == 80);
  CHECK(d.roi_head.target_stds == std::array<double, 4>{0.1, 0.1, 0.2, 0.2});
  CHECK(d.roi_head.aligned);
  CHECK(d.roi_head.sampling_ratio == 0);
  CHECK(d.roi_head.score_thr == 0.05);
  CHECK(d.roi_head.nms_iou == 0.5);
  CHECK(d.roi_head.max_per_img == 100);
  CHECK(d.dynamic.iou_topk == 75);
  CHECK(d.dynamic.beta_topk == 10);
  CHECK(d.dynamic.update_interval == 100);
  CHECK_FALSE(d.dynamic.static_mode);

  const auto f = models::DetectorConfig::faster_rcnn_r50_fpn_1x(20);
  CHECK(f.rpn_train.nms_iou == 0.7);
  CHECK(f.rpn_test.nms_iou == 0.7);
  CHECK(f.dynamic.static_mode);
  CHECK(f.roi_head.bbox_head.num_classes == 20);
  CHECK(models::DetectorConfig::dynamic_rcnn_r101_fpn_1x().backbone.depth == 101);
  const auto s = models::DetectorConfig::small_cpu(6);
  CHECK(s.backbone.depth == 18);
  CHECK(s.neck.out_channels == 128);
  CHECK(s.roi_head.bbox_head.in_channels == 128);
}

TEST_CASE("TwoStageDetector: MMDetection module names and head shapes", "[models][detector]") {
  Generator gen(1);
  models::TwoStageDetector<float> model(models::DetectorConfig::small_cpu(6), gen);
  std::set<std::string> names;
  for (const auto& [name, t] : model.state_dict()) names.insert(name);
  for (const char* key : {"backbone.conv1.weight", "backbone.layer4.1.conv2.weight", "neck.lateral_convs.0.conv.weight",
                          "neck.fpn_convs.3.conv.bias", "rpn_head.rpn_conv.weight", "rpn_head.rpn_cls.weight",
                          "rpn_head.rpn_reg.bias", "roi_head.bbox_head.shared_fcs.0.weight",
                          "roi_head.bbox_head.shared_fcs.1.bias", "roi_head.bbox_head.fc_cls.weight",
                          "roi_head.bbox_head.fc_reg.weight"})
    CHECK(names.count(key) == 1);
  for (const auto& [name, t] : model.state_dict()) {
    if (name == "roi_head.bbox_head.fc_cls.weight") CHECK(t.shape() == Shape{7, 512});
    if (name == "roi_head.bbox_head.fc_reg.weight") CHECK(t.shape() == Shape{24, 512});
    if (name == "roi_head.bbox_head.shared_fcs.0.weight") CHECK(t.shape() == Shape{512, 128 * 49});
    if (name == "rpn_head.rpn_reg.weight") CHECK(t.shape() == Shape{12, 128, 1, 1});
  }
}

TEST_CASE("TwoStageDetector: forward_train and predict contracts on a tiny batch", "[models][detector]") {
  Generator gen(4);
  models::TwoStageDetector<float> model(models::DetectorConfig::small_cpu(2), gen);
  const ImageList images = ImageList::from_images({Tensor::rand({3, 60, 70}, gen), Tensor::rand({3, 64, 50}, gen)}, 32);
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{60, 70}, Boxes(Tensor::from_vector(std::vector<float>{5, 6, 40, 30}, Shape{1, 4})),
                       Tensor::from_vector(std::vector<int64_t>{1}));
  // The second image: one crowd-like ignored object and one real one.
  targets.emplace_back(ImageSize{64, 50},
                       Boxes(Tensor::from_vector(std::vector<float>{2, 2, 20, 30, 10, 30, 48, 60}, Shape{2, 4})),
                       Tensor::from_vector(std::vector<int64_t>{0, 1}), Tensor(),
                       Tensor::from_vector(std::vector<uint8_t>{1, 0}, Shape{2}).to(DType::Bool));
  Generator sample(9);
  models::DetectorLosses out = model.forward_train(images, targets, {0.5, 1.0}, sample);
  for (const char* k : {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"}) {
    REQUIRE(out.losses.count(k) == 1);
    CHECK(std::isfinite(out.losses.at(k).data().item<double>()));
  }
  double sum = 0;
  for (const auto& [k, v] : out.losses) sum += v.data().item<double>();
  CHECK(out.total.data().item<double>() == Approx(sum).epsilon(1e-6));
  CHECK(out.stats.max_overlaps.size() == 2);
  CHECK(out.rcnn_num_pos >= 2);  // the two targeted GTs, prepended as proposals
  CHECK(out.rpn_num_pos >= 2);
  out.total.backward();
  int64_t with_grad = 0, trainable = 0;
  for (const auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) {
      ++trainable;
      with_grad += p.has_grad();
    }
  CHECK(with_grad == trainable);  // every trainable parameter is reached

  model.eval();
  const auto dets = model.predict(images, {{2.0, 2.0}, {0.5, 0.5}}, {ImageSize{30, 35}, ImageSize{128, 100}});
  REQUIRE(dets.size() == 2);
  CHECK(dets[0].image_size == ImageSize{30, 35});
  for (const Instances& d : dets) {
    CHECK(d.size() <= 100);
    CHECK(d.has_scores());
  }
  CHECK_THROWS_WITH(model.forward_train(images, {targets[0]}, {0.5, 1.0}, sample), Catch::Contains("2 images but 1 targets"));
}

TEST_CASE("TwoStageDetector: inconsistent configurations are rejected", "[models][detector]") {
  Generator gen(1);
  auto c = models::DetectorConfig::small_cpu(3);
  c.roi_head.bbox_head.num_classes = 4;
  CHECK_THROWS_WITH(models::TwoStageDetector<float>(c, gen), Catch::Contains("differs from num_classes"));
  c = models::DetectorConfig::small_cpu(3);
  c.anchors.strides = {4, 8, 16, 32};
  CHECK_THROWS_WITH(models::TwoStageDetector<float>(c, gen), Catch::Contains("4 anchor strides for 5 FPN levels"));
  c = models::DetectorConfig::small_cpu(3);
  c.anchors.scales = {4.0, 8.0};
  CHECK_THROWS_WITH(models::TwoStageDetector<float>(c, gen), Catch::Contains("rpn_head.num_anchors"));
}
