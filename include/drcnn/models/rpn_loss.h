// RPN training targets and losses (spec B.6; MMDetection v2 AnchorHead.loss with RPNHead's
// sigmoid classifier): per image, MaxIoUAssigner (0.7 / 0.3, low-quality matches at 0.3) on the
// anchors inside the image's padded extent, RandomSampler (256 at 50% positives, no GT added),
// then for the whole batch one BCE-with-logits over the sampled anchors (target 1 for
// positives, 0 for negatives) and one L1 (or SmoothL1) over the positives' DeltaXYWH deltas,
// both summed and divided by N_s = sum over images of max(#pos, 1) + max(#neg, 1).
// Definitions: src/models/rpn_loss.cpp; tests: tests/models/test_rpn_loss.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "drcnn/core/generator.h"
#include "drcnn/models/assigner.h"
#include "drcnn/models/rpn.h"
#include "drcnn/models/sampler.h"
#include "drcnn/structures/instances.h"

namespace drcnn::models {

enum class RpnRegressionLoss {
  L1,        ///< MMDetection v2 Faster / Dynamic R-CNN (loss_bbox = L1Loss)
  SmoothL1,  ///< torchvision and the original code (beta 1/9)
};

struct RpnLossConfig {
  MaxIoUAssignerOptions assigner = MaxIoUAssignerOptions::rpn();
  RandomSamplerOptions sampler{256, 0.5, -1.0, false};
  std::array<double, 4> target_means{0, 0, 0, 0};
  std::array<double, 4> target_stds{1, 1, 1, 1};
  RpnRegressionLoss regression_loss = RpnRegressionLoss::L1;
  double smooth_l1_beta = 1.0 / 9.0;  ///< used by RpnRegressionLoss::SmoothL1
  double cls_weight = 1.0;
  double reg_weight = 1.0;
  /// >= 0: anchors reaching more than this many pixels outside the image (unpadded) are not
  /// trained (mmdet train_cfg.rpn.allowed_border, maskrcnn-benchmark STRADDLE_THRESH, the seed 0;
  /// ops::anchor_inside_flags). Under BoxConvention::Mmdet they are dropped before assignment,
  /// as mmdet; under MaskrcnnBenchmark they are assigned with the others and then ignored, as the
  /// seed's anchor_target_opr (so a ground truth's best anchor may be one outside, and then no
  /// anchor inside gets its low-quality match). < 0: off (MMDetection's Faster R-CNN, -1).
  double allowed_border = -1.0;
  /// Set by TwoStageDetector from DetectorConfig::box_convention (not a YAML key of its own).
  /// MaskrcnnBenchmark: the assigner's IoU and the regression targets +1 (boxlist_iou, BoxCoder).
  BoxConvention convention = BoxConvention::Mmdet;
  friend bool operator==(const RpnLossConfig&, const RpnLossConfig&) = default;
};

struct RpnLossOutput {
  Variable loss_cls;   ///< scalar, cls_weight * sum BCE / N_s
  Variable loss_bbox;  ///< scalar, reg_weight * sum |pred - target| / N_s (0 without positives)
  int64_t num_pos = 0;      ///< sampled positive anchors, all images
  int64_t num_neg = 0;      ///< sampled negative anchors, all images
  double avg_factor = 1.0;  ///< N_s
};

/// The RPN losses of a batch.
///   head_outputs: RpnHead::forward (L levels, [N, A, H_l, W_l] and [N, 4A, H_l, W_l]);
///   anchors: one [H_l * W_l * A, 4] tensor per level (ops::grid_anchors, shared by the images);
///   valid_flags: per image, bool [sum_l H_l * W_l * A] (ops::anchor_valid_flags of the image's
///     padded shape, levels concatenated); only these anchors are assigned and sampled;
///   targets: per image; ignored objects (Instances::ignore) are passed to the assigner as
///     ignore boxes (used only when assigner.ignore_iof_thr > 0, which mmdet's RPN does not set).
/// Randomness: one RandomSampler draw per image from `gen` (the shared generator in image order,
/// or each image's own: SamplingStreams).
/// The valid flags are read on the host to build each image's index list: pass them on the CPU
/// (any device is accepted; others are copied). Synchronisation: the sampler's count copy.
/// visible (optional): per image, bool [sum_l H_l * W_l * A] (CPU): anchors outside it are
/// assigned and then ignored (their assignment set to -1 before sampling), the seed's visibility.
RpnLossOutput rpn_loss(const std::vector<RpnLevelOutput>& head_outputs, const std::vector<Tensor>& anchors,
                       const std::vector<Tensor>& valid_flags, const std::vector<Instances>& targets,
                       const RpnLossConfig& cfg, SamplingStreams gen, const std::vector<Tensor>& visible = {});

/// Levels flattened in MMDetection's order: objectness [N, A, H, W] per level -> [N, T]
/// (T = sum H*W*A, position (y, x, a) within a level, levels in order), deltas -> [N, T, 4].
/// Differentiable (permute + reshape + concat).
Variable flatten_rpn_objectness(const std::vector<RpnLevelOutput>& head_outputs);
Variable flatten_rpn_deltas(const std::vector<RpnLevelOutput>& head_outputs);

}  // namespace drcnn::models
