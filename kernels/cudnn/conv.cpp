// CUDA conv2d through cuDNN 9's legacy convolution API (compiled as C++, not nvcc).
// - Descriptors are built per call (cheap host structs; RAII below).
// - Algorithms: chosen once per (device, dtype, geometry, direction) by cudnnFind*AlgorithmEx
//   (cuDNN runs the candidates on the real buffers) and cached in a mutex-guarded map. Among
//   the results we take the fastest that succeeded, fits the workspace cap and does not use
//   tensor-core math; for backward data/filter a deterministic algorithm is preferred when one
//   exists (the fastest overall is used otherwise and the choice is recorded as such).
// - Math type CUDNN_FMA_MATH for every dtype: no TF32 (cuDNN's CUDNN_DEFAULT_MATH permits TF32
//   on Ampere and later), so float32 stays true float32 like the cuBLAS GEMM of this project.
// - Workspaces come from drcnn's caching CUDA allocator (a uint8 Tensor on the stream).
// - Bias: cudnnAddTensor (forward), cudnnConvolutionBackwardBias (gradient).
// Covered on a GPU by tests/cuda/test_cuda_conv.cpp (CPU parity). docs/kernels/conv2d.md.
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "cuda/cuda_check.h"
#include "cudnn/handle.h"
#include "drcnn/core/error.h"
#include "drcnn/core/storage.h"
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

/// The chosen algorithm of one key.
struct Choice {
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

using Key = std::array<int64_t, 19>;
Key make_key(Direction dir, cudnnDataType_t dt, const Conv2dGeometry& g) {
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  return {int64_t(dir), int64_t(dt), device, g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.ho, g.wo,
          g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups};
}

/// Thread-safe cache of chosen algorithms. Two threads missing on one key at once both run
/// the search; the first result stored wins (both are valid choices).
class AlgoCache {
 public:
  bool find(const Key& k, Choice& c) {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_map.find(k);
    if (it == m_map.end()) return false;
    c = it->second;
    return true;
  }
  Choice insert(const Key& k, const Choice& c) {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_map.emplace(k, c).first->second;
  }

 private:
  std::mutex m_mutex;
  std::map<Key, Choice> m_map;
};
AlgoCache& algo_cache() {
  static AlgoCache cache;
  return cache;
}

/// Picks from cuDNN's perf results (sorted fastest first): succeeded, within the workspace cap,
/// no tensor-op math; deterministic first when `prefer_deterministic`.
template <typename Perf>
Choice pick(const std::vector<Perf>& perf, int returned, bool prefer_deterministic, const char* what) {
  auto usable = [&](const Perf& p) {
    return p.status == CUDNN_STATUS_SUCCESS && p.memory <= kMaxWorkspace && p.mathType != CUDNN_TENSOR_OP_MATH &&
           p.mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  };
  for (int pass = prefer_deterministic ? 0 : 1; pass < 2; ++pass) {
    for (int i = 0; i < returned; ++i) {
      const Perf& p = perf[size_t(i)];
      if (!usable(p)) continue;
      if (pass == 0 && p.determinism != CUDNN_DETERMINISTIC) continue;
      return Choice{int(p.algo), p.memory, p.mathType};
    }
  }
  DRCNN_FAIL("conv2d: cuDNN found no usable ", what, " algorithm (", returned, " candidates)");
}

/// A workspace of `bytes` from the caching allocator, on the current device's current stream
/// (no memory, and a null pointer, for 0 bytes).
ScratchBuffer<uint8_t> workspace(size_t bytes) {
  if (bytes == 0) return {};
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  const Device dev = Device::cuda(device);
  return ScratchBuffer<uint8_t>(int64_t(bytes), dev, ::drcnn::cuda::current_stream(dev));
}
void* ptr(const ScratchBuffer<uint8_t>& ws) { return ws.data(); }

/// Workspace for an algorithm search: the largest any algorithm of this convolution asks for
/// (algorithms that do not support it are skipped), capped at kMaxWorkspace.
template <typename SizeOf>
size_t search_workspace(int algo_count, const SizeOf& size_of) {
  size_t most = 0;
  for (int a = 0; a < algo_count; ++a) {
    size_t bytes = 0;
    if (size_of(a, &bytes) == CUDNN_STATUS_SUCCESS && bytes <= kMaxWorkspace) most = std::max(most, bytes);
  }
  return most;
}

Choice forward_algo(cudnnHandle_t h, const Descriptors& d, const Key& key, const void* x, const void* w, void* y) {
  Choice c;
  if (algo_cache().find(key, c)) return c;
  int max_count = 0;
  DRCNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
  int returned = 0;
  const size_t bytes = search_workspace(CUDNN_CONVOLUTION_FWD_ALGO_COUNT, [&](int a, size_t* b) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.d, d.w.d, d.conv.d, d.y.d, cudnnConvolutionFwdAlgo_t(a), b);
  });
  const ScratchBuffer<uint8_t> ws = workspace(bytes);
  DRCNN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x.d, x, d.w.d, w, d.conv.d, d.y.d, y, max_count,
                                                           &returned, perf.data(), ptr(ws), bytes));
  return algo_cache().insert(key, pick(perf, returned, false, "forward"));
}

Choice backward_data_algo(cudnnHandle_t h, const Descriptors& d, const Key& key, const void* w, const void* dy,
                          void* dx) {
  Choice c;
  if (algo_cache().find(key, c)) return c;
  int max_count = 0;
  DRCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
  int returned = 0;
  const size_t bytes = search_workspace(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, [&](int a, size_t* b) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.d, d.y.d, d.conv.d, d.x.d,
                                                        cudnnConvolutionBwdDataAlgo_t(a), b);
  });
  const ScratchBuffer<uint8_t> ws = workspace(bytes);
  DRCNN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.d, w, d.y.d, dy, d.conv.d, d.x.d, dx,
                                                                max_count, &returned, perf.data(), ptr(ws), bytes));
  return algo_cache().insert(key, pick(perf, returned, true, "backward-data"));
}

Choice backward_filter_algo(cudnnHandle_t h, const Descriptors& d, const Key& key, const void* x, const void* dy,
                            void* dw) {
  Choice c;
  if (algo_cache().find(key, c)) return c;
  int max_count = 0;
  DRCNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
  int returned = 0;
  const size_t bytes = search_workspace(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, [&](int a, size_t* b) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.d, d.y.d, d.conv.d, d.w.d,
                                                          cudnnConvolutionBwdFilterAlgo_t(a), b);
  });
  const ScratchBuffer<uint8_t> ws = workspace(bytes);
  DRCNN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.d, x, d.y.d, dy, d.conv.d, d.w.d, dw,
                                                                  max_count, &returned, perf.data(), ptr(ws),
                                                                  bytes));
  return algo_cache().insert(key, pick(perf, returned, true, "backward-filter"));
}
}  // namespace

template <typename T>
void conv2d_forward(Stream s, const Conv2dForwardLaunch<T>& l) {
  const Conv2dGeometry& g = l.g;
  if (g.n == 0) return;
  const cudnnDataType_t dt = data_type<T>();
  cudnnHandle_t h = cudnn_detail::handle(s);
  Descriptors d(g, dt);
  const Choice c = forward_algo(h, d, make_key(Direction::Forward, dt, g), l.input, l.weight, l.out);
  DRCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
  const ScratchBuffer<uint8_t> ws = workspace(c.workspace);
  const T one = T(1), zero = T(0);
  DRCNN_CUDNN_CHECK(cudnnConvolutionForward(h, &one, d.x.d, l.input, d.w.d, l.weight, d.conv.d,
                                            cudnnConvolutionFwdAlgo_t(c.algo), ptr(ws), c.workspace, &zero, d.y.d,
                                            l.out));
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
  if (l.grad_input) {
    const Choice c = backward_data_algo(h, d, make_key(Direction::BackwardData, dt, g), l.weight, l.grad_out,
                                        l.grad_input);
    DRCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
    const ScratchBuffer<uint8_t> ws = workspace(c.workspace);
    DRCNN_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, d.w.d, l.weight, d.y.d, l.grad_out, d.conv.d,
                                                   cudnnConvolutionBwdDataAlgo_t(c.algo), ptr(ws), c.workspace, &zero,
                                                   d.x.d, l.grad_input));
  }
  if (l.grad_weight) {
    const Choice c = backward_filter_algo(h, d, make_key(Direction::BackwardFilter, dt, g), l.input, l.grad_out,
                                          l.grad_weight);
    DRCNN_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
    const ScratchBuffer<uint8_t> ws = workspace(c.workspace);
    DRCNN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x.d, l.input, d.y.d, l.grad_out, d.conv.d,
                                                     cudnnConvolutionBwdFilterAlgo_t(c.algo), ptr(ws), c.workspace,
                                                     &zero, d.w.d, l.grad_weight));
  }
}

template void conv2d_forward<float>(Stream, const Conv2dForwardLaunch<float>&);
template void conv2d_forward<double>(Stream, const Conv2dForwardLaunch<double>&);
template void conv2d_backward<float>(Stream, const Conv2dBackwardLaunch<float>&);
template void conv2d_backward<double>(Stream, const Conv2dBackwardLaunch<double>&);
}  // namespace drcnn::ops::cuda
