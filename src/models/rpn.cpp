// RPN head and proposal generation (include/drcnn/models/rpn.h).
//
// Proposal generation runs the whole batch through one segment top-k: the sigmoid scores of
// every (image, level) are laid out image-major, level-minor in one flat array, so segment
// s = i * L + l. Because every image has the same feature sizes, the number selected per
// segment (min(nms_pre, H_l * W_l * A)) and so every selected entry's image and level are
// known on the host without reading data; only the decode (per-image clip bounds) and the NMS
// (per-image keep lists, as mmdet's per-image batched_nms) run once per image.
#include "drcnn/models/rpn.h"

#include <algorithm>

#include "drcnn/autograd/functions.h"
#include "drcnn/layers/init.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/nms.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/ops/topk.h"

namespace drcnn::models {

// ------------------------------------------------------------------------------- RpnHead
template <typename T>
RpnHead<T>::RpnHead(const RpnHeadOptions& o, Generator& gen) : m_opt(o) {
  DRCNN_CHECK(o.in_channels > 0 && o.feat_channels > 0 && o.num_anchors > 0,
              "RpnHead: in_channels, feat_channels and num_anchors must be > 0, got ", o.in_channels, ", ",
              o.feat_channels, ", ", o.num_anchors);
  using Opt = typename Conv2d<T>::Options;
  m_conv = register_module("rpn_conv", std::make_shared<Conv2d<T>>(Opt{o.in_channels, o.feat_channels, 3, 1, 1}, gen));
  m_cls = register_module("rpn_cls", std::make_shared<Conv2d<T>>(Opt{o.feat_channels, o.num_anchors, 1}, gen));
  m_reg = register_module("rpn_reg", std::make_shared<Conv2d<T>>(Opt{o.feat_channels, 4 * o.num_anchors, 1}, gen));
  // MMDetection RPNHead init_cfg: Normal(std 0.01) on every conv, bias 0.
  for (auto& [name, p] : named_parameters()) {
    Tensor& t = p.mutable_data();
    if (t.ndim() == 4) init::normal_(t, gen, 0.0, 0.01);
    else init::constant_(t, 0.0);
  }
}

template <typename T>
RpnLevelOutput RpnHead<T>::forward_level(const Variable& x) const {
  DRCNN_CHECK(x.defined() && x.data().ndim() == 4 && x.data().size(1) == m_opt.in_channels, "RpnHead::forward: expected ",
              "a feature map [N, ", m_opt.in_channels, ", H, W], got ",
              x.defined() ? x.data().shape() : Shape{});
  const Variable h = relu(m_conv->forward(x));
  return {m_cls->forward(h), m_reg->forward(h)};
}

template <typename T>
std::vector<RpnLevelOutput> RpnHead<T>::forward(const std::vector<Variable>& levels) const {
  std::vector<RpnLevelOutput> out;
  out.reserve(levels.size());
  for (const Variable& x : levels) out.push_back(forward_level(x));
  return out;
}

template class RpnHead<float>;
template class RpnHead<double>;

// ------------------------------------------------------------------ generate_proposals
namespace {

// Indices of the boxes the small-box rule keeps; undefined when the rule keeps everything
// without looking (min_bbox_size == 0 under GreaterThanZeroOnly). One mask copy to the host.
Tensor small_box_keep(const Tensor& boxes, const RpnProposalConfig& cfg) {
  // maskrcnn-benchmark: remove_small_boxes always runs (+1 widths, >=; NaN boxes fail it).
  if (cfg.convention == BoxConvention::MaskrcnnBenchmark) return ops::remove_small_boxes(boxes, cfg.min_bbox_size, true);
  if (cfg.small_box_rule == RpnSmallBoxRule::GreaterThanZeroOnly) {
    if (cfg.min_bbox_size <= 0) return {};
    return ops::remove_small_boxes(boxes, cfg.min_bbox_size);  // w >= min and h >= min
  }
  // StrictAlways: w > min and h > min (a NaN width or height fails the comparison: dropped).
  const Tensor w = ops::sub(boxes.select(1, 2), boxes.select(1, 0));
  const Tensor h = ops::sub(boxes.select(1, 3), boxes.select(1, 1));
  const Tensor h_if_w_ok =
      ops::where(ops::gt(w, cfg.min_bbox_size), h, Tensor::full({}, -1.0, boxes.dtype(), boxes.device()));
  const std::vector<bool> ok = ops::gt(h_if_w_ok, cfg.min_bbox_size).to(Device::cpu()).to_vector<bool>();
  std::vector<int64_t> keep;
  for (size_t j = 0; j < ok.size(); ++j)
    if (ok[j]) keep.push_back(int64_t(j));
  return Tensor::from_vector<int64_t>(keep, Shape{int64_t(keep.size())}).to(boxes.device());
}

// The first `per_level` entries of each level in `keep` (descending score order over the
// levels), then the first max_per_img of those: maskrcnn-benchmark's boxlist_nms(...,
// max_proposals = post_nms_top_n) per level followed by the image's top fpn_post_nms_top_n.
Tensor cap_per_level(const Tensor& keep, const Tensor& levels, int64_t num_levels, int64_t per_level,
                     int64_t max_per_img) {
  const std::vector<int64_t> k = keep.to(Device::cpu()).to_vector<int64_t>();
  const std::vector<int64_t> lv = ops::index_select(levels, 0, keep).to(Device::cpu()).to_vector<int64_t>();
  std::vector<int64_t> taken(size_t(num_levels), 0), out;
  for (size_t j = 0; j < k.size() && int64_t(out.size()) < max_per_img; ++j)
    if (taken[size_t(lv[j])]++ < per_level) out.push_back(k[j]);
  return Tensor::from_vector<int64_t>(out, Shape{int64_t(out.size())}).to(keep.device());
}

// maskrcnn-benchmark's FPN_POST_NMS_PER_BATCH: the `count` highest scores over every image's
// proposals (torch.topk over their concatenation; equal scores: the lower image, then the lower
// position), each image keeping its selected ones in its own (descending score) order.
void keep_top_of_batch(std::vector<RpnProposals>& images, int64_t count) {
  std::vector<std::vector<double>> scores;
  std::vector<std::pair<size_t, size_t>> all;  // (image, position)
  for (size_t i = 0; i < images.size(); ++i) {
    scores.push_back(images[i].scores.to(DType::Float64).to(Device::cpu()).to_vector<double>());
    for (size_t j = 0; j < scores[i].size(); ++j) all.emplace_back(i, j);
  }
  if (int64_t(all.size()) <= count) return;
  std::stable_sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
    return scores[a.first][a.second] > scores[b.first][b.second];
  });
  std::vector<std::vector<int64_t>> chosen(images.size());
  for (size_t k = 0; k < size_t(count); ++k) chosen[all[k].first].push_back(int64_t(all[k].second));
  for (size_t i = 0; i < images.size(); ++i) {
    std::sort(chosen[i].begin(), chosen[i].end());
    RpnProposals& p = images[i];
    const Tensor keep = Tensor::from_vector<int64_t>(chosen[i], Shape{int64_t(chosen[i].size())}).to(p.boxes.device());
    p.boxes = ops::index_select(p.boxes, 0, keep);
    p.scores = ops::index_select(p.scores, 0, keep);
    p.levels = ops::index_select(p.levels, 0, keep);
  }
}

}  // namespace

std::vector<RpnProposals> generate_proposals(const std::vector<Tensor>& objectness, const std::vector<Tensor>& deltas,
                                             const std::vector<Tensor>& anchors,
                                             const std::vector<ImageSize>& image_sizes, const RpnProposalConfig& cfg) {
  const char* op = "generate_proposals";
  const size_t L = objectness.size();
  DRCNN_CHECK(L >= 1 && deltas.size() == L && anchors.size() == L, op,
              ": expected one objectness, deltas and anchors tensor per level (>= 1 level), got ", objectness.size(),
              ", ", deltas.size(), ", ", anchors.size());
  DRCNN_CHECK(cfg.max_per_img >= 0 && cfg.min_bbox_size >= 0 && cfg.nms_split_threshold >= 0, op,
              ": max_per_img, min_bbox_size and nms_split_threshold must be >= 0, got ", cfg.max_per_img, ", ",
              cfg.min_bbox_size, ", ", cfg.nms_split_threshold);
  const int64_t N = int64_t(image_sizes.size());
  const DType dtype = objectness[0].dtype();
  const Device dev = objectness[0].device();
  DRCNN_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op, ": expected float32 or float64 inputs, got ",
              dtype);

  std::vector<Tensor> level_scores, level_deltas, level_anchors;
  std::vector<int64_t> len(L);
  for (size_t l = 0; l < L; ++l) {
    const Tensor& o = objectness[l];
    const Tensor& d = deltas[l];
    const Tensor& a = anchors[l];
    DRCNN_CHECK(o.ndim() == 4 && o.size(0) == N, op, ": objectness[", l, "] must be [N = ", N, ", A, H, W], got ",
                o.shape());
    const int64_t A = o.size(1), H = o.size(2), W = o.size(3);
    DRCNN_CHECK(d.ndim() == 4 && d.size(0) == N && d.size(1) == 4 * A && d.size(2) == H && d.size(3) == W, op,
                ": deltas[", l, "] must be [", N, ", ", 4 * A, ", ", H, ", ", W, "], got ", d.shape());
    len[l] = H * W * A;
    DRCNN_CHECK(a.ndim() == 2 && a.size(0) == len[l] && a.size(1) == 4, op, ": anchors[", l, "] must be [H * W * A = ",
                len[l], ", 4], got ", a.shape());
    for (const Tensor* t : {&o, &d, &a})
      DRCNN_CHECK(t->dtype() == dtype && t->device() == dev, op, ": level ", l, " has a ", t->dtype(), " tensor on ",
                  t->device(), "; every input must be ", dtype, " on ", dev);
    if (len[l] == 0) continue;
    // (y, x, a) order, as the anchors: [N, A, H, W] -> [N, H, W, A]; [N, 4A, H, W] ->
    // [N, A, 4, H, W] -> [N, H, W, A, 4] (channel 4a + k is coordinate k of anchor a).
    level_scores.push_back(o.permute({0, 2, 3, 1}).reshape({N, len[l]}));
    level_deltas.push_back(d.reshape({N, A, 4, H, W}).permute({0, 3, 4, 1, 2}).reshape({N, len[l], 4}));
    level_anchors.push_back(a);
  }
  for (const ImageSize& s : image_sizes)
    DRCNN_CHECK(s.height >= 0 && s.width >= 0, op, ": image sizes must be >= 0, got ", s.height, " x ", s.width);

  // mmdet: the top-k applies when 0 < nms_pre < #anchors of the level; nms_pre <= 0 keeps all.
  const int64_t k = cfg.nms_pre > 0 ? cfg.nms_pre : *std::max_element(len.begin(), len.end());
  std::vector<RpnProposals> out(static_cast<size_t>(N));
  if (N == 0) return out;
  int64_t total = 0, per_image = 0;  // anchors per image; selected entries per image
  for (size_t l = 0; l < L; ++l) {
    total += len[l];
    per_image += std::min(k, len[l]);
  }
  if (per_image == 0) {
    for (RpnProposals& p : out) {
      p.boxes = Tensor::empty({0, 4}, dtype, dev);
      p.scores = Tensor::empty({0}, dtype, dev);
      p.levels = Tensor::empty({0}, DType::Int64, dev);
    }
    return out;
  }

  // Flat layout over the batch: image-major, level-minor; segment s = i * L + l.
  const Tensor scores = ops::sigmoid(ops::concat(level_scores, 1)).reshape({N * total});
  const Tensor all_deltas = ops::concat(level_deltas, 1).reshape({N * total, 4});
  const Tensor all_anchors = ops::concat(level_anchors, 0);
  std::vector<int64_t> offsets{0};
  std::vector<int64_t> image_base, level_id;  // per selected entry; data-independent
  image_base.reserve(size_t(N * per_image));
  level_id.reserve(size_t(N * per_image));
  for (int64_t i = 0; i < N; ++i)
    for (size_t l = 0; l < L; ++l) {
      offsets.push_back(offsets.back() + len[l]);
      const int64_t c = std::min(k, len[l]);
      image_base.insert(image_base.end(), size_t(c), i * total);
      level_id.insert(level_id.end(), size_t(c), int64_t(l));
    }
  const Shape sel_shape{N * per_image};
  // One host sync on CUDA (the offsets' upload inside segment_topk_compact); the two uploads
  // below are host -> device copies of data-independent tables.
  const auto [top_scores, top_index] =
      ops::segment_topk_compact(scores, Tensor::from_vector<int64_t>(offsets, Shape{int64_t(offsets.size())}), k);
  const Tensor levels = Tensor::from_vector<int64_t>(level_id, sel_shape).to(dev);
  const Tensor anchor_index = ops::sub(top_index, Tensor::from_vector<int64_t>(image_base, sel_shape).to(dev));
  const Tensor sel_deltas = ops::index_select(all_deltas, 0, top_index);
  const Tensor sel_anchors = ops::index_select(all_anchors, 0, anchor_index);

  for (int64_t i = 0; i < N; ++i) {
    const int64_t start = i * per_image;
    const ImageSize& size = image_sizes[size_t(i)];
    const bool legacy = cfg.convention == BoxConvention::MaskrcnnBenchmark;
    Tensor boxes = ops::box_decode(sel_anchors.narrow(0, start, per_image), sel_deltas.narrow(0, start, per_image),
                                   cfg.means, cfg.stds, ops::ImageShape{double(size.height), double(size.width)},
                                   cfg.wh_ratio_clip, legacy);
    Tensor sc = top_scores.narrow(0, start, per_image);
    Tensor lv = levels.narrow(0, start, per_image);
    if (const Tensor keep = small_box_keep(boxes, cfg); keep.defined()) {
      boxes = ops::index_select(boxes, 0, keep);
      sc = ops::index_select(sc, 0, keep);
      lv = ops::index_select(lv, 0, keep);
    }
    // batched_nms output is in descending score order; max_per_img caps it (one sync on CUDA).
    // A per-level cap needs the whole keep list and the levels on the host (one more copy).
    // Per batch, the image's own cap is the batch's (max_per_img x N), applied below.
    const int64_t image_cap = cfg.per_batch ? cfg.max_per_img * N : cfg.max_per_img;
    Tensor keep = ops::batched_nms(boxes, sc, lv, cfg.nms_iou, cfg.max_per_level > 0 ? -1 : image_cap,
                                   cfg.nms_split_threshold, legacy);
    if (cfg.max_per_level > 0) keep = cap_per_level(keep, lv, int64_t(L), cfg.max_per_level, image_cap);
    RpnProposals& p = out[size_t(i)];
    p.boxes = ops::index_select(boxes, 0, keep);
    p.scores = ops::index_select(sc, 0, keep);
    p.levels = ops::index_select(lv, 0, keep);
  }
  if (cfg.per_batch && N > 1) keep_top_of_batch(out, cfg.max_per_img * N);
  return out;
}

std::vector<RpnProposals> generate_proposals(const std::vector<RpnLevelOutput>& head_outputs,
                                             const std::vector<Tensor>& anchors,
                                             const std::vector<ImageSize>& image_sizes, const RpnProposalConfig& cfg) {
  std::vector<Tensor> obj, del;
  for (const RpnLevelOutput& o : head_outputs) {
    DRCNN_CHECK(o.objectness.defined() && o.deltas.defined(), "generate_proposals: undefined head output");
    obj.push_back(o.objectness.data());
    del.push_back(o.deltas.data());
  }
  return generate_proposals(obj, del, anchors, image_sizes, cfg);
}

}  // namespace drcnn::models
