// The building blocks of networks, as torch.nn users know them: Conv2d, Linear,
// FrozenBatchNorm2d, BatchNorm2d, GroupNorm, MaxPool2d, ReLU and Sequential. Each is a Module
// (include/drcnn/layers/module.h) templated on its scalar type T (float or double: the dtype
// of its parameters and of the inputs it accepts), with torch's parameter names and default
// initialisation, and a non-virtual forward(const Variable&).
// Definitions and the float/double instantiations: src/layers/layers.cpp.
// Tests: tests/layers/test_layers.cpp.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "drcnn/autograd/variable.h"
#include "drcnn/core/generator.h"
#include "drcnn/layers/module.h"
#include "drcnn/ops/nn.h"

namespace drcnn {

/// torch.nn.Conv2d with square kernel, stride, padding and dilation. Parameters "weight"
/// [out, in / groups, k, k] and, with bias, "bias" [out]. Initialised as torch does:
/// kaiming_uniform(a = sqrt(5)) for the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias.
template <typename T = float>
class Conv2d : public Module {
 public:
  struct Options {
    int64_t in_channels = 0, out_channels = 0, kernel_size = 1;
    int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
    bool bias = true;
  };
  Conv2d(const Options& o, Generator& gen);
  Variable forward(const Variable& x) const;
  const Options& options() const { return m_opt; }
  const Variable& weight() const { return m_weight; }
  const Variable& bias() const { return m_bias; }  // undefined without bias

 private:
  Options m_opt;
  Variable m_weight, m_bias;
};

/// torch.nn.Linear: y = x W^T + b on [N, in]. Parameters "weight" [out, in], "bias" [out];
/// torch's default initialisation.
template <typename T = float>
class Linear : public Module {
 public:
  struct Options {
    int64_t in_features = 0, out_features = 0;
    bool bias = true;
  };
  Linear(const Options& o, Generator& gen);
  Variable forward(const Variable& x) const;
  const Options& options() const { return m_opt; }
  const Variable& weight() const { return m_weight; }
  const Variable& bias() const { return m_bias; }

 private:
  Options m_opt;
  Variable m_weight, m_bias;
};

/// torchvision.ops.FrozenBatchNorm2d: y = x * scale + shift from fixed statistics. Buffers
/// (not parameters, as torchvision) "weight", "bias", "running_mean", "running_var",
/// initialised to 1, 0, 0, 1. eps: torchvision uses 1e-5, the original Dynamic R-CNN
/// (maskrcnn-benchmark) 0. A BatchNorm2d state's "num_batches_tracked" is accepted and dropped.
template <typename T = float>
class FrozenBatchNorm2d : public Module {
 public:
  explicit FrozenBatchNorm2d(int64_t num_features, double eps = 1e-5);
  Variable forward(const Variable& x) const;
  double eps() const { return m_eps; }

 protected:
  bool ignores_state_key(const std::string& local_name) const override { return local_name == "num_batches_tracked"; }

 private:
  int64_t m_features;
  double m_eps;
  Variable m_weight, m_bias, m_mean, m_var;
};

/// torch.nn.BatchNorm2d (affine, track_running_stats): parameters "weight" (1) and "bias" (0);
/// buffers "running_mean" (0), "running_var" (1) and "num_batches_tracked" (int64 scalar).
/// Training mode normalises with the batch statistics and updates the running ones
/// (momentum 0.1, unbiased variance); eval mode uses the running statistics.
template <typename T = float>
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  Variable forward(const Variable& x);

 private:
  int64_t m_features;
  double m_eps, m_momentum;
  Variable m_weight, m_bias, m_mean, m_var, m_tracked;
};

/// torch.nn.GroupNorm (affine): parameters "weight" (1) and "bias" (0) [num_channels].
template <typename T = float>
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5);
  Variable forward(const Variable& x) const;

 private:
  int64_t m_groups, m_channels;
  double m_eps;
  Variable m_weight, m_bias;
};

/// torch.nn.MaxPool2d (no parameters).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const ops::MaxPool2dOptions& o) : m_opt(o) {}
  Variable forward(const Variable& x) const;

 private:
  ops::MaxPool2dOptions m_opt;
};

/// torch.nn.ReLU (no parameters).
class ReLU : public Module {
 public:
  Variable forward(const Variable& x) const;
};

/// torch.nn.Sequential: children named "0", "1", ... applied in order. Any module with a
/// `Variable forward(const Variable&)` can be appended.
class Sequential : public Module {
 public:
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    register_module(std::to_string(m_steps.size()), m);
    M* raw = m.get();
    m_steps.emplace_back([raw](const Variable& x) { return raw->forward(x); });
    return m;
  }
  /// Appends a module whose forward is given separately (type-erased layers, e.g. a norm).
  void push_back(std::shared_ptr<Module> m, std::function<Variable(const Variable&)> forward) {
    register_module(std::to_string(m_steps.size()), std::move(m));
    m_steps.push_back(std::move(forward));
  }
  Variable forward(const Variable& x) const;
  size_t size() const { return m_steps.size(); }

 private:
  std::vector<std::function<Variable(const Variable&)>> m_steps;
};

/// torch.nn.ModuleList: children named "0", "1", ... held for their parameters (no forward).
class ModuleList : public Module {
 public:
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return register_module(std::to_string(m_size++), m);
  }
  size_t size() const { return m_size; }

 private:
  size_t m_size = 0;
};

extern template class Conv2d<float>;
extern template class Conv2d<double>;
extern template class Linear<float>;
extern template class Linear<double>;
extern template class FrozenBatchNorm2d<float>;
extern template class FrozenBatchNorm2d<double>;
extern template class BatchNorm2d<float>;
extern template class BatchNorm2d<double>;
extern template class GroupNorm<float>;
extern template class GroupNorm<double>;

}  // namespace drcnn
