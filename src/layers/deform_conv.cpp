// ModulatedDeformConv2dPack (include/drcnn/layers/deform_conv.h) and its float/double
// instantiations.
#include "drcnn/layers/deform_conv.h"

#include <cmath>
#include <string>

#include <fmt/format.h>

#include "drcnn/autograd/deform_conv.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/core/error.h"
#include "drcnn/layers/init.h"

namespace drcnn {

template <typename T>
ModulatedDeformConv2dPack<T>::ModulatedDeformConv2dPack(const Options& o, Generator& gen) : m_opt(o) {
  const char* layer = "ModulatedDeformConv2dPack";
  DRCNN_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel_size > 0 && o.groups > 0 && o.deform_groups > 0 &&
                  o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0 &&
                  o.in_channels % o.deform_groups == 0,
              layer, ": needs positive channels, kernel_size, groups and deform_groups, with groups dividing both ",
              "channel counts and deform_groups the input channels, got in ", o.in_channels, ", out ",
              o.out_channels, ", kernel ", o.kernel_size, ", groups ", o.groups, ", deform_groups ", o.deform_groups);
  DRCNN_CHECK(o.stride > 0 && o.dilation > 0 && o.padding >= 0, layer,
              ": needs stride > 0, dilation > 0, padding >= 0, got ", o.stride, ", ", o.dilation, ", ", o.padding);
  const int64_t k = o.kernel_size;
  Tensor w = Tensor::empty({o.out_channels, o.in_channels / o.groups, k, k}, dtype_of_v<T>);
  const double stdv = 1.0 / std::sqrt(double(o.in_channels * k * k));  // mmcv: n = in_channels * k * k
  init::uniform_(w, gen, -stdv, stdv);
  m_weight = register_parameter("weight", w);
  if (o.bias) m_bias = register_parameter("bias", Tensor::zeros({o.out_channels}, dtype_of_v<T>));
  typename Conv2d<T>::Options co;
  co.in_channels = o.in_channels;
  co.out_channels = 3 * o.deform_groups * k * k;
  co.kernel_size = k;
  co.stride = o.stride;
  co.padding = o.padding;
  co.dilation = o.dilation;
  co.bias = true;
  m_conv_offset = register_module("conv_offset", std::make_shared<Conv2d<T>>(co, gen));
  zero_offset();
}

template <typename T>
void ModulatedDeformConv2dPack<T>::zero_offset() {
  Variable w = m_conv_offset->weight(), b = m_conv_offset->bias();  // handles to the parameters
  w.mutable_data().zero_();
  b.mutable_data().zero_();
}

template <typename T>
Variable ModulatedDeformConv2dPack<T>::forward(const Variable& x) const {
  DRCNN_CHECK(x.defined() && x.dtype() == dtype_of_v<T> && x.ndim() == 4 && x.size(1) == m_opt.in_channels,
              "ModulatedDeformConv2dPack: expected a ", dtype_of_v<T>, " input [N, ", m_opt.in_channels,
              ", H, W], got ", x.defined() ? fmt::format("{} {}", x.dtype(), x.shape()) : std::string("undefined"));
  const int64_t taps = m_opt.deform_groups * m_opt.kernel_size * m_opt.kernel_size;
  const Variable out = m_conv_offset->forward(x);
  ops::DeformConv2dParams p;
  p.stride = {m_opt.stride, m_opt.stride};
  p.padding = {m_opt.padding, m_opt.padding};
  p.dilation = {m_opt.dilation, m_opt.dilation};
  p.groups = m_opt.groups;
  p.offset_groups = m_opt.deform_groups;
  return deform_conv2d(x, narrow(out, 1, 0, 2 * taps), sigmoid(narrow(out, 1, 2 * taps, taps)), m_weight, m_bias, p);
}

template class ModulatedDeformConv2dPack<float>;
template class ModulatedDeformConv2dPack<double>;
}  // namespace drcnn
