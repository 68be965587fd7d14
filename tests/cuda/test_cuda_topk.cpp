// CPU vs CUDA parity of the segmented top-k: selection is not arithmetic, so the CUDA result
// (CUB stable segmented radix sort on the shared keys) must equal the CPU's exactly, ties,
// NaN and signed zeros included. Runs only where a CUDA device exists; elsewhere the test
// main exits with 77 and ctest reports it skipped.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "common/device_compare.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/topk.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;

namespace {
const Device kGpu = Device::cuda(0);

using drcnn::test::require_device_equal;

void require_same(const ops::SegmentTopK& g, const ops::SegmentTopK& c) {
  require_device_equal(g.values, c.values);  // NaN matches NaN
  require_device_equal(g.indices, c.indices);
  require_device_equal(g.counts, c.counts);
}

std::vector<double> scores(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-3, 3);
  std::uniform_int_distribution<int> special(0, 49);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) {
    x = std::round(u(rng) * 8) / 8;  // many ties
    const int c = special(rng);
    if (c == 0) x = std::numeric_limits<double>::quiet_NaN();
    else if (c == 1) x = -std::numeric_limits<double>::infinity();
    else if (c == 2) x = -0.0;
  }
  return v;
}
}  // namespace

TEST_CASE("cuda/segment_topk: equals the CPU exactly", "[cuda]") {
  // RPN-like segments (2 images x 5 levels of an 800x1344 input) plus empty and tiny ones.
  const std::vector<int64_t> lens = {201600, 0, 50400, 12600, 3150, 819, 1, 0, 7, 2000};
  std::vector<int64_t> off = {0};
  for (int64_t L : lens) off.push_back(off.back() + L);
  const auto v = scores(off.back(), 11);
  const Tensor off_cpu = Tensor::from_vector<int64_t>(off);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor s = Tensor::from_vector<double>(v).to(dt);
    const Tensor sg = s.to(kGpu);
    for (int64_t k : {int64_t(0), int64_t(1), int64_t(1000), int64_t(2000), int64_t(5000)}) {
      const auto c = ops::segment_topk(s, off_cpu, k);
      require_same(ops::segment_topk(sg, off_cpu, k), c);          // host offsets
      require_same(ops::segment_topk(sg, off_cpu.to(kGpu), k), c);  // device offsets
      const auto [cv, ci] = ops::segment_topk_compact(s, off_cpu, k);
      const auto [gv, gi] = ops::segment_topk_compact(sg, off_cpu, k);
      require_device_equal(gv, cv);
      require_device_equal(gi, ci);
    }
    const Tensor dense = s.narrow(0, 0, 64 * 300).reshape({64, 300});
    require_same(ops::segment_topk_dense(dense.to(kGpu), 50), ops::segment_topk_dense(dense, 50));
  }
}

TEST_CASE("cuda/segment_topk: every sort strategy (one segment, few large, many) equals the CPU", "[cuda]") {
  // kernels/cuda/topk.cu picks a radix select per segment when there are at most 64 segments
  // and k <= len / 4 of the longest (k 1 and 2000 below, with whole-segment sorts for the short
  // ones), else a device-wide sort for one segment, two device-wide passes for at most 64
  // segments of 8192+ scores on average (k 300000), and the segmented sort otherwise.
  const auto v = scores(65 * 8192, 23);
  struct Case {
    const char* what;
    std::vector<int64_t> lens;
  };
  const std::vector<Case> cases = {
      {"one segment (device-wide)", {270000}},
      {"few large, empty ones between (two passes)", {0, 120000, 0, 90000, 60000, 0}},
      {"64 segments of 8192 (two passes)", std::vector<int64_t>(64, 8192)},
      {"65 segments of 8192 (segmented)", std::vector<int64_t>(65, 8192)},
      {"10 segments of 5000 (segmented)", std::vector<int64_t>(10, 5000)},
  };
  for (const Case& c : cases) {
    std::vector<int64_t> off = {0};
    for (int64_t L : c.lens) off.push_back(off.back() + L);
    const Tensor off_cpu = Tensor::from_vector<int64_t>(off);
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor s = Tensor::from_vector<double>(std::vector<double>(v.begin(), v.begin() + off.back())).to(dt);
      for (int64_t k : {int64_t(1), int64_t(2000), int64_t(300000)}) {
        INFO(c.what << ", " << drcnn::dtype_name(dt) << ", k " << k);
        require_same(ops::segment_topk(s.to(kGpu), off_cpu.to(kGpu), k), ops::segment_topk(s, off_cpu, k));
      }
    }
  }
}

TEST_CASE("cuda/segment_topk: the partial top-k (radix select) with ties at the k-th, all equal, all NaN", "[cuda]") {
  std::vector<double> straddle(40000, 1.0);
  for (size_t i = 0; i < straddle.size(); i += 3) straddle[i] = 2.0;  // 13334 twos, then ones
  const std::vector<std::vector<double>> inputs = {
      straddle, std::vector<double>(30000, 0.25), std::vector<double>(30000, std::numeric_limits<double>::quiet_NaN()),
      scores(200000, 5)};
  for (const auto& v : inputs) {
    const Tensor off = Tensor::from_vector<int64_t>({0, int64_t(v.size())});
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor s = Tensor::from_vector<double>(v).to(dt);
      for (int64_t k : {int64_t(1), int64_t(7), int64_t(5000), int64_t(13334), int64_t(7500)}) {
        INFO(drcnn::dtype_name(dt) << ", n " << v.size() << ", k " << k);
        require_same(ops::segment_topk(s.to(kGpu), off, k), ops::segment_topk(s, off, k));
      }
    }
  }
}
