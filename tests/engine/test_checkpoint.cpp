// engine/checkpoint: exact round trip of the training state, the run folder's layout, pruning
// to --keep, clear errors on bad files, and a process SIGKILLed while writing checkpoints
// leaving the last named one loadable.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "drcnn/core/error.h"
#include "common/files.h"
#include "drcnn/engine/checkpoint.h"
#include "drcnn/io/safetensors.h"

using namespace drcnn;
using namespace drcnn::engine;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) { return test::fresh_dir("ckpt", name); }
using test::slurp;

TrainingState sample_state(int64_t iteration) {
  TrainingState s;
  s.iteration = iteration;
  s.lr = 0.1 + 0.2;  // 0.30000000000000004: must not come back as 0.3
  s.schedule.iou_threshold = 1.0 / 3.0;
  s.schedule.beta = 0.17730400000000001;
  s.schedule.iou_history = {0.45, 1.0 / 7.0, 5e-324};  // the smallest subnormal too
  s.schedule.beta_history = {};                        // an empty window
  s.schedule.iteration = iteration;
  s.schedule.recorded = false;
  s.momentum["backbone.conv1.weight"] = Tensor::from_vector(std::vector<float>{1.5f, -2.25f, 1e-30f}, {3});
  s.momentum["roi_head.bbox_head.fc_cls.bias"] = Tensor::from_vector(std::vector<float>{0.1f, 0.2f}, {2});
  s.generators["init"] = Generator(7, 123456789012345ull);
  s.generators["sample"] = Generator(UINT64_MAX, uint64_t(1) << 63);
  s.loader_epoch = 3;
  s.loader_next_batch = 17;
  s.run_settings = {{"preset", "small_cpu"}, {"lr", "0.005"}};
  return s;
}

std::map<std::string, Tensor> sample_weights(float v) {
  return {{"backbone.conv1.weight", Tensor::full({3}, v)}, {"neck.lateral_convs.0.conv.bias", Tensor::full({2}, -v)}};
}

}  // namespace

TEST_CASE("engine/checkpoint: the training state round-trips exactly", "[engine][checkpoint]") {
  const fs::path run = fresh_dir("roundtrip");
  const TrainingState s = sample_state(100);
  const fs::path model = save_checkpoint(run, sample_weights(2.5f), s, 3);
  CHECK(model == run / "checkpoints" / "model_0000100.safetensors");
  CHECK(fs::exists(run / "checkpoints" / "state_0000100.safetensors"));
  CHECK(slurp(run / "last_checkpoint") == "checkpoints/model_0000100.safetensors\n");
  REQUIRE(last_checkpoint(run) == model);

  const Checkpoint c = load_checkpoint(model);
  CHECK(c.state.iteration == 100);
  CHECK(c.state.lr == s.lr);  // bit-exact doubles, not "close"
  CHECK(c.state.schedule == s.schedule);
  CHECK(c.state.loader_epoch == 3);
  CHECK(c.state.loader_next_batch == 17);
  CHECK(c.state.run_settings == s.run_settings);
  REQUIRE(c.state.generators.size() == 2);
  CHECK(c.state.generators.at("init").seed == 7);
  CHECK(c.state.generators.at("init").offset == 123456789012345ull);
  CHECK(c.state.generators.at("sample").seed == UINT64_MAX);
  CHECK(c.state.generators.at("sample").offset == uint64_t(1) << 63);
  REQUIRE(c.state.momentum.size() == 2);
  CHECK(c.state.momentum.at("backbone.conv1.weight").to_vector<float>() == std::vector<float>{1.5f, -2.25f, 1e-30f});
  CHECK(c.state.momentum.at("roi_head.bbox_head.fc_cls.bias").to_vector<float>() == std::vector<float>{0.1f, 0.2f});
  // The model file holds only the weights, under their own names (readable by any safetensors tool).
  const io::SafetensorsFile w = io::load_safetensors(model);
  CHECK(w.tensors.size() == 2);
  CHECK(w.at("backbone.conv1.weight").to_vector<float>() == std::vector<float>{2.5f, 2.5f, 2.5f});
  CHECK(w.metadata.empty());
  fs::remove_all(run);
}

TEST_CASE("engine/checkpoint: names, pruning to keep, and removal after a resumed iteration", "[engine][checkpoint]") {
  CHECK(checkpoint_file_name(0) == "model_0000000.safetensors");
  CHECK(checkpoint_file_name(12345678) == "model_12345678.safetensors");
  CHECK(checkpoint_iteration("a/b/model_0000042.safetensors") == 42);
  CHECK_FALSE(checkpoint_iteration("model.safetensors").has_value());
  CHECK_FALSE(checkpoint_iteration("model_12x.safetensors").has_value());
  CHECK(state_path_for("run/checkpoints/model_0000042.safetensors") == fs::path("run/checkpoints/state_0000042.safetensors"));
  CHECK_THROWS_WITH(state_path_for("run/model.safetensors"), Contains("run/model.safetensors") &&
                                                                 Contains("model_<iteration>.safetensors"));

  const fs::path run = fresh_dir("keep");
  for (int64_t it : {2, 4, 6, 8}) save_checkpoint(run, sample_weights(float(it)), sample_state(it), 2);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"model_0000006.safetensors", "model_0000008.safetensors",
                                          "state_0000006.safetensors", "state_0000008.safetensors"});
  CHECK(last_checkpoint(run) == run / "checkpoints" / "model_0000008.safetensors");

  // A resume from 6 removes 8 (an abandoned future) and leftovers of interrupted writes.
  std::ofstream(run / "checkpoints" / ".model_0000010.safetensors.tmp.99.0") << "partial";
  const auto removed = remove_checkpoints_after(run, 6);
  CHECK(removed.size() == 3);
  CHECK(fs::exists(run / "checkpoints" / "model_0000006.safetensors"));
  CHECK_FALSE(fs::exists(run / "checkpoints" / "model_0000008.safetensors"));
  CHECK_FALSE(fs::exists(run / "checkpoints" / "state_0000008.safetensors"));
  CHECK_FALSE(fs::exists(run / "checkpoints" / ".model_0000010.safetensors.tmp.99.0"));
  // The pointer named 8: it now names 6, the newest that stays, so a plain resume still works.
  CHECK(last_checkpoint(run) == run / "checkpoints" / "model_0000006.safetensors");

  // A pointer that names a missing file moves too (to 6: a model without its state is skipped),
  // and the state left alone without its model goes.
  save_checkpoint(run, sample_weights(9.f), sample_state(9), 3);
  std::ofstream(run / "checkpoints" / "model_0000007.safetensors") << "weights without a state";
  fs::remove(run / "checkpoints" / "model_0000009.safetensors");
  CHECK(remove_checkpoints_after(run, 8) == std::vector<fs::path>{run / "checkpoints" / "state_0000009.safetensors"});
  CHECK(last_checkpoint(run) == run / "checkpoints" / "model_0000006.safetensors");

  // Nothing at or before the iteration stays: the pointer goes with the checkpoints.
  const auto all = remove_checkpoints_after(run, 3);
  CHECK(std::find(all.begin(), all.end(), run / "last_checkpoint") != all.end());
  CHECK_FALSE(fs::exists(run / "last_checkpoint"));
  CHECK_FALSE(last_checkpoint(run).has_value());

  // A pointer with no checkpoints/ folder at all goes too.
  fs::remove_all(run / "checkpoints");
  std::ofstream(run / "last_checkpoint") << "checkpoints/model_0000004.safetensors\n";
  CHECK(remove_checkpoints_after(run, -1) == std::vector<fs::path>{run / "last_checkpoint"});
  CHECK_FALSE(fs::exists(run / "last_checkpoint"));
  fs::remove_all(run);
}

TEST_CASE("engine/checkpoint: bad pointers and files are clear errors", "[engine][checkpoint]") {
  const fs::path run = fresh_dir("errors");
  CHECK_FALSE(last_checkpoint(run).has_value());  // a new run: no pointer yet
  std::ofstream(run / "last_checkpoint") << "\n";
  CHECK_THROWS_WITH(last_checkpoint(run), Contains("last_checkpoint is empty") && Contains("checkpoints/model_"));
  std::ofstream(run / "last_checkpoint") << "checkpoints/model_0000005.safetensors\n";
  CHECK_THROWS_WITH(last_checkpoint(run), Contains("names checkpoints/model_0000005.safetensors") &&
                                              Contains("does not exist"));

  // Weights without the state beside them cannot resume.
  fs::create_directories(run / "checkpoints");
  io::save_safetensors(run / "checkpoints" / "model_0000005.safetensors", sample_weights(1));
  CHECK_THROWS_WITH(load_checkpoint(run / "checkpoints" / "model_0000005.safetensors"),
                    Contains("state_0000005.safetensors does not exist") && Contains("cannot resume"));
  // A state file of another kind, and one whose iteration disagrees with its name.
  io::save_safetensors(run / "checkpoints" / "state_0000005.safetensors", sample_weights(1), {{"format", "other"}});
  CHECK_THROWS_WITH(load_checkpoint(run / "checkpoints" / "model_0000005.safetensors"),
                    Contains("not a drcnn training state") && Contains("'other'"));
  save_checkpoint(run, sample_weights(1), sample_state(7), 3);
  fs::rename(run / "checkpoints" / "state_0000007.safetensors", run / "checkpoints" / "state_0000005.safetensors");
  CHECK_THROWS_WITH(load_checkpoint(run / "checkpoints" / "model_0000005.safetensors"),
                    Contains("holds iteration 7 but its name says 5"));
  CHECK_THROWS_WITH(load_checkpoint(run / "nothing.safetensors"), Contains("nothing.safetensors does not exist"));
  fs::remove_all(run);
}

TEST_CASE("engine/checkpoint: a process killed while writing checkpoints leaves the named one loadable",
          "[engine][checkpoint]") {
  // A child writes checkpoints 1, 2, 3, ... as fast as it can (8 MB of weights and momentum
  // each, so nearly all its time is spent inside save_checkpoint); the parent SIGKILLs it at a
  // random moment, then loads what RUN/last_checkpoint names. That checkpoint must be complete
  // and self-consistent (weights, momentum and iteration from the same save), whatever write
  // the kill interrupted. The tensors are built before fork(): the child runs no kernel.
  const fs::path run = fresh_dir("kill");
  const int64_t n = 1 << 20;  // floats per tensor
  std::vector<std::map<std::string, Tensor>> weights;
  std::vector<TrainingState> states;
  for (int k = 0; k < 64; ++k) {
    weights.push_back({{"w", Tensor::full({n}, float(k + 1))}});
    TrainingState s = sample_state(k + 1);
    s.momentum = {{"w", Tensor::full({n}, float(-(k + 1)))}};
    states.push_back(s);
  }
  std::mt19937 rng(std::random_device{}());
  int interrupted = 0, loaded = 0;
  for (int round = 0; round < 6; ++round) {
    fs::remove_all(run);
    fs::create_directories(run);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      try {
        // Iterations keep rising (no start-over, which would leave a moment with no checkpoint
        // at all); the 64 prepared contents repeat, the one of iteration i being (i - 1) % 64.
        for (int64_t it = 1;; ++it) {
          const size_t k = size_t((it - 1) % int64_t(weights.size()));
          TrainingState s = states[k];
          s.iteration = it;
          save_checkpoint(run, weights[k], s, 2);
        }
      } catch (...) {
        ::_exit(3);  // the parent then sees an exit, not the SIGKILL it expects
      }
    }
    // Let it finish at least one checkpoint, then kill it at a random moment.
    const auto t0 = std::chrono::steady_clock::now();
    while (!fs::exists(run / "last_checkpoint") && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 400000)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);

    const auto named = last_checkpoint(run);
    REQUIRE(named.has_value());
    const Checkpoint c = load_checkpoint(*named);
    const size_t idx = size_t((c.state.iteration - 1) % int64_t(weights.size()));
    const float k = float(idx + 1);
    const std::vector<float> w = c.weights.at("w").to_vector<float>(), m = c.state.momentum.at("w").to_vector<float>();
    CHECK(w.front() == k);
    CHECK(w.back() == k);
    CHECK(m.back() == -k);
    CHECK(c.state.schedule == states[idx].schedule);
    ++loaded;
    // Evidence the kill hit a write: a temporary file, or a checkpoint newer than the pointer.
    bool mid_write = false;
    for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
      const std::string name = e.path().filename().string();
      const auto it = checkpoint_iteration(e.path());
      mid_write = mid_write || name[0] == '.' || (it && *it > c.state.iteration);
    }
    for (const auto& e : fs::directory_iterator(run)) mid_write = mid_write || e.path().filename().string()[0] == '.';
    interrupted += mid_write;
  }
  CHECK(loaded == 6);
  // Writes take nearly all of the child's time, so most kills land inside one.
  CHECK(interrupted >= 1);
  fs::remove_all(run);
}
