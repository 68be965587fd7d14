// COCO annotation JSON (include/drcnn/data/coco.h, docs/data.md):
// - a hand-written file whose every value is checked against the text (nothing dropped: extra
//   keys, info/licenses, segmentation polygons and RLE kept as raw JSON);
// - every error rule, each with the file, record and problem its message must name;
// - ints vs floats, unicode strings and file names, keys in any order;
// - truncation and byte-flip sweeps that must only ever produce drcnn::Error.
// Comparisons are exact: the parser stores the JSON's doubles; nothing is computed.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/source_dir.h"
#include "drcnn/core/error.h"
#include "drcnn/data/coco.h"

using Catch::Contains;
using drcnn::data::CocoFile;
using drcnn::data::CocoParseOptions;
using drcnn::data::load_coco;
using drcnn::data::parse_coco;
namespace fs = std::filesystem;

namespace {

// Two images, three categories (non-contiguous ids), four annotations with everything COCO has.
const char* const kSmall = R"({
  "info": {"year": 2017, "description": "tiny"},
  "licenses": [{"id": 1, "name": "CC"}],
  "images": [
    {"id": 42, "file_name": "a.jpg", "width": 640, "height": 480, "license": 1, "coco_url": "http://x/a.jpg"},
    {"height": 100.0, "width": 200, "id": 7, "file_name": "b\u00e9\u4e2d.png"}
  ],
  "categories": [
    {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
    {"id": 1, "name": "person", "supercategory": "person", "keypoints": ["nose"]},
    {"id": 18, "name": "dog"}
  ],
  "annotations": [
    {"id": 5, "image_id": 42, "category_id": 1, "bbox": [10, 20.5, 30, 40.25], "area": 1000.5,
     "iscrowd": 0, "segmentation": [[10, 20.5, 40, 20.5, 40, 60.75]]},
    {"segmentation": {"counts": [3, 2, 1], "size": [480, 640]}, "iscrowd": 1, "area": 12,
     "bbox": [0, 0, 5e1, 1.5E1], "category_id": 90, "image_id": 42, "id": 6},
    {"id": 9, "image_id": 7, "category_id": 18, "bbox": [1, 2, 3, 4], "area": 12, "ignore": 1,
     "num_keypoints": 0},
    {"id": 3, "image_id": 7, "category_id": 90, "bbox": [0.1, 0.2, 0.3, 0.4], "area": 0.12,
     "iscrowd": false, "segmentation": {"counts": "abc", "size": [100, 200]}}
  ]
})";

/// Builds a file from an images / categories / annotations body (the parts under test).
std::string coco(const std::string& images, const std::string& categories, const std::string& anns) {
  return R"({"images": [)" + images + R"(], "categories": [)" + categories + R"(], "annotations": [)" +
         anns + "]}";
}
const std::string kImg = R"({"id": 1, "file_name": "x.jpg", "width": 10, "height": 10})";
const std::string kCat = R"({"id": 3, "name": "cat"})";
std::string ann(const std::string& fields) { return "{" + fields + "}"; }
const std::string kAnnOk = R"("id": 11, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4)";

}  // namespace

TEST_CASE("parse_coco keeps every value of a hand-written file", "[datasets][coco]") {
  const CocoFile f = parse_coco(kSmall, "small.json");
  CHECK(f.source == "small.json");
  CHECK(f.info_json == R"({"year": 2017, "description": "tiny"})");
  CHECK(f.licenses_json == R"([{"id": 1, "name": "CC"}])");

  REQUIRE(f.images.size() == 2);
  CHECK(f.images[0].id == 42);
  CHECK(f.images[0].file_name == "a.jpg");
  CHECK(f.images[0].width == 640);
  CHECK(f.images[0].height == 480);
  CHECK(f.images[0].extra_json == R"("license": 1,"coco_url": "http://x/a.jpg")");
  CHECK(f.images[1].id == 7);
  CHECK(f.images[1].height == 100);  // written 100.0: integral floats are accepted
  CHECK(f.images[1].file_name == "b\xc3\xa9\xe4\xb8\xad.png");  // \u00e9 and \u4e2d as UTF-8
  CHECK(f.images[1].extra_json.empty());

  REQUIRE(f.categories.size() == 3);  // file order, not sorted
  CHECK(f.categories[0].id == 90);
  CHECK(f.categories[0].name == "toothbrush");
  CHECK(f.categories[0].supercategory == "indoor");
  CHECK(f.categories[1].extra_json == R"("keypoints": ["nose"])");
  CHECK(f.categories[2].id == 18);
  CHECK(f.categories[2].supercategory.empty());

  const auto& a = f.annotations;
  REQUIRE(a.size() == 4);
  CHECK(a.id == std::vector<int64_t>{5, 6, 9, 3});
  CHECK(a.image_id == std::vector<int64_t>{42, 42, 7, 7});
  CHECK(a.category_id == std::vector<int64_t>{1, 90, 18, 90});
  CHECK(a.bbox[0] == std::array<double, 4>{10, 20.5, 30, 40.25});
  CHECK(a.bbox[1] == std::array<double, 4>{0, 0, 50, 15});  // 5e1, 1.5E1
  CHECK(a.bbox[3] == std::array<double, 4>{0.1, 0.2, 0.3, 0.4});
  CHECK(a.area == std::vector<double>{1000.5, 12, 12, 0.12});
  CHECK(a.iscrowd == std::vector<uint8_t>{0, 1, 0, 0});  // absent -> 0, false -> 0
  CHECK(a.segmentation(0) == "[[10, 20.5, 40, 20.5, 40, 60.75]]");
  CHECK(a.segmentation(1) == R"({"counts": [3, 2, 1], "size": [480, 640]})");
  CHECK(a.segmentation(2).empty());
  CHECK(a.segmentation(3) == R"({"counts": "abc", "size": [100, 200]})");
  CHECK(a.extra(0).empty());
  CHECK(a.extra(2) == R"("ignore": 1,"num_keypoints": 0)");
  CHECK(a.extra(3).empty());
}

TEST_CASE("parse_coco accepts a file without annotations and empty lists", "[datasets][coco]") {
  const CocoFile f = parse_coco(R"({"images": [], "categories": []})", "test-dev.json");
  CHECK(f.images.empty());
  CHECK(f.categories.empty());
  CHECK(f.annotations.size() == 0);
  CHECK(f.annotations.segmentation(0).empty());
  const CocoFile g = parse_coco(coco(kImg, kCat, ""), "x");
  CHECK(g.images.size() == 1);
  CHECK(g.annotations.size() == 0);
}

TEST_CASE("parse_coco missing area: error by default, w times h on request", "[datasets][coco]") {
  const std::string j = coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 3.5])"));
  REQUIRE_THROWS_WITH(parse_coco(j, "f.json"),
                      Contains("f.json") && Contains("annotations[0] (id 11)") && Contains("missing field \"area\""));
  CocoParseOptions opt;
  opt.require_area = false;
  const CocoFile f = parse_coco(j, "f.json", opt);
  CHECK(f.annotations.area[0] == 7.0);
}

TEST_CASE("parse_coco errors name the file, the record and the problem", "[datasets][coco]") {
  struct Case {
    std::string json, record, problem;
  };
  const std::string a0 = "annotations[0] (id 11)";
  const std::vector<Case> cases = {
      // top level
      {"[1, 2]", "top level", "must be an object, found an array"},
      {R"({"categories": []})", "top level", "missing field \"images\""},
      {R"({"images": []})", "top level", "missing field \"categories\""},
      {R"({"images": {}, "categories": []})", "top level", "\"images\" must be an array, found an object"},
      {R"({"images": [], "images": [], "categories": []})", "top level", "duplicate key \"images\""},
      // images
      {coco("3", kCat, ""), "images[0]", "must be an object, found a number"},
      {coco(R"({"file_name": "x.jpg", "width": 10, "height": 10})", kCat, ""), "images[0]", "missing field \"id\""},
      {coco(R"({"id": 1, "width": 10, "height": 10})", kCat, ""), "images[0] (id 1)", "missing field \"file_name\""},
      {coco(R"({"id": 1, "file_name": "x", "height": 10})", kCat, ""), "images[0] (id 1)", "missing field \"width\""},
      {coco(R"({"id": 1, "file_name": "x", "width": 10})", kCat, ""), "images[0] (id 1)", "missing field \"height\""},
      {coco(R"({"id": "1", "file_name": "x", "width": 10, "height": 10})", kCat, ""), "images[0]",
       "\"id\" must be an integer, found a string"},
      {coco(R"({"id": 1.5, "file_name": "x", "width": 10, "height": 10})", kCat, ""), "images[0]",
       "\"id\" must be an integer, found 1.5"},
      {coco(R"({"id": 18446744073709551615, "file_name": "x", "width": 10, "height": 10})", kCat, ""),
       "images[0]", "does not fit in a signed 64-bit integer"},
      {coco(R"({"id": 1, "file_name": 5, "width": 10, "height": 10})", kCat, ""), "images[0] (id 1)",
       "\"file_name\" must be a string, found a number"},
      {coco(R"({"id": 1, "file_name": "x", "width": -10, "height": 10})", kCat, ""), "images[0] (id 1)",
       "negative image width -10"},
      {coco(R"({"id": 1, "file_name": "x", "width": 10, "height": -1})", kCat, ""), "images[0] (id 1)",
       "negative image height -1"},
      {coco(R"({"id": 1, "file_name": "x", "width": 3000000000, "height": 1})", kCat, ""), "images[0] (id 1)",
       "too large"},
      {coco(R"({"id": 1, "id": 2, "file_name": "x", "width": 10, "height": 10})", kCat, ""), "images[0] (id 2)",
       "duplicate key \"id\""},
      {coco(kImg + "," + R"({"id": 1, "file_name": "y", "width": 10, "height": 10})", kCat, ""), "images[1] (id 1)",
       "duplicate image id (also images[0])"},
      // categories
      {coco(kImg, R"({"name": "a"})", ""), "categories[0]", "missing field \"id\""},
      {coco(kImg, R"({"id": 4})", ""), "categories[0] (id 4)", "missing field \"name\""},
      {coco(kImg, R"({"id": 4, "name": "a", "supercategory": null})", ""), "categories[0] (id 4)",
       "\"supercategory\" must be a string, found null"},
      {coco(kImg, kCat + "," + R"({"id": 3, "name": "dog"})", ""), "categories[1] (id 3)",
       "duplicate category id (also categories[0])"},
      // annotations
      {coco(kImg, kCat, "[]"), "annotations[0]", "must be an object, found an array"},
      {coco(kImg, kCat, ann(R"("image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4)")), "annotations[0]",
       "missing field \"id\""},
      {coco(kImg, kCat, ann(R"("id": 11, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4)")), a0,
       "missing field \"image_id\""},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "bbox": [1, 1, 2, 2], "area": 4)")), a0,
       "missing field \"category_id\""},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 3, "area": 4)")), a0, "missing field \"bbox\""},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2], "area": 4)")), a0,
       "\"bbox\" has 3 numbers, expected 4"},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2, 5], "area": 4)")), a0,
       "\"bbox\" has more than 4 numbers"},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 3, "bbox": [1, "1", 2, 2], "area": 4)")), a0,
       "\"bbox\" must be a number, found a string"},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 3, "bbox": {"x": 1}, "area": 4)")), a0,
       "\"bbox\" must be an array of 4 numbers, found an object"},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], "area": "4")")), a0,
       "\"area\" must be a number, found a string"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "iscrowd": 2)")), a0, "\"iscrowd\" must be 0 or 1, found 2"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "iscrowd": "yes")")), a0, "\"iscrowd\" must be 0 or 1, found a string"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "segmentation": 5)")), a0,
       "\"segmentation\" must be a list of polygons or an RLE object, found a number"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "segmentation": [[1, 2, "a"]])")), a0,
       "\"segmentation\" must be a number, found a string"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "segmentation": [1, 2, 3])")), a0,
       "\"segmentation\" must be a list of polygons (arrays of numbers), found a number"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "segmentation": {"counts": "ab"})")), a0,
       "RLE object needs \"counts\" and \"size\""},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "segmentation": {"counts": [1, -2], "size": [1, 1]})")), a0,
       "negative run length"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "segmentation": {"counts": "a", "size": [1, 1, 1]})")), a0,
       "\"segmentation.size\" has 3 numbers, expected 2"},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4)")), a0,
       "unknown image_id 2"},
      {coco(kImg, kCat, ann(R"("id": 11, "image_id": 1, "category_id": 4, "bbox": [1, 1, 2, 2], "area": 4)")), a0,
       "unknown category_id 4"},
      {coco(kImg, kCat,
            ann(kAnnOk) + "," + ann(R"("id": 12, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4)") +
                "," + ann(kAnnOk)),
       "annotations[2] (id 11)", "duplicate annotation id (also annotations[0])"},
      {coco(kImg, kCat, ann(kAnnOk + R"(, "area": 5)")), a0, "duplicate key \"area\""},
  };
  for (const Case& c : cases) {
    INFO(c.json);
    REQUIRE_THROWS_AS(parse_coco(c.json, "ann/file.json"), drcnn::Error);
    REQUIRE_THROWS_WITH(parse_coco(c.json, "ann/file.json"),
                        Contains("parse_coco: ann/file.json") && Contains(c.record) && Contains(c.problem));
  }
}

TEST_CASE("parse_coco reports malformed JSON with simdjson's message and the place", "[datasets][coco]") {
  // A bad atom inside an annotation: line 3.
  const std::string bad = "{\"images\": [],\n \"categories\": [],\n \"annotations\": [{\"id\": tru}]}";
  REQUIRE_THROWS_WITH(parse_coco(bad, "bad.json"), Contains("bad.json") && Contains("malformed JSON") &&
                                                      Contains("annotations[0]") && Contains("line 3"));
  // Unterminated string: caught by simdjson's first stage, before any record.
  REQUIRE_THROWS_WITH(parse_coco(R"({"images": [{"file_name": "x)", "s.json"),
                      Contains("s.json") && Contains("malformed JSON"));
  REQUIRE_THROWS_WITH(parse_coco("", "empty.json"), Contains("empty.json") && Contains("malformed JSON"));
  REQUIRE_THROWS_WITH(parse_coco(R"({"images": [], "categories": []} x)", "t.json"),
                      Contains("t.json") && Contains("malformed JSON"));
  // Invalid UTF-8 in a file name.
  REQUIRE_THROWS_WITH(parse_coco(coco("{\"id\": 1, \"file_name\": \"\xff\", \"width\": 1, \"height\": 1}", kCat, ""),
                                 "u.json"),
                      Contains("u.json") && Contains("malformed JSON"));
  // Malformed values hidden in kept-raw parts are still caught.
  REQUIRE_THROWS_WITH(parse_coco(R"({"images": [], "categories": [], "info": {"a": [1, 2,]}})", "i.json"),
                      Contains("i.json") && Contains("malformed JSON"));
  REQUIRE_THROWS_WITH(parse_coco(coco(kImg, kCat, ann(kAnnOk + R"(, "extra": nul)")), "n.json"),
                      Contains("n.json") && Contains("malformed JSON") && Contains("annotations[0] (id 11)"));
}

TEST_CASE("parse_coco only ever throws drcnn::Error on truncated or corrupted files", "[datasets][coco]") {
  const std::string full = kSmall;
  for (std::size_t n = 0; n < full.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_AS(parse_coco(full.substr(0, n), "cut.json"), drcnn::Error);
  }
  // Every byte replaced by a few structural characters: either parses or gives drcnn::Error.
  std::size_t parsed = 0, errors = 0;
  for (std::size_t i = 0; i < full.size(); ++i) {
    for (char c : {'"', '{', ']', '0', ',', '\x80'}) {
      std::string s = full;
      s[i] = c;
      try {
        parse_coco(s, "flip.json");
        ++parsed;
      } catch (const drcnn::Error&) {
        ++errors;
      }
    }
  }
  CHECK(parsed + errors == full.size() * 6);
  CHECK(errors > 0);
}

TEST_CASE("load_coco reads a file with a unicode path and names missing files", "[datasets][coco]") {
  const fs::path dir = fs::temp_directory_path() / "drcnn_test_coco_\xc3\xa9\xe4\xb8\xad";
  fs::create_directories(dir);
  const fs::path file = dir / "annotations \xc3\xa9.json";
  {
    std::ofstream out(file, std::ios::binary);
    out << kSmall;
  }
  const CocoFile f = load_coco(file);
  CHECK(f.source == file.string());
  CHECK(f.annotations.size() == 4);
  CHECK(f.images[1].file_name == "b\xc3\xa9\xe4\xb8\xad.png");
  fs::remove_all(dir);
  REQUIRE_THROWS_WITH(load_coco(dir / "missing.json"), Contains("load_coco: cannot read") && Contains("missing.json"));
}

TEST_CASE("load_coco reads the committed fixture", "[datasets][coco]") {
  const CocoFile f = load_coco(drcnn::test::data_dir() / "datasets" / "coco_small.json");
  CHECK(f.images.size() == 3);
  CHECK(f.categories.size() == 3);
  CHECK(f.annotations.size() == 9);
}

// ------------------------------------------------------------------------------ CocoDataset
// tests/data/datasets/coco_small.json, checked by hand against MMDetection v2's rules:
// categories 7 "b", 3 "a", 12 "c" -> labels a=0 (id 3), b=1 (id 7), c=2 (id 12).
// image 10 (100x50): ann 1 kept (b); 2 outside (x 120 > width 100); 3 small (w 0.5);
//   4 area 0; 5 crowd -> ignore (a); 7 kept though partly outside (c, not clipped); 8 kept (b, w = 1).
// image 20 (64x64): ann 6 crowd -> ignore (a); 9 outside (w = -3).
// image 30 (32x31): no annotation.
using drcnn::data::CocoDataset;
using drcnn::data::CocoDatasetOptions;
using drcnn::data::EmptyImageFilter;

namespace {
CocoFile small_fixture() { return load_coco(drcnn::test::data_dir() / "datasets" / "coco_small.json"); }
using Box = std::array<float, 4>;
}  // namespace

TEST_CASE("CocoDataset applies MMDetection's box rules and labels", "[datasets][coco]") {
  CocoDatasetOptions opt;
  opt.image_root = "/data/coco/train2017";
  const CocoDataset ds(small_fixture(), opt);  // training defaults: kNoAnnotations, min_size 32

  CHECK(ds.class_names() == std::vector<std::string>{"a", "b", "c"});
  CHECK(ds.category_ids() == std::vector<int64_t>{3, 7, 12});
  REQUIRE(ds.size() == 2);  // image 30 has no annotation

  const auto r0 = ds.record(0);
  CHECK(r0.image_id == 10);
  CHECK(r0.image_path == "/data/coco/train2017/img10.jpg");
  CHECK(r0.width == 100);
  CHECK(r0.height == 50);
  // File order within the image: anns 1, 5, 7, 8 survive.
  CHECK(r0.boxes == std::vector<Box>{{10, 10, 30, 30}, {0, 0, 50, 25}, {90, 40, 110, 60}, {2.5f, 3.5f, 3.5f, 5}});
  CHECK(r0.labels == std::vector<int64_t>{1, 0, 2, 1});
  CHECK(r0.ignore == std::vector<uint8_t>{0, 1, 0, 0});

  const auto r1 = ds.record(1);
  CHECK(r1.image_id == 20);
  CHECK(r1.image_path == "/data/coco/train2017/sub/img20.jpg");
  CHECK(r1.boxes == std::vector<Box>{{1, 1, 11, 11}});
  CHECK(r1.labels == std::vector<int64_t>{0});
  CHECK(r1.ignore == std::vector<uint8_t>{1});
  CHECK(ds.image_size(1) == std::array<int32_t, 2>{64, 64});
  CHECK(ds.image_id(1) == 20);

  const auto& s = ds.stats();
  CHECK(s.images_in_file == 3);
  CHECK(s.images_kept == 2);
  CHECK(s.images_empty == 1);
  CHECK(s.images_too_small == 0);
  CHECK(s.annotations == 9);
  CHECK(s.targets == 3);
  CHECK(s.ignored == 2);
  CHECK(s.dropped_outside == 2);
  CHECK(s.dropped_area == 1);
  CHECK(s.dropped_small == 1);
  CHECK(s.targets + s.ignored + s.dropped_outside + s.dropped_area + s.dropped_small == s.annotations);

  REQUIRE_THROWS_WITH(ds.record(2), Contains("CocoDataset::record") && Contains("out of range"));
}

TEST_CASE("CocoDataset image filters", "[datasets][coco]") {
  const CocoFile f = small_fixture();
  {
    CocoDatasetOptions opt;
    opt.filter_empty = EmptyImageFilter::kNoTargets;  // image 20 has only a crowd box
    const CocoDataset ds(f, opt);
    REQUIRE(ds.size() == 1);
    CHECK(ds.image_id(0) == 10);
    CHECK(ds.stats().images_empty == 1);      // image 20 (no target left)
    CHECK(ds.stats().images_too_small == 1);  // image 30: min_size is checked before the boxes
    CHECK(ds.stats().annotations == 7);
    CHECK(ds.stats().ignored == 1);
    CHECK(ds.stats().dropped_outside == 1);
  }
  {
    CocoDatasetOptions opt;
    opt.filter_empty = EmptyImageFilter::kKeepAll;  // image 30 now fails min_size (31 < 32)
    const CocoDataset ds(f, opt);
    CHECK(ds.size() == 2);
    CHECK(ds.stats().images_too_small == 1);
    CHECK(ds.stats().images_empty == 0);
    opt.min_size = 31;
    CHECK(CocoDataset(f, opt).size() == 3);
  }
  {
    const CocoDataset ds(f, CocoDatasetOptions::evaluation("root"));
    REQUIRE(ds.size() == 3);
    const auto r = ds.record(2);
    CHECK(r.image_id == 30);
    CHECK(r.boxes.empty());
    CHECK(r.labels.empty());
    CHECK(r.ignore.empty());
    CHECK(ds.image_size(2) == std::array<int32_t, 2>{32, 31});
  }
}

TEST_CASE("CocoDataset maps non-contiguous category ids to labels and back", "[datasets][coco]") {
  // COCO's 80 ids (1..90 with gaps), listed in a scrambled order.
  std::vector<int64_t> ids;
  for (int64_t id = 1; id <= 90; ++id)
    if (id != 12 && id != 26 && id != 29 && id != 30 && id != 45 && id != 66 && id != 68 && id != 69 && id != 71 &&
        id != 83)
      ids.push_back(id);
  REQUIRE(ids.size() == 80);
  std::string cats;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const int64_t id = ids[(k * 37) % 80];  // 37 is coprime with 80: a permutation
    if (!cats.empty()) cats += ",";
    cats += fmt::format(R"({{"id": {}, "name": "c{}"}})", id, id);
  }
  const CocoDataset ds(parse_coco(coco(kImg, cats, ""), "cats.json"), CocoDatasetOptions::evaluation(""));
  REQUIRE(ds.category_ids() == ids);  // ascending
  for (int64_t l = 0; l < 80; ++l) {
    CHECK(ds.label_to_category_id(l) == ids[std::size_t(l)]);
    CHECK(ds.category_id_to_label(ds.label_to_category_id(l)) == l);
    CHECK(ds.class_names()[std::size_t(l)] == fmt::format("c{}", ids[std::size_t(l)]));
  }
  REQUIRE_THROWS_WITH(ds.category_id_to_label(12), Contains("category id 12 is not in the file"));
  REQUIRE_THROWS_WITH(ds.label_to_category_id(80), Contains("label 80 out of range"));
  REQUIRE_THROWS_WITH(ds.label_to_category_id(-1), Contains("label -1 out of range"));
}

TEST_CASE("CocoDataset checks image files and hand-built files", "[datasets][coco]") {
  const fs::path dir = fs::temp_directory_path() / "drcnn_test_coco_files";
  fs::create_directories(dir);
  { std::ofstream(dir / "img10.jpg") << "x"; }
  CocoDatasetOptions opt;
  opt.image_root = dir;
  opt.check_files = true;
  const CocoFile f = small_fixture();
  REQUIRE_THROWS_WITH(CocoDataset(f, opt), Contains("coco_small.json") && Contains("images[1] (id 20)") &&
                                               Contains("sub/img20.jpg") && Contains("does not exist"));
  fs::create_directories(dir / "sub");
  { std::ofstream(dir / "sub" / "img20.jpg") << "x"; }
  CHECK(CocoDataset(f, opt).size() == 2);
  fs::remove_all(dir);

  CocoFile bad = f;  // a CocoFile built by hand, not by parse_coco
  bad.annotations.image_id[3] = 99;
  REQUIRE_THROWS_WITH(CocoDataset(bad, opt), Contains("annotations[3] (id 4)") && Contains("unknown image_id 99"));
  bad = f;
  bad.annotations.category_id[0] = 5;
  REQUIRE_THROWS_WITH(CocoDataset(bad, opt), Contains("annotations[0] (id 1)") && Contains("unknown category_id 5"));
}
