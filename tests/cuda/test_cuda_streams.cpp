// Streams and host threads: a pipeline of ops (GEMM, cuDNN conv, reductions, sort, NMS,
// RoIAlign) run on a non-default, non-blocking stream, and from two host threads at once (each
// with its own current stream; cuda::current_stream is per thread), must give the CPU's
// results. A missing stream argument (work queued on the legacy stream, which does not
// synchronise with a non-blocking one), a copy that does not wait for the current stream, or
// allocator state shared unsafely between threads can show up as wrong values or a crash
// (races: likely, not certain, to be caught in one run). The first op is a 512 x 512 x 512
// GEMM, so a download that does not wait would read an unfinished result.
// Tolerances (float64): cuBLAS/cuDNN sum in other orders than Eigen/the CPU conv (1e-11
// relative, the conv and matmul tests' bounds); the full sum of the 262,144 GEMM inputs runs
// the GPU's block tree (ops/detail/reduce_body.h) against the CPU's lanes, both compensated
// (|error| <= eps |S| + n eps^2 sum|x| each, here ~1e-21 for the second term): 1e-13 relative
// is ~450 ulp of slack; max, sort and NMS are exact; RoIAlign's FMAs 1e-12 absolute.
// Runs only where a CUDA device exists; elsewhere the test main exits with 77.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "common/device_compare.h"
#include "common/random.h"
#include "drcnn/config.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/matmul.h"
#include "drcnn/ops/nms.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/roi_align.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/ops/sort.h"
#if DRCNN_WITH_CUDA
#include <cuda_runtime.h>
#endif

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;

#if DRCNN_WITH_CUDA
namespace {
const Device kGpu = Device::cuda(0);

struct Inputs {
  Tensor a, b, x, w, boxes, scores, feat, rois;
};

Inputs make_inputs(uint64_t seed) {
  using drcnn::test::random_tensor;
  Inputs in;
  in.a = random_tensor({512, 512}, seed + 1, DType::Float64);
  in.b = random_tensor({512, 512}, seed + 2, DType::Float64);
  in.x = random_tensor({2, 16, 24, 24}, seed + 3, DType::Float64);
  in.w = random_tensor({16, 16, 3, 3}, seed + 4, DType::Float64);
  // 3000 boxes: x1, y1 in [0, 500), sizes in [10, 110).
  const Tensor xy = random_tensor({3000, 2}, seed + 5, DType::Float64, 0.0, 500.0);
  const Tensor wh = random_tensor({3000, 2}, seed + 6, DType::Float64, 10.0, 110.0);
  in.boxes = ops::concat({xy, ops::add(xy, wh)}, 1);
  in.scores = random_tensor({3000}, seed + 7, DType::Float64);
  in.feat = random_tensor({2, 8, 32, 32}, seed + 8, DType::Float64);
  std::vector<double> r;
  for (int i = 0; i < 64; ++i) r.insert(r.end(), {double(i % 2), 1.0 + i, 2.0 + 0.5 * i, 20.0 + i, 30.0 + 0.25 * i});
  in.rois = Tensor::from_vector<double>(r, Shape{64, 5});
  return in;
}

Inputs on(const Inputs& in, Device d) {
  return {in.a.to(d), in.b.to(d), in.x.to(d), in.w.to(d), in.boxes.to(d), in.scores.to(d), in.feat.to(d), in.rois.to(d)};
}

/// The pipeline's outputs, in order: GEMM, conv, full sum, row maxima, argsort, NMS keep,
/// RoIAlign.
std::vector<Tensor> pipeline(const Inputs& in) {
  const Tensor c = ops::matmul(in.a, in.b);
  ops::Conv2dParams p;
  p.padding = {1, 1};
  const Tensor y = ops::conv2d(in.x, in.w, Tensor(), p);
  return {c,
          y,
          ops::sum(in.a),
          ops::max(in.a, 1),
          ops::argsort(in.scores, 0, true),
          ops::nms(in.boxes, in.scores, 0.5),
          ops::roi_align(in.feat, in.rois, {7, 7}, 0.5, 2, true)};
}

/// Largest violation of |gpu - cpu| <= atol + rtol |cpu| over the pipeline's outputs (0: all
/// within); -1 for a shape or dtype mismatch. Plain doubles: safe to compute off the main
/// thread, where Catch's assertions are not.
double worst_violation(const std::vector<Tensor>& gpu, const std::vector<Tensor>& cpu) {
  const double rtol[] = {1e-11, 1e-11, 1e-13, 0, 0, 0, 0};
  const double atol[] = {1e-11, 1e-11, 1e-18, 0, 0, 0, 1e-12};
  double worst = 0;
  for (size_t k = 0; k < cpu.size(); ++k) {
    if (gpu[k].device() != kGpu || gpu[k].shape() != cpu[k].shape() || gpu[k].dtype() != cpu[k].dtype()) return -1;
    const std::vector<double> g = gpu[k].to(Device::cpu()).to_vector<double>(), c = cpu[k].to_vector<double>();
    for (size_t i = 0; i < c.size(); ++i) {
      const double excess = std::abs(g[i] - c[i]) - (atol[k] + rtol[k] * std::abs(c[i]));
      if (!(excess <= 0)) worst = std::max(worst, std::isnan(excess) ? 1e300 : excess);
    }
  }
  return worst;
}

/// A non-blocking stream (no implicit synchronisation with the legacy default stream),
/// destroyed at scope exit.
struct OwnedStream {
  cudaStream_t s = nullptr;
  OwnedStream() { REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess); }
  ~OwnedStream() {
    cudaStreamSynchronize(s);
    cudaStreamDestroy(s);
  }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
};
/// Makes `s` this thread's current stream for cuda:0 for the scope.
struct StreamScope {
  explicit StreamScope(cudaStream_t s) { drcnn::cuda::set_current_stream(kGpu, drcnn::Stream{s}); }
  ~StreamScope() { drcnn::cuda::set_current_stream(kGpu, drcnn::Stream{}); }
};
}  // namespace

TEST_CASE("cuda/streams: a non-blocking current stream gives the CPU's results", "[cuda][stream]") {
  const Inputs in = make_inputs(10);
  const std::vector<Tensor> cpu = pipeline(in);
  OwnedStream stream;
  StreamScope scope(stream.s);
  REQUIRE(drcnn::cuda::current_stream(kGpu).handle == stream.s);
  for (int rep = 0; rep < 3; ++rep) {  // later reps reuse cached blocks freed on this stream
    const std::vector<Tensor> gpu = pipeline(on(in, kGpu));
    INFO("rep " << rep);
    REQUIRE(worst_violation(gpu, cpu) == 0);
  }
}

TEST_CASE("cuda/streams: two host threads, each on its own stream, give the CPU's results", "[cuda][stream]") {
  constexpr int kThreads = 2, kReps = 4;
  std::vector<Inputs> inputs;
  std::vector<std::vector<Tensor>> expected;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(make_inputs(100 + 10 * uint64_t(t)));
    expected.push_back(pipeline(inputs.back()));
  }
  std::vector<double> worst(kThreads, 0);
  std::vector<std::string> error(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        // Thread 0 stays on the legacy default stream, thread 1 uses a non-blocking one.
        cudaStream_t s = nullptr;
        if (t == 1 && cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) {
          error[size_t(t)] = "cudaStreamCreateWithFlags failed";
          return;
        }
        drcnn::cuda::set_current_stream(kGpu, drcnn::Stream{s});
        for (int rep = 0; rep < kReps; ++rep) {
          const double w = worst_violation(pipeline(on(inputs[size_t(t)], kGpu)), expected[size_t(t)]);
          worst[size_t(t)] = w < 0 ? w : std::max(worst[size_t(t)], w);
          if (w < 0) break;
        }
        drcnn::cuda::synchronize(kGpu);
        drcnn::cuda::set_current_stream(kGpu, drcnn::Stream{});
        if (s) cudaStreamDestroy(s);
      } catch (const std::exception& e) {
        error[size_t(t)] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t << ": " << error[size_t(t)]);
    CHECK(error[size_t(t)].empty());
    CHECK(worst[size_t(t)] == 0);
  }
  // The other thread's stream setting never leaked into this one.
  REQUIRE(drcnn::cuda::current_stream(kGpu).handle == nullptr);
}
#else
TEST_CASE("cuda/streams: needs a CUDA build", "[cuda][stream]") { FAIL("drcnn was built without CUDA"); }
#endif
