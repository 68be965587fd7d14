// Test-time augmentation (include/drcnn/eval/tta.h).
#include "drcnn/eval/tta.h"

#include "drcnn/core/error.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/nms.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/structures/image_list.h"

namespace drcnn::eval {

Tensor flip_boxes_horizontal(const Tensor& boxes, double width) {
  DRCNN_CHECK(boxes.ndim() == 2 && boxes.size(1) == 4, "flip_boxes_horizontal: expected boxes [N, 4], got ",
              boxes.shape());
  // [x1, y1, x2, y2] -> [W - x2, y1, W - x1, y2]
  const Tensor x1 = boxes.narrow(1, 0, 1), y1 = boxes.narrow(1, 1, 1), x2 = boxes.narrow(1, 2, 1),
               y2 = boxes.narrow(1, 3, 1);
  // W + (-x) rounds as W - x (negation is exact).
  return ops::concat({ops::add(ops::neg(x2), width), y1, ops::add(ops::neg(x1), width), y2}, 1);
}

Instances merge_aug_detections(const std::vector<Instances>& views, const std::vector<bool>& flipped,
                               ImageSize original, double nms_iou, int64_t max_per_img) {
  const char* op = "merge_aug_detections";
  DRCNN_CHECK(!views.empty(), op, ": needs at least one view");
  DRCNN_CHECK(flipped.size() == views.size(), op, ": one flip flag per view expected (", views.size(), "), got ",
              flipped.size());
  DRCNN_CHECK(max_per_img > 0, op, ": max_per_img must be > 0, got ", max_per_img);
  std::vector<Tensor> boxes, scores, labels;
  for (size_t i = 0; i < views.size(); ++i) {
    DRCNN_CHECK(views[i].has_scores(), op, ": view ", i, " has no scores");
    const Tensor b = views[i].boxes.tensor();
    boxes.push_back(flipped[i] ? flip_boxes_horizontal(b, double(original.width)) : b);
    scores.push_back(views[i].scores);
    labels.push_back(views[i].labels);
  }
  const Tensor all_boxes = ops::concat(boxes, 0), all_scores = ops::concat(scores, 0),
               all_labels = ops::concat(labels, 0);
  // split_threshold 0: one exact NMS per class (no coordinate offsets).
  const Tensor keep = ops::batched_nms(all_boxes, all_scores, all_labels, nms_iou, max_per_img, 0);
  return Instances(original, Boxes(ops::index_select(all_boxes, 0, keep)), ops::index_select(all_labels, 0, keep),
                   ops::index_select(all_scores, 0, keep));
}

Instances predict_tta(const models::TwoStageDetector<float>& model, const data::Image& image, const TtaOptions& o,
                      const data::NormalizeOptions& normalize, Device device) {
  DRCNN_CHECK(!o.scales.empty(), "predict_tta: needs at least one scale");
  const ImageSize original{image.height, image.width};
  std::vector<Instances> views;
  std::vector<bool> flipped;
  for (const auto& scale : o.scales) {
    for (bool flip : {false, true}) {
      if (flip && !o.flip) continue;
      data::ResizeOptions r;
      r.scales = {scale};
      data::Pipeline p = data::test_pipeline(r, normalize);
      if (flip) {  // Resize, RandomFlip(1), Normalize (mmdet MultiScaleFlipAug's order)
        p = data::Pipeline();
        p.emplace<data::Resize>(r).emplace<data::RandomFlip>(1.0).emplace<data::Normalize>(normalize);
      }
      data::Sample sample = data::make_sample(data::DetectionRecord{}, image);
      data::RandomStream rng(0, 0);
      p.run(sample, rng);
      DRCNN_CHECK(sample.meta.flipped == flip, "predict_tta: the flip view was not flipped");
      const ImageList batch = ImageList::from_images({sample.tensor.to(device)}, 32);
      const Instances v =
          model.predict(batch, {{double(sample.meta.scale_w), double(sample.meta.scale_h)}}, {original}).at(0);
      views.emplace_back(v.image_size, Boxes(v.boxes.tensor().to(Device::cpu())), v.labels.to(Device::cpu()),
                         v.scores.to(Device::cpu()));
      flipped.push_back(flip);
    }
  }
  return merge_aug_detections(views, flipped, original, o.nms_iou, o.max_per_img);
}
}  // namespace drcnn::eval
