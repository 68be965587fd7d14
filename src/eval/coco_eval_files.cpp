// File-level entry points of the COCO evaluator: evaluate_files and run_cocoeval, the body of
// the drcnn-cocoeval tool (examples/cocoeval.cpp). Ground truth is read by
// drcnn::data::load_coco (src/data/coco.cpp), results by load_results (coco_results.cpp).
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <ostream>

#include "drcnn/core/error.h"
#include "drcnn/eval/coco_eval.h"

namespace drcnn::eval {
namespace {

void check_iou_type(std::string_view iou_type) {
  DRCNN_CHECK(iou_type == "bbox", "COCO evaluation: iou type '", iou_type,
              "' is not supported; drcnn evaluates boxes only (--iou-type bbox)");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

CocoEvalResult evaluate_files(const std::filesystem::path& gt_json, const std::filesystem::path& results_json,
                              std::string_view iou_type) {
  check_iou_type(iou_type);
  const data::CocoFile gt = data::load_coco(gt_json);
  const CocoResults dt = load_results(results_json);
  return evaluate_bbox(gt, dt);
}

CocoEvalResult run_cocoeval(const CocoEvalCommand& command, std::ostream& out) {
  check_iou_type(command.iou_type);
  auto t0 = std::chrono::steady_clock::now();
  out << "loading annotations into memory...\n" << std::flush;
  const data::CocoFile gt = data::load_coco(command.gt_json);
  out << fmt::format("Done (t={:0.2f}s)\n", seconds_since(t0));
  t0 = std::chrono::steady_clock::now();
  out << "Loading and preparing results...\n" << std::flush;
  const CocoResults dt = load_results(command.results_json);
  out << fmt::format("DONE (t={:0.2f}s)\n", seconds_since(t0));
  out << "Running per image evaluation...\nEvaluate annotation type *bbox*\n" << std::flush;
  t0 = std::chrono::steady_clock::now();
  auto params = CocoEvalParams::bbox();
  params.num_threads = command.num_threads;
  const CocoEvalResult result = evaluate_bbox(gt, dt, params);
  out << fmt::format("DONE (t={:0.2f}s).\n", seconds_since(t0));  // evaluate + accumulate together
  out << summary_text(result);
  if (command.extras) out << extras_text(result);
  if (!command.json_out.empty()) {
    std::ofstream f(command.json_out, std::ios::binary | std::ios::trunc);
    DRCNN_CHECK(f.good(), "COCO evaluation: cannot open '", command.json_out.string(), "' for writing");
    f << result_to_json(result) << '\n';
    f.close();
    DRCNN_CHECK(!f.fail(), "COCO evaluation: write to '", command.json_out.string(), "' failed");
  }
  out << std::flush;
  return result;
}

}  // namespace drcnn::eval
