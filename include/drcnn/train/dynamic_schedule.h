// The Dynamic R-CNN schedule (Zhang et al., ECCV 2020): the R-CNN head's IoU threshold and
// SmoothL1 beta, re-estimated every C iterations from per-iteration proposal statistics.
//
// It belongs to training, not to the model: the RoI head consumes `current()` (DynamicParams)
// and reports a DynamicStats per iteration; the trainer calls `record()` then `step()` once per
// iteration and saves `state()` in its checkpoints. Target semantics: MMDetection's
// DynamicRoIHead (spec A.3); the original code's differences that change numbers (spec A.4,
// A.5) are options of DynamicRcnnConfig. docs/training.md ("Dynamic R-CNN schedule") has the
// rules, the defaults and the differences.
//
// Everything is host-side double arithmetic on small vectors (a few thousand values per
// iteration); nothing here touches a Tensor.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace drcnn::train {

/// How the per-iteration IoU statistic pools the images of a batch (spec A.5 #1).
enum class IouPooling {
  /// MMDetection: the iou_topk-th largest IoU of each image, then the mean over images.
  kMeanOverImages,
  /// Original code: the (iou_topk * num_images)-th largest IoU of all images' values concatenated.
  kConcatenated,
};

/// The median used for the beta window (spec A.5 #5).
enum class MedianRule {
  /// numpy.median: the middle value, or the mean of the two middle values for an even count.
  kNumpy,
  /// Original code: sorted(values)[n / 2], the upper of the two middle values for an even count.
  kUpper,
};

/// Which values the RoI head reports as the statistic populations (DynamicStats).
enum class StatPopulation {
  /// MMDetection's DynamicRoIHead: the assigner's max_overlaps of every candidate (GTs
  /// prepended), and the label errors of the sampled positives.
  kMmdet,
  /// The seed (proposal_target_opr.py + network.py): every candidate (GTs appended) reports its
  /// max IoU when it is a positive and its IoU with GT 0 otherwise (matched_idxs.clamp(min=0)),
  /// and every candidate's label error against that same GT, before sampling
  /// (models::append_original_dynamic_stats).
  kOriginal,
};

/// Every setting of the schedule. Defaults are MMDetection's dynamic_rcnn_r50_fpn_1x_coco.
struct DynamicRcnnConfig {
  int iou_topk = 75;          ///< K_I: rank of the IoU statistic, per image
  int beta_topk = 10;         ///< K_beta: rank of the regression-error statistic, per image
  int update_interval = 100;  ///< C: iterations between updates
  double initial_iou = 0.4;   ///< floor of the threshold at each update
  double initial_beta = 1.0;  ///< cap of beta at each update
  /// Threshold used until the first update. MMDetection: 0.5 (the base config's assigner
  /// threshold; initial_iou is only the floor). Original code: initial_iou (0.4).
  double start_iou = 0.5;
  double start_beta = 1.0;  ///< beta used until the first update (SmoothL1Loss(beta=1.0))
  /// An update whose beta median is below beta_eps leaves beta unchanged (mmdet PR #4303), so
  /// beta never collapses to 0. 0 disables the guard (mmdet v2.2; a median of 0 then sets beta 0).
  double beta_eps = 1e-15;
  IouPooling iou_pooling = IouPooling::kMeanOverImages;
  MedianRule beta_median = MedianRule::kNumpy;
  StatPopulation population = StatPopulation::kMmdet;  ///< the RoI head's statistic populations
  /// Faster R-CNN baseline: current() is always {start_iou, start_beta}; record() validates
  /// and discards its statistics; step() never updates.
  bool static_mode = false;

  /// MMDetection semantics (spec A.3): the defaults above.
  static DynamicRcnnConfig mmdet();
  /// The original code (spec A.4): starts at initial_iou, pools the IoUs of the batch's
  /// images before ranking, upper median, and the seed's statistic populations
  /// (StatPopulation::kOriginal, which the RoI head reads from current()).
  static DynamicRcnnConfig original();
  /// Faster R-CNN baseline: static mode, IoU 0.5, beta 1.0.
  static DynamicRcnnConfig static_baseline();

  /// Throws drcnn::Error naming the field, the value and the accepted range: ranks and interval
  /// must be > 0; IoUs finite in [0, 1]; betas finite and > 0; beta_eps finite and >= 0.
  void validate() const;
  friend bool operator==(const DynamicRcnnConfig&, const DynamicRcnnConfig&) = default;
};

/// What the RoI head consumes for one iteration.
struct DynamicParams {
  double iou_threshold;  ///< pos = neg = min_pos IoU of the R-CNN assigner
  double beta;           ///< SmoothL1 beta of the R-CNN box loss
  StatPopulation population = StatPopulation::kMmdet;  ///< what DynamicStats holds
};

/// What the RoI head reports for one iteration (one entry per image of the batch).
struct DynamicStats {
  /// Per image, the assigner's max_overlaps: for every proposal its max IoU with any GT,
  /// including the GT boxes added as proposals (IoU 1.0 each, as the caller gives them).
  /// Each value finite in [0, 1 + 1e-6] (float32 IoUs can exceed 1 by a few ulps).
  /// One entry per image; each image needs at least one value.
  std::vector<std::vector<double>> max_overlaps;
  /// Per regression row the caller counts (MMDetection: the sampled positives of all images,
  /// GT rows included; original: all raw proposals), the label error (|t_x| + |t_y|) / 2 of
  /// its normalised targets (stds 0.1, 0.1, 0.2, 0.2). Finite and >= 0. May be empty (no
  /// positives): then no beta statistic is recorded this iteration.
  std::vector<double> regression_errors;
};

/// Plain data a checkpoint saves and restores exactly.
struct DynamicScheduleState {
  double iou_threshold = 0.5;
  double beta = 1.0;
  std::vector<double> iou_history;   ///< IoU statistics of the current window, in order
  std::vector<double> beta_history;  ///< beta statistics of the current window, in order
  int64_t iteration = 0;             ///< step() calls so far
  bool recorded = false;             ///< record() already called in the current iteration

  friend bool operator==(const DynamicScheduleState&, const DynamicScheduleState&) = default;
};

/// The k-th largest value (1-based), k clamped to values.size() as mmdet's min(k, len) then
/// torch.topk(values, k)[-1]. Requires: k >= 1, values non-empty, no NaN.
double kth_largest_iou(std::span<const double> values, int64_t k);
/// The k-th smallest value (1-based), k clamped to values.size() (torch.kthvalue after
/// mmdet's min(k, len)). Requires: k >= 1, values non-empty, no NaN.
double kth_smallest(std::span<const double> values, int64_t k);
/// The median of values under `rule`. Requires: values non-empty, no NaN.
double window_median(std::span<const double> values, MedianRule rule);
/// The arithmetic mean (sequential sum in index order, then / n). Requires: values non-empty.
double window_mean(std::span<const double> values);

class DynamicSchedule {
 public:
  /// Validates `config` (DynamicRcnnConfig::validate) and starts at {start_iou, start_beta}.
  explicit DynamicSchedule(const DynamicRcnnConfig& config = DynamicRcnnConfig::mmdet());

  /// The threshold and beta for the current iteration.
  DynamicParams current() const { return {m_state.iou_threshold, m_state.beta, m_config.population}; }
  const DynamicRcnnConfig& config() const { return m_config; }

  /// Ranks the statistics of one iteration and appends them to the window: the IoU statistic
  /// (per config.iou_pooling) always, and the beta statistic (the min(beta_topk * num_images,
  /// count)-th smallest regression error) when regression_errors is non-empty.
  /// At most once per iteration (between two step() calls); an iteration may also record
  /// nothing (a skipped batch): the window is then one entry shorter.
  /// Throws drcnn::Error on bad stats (no image, an image without values, NaN/inf or
  /// out-of-range IoU, negative or non-finite error) or a second record in one iteration;
  /// nothing is recorded then.
  void record(const DynamicStats& stats);
  /// Appends already-ranked statistics (for a caller that ranked on the device):
  /// `iou_statistic` in [0, 1 + 1e-6], `beta_statistic` finite >= 0 or nullopt (no positives).
  void record_statistics(double iou_statistic, std::optional<double> beta_statistic);

  /// Ends the iteration; call exactly once per training iteration, after record(). After
  /// iterations C, 2C, ...: iou = max(initial_iou, mean(iou window)) unless that window is
  /// empty; beta = min(initial_beta, median(beta window)) unless the window is empty or the
  /// median < beta_eps; both windows cleared. Returns true when this call was such an update.
  /// The new values are what current() returns from the next iteration on.
  bool step();

  const DynamicScheduleState& state() const { return m_state; }
  /// Restores a state saved by state(), so the schedule continues exactly where it left off.
  /// Throws drcnn::Error (and keeps the current state) when `state` is inconsistent with this
  /// config: non-finite or out-of-range values, more window entries than iterations since the
  /// last update, or (static mode) values other than the fixed ones or non-empty windows.
  void load_state(const DynamicScheduleState& state);

 private:
  DynamicRcnnConfig m_config;
  DynamicScheduleState m_state;
};

}  // namespace drcnn::train
