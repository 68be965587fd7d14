// engine/trainer: exact resume in process (stopped twice, mid-epoch, bit-identical weights and
// checkpoint files), the log line and metrics.jsonl, the non-finite stop, refused resumes,
// and --device parsing. The SIGKILL test with the real drcnn_train is tests/engine/kill_resume.sh.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include <fmt/core.h>

#include "drcnn/core/error.h"
#include "drcnn/data/coco.h"
#include "drcnn/data/shapes.h"
#include "common/files.h"
#include "common/shapes_set.h"
#include "drcnn/engine/trainer.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/ops/cpu_precision.h"
#include "drcnn/train/sgd.h"

using namespace drcnn;
using namespace drcnn::engine;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) { return test::fresh_dir("trainer", name); }
using test::slurp;

/// Six 64x64 shapes images (COCO files on disk, read through the real loader).
struct ShapesSet : test::ShapesSet {
  explicit ShapesSet(const std::string& name) : test::ShapesSet("trainer", name) {}
};

models::DetectorConfig tiny_config(int64_t num_classes) { return models::DetectorConfig::tiny_cpu(num_classes); }

TrainerOptions tiny_options(const fs::path& run, int64_t iters) {
  TrainerOptions o;
  o.run_dir = run;
  o.iters = iters;
  o.batch = 2;
  o.lr = 0.01;
  o.warmup = 2;
  o.scale_long = o.scale_short = 64;
  o.workers = 1;
  o.seed = 5;
  o.log_every = 2;
  o.checkpoint_every = 3;
  o.keep = 2;
  o.log = [](const std::string&) {};
  return o;
}

/// Trains `t`; the message of the NonFiniteError that stopped it ("" when none did).
std::string train_until_non_finite(Trainer& t) {
  try {
    t.train();
  } catch (const NonFiniteError& e) {
    return e.what();
  }
  return {};
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.dtype() == y.dtype() && x.shape() == y.shape() &&
         std::memcmp(x.data_ptr(), y.data_ptr(), size_t(x.numel()) * dtype_size(x.dtype())) == 0;
}

}  // namespace

TEST_CASE("engine/trainer: a run stopped and resumed twice ends bit-identical to one left alone", "[engine][trainer]") {
  const ShapesSet set("resume");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path a = fresh_dir("resume_a"), b = fresh_dir("resume_b");
  // 7 iterations over 3 batches per epoch: the resumes at 3 and 5 land mid-epoch, mid-window
  // of the Dynamic R-CNN schedule (interval 2) and inside the lr warm-up.
  Trainer straight(tiny_config(nc), *set.dataset, tiny_options(a, 7));
  straight.train();
  {
    Trainer first(tiny_config(nc), *set.dataset, tiny_options(b, 3));
    first.train();
  }
  {
    TrainerOptions o = tiny_options(b, 5);
    o.resume = true;
    o.workers = 0;  // the worker count does not change the batches
    Trainer second(tiny_config(nc), *set.dataset, o);
    CHECK(second.iteration() == 3);
    second.train();
  }
  TrainerOptions o = tiny_options(b, 7);
  o.resume = true;
  o.resume_from = b / "checkpoints" / "model_0000005.safetensors";  // --resume PATH
  Trainer third(tiny_config(nc), *set.dataset, o);
  CHECK(third.iteration() == 5);
  third.train();

  const auto wa = straight.weights(), wb = third.weights();
  REQUIRE(wa.size() == wb.size());
  for (const auto& [name, t] : wa) {
    INFO(name);
    CHECK(same_bytes(t, wb.at(name)));
  }
  // The final checkpoints are the same bytes: weights, momentum, schedule windows, generators
  // and loader position all continued exactly.
  for (const char* f : {"checkpoints/model_0000007.safetensors", "checkpoints/state_0000007.safetensors"}) {
    INFO(f);
    CHECK(slurp(a / f) == slurp(b / f));
  }
  // And the run trained: the weights moved from their initial values.
  Generator init(5);
  models::TwoStageDetector<float> fresh(tiny_config(nc), init);
  CHECK_FALSE(same_bytes(fresh.state_dict().back().second, wa.at(fresh.state_dict().back().first)));
  const Checkpoint c = load_checkpoint(b / "checkpoints" / "model_0000007.safetensors");
  CHECK(c.state.schedule.iteration == 7);
  CHECK(c.state.generators.at("sample").offset > 0);
  CHECK(c.state.loader_epoch == 2);  // 7 batches of 3 per epoch: epochs 0, 1 and one batch of 2
  CHECK(c.state.loader_next_batch == 1);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("engine/trainer: log lines, metrics.jsonl, checkpoints kept, and a fresh run in an old folder",
          "[engine][trainer]") {
  const ShapesSet set("log");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path run = fresh_dir("log");
  TrainerOptions o = tiny_options(run, 6);
  o.checkpoint_every = 2;
  std::vector<std::string> lines;
  o.log = [&](const std::string& l) { lines.push_back(l); };
  Trainer t(tiny_config(nc), *set.dataset, o);
  t.train();
  REQUIRE(lines.size() == 3);  // iterations 2, 4, 6
  for (const char* field : {"eta: ", "iter: 4/6", "total_loss: ", "loss_rpn_cls: ", "loss_rpn_bbox: ", "loss_cls: ",
                            "loss_bbox: ", "iou_thr: ", "beta: ", "time: ", "data_time: ", "lr: ", "max_mem: "})
    CHECK_THAT(lines[1], Contains(field));
  CHECK_THAT(lines[1], Contains("drcnn.train]: "));

  // metrics.jsonl: one object per log line with the same values.
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  size_t k = 0;
  const auto& records = t.log_records();
  REQUIRE(records.size() == 3);
  while (std::getline(in, line)) {
    REQUIRE(k < records.size());
    const nlohmann::json j = nlohmann::json::parse(line);
    const LogRecord& r = records[k++];
    CHECK(j.at("iteration").get<int64_t>() == r.iteration);
    CHECK(j.at("total_loss").get<double>() == r.losses.at("total_loss"));
    for (const char* loss : {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"})
      CHECK(j.at(loss).get<double>() == r.losses.at(loss));
    CHECK(j.at("lr").get<double>() == r.lr);
    CHECK(j.at("iou_threshold").get<double>() == r.iou_threshold);
    CHECK(j.at("beta").get<double>() == r.beta);
    CHECK(j.at("time").get<double>() == r.time);
    CHECK(j.at("data_time").get<double>() == r.data_time);
    CHECK(j.at("eta_seconds").get<double>() == r.eta_seconds);
    CHECK(j.at("max_mem_mb").get<double>() > 0);
  }
  CHECK(k == 3);
  CHECK(records[2].iteration == 6);
  CHECK(records[2].eta_seconds == 0);
  CHECK(std::isfinite(records[2].losses.at("total_loss")));
  // The lr after warm-up (2 iterations) is the base lr.
  CHECK(records[2].lr == 0.01);
  // --keep 2 of the checkpoints at 2, 4, 6.
  CHECK_FALSE(fs::exists(run / "checkpoints" / "model_0000002.safetensors"));
  CHECK(fs::exists(run / "checkpoints" / "model_0000004.safetensors"));
  CHECK(fs::exists(run / "checkpoints" / "state_0000006.safetensors"));
  CHECK(slurp(run / "last_checkpoint") == "checkpoints/model_0000006.safetensors\n");

  // A new run (no resume) in the same folder is refused unless told to overwrite, and the
  // earlier run's files stay as they were.
  {
    TrainerOptions refused = tiny_options(run, 1);
    REQUIRE_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, refused),
                        Contains("holds an earlier run's checkpoints (last_checkpoint: ") &&
                            Contains("continue it with --resume, replace it with --overwrite"));
    CHECK(slurp(run / "last_checkpoint") == "checkpoints/model_0000006.safetensors\n");
    CHECK(fs::exists(run / "checkpoints" / "state_0000006.safetensors"));
  }
  // With overwrite it replaces the old run's files and says so.
  TrainerOptions o2 = tiny_options(run, 1);
  o2.overwrite = true;
  std::vector<std::string> lines2;
  o2.log = [&](const std::string& l) { lines2.push_back(l); };
  Trainer t2(tiny_config(nc), *set.dataset, o2);
  CHECK(t2.iteration() == 0);
  REQUIRE_FALSE(lines2.empty());
  // 2 checkpoints (model and state files) and last_checkpoint.
  CHECK_THAT(lines2[0], Contains("new run (no --resume): removed 5 files"));
  CHECK_FALSE(fs::exists(run / "last_checkpoint"));
  t2.train();
  std::ifstream in2(run / "metrics.jsonl");
  std::vector<std::string> all;
  while (std::getline(in2, line)) all.push_back(line);
  REQUIRE(all.size() == 1);
  CHECK(nlohmann::json::parse(all[0]).at("iteration") == 1);
  fs::remove_all(run);
}

TEST_CASE("engine/trainer: a non-finite loss stops the run, naming the losses, lr, IoU threshold and beta",
          "[engine][trainer]") {
  const ShapesSet set("nan");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path run = fresh_dir("nan");
  TrainerOptions o = tiny_options(run, 20);
  o.lr = 1e30;  // the first step throws the weights to ~1e30: the next forward overflows
  o.warmup = 0;
  o.grad_clip = 0;
  o.checkpoint_every = 1;
  Trainer t(tiny_config(nc), *set.dataset, o);
  const std::string message = train_until_non_finite(t);
  REQUIRE_FALSE(message.empty());
  INFO(message);
  CHECK_THAT(message, Contains("non-finite") && Contains("loss_rpn_cls ") && Contains("loss_cls ") &&
                          Contains("loss_bbox ") && Contains("total_loss ") && Contains("lr 1e+30") &&
                          Contains("IoU threshold 0.5") && Contains("beta 1") && Contains("the last checkpoint is untouched"));
  // It stopped at iteration t.iteration() + 1: the last checkpoint is the one before, complete
  // and finite, and nothing was written for the failing iteration.
  const int64_t done = t.iteration();
  CHECK(done < 20);
  CHECK_THAT(message, Contains(fmt::format("at iteration {}:", done + 1)));
  REQUIRE(done >= 1);
  const auto last = last_checkpoint(run);
  REQUIRE(last.has_value());
  CHECK(*last == run / "checkpoints" / checkpoint_file_name(done));
  CHECK_FALSE(fs::exists(run / "checkpoints" / checkpoint_file_name(done + 1)));
  const Checkpoint c = load_checkpoint(*last);
  CHECK(c.state.iteration == done);
  fs::remove_all(run);
}

TEST_CASE("engine/trainer: a non-finite gradient with finite losses stops the run before its step",
          "[engine][trainer]") {
  const ShapesSet set("nangrad");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path run = fresh_dir("nangrad");
  TrainerOptions o = tiny_options(run, 6);
  o.checkpoint_every = 2;
  // One gradient element of iteration 3 becomes NaN after the backward (a fault no loss shows:
  // the losses of iteration 3 are the finite values the model computed).
  std::vector<Tensor> weights_seen;
  std::optional<Variable> first_param;  // shares the model's storage
  o.after_backward = [&](int64_t iteration, const std::vector<Variable>& params) {
    REQUIRE_FALSE(params.empty());
    if (iteration != 3) return;
    first_param = params[0];
    weights_seen.push_back(params[0].data().clone());
    REQUIRE(params[0].has_grad());
    params[0].grad().data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  };
  Trainer t(tiny_config(nc), *set.dataset, o);
  const std::string message = train_until_non_finite(t);
  INFO(message);
  REQUIRE_FALSE(message.empty());
  CHECK_THAT(message, Contains("non-finite gradient norm (nan) at iteration 3") && Contains("loss_cls ") &&
                          Contains("total_loss ") && Contains("lr ") && Contains("IoU threshold ") &&
                          Contains("beta ") && Contains("the last checkpoint is untouched"));
  // The losses it names are finite numbers.
  CHECK(message.find("nan,") == std::string::npos);
  CHECK(message.find("inf") == std::string::npos);
  // It stopped before the step of iteration 3: the weights are those iteration 3 started from,
  // and the last checkpoint is iteration 2's, with nothing written for 3.
  CHECK(t.iteration() == 2);
  REQUIRE(weights_seen.size() == 1);
  REQUIRE(first_param.has_value());
  CHECK(same_bytes(first_param->data(), weights_seen[0]));
  const auto last = last_checkpoint(run);
  REQUIRE(last.has_value());
  CHECK(*last == run / "checkpoints" / checkpoint_file_name(2));
  CHECK_FALSE(fs::exists(run / "checkpoints" / checkpoint_file_name(3)));
  CHECK(load_checkpoint(*last).state.iteration == 2);
  fs::remove_all(run);
}

TEST_CASE("engine/trainer: multi-scale training reaches the pipeline, reproducibly, and is a recorded setting",
          "[engine][trainer]") {
  const ShapesSet set("multiscale");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path single = fresh_dir("ms_single"), m1 = fresh_dir("ms_a"), m2 = fresh_dir("ms_b");
  const auto multi = [](const fs::path& run, int64_t iters) {
    TrainerOptions o = tiny_options(run, iters);
    o.train_scales = {{64, 32}, {64, 48}};  // each image draws one (MMDetection multiscale_mode='value')
    return o;
  };
  Trainer s(tiny_config(nc), *set.dataset, tiny_options(single, 2));
  s.train();
  Trainer a(tiny_config(nc), *set.dataset, multi(m1, 2));
  a.train();
  Trainer b(tiny_config(nc), *set.dataset, multi(m2, 2));
  b.train();
  const auto ws = s.weights(), wa = a.weights(), wb = b.weights();
  bool differs_from_single = false;
  for (const auto& [name, t] : wa) {
    INFO(name);
    CHECK(same_bytes(t, wb.at(name)));  // the same seed draws the same scales
    differs_from_single = differs_from_single || !same_bytes(t, ws.at(name));
  }
  CHECK(differs_from_single);  // images at 32 and 48 px, not the single 64, were trained on
  // The scales shape the trajectory, so the checkpoint records them: a single-scale resume is refused.
  TrainerOptions o = tiny_options(m1, 3);
  o.resume = true;
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o),
                    Contains("trained with scale 64,32;64,48, this run has scale 64,64"));
  fs::remove_all(single);
  fs::remove_all(m1);
  fs::remove_all(m2);
}

TEST_CASE("engine/trainer: a resume may change lr steps that have not acted yet, and continues exactly",
          "[engine][trainer]") {
  // A schedule's prefix up to its first step is the prefix of every longer one: a run stopped
  // before its step continues under a longer schedule as if it had been started with it.
  const ShapesSet set("steps");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path a = fresh_dir("steps_a"), b = fresh_dir("steps_b");
  TrainerOptions long_run = tiny_options(a, 7);
  long_run.steps = {5};
  Trainer straight(tiny_config(nc), *set.dataset, long_run);
  straight.train();
  {
    TrainerOptions short_run = tiny_options(b, 3);
    short_run.steps = {3};  // acts from iteration 3 on: not yet at the checkpoint of iteration 3
    Trainer first(tiny_config(nc), *set.dataset, short_run);
    first.train();
  }
  TrainerOptions o = tiny_options(b, 7);
  o.steps = {5};
  o.resume = true;
  std::vector<std::string> lines;
  o.log = [&](const std::string& l) { lines.push_back(l); };
  Trainer resumed(tiny_config(nc), *set.dataset, o);
  REQUIRE(resumed.iteration() == 3);
  bool said = false;
  for (const auto& l : lines) said = said || l.find("resume: lr steps [5] at iteration 3, the checkpoint's run had [3]") != std::string::npos;
  CHECK(said);
  resumed.train();
  for (const char* f : {"checkpoints/model_0000007.safetensors", "checkpoints/state_0000007.safetensors"}) {
    INFO(f);
    CHECK(slurp(a / f) == slurp(b / f));
  }
  // A step that has acted must stay: [2] -> [5] is refused at iteration 3, [2] -> [2,5] is not.
  const fs::path c = fresh_dir("steps_c");
  {
    TrainerOptions x = tiny_options(c, 3);
    x.steps = {2};
    Trainer t(tiny_config(nc), *set.dataset, x);
    t.train();
  }
  o = tiny_options(c, 7);
  o.resume = true;
  o.steps = {5};
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o),
                    Contains("model_0000003.safetensors") && Contains("trained with steps 2, this run has steps 5"));
  o.steps = {2, 5};
  Trainer kept(tiny_config(nc), *set.dataset, o);
  CHECK(kept.iteration() == 3);
  fs::remove_all(a);
  fs::remove_all(b);
  fs::remove_all(c);
}

TEST_CASE("engine/trainer: a resume with other settings is refused, naming the setting", "[engine][trainer]") {
  const ShapesSet set("refuse");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path run = fresh_dir("refuse");
  {
    Trainer t(tiny_config(nc), *set.dataset, tiny_options(run, 1));
    t.train();
  }
  TrainerOptions o = tiny_options(run, 2);
  o.resume = true;
  o.seed = 6;
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o),
                    Contains("model_0000001.safetensors") && Contains("trained with seed 5, this run has seed 6"));
  if (ops::cpu_has_bf16()) {  // bf16 convolutions change the trajectory: recorded and checked
    o = tiny_options(run, 2);
    o.resume = true;
    ops::set_cpu_precision(ops::CpuPrecision::BFloat16);
    CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o),
                      Contains("trained with cpu_precision fp32, this run has cpu_precision bf16"));
    ops::set_cpu_precision(ops::CpuPrecision::Float32);
  }
  o = tiny_options(run, 2);
  o.resume = true;
  o.normalize.std[1] = 1.0f;  // data.normalize shapes every input: recorded and checked
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o),
                    Contains("trained with normalize mean 123.675,116.28,103.53 std 58.395,57.12,57.375 rgb, this run "
                             "has normalize mean 123.675,116.28,103.53 std 58.395,1,57.375 rgb"));
  o = tiny_options(run, 2);
  o.resume = true;
  o.normalize.to_rgb = false;
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o), Contains("57.375 rgb, this run has normalize") &&
                                                                   Contains("57.375 bgr"));
  {  // A checkpoint written before normalize was recorded resumes, and the log says it was not checked.
    const fs::path old_run = fresh_dir("refuse_old");
    Checkpoint c = load_checkpoint(run / "checkpoints" / "model_0000001.safetensors");
    REQUIRE(c.state.run_settings.erase("normalize") == 1);
    save_checkpoint(old_run, c.weights, c.state, 2);
    TrainerOptions x = tiny_options(old_run, 2);
    x.resume = true;
    std::vector<std::string> said;
    x.log = [&](const std::string& l) { said.push_back(l); };
    Trainer t(tiny_config(nc), *set.dataset, x);
    CHECK(t.iteration() == 1);
    REQUIRE_FALSE(said.empty());
    CHECK_THAT(said[0], Contains("does not record its input normalisation") && Contains("is not checked against it"));
    fs::remove_all(old_run);
  }
  o = tiny_options(run, 2);
  o.resume = true;
  o.resume_from = run / "checkpoints" / "model_0000009.safetensors";
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o), Contains("model_0000009.safetensors: no such file"));
  // A run that ended at 1 cannot be "resumed" to fewer iterations; to as many it has nothing to do.
  Trainer done(tiny_config(nc), *set.dataset, [&] {
    TrainerOptions x = tiny_options(run, 1);
    x.resume = true;
    return x;
  }());
  CHECK(done.iteration() == 1);
  done.train();
  CHECK(done.iteration() == 1);
  CHECK(done.log_records().empty());
  {
    TrainerOptions x = tiny_options(run, 3);
    x.resume = true;
    Trainer more(tiny_config(nc), *set.dataset, x);
    more.train();
    CHECK(more.iteration() == 3);
  }
  TrainerOptions fewer = tiny_options(run, 2);
  fewer.resume = true;
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, fewer),
                    Contains("model_0000003.safetensors: the checkpoint is at iteration 3 but --iters is 2"));
  // --resume in a folder without last_checkpoint starts at 0 and says so.
  const fs::path empty = fresh_dir("refuse_empty");
  o = tiny_options(empty, 1);
  o.resume = true;
  std::vector<std::string> lines;
  o.log = [&](const std::string& l) { lines.push_back(l); };
  Trainer t(tiny_config(nc), *set.dataset, o);
  CHECK(t.iteration() == 0);
  REQUIRE_FALSE(lines.empty());
  CHECK_THAT(lines[0], Contains("last_checkpoint does not exist yet: starting at iteration 0"));
  fs::remove_all(run);
  fs::remove_all(empty);
}

TEST_CASE("engine/trainer: --resume PATH to an earlier checkpoint removes the later ones only with --overwrite",
          "[engine][trainer]") {
  const ShapesSet set("branch");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path run = fresh_dir("branch");
  TrainerOptions o = tiny_options(run, 6);
  o.checkpoint_every = 2;
  o.keep = 3;
  {
    Trainer t(tiny_config(nc), *set.dataset, o);
    t.train();
  }
  const fs::path ck = run / "checkpoints";
  const std::string model4 = slurp(ck / "model_0000004.safetensors"), model6 = slurp(ck / "model_0000006.safetensors");
  const std::string metrics = slurp(run / "metrics.jsonl"), pointer = slurp(run / "last_checkpoint");
  REQUIRE(fs::exists(ck / "model_0000002.safetensors"));

  // Refused: nothing in the folder changes.
  o.resume = true;
  o.resume_from = ck / "model_0000002.safetensors";
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, o),
                    Contains("model_0000002.safetensors") && Contains("holds later checkpoints of its run") &&
                        Contains("model_0000006.safetensors, iteration 6") && Contains("pass --overwrite"));
  CHECK(slurp(ck / "model_0000004.safetensors") == model4);
  CHECK(slurp(ck / "model_0000006.safetensors") == model6);
  CHECK(slurp(run / "metrics.jsonl") == metrics);
  CHECK(slurp(run / "last_checkpoint") == pointer);

  // The newest checkpoint itself (or a later one) needs no consent.
  {
    TrainerOptions same = o;
    same.resume_from = ck / "model_0000006.safetensors";
    Trainer t(tiny_config(nc), *set.dataset, same);
    CHECK(t.iteration() == 6);
  }

  // With --overwrite: the later checkpoints go, and the branch retrains them to the same bytes
  // (exact resume), with metrics.jsonl cut at iteration 2 and written again after it.
  o.overwrite = true;
  std::vector<std::string> lines;
  o.log = [&](const std::string& l) { lines.push_back(l); };
  {
    Trainer t(tiny_config(nc), *set.dataset, o);
    CHECK(t.iteration() == 2);
    CHECK_FALSE(fs::exists(ck / "model_0000004.safetensors"));
    CHECK_FALSE(fs::exists(ck / "model_0000006.safetensors"));
    // The pointer follows: a branch killed before its first checkpoint continues with a plain
    // --resume from where it branched (it used to name the removed model_6 and refuse).
    CHECK(slurp(run / "last_checkpoint") == "checkpoints/model_0000002.safetensors\n");
    {
      TrainerOptions plain = o;
      plain.resume_from.clear();
      plain.overwrite = false;
      CHECK(Trainer(tiny_config(nc), *set.dataset, plain).iteration() == 2);
    }
    t.train();
  }
  bool said = false;
  for (const auto& l : lines) said = said || l.find("model_0000006.safetensors (after the resumed iteration") != std::string::npos;
  CHECK(said);
  CHECK(slurp(ck / "model_0000004.safetensors") == model4);
  CHECK(slurp(ck / "model_0000006.safetensors") == model6);
  // The same iterations logged once each (the times in the records differ from run to run).
  const auto iterations = [](const std::string& text) {
    std::vector<int64_t> its;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) its.push_back(nlohmann::json::parse(line).at("iteration").get<int64_t>());
    return its;
  };
  CHECK(iterations(slurp(run / "metrics.jsonl")) == iterations(metrics));
  CHECK(iterations(metrics) == std::vector<int64_t>{2, 4, 6});
  fs::remove_all(run);
}

TEST_CASE("engine/trainer: --device values", "[engine][trainer]") {
  CHECK(parse_device("cpu") == Device::cpu());
  CHECK_THROWS_WITH(parse_device("gpu"), Contains("--device 'gpu': expected cpu, cuda or cuda:N"));
  CHECK_THROWS_WITH(parse_device("cuda:x"), Contains("expected cpu, cuda or cuda:N"));
  CHECK_THROWS_WITH(parse_device("cuda:"), Contains("expected cpu, cuda or cuda:N"));
  if (cuda::device_count() == 0) {
    // This machine: --device cuda fails clearly, and the default is the CPU.
    CHECK_THROWS_WITH(parse_device("cuda"), Contains("--device 'cuda'") && (Contains("no CUDA device is usable here") ||
                                                                           Contains("has no CUDA")));
    CHECK_THROWS_WITH(parse_device("cuda:1"), Contains("--device 'cuda:1'"));
    CHECK(parse_device("") == Device::cpu());
  } else {
    CHECK(parse_device("cuda") == Device::cuda(0));
    CHECK(parse_device("") == Device::cuda(0));
    CHECK_THROWS_WITH(parse_device(fmt::format("cuda:{}", cuda::device_count())), Contains("does not exist"));
  }
}

TEST_CASE("engine/trainer: clip_grad_norm_on_device gives clip_grad_norm's gradients bit for bit", "[engine][trainer]") {
  Generator gen(17);
  for (const double max_norm : {0.05, 1e6, 0.0}) {
    INFO("max_norm " << max_norm);
    std::vector<Variable> a, b;
    for (const Shape& shape : {Shape{3, 5}, Shape{7}, Shape{2, 2, 3}}) {
      const Tensor g = Tensor::randn(shape, gen);
      Variable x = Variable(Tensor::zeros(shape), true), y = Variable(Tensor::zeros(shape), true);
      x.add_grad(g.clone());
      y.add_grad(g.clone());
      a.push_back(x);
      b.push_back(y);
    }
    a.push_back(Variable(Tensor::zeros({4}), true));  // no gradient: skipped by both
    b.push_back(Variable(Tensor::zeros({4}), true));
    const Tensor norm = clip_grad_norm_on_device(b, max_norm);
    const double expected = max_norm > 0 ? train::clip_grad_norm(a, max_norm)
                                          : train::clip_grad_norm(a, std::numeric_limits<double>::max());
    CHECK(norm.dtype() == DType::Float64);
    CHECK(norm.item<double>() == expected);
    for (size_t i = 0; i + 1 < a.size(); ++i) CHECK(same_bytes(a[i].grad(), b[i].grad()));
    CHECK_FALSE(b.back().has_grad());
  }
  CHECK(clip_grad_norm_on_device({}, 1.0).item<double>() == 0.0);
  CHECK_THROWS_WITH(clip_grad_norm_on_device({}, -1.0), Contains("max_norm must be finite and >= 0, got -1"));
}

TEST_CASE("engine/trainer: deferred non-finite checks (the GPU default) change no value and name the first bad iteration",
          "[engine][trainer]") {
  const ShapesSet set("deferred");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path a = fresh_dir("deferred_a"), b = fresh_dir("deferred_b");
  // Host reads every iteration vs every 4 (and at the log lines and checkpoints), with
  // clipping active (0.05): the same weights, bytes for bytes, and the same logged losses.
  TrainerOptions oa = tiny_options(a, 6), ob = tiny_options(b, 6);
  oa.grad_clip = ob.grad_clip = 0.05;
  oa.log_every = ob.log_every = 3;
  ob.check_every = 4;
  Trainer every(tiny_config(nc), *set.dataset, oa), deferred(tiny_config(nc), *set.dataset, ob);
  every.train();
  deferred.train();
  for (const auto& [name, t] : every.weights()) {
    INFO(name);
    CHECK(same_bytes(t, deferred.weights().at(name)));
  }
  REQUIRE(every.log_records().size() == 2);
  REQUIRE(deferred.log_records().size() == 2);
  for (size_t i = 0; i < 2; ++i) CHECK(every.log_records()[i].losses == deferred.log_records()[i].losses);

  // lr 1e30: iteration 2 is non-finite; read only every 5 iterations, the run goes on past it
  // but stops at the read, naming iteration 2 and its values, before any checkpoint.
  const fs::path c = fresh_dir("deferred_c");
  TrainerOptions oc = tiny_options(c, 20);
  oc.lr = 1e30;
  oc.warmup = 0;
  oc.grad_clip = 0;
  oc.check_every = 5;
  oc.log_every = 5;
  oc.checkpoint_every = 5;
  Trainer t(tiny_config(nc), *set.dataset, oc);
  const std::string message = train_until_non_finite(t);
  INFO(message);
  CHECK_THAT(message, Contains("non-finite loss at iteration 2: ") && Contains("lr 1e+30") &&
                          Contains("IoU threshold 0.5") && Contains("beta 1"));
  CHECK_FALSE(last_checkpoint(c).has_value());
  CHECK_FALSE(fs::exists(c / "checkpoints" / checkpoint_file_name(5)));
  fs::remove_all(a);
  fs::remove_all(b);
  fs::remove_all(c);
}

TEST_CASE("engine/trainer: --eval-every evaluates in eval mode without changing the weights, keeps model_best by AP, "
          "and a resume keeps the best",
          "[engine][trainer]") {
  const ShapesSet set("evaluate");
  const int64_t nc = int64_t(set.dataset->class_names().size());
  const fs::path plain = fresh_dir("eval_plain"), run = fresh_dir("eval_run");
  Trainer reference(tiny_config(nc), *set.dataset, tiny_options(plain, 8));
  reference.train();

  // A scripted AP per iteration; the callback also runs the model (one real prediction) so the
  // evaluation exercises what drcnn_train's does.
  const std::map<int64_t, double> ap = {{2, 0.10}, {4, 0.30}, {6, 0.20}};
  std::vector<int64_t> seen;
  const auto options = [&](int64_t iters) {
    TrainerOptions o = tiny_options(run, iters);
    o.checkpoint_every = 2;
    o.keep = 10;
    o.eval_every = 2;
    o.evaluate = [&](const models::TwoStageDetector<float>& m, int64_t it) -> std::map<std::string, double> {
      CHECK_FALSE(m.is_training());
      const Tensor image = Tensor::zeros({1, 3, 64, 64}, DType::Float32);
      const auto dets = m.predict(ImageList(image, {{64, 64}}));
      CHECK(dets.size() == 1);
      seen.push_back(it);
      return {{"AP", ap.at(it)}, {"AP50", 2 * ap.at(it)}};
    };
    return o;
  };
  {
    Trainer first(tiny_config(nc), *set.dataset, options(5));
    first.train();
    CHECK(first.best() == std::pair<int64_t, double>(4, 0.30));
    CHECK(first.model().is_training());
  }
  CHECK(seen == std::vector<int64_t>{2, 4});
  // model_best holds the weights of iteration 4 (the same bytes as that checkpoint's).
  const auto best = io::load_safetensors(run / "model_best.safetensors").tensors;
  const auto at4 = io::load_safetensors(run / "checkpoints" / checkpoint_file_name(4)).tensors;
  REQUIRE(best.size() == at4.size());
  for (const auto& [name, t] : at4) {
    INFO(name);
    CHECK(same_bytes(t, best.at(name)));
  }
  const nlohmann::json info = nlohmann::json::parse(slurp(run / "model_best.json"));
  CHECK(info.at("iteration") == 4);
  CHECK(info.at("metric") == "AP");
  CHECK(info.at("value") == 0.30);
  {
    TrainerOptions o = options(8);
    o.resume = true;
    Trainer second(tiny_config(nc), *set.dataset, o);
    CHECK(second.best() == std::pair<int64_t, double>(4, 0.30));  // read back from model_best.json
    second.train();
    CHECK(second.best() == std::pair<int64_t, double>(4, 0.30));  // 0.20 at 6 is not better
    // The evaluations changed nothing the training reads: the same weights as without them.
    const auto wa = reference.weights(), wb = second.weights();
    REQUIRE(wa.size() == wb.size());
    for (const auto& [name, t] : wa) {
      INFO(name);
      CHECK(same_bytes(t, wb.at(name)));
    }
  }
  CHECK(seen == std::vector<int64_t>{2, 4, 6});  // none at the last iteration (8)
  // metrics.jsonl: the evaluation records between the log records, in order.
  std::ifstream in(run / "metrics.jsonl");
  std::vector<int64_t> evaluated;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("bbox/AP")) {
      evaluated.push_back(j.at("iteration").get<int64_t>());
      CHECK(j.at("bbox/AP50").get<double>() == 2 * ap.at(j.at("iteration").get<int64_t>()));
    }
  }
  CHECK(evaluated == std::vector<int64_t>{2, 4, 6});

  // A fresh run in the folder is refused while model_best exists, and --overwrite forgets it.
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, options(2)), Contains("--overwrite"));
  fs::remove_all(run / "checkpoints");
  fs::remove(run / "last_checkpoint");
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, options(2)), Contains("--overwrite"));
  TrainerOptions fresh = options(2);
  fresh.overwrite = true;
  fresh.eval_every = 0;
  Trainer third(tiny_config(nc), *set.dataset, fresh);
  CHECK_FALSE(fs::exists(run / "model_best.safetensors"));
  CHECK_FALSE(fs::exists(run / "model_best.json"));
  CHECK(third.best().first == 0);

  // Bad settings name the option.
  TrainerOptions bad = tiny_options(fresh_dir("eval_bad"), 2);
  bad.eval_every = 2;
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, bad), Contains("--eval-every 2: no evaluation was given"));
  bad.eval_every = -1;
  CHECK_THROWS_WITH(Trainer(tiny_config(nc), *set.dataset, bad), Contains("--eval-every must be >= 0"));
  fs::remove_all(plain);
  fs::remove_all(run);
}
