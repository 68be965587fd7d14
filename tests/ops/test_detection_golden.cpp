// drcnn's detection kernels against torchvision 0.14 (tests/data/detection/*.safetensors, written
// by tools/golden_detection_ops.py). Keep lists must match exactly; the float tolerances are
// stated where they are used. Each comparison prints its max errors (ctest -V shows them).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/allclose.h"
#include "common/golden.h"
#include "drcnn/ops/anchors.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/nms.h"
#include "drcnn/ops/roi_align.h"

using namespace drcnn;
using drcnn::test::load_golden;

namespace {

std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }
}  // namespace

TEST_CASE("golden/torchvision: box_iou equals torchvision.ops.box_iou bit for bit", "[golden][ops][cpu]") {
  // Same formula and operation order (areas, clamped intersection, a + b - inter, one division);
  // the 1e-6 union floor of mmdet never binds for these non-degenerate boxes: exact equality.
  const auto g = load_golden("detection/box_iou");
  test::expect_golden_close("box_iou f64", ops::box_iou(g["a"], g["b"]), g["iou_f64"], 0, 0);
  test::expect_golden_close("box_iou f32", ops::box_iou(g["a"].to(DType::Float32), g["b"].to(DType::Float32)), g["iou_f32"], 0, 0);
}

TEST_CASE("golden/torchvision: nms keep lists equal torchvision.ops.nms", "[golden][ops][cpu]") {
  const auto g = load_golden("detection/nms");
  const std::vector<double> thresholds = g["thresholds"].to_vector<double>();
  for (const char* tag : {"f64", "f32"}) {
    const DType dt = std::string(tag) == "f64" ? DType::Float64 : DType::Float32;
    const Tensor boxes = g["boxes_f64"].to(dt), scores = g["scores_f64"].to(dt);
    for (size_t i = 0; i < thresholds.size(); ++i) {
      INFO(tag << " threshold " << thresholds[i]);
      const Tensor keep = ops::nms(boxes, scores, thresholds[i]);
      const Tensor expected = g[fmt::format("keep_{}_{}", i, tag)];
      fmt::print("golden nms {} thr {}: {} kept, torchvision {}\n", tag, thresholds[i], keep.numel(), expected.numel());
      CHECK(ints(keep) == ints(expected));
    }
  }
}

TEST_CASE("golden/torchvision: batched_nms keep lists equal torchvision.ops.batched_nms", "[golden][ops][cpu]") {
  const auto g = load_golden("detection/batched_nms");
  // 800 boxes: torchvision used the coordinate-offset trick, as our default below split_threshold.
  const Tensor keep_off = ops::batched_nms(g["boxes_offsets"], g["scores_offsets"], g["idxs_offsets"], 0.5);
  CHECK(ints(keep_off) == ints(g["keep_offsets"]));
  // 2000 boxes (numel 8000 > 4000): torchvision looped over the classes; force our per-group path.
  const Tensor keep_loop = ops::batched_nms(g["boxes_loop"], g["scores_loop"], g["idxs_loop"], 0.5, -1, 0);
  CHECK(ints(keep_loop) == ints(g["keep_loop"]));
  fmt::print("golden batched_nms: offsets {} kept (torchvision {}), per-group {} kept (torchvision {})\n",
             keep_off.numel(), g["keep_offsets"].numel(), keep_loop.numel(), g["keep_loop"].numel());
}

TEST_CASE("golden/torchvision: roi_align forward and gradient equal torchvision.ops.roi_align", "[golden][ops][cpu]") {
  const auto g = load_golden("detection/roi_align");
  const Tensor feats = g["features"], rois = g["rois"];
  const std::vector<double> params = g["params"].to_vector<double>();  // aligned, sampling, scale, ph, pw
  const size_t cases = params.size() / 5;
  REQUIRE(cases == 16);
  for (size_t i = 0; i < cases; ++i) {
    const bool aligned = params[5 * i] != 0;
    const auto sampling = static_cast<int64_t>(params[5 * i + 1]);
    const double scale = params[5 * i + 2];
    const ops::RoiOutputSize size{static_cast<int64_t>(params[5 * i + 3]), static_cast<int64_t>(params[5 * i + 4])};
    const std::string label = fmt::format("roi_align case {} (aligned {}, sampling {}, scale {}, {}x{})", i, aligned,
                                          sampling, scale, size[0], size[1]);
    INFO(label);
    // grad_output[k] = sin(0.1 k + 0.3), as the script.
    const Shape out_shape{rois.size(0), feats.size(1), size[0], size[1]};
    std::vector<double> go(static_cast<size_t>(out_shape.numel()));
    for (size_t k = 0; k < go.size(); ++k) go[k] = std::sin(0.1 * double(k) + 0.3);
    const Tensor grad_out = Tensor::from_vector(go, out_shape);

    // float64: the same samples and weights, summed in a different order than torchvision
    // (we precompute the four bilinear weights per sample): agreement to ~1e-15 relative, so
    // 1e-12 (abs and rel) leaves room without hiding a semantic difference (a wrong sample
    // point moves values by >= 1e-3 here).
    const Tensor out = ops::roi_align(feats, rois, size, scale, sampling, aligned);
    test::expect_golden_close(label + " forward f64", out, g[fmt::format("output_{}", i)], 1e-12, 1e-12);
    const Tensor grad = ops::roi_align_backward(grad_out, rois, feats.shape(), scale, sampling, aligned);
    test::expect_golden_close(label + " grad f64", grad, g[fmt::format("grad_features_{}", i)], 1e-12, 1e-12);

    // float32 against the float64 golden: inputs rounded to f32 (rel 6e-8) and f32 sums of up to
    // ~100 terms of magnitude <= 4: 2e-5 absolute covers it.
    const Tensor out32 = ops::roi_align(feats.to(DType::Float32), rois.to(DType::Float32), size, scale, sampling, aligned);
    test::expect_golden_close(label + " forward f32", out32, g[fmt::format("output_{}", i)], 0, 2e-5);
    const Tensor grad32 = ops::roi_align_backward(grad_out.to(DType::Float32), rois.to(DType::Float32), feats.shape(),
                                                  scale, sampling, aligned);
    test::expect_golden_close(label + " grad f32", grad32, g[fmt::format("grad_features_{}", i)], 0, 2e-5);
  }
}

TEST_CASE("golden/mmdet: anchors equal MMDetection v2's generator bit for bit in float32", "[golden][ops][cpu]") {
  // tests/data/detection/anchors.safetensors: tools/golden_anchors.py recomputes mmdet v2's
  // AnchorGenerator operation by operation in torch float32. Our float32 body does the same
  // operations in the same order, so the comparison is exact.
  const auto g = load_golden("detection/anchors");
  const ops::AnchorConfig cfg;  // strides 4..64, ratios 0.5/1/2, scale 8, center_offset 0
  std::vector<ops::FeatureSize> sizes;
  for (int lvl = 0; lvl < 5; ++lvl) {
    const int64_t s = cfg.strides[size_t(lvl)];
    sizes.push_back({(96 + s - 1) / s, (160 + s - 1) / s});
    test::expect_golden_close(fmt::format("anchors base P{}", lvl + 2), ops::base_anchors(cfg, lvl),
                              g[fmt::format("base_P{}", lvl + 2)], 0, 0);
  }
  const auto grids = ops::grid_anchors(cfg, sizes);
  const auto valid = ops::anchor_valid_flags(cfg, sizes, 70, 100);
  for (int lvl = 0; lvl < 5; ++lvl) {
    test::expect_golden_close(fmt::format("anchors grid 96x160 P{}", lvl + 2), grids[size_t(lvl)],
                              g[fmt::format("grid_96x160_P{}", lvl + 2)], 0, 0);
    CHECK(valid[size_t(lvl)].to_vector<int64_t>() ==
          g[fmt::format("valid_70x100_in_96x160_P{}", lvl + 2)].to_vector<int64_t>());
  }
  ops::AnchorConfig p2 = cfg;
  p2.strides = {4};
  test::expect_golden_close("anchors grid P2 2x3", ops::grid_anchors(p2, {{2, 3}})[0], g["grid_P2_2x3"], 0, 0);
  // Several scales, centre offset 0.5, scale-minor order, a fractional base size.
  ops::AnchorConfig multi;
  multi.strides = {16};
  multi.scales = {4.0, 8.0};
  multi.center_offset = 0.5;
  multi.scale_major = false;
  multi.base_sizes = {13.5};
  test::expect_golden_close("anchors base multi-scale", ops::base_anchors(multi, 0), g["base_multi_scale_offset"], 0, 0);
  test::expect_golden_close("anchors grid multi-scale 3x2", ops::grid_anchors(multi, {{3, 2}})[0],
                            g["grid_multi_scale_offset_3x2"], 0, 0);
}
