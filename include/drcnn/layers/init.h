// Weight initialisers (torch.nn.init semantics) drawing from drcnn's seeded Generator, so an
// initialisation is reproducible on CPU and CUDA alike. Each fills `t` in place (any device,
// float32/float64) and advances gen by t.numel() counters.
// fan_in = size(1) * prod(size(2:)), fan_out = size(0) * prod(size(2:)) (PyTorch's
// _calculate_fan_in_and_fan_out; tensors need >= 2 dims for the fan-based initialisers).
// Implementation: src/layers/init.cpp; tests: tests/layers/test_init.cpp.
#pragma once
#include "drcnn/core/generator.h"
#include "drcnn/core/tensor.h"

namespace drcnn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Relu, LeakyRelu, Tanh, Sigmoid };

/// torch.nn.init.calculate_gain (LeakyRelu uses `param` as the negative slope).
double calculate_gain(Nonlinearity nl, double param = 0.01);
/// (fan_in, fan_out) of a weight tensor; errors below 2 dims.
std::pair<int64_t, int64_t> fans(const Tensor& t);

/// U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nl, a).
void kaiming_uniform_(Tensor& t, Generator& gen, double a = 0, FanMode mode = FanMode::FanIn,
                      Nonlinearity nl = Nonlinearity::LeakyRelu);
/// N(0, std^2) with std = gain / sqrt(fan).
void kaiming_normal_(Tensor& t, Generator& gen, double a = 0, FanMode mode = FanMode::FanIn,
                     Nonlinearity nl = Nonlinearity::LeakyRelu);
/// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, Generator& gen, double gain = 1.0);
/// U(lo, hi).
void uniform_(Tensor& t, Generator& gen, double lo, double hi);
/// N(mean, std^2).
void normal_(Tensor& t, Generator& gen, double mean = 0.0, double std = 1.0);
/// Every element = value.
void constant_(Tensor& t, double value);

}  // namespace drcnn::init
