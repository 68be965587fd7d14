// LrSchedule against values worked out by hand from mmcv's warm-up rule.
#include <catch2/catch.hpp>

#include "drcnn/train/lr_schedule.h"

using drcnn::train::LrSchedule;

TEST_CASE("LrSchedule: linear warm-up from warmup_ratio and step decay", "[train][lr]") {
  LrSchedule s;
  s.base_lr = 0.02;
  s.warmup_iters = 500;
  s.warmup_ratio = 0.001;
  s.steps = {1000, 1500};
  // i = 0: 0.02 * 0.001; i = 250: 0.02 * (1 - 0.5 * 0.999) = 0.02 * 0.5005.
  CHECK(s.at(0) == Approx(0.02 * 0.001).epsilon(1e-14));
  CHECK(s.at(250) == Approx(0.02 * 0.5005).epsilon(1e-14));
  CHECK(s.at(499) == Approx(0.02 * (1 - 0.999 / 500)).epsilon(1e-14));
  CHECK(s.at(500) == 0.02);
  CHECK(s.at(999) == 0.02);
  CHECK(s.at(1000) == Approx(0.002).epsilon(1e-14));
  CHECK(s.at(1500) == Approx(0.0002).epsilon(1e-14));
  s.warmup_iters = 0;
  CHECK(s.at(0) == 0.02);
}

TEST_CASE("LrSchedule: bad settings name the field", "[train][lr]") {
  LrSchedule s;
  s.steps = {10, 5};
  CHECK_THROWS_WITH(s.validate(), Catch::Contains("steps must be ascending"));
  s = {};
  s.warmup_ratio = 0;
  CHECK_THROWS_WITH(s.validate(), Catch::Contains("warmup_ratio must be in (0, 1]"));
  CHECK_THROWS_WITH(LrSchedule{}.at(-1), Catch::Contains("must be >= 0"));
}
