// ResNet (include/drcnn/models/resnet.h): blocks, stages, the norm factory, and their
// float/double instantiations.
#include "drcnn/models/resnet.h"

#include <string>
#include <type_traits>
#include <vector>

#include "drcnn/autograd/functions.h"
#include "drcnn/autograd/nn.h"
#include "drcnn/core/error.h"
#include "drcnn/layers/init.h"

namespace drcnn::models {

template <typename T>
NormLayer make_norm(const NormOptions& o, int64_t channels) {
  switch (o.kind) {
    case NormKind::FrozenBatchNorm: {
      auto m = std::make_shared<FrozenBatchNorm2d<T>>(channels, o.eps);
      return {m, [raw = m.get()](const Variable& x) { return raw->forward(x); }};
    }
    case NormKind::BatchNorm: {
      auto m = std::make_shared<BatchNorm2d<T>>(channels, o.eps);
      return {m, [raw = m.get()](const Variable& x) { return raw->forward(x); }};
    }
    case NormKind::GroupNorm: {
      auto m = std::make_shared<GroupNorm<T>>(o.gn_groups, channels, o.eps);
      return {m, [raw = m.get()](const Variable& x) { return raw->forward(x); }};
    }
  }
  DRCNN_FAIL("make_norm: unknown norm kind");
}

namespace {
template <typename T>
std::shared_ptr<Conv2d<T>> make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding,
                                     Generator& gen, bool bias = false) {
  typename Conv2d<T>::Options o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_size = k;
  o.stride = stride;
  o.padding = padding;
  o.bias = bias;
  return std::make_shared<Conv2d<T>>(o, gen);
}

/// The shortcut branch: Sequential {"0": 1x1 conv with the stride, "1": norm}, or null when the
/// stride is 1 and the channel count is unchanged.
template <typename T>
std::shared_ptr<Sequential> make_downsample(int64_t in, int64_t out, int64_t stride, const NormOptions& norm,
                                            Generator& gen) {
  if (stride == 1 && in == out) return nullptr;
  auto seq = std::make_shared<Sequential>();
  seq->push_back(make_conv<T>(in, out, 1, stride, 0, gen));
  NormLayer n = make_norm<T>(norm, out);
  seq->push_back(n.module, n.forward);
  return seq;
}
}  // namespace

// ----------------------------------------------------------------------------------- blocks
template <typename T>
BasicBlock<T>::BasicBlock(int64_t in, int64_t planes, int64_t stride, const NormOptions& norm, ResNetStyle,
                          Generator& gen) {
  m_conv1 = register_module("conv1", make_conv<T>(in, planes, 3, stride, 1, gen));
  m_bn1 = make_norm<T>(norm, planes);
  register_module("bn1", m_bn1.module);
  m_conv2 = register_module("conv2", make_conv<T>(planes, planes, 3, 1, 1, gen));
  m_bn2 = make_norm<T>(norm, planes);
  register_module("bn2", m_bn2.module);
  m_downsample = make_downsample<T>(in, planes, stride, norm, gen);
  if (m_downsample) register_module("downsample", m_downsample);
}

template <typename T>
Variable BasicBlock<T>::forward(const Variable& x) const {
  Variable y = relu(m_bn1.forward(m_conv1->forward(x)));
  y = m_bn2.forward(m_conv2->forward(y));
  return relu(add(y, m_downsample ? m_downsample->forward(x) : x));
}

template <typename T>
Bottleneck<T>::Bottleneck(int64_t in, int64_t planes, int64_t stride, const NormOptions& norm, ResNetStyle style,
                          Generator& gen, int64_t dcn_deform_groups) {
  const bool caffe = style == ResNetStyle::Caffe;
  m_conv1 = register_module("conv1", make_conv<T>(in, planes, 1, caffe ? stride : 1, 0, gen));
  m_bn1 = make_norm<T>(norm, planes);
  register_module("bn1", m_bn1.module);
  if (dcn_deform_groups > 0) {
    typename ModulatedDeformConv2dPack<T>::Options d;
    d.in_channels = d.out_channels = planes;
    d.kernel_size = 3;
    d.stride = caffe ? 1 : stride;
    d.padding = 1;
    d.deform_groups = dcn_deform_groups;
    m_dcn2 = register_module("conv2", std::make_shared<ModulatedDeformConv2dPack<T>>(d, gen));
  } else {
    m_conv2 = register_module("conv2", make_conv<T>(planes, planes, 3, caffe ? 1 : stride, 1, gen));
  }
  m_bn2 = make_norm<T>(norm, planes);
  register_module("bn2", m_bn2.module);
  m_conv3 = register_module("conv3", make_conv<T>(planes, planes * kExpansion, 1, 1, 0, gen));
  m_bn3 = make_norm<T>(norm, planes * kExpansion);
  register_module("bn3", m_bn3.module);
  m_downsample = make_downsample<T>(in, planes * kExpansion, stride, norm, gen);
  if (m_downsample) register_module("downsample", m_downsample);
}

template <typename T>
Variable Bottleneck<T>::forward(const Variable& x) const {
  Variable y = relu(m_bn1.forward(m_conv1->forward(x)));
  y = relu(m_bn2.forward(m_dcn2 ? m_dcn2->forward(y) : m_conv2->forward(y)));
  y = m_bn3.forward(m_conv3->forward(y));
  return relu(add(y, m_downsample ? m_downsample->forward(x) : x));
}

namespace {
std::vector<int> stage_blocks(int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34:
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
  }
  DRCNN_FAIL("ResNet: depth must be 18, 34, 50 or 101, got ", depth);
}

template <typename T, typename B>
std::shared_ptr<Sequential> make_stage(int64_t& in, int64_t planes, int blocks, int64_t stride, const ResNetOptions& o,
                                       Generator& gen, bool dcn) {
  auto seq = std::make_shared<Sequential>();
  for (int b = 0; b < blocks; ++b) {
    if constexpr (std::is_same_v<B, Bottleneck<T>>)
      seq->push_back(std::make_shared<B>(in, planes, b == 0 ? stride : 1, o.norm, o.style, gen,
                                         dcn ? o.dcn_deform_groups : 0));
    else
      seq->push_back(std::make_shared<B>(in, planes, b == 0 ? stride : 1, o.norm, o.style, gen));
    in = planes * B::kExpansion;
  }
  return seq;
}

/// Puts every BatchNorm2d below `m` in eval mode (MMDetection's norm_eval).
template <typename T>
void set_batch_norms_eval(Module& m) {
  for (auto& [name, child] : m.named_children()) {
    if (dynamic_cast<BatchNorm2d<T>*>(child.get())) child->train(false);
    else set_batch_norms_eval<T>(*child);
  }
}

/// The parameter-name prefixes ("layer2.0.conv2.") of the ModulatedDeformConv2dPack layers below `m`.
template <typename T>
void dcn_prefixes(Module& m, const std::string& prefix, std::vector<std::string>& out) {
  for (auto& [name, child] : m.named_children()) {
    const std::string full = prefix + name + ".";
    if (dynamic_cast<ModulatedDeformConv2dPack<T>*>(child.get())) out.push_back(full);
    else dcn_prefixes<T>(*child, full, out);
  }
}

/// Every Conv2d weight in `m` (recursively, by parameter name) gets kaiming_normal(fan_out, relu),
/// except those of deformable convs (`skip` prefixes), which mmdet's Kaiming init (layer='Conv2d')
/// does not reach: they keep mmcv's init and their zero conv_offset.
void kaiming_init_convs(Module& m, Generator& gen, const std::vector<std::string>& skip) {
  for (auto& [name, p] : m.named_parameters()) {
    bool dcn = false;
    for (const std::string& s : skip) dcn = dcn || name.rfind(s, 0) == 0;
    if (p.ndim() == 4 && !dcn) {
      Tensor& w = p.mutable_data();
      init::kaiming_normal_(w, gen, 0, init::FanMode::FanOut, init::Nonlinearity::Relu);
    }
  }
}
}  // namespace

// ------------------------------------------------------------------------------------ ResNet
template <typename T>
ResNet<T>::ResNet(const ResNetOptions& o, Generator& gen) : m_opt(o) {
  const std::vector<int> blocks = stage_blocks(o.depth);
  DRCNN_CHECK(o.frozen_stages >= -1 && o.frozen_stages <= 4, "ResNet: frozen_stages must be in [-1, 4], got ",
              o.frozen_stages);
  DRCNN_CHECK(o.in_channels > 0 && o.base_width > 0, "ResNet: in_channels and base_width must be > 0, got ",
              o.in_channels, " and ", o.base_width);
  m_conv1 = register_module("conv1", make_conv<T>(o.in_channels, o.base_width, 7, 2, 3, gen));
  m_bn1 = make_norm<T>(o.norm, o.base_width);
  register_module("bn1", m_bn1.module);
  // No parameters: not registered (torchvision's keys have no "maxpool").
  m_maxpool = std::make_shared<MaxPool2d>(ops::MaxPool2dOptions::square(3, 2, 1));
  int64_t in = o.base_width;
  for (int s = 0; s < 4; ++s) {
    const int64_t planes = o.base_width << s;
    const int64_t stride = s == 0 ? 1 : 2;
    const bool dcn = o.stage_with_dcn[size_t(s)];
    DRCNN_CHECK(!dcn || o.depth >= 50, "ResNet: stage_with_dcn needs bottleneck blocks (depth 50 or 101), as ",
                "mmdet's BasicBlock has no DCN; got depth ", o.depth, " with DCN in layer", s + 1);
    auto stage = o.depth < 50 ? make_stage<T, BasicBlock<T>>(in, planes, blocks[s], stride, o, gen, false)
                              : make_stage<T, Bottleneck<T>>(in, planes, blocks[s], stride, o, gen, dcn);
    m_layers.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  DRCNN_CHECK(o.dcn_deform_groups >= 1, "ResNet: dcn_deform_groups must be >= 1, got ", o.dcn_deform_groups);
  std::vector<std::string> dcn;
  dcn_prefixes<T>(*this, "", dcn);
  kaiming_init_convs(*this, gen, dcn);
  // Frozen stages: no gradients (and eval mode, applied by train()).
  if (o.frozen_stages >= 0) {
    m_conv1->freeze();
    m_bn1.module->freeze();
  }
  for (int s = 0; s < o.frozen_stages; ++s) m_layers[s]->freeze();
  train(true);
}

template <typename T>
void ResNet<T>::train(bool on) {
  Module::train(on);
  if (!on) return;
  if (m_opt.frozen_stages >= 0) m_bn1.module->train(false);
  for (int s = 0; s < m_opt.frozen_stages; ++s) m_layers[s]->train(false);
  if (m_opt.norm_eval && m_opt.norm.kind == NormKind::BatchNorm) set_batch_norms_eval<T>(*this);
}

template <typename T>
std::vector<Variable> ResNet<T>::forward(const Variable& x) const {
  Variable y = relu(m_bn1.forward(m_conv1->forward(x)));
  y = m_maxpool->forward(y);
  std::vector<Variable> outs;
  for (const auto& stage : m_layers) {
    y = stage->forward(y);
    outs.push_back(y);
  }
  return outs;
}

template <typename T>
std::vector<int64_t> ResNet<T>::out_channels() const {
  const int64_t expansion = m_opt.depth < 50 ? 1 : 4;
  std::vector<int64_t> out;
  for (int s = 0; s < 4; ++s) out.push_back((m_opt.base_width << s) * expansion);
  return out;
}

template class BasicBlock<float>;
template class BasicBlock<double>;
template class Bottleneck<float>;
template class Bottleneck<double>;
template NormLayer make_norm<float>(const NormOptions&, int64_t);
template NormLayer make_norm<double>(const NormOptions&, int64_t);
template class ResNet<float>;
template class ResNet<double>;

}  // namespace drcnn::models
