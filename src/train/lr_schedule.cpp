// Learning-rate schedule (include/drcnn/train/lr_schedule.h).
#include "drcnn/train/lr_schedule.h"

#include <cmath>

#include "drcnn/core/error.h"

namespace drcnn::train {

void LrSchedule::validate() const {
  DRCNN_CHECK(std::isfinite(base_lr) && base_lr >= 0, "LrSchedule: base_lr must be finite and >= 0, got ", base_lr);
  DRCNN_CHECK(warmup_iters >= 0, "LrSchedule: warmup_iters must be >= 0, got ", warmup_iters);
  DRCNN_CHECK(warmup_ratio > 0 && warmup_ratio <= 1, "LrSchedule: warmup_ratio must be in (0, 1], got ", warmup_ratio);
  DRCNN_CHECK(std::isfinite(gamma) && gamma > 0, "LrSchedule: gamma must be finite and > 0, got ", gamma);
  for (size_t i = 0; i < steps.size(); ++i)
    DRCNN_CHECK(steps[i] >= 0 && (i == 0 || steps[i] > steps[i - 1]), "LrSchedule: steps must be ascending and ",
                ">= 0; step ", i, " is ", steps[i]);
}

double LrSchedule::at(int64_t iter) const {
  DRCNN_CHECK(iter >= 0, "LrSchedule::at: the iteration must be >= 0, got ", iter);
  double lr = base_lr;
  for (int64_t s : steps)
    if (iter >= s) lr *= gamma;
  if (iter < warmup_iters) {
    const double k = (1.0 - double(iter) / double(warmup_iters)) * (1.0 - warmup_ratio);
    lr *= 1.0 - k;
  }
  return lr;
}

}  // namespace drcnn::train
