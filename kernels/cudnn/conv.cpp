// CUDA conv2d through cuDNN 9's legacy convolution API (compiled as C++, not nvcc).
// - Descriptors are built per call (cheap host structs; RAII below).
// - Algorithms, once per key (direction, dtype, device, geometry, the alignment of the three
//   buffers, mode): by default cuDNN's heuristics (cudnnGetConvolution*Algorithm_v7, host only);
//   with drcnn::cuda::set_cudnn_benchmark(true) a measured search (cudnnFind*AlgorithmEx) whose
//   workspace is capped by the memory free on the device and returned to the system right after.
//   The usable candidates (supported, no tensor-op math, workspace within the cap; deterministic
//   first for backward data/filter) are cached as an ordered list and tried in order until one
//   runs: a workspace that cannot be allocated or a cuDNN failure moves on to the next
//   (ops/detail/conv_algo.h, tested on the CPU). cuDNN's own device allocations are retried once
//   after flushing the caching allocator.
// - Math type CUDNN_FMA_MATH for every dtype: no TF32 (cuDNN's CUDNN_DEFAULT_MATH permits TF32
//   on Ampere and later), so float32 stays true float32 like the cuBLAS GEMM of this project.
// - Workspaces come from drcnn's caching CUDA allocator, on the current stream.
// - Bias: cudnnAddTensor (forward), cudnnConvolutionBackwardBias (gradient).
// Covered on a GPU by tests/cuda/test_cuda_conv.cpp (CPU parity, both modes, fallback).
// docs/kernels/conv2d.md.
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/cuda_check.h"
#include "cudnn/handle.h"
#include "drcnn/core/allocator.h"
#include "drcnn/core/error.h"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/conv_algo.h"
#include "drcnn/ops/detail/conv_body.h"

namespace drcnn::ops::cuda {
namespace {

// Upper bound on the workspace an algorithm may use (bytes).
constexpr size_t kMaxWorkspace = size_t(1) << 30;

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { DRCNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};
struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc() { DRCNN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc() { DRCNN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

int to_int(int64_t v, const char* what) {
  DRCNN_CHECK(v >= 0 && v <= INT_MAX, "conv2d: ", what, " = ", v, " exceeds cuDNN's int range");
  return int(v);
}

template <typename T>
cudnnDataType_t data_type() {
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

/// The descriptors of one convolution (NCHW; the layout field of Conv2dParams would select
/// CUDNN_TENSOR_NHWC here).
struct Descriptors {
  TensorDesc x, y, bias;
  FilterDesc w;
  ConvDesc conv;
  Descriptors(const Conv2dGeometry& g, cudnnDataType_t dt) {
    to_int(g.n * g.c_in * g.h * g.w, "input elements");
    to_int(g.n * g.c_out * g.ho * g.wo, "output elements");
    DRCNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x.d, CUDNN_TENSOR_NCHW, dt, to_int(g.n, "N"), to_int(g.c_in, "Cin"),
                                                 to_int(g.h, "H"), to_int(g.w, "W")));
    DRCNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y.d, CUDNN_TENSOR_NCHW, dt, to_int(g.n, "N"), to_int(g.c_out, "Cout"),
                                                 to_int(g.ho, "Ho"), to_int(g.wo, "Wo")));
    DRCNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias.d, CUDNN_TENSOR_NCHW, dt, 1, to_int(g.c_out, "Cout"), 1, 1));
    DRCNN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.d, dt, CUDNN_TENSOR_NCHW, to_int(g.c_out, "Cout"),
                                                 to_int(g.cin_g(), "Cin / groups"), to_int(g.kh, "kh"),
                                                 to_int(g.kw, "kw")));
    DRCNN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv.d, to_int(g.ph, "pad_h"), to_int(g.pw, "pad_w"),
                                                      to_int(g.sh, "stride_h"), to_int(g.sw, "stride_w"),
                                                      to_int(g.dh, "dilation_h"), to_int(g.dw, "dilation_w"),
                                                      CUDNN_CROSS_CORRELATION, dt));
    DRCNN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.d, to_int(g.groups, "groups")));
    DRCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.d, CUDNN_FMA_MATH));
  }
};

enum class Direction : int64_t { Forward, BackwardData, BackwardFilter };

using detail::ConvAlgoCandidate;

using Key = std::array<int64_t, 23>;
/// The cache key: direction, dtype, device, every extent, the alignment of the three buffers
/// (cuDNN's kernels depend on it) and the selection mode.
Key make_key(Direction dir, cudnnDataType_t dt, const Conv2dGeometry& g, const void* a, const void* b,
             const void* out, bool benchmark) {
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  return {int64_t(dir), int64_t(dt), device, g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.ho, g.wo,
          g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups, detail::pointer_alignment(a),
          detail::pointer_alignment(b), detail::pointer_alignment(out), int64_t(benchmark)};
}

/// Thread-safe cache of the ordered candidate lists. Two threads missing on one key at once
/// both build a list; the last stored wins (both are valid).
class AlgoCache {
 public:
  bool find(const Key& k, std::vector<ConvAlgoCandidate>& list) {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_map.find(k);
    if (it == m_map.end()) return false;
    list = it->second;
    return true;
  }
  void store(const Key& k, const std::vector<ConvAlgoCandidate>& list) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_map[k] = list;
  }

 private:
  std::mutex m_mutex;
  std::map<Key, std::vector<ConvAlgoCandidate>> m_map;
};
AlgoCache& algo_cache() {
  static AlgoCache cache;
  return cache;
}

/// The buffers of one call: forward (x, w, y), backward data (w, dy, dx), backward filter
/// (x, dy, dw).
struct Operands {
  const void* a;
  const void* b;
  void* out;
};

// The three directions behind one interface, so that selection and fallback are written once.
struct ForwardDir {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr Direction kDir = Direction::Forward;
  static constexpr bool kPreferDeterministic = false;
  static constexpr const char* kOp = "conv2d (cuDNN forward)";
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) { return cudnnGetConvolutionForwardAlgorithmMaxCount(h, n); }
  static cudnnStatus_t heuristics(cudnnHandle_t h, const Descriptors& d, int n, int* returned, Perf* perf) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.d, d.w.d, d.conv.d, d.y.d, n, returned, perf);
  }
  static cudnnStatus_t workspace_size(cudnnHandle_t h, const Descriptors& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.d, d.w.d, d.conv.d, d.y.d, cudnnConvolutionFwdAlgo_t(algo),
                                                   bytes);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const Descriptors& d, const Operands& o, int n, int* returned, Perf* perf,
                            void* ws, size_t bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(h, d.x.d, o.a, d.w.d, o.b, d.conv.d, d.y.d, o.out, n, returned, perf,
                                                  ws, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const Descriptors& d, const Operands& o, int algo, void* ws, size_t bytes,
                           const void* one, const void* zero) {
    return cudnnConvolutionForward(h, one, d.x.d, o.a, d.w.d, o.b, d.conv.d, cudnnConvolutionFwdAlgo_t(algo), ws, bytes,
                                   zero, d.y.d, o.out);
  }
};
struct BackwardDataDir {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr Direction kDir = Direction::BackwardData;
  static constexpr bool kPreferDeterministic = true;
  static constexpr const char* kOp = "conv2d_backward (cuDNN backward data)";
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t heuristics(cudnnHandle_t h, const Descriptors& d, int n, int* returned, Perf* perf) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.d, d.y.d, d.conv.d, d.x.d, n, returned, perf);
  }
  static cudnnStatus_t workspace_size(cudnnHandle_t h, const Descriptors& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.d, d.y.d, d.conv.d, d.x.d,
                                                        cudnnConvolutionBwdDataAlgo_t(algo), bytes);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const Descriptors& d, const Operands& o, int n, int* returned, Perf* perf,
                            void* ws, size_t bytes) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.d, o.a, d.y.d, o.b, d.conv.d, d.x.d, o.out, n, returned,
                                                       perf, ws, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const Descriptors& d, const Operands& o, int algo, void* ws, size_t bytes,
                           const void* one, const void* zero) {
    return cudnnConvolutionBackwardData(h, one, d.w.d, o.a, d.y.d, o.b, d.conv.d, cudnnConvolutionBwdDataAlgo_t(algo),
                                        ws, bytes, zero, d.x.d, o.out);
  }
};
struct BackwardFilterDir {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr Direction kDir = Direction::BackwardFilter;
  static constexpr bool kPreferDeterministic = true;
  static constexpr const char* kOp = "conv2d_backward (cuDNN backward filter)";
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t heuristics(cudnnHandle_t h, const Descriptors& d, int n, int* returned, Perf* perf) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.d, d.y.d, d.conv.d, d.w.d, n, returned, perf);
  }
  static cudnnStatus_t workspace_size(cudnnHandle_t h, const Descriptors& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.d, d.y.d, d.conv.d, d.w.d,
                                                          cudnnConvolutionBwdFilterAlgo_t(algo), bytes);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const Descriptors& d, const Operands& o, int n, int* returned, Perf* perf,
                            void* ws, size_t bytes) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.d, o.a, d.y.d, o.b, d.conv.d, d.w.d, o.out, n, returned,
                                                         perf, ws, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const Descriptors& d, const Operands& o, int algo, void* ws, size_t bytes,
                           const void* one, const void* zero) {
    return cudnnConvolutionBackwardFilter(h, one, d.x.d, o.a, d.y.d, o.b, d.conv.d,
                                          cudnnConvolutionBwdFilterAlgo_t(algo), ws, bytes, zero, d.w.d, o.out);
  }
};

Device current_device() {
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  return Device::cuda(device);
}

/// The most workspace a choice may plan for: kMaxWorkspace, and no more than the device can
/// give now (its free memory, or the largest block the pool has cached when that is larger),
/// as PyTorch bounds its cuDNN search.
size_t workspace_cap(Device dev) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    free_b = 0;
  }
  const size_t cached = allocator_for(dev).stats().largest_cached_block;
  return std::min(kMaxWorkspace, std::max(free_b, cached));
}

/// cuDNN's own device (and host) allocation failures: worth one retry after a pool flush.
bool cudnn_out_of_memory(cudnnStatus_t st) {
  return st == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
         st == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

template <typename Perf>
ConvAlgoCandidate to_candidate(const Perf& p, size_t workspace) {
  ConvAlgoCandidate c;
  c.algo = int(p.algo);
  c.supported = p.status == CUDNN_STATUS_SUCCESS;
  c.workspace = workspace;
  c.tensor_op = p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  c.deterministic = p.determinism == CUDNN_DETERMINISTIC;
  // Run with FMA math unless the candidate is a tensor-op one (never used): CUDNN_DEFAULT_MATH
  // would let cuDNN pick TF32 kernels for float32 on Ampere and later.
  c.math_type = int(p.mathType == CUDNN_DEFAULT_MATH ? CUDNN_FMA_MATH : p.mathType);
  return c;
}

/// Heuristic choice: cuDNN's recommended order, no device work. The workspace of each candidate
/// is asked for separately (the perf structs of the heuristics do not promise it).
template <typename Dir>
std::vector<ConvAlgoCandidate> heuristic_candidates(cudnnHandle_t h, const Descriptors& d, size_t cap) {
  int max_count = 0;
  DRCNN_CUDNN_CHECK(Dir::max_count(h, &max_count));
  std::vector<typename Dir::Perf> perf(size_t(std::max(max_count, 1)));
  int returned = 0;
  DRCNN_CUDNN_CHECK(Dir::heuristics(h, d, max_count, &returned, perf.data()));
  std::vector<ConvAlgoCandidate> all;
  for (int i = 0; i < returned; ++i) {
    size_t bytes = 0;
    const bool sized = Dir::workspace_size(h, d, int(perf[size_t(i)].algo), &bytes) == CUDNN_STATUS_SUCCESS;
    ConvAlgoCandidate c = to_candidate(perf[size_t(i)], bytes);
    c.supported = c.supported && sized;
    all.push_back(c);
  }
  std::vector<ConvAlgoCandidate> out = detail::order_conv_algos(all, Dir::kPreferDeterministic, cap);
  // Nothing fits what is free now: keep the full list (up to kMaxWorkspace) and let the
  // allocation (which flushes the cache before it gives up) decide.
  if (out.empty()) out = detail::order_conv_algos(all, Dir::kPreferDeterministic, kMaxWorkspace);
  return out;
}

/// A raw allocation from the caching allocator that goes back to the system (not the cache)
/// when done: the search workspace can be large and is not needed again.
class UncachedBlock {
 public:
  UncachedBlock(Allocator& alloc, size_t bytes, Stream stream) : m_alloc(alloc) {
    if (bytes > 0) m_ptr = alloc.allocate(bytes, stream);
  }
  ~UncachedBlock() { m_alloc.deallocate_uncached(m_ptr); }
  UncachedBlock(const UncachedBlock&) = delete;
  UncachedBlock& operator=(const UncachedBlock&) = delete;
  void* get() const { return m_ptr; }

 private:
  Allocator& m_alloc;
  void* m_ptr = nullptr;
};

/// Measured choice (benchmark mode): cudnnFind*AlgorithmEx on the real buffers with a
/// workspace as large as the largest candidate within `cap`, freed to the system afterwards.
/// When that workspace cannot be allocated or the search fails, the heuristics decide.
template <typename Dir>
std::vector<ConvAlgoCandidate> measured_candidates(cudnnHandle_t h, Stream stream, const Descriptors& d,
                                                   const Operands& o, Device dev, size_t cap) {
  size_t bytes = 0;
  for (int a = 0; a < Dir::kAlgoCount; ++a) {
    size_t b = 0;
    if (Dir::workspace_size(h, d, a, &b) == CUDNN_STATUS_SUCCESS && b <= cap) bytes = std::max(bytes, b);
  }
  int max_count = 0;
  DRCNN_CUDNN_CHECK(Dir::max_count(h, &max_count));
  std::vector<typename Dir::Perf> perf(size_t(std::max(max_count, 1)));
  int returned = 0;
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  try {
    const UncachedBlock ws(allocator_for(dev), bytes, stream);
    st = call_with_flush_retry(
        allocator_for(dev), [&] { return Dir::find(h, d, o, max_count, &returned, perf.data(), ws.get(), bytes); },
        cudnn_out_of_memory);
  } catch (const Error&) {  // the search workspace could not be allocated: no search
    return heuristic_candidates<Dir>(h, d, cap);
  }
  if (st != CUDNN_STATUS_SUCCESS) {
    cudaGetLastError();
    return heuristic_candidates<Dir>(h, d, cap);
  }
  std::vector<ConvAlgoCandidate> all;
  for (int i = 0; i < returned; ++i) all.push_back(to_candidate(perf[size_t(i)], perf[size_t(i)].memory));
  std::vector<ConvAlgoCandidate> out = detail::order_conv_algos(all, Dir::kPreferDeterministic, bytes);
  return out.empty() ? heuristic_candidates<Dir>(h, d, cap) : out;
}

/// Runs one convolution direction: the cached candidate list (built on a miss), tried in order
/// until one runs; the list is stored back with the one that ran first.
template <typename Dir, typename T>
void run_direction(cudnnHandle_t h, Stream stream, const Descriptors& d, cudnnDataType_t dt, const Conv2dGeometry& g,
                   const Operands& o) {
  const bool benchmark = ::drcnn::cuda::cudnn_benchmark();
  const Key key = make_key(Dir::kDir, dt, g, o.a, o.b, o.out, benchmark);
  const Device dev = current_device();
  Allocator& alloc = allocator_for(dev);
  std::vector<ConvAlgoCandidate> list;
  if (!algo_cache().find(key, list)) {
    const size_t cap = workspace_cap(dev);
    list = benchmark ? measured_candidates<Dir>(h, stream, d, o, dev, cap) : heuristic_candidates<Dir>(h, d, cap);
  }
  const T one = T(1), zero = T(0);
  detail::run_first_working(list, Dir::kOp, [&](const ConvAlgoCandidate& c) -> std::string {
    ScratchBuffer<uint8_t> ws;
    if (c.workspace > 0) {
      try {
        ws = ScratchBuffer<uint8_t>(int64_t(c.workspace), dev, stream);
      } catch (const Error& e) {
        return std::string("workspace not allocated: ") + e.what();
      }
    }
    DRCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, cudnnMathType_t(c.math_type)));
    const cudnnStatus_t st = call_with_flush_retry(
        alloc, [&] { return Dir::run(h, d, o, c.algo, ws.data(), c.workspace, &one, &zero); }, cudnn_out_of_memory);
    if (st == CUDNN_STATUS_SUCCESS) return {};
    cudaGetLastError();  // a launch error cuDNN left behind belongs to this attempt
    return std::string(cudnnGetErrorString(st)) + " (status " + std::to_string(int(st)) + ")";
  });
  algo_cache().store(key, list);
}
}  // namespace

template <typename T>
void conv2d_forward(Stream s, const Conv2dForwardLaunch<T>& l) {
  const Conv2dGeometry& g = l.g;
  if (g.n == 0) return;
  const cudnnDataType_t dt = data_type<T>();
  cudnnHandle_t h = cudnn_detail::handle(s);
  Descriptors d(g, dt);
  run_direction<ForwardDir, T>(h, s, d, dt, g, Operands{l.input, l.weight, l.out});
  const T one = T(1);
  if (l.bias) DRCNN_CUDNN_CHECK(cudnnAddTensor(h, &one, d.bias.d, l.bias, &one, d.y.d, l.out));
}

template <typename T>
void conv2d_backward(Stream s, const Conv2dBackwardLaunch<T>& l) {
  const Conv2dGeometry& g = l.g;
  const auto stream = static_cast<cudaStream_t>(s.handle);
  if (g.n == 0) {  // nothing flows: zero weight and bias gradients (grad_input is empty)
    if (l.grad_weight)
      DRCNN_CUDA_CHECK(cudaMemsetAsync(l.grad_weight, 0, size_t(g.c_out * g.k_g()) * sizeof(T), stream));
    if (l.grad_bias) DRCNN_CUDA_CHECK(cudaMemsetAsync(l.grad_bias, 0, size_t(g.c_out) * sizeof(T), stream));
    return;
  }
  const cudnnDataType_t dt = data_type<T>();
  cudnnHandle_t h = cudnn_detail::handle(s);
  Descriptors d(g, dt);
  const T one = T(1), zero = T(0);
  if (l.grad_bias) DRCNN_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, d.y.d, l.grad_out, &zero, d.bias.d, l.grad_bias));
  if (l.grad_input) run_direction<BackwardDataDir, T>(h, s, d, dt, g, Operands{l.weight, l.grad_out, l.grad_input});
  if (l.grad_weight) run_direction<BackwardFilterDir, T>(h, s, d, dt, g, Operands{l.input, l.grad_out, l.grad_weight});
}

template void conv2d_forward<float>(Stream, const Conv2dForwardLaunch<float>&);
template void conv2d_forward<double>(Stream, const Conv2dForwardLaunch<double>&);
template void conv2d_backward<float>(Stream, const Conv2dBackwardLaunch<float>&);
template void conv2d_backward<double>(Stream, const Conv2dBackwardLaunch<double>&);
}  // namespace drcnn::ops::cuda
