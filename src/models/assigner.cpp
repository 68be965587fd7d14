// MaxIoUAssigner (include/drcnn/models/assigner.h): mmdet v2's rules written as whole-tensor
// ops (box_iou, max/argmax, comparisons, where), so CPU and CUDA run the same sequence of
// kernels and nothing is copied to the host.
#include "drcnn/models/assigner.h"

#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"

namespace drcnn::models {
namespace {

Tensor scalar(double v, DType dtype, Device device) { return Tensor::full({}, v, dtype, device); }

// Elementwise a && b of bool tensors (broadcast).
Tensor logical_and(const Tensor& a, const Tensor& b) {
  return ops::where(a, b, scalar(0.0, DType::Bool, a.device()));
}

void check_boxes(const char* op, const char* what, const Tensor& t) {
  DRCNN_CHECK(t.defined() && (t.dtype() == DType::Float32 || t.dtype() == DType::Float64) && t.ndim() == 2 &&
                  t.size(1) == 4,
              op, ": ", what, " must be a float32/float64 [N, 4] tensor, got ",
              t.defined() ? fmt::format("{} {}", t.dtype(), t.shape()) : std::string("undefined"));
}

void check_labels(const char* op, const Tensor& labels, int64_t num_gts, Device device) {
  if (!labels.defined()) return;
  DRCNN_CHECK(labels.dtype() == DType::Int64 && labels.ndim() == 1 && labels.size(0) == num_gts, op,
              ": gt_labels must be int64 [", num_gts, "], got ", labels.dtype(), " ", labels.shape());
  DRCNN_CHECK(labels.device() == device, op, ": gt_labels on ", labels.device(), ", expected ", device);
}

}  // namespace

void AssignResult::add_gt(const Tensor& gt_labels) {
  DRCNN_CHECK(gt_inds.defined() && max_overlaps.defined(), "AssignResult::add_gt: empty result");
  DRCNN_CHECK(gt_labels.defined() && gt_labels.ndim() == 1, "AssignResult::add_gt: gt_labels must be 1-D, got ",
              gt_labels.defined() ? fmt::format("{}", gt_labels.shape()) : std::string("undefined"));
  const int64_t k = gt_labels.size(0);
  const Device dev = gt_inds.device();
  gt_inds = ops::concat({Tensor::arange(1.0, double(k + 1), 1.0, DType::Int64, dev), gt_inds}, 0);
  max_overlaps = ops::concat({Tensor::ones({k}, max_overlaps.dtype(), dev), max_overlaps}, 0);
  if (labels.defined()) {
    DRCNN_CHECK(gt_labels.dtype() == DType::Int64 && gt_labels.device() == dev,
                "AssignResult::add_gt: gt_labels must be int64 on ", dev, ", got ", gt_labels.dtype(), " on ",
                gt_labels.device());
    labels = ops::concat({gt_labels, labels}, 0);
  }
}

MaxIoUAssigner::MaxIoUAssigner(MaxIoUAssignerOptions options) : m_opt(options) {
  DRCNN_CHECK(m_opt.neg_iou_lo <= m_opt.neg_iou_hi, "MaxIoUAssigner: negative IoU range [", m_opt.neg_iou_lo, ", ",
              m_opt.neg_iou_hi, ") is reversed");
}

AssignResult MaxIoUAssigner::assign(const Tensor& candidates, const Tensor& gt, const Tensor& gt_labels,
                                    const Tensor& gt_ignore) const {
  const char* op = "MaxIoUAssigner::assign";
  check_boxes(op, "candidates", candidates);
  check_boxes(op, "gt", gt);
  DRCNN_CHECK(gt.dtype() == candidates.dtype() && gt.device() == candidates.device(), op, ": gt (", gt.dtype(), " on ",
              gt.device(), ") and candidates (", candidates.dtype(), " on ", candidates.device(),
              ") must share dtype and device");
  check_labels(op, gt_labels, gt.size(0), candidates.device());
  Tensor overlaps = ops::box_iou(gt, candidates, m_opt.legacy_iou);  // [K, N]
  if (gt_ignore.defined()) {
    check_boxes(op, "gt_ignore", gt_ignore);
    DRCNN_CHECK(gt_ignore.dtype() == candidates.dtype() && gt_ignore.device() == candidates.device(), op,
                ": gt_ignore (", gt_ignore.dtype(), " on ", gt_ignore.device(), ") must match the candidates (",
                candidates.dtype(), " on ", candidates.device(), ")");
  }
  // mmdet ignore_wrt_candidates=True: iof of each candidate over its own area.
  if (m_opt.ignore_iof_thr > 0 && gt_ignore.defined() && gt_ignore.size(0) > 0 && candidates.size(0) > 0 &&
      gt.size(0) > 0) {
    const Tensor iof_max = ops::max(ops::box_iof(candidates, gt_ignore), 1);  // [N]
    const Tensor ignored = ops::gt(iof_max, m_opt.ignore_iof_thr);
    overlaps = ops::where(ignored.unsqueeze(0), scalar(-1.0, overlaps.dtype(), overlaps.device()), overlaps);
  }
  return assign_wrt_overlaps(overlaps, gt_labels);
}

AssignResult MaxIoUAssigner::assign_wrt_overlaps(const Tensor& overlaps, const Tensor& gt_labels) const {
  const char* op = "MaxIoUAssigner::assign_wrt_overlaps";
  DRCNN_CHECK(overlaps.defined() && overlaps.ndim() == 2 &&
                  (overlaps.dtype() == DType::Float32 || overlaps.dtype() == DType::Float64),
              op, ": overlaps must be a float32/float64 [K, N] tensor, got ",
              overlaps.defined() ? fmt::format("{} {}", overlaps.dtype(), overlaps.shape()) : std::string("undefined"));
  const int64_t k = overlaps.size(0), n = overlaps.size(1);
  const Device dev = overlaps.device();
  const DType ft = overlaps.dtype();
  check_labels(op, gt_labels, k, dev);
  // The GT index is carried in the float dtype in step 4; exact below 2^24 even in float32.
  DRCNN_CHECK(k < (int64_t(1) << 24), op, ": ", k, " ground truths, at most 2^24 - 1 supported");

  AssignResult r;
  r.num_gts = k;
  if (k == 0 || n == 0) {
    r.gt_inds = Tensor::full({n}, k == 0 ? 0.0 : -1.0, DType::Int64, dev);
    r.max_overlaps = Tensor::zeros({n}, ft, dev);
    if (gt_labels.defined()) r.labels = Tensor::full({n}, -1.0, DType::Int64, dev);
    return r;
  }

  const Tensor max_ov = ops::max(overlaps, 0);     // [N] best IoU per candidate
  const Tensor argmax = ops::argmax(overlaps, 0);  // [N] first GT attaining it

  // 1-2. ignore by default; negatives where the best IoU is in [lo, hi).
  const Tensor neg = logical_and(ops::ge(max_ov, scalar(m_opt.neg_iou_lo, ft, dev)), ops::lt(max_ov, m_opt.neg_iou_hi));
  Tensor gt_inds = ops::where(neg, scalar(0.0, DType::Int64, dev), scalar(-1.0, DType::Int64, dev));
  // 3. positives.
  const Tensor pos = ops::ge(max_ov, scalar(m_opt.pos_iou_thr, ft, dev));
  gt_inds = ops::where(pos, ops::add(argmax, 1.0), gt_inds);

  // 4. low-quality matches. mmdet loops over the GTs in order, each overwriting the previous;
  // here hit[i, j] says whether GT i's loop iteration would write candidate j, and the last
  // writer is the largest i + 1 over hit[:, j] (a max over the GT axis).
  if (m_opt.match_low_quality) {
    const Tensor gt_max = ops::max(overlaps, 1);  // [K]
    const Tensor valid = ops::ge(gt_max, scalar(m_opt.min_pos_iou, ft, dev)).unsqueeze(1);
    Tensor hit;
    if (m_opt.gt_max_assign_all) {
      hit = ops::eq(overlaps, gt_max.unsqueeze(1));  // [K, N]
    } else {
      const Tensor gt_argmax = ops::argmax(overlaps, 1);  // [K]
      hit = ops::eq(Tensor::arange(n, DType::Int64, dev).unsqueeze(0), gt_argmax.unsqueeze(1));
    }
    hit = logical_and(valid, hit);
    const Tensor code = Tensor::arange(1.0, double(k + 1), 1.0, ft, dev).unsqueeze(1);  // GT i -> i + 1
    const Tensor writer = ops::max(ops::where(hit, code, scalar(0.0, ft, dev)), 0).to(DType::Int64);  // [N]
    gt_inds = ops::where(ops::gt(writer, 0.0), m_opt.low_quality_own_best ? ops::add(argmax, 1.0) : writer, gt_inds);
  }

  r.gt_inds = gt_inds;
  r.max_overlaps = max_ov;
  if (gt_labels.defined()) {
    const Tensor is_pos = ops::gt(gt_inds, 0.0);
    const Tensor safe = ops::where(is_pos, ops::add(gt_inds, -1.0), scalar(0.0, DType::Int64, dev));
    r.labels = ops::where(is_pos, ops::index_select(gt_labels, 0, safe), scalar(-1.0, DType::Int64, dev));
  }
  return r;
}

}  // namespace drcnn::models
