// Consumer of an installed drcnn: includes the installed headers (and the generated config.h),
// links drcnn::drcnn, computes a 2x2 matmul and checks it. Exit code 0 only when right.
#include <fmt/format.h>

#include <vector>

#include "drcnn/config.h"
#include "drcnn/core/device.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/matmul.h"

int main() try {
  fmt::print("drcnn {} (DRCNN_WITH_CUDA={}, DRCNN_WITH_OPENMP={})\n", DRCNN_VERSION_STRING,
             DRCNN_WITH_CUDA, DRCNN_WITH_OPENMP);
  // Links the CUDA library's runtime entry points when drcnn was built with CUDA.
  const int devices = drcnn::cuda::device_count();
  fmt::print("CUDA devices: {}{}\n", devices,
             devices > 0 ? "" : fmt::format(" ({})", drcnn::cuda::unavailable_reason()));

  const auto a = drcnn::Tensor::from_vector<float>({1, 2, 3, 4}, drcnn::Shape{2, 2});
  const auto b = drcnn::Tensor::from_vector<float>({5, 6, 7, 8}, drcnn::Shape{2, 2});
  const std::vector<float> c = drcnn::ops::matmul(a, b).to_vector<float>();
  const std::vector<float> expected = {19, 22, 43, 50};
  fmt::print("[[1,2],[3,4]] @ [[5,6],[7,8]] = [[{}, {}], [{}, {}]]\n", c[0], c[1], c[2], c[3]);
  if (c != expected) {
    fmt::print(stderr, "drcnn_consumer: wrong result, expected [[19, 22], [43, 50]]\n");
    return 1;
  }
  fmt::print("drcnn_consumer: OK\n");
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "drcnn_consumer: {}\n", e.what());
  return 1;
}
