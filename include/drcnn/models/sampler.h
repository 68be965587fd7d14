// MMDetection v2 RandomSampler (spec B.6, B.8): draws a fixed-size batch of positive and
// negative candidates from an AssignResult, reproducibly from a drcnn::Generator.
#pragma once
#include <cstdint>

#include "drcnn/core/generator.h"
#include "drcnn/core/tensor.h"
#include "drcnn/models/assigner.h"

namespace drcnn::models {

/// The sampled candidates (mmdet SamplingResult). Indices refer to `bboxes`, which are the
/// candidates with the ground truths prepended when add_gt_as_proposals is on.
struct SamplingResult {
  Tensor pos_inds;              ///< int64 [P], ascending (mmdet's unique() sorts)
  Tensor neg_inds;              ///< int64 [Q], ascending
  Tensor bboxes;                ///< [M, 4] the candidates sampled from (GTs first when added)
  Tensor pos_bboxes;            ///< [P, 4] = bboxes[pos_inds]
  Tensor neg_bboxes;            ///< [Q, 4] = bboxes[neg_inds]
  Tensor pos_is_gt;             ///< bool [P]: the positive is a prepended ground truth
  Tensor pos_assigned_gt_inds;  ///< int64 [P], 0-based ground-truth index of each positive
  Tensor pos_gt_bboxes;         ///< [P, 4] = gt_bboxes[pos_assigned_gt_inds]
  Tensor pos_gt_labels;         ///< int64 [P] = labels[pos_inds]; undefined without labels
  int64_t num_gts = 0;
};

struct RandomSamplerOptions {
  int64_t num = 512;                ///< total sample size (RPN 256, R-CNN 512)
  double pos_fraction = 0.25;       ///< expected positives = int(num * pos_fraction) (RPN 0.5)
  double neg_pos_ub = -1.0;         ///< >= 0: at most int(neg_pos_ub * max(1, #pos)) negatives
  bool add_gt_as_proposals = true;  ///< prepend the GT boxes as candidates (R-CNN: true, RPN: false)
  friend bool operator==(const RandomSamplerOptions&, const RandomSamplerOptions&) = default;
};

/// Sampling rule (mmdet BaseSampler.sample + RandomSampler):
///  - with add_gt_as_proposals, bboxes = [gt_bboxes; candidates] and assign.add_gt(gt_labels)
///    (the prepended GTs are positives matched to themselves with overlap 1);
///  - positives are the candidates with gt_inds > 0: all of them if there are at most
///    int(num * pos_fraction), else a uniformly random subset of that size;
///  - negatives (gt_inds == 0; ignored candidates, -1, are never drawn): num - #sampled
///    positives (capped by neg_pos_ub), all of them if fewer are available, else a random subset.
///    So too few positives give more negatives, and too few negatives a smaller batch.
/// Randomness: one draw of M float64 uniforms from `gen` per call (M = number of candidates
/// after adding the GTs; gen.offset advances by M even when nothing is random). A random subset
/// of size k is the k candidates of the set with the smallest keys (ties, probability ~M^2/2^54,
/// broken by lower index); positives and negatives are disjoint, so sharing the draw keeps them
/// independent. The same generator state gives the same indices on CPU and CUDA. (mmdet uses
/// np.random.shuffle: same distribution, different numbers.)
/// Synchronisation: one host copy of the two counts (#positives, #negatives) per call.
/// The random streams of one batch's sampling (RPN anchors, R-CNN proposals): one generator
/// the images use in turn (the default; what a single-process run has always done), or one
/// generator per image, so that an image's draws do not depend on which other images share
/// its batch (data-parallel training keys them by the image's place in the global batch:
/// docs/distributed.md). Holds references: the generators must outlive it.
class SamplingStreams {
 public:
  SamplingStreams(Generator& shared) : m_shared(&shared) {}  // NOLINT: implicit by design
  explicit SamplingStreams(std::vector<Generator>& per_image) : m_per_image(&per_image) {}
  /// The generator of image i of the batch. Throws when there is no per-image generator for it.
  Generator& for_image(size_t i) const;

 private:
  Generator* m_shared = nullptr;
  std::vector<Generator>* m_per_image = nullptr;
};

class RandomSampler {
 public:
  explicit RandomSampler(RandomSamplerOptions options = {});
  RandomSampler(int64_t num, double pos_fraction, double neg_pos_ub = -1.0, bool add_gt_as_proposals = true)
      : RandomSampler(RandomSamplerOptions{num, pos_fraction, neg_pos_ub, add_gt_as_proposals}) {}
  const RandomSamplerOptions& options() const { return m_opt; }

  /// `assign` (from MaxIoUAssigner on `bboxes` vs `gt_bboxes`) is modified in place by add_gt,
  /// as in mmdet. bboxes [N, 4], gt_bboxes [K, 4] (same dtype and device); gt_labels int64 [K]
  /// (required with add_gt_as_proposals when assign.labels is defined; may be undefined otherwise).
  SamplingResult sample(AssignResult& assign, const Tensor& bboxes, const Tensor& gt_bboxes, const Tensor& gt_labels,
                        Generator& gen) const;

 private:
  RandomSamplerOptions m_opt;
};

}  // namespace drcnn::models
