// The cuDNN path's host-side planning (include/drcnn/ops/detail/conv_algo.h), proven on the CPU:
// which candidates are usable and in which order (workspace cap, tensor-op math, determinism,
// duplicates), the fallback loop (first that runs wins and moves to the front; all failing is
// an error naming the op and every failure), the pointer alignment of the cache key, and the
// cudnn_benchmark setting. kernels/cudnn/conv.cpp runs exactly these on a GPU.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/ops/detail/conv_algo.h"

using drcnn::ops::detail::ConvAlgoCandidate;
using drcnn::ops::detail::order_conv_algos;
using drcnn::ops::detail::pointer_alignment;
using drcnn::ops::detail::run_first_working;

namespace {
ConvAlgoCandidate cand(int algo, size_t ws, bool det = true, bool ok = true, bool tensor_op = false) {
  ConvAlgoCandidate c;
  c.algo = algo;
  c.workspace = ws;
  c.deterministic = det;
  c.supported = ok;
  c.tensor_op = tensor_op;
  return c;
}
std::vector<int> algos(const std::vector<ConvAlgoCandidate>& v) {
  std::vector<int> out;
  for (const auto& c : v) out.push_back(c.algo);
  return out;
}
}  // namespace

TEST_CASE("ops/conv_algo: order_conv_algos keeps cuDNN's order of the usable candidates", "[ops][cpu]") {
  const std::vector<ConvAlgoCandidate> perf = {
      cand(5, 1000),                       // fits
      cand(2, 5000),                       // over the cap
      cand(7, 0, true, false),             // unsupported
      cand(1, 10, true, true, true),       // tensor-op math (would allow TF32)
      cand(0, 0),                          // fits
      cand(3, 4096),                       // exactly the cap: fits
  };
  CHECK(algos(order_conv_algos(perf, false, 4096)) == std::vector<int>{5, 0, 3});
  CHECK(algos(order_conv_algos(perf, false, 0)) == std::vector<int>{0});
  CHECK(algos(order_conv_algos(perf, false, size_t(1) << 40)) == std::vector<int>{5, 2, 0, 3});
  CHECK(order_conv_algos({}, false, 1).empty());
}

TEST_CASE("ops/conv_algo: order_conv_algos puts deterministic candidates first when asked", "[ops][cpu]") {
  const std::vector<ConvAlgoCandidate> perf = {cand(0, 0, false), cand(1, 0, true), cand(2, 0, false),
                                               cand(3, 0, true)};
  CHECK(algos(order_conv_algos(perf, true, 100)) == std::vector<int>{1, 3, 0, 2});
  CHECK(algos(order_conv_algos(perf, false, 100)) == std::vector<int>{0, 1, 2, 3});
  // An algorithm listed twice (once per math type) is kept once, at its first usable entry.
  const std::vector<ConvAlgoCandidate> dup = {cand(4, 0, true, true, true), cand(4, 8), cand(1, 0), cand(4, 16)};
  const auto out = order_conv_algos(dup, false, 100);
  CHECK(algos(out) == std::vector<int>{4, 1});
  CHECK(out[0].workspace == 8);
}

TEST_CASE("ops/conv_algo: run_first_working falls back and moves the one that ran to the front", "[ops][cpu]") {
  std::vector<ConvAlgoCandidate> list = {cand(6, 1 << 20), cand(1, 256), cand(0, 0)};
  std::vector<int> tried;
  auto fails_big = [&](const ConvAlgoCandidate& c) -> std::string {
    tried.push_back(c.algo);
    return c.workspace > 1000 ? "workspace not allocated: out of memory" : "";
  };
  CHECK(run_first_working(list, "conv2d", fails_big) == 1);
  CHECK(tried == std::vector<int>{6, 1});
  CHECK(algos(list) == std::vector<int>{1, 6, 0});  // the cached list now starts with 1
  tried.clear();
  CHECK(run_first_working(list, "conv2d", fails_big) == 0);
  CHECK(tried == std::vector<int>{1});
  CHECK(algos(list) == std::vector<int>{1, 6, 0});
}

TEST_CASE("ops/conv_algo: run_first_working reports every failure when nothing runs", "[ops][cpu]") {
  std::vector<ConvAlgoCandidate> list = {cand(3, 64), cand(8, 0)};
  auto none = [](const ConvAlgoCandidate& c) -> std::string {
    return c.algo == 3 ? "CUDNN_STATUS_NOT_SUPPORTED (status 3000)" : "CUDNN_STATUS_EXECUTION_FAILED (status 5000)";
  };
  REQUIRE_THROWS_AS(run_first_working(list, "conv2d (cuDNN forward)", none), drcnn::Error);
  REQUIRE_THROWS_WITH(run_first_working(list, "conv2d (cuDNN forward)", none),
                      Catch::Contains("conv2d (cuDNN forward): no cuDNN algorithm could run (2 usable candidates") &&
                          Catch::Contains("algorithm 3 (workspace 64 bytes): CUDNN_STATUS_NOT_SUPPORTED") &&
                          Catch::Contains("algorithm 8 (workspace 0 bytes): CUDNN_STATUS_EXECUTION_FAILED"));
  std::vector<ConvAlgoCandidate> empty;
  REQUIRE_THROWS_WITH(run_first_working(empty, "conv2d_backward", none),
                      Catch::Contains("0 usable candidates") && Catch::Contains("tensor-op math"));
  CHECK(algos(list) == std::vector<int>{3, 8});  // unchanged order
}

TEST_CASE("ops/conv_algo: pointer_alignment is the largest power of two up to 16 dividing the address",
          "[ops][cpu]") {
  alignas(64) static unsigned char buf[128];
  CHECK(pointer_alignment(buf) == 16);
  CHECK(pointer_alignment(buf + 1) == 1);
  CHECK(pointer_alignment(buf + 2) == 2);
  CHECK(pointer_alignment(buf + 4) == 4);
  CHECK(pointer_alignment(buf + 12) == 4);
  CHECK(pointer_alignment(buf + 8) == 8);
  CHECK(pointer_alignment(buf + 24) == 8);
  CHECK(pointer_alignment(buf + 48) == 16);
  CHECK(pointer_alignment(buf + 32, 64) == 32);
  CHECK(pointer_alignment(buf + 64, 64) == 64);
  // float offsets of a view: 4-byte aligned after an odd element offset
  const float* f = reinterpret_cast<const float*>(buf);
  CHECK(pointer_alignment(f + 1) == 4);
  CHECK(pointer_alignment(f + 2) == 8);
  CHECK(pointer_alignment(f + 4) == 16);
}

TEST_CASE("ops/conv_algo: the cudnn_benchmark setting round-trips", "[ops][cpu]") {
  const bool before = drcnn::cuda::cudnn_benchmark();
  drcnn::cuda::set_cudnn_benchmark(true);
  CHECK(drcnn::cuda::cudnn_benchmark());
  drcnn::cuda::set_cudnn_benchmark(false);
  CHECK_FALSE(drcnn::cuda::cudnn_benchmark());
  drcnn::cuda::set_cudnn_benchmark(before);
}
