// eval::coco_ground_truth (include/drcnn/eval/coco_eval.h): a DetectionDataset's records as the
// COCO ground truth the evaluator reads (how drcnn_train evaluates a Pascal VOC split).
// Checked against the raccoon XML written out by hand, and through the evaluator: detections
// equal to the ground truth score AP 1; an ignored (difficult) box is neither a miss nor makes
// a detection on it a false positive.
#include <catch2/catch.hpp>

#include <cmath>

#include "../datasets/memory_dataset.h"
#include "common/source_dir.h"
#include "drcnn/data/voc.h"
#include "drcnn/eval/coco_eval.h"

using namespace drcnn;

TEST_CASE("eval/coco_ground_truth: the raccoon VOC split as COCO, field by field, and AP 1 for itself",
          "[eval][coco_ground_truth]") {
  data::VocDatasetOptions o;
  o.annotation_dir = drcnn::test::data_dir() / "datasets" / "raccoon" / "annotations";
  o.image_dir = "images";  // never opened here
  const data::VocDataset voc(o);
  REQUIRE(voc.size() == 100);
  const data::CocoFile gt = eval::coco_ground_truth(voc, "raccoon");
  CHECK(gt.source == "raccoon");
  REQUIRE(gt.images.size() == 100);
  REQUIRE(gt.categories.size() == 1);
  CHECK(gt.categories[0].id == 1);
  CHECK(gt.categories[0].name == "raccoon");
  // raccoon-1.xml (ids sort by name, so it is index 0): 650 x 417, one raccoon at
  // xmin 81, ymin 88, xmax 522, ymax 408 (MMDetection v2 boxes: the integers as written).
  CHECK(voc.image_name(0) == "raccoon-1");
  CHECK(gt.images[0].id == 0);
  CHECK(gt.images[0].file_name == "raccoon-1.jpg");
  CHECK(gt.images[0].width == 650);
  CHECK(gt.images[0].height == 417);
  REQUIRE(gt.annotations.size() >= 100);
  CHECK(gt.annotations.image_id[0] == 0);
  CHECK(gt.annotations.category_id[0] == 1);
  CHECK(gt.annotations.bbox[0] == std::array<double, 4>{81, 88, 441, 320});
  CHECK(gt.annotations.area[0] == 441.0 * 320.0);
  CHECK(gt.annotations.iscrowd[0] == 0);
  for (size_t k = 0; k < gt.annotations.size(); ++k) CHECK(gt.annotations.id[k] == int64_t(k) + 1);

  // Every ground-truth box as a detection: COCO AP 1 at every IoU.
  eval::CocoResults perfect;
  for (size_t k = 0; k < gt.annotations.size(); ++k)
    perfect.push_back(gt.annotations.image_id[k], gt.annotations.category_id[k], gt.annotations.bbox[k], 0.9);
  const eval::CocoEvalResult r = eval::evaluate_bbox(gt, perfect);
  CHECK(r.stats[0] == 1.0);
  CHECK(r.stats[1] == 1.0);
  CHECK(r.stats[8] == 1.0);  // AR@100
}

TEST_CASE("eval/coco_ground_truth: labels become ids 1..C, ignored boxes become iscrowd and are ignored",
          "[eval][coco_ground_truth]") {
  test::MemoryDataset ds;
  ds.names = {"cat", "dog"};
  data::DetectionRecord r;
  r.image_id = 7;
  r.image_path = "/data/img/seven.png";
  r.width = 100;
  r.height = 80;
  r.boxes = {{10, 10, 50, 40}, {60, 20, 90, 70}};
  r.labels = {1, 0};
  r.ignore = {0, 1};  // the cat is difficult
  ds.records.push_back(r);
  const data::CocoFile gt = eval::coco_ground_truth(ds, "memory");
  REQUIRE(gt.categories.size() == 2);
  CHECK(gt.categories[0].id == 1);
  CHECK(gt.categories[0].name == "cat");
  CHECK(gt.categories[1].id == 2);
  CHECK(gt.categories[1].name == "dog");
  REQUIRE(gt.images.size() == 1);
  CHECK(gt.images[0].id == 7);
  CHECK(gt.images[0].file_name == "seven.png");
  REQUIRE(gt.annotations.size() == 2);
  CHECK(gt.annotations.category_id == std::vector<int64_t>{2, 1});
  CHECK(gt.annotations.bbox[1] == std::array<double, 4>{60, 20, 30, 50});
  CHECK(gt.annotations.iscrowd == std::vector<uint8_t>{0, 1});

  // With one ground-truth box, pycocotools' precision tp / (tp + fp + np.spacing(1)) is
  // 1 / (1 + 2^-52) = 1 - 2^-52, not 1 (the evaluator is bit-identical to it), and the mean over
  // 101 recall points and 10 IoUs rounds in the last bit: so "AP 1" here is 1 within 1e-15.
  const auto near = [](double v) { return Approx(v).margin(1e-15); };
  // The dog found, and a higher-scored detection on the difficult cat: the cat is ignored, so the
  // dog's AP is 1 and the cat category has no ground truth at all (-1, left out of the mean).
  eval::CocoResults dt;
  dt.push_back(7, 2, {10, 10, 40, 30}, 0.8);
  dt.push_back(7, 1, {60, 20, 30, 50}, 0.95);
  const eval::CocoEvalResult with_ignore = eval::evaluate_bbox(gt, dt);
  CHECK(with_ignore.stats[0] == near(1.0));
  // The same data with the cat not ignored: the cat is a real target, found too, so still 1;
  // but drop the cat detection and AP falls to the mean of 1 (dog) and 0 (cat): 0.5.
  data::CocoFile plain = gt;
  plain.annotations.iscrowd = {0, 0};
  eval::CocoResults dog_only;
  dog_only.push_back(7, 2, {10, 10, 40, 30}, 0.8);
  CHECK(eval::evaluate_bbox(plain, dog_only).stats[0] == near(0.5));
  CHECK(eval::evaluate_bbox(gt, dog_only).stats[0] == near(1.0));
}
