// Boxes: a [N, 4] float32/float64 tensor of absolute (x1, y1, x2, y2) boxes in continuous
// coordinates (no "+1", MMDetection v2 / spec C.5). A thin handle: copies share the tensor.
#pragma once
#include "drcnn/core/tensor.h"

namespace drcnn {

class Boxes {
 public:
  /// No boxes: an empty [0, 4] float32 tensor on the CPU.
  Boxes();
  /// Wraps `tensor` (no copy). Requires: float32/float64, shape [N, 4] (N >= 0).
  explicit Boxes(Tensor tensor);

  const Tensor& tensor() const { return m_tensor; }
  /// Number of boxes N.
  int64_t size() const { return m_tensor.size(0); }
  DType dtype() const { return m_tensor.dtype(); }
  Device device() const { return m_tensor.device(); }

  /// (x2 - x1) * (y2 - y1) per box, [N] (ops::box_area: a reversed box is negative).
  Tensor area() const;
  /// New Boxes with x clipped to [0, width] and y to [0, height] (ops::box_clip).
  Boxes clip(double height, double width) const;
  /// Boxes on `device` (a copy unless already there).
  Boxes to(Device device) const;

 private:
  Tensor m_tensor;
};

/// Rows `index` (int64 [K]) of x along dim 0, as ops::index_select, but also for an x with no
/// rows when the index is empty (the result then has 0 rows).
Tensor select_rows(const Tensor& x, const Tensor& index);

}  // namespace drcnn
