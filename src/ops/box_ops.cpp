// Dispatchers of the box ops (include/drcnn/ops/box_ops.h): check, make contiguous,
// allocate, launch the shared bodies of ops/detail/box_body.h on the input's device.
#include "drcnn/ops/box_ops.h"

#include <cmath>
#include <vector>

#include "dispatch.h"
#include "drcnn/ops/detail/box_body.h"

namespace drcnn::ops {

namespace {
void check_float(const char* op, const Tensor& t, const char* name) {
  runtime::check_defined(op, t, name);
  DRCNN_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", name,
              " must be float32 or float64, got ", t.dtype());
}

/// t must be [N, cols] (any N >= 0), floating.
void check_boxes(const char* op, const Tensor& t, const char* name, int64_t cols = 4) {
  check_float(op, t, name);
  DRCNN_CHECK(t.ndim() == 2 && t.shape()[1] == cols, op, ": ", name, " must have shape [N, ", cols, "], got shape ",
              t.shape());
}

void check_pair(const char* op, const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  runtime::check_same_device(op, {&a, &b});
  DRCNN_CHECK(a.dtype() == b.dtype(), op, ": ", an, " and ", bn, " must have the same dtype, got ", a.dtype(),
              " and ", b.dtype());
}

void check_coder_params(const char* op, const std::array<double, 4>& means, const std::array<double, 4>& stds) {
  for (int k = 0; k < 4; ++k) {
    DRCNN_CHECK(std::isfinite(means[k]), op, ": means[", k, "] must be finite, got ", means[k]);
    DRCNN_CHECK(std::isfinite(stds[k]) && stds[k] > 0, op, ": stds[", k, "] must be finite and > 0, got ", stds[k]);
  }
}

void check_image_size(const char* op, double height, double width) {
  DRCNN_CHECK(std::isfinite(height) && height >= 0 && std::isfinite(width) && width >= 0, op,
              ": image size must be finite and >= 0, got height ", height, " and width ", width);
}

void run(const char* op, BoxKind kind, const Tensor& like, const BoxLaunch& l) {
  if (l.n == 0) return;
  runtime::on_device(
      like.device(), op, [&] { cpu::box_op(kind, like.dtype(), l); },
      [&](auto s) { cuda::box_op(s, kind, like.dtype(), l); });
}

// legacy clipping (x to [0, W - 1]) needs an image of at least one pixel.
void check_legacy_size(const char* op, double height, double width) {
  DRCNN_CHECK(height >= 1 && width >= 1, op, ": with legacy (+1) boxes the image must be at least 1 x 1 (boxes are ",
              "clipped to [0, width - 1] x [0, height - 1]), got height ", height, " and width ", width);
}

Tensor overlaps(const char* op, const Tensor& a, const Tensor& b, BoxKind kind, bool legacy) {
  check_boxes(op, a, "a");
  check_boxes(op, b, "b");
  check_pair(op, a, "a", b, "b");
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  Tensor out = Tensor::empty({a.size(0), b.size(0)}, a.dtype(), a.device());
  BoxLaunch l;
  l.n = a.size(0) * b.size(0);
  l.m = b.size(0);
  l.a = ca.data_ptr();
  l.b = cb.data_ptr();
  l.out = out.data_ptr();
  l.legacy = legacy;
  run(op, kind, a, l);
  return out;
}
}  // namespace

Tensor box_area(const Tensor& boxes, bool legacy) {
  check_boxes("box_area", boxes, "boxes");
  const Tensor c = boxes.contiguous();
  Tensor out = Tensor::empty({boxes.size(0)}, boxes.dtype(), boxes.device());
  BoxLaunch l;
  l.n = boxes.size(0);
  l.a = c.data_ptr();
  l.out = out.data_ptr();
  l.legacy = legacy;
  run("box_area", BoxKind::Area, boxes, l);
  return out;
}

Tensor box_iou(const Tensor& a, const Tensor& b, bool legacy) {
  return overlaps("box_iou", a, b, BoxKind::Iou, legacy);
}
Tensor box_iof(const Tensor& a, const Tensor& b) { return overlaps("box_iof", a, b, BoxKind::Iof, false); }

Tensor box_encode(const Tensor& proposals, const Tensor& gt, const std::array<double, 4>& means,
                  const std::array<double, 4>& stds, bool legacy) {
  const char* op = "box_encode";
  check_boxes(op, proposals, "proposals");
  check_boxes(op, gt, "gt");
  check_pair(op, proposals, "proposals", gt, "gt");
  DRCNN_CHECK(proposals.size(0) == gt.size(0), op, ": proposals and gt must have the same number of boxes, got ",
              proposals.shape(), " and ", gt.shape());
  check_coder_params(op, means, stds);
  const Tensor cp = proposals.contiguous(), cg = gt.contiguous();
  Tensor out = Tensor::empty({proposals.size(0), 4}, proposals.dtype(), proposals.device());
  BoxLaunch l;
  l.n = proposals.size(0);
  l.a = cp.data_ptr();
  l.b = cg.data_ptr();
  l.out = out.data_ptr();
  for (int k = 0; k < 4; ++k) l.means[k] = means[k], l.stds[k] = stds[k];
  l.legacy = legacy;
  run(op, BoxKind::Encode, proposals, l);
  return out;
}

Tensor box_decode(const Tensor& rois, const Tensor& deltas, const std::array<double, 4>& means,
                  const std::array<double, 4>& stds, std::optional<ImageShape> max_shape, double wh_ratio_clip,
                  bool legacy) {
  const char* op = "box_decode";
  check_boxes(op, rois, "rois");
  check_float(op, deltas, "deltas");
  DRCNN_CHECK(deltas.ndim() == 2 && deltas.shape()[1] > 0 && deltas.shape()[1] % 4 == 0, op,
              ": deltas must have shape [N, 4 * K] with K >= 1, got shape ", deltas.shape());
  check_pair(op, rois, "rois", deltas, "deltas");
  DRCNN_CHECK(rois.size(0) == deltas.size(0), op, ": rois and deltas must have the same number of rows, got ",
              rois.shape(), " and ", deltas.shape());
  check_coder_params(op, means, stds);
  DRCNN_CHECK(std::isfinite(wh_ratio_clip) && wh_ratio_clip > 0, op, ": wh_ratio_clip must be finite and > 0, got ",
              wh_ratio_clip);
  if (max_shape) check_image_size(op, max_shape->height, max_shape->width);
  if (max_shape && legacy) check_legacy_size(op, max_shape->height, max_shape->width);
  const Tensor cr = rois.contiguous(), cd = deltas.contiguous();
  Tensor out = Tensor::empty(deltas.shape(), deltas.dtype(), deltas.device());
  BoxLaunch l;
  l.m = deltas.size(1) / 4;
  l.n = deltas.size(0) * l.m;
  l.a = cr.data_ptr();
  l.b = cd.data_ptr();
  l.out = out.data_ptr();
  for (int k = 0; k < 4; ++k) l.means[k] = means[k], l.stds[k] = stds[k];
  l.max_ratio = std::abs(std::log(wh_ratio_clip));
  l.legacy = legacy;
  if (max_shape) {
    l.clip = true;
    l.height = max_shape->height - (legacy ? 1 : 0);
    l.width = max_shape->width - (legacy ? 1 : 0);
  }
  run(op, BoxKind::Decode, rois, l);
  return out;
}

Tensor box_clip(const Tensor& boxes, double height, double width, bool legacy) {
  const char* op = "box_clip";
  check_boxes(op, boxes, "boxes");
  check_image_size(op, height, width);
  if (legacy) check_legacy_size(op, height, width);
  const Tensor c = boxes.contiguous();
  Tensor out = Tensor::empty(boxes.shape(), boxes.dtype(), boxes.device());
  BoxLaunch l;
  l.n = boxes.size(0);
  l.a = c.data_ptr();
  l.out = out.data_ptr();
  l.height = height - (legacy ? 1 : 0);
  l.width = width - (legacy ? 1 : 0);
  run(op, BoxKind::Clip, boxes, l);
  return out;
}

Tensor remove_small_boxes(const Tensor& boxes, double min_size, bool legacy) {
  const char* op = "remove_small_boxes";
  check_boxes(op, boxes, "boxes");
  DRCNN_CHECK(std::isfinite(min_size) && min_size >= 0, op, ": min_size must be finite and >= 0, got ", min_size);
  const Tensor c = boxes.contiguous();
  Tensor mask = Tensor::empty({boxes.size(0)}, DType::UInt8, boxes.device());
  BoxLaunch l;
  l.n = boxes.size(0);
  l.a = c.data_ptr();
  l.out = mask.data_ptr();
  l.min_size = min_size;
  l.legacy = legacy;
  run(op, BoxKind::SmallMask, boxes, l);
  // Compaction on the host: one small copy (a synchronisation on CUDA).
  const Tensor host = mask.to(Device::cpu());
  const auto* m = static_cast<const uint8_t*>(host.data_ptr());
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < host.numel(); ++i)
    if (m[i]) keep.push_back(i);
  return Tensor::from_vector<int64_t>(keep, Shape{int64_t(keep.size())}).to(boxes.device());
}

namespace {
Tensor roi_levels(const char* op, const Tensor& rois, int num_levels, const char* scale_name, double scale,
                  BoxLaunch l) {
  check_boxes(op, rois, "rois", 5);
  DRCNN_CHECK(num_levels >= 1, op, ": num_levels must be >= 1, got ", num_levels);
  DRCNN_CHECK(std::isfinite(scale) && scale > 0, op, ": ", scale_name, " must be finite and > 0, got ", scale);
  const Tensor c = rois.contiguous();
  Tensor out = Tensor::empty({rois.size(0)}, DType::Int64, rois.device());
  l.n = rois.size(0);
  l.a = c.data_ptr();
  l.out = out.data_ptr();
  l.finest_scale = scale;
  l.num_levels = num_levels;
  run(op, BoxKind::RoiLevel, rois, l);
  return out;
}
}  // namespace

Tensor map_roi_levels(const Tensor& rois, int num_levels, double finest_scale) {
  return roi_levels("map_roi_levels", rois, num_levels, "finest_scale", finest_scale, BoxLaunch{});
}

Tensor map_roi_levels_legacy(const Tensor& rois, int num_levels, double canonical_scale, int canonical_level,
                             int min_level) {
  BoxLaunch l;
  l.legacy = true;
  l.level0 = canonical_level;
  l.k_min = min_level;
  return roi_levels("map_roi_levels_legacy", rois, num_levels, "canonical_scale", canonical_scale, l);
}
}  // namespace drcnn::ops
