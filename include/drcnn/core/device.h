// Device and Stream: plain values, so that no public header needs a CUDA header.
#pragma once
#include "drcnn/core/error.h"  // DRCNN_HAVE_FMT
#if DRCNN_HAVE_FMT
#include <fmt/format.h>
#endif

#include <cstdint>

namespace drcnn {

/// Where a tensor lives: the CPU, or CUDA device `index`.
struct Device {
  enum class Kind : uint8_t { Cpu, Cuda };
  Kind kind = Kind::Cpu;
  int index = 0;

  static constexpr Device cpu() { return {Kind::Cpu, 0}; }
  static constexpr Device cuda(int index = 0) { return {Kind::Cuda, index}; }
  constexpr bool is_cpu() const { return kind == Kind::Cpu; }
  constexpr bool is_cuda() const { return kind == Kind::Cuda; }
  friend constexpr bool operator==(Device a, Device b) = default;
};

/// A CUDA stream (cudaStream_t) held as void*; nullptr is the legacy default stream.
struct Stream {
  void* handle = nullptr;
};

namespace cuda {
/// Number of visible CUDA devices; 0 when drcnn was built without CUDA, when no driver is
/// installed or when no device is present. Never throws.
int device_count();
/// True when drcnn was built with CUDA and at least one device is visible.
inline bool is_available() { return device_count() > 0; }
/// The stream ops on `device` are queued on by this thread (default: the legacy stream).
Stream current_stream(Device device);
/// Sets this thread's current stream for `device` (nullptr restores the default stream).
void set_current_stream(Device device, Stream stream);
/// Waits for all work queued on `device`.
void synchronize(Device device);
/// Why device_count() is 0, in words ("built without CUDA", "no CUDA device", driver message).
const char* unavailable_reason();
/// How the cuDNN convolutions choose their algorithm, once per shape: false (the default) takes
/// cuDNN's heuristics (cudnnGetConvolution*Algorithm_v7: no search, no synchronisation, no
/// search workspace); true measures the candidates on the real buffers with
/// cudnnFind*AlgorithmEx (PyTorch's torch.backends.cudnn.benchmark), which synchronises once
/// per new shape. DRCNN_CUDNN_BENCHMARK=1 in the environment sets true at start-up. Settable in
/// any build; without CUDA it has no effect. docs/kernels/conv2d.md.
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();
/// Versions of the CUDA libraries loaded at run time, encoded as the libraries do
/// (e.g. runtime 13000 = 13.0, cudnn 91900 = 9.19.0); 0 where unknown or built without CUDA.
struct RuntimeVersions {
  int runtime = 0;
  int driver = 0;  // 0 when no driver is installed
  int cublas = 0;
  long cudnn = 0;
};
RuntimeVersions runtime_versions();
}  // namespace cuda

/// Makes `device` current for the scope (cudaSetDevice), restoring the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int m_previous = -1;
};
}  // namespace drcnn

#if DRCNN_HAVE_FMT
template <>
struct fmt::formatter<drcnn::Device> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(drcnn::Device d, Ctx& ctx) const {
    if (d.is_cpu()) return fmt::format_to(ctx.out(), "cpu");
    return fmt::format_to(ctx.out(), "cuda:{}", d.index);
  }
};
#else
#include <ostream>
namespace drcnn {
inline std::ostream& operator<<(std::ostream& os, Device d) {
  return d.is_cpu() ? (os << "cpu") : (os << "cuda:" << d.index);
}
}  // namespace drcnn
#endif
