// Main of the CUDA tests: with no usable CUDA device, every test exits with 77, which ctest
// (SKIP_RETURN_CODE 77) reports as skipped, with the reason printed. Listing still works, so
// catch_discover_tests registers each test.
//
// DRCNN_REQUIRE_CUDA=1 turns the skip into a failure (exit 1): on a machine that has a GPU,
// `DRCNN_REQUIRE_CUDA=1 ctest -L cuda` cannot pass without running, whether the build fell
// back to CPU only (DRCNN_WITH_CUDA=OFF), the driver is too old or no device is visible.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "drcnn/config.h"
#include "drcnn/core/device.h"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.rfind("--list", 0) == 0 || a == "-l" || a == "--help" || a == "-h") listing = true;
  }
  if (!listing && !drcnn::cuda::is_available()) {
    const char* require = std::getenv("DRCNN_REQUIRE_CUDA");
    if (require != nullptr && std::string_view(require) == "1") {
      std::printf("FAILED: DRCNN_REQUIRE_CUDA=1 but no CUDA device is usable (DRCNN_WITH_CUDA=%d): %s\n",
                  DRCNN_WITH_CUDA, drcnn::cuda::unavailable_reason());
      return 1;
    }
    std::printf("SKIPPED: %s (set DRCNN_REQUIRE_CUDA=1 to fail instead)\n", drcnn::cuda::unavailable_reason());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
