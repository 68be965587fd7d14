// Module: the base of every layer and model. It owns named parameters (trainable Variables),
// buffers (state that is saved but not trained, e.g. BatchNorm running statistics) and child
// modules, and offers what torch.nn.Module users expect: dotted names, train()/eval(),
// freeze(), parameters(), state_dict() and load_state_dict() with one error listing every
// missing key, unexpected key and shape or dtype mismatch.
//
// Parameters and buffers are Variable handles: the layer keeps a copy of the handle it got
// from register_parameter()/register_buffer(), and the module's registry keeps another, so
// loading weights (in place) or moving to a device (replacing the data of the same node) is
// seen by both. Modules are neither copyable nor movable (children are held by shared_ptr).
// Implementation: src/layers/module.cpp; tests: tests/layers/test_module.cpp.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "drcnn/autograd/variable.h"
#include "drcnn/core/tensor.h"

namespace drcnn {

/// Named tensors in registration order (what state_dict() returns and safetensors stores).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// All parameters, recursively, with dotted names ("layer1.0.conv1.weight"), in
  /// registration order (own parameters first, then each child's).
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  /// The parameters that require a gradient (what an optimizer updates).
  std::vector<Variable> parameters() const;
  /// All buffers, recursively, with dotted names.
  std::vector<std::pair<std::string, Variable>> named_buffers() const;
  /// Direct children, in registration order.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return m_children; }

  /// Training mode (BatchNorm uses batch statistics; modules may change behaviour). Recursive.
  /// Modules that pin parts of themselves to eval mode (frozen stages) override it.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return m_training; }
  /// Stops gradients for every parameter of this module and its children (requires_grad off),
  /// as mmdet's frozen stages / torchvision's requires_grad_(False).
  void freeze();

  /// Parameters then buffers, recursively, as (dotted name, data). The tensors share storage
  /// with the module (no copy): copy them before modifying.
  NamedTensors state_dict() const;
  /// Copies each tensor into the parameter or buffer of that name (in place, converting
  /// nothing: dtype and shape must match; the device may differ). With strict, a missing or an
  /// unexpected key is an error; in any case all problems are collected and reported in one
  /// drcnn::Error before anything is written, so a failed load leaves the module unchanged.
  void load_state_dict(const NamedTensors& state, bool strict = true);
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

  /// Moves every parameter and buffer to `device` (the same Variable nodes, new data).
  void to(Device device);

 protected:
  /// Registers a parameter (a leaf Variable requiring a gradient unless requires_grad is
  /// false) and returns its handle. Names are unique within the module and contain no '.'.
  Variable register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  /// Registers a buffer: saved in state_dict, moved by to(), never trained.
  Variable register_buffer(const std::string& name, Tensor value);
  /// Keys of this module that load_state_dict accepts and drops even when strict (e.g.
  /// FrozenBatchNorm2d drops "num_batches_tracked" of a BatchNorm2d checkpoint, as torchvision).
  virtual bool ignores_state_key(const std::string& local_name) const {
    (void)local_name;
    return false;
  }
  /// Registers a child module under `name`; returns it.
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void check_new_name(const std::string& name) const;
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void collect_modules(const std::string& prefix, std::map<std::string, const Module*>& out) const;
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& params,
               std::vector<std::pair<std::string, Variable>>* buffers) const;

  std::vector<std::pair<std::string, Variable>> m_parameters;
  std::vector<std::pair<std::string, Variable>> m_buffers;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> m_children;
  bool m_training = true;
};

}  // namespace drcnn
