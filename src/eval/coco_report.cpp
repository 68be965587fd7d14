// Text and JSON reports of a COCO evaluation (include/drcnn/eval/coco_eval.h). The 12 summary
// lines reproduce pycocotools' COCOeval.summarize() print format character for character:
//   ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
// (fmt and Python's str.format share this mini-language, and both round the exact binary value).
#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "drcnn/core/error.h"
#include "drcnn/eval/coco_eval.h"

namespace drcnn::eval {
namespace {

std::string line(bool ap, const std::string& iou, const std::string& area, int max_dets, double value) {
  return fmt::format(" {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}\n",
                     ap ? "Average Precision" : "Average Recall", ap ? "(AP)" : "(AR)", iou, area, max_dets, value);
}

std::string iou_range(const CocoEvalResult& r) {
  return fmt::format("{:0.2f}:{:0.2f}", r.params.iou_thresholds.front(), r.params.iou_thresholds.back());
}

/// "AP50", "AP55", ...: the threshold in hundredths.
std::string ap_name(double thr) { return fmt::format("AP{}", static_cast<int>(std::lround(thr * 100))); }

}  // namespace

std::string summary_text(const CocoEvalResult& r) {
  DRCNN_CHECK(r.A() == 4 && r.M() == 3, "summary_text: the 12-line summary needs the default parameters "
              "(4 area ranges, 3 maxDets), got ", r.A(), " and ", r.M());
  const auto& md = r.params.max_dets;
  const std::string all = iou_range(r);
  std::string out;
  out += line(true, all, "all", md[2], r.stats[0]);
  out += line(true, "0.50", "all", md[2], r.stats[1]);
  out += line(true, "0.75", "all", md[2], r.stats[2]);
  out += line(true, all, "small", md[2], r.stats[3]);
  out += line(true, all, "medium", md[2], r.stats[4]);
  out += line(true, all, "large", md[2], r.stats[5]);
  out += line(false, all, "all", md[0], r.stats[6]);
  out += line(false, all, "all", md[1], r.stats[7]);
  out += line(false, all, "all", md[2], r.stats[8]);
  out += line(false, all, "small", md[2], r.stats[9]);
  out += line(false, all, "medium", md[2], r.stats[10]);
  out += line(false, all, "large", md[2], r.stats[11]);
  return out;
}

std::string extras_text(const CocoEvalResult& r) {
  const int md = r.params.max_dets.back();
  std::string out = "AP at each IoU threshold:\n";
  for (std::size_t t = 0; t < r.T(); ++t)
    out += line(true, fmt::format("{:0.2f}", r.params.iou_thresholds[t]), r.params.area_labels[0], md, r.ap_per_iou[t]);
  out += fmt::format("Per-category AP @[ IoU={} | area={} | maxDets={} ]:\n", iou_range(r), r.params.area_labels[0], md);
  for (std::size_t k = 0; k < r.K(); ++k)
    out += fmt::format("  {:>6} {:<24} {:0.3f}\n", r.category_ids[k], r.category_names[k], r.ap_per_class[k]);
  return out;
}

const std::array<const char*, 12>& summary_names() {
  static constexpr std::array<const char*, 12> kNames = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                                         "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  return kNames;
}

std::string result_to_json(const CocoEvalResult& r) {
  nlohmann::ordered_json j;
  j["iou_type"] = "bbox";
  j["num_images"] = r.image_ids.size();
  j["num_categories"] = r.K();
  nlohmann::ordered_json stats;
  for (std::size_t i = 0; i < 12; ++i) stats[summary_names()[i]] = r.stats[i];
  j["stats"] = stats;
  j["stats_array"] = r.stats;
  nlohmann::ordered_json per_iou;
  for (std::size_t t = 0; t < r.T(); ++t) per_iou[ap_name(r.params.iou_thresholds[t])] = r.ap_per_iou[t];
  j["ap_per_iou"] = per_iou;
  j["iou_thresholds"] = r.params.iou_thresholds;
  nlohmann::ordered_json classes = nlohmann::ordered_json::array();
  for (std::size_t k = 0; k < r.K(); ++k)
    classes.push_back({{"category_id", r.category_ids[k]}, {"name", r.category_names[k]}, {"AP", r.ap_per_class[k]}});
  j["per_category"] = classes;
  return j.dump(2);
}

}  // namespace drcnn::eval
