// The run configuration: every setting of a training run (the detector, the solver, the data,
// evaluation, logging, device, seed, threads) in one struct, read from and written to YAML
// (yaml-cpp, private to src/io/config.cpp). Keys, defaults, override syntax and error
// examples: docs/config.md; shipped files: configs/.
//
//   RunConfig cfg = resolve_config("configs/dynamic_rcnn_r50_fpn_1x.yaml", {"solver.lr=0.01"});
//   save_config(cfg, out / "config.yaml");        // loads back to an identical struct
//
// A file starts from `_base_: <other.yaml>` (relative to the file; resolved the same way) or
// else from RunConfig{} (the small_cpu preset); `preset: <name>` then replaces the model with
// that DetectorConfig factory's; then the file's keys replace values, field by field. Unknown keys, wrong types and values out of
// range throw ConfigError naming the file (line:column), the full dotted key, what was
// expected and what arrived.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "drcnn/core/error.h"
#include "drcnn/data/transforms.h"
#include "drcnn/models/detector.h"
#include "drcnn/train/lr_schedule.h"
#include "drcnn/train/sgd.h"

namespace drcnn::io {

/// SGD, learning-rate schedule and iteration counts (drcnn_train's --lr ... --grad-clip).
struct SolverConfig {
  double lr = 0.005;          ///< base lr; MMDetection's 0.02 is for 16 images (scale linearly)
  double momentum = 0.9;
  double weight_decay = 1e-4;
  int64_t warmup_iters = 100;   ///< linear warm-up iterations (0: none)
  double warmup_ratio = 0.001;  ///< lr factor at iteration 0
  std::vector<int64_t> steps;   ///< ascending iterations where the lr is multiplied by gamma
  double gamma = 0.1;
  int64_t max_iters = 500;
  int64_t images_per_batch = 2;
  double grad_clip = 10.0;  ///< max total L2 norm of the gradients; 0: off
  friend bool operator==(const SolverConfig&, const SolverConfig&) = default;
};

enum class DatasetFormat { Coco, Voc };

/// One dataset split.
struct DatasetConfig {
  DatasetFormat format = DatasetFormat::Coco;
  /// COCO: the annotation JSON; VOC: the folder of <id>.xml files (VOC2007/Annotations).
  std::string ann;
  /// The folder the images are read from (COCO file_names are relative to it; VOC JPEGImages).
  std::string images;
  /// VOC only: the image-id list (ImageSets/Main/<split>.txt); empty: every XML in `ann`.
  std::string image_list;
  friend bool operator==(const DatasetConfig&, const DatasetConfig&) = default;
};

struct DataConfig {
  DatasetConfig train;
  DatasetConfig val;  ///< ann empty: no evaluation
  /// Resize target (long edge, short edge), aspect ratio kept: the test scale, and the training
  /// scale unless multi_scale_short is set.
  int32_t scale_long = 1333, scale_short = 800;
  /// Multi-scale training: each training image draws its short side from this list, its long
  /// side capped at multi_scale_long (MMDetection multiscale_mode='value'). Empty: single scale.
  std::vector<int32_t> multi_scale_short;
  int32_t multi_scale_long = 1333;
  double flip = 0.5;  ///< horizontal flip probability (training)
  int workers = 1;    ///< loader worker threads (0: load in the training thread)
  /// Input normalisation of the training, test and TTA pipelines (MMDetection's img_norm_cfg;
  /// the seed's INPUT.PIXEL_MEAN / PIXEL_STD / TO_BGR255 is mean (102.9801, 115.9465, 122.7717),
  /// std 1, to_rgb false). Default: ImageNet RGB mean/std.
  data::NormalizeOptions normalize;
  friend bool operator==(const DataConfig&, const DataConfig&) = default;
};

struct EvalConfig {
  int64_t every = 0;  ///< evaluate on data.val every N iterations; 0: only after training
  /// Detection score threshold at evaluation is model.roi_head.score_thr; this one only
  /// selects what is drawn.
  double draw_score_thr = 0.3;
  int64_t draw = 4;  ///< validation images to draw
  /// Test-time augmentation (eval/tta.h, MMDetection MultiScaleFlipAug + merge): the short sides
  /// of the views, each with long edge tta_long (empty: off, one view at data.scale_*), each also
  /// flipped with tta_flip; merged by per-class NMS at tta_nms_iou, top tta_max_per_img.
  std::vector<int32_t> tta_short;
  int32_t tta_long = 2000;
  bool tta_flip = false;
  double tta_nms_iou = 0.5;
  int64_t tta_max_per_img = 100;
  friend bool operator==(const EvalConfig&, const EvalConfig&) = default;
};

struct LoggingConfig {
  int64_t log_every = 20;        ///< iterations per log line
  int64_t checkpoint_every = 0;  ///< iterations between checkpoints; 0: only the final weights
  int64_t keep = 0;              ///< checkpoints kept (older ones deleted); 0: all
  std::string out = "drcnn_run"; ///< output folder
  friend bool operator==(const LoggingConfig&, const LoggingConfig&) = default;
};

/// Initial weights of a fresh run (a resumed run takes its checkpoint's); safetensors files in
/// drcnn's names (tools/convert_checkpoint.py writes them from published files). Relative paths
/// are relative to the working directory. engine::load_pretrained loads them.
struct InitConfig {
  /// The backbone's weights (mmdet init_cfg=dict(type='Pretrained'); detectron2's MODEL.WEIGHTS
  /// of an ImageNet model): a trunk in torchvision's names, or a detector's backbone.* tensors.
  std::string backbone;
  /// A whole detector's weights (mmdet load_from), loaded after `backbone`.
  std::string detector;
  friend bool operator==(const InitConfig&, const InitConfig&) = default;
};

/// Everything a run needs. The defaults are drcnn_train's flag defaults with the small_cpu
/// preset (80 classes; the trainer sets num_classes from its dataset).
struct RunConfig {
  models::DetectorConfig model = models::DetectorConfig::small_cpu(80);
  SolverConfig solver;
  DataConfig data;
  EvalConfig eval;
  LoggingConfig logging;
  InitConfig init;
  std::string device = "cpu";  ///< cpu | cuda | cuda:N
  uint64_t seed = 0;           ///< weights, sampling and data order
  int threads = 1;             ///< CPU compute threads
  std::string cpu_precision = "fp32";  ///< fp32 | bf16: CPU convolutions (ops/cpu_precision.h)
  friend bool operator==(const RunConfig&, const RunConfig&) = default;
};

/// A bad configuration: the message names the source (file:line:column or "--set ..."), the
/// full dotted key, what was expected and what arrived.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// The names `preset:` accepts (the DetectorConfig factories): small_cpu, tiny_cpu,
/// dynamic_rcnn_r50_fpn_1x, faster_rcnn_r50_fpn_1x, dynamic_rcnn_r101_fpn_1x.
std::vector<std::string> preset_names();

/// RunConfig{} with model = the named factory (80 classes). Throws ConfigError for an unknown
/// name (listing the known ones).
RunConfig preset_config(const std::string& name);

/// Reads a YAML file: its starting values (`_base_:` or RunConfig{}), the model of `preset:`
/// when given, then its keys on top; then validate(). `_base_` paths are relative to the file;
/// chains may nest (a cycle is an error). An empty file gives RunConfig{}.
RunConfig load_config(const std::filesystem::path& path);

/// The same from YAML text; `source` names it in errors and `_base_` is relative to
/// source's folder.
RunConfig parse_config(const std::string& yaml, const std::string& source = "<string>");

/// Applies one --set: "key.sub=value" with the full dotted key (e.g. solver.lr=0.01,
/// model.backbone.norm.kind=gn, data.multi_scale_short=[400,600]); the value is YAML (a
/// scalar, or a flow list / map). Then validate(). Throws ConfigError naming the override.
void apply_override(RunConfig& cfg, const std::string& assignment);

/// The call a program makes: load_config(path) (or the small_cpu preset when path is empty),
/// then each override in order.
RunConfig resolve_config(const std::filesystem::path& path, const std::vector<std::string>& overrides);

/// Throws ConfigError (source "config") for a value out of range or fields that disagree
/// (e.g. rpn_head.num_anchors vs the anchors' ratios x scales).
void validate(const RunConfig& cfg);

/// Every field as YAML (no preset or _base_): what a run saves as RUN/config.yaml.
/// parse_config(to_yaml(c)) == c for every valid c (doubles are written shortest-exact).
std::string to_yaml(const RunConfig& cfg);
/// to_yaml into a file (overwritten). Throws ConfigError when it cannot be written.
void save_config(const RunConfig& cfg, const std::filesystem::path& path);

/// One key of the schema: its full dotted name, what it accepts, what it means and its value in
/// a given config (docs/config.md lists them; a test checks every key is documented there).
struct ConfigKey {
  std::string key;    ///< e.g. "model.backbone.depth"
  std::string type;   ///< e.g. "an integer in {18, 34, 50, 101}", "one of frozen_bn | bn | gn"
  std::string doc;    ///< one line
  std::string value;  ///< as YAML, e.g. "0.005", "[4, 8, 16]", "'drcnn_run'" (strings quoted)
};
/// Every key in to_yaml's order, with its value in `cfg`.
std::vector<ConfigKey> config_keys(const RunConfig& cfg = {});

// ---------------------------------------------------------------- what a trainer builds from it
/// The training resize: multi-scale when data.multi_scale_short is set, else the one scale.
data::ResizeOptions train_resize(const DataConfig& d);
/// The test resize: (scale_long, scale_short).
data::ResizeOptions test_resize(const DataConfig& d);
/// SgdOptions from the solver (lr, momentum, weight decay).
train::SgdOptions sgd_options(const SolverConfig& s);
/// The lr schedule (base lr, warm-up, steps, gamma).
train::LrSchedule lr_schedule(const SolverConfig& s);

}  // namespace drcnn::io
