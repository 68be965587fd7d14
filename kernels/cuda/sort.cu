// CUDA row sort: CUB's segmented radix sort (stable) over canonicalised keys, then the
// original values gathered through the sorted positions. Canonicalising maps every NaN to
// +qNaN (radix order puts it above +inf, i.e. greatest, as on the CPU) and -0.0 to +0.0 (so
// +/-0 tie and keep their order, as std::stable_sort does); gathering afterwards restores the
// exact input bits in the values. Covered by tests/ops/test_sort.cpp (CPU semantics) and
// tests/cuda/test_cuda_parity.cpp.
#include <cub/device/device_segmented_radix_sort.cuh>

#include <climits>

#include "cuda/launch.cuh"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/elementwise_body.h"
#include "drcnn/ops/launch.h"

namespace drcnn::ops::cuda {
namespace {
using cuda_detail::parallel_for_cuda;
using cuda_detail::to_cuda;

template <typename T>
struct CanonicalKey {
  const T* in;
  T* out;
  DRCNN_HD void operator()(int64_t i) const {
    T v = in[i];
    if constexpr (std::is_floating_point_v<T>) {
      if (v != v) v = T(NAN);  // +qNaN
      if (v == T(0)) v = T(0);  // -0 -> +0
    }
    out[i] = v;
  }
};
// position-in-row for every element: i % len
struct RowPosition {
  int64_t* out;
  int64_t len;
  DRCNN_HD void operator()(int64_t i) const { out[i] = i % len; }
};
struct SegmentOffset {
  int* out;
  int64_t len;
  DRCNN_HD void operator()(int64_t i) const { out[i] = int(i * len); }
};
template <typename T>
struct GatherRowValues {
  const T* keys;
  const int64_t* positions;
  T* values;
  int64_t len;
  DRCNN_HD void operator()(int64_t i) const { values[i] = keys[(i / len) * len + positions[i]]; }
};
}  // namespace

void sort(Stream s, DType dtype, const SortLaunch& l) {
  const int64_t n = l.rows * l.len;
  DRCNN_CHECK(n <= INT_MAX, "sort: ", n, " elements exceed the CUDA sort's limit of ", INT_MAX);
  const cudaStream_t stream = to_cuda(s);
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  const Device dev = Device::cuda(device);
  dispatch_arithmetic(dtype, "sort", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* keys = static_cast<const T*>(l.keys);
    ScratchBuffer<T> canon(n, dev, s);
    ScratchBuffer<T> sorted_keys(n, dev, s);
    ScratchBuffer<int64_t> positions(n, dev, s);
    ScratchBuffer<int32_t> offsets(l.rows + 1, dev, s);
    parallel_for_cuda(stream, n, CanonicalKey<T>{keys, canon.data()});
    parallel_for_cuda(stream, n, RowPosition{positions.data(), l.len});
    parallel_for_cuda(stream, l.rows + 1, SegmentOffset{offsets.data(), l.len});
    const int* begin = offsets.data();
    size_t temp_bytes = 0;
    auto run = [&](void* temp) {
      if (l.descending) {
        DRCNN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
            temp, temp_bytes, canon.data(), sorted_keys.data(), positions.data(), l.indices, int(n),
            int(l.rows), begin, begin + 1, 0, int(sizeof(T) * 8), stream));
      } else {
        DRCNN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
            temp, temp_bytes, canon.data(), sorted_keys.data(), positions.data(), l.indices, int(n),
            int(l.rows), begin, begin + 1, 0, int(sizeof(T) * 8), stream));
      }
    };
    run(nullptr);  // size query
    ScratchBuffer<uint8_t> temp(int64_t(temp_bytes) + 1, dev, s);
    run(temp.data());
#if DRCNN_SYNC_DEBUG
    DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));  // CUB's own launches are not covered by parallel_for_cuda
#endif
    parallel_for_cuda(stream, n, GatherRowValues<T>{keys, l.indices, static_cast<T*>(l.values), l.len});
  });
}
}  // namespace drcnn::ops::cuda
