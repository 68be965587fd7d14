// Layer ops (include/drcnn/ops/nn.h): hand-computed cases, the float64 references of
// tests/reference/nn_ref.h on random inputs (f32 and f64; contiguous, transposed, strided,
// offset and expanded layouts), PyTorch's edge rules (ties, NaN, -inf padding, ceil mode,
// non-integer upsampling ratios), running-stat updates, determinism and every error.
//
// Tolerances: pooling and upsampling forwards copy input values, so they are compared exactly
// (indices too). Their backwards add a few f32 gradients in a fixed order: rtol 1e-6 f32
// (a handful of roundings of values ~1), 1e-13 f64, with an f32 absolute floor of 1e-6 for
// sums that cancel (up to ~16 terms of |g| <= 1, each rounded at ~6e-8). Norms: f64 rtol 1e-10 / atol 1e-12 (the
// kernel sums in double in another order than the long-double reference, and divides by
// sigma ~ 0.3); f32 rtol 2e-5 / atol 2e-5 (inputs, outputs and coefficients are rounded to
// float; outputs are O(1)).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/allclose.h"
#include "common/gpu_order_emulation.h"
#include "common/random.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/nn_body.h"
#include "drcnn/ops/nn.h"
#include "reference/nn_ref.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
using drcnn::test::strided_values;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

Tensor from(const std::vector<double>& v, const Shape& s, DType dt = DType::Float64) {
  return Tensor::from_vector<double>(v, s).to(dt);
}
std::vector<double> vals(const Tensor& t) { return strided_values(t); }
std::string str(const Shape& s) { return fmt::format("{}", s); }
std::vector<int64_t> ivals(const Tensor& t) {
  std::vector<int64_t> out;
  for (double v : strided_values(t)) out.push_back(int64_t(v));
  return out;
}
ref::Nchw nchw(const Tensor& t) { return {t.size(0), t.size(1), t.ndim() > 2 ? t.size(2) : 1, t.ndim() > 3 ? t.size(3) : 1}; }
std::vector<double> arange(int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double(i);
  return v;
}
double rtol_norm(DType dt) { return dt == DType::Float64 ? 1e-10 : 2e-5; }
double atol_norm(DType dt) { return dt == DType::Float64 ? 1e-12 : 2e-5; }
const DType kFloats[] = {DType::Float32, DType::Float64};

using Pool = ops::MaxPool2dOptions;
}  // namespace

// ============================================================================ max pool
TEST_CASE("ops/max_pool2d: hand-computed 2x2 stride 2 and the ResNet stem 3x3 stride 2 pad 1", "[ops][cpu]") {
  for (DType dt : kFloats) {
    const Tensor x = from(arange(16), Shape{1, 1, 4, 4}, dt);
    auto r = ops::max_pool2d_with_indices(x, Pool::square(2, 2));
    REQUIRE(r.output.shape() == Shape{1, 1, 2, 2});
    CHECK(vals(r.output) == std::vector<double>{5, 7, 13, 15});
    CHECK(ivals(r.indices) == std::vector<int64_t>{5, 7, 13, 15});
    // Stem: windows rows {-1,0,1} and {1,2,3}: maxima at (1,1), (1,3), (3,1), (3,3).
    r = ops::max_pool2d_with_indices(x, Pool::square(3, 2, 1));
    REQUIRE(r.output.shape() == Shape{1, 1, 2, 2});
    CHECK(vals(r.output) == std::vector<double>{5, 7, 13, 15});
    // Reversed values: the max sits at each window's first in-range tap.
    std::vector<double> rev(16);
    for (int i = 0; i < 16; ++i) rev[size_t(i)] = 15 - i;
    r = ops::max_pool2d_with_indices(from(rev, Shape{1, 1, 4, 4}, dt), Pool::square(3, 2, 1));
    CHECK(ivals(r.indices) == std::vector<int64_t>{0, 1, 4, 5});
    CHECK(vals(r.output) == std::vector<double>{15, 14, 11, 10});
  }
}

TEST_CASE("ops/max_pool2d: FPN P6, kernel 1 stride 2, takes every other pixel", "[ops][cpu]") {
  const Tensor x = from(arange(2 * 25), Shape{1, 2, 5, 5}, DType::Float32);
  auto r = ops::max_pool2d_with_indices(x, Pool::square(1, 2));
  REQUIRE(r.output.shape() == Shape{1, 2, 3, 3});
  CHECK(vals(r.output) == std::vector<double>{0, 2, 4, 10, 12, 14, 20, 22, 24, 25, 27, 29, 35, 37, 39, 45, 47, 49});
  CHECK(ivals(r.indices) == std::vector<int64_t>{0, 2, 4, 10, 12, 14, 20, 22, 24, 0, 2, 4, 10, 12, 14, 20, 22, 24});
}

TEST_CASE("ops/max_pool2d: ties keep the first index, NaN propagates with the last NaN index, -inf windows", "[ops][cpu]") {
  for (DType dt : kFloats) {
    // One 1x4 window.
    ops::MaxPool2dOptions o;
    o.kernel_size = {1, 4};
    auto r = ops::max_pool2d_with_indices(from({2, 2, 1, 2}, Shape{1, 1, 1, 4}, dt), o);
    CHECK(vals(r.output) == std::vector<double>{2});
    CHECK(ivals(r.indices) == std::vector<int64_t>{0});
    r = ops::max_pool2d_with_indices(from({1, kNaN, 3, kNaN}, Shape{1, 1, 1, 4}, dt), o);
    CHECK(std::isnan(vals(r.output)[0]));
    CHECK(ivals(r.indices) == std::vector<int64_t>{3});  // aten: a NaN replaces the max, so the last one wins
    r = ops::max_pool2d_with_indices(from({kNaN, 5, 7, 1}, Shape{1, 1, 1, 4}, dt), o);
    CHECK(std::isnan(vals(r.output)[0]));
    CHECK(ivals(r.indices) == std::vector<int64_t>{0});
    // All -inf with padding: the value is -inf and the index is the first in-range tap.
    o.kernel_size = {1, 3};
    o.stride = {1, 1};
    o.padding = {0, 1};
    r = ops::max_pool2d_with_indices(from({-kInf, -kInf, -kInf}, Shape{1, 1, 1, 3}, dt), o);
    CHECK(vals(r.output) == std::vector<double>{-kInf, -kInf, -kInf});
    CHECK(ivals(r.indices) == std::vector<int64_t>{0, 0, 1});
    // Padding never wins over negative values.
    r = ops::max_pool2d_with_indices(from({-5, -7, -9}, Shape{1, 1, 1, 3}, dt), o);
    CHECK(vals(r.output) == std::vector<double>{-5, -5, -7});
  }
}

TEST_CASE("ops/max_pool2d: output sizes follow PyTorch, including ceil_mode's dropped last window", "[ops][cpu]") {
  const auto out_hw = [](int64_t H, const ops::MaxPool2dOptions& o) {
    const Tensor x = Tensor::zeros({1, 1, H, H});
    return ops::max_pool2d(x, o).size(2);
  };
  CHECK(out_hw(5, Pool::square(2, 2)) == 2);
  CHECK(out_hw(5, Pool::square(2, 2, 0, 1, true)) == 3);
  CHECK(out_hw(4, Pool::square(2, 2, 1, 1, true)) == 3);  // (4 + 2 - 2 + 1) / 2 + 1 = 3; (3 - 1) * 2 = 4 < 5 kept
  CHECK(out_hw(5, Pool::square(2, 2, 1, 1, true)) == 3);  // ceil gives 4, but the 4th window starts at 6 >= 5 + 1: dropped
  CHECK(out_hw(7, Pool::square(3, 2, 1)) == 4);
  CHECK(out_hw(7, Pool::square(3, 1, 0, 2)) == 3);         // dilation 2: effective kernel 5
  CHECK(out_hw(224, Pool::square(3, 2, 1)) == 112);        // ResNet stem
  CHECK(out_hw(13, Pool::square(1, 2)) == 7);              // P6 of an odd P5
  for (int64_t H = 1; H < 12; ++H)
    for (int64_t k = 1; k <= 4; ++k)
      for (int64_t s = 1; s <= 3; ++s)
        for (int64_t p = 0; p <= k / 2; ++p)
          for (bool c : {false, true}) {
            const int64_t expect = ref::pool_out_size(H, k, s, p, 1, c);
            if (expect < 1) continue;
            INFO("H " << H << " k " << k << " s " << s << " p " << p << " ceil " << c);
            CHECK(out_hw(H, Pool::square(k, s, p, 1, c)) == expect);
          }
}

TEST_CASE("ops/max_pool2d: random inputs match the reference, forward and backward, every layout", "[ops][cpu]") {
  struct Case {
    int64_t N, C, H, W;
    ops::MaxPool2dOptions o;
  };
  ops::MaxPool2dOptions rect;
  rect.kernel_size = {3, 2};
  rect.stride = {2, 1};
  rect.padding = {1, 0};
  rect.dilation = {1, 2};
  rect.ceil_mode = true;
  const Case cases[] = {{2, 3, 9, 11, Pool::square(3, 2, 1)},          {1, 2, 8, 8, Pool::square(2, 2)},
                        {2, 2, 7, 9, Pool::square(3, 2, 1, 1, true)},   {1, 3, 10, 7, Pool::square(3, 1, 1, 2)},
                        {2, 1, 6, 5, Pool::square(1, 2)},               {1, 2, 9, 8, rect},
                        {1, 1, 5, 5, Pool::square(4, 3, 2, 1, true)},   {3, 2, 4, 6, Pool::square(2, 1)}};
  uint64_t seed = 100;
  for (DType dt : kFloats)
    for (const Case& c : cases)
      for (const auto& lay : drcnn::test::layouts(Shape{c.N, c.C, c.H, c.W}, ++seed, dt, -2, 2)) {
        INFO("layout " << lay.name << " dtype " << drcnn::dtype_name(dt) << " shape " << str(lay.t.shape()));
        const ref::PoolRef p{c.o.kernel_size[0], c.o.kernel_size[1], c.o.stride[0], c.o.stride[1], c.o.padding[0],
                             c.o.padding[1],     c.o.dilation[0],    c.o.dilation[1], c.o.ceil_mode};
        const auto expect = ref::max_pool2d(vals(lay.t), nchw(lay.t), p);
        const auto r = ops::max_pool2d_with_indices(lay.t, c.o);
        REQUIRE(r.output.shape() == Shape{c.N, c.C, expect.OH, expect.OW});
        CHECK(vals(r.output) == expect.values);  // exact: values are copied
        CHECK(ivals(r.indices) == expect.indices);
        const Tensor g = drcnn::test::random_tensor(r.output.shape(), seed + 7, dt);
        const Tensor dx = ops::max_pool2d_backward(g, r.indices, lay.t.shape(), c.o);
        expect_allclose(dx, ref::max_pool2d_backward(vals(g), expect.indices, nchw(lay.t), expect.OH, expect.OW),
                        dt == DType::Float64 ? 1e-13 : 1e-6, dt == DType::Float64 ? 0 : 1e-6);
      }
}

TEST_CASE("ops/max_pool2d: the CPU's vectorised forward and scatter backward equal the shared bodies bit for bit", "[ops][cpu]") {
  // kernels/cpu/nn.cpp runs the forward's inner windows in chunks of 64 outputs across a row
  // and the backward as a scatter; the bodies of nn_body.h (CUDA's code) run here one element at
  // a time are the reference: values, indices and gradients must be the same bits. Rows wider
  // than a chunk, every stride branch (2, 1, runtime 3), dilation and padding; inputs with ties
  // (values on a coarse grid), NaNs and -inf windows.
  struct Case {
    int64_t H, W;
    ops::MaxPool2dOptions o;
  };
  const ops::MaxPool2dOptions dil = Pool::square(3, 2, 1, 2);
  const Case cases[] = {{37, 150, Pool::square(3, 2, 1)}, {9, 140, Pool::square(3, 1, 1)},
                        {8, 200, Pool::square(2, 3)},     {11, 160, dil},
                        {6, 131, Pool::square(3, 2, 1, 1, true)}};
  uint64_t seed = 900;
  for (DType dt : kFloats)
    for (const Case& c : cases) {
      const Shape shape{2, 3, c.H, c.W};
      std::vector<double> x = vals(drcnn::test::random_tensor(shape, ++seed, DType::Float64, -3, 3));
      for (size_t i = 0; i < x.size(); ++i) {
        x[i] = std::round(x[i] * 2) / 2;  // ties
        if (i % 97 == 5) x[i] = kNaN;
        if (i % 89 == 7) x[i] = -kInf;
      }
      for (int64_t i = 0; i < 3 * c.W; ++i) x[size_t(c.W + i)] = -kInf;  // whole -inf windows
      const Tensor xt = from(x, shape, dt);
      INFO("dtype " << drcnn::dtype_name(dt) << " H " << c.H << " W " << c.W << " stride " << c.o.stride[1]);
      const auto r = ops::max_pool2d_with_indices(xt, c.o);
      const int64_t OH = r.output.size(2), OW = r.output.size(3);
      ops::PoolGeometry geo;
      geo.H = c.H, geo.W = c.W, geo.OH = OH, geo.OW = OW;
      geo.kh = c.o.kernel_size[0], geo.kw = c.o.kernel_size[1], geo.sh = c.o.stride[0], geo.sw = c.o.stride[1];
      geo.ph = c.o.padding[0], geo.pw = c.o.padding[1], geo.dh = c.o.dilation[0], geo.dw = c.o.dilation[1];
      const Tensor y = Tensor::empty(r.output.shape(), dt), idx = Tensor::empty(r.output.shape(), DType::Int64);
      const Tensor g = drcnn::test::random_tensor(r.output.shape(), seed + 50, dt);
      // User indices for the backward: the forward's, some moved out of their window or plane.
      Tensor bad = r.indices.clone();
      int64_t* b = bad.data<int64_t>();
      for (int64_t i = 0; i < bad.numel(); i += 7) b[i] = i % 3 == 0 ? -1 : i % 3 == 1 ? c.H * c.W : (b[i] + 2 * c.W) % (c.H * c.W);
      const Tensor dx = ops::max_pool2d_backward(g, r.indices, shape, c.o);
      const Tensor dx_bad = ops::max_pool2d_backward(g, bad, shape, c.o);
      const Tensor ref_dx = Tensor::empty(shape, dt), ref_dx_bad = Tensor::empty(shape, dt);
      drcnn::dispatch_floating(dt, "test", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const ops::detail::MaxPoolForwardBody<T> fwd{xt.data<T>(), y.data<T>(), idx.data<int64_t>(), geo};
        for (int64_t i = 0; i < y.numel(); ++i) fwd(i);
        const ops::detail::MaxPoolBackwardBody<T> bwd{g.data<T>(), r.indices.data<int64_t>(), ref_dx.data<T>(), geo};
        const ops::detail::MaxPoolBackwardBody<T> bwd_bad{g.data<T>(), bad.data<int64_t>(), ref_dx_bad.data<T>(), geo};
        for (int64_t i = 0; i < dx.numel(); ++i) bwd(i), bwd_bad(i);
      });
      const auto same_bits = [](const Tensor& a, const Tensor& e) {
        return std::memcmp(a.data_ptr(), e.data_ptr(), size_t(a.numel()) * a.element_size()) == 0;
      };
      CHECK(same_bits(r.output, y));
      CHECK(same_bits(r.indices, idx));
      CHECK(same_bits(dx, ref_dx));
      CHECK(same_bits(dx_bad, ref_dx_bad));
      // And the float64 reference of the rule itself (NaN-aware on the values).
      const auto expect = ref::max_pool2d(vals(xt), nchw(xt), {geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh,
                                                             geo.dw, c.o.ceil_mode});
      CHECK(ivals(r.indices) == expect.indices);
    }
}

TEST_CASE("ops/max_pool2d: overlapping windows with ties accumulate into the first tap", "[ops][cpu]") {
  // Constant input, 3x3 stride 1 pad 1: every window's max is its first in-range tap.
  const Tensor x = Tensor::ones({1, 1, 3, 3}, DType::Float64);
  const auto o = Pool::square(3, 1, 1);
  const auto r = ops::max_pool2d_with_indices(x, o);
  CHECK(ivals(r.indices) == std::vector<int64_t>{0, 0, 1, 0, 0, 1, 3, 3, 4});
  const Tensor dx = ops::max_pool2d_backward(Tensor::ones({1, 1, 3, 3}, DType::Float64), r.indices, x.shape(), o);
  CHECK(vals(dx) == std::vector<double>{4, 2, 0, 2, 1, 0, 0, 0, 0});
}

TEST_CASE("ops/max_pool2d: bad inputs name the op and what was expected", "[ops][cpu]") {
  const Tensor x = Tensor::zeros({1, 1, 4, 4});
  CHECK_THROWS_WITH(ops::max_pool2d(Tensor::zeros({1, 4, 4}), Pool::square(2, 2)), Contains("max_pool2d: input must be 4-D"));
  CHECK_THROWS_WITH(ops::max_pool2d(Tensor::zeros({1, 1, 4, 4}, DType::Int64), Pool::square(2, 2)),
                    Contains("max_pool2d: input must be float32 or float64"));
  CHECK_THROWS_WITH(ops::max_pool2d(x, Pool::square(0, 1)), Contains("kernel_size must be > 0"));
  CHECK_THROWS_WITH(ops::max_pool2d(x, Pool::square(2, -1)), Contains("stride must be > 0"));
  CHECK_THROWS_WITH(ops::max_pool2d(x, Pool::square(2, 2, 0, 0)), Contains("dilation must be > 0"));
  CHECK_THROWS_WITH(ops::max_pool2d(x, Pool::square(3, 2, 2)), Contains("at most half the kernel size"));
  CHECK_THROWS_WITH(ops::max_pool2d(Tensor::zeros({1, 1, 2, 2}), Pool::square(3, 1)), Contains("too small"));
  CHECK_THROWS_WITH(ops::max_pool2d(Tensor(), Pool::square(2, 2)), Contains("max_pool2d"));
  const auto r = ops::max_pool2d_with_indices(x, Pool::square(2, 2));
  CHECK_THROWS_WITH(ops::max_pool2d_backward(r.output, r.indices, Shape{1, 1, 6, 6}, Pool::square(2, 2)),
                    Contains("max_pool2d_backward: grad_output and indices must have shape [1, 1, 3, 3]"));
  CHECK_THROWS_WITH(ops::max_pool2d_backward(r.output, r.output, x.shape(), Pool::square(2, 2)),
                    Contains("indices must be int64"));
}

// ============================================================================ upsample
TEST_CASE("ops/upsample_nearest2d: hand-computed 2x, 3->5 and downsampling", "[ops][cpu]") {
  for (DType dt : kFloats) {
    const Tensor x = from({1, 2, 3, 4}, Shape{1, 1, 2, 2}, dt);
    CHECK(vals(ops::upsample_nearest2d(x, 4, 4)) ==
          std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
    // 3 -> 5 columns: scale 0.6, sources floor(0, 0.6, 1.2, 1.8, 2.4) = 0 0 1 1 2.
    const Tensor r = from({10, 20, 30}, Shape{1, 1, 1, 3}, dt);
    CHECK(vals(ops::upsample_nearest2d(r, 1, 5)) == std::vector<double>{10, 10, 20, 20, 30});
    // 5 -> 2: scale 2.5, sources 0 and 2.
    CHECK(vals(ops::upsample_nearest2d(from(arange(5), Shape{1, 1, 1, 5}, dt), 1, 2)) == std::vector<double>{0, 2});
    // Same size: identity.
    CHECK(vals(ops::upsample_nearest2d(x, 2, 2)) == vals(x));
  }
}

TEST_CASE("ops/upsample_nearest2d: FPN odd sizes match the float rule, forward and backward, every layout", "[ops][cpu]") {
  struct Case {
    int64_t H, W, OH, OW;
  };
  const Case cases[] = {{25, 25, 50, 50}, {13, 7, 25, 13}, {7, 13, 13, 25}, {4, 5, 7, 9},
                        {3, 3, 10, 11},   {9, 6, 4, 5},    {1, 1, 3, 2},    {5, 8, 5, 8}};
  uint64_t seed = 300;
  for (DType dt : kFloats)
    for (const Case& c : cases)
      for (const auto& lay : drcnn::test::layouts(Shape{2, 3, c.H, c.W}, ++seed, dt)) {
        INFO("layout " << lay.name << " " << c.H << "x" << c.W << " -> " << c.OH << "x" << c.OW);
        const Tensor y = ops::upsample_nearest2d(lay.t, c.OH, c.OW);
        REQUIRE(y.shape() == Shape{2, 3, c.OH, c.OW});
        CHECK(vals(y) == ref::upsample_nearest2d(vals(lay.t), nchw(lay.t), c.OH, c.OW));
        const Tensor g = drcnn::test::random_tensor(y.shape(), seed + 5, dt);
        expect_allclose(ops::upsample_nearest2d_backward(g, lay.t.shape()),
                        ref::upsample_nearest2d_backward(vals(g), nchw(lay.t), c.OH, c.OW),
                        dt == DType::Float64 ? 1e-13 : 1e-6, dt == DType::Float64 ? 0 : 1e-6);
      }
}

TEST_CASE("ops/upsample_nearest2d: the CPU's exact-2x backward equals the shared body bit for bit", "[ops][cpu]") {
  // kernels/cpu/nn.cpp sums the 2 x 2 block directly for OH = 2H, OW = 2W; UpsampleBackwardBody
  // (CUDA's code, its range search) run element by element is the reference. Values spread
  // over magnitudes so that the order of the four adds matters; 1 and 2 threads.
  const int before = drcnn::cpu_threads();
  for (DType dt : kFloats)
    for (const Shape& in : {Shape{2, 3, 5, 7}, Shape{1, 4, 16, 13}, Shape{1, 1, 1, 1}})
      for (int threads : {1, 2}) {
        drcnn::set_cpu_threads(threads);
        std::vector<double> gv = vals(drcnn::test::random_tensor({in[0], in[1], 2 * in[2], 2 * in[3]}, 71, DType::Float64));
        for (size_t i = 0; i < gv.size(); ++i) gv[i] *= std::ldexp(1.0, int(i % 7) * 9 - 30);
        const Tensor g = from(gv, Shape{in[0], in[1], 2 * in[2], 2 * in[3]}, dt);
        const Tensor dx = ops::upsample_nearest2d_backward(g, in);
        const Tensor want = Tensor::empty(in, dt);
        ops::PoolGeometry geo;
        geo.H = in[2], geo.W = in[3], geo.OH = 2 * in[2], geo.OW = 2 * in[3];
        drcnn::dispatch_floating(dt, "test", [&](auto tag) {
          using T = typename decltype(tag)::type;
          const ops::detail::UpsampleBackwardBody<T> body{g.data<T>(), want.data<T>(), geo};
          for (int64_t i = 0; i < want.numel(); ++i) body(i);
        });
        INFO(drcnn::dtype_name(dt) << " " << str(in) << " threads " << threads);
        CHECK(std::memcmp(dx.data_ptr(), want.data_ptr(), size_t(dx.numel()) * dx.element_size()) == 0);
      }
  drcnn::set_cpu_threads(before);
}

TEST_CASE("ops/upsample_nearest2d: the float scale differs from exact rationals and is what is matched", "[ops][cpu]") {
  // Find sizes where floor(dst * float(in / out)) != floor(dst * in / out) exactly; the op must
  // follow the float rule (PyTorch's), which the reference spells out.
  int64_t found = 0;
  for (int64_t in = 2; in < 200 && found < 3; ++in)
    for (int64_t out = in + 1; out < 2 * in && found < 3; ++out)
      for (int64_t d = 0; d < out; ++d)
        if (ref::nearest_src(d, in, out) != std::min(d * in / out, in - 1)) {
          ++found;
          const Tensor x = from(arange(in), Shape{1, 1, 1, in});
          const auto y = vals(ops::upsample_nearest2d(x, 1, out));
          INFO("in " << in << " out " << out << " dst " << d);
          CHECK(y[size_t(d)] == double(ref::nearest_src(d, in, out)));
          break;
        }
  // Whether or not such sizes exist below 200, every size agrees with the reference.
  for (int64_t in = 1; in < 40; ++in)
    for (int64_t out = 1; out < 90; out += 7) {
      const Tensor x = from(arange(in), Shape{1, 1, 1, in});
      const auto y = vals(ops::upsample_nearest2d(x, 1, out));
      for (int64_t d = 0; d < out; ++d) REQUIRE(y[size_t(d)] == double(ref::nearest_src(d, in, out)));
    }
}

TEST_CASE("ops/upsample_nearest2d: bad inputs name the op", "[ops][cpu]") {
  CHECK_THROWS_WITH(ops::upsample_nearest2d(Tensor::zeros({2, 2}), 4, 4), Contains("upsample_nearest2d: input must be 4-D"));
  CHECK_THROWS_WITH(ops::upsample_nearest2d(Tensor::zeros({1, 1, 2, 2}), 0, 4), Contains("output size must be >= 1"));
  CHECK_THROWS_WITH(ops::upsample_nearest2d(Tensor::zeros({1, 1, 0, 2}), 2, 4), Contains("spatial size must be >= 1"));
  CHECK_THROWS_WITH(ops::upsample_nearest2d_backward(Tensor::zeros({1, 1, 4, 4}), Shape{1, 2, 2, 2}),
                    Contains("upsample_nearest2d_backward: input_shape must be"));
}

// ============================================================================ frozen BN
TEST_CASE("ops/frozen_batch_norm2d: hand-computed, eps 1e-5 (torchvision) and 0 (Detectron)", "[ops][cpu]") {
  const Tensor x = from({1, 2, 3, 4, 5, 6, 7, 8}, Shape{1, 2, 2, 2});
  const Tensor w = from({2, 0.5}, Shape{2}), b = from({1, -1}, Shape{2});
  const Tensor m = from({1, 4}, Shape{2}), v = from({4, 0.25}, Shape{2});
  // eps 0: channel 0 scale 2 / 2 = 1, shift 1 - 1 = 0; channel 1 scale 0.5 / 0.5 = 1, shift -1 - 4 = -5.
  CHECK(vals(ops::frozen_batch_norm2d(x, w, b, m, v, 0.0)) == std::vector<double>{1, 2, 3, 4, 0, 1, 2, 3});
  const double s0 = 2 / std::sqrt(4 + 1e-5), s1 = 0.5 / std::sqrt(0.25 + 1e-5);
  expect_allclose(ops::frozen_batch_norm2d(x, w, b, m, v),
                  {1 * s0 + 1 - s0, 2 * s0 + 1 - s0, 3 * s0 + 1 - s0, 4 * s0 + 1 - s0, 5 * s1 - 1 - 4 * s1,
                   6 * s1 - 1 - 4 * s1, 7 * s1 - 1 - 4 * s1, 8 * s1 - 1 - 4 * s1},
                  1e-14, 1e-14);
  expect_allclose(ops::frozen_batch_norm2d_backward(Tensor::ones({1, 2, 2, 2}, DType::Float64), w, v),
                  {s0, s0, s0, s0, s1, s1, s1, s1}, 1e-14, 0);
  // A zero variance with eps 0 divides by zero, as the original code would: scale inf, shift
  // -inf, so x * scale + shift is NaN or +-inf (torchvision computes the same expression).
  const auto y = vals(ops::frozen_batch_norm2d(x, w, b, m, from({0, 1}, Shape{2}), 0.0));
  for (int i = 0; i < 4; ++i) CHECK_FALSE(std::isfinite(y[size_t(i)]));
  CHECK(std::isfinite(y[4]));
}

TEST_CASE("ops/frozen_batch_norm2d: random inputs match the reference in every layout, 2-D to 4-D", "[ops][cpu]") {
  uint64_t seed = 500;
  for (DType dt : kFloats)
    for (const Shape& s : {Shape{2, 5, 7, 3}, Shape{3, 4}, Shape{2, 3, 6}})
      for (double eps : {1e-5, 0.0})
        for (const auto& lay : drcnn::test::layouts(s, ++seed, dt, -3, 3)) {
          INFO("layout " << lay.name << " shape " << str(s) << " eps " << eps);
          const int64_t C = s[1];
          const Tensor w = drcnn::test::random_tensor(Shape{C}, seed + 1, dt, 0.5, 2);
          const Tensor b = drcnn::test::random_tensor(Shape{C}, seed + 2, dt);
          const Tensor m = drcnn::test::random_tensor(Shape{C}, seed + 3, dt);
          const Tensor v = drcnn::test::random_tensor(Shape{C}, seed + 4, dt, 0.1, 3);
          const auto expect = ref::channel_norm(vals(lay.t), nchw(lay.t.reshape({s[0], C, -1})), vals(m), vals(v),
                                                vals(w), vals(b), eps);
          expect_allclose(ops::frozen_batch_norm2d(lay.t, w, b, m, v, eps), expect, rtol_norm(dt), atol_norm(dt));
        }
}

TEST_CASE("ops/frozen_batch_norm2d: bad inputs name the op and the argument", "[ops][cpu]") {
  const Tensor x = Tensor::zeros({1, 3, 2, 2}), p = Tensor::ones({3});
  CHECK_THROWS_WITH(ops::frozen_batch_norm2d(x, Tensor::ones({4}), p, p, p),
                    Contains("frozen_batch_norm2d: weight must have shape [3]"));
  CHECK_THROWS_WITH(ops::frozen_batch_norm2d(x, p, p, p, Tensor::ones({3}, DType::Float64)),
                    Contains("running_var must have the input's dtype"));
  CHECK_THROWS_WITH(ops::frozen_batch_norm2d(x, p, Tensor(), p, p), Contains("bias must be defined"));
  CHECK_THROWS_WITH(ops::frozen_batch_norm2d(x, p, p, p, p, -1.0), Contains("eps must be finite and >= 0"));
  CHECK_THROWS_WITH(ops::frozen_batch_norm2d(Tensor::zeros({3}), p, p, p, p), Contains("[N, C, *]"));
}

// ============================================================================ batch norm
TEST_CASE("ops/batch_norm2d: training normalises with batch statistics and matches the reference", "[ops][cpu]") {
  uint64_t seed = 700;
  for (DType dt : kFloats)
    for (const Shape& s : {Shape{4, 3, 5, 7}, Shape{2, 6, 33, 40}, Shape{5, 4}})
      for (const auto& lay : drcnn::test::layouts(s, ++seed, dt, -2, 3)) {
        INFO("layout " << lay.name << " shape " << str(s) << " " << drcnn::dtype_name(dt));
        const int64_t C = s[1];
        const Tensor w = drcnn::test::random_tensor(Shape{C}, seed + 1, dt, 0.5, 2);
        const Tensor b = drcnn::test::random_tensor(Shape{C}, seed + 2, dt);
        const Tensor rm = Tensor::zeros({C}, dt), rv = Tensor::ones({C}, dt);
        const auto r = ops::batch_norm2d(lay.t, w, b, rm, rv, true, 0.1, 1e-5);
        const ref::Nchw sh = nchw(lay.t.reshape({s[0], C, -1}));
        std::vector<double> mean, var;
        ref::batch_stats(vals(lay.t), sh, mean, var);
        expect_allclose(r.output, ref::channel_norm(vals(lay.t), sh, mean, var, vals(w), vals(b), 1e-5), rtol_norm(dt),
                        atol_norm(dt));
        expect_allclose(r.save_mean, mean, rtol_norm(dt), atol_norm(dt));
        std::vector<double> invstd, rm_e, rv_e;
        const double n = double(sh.N * sh.H * sh.W);
        for (int64_t c = 0; c < C; ++c) {
          invstd.push_back(1 / std::sqrt(var[size_t(c)] + 1e-5));
          rm_e.push_back(0.1 * mean[size_t(c)]);
          rv_e.push_back(0.9 + 0.1 * var[size_t(c)] * n / (n - 1));  // unbiased
        }
        expect_allclose(r.save_invstd, invstd, rtol_norm(dt), atol_norm(dt));
        expect_allclose(rm, rm_e, rtol_norm(dt), atol_norm(dt));
        expect_allclose(rv, rv_e, rtol_norm(dt), atol_norm(dt));
        // Backward in training mode.
        const Tensor g = drcnn::test::random_tensor(lay.t.shape(), seed + 3, dt);
        const auto gr = ops::batch_norm2d_backward(g, lay.t, w, r.save_mean, r.save_invstd, true);
        const auto ge = ref::batch_norm_backward(vals(g), vals(lay.t), sh, mean, var, vals(w), 1e-5, true);
        expect_allclose(gr.grad_input, ge.dx, rtol_norm(dt), atol_norm(dt) * 10);
        expect_allclose(gr.grad_weight, ge.dw, rtol_norm(dt), atol_norm(dt) * 100);  // sums of n ~ 2600 terms
        expect_allclose(gr.grad_bias, ge.db, rtol_norm(dt), atol_norm(dt) * 100);
      }
}

TEST_CASE("ops/batch_norm2d: running statistics after several training steps, then eval mode", "[ops][cpu]") {
  for (DType dt : kFloats) {
    const Shape s{3, 2, 4, 5};
    const Tensor w = from({1.5, 0.5}, Shape{2}, dt), b = from({0.1, -0.2}, Shape{2}, dt);
    const Tensor rm = Tensor::zeros({2}, dt), rv = Tensor::ones({2}, dt);
    std::vector<double> rm_e{0, 0}, rv_e{1, 1};
    const double momentum = 0.3, n = 3 * 4 * 5;
    for (int step = 0; step < 4; ++step) {
      const Tensor x = drcnn::test::random_tensor(s, 900 + uint64_t(step), dt, -1 + step, 2 + 2 * step);
      ops::batch_norm2d(x, w, b, rm, rv, true, momentum, 1e-5);
      std::vector<double> mean, var;
      ref::batch_stats(vals(x), nchw(x), mean, var);
      for (size_t c = 0; c < 2; ++c) {
        rm_e[c] = (1 - momentum) * rm_e[c] + momentum * mean[c];
        rv_e[c] = (1 - momentum) * rv_e[c] + momentum * var[c] * n / (n - 1);
      }
    }
    expect_allclose(rm, rm_e, rtol_norm(dt), atol_norm(dt));
    expect_allclose(rv, rv_e, rtol_norm(dt), atol_norm(dt));
    // Eval: running statistics, nothing updated; save_* describe them.
    const Tensor x = drcnn::test::random_tensor(s, 950, dt, -2, 2);
    const auto before = vals(rm);
    const auto r = ops::batch_norm2d(x, w, b, rm, rv, false, momentum, 1e-3);
    CHECK(vals(rm) == before);
    expect_allclose(r.output, ref::channel_norm(vals(x), nchw(x), vals(rm), vals(rv), vals(w), vals(b), 1e-3),
                    rtol_norm(dt), atol_norm(dt));
    const Tensor g = drcnn::test::random_tensor(s, 951, dt);
    const auto gr = ops::batch_norm2d_backward(g, x, w, r.save_mean, r.save_invstd, false);
    const auto ge = ref::batch_norm_backward(vals(g), vals(x), nchw(x), vals(rm), vals(rv), vals(w), 1e-3, false);
    expect_allclose(gr.grad_input, ge.dx, rtol_norm(dt), atol_norm(dt));
    expect_allclose(gr.grad_weight, ge.dw, rtol_norm(dt), atol_norm(dt) * 10);
    expect_allclose(gr.grad_bias, ge.db, rtol_norm(dt), atol_norm(dt) * 10);
    // momentum 0 leaves them alone even in training; no weight/bias (affine=False) works.
    const auto rm0 = vals(rm);
    const auto r0 = ops::batch_norm2d(x, Tensor(), Tensor(), rm, rv, true, 0.0, 1e-5);
    CHECK(vals(rm) == rm0);
    std::vector<double> mean, var;
    ref::batch_stats(vals(x), nchw(x), mean, var);
    expect_allclose(r0.output, ref::channel_norm(vals(x), nchw(x), mean, var, {}, {}, 1e-5), rtol_norm(dt),
                    atol_norm(dt));
  }
}

TEST_CASE("ops/batch_norm2d: float32 statistics stay accurate for a large mean", "[ops][cpu]") {
  // Values 1e4 + U(-1, 1): a one-pass E[x^2] - E[x]^2 in float would lose everything (1e8 vs
  // a variance of 1/3). Summed in double from the float values, the variance keeps ~1e-6.
  const Shape s{4, 2, 50, 50};
  const Tensor x32 = drcnn::test::random_tensor(s, 1234, DType::Float32, 1e4 - 1, 1e4 + 1);
  std::vector<double> mean, var;
  ref::batch_stats(vals(x32), nchw(x32), mean, var);
  const auto r = ops::batch_norm2d(x32, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 0.0);
  std::vector<double> invstd;
  for (double v : var) invstd.push_back(1 / std::sqrt(v));
  expect_allclose(r.save_invstd, invstd, 1e-6, 0);
  expect_allclose(r.save_mean, mean, 1e-7, 0);
}

TEST_CASE("ops/batch_norm2d: results do not depend on the thread count", "[ops][cpu]") {
  const Tensor x = drcnn::test::random_tensor(Shape{2, 3, 70, 90}, 77, DType::Float32);
  const Tensor g = drcnn::test::random_tensor(Shape{2, 3, 70, 90}, 78, DType::Float32);
  const auto run = [&] {
    const Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
    const auto r = ops::batch_norm2d(x, Tensor::ones({3}), Tensor::zeros({3}), rm, rv, true);
    const auto gr = ops::batch_norm2d_backward(g, x, Tensor::ones({3}), r.save_mean, r.save_invstd, true);
    const auto gn = ops::group_norm(x, 3, Tensor(), Tensor());
    return std::vector<std::vector<double>>{vals(r.output), vals(rv), vals(gr.grad_input), vals(gr.grad_weight),
                                            vals(gn.output)};
  };
  const int threads = drcnn::cpu_threads();
  drcnn::set_cpu_threads(1);
  const auto one = run();
  drcnn::set_cpu_threads(threads);
  CHECK(run() == one);
}

TEST_CASE("ops/batch_norm2d: bad inputs name the op", "[ops][cpu]") {
  const Tensor x = Tensor::zeros({2, 3, 2, 2}), p = Tensor::ones({3});
  CHECK_THROWS_WITH(ops::batch_norm2d(Tensor::zeros({1, 3, 1, 1}), p, p, p, p, true),
                    Contains("batch_norm2d: expected more than 1 value per channel when training"));
  CHECK_THROWS_WITH(ops::batch_norm2d(x, p, p, Tensor(), Tensor(), false),
                    Contains("batch_norm2d: running_mean must be defined"));
  CHECK_THROWS_WITH(ops::batch_norm2d(x, p, p, p, Tensor(), true), Contains("both be defined or both undefined"));
  CHECK_THROWS_WITH(ops::batch_norm2d(x, p, p, p, p, true, 1.5), Contains("momentum must be in [0, 1]"));
  CHECK_THROWS_WITH(ops::batch_norm2d(x, p, p, Tensor::ones({3, 2}).select(1, 0), p, true),
                    Contains("running_mean must be contiguous"));
  CHECK_THROWS_WITH(ops::batch_norm2d_backward(Tensor::zeros({2, 3, 2, 1}), x, p, p, p, true),
                    Contains("batch_norm2d_backward: grad_output must match the input"));
}

// ============================================================================ group norm
TEST_CASE("ops/group_norm: random inputs match the reference, forward and backward", "[ops][cpu]") {
  struct Case {
    Shape s;
    int64_t G;
    bool affine;
  };
  const Case cases[] = {{Shape{2, 6, 5, 7}, 3, true},  {Shape{3, 4, 9, 2}, 1, true}, {Shape{2, 4, 3, 3}, 4, true},
                        {Shape{2, 8, 40, 33}, 2, true}, {Shape{3, 6, 11}, 2, false}, {Shape{4, 6}, 3, true}};
  uint64_t seed = 1100;
  for (DType dt : kFloats)
    for (const Case& c : cases)
      for (const auto& lay : drcnn::test::layouts(c.s, ++seed, dt, -2, 3)) {
        INFO("layout " << lay.name << " shape " << str(c.s) << " groups " << c.G);
        const int64_t C = c.s[1];
        const Tensor w = c.affine ? drcnn::test::random_tensor(Shape{C}, seed + 1, dt, 0.5, 2) : Tensor();
        const Tensor b = c.affine ? drcnn::test::random_tensor(Shape{C}, seed + 2, dt) : Tensor();
        const std::vector<double> wv = c.affine ? vals(w) : std::vector<double>{};
        const std::vector<double> bv = c.affine ? vals(b) : std::vector<double>{};
        const ref::Nchw sh = nchw(lay.t.reshape({c.s[0], C, -1}));
        std::vector<double> mean, rstd;
        const auto y = ref::group_norm(vals(lay.t), sh, c.G, wv, bv, 1e-5, &mean, &rstd);
        const auto r = ops::group_norm(lay.t, c.G, w, b, 1e-5);
        expect_allclose(r.output, y, rtol_norm(dt), atol_norm(dt));
        expect_allclose(r.mean, mean, rtol_norm(dt), atol_norm(dt));
        expect_allclose(r.rstd, rstd, rtol_norm(dt), atol_norm(dt));
        const Tensor g = drcnn::test::random_tensor(lay.t.shape(), seed + 3, dt);
        const auto gr = ops::group_norm_backward(g, lay.t, r.mean, r.rstd, w, c.G);
        const auto ge = ref::group_norm_backward(vals(g), vals(lay.t), sh, c.G, wv, 1e-5);
        expect_allclose(gr.grad_input, ge.dx, rtol_norm(dt), atol_norm(dt) * 10);
        if (c.affine) {
          expect_allclose(gr.grad_weight, ge.dw, rtol_norm(dt), atol_norm(dt) * 100);
          expect_allclose(gr.grad_bias, ge.db, rtol_norm(dt), atol_norm(dt) * 100);
        } else {
          CHECK_FALSE(gr.grad_weight.defined());
        }
      }
}

TEST_CASE("ops/group_norm: hand-computed, one group of a constant-plus-ramp input", "[ops][cpu]") {
  // Group of {1, 2, 3, 4}: mean 2.5, biased var 1.25; eps 0.
  const auto r = ops::group_norm(from({1, 2, 3, 4}, Shape{1, 2, 2}), 1, Tensor(), Tensor(), 0.0);
  const double s = std::sqrt(1.25);
  expect_allclose(r.output, {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, 1e-15, 1e-15);
  expect_allclose(r.mean, {2.5}, 0, 0);
  expect_allclose(r.rstd, {1 / s}, 1e-15, 0);
}

TEST_CASE("ops/group_norm: bad inputs name the op", "[ops][cpu]") {
  const Tensor x = Tensor::zeros({2, 6, 2, 2});
  CHECK_THROWS_WITH(ops::group_norm(x, 4, Tensor(), Tensor()), Contains("group_norm: groups must be > 0 and divide the 6 channels, got 4"));
  CHECK_THROWS_WITH(ops::group_norm(x, 0, Tensor(), Tensor()), Contains("groups must be > 0"));
  CHECK_THROWS_WITH(ops::group_norm(x, 3, Tensor::ones({5}), Tensor()), Contains("weight must have shape [6]"));
  const auto r = ops::group_norm(x, 3, Tensor(), Tensor());
  CHECK_THROWS_WITH(ops::group_norm_backward(x, x, r.mean, r.rstd.reshape({6}), Tensor(), 3),
                    Contains("group_norm_backward: mean and rstd must be [N, G]"));
}

// ============================================================================ bodies

TEST_CASE("ops/nn bodies: the per-element form CUDA runs equals the per-row form the CPU runs", "[ops][cpu]") {
  // CPU launches ChannelAffineBody / NormBackwardBody by rows, CUDA by elements: same values.
  const int64_t rows = 6, inner = 37, mod = 3, n = rows * inner;
  const auto x = drcnn::test::random_values(n, 1), g = drcnn::test::random_values(n, 2);
  const auto A = drcnn::test::random_values(mod, 3), B = drcnn::test::random_values(mod, 4);
  const auto C = drcnn::test::random_values(mod, 5), M = drcnn::test::random_values(mod, 6);
  std::vector<double> by_row(static_cast<size_t>(n)), by_elem(static_cast<size_t>(n));
  for (const double* b : {B.data(), static_cast<const double*>(nullptr)}) {
    ops::detail::ChannelAffineBody<double> r{x.data(), by_row.data(), A.data(), b, inner, mod};
    ops::detail::ChannelAffineBody<double> e{x.data(), by_elem.data(), A.data(), b, inner, mod};
    for (int64_t i = 0; i < rows; ++i) r.row(i);
    for (int64_t i = 0; i < n; ++i) e(i);
    CHECK(by_row == by_elem);
  }
  ops::detail::NormBackwardBody<double> r{g.data(), x.data(), by_row.data(), A.data(), B.data(), C.data(), M.data(), inner, mod};
  ops::detail::NormBackwardBody<double> e{g.data(), x.data(), by_elem.data(), A.data(), B.data(), C.data(), M.data(), inner, mod};
  for (int64_t i = 0; i < rows; ++i) r.row(i);
  for (int64_t i = 0; i < n; ++i) e(i);
  CHECK(by_row == by_elem);
  CHECK(by_row[40] == g[40] * A[1] + (x[40] - M[1]) * B[1] + C[1]);  // element 40 is in row 1: segment 1
}

TEST_CASE("ops/nn bodies: pooling and upsampling rows equal their per-element form", "[ops][cpu]") {
  ops::PoolGeometry p;
  p.H = 9, p.W = 7, p.kh = 3, p.kw = 2, p.sh = 2, p.sw = 1, p.ph = 1, p.pw = 1, p.dh = 1, p.dw = 2;
  p.OH = ref::pool_out_size(p.H, p.kh, p.sh, p.ph, p.dh, true);
  p.OW = ref::pool_out_size(p.W, p.kw, p.sw, p.pw, p.dw, true);
  const int64_t planes = 3, nin = planes * p.H * p.W, nout = planes * p.OH * p.OW;
  auto x = drcnn::test::random_values(nin, 7);
  for (auto& v : x) v = std::round(4 * v);  // ties
  const auto g = drcnn::test::random_values(nout, 8);
  std::vector<double> y_r(static_cast<size_t>(nout)), y_e(static_cast<size_t>(nout));
  std::vector<int64_t> i_r(static_cast<size_t>(nout)), i_e(static_cast<size_t>(nout));
  const ops::detail::MaxPoolForwardBody<double> fr{x.data(), y_r.data(), i_r.data(), p}, fe{x.data(), y_e.data(), i_e.data(), p};
  for (int64_t r = 0; r < planes * p.OH; ++r) fr.row(r);
  for (int64_t i = 0; i < nout; ++i) fe(i);
  CHECK(y_r == y_e);
  CHECK(i_r == i_e);
  std::vector<double> d_r(static_cast<size_t>(nin)), d_e(static_cast<size_t>(nin));
  const ops::detail::MaxPoolBackwardBody<double> br{g.data(), i_r.data(), d_r.data(), p}, be{g.data(), i_r.data(), d_e.data(), p};
  for (int64_t r = 0; r < planes * p.H; ++r) br.row(r);
  for (int64_t i = 0; i < nin; ++i) be(i);
  CHECK(d_r == d_e);
  // Upsampling 9x7 -> 13x12 (nout values reused as the gradient where sizes allow).
  ops::PoolGeometry u;
  u.H = 9, u.W = 7, u.OH = 13, u.OW = 12;
  const int64_t nup = planes * u.OH * u.OW;
  const auto gu = drcnn::test::random_values(nup, 9);
  std::vector<double> u_r(static_cast<size_t>(nup)), u_e(static_cast<size_t>(nup));
  const ops::detail::UpsampleForwardBody<double> ur{x.data(), u_r.data(), u}, ue{x.data(), u_e.data(), u};
  for (int64_t r = 0; r < planes * u.OH; ++r) ur.row(r);
  for (int64_t i = 0; i < nup; ++i) ue(i);
  CHECK(u_r == u_e);
  const ops::detail::UpsampleBackwardBody<double> ubr{gu.data(), d_r.data(), u}, ube{gu.data(), d_e.data(), u};
  for (int64_t r = 0; r < planes * u.H; ++r) ubr.row(r);
  for (int64_t i = 0; i < nin; ++i) ube(i);
  CHECK(d_r == d_e);
}

TEMPLATE_TEST_CASE("ops/nn: the CPU launcher's interleaved norm partials equal the serial body bit for bit", "[ops][cpu]",
                   float, double) {
  // kernels/cpu/nn.cpp runs eight consecutive full chunks of NormPartialBody interleaved (float32
  // chunks inside one run of their segment, as GN's, with AVX2 where the CPU has it; the rest
  // through the body); every partial must be the body's own (run here chunk by chunk):
  // BN and GN segments, segments shorter than, equal to and longer than a chunk (short last
  // chunks; groups mixing segments), a chunk count that is not a multiple of eight, with and
  // without a shift and a gradient, 1 and 2 threads.
  const DType dt = drcnn::dtype_of_v<TestType>;
  struct Case {
    const char* what;
    int64_t N, C, HW;
    bool bn;
  };
  const int before = drcnn::cpu_threads();
  for (const Case& c : {Case{"bn", 3, 4, 1500, true}, Case{"bn hw 7", 300, 2, 7, true}, Case{"bn exact", 2, 3, 2048, true},
                        Case{"gn", 2, 6, 777, false}, Case{"gn long", 1, 4, 5000, false}, Case{"gn 1 chunk", 5, 2, 512, false}}) {
    const Tensor x = drcnn::test::random_tensor({c.N, c.C, c.HW}, 51, dt, -3, 5);
    const Tensor g = drcnn::test::random_tensor({c.N, c.C, c.HW}, 52, dt);
    const drcnn::test::NormSegments seg = drcnn::test::norm_segments(c.N, c.C, c.HW, c.bn);
    const Tensor shift = drcnn::test::random_tensor({seg.Q}, 53, dt);
    const int64_t K = (seg.L + ops::kNormChunk - 1) / ops::kNormChunk;
    for (int variant = 0; variant < 3; ++variant)
      for (int threads : {1, 2}) {
        drcnn::set_cpu_threads(threads);
        const Tensor M = variant >= 1 ? shift : Tensor(), G = variant == 2 ? g : Tensor();
        INFO(c.what << ", variant " << variant << ", threads " << threads);
        const Tensor want = drcnn::test::norm_partials_host(x, G, M, seg, false);
        Tensor got = Tensor::zeros({2, seg.Q * K}, DType::Float64);
        ops::NnLaunch l;
        l.n = seg.Q * K;
        l.x = x.data_ptr();
        l.g = G.defined() ? G.data_ptr() : nullptr;
        l.M = M.defined() ? M.data_ptr() : nullptr;
        l.p0 = got.data<double>();
        l.p1 = l.p0 + seg.Q * K;
        l.K = K, l.L = seg.L, l.Q = seg.Q, l.seg_stride = seg.seg_stride, l.seg_inner = seg.seg_inner;
        l.outer_stride = seg.outer_stride, l.m_div = seg.m_div;
        ops::cpu::nn_op(ops::NnKind::NormPartial, dt, l);
        CHECK(std::memcmp(got.data_ptr(), want.data_ptr(), size_t(got.numel()) * sizeof(double)) == 0);
      }
  }
  drcnn::set_cpu_threads(before);
}

TEMPLATE_TEST_CASE("ops/nn: the norms' CUDA warp partial sums (host emulation) match float64", "[ops][cpu]", float,
                   double) {
  // NormPartialBody::lane_sums + norm_lane_tree (kernels/cuda/nn.cu's order) against a long
  // double sum per chunk, and against the CPU's serial chunk sums. Both are double sums of at
  // most kNormChunk = 1024 terms, each term within 3u of exact (d = x - m rounds once, a * d
  // once more): |error| <= (1023 + 3) u sum|terms| to first order (u = 2^-53, recursive
  // summation's (n - 1) u bound), checked with 1030 u; they differ from each other by at most
  // twice that. Geometries: BN (segment = channel, strided
  // by C * HW), GN (contiguous segments), inner extents below, at and above the warp's 32.
  const DType dt = drcnn::dtype_of_v<TestType>;
  const double u = std::ldexp(1.0, -53);
  struct Case {
    const char* what;
    int64_t N, C, HW;
    bool bn;
  };
  for (const Case& c : {Case{"bn", 3, 4, 1500, true}, Case{"bn hw 5", 5, 3, 5, true}, Case{"bn hw 32", 70, 2, 32, true},
                        Case{"bn hw 7", 300, 2, 7, true}, Case{"gn", 2, 6, 777, false}}) {
    const Tensor x = drcnn::test::random_tensor({c.N, c.C, c.HW}, 41, dt, -3, 5);
    const Tensor g = drcnn::test::random_tensor({c.N, c.C, c.HW}, 42, dt);
    const drcnn::test::NormSegments seg = drcnn::test::norm_segments(c.N, c.C, c.HW, c.bn);
    const Tensor shift = drcnn::test::random_tensor({seg.Q}, 43, dt);
    const auto xv = strided_values(x), gv = strided_values(g), mv = strided_values(shift);
    const int64_t K = (seg.L + ops::kNormChunk - 1) / ops::kNormChunk;
    for (int variant = 0; variant < 3; ++variant) {  // plain; shifted; with a gradient
      const Tensor M = variant >= 1 ? shift : Tensor(), G = variant == 2 ? g : Tensor();
      INFO(c.what << ", variant " << variant);
      const auto warp = strided_values(drcnn::test::norm_partials_host(x, G, M, seg, true));
      const auto serial = strided_values(drcnn::test::norm_partials_host(x, G, M, seg, false));
      std::vector<double> want0, want1, bound0, bound1;
      for (int64_t q = 0; q < seg.Q; ++q)
        for (int64_t k = 0; k < K; ++k) {
          long double s0 = 0, s1 = 0, a0 = 0, a1 = 0;
          for (int64_t j = k * ops::kNormChunk; j < std::min(seg.L, (k + 1) * ops::kNormChunk); ++j) {
            const int64_t o = q * seg.seg_stride + (j / seg.seg_inner) * seg.outer_stride + j % seg.seg_inner;
            const long double d = (long double)xv[size_t(o)] - (variant >= 1 ? (long double)mv[size_t(q)] : 0.0L);
            const long double a = variant == 2 ? (long double)gv[size_t(o)] : d;
            s0 += a;
            s1 += a * d;
            a0 += std::fabs(a);
            a1 += std::fabs(a * d);
          }
          want0.push_back(double(s0));
          want1.push_back(double(s1));
          bound0.push_back(1030 * u * double(a0));
          bound1.push_back(1030 * u * double(a1));
        }
      const size_t n = want0.size();
      REQUIRE(warp.size() == 2 * n);
      size_t bad = 0;
      for (size_t i = 0; i < n; ++i) {
        bad += std::fabs(warp[i] - want0[i]) > bound0[i];
        bad += std::fabs(warp[n + i] - want1[i]) > bound1[i];
        bad += std::fabs(warp[i] - serial[i]) > 2 * bound0[i];
        bad += std::fabs(warp[n + i] - serial[n + i]) > 2 * bound1[i];
      }
      CHECK(bad == 0);
    }
  }
}
