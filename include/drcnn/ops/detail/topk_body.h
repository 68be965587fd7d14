// Bodies of the segmented top-k (include/drcnn/ops/topk.h), shared by kernels/cpu/topk.cpp and
// kernels/cuda/topk.cu: the order-preserving key transform and the gather of the first k.
// Both backends sort by (key ascending, index ascending), so their orders are identical:
// the CPU compares (key, index) pairs, CUB's radix sort is stable over index-ordered input.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

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
  /// The same offsets on the host (the dispatcher's validated copy), so a device backend can
  /// plan per segment without reading device memory back; may be null.
  const int64_t* host_offsets = nullptr;
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

// ---- Radix select: the partial top-k (kernels/cuda/topk.cu) ----
// Every segment's k-th smallest key (k clamped to the segment's length) is found one 8-bit
// digit at a time from the most significant: a 256-bin histogram per segment of the digit over
// the keys that match the digits chosen so far, then the bin holding the k-th is chosen
// (RadixSelectStepBody, one thread per segment). After the last digit each segment's prefix is
// its k-th key T and `remaining` says how many keys equal to T belong to its first k; the
// survivors are the keys below T plus the first `remaining` keys equal to T in index order
// (RadixSelectFlagBody, each equal key's rank among its segment's equal ones from an exclusive
// scan). Sorting only the survivors stably by key, then stably by segment, gives exactly each
// segment's first k of the full stable sort. radix_select_host runs the same bodies serially.

/// Segment of position p: the s with offsets[s] <= p < offsets[s + 1] (binary search;
/// offsets[0] == 0 and offsets[S] == n). Empty segments hold no position, so the largest
/// such s is the one.
DRCNN_HD int64_t segment_of(const int64_t* offsets, int64_t segments, int64_t p) {
  int64_t lo = 0, hi = segments;  // answer in [lo, hi)
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (offsets[mid] <= p) lo = mid;
    else hi = mid;
  }
  return lo;
}

/// State of one segment's select: the chosen high digits (prefix under mask) and the rank
/// still sought among the keys that match them (1-based; 0 for an empty segment).
template <typename K>
struct RadixSelectState {
  K prefix = 0;
  K mask = 0;
  int64_t remaining = 0;
};

template <typename K>
DRCNN_HD bool radix_matches(K key, const RadixSelectState<K>& st) {
  return (key & st.mask) == st.prefix;
}

template <typename K>
DRCNN_HD int radix_digit(K key, int shift) {
  return int((key >> shift) & K(0xFF));
}

/// One thread per segment: no digits chosen, remaining = min(k, len).
template <typename K>
struct RadixSelectInitBody {
  const int64_t* offsets;
  RadixSelectState<K>* st;
  int64_t k;
  DRCNN_HD void operator()(int64_t s) const {
    st[s].prefix = 0;
    st[s].mask = 0;
    st[s].remaining = hd::min(k, offsets[s + 1] - offsets[s]);
  }
};

/// One thread per segment: picks the digit at `shift` whose bin holds the remaining-th
/// matching key. 1 <= remaining <= the histogram's total holds by induction from
/// 1 <= min(k, len) <= len; empty segments (remaining 0) are left alone.
template <typename K>
struct RadixSelectStepBody {
  const uint32_t* hist;  // [S, 256] counts of the matching keys' digit
  RadixSelectState<K>* st;
  int shift;
  DRCNN_HD void operator()(int64_t s) const {
    RadixSelectState<K>& t = st[s];
    if (t.remaining <= 0) return;
    const uint32_t* h = hist + s * 256;
    int64_t before = 0;
    for (int b = 0; b < 256; ++b) {
      const int64_t c = h[b];
      if (before + c >= t.remaining) {
        t.remaining -= before;
        t.prefix |= K(b) << shift;
        t.mask |= K(0xFF) << shift;
        return;
      }
      before += c;
    }
  }
};

/// equal[i] = keys[i] == T of i's segment (after every digit, prefix == T).
template <typename K>
struct RadixSelectEqualBody {
  const K* keys;
  const int64_t* offsets;
  int64_t segments;
  const RadixSelectState<K>* st;
  uint32_t* equal;
  DRCNN_HD void operator()(int64_t i) const {
    equal[i] = keys[i] == st[segment_of(offsets, segments, i)].prefix ? 1u : 0u;
  }
};

/// keep[i]: keys below their segment's T, and the segment's first `remaining` keys equal to T
/// (rank = exclusive scan of RadixSelectEqualBody's output, less its value at the segment's
/// start).
template <typename K>
struct RadixSelectFlagBody {
  const K* keys;
  const int64_t* offsets;
  int64_t segments;
  const uint32_t* rank;
  const RadixSelectState<K>* st;
  uint8_t* keep;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t s = segment_of(offsets, segments, i);
    const K key = keys[i], t = st[s].prefix;
    const int64_t r = int64_t(rank[i]) - int64_t(rank[offsets[s]]);
    keep[i] = (key < t || (key == t && r < st[s].remaining)) ? 1 : 0;
  }
};

/// The CUDA partial top-k's bodies run serially on the host, for tests where no device
/// exists: returns `order` as the gather reads it (each segment's first min(k, len) positions,
/// sorted, from offsets[s] on; the rest -1). The device computes the same histograms in
/// parallel with integer atomics, so its choices are the same.
template <typename K>
std::vector<int64_t> radix_select_host(const K* keys, const std::vector<int64_t>& offsets, int64_t k) {
  const int64_t S = int64_t(offsets.size()) - 1, n = offsets.back();
  const auto un = static_cast<size_t>(n);
  std::vector<int64_t> order(un, -1);
  std::vector<RadixSelectState<K>> st(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) RadixSelectInitBody<K>{offsets.data(), st.data(), k}(s);
  std::vector<uint32_t> hist(static_cast<size_t>(S) * 256);
  for (int shift = int(sizeof(K) * 8) - 8; shift >= 0; shift -= 8) {
    std::fill(hist.begin(), hist.end(), 0u);
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t i = offsets[size_t(s)]; i < offsets[size_t(s) + 1]; ++i) {
        if (radix_matches(keys[i], st[size_t(s)])) ++hist[size_t(s * 256 + radix_digit(keys[i], shift))];
      }
    }
    for (int64_t s = 0; s < S; ++s) RadixSelectStepBody<K>{hist.data(), st.data(), shift}(s);
  }
  std::vector<uint32_t> equal(un), rank(un);
  std::vector<uint8_t> keep(un);
  for (int64_t i = 0; i < n; ++i) RadixSelectEqualBody<K>{keys, offsets.data(), S, st.data(), equal.data()}(i);
  uint32_t sum = 0;
  for (size_t i = 0; i < un; ++i) rank[i] = sum, sum += equal[i];
  for (int64_t i = 0; i < n; ++i) {
    RadixSelectFlagBody<K>{keys, offsets.data(), S, rank.data(), st.data(), keep.data()}(i);
  }
  // The device sorts the survivors stably by key, then by segment; per segment here.
  for (int64_t s = 0; s < S; ++s) {
    std::vector<int64_t> kept;
    for (int64_t i = offsets[size_t(s)]; i < offsets[size_t(s) + 1]; ++i) {
      if (keep[size_t(i)]) kept.push_back(i);
    }
    std::stable_sort(kept.begin(), kept.end(), [keys](int64_t a, int64_t b) { return keys[a] < keys[b]; });
    std::copy(kept.begin(), kept.end(), order.begin() + offsets[size_t(s)]);
  }
  return order;
}

/// Runs the gather over every (segment, slot) with launch(n, body).
template <typename T, typename Launch>
void run_topk_gather(const SegmentTopKLaunch& l, const int64_t* order, Launch&& launch) {
  const int64_t kk = l.k > 0 ? l.k : 1;
  launch(l.segments * kk, TopKGatherBody<T>{static_cast<const T*>(l.scores), l.offsets, order,
                                            static_cast<T*>(l.values), l.indices, l.counts, l.k, kk, l.relative});
}
}  // namespace detail
}  // namespace drcnn::ops
