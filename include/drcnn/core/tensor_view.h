// TensorView<T, N>: the non-owning, trivially copyable view that kernels receive by value.
#pragma once
#include <cstdint>
#include <type_traits>

#include "drcnn/core/macros.h"

namespace drcnn {

/// Most dimensions a tensor may have.
inline constexpr int kMaxDims = 8;

/// N-dimensional strided view (strides in elements). T may be const.
template <typename T, int N>
struct TensorView {
  T* data;
  int64_t size[N];
  int64_t stride[N];

  template <typename... I>
  DRCNN_HD T& operator()(I... idx) const {
    static_assert(sizeof...(I) == N, "index count must equal rank");
    const int64_t ix[N] = {int64_t(idx)...};
    int64_t off = 0;
    for (int d = 0; d < N; ++d) off += ix[d] * stride[d];
    return data[off];
  }
  DRCNN_HD int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < N; ++d) n *= size[d];
    return n;
  }
  /// The same view with const elements.
  template <typename U = T, typename = std::enable_if_t<!std::is_const_v<U>>>
  DRCNN_HD operator TensorView<const U, N>() const {
    TensorView<const T, N> v;
    v.data = data;
    for (int d = 0; d < N; ++d) {
      v.size[d] = size[d];
      v.stride[d] = stride[d];
    }
    return v;
  }
};
static_assert(std::is_trivially_copyable_v<TensorView<float, 4>>);
}  // namespace drcnn
