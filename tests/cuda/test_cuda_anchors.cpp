// CPU vs CUDA parity of the anchor generator (same bodies on both sides). Runs only where a
// CUDA device exists; elsewhere the test main exits with 77 and ctest reports it skipped.
// Exact: the body has no a*b+c for nvcc to contract, and sqrt and division are IEEE-rounded
// on the device without fast math, so every anchor must be the same float.
#include <catch2/catch.hpp>

#include "common/device_compare.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/anchors.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Tensor;
namespace ops = drcnn::ops;

namespace {
const Device kGpu = Device::cuda(0);
}  // namespace

TEST_CASE("cuda/anchors: grids and valid flags equal the CPU bit for bit", "[cuda]") {
  ops::AnchorConfig c;
  std::vector<ops::FeatureSize> fs;
  for (int64_t s : c.strides) fs.push_back({(800 + s - 1) / s, (1344 + s - 1) / s});
  for (DType dt : {DType::Float32, DType::Float64}) {
    const auto cpu = ops::grid_anchors(c, fs, dt);
    const auto gpu = ops::grid_anchors(c, fs, dt, kGpu);
    REQUIRE(gpu.size() == cpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) drcnn::test::require_device_equal(gpu[i], cpu[i]);
  }
  const auto vc = ops::anchor_valid_flags(c, fs, 610, 1030);
  const auto vg = ops::anchor_valid_flags(c, fs, 610, 1030, kGpu);
  for (size_t i = 0; i < vc.size(); ++i) drcnn::test::require_device_equal(vg[i], vc[i]);

  ops::AnchorConfig odd;  // several scales, offset, float base sizes, scale-minor order
  odd.strides = {8, 16};
  odd.ratios = {0.3, 0.7, 1.9};
  odd.scales = {3, 5.5};
  odd.base_sizes = {11, 13.5};
  odd.center_offset = 0.25;
  odd.scale_major = false;
  const auto oc = ops::grid_anchors(odd, {{7, 9}, {4, 5}});
  const auto og = ops::grid_anchors(odd, {{7, 9}, {4, 5}}, DType::Float32, kGpu);
  for (size_t i = 0; i < oc.size(); ++i) drcnn::test::require_device_equal(og[i], oc[i]);

  ops::AnchorConfig det;  // Detectron's generate_anchors (rint and sqrt in float64 on the device)
  det.detectron = true;
  det.ratios = {0.3, 0.5, 1.0, 2.0, 2.7};
  det.scales = {2, 8, 11};
  for (DType dt : {DType::Float32, DType::Float64}) {
    const auto dc = ops::grid_anchors(det, fs, dt);
    const auto dg = ops::grid_anchors(det, fs, dt, kGpu);
    for (size_t i = 0; i < dc.size(); ++i) drcnn::test::require_device_equal(dg[i], dc[i]);
  }
}
