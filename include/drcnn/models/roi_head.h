// The R-CNN stage (spec B.8-B.12, B.14; MMDetection v2 StandardRoIHead / DynamicRoIHead with a
// Shared2FCBBoxHead): multi-level RoIAlign, two shared FC layers, a softmax classifier with the
// background LAST and class-specific DeltaXYWH regression; training targets with the dynamic
// IoU threshold and SmoothL1 with the current beta; inference post-processing.
// Definitions: src/models/roi_head.cpp; tests: tests/models/test_roi_head.cpp;
// docs: docs/detector.md ("RoI head").
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "drcnn/core/generator.h"
#include "drcnn/layers/layers.h"
#include "drcnn/models/assigner.h"
#include "drcnn/models/rpn.h"
#include "drcnn/models/sampler.h"
#include "drcnn/structures/instances.h"
#include "drcnn/train/dynamic_schedule.h"

namespace drcnn::models {

struct BBoxHeadOptions {
  int64_t in_channels = 256;
  int64_t roi_feat_size = 7;
  int64_t fc_out_channels = 1024;
  int64_t num_classes = 80;  ///< foreground classes C; the classifier has C + 1 outputs (background C)
  friend bool operator==(const BBoxHeadOptions&, const BBoxHeadOptions&) = default;
};

/// MMDetection Shared2FCBBoxHead: flatten [R, in, 7, 7] -> "shared_fcs.0" -> ReLU ->
/// "shared_fcs.1" -> ReLU, then "fc_cls" (C + 1) and "fc_reg" (4C, class-specific).
/// Init (mmdet v2): shared FCs xavier_uniform, fc_cls N(0, 0.01^2), fc_reg N(0, 0.001^2), biases 0.
template <typename T = float>
class Shared2FCBBoxHead : public Module {
 public:
  Shared2FCBBoxHead(const BBoxHeadOptions& o, Generator& gen);
  struct Output {
    Variable cls_score;  ///< [R, C + 1] logits
    Variable bbox_pred;  ///< [R, 4C]
  };
  Output forward(const Variable& roi_feats) const;
  const BBoxHeadOptions& options() const { return m_opt; }

 private:
  BBoxHeadOptions m_opt;
  std::shared_ptr<ModuleList> m_shared;
  std::shared_ptr<Linear<T>> m_fc0, m_fc1, m_cls, m_reg;
};

/// Settings of the RoI stage (MMDetection roi_head + train_cfg.rcnn + test_cfg.rcnn).
struct RoiHeadConfig {
  BBoxHeadOptions bbox_head{};
  // RoI extractor (SingleRoIExtractor with RoIAlign 7x7, sampling_ratio 0, aligned).
  std::vector<int64_t> featmap_strides{4, 8, 16, 32};
  int64_t sampling_ratio = 0;
  bool aligned = true;
  double finest_scale = 56.0;
  // Training.
  RandomSamplerOptions sampler{512, 0.25, -1.0, true};
  std::array<double, 4> target_means{0, 0, 0, 0};
  std::array<double, 4> target_stds{0.1, 0.1, 0.2, 0.2};
  double cls_weight = 1.0;
  double reg_weight = 1.0;
  // Inference.
  double score_thr = 0.05;     ///< keep (box, class) pairs with score > score_thr
  double nms_iou = 0.5;        ///< per-class NMS
  int64_t max_per_img = 100;   ///< <= 0: keep all
  /// Set by TwoStageDetector from DetectorConfig::box_convention (not a YAML key of its own).
  /// MaskrcnnBenchmark: the level mapper is maskrcnn-benchmark's (map_roi_levels_legacy,
  /// canonical 224 at level 4; finest_scale unused), box coding +1 (ops' legacy), and predict
  /// follows the seed's post_processing_opr (legacy_multiclass_nms, then the rescale).
  /// RoIAlign's aligned / sampling_ratio stay their own keys (the seed: false, 2).
  BoxConvention convention = BoxConvention::Mmdet;
  friend bool operator==(const RoiHeadConfig&, const RoiHeadConfig&) = default;
};

struct RoiLossOutput {
  Variable loss_cls;   ///< cross-entropy, mean over the sampled RoIs
  Variable loss_bbox;  ///< SmoothL1(beta) over the positives' GT-class deltas, summed / #sampled RoIs
  double accuracy = 0;  ///< top-1 classification accuracy over the sampled RoIs, percent (mmdet acc)
  int64_t num_pos = 0;
  int64_t num_sampled = 0;
  /// What the Dynamic R-CNN schedule records (MMDetection populations: every image's
  /// max_overlaps after the GTs were prepended; the sampled positives' label errors).
  train::DynamicStats stats;
};

/// The RoI stage as a module ("bbox_head" child, so weights are named roi_head.bbox_head.* in
/// a detector, as MMDetection).
template <typename T = float>
class RoiHead : public Module {
 public:
  RoiHead(const RoiHeadConfig& cfg, Generator& gen);
  const RoiHeadConfig& config() const { return m_cfg; }
  const Shared2FCBBoxHead<T>& bbox_head() const { return *m_head; }

  /// Pooled features [R, C, 7, 7] of rois [R, 5] (batch index, x1, y1, x2, y2) from the first
  /// featmap_strides.size() feature levels (MMDetection's level mapping).
  Variable extract(const std::vector<Variable>& features, const Tensor& rois) const;

  /// Training losses. proposals: per image (RpnProposals::boxes are used, detached); targets:
  /// per image (ignored objects are not targets). params: the schedule's current threshold
  /// (pos = neg = min_pos IoU, no low-quality matches) and beta. One RandomSampler draw per
  /// image from `gen`.
  RoiLossOutput loss(const std::vector<Variable>& features, const std::vector<Tensor>& proposals,
                     const std::vector<Instances>& targets, const train::DynamicParams& params, SamplingStreams gen) const;

  /// Detections per image: softmax, class-specific decode clipped to the image size, division
  /// by the scale factor (w_scale, h_scale) when given (mmdet rescale=True), score > score_thr,
  /// per-class NMS, the first max_per_img by score. BoxConvention::MaskrcnnBenchmark: decode
  /// and clip +1, legacy_multiclass_nms in the batch's pixels, then the division (the seed
  /// resizes its BoxList after post-processing; +1 IoUs are not scale-invariant). Instances: boxes, int64 labels, scores;
  /// image_size = original_sizes[i] when given, else image_sizes[i].
  std::vector<Instances> predict(const std::vector<Variable>& features, const std::vector<Tensor>& proposals,
                                 const std::vector<ImageSize>& image_sizes,
                                 const std::vector<std::array<double, 2>>& scale_factors = {},
                                 const std::vector<ImageSize>& original_sizes = {}) const;

 private:
  RoiHeadConfig m_cfg;
  std::shared_ptr<Shared2FCBBoxHead<T>> m_head;
};

/// rois [R, 5] from per-image boxes: column 0 the image index (the boxes' dtype).
Tensor boxes_to_rois(const std::vector<Tensor>& boxes);

/// Softmax over dim 1 of [R, K] scores (max-subtracted; a plain Tensor op, inference only).
Tensor softmax_rows(const Tensor& logits);

/// MMDetection multiclass_nms for one image: boxes [R, 4C], scores [R, C + 1] (background
/// last, ignored). Candidates (r, c) with scores > score_thr in row-major order, batched NMS
/// by class at nms_iou, then the first max_num (<= 0: all) in descending score order.
/// Returns (boxes [K, 4], scores [K], labels int64 [K]).
struct NmsDetections {
  Tensor boxes, scores, labels;
};
NmsDetections multiclass_nms(const Tensor& boxes, const Tensor& scores, double score_thr, double nms_iou,
                             int64_t max_num);

/// maskrcnn-benchmark's filter_results (the seed's det_opr/rcnn/post_processing.py) for one
/// image, with drcnn's class order: boxes [R, 4C], scores [R, C + 1] (background last, ignored).
/// For each class c in ascending order: the rows with score > score_thr, NMS at nms_iou with +1
/// widths (boxlist_nms; IoU > nms_iou suppresses, as its nms.cu); the classes' kept boxes
/// concatenated, class-major and in row order within a class (nms.cu returns the kept positions
/// sorted ascending, not by score). When more than max_num > 0
/// remain, the max_num-th largest score s is found (torch.kthvalue) and every detection with
/// score >= s is kept, in that order (ties at s can keep more than max_num).
NmsDetections legacy_multiclass_nms(const Tensor& boxes, const Tensor& scores, double score_thr, double nms_iou,
                                    int64_t max_num);

extern template class Shared2FCBBoxHead<float>;
extern template class Shared2FCBBoxHead<double>;
extern template class RoiHead<float>;
extern template class RoiHead<double>;

/// The seed's statistic populations of one image (hkzhang95/DynamicRCNN proposal_target_opr.py
/// and network.py; train::StatPopulation::kOriginal), appended to `stats`: the candidates are
/// `proposals` [N, 4] with `gt_boxes` [G, 4] appended (its proposal_with_gt). Each candidate's
/// IoU statistic value is its max IoU over the GTs when that reaches iou_threshold (a positive
/// of Matcher(thr, thr), first GT on ties), else its IoU with GT 0; its label error is
/// (|t_x| + |t_y|) / 2 of box_encode(candidate, that GT, means, stds), every candidate, before
/// sampling. legacy: maskrcnn-benchmark's +1 IoU and coder (the seed's exact arithmetic). With
/// G = 0 (the seed refuses such images) the values are 0 and no error is added.
/// Tested against tools/golden_seed_dynamic_stats.py (tests/models/test_seed_dynamic_stats.cpp).
void append_original_dynamic_stats(const Tensor& proposals, const Tensor& gt_boxes, double iou_threshold,
                                   const std::array<double, 4>& means, const std::array<double, 4>& stds,
                                   bool legacy, train::DynamicStats& stats);

}  // namespace drcnn::models
