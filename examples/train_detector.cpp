// drcnn_train: trains a detector on a COCO or Pascal VOC dataset (engine::Trainer: checkpoints,
// exact resume, the log line and RUN/metrics.jsonl), then evaluates it on a validation set with
// the pycocotools-equal evaluator, writes the detections as COCO results JSON, the metrics as
// JSON, the weights as safetensors, and draws the detections of a few validation images. The loop is the one MMDetection runs for
// dynamic_rcnn: SGD with linear warm-up and steps, and the Dynamic R-CNN schedule fed by the
// RoI head's statistics every iteration (docs/training.md).
//
//   drcnn_train --train-ann A.json --train-images DIR --val-ann B.json --val-images DIR
//               [--preset small_cpu] [--iters 500] [--batch 2] [--lr 0.005] [--out DIR] ...
//   drcnn_train --config configs/X.yaml [--set solver.lr=0.01 ...] [flags]
// Settings resolve in this order: the --config file (or the --preset's defaults), then each flag
// given on the command line, then each --set; the result is saved as RUN/config.yaml.
// scripts/demo.sh runs it on the synthetic shapes dataset (examples/make_shapes.cpp).
// Data parallel: `mpirun -np N drcnn_train ...` (docs/distributed.md): --batch images per rank,
// each rank on the GPU of its local rank; rank 0 alone prints, writes and evaluates the gathered
// detections; any rank's error ends the whole job (MPI_Abort).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/data/coco.h"
#include "drcnn/data/draw.h"
#include "drcnn/data/image.h"
#include "drcnn/data/loader.h"
#include "drcnn/data/voc.h"
#include "drcnn/dist/communicator.h"
#include "drcnn/engine/trainer.h"
#include "drcnn/eval/coco_eval.h"
#include "drcnn/io/config.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/detector.h"
#include "drcnn/ops/cpu_precision.h"
#include "drcnn/train/dynamic_schedule.h"
#include "tool_support.h"

using namespace drcnn;
namespace fs = std::filesystem;
using tools::load_split;
using tools::Split;

namespace {

// What run() needs beyond the RunConfig: the resume request and the --overwrite flag.
struct Options {
  io::RunConfig cfg;
  std::string device;  // empty: the default (engine::parse_device)
  bool resume = false, overwrite = false;
  std::string resume_from;
  // Data parallelism (TrainerOptions; docs/distributed.md).
  bool lr_scaling = true, pool_stats = false, per_image_sampling = false;
  double bucket_mb = 25.0;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run(Options& o) {
  io::RunConfig& c = o.cfg;
  // The first line says where the run trains (and why, when the default picked the CPU).
  dist::Communicator& comm = dist::world();
  Device device = engine::parse_device(o.device);
  if (device.is_cuda() && comm.size() > 1) {
    // Each rank takes the GPU of its local rank (of those this process sees).
    const int n = cuda::device_count();
    DRCNN_CHECK(o.device.empty() || o.device == "cuda", "--device ", o.device, ": with ", comm.size(),
                " ranks each rank picks the GPU of its local rank; give --device cuda (or cpu) and restrict the GPUs "
                "with CUDA_VISIBLE_DEVICES");
    DRCNN_CHECK(comm.local_size() <= n, comm.local_size(), " ranks on this machine but only ", n,
                " GPUs are visible: start at most one rank per GPU");
    device = Device::cuda(comm.local_rank());
  }
  if (comm.size() > 1)
    fmt::print("data parallel: rank {} of {} (launcher {}), local rank {} of {}\n", comm.rank(), comm.size(),
               comm.launcher(), comm.local_rank(), comm.local_size());
  fmt::print("device: {}{}\n", device,
             o.device.empty() ? (device.is_cpu() ? fmt::format(" (default; no GPU: {})", cuda::unavailable_reason())
                                                 : std::string(" (default: the first visible GPU)"))
                              : std::string());
  if (c.data.train.ann.empty() || c.data.train.images.empty())
    throw Error("no training set: give --train-ann and --train-images, or data.train.ann and data.train.images in "
                "--config (or --set data.train.ann=...)");
  set_cpu_threads(c.threads);
  ops::set_cpu_precision(ops::parse_cpu_precision(c.cpu_precision, "cpu_precision"));
  if (c.cpu_precision != "fp32") fmt::print("CPU precision: {} convolutions\n", c.cpu_precision);
  const fs::path out = c.logging.out;
  fs::create_directories(out);
  const Split train = load_split(c.data.train, true, {});
  const std::vector<std::string>& classes = train.dataset->class_names();
  const int64_t num_classes = int64_t(classes.size());
  fmt::print("train: {}, {} classes\n", train.describe, num_classes);
  if (c.model.num_classes != num_classes)
    fmt::print("model: num_classes {} -> {} (the training set's)\n", c.model.num_classes, num_classes);
  c.model.num_classes = num_classes;
  c.model.roi_head.bbox_head.num_classes = num_classes;
  c.device = fmt::format("{}", device);
  io::validate(c);

  const models::DetectorConfig& cfg = c.model;
  engine::TrainerOptions to;
  to.run_dir = out;
  to.iters = c.solver.max_iters;
  to.batch = c.solver.images_per_batch;
  to.lr = c.solver.lr;
  to.warmup = c.solver.warmup_iters;
  to.steps = c.solver.steps;
  to.momentum = c.solver.momentum;
  to.weight_decay = c.solver.weight_decay;
  to.grad_clip = c.solver.grad_clip;
  to.flip = c.data.flip;
  to.scale_long = c.data.scale_long;
  to.scale_short = c.data.scale_short;
  if (!c.data.multi_scale_short.empty()) to.train_scales = io::train_resize(c.data).scales;  // multi-scale training
  to.workers = c.data.workers;
  to.normalize = c.data.normalize;
  to.init_backbone = c.init.backbone;
  to.load_from = c.init.detector;
  to.seed = c.seed;
  to.log_every = c.logging.log_every;
  to.checkpoint_every = c.logging.checkpoint_every;
  to.keep = c.logging.keep > 0 ? int(c.logging.keep) : std::numeric_limits<int>::max();
  to.resume = o.resume;
  to.resume_from = o.resume_from;
  to.overwrite = o.overwrite;
  to.device = device;
  to.scale_lr = o.lr_scaling;
  to.pool_dynamic_stats = o.pool_stats;
  to.per_image_sampling = o.per_image_sampling;
  to.bucket_mb = o.bucket_mb;
  // --eval-every: the validation set, loaded once, evaluated on the training device into
  // RUN/eval/iter_N/ (detections.json, metrics.json, vis/), and RUN/report.html rewritten.
  std::optional<Split> periodic_val;
  if (c.eval.every > 0) {
    DRCNN_CHECK(!c.data.val.ann.empty(), "--eval-every ", c.eval.every,
                ": there is no validation set to evaluate (give --val-ann and --val-images, or data.val)");
    periodic_val.emplace(load_split(c.data.val, false, classes));
    to.eval_every = c.eval.every;
    to.evaluate = [&](const models::TwoStageDetector<float>& m, int64_t it) -> std::map<std::string, double> {
      const fs::path dir = out / "eval" / fmt::format("iter_{:07d}", it);
      std::vector<tools::ReportImage> shown_now;
      const auto r = tools::evaluate_split_sharded(m, *periodic_val, classes, c, device, dir,
                                                   fmt::format("drcnn_train (iteration {})", it), &shown_now);
      if (!r) return {};
      tools::write_report(out, out, fmt::format("drcnn_train: {} ({}, evaluated at iteration {})", out.string(), cfg.name, it),
                          shown_now, dir / "metrics.json");
      return tools::summary_metrics(*r);
    };
  }
  engine::Trainer trainer(cfg, *train.dataset, to);
  // Only now: a refused resume or a taken folder must leave the earlier run's config as it was.
  if (comm.is_main()) io::save_config(c, out / "config.yaml");
  fmt::print("model: {}, {} threads, batch {}, {} iterations from {}, lr {} (warm-up {}), schedule {}; config {}\n",
             cfg.name, c.threads, to.batch, to.iters, trainer.iteration(), to.lr, to.warmup,
             cfg.dynamic.static_mode ? "static (Faster R-CNN)" : "dynamic (Dynamic R-CNN)",
             (out / "config.yaml").string());
  std::fflush(stdout);
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first = trainer.iteration();
  trainer.train();
  fmt::print("training: {} iterations in {:.1f} s\n", trainer.iteration() - first, seconds_since(t_start));
  if (comm.is_main()) io::save_safetensors(out / "model.safetensors", trainer.weights());
  models::TwoStageDetector<float>& model = trainer.model();
  if (!device.is_cpu()) model.to(Device::cpu());  // evaluation runs on the CPU

  std::vector<tools::ReportImage> shown;  // for report.html: ground truth and predictions
  if (!c.data.val.ann.empty()) {
    model.eval();
    const Split val = load_split(c.data.val, false, classes);
    fmt::print("val: {}\n", val.describe);
    const auto r = tools::evaluate_split_sharded(model, val, classes, c, Device::cpu(), out, "drcnn_train", &shown);
    if (r) engine::append_eval_record(out / "metrics.jsonl", trainer.iteration(), tools::summary_metrics(*r));
  }
  if (!comm.is_main()) return 0;
  tools::write_report(out, out, fmt::format("drcnn_train: {} ({}, {} iterations)", out.string(), cfg.name, trainer.iteration()),
                      shown);
  fmt::print("wrote {}/model.safetensors, config.yaml, report.html{}\n", out.string(),
             c.data.val.ann.empty() ? "" : ", detections.json, metrics.json, vis/");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Flag targets; a flag given on the command line replaces the config's field (see below).
  std::string config_path, preset = "small_cpu", train_format = "coco", val_format = "coco";
  std::vector<std::string> sets;
  io::RunConfig d;  // defaults shown in --help
  std::string train_ann, train_images, train_list, val_ann, val_images, val_list, out = d.logging.out;
  int64_t iters = d.solver.max_iters, batch = d.solver.images_per_batch, warmup = d.solver.warmup_iters;
  int64_t log_every = d.logging.log_every, draw = d.eval.draw, checkpoint_every = d.logging.checkpoint_every, keep = 3;
  int64_t eval_every = d.eval.every;
  std::vector<int64_t> steps;
  double lr = d.solver.lr, weight_decay = d.solver.weight_decay, momentum = d.solver.momentum, flip = d.data.flip,
         grad_clip = d.solver.grad_clip;
  int workers = d.data.workers, threads = d.threads;
  uint64_t seed = d.seed;
  bool static_schedule = false;
  std::vector<int32_t> scale;
  std::string init_backbone, load_from;
  Options o;
  double dist_timeout = 0;

  CLI::App app{"drcnn_train: train a Dynamic R-CNN / Faster R-CNN on a COCO or Pascal VOC dataset, then evaluate"};
  app.add_option("--config", config_path, "YAML run config (configs/*.yaml, docs/config.md); flags and --set override it")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sets, "override any config field: key.sub=value (repeatable; applied last, in order)");
  app.add_option("--train-ann", train_ann, "training annotations: a COCO JSON file, or a VOC folder of <id>.xml");
  app.add_option("--train-images", train_images, "folder of the training images");
  app.add_option("--train-format", train_format, "coco | voc")->check(CLI::IsMember({"coco", "voc"}));
  app.add_option("--train-list", train_list, "VOC: image-id list (ImageSets/Main/<split>.txt); default: every XML");
  app.add_option("--val-ann", val_ann, "validation annotations (COCO JSON or VOC folder; optional)");
  app.add_option("--val-images", val_images, "folder of the validation images");
  app.add_option("--val-format", val_format, "coco | voc")->check(CLI::IsMember({"coco", "voc"}));
  app.add_option("--val-list", val_list, "VOC: validation image-id list");
  app.add_option("--preset", preset, "small_cpu | tiny_cpu (tests) | dynamic_rcnn_r50_fpn_1x | faster_rcnn_r50_fpn_1x | dynamic_rcnn_r101_fpn_1x")
      ->capture_default_str();
  app.add_flag("--static", static_schedule, "Faster R-CNN baseline: fixed IoU 0.5 and beta 1.0");
  app.add_option("--iters", iters, "training iterations")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "images per iteration")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "base learning rate (MMDetection's 0.02 is for 16 images; scale it linearly)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", warmup, "linear warm-up iterations (ratio 0.001)")->capture_default_str();
  app.add_option("--steps", steps, "iterations where the lr is multiplied by 0.1")->delimiter(',');
  app.add_option("--grad-clip", grad_clip, "clip the gradients' total L2 norm (0: off; mmdet v1.1 Dynamic R-CNN: 35)")
      ->capture_default_str();
  app.add_option("--weight-decay", weight_decay, "SGD weight decay")->capture_default_str();
  app.add_option("--momentum", momentum, "SGD momentum")->capture_default_str();
  app.add_option("--scale", scale, "resize target: long,short (keep ratio); default 1333,800")
      ->delimiter(',')->expected(2);
  app.add_option("--flip", flip, "horizontal flip probability")->capture_default_str();
  app.add_option("--init-backbone", init_backbone, "backbone weights (safetensors, e.g. tools/convert_checkpoint.py's "
                 "ResNet from torchvision or Detectron; config init.backbone)");
  app.add_option("--load-from", load_from, "whole-detector weights to start from (safetensors; mmdet load_from; "
                 "config init.detector)");
  app.add_option("--workers", workers, "loader worker threads (0: load in the training thread)")->capture_default_str();
  app.add_option("--threads", threads, "compute threads")->capture_default_str()->check(CLI::PositiveNumber);
  bool cpu_bf16 = false;
  app.add_flag("--cpu-bf16", cpu_bf16, "bfloat16 CPU convolutions (f32 accumulation, f32 weights and optimizer; "
               "needs AVX-512 BF16) = cpu_precision: bf16");
  app.add_option("--seed", seed, "seed of the weights, the sampling and the data order")->capture_default_str();
  app.add_option("--log-every", log_every, "iterations per log line")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--draw", draw, "validation images to draw")->capture_default_str();
  app.add_option("--eval-every", eval_every,
                 "evaluate on the validation set every N iterations (COCO summary logged and in metrics.jsonl, "
                 "RUN/model_best.safetensors kept by AP, report.html rewritten; 0: only after training)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", out, "the run folder: config.yaml, checkpoints/, last_checkpoint, metrics.jsonl, "
                 "model.safetensors, evaluation outputs")->capture_default_str();
  app.add_option("--device", o.device, "cpu | cuda | cuda:N (default: the first GPU when this build has CUDA and one "
                 "is visible, else the CPU)");
  app.add_option("--checkpoint-every", checkpoint_every, "iterations between checkpoints (0: only at the end)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--keep", keep, "checkpoints kept in RUN/checkpoints (without --config: 3)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--resume", o.resume_from, "continue from RUN/last_checkpoint (no value) or from the checkpoint "
                 "PATH (a model_N.safetensors with its state_N.safetensors beside it)")
      ->expected(0, 1);
  app.add_flag("--overwrite", o.overwrite, "start a new run in a RUN folder that holds an earlier run, removing that "
               "run's checkpoints, last_checkpoint and metrics.jsonl (without it such a folder is refused); with --resume PATH "
               "to an earlier checkpoint than the run's newest, remove the later ones (refused without it)");
  app.add_option("--dist-timeout", dist_timeout, "data parallel: seconds a collective may take before the run stops "
                 "with an error naming it (a rank died or hangs; default 300, or DRCNN_DIST_TIMEOUT)")
      ->check(CLI::PositiveNumber);
  app.add_option("--lr-scaling", o.lr_scaling, "data parallel: linear scaling rule, lr x ranks (--lr is for one "
                 "process's --batch images)")->capture_default_str();
  app.add_flag("--pool-dynamic-stats", o.pool_stats, "data parallel: Dynamic R-CNN statistics of all ranks' images "
               "(one threshold and beta for every rank) instead of each rank's own (MMDetection)");
  app.add_flag("--per-image-sampling", o.per_image_sampling, "RPN/R-CNN sampling from a stream per image keyed by "
               "(seed, iteration, place in the global batch): always on with several ranks; on one process it makes "
               "the run sample as a data-parallel one with the same total batch");
  app.add_option("--bucket-mb", o.bucket_mb, "data parallel: gradient bucket size, MiB")->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  o.resume = app.count("--resume") > 0;
  const auto given = [&](const char* flag) { return app.count(flag) > 0; };

  dist::Communicator* comm = nullptr;
  try {
    comm = &dist::world();
    if (dist_timeout > 0) comm->set_timeout(dist_timeout);
    // Rank 0 alone prints; the others keep stderr for their errors.
    if (!comm->is_main() && !std::freopen("/dev/null", "w", stdout))
      throw Error("cannot redirect the standard output of rank " + std::to_string(comm->rank()));
    // 1. The file (or, without one, the --preset's model with drcnn_train's defaults).
    io::RunConfig& c = o.cfg;
    if (!config_path.empty()) {
      c = io::load_config(config_path);
      if (given("--preset")) c.model = io::preset_config(preset).model;
    } else {
      c = io::preset_config(preset);
      c.logging.keep = 3;
    }
    // 2. Each flag given on the command line.
    if (given("--train-ann")) c.data.train.ann = train_ann;
    if (given("--train-images")) c.data.train.images = train_images;
    if (given("--train-format")) c.data.train.format = train_format == "voc" ? io::DatasetFormat::Voc : io::DatasetFormat::Coco;
    if (given("--train-list")) c.data.train.image_list = train_list;
    if (given("--val-ann")) c.data.val.ann = val_ann;
    if (given("--val-images")) c.data.val.images = val_images;
    if (given("--val-format")) c.data.val.format = val_format == "voc" ? io::DatasetFormat::Voc : io::DatasetFormat::Coco;
    if (given("--val-list")) c.data.val.image_list = val_list;
    if (static_schedule) c.model.dynamic = train::DynamicRcnnConfig::static_baseline();
    if (given("--iters")) c.solver.max_iters = iters;
    if (given("--batch")) c.solver.images_per_batch = batch;
    if (given("--lr")) c.solver.lr = lr;
    if (given("--warmup")) c.solver.warmup_iters = warmup;
    if (given("--steps")) c.solver.steps = steps;
    if (given("--grad-clip")) c.solver.grad_clip = grad_clip;
    if (given("--weight-decay")) c.solver.weight_decay = weight_decay;
    if (given("--momentum")) c.solver.momentum = momentum;
    if (given("--scale")) {
      c.data.scale_long = scale[0];
      c.data.scale_short = scale[1];
    }
    if (given("--flip")) c.data.flip = flip;
    if (given("--init-backbone")) c.init.backbone = init_backbone;
    if (given("--load-from")) c.init.detector = load_from;
    if (given("--workers")) c.data.workers = workers;
    if (given("--threads")) c.threads = threads;
    if (given("--cpu-bf16")) c.cpu_precision = "bf16";
    if (given("--seed")) c.seed = seed;
    if (given("--log-every")) c.logging.log_every = log_every;
    if (given("--draw")) c.eval.draw = draw;
    if (given("--eval-every")) c.eval.every = eval_every;
    if (given("--out")) c.logging.out = out;
    if (given("--checkpoint-every")) c.logging.checkpoint_every = checkpoint_every;
    if (given("--keep")) c.logging.keep = keep;
    // 3. Each --set, in order (checked against the schema: errors name the key).
    for (const std::string& s : sets) io::apply_override(c, s);
    // The device: --device, else the file's `device:`, else the default (first GPU or the CPU);
    // run() checks it (naming the flag) and records the one it trains on in c.device.
    if (!given("--device") && !config_path.empty()) o.device = c.device;
    io::validate(c);
    const int rc = run(o);
    comm->shutdown();
    return rc;
  } catch (const std::exception& e) {
    if (comm && comm->size() > 1) {
      // One rank's error ends the job: the others would wait for it in their next collective.
      fmt::print(stderr, "drcnn_train: rank {} of {}: {}\ndrcnn_train: rank {}: stopping every rank (MPI_Abort)\n",
                 comm->rank(), comm->size(), e.what(), comm->rank());
      comm->abort(1);
    }
    fmt::print(stderr, "drcnn_train: {}\n", e.what());
    return 1;
  }
}
