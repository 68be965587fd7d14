// COCO annotation files (simdjson On-Demand, one forward pass): the file exactly as written
// (CocoFile, what the evaluator needs) and the training view of it (CocoDataset: contiguous
// labels, xyxy boxes, invalid boxes dropped and counted, crowd regions kept as ignore).
// Annotations are flat parallel arrays, no per-annotation heap objects. Rules and the choices
// made where the format is loose: docs/data.md.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "drcnn/data/dataset.h"

namespace drcnn::data {

struct CocoImage {
  int64_t id = 0;
  std::string file_name;
  int32_t width = 0;   ///< >= 0 (a negative size is an error)
  int32_t height = 0;
  /// Every other key of the image object as written, as the members of a JSON object without
  /// the braces (`"license":3,"coco_url":"..."`); empty when there are none.
  std::string extra_json;
};

struct CocoCategory {
  int64_t id = 0;
  std::string name;
  std::string supercategory;  ///< "" when the file has none
  std::string extra_json;     ///< other keys (e.g. keypoints, skeleton), as in CocoImage
};

/// Every annotation of a file in file order, nothing dropped, as parallel arrays (index i is one
/// annotation). Numbers keep the JSON's double precision (pycocotools computes in double).
/// Variable-length parts (segmentation, unknown keys) are raw JSON text in one buffer each,
/// addressed by offsets (CSR: annotation i owns [offsets[i], offsets[i+1])).
struct CocoAnnotations {
  std::vector<int64_t> id;
  std::vector<int64_t> image_id;
  std::vector<int64_t> category_id;
  std::vector<std::array<double, 4>> bbox;  ///< (x, y, w, h) as written
  std::vector<double> area;                 ///< the "area" field as written (see CocoParseOptions)
  std::vector<uint8_t> iscrowd;             ///< 0 or 1; 0 when the key is absent
  /// Raw JSON of "segmentation" (polygon list or RLE object), validated while parsing; an empty
  /// span when the annotation has none.
  std::string segmentation_json;
  std::vector<uint64_t> segmentation_offsets;  ///< size() + 1 entries (or empty when size() == 0)
  /// Other keys of the annotation object (e.g. "keypoints", "ignore"), as in CocoImage::extra_json.
  std::string extra_json;
  std::vector<uint64_t> extra_offsets;  ///< size() + 1 entries (or empty when size() == 0)

  std::size_t size() const { return id.size(); }
  std::string_view segmentation(std::size_t i) const {
    return span(segmentation_json, segmentation_offsets, i);
  }
  std::string_view extra(std::size_t i) const { return span(extra_json, extra_offsets, i); }

 private:
  static std::string_view span(const std::string& text, const std::vector<uint64_t>& off,
                               std::size_t i) {
    if (off.empty()) return {};
    return std::string_view(text).substr(off[i], off[i + 1] - off[i]);
  }
};

/// A parsed COCO annotation file.
struct CocoFile {
  std::string source;  ///< path or name, used in error messages
  std::string info_json;      ///< raw JSON of the top-level "info" value ("" when absent)
  std::string licenses_json;  ///< raw JSON of the top-level "licenses" value ("" when absent)
  std::vector<CocoImage> images;          ///< file order
  std::vector<CocoCategory> categories;   ///< file order (not sorted)
  CocoAnnotations annotations;            ///< file order
};

struct CocoParseOptions {
  /// pycocotools' COCOeval reads every GT's "area" (KeyError without it), so by default a missing
  /// area is an error. false: a missing area becomes w * h of the bbox (torchvision's
  /// convert_to_coco_api does the same for datasets it builds).
  bool require_area = true;
};

/// Parses COCO annotation JSON held in memory; `source` names it in errors. Throws drcnn::Error
/// naming the source, the record (images[i] (id N), annotations[i] (id N), categories[i] (id N))
/// and the problem: malformed JSON (with simdjson's message and the line/column), missing fields,
/// wrong types, duplicate image/annotation/category ids, an annotation whose image or category
/// id is unknown, a negative image size, a bbox that is not 4 numbers.
/// Required: top-level "images" and "categories" ("annotations" may be absent: test-dev files);
/// image id/width/height/file_name; category id/name; annotation id/image_id/category_id/bbox
/// (and area unless options.require_area is false). Ids are integers (an integral float such as
/// 3.0 is accepted, as Python's dict lookups do).
CocoFile parse_coco(std::string_view json, std::string_view source, const CocoParseOptions& options = {});
/// Reads and parses a COCO annotation file (errors name the path).
CocoFile load_coco(const std::filesystem::path& path, const CocoParseOptions& options = {});

}  // namespace drcnn::data
