// CPU vs CUDA parity of RoIAlign (include/drcnn/ops/roi_align.h): forward, backward in both
// CUDA modes, and multi-level. The bodies are shared; runs only where a CUDA device exists
// (elsewhere the test main exits with 77 and ctest reports it skipped).
// Tolerances: nvcc contracts a*b+c into FMAs in the sample coordinates and the weighted sums,
// so float32 differs in the last bits (features in [-1, 1], sums of at most a few hundred
// samples: 1e-5 absolute); float64 1e-12. The atomic backward adds in a run-dependent order:
// the same bounds hold. The deterministic backward must give the same bits on every run.
#include <catch2/catch.hpp>

#include <random>

#include "common/device_compare.h"
#include "common/random.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/device_checks.h"
#include "drcnn/ops/roi_align.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_close;
using drcnn::test::require_device_equal;

namespace {
const Device kGpu = Device::cuda(0);

Tensor random_rois(int64_t R, int64_t N, double img_h, double img_w, uint64_t seed, DType dt) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> v;
  for (int64_t i = 0; i < R; ++i) {
    const double w = 1 + u(rng) * img_w, h = 1 + u(rng) * img_h;
    const double x = -0.1 * img_w + u(rng) * img_w, y = -0.1 * img_h + u(rng) * img_h;
    v.insert(v.end(), {double(int64_t(u(rng) * double(N))), x, y, x + w, y + h});
  }
  return Tensor::from_vector<double>(v, Shape{R, 5}).to(dt);
}
double atol(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }
}  // namespace

TEST_CASE("cuda/roi_align: forward and both backward modes match the CPU", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor f = drcnn::test::random_tensor(Shape{2, 8, 30, 41}, 1, dt);
    const Tensor rois = random_rois(200, 2, 240, 328, 2, dt);
    const Tensor go = drcnn::test::random_tensor(Shape{200, 8, 7, 7}, 3, dt);
    const Tensor fg = f.to(kGpu), rg = rois.to(kGpu), gog = go.to(kGpu);
    for (int64_t sr : {int64_t(0), int64_t(2)})
      for (bool aligned : {true, false}) {
        require_device_close(ops::roi_align(fg, rg, {7, 7}, 0.125, sr, aligned),
                             ops::roi_align(f, rois, {7, 7}, 0.125, sr, aligned), 0, atol(dt));
        const Tensor cpu = ops::roi_align_backward(go, rois, f.shape(), 0.125, sr, aligned);
        require_device_close(ops::roi_align_backward(gog, rg, f.shape(), 0.125, sr, aligned,
                                                     ops::RoiAlignBackwardMode::Atomic),
                             cpu, 0, atol(dt));
        const Tensor det = ops::roi_align_backward(gog, rg, f.shape(), 0.125, sr, aligned,
                                                   ops::RoiAlignBackwardMode::Deterministic);
        require_device_close(det, cpu, 0, atol(dt));
        require_device_equal(ops::roi_align_backward(gog, rg, f.shape(), 0.125, sr, aligned,
                                                     ops::RoiAlignBackwardMode::Deterministic),
                             det.to(Device::cpu()));
      }
  }
}

TEST_CASE("cuda/roi_align: multi-level forward and backward match the CPU", "[cuda]") {
  const std::vector<double> scales = {1 / 4.0, 1 / 8.0, 1 / 16.0, 1 / 32.0};
  for (DType dt : {DType::Float32, DType::Float64}) {
    std::vector<Tensor> feats, feats_g;
    std::vector<Shape> shapes;
    for (size_t i = 0; i < scales.size(); ++i) {
      feats.push_back(drcnn::test::random_tensor(Shape{2, 4, int64_t(64 >> i), int64_t(80 >> i)}, 10 + i, dt));
      feats_g.push_back(feats.back().to(kGpu));
      shapes.push_back(feats.back().shape());
    }
    const Tensor rois = random_rois(150, 2, 256, 320, 20, dt);
    const auto cpu = ops::roi_align_multilevel(feats, rois, {7, 7}, scales, 0, true);
    const auto gpu = ops::roi_align_multilevel(feats_g, rois.to(kGpu), {7, 7}, scales, 0, true);
    require_device_equal(gpu.levels, cpu.levels);
    require_device_close(gpu.output, cpu.output, 0, atol(dt));
    const Tensor go = drcnn::test::random_tensor(Shape{150, 4, 7, 7}, 21, dt);
    const auto gc = ops::roi_align_multilevel_backward(go, rois, cpu.levels, shapes, scales, 0, true);
    for (auto mode : {ops::RoiAlignBackwardMode::Atomic, ops::RoiAlignBackwardMode::Deterministic}) {
      const auto gg =
          ops::roi_align_multilevel_backward(go.to(kGpu), rois.to(kGpu), gpu.levels, shapes, scales, 0, true, mode);
      for (size_t i = 0; i < gc.size(); ++i) require_device_close(gg[i], gc[i], 0, atol(dt));
    }
  }
}

TEST_CASE("cuda/roi_align: a bad batch index is reported", "[cuda]") {
  const Tensor f = Tensor::zeros({1, 2, 8, 8}, DType::Float32, kGpu);
  const Tensor r = Tensor::from_vector<float>({3, 0, 0, 4, 4}, Shape{1, 5}).to(kGpu);
  // Checked lazily on CUDA (ops/device_checks.h): reported by the next check.
  REQUIRE_THROWS_WITH(
      [&] {
        ops::roi_align(f, r, {7, 7}, 1, 0, true);
        ops::check_device_errors();
      }(),
      Catch::Contains("batch index"));
}
