// Overfit test of the whole detector on the CPU (issue 5): the small preset, trained from
// scratch on two fixed synthetic images, must drive the total loss down at least 10x and then
// predict every ground-truth box with IoU > 0.8 and the right class.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>

#include "drcnn/models/detector.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/train/dynamic_schedule.h"
#include "drcnn/train/sgd.h"

using namespace drcnn;

namespace {

struct Object {
  float x1, y1, x2, y2;
  int64_t label;  // 0: rectangle, 1: ellipse, 2: cross
};

// A [3, H, W] image: a smooth two-colour gradient with a fixed pseudo-random texture and the
// objects painted as solid shapes of class-specific colours; pixel values are already roughly
// normalised (about zero mean, unit scale).
Tensor paint(int64_t h, int64_t w, const std::vector<Object>& objects, uint32_t seed) {
  std::vector<float> px(size_t(3 * h * w));
  uint32_t state = seed;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      state = state * 1664525u + 1013904223u;
      const float noise = float((state >> 9) & 0xff) / 255.0f - 0.5f;
      for (int c = 0; c < 3; ++c)
        px[size_t((c * h + y) * w + x)] = -0.6f + 0.4f * float(x + c * y) / float(w + h) + 0.3f * noise;
    }
  const float colours[3][3] = {{1.6f, 0.2f, -0.4f}, {-0.2f, 1.5f, 0.3f}, {0.4f, -0.3f, 1.7f}};
  for (const Object& o : objects) {
    const float cx = (o.x1 + o.x2) / 2, cy = (o.y1 + o.y2) / 2, rx = (o.x2 - o.x1) / 2, ry = (o.y2 - o.y1) / 2;
    for (int64_t y = int64_t(o.y1); y < int64_t(o.y2); ++y)
      for (int64_t x = int64_t(o.x1); x < int64_t(o.x2); ++x) {
        const float u = (float(x) + 0.5f - cx) / rx, v = (float(y) + 0.5f - cy) / ry;
        bool inside = true;
        if (o.label == 1) inside = u * u + v * v <= 1.0f;
        if (o.label == 2) inside = std::fabs(u) < 0.3f || std::fabs(v) < 0.3f;
        if (!inside) continue;
        for (int c = 0; c < 3; ++c) px[size_t((c * h + y) * w + x)] = colours[o.label][c];
      }
  }
  return Tensor::from_vector(px, Shape{3, h, w});
}

Instances targets_of(const std::vector<Object>& objects, int64_t h, int64_t w) {
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  for (const Object& o : objects) {
    boxes.insert(boxes.end(), {o.x1, o.y1, o.x2, o.y2});
    labels.push_back(o.label);
  }
  const int64_t n = int64_t(objects.size());
  return Instances({h, w}, Boxes(Tensor::from_vector(boxes, Shape{n, 4})), Tensor::from_vector(labels, Shape{n}));
}

}  // namespace

TEST_CASE("detector overfit: the small preset learns two fixed images", "[models][detector][overfit]") {
  const int64_t h = 128, w = 160;
  const std::vector<std::vector<Object>> scenes = {
      {{12, 14, 60, 50, 0}, {80, 30, 140, 100, 1}, {30, 70, 70, 118, 2}},
      {{20, 20, 110, 64, 1}, {100, 70, 150, 120, 0}, {10, 76, 52, 122, 2}}};
  std::vector<Tensor> images;
  std::vector<Instances> targets;
  for (size_t i = 0; i < scenes.size(); ++i) {
    images.push_back(paint(h, w, scenes[i], uint32_t(7 + i)));
    targets.push_back(targets_of(scenes[i], h, w));
  }
  const ImageList batch = ImageList::from_images(images, 32);

  Generator init_gen(2024);
  models::DetectorConfig cfg = models::DetectorConfig::small_cpu(3);
  models::TwoStageDetector<float> model(cfg, init_gen);
  train::SgdOptions sgd_opt;
  sgd_opt.lr = 0.01;
  sgd_opt.momentum = 0.9;
  sgd_opt.weight_decay = 1e-4;
  std::vector<Variable> params;
  for (const Variable& p : model.parameters())
    if (p.requires_grad()) params.push_back(p);
  train::Sgd sgd(params, sgd_opt);
  train::DynamicSchedule schedule(cfg.dynamic);
  Generator sample_gen(99);

  const int iterations = 200, warmup = 50;
  double first = 0, last = 0;
  for (int it = 0; it < iterations; ++it) {
    sgd.set_lr(sgd_opt.lr * (it < warmup ? 0.001 + (1 - 0.001) * double(it) / warmup : 1.0));
    models::DetectorLosses out = model.forward_train(batch, targets, schedule.current(), sample_gen);
    sgd.zero_grad();
    out.total.backward();
    sgd.step();
    schedule.record(out.stats);
    schedule.step();
    const double total = out.total.data().item<double>();
    REQUIRE(std::isfinite(total));
    if (it < 5) first += total / 5;
    if (it >= iterations - 5) last += total / 5;
    if (it % 20 == 0 || it == iterations - 1)
      std::printf("iter %3d  total %.4f  rpn_cls %.4f rpn_bbox %.4f cls %.4f bbox %.4f acc %.1f  iou_thr %.3f beta %.3f\n",
                  it, total, out.losses.at("loss_rpn_cls").data().item<double>(),
                  out.losses.at("loss_rpn_bbox").data().item<double>(), out.losses.at("loss_cls").data().item<double>(),
                  out.losses.at("loss_bbox").data().item<double>(), out.accuracy, schedule.current().iou_threshold,
                  schedule.current().beta);
  }
  std::printf("total loss: first 5 iterations %.4f, last 5 %.4f (ratio %.1f)\n", first, last, first / last);
  CHECK(first / last >= 10.0);

  model.eval();
  const std::vector<Instances> dets = model.predict(batch);
  for (size_t i = 0; i < scenes.size(); ++i) {
    const Instances& d = dets[i];
    const Tensor iou = ops::box_iou(targets[i].boxes.tensor(), d.boxes.tensor());  // [G, D]
    const std::vector<float> ious = iou.to_vector<float>();
    const std::vector<int64_t> labels = d.labels.to_vector<int64_t>();
    const std::vector<float> scores = d.scores.to_vector<float>();
    for (size_t g = 0; g < scenes[i].size(); ++g) {
      // The best-scoring detection of the right class that overlaps this object.
      double best_iou = 0, best_score = -1;
      for (size_t k = 0; k < labels.size(); ++k)
        if (labels[k] == scenes[i][g].label && ious[g * labels.size() + k] > 0.5 && scores[k] > best_score) {
          best_score = scores[k];
          best_iou = ious[g * labels.size() + k];
        }
      std::printf("image %zu object %zu (class %lld): best detection IoU %.3f score %.3f\n", i, g,
                  (long long)scenes[i][g].label, best_iou, best_score);
      CHECK(best_iou > 0.8);
    }
  }
}
