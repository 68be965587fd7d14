// The R-CNN stage (include/drcnn/models/roi_head.h).
//
// Training builds the sampled RoIs of all images as one [R, 5] tensor (MMDetection's layout:
// per image, its positives then its negatives), pools them with one multi-level RoIAlign and
// runs the head once; the class-specific deltas of the positives are gathered with one
// index_select on the [R * C, 4] view, at flat row r * C + label.
#include "drcnn/models/roi_head.h"

#include <algorithm>
#include <cmath>

#include "drcnn/autograd/functions.h"
#include "drcnn/autograd/losses.h"
#include "drcnn/autograd/roi_align.h"
#include "drcnn/layers/init.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/nms.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"

namespace drcnn::models {

// ------------------------------------------------------------------------- Shared2FCBBoxHead
template <typename T>
Shared2FCBBoxHead<T>::Shared2FCBBoxHead(const BBoxHeadOptions& o, Generator& gen) : m_opt(o) {
  DRCNN_CHECK(o.in_channels > 0 && o.roi_feat_size > 0 && o.fc_out_channels > 0 && o.num_classes > 0,
              "Shared2FCBBoxHead: in_channels, roi_feat_size, fc_out_channels and num_classes must be > 0, got ",
              o.in_channels, ", ", o.roi_feat_size, ", ", o.fc_out_channels, ", ", o.num_classes);
  using Opt = typename Linear<T>::Options;
  const int64_t flat = o.in_channels * o.roi_feat_size * o.roi_feat_size;
  m_shared = register_module("shared_fcs", std::make_shared<ModuleList>());
  m_fc0 = m_shared->push_back(std::make_shared<Linear<T>>(Opt{flat, o.fc_out_channels}, gen));
  m_fc1 = m_shared->push_back(std::make_shared<Linear<T>>(Opt{o.fc_out_channels, o.fc_out_channels}, gen));
  m_cls = register_module("fc_cls", std::make_shared<Linear<T>>(Opt{o.fc_out_channels, o.num_classes + 1}, gen));
  m_reg = register_module("fc_reg", std::make_shared<Linear<T>>(Opt{o.fc_out_channels, 4 * o.num_classes}, gen));
  // MMDetection v2 init: the shared FCs xavier_uniform (gain 1), fc_cls N(0, 0.01), fc_reg
  // N(0, 0.001), every bias 0.
  for (auto& [name, p] : named_parameters()) {
    Tensor& t = p.mutable_data();
    if (t.ndim() == 1) init::constant_(t, 0.0);
    else if (name.rfind("shared_fcs.", 0) == 0) init::xavier_uniform_(t, gen);
    else if (name.rfind("fc_cls.", 0) == 0) init::normal_(t, gen, 0.0, 0.01);
    else init::normal_(t, gen, 0.0, 0.001);
  }
}

template <typename T>
typename Shared2FCBBoxHead<T>::Output Shared2FCBBoxHead<T>::forward(const Variable& roi_feats) const {
  const Tensor& x = roi_feats.data();
  DRCNN_CHECK(x.ndim() == 4 && x.size(1) == m_opt.in_channels && x.size(2) == m_opt.roi_feat_size &&
                  x.size(3) == m_opt.roi_feat_size,
              "Shared2FCBBoxHead::forward: expected RoI features [R, ", m_opt.in_channels, ", ", m_opt.roi_feat_size,
              ", ", m_opt.roi_feat_size, "], got ", x.shape());
  // Channel-major flatten (index c * 49 + y * 7 + x), as torch's flatten(1).
  Variable h = flatten(roi_feats, 1);
  h = relu(m_fc0->forward(h));
  h = relu(m_fc1->forward(h));
  return {m_cls->forward(h), m_reg->forward(h)};
}

template class Shared2FCBBoxHead<float>;
template class Shared2FCBBoxHead<double>;

// ------------------------------------------------------------------------------ helpers
Tensor boxes_to_rois(const std::vector<Tensor>& boxes) {
  DRCNN_CHECK(!boxes.empty(), "boxes_to_rois: no images");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const Tensor& b = boxes[i];
    DRCNN_CHECK(b.ndim() == 2 && b.size(1) == 4, "boxes_to_rois: image ", i, ": expected boxes [K, 4], got ",
                b.shape());
    const Tensor index = Tensor::full({b.size(0), 1}, double(i), b.dtype(), b.device());
    parts.push_back(ops::concat({index, b}, 1));
  }
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0);
}

Tensor softmax_rows(const Tensor& logits) {
  DRCNN_CHECK(logits.ndim() == 2, "softmax_rows: expected [R, K], got ", logits.shape());
  if (logits.size(0) == 0) return logits.clone();
  const Tensor e = ops::exp(ops::sub(logits, ops::max(logits, 1, true)));
  return ops::div(e, ops::sum(e, 1, true));
}

namespace {

// batched_nms's split threshold (mmcv's nms_cfg split_thr): the legacy path passes it only
// because its `legacy` flag comes after it.
constexpr int64_t kNmsSplitThreshold = 10000;

// The seed's (maskrcnn-benchmark's) box, IoU and level-mapping conventions.
bool legacy_convention(const RoiHeadConfig& c) { return c.convention == BoxConvention::MaskrcnnBenchmark; }

// The (box, class) candidates with score > score_thr of boxes [R, 4C] and scores [R, C + 1]
// (background last, ignored): row-major (mmdet: valid_mask.nonzero()) or class-major with rows
// ascending within a class (maskrcnn-benchmark's loop over classes). `empty` when there is none.
struct Candidates {
  Tensor boxes, scores, labels;
  bool empty = true;
  NmsDetections select(const std::vector<int64_t>& order) const {
    const Tensor keep = Tensor::from_vector(order, Shape{int64_t(order.size())}, boxes.device());
    return {ops::index_select(boxes, 0, keep), ops::index_select(scores, 0, keep), ops::index_select(labels, 0, keep)};
  }
};

Candidates gather_candidates(const char* op, const Tensor& boxes, const Tensor& scores, double score_thr,
                             bool class_major) {
  DRCNN_CHECK(scores.ndim() == 2 && scores.size(1) >= 2, op, ": expected scores [R, C + 1], got ", scores.shape());
  const int64_t rows = scores.size(0), num_classes = scores.size(1) - 1;
  DRCNN_CHECK(boxes.ndim() == 2 && boxes.size(0) == rows && boxes.size(1) == 4 * num_classes, op, ": expected boxes [",
              rows, ", ", 4 * num_classes, "] for scores ", scores.shape(), ", got ", boxes.shape());
  const Device device = boxes.device();
  const Tensor fg = scores.narrow(1, 0, num_classes).contiguous().reshape({rows * num_classes});
  const std::vector<bool> valid = ops::gt(fg, score_thr).to(Device::cpu()).to_vector<bool>();
  std::vector<int64_t> flat, labels;
  const int64_t outer = class_major ? num_classes : rows, inner = class_major ? rows : num_classes;
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t b = 0; b < inner; ++b) {
      const int64_t r = class_major ? b : a, c = class_major ? a : b;
      if (valid[size_t(r * num_classes + c)]) {
        flat.push_back(r * num_classes + c);
        labels.push_back(c);
      }
    }
  Candidates out;
  if (flat.empty()) {
    out.boxes = Tensor::zeros({0, 4}, boxes.dtype(), device);
    out.scores = Tensor::zeros({0}, scores.dtype(), device);
    out.labels = Tensor::zeros({0}, DType::Int64, device);
    return out;
  }
  const Tensor index = Tensor::from_vector(flat, Shape{int64_t(flat.size())}, device);
  out.boxes = ops::index_select(boxes.contiguous().reshape({rows * num_classes, 4}), 0, index);
  out.scores = ops::index_select(fg, 0, index);
  out.labels = Tensor::from_vector(labels, Shape{int64_t(labels.size())}, device);
  out.empty = false;
  return out;
}

}  // namespace

NmsDetections multiclass_nms(const Tensor& boxes, const Tensor& scores, double score_thr, double nms_iou,
                             int64_t max_num) {
  const Candidates c = gather_candidates("multiclass_nms", boxes, scores, score_thr, false);
  if (c.empty) return {c.boxes, c.scores, c.labels};
  Tensor keep = ops::batched_nms(c.boxes, c.scores, c.labels, nms_iou);
  if (max_num > 0 && keep.size(0) > max_num) keep = keep.narrow(0, 0, max_num);
  return {ops::index_select(c.boxes, 0, keep), ops::index_select(c.scores, 0, keep),
          ops::index_select(c.labels, 0, keep)};
}

NmsDetections legacy_multiclass_nms(const Tensor& boxes, const Tensor& scores, double score_thr, double nms_iou,
                                    int64_t max_num) {
  const Candidates c = gather_candidates("legacy_multiclass_nms", boxes, scores, score_thr, true);
  if (c.empty) return {c.boxes, c.scores, c.labels};
  // Per-class NMS (groups never suppress each other). The seed's nms.cu returns the kept
  // positions sorted ascending, so its per-class lists are in row order and their concatenation
  // is the candidates' (class-major, row-ascending) order: the kept candidate indices, sorted.
  std::vector<int64_t> order =
      ops::batched_nms(c.boxes, c.scores, c.labels, nms_iou, /*max_output=*/-1, kNmsSplitThreshold, /*legacy=*/true)
          .to(Device::cpu())
          .to_vector<int64_t>();
  std::sort(order.begin(), order.end());
  if (max_num > 0 && int64_t(order.size()) > max_num) {
    const std::vector<double> s = c.select(order).scores.to(DType::Float64).to(Device::cpu()).to_vector<double>();
    std::vector<double> sorted = s;
    // kthvalue(scores, n - max_num + 1): the max_num-th largest.
    std::nth_element(sorted.begin(), sorted.begin() + std::ptrdiff_t(sorted.size()) - max_num, sorted.end());
    const double thresh = sorted[sorted.size() - size_t(max_num)];
    std::vector<int64_t> kept;
    for (size_t j = 0; j < order.size(); ++j)
      if (s[j] >= thresh) kept.push_back(order[j]);
    order = std::move(kept);
  }
  return c.select(order);
}

// ------------------------------------------------------------------------------ RoiHead
template <typename T>
RoiHead<T>::RoiHead(const RoiHeadConfig& cfg, Generator& gen) : m_cfg(cfg) {
  DRCNN_CHECK(!cfg.featmap_strides.empty(), "RoiHead: featmap_strides is empty");
  for (int64_t s : cfg.featmap_strides) DRCNN_CHECK(s > 0, "RoiHead: featmap strides must be > 0, got ", s);
  DRCNN_CHECK(cfg.score_thr >= 0 && cfg.nms_iou >= 0 && cfg.nms_iou <= 1, "RoiHead: score_thr must be >= 0 and ",
              "nms_iou in [0, 1], got ", cfg.score_thr, " and ", cfg.nms_iou);
  m_head = register_module("bbox_head", std::make_shared<Shared2FCBBoxHead<T>>(cfg.bbox_head, gen));
}

template <typename T>
Variable RoiHead<T>::extract(const std::vector<Variable>& features, const Tensor& rois) const {
  const size_t levels = m_cfg.featmap_strides.size();
  DRCNN_CHECK(features.size() >= levels, "RoiHead::extract: ", levels, " feature levels needed (strides ",
              m_cfg.featmap_strides.size(), "), got ", features.size());
  std::vector<Variable> used(features.begin(), features.begin() + std::ptrdiff_t(levels));
  std::vector<double> scales;
  for (int64_t s : m_cfg.featmap_strides) scales.push_back(1.0 / double(s));
  // maskrcnn-benchmark's LevelMapper: k_min = log2 of the first stride (its -log2(scales[0])).
  const Tensor level = legacy_convention(m_cfg)
                           ? ops::map_roi_levels_legacy(rois, int(levels), 224.0, 4,
                                                        int(std::lround(std::log2(double(m_cfg.featmap_strides[0])))))
                           : ops::map_roi_levels(rois, int(levels), m_cfg.finest_scale);
  const int64_t size = m_cfg.bbox_head.roi_feat_size;
  return roi_align_multilevel(used, rois, level, {size, size}, scales, m_cfg.sampling_ratio, m_cfg.aligned);
}

template <typename T>
RoiLossOutput RoiHead<T>::loss(const std::vector<Variable>& features, const std::vector<Tensor>& proposals,
                               const std::vector<Instances>& targets, const train::DynamicParams& params,
                               SamplingStreams gen) const {
  DRCNN_CHECK(!proposals.empty() && proposals.size() == targets.size(), "RoiHead::loss: ", proposals.size(),
              " proposal sets for ", targets.size(), " images (need one per image, at least one image)");
  DRCNN_CHECK(std::isfinite(params.iou_threshold) && params.iou_threshold >= 0 && params.iou_threshold <= 1 &&
                  std::isfinite(params.beta) && params.beta > 0,
              "RoiHead::loss: the IoU threshold must be in [0, 1] and beta finite and > 0, got ", params.iou_threshold,
              " and ", params.beta);
  const int64_t num_classes = m_cfg.bbox_head.num_classes;
  MaxIoUAssignerOptions assigner_opt = MaxIoUAssignerOptions::rcnn(params.iou_threshold);
  const bool legacy = legacy_convention(m_cfg);
  assigner_opt.legacy_iou = legacy;
  const MaxIoUAssigner assigner(assigner_opt);
  const RandomSampler sampler(m_cfg.sampler);
  RoiLossOutput out;
  std::vector<Tensor> roi_boxes, labels, pos_rows, pos_labels, pos_targets;
  int64_t offset = 0;
  for (size_t i = 0; i < proposals.size(); ++i) {
    const Tensor& cand = proposals[i];
    const DType dtype = cand.dtype();
    const Device device = cand.device();
    const Instances gt = targets[i].without_ignored();
    DRCNN_CHECK(gt.labels.dtype() == DType::Int64, "RoiHead::loss: image ", i, ": labels must be int64");
    const Tensor gt_boxes = gt.boxes.tensor().to(dtype);
    const Tensor ignore = targets[i].has_ignore() ? targets[i].ignored_boxes().tensor().to(dtype) : Tensor();
    AssignResult assign = assigner.assign(cand, gt_boxes, gt.labels, ignore);
    const SamplingResult s = sampler.sample(assign, cand, gt_boxes, gt.labels, gen.for_image(i));
    if (params.population == train::StatPopulation::kOriginal) {
      append_original_dynamic_stats(cand, gt_boxes, params.iou_threshold, m_cfg.target_means, m_cfg.target_stds,
                                    legacy, out.stats);
    } else {
      out.stats.max_overlaps.push_back(
          assign.max_overlaps.to(DType::Float64).to(Device::cpu()).to_vector<double>());
    }
    const int64_t np = s.pos_inds.size(0), nn = s.neg_inds.size(0);
    roi_boxes.push_back(ops::concat({s.pos_bboxes, s.neg_bboxes}, 0));
    labels.push_back(ops::concat({s.pos_gt_labels, Tensor::full({nn}, double(num_classes), DType::Int64, device)}, 0));
    if (np > 0) {
      pos_rows.push_back(Tensor::arange(double(offset), double(offset + np), 1.0, DType::Int64, device));
      pos_labels.push_back(s.pos_gt_labels);
      pos_targets.push_back(
          ops::box_encode(s.pos_bboxes, s.pos_gt_bboxes, m_cfg.target_means, m_cfg.target_stds, legacy));
    }
    out.num_pos += np;
    offset += np + nn;
  }
  out.num_sampled = offset;
  DRCNN_CHECK(offset > 0, "RoiHead::loss: no RoI was sampled (no proposal, no ground truth and no negative)");

  const Tensor rois = boxes_to_rois(roi_boxes);
  const Tensor all_labels = ops::concat(labels, 0);
  const auto head_out = m_head->forward(extract(features, rois));
  const ops::LossReduce reduce{ops::Reduction::Mean, double(offset)};
  out.loss_cls = cross_entropy(head_out.cls_score, all_labels, Tensor(), reduce);
  if (out.num_pos > 0) {
    const Tensor rows = ops::concat(pos_rows, 0);
    const Tensor cls = ops::concat(pos_labels, 0);
    const Tensor flat = ops::add(ops::mul(rows, double(num_classes)), cls);  // row r, class c -> r * C + c
    const Variable pred = index_select(reshape(head_out.bbox_pred, Shape{offset * num_classes, 4}), 0, flat);
    const Tensor target = ops::concat(pos_targets, 0);
    out.loss_bbox = smooth_l1_loss(pred, target, params.beta, reduce);
    // Label errors (|t_x| + |t_y|) / 2 of the normalised targets (spec A.1, A.3); the original
    // population has every candidate's already.
    if (params.population != train::StatPopulation::kOriginal) {
      const std::vector<double> t = target.to(DType::Float64).to(Device::cpu()).to_vector<double>();
      for (size_t r = 0; r + 3 < t.size(); r += 4)
        out.stats.regression_errors.push_back((std::fabs(t[r]) + std::fabs(t[r + 1])) / 2);
    }
  } else {
    out.loss_bbox = sum(head_out.bbox_pred) * 0.0;  // mmdet: bbox_pred[pos_inds].sum(), keeps the graph
  }
  if (m_cfg.cls_weight != 1.0) out.loss_cls = out.loss_cls * m_cfg.cls_weight;
  if (m_cfg.reg_weight != 1.0) out.loss_bbox = out.loss_bbox * m_cfg.reg_weight;
  const Tensor predicted = ops::argmax(head_out.cls_score.data(), 1).to(Device::cpu());
  const std::vector<int64_t> pred_labels = predicted.to_vector<int64_t>();
  const std::vector<int64_t> true_labels = all_labels.to(Device::cpu()).to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t r = 0; r < true_labels.size(); ++r) correct += pred_labels[r] == true_labels[r];
  out.accuracy = 100.0 * double(correct) / double(offset);
  return out;
}

template <typename T>
std::vector<Instances> RoiHead<T>::predict(const std::vector<Variable>& features, const std::vector<Tensor>& proposals,
                                           const std::vector<ImageSize>& image_sizes,
                                           const std::vector<std::array<double, 2>>& scale_factors,
                                           const std::vector<ImageSize>& original_sizes) const {
  const size_t n = proposals.size();
  DRCNN_CHECK(n > 0 && image_sizes.size() == n && (scale_factors.empty() || scale_factors.size() == n) &&
                  (original_sizes.empty() || original_sizes.size() == n),
              "RoiHead::predict: ", n, " proposal sets, ", image_sizes.size(), " image sizes, ", scale_factors.size(),
              " scale factors and ", original_sizes.size(), " original sizes (need one of each per image; the last ",
              "two may be empty)");
  const int64_t num_classes = m_cfg.bbox_head.num_classes;
  const Tensor rois = boxes_to_rois(proposals);
  std::vector<Instances> results;
  results.reserve(n);
  Tensor cls, reg;
  if (rois.size(0) > 0) {
    const auto head_out = m_head->forward(extract(features, rois));
    cls = head_out.cls_score.data();
    reg = head_out.bbox_pred.data();
  }
  int64_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = proposals[i];
    const int64_t count = p.size(0);
    const ImageSize out_size = original_sizes.empty() ? image_sizes[i] : original_sizes[i];
    NmsDetections det;
    if (count == 0) {
      det = {Tensor::zeros({0, 4}, p.dtype(), p.device()), Tensor::zeros({0}, p.dtype(), p.device()),
             Tensor::zeros({0}, DType::Int64, p.device())};
    } else {
      const Tensor scores = softmax_rows(cls.narrow(0, offset, count));
      const bool legacy = legacy_convention(m_cfg);
      Tensor boxes = ops::box_decode(p, reg.narrow(0, offset, count), m_cfg.target_means, m_cfg.target_stds,
                                     ops::ImageShape{double(image_sizes[i].height), double(image_sizes[i].width)},
                                     16.0 / 1000.0, legacy);
      Tensor factor;
      if (!scale_factors.empty()) {
        const auto [sw, sh] = scale_factors[i];
        DRCNN_CHECK(sw > 0 && sh > 0, "RoiHead::predict: image ", i, ": scale factors must be > 0, got (", sw, ", ",
                    sh, ")");
        factor = Tensor::from_vector(std::vector<double>{sw, sh, sw, sh}, Shape{4}, p.device()).to(p.dtype());
      }
      if (legacy) {
        det = legacy_multiclass_nms(boxes, scores, m_cfg.score_thr, m_cfg.nms_iou, m_cfg.max_per_img);
        if (factor.defined()) det.boxes = ops::div(det.boxes, factor);
      } else {
        if (factor.defined())
          boxes = ops::div(boxes.reshape({count, num_classes, 4}), factor).reshape({count, 4 * num_classes});
        det = multiclass_nms(boxes, scores, m_cfg.score_thr, m_cfg.nms_iou, m_cfg.max_per_img);
      }
    }
    results.emplace_back(out_size, Boxes(det.boxes), det.labels, det.scores);
    offset += count;
  }
  return results;
}

template class RoiHead<float>;
template class RoiHead<double>;

void append_original_dynamic_stats(const Tensor& proposals, const Tensor& gt_boxes, double iou_threshold,
                                   const std::array<double, 4>& means, const std::array<double, 4>& stds,
                                   bool legacy, train::DynamicStats& stats) {
  const Tensor cand = ops::concat({proposals, gt_boxes.to(proposals.dtype())}, 0);  // gts appended
  const int64_t n = cand.size(0), g = gt_boxes.size(0);
  if (g == 0) {
    stats.max_overlaps.push_back(std::vector<double>(size_t(n), 0.0));
    return;
  }
  // IoU [G, N] as the seed's boxlist_iou(targets, proposals); the match of column j is the first
  // GT with the column's maximum (Matcher: max(dim=0)); below the threshold it is GT 0.
  const std::vector<double> q =
      ops::box_iou(gt_boxes.to(proposals.dtype()), cand, legacy).to(DType::Float64).to(Device::cpu()).to_vector<double>();
  std::vector<int64_t> match(size_t(n), 0);
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    int64_t best = 0;
    for (int64_t k = 1; k < g; ++k)
      if (q[size_t(k * n + j)] > q[size_t(best * n + j)]) best = k;
    const bool positive = q[size_t(best * n + j)] >= iou_threshold;
    match[size_t(j)] = positive ? best : 0;
    values[size_t(j)] = q[size_t(match[size_t(j)] * n + j)];
  }
  stats.max_overlaps.push_back(std::move(values));
  const Tensor matched = ops::index_select(gt_boxes.to(proposals.dtype()), 0,
                                           Tensor::from_vector<int64_t>(match, Shape{n}).to(proposals.device()));
  const std::vector<double> t =
      ops::box_encode(cand, matched, means, stds, legacy).to(DType::Float64).to(Device::cpu()).to_vector<double>();
  for (size_t r = 0; r + 3 < t.size(); r += 4) stats.regression_errors.push_back((std::fabs(t[r]) + std::fabs(t[r + 1])) / 2);
}

}  // namespace drcnn::models
