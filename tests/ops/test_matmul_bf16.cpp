// The opt-in bfloat16 matmul (ops/cpu_precision.h; kernels/cpu/gemm.cpp + gemm_bf16.cpp) against
// the float64 reference, with the per-element bound of tests/ops/test_conv_bf16.cpp: each operand
// rounded once to bf16 (u = 2^-8) and the K exact bf16 products summed in float32 (v = 2^-24):
//   |c - exact| <= (2u + u^2) S + (K + 1) v (1 + u)^2 S,  S = sum_l |a_il| |b_lj|,
// and, against the reference on operands rounded by this test (bf16_round), the float32 term
// alone, which the float32 GEMM misses. Also: layouts (transposed, padded, batched, broadcast
// batch), several 256-row blocks, alpha/beta of the GEMM launch, 1 vs 2 threads bitwise.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/allclose.h"
#include "common/random.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/cpu_precision.h"
#include "drcnn/ops/launch.h"
#include "drcnn/ops/matmul.h"
#include "reference/reference.h"

using drcnn::DType;
using drcnn::Tensor;
using drcnn::test::random_tensor;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
constexpr double kU = 1.0 / 256, kV = 1.0 / 16777216;

float bf16_round(float f) {  // nearest, ties to even (finite inputs)
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  float r;
  std::memcpy(&r, &bits, 4);
  return r;
}
ref::RefTensor rounded(ref::RefTensor t) {
  for (double& v : t.data) v = bf16_round(float(v));
  return t;
}
ref::RefTensor absolute(ref::RefTensor t) {
  for (double& v : t.data) v = std::abs(v);
  return t;
}

struct PrecisionScope {
  ops::CpuPrecision before = ops::cpu_precision();
  explicit PrecisionScope(ops::CpuPrecision p) { ops::set_cpu_precision(p); }
  ~PrecisionScope() { ops::set_cpu_precision(before); }
};

/// Elements of c outside expected +- (products + (K + 1) v (1 + u)^2) * S.
int64_t outside(const Tensor& c, const ref::RefTensor& expected, const ref::RefTensor& s, int64_t k, double products) {
  const std::vector<double> got = drcnn::test::strided_values(c);
  REQUIRE(got.size() == expected.data.size());
  const double rel = products + double(k + 1) * kV * (1 + kU) * (1 + kU);
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - expected.data[i]) <= rel * s.data[i] + double(k) * 1.2e-38)) ++bad;
  return bad;
}

void check_bf16_matmul(const Tensor& a, const Tensor& b, const char* what) {
  INFO(what << ": a " << fmt::format("{}", a.shape()) << " b " << fmt::format("{}", b.shape()));
  const int64_t k = a.size(-1);
  const auto ra = ref::from_tensor(a), rb = ref::from_tensor(b);
  const auto s = ref::matmul(absolute(ra), absolute(rb));
  Tensor c;
  {
    const PrecisionScope bf16(ops::CpuPrecision::BFloat16);
    c = ops::matmul(a, b);
  }
  CHECK(outside(c, ref::matmul(ra, rb), s, k, 2 * kU + kU * kU) == 0);
  const auto exact_on_rounded = ref::matmul(rounded(ra), rounded(rb));
  CHECK(outside(c, exact_on_rounded, s, k, 0.0) == 0);
  // The float32 product misses the second bound: the check tells the two apart.
  CHECK(outside(ops::matmul(a, b), exact_on_rounded, s, k, 0.0) > 0);
}
}  // namespace

TEST_CASE("ops/matmul bf16: within bf16's error bound of the float64 reference, layouts and blocks",
          "[ops][cpu][bf16]") {
  if (!ops::cpu_has_bf16()) {
    WARN("this CPU has no AVX-512 BF16 (or this build no oneDNN): bf16 matmul is refused, not exercised");
    CHECK_THROWS(ops::set_cpu_precision(ops::CpuPrecision::BFloat16));
    return;
  }
  check_bf16_matmul(random_tensor<float>({300, 70}, 1), random_tensor<float>({70, 33}, 2), "2 row blocks");
  check_bf16_matmul(random_tensor<float>({70, 600}, 3).transpose(0, 1), random_tensor<float>({70, 40}, 4),
                    "transposed A, 3 blocks");
  check_bf16_matmul(random_tensor<float>({128, 300}, 5), random_tensor<float>({64, 300}, 6).transpose(0, 1),
                    "linear-like (B transposed)");
  check_bf16_matmul(random_tensor<float>({20, 37}, 7), random_tensor<float>({40, 50}, 8).narrow(0, 1, 37),
                    "padded B");
  check_bf16_matmul(random_tensor<float>({3, 17, 29}, 9), random_tensor<float>({3, 29, 11}, 10), "batched");
  check_bf16_matmul(random_tensor<float>({1, 17, 29}, 11), random_tensor<float>({4, 29, 11}, 12), "broadcast A");
  check_bf16_matmul(random_tensor<float>({5, 2000}, 13), random_tensor<float>({2000, 3}, 14), "long reduction");
  // float64 never takes the bf16 path.
  const Tensor a = random_tensor<double>({9, 7}, 15), b = random_tensor<double>({7, 5}, 16);
  const Tensor c64 = ops::matmul(a, b);
  const PrecisionScope bf16(ops::CpuPrecision::BFloat16);
  CHECK(drcnn::test::bitwise_equal(c64, ops::matmul(a, b)));
}

TEST_CASE("ops/gemm bf16: alpha and beta of the launch", "[ops][cpu][bf16]") {
  if (!ops::cpu_has_bf16()) {
    WARN("this CPU has no AVX-512 BF16: not exercised");
    return;
  }
  // C = 2 A B + 1 * C0 (alpha a power of two: exact scaling; the beta sum adds one more float32
  // rounding of |2 AB| + |C0|, covered by 2 extra terms of v on S' = 2 S + |C0|).
  const int64_t m = 260, n = 24, k = 50;
  const Tensor a = random_tensor<float>({m, k}, 21), b = random_tensor<float>({k, n}, 22);
  const Tensor c0 = random_tensor<float>({m, n}, 23);
  Tensor c = c0.clone();
  ops::GemmLaunch<float> l;
  l.m = m;
  l.n = n;
  l.k = k;
  l.alpha = 2;
  l.beta = 1;
  l.a = static_cast<const float*>(a.data_ptr());
  l.lda = k;
  l.b = static_cast<const float*>(b.data_ptr());
  l.ldb = n;
  l.c = static_cast<float*>(c.data_ptr());
  l.ldc = n;
  l.bf16 = true;
  ops::cpu::gemm<float>(l);
  const auto ra = ref::from_tensor(a), rb = ref::from_tensor(b), rc = ref::from_tensor(c0);
  const auto ab = ref::matmul(ra, rb), s = ref::matmul(absolute(ra), absolute(rb));
  const std::vector<double> got = drcnn::test::strided_values(c);
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double exact = 2 * ab.data[i] + rc.data[i];
    const double tol = 2 * (2 * kU + kU * kU) * s.data[i] + double(k + 3) * kV * (1 + kU) * (1 + kU) *
                                                                 (2 * s.data[i] + std::abs(rc.data[i]));
    if (!(std::abs(got[i] - exact) <= tol)) ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("ops/matmul bf16: bitwise identical for 1 and 2 threads", "[ops][cpu][bf16]") {
  if (!ops::cpu_has_bf16()) {
    WARN("this CPU has no AVX-512 BF16: not exercised");
    return;
  }
  const PrecisionScope bf16(ops::CpuPrecision::BFloat16);
  const int before = drcnn::cpu_threads();
  const Tensor a = random_tensor<float>({700, 300}, 31), b = random_tensor<float>({200, 300}, 32);
  const Tensor g = random_tensor<float>({700, 200}, 33);
  Tensor c[2], dw[2];
  for (int t = 0; t < 2; ++t) {
    drcnn::set_cpu_threads(t + 1);
    c[t] = ops::matmul(a, b.transpose(0, 1));       // linear forward
    dw[t] = ops::matmul(g.transpose(0, 1), a);      // its weight gradient (transposed A, K = 700)
  }
  drcnn::set_cpu_threads(before);
  CHECK(drcnn::test::bitwise_equal(c[0], c[1]));
  CHECK(drcnn::test::bitwise_equal(dw[0], dw[1]));
}

TEST_CASE("ops/matmul bf16: the AVX-512 rounding of the operands gives the scalar loop's bits", "[ops][cpu][bf16]") {
  // kernels/cpu/gemm_bf16.cpp rounds the float32 operands to bf16 16 at a time (AVX-512F) with
  // the scalar loop's integer formula; ops::set_cpu_fast_copies(false) runs the scalar loop
  // alone. Operands with values halfway between two bf16 numbers (ties to even), denormals,
  // -0, infinities and a signalling NaN (made quiet), sizes that leave 1..15 for the scalar tail.
  if (!ops::cpu_has_bf16()) {
    WARN("this CPU has no AVX-512 BF16: not exercised");
    return;
  }
  const PrecisionScope bf16(ops::CpuPrecision::BFloat16);
  const auto operand = [](int64_t rows, int64_t cols, uint64_t seed, bool specials) {
    std::vector<double> v = drcnn::test::strided_values(random_tensor<float>({rows, cols}, seed));
    std::vector<float> f(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      uint32_t bits;
      float x = float(v[i]);
      std::memcpy(&bits, &x, 4);
      if (i % 5 == 2) bits = (bits & 0xffff0000u) | 0x8000u;                  // halfway
      if (i % 9 == 4) bits = (bits & 0x80000000u) | (bits & 0x007fffffu);     // denormal
      if (i % 17 == 8) bits = 0x80000000u;                                     // -0
      if (specials && i == 40) bits = 0x7f800000u;                             // +inf
      if (specials && i == 77) bits = 0x7f800123u;                             // signalling NaN
      std::memcpy(&f[i], &bits, 4);
    }
    return Tensor::from_vector<float>(f, {rows, cols});
  };
  for (const bool specials : {false, true}) {
    const Tensor a = operand(37, 53, 41, specials), b = operand(29, 53, 42, false);
    Tensor c[2];
    for (const bool fast : {false, true}) {
      ops::set_cpu_fast_copies(fast);
      c[fast] = ops::matmul(a, b.transpose(0, 1));
    }
    ops::set_cpu_fast_copies(true);
    INFO("specials " << specials);
    CHECK(drcnn::test::bitwise_equal(c[0], c[1]));
  }
}
