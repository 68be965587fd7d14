// CPU vs CUDA parity of the whole detector: one training forward (losses, sample counts,
// Dynamic R-CNN statistics), the backward's gradients, and predict (boxes, scores and labels
// of every detection). Float64, the small preset with both samplers taking every candidate
// (so the counts must be equal whatever the draws); the two models start from the same seed.
// Runs only where a CUDA device exists (the test main exits 77 elsewhere). Tolerance 1e-8
// relative: cuDNN and the CPU GEMM sum the convolutions in different orders (float64
// rounding ~1e-15 per op, amplified through ~40 layers).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "drcnn/models/detector.h"

using namespace drcnn;

namespace {
const Device kGpu = Device::cuda(0);

models::DetectorConfig parity_config() {
  models::DetectorConfig c = models::DetectorConfig::small_cpu(3);
  c.neck.out_channels = 32;
  c.rpn_head = models::RpnHeadOptions{32, 32, 3};
  c.roi_head.bbox_head = models::BBoxHeadOptions{32, 7, 64, 3};
  c.rpn_loss.sampler.num = 1 << 20;
  c.roi_head.sampler.num = 1 << 20;
  // predict keeps every detection above score_thr (a fresh model: 421 and 510 on the CPU):
  // no cut at 100 among scores that agree to 1e-9 (the second image has 248 such
  // neighbours), where the two devices' last bits could pick different detections.
  c.roi_head.max_per_img = 0;
  return c;
}

Instances on(const Instances& x, Device d) {
  return Instances(x.image_size, x.boxes.to(d), x.labels.to(d), Tensor(), x.has_ignore() ? x.ignore.to(d) : Tensor());
}

double rel(double a, double b) { return std::fabs(a - b) / std::max(1e-12, std::fabs(b)); }
}  // namespace

TEST_CASE("cuda/detector: forward_train, gradients and predict match the CPU", "[cuda][detector]") {
  Generator g_cpu(11), g_gpu(11), data(3);
  models::TwoStageDetector<double> cpu(parity_config(), g_cpu);
  models::TwoStageDetector<double> gpu(parity_config(), g_gpu);
  gpu.to(kGpu);
  const ImageList images = ImageList::from_images(
      {Tensor::rand({3, 60, 90}, data, DType::Float64), Tensor::rand({3, 40, 56}, data, DType::Float64)}, 32);
  const ImageList images_gpu(images.tensor().to(kGpu), images.image_sizes());
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{60, 90},
                       Boxes(Tensor::from_vector(std::vector<double>{4, 6, 40, 30, 50, 10, 88, 58}, Shape{2, 4})),
                       Tensor::from_vector(std::vector<int64_t>{0, 2}));
  targets.emplace_back(ImageSize{40, 56}, Boxes(Tensor::from_vector(std::vector<double>{10, 8, 30, 36}, Shape{1, 4})),
                       Tensor::from_vector(std::vector<int64_t>{1}));
  const std::vector<Instances> targets_gpu{on(targets[0], kGpu), on(targets[1], kGpu)};

  Generator s_cpu(5), s_gpu(5);
  models::DetectorLosses a = cpu.forward_train(images, targets, {0.5, 0.5}, s_cpu);
  models::DetectorLosses b = gpu.forward_train(images_gpu, targets_gpu, {0.5, 0.5}, s_gpu);
  CHECK(a.rpn_num_pos == b.rpn_num_pos);
  CHECK(a.rpn_num_neg == b.rpn_num_neg);
  CHECK(a.rcnn_num_pos == b.rcnn_num_pos);
  CHECK(a.rcnn_num_sampled == b.rcnn_num_sampled);
  for (const auto& [name, v] : a.losses)
    CHECK(rel(b.losses.at(name).data().to(Device::cpu()).item<double>(), v.data().item<double>()) < 1e-8);
  REQUIRE(a.stats.max_overlaps.size() == b.stats.max_overlaps.size());
  for (size_t i = 0; i < a.stats.max_overlaps.size(); ++i) CHECK(a.stats.max_overlaps[i].size() == b.stats.max_overlaps[i].size());

  a.total.backward();
  b.total.backward();
  const auto pa = cpu.named_parameters(), pb = gpu.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!pa[i].second.has_grad()) continue;
    REQUIRE(pb[i].second.has_grad());
    const std::vector<double> ga = pa[i].second.grad().to_vector<double>();
    const std::vector<double> gb = pb[i].second.grad().to(Device::cpu()).to_vector<double>();
    double scale = 0, diff = 0;
    for (size_t k = 0; k < ga.size(); ++k) {
      scale = std::max(scale, std::fabs(ga[k]));
      diff = std::max(diff, std::fabs(ga[k] - gb[k]));
    }
    INFO(pa[i].first);
    CHECK(diff <= 1e-8 * std::max(scale, 1e-12));
  }

  cpu.eval();
  gpu.eval();
  const auto da = cpu.predict(images), db = gpu.predict(images_gpu);
  REQUIRE(da.size() == db.size());
  size_t detections = 0;
  for (size_t i = 0; i < da.size(); ++i) {
    INFO("image " << i);
    REQUIRE(da[i].size() == db[i].size());
    REQUIRE(db[i].boxes.tensor().device() == kGpu);
    const std::vector<double> ba = da[i].boxes.tensor().to_vector<double>();
    const std::vector<double> bb = db[i].boxes.tensor().to(Device::cpu()).to_vector<double>();
    const std::vector<double> sa = da[i].scores.to_vector<double>();
    const std::vector<double> sb = db[i].scores.to(Device::cpu()).to_vector<double>();
    const std::vector<int64_t> la = da[i].labels.to_vector<int64_t>();
    const std::vector<int64_t> lb = db[i].labels.to(Device::cpu()).to_vector<int64_t>();
    // Same tolerance as the losses (1e-8 relative; boxes relative to the image's larger side).
    // Detections come out sorted by score; two whose scores agree within the tolerance may
    // swap places, so each CPU detection is matched to an unused CUDA one among those.
    const double box_tol = 1e-8 * 90, score_tol = 1e-8;
    std::vector<bool> used(sb.size(), false);
    for (size_t k = 0; k < sa.size(); ++k) {
      bool found = false;
      for (size_t m = 0; m < sb.size() && !found; ++m) {
        if (used[m] || la[k] != lb[m] || std::fabs(sa[k] - sb[m]) > score_tol * std::max(1.0, std::fabs(sa[k]))) continue;
        if (m != k && std::fabs(sa[k] - sa[m]) > 2 * score_tol) continue;  // only near-tied detections may swap
        bool same_box = true;
        for (int c = 0; c < 4; ++c) same_box = same_box && std::fabs(ba[4 * k + c] - bb[4 * m + c]) <= box_tol;
        if (same_box) used[m] = found = true;
      }
      INFO("detection " << k << ": label " << la[k] << ", score " << sa[k] << ", box " << ba[4 * k] << " "
                        << ba[4 * k + 1] << " " << ba[4 * k + 2] << " " << ba[4 * k + 3]);
      CHECK(found);
    }
    detections += sa.size();
  }
  // Something to compare (a fresh model of this config keeps 421 + 510 on the CPU).
  CHECK(detections > 100);
}
