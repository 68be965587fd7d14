// engine::load_pretrained: the initial weights of a fresh run (init.backbone / init.detector,
// mmdet's init_cfg Pretrained and load_from), by name, with missing and unexpected names
// reported and shape mismatches refused.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "common/allclose.h"
#include "common/files.h"
#include "drcnn/core/error.h"
#include "drcnn/engine/init_weights.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/detector.h"

namespace {

using namespace drcnn;

// tiny_cpu's heads on a caffe-style ResNet-50 of base width 4 with frozen BN eps 0: the trunk the
// seed trains from (Detectron's R-50.pkl through tools/convert_checkpoint.py), narrowed.
models::DetectorConfig caffe_r50_config() {
  models::DetectorConfig c = models::DetectorConfig::tiny_cpu(3);
  c.backbone.depth = 50;
  c.backbone.base_width = 4;
  c.backbone.style = models::ResNetStyle::Caffe;
  c.backbone.norm.kind = models::NormKind::FrozenBatchNorm;
  c.backbone.norm.eps = 0.0;
  c.neck.in_channels = {16, 32, 64, 128};
  return c;
}

std::map<std::string, Tensor> state_of(const Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : m.state_dict()) out.emplace(name, t.clone());
  return out;
}

// What tools/convert_checkpoint.py writes from a Detectron pickle: the trunk in torchvision's
// names, affine channels as frozen BN with mean 0 and variance 1, plus (here) one blob the
// model has no place for.
std::map<std::string, Tensor> detectron_style_trunk(const std::map<std::string, Tensor>& detector) {
  std::map<std::string, Tensor> trunk;
  const std::string prefix = "backbone.";
  for (const auto& [name, t] : detector) {
    if (name.rfind(prefix, 0) != 0) continue;
    Tensor v = t.clone();
    if (name.ends_with(".running_mean")) v = Tensor::zeros(t.shape(), t.dtype());
    if (name.ends_with(".running_var")) v = Tensor::ones(t.shape(), t.dtype());
    trunk.emplace(name.substr(prefix.size()), v);
  }
  trunk.emplace("fc.weight", Tensor::ones({10, 4}, DType::Float32));
  return trunk;
}

}  // namespace

TEST_CASE("load_pretrained: a Detectron-style trunk into the caffe-style ResNet of a detector", "[engine][init]") {
  const std::filesystem::path dir = test::fresh_dir("init_weights", "trunk");
  const models::DetectorConfig cfg = caffe_r50_config();
  Generator g1(1), g2(2), g2b(2);
  const models::TwoStageDetector<float> source(cfg, g1);
  std::map<std::string, Tensor> trunk = detectron_style_trunk(state_of(source));
  const std::string removed = "layer3.2.conv2.weight";
  const Tensor kept_value = trunk.at(removed);
  trunk.erase(removed);
  io::save_safetensors(dir / "R-50.safetensors", trunk);

  models::TwoStageDetector<float> model(cfg, g2);
  const models::TwoStageDetector<float> fresh(cfg, g2b);  // the same random initialisation
  const std::map<std::string, Tensor> before = state_of(fresh);
  const engine::PretrainedReport r = engine::load_pretrained(model, dir / "R-50.safetensors", "init.backbone", "backbone.");
  CHECK(r.loaded.size() == trunk.size() - 1);
  CHECK(r.missing == std::vector<std::string>{"backbone." + removed});
  CHECK(r.unexpected == std::vector<std::string>{"backbone.fc.weight"});
  CHECK(r.outside == 0);
  const std::string summary = r.summary();
  CHECK_THAT(summary, Catch::Contains("init.backbone " + (dir / "R-50.safetensors").string() + ": loaded " +
                                      std::to_string(trunk.size() - 1) + " tensors"));
  CHECK_THAT(summary, Catch::Contains("missing, left as initialised (1):\n    backbone.layer3.2.conv2.weight"));
  CHECK_THAT(summary, Catch::Contains("unexpected, ignored (1):\n    backbone.fc.weight"));

  // Every backbone tensor from the file, the missing one and everything else as initialised.
  const std::map<std::string, Tensor> after = state_of(model);
  for (const auto& [name, t] : after) {
    INFO(name);
    const std::string local = name.rfind("backbone.", 0) == 0 ? name.substr(9) : std::string();
    if (!local.empty() && trunk.count(local)) CHECK(test::bitwise_equal(t, trunk.at(local)));
    else CHECK(test::bitwise_equal(t, before.at(name)));
  }
  CHECK(!test::bitwise_equal(after.at("backbone." + removed), kept_value));  // not loaded: seed 2's value
}

TEST_CASE("load_pretrained: a detector file as backbone, a whole detector, and the errors", "[engine][init]") {
  const std::filesystem::path dir = test::fresh_dir("init_weights", "errors");
  const models::DetectorConfig cfg = caffe_r50_config();
  Generator g1(1), g2(2);
  const models::TwoStageDetector<float> source(cfg, g1);
  const std::map<std::string, Tensor> full = state_of(source);
  io::save_safetensors(dir / "detector.safetensors", full);

  // A detector's file given for the backbone: its backbone.* only, the rest counted outside.
  models::TwoStageDetector<float> model(cfg, g2);
  const engine::PretrainedReport r = engine::load_pretrained(model, dir / "detector.safetensors", "init.backbone",
                                                             "backbone.");
  int64_t backbone_tensors = 0;
  for (const auto& [name, t] : full) backbone_tensors += name.rfind("backbone.", 0) == 0;
  CHECK(int64_t(r.loaded.size()) == backbone_tensors);
  CHECK(r.outside == int64_t(full.size()) - backbone_tensors);
  CHECK(r.missing.empty());
  CHECK(r.unexpected.empty());
  CHECK_THAT(r.summary(), Catch::Contains("lie outside and are not used"));

  // The whole detector (load_from): every tensor.
  const engine::PretrainedReport w = engine::load_pretrained(model, dir / "detector.safetensors", "init.detector");
  CHECK(w.loaded.size() == full.size());
  for (const auto& [name, t] : model.state_dict()) CHECK(test::bitwise_equal(t, full.at(name)));

  // A shape mismatch: one error naming the option, the file and the tensor; nothing written.
  std::map<std::string, Tensor> bad = detectron_style_trunk(full);
  bad.at("layer1.0.conv1.weight") = Tensor::zeros({5, 16, 1, 1}, DType::Float32);
  bad.at("layer2.0.conv2.weight") = Tensor::zeros({8, 8, 1, 1}, DType::Float32);
  io::save_safetensors(dir / "bad.safetensors", bad);
  Generator g4(4);
  models::TwoStageDetector<float> target(cfg, g4);
  const std::map<std::string, Tensor> untouched = state_of(target);
  try {
    engine::load_pretrained(target, dir / "bad.safetensors", "init.backbone", "backbone.");
    FAIL("a shape mismatch must throw");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Catch::Contains("init.backbone " + (dir / "bad.safetensors").string() + ": "));
    CHECK_THAT(m, Catch::Contains("shape or dtype mismatches (2):"));
    CHECK_THAT(m, Catch::Contains("backbone.layer1.0.conv1.weight: expected"));
    CHECK_THAT(m, Catch::Contains("backbone.layer2.0.conv2.weight: expected"));
  }
  for (const auto& [name, t] : target.state_dict()) CHECK(test::bitwise_equal(t, untouched.at(name)));

  // A file with nothing the model has (an unconverted .pth's names) and a missing file.
  io::save_safetensors(dir / "other.safetensors", {{"module.backbone.body.stem.conv1.weight", Tensor::zeros({4})}});
  try {
    engine::load_pretrained(target, dir / "other.safetensors", "init.backbone", "backbone.");
    FAIL("no fitting name must throw");
  } catch (const Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("none of its 1 tensors fits a name of the model under "
                                                      "'backbone.' (the file's first: "
                                                      "'module.backbone.body.stem.conv1.weight'"));
    CHECK_THAT(std::string(e.what()), Catch::Contains("tools/convert_checkpoint.py"));
  }
  CHECK_THROWS_WITH(engine::load_pretrained(target, dir / "absent.safetensors", "init.detector"),
                    Catch::StartsWith("init.detector " + (dir / "absent.safetensors").string() +
                                      ": cannot read the weights: "));
  std::filesystem::remove_all(dir);
}
