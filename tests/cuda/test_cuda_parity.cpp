// CPU vs CUDA parity for every CUDA entry point of the tensor core. These run only where a
// CUDA device exists; elsewhere the test main exits with 77 and ctest reports them skipped.
// Tolerances: the same bodies run on both sides, but nvcc contracts a*b+c into FMAs by
// default (the host compiler does not), so float results may differ in the last bits:
// 4 ulp-ish relative (1e-6 f32, 1e-14 f64) unless stated exact.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <vector>

#include "drcnn/core/allocator.h"
#include "common/gpu_order_emulation.h"
#include "common/device_compare.h"
#include "common/random.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/device_checks.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/matmul.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/ops/sort.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Generator;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_close;
using drcnn::test::require_device_equal;

namespace {
const Device kGpu = Device::cuda(0);

}  // namespace

TEST_CASE("cuda/tensor: device round trip, views and copies", "[cuda]") {
  Generator g(7);
  const Tensor x = Tensor::randn({5, 6, 7}, g);
  const Tensor xg = x.to(kGpu);
  require_device_equal(xg, x);
  require_device_equal(xg.transpose(0, 2).contiguous(), x.transpose(0, 2).contiguous());
  require_device_equal(xg.slice(1, 1, 6, 2).clone(), x.slice(1, 1, 6, 2).clone());
  require_device_equal(xg.to(DType::Float64), x.to(DType::Float64));
  require_device_equal(xg.to(DType::Int32), x.to(DType::Int32));
  require_device_equal(xg.to(DType::Float16).to(DType::Float32), x.to(DType::Float16).to(DType::Float32));
  require_device_equal(xg.to(DType::BFloat16).to(DType::Float32), x.to(DType::BFloat16).to(DType::Float32));
  Tensor y = Tensor::zeros({5, 6, 7}, DType::Float32, kGpu);
  y.copy_(x);  // host -> device copy_ with a device destination
  require_device_equal(y, x);
  require_device_equal(Tensor::full({3, 3}, 2.5, DType::Float64, kGpu), Tensor::full({3, 3}, 2.5, DType::Float64));
  require_device_equal(Tensor::arange(-3.0, 7.0, 0.5, DType::Float32, kGpu), Tensor::arange(-3.0, 7.0, 0.5, DType::Float32));
  // start + i * step with inexact products: two roundings on both backends (no FMA on the GPU).
  require_device_equal(Tensor::arange(0.1, 5.0, 0.3, DType::Float64, kGpu), Tensor::arange(0.1, 5.0, 0.3, DType::Float64));
  require_device_equal(Tensor::arange(0.1, 50.0, 0.7, DType::Int64, kGpu), Tensor::arange(0.1, 50.0, 0.7, DType::Int64));
}

TEST_CASE("cuda/random: same numbers as the CPU for the same generator state", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator gc(123, 5), gg(123, 5);
    // Uniform draws use only integer ops and one exact scaling: bitwise equal.
    require_device_equal(Tensor::rand({1000}, gg, dt, kGpu), Tensor::rand({1000}, gc, dt));
    // Normal draws go through log/cos, whose CUDA and glibc versions differ by an ulp or two.
    require_device_close(Tensor::randn({1000}, gg, dt, kGpu), Tensor::randn({1000}, gc, dt), 1e-5, 1e-6);
    REQUIRE(gg.offset == gc.offset);
  }
}

TEMPLATE_TEST_CASE("cuda/elementwise: unary, binary, where match the CPU", "[cuda]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const double rtol = sizeof(TestType) == 4 ? 1e-6 : 1e-14;
  Generator g(11);
  const Tensor a = Tensor::randn({4, 1, 9}, g, dt), b = Tensor::rand({3, 9}, g, dt);
  const Tensor ag = a.to(kGpu), bg = b.to(kGpu);
  require_device_close(ag + bg, a + b, rtol, 0);
  require_device_close(ag - bg, a - b, rtol, 0);
  require_device_close(ag * bg, a * b, rtol, 0);
  require_device_close(ag / bg, a / b, rtol, 0);
  require_device_close(ops::pow(bg, ops::abs(ag)), ops::pow(b, ops::abs(a)), 1e-5, 1e-12);
  require_device_close(ops::maximum(ag, bg), ops::maximum(a, b), 0, 0);
  require_device_close(ops::minimum(ag, bg), ops::minimum(a, b), 0, 0);
  require_device_equal(ops::lt(ag, bg), ops::lt(a, b));
  require_device_equal(ops::ge(ag, bg), ops::ge(a, b));
  require_device_close(ops::exp(ag), ops::exp(a), 1e-5, 0);
  require_device_close(ops::log(bg), ops::log(b), 1e-5, 1e-7);
  require_device_close(ops::sqrt(bg), ops::sqrt(b), rtol, 0);
  require_device_close(ops::sigmoid(ag), ops::sigmoid(a), 1e-5, 0);
  require_device_equal(ops::relu(ag), ops::relu(a));
  require_device_equal(ops::abs(ag), ops::abs(a));
  require_device_equal(ops::neg(ag), ops::neg(a));
  require_device_equal(ops::clamp(ag, -0.5, 0.5), ops::clamp(a, -0.5, 0.5));
  require_device_close(ops::mul(ag, 3.0), ops::mul(a, 3.0), rtol, 0);
  require_device_close(ops::add(ag, 3.0), ops::add(a, 3.0), rtol, 0);
  require_device_close(ops::pow(bg, 2.5), ops::pow(b, 2.5), 1e-5, 1e-12);
  require_device_close(ops::where(ops::gt(ag, 0.0), ag, bg), ops::where(ops::gt(a, 0.0), a, b), 0, 0);
  require_device_close(ops::relu_backward(bg.expand({4, 3, 9}), ag), ops::relu_backward(b.expand({4, 3, 9}), a), 0, 0);
  require_device_close(ops::sigmoid_backward(ag, bg), ops::sigmoid_backward(a, b), rtol, 0);
}

TEMPLATE_TEST_CASE("cuda/reduce: sums, means, extrema match the CPU", "[cuda]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  Generator g(3);
  const Tensor x = Tensor::randn({37, 129, 5}, g, dt);
  const Tensor xg = x.to(kGpu);
  // Same body, same fixed chunking, no multiply-add in the compensated sum: exact.
  for (int d = 0; d < 3; ++d) {
    require_device_equal(ops::sum(xg, d), ops::sum(x, d));
    require_device_equal(ops::max(xg, d), ops::max(x, d));
    require_device_equal(ops::min(xg, d), ops::min(x, d));
    require_device_equal(ops::argmax(xg, d), ops::argmax(x, d));
    require_device_equal(ops::argmin(xg, d), ops::argmin(x, d));
    require_device_equal(ops::mean(xg, d), ops::mean(x, d));
  }
  // Full reductions: stage 1 is 6 chunks of 4096, which the GPU reduces by blocks
  // (ops/detail/reduce_body.h, ReduceBlockBody): extrema exact; the sum is compensated in
  // another order than the CPU's, both within eps |S| + n eps^2 sum|x| of the exact sum
  // (tests/ops/test_reduce.cpp), so they differ by at most twice that.
  require_device_equal(ops::max(xg), ops::max(x));
  require_device_equal(ops::min(xg), ops::min(x));
  const double eps = std::numeric_limits<TestType>::epsilon(), n = double(x.numel());
  const double sum_abs = ops::sum(ops::abs(x.to(DType::Float64))).item<double>();
  require_device_close(ops::sum(xg), ops::sum(x), 2 * eps, 2 * n * eps * eps * sum_abs);
  require_device_close(ops::mean(xg), ops::mean(x), 2 * eps + eps, (2 * n * eps * eps * sum_abs) / n);
}

TEMPLATE_TEST_CASE("cuda/reduce: few long outputs (block per output) give the host emulation's bits", "[cuda]",
                   float, double) {
  // kernels/cuda/reduce.cu reduces outputs with R >= 1024, at most 16384 of them, one block
  // each; detail::reduce_block_host runs the same lanes and tree on the host, and
  // tests/ops/test_reduce.cpp proves that against float64. So: bits equal to the emulation,
  // extrema equal to the CPU body, sums within twice the compensated bound of the CPU's.
  const DType dt = drcnn::dtype_of_v<TestType>;
  using K = ops::ReduceKind;
  const double eps = std::numeric_limits<TestType>::epsilon();
  uint64_t seed = 70;
  for (const drcnn::Shape& shape :
       {drcnn::Shape{3, 270000, 1}, drcnn::Shape{2, 5000, 3}, drcnn::Shape{40, 1024, 1}, drcnn::Shape{1, 1000000, 1}}) {
    std::vector<double> v = drcnn::test::random_values(shape.numel(), seed++, -2, 2);
    for (size_t i = 0; i < v.size(); i += 7) v[i] = std::round(v[i] * 4) / 4;  // ties
    const Tensor x = Tensor::from_vector<double>(v, shape).to(dt);
    const Tensor xg = x.to(kGpu);
    INFO(fmt::format("shape {}", shape));
    require_device_equal(ops::sum(xg, 1), drcnn::test::block_reduce(K::Sum, x));
    require_device_equal(ops::mean(xg, 1), drcnn::test::block_reduce(K::Mean, x));
    require_device_equal(ops::max(xg, 1), drcnn::test::block_reduce(K::Max, x));
    require_device_equal(ops::argmin(xg, 1), drcnn::test::block_reduce(K::ArgMin, x));
    require_device_equal(ops::max(xg, 1), ops::max(x, 1));
    require_device_equal(ops::min(xg, 1), ops::min(x, 1));
    require_device_equal(ops::argmax(xg, 1), ops::argmax(x, 1));
    require_device_equal(ops::argmin(xg, 1), ops::argmin(x, 1));
    double sum_abs = 0;
    for (double e : v) sum_abs += std::abs(double(TestType(e)));
    const double R = double(shape[1]);
    require_device_close(ops::sum(xg, 1), ops::sum(x, 1), 2 * eps, 2 * R * eps * eps * sum_abs);
  }
  // NaNs in two lanes, and two in one lane: the first (by index) wins, as on the CPU.
  Tensor y = Tensor::zeros({2, 5000}, dt);
  y.narrow(1, 3000, 1).fill_(NAN);
  y.narrow(1, 4097, 1).fill_(NAN);
  y.narrow(1, 300, 1).select(0, 1).fill_(NAN);  // row 1: two NaNs in lane 44 (300, 556)
  y.narrow(1, 556, 1).select(0, 1).fill_(NAN);
  require_device_equal(ops::argmax(y.to(kGpu), 1), ops::argmax(y, 1));
  require_device_equal(ops::max(y.to(kGpu), 1), ops::max(y, 1));
  // Integers: exact.
  const Tensor xi = drcnn::test::random_tensor({3, 4000, 2}, 9, DType::Int64, -3, 3);
  require_device_equal(ops::sum(xi.to(kGpu), 1), ops::sum(xi, 1));
  require_device_equal(ops::argmax(xi.to(kGpu), 1), ops::argmax(xi, 1));
}

TEMPLATE_TEST_CASE("cuda/matmul: cuBLAS matches Eigen in every layout", "[cuda]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  const double rtol = sizeof(TestType) == 4 ? 1e-5 : 1e-12;  // different summation orders
  Generator g(5);
  const Tensor a = Tensor::randn({65, 33}, g, dt), b = Tensor::randn({33, 17}, g, dt);
  require_device_close(ops::matmul(a.to(kGpu), b.to(kGpu)), ops::matmul(a, b), rtol, 1e-5);
  const Tensor at = Tensor::randn({33, 65}, g, dt), bt = Tensor::randn({17, 33}, g, dt);
  require_device_close(ops::matmul(at.to(kGpu).transpose(0, 1), bt.to(kGpu).transpose(0, 1)),
                ops::matmul(at.transpose(0, 1), bt.transpose(0, 1)), rtol, 1e-5);
  const Tensor ba = Tensor::randn({3, 8, 6}, g, dt), bb = Tensor::randn({1, 6, 4}, g, dt);
  require_device_close(ops::matmul(ba.to(kGpu), bb.to(kGpu)), ops::matmul(ba, bb), rtol, 1e-5);
  const Tensor w = Tensor::randn({5, 33}, g, dt), bias = Tensor::randn({5}, g, dt);
  require_device_close(ops::linear(a.to(kGpu), w.to(kGpu), bias.to(kGpu)), ops::linear(a, w, bias), rtol, 1e-5);
  // Empty inner dimension: C must be zeros (cuBLAS is not trusted with k == 0), also batched.
  const Tensor e0 = Tensor::empty({3, 4, 0}, dt), e1 = Tensor::empty({3, 0, 5}, dt);
  require_device_equal(ops::matmul(e0.to(kGpu), e1.to(kGpu)), ops::matmul(e0, e1));
  require_device_equal(ops::matmul(e0.to(kGpu).select(0, 0), e1.to(kGpu).select(0, 0)), Tensor::zeros({4, 5}, dt));
}

TEST_CASE("cuda/index: gather, index_select, scatter_add, index_add match the CPU", "[cuda]") {
  Generator g(9);
  const Tensor x = Tensor::randn({6, 7}, g, DType::Float64);
  const Tensor idx = Tensor::from_vector<int64_t>({3, 0, 5, 5, 1}, {5});
  require_device_equal(ops::index_select(x.to(kGpu), 0, idx.to(kGpu)), ops::index_select(x, 0, idx));
  const Tensor gidx = Tensor::from_vector<int64_t>({0, 6, 2, 2, 1, 1, 5, 4, 3, 0, 0, 0}, {6, 2});
  require_device_equal(ops::gather(x.to(kGpu), 1, gidx.to(kGpu)), ops::gather(x, 1, gidx));
  const Tensor src = Tensor::randn({5, 7}, g, DType::Float64);
  // Atomics reorder the additions on the GPU: f64 rounding differences only.
  require_device_close(ops::index_add(x.to(kGpu), 0, idx.to(kGpu), src.to(kGpu)), ops::index_add(x, 0, idx, src), 1e-14, 1e-14);
  const Tensor ssrc = Tensor::randn({6, 2}, g, DType::Float64);
  require_device_close(ops::scatter_add(x.to(kGpu), 1, gidx.to(kGpu), ssrc.to(kGpu)), ops::scatter_add(x, 1, gidx, ssrc),
                1e-14, 1e-14);
  const Tensor bad = Tensor::from_vector<int64_t>({0, 9}, {2});
  // The index check is deferred on CUDA (ops/device_checks.h): it fails at the next check.
  REQUIRE_THROWS_WITH(
      [&] {
        ops::index_select(x.to(kGpu), 0, bad.to(kGpu));
        ops::check_device_errors();
      }(),
      Catch::Contains("index_select: index 9 is out of range"));
  require_device_equal(ops::concat({x.to(kGpu), src.to(kGpu)}, 0), ops::concat({x, src}, 0));
  require_device_equal(ops::stack({x.to(kGpu), x.to(kGpu)}, 1), ops::stack({x, x}, 1));
}

TEST_CASE("cuda/sort: CUB keeps the CPU's stable order, NaN greatest", "[cuda]") {
  const Tensor x = Tensor::from_vector<float>({3, NAN, 1, 3, -0.0f, 0.0f, 2, 1, -INFINITY, NAN}, {2, 5});
  for (bool desc : {false, true}) {
    auto [vg, ig] = ops::sort(x.to(kGpu), -1, desc);
    auto [vc, ic] = ops::sort(x, -1, desc);
    require_device_equal(ig, ic);
    require_device_equal(vg, vc);
  }
  Generator g(1);
  const Tensor r = Tensor::randn({4, 1000}, g).to(DType::Int64);  // many ties
  require_device_equal(ops::argsort(r.to(kGpu), 1, true), ops::argsort(r, 1, true));
  auto [tv, ti] = ops::topk(r.to(kGpu), 10, 1);
  require_device_equal(ti, ops::topk(r, 10, 1).second);
  // kernels/cuda/sort.cu: one row -> device-wide radix sort; <= 64 rows of >= 8192 -> two
  // device-wide passes; otherwise the segmented sort. Rounded values: many ties; NaN, -0.
  std::vector<float> big = Tensor::randn({270000}, g).to_vector<float>();
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = std::round(big[i] * 16) / 16;
    if (i % 997 == 0) big[i] = NAN;
    if (i % 991 == 0) big[i] = -0.0f;
  }
  const Tensor bigf = Tensor::from_vector<float>(big, {270000});
  std::vector<int64_t> big_int(big.size());
  for (size_t i = 0; i < big.size(); ++i) big_int[i] = std::isnan(big[i]) ? 0 : int64_t(big[i] * 16);
  const Tensor bigi = Tensor::from_vector<int64_t>(big_int, {270000});
  for (const drcnn::Shape& shape : {drcnn::Shape{270000}, drcnn::Shape{3, 90000}, drcnn::Shape{30, 9000},
                                    drcnn::Shape{90, 3000}}) {
    for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
      const Tensor x2 = (dt == DType::Int64 ? bigi : bigf.to(dt)).reshape(shape);
      for (bool desc : {false, true}) {
        INFO(fmt::format("shape {}, ", shape) << drcnn::dtype_name(dt) << ", descending " << desc);
        auto [vg, ig] = ops::sort(x2.to(kGpu), -1, desc);
        auto [vc, ic] = ops::sort(x2, -1, desc);
        require_device_equal(ig, ic);
        require_device_equal(vg, vc);
      }
    }
  }
}

TEST_CASE("cuda/allocator: steady state makes no new cudaMalloc", "[cuda]") {
  drcnn::Allocator& alloc = drcnn::cuda_allocator(0);
  for (int i = 0; i < 3; ++i) Tensor::empty({1 << 20}, DType::Float32, kGpu);
  const auto before = alloc.stats();
  for (int i = 0; i < 100; ++i) Tensor::empty({1 << 20}, DType::Float32, kGpu);
  const auto after = alloc.stats();
  REQUIRE(after.raw_allocations == before.raw_allocations);
  REQUIRE(after.bytes_in_use == before.bytes_in_use);
  alloc.empty_cache();
  REQUIRE(alloc.stats().bytes_reserved == alloc.stats().bytes_in_use);
}

TEST_CASE("cuda/index: out-of-range indices are reported lazily, or at once in eager mode", "[cuda]") {
  ops::check_device_errors();
  const Tensor x = Tensor::zeros({4, 3}, DType::Float32, kGpu);
  const Tensor bad = Tensor::from_vector<int64_t>({1, -2, 3}, {3}).to(kGpu);
  const Tensor ok = Tensor::from_vector<int64_t>({1, 2}, {2}).to(kGpu);
  const bool before = ops::eager_device_checks();
  ops::set_eager_device_checks(false);
  // Deferred: the call returns; the error comes with the next device-to-host copy, naming the op.
  CHECK_NOTHROW(ops::index_select(x, 0, bad));
  CHECK(ops::detail::pending_device_checks() == 1);
  const Tensor fine = ops::index_select(x, 0, ok);
  CHECK(ops::detail::pending_device_checks() == 2);
  REQUIRE_THROWS_WITH(fine.to_vector<float>(), Catch::Contains("index_select: index -2 is out of range"));
  CHECK(ops::detail::pending_device_checks() == 0);
  CHECK(fine.to_vector<float>() == std::vector<float>(6, 0.0f));  // checked and clear now
  // scatter_add and index_add the same way.
  Tensor y = Tensor::zeros({4, 3}, DType::Float32, kGpu);
  ops::index_add(y, 0, bad, Tensor::ones({3, 3}, DType::Float32, kGpu));
  REQUIRE_THROWS_WITH(ops::check_device_errors(), Catch::Contains("index_add") && Catch::Contains("-2"));
  // Eager: at once.
  ops::set_eager_device_checks(true);
  REQUIRE_THROWS_WITH(ops::index_select(x, 0, bad), Catch::Contains("index_select: index -2 is out of range"));
  CHECK(ops::detail::pending_device_checks() == 0);
  ops::set_eager_device_checks(before);
}
