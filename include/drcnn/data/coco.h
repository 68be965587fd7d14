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
  /// area is an error. false: a missing area becomes w * h of the bbox (what pycocotools'
  /// loadRes gives detections).
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

/// Which images CocoDataset drops (training only; evaluation keeps every image).
enum class EmptyImageFilter {
  kKeepAll,        ///< keep every image (evaluation, or training with negatives)
  kNoAnnotations,  ///< MMDetection v2 filter_empty_gt: drop images with no annotation at all in the
                   ///< file (an image whose boxes are all crowd or all invalid is kept)
  kNoTargets,      ///< drop images left with no target box after the box rules (stricter; like
                   ///< detectron2's "no usable annotations"); checked after min_size
};

struct CocoDatasetOptions {
  /// Folder the images' file_name is relative to (record().image_path = image_root / file_name).
  std::filesystem::path image_root;
  /// MMDetection v2's training default (CocoDataset(filter_empty_gt=True)).
  EmptyImageFilter filter_empty = EmptyImageFilter::kNoAnnotations;
  /// Drop images with min(width, height) < min_size (MMDetection v2 _filter_imgs(min_size=32));
  /// 0 keeps every size.
  int32_t min_size = 32;
  /// Check at construction that every kept image file exists (error names the image id and path).
  bool check_files = false;

  /// Evaluation: every image, whatever its annotations or size.
  static CocoDatasetOptions evaluation(std::filesystem::path root) {
    CocoDatasetOptions o;
    o.image_root = std::move(root);
    o.filter_empty = EmptyImageFilter::kKeepAll;
    o.min_size = 0;
    return o;
  }
};

/// What CocoDataset dropped and kept. Image counts cover the whole file; box counts cover the kept
/// images only (what training sees). Each dropped box is counted once, for the first rule it fails
/// in MMDetection's order: outside, then area, then small.
struct CocoDatasetStats {
  std::size_t images_in_file = 0;
  std::size_t images_kept = 0;
  std::size_t images_empty = 0;      ///< dropped by filter_empty
  std::size_t images_too_small = 0;  ///< dropped by min_size
  std::size_t annotations = 0;       ///< annotations of the kept images
  std::size_t targets = 0;           ///< kept boxes with ignore = 0
  std::size_t ignored = 0;           ///< kept crowd boxes (ignore = 1)
  std::size_t dropped_outside = 0;   ///< no overlap with the image (intersection w or h <= 0)
  std::size_t dropped_area = 0;      ///< "area" <= 0
  std::size_t dropped_small = 0;     ///< bbox w < 1 or h < 1
};

/// The training view of a CocoFile (MMDetection v2 CocoDataset rules, docs/data.md):
/// - labels: category ids sorted ascending map to 0..C-1 (cat2label), and back;
/// - boxes: (x, y, w, h) -> (x, y, x + w, y + h) in float (no "+1", no clipping);
/// - per annotation, in file order: drop when the box has no overlap with the image, when
///   area <= 0, when w < 1 or h < 1 (each counted); iscrowd = 1 kept with ignore = 1;
/// - images (file order) filtered by options.filter_empty and options.min_size.
/// Storage: flat arrays with per-image offsets (CSR); record() builds one image's vectors.
class CocoDataset final : public DetectionDataset {
 public:
  CocoDataset(const CocoFile& file, CocoDatasetOptions options);

  std::size_t size() const override { return table_.images(); }
  DetectionRecord record(std::size_t index) const override;
  std::array<int32_t, 2> image_size(std::size_t index) const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }

  int64_t image_id(std::size_t index) const;
  /// COCO category id of a contiguous label (for writing results JSON).
  int64_t label_to_category_id(int64_t label) const;
  /// Contiguous label of a COCO category id; throws for an id not in the file.
  int64_t category_id_to_label(int64_t category_id) const;
  const std::vector<int64_t>& category_ids() const { return category_ids_; }  ///< by label
  const CocoDatasetStats& stats() const { return stats_; }
  const CocoDatasetOptions& options() const { return options_; }

 private:
  CocoDatasetOptions options_;
  CocoDatasetStats stats_;
  std::vector<std::string> class_names_;
  std::vector<int64_t> category_ids_;       // label -> category id (ascending)
  std::vector<int64_t> image_ids_;          // per kept image
  std::vector<std::string> file_names_;
  std::vector<std::array<int32_t, 2>> sizes_;
  BoxTable table_;  // per kept image
};

}  // namespace drcnn::data
