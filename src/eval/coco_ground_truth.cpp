// coco_ground_truth (include/drcnn/eval/coco_eval.h): any DetectionDataset's records as an
// in-memory COCO ground-truth file, so VOC splits are evaluated by the same COCOeval.
#include <filesystem>
#include <string>
#include <utility>

#include "drcnn/eval/coco_eval.h"

namespace drcnn::eval {

data::CocoFile coco_ground_truth(const data::DetectionDataset& dataset, std::string source) {
  data::CocoFile gt;
  gt.source = std::move(source);
  const std::vector<std::string>& names = dataset.class_names();
  for (size_t c = 0; c < names.size(); ++c) gt.categories.push_back({int64_t(c) + 1, names[c], "", ""});
  data::CocoAnnotations& a = gt.annotations;
  for (size_t i = 0; i < dataset.size(); ++i) {
    const data::DetectionRecord r = dataset.record(i);
    data::CocoImage im;
    im.id = r.image_id;
    im.file_name = std::filesystem::path(r.image_path).filename().string();
    im.width = r.width;
    im.height = r.height;
    gt.images.push_back(std::move(im));
    for (size_t k = 0; k < r.labels.size(); ++k) {
      const double x1 = r.boxes[k][0], y1 = r.boxes[k][1];
      const double w = double(r.boxes[k][2]) - x1, h = double(r.boxes[k][3]) - y1;
      a.id.push_back(int64_t(a.id.size()) + 1);
      a.image_id.push_back(r.image_id);
      a.category_id.push_back(r.labels[k] + 1);
      a.bbox.push_back({x1, y1, w, h});
      a.area.push_back(w * h);
      a.iscrowd.push_back(r.ignore.empty() ? 0 : r.ignore[k]);
    }
  }
  return gt;
}

}  // namespace drcnn::eval
