// CocoDataset: MMDetection v2's CocoDataset rules (_filter_imgs, _parse_ann_info, cat2label) over
// a CocoFile, stored as flat arrays with per-image offsets.
#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "drcnn/core/error.h"
#include "drcnn/data/coco.h"

namespace drcnn::data {

namespace {
enum class BoxVerdict { kKeep, kOutside, kArea, kSmall };

/// MMDetection v2 CocoDataset._parse_ann_info, in its order.
BoxVerdict judge(const std::array<double, 4>& b, double area, int32_t width, int32_t height) {
  const double x1 = b[0], y1 = b[1], w = b[2], h = b[3];
  const double inter_w = std::max(0.0, std::min(x1 + w, double(width)) - std::max(x1, 0.0));
  const double inter_h = std::max(0.0, std::min(y1 + h, double(height)) - std::max(y1, 0.0));
  if (inter_w * inter_h == 0) return BoxVerdict::kOutside;
  if (area <= 0) return BoxVerdict::kArea;
  if (w < 1 || h < 1) return BoxVerdict::kSmall;
  return BoxVerdict::kKeep;
}
}  // namespace

CocoDataset::CocoDataset(const CocoFile& file, CocoDatasetOptions options) : options_(std::move(options)) {
  const CocoAnnotations& a = file.annotations;
  const std::size_t n_images = file.images.size();
  stats_.images_in_file = n_images;

  // Labels: category ids ascending -> 0..C-1.
  std::vector<std::size_t> cat_order(file.categories.size());
  for (std::size_t i = 0; i < cat_order.size(); ++i) cat_order[i] = i;
  std::sort(cat_order.begin(), cat_order.end(),
            [&](std::size_t x, std::size_t y) { return file.categories[x].id < file.categories[y].id; });
  std::unordered_map<int64_t, int32_t> cat2label;
  for (std::size_t l = 0; l < cat_order.size(); ++l) {
    const CocoCategory& c = file.categories[cat_order[l]];
    DRCNN_CHECK(cat2label.emplace(c.id, int32_t(l)).second, "CocoDataset: ", file.source,
                ": duplicate category id ", c.id);
    category_ids_.push_back(c.id);
    class_names_.push_back(c.name);
  }

  // Annotations grouped by image (counting sort, file order kept within an image).
  std::unordered_map<int64_t, std::size_t> image_index;
  image_index.reserve(n_images);
  for (std::size_t i = 0; i < n_images; ++i)
    DRCNN_CHECK(image_index.emplace(file.images[i].id, i).second, "CocoDataset: ", file.source,
                ": duplicate image id ", file.images[i].id);
  std::vector<uint32_t> ann_image(a.size());
  std::vector<uint64_t> by_image_off(n_images + 1, 0);
  for (std::size_t k = 0; k < a.size(); ++k) {
    const auto it = image_index.find(a.image_id[k]);
    DRCNN_CHECK(it != image_index.end(), "CocoDataset: ", file.source, ": annotations[", k, "] (id ", a.id[k],
                "): unknown image_id ", a.image_id[k]);
    DRCNN_CHECK(cat2label.count(a.category_id[k]), "CocoDataset: ", file.source, ": annotations[", k, "] (id ",
                a.id[k], "): unknown category_id ", a.category_id[k]);
    ann_image[k] = uint32_t(it->second);
    ++by_image_off[it->second + 1];
  }
  for (std::size_t i = 0; i < n_images; ++i) by_image_off[i + 1] += by_image_off[i];
  std::vector<uint32_t> by_image(a.size());
  {
    std::vector<uint64_t> fill(by_image_off.begin(), by_image_off.end() - 1);
    for (std::size_t k = 0; k < a.size(); ++k) by_image[fill[ann_image[k]]++] = uint32_t(k);
  }

  table_.boxes.reserve(a.size());
  table_.labels.reserve(a.size());
  table_.ignore.reserve(a.size());
  for (std::size_t i = 0; i < n_images; ++i) {
    const CocoImage& im = file.images[i];
    const uint64_t begin = by_image_off[i], end = by_image_off[i + 1];
    if (options_.filter_empty == EmptyImageFilter::kNoAnnotations && begin == end) {
      ++stats_.images_empty;
      continue;
    }
    if (std::min(im.width, im.height) < options_.min_size) {
      ++stats_.images_too_small;
      continue;
    }
    CocoDatasetStats s{};
    for (uint64_t j = begin; j < end; ++j) {
      const uint32_t k = by_image[j];
      ++s.annotations;
      switch (judge(a.bbox[k], a.area[k], im.width, im.height)) {
        case BoxVerdict::kOutside: ++s.dropped_outside; continue;
        case BoxVerdict::kArea: ++s.dropped_area; continue;
        case BoxVerdict::kSmall: ++s.dropped_small; continue;
        case BoxVerdict::kKeep: break;
      }
      const auto& b = a.bbox[k];
      table_.push({b[0], b[1], b[0] + b[2], b[1] + b[3]}, cat2label.at(a.category_id[k]), a.iscrowd[k] != 0);
      ++(a.iscrowd[k] ? s.ignored : s.targets);
    }
    if (options_.filter_empty == EmptyImageFilter::kNoTargets && s.targets == 0) {
      table_.discard_open_image();
      ++stats_.images_empty;
      continue;
    }
    stats_.annotations += s.annotations;
    stats_.targets += s.targets;
    stats_.ignored += s.ignored;
    stats_.dropped_outside += s.dropped_outside;
    stats_.dropped_area += s.dropped_area;
    stats_.dropped_small += s.dropped_small;
    image_ids_.push_back(im.id);
    file_names_.push_back(im.file_name);
    sizes_.push_back({im.width, im.height});
    table_.close_image();
    if (options_.check_files) {
      const std::filesystem::path p = options_.image_root / im.file_name;
      std::error_code ec;
      DRCNN_CHECK(std::filesystem::is_regular_file(p, ec), "CocoDataset: ", file.source, ": images[", i, "] (id ",
                  im.id, "): image file ", p.string(), " does not exist");
    }
  }
  stats_.images_kept = image_ids_.size();
  table_.boxes.shrink_to_fit();
  table_.labels.shrink_to_fit();
  table_.ignore.shrink_to_fit();
}

DetectionRecord CocoDataset::record(std::size_t index) const {
  DRCNN_CHECK(index < size(), "CocoDataset::record: index ", index, " out of range (size ", size(), ")");
  DetectionRecord r;
  r.image_id = image_ids_[index];
  r.image_path = (options_.image_root / file_names_[index]).string();
  r.width = sizes_[index][0];
  r.height = sizes_[index][1];
  table_.fill(index, r);
  return r;
}

std::array<int32_t, 2> CocoDataset::image_size(std::size_t index) const {
  DRCNN_CHECK(index < size(), "CocoDataset::image_size: index ", index, " out of range (size ", size(), ")");
  return sizes_[index];
}

int64_t CocoDataset::image_id(std::size_t index) const {
  DRCNN_CHECK(index < size(), "CocoDataset::image_id: index ", index, " out of range (size ", size(), ")");
  return image_ids_[index];
}

int64_t CocoDataset::label_to_category_id(int64_t label) const {
  DRCNN_CHECK(label >= 0 && label < int64_t(category_ids_.size()), "CocoDataset::label_to_category_id: label ",
              label, " out of range [0, ", category_ids_.size(), ")");
  return category_ids_[std::size_t(label)];
}

int64_t CocoDataset::category_id_to_label(int64_t category_id) const {
  const auto it = std::lower_bound(category_ids_.begin(), category_ids_.end(), category_id);
  DRCNN_CHECK(it != category_ids_.end() && *it == category_id, "CocoDataset::category_id_to_label: category id ",
              category_id, " is not in the file");
  return int64_t(it - category_ids_.begin());
}

}  // namespace drcnn::data
