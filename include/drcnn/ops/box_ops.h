// Box operations of the detector (spec B.11, C.5; MMDetection v2 semantics). Boxes are
// [N, 4] absolute (x1, y1, x2, y2) in continuous coordinates: width = x2 - x1, no "+1".
// float32 and float64, CPU and CUDA; every op accepts N = 0. Inputs may be strided (they are
// made contiguous first). Bad inputs throw drcnn::Error naming the op.
// `legacy` true gives maskrcnn-benchmark's / Detectron's pixel-index convention (the seed's
// code): width = x2 - x1 + 1, as written at each op; tests/ops/test_legacy_box_ops.cpp compares
// them with tools/golden_maskrcnn_benchmark.py's float64 transcription of that code
// (docs/conventions.md, "maskrcnn-benchmark").
#pragma once
#include <array>
#include <optional>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// (x2 - x1) * (y2 - y1) per box: [N, 4] -> [N]. Not clamped (a reversed box has a negative
/// area, as mmdet's bbox_overlaps).
/// legacy: (x2 - x1 + 1) * (y2 - y1 + 1) (BoxList.area).
Tensor box_area(const Tensor& boxes, bool legacy = false);

/// Pairwise IoU, a [N, 4] x b [M, 4] -> [N, M] (mmdet bbox_overlaps, mode "iou"):
/// inter = max(min(x2) - max(x1), 0) * max(min(y2) - max(y1), 0),
/// iou = inter / max(area_a + area_b - inter, 1e-6). Zero-area pairs give 0, never NaN.
/// a and b must have the same dtype and device. legacy: boxlist_iou, +1 in every width and
/// overlap (min(x2) - max(x1) + 1), same formula (the 1e-6 floor only differs where a union is
/// below 1e-6: boxlist_iou divides by it).
Tensor box_iou(const Tensor& a, const Tensor& b, bool legacy = false);
/// Intersection over the first box's area (mode "iof"): inter / max(area_a, 1e-6).
Tensor box_iof(const Tensor& a, const Tensor& b);

/// MMDetection DeltaXYWHBBoxCoder.encode: proposals [N, 4], gt [N, 4] -> deltas [N, 4],
/// t = ((gx - px) / pw, (gy - py) / ph, ln(gw / pw), ln(gh / ph)), then (t - means) / stds.
/// Centres are (x1 + x2) * 0.5; a zero-width proposal gives inf/NaN, as in mmdet.
/// stds must be > 0 and finite; means finite. legacy: BoxCoder.encode, widths x2 - x1 + 1 and
/// centres x1 + 0.5 * width (its weights (wx, wy, ww, wh) are stds (1/wx, 1/wy, 1/ww, 1/wh):
/// it multiplies by the weight where drcnn divides by the std, a rounding apart).
Tensor box_encode(const Tensor& proposals, const Tensor& gt, const std::array<double, 4>& means = {0, 0, 0, 0},
                  const std::array<double, 4>& stds = {1, 1, 1, 1}, bool legacy = false);

/// Image size (height, width) for clipping.
struct ImageShape {
  double height = 0;
  double width = 0;
};

/// MMDetection DeltaXYWHBBoxCoder.decode (delta2bbox): rois [N, 4], deltas [N, 4 * K]
/// (K = 1, or class-specific deltas; each group of 4 decodes against its row's roi) ->
/// boxes [N, 4 * K]. d = deltas * stds + means; dw, dh clamped to [-r, r] with
/// r = |ln(wh_ratio_clip)|; w = pw * e^dw, h = ph * e^dh, centre (px + pw * dx, py + ph * dy);
/// box = centre -/+ size * 0.5; when max_shape is given, x is clipped to [0, width] and y to
/// [0, height]. wh_ratio_clip must be > 0; max_shape sizes >= 0.
/// legacy: BoxCoder.decode: widths x2 - x1 + 1, centres x1 + 0.5 * width, dw and dh clamped above
/// only (at |ln(wh_ratio_clip)|, its log(1000 / 16)), x2 = centre + 0.5 * w - 1, and
/// clip_to_image: x to [0, width - 1], y to [0, height - 1] (max_shape sizes >= 1).
Tensor box_decode(const Tensor& rois, const Tensor& deltas, const std::array<double, 4>& means = {0, 0, 0, 0},
                  const std::array<double, 4>& stds = {1, 1, 1, 1}, std::optional<ImageShape> max_shape = std::nullopt,
                  double wh_ratio_clip = 16.0 / 1000.0, bool legacy = false);

/// Clips x1, x2 to [0, width] and y1, y2 to [0, height] (mmdet img_shape clipping, no -1).
/// NaN stays NaN. height, width >= 0. legacy: BoxList.clip_to_image(remove_empty=False), x to
/// [0, width - 1], y to [0, height - 1] (height, width >= 1).
Tensor box_clip(const Tensor& boxes, double height, double width, bool legacy = false);

/// Indices (int64, ascending) of the boxes with x2 - x1 >= min_size and y2 - y1 >= min_size
/// (NaN boxes are dropped). min_size >= 0. On CUDA the result is compacted on the host
/// (one mask copy, a synchronisation) and returned on the boxes' device. legacy:
/// x2 - x1 + 1 >= min_size and y2 - y1 + 1 >= min_size (boxlist_ops.remove_small_boxes).
Tensor remove_small_boxes(const Tensor& boxes, double min_size, bool legacy = false);

/// FPN level of each RoI (mmdet SingleRoIExtractor.map_roi_levels): rois [R, 5] as
/// (batch, x1, y1, x2, y2) -> int64 [R], floor(log2(sqrt((x2 - x1) * (y2 - y1)) / finest_scale
/// + 1e-6)) clamped to [0, num_levels - 1]. A negative or NaN area maps to level 0.
/// num_levels >= 1, finest_scale > 0.
Tensor map_roi_levels(const Tensor& rois, int num_levels, double finest_scale = 56.0);

/// maskrcnn-benchmark's LevelMapper(k_min = min_level, k_max = min_level + num_levels - 1,
/// canonical_scale, canonical_level, eps 1e-6) as a 0-based level index: floor(canonical_level +
/// log2(sqrt((x2 - x1 + 1) * (y2 - y1 + 1)) / canonical_scale + 1e-6)) clamped to
/// [min_level, min_level + num_levels - 1], minus min_level. A NaN area maps to level 0.
Tensor map_roi_levels_legacy(const Tensor& rois, int num_levels = 4, double canonical_scale = 224.0,
                             int canonical_level = 4, int min_level = 2);
}  // namespace drcnn::ops
