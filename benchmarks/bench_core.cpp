// Core CPU benchmarks: GEMM (Eigen behind drcnn::ops::matmul), elementwise add, full sum.
//
// Napkin math (llm.c style) for the counters:
//   GEMM [M,K] @ [K,N]: 2*M*N*K flops (one multiply + one add per term).
//   add:  2 reads + 1 write of 4 bytes = 12 bytes per element.
//   sum:  1 read of 4 bytes = 4 bytes per element (the output is one number).
// Counters are rates over wall-clock time ("flops=95G/s" is 95 GFLOP/s; "bytes=20G/s" is
// 20 GB/s, decimal). The last argument of each benchmark is the CPU thread count.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "drcnn/core/generator.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/matmul.h"
#include "drcnn/ops/reduce.h"

namespace {

using drcnn::Generator;
using drcnn::Shape;
using drcnn::Tensor;

constexpr int64_t k16M = int64_t(1) << 24;

/// Sets the thread count for one benchmark and restores the default afterwards.
struct ThreadScope {
  explicit ThreadScope(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadScope() { drcnn::set_cpu_threads(0); }
};

// args: {n, threads}; square GEMM n x n x n, float32.
void BM_MatmulF32(benchmark::State& state) {
  const int64_t n = state.range(0);
  ThreadScope threads(int(state.range(1)));
  Generator gen(1);
  const Tensor a = Tensor::randn(Shape{n, n}, gen);
  const Tensor b = Tensor::randn(Shape{n, n}, gen);
  for (auto _ : state) {
    Tensor c = drcnn::ops::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(n) * double(n) * double(n);
  state.counters["flops"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MatmulF32)
    ->ArgNames({"n", "threads"})
    ->Args({256, 1})
    ->Args({512, 1})
    ->Args({1024, 1})
    ->Args({2048, 1})
    ->Args({1024, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// args: {numel, threads}; c = a + b, float32, contiguous.
void BM_AddF32(benchmark::State& state) {
  const int64_t n = state.range(0);
  ThreadScope threads(int(state.range(1)));
  Generator gen(2);
  const Tensor a = Tensor::randn(Shape{n}, gen);
  const Tensor b = Tensor::randn(Shape{n}, gen);
  for (auto _ : state) {
    Tensor c = drcnn::ops::add(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
    benchmark::ClobberMemory();
  }
  // 2 reads + 1 write per element.
  state.counters["bytes"] = benchmark::Counter(12.0 * double(n) * double(state.iterations()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AddF32)
    ->ArgNames({"numel", "threads"})
    ->Args({k16M, 1})
    ->Args({k16M, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Baseline for BM_AddF32: a plain single-threaded C++ loop over the same contiguous floats
// into a preallocated output. What this machine's memory system gives for this pattern.
void BM_AddF32Baseline(benchmark::State& state) {
  const auto n = size_t(state.range(0));
  Generator gen(2);
  const std::vector<float> a = Tensor::randn(Shape{int64_t(n)}, gen).to_vector<float>();
  const std::vector<float> b = Tensor::randn(Shape{int64_t(n)}, gen).to_vector<float>();
  std::vector<float> c(n);
  for (auto _ : state) {
    for (size_t i = 0; i < n; ++i) c[i] = a[i] + b[i];
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["bytes"] = benchmark::Counter(12.0 * double(n) * double(state.iterations()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AddF32Baseline)->ArgNames({"numel"})->Arg(k16M)->Unit(benchmark::kMillisecond)->UseRealTime();

// args: {numel, threads}; sum of all elements, float32 (compensated, deterministic).
void BM_SumF32(benchmark::State& state) {
  const int64_t n = state.range(0);
  ThreadScope threads(int(state.range(1)));
  Generator gen(3);
  const Tensor a = Tensor::randn(Shape{n}, gen);
  for (auto _ : state) {
    Tensor s = drcnn::ops::sum(a);
    benchmark::DoNotOptimize(s.data_ptr());
    benchmark::ClobberMemory();
  }
  // 1 read per element.
  state.counters["bytes"] = benchmark::Counter(4.0 * double(n) * double(state.iterations()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SumF32)
    ->ArgNames({"numel", "threads"})
    ->Args({k16M, 1})
    ->Args({k16M, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Baseline for BM_SumF32: a plain single-threaded loop with 8 float accumulators (so the
// compiler can vectorise without fast-math); no compensation, so not the same accuracy.
void BM_SumF32Baseline(benchmark::State& state) {
  const auto n = size_t(state.range(0));
  Generator gen(3);
  const std::vector<float> a = Tensor::randn(Shape{int64_t(n)}, gen).to_vector<float>();
  for (auto _ : state) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += a[i + size_t(j)];
    float total = 0;
    for (float v : acc) total += v;
    benchmark::DoNotOptimize(total);
  }
  state.counters["bytes"] = benchmark::Counter(4.0 * double(n) * double(state.iterations()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SumF32Baseline)->ArgNames({"numel"})->Arg(k16M)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
