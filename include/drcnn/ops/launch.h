// Backend launchers of the tensor core's kernels: declarations only (no CUDA types).
// The dispatchers in src/ops/ check inputs, pick the device and call these; the
// definitions live in kernels/cpu/*.cpp and kernels/cuda/*.cu and run the bodies of ops/detail.
#pragma once
#include <cstddef>
#include <cstdint>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/ops/detail/offset_calc.h"

namespace drcnn::ops {

enum class UnaryKind { Neg, Abs, Exp, Log, Sqrt, Relu, Sigmoid, AddScalar, MulScalar, PowScalar, Clamp };
enum class BinaryKind {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,       // same dtype out
  Eq, Ne, Lt, Le, Gt, Ge,                          // bool out
  ReluBackward, SigmoidBackward                    // (grad, saved) -> grad in
};
constexpr bool is_comparison(BinaryKind k) { return k >= BinaryKind::Eq && k <= BinaryKind::Ge; }

/// One elementwise launch: n output elements; operand 0 is the output, 1..3 the inputs;
/// scalar[] carries op parameters (clamp bounds, exponent, fill value...).
struct ElementwiseLaunch {
  int64_t n = 0;
  detail::OffsetCalc<4> oc{};
  void* ptr[4] = {nullptr, nullptr, nullptr, nullptr};
  double scalar[2] = {0.0, 0.0};
};

/// Contiguous reduction of x viewed as [outer, R, inner] into out [outer, inner].
/// last_R: how many of the R elements are valid for the last outer row (== R except for the
/// chunked first stage of a full reduction, where inner == 1).
enum class ReduceKind { Sum, Mean, Max, Min, ArgMax, ArgMin };
struct ReduceLaunch {
  int64_t outer = 0, R = 0, inner = 0, last_R = 0;
  const void* in = nullptr;
  void* out = nullptr;   // dtype of x, or int64 for ArgMax/ArgMin
  double scale = 1.0;    // applied to the result (Mean: 1/R of the whole reduction)
};

/// Gather along one dim, seen as [slices, J]: out(s, j) = in(s, index(s, j)).
/// Also index_select (index offsets in slice space are 0). Out-of-range indices set *error
/// to 1 and leave that output untouched; the dispatcher turns the flag into a drcnn::Error.
struct IndexLaunch {
  int64_t slices = 0, J = 0, dim_size = 0;
  detail::OffsetCalc<3> slice_oc{};  // operands: 0 = out/self, 1 = in/src, 2 = index
  int64_t j_stride[3] = {0, 0, 0};   // per-operand stride along the indexed dim (0 unused for self)
  int64_t self_dim_stride = 0;       // stride of the indexed dim in the tensor indexed by index()
  void* out = nullptr;
  const void* in = nullptr;
  const int64_t* index = nullptr;
  int* error = nullptr;
};

/// Row-major GEMM, batched: C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b], with
/// op(A) M x K, op(B) K x N, C M x N; lda/ldb/ldc are row strides (elements).
template <typename T>
struct GemmLaunch {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  T alpha = T(1), beta = T(0);
  const T* a = nullptr;
  int64_t lda = 0;
  const T* b = nullptr;
  int64_t ldb = 0;
  T* c = nullptr;
  int64_t ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  /// CPU float32 only: bfloat16 operands with float32 accumulation (ops/cpu_precision.h; matmul
  /// sets it when selected). Ignored elsewhere.
  bool bf16 = false;
};

/// Sorts each row of a contiguous [rows, len] tensor (stable; NaN greatest), writing the
/// sorted values and their int64 positions in the row.
struct SortLaunch {
  int64_t rows = 0, len = 0;
  bool descending = false;
  const void* keys = nullptr;
  void* values = nullptr;
  int64_t* indices = nullptr;
};

namespace cpu {
void unary(UnaryKind kind, DType dtype, const ElementwiseLaunch& l);
void binary(BinaryKind kind, DType dtype, const ElementwiseLaunch& l);
void where(DType dtype, const ElementwiseLaunch& l);
void fill(DType dtype, const ElementwiseLaunch& l);
void copy(size_t element_size, const ElementwiseLaunch& l);
void cast(DType out, DType in, const ElementwiseLaunch& l);
void arange(DType dtype, int64_t n, void* out, double start, double step);
void random(DType dtype, bool normal, int64_t n, void* out, uint64_t seed, uint64_t offset);
void reduce(ReduceKind kind, DType dtype, const ReduceLaunch& l);
void index_gather(DType dtype, const IndexLaunch& l);
void index_scatter_add(DType dtype, const IndexLaunch& l);
template <typename T> void gemm(const GemmLaunch<T>& l);
void sort(DType dtype, const SortLaunch& l);
}  // namespace cpu

namespace cuda {
void unary(Stream s, UnaryKind kind, DType dtype, const ElementwiseLaunch& l);
void binary(Stream s, BinaryKind kind, DType dtype, const ElementwiseLaunch& l);
void where(Stream s, DType dtype, const ElementwiseLaunch& l);
void fill(Stream s, DType dtype, const ElementwiseLaunch& l);
void copy(Stream s, size_t element_size, const ElementwiseLaunch& l);
void cast(Stream s, DType out, DType in, const ElementwiseLaunch& l);
void arange(Stream s, DType dtype, int64_t n, void* out, double start, double step);
void random(Stream s, DType dtype, bool normal, int64_t n, void* out, uint64_t seed, uint64_t offset);
void reduce(Stream s, ReduceKind kind, DType dtype, const ReduceLaunch& l);
void index_gather(Stream s, DType dtype, const IndexLaunch& l);
void index_scatter_add(Stream s, DType dtype, const IndexLaunch& l);
template <typename T> void gemm(Stream s, const GemmLaunch<T>& l);
void sort(Stream s, DType dtype, const SortLaunch& l);
/// Raw memory movement (cudaMemcpyAsync + for device->host a synchronize).
void memcpy_host_to_device(Stream s, void* dst, const void* src, size_t bytes);
void memcpy_device_to_host(Stream s, void* dst, const void* src, size_t bytes);
void memcpy_device_to_device(Stream s, void* dst, const void* src, size_t bytes);
/// cudaMemcpyAsync host -> device with no wait at all: `src` must be page-locked (host_alloc_pinned)
/// and stay unchanged until the copy is done (an event recorded on `s` after it).
void memcpy_host_to_device_async(Stream s, void* dst, const void* src, size_t bytes);
/// Page-locked host memory (cudaHostAlloc, portable) for asynchronous copies; free with
/// host_free_pinned (never throws).
void* host_alloc_pinned(size_t bytes);
void host_free_pinned(void* p) noexcept;
/// A stream on `device` that does not synchronise with the legacy default stream
/// (cudaStreamNonBlocking); stream_destroy never throws.
Stream stream_create(Device device);
void stream_destroy(Stream s) noexcept;
/// Events without timing: record a point of a stream's work, make another stream wait for it
/// on the device (no host wait), or wait for it on the host.
void* event_create(Device device);
void event_destroy(void* event) noexcept;
void event_record(void* event, Stream s);
void stream_wait_event(Stream s, void* event);
void event_synchronize(void* event);
}  // namespace cuda
}  // namespace drcnn::ops
