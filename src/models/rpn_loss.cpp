// RPN targets and losses (include/drcnn/models/rpn_loss.h).
//
// Per image: the valid anchors are assigned and sampled (the sampler's indices refer to the
// valid subset, so they are mapped back through the valid-index list); the selections of all
// images are then gathered from the batch-flattened predictions with one index_select each, so
// the loss is two fused kernels for the whole batch, as MMDetection's concatenated targets.
#include "drcnn/models/rpn_loss.h"

#include <algorithm>

#include "drcnn/autograd/functions.h"
#include "drcnn/autograd/losses.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/shape_ops.h"

namespace drcnn::models {

Variable flatten_rpn_objectness(const std::vector<RpnLevelOutput>& head_outputs) {
  DRCNN_CHECK(!head_outputs.empty(), "flatten_rpn_objectness: no levels");
  std::vector<Variable> levels;
  for (const RpnLevelOutput& o : head_outputs) {
    const Tensor& t = o.objectness.data();
    DRCNN_CHECK(t.ndim() == 4, "flatten_rpn_objectness: expected [N, A, H, W], got ", t.shape());
    // [N, A, H, W] -> [N, H, W, A] -> [N, H*W*A]: position (y, x, a), as the anchors.
    levels.push_back(reshape(permute(o.objectness, {0, 2, 3, 1}), Shape{t.size(0), -1}));
  }
  return levels.size() == 1 ? levels[0] : concat(levels, 1);
}

Variable flatten_rpn_deltas(const std::vector<RpnLevelOutput>& head_outputs) {
  DRCNN_CHECK(!head_outputs.empty(), "flatten_rpn_deltas: no levels");
  std::vector<Variable> levels;
  for (const RpnLevelOutput& o : head_outputs) {
    const Tensor& t = o.deltas.data();
    DRCNN_CHECK(t.ndim() == 4 && t.size(1) % 4 == 0, "flatten_rpn_deltas: expected [N, 4A, H, W], got ", t.shape());
    // [N, 4A, H, W] -> [N, H, W, 4A] -> [N, H*W*A, 4]: channels 4a..4a+3 belong to anchor a.
    levels.push_back(reshape(permute(o.deltas, {0, 2, 3, 1}), Shape{t.size(0), -1, 4}));
  }
  return levels.size() == 1 ? levels[0] : concat(levels, 1);
}

RpnLossOutput rpn_loss(const std::vector<RpnLevelOutput>& head_outputs, const std::vector<Tensor>& anchors,
                       const std::vector<Tensor>& valid_flags, const std::vector<Instances>& targets,
                       const RpnLossConfig& cfg, SamplingStreams gen, const std::vector<Tensor>& visible) {
  DRCNN_CHECK(head_outputs.size() == anchors.size(), "rpn_loss: ", head_outputs.size(), " levels of outputs but ",
              anchors.size(), " of anchors");
  const Variable logits = flatten_rpn_objectness(head_outputs);  // [N, T]
  const Variable deltas = flatten_rpn_deltas(head_outputs);      // [N, T, 4]
  const int64_t num_images = logits.data().size(0);
  const int64_t total = logits.data().size(1);
  const Tensor all_anchors = anchors.size() == 1 ? anchors[0] : ops::concat(anchors, 0);
  DRCNN_CHECK(all_anchors.size(0) == total, "rpn_loss: ", all_anchors.size(0), " anchors for ", total,
              " predictions per image (anchors and head outputs disagree on the feature sizes)");
  DRCNN_CHECK(int64_t(valid_flags.size()) == num_images && int64_t(targets.size()) == num_images,
              "rpn_loss: ", num_images, " images but ", valid_flags.size(), " valid-flag tensors and ", targets.size(),
              " targets");
  const Device device = logits.data().device();
  const DType dtype = logits.data().dtype();
  const bool legacy = cfg.convention == BoxConvention::MaskrcnnBenchmark;
  MaxIoUAssignerOptions assigner_opt = cfg.assigner;
  assigner_opt.legacy_iou = legacy;
  const MaxIoUAssigner assigner(assigner_opt);
  const RandomSampler sampler(cfg.sampler);

  std::vector<Tensor> cls_index, cls_target, reg_index, reg_target;
  RpnLossOutput out;
  double avg_factor = 0;
  for (int64_t i = 0; i < num_images; ++i) {
    const Tensor& flags = valid_flags[size_t(i)];
    DRCNN_CHECK(flags.dtype() == DType::Bool && flags.ndim() == 1 && flags.size(0) == total, "rpn_loss: image ", i,
                ": valid flags must be bool [", total, "], got ", flags.dtype(), " ", flags.shape());
    const std::vector<bool> host_flags = flags.to(Device::cpu()).to_vector<bool>();
    std::vector<int64_t> valid;
    valid.reserve(host_flags.size());
    for (size_t j = 0; j < host_flags.size(); ++j)
      if (host_flags[j]) valid.push_back(int64_t(j) + i * total);  // flat index into [N * T]
    const Tensor valid_index = Tensor::from_vector(valid, Shape{int64_t(valid.size())}, device);
    const Tensor local_index = ops::add(valid_index, double(-i * total));
    const Tensor candidates = select_rows(all_anchors, local_index);

    const Instances gt = targets[size_t(i)].without_ignored();
    const Tensor gt_boxes = gt.boxes.tensor().to(dtype);
    const Tensor ignore = targets[size_t(i)].has_ignore() ? targets[size_t(i)].ignored_boxes().tensor().to(dtype) : Tensor();
    AssignResult assign = assigner.assign(candidates, gt_boxes, Tensor(), ignore);
    if (!visible.empty()) {
      // maskrcnn-benchmark: labels_per_image[~visibility] = -1 after the matcher.
      DRCNN_CHECK(int64_t(visible.size()) == num_images, "rpn_loss: ", visible.size(), " visibility tensors for ",
                  num_images, " images");
      const Tensor& vis = visible[size_t(i)];
      DRCNN_CHECK(vis.dtype() == DType::Bool && vis.ndim() == 1 && vis.size(0) == total, "rpn_loss: image ", i,
                  ": visibility must be bool [", total, "], got ", vis.dtype(), " ", vis.shape());
      const std::vector<bool> host_vis = vis.to(Device::cpu()).to_vector<bool>();
      std::vector<bool> local(valid.size());
      for (size_t j = 0; j < valid.size(); ++j) local[j] = host_vis[size_t(valid[j] - i * total)];
      const Tensor mask = Tensor::from_vector(local, Shape{int64_t(local.size())}, device);
      assign.gt_inds = ops::where(mask, assign.gt_inds, Tensor::full({}, -1.0, DType::Int64, device));
    }
    const SamplingResult s = sampler.sample(assign, candidates, gt_boxes, Tensor(), gen.for_image(size_t(i)));
    const int64_t num_pos = s.pos_inds.size(0), num_neg = s.neg_inds.size(0);
    out.num_pos += num_pos;
    out.num_neg += num_neg;
    avg_factor += double(std::max<int64_t>(num_pos, 1) + std::max<int64_t>(num_neg, 1));

    const Tensor pos_flat = select_rows(valid_index, s.pos_inds);
    cls_index.push_back(pos_flat);
    cls_index.push_back(select_rows(valid_index, s.neg_inds));
    cls_target.push_back(Tensor::full({num_pos}, 1.0, dtype, device));
    cls_target.push_back(Tensor::zeros({num_neg}, dtype, device));
    reg_index.push_back(pos_flat);
    reg_target.push_back(num_pos > 0 ? ops::box_encode(s.pos_bboxes, s.pos_gt_bboxes, cfg.target_means, cfg.target_stds, legacy)
                                     : Tensor::zeros({0, 4}, dtype, device));
  }
  out.avg_factor = avg_factor;
  const ops::LossReduce reduce{ops::Reduction::Mean, avg_factor};
  const Variable flat_logits = reshape(logits, Shape{num_images * total});
  const Variable flat_deltas = reshape(deltas, Shape{num_images * total, 4});
  const Variable sampled_logits = index_select(flat_logits, 0, ops::concat(cls_index, 0));
  out.loss_cls = binary_cross_entropy_with_logits(sampled_logits, ops::concat(cls_target, 0), reduce);
  if (out.num_pos > 0) {
    const Variable pos_deltas = index_select(flat_deltas, 0, ops::concat(reg_index, 0));
    const Tensor reg_targets = ops::concat(reg_target, 0);
    out.loss_bbox = cfg.regression_loss == RpnRegressionLoss::L1
                        ? l1_loss(pos_deltas, reg_targets, reduce)
                        : smooth_l1_loss(pos_deltas, reg_targets, cfg.smooth_l1_beta, reduce);
  } else {
    out.loss_bbox = sum(flat_deltas) * 0.0;  // no positive anywhere: 0, with the graph kept (mmdet)
  }
  if (cfg.cls_weight != 1.0) out.loss_cls = out.loss_cls * cfg.cls_weight;
  if (cfg.reg_weight != 1.0) out.loss_bbox = out.loss_bbox * cfg.reg_weight;
  return out;
}

}  // namespace drcnn::models
