// Checkpoints (include/drcnn/engine/checkpoint.h). The training state is a safetensors file: the
// vectors (momentum buffers, the Dynamic R-CNN windows) are tensors, the scalars are metadata
// strings. Doubles are written in the shortest form that reads back to the same double (fmt's
// "{}") and read with std::from_chars, so nothing is rounded on the way.
#include "drcnn/engine/checkpoint.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "drcnn/core/error.h"
#include "drcnn/io/safetensors.h"

namespace drcnn::engine {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "drcnn.training_state";
constexpr const char* kVersion = "1";
constexpr const char* kPointer = "last_checkpoint";
constexpr const char* kFolder = "checkpoints";

std::string errno_text(int err) { return std::strerror(err); }

/// Closes a file descriptor on every path out.
struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

template <typename T>
T parse_number(const std::map<std::string, std::string>& meta, const std::string& key, const fs::path& file) {
  const auto it = meta.find(key);
  DRCNN_CHECK(it != meta.end(), "load_checkpoint: ", file.string(), ": the training state has no '", key,
              "' entry (a truncated or foreign state file)");
  T value{};
  const std::string& s = it->second;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  DRCNN_CHECK(ec == std::errc() && end == s.data() + s.size(), "load_checkpoint: ", file.string(), ": entry '", key,
              "' is '", s, "', expected a number");
  return value;
}

std::vector<double> to_doubles(const io::SafetensorsFile& f, const std::string& name, const fs::path& file) {
  DRCNN_CHECK(f.contains(name), "load_checkpoint: ", file.string(), ": the training state has no tensor '", name, "'");
  const Tensor& t = f.at(name);
  DRCNN_CHECK(t.dtype() == DType::Float64 && t.ndim() == 1, "load_checkpoint: ", file.string(), ": tensor '", name,
              "' is ", t.dtype(), " ", t.shape(), ", expected float64 [n]");
  return t.to(Device::cpu()).to_vector<double>();
}

// What RUN/last_checkpoint names: its first line (without a trailing CR or spaces) and that
// path resolved against RUN (empty when the line is).
struct Pointed {
  std::string line;
  fs::path path;
};
Pointed read_pointer(const fs::path& run_dir) {
  const fs::path pointer = run_dir / kPointer;
  std::ifstream in(pointer);
  DRCNN_CHECK(in.good(), "cannot read ", pointer.string());
  Pointed p;
  std::getline(in, p.line);
  while (!p.line.empty() && (p.line.back() == '\r' || p.line.back() == ' ')) p.line.pop_back();
  if (!p.line.empty()) p.path = fs::path(p.line).is_absolute() ? fs::path(p.line) : run_dir / p.line;
  return p;
}

}  // namespace

std::string checkpoint_file_name(int64_t iteration) {
  DRCNN_CHECK(iteration >= 0, "checkpoint_file_name: iteration must be >= 0, got ", iteration);
  return fmt::format("model_{:07d}.safetensors", iteration);
}

std::optional<int64_t> checkpoint_iteration(const fs::path& model_path) {
  const std::string name = model_path.filename().string();
  const std::string prefix = "model_", suffix = ".safetensors";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  int64_t it = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), it);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return it;
}

fs::path state_path_for(const fs::path& model_path) {
  const auto it = checkpoint_iteration(model_path);
  DRCNN_CHECK(it.has_value(), "checkpoint ", model_path.string(),
              ": expected a file named model_<iteration>.safetensors (the training state is the "
              "state_<iteration>.safetensors beside it)");
  return model_path.parent_path() / ("state_" + model_path.filename().string().substr(6));
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  static std::atomic<unsigned> counter{0};
  fs::path tmp;
  FdCloser fd;
  for (int attempt = 0; attempt < 100 && fd.fd < 0; ++attempt) {
    tmp = dir / fmt::format(".{}.tmp.{}.{}", path.filename().string(), ::getpid(), counter++);
    fd.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    DRCNN_CHECK(fd.fd >= 0 || errno == EEXIST, "write_file_atomic: ", path.string(),
                ": cannot create a temporary file in ", dir.string(), ": ", errno_text(errno));
  }
  DRCNN_CHECK(fd.fd >= 0, "write_file_atomic: ", path.string(), ": too many temporary-name collisions in ",
              dir.string());
  const auto fail = [&](const char* what) {
    const std::string err = errno_text(errno);
    ::unlink(tmp.c_str());
    DRCNN_FAIL("write_file_atomic: ", path.string(), ": ", what, " of ", tmp.string(), " failed: ", err,
               " (the existing file, if any, is unchanged)");
  };
  const char* p = bytes.data();
  size_t n = bytes.size();
  while (n > 0) {
    const ssize_t w = ::write(fd.fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write");
    p += w;
    n -= size_t(w);
  }
  if (::fsync(fd.fd) != 0) fail("fsync");
  const int closing = fd.fd;
  fd.fd = -1;
  if (::close(closing) != 0) fail("close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
  FdCloser d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd >= 0) ::fsync(d.fd);  // some filesystems refuse a directory fsync; the data is synced
}

fs::path save_checkpoint(const fs::path& run_dir, const std::map<std::string, Tensor>& weights,
                         const TrainingState& state, int keep) {
  DRCNN_CHECK(keep >= 1, "save_checkpoint: keep must be >= 1, got ", keep);
  const fs::path folder = run_dir / kFolder;
  fs::create_directories(folder);
  const fs::path model_path = folder / checkpoint_file_name(state.iteration);

  std::map<std::string, std::string> meta;
  meta["format"] = kFormat;
  meta["version"] = kVersion;
  meta["iteration"] = std::to_string(state.iteration);
  meta["lr"] = fmt::format("{}", state.lr);
  meta["schedule.iou_threshold"] = fmt::format("{}", state.schedule.iou_threshold);
  meta["schedule.beta"] = fmt::format("{}", state.schedule.beta);
  meta["schedule.iteration"] = std::to_string(state.schedule.iteration);
  meta["schedule.recorded"] = state.schedule.recorded ? "1" : "0";
  meta["loader.epoch"] = std::to_string(state.loader_epoch);
  meta["loader.next_batch"] = std::to_string(state.loader_next_batch);
  for (const auto& [name, g] : state.generators) {
    meta["generator." + name + ".seed"] = std::to_string(g.seed);
    meta["generator." + name + ".offset"] = std::to_string(g.offset);
  }
  for (const auto& [key, value] : state.run_settings) meta["setting." + key] = value;

  std::map<std::string, Tensor> tensors;
  const auto& h = state.schedule;
  tensors["schedule.iou_history"] = Tensor::from_vector(h.iou_history, {int64_t(h.iou_history.size())});
  tensors["schedule.beta_history"] = Tensor::from_vector(h.beta_history, {int64_t(h.beta_history.size())});
  for (const auto& [name, buf] : state.momentum) tensors["momentum." + name] = buf;

  // Order matters for a process killed at any point: the pointer moves only once both files are
  // complete, and the old checkpoints go only after the pointer has moved.
  io::save_safetensors(model_path, weights);
  io::save_safetensors(state_path_for(model_path), tensors, meta);
  write_file_atomic(run_dir / kPointer, (fs::path(kFolder) / model_path.filename()).string() + "\n");

  std::vector<int64_t> iterations;
  for (const auto& entry : fs::directory_iterator(folder))
    if (const auto it = checkpoint_iteration(entry.path())) iterations.push_back(*it);
  std::sort(iterations.begin(), iterations.end());
  // Only checkpoints older than this one are pruned (newer ones cannot exist: the trainer
  // removes them when it resumes).
  int kept = 0;
  for (auto it = iterations.rbegin(); it != iterations.rend(); ++it) {
    if (*it > state.iteration) continue;
    if (++kept <= keep) continue;
    const fs::path old = folder / checkpoint_file_name(*it);
    fs::remove(state_path_for(old));
    fs::remove(old);
  }
  return model_path;
}

std::optional<fs::path> last_checkpoint(const fs::path& run_dir) {
  const fs::path pointer = run_dir / kPointer;
  if (!fs::exists(pointer)) return std::nullopt;
  const Pointed p = read_pointer(run_dir);
  DRCNN_CHECK(!p.line.empty(), pointer.string(), " is empty; expected the path of a checkpoint (relative to ",
              run_dir.string(), "), e.g. checkpoints/model_0000100.safetensors");
  DRCNN_CHECK(fs::exists(p.path), pointer.string(), " names ", p.line, " but ", p.path.string(), " does not exist");
  return p.path;
}

Checkpoint load_checkpoint(const fs::path& model_path, Device device) {
  DRCNN_CHECK(fs::exists(model_path), "load_checkpoint: ", model_path.string(), " does not exist");
  const fs::path state_path = state_path_for(model_path);
  DRCNN_CHECK(fs::exists(state_path), "load_checkpoint: ", model_path.string(), " has no training state beside it (",
              state_path.string(), " does not exist); a weights-only file cannot resume a run");
  Checkpoint c;
  c.weights = io::load_safetensors(model_path, device).tensors;
  const io::SafetensorsFile f = io::load_safetensors(state_path, device);
  const auto& meta = f.metadata;
  const auto format = meta.find("format");
  DRCNN_CHECK(format != meta.end() && format->second == kFormat, "load_checkpoint: ", state_path.string(),
              " is not a drcnn training state (metadata 'format' is '",
              format == meta.end() ? std::string("<absent>") : format->second, "', expected '", kFormat, "')");
  const auto version = meta.find("version");
  DRCNN_CHECK(version != meta.end() && version->second == kVersion, "load_checkpoint: ", state_path.string(),
              ": training state version '", version == meta.end() ? std::string("<absent>") : version->second,
              "', this build reads version ", kVersion);

  TrainingState& s = c.state;
  s.iteration = parse_number<int64_t>(meta, "iteration", state_path);
  DRCNN_CHECK(s.iteration == *checkpoint_iteration(model_path), "load_checkpoint: ", state_path.string(),
              " holds iteration ", s.iteration, " but its name says ", *checkpoint_iteration(model_path));
  s.lr = parse_number<double>(meta, "lr", state_path);
  s.schedule.iou_threshold = parse_number<double>(meta, "schedule.iou_threshold", state_path);
  s.schedule.beta = parse_number<double>(meta, "schedule.beta", state_path);
  s.schedule.iteration = parse_number<int64_t>(meta, "schedule.iteration", state_path);
  s.schedule.recorded = parse_number<int>(meta, "schedule.recorded", state_path) != 0;
  s.schedule.iou_history = to_doubles(f, "schedule.iou_history", state_path);
  s.schedule.beta_history = to_doubles(f, "schedule.beta_history", state_path);
  s.loader_epoch = parse_number<uint64_t>(meta, "loader.epoch", state_path);
  s.loader_next_batch = parse_number<int64_t>(meta, "loader.next_batch", state_path);
  for (const auto& [key, value] : meta) {
    if (key.rfind("setting.", 0) == 0) s.run_settings[key.substr(8)] = value;
    const std::string g = "generator.", seed = ".seed";
    if (key.rfind(g, 0) == 0 && key.size() > g.size() + seed.size() &&
        key.compare(key.size() - seed.size(), seed.size(), seed) == 0) {
      const std::string name = key.substr(g.size(), key.size() - g.size() - seed.size());
      s.generators[name] = Generator(parse_number<uint64_t>(meta, key, state_path),
                                     parse_number<uint64_t>(meta, g + name + ".offset", state_path));
    }
  }
  for (const auto& [name, t] : f.tensors)
    if (name.rfind("momentum.", 0) == 0) s.momentum[name.substr(9)] = t;
  return c;
}

std::vector<fs::path> remove_checkpoints_after(const fs::path& run_dir, int64_t iteration) {
  std::vector<fs::path> removed;
  const fs::path folder = run_dir / kFolder;
  const bool has_folder = fs::exists(folder);
  // The pointer first: when it names a checkpoint about to go (or one already gone), it moves to
  // the newest complete checkpoint that stays, or goes with the rest when none stays. Done before
  // the files go, a process killed in between leaves a pointer that names an existing checkpoint.
  const fs::path pointer = run_dir / kPointer;
  if (fs::exists(pointer)) {
    const Pointed named = read_pointer(run_dir);
    const std::optional<int64_t> at = named.line.empty() ? std::nullopt : checkpoint_iteration(named.path);
    if (named.line.empty() || !fs::exists(named.path) ||
        (at && *at > iteration && named.path.parent_path() == folder)) {
      std::optional<int64_t> keep;
      if (has_folder)
        for (const auto& entry : fs::directory_iterator(folder)) {
          const std::optional<int64_t> it = checkpoint_iteration(entry.path());
          if (it && *it <= iteration && (!keep || *it > *keep) && fs::exists(state_path_for(entry.path()))) keep = it;
        }
      if (keep) {
        write_file_atomic(pointer, (fs::path(kFolder) / checkpoint_file_name(*keep)).string() + "\n");
      } else {
        fs::remove(pointer);
        removed.push_back(pointer);
      }
    }
  }
  if (!has_folder) return removed;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const fs::path p = entry.path();
    const std::string name = p.filename().string();
    // model_N and state_N files of later iterations (a state file may be alone: killed before
    // its model's rename would be impossible, but a model pruned by hand is not).
    std::optional<int64_t> it = checkpoint_iteration(p);
    if (!it && name.rfind("state_", 0) == 0) it = checkpoint_iteration(folder / ("model_" + name.substr(6)));
    // ".model_N.safetensors.tmp.PID.K": a write that never reached its rename.
    const bool stale_tmp = name.size() > 1 && name[0] == '.' && name.find(".tmp.") != std::string::npos;
    if ((it && *it > iteration) || stale_tmp) {
      fs::remove(p);
      removed.push_back(p);
    }
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

}  // namespace drcnn::engine
