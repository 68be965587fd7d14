// Communicator (include/drcnn/dist/communicator.h): the launcher detection, the plugin loading
// (dlopen: libdrcnn_dist_mpi.so / libdrcnn_dist_nccl.so, src/dist/backend_abi.h) and the
// deadline around every collective.
#include "drcnn/dist/communicator.h"

#include <dlfcn.h>
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <thread>

#include "backend_abi.h"
#include "drcnn/ops/elementwise.h"

namespace drcnn::dist {

namespace fs = std::filesystem;

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The launcher's world size and the variable it came from; size 1 when none is set.
std::pair<int, std::string> detect_launcher() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    if (const char* v = std::getenv(var); v && *v) {
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      DRCNN_CHECK(end && *end == '\0' && n >= 1 && n < (1L << 24), "drcnn::dist: the launcher variable ", var, "='", v,
                  "' is not a process count");
      return {int(n), fmt::format("{}={}", var, v)};
    }
  }
  return {1, "none"};
}

// Where a plugin is looked for, in order: $DRCNN_DIST_PLUGIN_DIR, the executable's folder, the
// build tree's plugin folder and the installed one (both compiled in), then the loader's
// default search (LD_LIBRARY_PATH, ...).
std::vector<std::string> plugin_candidates(const std::string& file) {
  std::vector<std::string> out;
  if (const char* d = std::getenv("DRCNN_DIST_PLUGIN_DIR"); d && *d) out.push_back((fs::path(d) / file).string());
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back((exe.parent_path() / file).string());
#ifdef DRCNN_DIST_PLUGIN_BUILD_DIR
  out.push_back((fs::path(DRCNN_DIST_PLUGIN_BUILD_DIR) / file).string());
#endif
#ifdef DRCNN_DIST_PLUGIN_INSTALL_DIR
  out.push_back((fs::path(DRCNN_DIST_PLUGIN_INSTALL_DIR) / file).string());
#endif
  out.push_back(file);
  return out;
}

void* load_plugin(const std::string& file, const std::string& why) {
  std::string tried;
  for (const std::string& path : plugin_candidates(file)) {
    if (path.find('/') != std::string::npos && !fs::exists(path)) continue;
    // RTLD_GLOBAL: OpenMPI loads its own components with dlopen and needs libmpi's symbols.
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) return h;
    const char* e = dlerror();
    tried += fmt::format("\n  {}: {}", path, e ? e : "?");
  }
  DRCNN_FAIL("drcnn::dist: ", why, " needs ", file, ", which could not be loaded", tried.empty() ? "" : ":", tried,
             "\n(build drcnn with OpenMPI installed (Debian: libopenmpi-dev openmpi-bin; NCCL for GPUs), or point "
             "DRCNN_DIST_PLUGIN_DIR at the folder that holds it)");
}

template <typename Fn>
Fn symbol(void* handle, const char* name, const std::string& file) {
  void* s = dlsym(handle, name);
  DRCNN_CHECK(s != nullptr, "drcnn::dist: ", file, " has no symbol ", name, " (a plugin of another drcnn version?)");
  return reinterpret_cast<Fn>(s);
}

int to_code(DType d) {
  switch (d) {
    case DType::Float32: return DRCNN_DIST_F32;
    case DType::Float64: return DRCNN_DIST_F64;
    case DType::Int32: return DRCNN_DIST_I32;
    case DType::Int64: return DRCNN_DIST_I64;
    case DType::UInt8:
    case DType::Bool: return DRCNN_DIST_U8;
    case DType::Float16: return DRCNN_DIST_F16;
    case DType::BFloat16: return DRCNN_DIST_BF16;
  }
  return -1;
}

}  // namespace

struct Communicator::Plugin {
  void* handle = nullptr;
  drcnn_dist_backend b{};
  std::string file;
};

// ------------------------------------------------------------------ Work

Work::Work(Work&& o) noexcept { *this = std::move(o); }
Work& Work::operator=(Work&& o) noexcept {
  if (this != &o) {
    if (m_request) {
      try {
        wait();
      } catch (...) {
      }
    }
    m_comm = o.m_comm;
    m_backend = o.m_backend;
    m_request = std::exchange(o.m_request, nullptr);
    m_stream = o.m_stream;
    m_what = std::move(o.m_what);
    m_started = o.m_started;
    m_keep = std::move(o.m_keep);
    m_finish = std::move(o.m_finish);
  }
  return *this;
}
Work::~Work() {
  // Unwinding from an error (a timed-out collective, say): the job is about to be aborted, and
  // waiting here could take another whole timeout; the request is abandoned.
  if (m_request && std::uncaught_exceptions() == 0) {
    try {
      wait();
    } catch (...) {
    }
  }
}
bool Work::test() { return !m_request || m_comm->test(*this); }
void Work::wait() {
  if (m_request) m_comm->wait(*this);
}

// ------------------------------------------------------------------ Communicator

Communicator& Communicator::world() {
  static Communicator c;
  return c;
}

Communicator::Communicator() {
  if (const char* t = std::getenv("DRCNN_DIST_TIMEOUT"); t && *t) {
    char* end = nullptr;
    const double v = std::strtod(t, &end);
    DRCNN_CHECK(end && *end == '\0' && std::isfinite(v) && v > 0, "DRCNN_DIST_TIMEOUT='", t,
                "': expected a number of seconds > 0");
    m_timeout = v;
  }
  const auto [size, launcher] = detect_launcher();
  m_launcher = launcher;
  if (size == 1) return;  // no launcher (or a world of one): rank 0 of 1, no library needed
  m_mpi = std::make_unique<Plugin>();
  m_mpi->file = "libdrcnn_dist_mpi.so";
  m_mpi->handle = load_plugin(m_mpi->file, fmt::format("a run started by a launcher ({})", launcher));
  const auto open = symbol<drcnn_dist_mpi_open_fn>(m_mpi->handle, "drcnn_dist_mpi_open", m_mpi->file);
  char err[1024] = {0};
  DRCNN_CHECK(open(&m_mpi->b, err, sizeof err) == 0, "drcnn::dist: MPI did not start (", launcher, "): ", err);
  DRCNN_CHECK(m_mpi->b.abi_version == DRCNN_DIST_ABI_VERSION, "drcnn::dist: ", m_mpi->file, " speaks ABI ",
              m_mpi->b.abi_version, ", this drcnn ", DRCNN_DIST_ABI_VERSION);
  m_rank = m_mpi->b.rank;
  m_size = m_mpi->b.size;
  m_local_rank = m_mpi->b.local_rank;
  m_local_size = m_mpi->b.local_size;
  DRCNN_CHECK(m_size == size, "drcnn::dist: MPI reports ", m_size, " processes but the launcher said ", launcher);
}

Communicator::~Communicator() { shutdown(); }

std::string Communicator::backend() const { return m_nccl ? "mpi+nccl" : m_mpi ? "mpi" : "single"; }

void Communicator::set_timeout(double seconds) {
  DRCNN_CHECK(std::isfinite(seconds) && seconds > 0, "dist: the collective timeout must be finite and > 0 seconds, got ",
              seconds);
  m_timeout = seconds;
}

void Communicator::check_open(const char* what) const {
  DRCNN_CHECK(!m_shut, "dist: ", what, " after Communicator::shutdown()");
}

void Communicator::fail(const std::string& what, const std::string& reason) const {
  throw DistError(fmt::format("drcnn::dist: rank {} of {}: {} failed: {}", m_rank, m_size, what, reason));
}

void Communicator::init_gpu(Device device) {
  DRCNN_CHECK(device.is_cuda(), "dist::init_gpu: expected a CUDA device, got ", device);
  if (m_size == 1 || m_nccl) return;
  check_open("init_gpu");
  auto p = std::make_unique<Plugin>();
  p->file = "libdrcnn_dist_nccl.so";
  p->handle = load_plugin(p->file, "training on GPUs with several processes");
  const auto make_id = symbol<drcnn_dist_nccl_unique_id_fn>(p->handle, "drcnn_dist_nccl_unique_id", p->file);
  const auto open = symbol<drcnn_dist_nccl_open_fn>(p->handle, "drcnn_dist_nccl_open", p->file);
  char err[1024] = {0};
  Tensor id = Tensor::zeros({128}, DType::UInt8);
  if (m_rank == 0) DRCNN_CHECK(make_id(id.data_ptr(), err, sizeof err) == 0, "drcnn::dist: ", err);
  broadcast(id, 0, "the NCCL unique id");
  DRCNN_CHECK(open(&p->b, id.data_ptr(), m_rank, m_size, device.index, err, sizeof err) == 0,
              "drcnn::dist: NCCL did not start on ", device, ": ", err);
  m_nccl = std::move(p);
  m_gpu = device;
}

Work Communicator::all_reduce_async(Tensor tensor, ReduceOp op, std::string what) {
  check_open(what.c_str());
  DRCNN_CHECK(tensor.defined(), "dist::all_reduce (", what, "): undefined tensor");
  DRCNN_CHECK(tensor.is_contiguous(), "dist::all_reduce (", what, "): the tensor must be contiguous, got shape ",
              tensor.shape());
  const DType dt = tensor.dtype();
  DRCNN_CHECK(op == ReduceOp::Sum || is_floating(dt), "dist::all_reduce (", what,
              "): a mean needs a floating-point tensor, got ", dt, " (reduce the sum instead)");
  Work w;
  w.m_comm = this;
  w.m_what = std::move(what);
  w.m_keep = tensor;
  const bool mean = op == ReduceOp::Mean && m_size > 1;
  const Tensor divisor = mean ? Tensor::full({}, double(m_size), is_floating(dt) && dt != DType::Float64 ? DType::Float32
                                                                                                         : DType::Float64,
                                             Device::cpu())
                              : Tensor();
  if (m_size == 1) return w;  // identity (a mean of one is the value itself)
  const Plugin* p = nullptr;
  Tensor buffer = tensor;
  if (tensor.device().is_cuda()) {
    DRCNN_CHECK(m_nccl && m_gpu == tensor.device(), "dist::all_reduce (", w.m_what, "): a tensor on ", tensor.device(),
                " needs the NCCL backend initialised for it (Communicator::init_gpu(", tensor.device(), "))");
    p = m_nccl.get();
    w.m_stream = cuda::current_stream(tensor.device()).handle;
    if (mean)
      w.m_finish = [tensor, divisor]() mutable {
        tensor.copy_(ops::div(tensor.to(divisor.dtype()), divisor.to(tensor.device())));
      };
  } else {
    p = m_mpi.get();
    if (dt == DType::Float16 || dt == DType::BFloat16) buffer = tensor.to(DType::Float32);  // MPI has no half types
    if (mean || buffer.dtype() != dt)
      w.m_finish = [tensor, buffer, divisor, mean]() mutable {
        tensor.copy_(mean ? ops::div(buffer, divisor.to(buffer.dtype())) : buffer);
      };
  }
  w.m_keep = buffer;
  w.m_backend = &p->b;
  w.m_started = now_seconds();
  const int r = p->b.all_reduce(p->b.self, buffer.numel() ? buffer.data_ptr() : nullptr, uint64_t(buffer.numel()),
                                to_code(buffer.dtype()), dt == DType::Bool ? DRCNN_DIST_MAX : DRCNN_DIST_SUM, w.m_stream,
                                &w.m_request);
  if (r != 0) fail(w.m_what, p->b.last_error(p->b.self));
  return w;
}

void Communicator::all_reduce(Tensor& tensor, ReduceOp op, const std::string& what) {
  Work w = all_reduce_async(tensor, op, what);
  w.wait();
}

void Communicator::broadcast(Tensor& tensor, int root, const std::string& what) {
  check_open(what.c_str());
  DRCNN_CHECK(tensor.defined() && tensor.is_contiguous(), "dist::broadcast (", what, "): needs a defined, contiguous tensor");
  DRCNN_CHECK(root >= 0 && root < m_size, "dist::broadcast (", what, "): root ", root, " is not a rank of ", m_size);
  if (m_size == 1) return;
  Work w;
  w.m_comm = this;
  w.m_what = what;
  w.m_keep = tensor;
  const Plugin* p = m_mpi.get();
  if (tensor.device().is_cuda()) {
    DRCNN_CHECK(m_nccl && m_gpu == tensor.device(), "dist::broadcast (", what, "): a tensor on ", tensor.device(),
                " needs Communicator::init_gpu(", tensor.device(), ")");
    p = m_nccl.get();
    w.m_stream = cuda::current_stream(tensor.device()).handle;
  }
  w.m_backend = &p->b;
  w.m_started = now_seconds();
  const uint64_t bytes = uint64_t(tensor.numel()) * dtype_size(tensor.dtype());
  if (p->b.broadcast(p->b.self, bytes ? tensor.data_ptr() : nullptr, bytes, root, w.m_stream, &w.m_request) != 0)
    fail(what, p->b.last_error(p->b.self));
  w.wait();
}

std::vector<std::vector<uint8_t>> Communicator::all_gather(std::span<const uint8_t> bytes, const std::string& what) {
  check_open(what.c_str());
  if (m_size == 1) return {std::vector<uint8_t>(bytes.begin(), bytes.end())};
  Tensor counts = Tensor::zeros({m_size}, DType::Int64);
  counts.data<int64_t>()[m_rank] = int64_t(bytes.size());
  all_reduce(counts, ReduceOp::Sum, what + " (lengths)");
  std::vector<uint64_t> n(static_cast<size_t>(m_size));
  uint64_t total = 0;
  for (int r = 0; r < m_size; ++r) total += n[size_t(r)] = uint64_t(counts.data<int64_t>()[r]);
  std::vector<uint8_t> recv(std::max<uint64_t>(total, 1));
  Work w;
  w.m_comm = this;
  w.m_what = what;
  w.m_backend = &m_mpi->b;
  w.m_started = now_seconds();
  if (m_mpi->b.all_gather_v(m_mpi->b.self, bytes.data(), recv.data(), n.data(), &w.m_request) != 0)
    fail(what, m_mpi->b.last_error(m_mpi->b.self));
  w.wait();
  std::vector<std::vector<uint8_t>> out;
  uint64_t at = 0;
  for (int r = 0; r < m_size; ++r) {
    out.emplace_back(recv.begin() + int64_t(at), recv.begin() + int64_t(at + n[size_t(r)]));
    at += n[size_t(r)];
  }
  return out;
}

void Communicator::barrier(const std::string& what) {
  check_open(what.c_str());
  if (m_size == 1) return;
  Work w;
  w.m_comm = this;
  w.m_what = what;
  w.m_backend = &m_mpi->b;
  w.m_started = now_seconds();
  if (m_mpi->b.barrier(m_mpi->b.self, &w.m_request) != 0) fail(what, m_mpi->b.last_error(m_mpi->b.self));
  w.wait();
}

bool Communicator::test(Work& w) {
  const auto* b = static_cast<const drcnn_dist_backend*>(w.m_backend);
  int done = 0;
  if (b->test(b->self, w.m_request, w.m_stream, &done) != 0) {
    w.m_request = nullptr;  // a failed request is not driven again
    fail(w.m_what, b->last_error(b->self));
  }
  if (!done) return false;
  w.m_request = nullptr;
  if (w.m_finish) std::exchange(w.m_finish, nullptr)();
  w.m_keep = Tensor();
  return true;
}

void Communicator::wait(Work& w) {
  // Poll with a growing pause (up to 1 ms): MPI progresses inside MPI_Test, and a pause keeps an
  // oversubscribed machine's cores for the ranks that still compute.
  int spins = 0;
  while (!test(w)) {
    const double waited = now_seconds() - w.m_started;
    if (waited > m_timeout) {
      w.m_request = nullptr;  // abandoned: the job is about to be aborted
      fail(w.m_what, fmt::format("not complete after {:.0f} s (the collective timeout; DRCNN_DIST_TIMEOUT or "
                                 "--dist-timeout): another rank has stopped, died or hangs (its own error, if it "
                                 "printed one, is in the log)",
                                 waited));
    }
    if (++spins < 64) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(std::min(1000, 10 * (spins - 63))));
  }
}

void Communicator::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (m_nccl) m_nccl->b.abort(m_nccl->b.self, code);
  if (m_mpi && !m_shut) m_mpi->b.abort(m_mpi->b.self, code);
  std::_Exit(code);
}

void Communicator::shutdown() {
  if (m_shut) return;
  m_shut = true;
  if (m_nccl) m_nccl->b.finalize(m_nccl->b.self);
  if (m_mpi) m_mpi->b.finalize(m_mpi->b.self);
  // The plugins stay loaded: OpenMPI's components must not be unmapped under its atexit hooks.
}

}  // namespace drcnn::dist
