// CPU vs CUDA parity of training: the same float64 detector (same seed), the same two images
// and targets, three iterations of what engine::Trainer runs per iteration (forward_train with
// the Dynamic R-CNN schedule, backward, clip_grad_norm_on_device, SGD with momentum and weight decay,
// schedule record/step) on each device; the weights, momentum buffers and schedule state must
// agree. Runs only where a CUDA device exists (the test main exits 77 elsewhere).
//
// Tolerance: each weight's change over the three steps (w_3 - w_0) may differ between the
// devices by at most 1e-7 of the largest change of its tensor (floored at 1e-12, for tensors a
// step leaves nearly still, as the detector parity test floors its scale). Why: the single
// forward and backward agree within 1e-8 relative (test_cuda_detector.cpp: cuDNN and the CPU GEMM sum the
// convolutions in different orders, float64 rounding ~1e-16 per op amplified through ~40
// layers); three steps with momentum add up at most ~3 such gradient errors per weight, and
// each later step sees weights that already differ by that much, hence 1e-7 with margin. Both
// samplers take every candidate (num = 2^20), so no random draw can differ.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "drcnn/engine/trainer.h"
#include "drcnn/models/detector.h"
#include "drcnn/train/dynamic_schedule.h"
#include "drcnn/train/lr_schedule.h"
#include "drcnn/train/sgd.h"

using namespace drcnn;

namespace {
const Device kGpu = Device::cuda(0);

models::DetectorConfig steps_config() {
  models::DetectorConfig c = models::DetectorConfig::tiny_cpu(3);
  c.rpn_loss.sampler.num = 1 << 20;
  c.roi_head.sampler.num = 1 << 20;
  return c;
}

Instances on(const Instances& x, Device d) {
  return Instances(x.image_size, x.boxes.to(d), x.labels.to(d), Tensor(), x.has_ignore() ? x.ignore.to(d) : Tensor());
}

struct Run {
  std::unique_ptr<models::TwoStageDetector<double>> model;
  std::vector<Variable> params;
  std::unique_ptr<train::Sgd> sgd;
  train::DynamicSchedule schedule;
  Generator sample{5};
  Run(Device device) : schedule(steps_config().dynamic) {
    Generator init(11);  // weights drawn on the CPU, then moved: both runs start equal
    model = std::make_unique<models::TwoStageDetector<double>>(steps_config(), init);
    if (!device.is_cpu()) model->to(device);
    for (const Variable& p : model->parameters())
      if (p.requires_grad()) params.push_back(p);
    train::SgdOptions o;
    o.lr = 0.01;
    o.momentum = 0.9;
    o.weight_decay = 1e-4;
    sgd = std::make_unique<train::Sgd>(params, o);
  }
  void step(const ImageList& images, const std::vector<Instances>& targets, double lr) {
    sgd->set_lr(lr);
    models::DetectorLosses out = model->forward_train(images, targets, schedule.current(), sample);
    sgd->zero_grad();
    out.total.backward();
    engine::clip_grad_norm_on_device(params, 10.0);
    sgd->step();
    schedule.record(out.stats);
    schedule.step();
  }
};
}  // namespace

TEST_CASE("cuda/train: three SGD steps on the device match the CPU (float64)", "[cuda][train]") {
  Generator data(3);
  const ImageList images = ImageList::from_images(
      {Tensor::rand({3, 64, 64}, data, DType::Float64), Tensor::rand({3, 64, 48}, data, DType::Float64)}, 32);
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{64, 64},
                       Boxes(Tensor::from_vector(std::vector<double>{4, 6, 40, 30, 30, 20, 62, 58}, Shape{2, 4})),
                       Tensor::from_vector(std::vector<int64_t>{0, 2}));
  targets.emplace_back(ImageSize{64, 48}, Boxes(Tensor::from_vector(std::vector<double>{10, 8, 30, 36}, Shape{1, 4})),
                       Tensor::from_vector(std::vector<int64_t>{1}));
  const ImageList images_gpu(images.tensor().to(kGpu), images.image_sizes());
  const std::vector<Instances> targets_gpu{on(targets[0], kGpu), on(targets[1], kGpu)};

  Run cpu(Device::cpu()), gpu(kGpu);
  const auto initial = cpu.model->named_parameters();
  std::vector<std::vector<double>> w0;
  for (const auto& [name, p] : initial) w0.push_back(p.data().to_vector<double>());
  const train::LrSchedule lr{0.01, 2, 0.001, {}, 0.1};
  for (int it = 0; it < 3; ++it) {
    cpu.step(images, targets, lr.at(it));
    gpu.step(images_gpu, targets_gpu, lr.at(it));
  }
  // The schedule saw the same statistics (the update interval of tiny_cpu is 2: one update).
  CHECK(cpu.schedule.state().iteration == gpu.schedule.state().iteration);
  CHECK(std::fabs(cpu.schedule.current().iou_threshold - gpu.schedule.current().iou_threshold) <= 1e-9);
  CHECK(std::fabs(cpu.schedule.current().beta - gpu.schedule.current().beta) <= 1e-9);

  const auto pa = cpu.model->named_parameters(), pb = gpu.model->named_parameters();
  REQUIRE(pa.size() == pb.size());
  size_t moved = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    const std::vector<double> a = pa[i].second.data().to_vector<double>();
    const std::vector<double> b = pb[i].second.data().to(Device::cpu()).to_vector<double>();
    REQUIRE(a.size() == b.size());
    double scale = 0, diff = 0;
    for (size_t k = 0; k < a.size(); ++k) {
      scale = std::max(scale, std::fabs(a[k] - w0[i][k]));
      diff = std::max(diff, std::fabs(a[k] - b[k]));
    }
    moved += scale > 0;
    INFO(pa[i].first << ": largest change " << scale << ", largest CPU-GPU difference " << diff);
    CHECK(diff <= 1e-7 * std::max(scale, 1e-12));
  }
  CHECK(moved > pa.size() / 2);  // the steps trained most tensors
  // Momentum buffers agree alike (relative to each buffer's largest entry).
  const auto& ma = cpu.sgd->momentum_buffers();
  const auto& mb = gpu.sgd->momentum_buffers();
  for (size_t i = 0; i < ma.size(); ++i) {
    if (!ma[i].defined()) {
      CHECK_FALSE(mb[i].defined());
      continue;
    }
    const std::vector<double> a = ma[i].to_vector<double>(), b = mb[i].to(Device::cpu()).to_vector<double>();
    double scale = 0, diff = 0;
    for (size_t k = 0; k < a.size(); ++k) {
      scale = std::max(scale, std::fabs(a[k]));
      diff = std::max(diff, std::fabs(a[k] - b[k]));
    }
    CHECK(diff <= 1e-7 * std::max(scale, 1e-12));
  }
}
