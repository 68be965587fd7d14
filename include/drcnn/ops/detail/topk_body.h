// Bodies of the segmented top-k (include/drcnn/ops/topk.h), shared by kernels/cpu/topk.cpp and
// kernels/cuda/topk.cu: the order-preserving key transform and the gather of the first k.
// Both backends sort by (key ascending, index ascending), so their orders are identical:
// the CPU compares (key, index) pairs, CUB's radix sort is stable over index-ordered input.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops {

/// One segmented top-k launch. offsets must be readable by the backend (host for the CPU,
/// device memory for CUDA) and already validated.
struct SegmentTopKLaunch {
  int64_t n = 0;         // scores
  int64_t segments = 0;  // S
  int64_t k = 0;
  bool relative = false;  // indices relative to the segment start (dense form)
  const void* scores = nullptr;
  const int64_t* offsets = nullptr;  // [S + 1]
  void* values = nullptr;            // [S, k]
  int64_t* indices = nullptr;        // [S, k]
  int64_t* counts = nullptr;         // [S]
};

namespace cpu {
void segment_topk(DType dtype, const SegmentTopKLaunch& l);
}
namespace cuda {
void segment_topk(Stream s, DType dtype, const SegmentTopKLaunch& l);
}

namespace detail {

/// Unsigned sort key of a score type: ascending key = descending score.
template <typename T> struct TopKKeyType;
template <> struct TopKKeyType<float> { using type = uint32_t; };
template <> struct TopKKeyType<double> { using type = uint64_t; };

/// Ascending key order is descending score order; -0.0 maps like +0.0; every NaN maps to the
/// largest key (last), above -inf.
template <typename T>
DRCNN_HD typename TopKKeyType<T>::type topk_key(T x) {
  using K = typename TopKKeyType<T>::type;
  constexpr K sign = K(1) << (sizeof(K) * 8 - 1);
  if (x != x) return ~K(0);
  if (x == T(0)) x = T(0);  // -0 -> +0
  K u;
  memcpy(&u, &x, sizeof(K));
  u = (u & sign) ? ~u : (u | sign);  // ascending order of the scores
  return ~u;                         // descending
}

/// keys[i] = topk_key(scores[i]); positions[i] = i (the radix sort's stable payload).
template <typename T>
struct TopKKeyBody {
  const T* scores;
  typename TopKKeyType<T>::type* keys;
  int64_t* positions;  // may be null (CPU)
  DRCNN_HD void operator()(int64_t i) const {
    keys[i] = topk_key(scores[i]);
    if (positions) positions[i] = i;
  }
};

/// Output (s, j), i = s * kk + j with kk = max(k, 1): order holds, for each segment, its
/// positions sorted from offsets[s] on (at least the first min(k, len) of them).
template <typename T>
struct TopKGatherBody {
  const T* scores;
  const int64_t* offsets;
  const int64_t* order;
  T* values;
  int64_t* indices;
  int64_t* counts;
  int64_t k, kk;
  bool relative;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t s = i / kk, j = i % kk;
    const int64_t begin = offsets[s], len = offsets[s + 1] - begin;
    const int64_t count = hd::min(k, len);
    if (j == 0) counts[s] = count;
    if (j >= k) return;  // k == 0: only the count
    if (j < count) {
      const int64_t p = order[begin + j];
      values[s * k + j] = scores[p];
      indices[s * k + j] = relative ? p - begin : p;
    } else {
      values[s * k + j] = -std::numeric_limits<T>::infinity();
      indices[s * k + j] = -1;
    }
  }
};

/// Runs the gather over every (segment, slot) with launch(n, body).
template <typename T, typename Launch>
void run_topk_gather(const SegmentTopKLaunch& l, const int64_t* order, Launch&& launch) {
  const int64_t kk = l.k > 0 ? l.k : 1;
  launch(l.segments * kk, TopKGatherBody<T>{static_cast<const T*>(l.scores), l.offsets, order,
                                            static_cast<T*>(l.values), l.indices, l.counts, l.k, kk, l.relative});
}
}  // namespace detail
}  // namespace drcnn::ops
