// drcnn-cocoeval: COCO box evaluation from the command line, a drop-in for the usual
// pycocotools script (COCO(gt); loadRes(results); COCOeval(..., 'bbox'); evaluate; accumulate;
// summarize). Prints the same 12 summary lines, then AP at each IoU threshold and per-class AP.
//
//   drcnn-cocoeval GT.json RESULTS.json [--iou-type bbox] [--json report.json] [--threads N]
//
// Exit status: 0 on success, 1 with a message naming the file and the record on a malformed
// file, a detection whose image or category id is not in the ground truth, or an unsupported
// --iou-type; CLI11's own non-zero code for command-line usage errors. docs/eval.md.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "drcnn/core/error.h"
#include "drcnn/eval/coco_eval.h"

int main(int argc, char** argv) {
  drcnn::eval::CocoEvalCommand cmd;
  std::string gt, results, json_out;
  bool no_extras = false;
  CLI::App app{"COCO box evaluation (same numbers as pycocotools COCOeval, iouType bbox)", "drcnn-cocoeval"};
  app.add_option("gt", gt, "COCO annotation file (ground truth)")->required();
  app.add_option("results", results, "COCO results file: [{image_id, category_id, bbox, score}, ...]")->required();
  app.add_option("--iou-type", cmd.iou_type, "bbox (segm and keypoints are not supported)");
  app.add_option("--json", json_out, "also write every number (stats, AP per IoU, per-class AP) to this JSON file");
  app.add_option("--threads", cmd.num_threads, "OpenMP threads (0 = default); results do not depend on it");
  app.add_flag("--no-extras", no_extras, "print only the 12 pycocotools summary lines");
  CLI11_PARSE(app, argc, argv);
  cmd.gt_json = gt;
  cmd.results_json = results;
  cmd.json_out = json_out;
  cmd.extras = !no_extras;
  try {
    drcnn::eval::run_cocoeval(cmd, std::cout);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "drcnn-cocoeval: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
