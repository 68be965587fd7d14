// The seed's Dynamic R-CNN statistic populations (train::StatPopulation::kOriginal,
// models::append_original_dynamic_stats) against tools/golden_seed_dynamic_stats.py, a float64
// transcription of hkzhang95/DynamicRCNN's proposal_target_opr.py and network.py written apart
// from drcnn: the per-candidate values, then the ranked statistics of DynamicSchedule::original().
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/golden.h"
#include "drcnn/models/roi_head.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"
#include "drcnn/train/dynamic_schedule.h"

using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
namespace train = drcnn::train;

TEST_CASE("seed statistic populations equal proposal_target_opr + network.py", "[models][dynamic][legacy]") {
  const auto g = drcnn::test::load_golden("maskrcnn_benchmark/dynamic_stats");
  const std::array<double, 4> means{0, 0, 0, 0}, stds{0.1, 0.1, 0.2, 0.2};  // BoxCoder(10, 10, 5, 5)
  for (const bool legacy : {false, true}) {
    for (const std::string thr : {"0.4", "0.6"}) {
      const std::string tag = std::string(legacy ? "off1" : "off0") + "_thr" + thr;
      INFO(tag);
      train::DynamicStats s;
      std::vector<Tensor> errors;
      for (int i = 0; i < 2; ++i) {
        const std::string im = std::to_string(i);
        drcnn::models::append_original_dynamic_stats(g["proposals_" + im], g["gts_" + im], std::stod(thr), means, stds,
                                                     legacy, s);
        const std::vector<double>& got = s.max_overlaps.back();
        drcnn::test::expect_golden_close("seed IoU population " + tag + " image " + im,
                                         Tensor::from_vector<double>(got, Shape{int64_t(got.size())}),
                                         g["ious_" + im + "_" + tag], 1e-14, 1e-15);
        errors.push_back(g["errors_" + im + "_" + tag]);
      }
      const Tensor want_errors = ops::concat(errors, 0);
      drcnn::test::expect_golden_close("seed error population " + tag,
                                       Tensor::from_vector<double>(s.regression_errors, Shape{want_errors.size(0)}),
                                       want_errors, 1e-12, 1e-14);
      // The ranked statistics: (KI x 2)-th largest IoU of both images, (KE x 2)-th smallest error.
      train::DynamicSchedule sched(train::DynamicRcnnConfig::original());
      REQUIRE(sched.current().population == train::StatPopulation::kOriginal);
      sched.record(s);
      CHECK(sched.state().iou_history.back() == Approx(g["iou_stat_" + tag].item<double>()).epsilon(1e-13));
      CHECK(sched.state().beta_history.back() == Approx(g["beta_stat_" + tag].item<double>()).epsilon(1e-12));
    }
  }
  // MMDetection's population (each candidate's max IoU) gives another IoU statistic here, where the
  // positives are fewer than KI x 2 and backgrounds report their IoU with GT 0.
  std::vector<double> max_iou;
  for (int i = 0; i < 2; ++i) {
    const std::string im = std::to_string(i);
    const Tensor cand = ops::concat({g["proposals_" + im], g["gts_" + im]}, 0);
    for (double v : ops::max(ops::box_iou(g["gts_" + im], cand), 0).to_vector<double>()) max_iou.push_back(v);
  }
  CHECK(train::kth_largest_iou(max_iou, 150) > g["iou_stat_off0_thr0.6"].item<double>() + 0.05);
}
