// The two-stage detector: ResNet + FPN + RPN + RoI head (Faster R-CNN), trained the Dynamic
// R-CNN way when the trainer feeds it the schedule's current parameters (spec A, B; MMDetection
// v2 dynamic_rcnn_r50_fpn_1x_coco). The schedule itself belongs to training
// (train/dynamic_schedule.h): forward_train takes its DynamicParams and returns the statistics
// to record. Module names follow MMDetection: backbone.*, neck.*, rpn_head.*,
// roi_head.bbox_head.*. Definitions: src/models/detector.cpp; docs: docs/detector.md.
#pragma once
#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "drcnn/core/generator.h"
#include "drcnn/models/fpn.h"
#include "drcnn/models/resnet.h"
#include "drcnn/models/roi_head.h"
#include "drcnn/models/rpn.h"
#include "drcnn/models/rpn_loss.h"
#include "drcnn/ops/anchors.h"
#include "drcnn/structures/image_list.h"
#include "drcnn/structures/instances.h"
#include "drcnn/train/dynamic_schedule.h"

namespace drcnn::models {

/// Every hyperparameter of the model and of its training targets and inference.
struct DetectorConfig {
  std::string name;  ///< the preset's name (for logs and checkpoints)
  int64_t num_classes = 80;
  ResNetOptions backbone{};
  FpnOptions neck{};
  ops::AnchorConfig anchors{};
  RpnHeadOptions rpn_head{};
  RpnLossConfig rpn_loss{};
  RpnProposalConfig rpn_train = RpnProposalConfig::train();
  RpnProposalConfig rpn_test = RpnProposalConfig::test();
  RoiHeadConfig roi_head{};
  /// The images' padding unit: each image's own padded shape (for the anchors' valid flags)
  /// is its size rounded up to a multiple of this (MMDetection Pad size_divisor 32).
  int64_t size_divisor = 32;
  /// Whose box rules the RPN, the RoI head and the post-processing follow (YAML
  /// model.box_convention: mmdet | maskrcnn_benchmark). The detector copies it into rpn_train,
  /// rpn_test and roi_head (their `convention`); docs/conventions.md lists the rules.
  BoxConvention box_convention = BoxConvention::Mmdet;
  /// The Dynamic R-CNN schedule the trainer should build (training-owned; kept here so one
  /// struct holds every hyperparameter of a preset).
  train::DynamicRcnnConfig dynamic = train::DynamicRcnnConfig::mmdet();

  /// MMDetection dynamic_rcnn_r50_fpn_1x_coco: ResNet-50 (pytorch style, BN frozen as
  /// norm_eval, stage 1 frozen), FPN 256, RPN NMS 0.85, RoI 512 @ 25%, dynamic schedule.
  static DetectorConfig dynamic_rcnn_r50_fpn_1x(int64_t num_classes = 80);
  /// MMDetection faster_rcnn_r50_fpn_1x_coco: the same model with RPN NMS 0.7 and the static
  /// schedule (IoU 0.5, beta 1.0).
  static DetectorConfig faster_rcnn_r50_fpn_1x(int64_t num_classes = 80);
  /// dynamic_rcnn_r50_fpn_1x with ResNet-101.
  static DetectorConfig dynamic_rcnn_r101_fpn_1x(int64_t num_classes = 80);
  /// The seed's Dynamic R-CNN R-50-FPN 1x (hkzhang95/DynamicRCNN
  /// models/.../dynamic_rcnn_r50_fpn_1x/config.py, on maskrcnn-benchmark) for its checkpoints
  /// and its training rules: caffe-style ResNet-50 with frozen BN (eps 0, stem and layer1
  /// frozen), Detectron anchors, box_convention maskrcnn_benchmark, RPN per level top 1000
  /// (train 2000), NMS 0.85, 1000 (2000) per level, 1000 per image, smooth L1 (beta 1/9),
  /// RoIAlign aligned false with sampling ratio 2, the original Dynamic R-CNN schedule
  /// (DynamicRcnnConfig::original). Its input normalisation (BGR, mean (102.9801, 115.9465,
  /// 122.7717), std 1) is data.normalize: configs/seed_dynamic_rcnn_r50_fpn_1x.yaml sets it.
  static DetectorConfig seed_dynamic_rcnn_r50_fpn_1x(int64_t num_classes = 80);
  /// The same with ResNet-101 (the seed's dynamic_rcnn_r101_fpn_1x).
  static DetectorConfig seed_dynamic_rcnn_r101_fpn_1x(int64_t num_classes = 80);
  /// A small model for CPU training from scratch (demo, tests): ResNet-18 with GroupNorm (32
  /// groups, nothing frozen), FPN 128 channels, anchors 16..256 px (scale 4, 3 ratios), fewer
  /// proposals (train 1000 -> 500, test 500 -> 300), RoI head 128 RoIs per image and 512-wide
  /// FCs, dynamic schedule with update interval 20.
  static DetectorConfig small_cpu(int64_t num_classes);
  /// small_cpu narrowed to a few channels (ResNet-18 base width 8, GroupNorm 4 groups, FPN 16,
  /// RoI head 32 RoIs and 32-wide FCs, Dynamic R-CNN update interval 2): milliseconds per
  /// iteration on 64x64 images, for tests and smoke runs of the training loop, not for accuracy.
  static DetectorConfig tiny_cpu(int64_t num_classes);

  /// Field by field (every member, nested structs included).
  friend bool operator==(const DetectorConfig&, const DetectorConfig&) = default;
};

/// The named losses of one training forward and what the trainer needs besides them.
struct DetectorLosses {
  std::map<std::string, Variable> losses;  ///< loss_rpn_cls, loss_rpn_bbox, loss_cls, loss_bbox
  Variable total;                          ///< their sum
  double accuracy = 0;                     ///< R-CNN top-1 accuracy over sampled RoIs, percent
  int64_t rpn_num_pos = 0, rpn_num_neg = 0;
  int64_t rcnn_num_pos = 0, rcnn_num_sampled = 0;
  train::DynamicStats stats;  ///< for DynamicSchedule::record
  /// Host wall time of each stage of the forward, seconds: "backbone" (ResNet + FPN), "rpn"
  /// (head + targets + losses), "proposals", "roi_head" (targets, RoIAlign, head, losses). On
  /// CUDA these are launch times unless the caller synchronises (benchmarks/bench_detector).
  std::map<std::string, double> seconds;
};

template <typename T = float>
class TwoStageDetector : public Module {
 public:
  TwoStageDetector(const DetectorConfig& cfg, Generator& gen);
  const DetectorConfig& config() const { return m_cfg; }

  /// P2..P6 of a batch [N, 3, H, W].
  std::vector<Variable> features(const Tensor& images) const;

  /// Losses for a batch. images: padded, normalised batch with each image's size (after resize,
  /// before padding); targets: per image, boxes in that image's pixels, labels 0..C-1, optional
  /// ignore flags (crowd / difficult); params: the schedule's current IoU threshold and beta.
  /// Randomness (RPN and RoI sampling) from `gen`.
  DetectorLosses forward_train(const ImageList& images, const std::vector<Instances>& targets,
                               const train::DynamicParams& params, SamplingStreams gen) const;

  /// Detections per image (no gradient is recorded). scale_factors (w_scale, h_scale) map the
  /// boxes back to the original images (divided, as MMDetection's rescale) and original_sizes
  /// become the results' image sizes; both may be empty (boxes stay in the batch's pixels).
  std::vector<Instances> predict(const ImageList& images, const std::vector<std::array<double, 2>>& scale_factors = {},
                                 const std::vector<ImageSize>& original_sizes = {}) const;

  /// Proposals per image for a batch (the RPN alone; `training` picks rpn_train or rpn_test).
  std::vector<RpnProposals> proposals(const std::vector<Variable>& features, const ImageList& images,
                                      bool training) const;

 private:
  std::vector<ops::FeatureSize> feature_sizes(const std::vector<Variable>& features) const;

  DetectorConfig m_cfg;
  std::shared_ptr<ResNet<T>> m_backbone;
  std::shared_ptr<Fpn<T>> m_neck;
  std::shared_ptr<RpnHead<T>> m_rpn;
  std::shared_ptr<RoiHead<T>> m_roi;
};

extern template class TwoStageDetector<float>;
extern template class TwoStageDetector<double>;

}  // namespace drcnn::models
