// CPU vs CUDA NMS: the keep lists must be identical (no tolerance). Both backends compute every
// IoU with the same body (box_overlap, whose multiplies are never contracted into FMAs), so
// the comparison is exact even for continuous random coordinates and thresholds that sit on
// IoU values. Runs only where a CUDA device exists; elsewhere the test main exits with 77.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
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
