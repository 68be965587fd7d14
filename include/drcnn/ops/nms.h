// Non-maximum suppression (spec C.3, C.4; torchvision semantics). Boxes are [N, 4] absolute
// (x1, y1, x2, y2), continuous coordinates (no "+1"); scores [N]; float32 or float64 (boxes and
// scores of one dtype), CPU and CUDA. Results are int64 positions into the input. NMS has no
// gradient: everything here is a Tensor. Details and the CUDA design: docs/kernels/nms.md.
#pragma once
#include <cstdint>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// Greedy NMS: visit the boxes in descending score order and keep a box unless a box kept
/// before it overlaps it with IoU > iou_threshold (an IoU equal to the threshold does not
/// suppress). IoU = inter / (area_a + area_b - inter), computed in the boxes' dtype in
/// torchvision's operation order and compared with iou_threshold converted to that dtype
/// (as torchvision's CUDA kernel; its CPU kernel compares a float32 IoU with the double);
/// a union below 1e-6 is floored at 1e-6, and pairs with a NaN coordinate never suppress.
///
/// Order: scores are sorted stably (equal scores keep their input order); NaN scores come
/// after every other score (after -inf), in input order, and take part like any box (they can
/// be kept, and suppress later NaN-scored boxes). So a NaN-scored box is never kept ahead of
/// a box with a number as its score. (torchvision sorts NaN first and unstably.)
///
/// boxes [N, 4], scores [N] -> int64 [K] kept positions in descending score order; K <=
/// max_output when max_output >= 0 (-1 = no cap; 0 gives an empty result). N = 0 is allowed.
/// Strided inputs are accepted (made contiguous). On CUDA the keep list is built on the
/// device and one 8-byte copy of its length to the host synchronises the stream once; use
/// nms_fixed to avoid that.
/// Requires: boxes [N, 4] and scores [N] of one floating dtype on one device; iou_threshold
/// not NaN; max_output >= -1.
///
/// legacy: maskrcnn-benchmark's IoU, +1 in widths, overlaps and areas (the seed's nms.cu, with
/// its CUDA kernel's IoU > threshold; its CPU kernel nms_cpu.cpp suppresses at >=, the one
/// place where the two disagree: drcnn follows the GPU, where the seed trains and tests).
Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold, int64_t max_output = -1,
           bool legacy = false);

/// nms with a fixed-capacity result and no host synchronisation (for a sync-free step).
struct NmsFixed {
  Tensor keep;   // int64 [max_output]: the first `count` entries as nms returns them, then -1
  Tensor count;  // int64 [1] on the boxes' device: the number kept
};
/// Same keep list as nms(boxes, scores, iou_threshold, max_output), written into a buffer of
/// max_output entries padded with -1; nothing is copied to the host.
/// Requires: as nms, and max_output >= 0.
NmsFixed nms_fixed(const Tensor& boxes, const Tensor& scores, double iou_threshold, int64_t max_output,
                   bool legacy = false);

/// NMS within groups (classes or FPN levels): boxes only suppress boxes with the same idxs
/// value. Result: int64 positions into the input, descending score order across groups
/// (stable, NaN last as in nms), at most max_output (-1 = all).
///
/// Below split_threshold boxes (N < split_threshold) it is one nms over shifted boxes, as
/// torchvision/mmcv: boxes + idx * (max coordinate + 1), the maximum computed on the device
/// (no synchronisation besides nms's count). This assumes non-negative coordinates (true
/// after clipping) and loses precision when |offset| is large: the shifted coordinates are
/// rounded to the ulp of idx * (max + 1) (float32: 1/128 px at offsets of 65536..131071,
/// e.g. 80 classes on a 1333 px image), which can move an IoU that sits within ~1e-5 of the
/// threshold across it; float64 keeps ~1e-11 px. At N >= split_threshold it runs nms per
/// group (exact, like calling nms on each group) and merges the kept boxes by score (stable):
/// this path copies idxs to the host and, on CUDA, synchronises once per group.
/// Requires: boxes [N, 4], scores [N], idxs int64 [N], all on one device; iou_threshold not
/// NaN; max_output >= -1; split_threshold >= 0. Any int64 ids (negative too) separate groups.
Tensor batched_nms(const Tensor& boxes, const Tensor& scores, const Tensor& idxs, double iou_threshold,
                   int64_t max_output = -1, int64_t split_threshold = 10000, bool legacy = false);
}  // namespace drcnn::ops
