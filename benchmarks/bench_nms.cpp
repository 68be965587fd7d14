// NMS benchmarks: drcnn::ops::nms on 1k, 10k and 100k RPN-like boxes (IoU 0.7) and
// batched_nms with 80 classes (10k boxes, IoU 0.5); CPU with 1 and 2 threads, CUDA when a
// device exists. tools/bench_nms_torchvision.py times torchvision on the SAME boxes.
//
// The boxes (identical here and in the Python script; change both or neither):
//   LCG: state = state * 6364136223846793005 + 1442695040888963407 (mod 2^64);
//        u() = (state >> 11) * 2^-53, a double in [0, 1). Seed 12345 for the boxes, 678 for
//        the class ids.
//   Image 1088 x 800. C = max(1, n / 20) clusters ("objects"), each drawn as
//        cx = u() W, cy = u() H, bw = 16 + 368 u(), bh = bw (0.5 + 1.5 u()).
//   Box i, in this draw order: c = floor(u() C); w = bw (0.6 + 0.8 u()); h = bh (0.6 + 0.8 u());
//        x = cx + 0.4 bw (u() - 0.5); y = cy + 0.4 bh (u() - 0.5);
//        (x -/+ w/2, y -/+ h/2) clipped to [0, W] x [0, H]; score = u().
//   All arithmetic in double (no FMA), then rounded to float32. Class id i: floor(80 u()).
// Counter "kept" is the keep-list length (the Python script prints it too: the lists agree
// up to ties in the float32 scores, which torchvision's unstable sort may order differently).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/nms.h"

namespace {
using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;

struct Lcg {
  uint64_t state;
  double operator()() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return double(state >> 11) * 0x1p-53;
  }
};

struct BoxSet {
  Tensor boxes, scores, ids;  // float32 [n, 4], float32 [n], int64 [n]
};

BoxSet make_boxes(int64_t n, int64_t classes) {
  constexpr double W = 1088, H = 800;
  Lcg u{12345};
  const int64_t nc = std::max<int64_t>(1, n / 20);
  std::vector<double> cl;  // cx, cy, bw, bh
  for (int64_t c = 0; c < nc; ++c) {
    const double cx = u() * W;
    const double cy = u() * H;
    const double bw = 16 + 368 * u();
    const double bh = bw * (0.5 + 1.5 * u());
    cl.insert(cl.end(), {cx, cy, bw, bh});
  }
  std::vector<float> b, s;
  for (int64_t i = 0; i < n; ++i) {
    const double* k = &cl[size_t(4 * int64_t(u() * double(nc)))];
    const double w = k[2] * (0.6 + 0.8 * u());
    const double h = k[3] * (0.6 + 0.8 * u());
    const double x = k[0] + 0.4 * k[2] * (u() - 0.5);
    const double y = k[1] + 0.4 * k[3] * (u() - 0.5);
    b.push_back(float(std::min(std::max(x - 0.5 * w, 0.0), W)));
    b.push_back(float(std::min(std::max(y - 0.5 * h, 0.0), H)));
    b.push_back(float(std::min(std::max(x + 0.5 * w, 0.0), W)));
    b.push_back(float(std::min(std::max(y + 0.5 * h, 0.0), H)));
    s.push_back(float(u()));
  }
  Lcg v{678};
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(int64_t(double(classes) * v()));
  return {Tensor::from_vector<float>(b, Shape{n, 4}), Tensor::from_vector<float>(s, Shape{n}),
          Tensor::from_vector<int64_t>(ids, Shape{n})};
}

struct ThreadScope {
  explicit ThreadScope(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadScope() { drcnn::set_cpu_threads(0); }
};

// args: {n, threads (0 = CUDA)}
void BM_Nms(benchmark::State& state) {
  const int64_t n = state.range(0);
  const bool gpu = state.range(1) == 0;
  ThreadScope threads(gpu ? 0 : int(state.range(1)));
  BoxSet set = make_boxes(n, 1);
  if (gpu) set = {set.boxes.to(Device::cuda(0)), set.scores.to(Device::cuda(0)), set.ids};
  int64_t kept = 0;
  for (auto _ : state) {
    const Tensor keep = drcnn::ops::nms(set.boxes, set.scores, 0.7);  // synchronises (count)
    kept = keep.size(0);
    benchmark::DoNotOptimize(keep.data_ptr());
  }
  state.counters["kept"] = double(kept);
}

// args: {n, threads (0 = CUDA)}; 80 classes, IoU 0.5, default split_threshold (offset path).
void BM_BatchedNms(benchmark::State& state) {
  const int64_t n = state.range(0);
  const bool gpu = state.range(1) == 0;
  ThreadScope threads(gpu ? 0 : int(state.range(1)));
  BoxSet set = make_boxes(n, 80);
  if (gpu) set = {set.boxes.to(Device::cuda(0)), set.scores.to(Device::cuda(0)), set.ids.to(Device::cuda(0))};
  int64_t kept = 0;
  for (auto _ : state) {
    const Tensor keep = drcnn::ops::batched_nms(set.boxes, set.scores, set.ids, 0.5);
    kept = keep.size(0);
    benchmark::DoNotOptimize(keep.data_ptr());
  }
  state.counters["kept"] = double(kept);
}

void add_args(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> sizes) {
  b->ArgNames({"n", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (int64_t n : sizes) {
    b->Args({n, 1})->Args({n, 2});
    if (drcnn::cuda::is_available()) b->Args({n, 0});
  }
}
}  // namespace

int main(int argc, char** argv) {
  add_args(benchmark::RegisterBenchmark("BM_Nms", BM_Nms), {1000, 10000, 100000});
  add_args(benchmark::RegisterBenchmark("BM_BatchedNms", BM_BatchedNms), {10000});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
