// The opt-in bfloat16 CPU convolutions (include/drcnn/ops/cpu_precision.h, kernels/cpu/conv_onednn.cpp)
// against the float64 reference of tests/reference/conv_ref.h, with per-element error bounds
// derived from the two roundings involved:
//   - each operand read by a primitive is rounded to bfloat16 (8 significant bits, round to
//     nearest even: relative error <= u = 2^-8), so a product a*b carries at most
//     (2u + u^2) |a||b|;
//   - bf16 x bf16 products are exact in float32 (16 <= 24 bits) and are summed in float32: any
//     order of a sum of K terms (plus the bias) errs by at most (K + 1) v sum |terms|, v = 2^-24
//     (Higham's gamma_K bound, to first order), and the terms are at most (1 + u)^2 |a||b|.
// So |y - exact| <= (2u + u^2) S + (K + 1) v (1 + u)^2 (S + |bias|) with S = sum |a||b|, the
// reference run on the absolute values. A second, much tighter check runs the reference on the
// operands rounded to bf16 by this test's own rounding (tests/ops/test_conv_bf16.cpp:
// bf16_round): the kernel must then be within the float32 summation bound alone, which the
// float32 kernel (unrounded operands) fails; that proves bf16 operands and f32 accumulation.
// Denormals (vdpbf16ps flushes them) add at most 2^-126 per term: included.
// Plus: bitwise identity for 1 and 2 threads, float64 untouched, the errors of the setting.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/allclose.h"
#include "common/conv_params.h"
#include "common/random.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/cpu_precision.h"
#include "reference/conv_ref.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
constexpr double kU = 1.0 / 256;             // bf16 unit roundoff, 2^-8
constexpr double kV = 1.0 / 16777216;        // float32 unit roundoff, 2^-24
constexpr double kDenormal = 1.1754943508e-38;  // 2^-126 per term (flushed denormals)

/// float32 -> nearest bfloat16 (ties to even), returned as float. Finite inputs only.
float bf16_round(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  float r;
  std::memcpy(&r, &bits, 4);
  return r;
}
Tensor rounded(const Tensor& t) {
  std::vector<double> v = drcnn::test::strided_values(t);
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = bf16_round(float(v[i]));
  return Tensor::from_vector<float>(f, t.shape());
}
Tensor absolute(const Tensor& t) {
  std::vector<double> v = drcnn::test::strided_values(t);
  for (double& x : v) x = std::abs(x);
  return Tensor::from_vector<double>(v, t.shape());
}

using drcnn::test::conv_params;
ops::Conv2dParams params(int64_t s, int64_t p, int64_t d, int64_t g) { return conv_params(s, p, d, g); }
/// A convolution's input and weight shapes and parameters.
struct ConvCase {
  Shape x, w;
  ops::Conv2dParams p;
};
ref::ConvRefParams ref_params(const ops::Conv2dParams& p) { return drcnn::test::conv_ref_params(p); }

struct PrecisionScope {
  ops::CpuPrecision before = ops::cpu_precision();
  explicit PrecisionScope(ops::CpuPrecision p) { ops::set_cpu_precision(p); }
  ~PrecisionScope() { ops::set_cpu_precision(before); }
};

/// Elements of `actual` outside expected +- (rel_products * S + sum_rel * (S + |bias|) + terms * 2^-126).
int64_t outside(const Tensor& actual, const std::vector<double>& expected, const std::vector<double>& abs_sum,
                const std::vector<double>& abs_bias, double rel_products, double sum_rel, int64_t terms,
                double& worst) {
  const std::vector<double> a = drcnn::test::strided_values(actual);
  REQUIRE(a.size() == expected.size());
  int64_t bad = 0;
  worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double s = abs_sum[i], b = abs_bias.empty() ? 0.0 : abs_bias[i];
    const double tol = rel_products * s + sum_rel * (s + b) + double(terms) * kDenormal;
    const double err = std::abs(a[i] - expected[i]);
    worst = std::max(worst, tol > 0 ? err / tol : (err > 0 ? 1e300 : 0.0));
    if (!(err <= tol)) ++bad;
  }
  return bad;
}

struct Case {
  Shape x, w;
  ops::Conv2dParams p;
  bool bias;
};
// ResNet/FPN shapes in miniature (channel counts that select oneDNN's blocked bf16 kernels).
const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {{1, 3, 38, 34}, {64, 3, 7, 7}, params(2, 3, 1, 1), false},      // stem
      {{2, 64, 14, 13}, {64, 64, 3, 3}, params(1, 1, 1, 1), true},     // 3x3, batch 2, bias
      {{1, 64, 15, 14}, {128, 64, 3, 3}, params(2, 1, 1, 1), false},   // strided 3x3
      {{1, 64, 12, 12}, {256, 64, 1, 1}, params(1, 0, 1, 1), false},   // 1x1 expand
      {{1, 256, 12, 11}, {128, 256, 1, 1}, params(2, 0, 1, 1), false}, // strided 1x1
      {{1, 128, 10, 9}, {12, 128, 1, 1}, params(1, 0, 1, 1), true},    // RPN-like head
  };
  return c;
}

/// Runs forward + backward in the current precision and checks them against the float64
/// reference on `xr`, `wr`, `gor` (exact or bf16-rounded operands) with the given relative bounds.
/// Returns the number of elements outside the bounds.
int64_t run_case(const Case& c, uint64_t seed, bool against_rounded, bool expect_pass) {
  const Tensor x = drcnn::test::random_tensor(c.x, seed, DType::Float32);
  const Tensor w = drcnn::test::random_tensor(c.w, seed + 1, DType::Float32);
  const Tensor b = c.bias ? drcnn::test::random_tensor({c.w[0]}, seed + 2, DType::Float32) : Tensor();
  const ref::ConvRefParams rp = ref_params(c.p);
  const Tensor out = ops::conv2d(x, w, b, c.p);
  const Tensor go = drcnn::test::random_tensor(out.shape(), seed + 3, DType::Float32);
  const ops::Conv2dGrads g = ops::conv2d_backward(go, x, w, c.p);

  const Tensor xr = against_rounded ? rounded(x) : x, wr = against_rounded ? rounded(w) : w;
  const Tensor gor = against_rounded ? rounded(go) : go;
  const auto r = ref::conv2d(xr, wr, b, rp);
  const auto rg = ref::conv2d_backward(gor, xr, wr, rp);
  // S = sum |a||b| per output element: the reference on absolute values (exact operands; the
  // rounded ones are within (1 + u) of them, folded into the bounds below).
  const auto s = ref::conv2d(absolute(x), absolute(w), Tensor(), rp);
  const auto sg = ref::conv2d_backward(absolute(go), absolute(x), absolute(w), rp);
  std::vector<double> abs_bias;
  if (c.bias) {
    const std::vector<double> bv = drcnn::test::strided_values(b);
    const int64_t per = out.size(2) * out.size(3);
    for (int64_t n = 0; n < out.size(0); ++n)
      for (int64_t co = 0; co < out.size(1); ++co)
        for (int64_t i = 0; i < per; ++i) abs_bias.push_back(std::abs(bv[size_t(co)]));
  }
  const int64_t k_fwd = c.w[1] * c.w[2] * c.w[3];
  const int64_t k_data = (c.w[0] / c.p.groups) * c.w[2] * c.w[3];
  const int64_t k_wei = out.size(0) * out.size(2) * out.size(3);
  const double products = against_rounded ? 0.0 : 2 * kU + kU * kU;
  const auto sum_rel = [&](int64_t k) { return double(k + 1) * kV * (1 + kU) * (1 + kU); };
  const std::string ctx = fmt::format("x {} w {} {}", c.x, c.w, against_rounded ? "vs rounded operands" : "vs exact");
  // One operand's check: elements outside the bound, reported, and required to be 0 when expect_pass.
  const auto verify = [&](const char* what, const Tensor& actual, const std::vector<double>& expected,
                          const std::vector<double>& abs_sum, const std::vector<double>& bias_abs, int64_t k) {
    double worst = 0;
    const int64_t n = outside(actual, expected, abs_sum, bias_abs, products, sum_rel(k), k, worst);
    if (std::getenv("DRCNN_CONV_REPORT"))
      std::printf("%s %s: %lld outside, worst err/bound %.3g\n", ctx.c_str(), what, (long long)n, worst);
    if (expect_pass) {
      INFO(ctx << " " << what << ": worst error / bound " << worst);
      CHECK(n == 0);
    }
    return n;
  };
  return verify("forward", out, r.out, s.out, abs_bias, k_fwd) +
         verify("grad_input", g.input, rg.input, sg.input, {}, k_data) +
         verify("grad_weight", g.weight, rg.weight, sg.weight, {}, k_wei);
}
}  // namespace

TEST_CASE("ops/cpu_precision: parsing, names and the refusal without AVX-512 BF16", "[ops][cpu][conv][bf16]") {
  CHECK(ops::parse_cpu_precision("fp32", "--x") == ops::CpuPrecision::Float32);
  CHECK(ops::parse_cpu_precision("bf16", "--x") == ops::CpuPrecision::BFloat16);
  REQUIRE_THROWS_WITH(ops::parse_cpu_precision("fp16", "--cpu-precision"),
                      Contains("--cpu-precision: expected 'fp32' or 'bf16', got 'fp16'"));
  CHECK(std::string(ops::cpu_precision_name(ops::CpuPrecision::BFloat16)) == "bf16");
  CHECK(std::string(ops::cpu_precision_name(ops::CpuPrecision::Float32)) == "fp32");
  CHECK(ops::cpu_precision() == ops::CpuPrecision::Float32);  // the default (ctest sets no DRCNN_CPU_PRECISION)
  if (!ops::cpu_has_bf16()) {
    REQUIRE_THROWS_WITH(ops::set_cpu_precision(ops::CpuPrecision::BFloat16), Contains("set_cpu_precision: bf16 needs"));
    CHECK(ops::cpu_precision() == ops::CpuPrecision::Float32);
  }
}

TEST_CASE("ops/conv2d bf16: forward and backward within bf16's error bound of the float64 reference",
          "[ops][cpu][conv][bf16]") {
  if (!ops::cpu_has_bf16()) {
    // Not a skip: this CPU has no AVX-512 BF16, so bf16 must be refused (checked above) and
    // float32 is all that runs. Say so in the log.
    WARN("this CPU has no AVX-512 BF16 (or this build no oneDNN): the bf16 kernels are not exercised here");
    CHECK_THROWS(ops::set_cpu_precision(ops::CpuPrecision::BFloat16));
    return;
  }
  REQUIRE(ops::cpu_conv_impl() == ops::CpuConvImpl::OneDnn);
  uint64_t seed = 1400;
  for (const Case& c : cases()) {
    seed += 10;
    {
      const PrecisionScope bf16(ops::CpuPrecision::BFloat16);
      run_case(c, seed, false, true);  // bf16 bound against the exact result
      run_case(c, seed, true, true);   // float32 summation bound against the bf16-rounded operands
    }
    // The float32 kernels miss the second bound (their operands are not rounded): the check can
    // tell the two apart, so passing it above proves the operands were rounded to bf16.
    CHECK(run_case(c, seed, true, false) > 0);
  }
}

TEST_CASE("ops/conv2d bf16: bitwise identical for 1 and 2 threads, float64 unaffected", "[ops][cpu][conv][bf16]") {
  if (!ops::cpu_has_bf16()) {
    WARN("this CPU has no AVX-512 BF16: bf16 is refused, nothing to compare");
    CHECK_THROWS(ops::set_cpu_precision(ops::CpuPrecision::BFloat16));
    return;
  }
  const std::vector<ConvCase> tcases = {
      {{2, 64, 24, 24}, {64, 64, 3, 3}, params(1, 1, 1, 1)},    // 3x3, backward-weights in 4 slices
      {{1, 64, 40, 40}, {256, 64, 1, 1}, params(1, 0, 1, 1)},   // 1x1 expand
      {{1, 256, 40, 40}, {64, 256, 1, 1}, params(1, 0, 1, 1)},  // 1x1 reduce (long reduction)
      {{1, 128, 41, 39}, {256, 128, 1, 1}, params(2, 0, 1, 1)}, // strided 1x1 downsample
      {{1, 3, 96, 96}, {64, 3, 7, 7}, params(2, 3, 1, 1)},      // stem
      {{2, 16, 12, 12}, {16, 16, 3, 3}, params(1, 1, 1, 1)},    // one slice
  };
  const int before = drcnn::cpu_threads();
  const PrecisionScope bf16(ops::CpuPrecision::BFloat16);
  for (const ConvCase& c : tcases) {
    const Tensor x = drcnn::test::random_tensor(c.x, 61, DType::Float32), w = drcnn::test::random_tensor(c.w, 62, DType::Float32);
    const Tensor b = drcnn::test::random_tensor({c.w[0]}, 63, DType::Float32);
    Tensor out[2];
    ops::Conv2dGrads g[2];
    for (int t = 0; t < 2; ++t) {
      drcnn::set_cpu_threads(t + 1);
      out[t] = ops::conv2d(x, w, b, c.p);
      const Tensor go = drcnn::test::random_tensor(out[t].shape(), 64, DType::Float32);
      g[t] = ops::conv2d_backward(go, x, w, c.p);
    }
    INFO("bf16 x " << fmt::format("{}", c.x) << " w " << fmt::format("{}", c.w));
    CHECK(drcnn::test::bitwise_equal(out[0], out[1]));
    CHECK(drcnn::test::bitwise_equal(g[0].input, g[1].input));
    CHECK(drcnn::test::bitwise_equal(g[0].weight, g[1].weight));
    CHECK(drcnn::test::bitwise_equal(g[0].bias, g[1].bias));
  }
  drcnn::set_cpu_threads(before);
  // float64 never takes the bf16 path: bitwise the same as with float32 precision selected.
  const Tensor x = drcnn::test::random_tensor({1, 16, 9, 9}, 71, DType::Float64);
  const Tensor w = drcnn::test::random_tensor({16, 16, 3, 3}, 72, DType::Float64);
  const Tensor a = ops::conv2d(x, w, Tensor(), params(1, 1, 1, 1));
  const PrecisionScope fp32(ops::CpuPrecision::Float32);
  CHECK(drcnn::test::bitwise_equal(a, ops::conv2d(x, w, Tensor(), params(1, 1, 1, 1))));
}

TEST_CASE("ops/conv2d: the input a forward saves for backward-weights gives the same bits as none", "[ops][cpu][conv][bf16]") {
  // ops::Conv2dSaved (what autograd passes from conv2d's forward to its backward): on the oneDNN
  // path the forward's converted input stands in for backward-weights' own conversion. The
  // gradients must be the bits of a backward without it; a token from another precision or
  // another input shape is ignored. float32 always; bf16 where the CPU has it.
  const std::vector<ConvCase> tcases = {
      {{1, 64, 20, 18}, {128, 64, 3, 3}, params(2, 1, 1, 1)},  // 3x3 strided, 4 slices
      {{2, 64, 12, 12}, {64, 64, 3, 3}, params(1, 1, 1, 1)},   // batch 2
      {{1, 3, 64, 64}, {64, 3, 7, 7}, params(2, 3, 1, 1)},     // stem (plain input layout)
      {{1, 128, 9, 10}, {128, 128, 1, 1}, params(1, 0, 1, 1)}, // 1x1
      {{1, 16, 30, 30}, {16, 4, 3, 3}, params(1, 2, 2, 4)},    // grouped, dilated
  };
  std::vector<ops::CpuPrecision> precisions{ops::CpuPrecision::Float32};
  if (ops::cpu_has_bf16()) precisions.push_back(ops::CpuPrecision::BFloat16);
  const bool onednn = ops::cpu_conv_impl() == ops::CpuConvImpl::OneDnn;
  int saved_count = 0;
  for (const ops::CpuPrecision prec : precisions) {
    const PrecisionScope scope(prec);
    for (const ConvCase& c : tcases) {
      const Tensor x = drcnn::test::random_tensor(c.x, 81, DType::Float32), w = drcnn::test::random_tensor(c.w, 82, DType::Float32);
      const Tensor b = drcnn::test::random_tensor({c.w[0]}, 83, DType::Float32);
      ops::Conv2dSaved saved;
      const Tensor out = ops::conv2d(x, w, b, c.p, &saved);
      saved_count += saved != nullptr;
      INFO(ops::cpu_precision_name(prec) << " x " << fmt::format("{}", c.x) << " w " << fmt::format("{}", c.w));
      CHECK(drcnn::test::bitwise_equal(out, ops::conv2d(x, w, b, c.p)));
      const Tensor go = drcnn::test::random_tensor(out.shape(), 84, DType::Float32);
      const ops::Conv2dGrads with = ops::conv2d_backward(go, x, w, c.p, {}, saved);
      const ops::Conv2dGrads without = ops::conv2d_backward(go, x, w, c.p);
      CHECK(drcnn::test::bitwise_equal(with.input, without.input));
      CHECK(drcnn::test::bitwise_equal(with.weight, without.weight));
      CHECK(drcnn::test::bitwise_equal(with.bias, without.bias));
    }
  }
  // The three nChw16c shapes keep their input on the oneDNN path in every precision (the stem's
  // and the grouped one's inputs may stay plain, with nothing converted to keep).
  if (onednn) CHECK(saved_count >= 3 * int(precisions.size()));
  if (ops::cpu_has_bf16()) {
    // A float32 forward's token used by a bf16 backward, and a token of another input shape:
    // ignored (the layouts differ), the same bits as without.
    const Tensor x = drcnn::test::random_tensor({1, 64, 20, 18}, 91, DType::Float32);
    const Tensor x2 = drcnn::test::random_tensor({1, 64, 22, 18}, 94, DType::Float32);
    const Tensor w = drcnn::test::random_tensor({128, 64, 3, 3}, 92, DType::Float32);
    ops::Conv2dSaved saved32, saved_other;
    Tensor out;
    {
      const PrecisionScope fp32(ops::CpuPrecision::Float32);
      out = ops::conv2d(x, w, Tensor(), params(2, 1, 1, 1), &saved32);
    }
    const PrecisionScope bf16(ops::CpuPrecision::BFloat16);
    ops::conv2d(x2, w, Tensor(), params(2, 1, 1, 1), &saved_other);
    if (onednn) CHECK((saved32 != nullptr && saved_other != nullptr));
    const Tensor go = drcnn::test::random_tensor(out.shape(), 93, DType::Float32);
    const ops::Conv2dGrads plain = ops::conv2d_backward(go, x, w, params(2, 1, 1, 1));
    CHECK(drcnn::test::bitwise_equal(ops::conv2d_backward(go, x, w, params(2, 1, 1, 1), {}, saved32).weight, plain.weight));
    CHECK(drcnn::test::bitwise_equal(ops::conv2d_backward(go, x, w, params(2, 1, 1, 1), {}, saved_other).weight, plain.weight));
  }
}

TEST_CASE("ops/conv2d: drcnn's AVX-512 layout copies give the bits of the copies they replaced", "[ops][cpu][conv][bf16]") {
  // kernels/cpu/conv_onednn.cpp copies the float32 weight gradient from OIhw16i16o to OIHW with
  // 16 x 16 transposes (taps <= 16; float32 and bf16) and, in bf16 mode, converts float32 NCHW
  // inputs and output gradients with whole 16-channel blocks to bf16 nChw16c itself. With
  // ops::set_cpu_fast_copies(false) the scalar copy and oneDNN's reorder run instead: every
  // output and gradient must be the same bits. The inputs include values exactly halfway
  // between two bf16 numbers (round to nearest even decides), denormals, negative zeros and
  // widths that leave a partial block of 16 pixels.
  const std::vector<ConvCase> tcases = {
      {{1, 64, 20, 18}, {128, 64, 3, 3}, params(2, 1, 1, 1)},   // 3x3 strided, 4 slices
      {{2, 32, 13, 11}, {48, 32, 3, 3}, params(1, 1, 1, 1)},    // batch 2, 143 pixels
      {{1, 128, 9, 10}, {64, 128, 1, 1}, params(1, 0, 1, 1)},   // 1x1: one 16 x 16 transpose
      {{1, 32, 16, 16}, {32, 32, 2, 2}, params(2, 0, 1, 1)},    // 4 taps
      {{1, 16, 12, 12}, {32, 16, 5, 5}, params(1, 2, 1, 1)},    // 25 taps: the scalar copy
      {{1, 24, 10, 10}, {32, 24, 3, 3}, params(1, 1, 1, 1)},    // 24 channels: oneDNN's reorder
      {{1, 3, 40, 40}, {64, 3, 7, 7}, params(2, 3, 1, 1)},      // stem
  };
  // Random floats with every 7th a bf16 tie, every 11th a denormal, every 13th a negative zero.
  const auto input = [](const Shape& shape, uint64_t seed) {
    std::vector<double> v = drcnn::test::strided_values(drcnn::test::random_tensor(shape, seed, DType::Float32));
    std::vector<float> f(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      uint32_t bits;
      float x = float(v[i]);
      std::memcpy(&bits, &x, 4);
      if (i % 7 == 3) bits = (bits & 0xffff0000u) | 0x8000u;  // halfway: ties to even
      if (i % 11 == 5) bits = (bits & 0x80000000u) | (bits & 0x007fffffu);  // denormal
      if (i % 13 == 6) bits = 0x80000000u;
      std::memcpy(&f[i], &bits, 4);
    }
    return Tensor::from_vector<float>(f, shape);
  };
  std::vector<ops::CpuPrecision> precisions{ops::CpuPrecision::Float32};
  if (ops::cpu_has_bf16()) precisions.push_back(ops::CpuPrecision::BFloat16);
  const int before = drcnn::cpu_threads();
  for (const int threads : {1, 2}) {
    drcnn::set_cpu_threads(threads);
    for (const ops::CpuPrecision prec : precisions) {
      const PrecisionScope scope(prec);
      for (const ConvCase& c : tcases) {
        const Tensor x = input(c.x, 101), w = input(c.w, 102);
        const Tensor b = drcnn::test::random_tensor({c.w[0]}, 103, DType::Float32);
        Tensor out[2], go;
        ops::Conv2dGrads g[2];
        for (const bool fast : {true, false}) {
          ops::set_cpu_fast_copies(fast);
          ops::Conv2dSaved saved;
          out[fast] = ops::conv2d(x, w, b, c.p, &saved);
          if (!go.defined()) go = input(out[fast].shape(), 104);
          g[fast] = ops::conv2d_backward(go, x, w, c.p, {}, saved);
        }
        ops::set_cpu_fast_copies(true);
        INFO(ops::cpu_precision_name(prec) << " threads " << threads << " x " << fmt::format("{}", c.x) << " w "
                                           << fmt::format("{}", c.w));
        CHECK(drcnn::test::bitwise_equal(out[0], out[1]));
        CHECK(drcnn::test::bitwise_equal(g[0].input, g[1].input));
        CHECK(drcnn::test::bitwise_equal(g[0].weight, g[1].weight));
        CHECK(drcnn::test::bitwise_equal(g[0].bias, g[1].bias));
      }
    }
  }
  drcnn::set_cpu_threads(before);
}
