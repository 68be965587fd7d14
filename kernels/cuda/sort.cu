// CUDA row sort: CUB radix sorts (stable) over canonicalised keys, then the original values
// gathered through the sorted positions. Canonicalising maps every NaN to +qNaN (radix order
// puts it above +inf, i.e. greatest, as on the CPU) and -0.0 to +0.0 (so +/-0 tie and keep
// their order, as std::stable_sort does); gathering afterwards restores the exact input bits
// in the values. Three strategies, all stable and so all giving the CPU's order:
//   - one row (the sampler's ~270k keys, NMS's scores): cub::DeviceRadixSort over the whole
//     device, not one block;
//   - few long rows (kFewRows or fewer, each kLongRow or longer): two device-wide passes, as
//     an LSD radix sort would do them: (key, global index) pairs sorted by key, then stably by
//     row (only ceil(log2(rows)) bits), which leaves each row's keys in key order with ties
//     by index;
//   - otherwise cub::DeviceSegmentedRadixSort (one block per row; fine for many rows).
// The thresholds are a first guess (no GPU to benchmark on when written; see docs/cuda.md).
// Covered by tests/ops/test_sort.cpp (CPU semantics) and tests/cuda/test_cuda_parity.cpp
// (every strategy vs the CPU, exactly).
#include <cub/device/device_radix_sort.cuh>
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
// Row of each globally sorted index, as a radix key: global / len.
struct RowOfIndex {
  const int64_t* global;
  uint32_t* row;
  int64_t len;
  DRCNN_HD void operator()(int64_t i) const { row[i] = uint32_t(global[i] / len); }
};
// Position in its row of each row-sorted global index: global % len.
struct PositionInRow {
  const int64_t* global;
  int64_t* position;
  int64_t len;
  DRCNN_HD void operator()(int64_t i) const { position[i] = global[i] % len; }
};
template <typename T>
struct GatherRowValues {
  const T* keys;
  const int64_t* positions;
  T* values;
  int64_t len;
  DRCNN_HD void operator()(int64_t i) const { values[i] = keys[(i / len) * len + positions[i]]; }
};
constexpr int64_t kFewRows = 64, kLongRow = 8192;

/// Bits needed for the values 0 .. count - 1.
int bits_for(int64_t count) {
  int b = 1;
  while ((int64_t(1) << b) < count) ++b;
  return b;
}

/// Runs a CUB call twice: size query (temp == nullptr), then with scratch from the allocator.
template <typename F>
void with_temp(Device dev, Stream s, F&& call) {
  size_t temp_bytes = 0;
  call(nullptr, temp_bytes);
  ScratchBuffer<uint8_t> temp(int64_t(temp_bytes) + 1, dev, s);
  call(temp.data(), temp_bytes);
#if DRCNN_SYNC_DEBUG
  DRCNN_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(s.handle)));  // CUB's own launches
#endif
}

/// Stable device-wide sort of (keys, values) pairs, ascending or descending.
template <typename K, typename V>
void device_sort_pairs(Device dev, Stream s, const K* keys_in, K* keys_out, const V* values_in, V* values_out,
                       int64_t n, bool descending, int end_bit) {
  const cudaStream_t stream = to_cuda(s);
  with_temp(dev, s, [&](void* temp, size_t& bytes) {
    if (descending) {
      DRCNN_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(temp, bytes, keys_in, keys_out, values_in, values_out,
                                                                 int(n), 0, end_bit, stream));
    } else {
      DRCNN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, bytes, keys_in, keys_out, values_in, values_out, int(n), 0,
                                                       end_bit, stream));
    }
  });
}
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
    parallel_for_cuda(stream, n, CanonicalKey<T>{keys, canon.data()});
    constexpr int kKeyBits = int(sizeof(T) * 8);
    if (l.rows == 1) {
      parallel_for_cuda(stream, n, RowPosition{positions.data(), l.len});
      device_sort_pairs(dev, s, canon.data(), sorted_keys.data(), positions.data(), l.indices, n, l.descending, kKeyBits);
    } else if (l.rows <= kFewRows && l.len >= kLongRow) {
      ScratchBuffer<int64_t> by_key(n, dev, s);
      ScratchBuffer<uint32_t> row(n, dev, s), sorted_row(n, dev, s);
      parallel_for_cuda(stream, n, RowPosition{positions.data(), n});  // global index
      device_sort_pairs(dev, s, canon.data(), sorted_keys.data(), positions.data(), by_key.data(), n, l.descending,
                        kKeyBits);
      parallel_for_cuda(stream, n, RowOfIndex{by_key.data(), row.data(), l.len});
      device_sort_pairs(dev, s, row.data(), sorted_row.data(), by_key.data(), positions.data(), n, false,
                        bits_for(l.rows));
      parallel_for_cuda(stream, n, PositionInRow{positions.data(), l.indices, l.len});
    } else {
      ScratchBuffer<int32_t> offsets(l.rows + 1, dev, s);
      parallel_for_cuda(stream, n, RowPosition{positions.data(), l.len});
      parallel_for_cuda(stream, l.rows + 1, SegmentOffset{offsets.data(), l.len});
      const int* begin = offsets.data();
      with_temp(dev, s, [&](void* temp, size_t& bytes) {
        if (l.descending) {
          DRCNN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
              temp, bytes, canon.data(), sorted_keys.data(), positions.data(), l.indices, int(n), int(l.rows), begin,
              begin + 1, 0, kKeyBits, stream));
        } else {
          DRCNN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(temp, bytes, canon.data(), sorted_keys.data(),
                                                                    positions.data(), l.indices, int(n), int(l.rows),
                                                                    begin, begin + 1, 0, kKeyBits, stream));
        }
      });
    }
    parallel_for_cuda(stream, n, GatherRowValues<T>{keys, l.indices, static_cast<T*>(l.values), l.len});
  });
}
}  // namespace drcnn::ops::cuda
