// CPU vs CUDA parity of the detector's first pieces: MaxIoUAssigner, RandomSampler and RPN
// proposal generation. Runs only where a CUDA device exists (the test main exits 77 elsewhere).
// Boxes lie on an integer grid, so every IoU is exact on both devices (box_overlap multiplies
// with __fmul_rn on the device) and assignments, samples and keep lists must be identical.
// Proposal boxes go through exp() in the decoder, where CUDA's expf may differ from glibc's by
// an ulp: boxes are compared at 1e-4 px (relative 1e-5), scores (sigmoid) at 1e-6.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "common/device_compare.h"
#include "drcnn/core/generator.h"
#include "drcnn/models/assigner.h"
#include "drcnn/models/rpn.h"
#include "drcnn/models/sampler.h"
#include "drcnn/ops/anchors.h"
#include "drcnn/ops/elementwise.h"

using namespace drcnn;
using drcnn::test::require_device_close;
using drcnn::test::require_device_equal;

namespace {
const Device kGpu = Device::cuda(0);

/// n boxes with integer corners in [0, 200), each at least 1 px wide and high; every third box
/// a jittered copy of an earlier one (so IoUs above 0.5 exist).
Tensor grid_boxes(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> xy(0, 150), wh(1, 60), jit(-3, 3);
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) {
    if (i >= 3 && i % 3 == 0) {
      const size_t j = size_t(rng() % size_t(i)) * 4;
      const double x1 = v[j] + jit(rng), y1 = v[j + 1] + jit(rng);
      v.insert(v.end(), {x1, y1, std::max(x1 + 1, v[j + 2] + jit(rng)), std::max(y1 + 1, v[j + 3] + jit(rng))});
      continue;
    }
    const double x = xy(rng), y = xy(rng);
    v.insert(v.end(), {x, y, x + wh(rng), y + wh(rng)});
  }
  return Tensor::from_vector<double>(v, Shape{n, 4}).to(DType::Float32);
}
}  // namespace

TEST_CASE("cuda/detector: MaxIoUAssigner and RandomSampler match the CPU exactly", "[cuda]") {
  const Tensor cand = grid_boxes(300, 1), gt = grid_boxes(12, 2);
  std::vector<int64_t> lv(12);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = int64_t(i % 5);
  const Tensor labels = Tensor::from_vector(lv);
  for (const auto& opt : {models::MaxIoUAssignerOptions::rpn(), models::MaxIoUAssignerOptions::rcnn(0.5)}) {
    const models::MaxIoUAssigner assigner(opt);
    models::AssignResult c = assigner.assign(cand, gt, labels);
    models::AssignResult g = assigner.assign(cand.to(kGpu), gt.to(kGpu), labels.to(kGpu));
    require_device_equal(g.gt_inds, c.gt_inds);
    require_device_equal(g.max_overlaps, c.max_overlaps);
    require_device_equal(g.labels, c.labels);

    const models::RandomSampler sampler(512, 0.25);
    Generator gc(7), gg(7);
    const models::SamplingResult sc = sampler.sample(c, cand, gt, labels, gc);
    const models::SamplingResult sg = sampler.sample(g, cand.to(kGpu), gt.to(kGpu), labels.to(kGpu), gg);
    CHECK(gc.offset == gg.offset);
    require_device_equal(sg.pos_inds, sc.pos_inds);
    require_device_equal(sg.neg_inds, sc.neg_inds);
    require_device_equal(sg.pos_assigned_gt_inds, sc.pos_assigned_gt_inds);
    require_device_equal(sg.pos_gt_labels, sc.pos_gt_labels);
  }
}

TEST_CASE("cuda/detector: RPN proposals match the CPU", "[cuda]") {
  // Two images of a 128x160 batch (the second one smaller), three levels (strides 8, 16, 32).
  ops::AnchorConfig cfg;
  cfg.strides = {8, 16, 32};
  const std::vector<ops::FeatureSize> sizes{{16, 20}, {8, 10}, {4, 5}};
  const std::vector<Tensor> anchors = ops::grid_anchors(cfg, sizes);
  Generator gen(3);
  std::vector<Tensor> obj, del, obj_g, del_g, anchors_g;
  for (size_t l = 0; l < sizes.size(); ++l) {
    obj.push_back(Tensor::randn({2, 3, sizes[l].height, sizes[l].width}, gen));
    del.push_back(ops::mul(Tensor::randn({2, 12, sizes[l].height, sizes[l].width}, gen), 0.3));
    obj_g.push_back(obj.back().to(kGpu));
    del_g.push_back(del.back().to(kGpu));
    anchors_g.push_back(anchors[l].to(kGpu));
  }
  const std::vector<ImageSize> images{{128, 160}, {100, 130}};
  models::RpnProposalConfig pc = models::RpnProposalConfig::test();
  pc.nms_pre = 200;
  pc.nms_iou = 0.7;
  pc.max_per_img = 150;
  const auto c = models::generate_proposals(obj, del, anchors, images, pc);
  const auto g = models::generate_proposals(obj_g, del_g, anchors_g, images, pc);
  REQUIRE(c.size() == g.size());
  for (size_t i = 0; i < c.size(); ++i) {
    INFO("image " << i);
    require_device_equal(g[i].levels, c[i].levels);
    require_device_close(g[i].scores, c[i].scores, 1e-6, 1e-6);
    require_device_close(g[i].boxes, c[i].boxes, 1e-5, 1e-4);
  }
}
