// drcnn_info: prints how this copy of drcnn was built and what it sees at run time.
// Attach its output to bug reports (the idea of detectron2's collect_env).
#include <fmt/format.h>

#include <string>

#include "drcnn/config.h"
#include "drcnn/core/device.h"
#include "drcnn/core/parallel_cpu.h"

namespace {

const char* yes_no(int flag) { return flag ? "yes" : "no"; }

std::string or_dash(const char* s) { return (s != nullptr && s[0] != '\0') ? std::string(s) : "-"; }

#if DRCNN_WITH_CUDA
// CUDA runtime/driver encode 1000*major + 10*minor; cuBLAS and cuDNN 10000*major + 100*minor + patch.
std::string cuda_version(long v) { return v > 0 ? fmt::format("{}.{}", v / 1000, (v % 1000) / 10) : "-"; }
std::string library_version(long v) {
  return v > 0 ? fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100) : "-";
}
#endif

std::string cxx_standard() {
  switch (__cplusplus) {
    case 201703L: return "C++17 (201703L)";
    case 202002L: return "C++20 (202002L)";
    case 202302L: return "C++23 (202302L)";
    default: return fmt::format("{}L", __cplusplus);
  }
}

std::string compiler() {
#if defined(__clang__)
  return fmt::format("clang {}", __VERSION__);
#elif defined(__GNUC__)
  return fmt::format("g++ {}", __VERSION__);
#else
  return "unknown";
#endif
}

}  // namespace

int main() {
  auto row = [](const char* key, const std::string& value) { fmt::print("{:<26}{}\n", key, value); };

  fmt::print("drcnn build information\n");
  row("version", DRCNN_VERSION_STRING);
  row("build type", or_dash(DRCNN_BUILD_TYPE));
  row("compiler", compiler());
  row("C++ standard", cxx_standard());
  row("Eigen (CPU GEMM)", or_dash(DRCNN_EIGEN_VERSION_STRING));
  row("OpenMP", yes_no(DRCNN_WITH_OPENMP));
  row("CUDA built", yes_no(DRCNN_WITH_CUDA));
#if DRCNN_WITH_CUDA
  row("CUDA compiler (nvcc)", or_dash(DRCNN_CUDA_COMPILER_VERSION));
  row("cuDNN (headers)", or_dash(DRCNN_CUDNN_VERSION_STRING));
  row("cuBLAS (headers)", or_dash(DRCNN_CUBLAS_VERSION_STRING));
  row("CUDA architectures", or_dash(DRCNN_CUDA_ARCHITECTURES));
#endif
  row("sync debug", yes_no(DRCNN_SYNC_DEBUG));

  fmt::print("\nruntime\n");
#if DRCNN_WITH_CUDA
  // What the dynamic loader actually found (may differ from the headers compiled against).
  const drcnn::cuda::RuntimeVersions v = drcnn::cuda::runtime_versions();
  row("CUDA runtime (loaded)", cuda_version(v.runtime));
  row("CUDA driver", v.driver > 0 ? cuda_version(v.driver) : "none installed");
  row("cuBLAS (loaded)", library_version(v.cublas));
  row("cuDNN (loaded)", library_version(v.cudnn));
#endif
  const int devices = drcnn::cuda::device_count();
  if (devices > 0) {
    row("CUDA devices", fmt::format("{}", devices));
  } else {
    row("CUDA devices", fmt::format("none: {}", or_dash(drcnn::cuda::unavailable_reason())));
  }
  row("CPU threads (OpenMP)", fmt::format("{}", drcnn::cpu_threads()));
  return 0;
}
