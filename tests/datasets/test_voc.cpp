// Pascal VOC XML (include/drcnn/data/voc.h, docs/data.md):
// - parse_voc_xml on hand-written documents: every value, every error (file, element, problem);
// - the three box conventions on one box;
// - VocDataset on generated folders: class collection, a given class list with unknown names,
//   difficult -> ignore, degenerate boxes, empty-image filters, ImageSets splits, file checks;
// - the real raccoon set (tests/data/datasets/raccoon, 100 files): every box equal to its XML as
//   read by a separate, minimal pugixml walk written here, plus hand-checked values.
// Comparisons are exact: VOC boxes are integers here, converted by +/-1 and truncation only.
#include <catch2/catch.hpp>

#include <pugixml.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/source_dir.h"
#include "drcnn/core/error.h"
#include "drcnn/data/voc.h"

using Catch::Contains;
using drcnn::data::EmptyImageFilter;
using drcnn::data::load_voc_xml;
using drcnn::data::parse_voc_xml;
using drcnn::data::VocBoxConvention;
using drcnn::data::VocDataset;
using drcnn::data::VocDatasetOptions;
namespace fs = std::filesystem;

namespace {
using Box = std::array<float, 4>;

std::string voc(const std::string& size, const std::string& objects, const std::string& filename = "x.jpg") {
  return "<annotation><folder>f</folder><filename>" + filename + "</filename>" + size + objects + "</annotation>";
}
const std::string kSize = "<size><width>200</width><height>100</height><depth>3</depth></size>";
std::string object(const std::string& name, const std::string& box, const std::string& extra = "") {
  return "<object><name>" + name + "</name>" + extra + "<bndbox>" + box + "</bndbox></object>";
}
std::string bndbox(const std::string& x1, const std::string& y1, const std::string& x2, const std::string& y2) {
  return "<xmin>" + x1 + "</xmin><ymin>" + y1 + "</ymin><xmax>" + x2 + "</xmax><ymax>" + y2 + "</ymax>";
}

/// A scratch folder with Annotations/ and JPEGImages/, removed at the end of the test.
struct TempVoc {
  fs::path root;
  explicit TempVoc(const std::string& name) : root(fs::temp_directory_path() / name) {
    fs::remove_all(root);
    fs::create_directories(root / "Annotations");
    fs::create_directories(root / "JPEGImages");
  }
  ~TempVoc() { fs::remove_all(root); }
  void xml(const std::string& id, const std::string& text) const {
    std::ofstream(root / "Annotations" / (id + ".xml"), std::ios::binary) << text;
  }
};
}  // namespace

TEST_CASE("parse_voc_xml reads every field", "[datasets][voc]") {
  const std::string doc =
      "<?xml version=\"1.0\"?>\n<annotation verified=\"yes\">\n <filename> a b\xc3\xa9.jpg </filename>\n" + kSize +
      object("dog", bndbox("10", " 20 ", "30.5", "40"), "<difficult>1</difficult><truncated>1</truncated>") +
      object("cat", bndbox("1", "2", "3", "4")) + "</annotation>";
  const auto a = parse_voc_xml(doc, "a.xml");
  CHECK(a.filename == "a b\xc3\xa9.jpg");  // trimmed, UTF-8 kept
  CHECK(a.width == 200);
  CHECK(a.height == 100);
  REQUIRE(a.objects.size() == 2);
  CHECK(a.objects[0].name == "dog");
  CHECK(a.objects[0].bndbox == std::array<double, 4>{10, 20, 30.5, 40});
  CHECK(a.objects[0].difficult);
  CHECK(a.objects[0].truncated);
  CHECK(a.objects[1].name == "cat");
  CHECK_FALSE(a.objects[1].difficult);  // absent -> 0
  CHECK_FALSE(a.objects[1].truncated);
  // No objects at all is valid.
  CHECK(parse_voc_xml(voc(kSize, ""), "e.xml").objects.empty());
}

TEST_CASE("parse_voc_xml errors name the file, the element and the problem", "[datasets][voc]") {
  struct Case {
    std::string xml, element, problem;
  };
  const std::string ok = bndbox("1", "2", "3", "4");
  const std::vector<Case> cases = {
      {"<annotation><size>", "malformed XML", "line 1"},
      {"<notvoc/>", "document", "no <annotation> root element"},
      {voc("", ""), "<size>", "missing"},
      {voc("<size><height>5</height></size>", ""), "<size>/<width>", "missing"},
      {voc("<size><width>5</width></size>", ""), "<size>/<height>", "missing"},
      {voc("<size><width>abc</width><height>5</height></size>", ""), "<size>/<width>", "'abc' is not a number"},
      {voc("<size><width>0</width><height>5</height></size>", ""), "<size>/<width>", "not a positive image size"},
      {voc("<size><width>5</width><height>-5</height></size>", ""), "<size>/<height>", "not a positive image size"},
      {voc("<size><width>5.5</width><height>5</height></size>", ""), "<size>/<width>", "5.5 is not an integer"},
      {voc("<size><width></width><height>5</height></size>", ""), "<size>/<width>", "empty, expected a number"},
      {voc(kSize, object("a", ok) + "<object><bndbox>" + ok + "</bndbox></object>"), "<object>[1]", "missing <name>"},
      {voc(kSize, object("  ", ok)), "<object>[0]/<name>", "empty class name"},
      {voc(kSize, "<object><name>a</name></object>"), "<object>[0]", "missing <bndbox>"},
      {voc(kSize, object("a", "<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>")), "<object>[0]/<bndbox>/<ymax>", "missing"},
      {voc(kSize, object("a", bndbox("1", "2", "3x", "4"))), "<object>[0]/<bndbox>/<xmax>", "'3x' is not a number"},
      {voc(kSize, object("a", bndbox("1", "2", "1e999", "4"))), "<object>[0]/<bndbox>/<xmax>", "is not a number"},
      {voc(kSize, object("a", bndbox("5", "2", "3", "4"))), "<object>[0]/<bndbox>", "xmax 3 < xmin 5"},
      {voc(kSize, object("a", bndbox("1", "5", "3", "4"))), "<object>[0]/<bndbox>", "ymax 4 < ymin 5"},
      {voc(kSize, object("a", ok, "<difficult>2</difficult>")), "<object>[0]/<difficult>", "2 must be 0 or 1"},
      {voc(kSize, object("a", ok, "<difficult>yes</difficult>")), "<object>[0]/<difficult>", "'yes' is not a number"},
  };
  for (const Case& c : cases) {
    INFO(c.xml);
    REQUIRE_THROWS_AS(parse_voc_xml(c.xml, "Annotations/000005.xml"), drcnn::Error);
    REQUIRE_THROWS_WITH(parse_voc_xml(c.xml, "Annotations/000005.xml"),
                        Contains("parse_voc_xml: Annotations/000005.xml") && Contains(c.element) &&
                            Contains(c.problem));
  }
}

TEST_CASE("parse_voc_xml only ever throws drcnn::Error on truncated files", "[datasets][voc]") {
  const std::string doc = voc(kSize, object("dog", bndbox("10", "20", "30", "40"), "<difficult>0</difficult>"));
  for (std::size_t n = 0; n < doc.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_AS(parse_voc_xml(doc.substr(0, n), "cut.xml"), drcnn::Error);
  }
  REQUIRE_THROWS_WITH(load_voc_xml("/nonexistent/x.xml"), Contains("cannot read") && Contains("/nonexistent/x.xml"));
}

TEST_CASE("VocDataset box conventions", "[datasets][voc]") {
  TempVoc t("drcnn_test_voc_conv");
  t.xml("a", voc(kSize, object("dog", bndbox("10.7", "20", "30", "40.2"))));
  VocDatasetOptions opt = VocDatasetOptions::from_root(t.root);
  CHECK(VocDataset(opt).record(0).boxes == std::vector<Box>{{10, 20, 30, 40}});  // mmdet v2: int()
  opt.boxes = VocBoxConvention::kMmdetV3;
  CHECK(VocDataset(opt).record(0).boxes == std::vector<Box>{{9, 19, 29, 39}});  // int() - 1, all four
  opt.boxes = VocBoxConvention::kDetectron2;
  CHECK(VocDataset(opt).record(0).boxes == std::vector<Box>{{9.7f, 19, 30, 40.2f}});  // -1 on the mins, floats
}

TEST_CASE("VocDataset classes, difficult, degenerate boxes and filters", "[datasets][voc]") {
  TempVoc t("drcnn_test_voc_ds");
  // b: dog (difficult), cat; a: zebra, a degenerate cat (xmin == xmax); c: no object.
  t.xml("b", voc(kSize,
                 object("dog", bndbox("1", "2", "11", "12"), "<difficult>1</difficult>") +
                     object("cat", bndbox("5", "6", "25", "36")),
                 "bee.png"));
  t.xml("a", voc("<size><width>20</width><height>10</height></size>",
                 object("zebra", bndbox("3", "3", "8", "9")) + object("cat", bndbox("4", "1", "4", "5"))));
  t.xml("c", voc(kSize, ""));
  { std::ofstream(t.root / "Annotations" / "notes.txt") << "not xml"; }

  VocDatasetOptions opt = VocDatasetOptions::from_root(t.root);
  {
    const VocDataset ds(opt);  // all XML files sorted: a, b, c; c has no object -> filtered
    CHECK(ds.class_names() == std::vector<std::string>{"cat", "dog", "zebra"});
    REQUIRE(ds.size() == 2);
    CHECK(ds.image_name(0) == "a");
    const auto r0 = ds.record(0);
    CHECK(r0.image_id == 0);
    CHECK(r0.image_path == (t.root / "JPEGImages" / "a.jpg").string());
    CHECK(r0.width == 20);
    CHECK(r0.height == 10);
    CHECK(r0.boxes == std::vector<Box>{{3, 3, 8, 9}});
    CHECK(r0.labels == std::vector<int64_t>{2});
    CHECK(r0.ignore == std::vector<uint8_t>{0});
    const auto r1 = ds.record(1);
    CHECK(r1.boxes == std::vector<Box>{{1, 2, 11, 12}, {5, 6, 25, 36}});
    CHECK(r1.labels == std::vector<int64_t>{1, 0});
    CHECK(r1.ignore == std::vector<uint8_t>{1, 0});
    CHECK(ds.image_size(1) == std::array<int32_t, 2>{200, 100});
    const auto& s = ds.stats();
    CHECK(s.images_in_list == 3);
    CHECK(s.images_kept == 2);
    CHECK(s.images_empty == 1);
    CHECK(s.objects == 4);
    CHECK(s.targets == 2);
    CHECK(s.ignored == 1);
    CHECK(s.dropped_degenerate == 1);
    CHECK(s.unknown_class == 0);
    REQUIRE_THROWS_WITH(ds.record(2), Contains("VocDataset::record") && Contains("out of range"));
  }
  {
    VocDatasetOptions o = opt;
    o.class_names = {"dog", "cat"};  // zebra unknown: skipped and counted; a keeps no known object
    o.filter_empty = EmptyImageFilter::kKeepAll;
    const VocDataset ds(o);
    REQUIRE(ds.size() == 3);
    CHECK(ds.class_names() == std::vector<std::string>{"dog", "cat"});
    CHECK(ds.record(0).boxes.empty());  // the degenerate cat is dropped too
    CHECK(ds.record(1).labels == std::vector<int64_t>{0, 1});
    CHECK(ds.stats().unknown_class == 1);
    CHECK(ds.stats().dropped_degenerate == 1);
    o.filter_empty = EmptyImageFilter::kNoAnnotations;  // a: only the (known) degenerate cat
    CHECK(VocDataset(o).size() == 2);
    o.filter_empty = EmptyImageFilter::kNoTargets;  // a: nothing left; b: one target
    CHECK(VocDataset(o).size() == 1);
    o.class_names = {"dog", "dog"};
    REQUIRE_THROWS_WITH(VocDataset(o), Contains("class \"dog\" appears twice"));
  }
  {
    VocDatasetOptions o = opt;
    o.min_size = 11;  // a is 20 x 10
    const VocDataset ds(o);
    CHECK(ds.size() == 1);
    CHECK(ds.stats().images_too_small == 1);
  }
  {
    // ImageSets/Main/<split>.txt: order and subset as listed.
    fs::create_directories(t.root / "ImageSets" / "Main");
    std::ofstream(t.root / "ImageSets" / "Main" / "val.txt") << "c\n b \n\n";
    VocDatasetOptions o = VocDatasetOptions::from_root(t.root, "val");
    CHECK(o.image_ids == std::vector<std::string>{"c", "b"});
    o.filter_empty = EmptyImageFilter::kKeepAll;
    o.use_xml_filename = true;
    const VocDataset ds(o);
    REQUIRE(ds.size() == 2);
    CHECK(ds.image_name(0) == "c");
    CHECK(ds.record(1).image_path == (t.root / "JPEGImages" / "bee.png").string());
    REQUIRE_THROWS_WITH(VocDatasetOptions::from_root(t.root, "test"), Contains("test.txt"));
    o.image_ids = {"b", "missing"};
    REQUIRE_THROWS_WITH(VocDataset(o), Contains("missing.xml") && Contains("cannot read"));
  }
  {
    VocDatasetOptions o = opt;
    o.check_files = true;
    REQUIRE_THROWS_WITH(VocDataset(o), Contains("a.xml") && Contains("a.jpg") && Contains("does not exist"));
    std::ofstream(t.root / "JPEGImages" / "a.jpg") << "x";
    std::ofstream(t.root / "JPEGImages" / "b.jpg") << "x";
    CHECK(VocDataset(o).size() == 2);
  }
  {
    t.xml("d", voc(kSize, object("cat", bndbox("1", "2", "3", "x"))));
    REQUIRE_THROWS_WITH(VocDataset(opt), Contains("d.xml") && Contains("<object>[0]/<bndbox>/<ymax>") &&
                                             Contains("'x' is not a number"));
  }
}

TEST_CASE("VocDataset on the raccoon set: every box equal to its XML", "[datasets][voc]") {
  const fs::path root = drcnn::test::data_dir() / "datasets" / "raccoon";
  VocDatasetOptions opt;
  opt.annotation_dir = root / "annotations";
  opt.image_dir = "/data/raccoon/images";  // never opened here: check_files is off (tested above)
  opt.filter_empty = EmptyImageFilter::kKeepAll;
  const VocDataset ds(opt);
  REQUIRE(ds.size() == 100);
  CHECK(ds.class_names() == std::vector<std::string>{"raccoon"});

  // Hand-checked against the files: raccoon-1 (one box), raccoon-12 (two boxes).
  CHECK(ds.image_name(0) == "raccoon-1");  // sorted by name: raccoon-1, raccoon-10, raccoon-100, ...
  CHECK(ds.image_name(2) == "raccoon-100");
  const auto r1 = ds.record(0);
  CHECK(r1.image_path == "/data/raccoon/images/raccoon-1.jpg");
  CHECK(r1.width == 650);
  CHECK(r1.height == 417);
  CHECK(r1.boxes == std::vector<Box>{{81, 88, 522, 408}});
  std::size_t i12 = 0;
  while (ds.image_name(i12) != "raccoon-12") ++i12;
  const auto r12 = ds.record(i12);
  CHECK(r12.width == 259);
  CHECK(r12.height == 194);
  CHECK(r12.boxes == std::vector<Box>{{28, 21, 126, 181}, {85, 33, 235, 193}});

  // Every file, re-read here with a minimal pugixml walk (not the library's parser).
  std::size_t total = 0;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const fs::path xml = root / "annotations" / (ds.image_name(i) + ".xml");
    INFO(xml.string());
    pugi::xml_document doc;
    REQUIRE(doc.load_file(xml.c_str()));
    const pugi::xml_node ann = doc.child("annotation");
    const auto r = ds.record(i);
    CHECK(r.width == std::atoi(ann.child("size").child_value("width")));
    CHECK(r.height == std::atoi(ann.child("size").child_value("height")));
    std::vector<Box> boxes;
    for (const pugi::xml_node o : ann.children("object")) {
      const pugi::xml_node b = o.child("bndbox");
      boxes.push_back({float(std::atoi(b.child_value("xmin"))), float(std::atoi(b.child_value("ymin"))),
                       float(std::atoi(b.child_value("xmax"))), float(std::atoi(b.child_value("ymax")))});
      CHECK(std::string(o.child_value("name")) == "raccoon");
    }
    CHECK(r.boxes == boxes);
    CHECK(r.labels == std::vector<int64_t>(boxes.size(), 0));
    CHECK(r.ignore == std::vector<uint8_t>(boxes.size(), 0));  // every <difficult> is 0
    total += boxes.size();
  }
  CHECK(total == 107);
  CHECK(ds.stats().objects == 107);
  CHECK(ds.stats().targets == 107);
  CHECK(ds.stats().dropped_degenerate == 0);
}
