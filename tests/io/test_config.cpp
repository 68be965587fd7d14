// The YAML run configuration (include/drcnn/io/config.h, docs/config.md):
// - each preset equals its C++ factory field by field (the structs' defaulted operator==), and
//   RunConfig{} holds drcnn_train's flag defaults (constants written out here);
// - round trips: to_yaml -> parse gives an identical struct for the defaults, every preset,
//   every shipped file and a config with every field changed by hand (so a field the schema
//   forgets fails here); doubles come back bit for bit;
// - resolution: omitted keys keep the starting values, _base_ chains, preset over _base_,
//   --set overrides;
// - every error: the exact message for unknown keys (with the suggestion), wrong types, values
//   out of range, fields that disagree, bad YAML (line:column), bad overrides, bad _base_;
// - every file in configs/ loads and holds its published schedule;
// - docs/config.md names every key.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/source_dir.h"
#include "drcnn/io/config.h"

namespace fs = std::filesystem;
using namespace drcnn;
using io::RunConfig;

namespace {

// A scratch folder for config files, removed at the end of the test.
struct TempDir {
  fs::path root;
  explicit TempDir(const std::string& name)
      : root(fs::temp_directory_path() / ("drcnn_config_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~TempDir() { fs::remove_all(root); }
  fs::path write(const std::string& name, const std::string& text) const {
    const fs::path p = root / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }
};

// The message of the ConfigError `f` throws ("" when it does not throw).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const io::ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("io/config: each preset equals its C++ factory field by field", "[io][config]") {
  const std::vector<std::pair<std::string, models::DetectorConfig>> factories = {
      {"small_cpu", models::DetectorConfig::small_cpu(80)},
      {"tiny_cpu", models::DetectorConfig::tiny_cpu(80)},
      {"dynamic_rcnn_r50_fpn_1x", models::DetectorConfig::dynamic_rcnn_r50_fpn_1x(80)},
      {"faster_rcnn_r50_fpn_1x", models::DetectorConfig::faster_rcnn_r50_fpn_1x(80)},
      {"dynamic_rcnn_r101_fpn_1x", models::DetectorConfig::dynamic_rcnn_r101_fpn_1x(80)},
      {"seed_dynamic_rcnn_r50_fpn_1x", models::DetectorConfig::seed_dynamic_rcnn_r50_fpn_1x(80)},
      {"seed_dynamic_rcnn_r101_fpn_1x", models::DetectorConfig::seed_dynamic_rcnn_r101_fpn_1x(80)},
  };
  CHECK(io::preset_names().size() == factories.size());
  for (const auto& [name, factory] : factories) {
    INFO("preset " << name);
    const RunConfig from_yaml = io::parse_config("preset: " + name + "\n");
    RunConfig expected;
    expected.model = factory;
    INFO("loaded:\n" << io::to_yaml(from_yaml) << "factory:\n" << io::to_yaml(expected));
    CHECK(from_yaml.model == factory);
    CHECK(from_yaml == expected);
    CHECK(io::preset_config(name) == expected);
  }
  // A preset is only a starting point: the file's keys win, the rest stays the factory's.
  const RunConfig c = io::parse_config("preset: faster_rcnn_r50_fpn_1x\nmodel:\n  rpn_test:\n    nms_iou: 0.6\n");
  models::DetectorConfig f = models::DetectorConfig::faster_rcnn_r50_fpn_1x(80);
  CHECK(c.model != f);
  f.rpn_test.nms_iou = 0.6;
  CHECK(c.model == f);
}

TEST_CASE("io/config: RunConfig{} holds drcnn_train's flag defaults", "[io][config]") {
  // examples/train_detector.cpp Options, written out independently.
  const RunConfig c;
  CHECK(c.model == models::DetectorConfig::small_cpu(80));
  CHECK(c.solver.lr == 0.005);
  CHECK(c.solver.momentum == 0.9);
  CHECK(c.solver.weight_decay == 1e-4);
  CHECK(c.solver.warmup_iters == 100);
  CHECK(c.solver.warmup_ratio == 0.001);
  CHECK(c.solver.steps.empty());
  CHECK(c.solver.gamma == 0.1);
  CHECK(c.solver.max_iters == 500);
  CHECK(c.solver.images_per_batch == 2);
  CHECK(c.solver.grad_clip == 10.0);
  CHECK(c.data.scale_long == 1333);
  CHECK(c.data.scale_short == 800);
  CHECK(c.data.flip == 0.5);
  CHECK(c.data.workers == 1);
  CHECK(c.eval.draw == 4);
  CHECK(c.logging.log_every == 20);
  CHECK(c.logging.out == "drcnn_run");
  CHECK(c.threads == 1);
  CHECK(c.seed == 0);
  CHECK(c.device == "cpu");
  // An empty file and an empty path resolve to it.
  CHECK(io::parse_config("") == c);
  CHECK(io::parse_config("# nothing\n") == c);
  CHECK(io::resolve_config("", {}) == c);
}

TEST_CASE("io/config: to_yaml loads back to an identical struct", "[io][config]") {
  std::vector<RunConfig> configs{RunConfig{}};
  for (const std::string& name : io::preset_names()) configs.push_back(io::preset_config(name));

  // Every field away from its default, by hand: a field the schema does not list would keep its
  // default on the way back and break the equality.
  RunConfig c;
  models::DetectorConfig& m = c.model;
  m.name = "every: field \"changed\" # not a comment";
  m.num_classes = 7;
  m.roi_head.bbox_head.num_classes = 7;
  m.backbone.depth = 50;
  m.backbone.style = models::ResNetStyle::Caffe;
  m.backbone.norm.kind = models::NormKind::BatchNorm;
  m.backbone.norm.eps = 0.0;
  m.backbone.norm.gn_groups = 16;
  m.backbone.frozen_stages = 2;
  m.backbone.norm_eval = true;
  m.backbone.in_channels = 1;
  m.backbone.base_width = 32;
  m.anchors.detectron = true;
  c.data.normalize = {{102.9801f, 115.9465f, 122.7717f}, {1.0f, 1.0f, 1.0f}, false};
  c.init.backbone = "R-50.safetensors";
  c.init.detector = "zoo/dynamic_rcnn.safetensors";
  m.backbone.stage_with_dcn = {false, true, false, true};
  m.backbone.dcn_deform_groups = 2;
  m.neck.in_channels = {128, 256, 512, 1024};
  m.neck.out_channels = 64;
  m.neck.num_outs = 6;
  m.neck.extra = models::FpnExtra::ConvOnOutput;
  m.neck.relu_before_extra_convs = true;
  m.anchors.strides = {4, 8, 16, 32, 64, 128};
  m.anchors.ratios = {0.5, 1.0};
  m.anchors.scales = {2.0, 3.0};
  m.anchors.base_sizes = {4, 8, 16, 32, 64, 128};
  m.anchors.center_offset = 0.5;
  m.anchors.scale_major = false;
  m.rpn_head = models::RpnHeadOptions{64, 32, 4};
  m.rpn_loss.assigner = models::MaxIoUAssignerOptions{0.65, 0.1, 0.35, 0.25, false, 0.5, false};
  m.rpn_loss.assigner.low_quality_own_best = true;
  m.rpn_loss.sampler = models::RandomSamplerOptions{300, 0.4, 3.0, true};
  m.rpn_loss.target_means = {0.1, -0.1, 0.2, -0.2};
  m.rpn_loss.target_stds = {0.5, 0.5, 0.25, 0.25};
  m.rpn_loss.regression_loss = models::RpnRegressionLoss::SmoothL1;
  m.rpn_loss.smooth_l1_beta = 0.1 + 0.2;  // 0.30000000000000004: needs all 17 digits
  m.rpn_loss.cls_weight = 2.0;
  m.rpn_loss.reg_weight = 0.5;
  m.rpn_loss.allowed_border = 2.5;
  for (models::RpnProposalConfig* p : {&m.rpn_train, &m.rpn_test}) {
    p->nms_pre = p == &m.rpn_train ? -1 : 123;
    p->nms_iou = 0.75;
    p->max_per_img = 77;
    p->min_bbox_size = 1.5;
    p->small_box_rule = models::RpnSmallBoxRule::StrictAlways;
    p->means = {0.01, 0.02, 0.03, 0.04};
    p->stds = {1.5, 1.5, 2.5, 2.5};
    p->wh_ratio_clip = 0.02;
    p->nms_split_threshold = 5000;
    p->max_per_level = p == &m.rpn_train ? 333 : -1;
    p->per_batch = p == &m.rpn_train;
  }
  m.roi_head.bbox_head.in_channels = 64;
  m.roi_head.bbox_head.roi_feat_size = 5;
  m.roi_head.bbox_head.fc_out_channels = 256;
  m.roi_head.featmap_strides = {4, 8, 16};
  m.roi_head.sampling_ratio = 2;
  m.roi_head.aligned = false;
  m.roi_head.finest_scale = 28.0;
  m.roi_head.sampler = models::RandomSamplerOptions{64, 0.5, 1.0, false};
  m.roi_head.target_means = {0.5, 0.5, 0.5, 0.5};
  m.roi_head.target_stds = {0.2, 0.2, 0.3, 0.3};
  m.roi_head.cls_weight = 1.5;
  m.roi_head.reg_weight = 2.5;
  m.roi_head.score_thr = 0.001;
  m.roi_head.nms_iou = 0.6;
  m.roi_head.max_per_img = -1;
  m.size_divisor = 64;
  m.box_convention = models::BoxConvention::MaskrcnnBenchmark;
  m.dynamic = train::DynamicRcnnConfig::original();
  m.dynamic.iou_topk = 50;
  m.dynamic.beta_topk = 8;
  m.dynamic.update_interval = 77;
  m.dynamic.initial_beta = 0.75;
  m.dynamic.start_beta = 0.9;
  m.dynamic.beta_eps = 1e-300;
  m.dynamic.static_mode = true;
  c.solver = io::SolverConfig{0.02, 0.95, 5e-5, 500, 1.0 / 3.0, {60000, 80000}, 0.5, 90000, 16, 35.0};
  c.data.train = {io::DatasetFormat::Voc, "VOC2007/Annotations", "VOC2007/JPEGImages", "null"};
  c.data.val = {io::DatasetFormat::Coco, "", "~", "ignored"};
  c.data.scale_long = 1400;
  c.data.scale_short = 1000;
  c.data.multi_scale_short = {400, 600};
  c.data.multi_scale_long = 1000;
  c.data.flip = 0.0;
  c.data.workers = 0;
  c.eval = {1000, 0.5, 0, {800, 1000}, 1500, true, 0.6, 50};
  c.logging = {10, 2000, 3, "runs/r50 1x"};
  c.device = "cuda:1";
  c.seed = 18446744073709551615ull;
  c.threads = 16;
  REQUIRE_NOTHROW(io::validate(c));
  // Each group really is away from the defaults (so the round trip below tests something).
  const RunConfig d;
  CHECK(c.model != d.model);
  CHECK(c.solver != d.solver);
  CHECK(c.data != d.data);
  CHECK(c.eval != d.eval);
  CHECK(c.logging != d.logging);
  configs.push_back(c);

  for (const RunConfig& cfg : configs) {
    const std::string text = io::to_yaml(cfg);
    INFO(text);
    const RunConfig back = io::parse_config(text);
    CHECK(back == cfg);
    CHECK(io::to_yaml(back) == text);
  }
  // Doubles are written shortest-exact, integral ones with ".0".
  const std::string text = io::to_yaml(c);
  CHECK_THAT(text, Catch::Contains("smooth_l1_beta: 0.30000000000000004\n"));
  CHECK_THAT(text, Catch::Contains("beta_eps: 1e-300\n"));
  CHECK_THAT(text, Catch::Contains("grad_clip: 35.0\n"));
  CHECK_THAT(text, Catch::Contains("steps: [60000, 80000]\n"));
  CHECK_THAT(text, Catch::Contains("kind: bn\n"));
  // Float fields shortest in float, not the double they widen to.
  CHECK_THAT(text, Catch::Contains("mean: [102.9801, 115.9465, 122.7717]\n"));
  CHECK_THAT(io::to_yaml(RunConfig{}), Catch::Contains("std: [58.395, 57.12, 57.375]\n"));
  CHECK_THAT(io::to_yaml(RunConfig{}), Catch::Contains("lr: 0.005\n"));
  // bbox_head.num_classes is not a key: it is model.num_classes.
  CHECK_THAT(text, !Catch::Contains("bbox_head:\n      num_classes"));

  // save_config / load_config through a file.
  TempDir dir("roundtrip");
  io::save_config(c, dir.root / "config.yaml");
  CHECK(io::load_config(dir.root / "config.yaml") == c);
  CHECK(read_file(dir.root / "config.yaml") == text);
}

TEST_CASE("io/config: _base_ chains and preset compose, omitted keys keep the starting values", "[io][config]") {
  TempDir dir("base");
  dir.write("sched/base.yaml", "solver:\n  lr: 0.02\n  steps: [10, 20]\n  max_iters: 30\ndata:\n  flip: 0.25\n");
  dir.write("sched/mid.yaml", "_base_: base.yaml\nsolver:\n  max_iters: 40\n");
  const fs::path top = dir.write("top.yaml",
                                 "_base_: sched/mid.yaml\npreset: dynamic_rcnn_r50_fpn_1x\nmodel:\n  name: mine\n"
                                 "solver:\n  images_per_batch: 8\n");
  const RunConfig c = io::load_config(top);
  RunConfig expected;
  expected.model = models::DetectorConfig::dynamic_rcnn_r50_fpn_1x(80);
  expected.model.name = "mine";
  expected.solver.lr = 0.02;
  expected.solver.steps = {10, 20};
  expected.solver.max_iters = 40;
  expected.solver.images_per_batch = 8;
  expected.data.flip = 0.25;
  CHECK(c == expected);
  // A list is replaced whole, not merged with the base's.
  const fs::path lists = dir.write("lists.yaml", "_base_: sched/base.yaml\nsolver:\n  steps: [5]\n");
  CHECK(io::load_config(lists).solver.steps == std::vector<int64_t>{5});
  // num_classes carries to the box head.
  const RunConfig n = io::parse_config("preset: dynamic_rcnn_r50_fpn_1x\nmodel:\n  num_classes: 20\n");
  CHECK(n.model.num_classes == 20);
  CHECK(n.model.roi_head.bbox_head.num_classes == 20);

  // Errors: a missing base, a cycle.
  const fs::path missing = dir.write("missing.yaml", "_base_: nope.yaml\n");
  CHECK(error_of([&] { io::load_config(missing); }) ==
        missing.string() + ":1:9: _base_: " + (dir.root / "nope.yaml").string() +
            ": cannot open the config file: No such file or directory");
  dir.write("a.yaml", "_base_: b.yaml\n");
  const fs::path b = dir.write("b.yaml", "_base_: a.yaml\n");
  CHECK(error_of([&] { io::load_config(b); }) ==
        (dir.root / "a.yaml").string() + ":1:9: _base_: " + (dir.root / "b.yaml").string() +
            " is already being loaded (a cycle of _base_ files)");
  // An error inside a base names the base file.
  dir.write("badbase.yaml", "solver:\n  lr: fast\n");
  const fs::path uses = dir.write("uses.yaml", "_base_: badbase.yaml\n");
  CHECK(error_of([&] { io::load_config(uses); }) ==
        (dir.root / "badbase.yaml").string() + ":2:7: solver.lr: expected a number >= 0, got 'fast'");
}

TEST_CASE("io/config: --set overrides any field", "[io][config]") {
  RunConfig c = io::resolve_config("", {"solver.lr=0.01", "model.backbone.norm.kind=bn", "data.multi_scale_short=[400, 600]",
                                        "data.train.ann=a b.json", "model.anchors.strides=[4,8,16,32,64]",
                                        "model.num_classes=3", "seed=42", "device=cuda:0", "model.backbone.norm_eval=yes"});
  RunConfig e;
  e.solver.lr = 0.01;
  e.model.backbone.norm.kind = models::NormKind::BatchNorm;
  e.data.multi_scale_short = {400, 600};
  e.data.train.ann = "a b.json";
  e.model.num_classes = 3;
  e.model.roi_head.bbox_head.num_classes = 3;
  e.seed = 42;
  e.device = "cuda:0";
  e.model.backbone.norm_eval = true;
  CHECK(c == e);
  // Booleans: YAML 1.1's spellings.
  for (const auto& [text, value] : std::vector<std::pair<std::string, bool>>{
           {"true", true}, {"false", false}, {"yes", true}, {"no", false}, {"on", true}, {"off", false}}) {
    io::apply_override(c, "model.roi_head.aligned=" + text);
    CHECK(c.model.roi_head.aligned == value);
  }
  // A map value sets several keys of a group; an empty value is the empty string.
  io::apply_override(c, "eval={every: 100, draw: 0}");
  CHECK(c.eval.every == 100);
  CHECK(c.eval.draw == 0);
  io::apply_override(c, "data.train.ann=");
  CHECK(c.data.train.ann.empty());
  // Overrides apply on top of a file.
  TempDir dir("set");
  const fs::path f = dir.write("f.yaml", "preset: faster_rcnn_r50_fpn_1x\nsolver:\n  lr: 0.02\n");
  const RunConfig r = io::resolve_config(f, {"solver.lr=0.04", "model.backbone.depth=101"});
  CHECK(r.solver.lr == 0.04);
  CHECK(r.model.backbone.depth == 101);
  CHECK(r.model.dynamic.static_mode);
  // A failed override leaves the config unchanged.
  const RunConfig before = c;
  CHECK_THROWS_AS(io::apply_override(c, "model.anchors.ratios=[1.0]"), io::ConfigError);
  CHECK(c == before);
}

TEST_CASE("io/config: error messages name the source, the key, what was expected and what arrived", "[io][config]") {
  const auto err = [](const std::string& yaml) { return error_of([&] { io::parse_config(yaml, "run.yaml"); }); };
  // Unknown key: the closest valid key and the keys of that level.
  CHECK(err("model:\n  backbone:\n    dpth: 50\n") ==
        "run.yaml:3:5: model.backbone.dpth: unknown key; did you mean model.backbone.depth? (model.backbone takes: "
        "depth, style, norm, frozen_stages, norm_eval, in_channels, base_width, stage_with_dcn, dcn_deform_groups)");
  CHECK(err("solvr:\n  lr: 0.1\n") ==
        "run.yaml:1:1: solvr: unknown key; did you mean solver? (the top level takes: preset, _base_, model, solver, "
        "data, eval, logging, init, device, seed, threads, cpu_precision)");
  // Wrong types.
  CHECK(err("solver:\n  lr: fast\n") == "run.yaml:2:7: solver.lr: expected a number >= 0, got 'fast'");
  CHECK(err("solver:\n  max_iters: 1.5\n") == "run.yaml:2:14: solver.max_iters: expected an integer > 0, got '1.5'");
  CHECK(err("seed: -1\n") == "run.yaml:1:7: seed: expected an integer, got '-1'");
  CHECK(io::parse_config("solver:\n  max_iters: 010\n").solver.max_iters == 10);  // decimal, not octal
  CHECK(err("solver:\n  steps: 100\n") ==
        "run.yaml:2:10: solver.steps: expected a list of integers, ascending, each >= 0, got '100'");
  CHECK(err("solver:\n  steps: [100, x]\n") ==
        "run.yaml:2:16: solver.steps[1]: expected an integer >= 0, got 'x'");
  CHECK(err("model:\n  backbone:\n    norm:\n      kind: batchnorm\n") ==
        "run.yaml:4:13: model.backbone.norm.kind: expected one of frozen_bn | bn | gn, got 'batchnorm'");
  CHECK(err("model:\n  backbone: 50\n") == "run.yaml:2:13: model.backbone: expected a map of keys, got '50'");
  CHECK(err("model:\n  backbone:\n    norm_eval: maybe\n") ==
        "run.yaml:3:16: model.backbone.norm_eval: expected true or false, got 'maybe'");
  CHECK(err("solver:\n  lr:\n") == "run.yaml:2:3: solver.lr: expected a number >= 0, got nothing (null)");
  CHECK(err("model:\n  rpn_loss:\n    target_stds: [1, 1, 1]\n") ==
        "run.yaml:3:18: model.rpn_loss.target_stds: expected a list of 4 numbers, each > 0, got [1, 1, 1]");
  // Out of range.
  CHECK(err("solver:\n  lr: -0.02\n") == "run.yaml:2:7: solver.lr: expected a number >= 0, got '-0.02'");
  CHECK(err("solver:\n  lr: .nan\n") == "run.yaml:2:7: solver.lr: expected a number >= 0, got '.nan'");
  CHECK(err("model:\n  rpn_test:\n    nms_iou: 1.5\n") ==
        "run.yaml:3:14: model.rpn_test.nms_iou: expected a number in [0, 1], got '1.5'");
  CHECK(err("model:\n  anchors:\n    ratios: []\n") ==
        "run.yaml:3:13: model.anchors.ratios: expected a list of numbers with 1 to 16 elements, each > 0, got []");
  CHECK(err("model:\n  backbone:\n    depth: 42\n") ==
        "run.yaml:3:12: model.backbone.depth: expected an integer in {18, 34, 50, 101}, got '42'");
  CHECK(err("solver:\n  steps: [20, 10]\n") ==
        "run.yaml:2:10: solver.steps: expected a list of integers, ascending, each >= 0, got [20, 10]");
  CHECK(err("solver:\n  warmup_ratio: 0\n") ==
        "run.yaml:2:17: solver.warmup_ratio: expected a number in (0, 1], got '0'");
  CHECK(err("device: gpu\n") == "run.yaml:1:9: device: expected cpu, cuda or cuda:N, got 'gpu'");
  CHECK(err("cpu_precision: fp16\n") == "run.yaml:1:16: cpu_precision: expected fp32 or bf16, got 'fp16'");
  CHECK(io::parse_config("cpu_precision: bf16\n", "run.yaml").cpu_precision == "bf16");
  CHECK(err("data:\n  normalize:\n    std: [1, 0, 1]\n") ==
        "run.yaml:3:14: data.normalize.std[1]: expected a number > 0, got '0'");
  CHECK(err("data:\n  normalize:\n    mean: [102.98, 115.95]\n") ==
        "run.yaml:3:11: data.normalize.mean: expected a list of 3 numbers, got [102.98, 115.95]");
  CHECK(err("data:\n  normalize:\n    to_rgb: bgr\n") ==
        "run.yaml:3:13: data.normalize.to_rgb: expected true or false, got 'bgr'");
  // Fields that disagree (no single line to point at).
  CHECK(err("model:\n  anchors:\n    ratios: [1.0]\n") ==
        "run.yaml: model.rpn_head.num_anchors: must equal model.anchors' ratios x scales (1 x 1 = 1), got 3");
  CHECK(err("model:\n  backbone:\n    depth: 50\n") ==
        "run.yaml: model.neck.in_channels: must be the backbone's outputs [256, 512, 1024, 2048] (depth 50, "
        "base_width 64), got [64, 128, 256, 512]");
  // Structure and syntax.
  CHECK(err("solver:\n  lr: 0.1\n  lr: 0.2\n") == "run.yaml:3:3: solver.lr: key given twice");
  CHECK(err("solver:\n  lr: [0.1\n") == "run.yaml:3:1: invalid YAML: end of sequence flow not found");
  CHECK_THAT(err("solver:\n  steps: " + std::string(100000, '[') + "\n"),
             Catch::StartsWith("run.yaml:3:1: invalid YAML: nested deeper than yaml-cpp's limit ("));
  CHECK(err("- 1\n- 2\n") == "run.yaml:1:1: expected a map of keys at the top level, got [1, 2]");
  CHECK(err("preset: resnet50\n") ==
        "run.yaml:1:9: preset: expected one of small_cpu | tiny_cpu | dynamic_rcnn_r50_fpn_1x | faster_rcnn_r50_fpn_1x | "
        "dynamic_rcnn_r101_fpn_1x | seed_dynamic_rcnn_r50_fpn_1x | seed_dynamic_rcnn_r101_fpn_1x, got 'resnet50'");
  CHECK(error_of([] { io::load_config("/nonexistent/run.yaml"); }) ==
        "/nonexistent/run.yaml: cannot open the config file: No such file or directory");
  {
    TempDir dir("folder");
    CHECK(error_of([&] { io::load_config(dir.root); }) ==
          dir.root.string() + ": cannot open the config file: it is a directory");
  }
  CHECK(error_of([] { io::preset_config("x"); }) ==
        "preset: expected one of small_cpu | tiny_cpu | dynamic_rcnn_r50_fpn_1x | faster_rcnn_r50_fpn_1x | "
        "dynamic_rcnn_r101_fpn_1x | seed_dynamic_rcnn_r50_fpn_1x | seed_dynamic_rcnn_r101_fpn_1x, got 'x'");

  // --set: the override is the source.
  RunConfig c;
  const auto set = [&](const std::string& s) { return error_of([&] { io::apply_override(c, s); }); };
  CHECK(set("solver.lr=-1") == "--set solver.lr=-1: solver.lr: expected a number >= 0, got '-1'");
  CHECK(set("solver.lrr=0.1") ==
        "--set solver.lrr=0.1: solver.lrr: unknown key; did you mean solver.lr? (solver takes: lr, momentum, "
        "weight_decay, warmup_iters, warmup_ratio, steps, gamma, max_iters, images_per_batch, grad_clip)");
  CHECK(set("solver.lr") == "--set solver.lr: expected key.sub=value (e.g. solver.lr=0.01)");
  CHECK(set("solver..lr=1") == "--set solver..lr=1: 'solver..lr' is not a dotted key (e.g. model.backbone.depth)");
  CHECK(set("preset=small_cpu") ==
        "--set preset=small_cpu: preset: can only be given in a config file (load it, then --set on top)");
  CHECK(set("solver.steps=[1,") == "--set solver.steps=[1,: invalid YAML: end of sequence flow not found");
  CHECK(set("model.dynamic.start_iou=2") ==
        "--set model.dynamic.start_iou=2: model.dynamic.start_iou: expected a number in [0, 1], got '2'");
  CHECK(set("model.anchors.ratios=[1.0]") ==
        "--set model.anchors.ratios=[1.0]: model.rpn_head.num_anchors: must equal model.anchors' ratios x scales "
        "(1 x 1 = 1), got 3");

  // validate() on a struct built in C++.
  RunConfig v;
  v.solver.lr = -1;
  CHECK(error_of([&] { io::validate(v); }) == "config: solver.lr: expected a number >= 0, got -1.0");
  v = RunConfig{};
  v.model.roi_head.bbox_head.num_classes = 5;
  CHECK(error_of([&] { io::validate(v); }) ==
        "config: model.roi_head.bbox_head.num_classes: must equal model.num_classes (80), got 5");
}

TEST_CASE("io/config: every file in configs/ loads, resolves and holds its schedule", "[io][config]") {
  const fs::path dir = drcnn::test::source_dir() / "configs";
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  CHECK(files.size() == 19);  // 13 COCO models + 3 schedules in _base_ + small_cpu on shapes + the CPU demo (float32, bf16)
  for (const fs::path& f : files) {
    INFO(f.string());
    RunConfig c;
    REQUIRE_NOTHROW(c = io::load_config(f));
    CHECK(io::parse_config(io::to_yaml(c)) == c);
  }
  const auto load = [&](const char* name) { return io::load_config(dir / name); };

  // The seed's 1x / 2x / 3x at 16 images (spec D.1, B.13), lr 0.02, warm-up 500 from 0.001.
  // The seed's own model for its checkpoints: the preset, its input and its warm-up factor.
  const RunConfig seed = load("seed_dynamic_rcnn_r50_fpn_1x.yaml");
  CHECK(seed.model == models::DetectorConfig::seed_dynamic_rcnn_r50_fpn_1x(80));
  CHECK(seed.model.box_convention == models::BoxConvention::MaskrcnnBenchmark);
  CHECK(seed.data.normalize.mean == std::array<float, 3>{102.9801f, 115.9465f, 122.7717f});
  CHECK(seed.data.normalize.std == std::array<float, 3>{1.0f, 1.0f, 1.0f});
  CHECK_FALSE(seed.data.normalize.to_rgb);
  CHECK(seed.solver.warmup_ratio == 1.0 / 3.0);
  CHECK(seed.solver.max_iters == 90000);

  const RunConfig r50 = load("dynamic_rcnn_r50_fpn_1x.yaml");
  models::DetectorConfig model = models::DetectorConfig::dynamic_rcnn_r50_fpn_1x(80);
  CHECK(r50.model == model);
  CHECK(r50.solver.lr == 0.02);
  CHECK(r50.solver.momentum == 0.9);
  CHECK(r50.solver.weight_decay == 1e-4);
  CHECK(r50.solver.warmup_iters == 500);
  CHECK(r50.solver.warmup_ratio == 0.001);
  CHECK(r50.solver.images_per_batch == 16);
  CHECK(r50.solver.max_iters == 90000);
  CHECK(r50.solver.steps == std::vector<int64_t>{60000, 80000});
  CHECK(r50.solver.grad_clip == 0.0);
  CHECK(r50.data.scale_long == 1333);
  CHECK(r50.data.scale_short == 800);
  CHECK(r50.data.multi_scale_short.empty());
  CHECK(r50.data.flip == 0.5);
  CHECK(r50.data.train.ann == "data/coco/annotations/instances_train2017.json");
  CHECK(r50.device == "cuda");

  const RunConfig r50_2x = load("dynamic_rcnn_r50_fpn_2x.yaml");
  model.name = "dynamic_rcnn_r50_fpn_2x";
  CHECK(r50_2x.model == model);
  CHECK(r50_2x.solver.max_iters == 180000);
  CHECK(r50_2x.solver.steps == std::vector<int64_t>{120000, 160000});
  RunConfig same = r50_2x;  // only the schedule and the name differ from the 1x
  same.solver.max_iters = 90000;
  same.solver.steps = {60000, 80000};
  same.model.name = r50.model.name;
  CHECK(same == r50);

  CHECK(load("dynamic_rcnn_r101_fpn_1x.yaml").model == models::DetectorConfig::dynamic_rcnn_r101_fpn_1x(80));
  CHECK(load("dynamic_rcnn_r101_fpn_2x.yaml").solver.max_iters == 180000);
  const RunConfig ms = load("dynamic_rcnn_r101_fpn_3x_ms.yaml");
  CHECK(ms.model.backbone.depth == 101);
  CHECK(ms.solver.max_iters == 270000);
  CHECK(ms.solver.steps == std::vector<int64_t>{180000, 240000});
  CHECK(ms.data.multi_scale_short == std::vector<int32_t>{400, 600, 800, 1000, 1200});
  CHECK(ms.data.multi_scale_long == 1400);
  const data::ResizeOptions train = io::train_resize(ms.data);
  CHECK(train.scales.size() == 5);
  CHECK(train.scales[0] == std::array<int32_t, 2>{1400, 400});
  CHECK(train.scales[4] == std::array<int32_t, 2>{1400, 1200});
  CHECK(io::test_resize(ms.data).scales == std::vector<std::array<int32_t, 2>>{{1333, 800}});
  // The DCNv2 3x configs: the 3x_ms schedule and data, the r101 / r50 model with DCNv2 in layer2..4.
  for (const char* name : {"dynamic_rcnn_r101_dcnv2_fpn_3x.yaml", "dynamic_rcnn_r50_dcnv2_fpn_3x.yaml"}) {
    INFO(name);
    const RunConfig d = load(name);
    CHECK(d.solver == ms.solver);
    CHECK(d.data == ms.data);
    CHECK(d.model.backbone.stage_with_dcn == std::array<bool, 4>{false, true, true, true});
    CHECK(d.model.backbone.dcn_deform_groups == 1);
    models::DetectorConfig expect = std::string(name).find("r101") != std::string::npos
                                        ? models::DetectorConfig::dynamic_rcnn_r101_fpn_1x(80)
                                        : models::DetectorConfig::dynamic_rcnn_r50_fpn_1x(80);
    expect.name = d.model.name;
    expect.backbone.stage_with_dcn = {false, true, true, true};
    CHECK(d.model == expect);
    CHECK(d.eval.tta_short.empty());
  }
  // The seed's test-time augmentation on top of the r101 DCNv2 model.
  const RunConfig tta = load("dynamic_rcnn_r101_dcnv2_fpn_3x_tta.yaml");
  CHECK(tta.model == load("dynamic_rcnn_r101_dcnv2_fpn_3x.yaml").model);
  CHECK(tta.eval.tta_short == std::vector<int32_t>{800, 1000, 1200, 1400, 1600});
  CHECK(tta.eval.tta_long == 2000);
  CHECK(tta.eval.tta_flip);

  models::DetectorConfig faster = models::DetectorConfig::faster_rcnn_r50_fpn_1x(80);
  CHECK(load("faster_rcnn_r50_fpn_1x.yaml").model == faster);
  CHECK(load("faster_rcnn_r50_fpn_2x.yaml").solver.steps == std::vector<int64_t>{120000, 160000});
  const RunConfig f101 = load("faster_rcnn_r101_fpn_1x.yaml");
  faster.name = "faster_rcnn_r101_fpn_1x";
  faster.backbone.depth = 101;
  CHECK(f101.model == faster);
  CHECK(f101.solver == r50.solver);
  CHECK(load("faster_rcnn_r101_fpn_2x.yaml").solver == r50_2x.solver);

  // The earlier demo's settings: the small_cpu preset on shapes.
  const RunConfig demo = load("shapes_small_cpu.yaml");
  models::DetectorConfig small = models::DetectorConfig::small_cpu(6);
  CHECK(demo.model == small);
  CHECK(demo.data.scale_long == 256);
  CHECK(demo.data.scale_short == 256);
  CHECK(demo.solver.images_per_batch == 2);
  CHECK(demo.solver.max_iters == 500);
  CHECK(demo.solver.warmup_iters == 100);
  CHECK(demo.data.workers == 1);
  CHECK(demo.solver.lr == 0.005);
  CHECK(demo.device == "cpu");

  // scripts/demo.sh and scripts/ablation.sh: small_cpu at half width with the shapes' anchors
  // (docs/training.md, "The shapes demo"); every other model field is small_cpu's.
  const RunConfig shapes = load("shapes_demo.yaml");
  models::DetectorConfig half = models::DetectorConfig::small_cpu(6);
  half.name = "shapes_demo";
  half.backbone.base_width = 32;
  half.backbone.norm.gn_groups = 16;
  half.neck.in_channels = {32, 64, 128, 256};
  half.neck.out_channels = 64;
  half.anchors.scales = {2.0};
  half.rpn_head.in_channels = 64;
  half.rpn_head.feat_channels = 64;
  half.rpn_train.max_per_img = 256;
  half.roi_head.bbox_head.in_channels = 64;
  half.roi_head.bbox_head.fc_out_channels = 256;
  half.dynamic.iou_topk = 19;
  CHECK(shapes.model == half);
  CHECK(shapes.solver.lr == 0.01);
  CHECK(shapes.solver.images_per_batch == 2);
  CHECK(shapes.solver.max_iters == 4200);
  CHECK(shapes.solver.steps == std::vector<int64_t>{3412});
  CHECK(shapes.solver.warmup_iters == 100);
  CHECK(shapes.solver.grad_clip == 10.0);
  CHECK(shapes.data.scale_long == 256);
  CHECK(shapes.data.scale_short == 256);
  CHECK(shapes.device == "cpu");
  CHECK(shapes.cpu_precision == "fp32");

  // scripts/demo.sh on AVX-512 BF16 CPUs: the same run in bf16, 5400 iterations (x0.1 at 13/16).
  RunConfig bf16 = load("shapes_demo_bf16.yaml");
  CHECK(bf16.cpu_precision == "bf16");
  CHECK(bf16.solver.max_iters == 5400);
  CHECK(bf16.solver.steps == std::vector<int64_t>{4387});
  bf16.cpu_precision = shapes.cpu_precision;
  bf16.solver.max_iters = shapes.solver.max_iters;
  bf16.solver.steps = shapes.solver.steps;
  CHECK(bf16 == shapes);
}

TEST_CASE("io/config: the trainer's objects come from the config", "[io][config]") {
  io::SolverConfig s;
  s.lr = 0.02;
  s.momentum = 0.8;
  s.weight_decay = 2e-4;
  s.warmup_iters = 500;
  s.warmup_ratio = 0.25;
  s.steps = {10, 20};
  s.gamma = 0.5;
  const train::SgdOptions o = io::sgd_options(s);
  CHECK(o.lr == 0.02);
  CHECK(o.momentum == 0.8);
  CHECK(o.weight_decay == 2e-4);
  const train::LrSchedule l = io::lr_schedule(s);
  CHECK(l.base_lr == 0.02);
  CHECK(l.warmup_iters == 500);
  CHECK(l.warmup_ratio == 0.25);
  CHECK(l.steps == std::vector<int64_t>{10, 20});
  CHECK(l.gamma == 0.5);
  io::DataConfig d;
  d.scale_long = 256;
  d.scale_short = 200;
  CHECK(io::train_resize(d).scales == std::vector<std::array<int32_t, 2>>{{256, 200}});
  CHECK(io::test_resize(d).scales == std::vector<std::array<int32_t, 2>>{{256, 200}});
}

TEST_CASE("io/config: docs/config.md documents every key", "[io][config]") {
  const std::string doc = read_file(drcnn::test::source_dir() / "docs" / "config.md");
  REQUIRE(!doc.empty());
  const std::vector<io::ConfigKey> keys = io::config_keys();
  CHECK(keys.size() > 100);
  for (const io::ConfigKey& k : keys) {
    INFO(k.key);
    CHECK_THAT(doc, Catch::Contains("`" + k.key + "`"));
    CHECK(!k.doc.empty());
  }
  // Each key carries its value in the config asked about, as to_yaml writes it.
  const auto value_of = [](const std::vector<io::ConfigKey>& ks, const std::string& key) {
    for (const io::ConfigKey& k : ks)
      if (k.key == key) return k.value;
    return std::string("(missing)");
  };
  const std::vector<io::ConfigKey> r50 = io::config_keys(io::preset_config("dynamic_rcnn_r50_fpn_1x"));
  CHECK(value_of(keys, "model.backbone.depth") == "18");
  CHECK(value_of(r50, "model.backbone.depth") == "50");
  CHECK(value_of(r50, "model.backbone.norm.kind") == "bn");
  CHECK(value_of(keys, "solver.lr") == "0.005");
  CHECK(value_of(keys, "model.anchors.ratios") == "[0.5, 1.0, 2.0]");
  CHECK(value_of(keys, "logging.out") == "'drcnn_run'");
}

TEST_CASE("io/config: damaged files only ever raise ConfigError", "[io][config]") {
  // Every line cut short, and single characters replaced across the whole text by YAML's
  // structural ones: each result must load (then round-trip) or throw ConfigError, never
  // another exception (yaml-cpp's own, std::) and never a crash.
  RunConfig full;
  full.solver.steps = {10, 20};
  full.data.multi_scale_short = {400, 600};
  const std::string text = io::to_yaml(full);
  std::vector<std::string> inputs;
  for (size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1)) {
    inputs.push_back(text.substr(0, at));
    inputs.push_back(text.substr(0, at / 2 + 1));
  }
  const std::string chars = ":[]{}-,#&*!|>'\"\n\t x0.";
  for (size_t i = 0; i < text.size(); i += 17)  // every 17th byte keeps the case near 2 s
    for (char ch : chars) {
      std::string t = text;
      t[i] = ch;
      inputs.push_back(std::move(t));
    }
  size_t loaded = 0, rejected = 0;
  for (const std::string& in : inputs) {
    try {
      const RunConfig c = io::parse_config(in, "damaged.yaml");
      CHECK(io::parse_config(io::to_yaml(c)) == c);
      ++loaded;
    } catch (const io::ConfigError& e) {
      ++rejected;
      CHECK(std::string(e.what()).rfind("damaged.yaml", 0) == 0);
    } catch (const std::exception& e) {
      FAIL("input:\n" << in << "\nthrew a non-ConfigError: " << e.what());
    }
  }
  // Both outcomes occur (a replaced space inside a comment still loads; most damage is caught).
  CHECK(loaded > 0);
  CHECK(rejected > 0);
}
