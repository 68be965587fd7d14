// CPU vs CUDA parity of the box ops (same bodies on both sides). Runs only where a CUDA device
// exists; elsewhere the test main exits with 77 and ctest reports the tests skipped.
// Tolerances: nvcc contracts a*b+c into FMAs, so float results may differ in the last bits
// (relative 1e-5 f32 / 1e-13 f64 with small absolute floors); masks, levels and clipping of
// identical inputs are compared exactly.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "common/device_compare.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/box_ops.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_close;
using drcnn::test::require_device_equal;

namespace {
const Device kGpu = Device::cuda(0);


Tensor random_boxes(int64_t n, uint64_t seed, DType dt, int64_t cols = 4) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> xy(0, 300), wh(0, 200);
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) {
    if (cols == 5) v.push_back(double(i % 2));
    const double x = xy(rng), y = xy(rng);
    v.insert(v.end(), {x, y, x + wh(rng), y + wh(rng)});
  }
  return Tensor::from_vector<double>(v, Shape{n, cols}).to(dt);
}
}  // namespace

TEST_CASE("cuda/box_ops: every box op matches the CPU", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double rtol = dt == DType::Float32 ? 1e-5 : 1e-13, atol = dt == DType::Float32 ? 1e-4 : 1e-10;
    const Tensor a = random_boxes(300, 1, dt), b = random_boxes(170, 2, dt);
    const Tensor ag = a.to(kGpu), bg = b.to(kGpu);
    require_device_close(ops::box_area(ag), ops::box_area(a), rtol, atol);
    require_device_close(ops::box_iou(ag, bg), ops::box_iou(a, b), rtol, 1e-6);
    require_device_close(ops::box_iof(ag, bg), ops::box_iof(a, b), rtol, 1e-6);
    const std::array<double, 4> m = {0.1, 0, -0.1, 0}, s = {0.1, 0.1, 0.2, 0.2};
    const Tensor g = random_boxes(300, 3, dt);
    require_device_close(ops::box_encode(ag, g.to(kGpu), m, s), ops::box_encode(a, g, m, s), rtol, atol);
    std::mt19937_64 rng(4);
    std::uniform_real_distribution<double> u(-6, 6);
    std::vector<double> dv(300 * 8);
    for (auto& x : dv) x = u(rng);
    const Tensor d = Tensor::from_vector<double>(dv, Shape{300, 8}).to(dt);
    require_device_close(ops::box_decode(ag, d.to(kGpu), m, s), ops::box_decode(a, d, m, s), rtol, atol);
    require_device_close(ops::box_decode(ag, d.to(kGpu), m, s, ops::ImageShape{400, 350}),
                  ops::box_decode(a, d, m, s, ops::ImageShape{400, 350}), rtol, atol);
    require_device_close(ops::box_clip(ag, 200, 250), ops::box_clip(a, 200, 250), 0, 0);
    require_device_close(ops::remove_small_boxes(ag, 50), ops::remove_small_boxes(a, 50), 0, 0);
    const Tensor r = random_boxes(400, 5, dt, 5);
    require_device_close(ops::map_roi_levels(r.to(kGpu), 4), ops::map_roi_levels(r, 4), 0, 0);
    // Empty inputs on the device.
    const Tensor e = Tensor::empty({0, 4}, dt, kGpu);
    CHECK(ops::box_iou(e, bg).shape() == Shape{0, 170});
    CHECK(ops::remove_small_boxes(e, 1).shape() == Shape{0});
    CHECK(ops::remove_small_boxes(e, 1).device() == kGpu);
  }
}

TEST_CASE("cuda/box_ops: the legacy (+1) rules match the CPU", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double rtol = dt == DType::Float32 ? 1e-5 : 1e-13, atol = dt == DType::Float32 ? 1e-4 : 1e-10;
    const Tensor a = random_boxes(300, 11, dt), b = random_boxes(170, 12, dt);
    const Tensor ag = a.to(kGpu), bg = b.to(kGpu);
    require_device_close(ops::box_area(ag, true), ops::box_area(a, true), rtol, atol);
    require_device_close(ops::box_iou(ag, bg, true), ops::box_iou(a, b, true), rtol, 1e-6);
    const std::array<double, 4> m = {0, 0, 0, 0}, s = {0.1, 0.1, 0.2, 0.2};
    const Tensor g = random_boxes(300, 13, dt);
    require_device_close(ops::box_encode(ag, g.to(kGpu), m, s, true), ops::box_encode(a, g, m, s, true), rtol, atol);
    std::mt19937_64 rng(14);
    std::uniform_real_distribution<double> u(-6, 6);
    std::vector<double> dv(300 * 8);
    for (auto& x : dv) x = u(rng);
    const Tensor d = Tensor::from_vector<double>(dv, Shape{300, 8}).to(dt);
    require_device_close(ops::box_decode(ag, d.to(kGpu), m, s, ops::ImageShape{400, 350}, 16.0 / 1000, true),
                         ops::box_decode(a, d, m, s, ops::ImageShape{400, 350}, 16.0 / 1000, true), rtol, atol);
    require_device_close(ops::box_clip(ag, 200, 250, true), ops::box_clip(a, 200, 250, true), 0, 0);
    require_device_close(ops::remove_small_boxes(ag, 50, true), ops::remove_small_boxes(a, 50, true), 0, 0);
    const Tensor r = random_boxes(400, 15, dt, 5);
    require_device_close(ops::map_roi_levels_legacy(r.to(kGpu)), ops::map_roi_levels_legacy(r), 0, 0);
  }
}
