// mmcv's ModulatedDeformConv2dPack (DCNv2 with its own offset/mask predictor), the layer that
// MMDetection's dcn=dict(type='DCNv2') puts in a ResNet bottleneck's 3x3 conv:
//   out = conv_offset(x)                            a Conv2d with bias, 3 * deform_groups * k * k
//                                                   channels, the layer's stride/padding/dilation
//   offset = out[:, :2 dg k k]                      (mmcv: cat(chunk 0, chunk 1); torchvision's
//   mask = sigmoid(out[:, 2 dg k k:])                (dy, dx) per tap layout)
//   y = deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups)
// Parameters "weight" [out, in / groups, k, k], "bias" [out] (when bias), "conv_offset.weight",
// "conv_offset.bias": mmcv's names, so MMDetection checkpoints load by name. conv_offset starts
// at zero (mmcv init_weights): offsets 0 and masks sigmoid(0) = 0.5, so a fresh layer is half
// the plain convolution with the same weight (plus its bias). The main weight is mmcv's
// uniform(+-1/sqrt(in * k * k)), the bias 0 (a ResNet re-initialises the weight as its convs).
// Definitions: src/layers/deform_conv.cpp; tests: tests/layers/test_deform_conv_layer.cpp.
#pragma once
#include <memory>

#include "drcnn/layers/layers.h"

namespace drcnn {

template <typename T = float>
class ModulatedDeformConv2dPack : public Module {
 public:
  struct Options {
    int64_t in_channels = 0, out_channels = 0, kernel_size = 3;
    int64_t stride = 1, padding = 1, dilation = 1, groups = 1, deform_groups = 1;
    bool bias = false;
  };
  ModulatedDeformConv2dPack(const Options& o, Generator& gen);
  Variable forward(const Variable& x) const;
  const Options& options() const { return m_opt; }
  const Variable& weight() const { return m_weight; }
  const Variable& bias() const { return m_bias; }  // undefined without bias
  const Conv2d<T>& conv_offset() const { return *m_conv_offset; }
  /// Zeroes conv_offset (mmcv's init_weights); for callers that re-initialise every conv.
  void zero_offset();

 private:
  Options m_opt;
  Variable m_weight, m_bias;
  std::shared_ptr<Conv2d<T>> m_conv_offset;
};

extern template class ModulatedDeformConv2dPack<float>;
extern template class ModulatedDeformConv2dPack<double>;
}  // namespace drcnn
