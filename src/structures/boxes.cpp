// Boxes (include/drcnn/structures/boxes.h).
#include "drcnn/structures/boxes.h"

#include <utility>

#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/index.h"

namespace drcnn {

Tensor select_rows(const Tensor& x, const Tensor& index) {
  if (index.numel() == 0) {
    std::vector<int64_t> dims(x.shape().begin(), x.shape().end());
    dims[0] = 0;
    return Tensor::empty(Shape(dims), x.dtype(), x.device());
  }
  return ops::index_select(x, 0, index);
}

Boxes::Boxes() : m_tensor(Tensor::empty({0, 4}, DType::Float32)) {}

Boxes::Boxes(Tensor tensor) : m_tensor(std::move(tensor)) {
  DRCNN_CHECK(m_tensor.defined(), "Boxes: undefined tensor");
  DRCNN_CHECK(m_tensor.dtype() == DType::Float32 || m_tensor.dtype() == DType::Float64,
              "Boxes: expected a float32 or float64 tensor, got ", m_tensor.dtype());
  DRCNN_CHECK(m_tensor.ndim() == 2 && m_tensor.size(1) == 4, "Boxes: expected shape [N, 4], got ",
              m_tensor.shape());
}

Tensor Boxes::area() const { return ops::box_area(m_tensor); }
Boxes Boxes::clip(double height, double width) const { return Boxes(ops::box_clip(m_tensor, height, width)); }
Boxes Boxes::to(Device device) const { return Boxes(m_tensor.to(device)); }

}  // namespace drcnn
