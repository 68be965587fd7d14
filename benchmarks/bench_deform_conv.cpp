// Deformable convolution benchmarks (CPU): the 3x3 conv of a ResNet stage-3 (layer3) bottleneck,
// 256 -> 256 channels, stride 1, padding 1, one offset group, as DCNv2 (with a mask), float32,
// one image, on the stride-16 map of an 800x1088 image (50x68) and of a 400x544 image (25x34);
// and the plain conv2d of the same shape for the ratio. tools/bench_deform_conv_torch.py times
// torchvision.ops.deform_conv2d on the same shapes (its own random values: the values only
// matter through how many samples fall outside the map, and both draw offsets uniform in
// [-2, 2] and masks uniform in [0, 1]).
// Counters: macs (multiply-adds of the GEMM per second; the backward does twice the forward's).
// args: {map height, map width, threads}. docs/kernels/deform-conv.md has the table.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "drcnn/core/generator.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/deform_conv.h"
#include "drcnn/ops/elementwise.h"

namespace {

using drcnn::Shape;
using drcnn::Tensor;

constexpr int64_t kChannels = 256;

struct ThreadScope {
  explicit ThreadScope(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadScope() { drcnn::set_cpu_threads(0); }
};

struct Inputs {
  Tensor x, offset, mask, weight, bias, grad_out;
};

Inputs make_inputs(int64_t h, int64_t w) {
  drcnn::Generator gen(17);
  Inputs in;
  in.x = Tensor::rand(Shape{1, kChannels, h, w}, gen);
  in.offset = drcnn::ops::add(drcnn::ops::mul(Tensor::rand(Shape{1, 18, h, w}, gen), 4.0), -2.0);
  in.mask = Tensor::rand(Shape{1, 9, h, w}, gen);
  in.weight = drcnn::ops::mul(Tensor::rand(Shape{kChannels, kChannels, 3, 3}, gen), 0.05);
  in.bias = Tensor::rand(Shape{kChannels}, gen);
  in.grad_out = Tensor::rand(Shape{1, kChannels, h, w}, gen);
  return in;
}

double macs(int64_t h, int64_t w) { return double(kChannels * kChannels * 9 * h * w); }

void BM_DeformConvForward(benchmark::State& state) {
  const Inputs in = make_inputs(state.range(0), state.range(1));
  ThreadScope threads(int(state.range(2)));
  for (auto _ : state) {
    Tensor y = drcnn::ops::deform_conv2d(in.x, in.offset, in.mask, in.weight, in.bias, {1, 1}, {1, 1});
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["macs"] =
      benchmark::Counter(macs(state.range(0), state.range(1)) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_DeformConvBackward(benchmark::State& state) {
  const Inputs in = make_inputs(state.range(0), state.range(1));
  ThreadScope threads(int(state.range(2)));
  drcnn::ops::DeformConv2dParams p;
  p.padding = {1, 1};
  for (auto _ : state) {
    const auto g = drcnn::ops::deform_conv2d_backward(in.grad_out, in.x, in.offset, in.mask, in.weight, p);
    benchmark::DoNotOptimize(g.input.data_ptr());
  }
  state.counters["macs"] = benchmark::Counter(2 * macs(state.range(0), state.range(1)) * double(state.iterations()),
                                              benchmark::Counter::kIsRate);
}

void BM_PlainConvForward(benchmark::State& state) {
  const Inputs in = make_inputs(state.range(0), state.range(1));
  ThreadScope threads(int(state.range(2)));
  drcnn::ops::Conv2dParams p;
  p.padding = {1, 1};
  for (auto _ : state) {
    Tensor y = drcnn::ops::conv2d(in.x, in.weight, in.bias, p);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["macs"] =
      benchmark::Counter(macs(state.range(0), state.range(1)) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void args(benchmark::internal::Benchmark* b) {
  for (int64_t t : {1, 2}) {
    b->Args({50, 68, t});
    b->Args({25, 34, t});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
}  // namespace

BENCHMARK(BM_DeformConvForward)->Apply(args);
BENCHMARK(BM_DeformConvBackward)->Apply(args);
BENCHMARK(BM_PlainConvForward)->Apply(args);
BENCHMARK_MAIN();
