// DetectionDataset: what the transforms and the loader read, whatever the file format (COCO JSON,
// Pascal VOC XML, the synthetic shapes set). Datasets keep their annotations in flat arrays and
// build a DetectionRecord for one image on demand.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace drcnn::data {

/// One image's annotations in the original image's pixels.
struct DetectionRecord {
  int64_t image_id = 0;             ///< COCO image id; for VOC the index in the image list
  std::string image_path;           ///< path of the image file, ready to open
  int32_t width = 0;                ///< size written in the annotation file
  int32_t height = 0;
  std::vector<std::array<float, 4>> boxes;  ///< absolute (x1, y1, x2, y2), no "+1"
  std::vector<int64_t> labels;      ///< contiguous class ids 0..C-1 (MMDetection order)
  std::vector<uint8_t> ignore;      ///< 1: crowd (COCO) or difficult (VOC) region, never a target
};

class DetectionDataset {
 public:
  virtual ~DetectionDataset() = default;
  /// Number of images.
  virtual std::size_t size() const = 0;
  /// The record of image `index` (< size()). Thread-safe: loader workers call it concurrently.
  virtual DetectionRecord record(std::size_t index) const = 0;
  /// (width, height) of image `index` from the annotation file, without decoding the image
  /// (the aspect-ratio group sampler needs it for every image).
  virtual std::array<int32_t, 2> image_size(std::size_t index) const = 0;
  /// Class names in label order (label i is class_names()[i]).
  virtual const std::vector<std::string>& class_names() const = 0;
};

}  // namespace drcnn::data
