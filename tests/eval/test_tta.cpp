// Test-time augmentation (include/drcnn/eval/tta.h):
// - one scale without flip is exactly the plain test path (Resize + Normalize + predict with the
//   boxes rescaled): the merge re-runs a per-class NMS at the threshold the detector already
//   applied, which keeps every box (greedy NMS keeps a box unless a kept box of its class
//   overlaps it with IoU > thr, and the kept set's pairwise IoUs are all <= thr), in the same
//   descending score order, and the top-k is no smaller than the detector's;
// - a flipped box flips back exactly (dyadic coordinates: W - x is exact), and an image flipped
//   twice is the image;
// - merging equals a float64 recomputation written here apart from the code (flip back,
//   concatenate, per-class greedy NMS, stable score order, top-k) on hand cases.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <vector>

#include "common/allclose.h"
#include "drcnn/core/generator.h"
#include "drcnn/data/transforms.h"
#include "drcnn/eval/tta.h"
#include "drcnn/models/detector.h"
#include "drcnn/structures/image_list.h"

using namespace drcnn;

namespace {
data::Image random_image(int32_t w, int32_t h, uint64_t seed) {
  data::Image im(w, h);
  uint64_t x = seed;
  for (auto& p : im.pixels) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    p = uint8_t(x >> 56);
  }
  return im;
}

Instances make_view(const std::vector<float>& boxes, const std::vector<float>& scores, const std::vector<int64_t>& labels,
                    ImageSize size) {
  const int64_t n = int64_t(scores.size());
  return Instances(size, Boxes(Tensor::from_vector(boxes, Shape{n, 4})), Tensor::from_vector(labels, Shape{n}),
                   Tensor::from_vector(scores, Shape{n}));
}

/// The float64 reference of merge_aug_detections.
struct Ref {
  std::vector<double> boxes, scores;
  std::vector<int64_t> labels;
};
Ref reference_merge(const std::vector<Instances>& views, const std::vector<bool>& flipped, double W, double thr,
                    size_t max_per_img) {
  std::vector<std::array<double, 4>> b;
  std::vector<double> s;
  std::vector<int64_t> l;
  for (size_t v = 0; v < views.size(); ++v) {
    const std::vector<double> bv = views[v].boxes.tensor().to_vector<double>();
    const std::vector<double> sv = views[v].scores.to_vector<double>();
    const std::vector<int64_t> lv = views[v].labels.to_vector<int64_t>();
    for (size_t k = 0; k < sv.size(); ++k) {
      std::array<double, 4> box{bv[4 * k], bv[4 * k + 1], bv[4 * k + 2], bv[4 * k + 3]};
      if (flipped[v]) box = {W - bv[4 * k + 2], bv[4 * k + 1], W - bv[4 * k], bv[4 * k + 3]};
      b.push_back(box);
      s.push_back(sv[k]);
      l.push_back(lv[k]);
    }
  }
  std::vector<size_t> order(s.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t c) { return s[a] > s[c]; });
  const auto iou = [&](size_t a, size_t c) {
    const double iw = std::max(0.0, std::min(b[a][2], b[c][2]) - std::max(b[a][0], b[c][0]));
    const double ih = std::max(0.0, std::min(b[a][3], b[c][3]) - std::max(b[a][1], b[c][1]));
    const double inter = iw * ih;
    const double area_a = (b[a][2] - b[a][0]) * (b[a][3] - b[a][1]), area_c = (b[c][2] - b[c][0]) * (b[c][3] - b[c][1]);
    return inter / (area_a + area_c - inter);
  };
  std::vector<size_t> kept;
  for (size_t i : order) {
    bool keep = true;
    for (size_t k : kept) keep = keep && !(l[k] == l[i] && iou(k, i) > thr);
    if (keep) kept.push_back(i);
  }
  Ref r;
  for (size_t j = 0; j < kept.size() && j < max_per_img; ++j) {
    const size_t i = kept[j];
    r.boxes.insert(r.boxes.end(), b[i].begin(), b[i].end());
    r.scores.push_back(s[i]);
    r.labels.push_back(l[i]);
  }
  return r;
}
}  // namespace

TEST_CASE("tta: one scale without flip is exactly the plain predict", "[eval][tta]") {
  Generator gen(4);
  models::TwoStageDetector<float> model(models::DetectorConfig::small_cpu(2), gen);
  model.eval();
  const data::Image image = random_image(90, 70, 3);
  data::ResizeOptions r;
  r.scales = {{160, 128}};
  // The plain path (tools::predict_image's): test pipeline, one image, boxes rescaled.
  data::Sample sample = data::make_sample(data::DetectionRecord{}, image);
  data::RandomStream rng(0, 0);
  data::test_pipeline(r).run(sample, rng);
  const Instances plain =
      model.predict(ImageList::from_images({sample.tensor}, 32), {{double(sample.meta.scale_w), double(sample.meta.scale_h)}},
                    {ImageSize{70, 90}})
          .at(0);
  REQUIRE(plain.boxes.size() > 10);  // random weights, 2 classes: plenty of detections above 0.05
  eval::TtaOptions o;
  o.scales = r.scales;
  o.nms_iou = model.config().roi_head.nms_iou;
  o.max_per_img = model.config().roi_head.max_per_img;
  const Instances tta = eval::predict_tta(model, image, o, {}, Device::cpu());
  CHECK(tta.image_size == plain.image_size);
  CHECK(test::bitwise_equal(tta.boxes.tensor(), plain.boxes.tensor()));
  CHECK(test::bitwise_equal(tta.scores, plain.scores));
  CHECK(test::bitwise_equal(tta.labels, plain.labels));
}

TEST_CASE("tta: flipping back is exact, and the flip view is the model on the flipped image", "[eval][tta]") {
  // Dyadic coordinates below 2^12 with 6 fraction bits: W - x and W - (W - x) are exact in float32.
  const Tensor b = Tensor::from_vector(std::vector<float>{0.015625f, 3.5f, 87.25f, 40.0f, 12.75f, 0.0f, 90.0f, 69.984375f},
                                       Shape{2, 4});
  const Tensor f = eval::flip_boxes_horizontal(b, 90.0);
  test::expect_allclose(f, std::vector<double>{2.75, 3.5, 89.984375, 40.0, 0.0, 0.0, 77.25, 69.984375}, 0, 0);
  CHECK(test::bitwise_equal(eval::flip_boxes_horizontal(f, 90.0), b));
  const data::Image image = random_image(37, 21, 5);
  CHECK(data::flip_horizontal(data::flip_horizontal(image)).pixels == image.pixels);

  // predict_tta with flip: its second view is the detector on the mirrored (resized) image, boxes
  // mapped back. Build that view by hand from the same pipeline pieces and merge.
  Generator gen(4);
  models::TwoStageDetector<float> model(models::DetectorConfig::small_cpu(2), gen);
  model.eval();
  const data::Image im = random_image(90, 70, 3);
  data::ResizeOptions r;
  r.scales = {{160, 128}};
  std::vector<Instances> views;
  for (bool flip : {false, true}) {
    data::Pipeline p;
    p.emplace<data::Resize>(r);
    if (flip) p.emplace<data::RandomFlip>(1.0);
    p.emplace<data::Normalize>();
    data::Sample s = data::make_sample(data::DetectionRecord{}, im);
    data::RandomStream rng(0, 0);
    p.run(s, rng);
    REQUIRE(s.meta.flipped == flip);
    views.push_back(model
                        .predict(ImageList::from_images({s.tensor}, 32),
                                 {{double(s.meta.scale_w), double(s.meta.scale_h)}}, {ImageSize{70, 90}})
                        .at(0));
  }
  eval::TtaOptions o;
  o.scales = r.scales;
  o.flip = true;
  const Instances tta = eval::predict_tta(model, im, o, {}, Device::cpu());
  const Instances by_hand = eval::merge_aug_detections(views, {false, true}, ImageSize{70, 90}, 0.5, 100);
  CHECK(test::bitwise_equal(tta.boxes.tensor(), by_hand.boxes.tensor()));
  CHECK(test::bitwise_equal(tta.scores, by_hand.scores));
  CHECK(test::bitwise_equal(tta.labels, by_hand.labels));
  CHECK_FALSE(test::bitwise_equal(tta.boxes.tensor(), views[0].boxes.tensor()));  // the flip view counts
}

TEST_CASE("tta: merging equals a float64 recomputation on hand cases", "[eval][tta]") {
  const ImageSize size{100, 100};
  // View 0 (not flipped): two overlapping class-0 boxes (IoU 1520 / 1680 = 0.905: the second is
  // suppressed), the same box as class 1 (kept: other class), a lone class-0 box at score 0.3.
  const Instances a = make_view({10, 10, 50, 50, 12, 10, 52, 50, 10, 10, 50, 50, 60, 60, 90, 90}, {0.9f, 0.8f, 0.7f, 0.3f},
                                {0, 0, 1, 0}, size);
  // View 1 (flipped, W = 100): [50, 10, 90, 50] -> [10, 10, 50, 50] (class 0, 0.85: suppressed by
  // 0.9); [5, 20, 35, 80] -> [65, 20, 95, 80] (class 1, 0.95: first); [40, 60, 70, 90] -> [30, 60,
  // 60, 90] (class 0, 0.3: ties view 0's last box, kept after it); [50, 10, 90, 30] -> [10, 10, 50,
  // 30] (class 0, 0.6: IoU 800 / 1600 = 0.5 exactly with the 0.9 box: not suppressed).
  const Instances b = make_view({50, 10, 90, 50, 5, 20, 35, 80, 40, 60, 70, 90, 50, 10, 90, 30},
                                {0.85f, 0.95f, 0.3f, 0.6f}, {0, 1, 0, 0}, size);
  const std::vector<Instances> views{a, b};
  const std::vector<bool> flipped{false, true};
  for (int64_t max_per_img : {int64_t(100), int64_t(3)}) {
    INFO("max_per_img " << max_per_img);
    const Instances m = eval::merge_aug_detections(views, flipped, size, 0.5, max_per_img);
    const Ref r = reference_merge(views, flipped, 100.0, 0.5, size_t(max_per_img));
    CHECK(m.image_size == size);
    test::expect_allclose(m.boxes.tensor(), r.boxes, 0, 0);
    test::expect_allclose(m.scores, r.scores, 0, 0);
    CHECK(m.labels.to_vector<int64_t>() == r.labels);
  }
  // The reference itself, by hand: 0.95 (c1), 0.9 (c0), 0.7 (c1), 0.6 (c0), 0.3 (c0, view 0), 0.3 (c0, view 1).
  const Ref r = reference_merge(views, flipped, 100.0, 0.5, 100);
  CHECK(r.labels == std::vector<int64_t>{1, 0, 1, 0, 0, 0});
  CHECK(r.boxes == std::vector<double>{65, 20, 95, 80, 10, 10, 50, 50, 10, 10, 50, 50, 10, 10, 50, 30,
                                       60, 60, 90, 90, 30, 60, 60, 90});
  REQUIRE_THROWS_WITH(eval::merge_aug_detections(views, {false}, size, 0.5, 100),
                      Catch::Matchers::Contains("merge_aug_detections: one flip flag per view expected (2), got 1"));
}
