// Feature pyramid network (spec B.3; MMDetection's FPN): 1x1 lateral convs, a top-down path
// that adds the nearest-upsampled coarser level at the EXACT size of the finer one, 3x3 output
// convs, and extra levels above the last input: P6 by max-pool (kernel 1, stride 2) of P5, as
// Faster R-CNN, or by stride-2 3x3 convs (on the last input or on the last output).
// Parameter names are MMDetection's: "lateral_convs.0.conv.weight", "fpn_convs.0.conv.bias"
// (under "neck." in a detector). Initialised as MMDetection: xavier_uniform, bias 0.
// Definitions: src/models/fpn.cpp; tests: tests/models/test_fpn.cpp.
#pragma once
#include <memory>
#include <vector>

#include "drcnn/layers/layers.h"

namespace drcnn::models {

/// MMDetection's ConvModule without norm or activation: a child named "conv".
template <typename T = float>
class ConvModule : public Module {
 public:
  ConvModule(const typename Conv2d<T>::Options& o, Generator& gen);
  Variable forward(const Variable& x) const { return m_conv->forward(x); }
  const Conv2d<T>& conv() const { return *m_conv; }

 private:
  std::shared_ptr<Conv2d<T>> m_conv;
};

enum class FpnExtra {
  MaxPool,     // P6 = max_pool2d(P5, kernel 1, stride 2) (Faster/Dynamic R-CNN)
  ConvOnInput, // P6 = conv3x3/2(C5), P7 = conv3x3/2(relu(P6)) (RetinaNet "on_input")
  ConvOnOutput // the same from P5 ("on_output")
};

struct FpnOptions {
  std::vector<int64_t> in_channels{256, 512, 1024, 2048};
  int64_t out_channels = 256;
  int num_outs = 5;  // inputs + extra levels
  FpnExtra extra = FpnExtra::MaxPool;
  bool relu_before_extra_convs = false;  // mmdet: only for the convs after the first extra
  friend bool operator==(const FpnOptions&, const FpnOptions&) = default;
};

template <typename T = float>
class Fpn : public Module {
 public:
  Fpn(const FpnOptions& o, Generator& gen);
  /// P2..P6 (num_outs levels) from C2..C5 (one input per in_channels entry).
  std::vector<Variable> forward(const std::vector<Variable>& inputs) const;
  const FpnOptions& options() const { return m_opt; }

 private:
  FpnOptions m_opt;
  std::vector<std::shared_ptr<ConvModule<T>>> m_lateral, m_output;
};

extern template class ConvModule<float>;
extern template class ConvModule<double>;
extern template class Fpn<float>;
extern template class Fpn<double>;

}  // namespace drcnn::models
