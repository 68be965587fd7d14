// RPN losses, the R-CNN head's targets and losses, and inference post-processing, each checked
// against float64 values computed with the references of tests/reference (box, loss, assigner) (spec B.6, B.8, B.10-B.12, B.14).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "drcnn/autograd/functions.h"
#include "drcnn/models/roi_head.h"
#include "drcnn/models/rpn_loss.h"
#include "drcnn/ops/anchors.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/shape_ops.h"
#include "reference/assigner_ref.h"
#include "reference/loss_reference.h"

using namespace drcnn;

namespace {

using Box = std::array<double, 4>;

std::vector<double> flat(const Box& b) { return {b.begin(), b.end()}; }

double iou(const Box& a, const Box& b) { return ref::box_overlaps(flat(a), flat(b), false)[0]; }

// DeltaXYWH encode of gt w.r.t. p, divided by stds (means 0).
Box encode(const Box& p, const Box& g, const Box& stds) {
  const std::vector<double> t = ref::box_encode(flat(p), flat(g), {0, 0, 0, 0}, stds);
  return {t[0], t[1], t[2], t[3]};
}

// One level at stride 8 with one 16 x 16 anchor per cell (ratio 1, scale 2).
ops::AnchorConfig one_anchor_per_cell() {
  ops::AnchorConfig c;
  c.strides = {8};
  c.ratios = {1.0};
  c.scales = {2.0};
  return c;
}

double bce(double x, double y) { return ref::bce_with_logits({x}, {y})[0]; }

double smooth_l1(double d, double beta) { return ref::smooth_l1({d}, {0.0}, beta)[0]; }

Tensor boxes_tensor(const std::vector<Box>& boxes) {
  std::vector<double> flat;
  for (const Box& b : boxes) flat.insert(flat.end(), b.begin(), b.end());
  return Tensor::from_vector(flat, Shape{int64_t(boxes.size()), 4});
}

std::vector<Box> boxes_of(const Tensor& t) {
  const std::vector<double> v = t.to(DType::Float64).to_vector<double>();
  std::vector<Box> out;
  for (size_t i = 0; i + 3 < v.size(); i += 4) out.push_back({v[i], v[i + 1], v[i + 2], v[i + 3]});
  return out;
}

}  // namespace

TEST_CASE("rpn_loss: targets, sampling scope and the N_s normaliser match a float64 recomputation",
          "[models][rpn][loss]") {
  // One level of 4 x 5 cells.
  const ops::AnchorConfig acfg = one_anchor_per_cell();
  const std::vector<ops::FeatureSize> sizes{{4, 5}};
  const Tensor anchors = ops::grid_anchors(acfg, sizes, DType::Float64)[0];
  const std::vector<Box> anchor_boxes = boxes_of(anchors);
  REQUIRE(anchor_boxes.size() == 20);

  // Image 0: two GTs, the last column invalid (its padded width ends at 32 px); image 1: no GT.
  const std::vector<Box> gt0{{0, 0, 16, 16}, {14, 10, 34, 28}};
  std::vector<bool> valid0(20, true);
  for (int y = 0; y < 4; ++y) valid0[size_t(y * 5 + 4)] = false;
  const std::vector<std::vector<bool>> valid{valid0, std::vector<bool>(20, true)};
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{32, 32}, Boxes(boxes_tensor(gt0)), Tensor::from_vector(std::vector<int64_t>{0, 0}));
  targets.emplace_back(ImageSize{32, 40}, Boxes(Tensor::zeros({0, 4}, DType::Float64)), Tensor::zeros({0}, DType::Int64));

  // Head outputs: objectness logits and deltas with distinct values.
  std::vector<double> logit_values(2 * 20), delta_values(2 * 4 * 20);
  for (size_t i = 0; i < logit_values.size(); ++i) logit_values[i] = 0.37 * std::sin(double(i)) - 0.1;
  for (size_t i = 0; i < delta_values.size(); ++i) delta_values[i] = 0.21 * std::cos(1.3 * double(i));
  models::RpnLevelOutput level{Variable(Tensor::from_vector(logit_values, Shape{2, 1, 4, 5}), true),
                               Variable(Tensor::from_vector(delta_values, Shape{2, 4, 4, 5}), true)};
  std::vector<Tensor> flags;
  for (const auto& v : valid) {
    std::vector<uint8_t> bytes(v.begin(), v.end());
    flags.push_back(Tensor::from_vector(bytes, Shape{20}).to(DType::Bool));
  }
  Generator gen(5);
  const models::RpnLossOutput out = models::rpn_loss({level}, {anchors}, flags, targets, models::RpnLossConfig{}, gen);

  // Reference: mmdet MaxIoUAssigner (0.7 / 0.3, low-quality at 0.3) over the valid anchors;
  // all of them are sampled (20 < 256, positives < 128).
  double cls_sum = 0, reg_sum = 0, n_s = 0;
  int64_t num_pos = 0, num_neg = 0;
  for (size_t img = 0; img < 2; ++img) {
    const std::vector<Box> gts = img == 0 ? gt0 : std::vector<Box>{};
    std::vector<int64_t> assigned(20, -2);  // -2 invalid, else the reference's gt_inds
    std::vector<double> gt_flat, cand_flat;
    std::vector<size_t> cand_anchor;
    for (const Box& g : gts) gt_flat.insert(gt_flat.end(), g.begin(), g.end());
    for (size_t a = 0; a < 20; ++a)
      if (valid[img][a]) {
        cand_flat.insert(cand_flat.end(), anchor_boxes[a].begin(), anchor_boxes[a].end());
        cand_anchor.push_back(a);
      }
    const ref::AssignRef r = ref::assign(ref::iou_matrix(gt_flat, cand_flat), cand_anchor.size(),
                                         models::MaxIoUAssignerOptions::rpn(), ref::exact_threshold);
    for (size_t j = 0; j < cand_anchor.size(); ++j) assigned[cand_anchor[j]] = r.gt_inds[j];
    int64_t p = 0, q = 0;
    for (size_t a = 0; a < 20; ++a) {
      // Flattened position (y, x, a) == anchor index a (one anchor per cell).
      const double x = logit_values[img * 20 + a];
      if (assigned[a] > 0) {
        ++p;
        cls_sum += bce(x, 1.0);
        const Box t = encode(anchor_boxes[a], gts[size_t(assigned[a] - 1)], {1, 1, 1, 1});
        for (int c = 0; c < 4; ++c) reg_sum += std::fabs(delta_values[img * 80 + size_t(c) * 20 + a] - t[size_t(c)]);
      } else if (assigned[a] == 0) {
        ++q;
        cls_sum += bce(x, 0.0);
      }
    }
    num_pos += p;
    num_neg += q;
    n_s += double(std::max<int64_t>(p, 1) + std::max<int64_t>(q, 1));
  }
  CHECK(num_pos >= 2);
  CHECK(out.num_pos == num_pos);
  CHECK(out.num_neg == num_neg);
  CHECK(out.avg_factor == n_s);
  // Float64 end to end; the kernel sums in a different order: 1e-12 relative.
  CHECK(out.loss_cls.data().item<double>() == Approx(cls_sum / n_s).epsilon(1e-12));
  CHECK(out.loss_bbox.data().item<double>() == Approx(reg_sum / n_s).epsilon(1e-12));

  // Gradients reach the sampled anchors only: an invalid anchor's logit gets none.
  Variable total = out.loss_cls + out.loss_bbox;
  total.backward();
  const std::vector<double> g = level.objectness.grad().to_vector<double>();
  CHECK(g[4] == 0.0);  // image 0, cell (0, 4): invalid
  CHECK(g[20 + 4] != 0.0);  // image 1, same cell: a sampled negative
}

TEST_CASE("rpn_loss: no positive anywhere gives a zero box loss that still back-propagates", "[models][rpn][loss]") {
  const ops::AnchorConfig acfg = one_anchor_per_cell();
  const Tensor anchors = ops::grid_anchors(acfg, {{2, 2}}, DType::Float64)[0];
  models::RpnLevelOutput level{Variable(Tensor::full({1, 1, 2, 2}, 0.5, DType::Float64), true),
                               Variable(Tensor::full({1, 4, 2, 2}, 0.25, DType::Float64), true)};
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{16, 16}, Boxes(Tensor::zeros({0, 4}, DType::Float64)), Tensor::zeros({0}, DType::Int64));
  Generator gen(1);
  const models::RpnLossOutput out = models::rpn_loss({level}, {anchors}, {Tensor::ones({4}, DType::Bool)}, targets,
                                                     models::RpnLossConfig{}, gen);
  CHECK(out.num_pos == 0);
  CHECK(out.num_neg == 4);
  CHECK(out.avg_factor == 5.0);  // max(0, 1) + max(4, 1)
  CHECK(out.loss_bbox.data().item<double>() == 0.0);
  CHECK(out.loss_cls.data().item<double>() == Approx(4 * bce(0.5, 0.0) / 5).epsilon(1e-14));
  Variable total = out.loss_cls + out.loss_bbox;
  total.backward();
  CHECK(level.deltas.has_grad());
}

TEST_CASE("rpn_loss: bad inputs name the problem", "[models][rpn][loss]") {
  const ops::AnchorConfig acfg = one_anchor_per_cell();
  const Tensor anchors = ops::grid_anchors(acfg, {{2, 2}}, DType::Float64)[0];
  models::RpnLevelOutput level{Variable(Tensor::zeros({1, 1, 2, 2}, DType::Float64)),
                               Variable(Tensor::zeros({1, 4, 2, 2}, DType::Float64))};
  std::vector<Instances> targets(1);
  Generator gen(1);
  CHECK_THROWS_WITH(models::rpn_loss({level}, {anchors}, {Tensor::ones({5}, DType::Bool)}, targets, {}, gen),
                    Catch::Contains("valid flags must be bool [4]"));
  CHECK_THROWS_WITH(models::rpn_loss({level}, {anchors}, {}, targets, {}, gen), Catch::Contains("1 images but 0"));
  const Tensor more_anchors = ops::grid_anchors(acfg, {{2, 3}}, DType::Float64)[0];
  CHECK_THROWS_WITH(models::rpn_loss({level}, {more_anchors}, {Tensor::ones({4}, DType::Bool)}, targets, {}, gen),
                    Catch::Contains("6 anchors for 4 predictions"));
}

TEST_CASE("RoiHead::loss: labels, targets, dynamic beta and both normalisers match a float64 recomputation",
          "[models][roi_head][loss]") {
  models::RoiHeadConfig cfg;
  cfg.bbox_head = models::BBoxHeadOptions{2, 7, 8, 3};
  cfg.featmap_strides = {4};
  Generator gen(3);
  models::RoiHead<double> head(cfg, gen);
  // Constant head outputs: zero weights in fc_cls / fc_reg, known biases. Then every RoI's
  // logits are b and every RoI's deltas q, whatever its features.
  const std::vector<double> b{0.3, -0.2, 0.5, 0.1};
  std::vector<double> q(12);
  for (size_t i = 0; i < q.size(); ++i) q[i] = 0.15 * double(i % 5) - 0.3;
  for (auto& [name, p] : head.named_parameters()) {
    if (name == "bbox_head.fc_cls.weight" || name == "bbox_head.fc_reg.weight") p.mutable_data() = ops::mul(p.data(), 0.0);
    if (name == "bbox_head.fc_cls.bias") p.mutable_data() = Tensor::from_vector(b, Shape{4});
    if (name == "bbox_head.fc_reg.bias") p.mutable_data() = Tensor::from_vector(q, Shape{12});
  }
  const Variable feature(Tensor::rand({1, 2, 16, 16}, gen, DType::Float64), true);
  const std::vector<Box> gts{{4, 4, 30, 28}, {34, 30, 60, 62}};
  const std::vector<int64_t> gt_labels{2, 0};
  const std::vector<Box> props{{5, 3, 29, 30}, {0, 0, 20, 20}, {36, 28, 62, 60}, {40, 40, 50, 50}, {2, 40, 20, 60},
                               {10, 8, 40, 32}};
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{64, 64}, Boxes(boxes_tensor(gts)), Tensor::from_vector(gt_labels));
  const train::DynamicParams params{0.55, 0.4};
  const models::RoiLossOutput out = head.loss({feature}, {boxes_tensor(props)}, targets, params, gen);

  // Reference: candidates = GTs then proposals; pos = neg = 0.55, no low-quality matching; all
  // sampled (8 < 512, positives < 128).
  std::vector<Box> cand = gts;
  cand.insert(cand.end(), props.begin(), props.end());
  double ce_sum = 0, reg_sum = 0;
  int64_t num_pos = 0;
  std::vector<double> max_ov, errors;
  const double lse = std::log(std::exp(b[0]) + std::exp(b[1]) + std::exp(b[2]) + std::exp(b[3]));
  for (size_t j = 0; j < cand.size(); ++j) {
    double best = 0;
    size_t arg = 0;
    for (size_t g = 0; g < gts.size(); ++g) {
      const double v = iou(cand[j], gts[g]);
      if (v > best) best = v, arg = g;
    }
    if (j < gts.size()) best = 1.0, arg = j;  // a prepended GT matches itself with overlap 1
    max_ov.push_back(best);
    if (best >= params.iou_threshold) {
      ++num_pos;
      const int64_t c = gt_labels[arg];
      ce_sum += lse - b[size_t(c)];
      const Box t = encode(cand[j], gts[arg], {0.1, 0.1, 0.2, 0.2});
      for (size_t k = 0; k < 4; ++k) reg_sum += smooth_l1(q[size_t(c) * 4 + k] - t[k], params.beta);
      errors.push_back((std::fabs(t[0]) + std::fabs(t[1])) / 2);
    } else {
      ce_sum += lse - b[3];  // background is the last class
    }
  }
  const double r = double(cand.size());
  CHECK(num_pos >= 4);
  CHECK(out.num_pos == num_pos);
  CHECK(out.num_sampled == int64_t(cand.size()));
  CHECK(out.loss_cls.data().item<double>() == Approx(ce_sum / r).epsilon(1e-12));
  CHECK(out.loss_bbox.data().item<double>() == Approx(reg_sum / r).epsilon(1e-12));
  REQUIRE(out.stats.max_overlaps.size() == 1);
  REQUIRE(out.stats.max_overlaps[0].size() == max_ov.size());
  for (size_t j = 0; j < max_ov.size(); ++j) CHECK(out.stats.max_overlaps[0][j] == Approx(max_ov[j]).margin(1e-12));
  std::vector<double> got = out.stats.regression_errors;
  std::sort(got.begin(), got.end());
  std::sort(errors.begin(), errors.end());
  REQUIRE(got.size() == errors.size());
  for (size_t j = 0; j < got.size(); ++j) CHECK(got[j] == Approx(errors[j]).margin(1e-12));
  // Every logit equals b: the argmax is class 2, so accuracy = share of RoIs labelled 2.
  double label2 = 0;
  for (size_t j = 0; j < cand.size(); ++j) {
    double best = 0;
    size_t arg = 0;
    for (size_t g = 0; g < gts.size(); ++g)
      if (iou(cand[j], gts[g]) > best) best = iou(cand[j], gts[g]), arg = g;
    if (j < gts.size()) best = 1, arg = j;
    label2 += best >= params.iou_threshold && gt_labels[arg] == 2;
  }
  CHECK(out.accuracy == Approx(100.0 * label2 / r).epsilon(1e-12));
  // The seed's populations (DynamicParams::population kOriginal) change the statistics only: the
  // values of append_original_dynamic_stats (every candidate, GTs appended), the same losses.
  train::DynamicParams seed = params;
  seed.population = train::StatPopulation::kOriginal;
  const models::RoiLossOutput o2 = head.loss({feature}, {boxes_tensor(props)}, targets, seed, gen);
  CHECK(o2.loss_cls.data().item<double>() == Approx(ce_sum / r).epsilon(1e-12));
  CHECK(o2.loss_bbox.data().item<double>() == Approx(reg_sum / r).epsilon(1e-12));
  train::DynamicStats want;
  models::append_original_dynamic_stats(boxes_tensor(props), boxes_tensor(gts), 0.55, {0, 0, 0, 0},
                                        {0.1, 0.1, 0.2, 0.2}, false, want);
  CHECK(want.max_overlaps[0].size() == cand.size());
  CHECK(want.regression_errors.size() == cand.size());
  CHECK(o2.stats.max_overlaps == want.max_overlaps);
  CHECK(o2.stats.regression_errors == want.regression_errors);
  // Gradient flows back to the features through RoIAlign and the shared FCs.
  Variable total = out.loss_cls + out.loss_bbox;
  total.backward();
  CHECK(feature.has_grad());
}

TEST_CASE("RoiHead::loss rejects a bad threshold or beta", "[models][roi_head][loss]") {
  models::RoiHeadConfig cfg;
  cfg.bbox_head = models::BBoxHeadOptions{2, 7, 8, 3};
  cfg.featmap_strides = {4};
  Generator gen(3);
  models::RoiHead<double> head(cfg, gen);
  const Variable feature(Tensor::zeros({1, 2, 8, 8}, DType::Float64));
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{32, 32}, Boxes(boxes_tensor({{1, 1, 9, 9}})), Tensor::from_vector(std::vector<int64_t>{1}));
  const Tensor props = boxes_tensor({{0, 0, 8, 8}});
  CHECK_THROWS_WITH(head.loss({feature}, {props}, targets, {0.5, 0.0}, gen), Catch::Contains("beta finite and > 0"));
  CHECK_THROWS_WITH(head.loss({feature}, {props}, targets, {1.5, 1.0}, gen), Catch::Contains("IoU threshold"));
  CHECK_THROWS_WITH(head.loss({feature}, {props, props}, targets, {0.5, 1.0}, gen), Catch::Contains("2 proposal sets"));
}

TEST_CASE("multiclass_nms: score threshold, per-class suppression, order and the cap", "[models][roi_head][nms]") {
  // 3 rows x 2 classes. Row boxes per class; class 0 boxes of rows 0 and 1 overlap (IoU 0.81),
  // class 1 boxes are the same boxes (a different class never suppresses).
  const std::vector<Box> b{{0, 0, 10, 10}, {0, 0, 10, 10}, {1, 1, 10, 10}, {1, 1, 10, 10}, {20, 20, 30, 30}, {20, 20, 30, 30}};
  std::vector<double> flat;
  for (const Box& x : b) flat.insert(flat.end(), x.begin(), x.end());
  const Tensor boxes = Tensor::from_vector(flat, Shape{3, 8});
  // scores [3, 3], background last.
  const Tensor scores = Tensor::from_vector(std::vector<double>{0.6, 0.3, 0.1, 0.5, 0.04, 0.46, 0.2, 0.05, 0.75}, Shape{3, 3});
  const models::NmsDetections d = models::multiclass_nms(boxes, scores, 0.05, 0.5, 100);
  // Candidates > 0.05: (0,c0) .6, (0,c1) .3, (1,c0) .5, (2,c0) .2 ((1,c1) .04 and (2,c1) .05 fail).
  // (1,c0) is suppressed by (0,c0). Kept in score order: .6 c0, .3 c1, .2 c0.
  CHECK(d.scores.to_vector<double>() == std::vector<double>{0.6, 0.3, 0.2});
  CHECK(d.labels.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0});
  CHECK(boxes_of(d.boxes) == std::vector<Box>{{0, 0, 10, 10}, {0, 0, 10, 10}, {20, 20, 30, 30}});
  const models::NmsDetections capped = models::multiclass_nms(boxes, scores, 0.05, 0.5, 2);
  CHECK(capped.scores.to_vector<double>() == std::vector<double>{0.6, 0.3});
  const models::NmsDetections none = models::multiclass_nms(boxes, scores, 0.9, 0.5, 100);
  CHECK(none.boxes.size(0) == 0);
  CHECK_THROWS_WITH(models::multiclass_nms(boxes.narrow(1, 0, 4), scores, 0.05, 0.5, 100), Catch::Contains("expected boxes [3, 8]"));
}

TEST_CASE("softmax_rows equals the float64 definition", "[models][roi_head]") {
  const std::vector<double> x{1.0, 2.0, -3.0, 1000.0, 1001.0, 999.0};
  const std::vector<double> s = models::softmax_rows(Tensor::from_vector(x, Shape{2, 3})).to_vector<double>();
  for (int r = 0; r < 2; ++r) {
    double z = 0;
    const double m = *std::max_element(x.begin() + r * 3, x.begin() + r * 3 + 3);
    for (int c = 0; c < 3; ++c) z += std::exp(x[size_t(r * 3 + c)] - m);
    for (int c = 0; c < 3; ++c) CHECK(s[size_t(r * 3 + c)] == Approx(std::exp(x[size_t(r * 3 + c)] - m) / z).epsilon(1e-15));
  }
}

TEST_CASE("RoiHead::predict decodes per class, clips, rescales and keeps the best", "[models][roi_head][predict]") {
  models::RoiHeadConfig cfg;
  cfg.bbox_head = models::BBoxHeadOptions{2, 7, 8, 2};
  cfg.featmap_strides = {4};
  Generator gen(3);
  models::RoiHead<double> head(cfg, gen);
  // Zero deltas and fixed logits: class 1 wins every RoI with softmax (0.1, 0.7, 0.2).
  for (auto& [name, p] : head.named_parameters()) {
    if (name == "bbox_head.fc_cls.weight" || name == "bbox_head.fc_reg.weight") p.mutable_data() = ops::mul(p.data(), 0.0);
    if (name == "bbox_head.fc_reg.bias") p.mutable_data() = ops::mul(p.data(), 0.0);
    if (name == "bbox_head.fc_cls.bias")
      p.mutable_data() = Tensor::from_vector(std::vector<double>{std::log(0.1), std::log(0.7), std::log(0.2)}, Shape{3});
  }
  const Variable feature(Tensor::rand({1, 2, 16, 16}, gen, DType::Float64));
  // The second proposal sticks out of the 60 x 50 image and is clipped; the third overlaps the
  // first (IoU 0.9) and is suppressed within its class.
  const Tensor props = boxes_tensor({{10, 10, 30, 30}, {40, 20, 70, 45}, {10, 10, 30, 28}});
  const std::vector<Instances> dets = head.predict({feature}, {props}, {ImageSize{50, 60}}, {{2.0, 0.5}}, {ImageSize{100, 30}});
  REQUIRE(dets.size() == 1);
  const Instances& d = dets[0];
  CHECK(d.image_size == ImageSize{100, 30});
  // Pairs > 0.05: every RoI x both classes (0.1 and 0.7); NMS per class leaves RoIs 0 and 1 for
  // each class: order 0.7 (RoI 0), 0.7 (RoI 1), 0.1 (RoI 0), 0.1 (RoI 1) (stable by position).
  REQUIRE(d.size() == 4);
  CHECK(d.labels.to_vector<int64_t>() == std::vector<int64_t>{1, 1, 0, 0});
  const std::vector<double> s = d.scores.to_vector<double>();
  CHECK(s[0] == Approx(0.7).epsilon(1e-12));
  CHECK(s[3] == Approx(0.1).epsilon(1e-12));
  // Boxes divided by (w_scale, h_scale) = (2, 0.5) after clipping to (50, 60).
  const std::vector<Box> boxes = boxes_of(d.boxes.tensor());
  CHECK(boxes[0] == Box{5, 20, 15, 60});
  CHECK(boxes[1] == Box{20, 40, 30, 90});
}
