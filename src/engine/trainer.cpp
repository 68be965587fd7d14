// The training loop (include/drcnn/engine/trainer.h).
#include "drcnn/engine/trainer.h"

#include "batch_stager.h"

#include <fmt/chrono.h>
#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <cstring>
#include <limits>
#include <sstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "drcnn/config.h"
#include "drcnn/core/allocator.h"
#include "drcnn/data/loader.h"
#include "drcnn/data/sampler.h"
#include "drcnn/dist/communicator.h"
#include "drcnn/engine/init_weights.h"
#include "drcnn/eval/coco_eval.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/ops/cpu_precision.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/train/dynamic_schedule.h"
#include "drcnn/train/lr_schedule.h"
#include "drcnn/train/sgd.h"

namespace drcnn::engine {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The training scales as the checkpoint records them: "L,S" (single scale, as before) or
// "L,S;L,S;..." (multi-scale), so a resume with other scales is refused by name.
std::string scales_setting(const TrainerOptions& o) {
  if (o.train_scales.empty()) return fmt::format("{},{}", o.scale_long, o.scale_short);
  std::string s;
  for (const auto& [l, sh] : o.train_scales) s += fmt::format("{}{},{}", s.empty() ? "" : ";", l, sh);
  return s;
}

constexpr const char* kMetrics = "metrics.jsonl";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}

/// Peak resident set size of this process, MiB (Linux reports ru_maxrss in KiB).
double peak_host_rss_mb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

std::string hms(double seconds) {
  const int64_t s = int64_t(std::max(0.0, seconds) + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// The sampling generator of the image at `position` of the global batch of `iteration`
/// (per_image_sampling): a Philox key mixed from (seed, iteration, position), offset 0.
Generator image_stream(uint64_t seed, int64_t iteration, int64_t position) {
  return Generator(splitmix64(splitmix64(splitmix64(seed) ^ uint64_t(iteration)) ^ uint64_t(position)), 0);
}

/// Data-parallel gradient averaging, as PyTorch's DDP reducer: the trainable parameters in
/// reverse order (the order backward completes them) cut into buckets of about bucket_mb MiB;
/// a bucket's all-reduce (mean) starts as soon as every gradient in it is final (the autograd
/// leaf hook), buckets always in the same order on every rank; finish() waits for them and
/// hands each parameter its averaged gradient.
class GradReducer {
 public:
  GradReducer(dist::Communicator& comm, const std::vector<Variable>& params, double bucket_mb)
      : m_comm(comm), m_params(params) {
    DRCNN_CHECK(std::isfinite(bucket_mb) && bucket_mb > 0, "bucket_mb must be finite and > 0, got ", bucket_mb);
    const double cap = bucket_mb * 1024 * 1024;
    m_bucket_of.resize(params.size());
    double bytes = 0;
    std::vector<size_t> cur;
    for (size_t k = params.size(); k-- > 0;) {
      const Tensor& d = params[k].data();
      if (!cur.empty() && (d.dtype() != params[cur[0]].dtype() || d.device() != params[cur[0]].device())) {
        m_buckets.push_back(std::move(cur));
        cur.clear();
        bytes = 0;
      }
      m_index[params[k].id()] = k;
      cur.push_back(k);
      bytes += double(d.numel()) * double(dtype_size(d.dtype()));
      if (bytes >= cap) {
        m_buckets.push_back(std::move(cur));
        cur.clear();
        bytes = 0;
      }
    }
    if (!cur.empty()) m_buckets.push_back(std::move(cur));
    for (size_t b = 0; b < m_buckets.size(); ++b)
      for (size_t k : m_buckets[b]) m_bucket_of[k] = b;
  }
  size_t num_buckets() const { return m_buckets.size(); }

  void begin() {
    m_ready.assign(m_params.size(), false);
    m_remaining.resize(m_buckets.size());
    for (size_t b = 0; b < m_buckets.size(); ++b) m_remaining[b] = m_buckets[b].size();
    m_next = 0;
    m_flat.assign(m_buckets.size(), Tensor());
    m_work.clear();
    m_work.resize(m_buckets.size());
  }
  /// The autograd hook: `leaf`'s gradient is final.
  void on_leaf(const Variable& leaf) {
    const auto it = m_index.find(leaf.id());
    if (it == m_index.end()) return;
    mark(it->second);
    launch_ready();
    for (size_t b = 0; b < m_next; ++b)
      if (m_work[b].pending()) m_work[b].test();  // MPI progresses inside its calls
  }
  /// After backward: parameters the graph never reached contribute zeros; waits for every bucket.
  void finish() {
    for (size_t k = 0; k < m_params.size(); ++k) mark(k);
    launch_ready();
    for (size_t b = 0; b < m_buckets.size(); ++b) {
      m_work[b].wait();
      int64_t offset = 0;
      for (size_t k : m_buckets[b]) {
        Variable p = m_params[k];
        const int64_t n = p.numel();
        const Tensor g = m_flat[b].narrow(0, offset, n).reshape(p.shape());
        offset += n;
        p.zero_grad();
        p.add_grad(g);
      }
      m_flat[b] = Tensor();
    }
  }

 private:
  void mark(size_t k) {
    if (m_ready[k]) return;
    m_ready[k] = true;
    --m_remaining[m_bucket_of[k]];
  }
  void launch_ready() {
    for (; m_next < m_buckets.size() && m_remaining[m_next] == 0; ++m_next) {
      const size_t b = m_next;
      std::vector<Tensor> parts;
      for (size_t k : m_buckets[b]) {
        const Variable& p = m_params[k];
        parts.push_back(p.has_grad() ? p.grad().reshape({p.numel()})
                                     : Tensor::zeros({p.numel()}, p.dtype(), p.device()));
      }
      m_flat[b] = parts.size() == 1 ? parts[0].clone() : ops::concat(parts, 0);
      m_work[b] = m_comm.all_reduce_async(
          m_flat[b], dist::ReduceOp::Mean,
          fmt::format("all_reduce of gradient bucket {} of {} ({:.1f} MB)", b + 1, m_buckets.size(),
                      double(m_flat[b].numel() * int64_t(dtype_size(m_flat[b].dtype()))) / 1e6));
    }
  }

  dist::Communicator& m_comm;
  std::vector<Variable> m_params;
  std::vector<std::vector<size_t>> m_buckets;  // bucket 0 holds the last parameters
  std::vector<size_t> m_bucket_of, m_remaining;
  std::unordered_map<const void*, size_t> m_index;
  std::vector<bool> m_ready;
  size_t m_next = 0;
  std::vector<Tensor> m_flat;
  std::vector<dist::Work> m_work;
};

/// DynamicStats as doubles: [images, n_0, values_0..., n_1, ..., n_err, errors...].
std::vector<uint8_t> pack_stats(const train::DynamicStats& s) {
  std::vector<double> v{double(s.max_overlaps.size())};
  for (const auto& img : s.max_overlaps) {
    v.push_back(double(img.size()));
    v.insert(v.end(), img.begin(), img.end());
  }
  v.push_back(double(s.regression_errors.size()));
  v.insert(v.end(), s.regression_errors.begin(), s.regression_errors.end());
  std::vector<uint8_t> bytes(v.size() * sizeof(double));
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

void unpack_stats_into(const std::vector<uint8_t>& bytes, train::DynamicStats& out) {
  std::vector<double> v(bytes.size() / sizeof(double));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(double));
  size_t at = 0;
  const auto take = [&]() {
    DRCNN_CHECK(at < v.size(), "pooled Dynamic R-CNN statistics: truncated message");
    return v[at++];
  };
  const size_t images = size_t(take());
  for (size_t i = 0; i < images; ++i) {
    const size_t n = size_t(take());
    DRCNN_CHECK(at + n <= v.size(), "pooled Dynamic R-CNN statistics: truncated message");
    out.max_overlaps.emplace_back(v.begin() + int64_t(at), v.begin() + int64_t(at + n));
    at += n;
  }
  const size_t n = size_t(take());
  DRCNN_CHECK(at + n == v.size(), "pooled Dynamic R-CNN statistics: malformed message");
  out.regression_errors.insert(out.regression_errors.end(), v.begin() + int64_t(at), v.end());
}

}  // namespace

void append_eval_record(const fs::path& metrics_jsonl, int64_t iteration, const std::map<std::string, double>& metrics) {
  nlohmann::ordered_json j;
  j["iteration"] = iteration;
  for (const auto& [k, v] : metrics) j["bbox/" + k] = v;
  std::ofstream out(metrics_jsonl, std::ios::app);
  out << j.dump() << "\n";
  out.flush();
  DRCNN_CHECK(out.good(), "cannot append to ", metrics_jsonl.string());
}

Device parse_device(const std::string& text, const std::string& flag) {
  if (text.empty()) return cuda::device_count() > 0 ? Device::cuda(0) : Device::cpu();
  if (text == "cpu") return Device::cpu();
  int index = 0;
  if (text != "cuda") {
    const std::string prefix = "cuda:";
    const std::string digits = text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : "";
    DRCNN_CHECK(!digits.empty() && digits.size() <= 4 &&
                    std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }),
                flag, " '", text, "': expected cpu, cuda or cuda:N (N a device index)");
    index = std::stoi(digits);
  }
#if !DRCNN_WITH_CUDA
  DRCNN_FAIL(flag, " '", text, "': this build of drcnn has no CUDA (configured with DRCNN_WITH_CUDA off); use ", flag,
             " cpu");
#endif
  const int n = cuda::device_count();
  DRCNN_CHECK(n > 0, flag, " '", text, "': no CUDA device is usable here (", cuda::unavailable_reason(), "); use ", flag,
              " cpu");
  DRCNN_CHECK(index < n, flag, " '", text, "': device ", index, " does not exist (", n, " visible: cuda:0..cuda:",
              n - 1, ")");
  return Device::cuda(index);
}

Tensor clip_grad_norm_on_device(const std::vector<Variable>& params, double max_norm) {
  DRCNN_CHECK(std::isfinite(max_norm) && max_norm >= 0, "clip_grad_norm_on_device: max_norm must be finite and >= 0, got ",
              max_norm);
  Tensor sq;
  Device device = Device::cpu();
  for (const Variable& p : params) {
    if (!p.has_grad()) continue;
    const Tensor g = p.grad().to(DType::Float64);
    const Tensor s = ops::sum(ops::mul(g, g));
    // clip_grad_norm: sq = 0; sq += s_i in order. 0 + s_0 == s_0 (s_0 >= 0), so start from it.
    sq = sq.defined() ? ops::add(sq, s) : s;
    device = g.device();
  }
  if (!sq.defined()) return Tensor::zeros({}, DType::Float64, device);
  const Tensor total = ops::sqrt(sq);
  if (max_norm == 0) return total;
  const Tensor one = Tensor::ones({}, DType::Float64, device);
  const Tensor coef = ops::div(Tensor::full({}, max_norm, DType::Float64, device), ops::add(total, 1e-6));
  // Scale only when total > max_norm and finite, as clip_grad_norm (NaN compares false).
  const Tensor factor =
      ops::where(ops::lt(total, std::numeric_limits<double>::infinity()), ops::where(ops::gt(total, max_norm), coef, one), one);
  for (const Variable& p : params) {
    if (!p.has_grad()) continue;
    Variable handle = p;
    // mul(grad, coef) converts coef to the gradient's dtype first; so does this.
    const Tensor scaled = ops::mul(p.grad(), factor.to(p.grad().dtype()));
    handle.zero_grad();
    handle.add_grad(scaled);
  }
  return total;
}

struct Trainer::Impl {
  TrainerOptions opt;
  dist::Communicator& comm;
  std::unique_ptr<GradReducer> reducer;  // several ranks only
  models::DetectorConfig cfg;
  const data::DetectionDataset& dataset;
  Generator init_gen, sample_gen;
  std::unique_ptr<models::TwoStageDetector<float>> model;
  std::vector<std::string> names;  // trainable parameters, in optimizer order
  std::vector<Variable> params;
  std::unique_ptr<train::Sgd> sgd;
  train::LrSchedule lr;
  train::DynamicSchedule schedule;
  std::unique_ptr<data::GroupSampler> sampler;
  std::unique_ptr<data::DataLoader> loader;
  // On a GPU: the next iteration's batch, copied to the device while this one computes, and the
  // loader's position before it was taken (what a checkpoint records: the batch is not trained yet).
  std::unique_ptr<BatchStager> stager;
  std::optional<std::pair<uint64_t, int64_t>> loader_position;
  int64_t iteration = 0;
  std::vector<LogRecord> records;

  // Iterations run but not yet read on the host: per iteration a float64 [L + 2] row on the
  // device (the losses in loss_names order, the total, the gradient norm) and the host values
  // it ran with.
  struct Pending {
    int64_t iteration;  // 1-based
    double lr, iou_threshold, beta;
  };
  std::vector<std::string> loss_names;
  std::vector<Tensor> pending_rows;
  std::vector<Pending> pending;

  // The log window (reset after each line) and this process's timing.
  std::map<std::string, std::vector<double>> window_losses;
  std::vector<double> window_time, window_data;
  double process_seconds = 0;
  int64_t process_iters = 0;

  Impl(const models::DetectorConfig& c, const data::DetectionDataset& d, TrainerOptions o)
      : opt(std::move(o)),
        comm(dist::world()),
        cfg(c),
        dataset(d),
        init_gen(opt.seed),
        sample_gen(opt.seed + 1),
        lr{opt.lr * (opt.scale_lr ? double(comm.size()) : 1.0), opt.warmup, 0.001, opt.steps, 0.1},
        schedule(c.dynamic) {}

  void log(const std::string& line) const {
    if (!comm.is_main()) return;
    if (opt.log) {
      opt.log(line);
    } else {
      std::fputs((line + "\n").c_str(), stdout);
      std::fflush(stdout);
    }
  }

  /// The steps (a settings() "steps" value: "a,b,...") before 0-based iteration `iteration`:
  /// the ones that have acted on iterations 0 .. iteration - 1.
  static std::vector<int64_t> steps_before(const std::string& steps, int64_t iteration) {
    std::vector<int64_t> out;
    std::stringstream in(steps);
    std::string item;
    while (std::getline(in, item, ','))
      if (!item.empty() && std::stoll(item) < iteration) out.push_back(std::stoll(item));
    return out;
  }

  /// The settings that must not change across a resume, as text.
  std::map<std::string, std::string> settings() const {
    std::string steps;
    for (int64_t s : opt.steps) {
      if (!steps.empty()) steps += ',';
      steps += std::to_string(s);
    }
    return {{"preset", cfg.name},
            {"num_classes", std::to_string(cfg.num_classes)},
            {"schedule", cfg.dynamic.static_mode ? "static" : "dynamic"},
            {"images", std::to_string(dataset.size())},
            {"batch", std::to_string(opt.batch)},
            {"seed", std::to_string(opt.seed)},
            {"lr", fmt::format("{}", opt.lr)},
            {"warmup", std::to_string(opt.warmup)},
            {"steps", steps},
            {"momentum", fmt::format("{}", opt.momentum)},
            {"weight_decay", fmt::format("{}", opt.weight_decay)},
            {"grad_clip", fmt::format("{}", opt.grad_clip)},
            {"flip", fmt::format("{}", opt.flip)},
            {"scale", scales_setting(opt)},
            // bf16 CPU convolutions and matmuls change every step's bits (ops/cpu_precision.h).
            {"cpu_precision", ops::cpu_precision_name(ops::cpu_precision())},
            // The pixels the network sees (data.normalize): another mean, std or channel order
            // changes every input from the resumed iteration on.
            {"normalize", fmt::format("mean {},{},{} std {},{},{} {}", opt.normalize.mean[0], opt.normalize.mean[1],
                                      opt.normalize.mean[2], opt.normalize.std[0], opt.normalize.std[1],
                                      opt.normalize.std[2], opt.normalize.to_rgb ? "rgb" : "bgr")}};
  }

  TrainingState state() const {
    TrainingState s;
    s.iteration = iteration;
    s.lr = sgd->lr();
    s.schedule = schedule.state();
    const std::vector<Tensor>& bufs = sgd->momentum_buffers();
    for (size_t i = 0; i < bufs.size(); ++i)
      if (bufs[i].defined()) s.momentum[names[i]] = bufs[i];
    s.generators = {{"init", init_gen}, {"sample", sample_gen}};
    s.loader_epoch = loader_position ? loader_position->first : loader->epoch();
    s.loader_next_batch = loader_position ? loader_position->second : loader->next_batch();
    s.run_settings = settings();
    // Not a setting a resume must repeat: another number of ranks resumes too (restore()).
    s.run_settings["world_size"] = std::to_string(comm.size());
    return s;
  }

  std::map<std::string, Tensor> weights() const {
    std::map<std::string, Tensor> w;
    for (const auto& [name, t] : model->state_dict()) w.emplace(name, t);
    return w;
  }

  void restore(const fs::path& path) {
    const Checkpoint c = load_checkpoint(path, opt.device);
    const auto mine = settings();
    for (const auto& [key, value] : mine) {
      auto it = c.state.run_settings.find(key);
      // Checkpoints from before the setting existed were all trained in float32.
      if (it == c.state.run_settings.end() && key == "cpu_precision" && value == "fp32") continue;
      if (it == c.state.run_settings.end() && key == "normalize") {
        log("resume: the checkpoint does not record its input normalisation (written before drcnn recorded it): "
            "this run's (" + value + ") is not checked against it");
        continue;
      }
      if (it != c.state.run_settings.end() && key == "steps" && it->second != value &&
          steps_before(it->second, c.state.iteration) == steps_before(value, c.state.iteration)) {
        // lr steps at or after the checkpoint's iteration have not acted yet: the run so far is
        // the same under both schedules, so a longer (or shorter) schedule continues it exactly.
        log(fmt::format("resume: lr steps [{}] at iteration {}, the checkpoint's run had [{}]; none of the changed "
                        "steps has acted yet, so the run so far is the same under both",
                        value, c.state.iteration, it->second));
        continue;
      }
      DRCNN_CHECK(it != c.state.run_settings.end() && it->second == value, "--resume ", path.string(),
                  ": the checkpoint was trained with ", key, " ",
                  it == c.state.run_settings.end() ? std::string("<not recorded>") : it->second, ", this run has ", key,
                  " ", value, "; an exact resume needs the same settings");
    }
    for (const char* g : {"init", "sample"})
      DRCNN_CHECK(c.state.generators.count(g), "--resume ", path.string(), ": the training state has no '", g,
                  "' generator");
    std::vector<Tensor> bufs(params.size());
    size_t found = 0;
    for (size_t i = 0; i < params.size(); ++i)
      if (const auto it = c.state.momentum.find(names[i]); it != c.state.momentum.end()) {
        bufs[i] = it->second;
        ++found;
      }
    DRCNN_CHECK(found == c.state.momentum.size(), "--resume ", path.string(), ": the training state has ",
                c.state.momentum.size(), " momentum buffers but only ", found, " name a trainable parameter");
    model->load_state_dict(c.weights, true);
    sgd->set_momentum_buffers(std::move(bufs));
    sgd->set_lr(c.state.lr);
    schedule.load_state(c.state.schedule);
    init_gen = c.state.generators.at("init");
    sample_gen = c.state.generators.at("sample");
    iteration = c.state.iteration;
    const auto ws = c.state.run_settings.find("world_size");
    const std::string saved_world = ws == c.state.run_settings.end() ? "1" : ws->second;
    if (saved_world == std::to_string(comm.size())) {
      loader->start_epoch(c.state.loader_epoch, c.state.loader_next_batch);
    } else {
      // The epoch's order depends on the total batch: continue with the next epoch (the weights,
      // momentum, lr schedule and Dynamic R-CNN state carry over exactly).
      const uint64_t next = c.state.loader_next_batch == 0 ? c.state.loader_epoch : c.state.loader_epoch + 1;
      loader->start_epoch(next, 0);
      log(fmt::format("resume: the checkpoint was written by {} ranks, this run has {}: the data order continues at "
                      "the start of epoch {}",
                      saved_world, comm.size(), next));
    }
  }

  /// Keeps the metrics.jsonl records of iterations <= `upto` (a killed run may have logged
  /// past its last checkpoint, and its last line may be torn), rewritten atomically.
  void truncate_metrics(int64_t upto) const {
    const fs::path path = opt.run_dir / kMetrics;
    if (!fs::exists(path)) return;
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("iteration") || !j["iteration"].is_number_integer())
        continue;
      if (j["iteration"].get<int64_t>() <= upto) kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }

  static std::string describe(const Pending& p, const std::map<std::string, double>& losses, double total) {
    std::string s;
    for (const auto& [k, v] : losses) s += fmt::format("{} {}, ", k, v);
    return fmt::format("iteration {}: {}total_loss {}; lr {}, IoU threshold {}, beta {}", p.iteration, s, total, p.lr,
                       p.iou_threshold, p.beta);
  }

  /// Reads the pending rows on the host (one copy), stops at the first non-finite one, and
  /// moves the values into the log window.
  void flush() {
    if (pending.empty()) return;
    Tensor rows = ops::stack(pending_rows, 0);  // [k, L + 2]
    // Every rank sees the mean over ranks (the gradient norm is the same everywhere already),
    // so a non-finite loss on any rank stops all of them at the same iteration.
    if (comm.size() > 1)
      comm.all_reduce(rows, dist::ReduceOp::Mean,
                      fmt::format("all_reduce of the losses of iterations {}..{}", pending.front().iteration,
                                  pending.back().iteration));
    rows = rows.to(Device::cpu());
    const std::vector<double> v = rows.to_vector<double>();
    const size_t width = loss_names.size() + 2;
    for (size_t r = 0; r < pending.size(); ++r) {
      const double* row = v.data() + r * width;
      std::map<std::string, double> losses;
      bool finite = true;
      for (size_t k = 0; k < loss_names.size(); ++k) {
        losses[loss_names[k]] = row[k];
        finite = finite && std::isfinite(row[k]);
      }
      const double total = row[width - 2], norm = row[width - 1];
      if (!finite || !std::isfinite(total))
        throw NonFiniteError(fmt::format("drcnn: non-finite loss at {}; nothing was saved for it (the last checkpoint is "
                                         "untouched); lower --lr or raise --warmup",
                                         describe(pending[r], losses, total)));
      if (!std::isfinite(norm))
        throw NonFiniteError(fmt::format("drcnn: non-finite gradient norm ({}) at {}; nothing was saved for it (the "
                                         "last checkpoint is untouched); lower --lr or raise --warmup",
                                         norm, describe(pending[r], losses, total)));
      for (const auto& [k, x] : losses) window_losses[k].push_back(x);
      window_losses["total_loss"].push_back(total);
    }
    pending.clear();
    pending_rows.clear();
  }

  void write_log(const LogRecord& r) {
    if (!comm.is_main()) return;
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    ::localtime_r(&now, &tm);
    std::string line = fmt::format("[{:%m/%d %H:%M:%S} drcnn.train]: eta: {}  iter: {}/{}  total_loss: {:.4g}", tm,
                                   hms(r.eta_seconds), r.iteration, opt.iters, r.losses.at("total_loss"));
    for (const auto& [k, v] : r.losses)
      if (k != "total_loss") line += fmt::format("  {}: {:.4g}", k, v);
    line += fmt::format("  iou_thr: {:.4g}  beta: {:.4g}  time: {:.4f}  data_time: {:.4f}  lr: {:.5g}  max_mem: {:.0f}M",
                        r.iou_threshold, r.beta, r.time, r.data_time, r.lr, r.max_mem_mb);
    log(line);
    nlohmann::ordered_json j;
    j["iteration"] = r.iteration;
    j["eta_seconds"] = r.eta_seconds;
    j["total_loss"] = r.losses.at("total_loss");
    for (const auto& [k, v] : r.losses)
      if (k != "total_loss") j[k] = v;
    j["lr"] = r.lr;
    j["iou_threshold"] = r.iou_threshold;
    j["beta"] = r.beta;
    j["time"] = r.time;
    j["data_time"] = r.data_time;
    j["max_mem_mb"] = r.max_mem_mb;
    std::ofstream out(opt.run_dir / kMetrics, std::ios::app);
    out << j.dump() << "\n";
    out.flush();
    DRCNN_CHECK(out.good(), "cannot append to ", (opt.run_dir / kMetrics).string());
    records.push_back(r);
  }

  // --eval-every: the best evaluation so far (model_best.json; iteration 0: none).
  int64_t best_iteration = 0;
  double best_value = 0;

  fs::path best_weights_path() const { return opt.run_dir / "model_best.safetensors"; }
  fs::path best_info_path() const { return opt.run_dir / "model_best.json"; }

  /// At the start: a fresh run forgets an earlier run's best; a resumed one keeps the best of
  /// iterations up to where it resumes (a best from beyond it belongs to an abandoned future).
  void restore_best() {
    if (!comm.is_main()) return;
    if (opt.resume && fs::exists(best_info_path())) {
      std::ifstream in(best_info_path());
      const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
      DRCNN_CHECK(!j.is_discarded() && j.is_object() && j.contains("iteration") && j["iteration"].is_number_integer() &&
                      j.contains("value") && j["value"].is_number(),
                  best_info_path().string(), ": expected {\"iteration\": N, \"metric\": name, \"value\": x}");
      if (j["iteration"].get<int64_t>() <= iteration) {
        best_iteration = j["iteration"].get<int64_t>();
        best_value = j["value"].get<double>();
        return;
      }
      log(fmt::format("removed {} (its best, at iteration {}, is after the resumed iteration)",
                      best_weights_path().string(), j["iteration"].get<int64_t>()));
    }
    fs::remove(best_weights_path());
    fs::remove(best_info_path());
  }

  void evaluate_now() {
    model->eval();
    const std::map<std::string, double> metrics = opt.evaluate(*model, iteration);
    model->train();
    if (!comm.is_main() || metrics.empty()) return;
    const auto found = metrics.find(opt.best_metric);
    DRCNN_CHECK(found != metrics.end(), "--eval-every: the evaluation at iteration ", iteration, " gave no '",
                opt.best_metric, "' (the metric that chooses model_best)");
    // pycocotools' order first (AP, AP50, AP75, APs, APm, APl, AR1, ...), then any other name.
    std::string line = fmt::format("[drcnn.eval]: iteration {}:", iteration);
    const auto& order = eval::summary_names();
    for (const char* k : order)
      if (metrics.count(k)) line += fmt::format("  {}: {:.4f}", k, metrics.at(k));
    for (const auto& [k, v] : metrics)
      if (std::find_if(order.begin(), order.end(), [&](const char* n) { return k == n; }) == order.end())
        line += fmt::format("  {}: {:.4f}", k, v);
    append_eval_record(opt.run_dir / kMetrics, iteration, metrics);
    if (best_iteration == 0 || found->second > best_value) {
      io::save_safetensors(best_weights_path(), weights());  // atomic (temporary file, rename)
      nlohmann::ordered_json b;
      b["iteration"] = iteration;
      b["metric"] = opt.best_metric;
      b["value"] = found->second;
      write_file_atomic(best_info_path(), b.dump() + "\n");
      line += fmt::format("  (best {} so far: {})", opt.best_metric, best_weights_path().filename().string());
      best_iteration = iteration;
      best_value = found->second;
    }
    log(line);
  }

  double peak_memory_mb() const {
    if (opt.device.is_cpu()) return peak_host_rss_mb();
    return double(cuda_allocator(opt.device.index).stats().peak_bytes_in_use) / (1024.0 * 1024.0);
  }
};

Trainer::Trainer(const models::DetectorConfig& config, const data::DetectionDataset& dataset, TrainerOptions options)
    : m(std::make_unique<Impl>(config, dataset, std::move(options))) {
  TrainerOptions& o = m->opt;
  DRCNN_CHECK(o.iters >= 1, "--iters must be >= 1, got ", o.iters);
  DRCNN_CHECK(o.batch >= 1, "--batch must be >= 1, got ", o.batch);
  DRCNN_CHECK(o.log_every >= 1, "--log-every must be >= 1, got ", o.log_every);
  DRCNN_CHECK(o.checkpoint_every >= 0, "--checkpoint-every must be >= 0 (0: only at the end), got ",
              o.checkpoint_every);
  DRCNN_CHECK(o.keep >= 1, "--keep must be >= 1, got ", o.keep);
  DRCNN_CHECK(o.check_every >= 0, "check_every must be >= 0 (0: automatic), got ", o.check_every);
  DRCNN_CHECK(o.eval_every >= 0, "--eval-every must be >= 0 (0: off), got ", o.eval_every);
  DRCNN_CHECK(o.eval_every == 0 || o.evaluate, "--eval-every ", o.eval_every,
              ": no evaluation was given (a validation set is needed)");
  DRCNN_CHECK(o.grad_clip >= 0 && std::isfinite(o.grad_clip), "--grad-clip must be finite and >= 0, got ",
              o.grad_clip);
  m->lr.validate();
  dist::Communicator& comm = m->comm;
  const bool main_rank = comm.is_main();
  if (!o.device.is_cpu() && comm.size() > 1) comm.init_gpu(o.device);
  if (comm.size() > 1) o.per_image_sampling = true;
  fs::create_directories(o.run_dir);

  // Weights are drawn on the CPU from the seed, so every device starts from the same ones.
  m->model = std::make_unique<models::TwoStageDetector<float>>(m->cfg, m->init_gen);
  if (!o.init_backbone.empty())
    m->log(load_pretrained(*m->model, o.init_backbone, "init.backbone", "backbone.").summary());
  if (!o.load_from.empty()) m->log(load_pretrained(*m->model, o.load_from, "init.detector").summary());
  if (!o.device.is_cpu()) m->model->to(o.device);
  for (const auto& [name, p] : m->model->named_parameters())
    if (p.requires_grad()) {
      m->names.push_back(name);
      m->params.push_back(p);
    }
  train::SgdOptions so;
  so.lr = o.lr;
  so.momentum = o.momentum;
  so.weight_decay = o.weight_decay;
  m->sgd = std::make_unique<train::Sgd>(m->params, so);

  data::GroupSamplerOptions gso;
  gso.batch_size = o.batch;
  gso.seed = o.seed;
  gso.world_size = comm.size();
  gso.rank = comm.rank();
  gso.interleave_ranks = true;  // the same as world_size 1 for one process
  m->sampler = std::make_unique<data::GroupSampler>(dataset, gso);
  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.num_workers = o.workers;
  lo.seed = o.seed;
  data::ResizeOptions resize;
  resize.scales = o.train_scales.empty() ? std::vector<std::array<int32_t, 2>>{{o.scale_long, o.scale_short}}
                                         : o.train_scales;
  m->loader =
      std::make_unique<data::DataLoader>(dataset, *m->sampler, data::train_pipeline(resize, o.flip, o.normalize), lo);

  std::optional<fs::path> from;
  // Rank 0 alone decides (and touches the run folder); the others take its answer.
  const auto share = [&](std::optional<fs::path>& p) {
    if (comm.size() == 1) return;
    std::vector<uint8_t> bytes;
    if (main_rank) {
      bytes.push_back(p ? '1' : '0');
      const std::string path = p ? p->string() : std::string();
      bytes.insert(bytes.end(), path.begin(), path.end());
    }
    const std::vector<std::vector<uint8_t>> all = comm.all_gather(bytes, "the checkpoint to resume from");
    const std::string root(all[0].begin(), all[0].end());
    p = root.size() > 0 && root[0] == '1' ? std::optional<fs::path>(root.substr(1)) : std::nullopt;
  };
  if (!main_rank) {
    // nothing: the path comes from rank 0 below
  } else if (o.resume) {
    if (!o.resume_from.empty()) {
      DRCNN_CHECK(fs::exists(o.resume_from), "--resume ", o.resume_from.string(), ": no such file");
      from = o.resume_from;
    } else {
      from = last_checkpoint(o.run_dir);
      if (!from)
        m->log(fmt::format("resume: {} does not exist yet: starting at iteration 0",
                           (o.run_dir / "last_checkpoint").string()));
    }
  } else {
    // A fresh run owns the folder: an earlier run's checkpoints and metrics would mix with its own.
    // It never removes them unasked: without overwrite, an earlier run's files stop it here.
    if (!o.overwrite) {
      const fs::path pointer = o.run_dir / "last_checkpoint";
      bool earlier = fs::exists(pointer);
      std::error_code ec;
      for (fs::directory_iterator it(o.run_dir / "checkpoints", ec), end; !ec && it != end && !earlier; ++it)
        earlier = it->path().extension() == ".safetensors";
      earlier = earlier || fs::exists(o.run_dir / "model_best.safetensors");
      DRCNN_CHECK(!earlier, "run folder ", o.run_dir.string(), " holds an earlier run's checkpoints",
                  fs::exists(pointer) ? " (last_checkpoint: " + last_checkpoint(o.run_dir).value_or("?").string() + ")"
                                      : std::string(),
                  "; continue it with --resume, replace it with --overwrite, or choose another --out");
    }
  }
  share(from);
  if (main_rank && !o.resume) {
    // Its checkpoints and last_checkpoint (which then names none that stays).
    const auto removed = remove_checkpoints_after(o.run_dir, -1);
    if (!removed.empty())
      m->log(fmt::format("new run (no --resume): removed {} files of an earlier run from {}", removed.size(),
                         o.run_dir.string()));
  }
  if (main_rank && from && !o.resume_from.empty() && !o.overwrite) {
    // --resume PATH to an earlier checkpoint than the run's newest abandons the checkpoints,
    // metrics and model_best after it; like a fresh run's, that removal is never unasked.
    // (Checkpoints beyond the one last_checkpoint names are interrupted writes, not the run's:
    // an automatic resume removes them, and so does this one.)
    const std::optional<int64_t> at = checkpoint_iteration(*from);
    const std::optional<fs::path> newest = last_checkpoint(o.run_dir);
    const std::optional<int64_t> newest_at = newest ? checkpoint_iteration(*newest) : std::nullopt;
    DRCNN_CHECK(!at || !newest_at || *newest_at <= *at, "--resume ", from->string(), ": the run folder ",
                o.run_dir.string(), " holds later checkpoints of its run (last_checkpoint: ", newest->string(),
                ", iteration ", newest_at.value_or(0), "); resuming from iteration ", at.value_or(0),
                " would remove them, with the metrics.jsonl records and model_best after it: pass --overwrite to do "
                "so, or copy the checkpoint into another --out");
  }
  if (from) {
    m->restore(*from);
    DRCNN_CHECK(m->iteration <= o.iters, "--resume ", from->string(), ": the checkpoint is at iteration ", m->iteration,
                " but --iters is ", o.iters, "; raise --iters to train on (or use the checkpoint as it is)");
    m->log(fmt::format("resumed from {} at iteration {} (epoch {}, batch {})", from->string(), m->iteration,
                       m->loader->epoch(), m->loader->next_batch()));
  } else {
    m->loader->start_epoch(0);
  }
  // Whatever lies beyond the starting point belongs to an abandoned future of this run.
  if (main_rank) {
    for (const fs::path& p : remove_checkpoints_after(o.run_dir, m->iteration))
      m->log("removed " + p.string() + " (after the resumed iteration, or an interrupted write)");
    m->truncate_metrics(m->iteration);
    m->restore_best();
  }
  if (comm.size() > 1) {
    // Every rank starts from rank 0's parameters and buffers (the same seed draws the same ones
    // and a resume reads the same file; this makes it so whatever the file system shows each).
    for (auto& [name, t] : m->model->state_dict()) comm.broadcast(t, 0, "broadcast of " + name);
    m->reducer = std::make_unique<GradReducer>(comm, m->params, o.bucket_mb);
    m->log(fmt::format("data parallel: {} ranks ({}), {} images per rank and iteration ({} in all), lr {} x {} = {} "
                       "(linear scaling{}), {} gradient buckets of <= {} MB, Dynamic R-CNN statistics {}, collective "
                       "timeout {} s",
                       comm.size(), comm.backend(), o.batch, o.batch * comm.size(), o.lr, o.scale_lr ? comm.size() : 1,
                       o.lr * (o.scale_lr ? comm.size() : 1), o.scale_lr ? "" : " off", m->reducer->num_buckets(),
                       o.bucket_mb, o.pool_dynamic_stats ? "pooled over ranks" : "per rank", comm.timeout_seconds()));
  }
}

Trainer::~Trainer() = default;

int64_t Trainer::iteration() const { return m->iteration; }
models::TwoStageDetector<float>& Trainer::model() { return *m->model; }
std::map<std::string, Tensor> Trainer::weights() const {
  std::map<std::string, Tensor> w;
  for (const auto& [name, t] : m->weights()) w.emplace(name, t.to(Device::cpu()));
  return w;
}
const std::vector<LogRecord>& Trainer::log_records() const { return m->records; }
std::pair<int64_t, double> Trainer::best() const { return {m->best_iteration, m->best_value}; }

void Trainer::train() {
  Impl& s = *m;
  const TrainerOptions& o = s.opt;
  s.model->train();
  const int64_t check_every = o.check_every > 0 ? o.check_every : o.device.is_cpu() ? 1 : o.log_every;
  data::Batch batch;
  while (s.iteration < o.iters) {
    const int64_t it = s.iteration;  // 0-based index of this iteration
    const auto t_iter = Clock::now();
    const auto next_batch = [&](data::Batch& b) {
      if (!s.loader->next(b)) {
        s.loader->start_epoch(s.loader->epoch() + 1);
        DRCNN_CHECK(s.loader->next(b), "the training loader produced no batch (epoch ", s.loader->epoch(), ")");
      }
    };
    if (o.device.is_cpu()) {
      next_batch(batch);
    } else {
      // The batch was staged (page-locked memory, copy stream) during the previous iteration;
      // the compute stream waits for its copy on the device. The first one is staged here.
      if (!s.stager) s.stager = std::make_unique<BatchStager>(o.device);
      if (!s.stager->has_staged()) {
        data::Batch first;
        next_batch(first);
        s.stager->stage(std::move(first));
      }
      batch = s.stager->take(cuda::current_stream(o.device));
      s.loader_position.reset();
    }
    const ImageList& images = batch.images;
    const std::vector<Instances>& targets = batch.targets;
    s.sgd->set_lr(s.lr.at(it));
    const train::DynamicParams params = s.schedule.current();
    try {
      std::vector<Generator> streams;
      if (o.per_image_sampling)
        for (int64_t j = 0; j < images.size(); ++j)
          streams.push_back(image_stream(s.sample_gen.seed, it, s.comm.rank() * o.batch + j));
      models::DetectorLosses out =
          o.per_image_sampling ? s.model->forward_train(images, targets, params, models::SamplingStreams(streams))
                               : s.model->forward_train(images, targets, params, s.sample_gen);
      s.sgd->zero_grad();
      if (s.reducer) {
        s.reducer->begin();
        out.total.backward([&](const Variable& leaf) { s.reducer->on_leaf(leaf); });
        s.reducer->finish();
      } else {
        out.total.backward();
      }
      if (o.after_backward) o.after_backward(it + 1, s.params);
      // The norm stays on the device; it is read with the losses (flush). Clipping or not, the
      // gradients are those of train::clip_grad_norm.
      const Tensor norm = clip_grad_norm_on_device(s.params, o.grad_clip);
      if (s.loss_names.empty())
        for (const auto& [k, v] : out.losses) s.loss_names.push_back(k);
      std::vector<Tensor> row;
      for (const std::string& k : s.loss_names) row.push_back(out.losses.at(k).data().to(DType::Float64));
      row.push_back(out.total.data().to(DType::Float64));
      row.push_back(norm.to(out.total.data().device()));
      s.pending_rows.push_back(ops::stack(row, 0));
      s.pending.push_back({it + 1, s.sgd->lr(), params.iou_threshold, params.beta});
      // Checking every iteration (the CPU default), a non-finite iteration stops before its step.
      // Deferred (a GPU), it steps, but nothing after it is saved: flush() runs before every
      // checkpoint and throws for the first non-finite iteration.
      if (check_every == 1) s.flush();
      s.sgd->step();
      if (s.opt.pool_dynamic_stats && s.comm.size() > 1) {
        train::DynamicStats pooled;
        for (const auto& bytes : s.comm.all_gather(pack_stats(out.stats), "all_gather of the Dynamic R-CNN statistics"))
          unpack_stats_into(bytes, pooled);
        s.schedule.record(pooled);
      } else {
        s.schedule.record(out.stats);
      }
      s.schedule.step();
    } catch (const NonFiniteError&) {
      throw;
    } catch (const Error&) {
      // e.g. NaN statistics after an earlier non-finite iteration: name that one. Not with
      // several ranks: flush() is a collective the others are not in (this error ends the job).
      if (s.comm.size() == 1) s.flush();
      throw;
    }
    if (s.stager && it + 1 < o.iters) {
      // The next batch's copy starts now and overlaps the rest of this iteration's device work.
      s.loader_position = std::make_pair(s.loader->epoch(), s.loader->next_batch());
      data::Batch next;
      next_batch(next);
      s.stager->stage(std::move(next));
    }
    s.iteration = it + 1;

    const double dt = seconds_since(t_iter);
    s.process_seconds += dt;
    ++s.process_iters;
    s.window_time.push_back(dt);
    s.window_data.push_back(batch.data_time_seconds);
    const bool log_now = s.iteration % o.log_every == 0 || s.iteration == o.iters;
    const bool save_now = (o.checkpoint_every > 0 && s.iteration % o.checkpoint_every == 0) || s.iteration == o.iters;
    if (log_now || save_now || s.iteration % check_every == 0) s.flush();
    if (log_now) {
      LogRecord r;
      r.iteration = s.iteration;
      r.eta_seconds = s.process_seconds / double(s.process_iters) * double(o.iters - s.iteration);
      for (const auto& [k, v] : s.window_losses) r.losses[k] = median(v);
      r.lr = s.sgd->lr();
      // The threshold and beta in effect from the next iteration on (an update made by this
      // iteration's step() shows here, as the schedule's state in the checkpoint).
      const train::DynamicParams p = s.schedule.current();
      r.iou_threshold = p.iou_threshold;
      r.beta = p.beta;
      r.time = mean(s.window_time);
      r.data_time = mean(s.window_data);
      r.max_mem_mb = s.peak_memory_mb();
      s.write_log(r);
      s.window_losses.clear();
      s.window_time.clear();
      s.window_data.clear();
    }
    if (save_now && s.comm.is_main()) save_checkpoint(o.run_dir, s.weights(), s.state(), o.keep);
    if (o.eval_every > 0 && s.iteration % o.eval_every == 0 && s.iteration < o.iters) s.evaluate_now();
  }
}

}  // namespace drcnn::engine
