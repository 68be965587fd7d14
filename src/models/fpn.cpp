// FPN (include/drcnn/models/fpn.h): the MMDetection neck and its float/double instantiations.
#include "drcnn/models/fpn.h"

#include "drcnn/autograd/functions.h"
#include "drcnn/autograd/nn.h"
#include "drcnn/core/error.h"
#include "drcnn/layers/init.h"

namespace drcnn::models {

template <typename T>
ConvModule<T>::ConvModule(const typename Conv2d<T>::Options& o, Generator& gen) {
  m_conv = register_module("conv", std::make_shared<Conv2d<T>>(o, gen));
}

template <typename T>
Fpn<T>::Fpn(const FpnOptions& o, Generator& gen) : m_opt(o) {
  const int levels = static_cast<int>(o.in_channels.size());
  DRCNN_CHECK(levels >= 1 && o.out_channels > 0 && o.num_outs >= levels, "Fpn: needs >= 1 input level, out_channels > 0 ",
              "and num_outs >= the number of inputs, got ", levels, " inputs, ", o.out_channels, " channels, ",
              o.num_outs, " outputs");
  auto laterals = register_module("lateral_convs", std::make_shared<ModuleList>());
  auto outputs = register_module("fpn_convs", std::make_shared<ModuleList>());
  for (int i = 0; i < levels; ++i) {
    DRCNN_CHECK(o.in_channels[i] > 0, "Fpn: in_channels[", i, "] must be > 0, got ", o.in_channels[i]);
    m_lateral.push_back(laterals->push_back(
        std::make_shared<ConvModule<T>>(typename Conv2d<T>::Options{o.in_channels[i], o.out_channels, 1}, gen)));
    m_output.push_back(outputs->push_back(std::make_shared<ConvModule<T>>(
        typename Conv2d<T>::Options{o.out_channels, o.out_channels, 3, 1, 1}, gen)));
  }
  if (o.extra != FpnExtra::MaxPool) {
    for (int i = levels; i < o.num_outs; ++i) {
      const int64_t in = (i == levels && o.extra == FpnExtra::ConvOnInput) ? o.in_channels.back() : o.out_channels;
      m_output.push_back(outputs->push_back(
          std::make_shared<ConvModule<T>>(typename Conv2d<T>::Options{in, o.out_channels, 3, 2, 1}, gen)));
    }
  }
  // MMDetection's FPN init: xavier_uniform weights, zero biases.
  for (auto& [name, p] : named_parameters()) {
    Tensor& t = p.mutable_data();
    if (t.ndim() == 4) init::xavier_uniform_(t, gen);
    else init::constant_(t, 0.0);
  }
}

template <typename T>
std::vector<Variable> Fpn<T>::forward(const std::vector<Variable>& inputs) const {
  const size_t levels = m_lateral.size();
  DRCNN_CHECK(inputs.size() == levels, "Fpn: expected ", levels, " input levels, got ", inputs.size());
  std::vector<Variable> lat;
  for (size_t i = 0; i < levels; ++i) lat.push_back(m_lateral[i]->forward(inputs[i]));
  for (size_t i = levels - 1; i > 0; --i)
    lat[i - 1] = add(lat[i - 1], upsample_nearest2d(lat[i], lat[i - 1].size(2), lat[i - 1].size(3)));
  std::vector<Variable> outs;
  for (size_t i = 0; i < levels; ++i) outs.push_back(m_output[i]->forward(lat[i]));
  const size_t num_outs = static_cast<size_t>(m_opt.num_outs);
  if (m_opt.extra == FpnExtra::MaxPool) {
    const auto pool = ops::MaxPool2dOptions::square(1, 2);
    while (outs.size() < num_outs) outs.push_back(max_pool2d(outs.back(), pool));
  } else {
    for (size_t i = levels; i < num_outs; ++i) {
      Variable src = i == levels ? (m_opt.extra == FpnExtra::ConvOnInput ? inputs.back() : outs[levels - 1])
                                 : (m_opt.relu_before_extra_convs ? relu(outs.back()) : outs.back());
      outs.push_back(m_output[i]->forward(src));
    }
  }
  return outs;
}

template class ConvModule<float>;
template class ConvModule<double>;
template class Fpn<float>;
template class Fpn<double>;

}  // namespace drcnn::models
