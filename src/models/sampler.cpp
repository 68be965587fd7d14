// RandomSampler (include/drcnn/models/sampler.h). Random subsets are the smallest-key members
// of a candidate set under one float64 uniform draw: topk of the keys with the other candidates
// pushed to a sentinel above 1, then the chosen indices sorted ascending.
#include "drcnn/models/sampler.h"

#include <algorithm>

#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/ops/sort.h"
#include "drcnn/structures/boxes.h"

namespace drcnn::models {

Generator& SamplingStreams::for_image(size_t i) const {
  if (m_shared) return *m_shared;
  DRCNN_CHECK(i < m_per_image->size(), "SamplingStreams: image ", i, " of a batch with ", m_per_image->size(),
              " per-image generators");
  return (*m_per_image)[i];
}
namespace {

// Ascending indices of k members of `member` (bool [M]) with the smallest keys. k <= #members.
Tensor smallest_keys(const Tensor& member, const Tensor& keys, int64_t k) {
  if (k == 0) return Tensor::empty({0}, DType::Int64, keys.device());
  const Tensor masked = ops::where(member, keys, Tensor::full({}, 2.0, keys.dtype(), keys.device()));
  const Tensor chosen = ops::topk(masked, k, 0, /*largest=*/false).second;
  return ops::sort(chosen, 0).first;
}

}  // namespace

RandomSampler::RandomSampler(RandomSamplerOptions options) : m_opt(options) {
  DRCNN_CHECK(m_opt.num >= 0, "RandomSampler: num must be >= 0, got ", m_opt.num);
  DRCNN_CHECK(m_opt.pos_fraction >= 0 && m_opt.pos_fraction <= 1, "RandomSampler: pos_fraction must be in [0, 1], got ",
              m_opt.pos_fraction);
}

SamplingResult RandomSampler::sample(AssignResult& assign, const Tensor& bboxes_in, const Tensor& gt_bboxes,
                                     const Tensor& gt_labels, Generator& gen) const {
  const char* op = "RandomSampler::sample";
  const Boxes cand(bboxes_in), gt(gt_bboxes);  // shape/dtype checks
  DRCNN_CHECK(cand.dtype() == gt.dtype() && cand.device() == gt.device(), op, ": bboxes (", cand.dtype(), " on ",
              cand.device(), ") and gt_bboxes (", gt.dtype(), " on ", gt.device(), ") must share dtype and device");
  DRCNN_CHECK(assign.gt_inds.defined() && assign.num_preds() == cand.size(), op, ": the assignment covers ",
              assign.num_preds(), " candidates, bboxes has ", cand.size());
  const Device dev = cand.device();
  const int64_t k = gt.size();

  SamplingResult r;
  r.num_gts = k;
  r.bboxes = cand.tensor();
  int64_t num_prepended = 0;
  if (m_opt.add_gt_as_proposals) {
    DRCNN_CHECK(gt_labels.defined() || !assign.labels.defined(), op,
                ": add_gt_as_proposals with a labelled assignment needs gt_labels");
    const Tensor labels = gt_labels.defined() ? gt_labels : Tensor::zeros({k}, DType::Int64, dev);
    DRCNN_CHECK(labels.ndim() == 1 && labels.size(0) == k, op, ": gt_labels must be [", k, "], got ", labels.shape());
    r.bboxes = ops::concat({gt.tensor(), cand.tensor()}, 0);
    assign.add_gt(labels);
    num_prepended = k;
  }
  const int64_t m = r.bboxes.size(0);
  const Tensor keys = Tensor::rand({m}, gen, DType::Float64, dev);

  const Tensor is_pos = ops::gt(assign.gt_inds, 0.0);
  const Tensor is_neg = ops::eq(assign.gt_inds, Tensor::zeros({}, DType::Int64, dev));
  // The one synchronisation: both counts in a single copy.
  const std::vector<int64_t> counts =
      ops::stack({ops::sum(is_pos.to(DType::Int64)), ops::sum(is_neg.to(DType::Int64))}, 0).to_vector<int64_t>();

  const int64_t expected_pos = int64_t(double(m_opt.num) * m_opt.pos_fraction);
  const int64_t num_pos = std::min(expected_pos, counts[0]);
  int64_t expected_neg = m_opt.num - num_pos;
  if (m_opt.neg_pos_ub >= 0) {
    const int64_t ub = int64_t(m_opt.neg_pos_ub * double(std::max<int64_t>(1, num_pos)));
    expected_neg = std::min(expected_neg, ub);
  }
  const int64_t num_neg = std::min(expected_neg, counts[1]);

  r.pos_inds = smallest_keys(is_pos, keys, num_pos);
  r.neg_inds = smallest_keys(is_neg, keys, num_neg);
  r.pos_bboxes = select_rows(r.bboxes, r.pos_inds);
  r.neg_bboxes = select_rows(r.bboxes, r.neg_inds);
  r.pos_is_gt = ops::lt(r.pos_inds, double(num_prepended));
  r.pos_assigned_gt_inds = ops::add(select_rows(assign.gt_inds, r.pos_inds), -1.0);
  r.pos_gt_bboxes = select_rows(gt.tensor(), r.pos_assigned_gt_inds);
  if (assign.labels.defined()) r.pos_gt_labels = select_rows(assign.labels, r.pos_inds);
  return r;
}

}  // namespace drcnn::models
