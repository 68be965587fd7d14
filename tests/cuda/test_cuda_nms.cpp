// CPU vs CUDA NMS: the keep lists must be identical (no tolerance). Both backends compute every
// IoU with the same body (box_overlap, whose multiplies are never contracted into FMAs), so
// the comparison is exact even for continuous random coordinates and thresholds that sit on
// IoU values. Runs only where a CUDA device exists; elsewhere the test main exits with 77.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/device_compare.h"
#include "common/golden.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/nms.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_equal;

namespace {
const Device kGpu = Device::cuda(0);

struct Set {
  Tensor boxes, scores, ids;
};

/// n boxes in clusters with continuous coordinates (so IoUs are not on a grid), scores with
/// some exact ties and, optionally, NaNs; ids in [0, groups).
Set clustered(int64_t n, uint64_t seed, DType dt, int64_t groups = 1, bool nans = false) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const int64_t clusters = std::max<int64_t>(1, n / 20);
  std::vector<double> c;
  for (int64_t k = 0; k < clusters; ++k) c.insert(c.end(), {u(rng) * 1000, u(rng) * 700, 16 + u(rng) * 300, 16 + u(rng) * 300});
  std::vector<double> b, s;
  std::vector<int64_t> id;
  for (int64_t i = 0; i < n; ++i) {
    const double* k = &c[size_t(4 * (int64_t(u(rng) * double(clusters)) % clusters))];
    const double w = k[2] * (0.7 + 0.6 * u(rng)), h = k[3] * (0.7 + 0.6 * u(rng));
    const double x = k[0] + k[2] * 0.3 * (u(rng) - 0.5), y = k[1] + k[3] * 0.3 * (u(rng) - 0.5);
    b.insert(b.end(), {x, y, x + w, y + h});
    double sc = u(rng);
    if (i % 7 == 0) sc = 0.5;  // ties
    if (nans && i % 11 == 0) sc = std::numeric_limits<double>::quiet_NaN();
    s.push_back(sc);
    id.push_back(int64_t(u(rng) * double(groups)) % groups);
  }
  return {Tensor::from_vector<double>(b, Shape{n, 4}).to(dt), Tensor::from_vector<double>(s, Shape{n}).to(dt),
          Tensor::from_vector<int64_t>(id, Shape{n})};
}
}  // namespace

TEST_CASE("cuda/nms: keep lists equal the CPU's exactly", "[cuda]") {
  uint64_t seed = 1;
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(63), int64_t(64), int64_t(65), int64_t(1000), int64_t(5000),
                      int64_t(20000)}) {
      for (double thr : {0.3, 0.5, 0.7, 0.85}) {
        const Set s = clustered(n, ++seed, dt, 1, n % 2 == 1);
        INFO("n " << n << ", thr " << thr << ", " << drcnn::dtype_name(dt));
        const Tensor bg = s.boxes.to(kGpu), sg = s.scores.to(kGpu);
        const Tensor cpu = ops::nms(s.boxes, s.scores, thr);
        require_device_equal(ops::nms(bg, sg, thr), cpu);
        require_device_equal(ops::nms(bg, sg, thr, 17), ops::nms(s.boxes, s.scores, thr, 17));
      }
    }
  }
}

TEST_CASE("cuda/nms: hand cases (identical boxes, ties, the threshold, NaN scores)", "[cuda]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor same = Tensor::from_vector<double>({0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4}, Shape{3, 4}).to(dt);
    const Tensor half = Tensor::from_vector<double>({0, 0, 3, 1, 1, 0, 4, 1}, Shape{2, 4}).to(dt);
    const Tensor tied = Tensor::from_vector<double>({0.3, 0.3, 0.3}, Shape{3}).to(dt);
    const Tensor nans = Tensor::from_vector<double>({nan, 0.1, nan}, Shape{3}).to(dt);
    const Tensor two = Tensor::from_vector<double>({0.9, 0.8}, Shape{2}).to(dt);
    for (const auto& [b, s, thr] : {std::tuple{same, tied, 0.5}, std::tuple{same, nans, 0.5},
                                    std::tuple{same, nans, 1.0}, std::tuple{half, two, 0.5},
                                    std::tuple{half, two, 0.49}}) {
      require_device_equal(ops::nms(b.to(kGpu), s.to(kGpu), thr), ops::nms(b, s, thr));
    }
  }
}

TEST_CASE("cuda/nms_fixed: buffer, padding and device count equal the CPU's", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Set s = clustered(3000, 99, dt);
    for (int64_t cap : {int64_t(0), int64_t(1), int64_t(100), int64_t(1000), int64_t(4000)}) {
      const ops::NmsFixed g = ops::nms_fixed(s.boxes.to(kGpu), s.scores.to(kGpu), 0.7, cap);
      const ops::NmsFixed c = ops::nms_fixed(s.boxes, s.scores, 0.7, cap);
      require_device_equal(g.keep, c.keep);
      require_device_equal(g.count, c.count);
    }
    const ops::NmsFixed e = ops::nms_fixed(Tensor::empty({0, 4}, dt, kGpu), Tensor::empty({0}, dt, kGpu), 0.7, 4);
    require_device_equal(e.keep, Tensor::full({4}, -1.0, DType::Int64));
  }
}

TEST_CASE("cuda/batched_nms: both paths equal the CPU's", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Set s = clustered(4000, 7, dt, 80);
    const Tensor bg = s.boxes.to(kGpu), sg = s.scores.to(kGpu), ig = s.ids.to(kGpu);
    for (int64_t split : {int64_t(10000), int64_t(0)}) {
      for (int64_t cap : {int64_t(-1), int64_t(100)}) {
        require_device_equal(ops::batched_nms(bg, sg, ig, 0.5, cap, split),
                             ops::batched_nms(s.boxes, s.scores, s.ids, 0.5, cap, split));
      }
    }
  }
}

TEST_CASE("cuda/nms: torchvision goldens on the device", "[cuda]") {
  const auto g = drcnn::test::load_golden("detection/nms");
  const auto thr = g["thresholds"].to_vector<double>();
  for (size_t i = 0; i < thr.size(); ++i) {
    for (auto [dt, tag] : {std::pair{DType::Float64, "f64"}, std::pair{DType::Float32, "f32"}}) {
      const Tensor keep = ops::nms(g["boxes_f64"].to(dt).to(kGpu), g["scores_f64"].to(dt).to(kGpu), thr[i]);
      require_device_equal(keep, g["keep_" + std::to_string(i) + "_" + tag]);
    }
  }
  const auto bg = drcnn::test::load_golden("detection/batched_nms");
  for (const std::string tag : {"offsets", "loop"}) {
    const Tensor b = bg["boxes_" + tag].to(kGpu), s = bg["scores_" + tag].to(kGpu), ids = bg["idxs_" + tag].to(kGpu);
    require_device_equal(ops::batched_nms(b, s, ids, 0.5), bg["keep_" + tag]);
    require_device_equal(ops::batched_nms(b, s, ids, 0.5, -1, 0), bg["keep_" + tag]);
  }
}

TEST_CASE("cuda/nms: legacy (+1) keep lists equal the CPU's", "[cuda]") {
  const auto g = drcnn::test::load_golden("maskrcnn_benchmark/nms");  // the seed's nms.cu rule (CPU test: ops/)
  for (const std::string t : {"0.3", "0.5", "0.7"})
    for (DType dt : {DType::Float64, DType::Float32}) {
      const Tensor b = g["boxes"].to(dt), s = g["scores"].to(dt);
      require_device_equal(ops::nms(b.to(kGpu), s.to(kGpu), std::stod(t), -1, true), ops::nms(b, s, std::stod(t), -1, true));
    }
}

TEST_CASE("cuda/nms: above the sweep's shared-memory limit (393,280 boxes, removed bits in global memory)",
          "[cuda][large]") {
  // 6145 column blocks of 64 > kMaxSharedWords (6144): the sweep keeps its removed bits in
  // global scratch. The CPU would need ~7.7e10 IoUs, so the reference is built by hand: boxes
  // come in pairs (a 10 x 10 box and its copy shifted 1 px right, IoU 90/110 = 0.82) on a
  // 20 px grid (no IoU across pairs), scores are a random permutation of distinct values. The
  // keep list is then the better box of every pair, by descending score. Random scores put
  // the two boxes of a pair in far-apart 64-blocks of the sorted order. The mask needs
  // N * 6145 * 8 bytes = 19.3 GB of device memory.
  constexpr int64_t n = 6145 * 64, pairs = n / 2, cols = 444;
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = i;
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(5));
  std::vector<float> b, s;
  b.reserve(size_t(4 * n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pair = i / 2;
    const float x = float(20 * (pair % cols)) + float(i % 2), y = float(20 * (pair / cols));
    b.insert(b.end(), {x, y, x + 10, y + 10});
    s.push_back(float(perm[size_t(i)]) / float(n));  // distinct: 1/n is far above f32 spacing below 1
  }
  std::vector<int64_t> winners;
  for (int64_t p = 0; p < pairs; ++p) winners.push_back(s[size_t(2 * p)] > s[size_t(2 * p + 1)] ? 2 * p : 2 * p + 1);
  std::sort(winners.begin(), winners.end(), [&](int64_t i, int64_t j) { return s[size_t(i)] > s[size_t(j)]; });
  const Tensor boxes = Tensor::from_vector<float>(b, Shape{n, 4}).to(kGpu);
  const Tensor scores = Tensor::from_vector<float>(s, Shape{n}).to(kGpu);
  require_device_equal(ops::nms(boxes, scores, 0.5), Tensor::from_vector<int64_t>(winners, Shape{pairs}));
  // A threshold above the pairs' IoU keeps every box, by descending score.
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[size_t(n - 1 - perm[size_t(i)])] = i;
  require_device_equal(ops::nms(boxes, scores, 0.9, 5000), Tensor::from_vector<int64_t>(all, Shape{n}).narrow(0, 0, 5000));
}
