// RoIAlign (spec B.9, C.1, C.2): average-pooled bilinear samples of each RoI, with the
// semantics of torchvision.ops.roi_align / mmcv RoIAlign (avg mode). Details, conventions
// and benchmark numbers: docs/kernels/roi-align.md.
//
// rois are [R, 5] rows (batch_index, x1, y1, x2, y2) in input-image pixels, same dtype and
// device as the features; a RoI is mapped to feature coordinates by * spatial_scale (minus 0.5
// when aligned). Each of the PH x PW bins averages grid_h x grid_w bilinear samples:
//   - grid = sampling_ratio when > 0, else adaptive ceil(roi_size / bins) (per axis);
//   - aligned: half-pixel offset, RoIs of any size (an empty or reversed RoI gives zeros);
//     not aligned: RoI sides clamped to >= 1 (maskrcnn-benchmark, torchvision aligned=False);
//   - samples outside [-1, H] x [-1, W] contribute 0; [-1, 0] reads row/column 0, at or
//     beyond H - 1 reads the last row (W likewise);
//   - the average divides by max(grid_h * grid_w, 1), out-of-range samples included.
// float32 and float64, CPU and CUDA; R = 0 and C = 0 are valid. Features may be strided.
// The batch index must be an integer in [0, N): it is checked by the kernel through an error
// flag, read when the call returns on the CPU and lazily on CUDA (no synchronisation per call;
// ops/device_checks.h says when the error is thrown).
// RoIs get no gradient. The CPU is deterministic for any thread count.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// CUDA backward accumulation: Atomic (one thread per grad_out element adding with float
/// atomics; the summation order, hence the last bits, can change from run to run) or
/// Deterministic (one thread per (batch, channel) plane walking the RoIs in index order; bitwise
/// reproducible, slower: its parallelism is N * C). The CPU ignores it (always deterministic,
/// and equal to the CUDA deterministic order). Deterministic is for debugging, not training:
/// each of its N * C threads does ~10^5-10^6 serial updates (docs/kernels/roi-align.md).
enum class RoiAlignBackwardMode { Atomic, Deterministic };

/// (pooled_height, pooled_width)
using RoiOutputSize = std::array<int64_t, 2>;

/// features [N, C, H, W], rois [R, 5] -> [R, C, PH, PW]. output_size > 0; sampling_ratio >= 0;
/// spatial_scale finite and > 0. aligned has no default on purpose (conventions differ:
/// mmdet/detectron2 ROIAlignV2 true, torchvision/maskrcnn-benchmark false).
Tensor roi_align(const Tensor& features, const Tensor& rois, RoiOutputSize output_size, double spatial_scale,
                 int64_t sampling_ratio, bool aligned);

/// Gradient w.r.t. the features: grad_out [R, C, PH, PW] (may be strided) -> [N, C, H, W] for
/// input_shape = {N, C, H, W} (contiguous, zero where no sample reads).
Tensor roi_align_backward(const Tensor& grad_out, const Tensor& rois, const Shape& input_shape,
                          double spatial_scale, int64_t sampling_ratio, bool aligned,
                          RoiAlignBackwardMode mode = RoiAlignBackwardMode::Atomic);

/// Multi-level pooling result: the pooled features and the level of each RoI (int64 [R], on
/// the rois' device), which the backward (and the caller) can reuse.
struct RoiAlignMultilevel {
  Tensor output;
  Tensor levels;
};

/// Pools every RoI from one FPN level in a single launch. features: 1..kRoiAlignMaxLevels (8)
/// maps [N, C, H_l, W_l] with one dtype, device, N and C; spatial_scales one per level.
/// The level of each RoI is MMDetection's map_roi_levels (finest_scale, clamped to the
/// levels given; ops/box_ops.h).
RoiAlignMultilevel roi_align_multilevel(const std::vector<Tensor>& features, const Tensor& rois,
                                        RoiOutputSize output_size, const std::vector<double>& spatial_scales,
                                        int64_t sampling_ratio, bool aligned, double finest_scale = 56.0);
/// Same with the levels given (int64 [R], values in [0, number of levels); checked by the
/// kernel like the batch index).
Tensor roi_align_multilevel(const std::vector<Tensor>& features, const Tensor& rois, const Tensor& levels,
                            RoiOutputSize output_size, const std::vector<double>& spatial_scales,
                            int64_t sampling_ratio, bool aligned);

/// Gradient w.r.t. each level's features: grad_out [R, C, PH, PW] -> one [N, C, H_l, W_l] per
/// entry of input_shapes. Each RoI's gradient goes only to its level.
std::vector<Tensor> roi_align_multilevel_backward(const Tensor& grad_out, const Tensor& rois, const Tensor& levels,
                                                  const std::vector<Shape>& input_shapes,
                                                  const std::vector<double>& spatial_scales, int64_t sampling_ratio,
                                                  bool aligned,
                                                  RoiAlignBackwardMode mode = RoiAlignBackwardMode::Atomic);
}  // namespace drcnn::ops
