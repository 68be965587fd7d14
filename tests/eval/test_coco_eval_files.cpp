// The file-level COCO evaluation (evaluate_files, run_cocoeval: the body of drcnn-cocoeval):
// the golden cases read through drcnn::data::load_coco must give pycocotools' numbers exactly
// (same as test_coco_eval.cpp, which builds the GT with its own reader), the printed text must
// contain pycocotools' summary verbatim, the JSON report must carry the same numbers, and every
// bad input must stop with a message naming the file and the record.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>

#include "drcnn/core/error.h"
#include "drcnn/eval/coco_eval.h"
#include "eval/eval_fixtures.h"

using Catch::Contains;
using namespace drcnn::eval;
namespace fs = std::filesystem;

namespace {

using drcnn_eval_test::data_path;
using drcnn_eval_test::read_text;

/// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("drcnn_cocoeval_test_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

const char* kGt = R"({"images":[{"id":1,"file_name":"a.jpg","width":100,"height":100}],
  "categories":[{"id":4,"name":"thing"}],
  "annotations":[{"id":1,"image_id":1,"category_id":4,"bbox":[0,0,10,10],"area":100,"iscrowd":0}]})";

}  // namespace

TEST_CASE("COCO eval from files equals pycocotools on every golden case", "[eval][golden]") {
  const auto g = nlohmann::json::parse(read_text(data_path("goldens.json")));
  for (const auto& [name, gold] : g.at("cases").items()) {
    INFO("case " << name);
    const auto r = evaluate_files(data_path(name + "_gt.json"), data_path(name + "_results.json"));
    const auto stats = gold.at("stats").get<std::vector<double>>();
    for (std::size_t i = 0; i < 12; ++i) CHECK(r.stats[i] == stats[i]);  // bit-identical, see test_coco_eval
    CHECK(r.ap_per_iou == gold.at("ap_per_iou").get<std::vector<double>>());
    CHECK(r.ap_per_class == gold.at("ap_per_class").get<std::vector<double>>());
  }
}

TEST_CASE("drcnn-cocoeval run prints pycocotools' summary and writes the JSON report", "[eval]") {
  const auto g = nlohmann::json::parse(read_text(data_path("goldens.json")));
  const auto& gold = g.at("cases").at("random_500");
  TempDir tmp;
  CocoEvalCommand cmd;
  cmd.gt_json = data_path("random_500_gt.json");
  cmd.results_json = data_path("random_500_results.json");
  cmd.json_out = tmp.path / "report.json";
  std::ostringstream out;
  const auto r = run_cocoeval(cmd, out);
  CHECK_THAT(out.str(), Contains(gold.at("summary").get<std::string>()));
  CHECK_THAT(out.str(), Contains("Evaluate annotation type *bbox*"));
  CHECK_THAT(out.str(), Contains(" Average Precision  (AP) @[ IoU=0.70      | area=   all | maxDets=100 ] = "));
  const auto j = nlohmann::json::parse(read_text(cmd.json_out));
  const auto stats = gold.at("stats").get<std::vector<double>>();
  CHECK(j.at("stats_array").get<std::vector<double>>() == stats);
  CHECK(j.at("stats").at("AP").get<double>() == stats[0]);
  CHECK(j.at("ap_per_iou").at("AP50").get<double>() == stats[1]);
  CHECK(j.at("ap_per_iou").at("AP75").get<double>() == stats[2]);
  CHECK(j.at("per_category").size() == 10);
  CHECK(j.at("per_category")[9].at("category_id").get<int64_t>() == 89);
  CHECK(j.at("per_category")[9].at("AP").get<double>() == r.ap_per_class[9]);
  // --no-extras: exactly pycocotools' lines after the progress lines.
  cmd.extras = false;
  cmd.json_out.clear();
  std::ostringstream plain;
  run_cocoeval(cmd, plain);
  const std::string text = plain.str();
  const std::string summary = gold.at("summary").get<std::string>();
  REQUIRE(text.size() >= summary.size());
  CHECK(text.substr(text.size() - summary.size()) == summary);
}

TEST_CASE("drcnn-cocoeval run: clear errors for bad files, unknown ids and iou types", "[eval]") {
  TempDir tmp;
  const fs::path gt = tmp.write("gt.json", kGt);
  std::ostringstream out;
  CocoEvalCommand cmd;
  cmd.gt_json = gt;
  cmd.results_json = tmp.write("ok.json", R"([{"image_id":1,"category_id":4,"bbox":[0,0,10,10],"score":1}])");
  CHECK(run_cocoeval(cmd, out).stats[0] == Approx(1.0).epsilon(1e-12));

  cmd.iou_type = "segm";
  CHECK_THROWS_WITH(run_cocoeval(cmd, out), Contains("iou type 'segm' is not supported"));
  CHECK_THROWS_WITH(evaluate_files(cmd.gt_json, cmd.results_json, "keypoints"), Contains("'keypoints' is not supported"));
  cmd.iou_type = "bbox";

  cmd.results_json = tmp.write("img.json", R"([{"image_id":1,"category_id":4,"bbox":[0,0,10,10],"score":1},
    {"image_id":2,"category_id":4,"bbox":[0,0,10,10],"score":1}])");
  CHECK_THROWS_WITH(run_cocoeval(cmd, out), Contains("img.json' record #1 has image_id 2, which is not an image") &&
                                                Contains(gt.string()));
  cmd.results_json = tmp.write("cat.json", R"([{"image_id":1,"category_id":5,"bbox":[0,0,10,10],"score":1}])");
  CHECK_THROWS_WITH(run_cocoeval(cmd, out), Contains("cat.json' record #0 has category_id 5, which is not a category"));
  cmd.results_json = tmp.write("bad.json", R"([{"image_id":1,"category_id":4,"bbox":[0,0,10],"score":1}])");
  CHECK_THROWS_WITH(run_cocoeval(cmd, out), Contains("bad.json' record #0 (image_id 1): field \"bbox\" must have 4"));
  cmd.results_json = tmp.path / "missing.json";
  CHECK_THROWS_WITH(run_cocoeval(cmd, out), Contains("missing.json': cannot open or read the file"));

  // A malformed ground truth: drcnn::data::load_coco's message names the file.
  cmd.results_json = tmp.path / "ok.json";
  cmd.gt_json = tmp.write("bad_gt.json", R"({"images":[{"id":1,"file_name":"a.jpg","width":100,"height":100}],
    "categories":[{"id":4,"name":"thing"}],"annotations":[{"id":1,"image_id":1,"category_id":4,"area":100}]})");
  CHECK_THROWS_WITH(run_cocoeval(cmd, out), Contains("bad_gt.json") && Contains("bbox"));
  cmd.gt_json = tmp.write("trunc_gt.json", std::string(kGt).substr(0, 60));
  CHECK_THROWS_AS(run_cocoeval(cmd, out), drcnn::Error);
}
