// The Dynamic R-CNN schedule (include/drcnn/train/dynamic_schedule.h; rules in docs/training.md).
//
// Reading of the references (spec A.3, A.4): MMDetection's DynamicRoIHead ranks each image's
// max_overlaps with topk(min(75, n))[-1], averages over images and appends to iou_history;
// ranks the sampled positives' (|t_x| + |t_y|) / 2 with kthvalue(min(10 * num_imgs, num_pos))
// and appends to beta_history when there are positives; when len(iou_history) % 100 == 0 it
// sets the threshold to max(0.4, np.mean) and beta to min(1.0, np.median) (kept when the
// history is empty or the median < 1e-15), then clears both. We count iterations with step()
// rather than history entries: identical when every iteration records (MMDetection always
// does), and the original code's rule (enumerate index) when some iteration records nothing.
#include "drcnn/train/dynamic_schedule.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "drcnn/core/error.h"

namespace drcnn::train {
namespace {

// float32 IoUs (inter / union) can exceed 1 by a few ulps (1.2e-7 each) when one box contains
// the other; anything further above 1 is a caller bug.
constexpr double kIouUpperSlack = 1e-6;

bool valid_iou(double v) { return std::isfinite(v) && v >= 0.0 && v <= 1.0 + kIouUpperSlack; }
bool valid_error(double v) { return std::isfinite(v) && v >= 0.0; }

void check_rankable(std::span<const double> values, int64_t k, const char* op) {
  DRCNN_CHECK(k >= 1, op, ": k must be >= 1, got ", k);
  DRCNN_CHECK(!values.empty(), op, ": expected at least one value, got none");
  for (size_t i = 0; i < values.size(); ++i)
    DRCNN_CHECK(!std::isnan(values[i]), op, ": value ", i, " is NaN");
}

// The k-th element (1-based, k clamped to the count) in the order `cmp` (a strict weak order).
template <typename Compare>
double kth_in_order(std::span<const double> values, int64_t k, Compare cmp) {
  std::vector<double> v(values.begin(), values.end());
  const auto idx = static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(v.size())) - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(idx), v.end(), cmp);
  return v[idx];
}

void check_finite_in(double v, double lo, double hi, const char* field) {
  DRCNN_CHECK(std::isfinite(v) && v >= lo && v <= hi, "DynamicRcnnConfig: ", field,
              " must be finite and in [", lo, ", ", hi, "], got ", v);
}

}  // namespace

double kth_largest_iou(std::span<const double> values, int64_t k) {
  check_rankable(values, k, "kth_largest_iou");
  return kth_in_order(values, k, std::greater<double>());
}

double kth_smallest(std::span<const double> values, int64_t k) {
  check_rankable(values, k, "kth_smallest");
  return kth_in_order(values, k, std::less<double>());
}

double window_median(std::span<const double> values, MedianRule rule) {
  check_rankable(values, 1, "window_median");
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  if (rule == MedianRule::kUpper || n % 2 == 1) return v[n / 2];
  return (v[n / 2 - 1] + v[n / 2]) / 2.0;  // numpy: mean of the two middle values
}

double window_mean(std::span<const double> values) {
  DRCNN_CHECK(!values.empty(), "window_mean: expected at least one value, got none");
  double sum = 0.0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

// ------------------------------------------------------------------------------- config

DynamicRcnnConfig DynamicRcnnConfig::mmdet() { return DynamicRcnnConfig{}; }

DynamicRcnnConfig DynamicRcnnConfig::original() {
  DynamicRcnnConfig c;
  c.start_iou = c.initial_iou;  // WARMUP_IOU is the starting value and the floor
  c.iou_pooling = IouPooling::kConcatenated;
  c.beta_median = MedianRule::kUpper;
  c.population = StatPopulation::kOriginal;
  return c;
}

DynamicRcnnConfig DynamicRcnnConfig::static_baseline() {
  DynamicRcnnConfig c;
  c.static_mode = true;
  c.start_iou = 0.5;
  c.start_beta = 1.0;
  return c;
}

void DynamicRcnnConfig::validate() const {
  DRCNN_CHECK(iou_topk > 0, "DynamicRcnnConfig: iou_topk must be > 0, got ", iou_topk);
  DRCNN_CHECK(beta_topk > 0, "DynamicRcnnConfig: beta_topk must be > 0, got ", beta_topk);
  DRCNN_CHECK(update_interval > 0, "DynamicRcnnConfig: update_interval must be > 0, got ",
              update_interval);
  check_finite_in(initial_iou, 0.0, 1.0, "initial_iou");
  check_finite_in(start_iou, 0.0, 1.0, "start_iou");
  DRCNN_CHECK(std::isfinite(initial_beta) && initial_beta > 0.0,
              "DynamicRcnnConfig: initial_beta must be finite and > 0, got ", initial_beta);
  DRCNN_CHECK(std::isfinite(start_beta) && start_beta > 0.0,
              "DynamicRcnnConfig: start_beta must be finite and > 0, got ", start_beta);
  DRCNN_CHECK(std::isfinite(beta_eps) && beta_eps >= 0.0,
              "DynamicRcnnConfig: beta_eps must be finite and >= 0, got ", beta_eps);
  DRCNN_CHECK(iou_pooling == IouPooling::kMeanOverImages || iou_pooling == IouPooling::kConcatenated,
              "DynamicRcnnConfig: unknown iou_pooling ", static_cast<int>(iou_pooling));
  DRCNN_CHECK(population == StatPopulation::kMmdet || population == StatPopulation::kOriginal,
              "DynamicRcnnConfig: unknown population ", static_cast<int>(population));
  DRCNN_CHECK(beta_median == MedianRule::kNumpy || beta_median == MedianRule::kUpper,
              "DynamicRcnnConfig: unknown beta_median ", static_cast<int>(beta_median));
}

// ------------------------------------------------------------------------------- schedule

DynamicSchedule::DynamicSchedule(const DynamicRcnnConfig& config) : m_config(config) {
  m_config.validate();
  m_state.iou_threshold = m_config.start_iou;
  m_state.beta = m_config.start_beta;
}

void DynamicSchedule::record(const DynamicStats& stats) {
  const size_t num_images = stats.max_overlaps.size();
  DRCNN_CHECK(num_images > 0, "DynamicSchedule::record: expected max_overlaps for at least one image, got none");
  for (size_t i = 0; i < num_images; ++i) {
    const auto& ov = stats.max_overlaps[i];
    DRCNN_CHECK(!ov.empty(), "DynamicSchedule::record: image ", i,
                " has no max_overlaps (expected one per proposal, GT-as-proposal rows included)");
    for (size_t j = 0; j < ov.size(); ++j)
      DRCNN_CHECK(valid_iou(ov[j]), "DynamicSchedule::record: image ", i, " max_overlaps[", j,
                  "] = ", ov[j], ", expected a finite IoU in [0, 1]");
  }
  for (size_t j = 0; j < stats.regression_errors.size(); ++j)
    DRCNN_CHECK(valid_error(stats.regression_errors[j]), "DynamicSchedule::record: regression_errors[", j,
                "] = ", stats.regression_errors[j], ", expected a finite value >= 0");

  const auto n_img = static_cast<int64_t>(num_images);
  double iou_stat = 0.0;
  if (m_config.iou_pooling == IouPooling::kMeanOverImages) {
    std::vector<double> per_image(num_images);
    for (size_t i = 0; i < num_images; ++i)
      per_image[i] = kth_largest_iou(stats.max_overlaps[i], m_config.iou_topk);
    iou_stat = window_mean(per_image);
  } else {
    std::vector<double> all;
    for (const auto& ov : stats.max_overlaps) all.insert(all.end(), ov.begin(), ov.end());
    iou_stat = kth_largest_iou(all, int64_t(m_config.iou_topk) * n_img);
  }
  std::optional<double> beta_stat;
  if (!stats.regression_errors.empty())
    beta_stat = kth_smallest(stats.regression_errors, int64_t(m_config.beta_topk) * n_img);
  record_statistics(iou_stat, beta_stat);
}

void DynamicSchedule::record_statistics(double iou_statistic, std::optional<double> beta_statistic) {
  DRCNN_CHECK(!m_state.recorded, "DynamicSchedule::record: already recorded in iteration ",
              m_state.iteration + 1, "; call step() once per iteration after record()");
  DRCNN_CHECK(valid_iou(iou_statistic), "DynamicSchedule::record: IoU statistic ", iou_statistic,
              ", expected a finite IoU in [0, 1]");
  DRCNN_CHECK(!beta_statistic || valid_error(*beta_statistic), "DynamicSchedule::record: beta statistic ",
              beta_statistic.value_or(0.0), ", expected a finite value >= 0");
  m_state.recorded = true;
  if (m_config.static_mode) return;
  m_state.iou_history.push_back(iou_statistic);
  if (beta_statistic) m_state.beta_history.push_back(*beta_statistic);
}

bool DynamicSchedule::step() {
  ++m_state.iteration;
  m_state.recorded = false;
  if (m_config.static_mode || m_state.iteration % m_config.update_interval != 0) return false;
  if (!m_state.iou_history.empty())
    m_state.iou_threshold = std::max(m_config.initial_iou, window_mean(m_state.iou_history));
  if (!m_state.beta_history.empty()) {
    const double median = window_median(m_state.beta_history, m_config.beta_median);
    if (!(median < m_config.beta_eps)) m_state.beta = std::min(m_config.initial_beta, median);
  }
  m_state.iou_history.clear();
  m_state.beta_history.clear();
  return true;
}

void DynamicSchedule::load_state(const DynamicScheduleState& s) {
  const char* op = "DynamicSchedule::load_state";
  DRCNN_CHECK(s.iteration >= 0, op, ": iteration must be >= 0, got ", s.iteration);
  // Same slack as the statistics: a window of float32 IoUs of 1 + ulp has such a mean.
  DRCNN_CHECK(valid_iou(s.iou_threshold), op, ": iou_threshold ", s.iou_threshold,
              ", expected a finite value in [0, 1]");
  DRCNN_CHECK(std::isfinite(s.beta) && s.beta >= 0.0, op, ": beta ", s.beta,
              ", expected a finite value >= 0");
  DRCNN_CHECK(s.beta > 0.0 || m_config.beta_eps == 0.0, op,
              ": beta 0 is only reachable with beta_eps = 0, this config has beta_eps ", m_config.beta_eps);
  for (size_t i = 0; i < s.iou_history.size(); ++i)
    DRCNN_CHECK(valid_iou(s.iou_history[i]), op, ": iou_history[", i, "] = ", s.iou_history[i],
                ", expected a finite IoU in [0, 1]");
  for (size_t i = 0; i < s.beta_history.size(); ++i)
    DRCNN_CHECK(valid_error(s.beta_history[i]), op, ": beta_history[", i, "] = ", s.beta_history[i],
                ", expected a finite value >= 0");
  // The window holds at most one entry per iteration since the last update (plus the pending
  // record of the current iteration), and a beta entry only comes with an IoU entry.
  const auto max_window =
      static_cast<size_t>(s.iteration % m_config.update_interval) + (s.recorded ? 1u : 0u);
  DRCNN_CHECK(s.iou_history.size() <= max_window, op, ": iou_history holds ", s.iou_history.size(),
              " entries but iteration ", s.iteration, " with update_interval ", m_config.update_interval,
              (s.recorded ? " and a pending record" : ""), " allows at most ", max_window,
              " (was the state saved under another config?)");
  DRCNN_CHECK(s.beta_history.size() <= s.iou_history.size(), op, ": beta_history holds ",
              s.beta_history.size(), " entries, more than iou_history's ", s.iou_history.size());
  if (m_config.static_mode) {
    DRCNN_CHECK(s.iou_history.empty() && s.beta_history.empty() && s.iou_threshold == m_config.start_iou &&
                    s.beta == m_config.start_beta,
                op, ": this schedule is static (IoU ", m_config.start_iou, ", beta ", m_config.start_beta,
                ") but the state has IoU ", s.iou_threshold, ", beta ", s.beta, " and ", s.iou_history.size(),
                " window entries (a dynamic run's state?)");
  }
  m_state = s;
}

}  // namespace drcnn::train
