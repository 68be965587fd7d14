// drcnn_test: evaluates a drcnn_train run's checkpoint on its validation set (or another one):
// the run's config (RUN/config.yaml), the newest checkpoint (RUN/last_checkpoint) or the one of
// --iter N, inference, the COCO summary, detections.json, metrics.json and vis/. docs/tools.md.
//
//   drcnn_test --run RUN [--iter N] [--val-ann A.json --val-images DIR] [--tta CONFIG] [--set key=value] [--out DIR]
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/engine/checkpoint.h"
#include "drcnn/engine/trainer.h"
#include "drcnn/io/config.h"
#include "drcnn/ops/cpu_precision.h"
#include "tool_support.h"

using namespace drcnn;
namespace fs = std::filesystem;

namespace {

// The checkpoints present in RUN/checkpoints, for error messages: "2, 4, 6" or "none".
std::string checkpoints_present(const fs::path& run) {
  std::vector<int64_t> iters;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run / "checkpoints", ec))
    if (auto n = engine::checkpoint_iteration(e.path())) iters.push_back(*n);
  std::sort(iters.begin(), iters.end());
  if (iters.empty()) return "none";
  std::string s;
  for (int64_t n : iters) s += (s.empty() ? "" : ", ") + std::to_string(n);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string run_dir, out, device_flag = "cpu", val_format = "coco", val_ann, val_images, val_list, tta_file;
  std::vector<std::string> sets;
  int64_t iter = -1, draw = 0;
  int threads = 0;

  CLI::App app{"drcnn_test: evaluate a drcnn_train run's checkpoint (COCO AP) and draw detections"};
  app.add_option("--run", run_dir, "the run folder (drcnn_train's --out): config.yaml, last_checkpoint, checkpoints/")
      ->required();
  app.add_option("--iter", iter, "evaluate checkpoints/model_{N:07d}.safetensors (default: the one last_checkpoint "
                 "names)")->check(CLI::NonNegativeNumber);
  app.add_option("--val-ann", val_ann, "validation annotations (COCO JSON or VOC folder); default: the run's");
  app.add_option("--val-images", val_images, "folder of the validation images");
  app.add_option("--val-format", val_format, "coco | voc")->check(CLI::IsMember({"coco", "voc"}));
  app.add_option("--val-list", val_list, "VOC: validation image-id list");
  app.add_option("--tta", tta_file, "test-time augmentation: take eval.tta_* from this config file (e.g. "
                 "configs/dynamic_rcnn_r101_dcnv2_fpn_3x_tta.yaml); --set eval.tta_short=[...] works too");
  app.add_option("--set", sets, "override a field of the run's config: key.sub=value (repeatable, applied last)");
  app.add_option("--out", out, "where detections.json, metrics.json and vis/ go (default: RUN/test_NNNNNNN)");
  app.add_option("--draw", draw, "validation images to draw (default: the config's eval.draw)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "compute threads (default: the config's)")->check(CLI::PositiveNumber);
  bool cpu_bf16 = false;
  app.add_flag("--cpu-bf16", cpu_bf16, "bfloat16 CPU convolutions (default: the run's cpu_precision; "
               "--set cpu_precision=fp32 turns it off)");
  app.add_option("--device", device_flag, "cpu | cuda | cuda:N")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const auto given = [&](const char* flag) { return app.count(flag) > 0; };

  try {
    const fs::path run = run_dir;
    if (!fs::is_directory(run))
      throw Error(fmt::format("run folder {} does not exist: --run names a drcnn_train --out folder", run.string()));
    const fs::path config_path = run / "config.yaml";
    if (!fs::is_regular_file(config_path))
      throw Error(fmt::format("{} not found: --run must name a folder drcnn_train has written (its --out)",
                              config_path.string()));
    io::RunConfig c = io::load_config(config_path);
    if (given("--val-ann")) c.data.val.ann = val_ann;
    if (given("--val-images")) c.data.val.images = val_images;
    if (given("--val-format")) c.data.val.format = val_format == "voc" ? io::DatasetFormat::Voc : io::DatasetFormat::Coco;
    if (given("--val-list")) c.data.val.image_list = val_list;
    if (given("--draw")) c.eval.draw = draw;
    if (given("--threads")) c.threads = threads;
    if (given("--cpu-bf16")) c.cpu_precision = "bf16";
    if (given("--tta")) tools::apply_tta_file(c, tta_file);
    for (const std::string& s : sets) io::apply_override(c, s);
    io::validate(c);
    if (c.data.val.ann.empty() || c.data.val.images.empty())
      throw Error("no validation set: the run's config has none; give --val-ann and --val-images (or --set "
                  "data.val.ann=... --set data.val.images=...)");
    const Device device = engine::parse_device(device_flag);
    set_cpu_threads(c.threads);
    ops::set_cpu_precision(ops::parse_cpu_precision(c.cpu_precision, "cpu_precision"));
    if (c.cpu_precision != "fp32") fmt::print("CPU precision: {} convolutions\n", c.cpu_precision);

    fs::path checkpoint;
    if (iter >= 0) {
      checkpoint = run / "checkpoints" / engine::checkpoint_file_name(iter);
      if (!fs::is_regular_file(checkpoint))
        throw Error(fmt::format("--iter {}: {} does not exist; checkpoints in {}: {}", iter, checkpoint.string(),
                                (run / "checkpoints").string(), checkpoints_present(run)));
    } else {
      const auto last = engine::last_checkpoint(run);
      if (!last)
        throw Error(fmt::format("{} holds no checkpoint (no last_checkpoint): train it first (drcnn_train --out {}), "
                                "or pick one with --iter N (checkpoints present: {})",
                                run.string(), run.string(), checkpoints_present(run)));
      checkpoint = *last;
    }
    const int64_t at = engine::checkpoint_iteration(checkpoint).value_or(-1);
    fmt::print("checkpoint: {} (iteration {})\n", checkpoint.string(), at);
    auto model = tools::load_detector(c, checkpoint, config_path.string());
    if (!device.is_cpu()) model->to(device);

    // A VOC split takes the training set's classes in its order; a COCO file names its own.
    std::vector<std::string> train_classes;
    if (c.data.val.format == io::DatasetFormat::Voc) train_classes = tools::config_class_names(c);
    const tools::Split val = tools::load_split(c.data.val, false, train_classes);
    const std::vector<std::string>& classes = val.dataset->class_names();
    fmt::print("val: {}\n", val.describe);
    if (int64_t(classes.size()) != c.model.num_classes)
      throw Error(fmt::format("the validation set has {} classes but the model {} (model.num_classes); evaluate on "
                              "a set with the training set's classes",
                              classes.size(), c.model.num_classes));
    const fs::path out_dir = given("--out") ? fs::path(out) : run / fmt::format("test_{:07d}", at);
    std::vector<tools::ReportImage> shown;
    tools::evaluate_split(*model, val, classes, c, device, out_dir, "drcnn_test", &shown);
    tools::write_report(run, out_dir, fmt::format("drcnn_test: {} at iteration {} on {}", run.string(), at, c.data.val.ann),
                        shown);
    fmt::print("wrote {}/detections.json, metrics.json, report.html, vis/\n", out_dir.string());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "drcnn_test: {}\n", e.what());
    return 1;
  }
}
