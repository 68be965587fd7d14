// Training checkpoints: the run folder's checkpoints/ (weights + training state, each file
// written atomically), the RUN/last_checkpoint pointer, pruning to the newest `keep`, and
// loading for an exact resume. docs/training.md ("Run folder", "Checkpoints and exact resume")
// describes the layout and the format; tests: tests/engine/test_checkpoint.cpp and
// tests/engine/kill_resume.sh.
//
//   RUN/last_checkpoint                          one line: checkpoints/model_0000100.safetensors
//   RUN/checkpoints/model_0000100.safetensors    the weights (state dict, MMDetection names)
//   RUN/checkpoints/state_0000100.safetensors    the training state (TrainingState)
//
// The number is the count of iterations completed. A checkpoint is saved in the order model,
// state, pointer (each a temporary file in the same folder, fsync, rename, fsync of the folder),
// then older checkpoints are pruned: a process killed at any point leaves the pointer naming a
// complete checkpoint (the previous or the new one).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/core/generator.h"
#include "drcnn/core/tensor.h"
#include "drcnn/train/dynamic_schedule.h"

namespace drcnn::engine {

/// Everything besides the weights that continuing a run bit for bit needs.
struct TrainingState {
  int64_t iteration = 0;  ///< iterations completed
  double lr = 0.0;        ///< lr of the last completed iteration (the schedule recomputes it)
  train::DynamicScheduleState schedule;
  /// SGD momentum buffers by parameter name (MMDetection names); a parameter that never
  /// stepped has none.
  std::map<std::string, Tensor> momentum;
  /// Every random generator of the run by role ("init": the weights, "sample": the RPN and
  /// RoI samplers). The data pipeline's streams are keyed by (seed, epoch, position) and need
  /// only the loader position below.
  std::map<std::string, Generator> generators;
  uint64_t loader_epoch = 0;       ///< DataLoader::epoch()
  int64_t loader_next_batch = 0;   ///< DataLoader::next_batch()
  /// The settings a resume must repeat to continue the same run (preset, batch, seed, lr, ...),
  /// as text; Trainer compares them and names the first that differs.
  std::map<std::string, std::string> run_settings;
};

/// "model_0000100.safetensors" for iteration 100 (seven digits, more when needed).
std::string checkpoint_file_name(int64_t iteration);
/// The state file beside a model file: checkpoints/model_N.safetensors -> checkpoints/state_N.safetensors.
/// Throws drcnn::Error naming `model_path` when its name is not model_<digits>.safetensors.
std::filesystem::path state_path_for(const std::filesystem::path& model_path);
/// The iteration in a model_<digits>.safetensors name; nullopt for any other name.
std::optional<int64_t> checkpoint_iteration(const std::filesystem::path& model_path);

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename over
/// `path`, fsync of the folder. An existing file is replaced whole or left as it was. Throws
/// drcnn::Error naming the file and the failing call.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

/// Saves the checkpoint of `state.iteration` into run_dir/checkpoints (created as needed):
/// model file, state file, then run_dir/last_checkpoint naming it, then removes all but the
/// newest `keep` checkpoints (by iteration; keep >= 1). Returns the model file's path.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir,
                                      const std::map<std::string, Tensor>& weights, const TrainingState& state,
                                      int keep);

/// The model file RUN/last_checkpoint names, or nullopt when there is no RUN/last_checkpoint.
/// Throws drcnn::Error when the pointer is empty or names a file that does not exist.
std::optional<std::filesystem::path> last_checkpoint(const std::filesystem::path& run_dir);

struct Checkpoint {
  std::map<std::string, Tensor> weights;
  TrainingState state;
};

/// Reads a model file and the state file beside it (tensors on `device`). Throws drcnn::Error
/// naming the file and what is missing or malformed (a missing state file, a state of another
/// format version, an iteration that disagrees with the file name, ...).
Checkpoint load_checkpoint(const std::filesystem::path& model_path, Device device = Device::cpu());

/// Removes the checkpoints of iterations above `iteration` (left by a run that was killed after
/// writing them but before naming them, or abandoned by a resume from an older one), and stale
/// temporary files of interrupted writes. RUN/last_checkpoint, when it names a removed (or a
/// missing) checkpoint, is first moved to the newest complete one that stays, or removed with
/// them when none stays (also when there is no checkpoints/ folder). Returns the paths removed.
std::vector<std::filesystem::path> remove_checkpoints_after(const std::filesystem::path& run_dir, int64_t iteration);

}  // namespace drcnn::engine
