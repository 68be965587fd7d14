// Definitions of the layers of include/drcnn/layers/layers.h and their float/double
// instantiations (the only translation unit that compiles them).
#include <cmath>
#include <string>

#include "drcnn/autograd/conv.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/autograd/nn.h"
#include "drcnn/core/error.h"
#include "drcnn/layers/init.h"
#include "drcnn/layers/layers.h"
#include "drcnn/ops/elementwise.h"

namespace drcnn {

namespace {
template <typename T>
void check_input(const char* layer, const Variable& x, int ndim, int64_t channels) {
  DRCNN_CHECK(x.defined(), layer, ": the input is undefined");
  DRCNN_CHECK(x.dtype() == dtype_of_v<T>, layer, ": expected a ", dtype_of_v<T>, " input (the layer's dtype), got ",
              x.dtype());
  DRCNN_CHECK(x.ndim() == ndim && x.size(1) == channels, layer, ": expected an input of ", ndim, " dims with ",
              channels, " channels in dim 1, got shape ", x.shape());
}

/// torch's default init of Conv/Linear: kaiming_uniform(a = sqrt(5)) and a bias U(+-1/sqrt(fan_in)).
void torch_default_init(Tensor& weight, Tensor* bias, Generator& gen) {
  init::kaiming_uniform_(weight, gen, std::sqrt(5.0));
  if (bias) {
    const double bound = 1.0 / std::sqrt(double(init::fans(weight).first));
    init::uniform_(*bias, gen, -bound, bound);
  }
}
}  // namespace

// ---------------------------------------------------------------------------------------- Conv2d
template <typename T>
Conv2d<T>::Conv2d(const Options& o, Generator& gen) : m_opt(o) {
  DRCNN_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel_size > 0 && o.groups > 0 &&
                  o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0,
              "Conv2d: needs positive channels, kernel_size and groups, with groups dividing both channel counts, got in ",
              o.in_channels, ", out ", o.out_channels, ", kernel ", o.kernel_size, ", groups ", o.groups);
  DRCNN_CHECK(o.stride > 0 && o.dilation > 0 && o.padding >= 0, "Conv2d: needs stride > 0, dilation > 0, padding >= 0, got ",
              o.stride, ", ", o.dilation, ", ", o.padding);
  Tensor w = Tensor::empty({o.out_channels, o.in_channels / o.groups, o.kernel_size, o.kernel_size}, dtype_of_v<T>);
  Tensor b = o.bias ? Tensor::empty({o.out_channels}, dtype_of_v<T>) : Tensor();
  torch_default_init(w, o.bias ? &b : nullptr, gen);
  m_weight = register_parameter("weight", w);
  if (o.bias) m_bias = register_parameter("bias", b);
}

template <typename T>
Variable Conv2d<T>::forward(const Variable& x) const {
  check_input<T>("Conv2d", x, 4, m_opt.in_channels);
  ops::Conv2dParams p;
  p.stride = {m_opt.stride, m_opt.stride};
  p.padding = {m_opt.padding, m_opt.padding};
  p.dilation = {m_opt.dilation, m_opt.dilation};
  p.groups = m_opt.groups;
  return conv2d(x, m_weight, m_bias, p);
}

// ---------------------------------------------------------------------------------------- Linear
template <typename T>
Linear<T>::Linear(const Options& o, Generator& gen) : m_opt(o) {
  DRCNN_CHECK(o.in_features > 0 && o.out_features > 0, "Linear: needs positive in and out features, got ",
              o.in_features, " and ", o.out_features);
  Tensor w = Tensor::empty({o.out_features, o.in_features}, dtype_of_v<T>);
  Tensor b = o.bias ? Tensor::empty({o.out_features}, dtype_of_v<T>) : Tensor();
  torch_default_init(w, o.bias ? &b : nullptr, gen);
  m_weight = register_parameter("weight", w);
  if (o.bias) m_bias = register_parameter("bias", b);
}

template <typename T>
Variable Linear<T>::forward(const Variable& x) const {
  check_input<T>("Linear", x, 2, m_opt.in_features);
  return linear(x, m_weight, m_bias);
}

// ----------------------------------------------------------------------------- FrozenBatchNorm2d
template <typename T>
FrozenBatchNorm2d<T>::FrozenBatchNorm2d(int64_t num_features, double eps) : m_features(num_features), m_eps(eps) {
  DRCNN_CHECK(num_features > 0 && eps >= 0 && std::isfinite(eps),
              "FrozenBatchNorm2d: needs num_features > 0 and a finite eps >= 0, got ", num_features, " and ", eps);
  m_weight = register_buffer("weight", Tensor::ones({num_features}, dtype_of_v<T>));
  m_bias = register_buffer("bias", Tensor::zeros({num_features}, dtype_of_v<T>));
  m_mean = register_buffer("running_mean", Tensor::zeros({num_features}, dtype_of_v<T>));
  m_var = register_buffer("running_var", Tensor::ones({num_features}, dtype_of_v<T>));
}

template <typename T>
Variable FrozenBatchNorm2d<T>::forward(const Variable& x) const {
  check_input<T>("FrozenBatchNorm2d", x, 4, m_features);
  return frozen_batch_norm2d(x, m_weight.data(), m_bias.data(), m_mean.data(), m_var.data(), m_eps);
}

// ----------------------------------------------------------------------------------- BatchNorm2d
template <typename T>
BatchNorm2d<T>::BatchNorm2d(int64_t num_features, double eps, double momentum)
    : m_features(num_features), m_eps(eps), m_momentum(momentum) {
  DRCNN_CHECK(num_features > 0 && eps > 0 && std::isfinite(eps) && momentum >= 0 && momentum <= 1,
              "BatchNorm2d: needs num_features > 0, a finite eps > 0 and momentum in [0, 1], got ", num_features, ", ",
              eps, ", ", momentum);
  m_weight = register_parameter("weight", Tensor::ones({num_features}, dtype_of_v<T>));
  m_bias = register_parameter("bias", Tensor::zeros({num_features}, dtype_of_v<T>));
  m_mean = register_buffer("running_mean", Tensor::zeros({num_features}, dtype_of_v<T>));
  m_var = register_buffer("running_var", Tensor::ones({num_features}, dtype_of_v<T>));
  m_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::Int64));
}

template <typename T>
Variable BatchNorm2d<T>::forward(const Variable& x) {
  check_input<T>("BatchNorm2d", x, 4, m_features);
  if (is_training()) {  // on the tensor's device: no host round trip per forward
    Tensor& n = m_tracked.mutable_data();
    n.copy_(ops::add(n, 1.0));
  }
  return batch_norm2d(x, m_weight, m_bias, m_mean.data(), m_var.data(), is_training(), m_momentum, m_eps);
}

// ------------------------------------------------------------------------------------- GroupNorm
template <typename T>
GroupNorm<T>::GroupNorm(int64_t num_groups, int64_t num_channels, double eps)
    : m_groups(num_groups), m_channels(num_channels), m_eps(eps) {
  DRCNN_CHECK(num_groups > 0 && num_channels > 0 && num_channels % num_groups == 0 && eps > 0 && std::isfinite(eps),
              "GroupNorm: needs num_groups dividing num_channels (both > 0) and a finite eps > 0, got ", num_groups,
              ", ", num_channels, ", ", eps);
  m_weight = register_parameter("weight", Tensor::ones({num_channels}, dtype_of_v<T>));
  m_bias = register_parameter("bias", Tensor::zeros({num_channels}, dtype_of_v<T>));
}

template <typename T>
Variable GroupNorm<T>::forward(const Variable& x) const {
  check_input<T>("GroupNorm", x, 4, m_channels);
  return group_norm(x, m_groups, m_weight, m_bias, m_eps);
}

// ------------------------------------------------------------------------- parameter-free layers
Variable MaxPool2d::forward(const Variable& x) const { return max_pool2d(x, m_opt); }
Variable ReLU::forward(const Variable& x) const { return relu(x); }
Variable Sequential::forward(const Variable& x) const {
  Variable y = x;
  for (const auto& step : m_steps) y = step(y);
  return y;
}

template class Conv2d<float>;
template class Conv2d<double>;
template class Linear<float>;
template class Linear<double>;
template class FrozenBatchNorm2d<float>;
template class FrozenBatchNorm2d<double>;
template class BatchNorm2d<float>;
template class BatchNorm2d<double>;
template class GroupNorm<float>;
template class GroupNorm<double>;

}  // namespace drcnn
