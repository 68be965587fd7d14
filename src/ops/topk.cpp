// Dispatchers of the segmented top-k (include/drcnn/ops/topk.h): validate scores, k and the
// offsets (on the host), allocate the padded [S, k] outputs, run the backend.
#include "drcnn/ops/topk.h"

#include <vector>

#include "dispatch.h"
#include "drcnn/ops/detail/topk_body.h"
#include "drcnn/ops/index.h"

namespace drcnn::ops {

namespace {
void check_scores(const char* op, const Tensor& scores, int64_t ndim, int64_t k) {
  runtime::check_defined(op, scores, "scores");
  DRCNN_CHECK(scores.dtype() == DType::Float32 || scores.dtype() == DType::Float64, op,
              ": scores must be float32 or float64, got ", scores.dtype());
  DRCNN_CHECK(scores.ndim() == ndim, op, ": scores must be ", ndim == 1 ? "1-D [N]" : "2-D [S, L]", ", got shape ",
              scores.shape());
  DRCNN_CHECK(k >= 0, op, ": k must be >= 0, got ", k);
}

/// Host copy of offsets, checked: 1-D int64 [S + 1], offsets[0] == 0, non-decreasing, last == n.
std::vector<int64_t> host_offsets(const char* op, const Tensor& offsets, const Tensor& scores) {
  runtime::check_defined(op, offsets, "offsets");
  DRCNN_CHECK(offsets.dtype() == DType::Int64, op, ": offsets must be int64, got ", offsets.dtype());
  DRCNN_CHECK(offsets.ndim() == 1 && offsets.size(0) >= 1, op,
              ": offsets must be 1-D [S + 1] with at least one entry, got shape ", offsets.shape());
  DRCNN_CHECK(offsets.device().is_cpu() || offsets.device() == scores.device(), op,
              ": offsets must be on the CPU or on the scores' device (", scores.device(), "), got ", offsets.device());
  const std::vector<int64_t> off = offsets.to_vector<int64_t>();  // copies from a device (synchronises)
  const int64_t n = scores.numel();
  DRCNN_CHECK(off[0] == 0, op, ": offsets[0] must be 0, got ", off[0]);
  for (size_t s = 1; s < off.size(); ++s) {
    DRCNN_CHECK(off[s] >= off[s - 1], op, ": offsets must be non-decreasing, got offsets[", s - 1, "] = ", off[s - 1],
                " > offsets[", s, "] = ", off[s]);
  }
  DRCNN_CHECK(off.back() == n, op, ": the last offset must equal the number of scores (", n, "), got ", off.back());
  return off;
}

/// Runs the backend on contiguous scores with validated host offsets.
SegmentTopK run(const char* op, const Tensor& scores, const std::vector<int64_t>& off, const Tensor& offsets_like,
                int64_t k, bool relative) {
  const Device dev = scores.device();
  const int64_t S = int64_t(off.size()) - 1;
  const Tensor c = scores.contiguous();
  // Offsets where the backend reads them: the caller's tensor when already there and
  // contiguous, else a copy of the host vector.
  Tensor dev_off = offsets_like;
  if (!dev_off.defined() || dev_off.device() != dev || !dev_off.is_contiguous()) {
    dev_off = Tensor::from_vector<int64_t>(off, Shape{S + 1}).to(dev);
  }
  SegmentTopK r{Tensor::empty({S, k}, scores.dtype(), dev), Tensor::empty({S, k}, DType::Int64, dev),
                Tensor::empty({S}, DType::Int64, dev)};
  if (S == 0) return r;
  SegmentTopKLaunch l;
  l.n = c.numel();
  l.segments = S;
  l.k = k;
  l.relative = relative;
  l.scores = c.data_ptr();
  l.offsets = dev.is_cpu() ? off.data() : static_cast<const int64_t*>(dev_off.data_ptr());
  l.host_offsets = off.data();
  l.values = r.values.data_ptr();
  l.indices = static_cast<int64_t*>(r.indices.data_ptr());
  l.counts = static_cast<int64_t*>(r.counts.data_ptr());
  runtime::on_device(
      dev, op, [&] { cpu::segment_topk(scores.dtype(), l); },
      [&](auto s) { cuda::segment_topk(s, scores.dtype(), l); });
  return r;
}
}  // namespace

SegmentTopK segment_topk(const Tensor& scores, const Tensor& offsets, int64_t k) {
  const char* op = "segment_topk";
  check_scores(op, scores, 1, k);
  const std::vector<int64_t> off = host_offsets(op, offsets, scores);
  return run(op, scores, off, offsets, k, false);
}

SegmentTopK segment_topk_dense(const Tensor& scores, int64_t k) {
  const char* op = "segment_topk_dense";
  check_scores(op, scores, 2, k);
  const int64_t S = scores.size(0), L = scores.size(1);
  std::vector<int64_t> off(size_t(S + 1));
  for (int64_t s = 0; s <= S; ++s) off[size_t(s)] = s * L;
  return run(op, scores.contiguous().reshape({S * L}), off, Tensor(), k, true);
}

std::pair<Tensor, Tensor> segment_topk_compact(const Tensor& scores, const Tensor& offsets, int64_t k) {
  const char* op = "segment_topk_compact";
  check_scores(op, scores, 1, k);
  const std::vector<int64_t> off = host_offsets(op, offsets, scores);
  const SegmentTopK r = run(op, scores, off, offsets, k, false);
  // Positions of the valid slots in the flattened [S, k] result, known from the host offsets.
  std::vector<int64_t> slots;
  for (size_t s = 0; s + 1 < off.size(); ++s) {
    const int64_t count = std::min(k, off[s + 1] - off[s]);
    for (int64_t j = 0; j < count; ++j) slots.push_back(int64_t(s) * k + j);
  }
  const Tensor sel = Tensor::from_vector<int64_t>(slots, Shape{int64_t(slots.size())}).to(scores.device());
  return {index_select(r.values.reshape({r.values.numel()}), 0, sel), index_select(r.indices.reshape({r.indices.numel()}), 0, sel)};
}
}  // namespace drcnn::ops
