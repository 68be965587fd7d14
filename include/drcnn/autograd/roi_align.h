// Differentiable RoIAlign on Variables (forward: include/drcnn/ops/roi_align.h, same shapes,
// dtypes, semantics and errors). The gradient flows to the features only; rois (and levels)
// are Tensors and get none, as in torchvision. Implementation:
// src/autograd/roi_align.cpp; tests: tests/autograd/test_autograd_roi_align.cpp.
#pragma once
#include <vector>

#include "drcnn/autograd/variable.h"
#include "drcnn/ops/roi_align.h"

namespace drcnn {

/// features [N, C, H, W] -> [R, C, PH, PW]. mode chooses the CUDA backward (ignored on the CPU).
Variable roi_align(const Variable& features, const Tensor& rois, ops::RoiOutputSize output_size,
                   double spatial_scale, int64_t sampling_ratio, bool aligned,
                   ops::RoiAlignBackwardMode mode = ops::RoiAlignBackwardMode::Atomic);

/// Multi-level: each RoI pooled from its level (levels: int64 [R], e.g. from
/// ops::map_roi_levels or ops::roi_align_multilevel); the backward scatters into that level.
Variable roi_align_multilevel(const std::vector<Variable>& features, const Tensor& rois, const Tensor& levels,
                              ops::RoiOutputSize output_size, const std::vector<double>& spatial_scales,
                              int64_t sampling_ratio, bool aligned,
                              ops::RoiAlignBackwardMode mode = ops::RoiAlignBackwardMode::Atomic);
}  // namespace drcnn
