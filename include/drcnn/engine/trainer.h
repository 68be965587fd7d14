// The training loop of drcnn_train as a library component: SGD with warm-up and steps, the
// Dynamic R-CNN schedule, checkpoints with exact resume, a non-finite stop, and one
// detectron2-style log line (plus a RUN/metrics.jsonl record) every log_every iterations.
// docs/training.md describes the loop, the run folder and the resume guarantee; tests:
// tests/engine/test_trainer.cpp, tests/engine/kill_resume.sh (ctest engine_kill_resume).
//
// Exact resume (CPU): the weights after N iterations are bit-identical whether the run went
// straight through or was stopped (even with SIGKILL) and resumed any number of times. Every
// input of an iteration is either in the checkpoint (weights, momentum buffers, the Dynamic
// R-CNN state and windows, the samplers' generator, the loader's epoch and batch) or a pure
// function of it (the lr of iteration i; the data order and augmentation draws, keyed by
// (seed, epoch, position) whatever the worker count).
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/core/error.h"
#include "drcnn/data/dataset.h"
#include "drcnn/data/transforms.h"
#include "drcnn/engine/checkpoint.h"
#include "drcnn/models/detector.h"

namespace drcnn::engine {

struct TrainerOptions {
  std::filesystem::path run_dir = "drcnn_run";  ///< RUN: checkpoints/, last_checkpoint, metrics.jsonl
  int64_t iters = 500;                          ///< total iterations of the run (a resume may raise it)
  int64_t batch = 2;
  double lr = 0.005;
  int64_t warmup = 100;          ///< linear warm-up iterations (ratio 0.001)
  std::vector<int64_t> steps;    ///< lr x0.1 at these iterations
  double momentum = 0.9, weight_decay = 1e-4;
  double grad_clip = 10.0;       ///< total-norm clip; 0: off (the norm is still checked for finiteness)
  double flip = 0.5;
  int32_t scale_long = 1333, scale_short = 800;
  /// Multi-scale training: (long, short) targets, one drawn per image (MMDetection
  /// multiscale_mode='value'; io::train_resize builds them from data.multi_scale_short). Empty:
  /// the single (scale_long, scale_short).
  std::vector<std::array<int32_t, 2>> train_scales;
  data::NormalizeOptions normalize;  ///< input normalisation (io::DataConfig::normalize)
  int workers = 1;               ///< loader threads (results do not depend on it)
  uint64_t seed = 0;             ///< weights (seed), sampling (seed + 1), data order and draws (seed)
  int64_t log_every = 20;
  int64_t checkpoint_every = 0;  ///< 0: only at the end
  int keep = 3;                  ///< checkpoints kept
  /// Resume: false starts at iteration 0; true continues from resume_from, or when that is
  /// empty from RUN/last_checkpoint (starting at 0 when there is none yet).
  bool resume = false;
  /// A fresh run (resume false) in a run_dir that holds an earlier run's checkpoints or
  /// last_checkpoint: false refuses to start (nothing of the earlier run is touched); true
  /// removes that run's checkpoints, last_checkpoint and metrics.jsonl first (--overwrite).
  /// A resume from resume_from earlier than the checkpoint RUN/last_checkpoint names: false
  /// refuses (the later checkpoints are the run's); true removes the later checkpoints, their
  /// metrics.jsonl records and a later model_best.
  bool overwrite = false;
  std::filesystem::path resume_from;
  /// Initial weights of a fresh run (engine::load_pretrained, logged with what it loaded): the
  /// backbone's (io::InitConfig::backbone), then the whole detector's (mmdet load_from); a
  /// resumed checkpoint replaces both. Empty: the seeded random initialisation.
  std::filesystem::path init_backbone, load_from;
  Device device = Device::cpu();
  /// Iterations between the host reads of the losses and the gradient norm (the non-finite
  /// check and the log window's values; one device-to-host copy each time). 0: every iteration
  /// on the CPU, every log_every on a GPU (no per-iteration synchronisation from the loop). The
  /// reads also happen at each log line, before each checkpoint and at the end, so a non-finite
  /// iteration is always caught before anything after it is saved; the error names that
  /// iteration even when it is found later.
  int64_t check_every = 0;
  /// Receives every log line (without the newline); default: stdout, flushed. Rank 0 only.
  std::function<void(const std::string&)> log;

  // Data parallelism (docs/distributed.md). The trainer runs on dist::world(): one process is
  // rank 0 of 1 and none of this applies; under mpirun every rank trains `batch` images per
  // iteration (images_per_gpu) on its shard of the group sampler, gradients are averaged.
  /// Linear scaling rule: `lr` is the rate for one process's `batch` images, and W ranks train
  /// with lr * W (the total batch is W * batch). false: lr as given.
  bool scale_lr = true;
  /// Dynamic R-CNN statistics: false (the seed and MMDetection): each rank records its own
  /// images' statistics, so the ranks' thresholds and betas may differ (rank 0's are logged and
  /// saved); true: every rank records the statistics of all ranks' images (gathered in rank
  /// order), so all use the same threshold and beta, as one process with the total batch.
  bool pool_dynamic_stats = false;
  /// RPN and R-CNN sampling: false: one generator the batch's images use in turn (the
  /// single-process default); true: each image its own generator keyed by (seed, iteration, its
  /// place in the global batch). Always true with several ranks, so that W ranks of B images
  /// sample as one process of W * B images with this option.
  bool per_image_sampling = false;
  /// Gradient buckets of about this many MiB, all-reduced as soon as complete (PyTorch DDP: 25).
  double bucket_mb = 25.0;

  // Evaluation during training (--eval-every; docs/training.md "Evaluation during training").
  /// Every eval_every iterations before the last (the program evaluates the final weights
  /// itself), `evaluate(model, iteration)` runs with the model in eval mode on every rank (it
  /// may be a sharded collective), then the model returns to training mode; it changes nothing
  /// the training reads, so the weights are the same with or without it. Rank 0's result
  /// (metric name -> value; other ranks return {}) is logged and appended to metrics.jsonl as
  /// {"iteration": N, "bbox/<name>": value, ...}; when its `best_metric` beats every earlier
  /// evaluation of the run, RUN/model_best.safetensors receives the weights and
  /// RUN/model_best.json the iteration and value (both atomically). 0: off.
  int64_t eval_every = 0;
  std::function<std::map<std::string, double>(const models::TwoStageDetector<float>& model, int64_t iteration)>
      evaluate;
  std::string best_metric = "AP";
  /// Called on every rank after each iteration's backward (and gradient all-reduce), before
  /// clipping and the step, with the iteration (1-based, as logged) and the trained parameters,
  /// whose grad() hold its gradients: for inspection or, in tests, to inject a fault. It must
  /// not change anything when the run is to stay reproducible.
  std::function<void(int64_t iteration, const std::vector<Variable>& params)> after_backward;
};

/// A run stopped by a non-finite loss or gradient norm. The message names the iteration, each
/// loss, the lr, the IoU threshold and beta; nothing was written for that iteration.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

/// One log line's values (what metrics.jsonl records).
struct LogRecord {
  int64_t iteration = 0;                 ///< iterations completed
  double eta_seconds = 0;
  std::map<std::string, double> losses;  ///< window medians (detectron2), total_loss included
  double lr = 0, iou_threshold = 0, beta = 0;
  double time = 0, data_time = 0;        ///< window means, seconds per iteration
  double max_mem_mb = 0;                 ///< peak host RSS (CPU) or device pool (GPU), MiB
};

class Trainer {
 public:
  /// Builds the model (weights from Generator(seed)), optimizer, schedules and loader, and
  /// restores a checkpoint when options.resume says so. `dataset` must outlive the trainer.
  /// Throws drcnn::Error for bad options (naming the option) and for a checkpoint that does
  /// not fit (another preset, batch, seed, ...: the setting, its saved and its given value).
  Trainer(const models::DetectorConfig& config, const data::DetectionDataset& dataset, TrainerOptions options);
  ~Trainer();

  /// Trains up to options.iters, saving checkpoints every checkpoint_every iterations and at
  /// the end. Throws NonFiniteError when a loss or the gradient norm is not finite.
  void train();

  /// The iterations completed (the resumed one before train()).
  int64_t iteration() const;
  models::TwoStageDetector<float>& model();
  /// The model's weights by name (on the CPU), as the checkpoints store them.
  std::map<std::string, Tensor> weights() const;
  /// The log records written so far by this process.
  const std::vector<LogRecord>& log_records() const;
  /// The best evaluation of the run so far (eval_every): its iteration (0: none yet) and value.
  std::pair<int64_t, double> best() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m;
};

/// train::clip_grad_norm without reading anything on the host: the same float64 operations in
/// the same order on 0-d tensors of the parameters' device (sequential sum of the squared
/// norms, sqrt, max_norm / (total + 1e-6), applied when total > max_norm and finite), so the
/// gradients come out bit-identical to clip_grad_norm's. max_norm 0: the norm only. Returns the
/// total norm before clipping, a 0-d float64 tensor (0 when no parameter has a gradient).
Tensor clip_grad_norm_on_device(const std::vector<Variable>& params, double max_norm);

/// Appends {"iteration": N, "bbox/<name>": value, ...} to a metrics.jsonl: the record of an
/// evaluation (Trainer's eval_every, and drcnn_train's final one); report.html plots them.
void append_eval_record(const std::filesystem::path& metrics_jsonl, int64_t iteration,
                        const std::map<std::string, double>& metrics);

/// "cpu", "cuda" or "cuda:N" -> a Device; "" -> the first CUDA device when this build has CUDA
/// and one is visible, else the CPU. Throws drcnn::Error naming `flag` for a malformed value,
/// for CUDA in a build without it and for a device that is not visible (with the reason).
Device parse_device(const std::string& text, const std::string& flag = "--device");

}  // namespace drcnn::engine
