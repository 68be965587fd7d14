// Main of the CUDA tests: with no usable CUDA device, every test exits with 77, which ctest
// (SKIP_RETURN_CODE 77) reports as skipped, with the reason printed. Listing still works, so
// catch_discover_tests registers each test.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <string_view>

#include "drcnn/core/device.h"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.rfind("--list", 0) == 0 || a == "-l" || a == "--help" || a == "-h") listing = true;
  }
  if (!listing && !drcnn::cuda::is_available()) {
    std::printf("SKIPPED: %s\n", drcnn::cuda::unavailable_reason());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
