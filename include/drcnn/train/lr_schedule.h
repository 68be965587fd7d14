// Learning-rate schedule of MMDetection's 1x configs (spec B.13): step decay (x gamma at each
// step) with a linear warm-up on top, mmcv's LrUpdaterHook rule:
//   regular(i) = base_lr * gamma^(number of steps <= i)
//   lr(i)      = regular(i) * (1 - (1 - i / warmup_iters) * (1 - warmup_ratio))   for i < warmup_iters
//   lr(i)      = regular(i)                                                        otherwise
// with i the 0-based iteration. Steps are in iterations here (mmdet's 1x steps are epochs 8 and
// 11; convert with the epoch length). Definitions: src/train/lr_schedule.cpp.
#pragma once
#include <cstdint>
#include <vector>

namespace drcnn::train {

struct LrSchedule {
  double base_lr = 0.02;
  int64_t warmup_iters = 500;   ///< 0: no warm-up
  double warmup_ratio = 0.001;  ///< lr factor at iteration 0
  std::vector<int64_t> steps;   ///< ascending iterations where the lr is multiplied by gamma
  double gamma = 0.1;

  /// Throws drcnn::Error naming the field: base_lr finite >= 0, warmup_iters >= 0,
  /// warmup_ratio in (0, 1], steps ascending and >= 0, gamma finite > 0.
  void validate() const;
  /// The learning rate of 0-based iteration `iter` (>= 0).
  double at(int64_t iter) const;
};

}  // namespace drcnn::train
