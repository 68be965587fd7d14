// The two-stage detector (include/drcnn/models/detector.h).
#include "drcnn/models/detector.h"

#include <chrono>

#include "drcnn/autograd/functions.h"
#include "drcnn/core/profile.h"
#include "drcnn/ops/shape_ops.h"

namespace drcnn::models {

// ------------------------------------------------------------------------------- presets
DetectorConfig DetectorConfig::dynamic_rcnn_r50_fpn_1x(int64_t num_classes) {
  DetectorConfig c;
  c.name = "dynamic_rcnn_r50_fpn_1x";
  c.num_classes = num_classes;
  // mmdet: ResNet(depth 50, frozen_stages 1, BN requires_grad, norm_eval, style pytorch).
  c.backbone.depth = 50;
  c.backbone.norm.kind = NormKind::BatchNorm;
  c.backbone.frozen_stages = 1;
  c.backbone.norm_eval = true;
  c.neck.in_channels = {256, 512, 1024, 2048};
  c.neck.out_channels = 256;
  c.neck.num_outs = 5;
  c.anchors = ops::AnchorConfig{};  // strides 4..64, ratios 0.5/1/2, scale 8
  c.rpn_head = RpnHeadOptions{256, 256, 3};
  c.rpn_train = RpnProposalConfig::train();  // nms_pre 2000, NMS 0.85, 1000 per image
  c.rpn_test = RpnProposalConfig::test();    // nms_pre 1000, NMS 0.85, 1000 per image
  c.roi_head.bbox_head = BBoxHeadOptions{256, 7, 1024, num_classes};
  c.dynamic = train::DynamicRcnnConfig::mmdet();
  return c;
}

DetectorConfig DetectorConfig::faster_rcnn_r50_fpn_1x(int64_t num_classes) {
  DetectorConfig c = dynamic_rcnn_r50_fpn_1x(num_classes);
  c.name = "faster_rcnn_r50_fpn_1x";
  c.rpn_train.nms_iou = 0.7;
  c.rpn_test.nms_iou = 0.7;
  c.dynamic = train::DynamicRcnnConfig::static_baseline();
  return c;
}

DetectorConfig DetectorConfig::dynamic_rcnn_r101_fpn_1x(int64_t num_classes) {
  DetectorConfig c = dynamic_rcnn_r50_fpn_1x(num_classes);
  c.name = "dynamic_rcnn_r101_fpn_1x";
  c.backbone.depth = 101;
  return c;
}

DetectorConfig DetectorConfig::seed_dynamic_rcnn_r50_fpn_1x(int64_t num_classes) {
  DetectorConfig c = dynamic_rcnn_r50_fpn_1x(num_classes);
  c.name = "seed_dynamic_rcnn_r50_fpn_1x";
  // RESNETS: STRIDE_IN_1X1 (caffe), FrozenBatchNorm2d (no eps), FREEZE_CONV_BODY_AT 2.
  c.backbone.style = ResNetStyle::Caffe;
  c.backbone.norm.kind = NormKind::FrozenBatchNorm;
  c.backbone.norm.eps = 0.0;
  c.backbone.frozen_stages = 1;
  // RPN: ANCHOR_SIZES 32..512 at strides 4..64 (scale 8), ratios 0.5/1/2, generate_anchors.
  c.anchors.detectron = true;
  c.box_convention = BoxConvention::MaskrcnnBenchmark;
  c.rpn_test.nms_pre = 1000;       // PRE_NMS_TOP_N_TEST
  c.rpn_test.max_per_level = 1000; // POST_NMS_TOP_N_TEST
  c.rpn_test.max_per_img = 1000;   // FPN_POST_NMS_TOP_N_TEST (1 image per GPU)
  c.rpn_train.nms_pre = 2000;
  c.rpn_train.max_per_level = 2000;
  c.rpn_train.max_per_img = 1000;  // FPN_POST_NMS_TOP_N_TRAIN = 1000 x IMS_PER_GPU,
  c.rpn_train.per_batch = true;    // over the batch (FPN_POST_NMS_PER_BATCH)
  for (RpnProposalConfig* p : {&c.rpn_train, &c.rpn_test}) {
    p->nms_iou = 0.85;       // NMS_THRESH
    p->min_bbox_size = 0.0;  // MIN_SIZE
  }
  c.rpn_loss.regression_loss = RpnRegressionLoss::SmoothL1;  // smooth_l1_loss(beta = 1 / 9)
  c.rpn_loss.smooth_l1_beta = 1.0 / 9.0;
  c.rpn_loss.allowed_border = 0.0;  // STRADDLE_THRESH
  // Matcher(0.7, 0.3, allow_low_quality_matches=True): no minimum IoU, each its own best GT.
  c.rpn_loss.assigner.min_pos_iou = 0.0;
  c.rpn_loss.assigner.low_quality_own_best = true;
  // ROI_BOX_HEAD: POOLER_SAMPLING_RATIO 2, maskrcnn-benchmark's ROIAlign (no half-pixel offset).
  c.roi_head.aligned = false;
  c.roi_head.sampling_ratio = 2;
  c.dynamic = train::DynamicRcnnConfig::original();
  return c;
}

DetectorConfig DetectorConfig::seed_dynamic_rcnn_r101_fpn_1x(int64_t num_classes) {
  DetectorConfig c = seed_dynamic_rcnn_r50_fpn_1x(num_classes);
  c.name = "seed_dynamic_rcnn_r101_fpn_1x";
  c.backbone.depth = 101;
  return c;
}

DetectorConfig DetectorConfig::small_cpu(int64_t num_classes) {
  DetectorConfig c;
  c.name = "small_cpu";
  c.num_classes = num_classes;
  c.backbone.depth = 18;
  c.backbone.norm.kind = NormKind::GroupNorm;
  c.backbone.norm.gn_groups = 32;
  c.backbone.frozen_stages = -1;
  c.backbone.norm_eval = false;
  c.neck.in_channels = {64, 128, 256, 512};
  c.neck.out_channels = 128;
  c.neck.num_outs = 5;
  c.anchors.scales = {4.0};  // 16, 32, 64, 128, 256 px at strides 4..64
  c.rpn_head = RpnHeadOptions{128, 128, 3};
  c.rpn_train.nms_pre = 1000;
  c.rpn_train.max_per_img = 500;
  c.rpn_test.nms_pre = 500;
  c.rpn_test.max_per_img = 300;
  c.roi_head.bbox_head = BBoxHeadOptions{128, 7, 512, num_classes};
  c.roi_head.sampler.num = 128;
  c.dynamic = train::DynamicRcnnConfig::mmdet();
  c.dynamic.update_interval = 20;
  return c;
}

DetectorConfig DetectorConfig::tiny_cpu(int64_t num_classes) {
  DetectorConfig c = small_cpu(num_classes);
  c.name = "tiny_cpu";
  c.backbone.base_width = 8;
  c.backbone.norm.gn_groups = 4;
  c.neck.in_channels = {8, 16, 32, 64};
  c.neck.out_channels = 16;
  c.rpn_head = RpnHeadOptions{16, 16, 3};
  c.rpn_train.nms_pre = 200;
  c.rpn_train.max_per_img = 64;
  c.roi_head.bbox_head = BBoxHeadOptions{16, 7, 32, num_classes};
  c.roi_head.sampler.num = 32;
  c.dynamic.update_interval = 2;
  return c;
}

// ------------------------------------------------------------------------ TwoStageDetector
namespace {
// The detector-level box convention copied into the stages that apply it.
DetectorConfig with_convention(DetectorConfig c) {
  c.rpn_train.convention = c.box_convention;
  c.rpn_test.convention = c.box_convention;
  c.roi_head.convention = c.box_convention;
  c.rpn_loss.convention = c.box_convention;
  return c;
}
}  // namespace

template <typename T>
TwoStageDetector<T>::TwoStageDetector(const DetectorConfig& cfg, Generator& gen) : m_cfg(with_convention(cfg)) {
  DRCNN_CHECK(cfg.num_classes > 0, "TwoStageDetector: num_classes must be > 0, got ", cfg.num_classes);
  DRCNN_CHECK(cfg.roi_head.bbox_head.num_classes == cfg.num_classes, "TwoStageDetector: roi_head.bbox_head.",
              "num_classes (", cfg.roi_head.bbox_head.num_classes, ") differs from num_classes (", cfg.num_classes, ")");
  DRCNN_CHECK(int64_t(cfg.anchors.strides.size()) == cfg.neck.num_outs, "TwoStageDetector: ",
              cfg.anchors.strides.size(), " anchor strides for ", cfg.neck.num_outs, " FPN levels");
  DRCNN_CHECK(cfg.rpn_head.num_anchors == cfg.anchors.anchors_per_location(), "TwoStageDetector: rpn_head.num_anchors (",
              cfg.rpn_head.num_anchors, ") differs from the anchors per location (", cfg.anchors.anchors_per_location(),
              ")");
  DRCNN_CHECK(cfg.size_divisor >= 1, "TwoStageDetector: size_divisor must be >= 1, got ", cfg.size_divisor);
  m_backbone = register_module("backbone", std::make_shared<ResNet<T>>(cfg.backbone, gen));
  m_neck = register_module("neck", std::make_shared<Fpn<T>>(cfg.neck, gen));
  m_rpn = register_module("rpn_head", std::make_shared<RpnHead<T>>(cfg.rpn_head, gen));
  m_roi = register_module("roi_head", std::make_shared<RoiHead<T>>(m_cfg.roi_head, gen));
  // The backbone pins its frozen stages (and norm_eval) when the detector's mode changes.
  train(true);
}

template <typename T>
std::vector<Variable> TwoStageDetector<T>::features(const Tensor& images) const {
  return m_neck->forward(m_backbone->forward(Variable(images)));
}

template <typename T>
std::vector<ops::FeatureSize> TwoStageDetector<T>::feature_sizes(const std::vector<Variable>& features) const {
  std::vector<ops::FeatureSize> sizes;
  for (const Variable& f : features) sizes.push_back({f.data().size(2), f.data().size(3)});
  return sizes;
}

template <typename T>
std::vector<RpnProposals> TwoStageDetector<T>::proposals(const std::vector<Variable>& features,
                                                         const ImageList& images, bool training) const {
  const std::vector<RpnLevelOutput> out = m_rpn->forward(features);
  const std::vector<Tensor> anchors =
      ops::grid_anchors(m_cfg.anchors, feature_sizes(features), features[0].data().dtype(), features[0].data().device());
  return generate_proposals(out, anchors, images.image_sizes(), training ? m_cfg.rpn_train : m_cfg.rpn_test);
}

template <typename T>
DetectorLosses TwoStageDetector<T>::forward_train(const ImageList& images, const std::vector<Instances>& targets,
                                                  const train::DynamicParams& params, SamplingStreams gen) const {
  DRCNN_CHECK(int64_t(targets.size()) == images.size(), "TwoStageDetector::forward_train: ", images.size(),
              " images but ", targets.size(), " targets");
  // Host seconds per stage, and the same stages as NVTX ranges for Nsight Systems (GPU time:
  // docs/cuda.md): lap(stage, next) closes `stage` and opens `next`.
  const profile::Range whole("forward_train");
  struct StageRange {  // the open stage's range, closed on every exit (exceptions too)
    bool open = false;
    void next(const char* name) {
      if (open) profile::range_pop();
      open = name != nullptr;
      if (open) profile::range_push(name);
    }
    ~StageRange() { next(nullptr); }
  } stage_range;
  stage_range.next("backbone");
  using Clock = std::chrono::steady_clock;
  std::map<std::string, double> seconds;
  auto t0 = Clock::now();
  const auto lap = [&](const char* stage, const char* next) {
    const auto t1 = Clock::now();
    seconds[stage] = std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
    stage_range.next(next);
  };
  const std::vector<Variable> feats = features(images.tensor());
  lap("backbone", "rpn");
  const std::vector<ops::FeatureSize> sizes = feature_sizes(feats);
  const DType dtype = feats[0].data().dtype();
  const Device device = feats[0].data().device();
  const std::vector<Tensor> anchors = ops::grid_anchors(m_cfg.anchors, sizes, dtype, device);

  // RPN: losses on the anchors inside each image's own padded extent, then proposals (detached).
  const std::vector<RpnLevelOutput> rpn_out = m_rpn->forward(feats);
  // The valid flags depend on the geometry only and rpn_loss builds its index lists on the host
  // from them: computed on the host, so a GPU batch does not upload them only to read them back.
  std::vector<Tensor> valid, visible;
  const double border = m_cfg.rpn_loss.allowed_border;
  const Tensor all_anchors = border >= 0 ? ops::concat(anchors, 0) : Tensor();
  for (const ImageSize& s : images.image_sizes()) {
    const int64_t d = m_cfg.size_divisor;
    const int64_t pad_h = (s.height + d - 1) / d * d, pad_w = (s.width + d - 1) / d * d;
    Tensor v = ops::concat(ops::anchor_valid_flags(m_cfg.anchors, sizes, pad_h, pad_w, Device::cpu()), 0);
    if (border >= 0) {
      Tensor inside = ops::anchor_inside_flags(all_anchors, s.height, s.width, border);
      // mmdet drops the anchors outside before assigning; the seed assigns, then ignores them.
      if (m_cfg.box_convention == BoxConvention::MaskrcnnBenchmark) visible.push_back(std::move(inside));
      else {
        std::vector<bool> both = v.to_vector<bool>();
        const std::vector<bool> in = inside.to_vector<bool>();
        for (size_t j = 0; j < both.size(); ++j) both[j] = both[j] && in[j];
        v = Tensor::from_vector(both, v.shape());
      }
    }
    valid.push_back(std::move(v));
  }
  const RpnLossOutput rpn = rpn_loss(rpn_out, anchors, valid, targets, m_cfg.rpn_loss, gen, visible);
  lap("rpn", "proposals");
  std::vector<Tensor> proposal_boxes;
  for (RpnProposals& p : generate_proposals(rpn_out, anchors, images.image_sizes(), m_cfg.rpn_train))
    proposal_boxes.push_back(p.boxes);
  lap("proposals", "roi_head");

  // R-CNN with the schedule's threshold and beta.
  RoiLossOutput rcnn = m_roi->loss(feats, proposal_boxes, targets, params, gen);
  lap("roi_head", nullptr);

  DetectorLosses out;
  out.losses["loss_rpn_cls"] = rpn.loss_cls;
  out.losses["loss_rpn_bbox"] = rpn.loss_bbox;
  out.losses["loss_cls"] = rcnn.loss_cls;
  out.losses["loss_bbox"] = rcnn.loss_bbox;
  out.total = rpn.loss_cls + rpn.loss_bbox + rcnn.loss_cls + rcnn.loss_bbox;
  out.accuracy = rcnn.accuracy;
  out.rpn_num_pos = rpn.num_pos;
  out.rpn_num_neg = rpn.num_neg;
  out.rcnn_num_pos = rcnn.num_pos;
  out.rcnn_num_sampled = rcnn.num_sampled;
  out.stats = std::move(rcnn.stats);
  out.seconds = std::move(seconds);
  return out;
}

template <typename T>
std::vector<Instances> TwoStageDetector<T>::predict(const ImageList& images,
                                                    const std::vector<std::array<double, 2>>& scale_factors,
                                                    const std::vector<ImageSize>& original_sizes) const {
  const NoGradGuard no_grad;
  const std::vector<Variable> feats = features(images.tensor());
  std::vector<Tensor> boxes;
  for (RpnProposals& p : proposals(feats, images, false)) boxes.push_back(p.boxes);
  return m_roi->predict(feats, boxes, images.image_sizes(), scale_factors, original_sizes);
}

template class TwoStageDetector<float>;
template class TwoStageDetector<double>;

}  // namespace drcnn::models
