// DetectionDataset: what the transforms and the loader read, whatever the file format (COCO JSON,
// Pascal VOC XML, the synthetic shapes set). Datasets keep their annotations in flat arrays and
// build a DetectionRecord for one image on demand.
#pragma once
#include <array>
#include <cstddef>
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

/// Flat per-image box storage the datasets share (CSR: image i owns the rows
/// [offsets[i], offsets[i + 1])); no per-image or per-box heap objects.
struct BoxTable {
  std::vector<uint64_t> offsets{0};
  std::vector<std::array<float, 4>> boxes;  ///< (x1, y1, x2, y2)
  std::vector<int32_t> labels;
  std::vector<uint8_t> ignore;

  std::size_t images() const { return offsets.size() - 1; }
  void push(const std::array<double, 4>& xyxy, int32_t label, bool ignored) {
    boxes.push_back({float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3])});
    labels.push_back(label);
    ignore.push_back(ignored ? 1 : 0);
  }
  /// Drops the rows pushed since the last close_image() (an image filtered out after all).
  void discard_open_image() {
    const std::size_t n = std::size_t(offsets.back());
    boxes.resize(n);
    labels.resize(n);
    ignore.resize(n);
  }
  void close_image() { offsets.push_back(boxes.size()); }
  /// Copies image i's rows into a record.
  void fill(std::size_t i, DetectionRecord& r) const {
    const auto b = std::ptrdiff_t(offsets[i]), e = std::ptrdiff_t(offsets[i + 1]);
    r.boxes.assign(boxes.begin() + b, boxes.begin() + e);
    r.labels.assign(labels.begin() + b, labels.begin() + e);
    r.ignore.assign(ignore.begin() + b, ignore.begin() + e);
  }
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
