// drcnn_detect: runs a trained detector on image files or folders of images (any JPEG or PNG,
// grey or colour) and writes the detections as COCO results JSON plus the images drawn.
// docs/tools.md describes the outputs and where the class names come from.
//
//   drcnn_detect --checkpoint RUN/model.safetensors --config RUN/config.yaml IMAGE|FOLDER... --out DIR
//                [--score 0.3] [--classes a,b,c] [--set key=value]
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/data/image.h"
#include "drcnn/engine/trainer.h"
#include "drcnn/io/config.h"
#include "tool_support.h"

using namespace drcnn;
namespace fs = std::filesystem;

namespace {

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// Each argument: an image file, or a folder whose .jpg/.jpeg/.png files (not recursive) are
// taken in name order.
std::vector<fs::path> collect_images(const std::vector<std::string>& inputs) {
  std::vector<fs::path> images;
  for (const std::string& in : inputs) {
    const fs::path p = in;
    if (fs::is_directory(p)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file() && is_image_name(e.path())) found.push_back(e.path());
      if (found.empty()) throw Error(fmt::format("folder {} holds no .jpg, .jpeg or .png file", p.string()));
      std::sort(found.begin(), found.end());
      images.insert(images.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p)) {
      images.push_back(p);
    } else {
      throw Error(fmt::format("{} does not exist (give image files or folders of images)", p.string()));
    }
  }
  return images;
}

std::vector<std::string> split_names(const std::string& list) {
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    names.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return names;
}

// --classes, else the config's annotation set (train, else a COCO val), else class_0...
// The class names tools/convert_checkpoint.py records in the checkpoint's "__metadata__"
// ("classes": a JSON list); empty when the file has none. Reads the header only.
std::vector<std::string> checkpoint_class_names(const fs::path& checkpoint) {
  std::ifstream f(checkpoint, std::ios::binary);
  unsigned char len[8] = {};
  if (!f.read(reinterpret_cast<char*>(len), 8)) return {};
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (n > 100'000'000) return {};  // load_detector has already rejected such a file
  std::string header(size_t(n), '\0');
  if (!f.read(header.data(), std::streamsize(n))) return {};
  const nlohmann::json h = nlohmann::json::parse(header, nullptr, false);
  if (!h.is_object() || !h.contains("__metadata__") || !h["__metadata__"].contains("classes")) return {};
  const nlohmann::json names = nlohmann::json::parse(h["__metadata__"]["classes"].get<std::string>(), nullptr, false);
  std::vector<std::string> out;
  if (!names.is_array()) return {};
  for (const auto& v : names)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

std::vector<std::string> class_names(const io::RunConfig& c, const std::string& flag, bool given,
                                     const fs::path& checkpoint) {
  const auto n = size_t(c.model.num_classes);
  if (given) {
    std::vector<std::string> names = split_names(flag);
    if (names.size() != n)
      throw Error(fmt::format("--classes names {} classes but the model has {} (model.num_classes); give {} "
                              "comma-separated names",
                              names.size(), n, n));
    return names;
  }
  std::string why;
  try {
    std::vector<std::string> names = tools::config_class_names(c);
    if (names.size() == n) {
      fmt::print("classes: from the config's annotation set ({})\n",
                 c.data.train.ann.empty() ? c.data.val.ann : c.data.train.ann);
      return names;
    }
    why = names.empty() ? "the config names no annotation set"
                        : fmt::format("its annotation set has {} classes, the model {}", names.size(), n);
  } catch (const std::exception& e) {
    why = fmt::format("its annotation set cannot be read: {}", e.what());
  }
  if (std::vector<std::string> names = checkpoint_class_names(checkpoint); names.size() == n) {
    fmt::print("classes: from the checkpoint's metadata ({}; {})\n", checkpoint.string(), why);
    return names;
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back(fmt::format("class_{}", i));
  fmt::print("classes: class_0..class_{} ({}; give --classes a,b,... to name them)\n", n - 1, why);
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, config_path, out, classes_flag, device_flag = "cpu", tta_file;
  std::vector<std::string> inputs, sets;
  double score = 0.3;
  int threads = 0;

  CLI::App app{"drcnn_detect: detect objects in images with a trained checkpoint; COCO results JSON + drawn images"};
  app.add_option("--checkpoint", checkpoint, "weights: RUN/model.safetensors or RUN/checkpoints/model_N.safetensors")
      ->required();
  app.add_option("--config", config_path, "the run config the weights were trained with (RUN/config.yaml)")
      ->required();
  app.add_option("inputs", inputs, "image files (JPEG/PNG) or folders of them")->required();
  app.add_option("--out", out, "output folder: detections.json, images.json, vis/")->required();
  app.add_option("--score", score, "keep detections with at least this score (JSON and drawing)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--classes", classes_flag, "class names in label order, comma-separated (default: from the "
                 "config's annotation set, else class_0..)");
  app.add_option("--tta", tta_file, "test-time augmentation: take eval.tta_* from this config file (e.g. "
                 "configs/dynamic_rcnn_r101_dcnv2_fpn_3x_tta.yaml); --set eval.tta_short=[...] works too");
  app.add_option("--set", sets, "override a config field: key.sub=value (repeatable)")->allow_extra_args(false);
  app.add_option("--threads", threads, "compute threads (default: the config's)")->check(CLI::PositiveNumber);
  app.add_option("--device", device_flag, "cpu | cuda | cuda:N")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (!fs::is_regular_file(config_path))
      throw Error(fmt::format("--config {} does not exist (give the run's config.yaml)", config_path));
    io::RunConfig c = io::load_config(config_path);
    if (!tta_file.empty()) tools::apply_tta_file(c, tta_file);
    for (const std::string& s : sets) io::apply_override(c, s);
    if (app.count("--threads")) c.threads = threads;
    io::validate(c);
    const Device device = engine::parse_device(device_flag);
    set_cpu_threads(c.threads);
    const std::vector<fs::path> images = collect_images(inputs);
    auto model = tools::load_detector(c, checkpoint, config_path);
    if (!device.is_cpu()) model->to(device);
    const std::vector<std::string> classes = class_names(c, classes_flag, app.count("--classes") > 0, checkpoint);

    const fs::path out_dir = out;
    fs::create_directories(out_dir / "vis");
    eval::CocoResults results;
    nlohmann::json index = {{"images", nlohmann::json::array()}, {"categories", nlohmann::json::array()}};
    for (size_t k = 0; k < classes.size(); ++k)
      index["categories"].push_back({{"id", int64_t(k) + 1}, {"name", classes[k]}});
    std::set<std::string> used;
    for (size_t i = 0; i < images.size(); ++i) {
      const int64_t id = int64_t(i) + 1;
      data::Image image = data::read_image(images[i]);
      const Instances det = tools::predict_with_config(*model, image, c, device);
      const std::vector<float> b = det.boxes.tensor().to_vector<float>();
      const std::vector<float> s = det.scores.to_vector<float>();
      const std::vector<int64_t> l = det.labels.to_vector<int64_t>();
      for (size_t k = 0; k < s.size(); ++k)
        if (s[k] >= score)
          results.push_back(id, l[k] + 1,
                            {b[4 * k], b[4 * k + 1], double(b[4 * k + 2]) - b[4 * k], double(b[4 * k + 3]) - b[4 * k + 1]},
                            s[k]);
      std::string name = images[i].stem().string() + ".png";
      if (!used.insert(name).second) {
        name = fmt::format("{}_{}.png", images[i].stem().string(), id);
        used.insert(name);
      }
      const int64_t drawn = tools::draw_instances(image, det, classes, float(score));
      data::write_png(out_dir / "vis" / name, image);
      index["images"].push_back({{"id", id}, {"file_name", images[i].string()}, {"width", image.width},
                                 {"height", image.height}, {"drawn", "vis/" + name}});
      fmt::print("{}: {}x{}, {} detections with score >= {} -> {}\n", images[i].string(), image.width, image.height,
                 drawn, score, (out_dir / "vis" / name).string());
    }
    eval::save_results(results, out_dir / "detections.json");
    tools::write_text(out_dir / "images.json", index.dump(2) + "\n");
    fmt::print("wrote {}/detections.json ({} detections), images.json, vis/ ({} images)\n", out_dir.string(),
               results.size(), images.size());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "drcnn_detect: {}\n", e.what());
    return 1;
  }
}
