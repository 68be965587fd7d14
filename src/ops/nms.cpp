// Dispatchers of nms, nms_fixed and batched_nms (include/drcnn/ops/nms.h): checks, the score
// order (stable sort of -scores: descending, ties in input order, NaN last), allocation, and
// the backend launch (kernels/cpu/nms.cpp, kernels/cuda/nms.cu).
#include "drcnn/ops/nms.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "dispatch.h"
#include "drcnn/ops/detail/nms_body.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/sort.h"

namespace drcnn::ops {

namespace {
void check_nms_inputs(const char* op, const Tensor& boxes, const Tensor& scores, double iou_threshold,
                      int64_t max_output) {
  runtime::check_defined(op, boxes, "boxes");
  runtime::check_defined(op, scores, "scores");
  DRCNN_CHECK(boxes.dtype() == DType::Float32 || boxes.dtype() == DType::Float64, op,
              ": boxes must be float32 or float64, got ", boxes.dtype());
  DRCNN_CHECK(boxes.ndim() == 2 && boxes.shape()[1] == 4, op, ": boxes must have shape [N, 4], got shape ",
              boxes.shape());
  DRCNN_CHECK(scores.ndim() == 1, op, ": scores must have shape [N], got shape ", scores.shape());
  DRCNN_CHECK(scores.size(0) == boxes.size(0), op, ": boxes and scores must have the same N, got boxes ",
              boxes.shape(), " and scores ", scores.shape());
  DRCNN_CHECK(scores.dtype() == boxes.dtype(), op, ": scores must have the boxes' dtype ", boxes.dtype(), ", got ",
              scores.dtype());
  runtime::check_same_device(op, {&boxes, &scores});
  DRCNN_CHECK(!std::isnan(iou_threshold), op, ": iou_threshold must not be NaN");
  DRCNN_CHECK(max_output >= -1, op, ": max_output must be >= -1 (-1 = no cap), got ", max_output);
}

/// Input positions in descending score order: a stable ascending sort of -scores puts equal
/// scores in input order and NaN (the largest key) last. Negation is exact.
Tensor score_order(const Tensor& scores) { return argsort(neg(scores), 0, false); }

/// Runs the backend into keep (capacity entries) and count ([1], int64, boxes' device).
/// legacy: maskrcnn-benchmark's IoU with +1 widths is the IoU of the boxes (x1, y1, x2 + 1, y2 + 1),
/// so those go to the unchanged kernels (min(x2 + 1) - max(x1) rounds once where the seed's
/// min(x2) - max(x1) + 1 rounds twice: equal for integer and half-pixel coordinates).
void launch(const char* op, const Tensor& boxes, const Tensor& scores, double iou_threshold, Tensor& keep,
            Tensor& count, bool pad, bool legacy) {
  const Tensor cb = legacy ? add(boxes, Tensor::from_vector<double>({0, 0, 1, 1}, Shape{1, 4})
                                            .to(boxes.dtype())
                                            .to(boxes.device()))
                                   .contiguous()
                           : boxes.contiguous();
  const Tensor order = score_order(scores);
  NmsLaunch l;
  l.n = boxes.size(0);
  l.boxes = cb.data_ptr();
  l.order = static_cast<const int64_t*>(order.data_ptr());
  l.threshold = iou_threshold;
  l.capacity = keep.numel();
  l.keep = static_cast<int64_t*>(keep.data_ptr());
  l.count = static_cast<int64_t*>(count.data_ptr());
  l.pad = pad;
  runtime::on_device(
      boxes.device(), op, [&] { cpu::nms(boxes.dtype(), l); }, [&](auto s) { cuda::nms(s, boxes.dtype(), l); });
}

Tensor empty_keep(const Tensor& like) { return Tensor::empty({0}, DType::Int64, like.device()); }
}  // namespace

Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold, int64_t max_output, bool legacy) {
  const char* op = "nms";
  check_nms_inputs(op, boxes, scores, iou_threshold, max_output);
  const int64_t n = boxes.size(0);
  const int64_t cap = max_output < 0 ? n : std::min(n, max_output);
  if (cap == 0) return empty_keep(boxes);
  Tensor keep = Tensor::empty({cap}, DType::Int64, boxes.device());
  Tensor count = Tensor::empty({1}, DType::Int64, boxes.device());
  launch(op, boxes, scores, iou_threshold, keep, count, false, legacy);
  // The one host synchronisation on CUDA: the length of the result.
  const int64_t k = count.device().is_cpu() ? count.item<int64_t>() : count.to(Device::cpu()).item<int64_t>();
  return keep.narrow(0, 0, k);
}

NmsFixed nms_fixed(const Tensor& boxes, const Tensor& scores, double iou_threshold, int64_t max_output,
                   bool legacy) {
  const char* op = "nms_fixed";
  check_nms_inputs(op, boxes, scores, iou_threshold, max_output);
  DRCNN_CHECK(max_output >= 0, op, ": max_output (the buffer size) must be >= 0, got ", max_output);
  NmsFixed r;
  r.count = Tensor::zeros({1}, DType::Int64, boxes.device());
  if (boxes.size(0) == 0 || max_output == 0) {
    r.keep = Tensor::full({max_output}, -1.0, DType::Int64, boxes.device());
    return r;
  }
  r.keep = Tensor::empty({max_output}, DType::Int64, boxes.device());
  launch(op, boxes, scores, iou_threshold, r.keep, r.count, true, legacy);
  return r;
}

Tensor batched_nms(const Tensor& boxes, const Tensor& scores, const Tensor& idxs, double iou_threshold,
                   int64_t max_output, int64_t split_threshold, bool legacy) {
  const char* op = "batched_nms";
  check_nms_inputs(op, boxes, scores, iou_threshold, max_output);
  runtime::check_defined(op, idxs, "idxs");
  DRCNN_CHECK(idxs.dtype() == DType::Int64, op, ": idxs must be int64, got ", idxs.dtype());
  DRCNN_CHECK(idxs.ndim() == 1 && idxs.size(0) == boxes.size(0), op, ": idxs must have shape [N] with N = ",
              boxes.size(0), " (the boxes' N), got shape ", idxs.shape());
  runtime::check_same_device(op, {&boxes, &idxs});
  DRCNN_CHECK(split_threshold >= 0, op, ": split_threshold must be >= 0, got ", split_threshold);
  const int64_t n = boxes.size(0);
  if (n == 0 || max_output == 0) return empty_keep(boxes);

  if (n < split_threshold) {
    // torchvision's _batched_nms_coordinate_trick, same operation order:
    // offsets = idx * (max + 1) in the boxes' dtype, then boxes + offsets[:, None].
    const Tensor offsets = mul(idxs.to(boxes.dtype()), add(max(boxes), 1.0));  // [N]
    // legacy: groups stay apart, as a box of group k ends at x2 + 1 <= (k + 1) (max + 1).
    return nms(add(boxes, offsets.unsqueeze(1)), scores, iou_threshold, max_output, legacy);
  }

  // Per-group loop (mmcv above split_thr): nms on each group, then one stable score sort of
  // everything kept, taken in input order so that ties resolve as in nms.
  const std::vector<int64_t> ids = idxs.to(Device::cpu()).contiguous().to_vector<int64_t>();
  std::map<int64_t, std::vector<int64_t>> groups;  // id -> input positions, ascending
  for (int64_t i = 0; i < n; ++i) groups[ids[size_t(i)]].push_back(i);
  std::vector<int64_t> kept;
  for (const auto& [id, pos] : groups) {
    const Tensor where = Tensor::from_vector<int64_t>(pos, Shape{int64_t(pos.size())}).to(boxes.device());
    const Tensor k =
        nms(index_select(boxes, 0, where), index_select(scores, 0, where), iou_threshold, max_output, legacy);
    for (int64_t j : k.to(Device::cpu()).to_vector<int64_t>()) kept.push_back(pos[size_t(j)]);
  }
  std::sort(kept.begin(), kept.end());
  const Tensor kept_t = Tensor::from_vector<int64_t>(kept, Shape{int64_t(kept.size())}).to(boxes.device());
  Tensor result = index_select(kept_t, 0, score_order(index_select(scores, 0, kept_t)));
  if (max_output >= 0 && result.size(0) > max_output) result = result.narrow(0, 0, max_output);
  return result;
}
}  // namespace drcnn::ops
