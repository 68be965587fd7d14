// The RPN (spec B.4, B.5, B.7, C.4; MMDetection v2 RPNHead): a head shared by every FPN level
// and the proposal generator (MMDetection v2 RPNHead._get_bboxes_single, batched over images).
// Definitions and the float/double instantiations: src/models/rpn.cpp;
// tests: tests/models/test_rpn.cpp; docs: docs/detector.md, section "RPN".
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "drcnn/core/generator.h"
#include "drcnn/core/tensor.h"
#include "drcnn/layers/layers.h"
#include "drcnn/structures/instances.h"

namespace drcnn::models {

struct RpnHeadOptions {
  int64_t in_channels = 256;
  int64_t feat_channels = 256;
  int64_t num_anchors = 3;  ///< A: anchors per location (ratios x scales)
  friend bool operator==(const RpnHeadOptions&, const RpnHeadOptions&) = default;
};

/// One level's raw RPN outputs.
struct RpnLevelOutput {
  Variable objectness;  ///< [N, A, H, W] logits (sigmoid objectness; channel a = anchor a)
  Variable deltas;      ///< [N, 4A, H, W]; channels 4a..4a+3 = (dx, dy, dw, dh) of anchor a
};

/// MMDetection RPNHead (sigmoid, cls_out_channels 1): children "rpn_conv" (3x3, pad 1,
/// in -> feat, followed by ReLU), "rpn_cls" (1x1, feat -> A), "rpn_reg" (1x1, feat -> 4A).
/// Every weight ~ N(0, 0.01^2), every bias 0 (mmdet init_cfg Normal std 0.01).
template <typename T = float>
class RpnHead : public Module {
 public:
  RpnHead(const RpnHeadOptions& o, Generator& gen);
  /// The same three convs applied to every level (features [N, in, H_l, W_l]).
  std::vector<RpnLevelOutput> forward(const std::vector<Variable>& levels) const;
  RpnLevelOutput forward_level(const Variable& x) const;
  const RpnHeadOptions& options() const { return m_opt; }

 private:
  RpnHeadOptions m_opt;
  std::shared_ptr<Conv2d<T>> m_conv, m_cls, m_reg;
};

extern template class RpnHead<float>;
extern template class RpnHead<double>;

/// Which MMDetection v2 small-box rule min_bbox_size follows (spec B.7).
enum class RpnSmallBoxRule {
  /// mmdet v2.0 .. v2.17 (`if min_bbox_size > 0`): keep w >= min and h >= min; nothing is
  /// filtered when min_bbox_size == 0. The default (the rule of the Dynamic R-CNN config era).
  GreaterThanZeroOnly,
  /// mmdet >= v2.18 (_bbox_post_process, `if min_bbox_size >= 0`): keep w > min and h > min,
  /// so with min_bbox_size == 0 zero-width / zero-height (e.g. fully clipped) boxes are dropped.
  StrictAlways,
};

/// Whose box rules a detector follows (DetectorConfig::box_convention, YAML model.box_convention).
enum class BoxConvention {
  /// MMDetection v2 (the default): continuous boxes, width x2 - x1.
  Mmdet,
  /// maskrcnn-benchmark (the seed, hkzhang95/DynamicRCNN): +1 widths in box coding, IoU, NMS,
  /// clipping to (w - 1, h - 1), small-box removal and the level mapper; its proposal and
  /// post-processing selection rules (docs/conventions.md, "maskrcnn-benchmark").
  MaskrcnnBenchmark,
};

/// Proposal generation settings (MMDetection test_cfg/train_cfg.rpn). Defaults: Dynamic
/// R-CNN's test setting; train() and test() give the two presets; set nms_iou = 0.7 for the
/// Faster R-CNN baseline.
struct RpnProposalConfig {
  int64_t nms_pre = 1000;        ///< top-k per (image, level) before NMS (train 2000, test 1000); <= 0: all
  double nms_iou = 0.85;         ///< level-wise NMS IoU (Dynamic R-CNN 0.85, Faster R-CNN 0.7)
  int64_t max_per_img = 1000;    ///< proposals kept per image after NMS; >= 0
  double min_bbox_size = 0.0;    ///< >= 0; see small_box_rule
  RpnSmallBoxRule small_box_rule = RpnSmallBoxRule::GreaterThanZeroOnly;
  std::array<double, 4> means{0, 0, 0, 0};
  std::array<double, 4> stds{1, 1, 1, 1};
  double wh_ratio_clip = 16.0 / 1000.0;
  int64_t nms_split_threshold = 10000;  ///< mmcv batched_nms split_thr (per image)
  /// > 0: at most this many proposals per (image, level) after the level's NMS, before the
  /// image's max_per_img (maskrcnn-benchmark's POST_NMS_TOP_N; the seed 1000 test, 2000 train).
  /// <= 0: no per-level cap (MMDetection). Only a cap below max_per_img changes the result.
  int64_t max_per_level = 0;
  /// true: max_per_img applies to the batch: the max_per_img x N highest-scoring proposals over
  /// the N images (maskrcnn-benchmark's FPN_POST_NMS_PER_BATCH with FPN_POST_NMS_TOP_N_TRAIN =
  /// 1000 x images per GPU; the seed trains so). An image may then keep more or fewer than
  /// max_per_img. false: per image (MMDetection).
  bool per_batch = false;
  /// Set by TwoStageDetector from DetectorConfig::box_convention (not a YAML key of its own).
  /// MaskrcnnBenchmark: decode, clip and NMS with +1 widths (ops' legacy), and the small-box
  /// removal always runs (legacy widths, w >= min and h >= min; it drops NaN boxes), as the
  /// seed's remove_small_boxes; small_box_rule is not used.
  BoxConvention convention = BoxConvention::Mmdet;

  static RpnProposalConfig train() {
    RpnProposalConfig c;
    c.nms_pre = 2000;
    return c;
  }
  static RpnProposalConfig test() { return RpnProposalConfig{}; }
  friend bool operator==(const RpnProposalConfig&, const RpnProposalConfig&) = default;
};

/// One image's proposals.
struct RpnProposals {
  Tensor boxes;   ///< [K, 4] (x1, y1, x2, y2), clipped to the unpadded image
  Tensor scores;  ///< [K] sigmoid objectness, descending (equal scores: lower flat position first)
  Tensor levels;  ///< int64 [K] FPN level each proposal came from
};

/// MMDetection v2 RPN proposals for every image of the batch (no gradient: plain tensors).
///   objectness[l] [N, A, H_l, W_l], deltas[l] [N, 4A, H_l, W_l], anchors[l] [H_l * W_l * A, 4]
///   (ops::grid_anchors order (y, x, a)), image_sizes N unpadded (height, width).
/// Per image and level: scores = sigmoid(objectness) flattened in (y, x, a) order, top
/// min(nms_pre, H*W*A) (descending, ties by lower position; nms_pre <= 0 keeps all, as mmdet), decode
/// (DeltaXYWH, means/stds, wh_ratio_clip) against the anchors and clip to the image's unpadded
/// size; the small-box rule; then batched NMS over the image's selections with the level as
/// group id (IoU > nms_iou suppresses) and the first max_per_img kept boxes (score order).
/// With max_per_level > 0 each level keeps at most its first max_per_level boxes before that;
/// with per_batch the image's cap is max_per_img x N and then the batch keeps its max_per_img x N
/// highest scores over all images (one host copy of the scores).
/// Under BoxConvention::MaskrcnnBenchmark this is the seed's proposal_opr (per level: top
/// pre_nms_top_n, BoxCoder decode, clip_to_image, remove_small_boxes, boxlist_nms with
/// post_nms_top_n; then the image's, or per batch the batch's, top fpn_post_nms_top_n), the box
/// rules +1.
/// Dtypes: float32 or float64, all inputs of one dtype and device.
/// Host synchronisations (CUDA): segment_topk_compact's upload of the S + 1 offsets (one, for
/// the whole batch), one per image inside batched_nms (the kept count), and one per image for
/// the small-box filter when it is active.
std::vector<RpnProposals> generate_proposals(const std::vector<Tensor>& objectness, const std::vector<Tensor>& deltas,
                                             const std::vector<Tensor>& anchors,
                                             const std::vector<ImageSize>& image_sizes, const RpnProposalConfig& cfg);

/// The same from the head's outputs: the Variables' data are used (detached).
std::vector<RpnProposals> generate_proposals(const std::vector<RpnLevelOutput>& head_outputs,
                                             const std::vector<Tensor>& anchors,
                                             const std::vector<ImageSize>& image_sizes, const RpnProposalConfig& cfg);

}  // namespace drcnn::models
