// conv2d on the CPU for every distinct convolution of ResNet-50 (torchvision layout: stride on
// the 3x3) at a 320x320 input, batch 1, float32, no bias: forward, and forward + backward
// (grad_input and grad_weight, as in training; ResNet convs have no bias).
//
// Napkin math: forward = 2 * N * Cout * Ho * Wo * (Cin / groups) * kh * kw flops; the
// backward computes two products of the same size, so forward + backward = 3x that.
// Counters: "flops" is GFLOP/s over wall-clock time; "uses" is how many times the shape
// occurs in ResNet-50 (for a network total = sum of uses x time).
// The last argument is the CPU thread count. PyTorch on the same shapes:
// tools/bench_conv_torch.py (prints the comparison when given this program's JSON output).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "drcnn/core/generator.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/conv.h"

namespace {

using drcnn::Generator;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;

struct ConvShape {
  const char* name;
  int64_t cin, h, cout, k, stride, uses;  // square input h x h, kernel k x k, padding k / 2
};

// ResNet-50 at 320x320: stem 160x160, res2 80x80, res3 40x40, res4 20x20, res5 10x10.
// Same list (names and order) as tools/bench_conv_torch.py.
const std::vector<ConvShape> kShapes = {
    {"stem_7x7_3_64_s2", 3, 320, 64, 7, 2, 1},
    {"res2_1x1_64_64", 64, 80, 64, 1, 1, 1},
    {"res2_1x1_256_64", 256, 80, 64, 1, 1, 2},
    {"res2_3x3_64_64", 64, 80, 64, 3, 1, 3},
    {"res2_1x1_64_256", 64, 80, 256, 1, 1, 4},  // conv3 x3 + downsample
    {"res3_1x1_256_128", 256, 80, 128, 1, 1, 1},
    {"res3_3x3_128_128_s2", 128, 80, 128, 3, 2, 1},
    {"res3_1x1_128_512", 128, 40, 512, 1, 1, 4},
    {"res3_ds_1x1_256_512_s2", 256, 80, 512, 1, 2, 1},
    {"res3_1x1_512_128", 512, 40, 128, 1, 1, 3},
    {"res3_3x3_128_128", 128, 40, 128, 3, 1, 3},
    {"res4_1x1_512_256", 512, 40, 256, 1, 1, 1},
    {"res4_3x3_256_256_s2", 256, 40, 256, 3, 2, 1},
    {"res4_1x1_256_1024", 256, 20, 1024, 1, 1, 6},
    {"res4_ds_1x1_512_1024_s2", 512, 40, 1024, 1, 2, 1},
    {"res4_1x1_1024_256", 1024, 20, 256, 1, 1, 5},
    {"res4_3x3_256_256", 256, 20, 256, 3, 1, 5},
    {"res5_1x1_1024_512", 1024, 20, 512, 1, 1, 1},
    {"res5_3x3_512_512_s2", 512, 20, 512, 3, 2, 1},
    {"res5_1x1_512_2048", 512, 10, 2048, 1, 1, 3},
    {"res5_ds_1x1_1024_2048_s2", 1024, 20, 2048, 1, 2, 1},
    {"res5_1x1_2048_512", 2048, 10, 512, 1, 1, 2},
    {"res5_3x3_512_512", 512, 10, 512, 3, 1, 2},
};

struct ThreadScope {
  explicit ThreadScope(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadScope() { drcnn::set_cpu_threads(0); }
};

// args: {shape index, backward (0/1), threads}
void BM_Conv2d(benchmark::State& state) {
  const ConvShape& s = kShapes[size_t(state.range(0))];
  const bool backward = state.range(1) != 0;
  ThreadScope threads(int(state.range(2)));
  ops::Conv2dParams p;
  p.stride = {s.stride, s.stride};
  p.padding = {s.k / 2, s.k / 2};
  Generator gen(1);
  const Tensor x = Tensor::randn(Shape{1, s.cin, s.h, s.h}, gen);
  const Tensor w = Tensor::randn(Shape{s.cout, s.cin, s.k, s.k}, gen);
  const ops::Conv2dGeometry g = ops::conv2d_geometry(x.shape(), w.shape(), p);
  const Tensor go = Tensor::randn(Shape{1, s.cout, g.ho, g.wo}, gen);
  for (auto _ : state) {
    Tensor y = ops::conv2d(x, w, Tensor(), p);
    benchmark::DoNotOptimize(y.data_ptr());
    if (backward) {
      const ops::Conv2dGrads r = ops::conv2d_backward(go, x, w, p, {true, true, false});
      benchmark::DoNotOptimize(r.input.data_ptr());
      benchmark::DoNotOptimize(r.weight.data_ptr());
    }
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(g.macs()) * (backward ? 3.0 : 1.0);
  state.counters["flops"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["uses"] = double(s.uses);
  state.SetLabel(std::string(s.name) + (backward ? " fwd+bwd" : " fwd"));
}

void args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int bwd : {0, 1})
      for (int64_t i = 0; i < int64_t(kShapes.size()); ++i) b->Args({i, bwd, threads});
}
// "min" over repetitions (--benchmark_repetitions=R) resists noise from other processes.
BENCHMARK(BM_Conv2d)
    ->Apply(args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
}  // namespace

BENCHMARK_MAIN();
