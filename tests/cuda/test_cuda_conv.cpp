// CPU vs cuDNN parity of conv2d forward and the three gradients (and the Variable conv2d), in
// both algorithm-choice modes (heuristics, benchmark search), at odd pointer alignments and on a
// nearly full device (fallback); the benchmark search workspace is returned to the device.
// Runs only where a CUDA device exists; elsewhere the test main exits with 77 (skipped).
// Tolerances: both sides sum the same products in different orders (cuDNN's algorithms:
// implicit GEMM, FFT, Winograd...; FMA math, no TF32), inputs uniform in [-1, 1): relative 1e-4
// with an absolute floor of 1e-6 x (terms per sum) in float32 (Winograd/FFT round more than a
// plain dot product), 1e-11 relative / 1e-13 x terms in float64.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "common/conv_params.h"
#include "common/device_compare.h"
#include "common/random.h"
#include "drcnn/autograd/conv.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/core/allocator.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/shape_ops.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_close;

namespace {
const Device kGpu = Device::cuda(0);

ops::Conv2dParams params(int64_t s, int64_t p, int64_t d, int64_t g) { return drcnn::test::conv_params(s, p, d, g); }

/// t on the GPU as a contiguous view one element into its buffer: its data pointer is 4 (f32)
/// or 8 (f64) bytes past a 16-byte boundary, which cuDNN's vectorised paths must not assume.
Tensor misaligned_on_gpu(const Tensor& t) {
  const Tensor padded = ops::concat({Tensor::zeros({1}, t.dtype()), t.reshape({t.numel()})}, 0).to(kGpu);
  Tensor v = padded.narrow(0, 1, t.numel()).reshape(t.shape());
  REQUIRE(v.is_contiguous());
  REQUIRE(reinterpret_cast<std::uintptr_t>(v.data_ptr()) % 16 != 0);
  return v;
}
}  // namespace

TEST_CASE("cuda/conv2d: forward and gradients match the CPU", "[cuda][conv]") {
  struct Case {
    Shape x, w;
    ops::Conv2dParams p;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{2, 3, 33, 29}, {8, 3, 7, 7}, params(2, 3, 1, 1), false},   // stem-like
      {{2, 16, 20, 20}, {16, 16, 3, 3}, params(1, 1, 1, 1), true},
      {{1, 16, 20, 21}, {32, 16, 1, 1}, params(1, 0, 1, 1), true},  // pointwise
      {{1, 16, 20, 21}, {32, 16, 1, 1}, params(2, 0, 1, 1), false}, // downsample 1x1 stride 2
      {{2, 8, 15, 17}, {8, 2, 3, 3}, params(2, 2, 2, 4), true},     // grouped, dilated
      {{1, 8, 12, 12}, {8, 1, 3, 3}, params(1, 1, 1, 8), true},     // depthwise
  };
  uint64_t seed = 1;
  for (const Case& c : cases)
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = drcnn::test::random_tensor(c.x, seed++, dt), w = drcnn::test::random_tensor(c.w, seed++, dt);
      const Tensor b = c.bias ? drcnn::test::random_tensor({c.w[0]}, seed++, dt) : Tensor();
      const Tensor out = ops::conv2d(x, w, b, c.p);
      const Tensor out_g = ops::conv2d(x.to(kGpu), w.to(kGpu), b.defined() ? b.to(kGpu) : Tensor(), c.p);
      const bool f32 = dt == DType::Float32;
      const double rtol = f32 ? 1e-4 : 1e-11, unit = f32 ? 1e-6 : 1e-13;
      const int64_t k = c.w[1] * c.w[2] * c.w[3], pixels = out.size(0) * out.size(2) * out.size(3);
      require_device_close(out_g, out, rtol, unit * double(k));
      const Tensor go = drcnn::test::random_tensor(out.shape(), seed++, dt);
      const auto g = ops::conv2d_backward(go, x, w, c.p);
      const auto gg = ops::conv2d_backward(go.to(kGpu), x.to(kGpu), w.to(kGpu), c.p);
      require_device_close(gg.input, g.input, rtol, unit * double(c.w[0] / c.p.groups * c.w[2] * c.w[3]));
      require_device_close(gg.weight, g.weight, rtol, unit * double(pixels));
      require_device_close(gg.bias, g.bias, rtol, unit * double(pixels));
      // A second call reuses the cached algorithms and must give the same values.
      require_device_close(ops::conv2d(x.to(kGpu), w.to(kGpu), b.defined() ? b.to(kGpu) : Tensor(), c.p), out_g, 0, 0);
    }
}

TEST_CASE("cuda/conv2d: Variable conv2d gradients match the CPU", "[cuda][conv]") {
  const auto p = params(1, 1, 1, 1);
  const Tensor x = drcnn::test::random_tensor({2, 4, 9, 9}, 50, DType::Float64);
  const Tensor w = drcnn::test::random_tensor({6, 4, 3, 3}, 51, DType::Float64);
  const Tensor b = drcnn::test::random_tensor({6}, 52, DType::Float64);
  drcnn::Variable xc(x, true), wc(w, true), bc(b, true);
  drcnn::Variable xg(x.to(kGpu), true), wg(w.to(kGpu), true), bg(b.to(kGpu), true);
  drcnn::sum(drcnn::conv2d(xc, wc, bc, p)).backward();
  drcnn::sum(drcnn::conv2d(xg, wg, bg, p)).backward();
  require_device_close(xg.grad(), xc.grad(), 1e-11, 1e-12);
  require_device_close(wg.grad(), wc.grad(), 1e-11, 1e-12);
  require_device_close(bg.grad(), bc.grad(), 1e-11, 1e-12);
}

TEST_CASE("cuda/conv2d: operands on different devices are an error naming conv2d", "[cuda][conv]") {
  const Tensor x = Tensor::zeros({1, 4, 8, 8});
  const Tensor w = Tensor::zeros({6, 4, 3, 3});
  REQUIRE_THROWS_WITH(ops::conv2d(x.to(kGpu), w), Catch::Contains("conv2d: weight is on cpu but input is on cuda:0"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor::zeros({6}).to(kGpu)), Catch::Contains("conv2d: bias is on cuda:0"));
  REQUIRE_THROWS_WITH(ops::conv2d_backward(Tensor::zeros({1, 6, 6, 6}), x.to(kGpu), w.to(kGpu), {}),
                      Catch::Contains("conv2d_backward: grad_out is on cpu"));
}

namespace {
// Forward and the three gradients of one case on the GPU against the CPU (tolerances as above).
void check_case_against_cpu(const Tensor& x, const Tensor& w, const Tensor& b, const ops::Conv2dParams& p,
                            const Tensor& go) {
  const bool f32 = x.dtype() == DType::Float32;
  const double rtol = f32 ? 1e-4 : 1e-11, unit = f32 ? 1e-6 : 1e-13;
  const Tensor out = ops::conv2d(x, w, b, p);
  const Tensor out_g = ops::conv2d(x.to(kGpu), w.to(kGpu), b.defined() ? b.to(kGpu) : Tensor(), p);
  const int64_t k = w.size(1) * w.size(2) * w.size(3), pixels = out.size(0) * out.size(2) * out.size(3);
  require_device_close(out_g, out, rtol, unit * double(k));
  const auto g = ops::conv2d_backward(go, x, w, p);
  const auto gg = ops::conv2d_backward(go.to(kGpu), x.to(kGpu), w.to(kGpu), p);
  require_device_close(gg.input, g.input, rtol, unit * double(w.size(0) / p.groups * w.size(2) * w.size(3)));
  require_device_close(gg.weight, g.weight, rtol, unit * double(pixels));
  require_device_close(gg.bias, g.bias, rtol, unit * double(pixels));
}
struct BenchmarkMode {
  bool before = drcnn::cuda::cudnn_benchmark();
  explicit BenchmarkMode(bool on) { drcnn::cuda::set_cudnn_benchmark(on); }
  ~BenchmarkMode() { drcnn::cuda::set_cudnn_benchmark(before); }
};
}  // namespace

TEST_CASE("cuda/conv2d: heuristic and benchmark algorithm choice both match the CPU", "[cuda][conv]") {
  uint64_t seed = 300;
  for (bool benchmark : {false, true}) {
    const BenchmarkMode mode(benchmark);
    for (DType dt : {DType::Float32, DType::Float64}) {
      INFO("benchmark " << benchmark << " dtype " << int(dt));
      // Shapes not used by the other tests, so the choice is made here in this mode.
      const Tensor x = drcnn::test::random_tensor({3, 5, 23, 19}, seed++, dt);
      const Tensor w = drcnn::test::random_tensor({7, 5, 3, 3}, seed++, dt);
      const Tensor b = drcnn::test::random_tensor({7}, seed++, dt);
      const auto p = params(1, 1, 1, 1);
      const Tensor go = drcnn::test::random_tensor({3, 7, 23, 19}, seed++, dt);
      check_case_against_cpu(x, w, b, p, go);
    }
  }
}

TEST_CASE("cuda/conv2d: the benchmark search returns its workspace to the device", "[cuda][conv]") {
  const BenchmarkMode mode(true);
  auto& alloc = drcnn::cuda_allocator(0);
  // A 7x7 stem-like shape (FFT and GEMM algorithms ask for workspace) not seen before.
  const Tensor x = drcnn::test::random_tensor({2, 3, 61, 57}, 400, DType::Float32).to(kGpu);
  const Tensor w = drcnn::test::random_tensor({16, 3, 7, 7}, 401, DType::Float32).to(kGpu);
  drcnn::cuda::synchronize(kGpu);
  const auto before = alloc.stats();
  const Tensor y = ops::conv2d(x, w, Tensor(), params(2, 3, 1, 1));
  drcnn::cuda::synchronize(kGpu);
  const auto after = alloc.stats();
  // The search workspace went back to the system: one raw free, and not by a cache flush (a
  // cached search workspace, as before, would make no raw free at all).
  CHECK(after.cache_flushes == before.cache_flushes);
  CHECK(after.raw_frees == before.raw_frees + 1);
  CHECK(y.size(1) == 16);
}

TEST_CASE("cuda/conv2d: operands at odd alignments get their own algorithm choice", "[cuda][conv]") {
  // x and w as views 1 element into their storage (4-byte aligned, not 16): cuDNN must not reuse
  // a choice made for 16-byte aligned buffers of the same shape.
  const auto p = params(1, 1, 1, 1);
  for (int64_t shift : {0, 1, 2}) {
    INFO("shift " << shift);
    const Tensor xs = drcnn::test::random_tensor({2 * 4 * 10 * 10 + 4}, 500 + uint64_t(shift), DType::Float32);
    const Tensor ws = drcnn::test::random_tensor({8 * 4 * 3 * 3 + 4}, 510 + uint64_t(shift), DType::Float32);
    const Tensor x = xs.narrow(0, shift, 2 * 4 * 10 * 10).reshape({2, 4, 10, 10});
    const Tensor w = ws.narrow(0, shift, 8 * 4 * 3 * 3).reshape({8, 4, 3, 3});
    const Tensor xg = xs.to(kGpu).narrow(0, shift, 2 * 4 * 10 * 10).reshape({2, 4, 10, 10});
    const Tensor wg = ws.to(kGpu).narrow(0, shift, 8 * 4 * 3 * 3).reshape({8, 4, 3, 3});
    REQUIRE(reinterpret_cast<uintptr_t>(xg.data_ptr()) % 16 == size_t(shift) * 4);
    require_device_close(ops::conv2d(xg, wg, Tensor(), p), ops::conv2d(x, w, Tensor(), p), 1e-4, 1e-6 * 36);
  }
}

TEST_CASE("cuda/conv2d: runs on a nearly full device by falling back to small-workspace algorithms",
          "[cuda][conv]") {
  auto& alloc = drcnn::cuda_allocator(0);
  const DType dt = DType::Float32;
  auto run = [&](int64_t n, bool benchmark, uint64_t seed) {
    const BenchmarkMode mode(benchmark);
    const Tensor x = drcnn::test::random_tensor({n, 16, 90, 82}, seed, dt);
    const Tensor w = drcnn::test::random_tensor({32, 16, 7, 7}, seed + 1, dt);
    const Tensor go = drcnn::test::random_tensor({n, 32, 45, 41}, seed + 2, dt);
    check_case_against_cpu(x, w, Tensor(), params(2, 3, 1, 1), go);
  };
  // Warm-up at batch 1 (another cache key): loads cuDNN's kernels and handle while memory is free.
  run(1, false, 700);
  run(1, true, 710);
  alloc.empty_cache();
  // Occupy the device until an allocation fails, then give back about 64 MiB: candidates that
  // need more workspace than is left are skipped or fail and the next one runs.
  std::vector<Tensor> hog;
  for (int64_t chunk : {int64_t(1) << 28, int64_t(1) << 24, int64_t(1) << 20}) {
    try {
      for (;;) hog.push_back(Tensor::empty({chunk / 4}, dt, kGpu));
    } catch (const drcnn::Error&) {
    }
  }
  REQUIRE(!hog.empty());
  size_t freed = 0;
  while (freed < (size_t(64) << 20) && !hog.empty()) {
    freed += size_t(hog.back().numel()) * 4;
    hog.pop_back();
  }
  alloc.empty_cache();
  run(2, false, 720);
  run(2, true, 730);
  hog.clear();
  alloc.empty_cache();
}

TEST_CASE("cuda/conv2d: misaligned operands (data pointer off a 16-byte boundary) match the CPU", "[cuda][conv]") {
  struct Case {
    Shape x, w;
    ops::Conv2dParams p;
  };
  const std::vector<Case> cases = {
      {{2, 3, 33, 29}, {8, 3, 7, 7}, params(2, 3, 1, 1)},
      {{2, 16, 20, 20}, {16, 16, 3, 3}, params(1, 1, 1, 1)},
      {{1, 16, 20, 21}, {32, 16, 1, 1}, params(1, 0, 1, 1)},
  };
  uint64_t seed = 300;
  for (const Case& c : cases)
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = drcnn::test::random_tensor(c.x, seed++, dt), w = drcnn::test::random_tensor(c.w, seed++, dt);
      const Tensor b = drcnn::test::random_tensor({c.w[0]}, seed++, dt);
      const Tensor out = ops::conv2d(x, w, b, c.p);
      // The tolerances of the aligned test above (same sums, same algorithms' rounding).
      const bool f32 = dt == DType::Float32;
      const double rtol = f32 ? 1e-4 : 1e-11, unit = f32 ? 1e-6 : 1e-13;
      const int64_t k = c.w[1] * c.w[2] * c.w[3], pixels = out.size(0) * out.size(2) * out.size(3);
      const Tensor xg = misaligned_on_gpu(x), wg = misaligned_on_gpu(w), bg = misaligned_on_gpu(b);
      require_device_close(ops::conv2d(xg, wg, bg, c.p), out, rtol, unit * double(k));
      const Tensor go = drcnn::test::random_tensor(out.shape(), seed++, dt);
      const auto g = ops::conv2d_backward(go, x, w, c.p);
      const auto gg = ops::conv2d_backward(misaligned_on_gpu(go), xg, wg, c.p);
      require_device_close(gg.input, g.input, rtol, unit * double(c.w[0] * c.w[2] * c.w[3]));
      require_device_close(gg.weight, g.weight, rtol, unit * double(pixels));
      require_device_close(gg.bias, g.bias, rtol, unit * double(pixels));
    }
}
