// Box-op and loss benchmarks (CPU, float32), 1 and 2 threads:
//   BM_BoxIou       ops::box_iou, 2000 x 100 boxes (proposals against ground truth).
//   BM_BoxEncode    ops::box_encode, 512 proposal/gt pairs, stds (0.1, 0.1, 0.2, 0.2).
//   BM_BoxDecode    ops::box_decode, 1000 RoIs x 81 classes (deltas [1000, 324], class-specific as
//                   in the RoI head), stds (0.1, 0.1, 0.2, 0.2), clipped to 800 x 1088.
//   BM_SmoothL1     smooth_l1_loss (mean), [rows, cols] = [1024, 4] and [1024, 81], beta 1 and 0.1;
//                   bwd 0: ops::smooth_l1_loss on Tensors; bwd 1: the autograd version forward,
//                   backward() and the leaf's gradient (zeroed before each call).
//   BM_CrossEntropy softmax cross-entropy (mean) on logits [1024, 81], int64 labels; bwd as above.
// tools/bench_box_losses_torch.py times torchvision / torch.nn.functional on the SAME inputs and
// compares the checksum counters below with torch's results.
//
// Inputs (identical here and in the Python script; change both or neither):
//   LCG: state = state * 6364136223846793005 + 1442695040888963407 (mod 2^64);
//        u() = (state >> 11) * 2^-53, a double in [0, 1).
//   boxes(n, seed): image W = 1088, H = 800; per box five draws u1..u5:
//        side = 16 * 2^(5 u1), aspect = 2^(2 u2 - 1), w = side sqrt(aspect), h = side / sqrt(aspect),
//        cx = u3 W, cy = u4 H (u5 unused, kept for the draw count);
//        (cx - w/2, cy - h/2, cx + w/2, cy + h/2) clipped to [0, W] x [0, H] (widths stay >= 5 px).
//   uniform(n, seed, lo, hi): lo + (hi - lo) u() per value.   labels(n, C, seed): floor(C u()).
//   All arithmetic in double (no FMA), rounded to float32 at the end. Seeds:
//   IoU a = boxes(2000, 101), b = boxes(100, 202); encode proposals = boxes(512, 303),
//   gt = boxes(512, 404); decode rois = boxes(1000, 505), deltas = uniform(1000 * 324, 606, -2, 2);
//   SmoothL1 pred = uniform(rows * cols, 707, -1, 1), target = uniform(rows * cols, 808, -1, 1);
//   cross-entropy logits = uniform(1024 * 81, 909, -4, 4), labels = labels(1024, 81, 1010).
//
// Times: wall clock (UseRealTime) and the CPU time of the whole process, all threads
// (MeasureProcessCPUTime; Python's time.process_time() is the same measure).
// Counters: a rate (pairs, boxes or elems per second) and checksums of one extra call made after
// the timing: chk_sum and chk_sq are the float64 sum and sum of squares of the result (IoU matrix,
// deltas, boxes; the input gradient for bwd 1), loss the loss value. The Python script computes
// the same with torch and prints the differences.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "drcnn/autograd/losses.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/losses.h"

namespace {
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::Variable;

constexpr double kImgW = 1088, kImgH = 800;
constexpr std::array<double, 4> kMeans = {0, 0, 0, 0};
constexpr std::array<double, 4> kStds = {0.1, 0.1, 0.2, 0.2};

struct Lcg {
  uint64_t state;
  double operator()() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return double(state >> 11) * 0x1p-53;
  }
};

Tensor make_boxes(int64_t n, uint64_t seed) {
  Lcg u{seed};
  std::vector<float> v;
  auto clip = [](double a, double hi) { return std::min(std::max(a, 0.0), hi); };
  for (int64_t i = 0; i < n; ++i) {
    const double u1 = u(), u2 = u(), u3 = u(), u4 = u();
    (void)u();
    const double side = 16.0 * std::pow(2.0, 5.0 * u1), aspect = std::pow(2.0, 2.0 * u2 - 1.0);
    const double w = side * std::sqrt(aspect), h = side / std::sqrt(aspect);
    const double cx = u3 * kImgW, cy = u4 * kImgH;
    v.insert(v.end(), {float(clip(cx - w / 2, kImgW)), float(clip(cy - h / 2, kImgH)), float(clip(cx + w / 2, kImgW)),
                       float(clip(cy + h / 2, kImgH))});
  }
  return Tensor::from_vector<float>(v, Shape{n, 4});
}

Tensor make_uniform(int64_t rows, int64_t cols, uint64_t seed, double lo, double hi) {
  Lcg u{seed};
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (float& x : v) x = float(lo + (hi - lo) * u());
  return Tensor::from_vector<float>(v, Shape{rows, cols});
}

Tensor make_labels(int64_t n, int64_t classes, uint64_t seed) {
  Lcg u{seed};
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t& y : v) y = int64_t(double(classes) * u());
  return Tensor::from_vector<int64_t>(v, Shape{n});
}

struct ThreadScope {
  explicit ThreadScope(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadScope() { drcnn::set_cpu_threads(0); }
};

void rate(benchmark::State& state, const char* name, int64_t per_call) {
  state.counters[name] = benchmark::Counter(double(per_call) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void checksums(benchmark::State& state, const Tensor& t) {
  double s = 0, sq = 0;
  for (float x : t.to_vector<float>()) {
    s += double(x);
    sq += double(x) * double(x);
  }
  state.counters["chk_sum"] = s;
  state.counters["chk_sq"] = sq;
}

// args: {threads}
void BM_BoxIou(benchmark::State& state) {
  ThreadScope threads(int(state.range(0)));
  const Tensor a = make_boxes(2000, 101), b = make_boxes(100, 202);
  for (auto _ : state) {
    Tensor iou = drcnn::ops::box_iou(a, b);
    benchmark::DoNotOptimize(iou.data_ptr());
    benchmark::ClobberMemory();
  }
  rate(state, "pairs", 2000 * 100);
  checksums(state, drcnn::ops::box_iou(a, b));
}

// args: {n, threads}
void BM_BoxEncode(benchmark::State& state) {
  const int64_t n = state.range(0);
  ThreadScope threads(int(state.range(1)));
  const Tensor proposals = make_boxes(n, 303), gt = make_boxes(n, 404);
  for (auto _ : state) {
    Tensor d = drcnn::ops::box_encode(proposals, gt, kMeans, kStds);
    benchmark::DoNotOptimize(d.data_ptr());
    benchmark::ClobberMemory();
  }
  rate(state, "boxes", n);
  checksums(state, drcnn::ops::box_encode(proposals, gt, kMeans, kStds));
}

// args: {n, classes, threads}
void BM_BoxDecode(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1);
  ThreadScope threads(int(state.range(2)));
  const Tensor rois = make_boxes(n, 505), deltas = make_uniform(n, 4 * k, 606, -2, 2);
  const drcnn::ops::ImageShape img{kImgH, kImgW};
  for (auto _ : state) {
    Tensor boxes = drcnn::ops::box_decode(rois, deltas, kMeans, kStds, img);
    benchmark::DoNotOptimize(boxes.data_ptr());
    benchmark::ClobberMemory();
  }
  rate(state, "boxes", n * k);
  checksums(state, drcnn::ops::box_decode(rois, deltas, kMeans, kStds, img));
}

// args: {rows, cols, beta * 1000, bwd, threads}
void BM_SmoothL1(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const double beta = double(state.range(2)) / 1000.0;
  const bool bwd = state.range(3) != 0;
  ThreadScope threads(int(state.range(4)));
  const Tensor pred = make_uniform(rows, cols, 707, -1, 1), target = make_uniform(rows, cols, 808, -1, 1);
  if (!bwd) {
    for (auto _ : state) {
      Tensor l = drcnn::ops::smooth_l1_loss(pred, target, beta);
      benchmark::DoNotOptimize(l.data_ptr());
      benchmark::ClobberMemory();
    }
    state.counters["loss"] = double(drcnn::ops::smooth_l1_loss(pred, target, beta).item<float>());
  } else {
    Variable x(pred, true);
    for (auto _ : state) {
      x.zero_grad();
      Variable l = drcnn::smooth_l1_loss(x, target, beta);
      l.backward();
      benchmark::DoNotOptimize(x.grad().data_ptr());
      benchmark::ClobberMemory();
    }
    x.zero_grad();
    Variable l = drcnn::smooth_l1_loss(x, target, beta);
    l.backward();
    state.counters["loss"] = double(l.data().item<float>());
    checksums(state, x.grad());
  }
  rate(state, "elems", rows * cols);
}

// args: {rows, classes, bwd, threads}
void BM_CrossEntropy(benchmark::State& state) {
  const int64_t rows = state.range(0), classes = state.range(1);
  const bool bwd = state.range(2) != 0;
  ThreadScope threads(int(state.range(3)));
  const Tensor logits = make_uniform(rows, classes, 909, -4, 4), labels = make_labels(rows, classes, 1010);
  if (!bwd) {
    for (auto _ : state) {
      Tensor l = drcnn::ops::cross_entropy(logits, labels);
      benchmark::DoNotOptimize(l.data_ptr());
      benchmark::ClobberMemory();
    }
    state.counters["loss"] = double(drcnn::ops::cross_entropy(logits, labels).item<float>());
  } else {
    Variable x(logits, true);
    for (auto _ : state) {
      x.zero_grad();
      Variable l = drcnn::cross_entropy(x, labels);
      l.backward();
      benchmark::DoNotOptimize(x.grad().data_ptr());
      benchmark::ClobberMemory();
    }
    x.zero_grad();
    Variable l = drcnn::cross_entropy(x, labels);
    l.backward();
    state.counters["loss"] = double(l.data().item<float>());
    checksums(state, x.grad());
  }
  rate(state, "elems", rows * classes);
}

void BoxIouArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"threads"})->Arg(1)->Arg(2);
}
void BoxEncodeArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"})->Args({512, 1})->Args({512, 2});
}
void BoxDecodeArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "classes", "threads"})->Args({1000, 81, 1})->Args({1000, 81, 2});
}
void SmoothL1Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "beta_x1000", "bwd", "threads"});
  for (int64_t threads : {1, 2})
    for (int64_t cols : {4, 81})
      for (int64_t beta : {1000, 100})
        for (int64_t bwd : {0, 1}) b->Args({1024, cols, beta, bwd, threads});
}
void CrossEntropyArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "classes", "bwd", "threads"});
  for (int64_t threads : {1, 2})
    for (int64_t bwd : {0, 1}) b->Args({1024, 81, bwd, threads});
}
BENCHMARK(BM_BoxIou)->Apply(BoxIouArgs)->Unit(benchmark::kMicrosecond)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(BM_BoxEncode)->Apply(BoxEncodeArgs)->Unit(benchmark::kMicrosecond)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(BM_BoxDecode)->Apply(BoxDecodeArgs)->Unit(benchmark::kMicrosecond)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(BM_SmoothL1)->Apply(SmoothL1Args)->Unit(benchmark::kMicrosecond)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(BM_CrossEntropy)->Apply(CrossEntropyArgs)->Unit(benchmark::kMicrosecond)->UseRealTime()->MeasureProcessCPUTime();
}  // namespace

BENCHMARK_MAIN();
