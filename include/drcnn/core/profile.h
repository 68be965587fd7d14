// Profiler ranges: NVTX push/pop (Nsight Systems shows them on the timeline's NVTX row, with
// the kernels launched inside correlated). No-ops in a build without CUDA. Used around the
// stages of TwoStageDetector::forward_train; docs/cuda.md says how to profile with them.
#pragma once

namespace drcnn::profile {
/// Opens a nested range named `name` on this thread (the string is copied).
void range_push(const char* name);
/// Closes this thread's innermost open range.
void range_pop();

/// A range open for the scope.
class Range {
 public:
  explicit Range(const char* name) { range_push(name); }
  ~Range() { range_pop(); }
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;
};
}  // namespace drcnn::profile
