// COCO box evaluation (include/drcnn/eval/coco_eval.h) against pycocotools:
// - goldens: tests/data/eval/<case>_{gt,results}.json evaluated by pycocotools 2.0.x
//   (tools/golden_cocoeval.py); every summary number, the AP at each IoU threshold and each
//   per-class AP must match within 1e-6 (the issue's bar). In fact we follow numpy's operation
//   order, including its pairwise summation in np.mean, so the values are bit-identical; the
//   test prints the max difference seen. The 12 summary lines must equal pycocotools' print
//   output character for character.
// - hand-computed cases (independent of pycocotools) for the documented behaviours.
// - OpenMP: 1 thread and 2 threads give identical precision/recall arrays.
// - the results reader: every malformed input with its message; write -> read round trip.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "drcnn/core/error.h"
#include "drcnn/eval/coco_eval.h"
#include "eval/eval_fixtures.h"

using Catch::Contains;
using drcnn::data::CocoFile;
using namespace drcnn::eval;

namespace {

using drcnn_eval_test::data_path;
using drcnn_eval_test::read_text;

drcnn::data::CocoImage image(int64_t id) {
  drcnn::data::CocoImage im;
  im.id = id;
  im.width = im.height = 100;
  return im;
}
drcnn::data::CocoCategory category(int64_t id, std::string name) {
  drcnn::data::CocoCategory c;
  c.id = id;
  c.name = std::move(name);
  return c;
}

/// GT fixture -> CocoFile with nlohmann (independent of drcnn::data::parse_coco, which is
/// checked against this reader in test_coco_eval_files.cpp).
CocoFile gt_from_json(const std::string& path) {
  const auto j = nlohmann::json::parse(read_text(path));
  CocoFile f;
  f.source = path;
  for (const auto& im : j.at("images")) f.images.push_back(image(im.at("id").get<int64_t>()));
  for (const auto& c : j.at("categories")) f.categories.push_back(category(c.at("id").get<int64_t>(), c.at("name")));
  auto& a = f.annotations;
  for (const auto& an : j.at("annotations")) {
    a.id.push_back(an.at("id").get<int64_t>());
    a.image_id.push_back(an.at("image_id").get<int64_t>());
    a.category_id.push_back(an.at("category_id").get<int64_t>());
    const auto& b = an.at("bbox");
    a.bbox.push_back({b[0].get<double>(), b[1].get<double>(), b[2].get<double>(), b[3].get<double>()});
    a.area.push_back(an.at("area").get<double>());
    a.iscrowd.push_back(static_cast<uint8_t>(an.at("iscrowd").get<int>()));
  }
  return f;
}

CocoFile tiny_gt() {
  CocoFile f;
  f.source = "tiny";
  f.images = {image(1), image(2)};
  f.categories = {category(3, "cat"), category(1, "dog")};
  return f;
}

void add_gt(CocoFile& f, int64_t id, int64_t img, int64_t cat, std::array<double, 4> b, double area = -1,
            uint8_t crowd = 0) {
  auto& a = f.annotations;
  a.id.push_back(id);
  a.image_id.push_back(img);
  a.category_id.push_back(cat);
  a.bbox.push_back(b);
  a.area.push_back(area < 0 ? b[2] * b[3] : area);
  a.iscrowd.push_back(crowd);
}

}  // namespace

TEST_CASE("COCO eval parameters equal numpy linspace as pycocotools builds them", "[eval]") {
  const auto g = nlohmann::json::parse(read_text(data_path("goldens.json")));
  const auto p = CocoEvalParams::bbox();
  const auto expected = g.at("iou_thresholds").get<std::vector<double>>();
  REQUIRE(p.iou_thresholds.size() == 10);
  for (std::size_t t = 0; t < 10; ++t) CHECK(p.iou_thresholds[t] == expected[t]);  // bit-exact
  CHECK(p.iou_thresholds[8] == 0.8999999999999999);  // numpy's value, not 0.9
  CHECK(p.iou_thresholds[5] == 0.75);                // np.where(.75 == iouThrs) finds it
  REQUIRE(p.recall_thresholds.size() == 101);
  for (int r = 0; r < 100; ++r) CHECK(p.recall_thresholds[static_cast<std::size_t>(r)] == r * 0.01);
  CHECK(p.recall_thresholds[100] == 1.0);
}

TEST_CASE("COCO eval equals pycocotools on every golden case", "[eval][golden]") {
  const auto g = nlohmann::json::parse(read_text(data_path("goldens.json")));
  double max_diff = 0;
  for (const auto& [name, gold] : g.at("cases").items()) {
    INFO("case " << name);
    const CocoFile gt = gt_from_json(data_path(name + "_gt.json"));
    const CocoResults dt = load_results(data_path(name + "_results.json"));
    const CocoEvalResult r = evaluate_bbox(gt, dt);
    const auto stats = gold.at("stats").get<std::vector<double>>();
    const auto per_iou = gold.at("ap_per_iou").get<std::vector<double>>();
    const auto per_class = gold.at("ap_per_class").get<std::vector<double>>();
    REQUIRE(stats.size() == 12);
    REQUIRE(r.ap_per_iou.size() == per_iou.size());
    REQUIRE(r.ap_per_class.size() == per_class.size());
    CHECK(r.category_ids == gold.at("category_ids").get<std::vector<int64_t>>());
    for (std::size_t i = 0; i < 12; ++i) {
      INFO("stats[" << i << "]");
      CHECK(std::abs(r.stats[i] - stats[i]) <= 1e-6);
      max_diff = std::max(max_diff, std::abs(r.stats[i] - stats[i]));
    }
    for (std::size_t t = 0; t < per_iou.size(); ++t) {
      INFO("AP at IoU index " << t);
      CHECK(std::abs(r.ap_per_iou[t] - per_iou[t]) <= 1e-6);
      max_diff = std::max(max_diff, std::abs(r.ap_per_iou[t] - per_iou[t]));
    }
    for (std::size_t k = 0; k < per_class.size(); ++k) {
      INFO("AP of category index " << k);
      CHECK(std::abs(r.ap_per_class[k] - per_class[k]) <= 1e-6);
      max_diff = std::max(max_diff, std::abs(r.ap_per_class[k] - per_class[k]));
    }
    CHECK(summary_text(r) == gold.at("summary").get<std::string>());
    CHECK(r.stats[1] == r.ap_per_iou[0]);  // AP50 two ways
  }
  // The id-0 pitfall, both in pycocotools and here: the same file with the GT's id 0 -> 100.
  const auto zero = g.at("cases").at("ann_id_zero").at("stats").get<std::vector<double>>();
  const auto control = g.at("cases").at("ann_id_zero_control").at("stats").get<std::vector<double>>();
  CHECK(zero[0] < control[0] - 0.2);
  CHECK(zero[8] < control[8]);
  WARN("COCO eval: max |drcnn - pycocotools| over all golden numbers = " << max_diff);
  CHECK(max_diff == 0.0);  // bit-identical (numpy's summation order reproduced)
}

TEST_CASE("COCO eval gives identical arrays with 1 and 2 OpenMP threads", "[eval]") {
  const CocoFile gt = gt_from_json(data_path("random_500_gt.json"));
  const CocoResults dt = load_results(data_path("random_500_results.json"));
  auto p1 = CocoEvalParams::bbox();
  p1.num_threads = 1;
  auto p2 = p1;
  p2.num_threads = 2;
  const auto a = evaluate_bbox(gt, dt, p1), b = evaluate_bbox(gt, dt, p2);
  CHECK(a.precision == b.precision);
  CHECK(a.recall == b.recall);
  CHECK(a.stats == b.stats);
}

TEST_CASE("COCO eval hand-computed: perfect, duplicate, missed and id-0 matches", "[eval]") {
  CocoFile gt = tiny_gt();
  add_gt(gt, 10, 1, 3, {0, 0, 50, 50});  // area 2500: medium
  add_gt(gt, 11, 2, 3, {10, 10, 20, 20});  // area 400: small
  CocoResults dt;
  dt.push_back(1, 3, {0, 0, 50, 50}, 0.9);    // TP for GT 10 at every threshold
  dt.push_back(1, 3, {0, 0, 50, 50}, 0.8);    // duplicate: FP
  dt.push_back(2, 3, {10, 10, 20, 20}, 0.7);  // TP for GT 11
  auto r = evaluate_bbox(gt, dt);
  // Category 3 (index 1 after sorting ids 1, 3): sorted dets TP, FP, TP; npig = 2.
  // rc = .5, .5, 1; pr = 1, .5, 2/3 -> envelope 1, 2/3, 2/3. Recall thresholds <= .5 take
  // pr[0] = 1 (51 points), the other 50 take 2/3. Category 1 has no GT: -1, skipped.
  const double ap = (51 * 1.0 + 50 * (2.0 / 3.0)) / 101;
  CHECK(r.stats[0] == Approx(ap).epsilon(1e-12));  // float rounding of the sums only
  CHECK(r.ap_per_class[0] == -1.0);
  CHECK(r.ap_per_class[1] == Approx(ap).epsilon(1e-12));
  // AR@1: the best detection of each image is kept (0.9 in image 1, 0.7 in image 2): both found.
  CHECK(r.stats[6] == 1.0);
}

TEST_CASE("COCO eval hand-computed: a GT with annotation id 0 never counts as found", "[eval]") {
  CocoFile gt = tiny_gt();
  add_gt(gt, 0, 1, 1, {0, 0, 40, 40});
  CocoResults dt;
  dt.push_back(1, 1, {0, 0, 40, 40}, 0.9);  // IoU 1 with the id-0 GT: dtm = 0 -> counted as FP
  const auto r = evaluate_bbox(gt, dt);
  CHECK(r.stats[0] == 0.0);
  CHECK(r.stats[8] == 0.0);
  // The same GT with id 5 is found.
  gt.annotations.id[0] = 5;
  CHECK(evaluate_bbox(gt, dt).stats[0] == Approx(1.0).epsilon(1e-12));  // pr = 1 / (1 + eps)
}

TEST_CASE("COCO eval hand-computed: crowd regions absorb detections, area ranges are inclusive", "[eval]") {
  CocoFile gt = tiny_gt();
  add_gt(gt, 1, 1, 1, {0, 0, 32, 32});                // area exactly 32^2: small AND medium
  add_gt(gt, 2, 1, 1, {50, 50, 40, 40}, 1600, 1);     // crowd
  CocoResults dt;
  dt.push_back(1, 1, {60, 60, 10, 10}, 0.95);  // inside the crowd: crowd IoU = 100/100 = 1 -> ignored
  dt.push_back(1, 1, {0, 0, 32, 32}, 0.5);     // TP
  const auto r = evaluate_bbox(gt, dt);
  // Precision is tp / (tp + fp + eps) with eps = 2^-52, so a perfect AP is 1 - 2^-52 at best.
  CHECK(r.stats[0] == Approx(1.0).epsilon(1e-12));  // crowd-matched detection: neither TP nor FP
  CHECK(r.stats[3] == Approx(1.0).epsilon(1e-12));  // small includes area 1024
  CHECK(r.stats[4] == Approx(1.0).epsilon(1e-12));  // medium includes area 1024
  CHECK(r.stats[5] == -1.0);  // no large GT
}

TEST_CASE("COCO eval rejects detections outside the ground truth, naming them", "[eval]") {
  CocoFile gt = tiny_gt();
  add_gt(gt, 1, 1, 1, {0, 0, 10, 10});
  CocoResults dt;
  dt.source = "dets.json";
  dt.push_back(1, 1, {0, 0, 10, 10}, 0.9);
  dt.push_back(7, 1, {0, 0, 10, 10}, 0.9);
  CHECK_THROWS_WITH(evaluate_bbox(gt, dt), Contains("'dets.json' record #1 has image_id 7") &&
                                               Contains("not an image of the ground truth 'tiny'"));
  dt.image_id[1] = 2;
  dt.category_id[1] = 2;
  CHECK_THROWS_WITH(evaluate_bbox(gt, dt), Contains("record #1 has category_id 2") && Contains("not a category"));
  dt.category_id[1] = 3;
  dt.score[1] = std::nan("");
  CHECK_THROWS_WITH(evaluate_bbox(gt, dt), Contains("record #1 has a score that is not a finite number"));
}

TEST_CASE("COCO eval with no detections gives 0, with no GT gives -1", "[eval]") {
  CocoFile gt = tiny_gt();
  add_gt(gt, 1, 1, 1, {0, 0, 10, 10});
  const auto r = evaluate_bbox(gt, CocoResults{});
  CHECK(r.stats[0] == 0.0);  // pycocotools' loadRes crashes on an empty list; docs/eval.md
  CHECK(r.stats[8] == 0.0);
  const auto e = evaluate_bbox(tiny_gt(), CocoResults{});
  for (double s : e.stats) CHECK(s == -1.0);
}

TEST_CASE("COCO results JSON round trip is exact", "[eval]") {
  CocoResults a;
  a.push_back(42, 90, {0.1, 1.0 / 3.0, 1e-7, 12345.678901234567}, 0.123456789012345678);
  a.push_back(-1, 1, {0, 0, 0, 0}, 0);
  const CocoResults b = parse_results(results_to_json(a), "mem");
  CHECK(b.image_id == a.image_id);
  CHECK(b.category_id == a.category_id);
  CHECK(b.bbox == a.bbox);
  CHECK(b.score == a.score);
  CHECK(parse_results("[]", "empty").size() == 0);
}

TEST_CASE("COCO results reader names the file, record and problem", "[eval]") {
  const auto bad = [](const std::string& json) { return parse_results(json, "r.json"); };
  CHECK_THROWS_WITH(bad("[{\"image_id\":1"), Contains("results 'r.json': not valid JSON"));
  CHECK_THROWS_WITH(bad("{\"image_id\":1}"), Contains("results 'r.json': the top level must be a JSON array") &&
                                                 Contains("got an object"));
  CHECK_THROWS_WITH(bad("[3]"), Contains("results 'r.json' record #0: must be an object, got an integer"));
  const std::string ok = R"({"image_id":1,"category_id":2,"bbox":[1,2,3,4],"score":0.5})";
  CHECK(bad("[" + ok + "," + ok + "]").size() == 2);
  CHECK_THROWS_WITH(bad("[" + ok + R"(,{"category_id":2,"bbox":[1,2,3,4],"score":0.5}])"),
                    Contains("results 'r.json' record #1: missing field \"image_id\""));
  CHECK_THROWS_WITH(bad(R"([{"image_id":1,"bbox":[1,2,3,4],"score":0.5}])"),
                    Contains("record #0: missing field \"category_id\""));
  CHECK_THROWS_WITH(bad(R"([{"image_id":1,"category_id":2,"score":0.5}])"), Contains("record #0: missing field \"bbox\""));
  CHECK_THROWS_WITH(bad(R"([{"image_id":1,"category_id":2,"bbox":[1,2,3,4]}])"),
                    Contains("record #0: missing field \"score\""));
  CHECK_THROWS_WITH(bad(R"([{"image_id":"1","category_id":2,"bbox":[1,2,3,4],"score":0.5}])"),
                    Contains("record #0: field \"image_id\" must be an integer, got a string"));
  CHECK_THROWS_WITH(bad(R"([{"image_id":1.5,"category_id":2,"bbox":[1,2,3,4],"score":0.5}])"),
                    Contains("field \"image_id\" must be an integer, got the non-integral number 1.5"));
  CHECK(bad(R"([{"image_id":3.0,"category_id":2,"bbox":[1,2,3,4],"score":0.5}])").image_id[0] == 3);  // as Python
  CHECK_THROWS_WITH(bad(R"([{"image_id":18446744073709551615,"category_id":2,"bbox":[1,2,3,4],"score":0.5}])"),
                    Contains("field \"image_id\" must be an integer, got an integer beyond the signed 64-bit range"));
  CHECK_THROWS_WITH(bad(R"([{"image_id":1,"category_id":null,"bbox":[1,2,3,4],"score":0.5}])"),
                    Contains("field \"category_id\" must be an integer, got null"));
  CHECK_THROWS_WITH(bad(R"([{"image_id":7,"category_id":2,"bbox":[1,2,3],"score":0.5}])"),
                    Contains("record #0 (image_id 7): field \"bbox\" must have 4 numbers [x, y, w, h], got 3 values"));
  CHECK_THROWS_WITH(bad(R"([{"image_id":7,"category_id":2,"bbox":[1,2,3,4,5],"score":0.5}])"),
                    Contains("got 5 values"));
  CHECK_THROWS_WITH(bad(R"([{"image_id":7,"category_id":2,"bbox":{"x":1},"score":0.5}])"),
                    Contains("field \"bbox\" must be an array [x, y, w, h], got an object"));
  CHECK_THROWS_WITH(bad(R"([{"image_id":7,"category_id":2,"bbox":[1,"2",3,4],"score":0.5}])"),
                    Contains("(image_id 7): bbox[1] must be a number, got a string"));
  CHECK_THROWS_WITH(bad(R"([{"image_id":7,"category_id":2,"bbox":[1,2,3,4],"score":"high"}])"),
                    Contains("field \"score\" must be a number, got a string"));
  CHECK_THROWS_WITH(load_results("/nonexistent/r.json"), Contains("results '/nonexistent/r.json': cannot open or read the file"));
}

TEST_CASE("COCO eval reports: JSON with every number, extras text", "[eval]") {
  const CocoFile gt = gt_from_json(data_path("empty_categories_gt.json"));
  const auto r = evaluate_bbox(gt, load_results(data_path("empty_categories_results.json")));
  const auto j = nlohmann::json::parse(result_to_json(r));
  CHECK(j.at("stats").at("AP").get<double>() == r.stats[0]);
  CHECK(j.at("stats").at("ARl").get<double>() == r.stats[11]);
  CHECK(j.at("ap_per_iou").at("AP50").get<double>() == r.ap_per_iou[0]);
  CHECK(j.at("ap_per_iou").at("AP90").get<double>() == r.ap_per_iou[8]);
  CHECK(j.at("per_category").size() == 4);
  CHECK(j.at("per_category")[1].at("category_id").get<int64_t>() == 3);
  CHECK(j.at("per_category")[1].at("AP").get<double>() == -1.0);
  const std::string text = extras_text(r);
  CHECK_THAT(text, Contains(" Average Precision  (AP) @[ IoU=0.90      | area=   all | maxDets=100 ] = "));
  CHECK_THAT(text, Contains("       7 c                        0.000"));
}
