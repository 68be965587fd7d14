// COCO box evaluation equal to pycocotools' COCOeval (iouType "bbox"), step by step: the same
// parameters, the same per-(image, category, area) greedy matching with crowd regions, the same
// accumulation (stable score sort, cumulative TP/FP, precision envelope, 101-point sampling) and
// the same 12-number summary, printed in pycocotools' format. Plus AP at each IoU threshold,
// per-class AP, a JSON report, and the COCO results JSON format (read and write) so that
// pycocotools can evaluate the same detections. Protocol notes and the differences we chose
// (clear errors where pycocotools asserts or silently drops): docs/eval.md.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "drcnn/data/coco.h"
#include "drcnn/data/dataset.h"

namespace drcnn::eval {

/// Detections in the COCO results format (a JSON array of {"image_id", "category_id",
/// "bbox": [x, y, w, h], "score"}), as parallel arrays in file order. Category ids are the
/// dataset's original ids. Detection i gets the id i + 1 in evaluation (as pycocotools' loadRes).
struct CocoResults {
  std::string source;  ///< path or name, used in error messages
  std::vector<int64_t> image_id;
  std::vector<int64_t> category_id;
  std::vector<std::array<double, 4>> bbox;  ///< (x, y, w, h)
  std::vector<double> score;
  std::size_t size() const { return image_id.size(); }
  void push_back(int64_t image, int64_t category, const std::array<double, 4>& xywh, double s) {
    image_id.push_back(image);
    category_id.push_back(category);
    bbox.push_back(xywh);
    score.push_back(s);
  }
};

/// Parses a COCO results JSON array held in memory; `source` names it in errors. Throws
/// drcnn::Error naming the source, the record index and what was wrong (not an array, a record
/// that is not an object, a missing field, a wrong type, a bbox that is not 4 numbers). Extra
/// fields (e.g. "segmentation", "id") are ignored.
CocoResults parse_results(std::string_view json, std::string_view source);
/// Reads and parses a results file.
CocoResults load_results(const std::filesystem::path& path);
/// The results as COCO results JSON (numbers written so that they read back bit-exact).
std::string results_to_json(const CocoResults& results);
/// Writes results_to_json(results) to `path`.
void save_results(const CocoResults& results, const std::filesystem::path& path);

/// COCOeval parameters. bbox() is pycocotools' Params.setDetParams(), bit for bit.
struct CocoEvalParams {
  std::vector<double> iou_thresholds;             ///< T values (at most 64)
  std::vector<double> recall_thresholds;          ///< R values, increasing
  std::vector<int> max_dets;                      ///< M values, increasing
  std::vector<std::array<double, 2>> area_ranges; ///< A [lo, hi], both ends inclusive
  std::vector<std::string> area_labels;           ///< A labels ("all", "small", ...)
  /// OpenMP threads for the per-category loop (0 = OpenMP's default). The result does not
  /// depend on it: categories are independent and each is computed by one thread.
  int num_threads = 0;

  /// iouThrs = linspace(.5, .95, 10), recThrs = linspace(0, 1, 101), maxDets = [1, 10, 100],
  /// areaRng all [0, 1e10], small [0, 32^2], medium [32^2, 96^2], large [96^2, 1e10].
  static CocoEvalParams bbox();
};

/// numpy.linspace(start, stop, num, endpoint=True) with numpy's exact rounding
/// (start + i * ((stop - start) / (num - 1)), last value = stop).
std::vector<double> linspace(double start, double stop, int num);

/// COCOeval's eval['precision'] / eval['recall'] plus the summary and extras.
struct CocoEvalResult {
  CocoEvalParams params;
  std::vector<int64_t> category_ids;        ///< K sorted GT category ids
  std::vector<std::string> category_names;  ///< same order
  std::vector<int64_t> image_ids;           ///< I sorted GT image ids
  /// [T][R][K][A][M] row-major, -1 where the category has no non-ignored GT (as pycocotools).
  std::vector<double> precision;
  /// [T][K][A][M] row-major, -1 likewise.
  std::vector<double> recall;

  /// pycocotools' stats[0..11] (only with the default parameters; otherwise all -1).
  std::array<double, 12> stats{};
  /// AP at each IoU threshold (area all, maxDets last): mean of precision[t, :, :, 0, M-1] over
  /// entries > -1, -1 if none. ap_per_iou[0] is AP50 = stats[1].
  std::vector<double> ap_per_iou;
  /// Per-class AP@[.5:.95] (area all, maxDets last), -1 for a class without non-ignored GT.
  std::vector<double> ap_per_class;

  std::size_t T() const { return params.iou_thresholds.size(); }
  std::size_t R() const { return params.recall_thresholds.size(); }
  std::size_t K() const { return category_ids.size(); }
  std::size_t A() const { return params.area_ranges.size(); }
  std::size_t M() const { return params.max_dets.size(); }
  double precision_at(std::size_t t, std::size_t r, std::size_t k, std::size_t a, std::size_t m) const {
    return precision[(((t * R() + r) * K() + k) * A() + a) * M() + m];
  }
  double recall_at(std::size_t t, std::size_t k, std::size_t a, std::size_t m) const {
    return recall[((t * K() + k) * A() + a) * M() + m];
  }
};

/// COCOeval(gt, dt, 'bbox').evaluate(); accumulate(); summarize() without the prints.
/// Images and categories are those of `gt` (all of them, sorted by id). Throws drcnn::Error if a
/// detection's image id or category id is not in `gt` (pycocotools asserts on the former and
/// silently drops the latter; we refuse both, naming the detection).
CocoEvalResult evaluate_bbox(const data::CocoFile& gt, const CocoResults& dt,
                             const CocoEvalParams& params = CocoEvalParams::bbox());

/// The ground truth of any detection dataset (a Pascal VOC split, say) as a COCO file the
/// evaluator reads, built in memory from the dataset's records: image id = record.image_id
/// (VOC: the index), width/height as annotated, file_name = the image path's file name; one
/// category per class, id = label + 1, in label order; each box (x1, y1, x2, y2) as bbox
/// (x1, y1, x2 - x1, y2 - y1) with area w * h; ignored boxes (VOC difficult, COCO crowd) as
/// iscrowd 1, which COCOeval ignores as VOC's metric ignores difficult objects. Detections must
/// then use category_id = label + 1. (A COCO split is evaluated against its own file instead.)
data::CocoFile coco_ground_truth(const data::DetectionDataset& dataset, std::string source);

/// The mean over entries > -1 exactly as pycocotools' _summarize (numpy's pairwise summation,
/// so the value is bit-identical): ap = true averages precision, false recall; iou_index -1
/// means every threshold; area_index / max_det_index select one A / M entry.
double summarize_value(const CocoEvalResult& r, bool ap, int iou_index, std::size_t area_index,
                       std::size_t max_det_index);

/// The 12 summary lines exactly as pycocotools prints them (each ending in '\n').
std::string summary_text(const CocoEvalResult& r);
/// AP at each IoU threshold and per-class AP, in the same line style (documented in docs/eval.md).
std::string extras_text(const CocoEvalResult& r);
/// Every number above as a JSON document (stats by name, AP per IoU, per-class AP).
std::string result_to_json(const CocoEvalResult& r);
/// The names of stats[0..11] in pycocotools' order: "AP", "AP50", "AP75", "APs", "APm", "APl",
/// "AR1", "AR10", "AR100", "ARs", "ARm", "ARl" (result_to_json's keys).
const std::array<const char*, 12>& summary_names();

/// What `drcnn-cocoeval GT.json RESULTS.json --iou-type TYPE` runs: loads both files and
/// evaluates. Throws drcnn::Error naming the file and the record on a malformed file, an id
/// not in the GT, or an iou type other than "bbox".
CocoEvalResult evaluate_files(const std::filesystem::path& gt_json,
                              const std::filesystem::path& results_json,
                              std::string_view iou_type = "bbox");

/// One run of the `drcnn-cocoeval` tool (examples/cocoeval.cpp parses the command line into
/// this and calls run_cocoeval; tests call it directly).
struct CocoEvalCommand {
  std::filesystem::path gt_json;       ///< COCO annotation file (ground truth)
  std::filesystem::path results_json;  ///< COCO results file (detections)
  std::string iou_type = "bbox";       ///< only "bbox" is supported
  std::filesystem::path json_out;      ///< if not empty: result_to_json() is written there
  bool extras = true;                  ///< print AP per IoU threshold and per class after the summary
  int num_threads = 0;                 ///< CocoEvalParams::num_threads
};

/// Loads both files, evaluates and prints to `out` what pycocotools' usual script prints
/// (loading/evaluation progress lines with times, then the 12 summary lines), then the extras;
/// writes the JSON report. Throws drcnn::Error (file name + record + problem) on any bad input.
CocoEvalResult run_cocoeval(const CocoEvalCommand& command, std::ostream& out);

}  // namespace drcnn::eval
