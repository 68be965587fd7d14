// Tensor: a dtype-erased handle over Storage + shape + strides + offset. Copies of a Tensor
// share storage (like torch.Tensor); deep copies are explicit (clone, to, contiguous).
#pragma once
#include "drcnn/core/error.h"  // DRCNN_HAVE_FMT
#if DRCNN_HAVE_FMT
#include <fmt/format.h>
#endif

#include <memory>
#include <string>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/core/generator.h"
#include "drcnn/core/shape.h"
#include "drcnn/core/storage.h"
#include "drcnn/core/tensor_view.h"

namespace drcnn {

class Tensor {
 public:
  /// An undefined tensor (no storage); defined() is false.
  Tensor() = default;

  // ------------------------------------------------------------------ factories
  /// Uninitialised tensor. Requires: every extent >= 0.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  /// Every element set to `value` (converted to dtype as a static_cast would).
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  /// [start, end) in steps of `step` (like torch.arange). Requires: step != 0.
  static Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Int64,
                       Device device = Device::cpu());
  static Tensor arange(int64_t n, DType dtype = DType::Int64, Device device = Device::cpu()) {
    return arange(0.0, double(n), 1.0, dtype, device);
  }
  /// Copies `values` into a new tensor of `shape` (numel must match) on `device`.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values) {
    return from_vector(values, Shape{int64_t(values.size())});
  }
  /// Uniform [0, 1) (float32/float64) from `gen`; advances gen.offset by numel.
  static Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  /// Standard normal (Box-Muller) from `gen`; advances gen.offset by numel.
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  /// Wraps existing storage (no copy). Checks that the strided extent fits in the storage.
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Shape& shape, const Strides& strides,
                             int64_t offset, DType dtype);

  // ------------------------------------------------------------------ properties
  bool defined() const { return m_storage != nullptr; }
  const Shape& shape() const { return m_shape; }
  const Strides& strides() const { return m_strides; }
  int ndim() const { return m_shape.ndim(); }
  /// Extent of `dim` (negative counts from the end).
  int64_t size(int dim) const;
  int64_t stride(int dim) const;
  int64_t numel() const { return m_shape.numel(); }
  int64_t offset() const { return m_offset; }
  DType dtype() const { return m_dtype; }
  Device device() const { return m_device; }
  size_t element_size() const { return dtype_size(m_dtype); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return m_storage; }
  /// Declares that work queued on `stream` (a stream of this tensor's CUDA device other than
  /// the one it was allocated on) reads or writes this tensor's storage: when the storage is
  /// freed, the caching allocator reuses it only after that work has completed
  /// (Allocator::record_stream; docs/cuda-memory.md). A no-op for CPU tensors.
  void record_stream(Stream stream) const;
  /// Address of element 0 (storage + offset).
  void* data_ptr() const;
  /// Typed address of element 0; checks the dtype.
  template <typename T>
  T* data() const {
    check_dtype(dtype_of_v<T>, "Tensor::data");
    return static_cast<T*>(data_ptr());
  }

  // ------------------------------------------------------------------ views (share storage)
  /// Same elements in a new shape; a view when the strides allow it, else a contiguous copy.
  /// One extent may be -1 (inferred).
  Tensor reshape(const Shape& shape) const;
  /// `length` elements of `dim` starting at `start`.
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  /// Elements start, start+step, ... < end of `dim` (python slice rules for negative start/end).
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;
  /// Removes `dim` by taking index `index` of it.
  Tensor select(int dim, int64_t index) const;
  /// Reorders dimensions: result dim i is input dim perm[i].
  Tensor permute(const std::vector<int>& perm) const;
  Tensor transpose(int dim0, int dim1) const;
  /// Broadcasts size-1 dims (stride 0) to `shape`; may add leading dims. -1 keeps an extent.
  Tensor expand(const Shape& shape) const;
  Tensor squeeze(int dim) const;
  /// Removes every size-1 dim.
  Tensor squeeze() const;
  Tensor unsqueeze(int dim) const;
  /// Merges dims start..end (inclusive) into one.
  Tensor flatten(int start_dim = 0, int end_dim = -1) const;

  // ------------------------------------------------------------------ copies
  /// This tensor when contiguous, else a contiguous copy.
  Tensor contiguous() const;
  /// Deep, contiguous copy on the same device.
  Tensor clone() const;
  /// Deep copy to `device` (contiguous). Same device returns *this (no copy).
  Tensor to(Device device) const;
  /// Converted copy to `dtype` (static_cast semantics; float -> int truncates toward zero;
  /// bool is value != 0). Same dtype returns *this.
  Tensor to(DType dtype) const;
  /// Copies `src` into this tensor in place (src broadcast to this shape; any dtype or device).
  Tensor& copy_(const Tensor& src);
  /// Sets every element to `value`.
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // ------------------------------------------------------------------ element access (host)
  /// The single element of a 1-element tensor, converted to T (copies from the GPU).
  template <typename T>
  T item() const;
  /// All elements in row-major order, converted to T (copies from the GPU).
  template <typename T>
  std::vector<T> to_vector() const;

  // ------------------------------------------------------------------ kernel views
  /// Rank-N strided view; checks dtype (T may be const) and rank.
  template <typename T, int N>
  TensorView<T, N> view() const {
    check_dtype(dtype_of_v<T>, "Tensor::view");
    DRCNN_CHECK(ndim() == N, "Tensor::view: tensor has ", ndim(), " dimensions, view asked for ", N);
    TensorView<T, N> v;
    v.data = static_cast<T*>(data_ptr());
    for (int d = 0; d < N; ++d) {
      v.size[d] = m_shape[d];
      v.stride[d] = m_strides[d];
    }
    return v;
  }
  /// Rank-1 view of all elements; requires a contiguous tensor.
  template <typename T>
  TensorView<T, 1> flat() const {
    check_dtype(dtype_of_v<T>, "Tensor::flat");
    DRCNN_CHECK(is_contiguous(), "Tensor::flat: tensor of shape ", m_shape, " is not contiguous");
    return TensorView<T, 1>{static_cast<T*>(data_ptr()), {numel()}, {1}};
  }

  /// True when both handles refer to the same storage, offset, shape and strides.
  bool is_same(const Tensor& other) const;

 private:
  void check_dtype(DType expected, const char* op) const;
  Tensor as_strided(const Shape& shape, const Strides& strides, int64_t offset) const;

  std::shared_ptr<Storage> m_storage;
  Shape m_shape;
  Strides m_strides;
  int64_t m_offset = 0;
  DType m_dtype = DType::Float32;
  Device m_device;
};

/// "tensor([[1, 2], [3, 4]], shape=[2, 2], dtype=float32, device=cpu)"; long tensors elide.
std::string to_string(const Tensor& t, int max_elements = 64);

// ------------------------------------------------------------------ template definitions
namespace detail {
/// Copies `bytes` from host memory into `dst` (on any device).
void copy_host_to(const Tensor& dst, const void* src, size_t bytes);
}  // namespace detail

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  DRCNN_CHECK(int64_t(values.size()) == shape.numel(), "Tensor::from_vector: ", values.size(),
              " values cannot fill shape ", shape, " (", shape.numel(), " elements)");
  Tensor t = empty(shape, dtype_of_v<T>, device);
  if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> is packed: unpack to bytes
    std::vector<uint8_t> bytes(values.begin(), values.end());
    detail::copy_host_to(t, bytes.data(), bytes.size());
  } else {
    detail::copy_host_to(t, values.data(), values.size() * sizeof(T));
  }
  return t;
}

}  // namespace drcnn

#if DRCNN_HAVE_FMT
template <>
struct fmt::formatter<drcnn::Tensor> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(const drcnn::Tensor& t, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "{}", drcnn::to_string(t));
  }
};
#endif
