// RoIAlign (include/drcnn/ops/roi_align.h): hand-computed cases on a 5x5 arange map, the
// float64 reference of tests/reference/roi_align_ref.h on random inputs (f32 and f64,
// contiguous and strided), the backward against the reference's transpose, CPU determinism
// across thread counts, the CUDA-only bodies run on the host, multi-level pooling against
// per-level calls, and every bad input. Set DRCNN_ROI_REPORT=1 to print the max errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <type_traits>

#include "common/allclose.h"
#include "common/random.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/detail/roi_align_body.h"
#include "drcnn/ops/roi_align.h"
#include "reference/roi_align_ref.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::bitwise_equal;
using drcnn::test::expect_allclose;
using drcnn::test::strided_values;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
struct ThreadGuard {
  ~ThreadGuard() { drcnn::set_cpu_threads(0); }
};

/// The 5x5 map f(y, x) = 5 y + x as [1, 1, 5, 5]. Bilinear interpolation of a linear function
/// is exact, so a sample at (y, x) inside [0, 4]^2 reads 5 y + x; samples in [-1, 0) read the
/// clamped coordinate 0, samples in (4, 5] read 4, samples outside [-1, 5] read nothing.
Tensor arange_map(DType dt) { return Tensor::arange(0, 25, 1, dt).reshape({1, 1, 5, 5}); }

Tensor rois_of(const std::vector<double>& v, DType dt) {
  return Tensor::from_vector<double>(v, Shape{int64_t(v.size()) / 5, 5}).to(dt);
}

ref::RoiAlignRefParams params(ops::RoiOutputSize s, double scale, int64_t sr, bool aligned) {
  return {s[0], s[1], scale, sr, aligned};
}

/// Random RoIs over an image of img_h x img_w: sizes from 1 to 1.2x the image, some partly
/// outside, batch index in [0, N).
std::vector<double> random_rois(int64_t R, int64_t N, double img_h, double img_w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> v;
  for (int64_t i = 0; i < R; ++i) {
    const double w = 1 + u(rng) * 1.2 * img_w, h = 1 + u(rng) * 1.2 * img_h;
    const double x = -0.2 * img_w + u(rng) * 1.2 * img_w, y = -0.2 * img_h + u(rng) * 1.2 * img_h;
    v.insert(v.end(), {double(int64_t(u(rng) * double(N))), x, y, x + w, y + h});
  }
  return v;
}

void check_close(const Tensor& actual, const std::vector<double>& expected, double rtol, double atol, const char* what) {
  const auto r = drcnn::test::compare_close(strided_values(actual), expected, rtol, atol);
  if (std::getenv("DRCNN_ROI_REPORT"))
    std::printf("%s (%s): %s\n", what, std::string(drcnn::dtype_name(actual.dtype())).c_str(), r.text.c_str());
  INFO(what << ": " << r.text);
  CHECK(r.mismatches == 0);
}

// Tolerances vs the float64 reference. f64: the kernel and the reference round differently
// (sample coordinates, summation order) but stay within ~1e-15 relative of values of size
// ~1 summed over at most a few thousand samples: 1e-12 absolute. f32: the sample coordinates
// themselves are rounded to float (about 6e-8 relative of coordinates up to ~100 pixels, so
// ~1e-5 pixels), which moves each bilinear value by at most that times the map's slope (< 2 per
// pixel for values in [-1, 1]), and the sums accumulate float rounding: 1e-4 absolute.
constexpr double kAtol64 = 1e-12, kAtol32 = 1e-4;
double atol_for(DType dt) { return dt == DType::Float64 ? kAtol64 : kAtol32; }
}  // namespace

// ============================================================================ hand-computed
TEST_CASE("ops/roi_align: hand-computed values on the 5x5 arange map", "[ops][cpu][roi_align]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor f = arange_map(dt);
    // RoI (1, 1)-(3, 3), 2x2 bins of 1 px, 2x2 samples per bin.
    // aligned=false: bin (0, 0) samples y, x in {1.25, 1.75}: mean 5 * 1.5 + 1.5 = 9; the other
    // bins shift by +1 in x (10) and +1 in y (5 * 2.5 + 1.5 = 14, 15).
    const Tensor r = rois_of({0, 1, 1, 3, 3}, dt);
    expect_allclose(ops::roi_align(f, r, {2, 2}, 1.0, 2, false), {9, 10, 14, 15}, 0, 1e-6);
    // aligned=true: everything moves by -0.5 px: samples {0.75, 1.25}, mean 1: 5 + 1 = 6, 7, 11, 12.
    expect_allclose(ops::roi_align(f, r, {2, 2}, 1.0, 2, true), {6, 7, 11, 12}, 0, 1e-6);
    // Adaptive grid (sampling 0) on (0, 0)-(4, 4) with 2x2 bins of 2 px: ceil(4 / 2) = 2 samples
    // per axis at {0.5, 1.5} and {2.5, 3.5}: means 1 and 3 -> 5 + 1 = 6, 8, 16, 18.
    expect_allclose(ops::roi_align(f, rois_of({0, 0, 0, 4, 4}, dt), {2, 2}, 1.0, 0, false), {6, 8, 16, 18}, 0, 1e-6);
  }
}

TEST_CASE("ops/roi_align: border, outside and degenerate RoIs by hand", "[ops][cpu][roi_align]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor f = arange_map(dt);
    auto one = [&](std::vector<double> roi, double scale, int64_t sr, bool aligned) {
      return ops::roi_align(f, rois_of(roi, dt), {1, 1}, scale, sr, aligned).item<double>();
    };
    // RoI exactly at the bottom-right border (3, 3)-(5, 5), 2x2 samples at {3.5, 4.5}: 4.5 is
    // past H - 1 = 4 and reads row 4, so the rows are {3.5, 4} (mean 3.75), columns too:
    // 5 * 3.75 + 3.75 = 22.5.
    CHECK(one({0, 3, 3, 5, 5}, 1, 2, false) == Approx(22.5).margin(1e-5));
    // Partly outside, (-2, -2)-(2, 2), samples at {-1, 1}: -1 is still inside the window and
    // reads row/column 0, so the rows are {0, 1}: 5 * 0.5 + 0.5 = 3.
    CHECK(one({0, -2, -2, 2, 2}, 1, 2, false) == Approx(3).margin(1e-6));
    // (-3, 0)-(1, 4): x samples at {-2, 0}, -2 is outside [-1, 5] and contributes 0; y samples at
    // {1, 3}. Valid samples (1, 0) and (3, 0) read 5 and 15; the average still divides by all 4
    // samples: 20 / 4 = 5.
    CHECK(one({0, -3, 0, 1, 4}, 1, 2, false) == Approx(5).margin(1e-6));
    // Bigger than the map, (0, 0)-(10, 10), adaptive: grid ceil(10 / 1) = 10 per axis at
    // 0.5 .. 9.5; 0.5 .. 4.5 are inside (4.5 reads 4), 5.5 .. 9.5 are outside. Column sum
    // 0.5 + 1.5 + 2.5 + 3.5 + 4 = 12 over 5 valid columns and 5 valid rows:
    // sum = 5 * (5 * 12) + 5 * 12 = 360, divided by 100 samples = 3.6.
    CHECK(one({0, 0, 0, 10, 10}, 1, 0, false) == Approx(3.6).margin(1e-5));
    // Spatial scale 0.5, aligned: (2, 2)-(6, 6) -> (0.5, 0.5)-(2.5, 2.5), samples {1, 2}: 7.5 + 1.5 = 9.
    CHECK(one({0, 2, 2, 6, 6}, 0.5, 2, true) == Approx(9).margin(1e-6));
    // Spatial scale 2, not aligned: (0.5, 0.5)-(1, 1) -> (1, 1)-(2, 2), samples {1.25, 1.75}: 9.
    CHECK(one({0, 0.5, 0.5, 1, 1}, 2, 2, false) == Approx(9).margin(1e-6));
    // Zero-size RoI at (2, 2): aligned keeps size 0 -> adaptive grid 0 -> 0; not aligned clamps
    // the size to 1 -> grid 1, one sample at 2.5: 12.5 + 2.5 = 15.
    CHECK(one({0, 2, 2, 2, 2}, 1, 0, true) == 0.0);
    CHECK(one({0, 2, 2, 2, 2}, 1, 0, false) == Approx(15).margin(1e-6));
    // Entirely outside the window: 0.
    CHECK(one({0, 20, 20, 30, 30}, 1, 2, true) == 0.0);
  }
}

TEST_CASE("ops/roi_align: single, identical and empty RoIs, channels and batches", "[ops][cpu][roi_align]") {
  // Two images, two channels: channel 1 = 100 + channel 0, image 1 = 1000 + image 0.
  const Tensor base = Tensor::arange(0, 25, 1, DType::Float64).reshape({1, 1, 5, 5});
  std::vector<double> v;
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 25; ++i) v.push_back(1000.0 * n + 100.0 * c + i);
  const Tensor f = Tensor::from_vector<double>(v, Shape{2, 2, 5, 5});
  // Three identical RoIs on image 1 give three identical rows; (1, 1)-(3, 3) 1x1 with 2x2
  // samples averages to 5 * 2 + 2 = 12.
  const Tensor r = rois_of({1, 1, 1, 3, 3, 1, 1, 1, 3, 3, 1, 1, 1, 3, 3}, DType::Float64);
  const Tensor out = ops::roi_align(f, r, {1, 1}, 1.0, 2, false);
  REQUIRE(out.shape() == Shape{3, 2, 1, 1});
  expect_allclose(out, {1012, 1112, 1012, 1112, 1012, 1112}, 0, 1e-9);
  // Empty RoIs and empty channels.
  const Tensor none = ops::roi_align(f, Tensor::empty({0, 5}, DType::Float64), {7, 7}, 0.25, 0, true);
  CHECK(none.shape() == Shape{0, 2, 7, 7});
  const Tensor no_c = ops::roi_align(Tensor::empty({2, 0, 5, 5}, DType::Float64), r, {7, 7}, 1, 2, true);
  CHECK(no_c.shape() == Shape{3, 0, 7, 7});
  const Tensor g0 = ops::roi_align_backward(Tensor::empty({0, 2, 7, 7}, DType::Float64),
                                            Tensor::empty({0, 5}, DType::Float64), {2, 2, 5, 5}, 1, 0, true);
  CHECK(g0.shape() == Shape{2, 2, 5, 5});
  for (double x : strided_values(g0)) CHECK(x == 0.0);
}

TEST_CASE("ops/roi_align_backward: hand-computed gradients", "[ops][cpu][roi_align]") {
  auto grad = [](std::vector<double> roi, int64_t sr) {
    return strided_values(ops::roi_align_backward(Tensor::ones({1, 1, 1, 1}, DType::Float64),
                                                  rois_of(roi, DType::Float64), {1, 1, 5, 5}, 1.0, sr, false));
  };
  // One sample exactly at (2, 2): all the gradient goes to cell (2, 2).
  std::vector<double> e(25, 0.0);
  e[12] = 1;
  expect_allclose(grad({0, 1, 1, 3, 3}, 1), e, 0, 1e-15);
  // 2x2 samples at {1.5, 2.5}: each sample gives 1/4 * 1/4 to its four cells. Cell (2, 2) is
  // shared by all four samples (1/4), the edge cells by two (1/8), the corners by one (1/16).
  e.assign(25, 0.0);
  for (int y = 1; y <= 3; ++y)
    for (int x = 1; x <= 3; ++x) e[size_t(5 * y + x)] = (y == 2 ? 2 : 1) * (x == 2 ? 2 : 1) / 16.0;
  expect_allclose(grad({0, 1, 1, 3, 3}, 2), e, 0, 1e-15);
  // Border (3, 3)-(5, 5): samples at {3.5, 4.5 -> 4}. Sample (4, 4) puts its 1/4 on (4, 4);
  // (3.5, 4) and (4, 3.5) split 1/4 between (3, 4)/(4, 4) and (4, 3)/(4, 4); (3.5, 3.5) puts
  // 1/16 on each of its four cells. (4, 4): 1/4 + 1/8 + 1/8 + 1/16 = 9/16; (3, 4) and (4, 3):
  // 1/8 + 1/16 = 3/16; (3, 3): 1/16.
  e.assign(25, 0.0);
  e[24] = 9 / 16.0;
  e[19] = e[23] = 3 / 16.0;
  e[18] = 1 / 16.0;
  expect_allclose(grad({0, 3, 3, 5, 5}, 2), e, 0, 1e-15);
}

// ============================================================================ vs reference
TEST_CASE("ops/roi_align: random inputs match the float64 reference", "[ops][cpu][roi_align]") {
  const int64_t N = 2, C = 5, H = 13, W = 17;
  const std::vector<double> rv = random_rois(40, N, 4 * H, 4 * W, 7);  // image = 4x the map
  struct Cfg {
    ops::RoiOutputSize size;
    double scale;
    int64_t sr;
    bool aligned;
  };
  const Cfg cfgs[] = {{{7, 7}, 0.25, 0, true},  {{7, 7}, 0.25, 2, false}, {{3, 5}, 0.25, 1, true},
                      {{2, 2}, 0.5, 0, false},  {{4, 3}, 0.125, 3, true}, {{7, 7}, 0.25, 2, true}};
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor rois = rois_of(rv, dt);
    // Contiguous and strided features: every other column of a wider map (the skipped ones NaN,
    // so a wrong stride shows), and a channel-permuted layout.
    const Tensor contiguous = drcnn::test::random_tensor(Shape{N, C, H, W}, 11, dt);
    Tensor wide = Tensor::full({N, C, H, 2 * W}, NAN, dt);
    wide.slice(3, 0, 2 * W, 2).copy_(contiguous);
    const Tensor strided = wide.slice(3, 0, 2 * W, 2);
    const Tensor permuted = contiguous.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
    const std::vector<double> fv = strided_values(contiguous);
    for (const Cfg& c : cfgs) {
      INFO("output " << c.size[0] << "x" << c.size[1] << " scale " << c.scale << " sampling " << c.sr << " aligned "
                     << c.aligned);
      const auto p = params(c.size, c.scale, c.sr, c.aligned);
      const std::vector<double> expected = ref::roi_align_forward(fv, N, C, H, W, strided_values(rois), p);
      for (const Tensor& f : {contiguous, strided, permuted})
        check_close(ops::roi_align(f, rois, c.size, c.scale, c.sr, c.aligned), expected, 0, atol_for(dt), "forward");
      // Backward against the transpose of the reference, with a strided grad_out.
      const int64_t R = rois.size(0);
      const Tensor go_wide = drcnn::test::random_tensor(Shape{R, C, c.size[0], 2 * c.size[1]}, 13, dt);
      const Tensor go = go_wide.slice(3, 0, 2 * c.size[1], 2);
      const std::vector<double> gexp = ref::roi_align_backward(strided_values(go), N, C, H, W, strided_values(rois), p);
      check_close(ops::roi_align_backward(go, rois, {N, C, H, W}, c.scale, c.sr, c.aligned), gexp, 0,
                  atol_for(dt), "backward");
    }
  }
}

TEST_CASE("ops/roi_align: CPU results are bitwise the same with 1 and 2 threads", "[ops][cpu][roi_align]") {
  ThreadGuard guard;
  const int64_t N = 2, C = 32, H = 40, W = 48;
  const Tensor f = drcnn::test::random_tensor(Shape{N, C, H, W}, 21, DType::Float32);
  const Tensor rois = rois_of(random_rois(300, N, 8 * H, 8 * W, 22), DType::Float32);
  const Tensor go = drcnn::test::random_tensor(Shape{300, C, 7, 7}, 23, DType::Float32);
  drcnn::set_cpu_threads(1);
  const Tensor out1 = ops::roi_align(f, rois, {7, 7}, 0.125, 0, true);
  const Tensor g1 = ops::roi_align_backward(go, rois, f.shape(), 0.125, 0, true);
  drcnn::set_cpu_threads(2);
  const Tensor out2 = ops::roi_align(f, rois, {7, 7}, 0.125, 0, true);
  const Tensor g2 = ops::roi_align_backward(go, rois, f.shape(), 0.125, 0, true);
  CHECK(bitwise_equal(out1, out2));
  CHECK(bitwise_equal(g1, g2));
}

// ============================================================================ CUDA bodies on the host
namespace {
/// The launch the dispatcher builds for a single level (contiguous rois and grad_out).
ops::RoiAlignLaunch host_launch(const Tensor& f, const Tensor& rois, ops::RoiOutputSize size, double scale, int64_t sr,
                                bool aligned, int* flag) {
  ops::RoiAlignLaunch l;
  l.R = rois.size(0);
  l.N = f.size(0);
  l.C = f.size(1);
  l.PH = size[0];
  l.PW = size[1];
  l.sampling_ratio = sr;
  l.aligned = aligned;
  l.rois = rois.data_ptr();
  l.level[0].H = f.size(2);
  l.level[0].W = f.size(3);
  for (int d = 0; d < 4; ++d) l.level[0].stride[d] = f.stride(d);
  l.level[0].scale = scale;
  l.error = flag;
  return l;
}
}  // namespace

TEMPLATE_TEST_CASE("ops/roi_align: the CUDA bodies run on the host agree with the CPU launcher", "[ops][cpu][roi_align]",
                   float, double) {
  using T = TestType;
  const DType dt = drcnn::dtype_of_v<T>;
  const int64_t N = 2, C = 3, H = 11, W = 9, R = 25;
  const Tensor f = drcnn::test::random_tensor(Shape{N, C, H, W}, 31, dt);
  const Tensor rois = rois_of(random_rois(R, N, 4 * H, 4 * W, 32), dt);
  const Tensor go = drcnn::test::random_tensor(Shape{R, C, 7, 7}, 33, dt);
  for (int64_t sr : {int64_t(0), int64_t(2)}) {
    int flag = 0;
    ops::RoiAlignLaunch l = host_launch(f, rois, {7, 7}, 0.25, sr, true, &flag);
    // Forward body, one invocation per element: the same summation order as the CPU launcher.
    Tensor out = Tensor::empty({R, C, 7, 7}, dt);
    l.level[0].features = f.data_ptr();
    l.out = out.data_ptr();
    const ops::detail::RoiAlignForwardBody<T> fwd{l};
    for (int64_t i = 0; i < out.numel(); ++i) fwd(i);
    CHECK(bitwise_equal(out, ops::roi_align(f, rois, {7, 7}, 0.25, sr, true)));
    // Deterministic plane body: the CPU backward's order exactly.
    const Tensor cpu_grad = ops::roi_align_backward(go, rois, f.shape(), 0.25, sr, true);
    Tensor plane = Tensor::zeros(f.shape(), dt);
    l.level[0].grad = plane.data_ptr();
    l.grad_out = go.data_ptr();
    for (int d = 0; d < 4; ++d) l.go_stride[d] = go.stride(d);
    const ops::detail::RoiAlignBackwardPlaneBody<T> det{l};
    for (int64_t p = 0; p < N * C; ++p) det(p);
    CHECK(bitwise_equal(plane, cpu_grad));
    // Atomic body: plain += on the host, where running the elements in index order happens to
    // give each plane the same order (so it matches exactly here); on a GPU the order varies.
    Tensor atomic = Tensor::zeros(f.shape(), dt);
    l.level[0].grad = atomic.data_ptr();
    const ops::detail::RoiAlignBackwardAtomicBody<T> at{l};
    for (int64_t i = 0; i < go.numel(); ++i) at(i);
    check_close(atomic, strided_values(cpu_grad), 0, std::is_same_v<T, float> ? 1e-5 : 1e-13, "atomic body");
    CHECK(flag == 0);
  }
}

// ============================================================================ multi-level
TEST_CASE("ops/roi_align_multilevel: equals one single-level call per level", "[ops][cpu][roi_align]") {
  const int64_t N = 2, C = 4;
  const double img_h = 256, img_w = 320;
  const std::vector<double> scales = {1 / 4.0, 1 / 8.0, 1 / 16.0, 1 / 32.0};
  for (DType dt : {DType::Float32, DType::Float64}) {
    std::vector<Tensor> feats;
    for (size_t i = 0; i < scales.size(); ++i)
      feats.push_back(drcnn::test::random_tensor(
          Shape{N, C, int64_t(std::ceil(img_h * scales[i])), int64_t(std::ceil(img_w * scales[i]))}, 40 + i, dt));
    // A strided level too.
    Tensor wide = Tensor::zeros({N, C, feats[1].size(2), 2 * feats[1].size(3)}, dt);
    wide.slice(3, 0, wide.size(3), 2).copy_(feats[1]);
    feats[1] = wide.slice(3, 0, wide.size(3), 2);
    const Tensor rois = rois_of(random_rois(120, N, img_h, img_w, 50), dt);
    for (bool aligned : {true, false}) {
      const ops::RoiAlignMultilevel ml = ops::roi_align_multilevel(feats, rois, {7, 7}, scales, 0, aligned);
      REQUIRE(ml.output.shape() == Shape{120, C, 7, 7});
      CHECK(bitwise_equal(ml.levels, ops::map_roi_levels(rois, 4, 56.0)));
      const std::vector<int64_t> lv = ml.levels.to_vector<int64_t>();
      const Tensor go = drcnn::test::random_tensor(Shape{120, C, 7, 7}, 51, dt);
      std::vector<Shape> shapes;
      for (const Tensor& t : feats) shapes.push_back(t.shape());
      const std::vector<Tensor> grads =
          ops::roi_align_multilevel_backward(go, rois, ml.levels, shapes, scales, 0, aligned);
      REQUIRE(grads.size() == 4);
      int used = 0;
      for (int L = 0; L < 4; ++L) {
        std::vector<int64_t> idx;
        for (int64_t r = 0; r < 120; ++r)
          if (lv[size_t(r)] == L) idx.push_back(r);
        const Tensor sel = Tensor::from_vector<int64_t>(idx, Shape{int64_t(idx.size())});
        used += !idx.empty();
        // Rows of this level: the same body on the same inputs -> bitwise equal.
        const Tensor single = ops::roi_align(feats[size_t(L)], ops::index_select(rois, 0, sel), {7, 7},
                                             scales[size_t(L)], 0, aligned);
        CHECK(bitwise_equal(ops::index_select(ml.output, 0, sel), single));
        // Gradient of this level: only its RoIs, in the same order -> bitwise equal.
        const Tensor gsingle = ops::roi_align_backward(ops::index_select(go, 0, sel), ops::index_select(rois, 0, sel),
                                                       shapes[size_t(L)], scales[size_t(L)], 0, aligned);
        CHECK(bitwise_equal(grads[size_t(L)], gsingle));
      }
      CHECK(used >= 3);  // the RoI sizes reach at least three levels
    }
  }
}

// ============================================================================ errors
TEST_CASE("ops/roi_align: bad inputs throw errors naming the op", "[ops][cpu][roi_align]") {
  const Tensor f = Tensor::zeros({2, 3, 8, 8});
  const Tensor r = rois_of({0, 1, 1, 4, 4}, DType::Float32);
  REQUIRE_THROWS_WITH(ops::roi_align(Tensor::zeros({3, 8, 8}), r, {7, 7}, 1, 0, true),
                      Contains("roi_align: features must have shape [N, C, H, W]"));
  REQUIRE_THROWS_WITH(ops::roi_align(Tensor::zeros({2, 3, 0, 8}), r, {7, 7}, 1, 0, true),
                      Contains("H >= 1 and W >= 1"));
  REQUIRE_THROWS_WITH(ops::roi_align(f, Tensor::zeros({1, 4}), {7, 7}, 1, 0, true),
                      Contains("roi_align: rois must have shape [R, 5]"));
  REQUIRE_THROWS_WITH(ops::roi_align(f, r.to(DType::Float64), {7, 7}, 1, 0, true),
                      Contains("rois and features must have the same dtype"));
  REQUIRE_THROWS_WITH(ops::roi_align(f.to(DType::Int64), r, {7, 7}, 1, 0, true),
                      Contains("features must be float32 or float64"));
  REQUIRE_THROWS_WITH(ops::roi_align(f, r, {0, 7}, 1, 0, true), Contains("output_size must be positive"));
  REQUIRE_THROWS_WITH(ops::roi_align(f, r, {7, 7}, 1, -1, true), Contains("sampling_ratio must be >= 0"));
  REQUIRE_THROWS_WITH(ops::roi_align(f, r, {7, 7}, 0, 0, true), Contains("spatial_scale must be finite and > 0"));
  REQUIRE_THROWS_WITH(ops::roi_align(f, r, {7, 7}, NAN, 0, true), Contains("spatial_scale must be finite and > 0"));
  REQUIRE_THROWS_WITH(ops::roi_align(f, r, {7, 7}, INFINITY, 0, true), Contains("spatial_scale"));
  // Batch index: out of range, negative, fractional, NaN.
  for (double b : {2.0, -1.0, 0.5, double(NAN)})
    REQUIRE_THROWS_WITH(ops::roi_align(f, rois_of({0, 1, 1, 2, 2, b, 1, 1, 4, 4}, DType::Float32), {7, 7}, 1, 0, true),
                        Contains("roi_align: rois[1, 0] (the batch index) must be an integer in [0, 2)"));
  REQUIRE_THROWS_WITH(ops::roi_align_backward(Tensor::zeros({1, 3, 7, 7}), rois_of({5, 1, 1, 4, 4}, DType::Float32),
                                              {2, 3, 8, 8}, 1, 0, true),
                      Contains("roi_align_backward: rois[0, 0] (the batch index)"));
  REQUIRE_THROWS_WITH(ops::roi_align_backward(Tensor::zeros({1, 4, 7, 7}), r, {2, 3, 8, 8}, 1, 0, true),
                      Contains("roi_align_backward: grad_out must have shape [R, C, PH, PW] = [1, 3, PH, PW]"));
  // Multi-level.
  const std::vector<Tensor> two = {f, Tensor::zeros({2, 3, 4, 4})};
  REQUIRE_THROWS_WITH(ops::roi_align_multilevel(two, r, {7, 7}, {0.25}, 0, true),
                      Contains("roi_align_multilevel: expected one spatial scale per level (2), got 1"));
  REQUIRE_THROWS_WITH(ops::roi_align_multilevel(std::vector<Tensor>(9, f), r, {7, 7}, std::vector<double>(9, 1.0), 0,
                                                true),
                      Contains("expected 1 to 8 feature levels, got 9"));
  REQUIRE_THROWS_WITH(ops::roi_align_multilevel({f, Tensor::zeros({2, 4, 4, 4})}, r, {7, 7}, {0.25, 0.125}, 0, true),
                      Contains("every level must have features[0]'s dtype, N and C"));
  REQUIRE_THROWS_WITH(ops::roi_align_multilevel(two, r, Tensor::from_vector<int64_t>({2}), {7, 7}, {0.25, 0.125}, 0,
                                                true),
                      Contains("roi_align_multilevel: levels[0] must be in [0, 2), got 2"));
  REQUIRE_THROWS_WITH(ops::roi_align_multilevel(two, r, Tensor::from_vector<int64_t>({0, 1}), {7, 7}, {0.25, 0.125},
                                                0, true),
                      Contains("levels must have shape [R] = [1]"));
}
