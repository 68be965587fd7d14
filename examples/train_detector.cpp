// drcnn_train: trains a detector preset on a COCO-format dataset (engine::Trainer: checkpoints,
// exact resume, the log line and RUN/metrics.jsonl), then evaluates it on a validation set with
// the pycocotools-equal evaluator, writes the detections as COCO results JSON, the metrics as
// JSON, the weights as safetensors, and draws the detections of a few validation images. The loop is the one MMDetection runs for
// dynamic_rcnn: SGD with linear warm-up and steps, and the Dynamic R-CNN schedule fed by the
// RoI head's statistics every iteration (docs/training.md).
//
//   drcnn_train --train-ann A.json --train-images DIR --val-ann B.json --val-images DIR
//               [--preset small_cpu] [--iters 500] [--batch 2] [--lr 0.005] [--out DIR] ...
// scripts/demo.sh runs it on the synthetic shapes dataset (examples/make_shapes.cpp).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/data/coco.h"
#include "drcnn/data/draw.h"
#include "drcnn/data/image.h"
#include "drcnn/data/loader.h"
#include "drcnn/engine/trainer.h"
#include "drcnn/eval/coco_eval.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/detector.h"
#include "drcnn/train/dynamic_schedule.h"

using namespace drcnn;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string train_ann, train_images, val_ann, val_images, out = "drcnn_run";
  std::string preset = "small_cpu";
  int64_t iters = 500, batch = 2, warmup = 100, log_every = 20, draw = 4;
  std::vector<int64_t> steps;
  double lr = 0.005, weight_decay = 1e-4, momentum = 0.9, flip = 0.5, grad_clip = 10.0;
  int32_t scale_long = 1333, scale_short = 800;
  int workers = 1, threads = 1;
  uint64_t seed = 0;
  bool static_schedule = false;
  std::string device;  // empty: the default (engine::parse_device)
  int64_t checkpoint_every = 0;
  int keep = 3;
  bool resume = false;
  std::string resume_from;
};

models::DetectorConfig make_config(const std::string& preset, int64_t num_classes) {
  if (preset == "small_cpu") return models::DetectorConfig::small_cpu(num_classes);
  if (preset == "tiny_cpu") return models::DetectorConfig::tiny_cpu(num_classes);
  if (preset == "dynamic_rcnn_r50_fpn_1x") return models::DetectorConfig::dynamic_rcnn_r50_fpn_1x(num_classes);
  if (preset == "faster_rcnn_r50_fpn_1x") return models::DetectorConfig::faster_rcnn_r50_fpn_1x(num_classes);
  if (preset == "dynamic_rcnn_r101_fpn_1x") return models::DetectorConfig::dynamic_rcnn_r101_fpn_1x(num_classes);
  throw Error("drcnn_train: unknown preset '" + preset +
              "' (small_cpu, tiny_cpu, dynamic_rcnn_r50_fpn_1x, faster_rcnn_r50_fpn_1x, dynamic_rcnn_r101_fpn_1x)");
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Detections of the whole validation set as COCO results (original category ids, xywh).
eval::CocoResults predict_dataset(const models::TwoStageDetector<float>& model, const data::CocoDataset& val,
                                  const data::Pipeline& pipeline, const Options& o,
                                  std::map<int64_t, Instances>* keep_for_drawing) {
  data::LoaderOptions lo;
  lo.batch_size = 1;
  lo.num_workers = o.workers;
  lo.skip_corrupt_images = false;
  data::DataLoader loader(val, data::sequential_indices(int64_t(val.size())), pipeline, lo);
  loader.start_epoch(0);
  eval::CocoResults results;
  results.source = "drcnn_train detections";
  data::Batch batch;
  while (loader.next(batch)) {
    std::vector<std::array<double, 2>> factors;
    std::vector<ImageSize> originals;
    for (const data::ImageMeta& m : batch.metas) {
      factors.push_back({double(m.scale_w), double(m.scale_h)});
      originals.push_back({m.original_height, m.original_width});
    }
    const std::vector<Instances> dets = model.predict(batch.images, factors, originals);
    for (size_t i = 0; i < dets.size(); ++i) {
      const std::vector<float> b = dets[i].boxes.tensor().to_vector<float>();
      const std::vector<float> s = dets[i].scores.to_vector<float>();
      const std::vector<int64_t> l = dets[i].labels.to_vector<int64_t>();
      for (size_t k = 0; k < s.size(); ++k)
        results.push_back(batch.metas[i].image_id, val.label_to_category_id(l[k]),
                          {b[4 * k], b[4 * k + 1], double(b[4 * k + 2]) - b[4 * k], double(b[4 * k + 3]) - b[4 * k + 1]},
                          s[k]);
      if (keep_for_drawing && int64_t(keep_for_drawing->size()) < o.draw)
        keep_for_drawing->emplace(batch.indices[i], dets[i]);
    }
  }
  return results;
}

int run(const Options& o) {
  // The first line says where the run trains (and why, when the default picked the CPU).
  const Device device = engine::parse_device(o.device);
  fmt::print("device: {}{}\n", device,
             o.device.empty() ? (device.is_cpu() ? fmt::format(" (default; no GPU: {})", cuda::unavailable_reason())
                                                 : std::string(" (default: the first visible GPU)"))
                              : std::string());
  set_cpu_threads(o.threads);
  fs::create_directories(o.out);
  const data::CocoFile train_file = data::load_coco(o.train_ann);
  data::CocoDatasetOptions train_opts;
  train_opts.image_root = o.train_images;
  train_opts.min_size = 0;
  const data::CocoDataset train_set(train_file, train_opts);
  const int64_t num_classes = int64_t(train_set.class_names().size());
  fmt::print("train: {} ({} images kept of {}, {} targets, {} crowd, {} boxes dropped), {} classes\n", o.train_ann,
             train_set.size(), train_set.stats().images_in_file, train_set.stats().targets, train_set.stats().ignored,
             train_set.stats().dropped_outside + train_set.stats().dropped_area + train_set.stats().dropped_small,
             num_classes);

  models::DetectorConfig cfg = make_config(o.preset, num_classes);
  if (o.static_schedule) cfg.dynamic = train::DynamicRcnnConfig::static_baseline();
  engine::TrainerOptions to;
  to.run_dir = o.out;
  to.iters = o.iters;
  to.batch = o.batch;
  to.lr = o.lr;
  to.warmup = o.warmup;
  to.steps = o.steps;
  to.momentum = o.momentum;
  to.weight_decay = o.weight_decay;
  to.grad_clip = o.grad_clip;
  to.flip = o.flip;
  to.scale_long = o.scale_long;
  to.scale_short = o.scale_short;
  to.workers = o.workers;
  to.seed = o.seed;
  to.log_every = o.log_every;
  to.checkpoint_every = o.checkpoint_every;
  to.keep = o.keep;
  to.resume = o.resume;
  to.resume_from = o.resume_from;
  to.device = device;
  engine::Trainer trainer(cfg, train_set, to);
  fmt::print("model: {}, {} threads, batch {}, {} iterations from {}, lr {} (warm-up {}), schedule {}\n", cfg.name,
             o.threads, o.batch, o.iters, trainer.iteration(), o.lr, o.warmup,
             cfg.dynamic.static_mode ? "static (Faster R-CNN)" : "dynamic (Dynamic R-CNN)");
  std::fflush(stdout);
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first = trainer.iteration();
  trainer.train();
  fmt::print("training: {} iterations in {:.1f} s\n", trainer.iteration() - first, seconds_since(t_start));
  io::save_safetensors(fs::path(o.out) / "model.safetensors", trainer.weights());
  models::TwoStageDetector<float>& model = trainer.model();
  if (!device.is_cpu()) model.to(Device::cpu());  // evaluation runs on the CPU

  if (o.val_ann.empty()) return 0;
  model.eval();
  data::ResizeOptions resize;
  resize.scales = {{o.scale_long, o.scale_short}};
  const data::CocoFile val_file = data::load_coco(o.val_ann);
  const data::CocoDataset val_set(val_file, data::CocoDatasetOptions::evaluation(o.val_images));
  std::map<int64_t, Instances> drawn;
  const auto t_eval = std::chrono::steady_clock::now();
  const eval::CocoResults results = predict_dataset(model, val_set, data::test_pipeline(resize), o, &drawn);
  fmt::print("inference: {} images, {} detections in {:.1f} s\n", val_set.size(), results.size(), seconds_since(t_eval));
  eval::save_results(results, fs::path(o.out) / "detections.json");
  const eval::CocoEvalResult metrics = eval::evaluate_bbox(val_file, results);
  fmt::print("{}{}", eval::summary_text(metrics), eval::extras_text(metrics));
  {
    std::FILE* f = std::fopen((fs::path(o.out) / "metrics.json").c_str(), "w");
    if (!f) throw Error("drcnn_train: cannot write " + (fs::path(o.out) / "metrics.json").string());
    const std::string json = eval::result_to_json(metrics);
    std::fwrite(json.data(), 1, json.size(), f);
    std::fclose(f);
  }
  fs::create_directories(fs::path(o.out) / "vis");
  for (const auto& [index, det] : drawn) {
    const data::DetectionRecord rec = val_set.record(size_t(index));
    data::Image image = data::read_image(rec.image_path);
    const std::vector<float> b = det.boxes.tensor().to_vector<float>();
    std::vector<std::array<float, 4>> boxes;
    for (size_t k = 0; k + 3 < b.size(); k += 4) boxes.push_back({b[k], b[k + 1], b[k + 2], b[k + 3]});
    const std::vector<int64_t> labels = det.labels.to_vector<int64_t>();
    const std::vector<float> scores = det.scores.to_vector<float>();
    data::DrawOptions d;
    d.score_threshold = 0.3f;
    data::draw_detections(image, boxes, labels, scores, val_set.class_names(), d);
    const fs::path png = fs::path(o.out) / "vis" / fmt::format("val_{:06d}.png", rec.image_id);
    data::write_png(png, image);
    fmt::print("drew {} ({} detections with score >= 0.3)\n", png.string(),
               std::count_if(scores.begin(), scores.end(), [](float s) { return s >= 0.3f; }));
  }
  fmt::print("wrote {}/model.safetensors, detections.json, metrics.json, vis/\n", o.out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"drcnn_train: train a Dynamic R-CNN / Faster R-CNN preset on a COCO-format dataset, then evaluate"};
  app.add_option("--train-ann", o.train_ann, "COCO annotation JSON of the training set")->required();
  app.add_option("--train-images", o.train_images, "folder the training file_names are relative to")->required();
  app.add_option("--val-ann", o.val_ann, "COCO annotation JSON of the validation set (optional)");
  app.add_option("--val-images", o.val_images, "folder of the validation images");
  app.add_option("--preset", o.preset, "small_cpu | tiny_cpu (tests) | dynamic_rcnn_r50_fpn_1x | faster_rcnn_r50_fpn_1x | dynamic_rcnn_r101_fpn_1x")
      ->capture_default_str();
  app.add_flag("--static", o.static_schedule, "Faster R-CNN baseline: fixed IoU 0.5 and beta 1.0");
  app.add_option("--iters", o.iters, "training iterations")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "images per iteration")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "base learning rate (MMDetection's 0.02 is for 16 images; scale it linearly)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", o.warmup, "linear warm-up iterations (ratio 0.001)")->capture_default_str();
  app.add_option("--steps", o.steps, "iterations where the lr is multiplied by 0.1")->delimiter(',');
  app.add_option("--grad-clip", o.grad_clip, "clip the gradients' total L2 norm (0: off; mmdet v1.1 Dynamic R-CNN: 35)")
      ->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "SGD weight decay")->capture_default_str();
  app.add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
  std::vector<int32_t> scale;
  app.add_option("--scale", scale, "resize target: long,short (keep ratio); default 1333,800")
      ->delimiter(',')->expected(2);
  app.add_option("--flip", o.flip, "horizontal flip probability")->capture_default_str();
  app.add_option("--workers", o.workers, "loader worker threads (0: load in the training thread)")->capture_default_str();
  app.add_option("--threads", o.threads, "compute threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed of the weights, the sampling and the data order")->capture_default_str();
  app.add_option("--log-every", o.log_every, "iterations per log line")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--draw", o.draw, "validation images to draw")->capture_default_str();
  app.add_option("--out", o.out, "the run folder: checkpoints/, last_checkpoint, metrics.jsonl, model.safetensors, "
                 "evaluation outputs")->capture_default_str();
  app.add_option("--device", o.device, "cpu | cuda | cuda:N (default: the first GPU when this build has CUDA and one "
                 "is visible, else the CPU)");
  app.add_option("--checkpoint-every", o.checkpoint_every, "iterations between checkpoints (0: only at the end)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--keep", o.keep, "checkpoints kept in RUN/checkpoints")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--resume", o.resume_from, "continue from RUN/last_checkpoint (no value) or from the checkpoint "
                 "PATH (a model_N.safetensors with its state_N.safetensors beside it)")
      ->expected(0, 1);
  CLI11_PARSE(app, argc, argv);
  o.resume = app.count("--resume") > 0;
  if (!scale.empty()) {
    o.scale_long = scale[0];
    o.scale_short = scale[1];
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    fmt::print(stderr, "drcnn_train: {}\n", e.what());
    return 1;
  }
}
