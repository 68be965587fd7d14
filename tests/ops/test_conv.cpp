// conv2d (include/drcnn/ops/conv.h) on the CPU: a hand-computed case, the float64 reference
// of tests/reference/conv_ref.h over a grid of strides, paddings, dilations, groups (incl.
// depthwise), kernels, bias and batch (forward and the three gradients, f32 and f64),
// strided operands, several batch chunks, bitwise identity for 1 and 2 threads, both forms of
// the im2col/col2im bodies, empty batches and every error. DRCNN_CONV_REPORT=1 prints max errors.
// float32 runs through both CPU implementations (oneDNN when the build has it, and im2col);
// ResNet-sized shapes check the blocked oneDNN kernels the small grid shapes do not reach.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/allclose.h"
#include "common/conv_params.h"
#include "common/random.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/conv.h"
#include "reference/conv_ref.h"

using Catch::Contains;
using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
using drcnn::test::conv_params;
ops::Conv2dParams params(int64_t s, int64_t p, int64_t d, int64_t g) { return conv_params(s, p, d, g); }
ref::ConvRefParams ref_params(const ops::Conv2dParams& p) { return drcnn::test::conv_ref_params(p); }

// Tolerances against the float64 reference: inputs are uniform in [-1, 1), so every product
// is at most 1 in magnitude and a sum of `terms` products carries at most about terms * u of
// rounding (u = 2^-24 for f32, 2^-53 for f64) with a large margin for the typical sqrt(terms)
// growth. An indexing bug moves results by O(0.1), far beyond these.
double atol_for(DType dt, int64_t terms) { return (dt == DType::Float32 ? 1e-6 : 1e-14) * double(terms + 1); }
double rtol_for(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }

/// Selects the float32 CPU implementation for a scope (restores the previous one).
struct ImplScope {
  ops::CpuConvImpl before = ops::cpu_conv_impl();
  explicit ImplScope(ops::CpuConvImpl impl) { ops::set_cpu_conv_impl(impl); }
  ~ImplScope() { ops::set_cpu_conv_impl(before); }
};
/// The float32 implementations this build has (im2col always, oneDNN when linked).
std::vector<ops::CpuConvImpl> impls() {
  std::vector<ops::CpuConvImpl> v = {ops::CpuConvImpl::Im2col};
  if (ops::cpu_conv_has_onednn()) v.push_back(ops::CpuConvImpl::OneDnn);
  return v;
}
const char* impl_name(ops::CpuConvImpl i) { return i == ops::CpuConvImpl::OneDnn ? "onednn" : "im2col"; }

void check(const char* what, const Tensor& actual, const std::vector<double>& expected, DType dt, int64_t terms,
           const std::string& ctx) {
  const auto r = drcnn::test::compare_close(drcnn::test::strided_values(actual), expected, rtol_for(dt),
                                            atol_for(dt, terms));
  if (std::getenv("DRCNN_CONV_REPORT")) std::printf("%s %s: %s\n", ctx.c_str(), what, r.text.c_str());
  INFO(ctx << " " << what << ": " << r.text);
  CHECK(r.mismatches == 0);
}

/// Runs forward + backward against the reference for one configuration.
void check_against_reference(const Tensor& x, const Tensor& w, const Tensor& b, const ops::Conv2dParams& p,
                             uint64_t seed, const std::string& ctx) {
  const DType dt = x.dtype();
  const Tensor out = ops::conv2d(x, w, b, p);
  const auto r = ref::conv2d(x, w, b, ref_params(p));
  REQUIRE(out.shape() == Shape(r.out_shape));
  const int64_t cig = w.size(1), kh = w.size(2), kw = w.size(3), cog = w.size(0) / p.groups;
  check("forward", out, r.out, dt, cig * kh * kw, ctx);

  const Tensor go = drcnn::test::random_tensor(out.shape(), seed, dt);
  const ops::Conv2dGrads g = ops::conv2d_backward(go, x, w, p);
  const auto rg = ref::conv2d_backward(go, x, w, ref_params(p));
  REQUIRE(g.input.shape() == x.shape());
  REQUIRE(g.weight.shape() == w.shape());
  REQUIRE(g.bias.shape() == Shape{w.size(0)});
  const int64_t pixels = out.size(0) * out.size(2) * out.size(3);
  check("grad_input", g.input, rg.input, dt, cog * kh * kw, ctx);
  check("grad_weight", g.weight, rg.weight, dt, pixels, ctx);
  check("grad_bias", g.bias, rg.bias, dt, pixels, ctx);
}
}  // namespace

// ============================================================================ hand-computed
TEST_CASE("ops/conv2d: hand-computed 3x3 image, 2x2 kernel, forward and backward", "[ops][cpu][conv]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, Shape{1, 1, 3, 3}).to(dt);
    const Tensor w = Tensor::from_vector<double>({1, 0, 0, -1}, Shape{1, 1, 2, 2}).to(dt);
    const Tensor b = Tensor::from_vector<double>({0.5}, Shape{1}).to(dt);
    // out[y, x] = in[y, x] - in[y + 1, x + 1] + 0.5 = -4 + 0.5 everywhere.
    const Tensor out = ops::conv2d(x, w, b);
    REQUIRE(out.shape() == Shape{1, 1, 2, 2});
    expect_allclose(out, {-3.5, -3.5, -3.5, -3.5}, 0, 0);
    // Padding 1, stride 2: windows start at (-1, -1), (-1, 1), (1, -1), (1, 1); only the
    // bottom-right tap (-1) or both taps fall inside.
    expect_allclose(ops::conv2d(x, w, b, params(2, 1, 1, 1)), {-0.5, -2.5, -6.5, -3.5}, 0, 0);
    // Backward with grad_out = 1: grad_bias = 4 outputs; grad_weight[i, j] = sum of the 2x2
    // input block starting at (i, j); grad_input = +1 on the top-left 2x2, -1 on the bottom-right 2x2.
    const ops::Conv2dGrads g = ops::conv2d_backward(Tensor::ones({1, 1, 2, 2}, dt), x, w, {});
    expect_allclose(g.bias, {4}, 0, 0);
    expect_allclose(g.weight, {12, 16, 24, 28}, 0, 0);
    expect_allclose(g.input, {1, 1, 0, 1, 0, -1, 0, -1, -1}, 0, 0);
  }
}

TEST_CASE("ops/conv2d: output size follows PyTorch's formula", "[ops][cpu][conv]") {
  CHECK(ops::conv2d_output_size(320, 7, 2, 3, 1) == 160);
  CHECK(ops::conv2d_output_size(160, 3, 2, 1, 1) == 80);
  CHECK(ops::conv2d_output_size(80, 1, 2, 0, 1) == 40);
  CHECK(ops::conv2d_output_size(5, 3, 1, 0, 2) == 1);
  CHECK(ops::conv2d_output_size(4, 3, 1, 0, 2) == 0);   // 4 - 5 < 0 -> floor(-1 / 1) + 1
  CHECK(ops::conv2d_output_size(2, 7, 3, 0, 1) == -1);  // floor(-5 / 3) + 1 = -2 + 1
}

// ============================================================================ reference grid
TEST_CASE("ops/conv2d: forward and gradients match the float64 reference over a parameter grid",
          "[ops][cpu][conv]") {
  int64_t configs = 0;
  for (ops::CpuConvImpl impl : impls()) {
  const ImplScope scope(impl);
  uint64_t seed = 100;
  for (DType dt : {DType::Float32, DType::Float64})
    for (int64_t k : {1, 3, 7})
      for (int64_t s : {1, 2})
        for (int64_t pad : {0, 1, 2})
          for (int64_t d : {1, 2})
            for (int64_t g : {1, 2, 4})
              for (bool bias : {false, true})
                for (int64_t n : {1, 2}) {
                  // Cin 4: groups 4 is depthwise (Cout 4) or a channel multiplier of 2 (Cout 8).
                  const int64_t cin = 4, cout = g == 4 ? (bias ? 4 : 8) : 6, h = 12, wd = 15;
                  if (ops::conv2d_output_size(h, k, s, pad, d) < 1) continue;
                  // Non-square kernel for the 3x3 case with stride 2 (kh 3, kw 2).
                  const int64_t kw = (k == 3 && s == 2) ? 2 : k;
                  ++seed;
                  const Tensor x = drcnn::test::random_tensor({n, cin, h, wd}, seed * 3, dt);
                  const Tensor w = drcnn::test::random_tensor({cout, cin / g, k, kw}, seed * 3 + 1, dt);
                  const Tensor b = bias ? drcnn::test::random_tensor({cout}, seed * 3 + 2, dt) : Tensor();
                  const std::string ctx = fmt::format("{} {} k {}x{} s {} p {} d {} g {} bias {} n {}",
                                                      impl_name(impl), drcnn::dtype_name(dt), k, kw, s, pad, d, g,
                                                      bias, n);
                  check_against_reference(x, w, b, params(s, pad, d, g), seed * 7, ctx);
                  ++configs;
                }
  }
  CHECK(configs > 300 * int64_t(impls().size()));
}

TEST_CASE("ops/conv2d: ResNet-sized float32 convolutions match the float64 reference in every implementation",
          "[ops][cpu][conv]") {
  // Channel counts that are multiples of 16 select oneDNN's blocked AVX-512/AVX2 kernels (the
  // small grid above mostly reaches its generic ones): the detector's shapes in miniature. The
  // tolerance is the grid's: any summation order of `terms` products of magnitude <= 1 stays
  // within terms * u (u = 2^-24) of the exact sum, and atol is terms * 1e-6 ~ 17 terms * u.
  struct Case {
    Shape x, w;
    ops::Conv2dParams p;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{1, 3, 38, 34}, {64, 3, 7, 7}, params(2, 3, 1, 1), false},    // stem
      {{2, 64, 14, 13}, {64, 64, 3, 3}, params(1, 1, 1, 1), false},  // 3x3 bottleneck
      {{1, 64, 15, 14}, {128, 64, 3, 3}, params(2, 1, 1, 1), false}, // strided 3x3
      {{1, 64, 12, 12}, {256, 64, 1, 1}, params(1, 0, 1, 1), false}, // 1x1 expand
      {{1, 256, 12, 11}, {128, 256, 1, 1}, params(2, 0, 1, 1), false}, // strided 1x1 downsample
      {{1, 128, 10, 9}, {128, 128, 3, 3}, params(1, 1, 1, 1), true}, // FPN output / RPN conv
      {{1, 128, 10, 9}, {3, 128, 1, 1}, params(1, 0, 1, 1), true},   // RPN objectness
      {{1, 64, 11, 10}, {64, 2, 3, 3}, params(1, 1, 1, 32), false},  // grouped (ResNeXt-like)
  };
  uint64_t seed = 900;
  for (ops::CpuConvImpl impl : impls()) {
    const ImplScope scope(impl);
    for (const Case& c : cases) {
      ++seed;
      const Tensor x = drcnn::test::random_tensor(c.x, seed * 3, DType::Float32);
      const Tensor w = drcnn::test::random_tensor(c.w, seed * 3 + 1, DType::Float32);
      const Tensor b = c.bias ? drcnn::test::random_tensor({c.w[0]}, seed * 3 + 2, DType::Float32) : Tensor();
      check_against_reference(x, w, b, c.p, seed * 7,
                              fmt::format("{} x {} w {}", impl_name(impl), c.x, c.w));
    }
  }
}

TEST_CASE("ops/conv2d: the float32 implementation can be selected, float64 always runs im2col",
          "[ops][cpu][conv]") {
  const ops::CpuConvImpl before = ops::cpu_conv_impl();
  ops::set_cpu_conv_impl(ops::CpuConvImpl::Im2col);
  CHECK(ops::cpu_conv_impl() == ops::CpuConvImpl::Im2col);
  if (ops::cpu_conv_has_onednn()) {
    ops::set_cpu_conv_impl(ops::CpuConvImpl::OneDnn);
    CHECK(ops::cpu_conv_impl() == ops::CpuConvImpl::OneDnn);
    // float64 is bitwise the same whichever implementation is selected (im2col in both).
    const Tensor x = drcnn::test::random_tensor({1, 16, 9, 9}, 81, DType::Float64);
    const Tensor w = drcnn::test::random_tensor({16, 16, 3, 3}, 82, DType::Float64);
    const Tensor a = ops::conv2d(x, w, Tensor(), params(1, 1, 1, 1));
    ops::set_cpu_conv_impl(ops::CpuConvImpl::Im2col);
    CHECK(drcnn::test::bitwise_equal(a, ops::conv2d(x, w, Tensor(), params(1, 1, 1, 1))));
  } else {
    REQUIRE_THROWS_WITH(ops::set_cpu_conv_impl(ops::CpuConvImpl::OneDnn),
                        Contains("set_cpu_conv_impl: this drcnn was built without oneDNN"));
  }
  ops::set_cpu_conv_impl(before);
}

TEST_CASE("ops/conv2d: different stride, padding and dilation per axis", "[ops][cpu][conv]") {
  ops::Conv2dParams p;
  p.stride = {2, 1};
  p.padding = {0, 3};
  p.dilation = {1, 3};
  p.groups = 3;
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = drcnn::test::random_tensor({2, 6, 9, 7}, 11, dt);
    const Tensor w = drcnn::test::random_tensor({9, 2, 3, 4}, 12, dt);
    const Tensor b = drcnn::test::random_tensor({9}, 13, dt);
    check_against_reference(x, w, b, p, 14, "per-axis params");
  }
}

TEST_CASE("ops/conv2d: strided and offset operands give the same results as contiguous ones",
          "[ops][cpu][conv]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const auto p = params(2, 1, 1, 2);
    // Input as a channels-last permutation, weight as a transposed storage, bias every other element.
    const Tensor x = drcnn::test::random_tensor({2, 9, 11, 4}, 21, dt).permute({0, 3, 1, 2});
    const Tensor w = drcnn::test::random_tensor({2, 3, 3, 6}, 22, dt).permute({3, 0, 1, 2});
    const Tensor bw = drcnn::test::random_tensor({12}, 23, dt);
    const Tensor b = bw.slice(0, 0, 12, 2);
    REQUIRE_FALSE(x.is_contiguous());
    REQUIRE_FALSE(w.is_contiguous());
    REQUIRE_FALSE(b.is_contiguous());
    check_against_reference(x, w, b, p, 24, "strided operands");
    // A narrow of a bigger batch (storage offset), and a non-contiguous grad_out.
    const Tensor big = drcnn::test::random_tensor({4, 4, 9, 11}, 25, dt);
    const Tensor xo = big.narrow(0, 1, 2);
    const Tensor out = ops::conv2d(xo, w, b, p);
    expect_allclose(out, ops::conv2d(xo.contiguous(), w.contiguous(), b.contiguous(), p), 0, 0);
    const Tensor go = drcnn::test::random_tensor({out.size(3), out.size(2), out.size(1), out.size(0)}, 26, dt)
                          .permute({3, 2, 1, 0});
    const auto g1 = ops::conv2d_backward(go, xo, w, p);
    const auto g2 = ops::conv2d_backward(go.contiguous(), xo.contiguous(), w.contiguous(), p);
    CHECK(drcnn::test::bitwise_equal(g1.input, g2.input));
    CHECK(drcnn::test::bitwise_equal(g1.weight, g2.weight));
    CHECK(drcnn::test::bitwise_equal(g1.bias, g2.bias));
  }
}

TEST_CASE("ops/conv2d: a batch split into several column chunks matches the reference", "[ops][cpu][conv]") {
  // 64 channels x 3x3 x 70x70 pixels = 2.8M column elements per image: the 8M-element column
  // budget holds 2 images, so a batch of 3 runs as chunks of 2 and 1. grad_weight has one
  // 4x576 tile here, so its pixel axis is also split into slices.
  const DType dt = DType::Float32;
  const Tensor x = drcnn::test::random_tensor({3, 64, 70, 70}, 31, dt);
  const Tensor w = drcnn::test::random_tensor({4, 64, 3, 3}, 32, dt);
  const Tensor b = drcnn::test::random_tensor({4}, 33, dt);
  check_against_reference(x, w, b, params(1, 1, 1, 1), 34, "chunked batch");
}

// ============================================================================ determinism
TEST_CASE("ops/conv2d: CPU results are bitwise identical for 1 and 2 threads in both implementations",
          "[ops][cpu][conv]") {
  struct Case {
    Shape x, w;
    ops::Conv2dParams p;
  };
  const std::vector<Case> cases = {
      {{2, 16, 40, 40}, {32, 16, 3, 3}, params(1, 1, 1, 1)},    // 3x3, many column tiles
      {{1, 64, 40, 40}, {64, 64, 1, 1}, params(1, 0, 1, 1)},    // pointwise, split grad_weight
      {{1, 32, 41, 39}, {300, 32, 1, 1}, params(2, 0, 1, 1)},   // strided 1x1, two row tiles
      {{2, 3, 64, 64}, {16, 3, 7, 7}, params(2, 3, 1, 1)},      // stem-like
      {{1, 16, 30, 30}, {16, 4, 3, 3}, params(1, 2, 2, 4)},     // grouped, dilated
      // oneDNN's blocked kernels; backward-weights split into 4, 2 and 1 channel slices:
      {{2, 64, 24, 24}, {64, 64, 3, 3}, params(1, 1, 1, 1)},    // batch 2, 4 slices
      {{1, 3, 96, 96}, {32, 3, 7, 7}, params(2, 3, 1, 1)},      // stem, 2 slices
      {{2, 16, 12, 12}, {16, 16, 3, 3}, params(1, 1, 1, 1)},    // one slice
      {{2, 16, 12, 12}, {12, 16, 1, 1}, params(1, 0, 1, 1)},    // RPN-like 1x1, one slice
  };
  const int before = drcnn::cpu_threads();
  for (ops::CpuConvImpl impl : impls()) {
  // im2col: fixed tiling. oneDNN (float32): forward and backward-data give each output to one
  // thread; backward-weights runs as shape-determined channel slices on one thread each.
  const ImplScope scope(impl);
  for (const Case& c : cases) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = drcnn::test::random_tensor(c.x, 41, dt), w = drcnn::test::random_tensor(c.w, 42, dt);
      const Tensor b = drcnn::test::random_tensor({c.w[0]}, 43, dt);
      Tensor out[2];
      ops::Conv2dGrads g[2];
      for (int t = 0; t < 2; ++t) {
        drcnn::set_cpu_threads(t + 1);
        out[t] = ops::conv2d(x, w, b, c.p);
        const Tensor go = drcnn::test::random_tensor(out[t].shape(), 44, dt);
        g[t] = ops::conv2d_backward(go, x, w, c.p);
      }
      INFO(impl_name(impl) << " x " << fmt::format("{}", c.x) << " w " << fmt::format("{}", c.w) << " "
                           << drcnn::dtype_name(dt));
      CHECK(drcnn::test::bitwise_equal(out[0], out[1]));
      CHECK(drcnn::test::bitwise_equal(g[0].input, g[1].input));
      CHECK(drcnn::test::bitwise_equal(g[0].weight, g[1].weight));
      CHECK(drcnn::test::bitwise_equal(g[0].bias, g[1].bias));
    }
  }
  }
  if (ops::cpu_conv_has_onednn()) {
    // oneDNN: the same bits on a second run with the cached primitives.
    const ImplScope scope(ops::CpuConvImpl::OneDnn);
    for (const Case& c : cases) {
      const DType dt = DType::Float32;
      const Tensor x = drcnn::test::random_tensor(c.x, 41, dt), w = drcnn::test::random_tensor(c.w, 42, dt);
      const Tensor b = drcnn::test::random_tensor({c.w[0]}, 43, dt);
      INFO("onednn again x " << fmt::format("{}", c.x) << " w " << fmt::format("{}", c.w));
      const Tensor out = ops::conv2d(x, w, b, c.p);
      const Tensor go = drcnn::test::random_tensor(out.shape(), 44, dt);
      const ops::Conv2dGrads g1 = ops::conv2d_backward(go, x, w, c.p);
      CHECK(drcnn::test::bitwise_equal(out, ops::conv2d(x, w, b, c.p)));
      const ops::Conv2dGrads g2 = ops::conv2d_backward(go, x, w, c.p);
      CHECK(drcnn::test::bitwise_equal(g1.input, g2.input));
      CHECK(drcnn::test::bitwise_equal(g1.weight, g2.weight));
    }
  }
  drcnn::set_cpu_threads(before);
}

// ============================================================================ bodies
TEST_CASE("ops/conv2d: per-element and per-row im2col and col2im bodies agree bitwise", "[ops][cpu][conv]") {
  // The per-element forms are what a CUDA grid would run; the CPU runs the row forms.
  for (const auto& p : {params(1, 0, 1, 1), params(2, 1, 1, 1), params(1, 2, 2, 1), params(3, 3, 2, 1)}) {
    const Tensor x = drcnn::test::random_tensor({2, 3, 10, 13}, 51, DType::Float64);
    const ops::Conv2dGeometry g = ops::conv2d_geometry(x.shape(), Shape{4, 3, 3, 5}, p);
    const int64_t ncol = g.n * g.k_all() * g.p();
    std::vector<double> col_e(size_t(ncol), -1), col_r(size_t(ncol), -2);
    const ops::detail::Im2Col<double> ie{g, x.data<double>(), col_e.data()}, ir{g, x.data<double>(), col_r.data()};
    for (int64_t i = 0; i < ncol; ++i) ie(i);
    for (int64_t r = 0; r < g.n * g.k_all() * g.ho; ++r) ir.row(r);
    CHECK(col_e == col_r);
    const std::vector<double> col = drcnn::test::random_values(ncol, 52);
    const int64_t nin = x.numel();
    std::vector<double> in_e(size_t(nin), -1), in_r(size_t(nin), -2);
    const ops::detail::Col2Im<double> ce{g, col.data(), in_e.data()}, cr{g, col.data(), in_r.data()};
    for (int64_t i = 0; i < nin; ++i) ce(i);
    for (int64_t r = 0; r < g.n * g.c_in * g.h; ++r) cr.row(r);
    CHECK(in_e == in_r);
    // col2im is im2col's adjoint: <im2col(x), c> == <x, col2im(c)>.
    double lhs = 0, rhs = 0;
    const double* xv = x.data<double>();
    for (int64_t i = 0; i < ncol; ++i) lhs += col_e[size_t(i)] * col[size_t(i)];
    for (int64_t i = 0; i < nin; ++i) rhs += xv[i] * in_e[size_t(i)];
    CHECK(lhs == Approx(rhs).epsilon(1e-12));
  }
}

// ============================================================================ edge cases
TEST_CASE("ops/conv2d: an empty batch gives an empty output and zero weight and bias gradients",
          "[ops][cpu][conv]") {
  const Tensor x = Tensor::zeros({0, 4, 8, 8}, DType::Float32);
  const Tensor w = drcnn::test::random_tensor({6, 4, 3, 3}, 61, DType::Float32);
  const Tensor out = ops::conv2d(x, w, Tensor::zeros({6}), params(1, 1, 1, 1));
  CHECK(out.shape() == Shape{0, 6, 8, 8});
  const auto g = ops::conv2d_backward(Tensor::zeros({0, 6, 8, 8}), x, w, params(1, 1, 1, 1));
  CHECK(g.input.shape() == Shape{0, 4, 8, 8});
  expect_allclose(g.weight, std::vector<double>(6 * 4 * 9, 0.0), 0, 0);
  expect_allclose(g.bias, std::vector<double>(6, 0.0), 0, 0);
}

TEST_CASE("ops/conv2d: conv2d_backward computes only the requested gradients", "[ops][cpu][conv]") {
  const Tensor x = drcnn::test::random_tensor({1, 2, 5, 5}, 71, DType::Float64);
  const Tensor w = drcnn::test::random_tensor({3, 2, 3, 3}, 72, DType::Float64);
  const Tensor go = drcnn::test::random_tensor({1, 3, 3, 3}, 73, DType::Float64);
  const auto all = ops::conv2d_backward(go, x, w, {});
  const auto only_w = ops::conv2d_backward(go, x, w, {}, {false, true, false});
  CHECK_FALSE(only_w.input.defined());
  CHECK_FALSE(only_w.bias.defined());
  CHECK(drcnn::test::bitwise_equal(only_w.weight, all.weight));
  const auto only_in = ops::conv2d_backward(go, x, w, {}, {true, false, false});
  CHECK(drcnn::test::bitwise_equal(only_in.input, all.input));
  CHECK_FALSE(only_in.weight.defined());
}

TEST_CASE("ops/conv2d: grad_bias is each channel's in-order double sum, bit for bit", "[ops][cpu][conv]") {
  // conv2d_backward sums grad_out per channel over images, then pixels, in double, in order;
  // float32 with 8 | C_out runs 8 channels as the lanes of AVX2 vectors (kernels/cpu/conv.cpp).
  // Either way the result must be this loop's, rounded once: pixel counts with and without a
  // remainder of 4, batches of 1 and 3, channel counts with and without 8 | C_out, 1 and 2
  // threads, values whose double sum rounds differently in another order.
  struct Case {
    int64_t n, c, h, w;
  };
  const int before = drcnn::cpu_threads();
  for (const int threads : {1, 2})
    for (const Case& k : {Case{1, 16, 7, 9}, Case{3, 24, 8, 8}, Case{2, 12, 5, 6}, Case{1, 64, 33, 35}}) {
      drcnn::set_cpu_threads(threads);
      // Per row: pixels 4j and 4j + 2 are +A and -A (A ~ 2^30, cancelling exactly), odd pixels
      // small (~2^-21): the double running sum drops some of their low bits and which depends on
      // the order, and the cancellation leaves that visible in the float32 result.
      std::vector<float> v = drcnn::test::random_tensor({k.n, k.c, k.h, k.w}, 131, DType::Float32, 0.0, 1.0).to_vector<float>();
      const int64_t P = k.h * k.w;
      for (size_t i = 0; i < v.size(); ++i) {
        const int64_t x = int64_t(i) % P;
        const float a = std::ldexp(1.0f, 30) + 128.0f * float(((int64_t(i) - x % 4) / 4) % 11);
        if (x % 2 == 1) v[i] = std::ldexp(v[i], -20);
        else v[i] = x % 4 == 0 ? a : -a;
      }
      const Tensor go = Tensor::from_vector<float>(v, {k.n, k.c, k.h, k.w});
      const Tensor x = drcnn::test::random_tensor({k.n, 3, k.h, k.w}, 133, DType::Float32);
      const Tensor w = drcnn::test::random_tensor({k.c, 3, 1, 1}, 134, DType::Float32);
      const ops::Conv2dGrads g = ops::conv2d_backward(go, x, w, {}, {false, false, true});
      std::vector<float> want(size_t(k.c));
      for (int64_t c = 0; c < k.c; ++c) {
        double s = 0;
        for (int64_t b = 0; b < k.n; ++b)
          for (int64_t p = 0; p < P; ++p) s += double(v[size_t((b * k.c + c) * P + p)]);
        want[size_t(c)] = float(s);
      }
      INFO("threads " << threads << " n " << k.n << " c " << k.c << " pixels " << P);
      CHECK(drcnn::test::bitwise_equal(g.bias, Tensor::from_vector<float>(want, {k.c})));
    }
  drcnn::set_cpu_threads(before);
}

// ============================================================================ errors
TEST_CASE("ops/conv2d: bad inputs throw errors naming conv2d", "[ops][cpu][conv]") {
  const Tensor x = Tensor::zeros({1, 4, 8, 8});
  const Tensor w = Tensor::zeros({6, 4, 3, 3});
  REQUIRE_THROWS_WITH(ops::conv2d(Tensor::zeros({4, 8, 8}), w), Contains("conv2d: input must be 4-D"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor::zeros({6, 4, 3})), Contains("conv2d: weight must be 4-D"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor::zeros({6, 3, 3, 3})), Contains("conv2d: weight [6, 3, 3, 3] expects 3"));
  auto p = params(1, 0, 1, 3);
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor::zeros({6, 1, 3, 3}), Tensor(), p),
                      Contains("conv2d: groups (3) must divide the input channels (4)"));
  p = params(1, 0, 1, 2);
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor::zeros({5, 2, 3, 3}), Tensor(), p),
                      Contains("conv2d: groups (2) must divide the output channels (5)"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor(), params(0, 0, 1, 1)), Contains("conv2d: stride must be >= 1"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor(), params(1, 0, 0, 1)), Contains("conv2d: dilation must be >= 1"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor(), params(1, -1, 1, 1)), Contains("conv2d: padding must be >= 0"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor(), params(1, 0, 1, 0)), Contains("conv2d: groups must be >= 1"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor::zeros({6, 4, 9, 3})), Contains("conv2d: output size 0x6 is not positive"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor::zeros({5})), Contains("conv2d: bias must have shape [6]"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w.to(DType::Float64)), Contains("conv2d: weight has dtype float64 but input has float32"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor::zeros({6}, DType::Float64)), Contains("conv2d: bias has dtype float64"));
  REQUIRE_THROWS_WITH(ops::conv2d(x.to(DType::Int64), w.to(DType::Int64)),
                      Contains("conv2d: input must be float32 or float64, got int64"));
  REQUIRE_THROWS_WITH(ops::conv2d(Tensor(), w), Contains("conv2d"));
  ops::Conv2dParams nhwc;
  nhwc.layout = ops::ConvLayout::NHWC;
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor(), nhwc), Contains("conv2d: only the NCHW layout is implemented"));
  // Backward: the same checks plus grad_out's shape and dtype.
  REQUIRE_THROWS_WITH(ops::conv2d_backward(Tensor::zeros({1, 6, 5, 6}), x, w, {}),
                      Contains("conv2d_backward: grad_out must have the output's shape [1, 6, 6, 6]"));
  REQUIRE_THROWS_WITH(ops::conv2d_backward(Tensor::zeros({1, 6, 6, 6}, DType::Float64), x, w, {}),
                      Contains("conv2d_backward: grad_out has dtype float64"));
  REQUIRE_THROWS_WITH(ops::conv2d_backward(Tensor::zeros({1, 6, 6, 6}), x, Tensor::zeros({6, 4, 3}), {}),
                      Contains("conv2d_backward: weight must be 4-D"));
}
