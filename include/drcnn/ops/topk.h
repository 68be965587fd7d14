// Top-k per segment for proposal selection (spec B.7: the pre-NMS top-k per image and FPN
// level). scores is a flat [N] float array made of S concatenated segments (one per (image,
// level) pair) delimited by int64 offsets [S + 1]: segment s is [offsets[s], offsets[s+1]).
//
// Order (identical on CPU and CUDA): descending score; equal scores by lower index first
// (stable); -0.0 and +0.0 are equal; NaN ranks below every number, -inf included, so a NaN is
// never selected ahead of a finite score (and NaNs among themselves keep index order).
// The result has a fixed capacity k per segment (the shape a sync-free training step wants):
// entries past a segment's count hold value -inf and index -1.
//
// Offsets are validated on the host: pass them as a CPU tensor (they are usually known there:
// H * W * A per level); offsets already on the scores' CUDA device are copied to the host for
// the check. Either way CUDA needs one small copy of S + 1 int64, and the core's copies wait
// for the stream today (pageable host memory), so a call synchronises once; removing that
// needs a pinned/stream-ordered upload in the core (docs/kernels/anchors-and-topk.md).
// CPU: per-segment nth_element + sort of the first k (segments in parallel). CUDA: CUB
// segmented radix sort of order-preserving integer keys (docs/kernels/anchors-and-topk.md).
#pragma once
#include <cstdint>
#include <utility>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

struct SegmentTopK {
  Tensor values;   ///< [S, k], scores' dtype; -inf past counts[s]
  Tensor indices;  ///< [S, k] int64 positions in scores (dense form: in the row); -1 past counts[s]
  Tensor counts;   ///< [S] int64: min(k, segment length), on the scores' device
};

/// Top min(k, len) of every segment, sorted as above. scores: 1-D float32/float64 [N] on any
/// device; offsets: 1-D int64 [S + 1] on the CPU or the scores' device, offsets[0] == 0,
/// non-decreasing, offsets[S] == N. k >= 0. Indices are positions in the whole scores array.
SegmentTopK segment_topk(const Tensor& scores, const Tensor& offsets, int64_t k);

/// Dense form: scores [S, L] (any strides), each row a segment. Indices are column positions
/// in the row (0 .. L-1), like torch.topk along dim 1.
SegmentTopK segment_topk_dense(const Tensor& scores, int64_t k);

/// segment_topk, compacted: (values, indices) of every segment's selection concatenated in
/// segment order, [sum_s min(k, len_s)] each. The size comes from the host offsets (no
/// read-back of counts from the device).
std::pair<Tensor, Tensor> segment_topk_compact(const Tensor& scores, const Tensor& offsets, int64_t k);
}  // namespace drcnn::ops
