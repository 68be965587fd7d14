// Test-time augmentation as MMDetection's MultiScaleFlipAug + DetTTAModel (mmdet 3.x
// merge_aug_bboxes / _merge_single_sample): every (scale, flip) of the image goes through
// Resize(scale, keep_ratio) [+ horizontal flip] + Normalize and model.predict with its boxes
// rescaled to the original image; the boxes of flipped views are flipped back in the original
// image (x1' = W - x2, x2' = W - x1, mmdet bbox_flip), all views' detections are concatenated,
// then per-class NMS (exact, one NMS per class) and the top max_per_img by score.
// The seed's setting: short sides 800, 1000, 1200, 1400, 1600, long side up to 2000, flip
// (configs/dynamic_rcnn_r101_dcnv2_fpn_3x_tta.yaml). Definitions: src/eval/tta.cpp; tests:
// tests/eval/test_tta.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "drcnn/data/image.h"
#include "drcnn/data/transforms.h"
#include "drcnn/models/detector.h"
#include "drcnn/structures/instances.h"

namespace drcnn::eval {

struct TtaOptions {
  /// (long edge, short edge) of each scale, in order (mmdet img_scale); each is one view.
  std::vector<std::array<int32_t, 2>> scales;
  bool flip = false;       ///< each scale also flipped horizontally (a second view)
  double nms_iou = 0.5;    ///< per-class NMS of the merged detections (mmdet tta_cfg nms)
  int64_t max_per_img = 100;
};

/// mmdet bbox_flip (horizontal): boxes [N, 4] -> x1' = width - x2, x2' = width - x1, y kept.
Tensor flip_boxes_horizontal(const Tensor& boxes, double width);

/// Merges the detections of the views of one image. views[i]: boxes in the original image's
/// pixels, flipped when flipped[i]; scores and labels present. Returns the concatenation (flipped
/// views flipped back to the original frame), per-class NMS at nms_iou (exact: one NMS per class,
/// ops::batched_nms without the coordinate-offset trick), the top max_per_img (> 0) by score,
/// in descending score order (stable: equal scores keep view order), with image size `original`.
Instances merge_aug_detections(const std::vector<Instances>& views, const std::vector<bool>& flipped,
                               ImageSize original, double nms_iou, int64_t max_per_img);

/// Runs every view of `image` (scales x {no flip, flip}) through the model on `device` and merges
/// them; boxes in the image's pixels. Requires: at least one scale.
Instances predict_tta(const models::TwoStageDetector<float>& model, const data::Image& image, const TtaOptions& o,
                      const data::NormalizeOptions& normalize, Device device);
}  // namespace drcnn::eval
