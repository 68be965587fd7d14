// Pascal VOC XML annotations (pugixml): one file's contents (parse_voc_xml) and the dataset over
// an image folder + annotation folder (VocDataset). Box conventions and rules: docs/data.md.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "drcnn/data/coco.h"  // EmptyImageFilter
#include "drcnn/data/dataset.h"

namespace drcnn::data {

/// One <object> as written.
struct VocObject {
  std::string name;
  std::array<double, 4> bndbox{};  ///< xmin, ymin, xmax, ymax as written (1-based VOC pixels)
  bool difficult = false;          ///< <difficult> (absent = 0)
  bool truncated = false;          ///< <truncated> (absent = 0)
};

/// One annotation file as written.
struct VocAnnotation {
  std::string filename;  ///< <filename> ("" when absent)
  int32_t width = 0;     ///< <size><width>, > 0
  int32_t height = 0;
  std::vector<VocObject> objects;  ///< document order
};

/// Parses one VOC XML document held in memory; `source` names it in errors. Throws drcnn::Error
/// naming the source, the element (e.g. "object #2 <bndbox>/<xmin>") and the problem: malformed
/// XML (pugixml's message and line), no <annotation> root, missing <size> (an error: the image is
/// not decoded to recover it), missing or non-numeric fields, non-positive sizes, an object
/// without <name> or <bndbox>, xmax < xmin or ymax < ymin, <difficult> other than 0/1.
VocAnnotation parse_voc_xml(std::string_view xml, std::string_view source);
/// Reads and parses one file.
VocAnnotation load_voc_xml(const std::filesystem::path& path);

/// How <bndbox> becomes an (x1, y1, x2, y2) box (docs/data.md).
enum class VocBoxConvention {
  kMmdetV2,     ///< (int(xmin), int(ymin), int(xmax), int(ymax)): MMDetection 2.x XMLDataset (default)
  kDetectron2,  ///< (xmin - 1, ymin - 1, xmax, ymax) in float: detectron2 / torchvision-style 0-based
  kMmdetV3,     ///< (int(v) - 1 for all four): MMDetection 3.x XMLDataset
};

struct VocDatasetOptions {
  std::filesystem::path image_dir;       ///< e.g. VOC2007/JPEGImages
  std::filesystem::path annotation_dir;  ///< e.g. VOC2007/Annotations; <id>.xml per image
  /// Image ids (file stems) in order; empty: every *.xml in annotation_dir, sorted by name.
  std::vector<std::string> image_ids;
  /// Class names in label order; empty: every name found in the files, sorted (byte order).
  /// Objects of a class not in a given list are skipped and counted (MMDetection does the same).
  std::vector<std::string> class_names;
  VocBoxConvention boxes = VocBoxConvention::kMmdetV2;
  /// Image path: image_dir / (id + image_extension) (MMDetection, detectron2); true: the XML's
  /// <filename> instead.
  bool use_xml_filename = false;
  std::string image_extension = ".jpg";
  /// Image filters, as in CocoDatasetOptions (kNoAnnotations: no object of a known class).
  EmptyImageFilter filter_empty = EmptyImageFilter::kNoAnnotations;
  int32_t min_size = 0;
  bool check_files = false;  ///< check at construction that every kept image file exists

  /// The standard layout: root/JPEGImages, root/Annotations, ids from
  /// root/ImageSets/Main/<split>.txt (empty split: every XML file).
  static VocDatasetOptions from_root(const std::filesystem::path& root, std::string_view split = "");
};

struct VocDatasetStats {
  std::size_t images_in_list = 0;
  std::size_t images_kept = 0;
  std::size_t images_empty = 0;       ///< dropped by filter_empty
  std::size_t images_too_small = 0;   ///< dropped by min_size
  std::size_t objects = 0;            ///< <object>s of the kept images
  std::size_t targets = 0;            ///< kept boxes with ignore = 0
  std::size_t ignored = 0;            ///< kept difficult boxes (ignore = 1)
  std::size_t unknown_class = 0;      ///< skipped: class not in the given list
  std::size_t dropped_degenerate = 0; ///< zero width or height after the box convention
};

/// A Pascal VOC dataset, read once at construction into flat arrays (CSR per image).
class VocDataset final : public DetectionDataset {
 public:
  explicit VocDataset(VocDatasetOptions options);

  std::size_t size() const override { return table_.images(); }
  DetectionRecord record(std::size_t index) const override;  ///< image_id = index
  std::array<int32_t, 2> image_size(std::size_t index) const override;
  const std::vector<std::string>& class_names() const override { return options_.class_names; }

  const std::string& image_name(std::size_t index) const;  ///< the id (file stem)
  const VocDatasetStats& stats() const { return stats_; }

 private:
  VocDatasetOptions options_;
  VocDatasetStats stats_;
  std::vector<std::string> names_;
  std::vector<std::string> paths_;
  std::vector<std::array<int32_t, 2>> sizes_;
  BoxTable table_;  // per kept image
};

}  // namespace drcnn::data
