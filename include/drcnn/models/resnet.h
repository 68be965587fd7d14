// ResNet backbones (spec B.2): depths 18/34 (basic blocks) and 50/101 (bottlenecks), style
// pytorch (stride on the 3x3, torchvision's v1.5) or caffe (stride on the first 1x1), frozen BN
// / BN / GN, frozen stages, returning C2..C5. Parameter names are torchvision's
// ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
// "layer1.0.downsample.1.weight"), which are also MMDetection's backbone keys after the
// "backbone." prefix, so their state dicts load by name.
// Definitions: src/models/resnet.cpp; tests: tests/models/test_resnet.cpp.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "drcnn/layers/deform_conv.h"
#include "drcnn/layers/layers.h"

namespace drcnn::models {

enum class NormKind { FrozenBatchNorm, BatchNorm, GroupNorm };
enum class ResNetStyle { Pytorch, Caffe };

/// The normalisation after every convolution.
struct NormOptions {
  NormKind kind = NormKind::FrozenBatchNorm;
  /// torchvision FrozenBatchNorm2d and BatchNorm use 1e-5; the original Dynamic R-CNN code's
  /// frozen BN uses 0 (no eps).
  double eps = 1e-5;
  int64_t gn_groups = 32;  // GroupNorm only
  friend bool operator==(const NormOptions&, const NormOptions&) = default;
};

/// A norm layer and its forward, type-erased so blocks can hold any of the three kinds.
struct NormLayer {
  std::shared_ptr<Module> module;
  std::function<Variable(const Variable&)> forward;
};
template <typename T>
NormLayer make_norm(const NormOptions& o, int64_t channels);

/// torchvision BasicBlock (expansion 1): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
/// with 3x3 convs, the stride on conv1; "downsample" = {1x1 conv with the stride, norm} when the
/// stride or the channel count changes.
template <typename T = float>
class BasicBlock : public Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t in_channels, int64_t planes, int64_t stride, const NormOptions& norm, ResNetStyle style,
             Generator& gen);
  Variable forward(const Variable& x) const;

 private:
  std::shared_ptr<Conv2d<T>> m_conv1, m_conv2;
  NormLayer m_bn1, m_bn2;
  std::shared_ptr<Sequential> m_downsample;
};

/// torchvision Bottleneck (expansion 4): 1x1 (planes) -> 3x3 (planes) -> 1x1 (4 planes), each
/// followed by its norm, relu after the first two and after the residual sum. The stride sits on
/// the 3x3 (style pytorch) or on the first 1x1 (style caffe). dcn_deform_groups > 0 makes the
/// 3x3 a ModulatedDeformConv2dPack with that many deform groups (MMDetection's DCNv2 option;
/// keys conv2.weight, conv2.conv_offset.weight, conv2.conv_offset.bias).
template <typename T = float>
class Bottleneck : public Module {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in_channels, int64_t planes, int64_t stride, const NormOptions& norm, ResNetStyle style,
             Generator& gen, int64_t dcn_deform_groups = 0);
  Variable forward(const Variable& x) const;

 private:
  std::shared_ptr<Conv2d<T>> m_conv1, m_conv2, m_conv3;  // m_conv2 null with DCN
  std::shared_ptr<ModulatedDeformConv2dPack<T>> m_dcn2;
  NormLayer m_bn1, m_bn2, m_bn3;
  std::shared_ptr<Sequential> m_downsample;
};

struct ResNetOptions {
  int depth = 50;  // 18, 34, 50, 101
  ResNetStyle style = ResNetStyle::Pytorch;
  NormOptions norm{};
  /// -1: nothing frozen; 0: the stem (conv1, bn1); k >= 1: the stem and layer1..layerk
  /// (MMDetection's frozen_stages; the detector default is 1). Frozen parameters do not
  /// require gradients and frozen BatchNorm layers stay in eval mode.
  int frozen_stages = 1;
  /// MMDetection's norm_eval: every BatchNorm layer stays in eval mode during training.
  bool norm_eval = true;
  int64_t in_channels = 3;
  int64_t base_width = 64;  // channels of the stem and of layer1's 3x3
  /// MMDetection's dcn=dict(type='DCNv2', deform_groups=dcn_deform_groups) with stage_with_dcn:
  /// the 3x3 conv of every bottleneck of layer s + 1 (stage_with_dcn[s]) is a
  /// ModulatedDeformConv2dPack whose conv_offset starts at zero (mmdet's init) and whose weight
  /// keeps mmcv's init (mmdet's Kaiming init targets Conv2d layers only). Bottlenecks only
  /// (depth 50/101), as mmdet.
  std::array<bool, 4> stage_with_dcn{false, false, false, false};
  int64_t dcn_deform_groups = 1;
  friend bool operator==(const ResNetOptions&, const ResNetOptions&) = default;
};

template <typename T = float>
class ResNet : public Module {
 public:
  /// Builds the network and initialises it as torchvision / MMDetection do: convolutions
  /// kaiming_normal(fan_out, relu), norm weights 1 and biases 0.
  ResNet(const ResNetOptions& o, Generator& gen);
  /// C2..C5 (strides 4, 8, 16, 32) for x [N, in_channels, H, W].
  std::vector<Variable> forward(const Variable& x) const;
  /// Output channels of C2..C5 (64..512 for 18/34, 256..2048 for 50/101, times base_width/64).
  std::vector<int64_t> out_channels() const;
  const ResNetOptions& options() const { return m_opt; }
  /// Sets the mode, then keeps the frozen stages (and, with norm_eval, every BatchNorm) in
  /// eval mode, as MMDetection's ResNet.train().
  void train(bool on = true) override;

 private:
  ResNetOptions m_opt;
  std::shared_ptr<Conv2d<T>> m_conv1;
  NormLayer m_bn1;
  std::shared_ptr<MaxPool2d> m_maxpool;
  std::vector<std::shared_ptr<Sequential>> m_layers;
};

extern template class BasicBlock<float>;
extern template class BasicBlock<double>;
extern template class Bottleneck<float>;
extern template class Bottleneck<double>;
extern template class ResNet<float>;
extern template class ResNet<double>;

}  // namespace drcnn::models
