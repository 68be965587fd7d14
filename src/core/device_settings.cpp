// Backend-neutral settings declared in include/drcnn/core/device.h (compiled in every build, so
// that a program can set them whether or not drcnn was built with CUDA).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "drcnn/core/device.h"

namespace drcnn::cuda {
namespace {
std::atomic<bool>& benchmark_flag() {
  static std::atomic<bool> flag = [] {
    const char* env = std::getenv("DRCNN_CUDNN_BENCHMARK");
    return env != nullptr && std::strcmp(env, "1") == 0;
  }();
  return flag;
}
}  // namespace

void set_cudnn_benchmark(bool on) { benchmark_flag().store(on); }
bool cudnn_benchmark() { return benchmark_flag().load(); }
}  // namespace drcnn::cuda
