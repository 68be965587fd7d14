// Pascal VOC XML (pugixml): parse_voc_xml for one file, VocDataset over a folder.
#include "drcnn/data/voc.h"

#include <pugixml.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <unordered_map>

#include "drcnn/core/error.h"

namespace drcnn::data {
namespace {

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

class VocParser {
 public:
  explicit VocParser(std::string_view source) : source_(source) {}

  VocAnnotation run(std::string_view xml) {
    pugi::xml_document doc;
    const pugi::xml_parse_result res =
        doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_auto);
    if (!res) {
      const std::size_t off = std::min<std::size_t>(std::size_t(std::max<ptrdiff_t>(res.offset, 0)), xml.size());
      const std::size_t line = 1 + std::size_t(std::count(xml.begin(), xml.begin() + ptrdiff_t(off), '\n'));
      DRCNN_FAIL("parse_voc_xml: ", source_, ": malformed XML at byte ", off, " (line ", line, "): ",
                 res.description());
    }
    const pugi::xml_node root = doc.child("annotation");
    if (!root) fail("document", "no <annotation> root element");
    VocAnnotation a;
    a.filename = std::string(trim(root.child_value("filename")));
    const pugi::xml_node size = root.child("size");
    if (!size) fail("<size>", "missing (the image size is required; it is not read from the image)");
    a.width = dimension(size, "width");
    a.height = dimension(size, "height");
    std::size_t k = 0;
    for (const pugi::xml_node obj : root.children("object")) {
      const std::string where = fmt::format("<object>[{}]", k++);
      VocObject o;
      const pugi::xml_node name = obj.child("name");
      if (!name) fail(where, "missing <name>");
      o.name = std::string(trim(name.child_value()));
      if (o.name.empty()) fail(where + "/<name>", "empty class name");
      const pugi::xml_node box = obj.child("bndbox");
      if (!box) fail(where, "missing <bndbox>");
      static constexpr const char* keys[] = {"xmin", "ymin", "xmax", "ymax"};
      for (int c = 0; c < 4; ++c) {
        const std::string at = fmt::format("{}/<bndbox>/<{}>", where, keys[c]);
        const pugi::xml_node v = box.child(keys[c]);
        if (!v) fail(at, "missing");
        o.bndbox[c] = number(v, at);
      }
      if (o.bndbox[2] < o.bndbox[0])
        fail(where + "/<bndbox>", fmt::format("xmax {} < xmin {}", o.bndbox[2], o.bndbox[0]));
      if (o.bndbox[3] < o.bndbox[1])
        fail(where + "/<bndbox>", fmt::format("ymax {} < ymin {}", o.bndbox[3], o.bndbox[1]));
      o.difficult = flag(obj, "difficult", where);
      o.truncated = flag(obj, "truncated", where);
      a.objects.push_back(std::move(o));
    }
    return a;
  }

 private:
  [[noreturn]] void fail(std::string_view element, std::string_view what) const {
    DRCNN_FAIL("parse_voc_xml: ", source_, ": ", element, ": ", what);
  }

  double number(const pugi::xml_node& node, const std::string& at) const {
    const std::string text(trim(node.child_value()));
    if (text.empty()) fail(at, "empty, expected a number");
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v))
      fail(at, fmt::format("'{}' is not a number", text));
    return v;
  }

  int32_t dimension(const pugi::xml_node& size, const char* key) const {
    const std::string at = fmt::format("<size>/<{}>", key);
    const pugi::xml_node node = size.child(key);
    if (!node) fail(at, "missing");
    const double v = number(node, at);
    if (v != std::trunc(v)) fail(at, fmt::format("{} is not an integer", v));
    if (v <= 0 || v > 1e9) fail(at, fmt::format("{} is not a positive image size", v));
    return int32_t(v);
  }

  bool flag(const pugi::xml_node& obj, const char* key, const std::string& where) const {
    const pugi::xml_node node = obj.child(key);
    if (!node) return false;
    const std::string at = fmt::format("{}/<{}>", where, key);
    const double v = number(node, at);
    if (v != 0 && v != 1) fail(at, fmt::format("{} must be 0 or 1", v));
    return v == 1;
  }

  std::string_view source_;
};

std::string read_text_file(const std::filesystem::path& path, const char* who) {
  std::ifstream in(path, std::ios::binary);
  DRCNN_CHECK(in.good(), who, ": cannot read ", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  DRCNN_CHECK(!in.bad(), who, ": error while reading ", path.string());
  return std::move(ss).str();
}

/// (x1, y1, x2, y2) of a <bndbox> under a convention.
std::array<double, 4> convert(const std::array<double, 4>& b, VocBoxConvention c) {
  switch (c) {
    case VocBoxConvention::kMmdetV2:
      return {std::trunc(b[0]), std::trunc(b[1]), std::trunc(b[2]), std::trunc(b[3])};
    case VocBoxConvention::kMmdetV3:
      return {std::trunc(b[0]) - 1, std::trunc(b[1]) - 1, std::trunc(b[2]) - 1, std::trunc(b[3]) - 1};
    case VocBoxConvention::kDetectron2:
      return {b[0] - 1, b[1] - 1, b[2], b[3]};
  }
  return b;
}

}  // namespace

VocAnnotation parse_voc_xml(std::string_view xml, std::string_view source) { return VocParser(source).run(xml); }

VocAnnotation load_voc_xml(const std::filesystem::path& path) {
  const std::string text = read_text_file(path, "load_voc_xml");
  return VocParser(path.string()).run(text);
}

VocDatasetOptions VocDatasetOptions::from_root(const std::filesystem::path& root, std::string_view split) {
  VocDatasetOptions o;
  o.image_dir = root / "JPEGImages";
  o.annotation_dir = root / "Annotations";
  if (!split.empty()) {
    const std::filesystem::path list = root / "ImageSets" / "Main" / (std::string(split) + ".txt");
    std::istringstream in(read_text_file(list, "VocDatasetOptions::from_root"));
    for (std::string line; std::getline(in, line);) {
      const std::string_view id = trim(line);
      if (!id.empty()) o.image_ids.emplace_back(id);
    }
  }
  return o;
}

VocDataset::VocDataset(VocDatasetOptions options) : options_(std::move(options)) {
  const std::filesystem::path& adir = options_.annotation_dir;
  std::vector<std::string> ids = options_.image_ids;
  if (ids.empty()) {
    std::error_code ec;
    DRCNN_CHECK(std::filesystem::is_directory(adir, ec), "VocDataset: annotation folder ", adir.string(),
                " does not exist");
    for (const auto& entry : std::filesystem::directory_iterator(adir))
      if (entry.is_regular_file() && entry.path().extension() == ".xml") ids.push_back(entry.path().stem().string());
    std::sort(ids.begin(), ids.end());
  }
  stats_.images_in_list = ids.size();

  std::vector<VocAnnotation> anns;
  anns.reserve(ids.size());
  for (const std::string& id : ids) anns.push_back(load_voc_xml(adir / (id + ".xml")));

  std::vector<std::string>& classes = options_.class_names;
  if (classes.empty()) {
    std::set<std::string> names;
    for (const auto& a : anns)
      for (const auto& o : a.objects) names.insert(o.name);
    classes.assign(names.begin(), names.end());
  }
  std::unordered_map<std::string, int32_t> label_of;
  for (std::size_t l = 0; l < classes.size(); ++l)
    DRCNN_CHECK(label_of.emplace(classes[l], int32_t(l)).second, "VocDataset: class \"", classes[l],
                "\" appears twice in the class list");

  for (std::size_t i = 0; i < ids.size(); ++i) {
    const VocAnnotation& a = anns[i];
    const std::size_t known = std::size_t(std::count_if(a.objects.begin(), a.objects.end(), [&](const VocObject& o) {
      return label_of.count(o.name) != 0;
    }));
    if (options_.filter_empty == EmptyImageFilter::kNoAnnotations && known == 0) {
      ++stats_.images_empty;
      continue;
    }
    if (std::min(a.width, a.height) < options_.min_size) {
      ++stats_.images_too_small;
      continue;
    }
    VocDatasetStats s{};
    for (const VocObject& o : a.objects) {
      ++s.objects;
      const auto it = label_of.find(o.name);
      if (it == label_of.end()) {
        ++s.unknown_class;
        continue;
      }
      const std::array<double, 4> b = convert(o.bndbox, options_.boxes);
      if (b[2] <= b[0] || b[3] <= b[1]) {
        ++s.dropped_degenerate;
        continue;
      }
      table_.push(b, it->second, o.difficult);
      ++(o.difficult ? s.ignored : s.targets);
    }
    if (options_.filter_empty == EmptyImageFilter::kNoTargets && s.targets == 0) {
      table_.discard_open_image();
      ++stats_.images_empty;
      continue;
    }
    stats_.objects += s.objects;
    stats_.targets += s.targets;
    stats_.ignored += s.ignored;
    stats_.unknown_class += s.unknown_class;
    stats_.dropped_degenerate += s.dropped_degenerate;
    std::filesystem::path image;
    if (options_.use_xml_filename) {
      DRCNN_CHECK(!a.filename.empty(), "VocDataset: ", (adir / (ids[i] + ".xml")).string(),
                  ": <filename> is missing or empty (use_xml_filename is set)");
      image = options_.image_dir / a.filename;
    } else {
      image = options_.image_dir / (ids[i] + options_.image_extension);
    }
    if (options_.check_files) {
      std::error_code ec;
      DRCNN_CHECK(std::filesystem::is_regular_file(image, ec), "VocDataset: ", (adir / (ids[i] + ".xml")).string(),
                  ": image file ", image.string(), " does not exist");
    }
    names_.push_back(ids[i]);
    paths_.push_back(image.string());
    sizes_.push_back({a.width, a.height});
    table_.close_image();
  }
  stats_.images_kept = names_.size();
}

DetectionRecord VocDataset::record(std::size_t index) const {
  DRCNN_CHECK(index < size(), "VocDataset::record: index ", index, " out of range (size ", size(), ")");
  DetectionRecord r;
  r.image_id = int64_t(index);
  r.image_path = paths_[index];
  r.width = sizes_[index][0];
  r.height = sizes_[index][1];
  table_.fill(index, r);
  return r;
}

std::array<int32_t, 2> VocDataset::image_size(std::size_t index) const {
  DRCNN_CHECK(index < size(), "VocDataset::image_size: index ", index, " out of range (size ", size(), ")");
  return sizes_[index];
}

const std::string& VocDataset::image_name(std::size_t index) const {
  DRCNN_CHECK(index < size(), "VocDataset::image_name: index ", index, " out of range (size ", size(), ")");
  return names_[index];
}

}  // namespace drcnn::data
