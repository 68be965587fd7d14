// Instances: the annotations (or detections) of one image: its size and per-object boxes,
// labels and, optionally, scores and ignore flags.
#pragma once
#include <cstdint>

#include "drcnn/core/tensor.h"
#include "drcnn/structures/boxes.h"

namespace drcnn {

/// Size (height, width) of an image in pixels, before any batch padding.
struct ImageSize {
  int64_t height = 0;
  int64_t width = 0;
  friend bool operator==(const ImageSize&, const ImageSize&) = default;
};

/// Per-image objects. `labels` are int64 class ids (MMDetection: 0..C-1, background C).
/// `scores` (float, [N]) and `ignore` (bool, [N]: crowd / difficult objects, which MMDetection
/// passes to the assigner as gt_bboxes_ignore) are optional: an undefined Tensor means absent.
struct Instances {
  ImageSize image_size;
  Boxes boxes;
  Tensor labels;
  Tensor scores;
  Tensor ignore;

  Instances() = default;
  /// Checks: labels int64 [N] with N = boxes.size(); scores, when given, float [N]; ignore,
  /// when given, bool [N]; every defined tensor on the boxes' device; sizes >= 0.
  Instances(ImageSize size, Boxes boxes, Tensor labels, Tensor scores = {}, Tensor ignore = {});

  int64_t size() const { return boxes.size(); }
  bool has_scores() const { return scores.defined(); }
  bool has_ignore() const { return ignore.defined(); }

  /// The objects at `index` (int64 [K], any order, repeats allowed): every defined field is
  /// index_select-ed; the image size is kept.
  Instances select(const Tensor& index) const;
  /// The objects whose ignore flag is false (all objects when there are no flags) and the
  /// ignored ones' boxes ([0, 4] when none), as the assigner's (gt_bboxes, gt_bboxes_ignore).
  /// Compacts on the host (one copy of the flags; a synchronisation on CUDA).
  Instances without_ignored() const;
  Boxes ignored_boxes() const;
};

}  // namespace drcnn
