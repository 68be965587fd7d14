// Anchor generator with MMDetection v2 AnchorGenerator semantics (spec B.4): one anchor per
// (location, ratio, scale), base anchors centred at the cell corner (center_offset 0), shifted
// by (x * stride, y * stride), flattened in (y, x, a) order: row ((y * W + x) * A + a).
// Per location, a = r * num_scales + s (scale_major, mmdet's default) or s * num_ratios + r.
// float32 results are bit-identical to mmdet/torch (same operations in the same order, see
// docs/kernels/anchors-and-topk.md); float64 evaluates the same formulas in double.
// CPU and CUDA from one body (ops/detail/anchor_body.h). Bad inputs throw drcnn::Error.
#pragma once
#include <cstdint>
#include <vector>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// mmdet AnchorGenerator(strides, ratios, scales, base_sizes, scale_major, center_offset).
/// Defaults: the Faster/Dynamic R-CNN RPN anchors (P2..P6, sizes 32..512, ratios h/w 0.5/1/2).
struct AnchorConfig {
  std::vector<int64_t> strides{4, 8, 16, 32, 64};  ///< one square stride per level, > 0
  std::vector<double> ratios{0.5, 1.0, 2.0};       ///< h / w, > 0, at most kMaxAnchorRatios
  std::vector<double> scales{8.0};                 ///< > 0, at most kMaxAnchorScales
  std::vector<double> base_sizes{};                ///< empty: the strides; else one per level, > 0
  double center_offset = 0.0;                      ///< in [0, 1]; centre = offset * base_size
  bool scale_major = true;                         ///< a = r * num_scales + s (else s * num_ratios + r)
  /// Detectron's generate_anchors (maskrcnn-benchmark, the seed): the window [0, 0, b - 1, b - 1]
  /// (b the base size), widths and heights rounded half to even per ratio, then scaled, corners
  /// centre -/+ (w - 1) / 2 (+1 widths); computed in float64 and rounded once to the dtype.
  /// The seed's (ANCHOR_SIZES 32..512, strides 4..64) are scales {8}. Needs center_offset 0.
  bool detectron = false;

  static constexpr int kMaxAnchorRatios = 16;
  static constexpr int kMaxAnchorScales = 16;
  int64_t num_levels() const { return int64_t(strides.size()); }
  /// A: anchors per location (ratios x scales).
  int64_t anchors_per_location() const { return int64_t(ratios.size() * scales.size()); }
  friend bool operator==(const AnchorConfig&, const AnchorConfig&) = default;
};

/// Extent of one feature level, (height, width) like mmdet's featmap_sizes.
struct FeatureSize {
  int64_t height = 0;
  int64_t width = 0;
};

/// The anchors of every level: one [H * W * A, 4] (x1, y1, x2, y2) tensor per level, on
/// `device`, dtype float32 or float64. feature_sizes has one entry per level; H, W >= 0.
/// mmdet grid_priors / grid_anchors.
std::vector<Tensor> grid_anchors(const AnchorConfig& config, const std::vector<FeatureSize>& feature_sizes,
                                 DType dtype = DType::Float32, Device device = Device::cpu());

/// The A base anchors of one level, [A, 4] (the level's grid at a 1 x 1 feature map).
Tensor base_anchors(const AnchorConfig& config, int64_t level, DType dtype = DType::Float32,
                    Device device = Device::cpu());

/// mmdet valid_flags for ONE image: bool [H * W * A] per level, true where the anchor's cell
/// lies inside this image's own padded extent: y < min(ceil(pad_height / stride), H) and
/// x < min(ceil(pad_width / stride), W). (allowed_border = -1: nothing else is filtered.)
/// pad_height, pad_width >= 0 (the image's padded shape, not the batch's).
std::vector<Tensor> anchor_valid_flags(const AnchorConfig& config, const std::vector<FeatureSize>& feature_sizes,
                                       int64_t pad_height, int64_t pad_width, Device device = Device::cpu());

/// mmdet anchor_inside_flags without the valid flags (its allowed_border; maskrcnn-benchmark's
/// AnchorGenerator.add_visibility_to with STRADDLE_THRESH): bool [N] on the CPU, true where
/// x1 >= -allowed_border, y1 >= -allowed_border, x2 < width + allowed_border and
/// y2 < height + allowed_border, for anchors [N, 4] (any device; read on the host) and the
/// image's unpadded height and width. allowed_border < 0: every anchor is inside.
Tensor anchor_inside_flags(const Tensor& anchors, int64_t height, int64_t width, double allowed_border);

/// Total number of anchors over all levels (sum of H * W * A).
int64_t num_anchors(const AnchorConfig& config, const std::vector<FeatureSize>& feature_sizes);
}  // namespace drcnn::ops
