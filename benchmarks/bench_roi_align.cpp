// RoIAlign benchmarks (CPU): multi-level forward and backward over 4 FPN levels
// (strides 4, 8, 16, 32), 256 channels, 7x7 bins, aligned, float32, batch of 2 images.
//
// Inputs (reproduced exactly by tools/bench_roi_align_torchvision.py, which times
// torchvision.ops.roi_align on the same data):
//   features: level l is [2, 256, ceil(H / s_l), ceil(W / s_l)], values from drcnn's Philox
//             (the values do not change the work; Python fills its own random values).
//   rois:     R RoIs from the 64-bit LCG  x <- x * 6364136223846793005 + 1442695040888963407
//             (mod 2^64), seed 20240611, u = (x >> 11) * 2^-53 in [0, 1), five draws per RoI:
//               batch = floor(u0 * 2); side = 16 * 2^(5 u1) (16..512 px);
//               aspect = 2^(2 u2 - 1) (0.5..2); w = side * sqrt(aspect); h = side / sqrt(aspect);
//               cx = u3 * W; cy = u4 * H; box = clip((cx - w/2, cy - h/2, cx + w/2, cy + h/2))
//             to [0, W] x [0, H], computed in float64, stored as float32.
//   levels:   MMDetection's map_roi_levels (finest_scale 56), computed once outside the timing.
// Sizes: 800x1088 (the COCO training size) with R = 512 (sampled RoIs per image) and 1000
// (test-time proposals), sampling 2 (torchvision) and 0 (adaptive, mmdet); and a CPU-friendly
// 320x320 input with R = 512.
//
// Counters: rois (RoIs per second) and bytes (the output [R, 256, 7, 7] float32 written by the
// forward / the grad_out read by the backward, per second); the backward allocates and zeroes
// the gradient maps of all levels every call (as torchvision does), which is part of its cost.
// args: {image side id (0: 800x1088, 1: 320x320), R, sampling_ratio, threads}.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "drcnn/core/generator.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/roi_align.h"

namespace {

using drcnn::Shape;
using drcnn::Tensor;

constexpr int64_t kBatch = 2, kChannels = 256, kPooled = 7;
const std::vector<double> kScales = {1 / 4.0, 1 / 8.0, 1 / 16.0, 1 / 32.0};

struct ThreadScope {
  explicit ThreadScope(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadScope() { drcnn::set_cpu_threads(0); }
};

/// The LCG of the file comment (identical in the Python script).
struct Lcg {
  uint64_t x;
  double next() {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return double(x >> 11) * 0x1.0p-53;
  }
};

Tensor make_rois(int64_t R, double H, double W) {
  Lcg lcg{20240611};
  std::vector<float> v;
  for (int64_t i = 0; i < R; ++i) {
    const double u0 = lcg.next(), u1 = lcg.next(), u2 = lcg.next(), u3 = lcg.next(), u4 = lcg.next();
    const double side = 16.0 * std::pow(2.0, 5.0 * u1), aspect = std::pow(2.0, 2.0 * u2 - 1.0);
    const double w = side * std::sqrt(aspect), h = side / std::sqrt(aspect);
    const double cx = u3 * W, cy = u4 * H;
    auto clip = [](double a, double hi) { return std::min(std::max(a, 0.0), hi); };
    v.insert(v.end(), {float(std::floor(u0 * double(kBatch))), float(clip(cx - w / 2, W)), float(clip(cy - h / 2, H)),
                       float(clip(cx + w / 2, W)), float(clip(cy + h / 2, H))});
  }
  return Tensor::from_vector<float>(v, Shape{R, 5});
}

struct Inputs {
  std::vector<Tensor> features;
  std::vector<Shape> shapes;
  Tensor rois, levels;
};

Inputs make_inputs(int64_t side_id, int64_t R) {
  const double H = side_id == 0 ? 800 : 320, W = side_id == 0 ? 1088 : 320;
  Inputs in;
  drcnn::Generator gen(7);
  for (double s : kScales) {
    in.shapes.push_back(Shape{kBatch, kChannels, int64_t(std::ceil(H * s)), int64_t(std::ceil(W * s))});
    in.features.push_back(Tensor::rand(in.shapes.back(), gen));
  }
  in.rois = make_rois(R, H, W);
  in.levels = drcnn::ops::map_roi_levels(in.rois, 4, 56.0);
  return in;
}

void set_counters(benchmark::State& state, int64_t R, const Tensor& levels) {
  // RoIs per level (l0..l3): the torchvision script prints the same four numbers for its
  // inputs, a check that both sides pool the same RoIs.
  std::vector<int64_t> per_level(4, 0);
  for (int64_t v : levels.to_vector<int64_t>()) ++per_level[size_t(v)];
  const char* names[4] = {"l0", "l1", "l2", "l3"};
  for (int i = 0; i < 4; ++i) state.counters[names[i]] = double(per_level[size_t(i)]);
  state.counters["rois"] = benchmark::Counter(double(R) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["bytes"] = benchmark::Counter(double(R * kChannels * kPooled * kPooled * 4) * double(state.iterations()),
                                               benchmark::Counter::kIsRate);
  state.counters["channels"] = double(kChannels);
}

void BM_RoiAlignForward(benchmark::State& state) {
  const Inputs in = make_inputs(state.range(0), state.range(1));
  const int64_t sr = state.range(2);
  ThreadScope threads(int(state.range(3)));
  for (auto _ : state) {
    Tensor out = drcnn::ops::roi_align_multilevel(in.features, in.rois, in.levels, {kPooled, kPooled}, kScales, sr, true);
    benchmark::DoNotOptimize(out.data_ptr());
    benchmark::ClobberMemory();
  }
  set_counters(state, state.range(1), in.levels);
}

void BM_RoiAlignBackward(benchmark::State& state) {
  const Inputs in = make_inputs(state.range(0), state.range(1));
  const int64_t sr = state.range(2);
  ThreadScope threads(int(state.range(3)));
  drcnn::Generator gen(8);
  const Tensor go = Tensor::rand(Shape{state.range(1), kChannels, kPooled, kPooled}, gen);
  for (auto _ : state) {
    std::vector<Tensor> g =
        drcnn::ops::roi_align_multilevel_backward(go, in.rois, in.levels, in.shapes, kScales, sr, true);
    benchmark::DoNotOptimize(g[0].data_ptr());
    benchmark::ClobberMemory();
  }
  set_counters(state, state.range(1), in.levels);
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"img", "rois", "sampling", "threads"});
  for (int64_t threads : {1, 2}) {
    for (int64_t R : {512, 1000})
      for (int64_t sr : {2, 0}) b->Args({0, R, sr, threads});
    for (int64_t sr : {2, 0}) b->Args({1, 512, sr, threads});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_RoiAlignForward)->Apply(args);
BENCHMARK(BM_RoiAlignBackward)->Apply(args);
}  // namespace

BENCHMARK_MAIN();
