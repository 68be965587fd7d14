// The Dynamic R-CNN schedule (include/drcnn/train/dynamic_schedule.h): hand-computed update
// sequences (timing, mean, numpy and upper median, floor, cap, guards), the rank helpers with
// torch.topk / torch.kthvalue semantics and the k clamp, IoU pooling per image vs concatenated,
// static mode, exact state save/restore, config and stats validation, and a 300-iteration
// synthetic trajectory pinned against an independent closed form and against numpy.
//
// Most hand cases use dyadic values (0.5, 0.625, ...) so that every sum and mean is exact in
// double and the expected values can be written as literals compared with ==.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "drcnn/core/error.h"
#include "drcnn/train/dynamic_schedule.h"

using drcnn::train::DynamicParams;
using drcnn::train::DynamicRcnnConfig;
using drcnn::train::DynamicSchedule;
using drcnn::train::DynamicScheduleState;
using drcnn::train::DynamicStats;
using drcnn::train::IouPooling;
using drcnn::train::MedianRule;

// Throws drcnn::Error whose message contains `text` (the call runs twice: a failing call
// changes nothing, which several tests check separately).
#define REQUIRE_DRCNN_ERROR(expr, text)      \
  do {                                       \
    REQUIRE_THROWS_AS(expr, drcnn::Error);   \
    REQUIRE_THROWS_WITH(expr, Catch::Contains(text)); \
  } while (0)

namespace {

DynamicRcnnConfig small_interval(int c) {
  DynamicRcnnConfig cfg = DynamicRcnnConfig::mmdet();
  cfg.update_interval = c;
  return cfg;
}

// One iteration: record the given statistics (if any) and step.
bool iterate(DynamicSchedule& s, double iou, std::optional<double> beta) {
  s.record_statistics(iou, beta);
  return s.step();
}

// ---- the synthetic 300-iteration run (formula shared with the numpy script quoted below) ----
// Two images per iteration. Image i has g = (t + 3i) % 5 GT rows (IoU 1.0, prepended as mmdet's
// sampler does) and n = 300 + 37i + (13t) % 50 proposals (n = 40 for image 1 when t % 50 == 0,
// fewer than K_I = 75 with the GT rows: exercises the clamp), whose IoUs are a rotation of
// base * r / n, r = 1..n, base = 0.45 + 0.2 t / 300 + 0.03 i (rising with t).
// Regression errors: z = t % 4 zeros (GT rows) then m = 40 + (7t) % 30 values, a rotation of
// s * r / m, r = 1..m, s = 6 exp(-t / 100) (shrinking with t); m = 5, z = 1 when t % 23 == 0
// (fewer than K_beta * 2 = 20: the clamp); none at all when t % 37 == 0 (no positives).
struct Synthetic {
  static int num_props(int t, int i) { return (t % 50 == 0 && i == 1) ? 40 : 300 + 37 * i + (13 * t) % 50; }
  static int num_gt(int t, int i) { return (t + 3 * i) % 5; }
  static double base(int t, int i) { return 0.45 + 0.2 * t / 300.0 + 0.03 * i; }
  static double iou_value(int t, int i, int r) { return base(t, i) * double(r) / double(num_props(t, i)); }
  static bool has_pos(int t) { return t % 37 != 0; }
  static int num_pos(int t) { return t % 23 == 0 ? 5 : 40 + (t * 7) % 30; }
  static int num_zero(int t) { return t % 23 == 0 ? 1 : t % 4; }
  static double scale(int t) { return 6.0 * std::exp(-t / 100.0); }
  static double err_value(int t, int r) { return scale(t) * double(r) / double(num_pos(t)); }

  static DynamicStats stats(int t) {
    DynamicStats st;
    for (int i = 0; i < 2; ++i) {
      const int n = num_props(t, i);
      std::vector<double> ov(size_t(num_gt(t, i)), 1.0);
      for (int j = 0; j < n; ++j) ov.push_back(iou_value(t, i, (j + 7 * t) % n + 1));
      st.max_overlaps.push_back(ov);
    }
    if (has_pos(t)) {
      const int m = num_pos(t);
      st.regression_errors.assign(size_t(num_zero(t)), 0.0);
      for (int j = 0; j < m; ++j) st.regression_errors.push_back(err_value(t, (j + 3 * t) % m + 1));
    }
    return st;
  }
  // Closed forms of the ranked statistics, independent of the schedule's selection code.
  static double iou_stat_image(int t, int i) {
    const int n = num_props(t, i), g = num_gt(t, i);
    const int k = std::min(75, n + g);
    if (k <= g) return 1.0;                       // base < 1: the GT rows are the largest
    return iou_value(t, i, n - (k - g) + 1);      // (k-g)-th largest of base * r / n
  }
  static double iou_stat(int t) { return (iou_stat_image(t, 0) + iou_stat_image(t, 1)) / 2.0; }
  static double beta_stat(int t) {
    const int m = num_pos(t), z = num_zero(t);
    const int k = std::min(20, m + z);
    return k <= z ? 0.0 : err_value(t, k - z);
  }
};

}  // namespace

// ---------------------------------------------------------------------------- rank helpers

TEST_CASE("kth_largest_iou and kth_smallest follow topk and kthvalue with k clamped", "[train][dynamic]") {
  using drcnn::train::kth_largest_iou;
  using drcnn::train::kth_smallest;
  const std::vector<double> v = {0.3, 0.9, 0.1, 0.5, 0.5, 0.7};
  CHECK(kth_largest_iou(v, 1) == 0.9);
  CHECK(kth_largest_iou(v, 2) == 0.7);
  CHECK(kth_largest_iou(v, 3) == 0.5);  // ties count once per element, as topk(...)[-1]
  CHECK(kth_largest_iou(v, 4) == 0.5);
  CHECK(kth_largest_iou(v, 5) == 0.3);
  CHECK(kth_largest_iou(v, 6) == 0.1);
  CHECK(kth_largest_iou(v, 75) == 0.1);  // min(75, 6) = 6: the smallest
  CHECK(kth_smallest(v, 1) == 0.1);
  CHECK(kth_smallest(v, 3) == 0.5);
  CHECK(kth_smallest(v, 4) == 0.5);
  CHECK(kth_smallest(v, 6) == 0.9);
  CHECK(kth_smallest(v, 20) == 0.9);  // min(20, 6) = 6: the largest
  CHECK(kth_smallest(std::vector<double>{0.25}, 10) == 0.25);
  REQUIRE_DRCNN_ERROR(kth_smallest(v, 0), "k must be >= 1");
  REQUIRE_DRCNN_ERROR(kth_largest_iou(v, -3), "k must be >= 1");
  REQUIRE_DRCNN_ERROR(kth_smallest(std::vector<double>{}, 1), "at least one value");
  REQUIRE_DRCNN_ERROR(kth_largest_iou(std::vector<double>{0.5, std::nan("")}, 1), "value 1 is NaN");
}

TEST_CASE("window_median is numpy's for even counts and sorted n over 2 for the upper rule", "[train][dynamic]") {
  using drcnn::train::window_median;
  const std::vector<double> odd = {0.5, 0.125, 0.25};
  const std::vector<double> even = {0.5, 0.125, 0.375, 0.25};
  CHECK(window_median(odd, MedianRule::kNumpy) == 0.25);
  CHECK(window_median(odd, MedianRule::kUpper) == 0.25);
  CHECK(window_median(even, MedianRule::kNumpy) == 0.3125);  // (0.25 + 0.375) / 2
  CHECK(window_median(even, MedianRule::kUpper) == 0.375);   // sorted[2]
  CHECK(window_median(std::vector<double>{0.75}, MedianRule::kNumpy) == 0.75);
  CHECK(drcnn::train::window_mean(even) == 0.3125);  // 1.25 / 4
  REQUIRE_DRCNN_ERROR(window_median(std::vector<double>{}, MedianRule::kNumpy), "at least one value");
  REQUIRE_DRCNN_ERROR(drcnn::train::window_mean(std::vector<double>{}), "at least one value");
}

// ---------------------------------------------------------------------------- update rule

TEST_CASE("updates happen exactly at iterations C and 2C and take effect from the next one", "[train][dynamic]") {
  DynamicSchedule s(small_interval(3));
  // mmdet: until the first update the threshold is the base config's 0.5, not initial_iou.
  CHECK(s.current().iou_threshold == 0.5);
  CHECK(s.current().beta == 1.0);
  CHECK_FALSE(iterate(s, 0.5, 0.25));
  CHECK(s.current().iou_threshold == 0.5);
  CHECK_FALSE(iterate(s, 0.625, 0.125));
  CHECK(s.current().iou_threshold == 0.5);
  CHECK(s.current().beta == 1.0);
  CHECK(s.state().iou_history == std::vector<double>{0.5, 0.625});
  CHECK(iterate(s, 0.75, 0.375));  // iteration 3 = C: update after its statistics
  // iteration 4 uses mean(0.5, 0.625, 0.75) = 0.625 and median(0.25, 0.125, 0.375) = 0.25
  CHECK(s.current().iou_threshold == 0.625);
  CHECK(s.current().beta == 0.25);
  CHECK(s.state().iou_history.empty());
  CHECK(s.state().beta_history.empty());
  CHECK(s.state().iteration == 3);
  CHECK_FALSE(iterate(s, 0.5, 0.0625));
  CHECK_FALSE(iterate(s, 0.5, 0.125));
  CHECK(s.current().iou_threshold == 0.625);  // unchanged within the window
  CHECK(iterate(s, 0.875, 0.5));              // iteration 6 = 2C
  CHECK(s.current().iou_threshold == 0.625);  // (0.5 + 0.5 + 0.875) / 3 = 0.625
  CHECK(s.current().beta == 0.125);
  CHECK_FALSE(iterate(s, 0.5, 0.125));  // iteration 7: no update
}

TEST_CASE("the beta window uses numpy's median for even counts by default and the upper one for original", "[train][dynamic]") {
  for (MedianRule rule : {MedianRule::kNumpy, MedianRule::kUpper}) {
    DynamicRcnnConfig cfg = small_interval(4);
    cfg.beta_median = rule;
    DynamicSchedule s(cfg);
    iterate(s, 0.5, 0.5);
    iterate(s, 0.5, 0.125);
    iterate(s, 0.5, 0.375);
    CHECK(iterate(s, 0.5, 0.25));
    CHECK(s.current().beta == (rule == MedianRule::kNumpy ? 0.3125 : 0.375));
  }
}

TEST_CASE("the threshold is floored at initial_iou and beta capped at initial_beta", "[train][dynamic]") {
  DynamicSchedule s(small_interval(2));
  iterate(s, 0.25, 1.5);
  CHECK(iterate(s, 0.375, 2.5));
  CHECK(s.current().iou_threshold == 0.4);  // mean 0.3125 < 0.4
  CHECK(s.current().beta == 1.0);           // median 2.0 > 1.0
  iterate(s, 0.5, 0.5);
  CHECK(iterate(s, 0.625, 0.75));
  CHECK(s.current().iou_threshold == 0.5625);
  CHECK(s.current().beta == 0.625);
  // Floor and cap follow the config, not constants.
  DynamicRcnnConfig cfg = small_interval(1);
  cfg.initial_iou = 0.3;
  cfg.initial_beta = 0.5;
  DynamicSchedule t(cfg);
  CHECK(iterate(t, 0.25, 0.75));
  CHECK(t.current().iou_threshold == 0.3);
  CHECK(t.current().beta == 0.5);
}

TEST_CASE("an empty beta window keeps beta and only the windows with positives count", "[train][dynamic]") {
  DynamicSchedule s(small_interval(3));
  iterate(s, 0.5, std::nullopt);
  iterate(s, 0.5, std::nullopt);
  CHECK(iterate(s, 0.875, std::nullopt));  // no positives in the whole window
  CHECK(s.current().iou_threshold == 0.625);  // the threshold still updates: 1.875 / 3
  CHECK(s.current().beta == 1.0);             // beta kept
  // Window 2: one iteration without positives, two with; the median is over the two values.
  iterate(s, 0.5, 0.25);
  iterate(s, 0.5, std::nullopt);
  CHECK(iterate(s, 0.5, 0.5));
  CHECK(s.current().beta == 0.375);  // numpy median of {0.25, 0.5}
}

TEST_CASE("the eps guard keeps beta when the median collapses to zero", "[train][dynamic]") {
  DynamicSchedule s(small_interval(3));
  iterate(s, 0.5, 0.5);
  iterate(s, 0.5, 0.5);
  CHECK(iterate(s, 0.5, 0.5));
  CHECK(s.current().beta == 0.5);
  // Median 0 (many GT rows with target 0): kept.
  iterate(s, 0.5, 0.0);
  iterate(s, 0.5, 0.0);
  CHECK(iterate(s, 0.5, 0.25));
  CHECK(s.current().beta == 0.5);
  // Median 1e-16 < 1e-15: kept too; 1e-15 itself is not below eps and is taken.
  iterate(s, 0.5, 1e-16);
  iterate(s, 0.5, 1e-16);
  CHECK(iterate(s, 0.5, 1e-16));
  CHECK(s.current().beta == 0.5);
  iterate(s, 0.5, 1e-15);
  iterate(s, 0.5, 1e-15);
  CHECK(iterate(s, 0.5, 1e-15));
  CHECK(s.current().beta == 1e-15);
  // beta_eps = 0 is mmdet v2.2 (no guard): a zero median sets beta to 0.
  DynamicRcnnConfig cfg = small_interval(1);
  cfg.beta_eps = 0.0;
  DynamicSchedule t(cfg);
  CHECK(iterate(t, 0.5, 0.0));
  CHECK(t.current().beta == 0.0);
}

TEST_CASE("an iteration that records nothing shortens the window, the mean divides by its length", "[train][dynamic]") {
  DynamicSchedule s(small_interval(4));
  iterate(s, 0.5, 0.25);
  CHECK_FALSE(s.step());  // a skipped batch: no statistics, but the iteration counts
  iterate(s, 0.75, 0.75);
  CHECK(iterate(s, 0.625, 0.5));  // update at iteration 4 regardless
  CHECK(s.current().iou_threshold == 0.625);  // 1.875 / 3, not / 4
  CHECK(s.current().beta == 0.5);
  // A window with no statistics at all keeps both values.
  for (int i = 0; i < 3; ++i) CHECK_FALSE(s.step());
  CHECK(s.step());
  CHECK(s.current().iou_threshold == 0.625);
  CHECK(s.current().beta == 0.5);
}

// ---------------------------------------------------------------------------- record(stats)

TEST_CASE("record ranks per image and averages: K_I clamp and GT rows at IoU 1", "[train][dynamic]") {
  DynamicRcnnConfig cfg = small_interval(1);
  DynamicSchedule s(cfg);
  DynamicStats st;
  // Image 0: 74 GT rows (1.0) then proposals 0.625, 0.5, 0.25: the 75th largest is 0.625.
  std::vector<double> img0(74, 1.0);
  img0.insert(img0.end(), {0.25, 0.625, 0.5});
  // Image 1: only 3 values, fewer than K_I: min(75, 3) = 3rd largest = the smallest.
  std::vector<double> img1 = {0.75, 0.125, 0.5};
  st.max_overlaps = {img0, img1};
  st.regression_errors = {0.5, 0.25};  // k = min(10 * 2, 2) = 2: the largest
  s.record(st);
  CHECK(s.state().iou_history == std::vector<double>{(0.625 + 0.125) / 2});
  CHECK(s.state().beta_history == std::vector<double>{0.5});
  s.step();
  CHECK(s.current().iou_threshold == 0.4);  // mean 0.375 floored
  CHECK(s.current().beta == 0.5);
  // 75 or more GT rows: the statistic is 1.0 (GT counted as the caller gives them).
  st.max_overlaps = {std::vector<double>(76, 1.0), std::vector<double>(75, 1.0)};
  st.max_overlaps[0].push_back(0.5);
  st.regression_errors.clear();  // no positives: no beta entry
  s.record(st);
  CHECK(s.state().iou_history == std::vector<double>{1.0});
  CHECK(s.state().beta_history.empty());
  s.step();
  CHECK(s.current().iou_threshold == 1.0);
  CHECK(s.current().beta == 0.5);
}

TEST_CASE("the beta rank scales with the number of images", "[train][dynamic]") {
  DynamicRcnnConfig cfg = small_interval(1);
  cfg.beta_topk = 2;
  std::vector<double> errs = {0.875, 0.125, 0.625, 0.25, 0.5, 0.375, 0.75};
  for (int images : {1, 2, 3}) {
    DynamicSchedule s(cfg);
    DynamicStats st;
    st.max_overlaps.assign(size_t(images), std::vector<double>{0.5});
    st.regression_errors = errs;
    s.record(st);
    // k = 2 * images: 2nd, 4th, 6th smallest of {0.125, 0.25, ..., 0.875}
    CHECK(s.state().beta_history == std::vector<double>{0.125 * 2 * images});
  }
}

TEST_CASE("original pooling ranks the concatenation of the images with k = K_I times images", "[train][dynamic]") {
  DynamicRcnnConfig cfg = DynamicRcnnConfig::original();
  cfg.iou_topk = 2;
  cfg.update_interval = 1;
  DynamicStats st;
  st.max_overlaps = {{0.875, 0.75, 0.125}, {0.625, 0.25, 0.375}};
  DynamicSchedule orig(cfg);
  orig.record(st);
  CHECK(orig.state().iou_history == std::vector<double>{0.375});  // 4th largest of the six
  DynamicRcnnConfig mm = DynamicRcnnConfig::mmdet();
  mm.iou_topk = 2;
  DynamicSchedule per_image(mm);
  per_image.record(st);
  CHECK(per_image.state().iou_history == std::vector<double>{(0.75 + 0.375) / 2});
  // The concatenated rank is clamped to the total count too.
  cfg.iou_topk = 75;
  DynamicSchedule clamped(cfg);
  clamped.record(st);
  CHECK(clamped.state().iou_history == std::vector<double>{0.125});
}

TEST_CASE("presets: mmdet starts at 0.5, original at initial_iou with the upper median, static is fixed", "[train][dynamic]") {
  const DynamicRcnnConfig mm = DynamicRcnnConfig::mmdet();
  CHECK(mm.iou_topk == 75);
  CHECK(mm.beta_topk == 10);
  CHECK(mm.update_interval == 100);
  CHECK(mm.initial_iou == 0.4);
  CHECK(mm.initial_beta == 1.0);
  CHECK(mm.start_iou == 0.5);
  CHECK(mm.start_beta == 1.0);
  CHECK(mm.beta_eps == 1e-15);
  CHECK(mm.iou_pooling == IouPooling::kMeanOverImages);
  CHECK(mm.beta_median == MedianRule::kNumpy);
  CHECK_FALSE(mm.static_mode);
  const DynamicRcnnConfig orig = DynamicRcnnConfig::original();
  CHECK(orig.start_iou == 0.4);
  CHECK(orig.iou_pooling == IouPooling::kConcatenated);
  CHECK(orig.beta_median == MedianRule::kUpper);
  CHECK(DynamicSchedule(orig).current().iou_threshold == 0.4);
  const DynamicRcnnConfig base = DynamicRcnnConfig::static_baseline();
  CHECK(base.static_mode);
  CHECK(DynamicSchedule(base).current().iou_threshold == 0.5);
  CHECK(DynamicSchedule(base).current().beta == 1.0);
}

TEST_CASE("static mode never changes over 300 iterations", "[train][dynamic]") {
  DynamicSchedule s(DynamicRcnnConfig::static_baseline());
  for (int t = 1; t <= 300; ++t) {
    s.record(Synthetic::stats(t));
    REQUIRE_FALSE(s.step());
    REQUIRE(s.current().iou_threshold == 0.5);
    REQUIRE(s.current().beta == 1.0);
  }
  CHECK(s.state().iou_history.empty());
  CHECK(s.state().beta_history.empty());
  CHECK(s.state().iteration == 300);
  // Bad statistics are still rejected in static mode.
  REQUIRE_DRCNN_ERROR(s.record_statistics(std::nan(""), std::nullopt), "IoU statistic");
}

// ---------------------------------------------------------------------------- validation

TEST_CASE("bad configs are rejected naming the field", "[train][dynamic]") {
  auto bad = [](auto mutate) {
    DynamicRcnnConfig c;
    mutate(c);
    return c;
  };
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.iou_topk = 0; })), "iou_topk must be > 0, got 0");
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.beta_topk = -1; })), "beta_topk must be > 0");
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.update_interval = 0; })), "update_interval must be > 0");
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.initial_iou = std::nan(""); })), "initial_iou");
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.start_iou = 1.5; })), "start_iou must be finite and in [0, 1]");
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.initial_beta = 0.0; })), "initial_beta must be finite and > 0");
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.start_beta = std::numeric_limits<double>::infinity(); })),
                      "start_beta");
  REQUIRE_DRCNN_ERROR(DynamicSchedule(bad([](auto& c) { c.beta_eps = -1e-15; })), "beta_eps must be finite and >= 0");
  REQUIRE_NOTHROW(DynamicSchedule(bad([](auto& c) { c.beta_eps = 0.0; })));
}

TEST_CASE("bad statistics are rejected and record nothing", "[train][dynamic]") {
  DynamicSchedule s(small_interval(2));
  DynamicStats st;
  REQUIRE_DRCNN_ERROR(s.record(st), "at least one image");
  st.max_overlaps = {{0.5}, {}};
  REQUIRE_DRCNN_ERROR(s.record(st), "image 1 has no max_overlaps");
  st.max_overlaps = {{0.5, std::nan("")}};
  REQUIRE_DRCNN_ERROR(s.record(st), "image 0 max_overlaps[1] = nan");
  st.max_overlaps = {{1.1}};
  REQUIRE_DRCNN_ERROR(s.record(st), "max_overlaps[0] = 1.1");
  st.max_overlaps = {{-0.25}};
  REQUIRE_DRCNN_ERROR(s.record(st), "expected a finite IoU");
  st.max_overlaps = {{1.0 + 5e-7}};  // float32 rounding slack above 1 is accepted
  st.regression_errors = {0.25, -0.5};
  REQUIRE_DRCNN_ERROR(s.record(st), "regression_errors[1] = -0.5");
  st.regression_errors = {std::numeric_limits<double>::infinity()};
  REQUIRE_DRCNN_ERROR(s.record(st), "regression_errors[0] = inf");
  REQUIRE_DRCNN_ERROR(s.record_statistics(0.5, -1.0), "beta statistic");
  CHECK(s.state() == DynamicScheduleState{0.5, 1.0, {}, {}, 0, false});  // nothing recorded
  st.regression_errors = {0.25};
  s.record(st);
  REQUIRE_DRCNN_ERROR(s.record(st), "already recorded in iteration 1");
  CHECK(s.state().iou_history.size() == 1);
  s.step();
  REQUIRE_NOTHROW(s.record(st));
}

// ---------------------------------------------------------------------------- state

TEST_CASE("state save and restore mid-window reproduces the same trajectory", "[train][dynamic]") {
  DynamicRcnnConfig cfg = DynamicRcnnConfig::mmdet();
  std::vector<DynamicParams> ref;
  DynamicSchedule a(cfg);
  for (int t = 1; t <= 300; ++t) {
    ref.push_back(a.current());
    a.record(Synthetic::stats(t));
    a.step();
  }
  // Interrupted at 150 (mid-window), and once more with a record pending (saved between
  // record() and step() of iteration 251).
  DynamicSchedule b(cfg);
  std::optional<DynamicSchedule> c;
  for (int t = 1; t <= 300; ++t) {
    if (t == 151) {
      const DynamicScheduleState saved = b.state();
      CHECK(saved.iteration == 150);
      CHECK(saved.iou_history.size() == 50);
      c.emplace(cfg);
      c->load_state(saved);
      CHECK(c->state() == saved);
    }
    DynamicSchedule& s = c ? *c : b;
    REQUIRE(s.current().iou_threshold == ref[size_t(t - 1)].iou_threshold);
    REQUIRE(s.current().beta == ref[size_t(t - 1)].beta);
    s.record(Synthetic::stats(t));
    if (t == 251) {
      DynamicSchedule d(cfg);
      d.load_state(s.state());
      REQUIRE(d.state().recorded);
      REQUIRE_DRCNN_ERROR(d.record(Synthetic::stats(t)), "already recorded");
      d.step();
      s.step();
      REQUIRE(d.state() == s.state());
      continue;
    }
    s.step();
  }
  CHECK(c->state() == a.state());
}

TEST_CASE("load_state rejects inconsistent states and keeps its own", "[train][dynamic]") {
  DynamicSchedule s(small_interval(4));
  iterate(s, 0.5, 0.25);
  const DynamicScheduleState good = s.state();
  DynamicScheduleState bad = good;
  bad.iou_history = {0.5, 0.5};  // 2 entries after 1 iteration
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "allows at most 1");
  bad = good;
  bad.beta_history = {0.25, 0.25};
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "more than iou_history");
  bad = good;
  bad.beta = std::nan("");
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "beta nan");
  bad = good;
  bad.beta = 0.0;
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "beta_eps");
  bad = good;
  bad.iou_threshold = 1.5;
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "iou_threshold 1.5");
  bad = good;
  bad.iteration = -1;
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "iteration must be >= 0");
  bad = good;
  bad.iou_history = {std::nan("")};
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "iou_history[0] = nan");
  bad = good;
  bad.beta_history = {-1.0};
  REQUIRE_DRCNN_ERROR(s.load_state(bad), "beta_history[0] = -1");
  CHECK(s.state() == good);
  // A state the schedule produced itself always loads, even a threshold a few ulps above 1
  // (a window of float32 IoUs of 1 + ulp: GT rows only).
  DynamicSchedule one(small_interval(1));
  CHECK(iterate(one, 1.0 + 2.4e-7, std::nullopt));
  CHECK(one.current().iou_threshold == 1.0 + 2.4e-7);
  DynamicSchedule copy(small_interval(1));
  REQUIRE_NOTHROW(copy.load_state(one.state()));
  CHECK(copy.state() == one.state());
  DynamicSchedule st(DynamicRcnnConfig::static_baseline());
  REQUIRE_DRCNN_ERROR(st.load_state(good), "this schedule is static");
  DynamicScheduleState fixed;
  fixed.iteration = 1234;
  REQUIRE_NOTHROW(st.load_state(fixed));
  CHECK(st.state().iteration == 1234);
}

// ---------------------------------------------------------------------------- trajectory

TEST_CASE("300 synthetic iterations: updates at 100, 200, 300 match the closed form and numpy", "[train][dynamic]") {
  DynamicSchedule s(DynamicRcnnConfig::mmdet());
  std::vector<double> iou_win, beta_win;
  double exp_iou = 0.5, exp_beta = 1.0;  // independent re-statement of the rule
  std::vector<DynamicParams> at_update;
  for (int t = 1; t <= 300; ++t) {
    REQUIRE(s.current().iou_threshold == exp_iou);
    REQUIRE(s.current().beta == exp_beta);
    s.record(Synthetic::stats(t));
    // The ranked statistics equal the closed form exactly (same double expression picked).
    REQUIRE(s.state().iou_history.back() == Synthetic::iou_stat(t));
    iou_win.push_back(Synthetic::iou_stat(t));
    if (Synthetic::has_pos(t)) {
      REQUIRE(s.state().beta_history.back() == Synthetic::beta_stat(t));
      beta_win.push_back(Synthetic::beta_stat(t));
    }
    const bool updated = s.step();
    REQUIRE(updated == (t % 100 == 0));
    if (!updated) continue;
    double sum = 0;
    for (double v : iou_win) sum += v;
    std::vector<double> b = beta_win;
    std::sort(b.begin(), b.end());
    const size_t n = b.size();
    const double median = n % 2 ? b[n / 2] : (b[n / 2 - 1] + b[n / 2]) / 2;
    exp_iou = std::max(0.4, sum / double(iou_win.size()));
    if (median >= 1e-15) exp_beta = std::min(1.0, median);
    iou_win.clear();
    beta_win.clear();
    at_update.push_back(s.current());
  }
  REQUIRE(at_update.size() == 3);
  // Pinned values from numpy 1.24.2, computed once with this script (same formula as Synthetic)
  // and pasted here:
  //   def stats(t):
  //       ious = []
  //       for i in range(2):
  //           n = 300 + 37*i + (13*t) % 50
  //           g = (t + 3*i) % 5
  //           if t % 50 == 0 and i == 1: n = 40
  //           base = 0.45 + 0.2*t/300 + 0.03*i
  //           ov = np.array([1.0]*g + [base*float((j+7*t) % n + 1)/float(n) for j in range(n)])
  //           ious.append(float(np.sort(ov)[::-1][min(75, len(ov)) - 1]))
  //       iou = float(np.mean(ious))
  //       if t % 37 == 0: return iou, None
  //       m = 40 + (t*7) % 30; z = t % 4
  //       if t % 23 == 0: m, z = 5, 1
  //       s = 6.0*math.exp(-t/100.0)
  //       e = np.array([0.0]*z + [s*float((j+3*t) % m + 1)/float(m) for j in range(m)])
  //       return iou, float(np.sort(e)[min(20, len(e)) - 1])
  //   then per window of 100: max(0.4, np.mean(iou_hist)), min(1.0, np.median(beta_hist)).
  // It printed (t, IoU entries, beta entries, np.mean, np.median):
  //   100 100 98 0.38961654086442565 1.3220726137598522
  //   200 100 97 0.441713055874211   0.4849293950786878
  //   300 100 97 0.493809570883996   0.17730359702762144
  // Tolerance 1e-14: numpy's mean uses pairwise summation and ours is sequential; the same
  // script with a sequential sum differs from np.mean by at most 1.1e-16 (1 ulp) here. The
  // medians are the same two doubles averaged, so they agree exactly.
  const double tol = 1e-14;
  CHECK(at_update[0].iou_threshold == 0.4);  // floor: mean 0.3896 < 0.4
  CHECK(at_update[0].beta == 1.0);           // cap: median 1.32 > 1.0
  CHECK(std::abs(at_update[1].iou_threshold - 0.441713055874211) < tol);
  CHECK(std::abs(at_update[1].beta - 0.4849293950786878) < tol);
  CHECK(std::abs(at_update[2].iou_threshold - 0.493809570883996) < tol);
  CHECK(std::abs(at_update[2].beta - 0.17730359702762144) < tol);
}
