// Variable: a Tensor plus what autograd needs (gradient, the function that made it and its
// inputs). Define-by-run, after flashlight's tape: each differentiable function returns
// Variable::make(result, inputs, grad_fn); backward() walks the recorded graph in reverse
// topological order and accumulates gradients into the leaves.
//
// Copies of a Variable are handles to one node (like Tensor). A recorded variable owns its
// inputs, so the graph lives as long as its outputs do. Gradients are Tensors and never
// carry a graph themselves: backward of backward is not supported.
// Implementation: src/autograd/variable.cpp; tests: tests/autograd/test_engine.cpp.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "drcnn/core/tensor.h"

namespace drcnn {

class Variable {
 public:
  /// Computes the inputs' gradients from the output gradient: calls inputs[i].add_grad(...)
  /// for each input that requires_grad(). Captures only what backward needs.
  using GradFn = std::function<void(std::vector<Variable>& inputs, const Tensor& grad_output)>;

  /// Undefined variable.
  Variable() = default;
  /// A leaf holding `data`; with requires_grad, backward() accumulates into grad().
  /// Requires: data is defined; requires_grad only for floating-point data.
  explicit Variable(Tensor data, bool requires_grad = false);

  /// The result of a differentiable function. Records (inputs, grad_fn) only when gradient
  /// mode is on (no NoGradGuard alive) and some input requires a gradient.
  static Variable make(Tensor data, std::vector<Variable> inputs, GradFn grad_fn, const char* name);

  bool defined() const { return m_impl != nullptr; }
  const Tensor& data() const;
  /// Mutable access to the values (optimizer steps); does not touch the graph.
  Tensor& mutable_data();
  /// Accumulated gradient; undefined until a backward pass reached this variable. For leaves it
  /// is contiguous and has data's shape, dtype and device. Treat it as read-only: it may share
  /// storage with tensors inside the graph (the engine never updates a gradient in place).
  /// Inner (non-leaf) variables keep no gradient after backward().
  const Tensor& grad() const;
  bool has_grad() const;
  bool requires_grad() const;
  /// Only leaves may change requires_grad.
  Variable& set_requires_grad(bool value);
  /// True when not produced by a recorded function.
  bool is_leaf() const;
  /// Name of the function that produced this variable ("leaf" for leaves).
  std::string grad_fn_name() const;

  /// Back-propagates from this variable. Without `grad`, the variable must hold one element
  /// and the seed gradient is 1; with it, `grad` must match data's shape, dtype and device.
  /// Leaves add to their gradient (call zero_grad() between steps). The graph is freed
  /// afterwards unless retain_graph; a later backward() reaching a freed node throws.
  /// Requires: requires_grad().
  void backward(bool retain_graph = false);
  void backward(const Tensor& grad, bool retain_graph = false);
  /// Called once per leaf of the graph as soon as its gradient is final (all of its consumers
  /// ran), in the order the backward pass completes them: the equivalent of PyTorch's
  /// post-accumulate-grad hooks, used to start each gradient bucket's all-reduce early.
  using LeafHook = std::function<void(const Variable& leaf)>;
  /// backward() (seed 1) calling `on_leaf_ready` for each leaf reached.
  void backward(const LeafHook& on_leaf_ready, bool retain_graph = false);
  /// Drops the accumulated gradient (the next backward starts from zero).
  void zero_grad();
  /// Adds `g` (same shape, dtype and device as data) to the gradient, out of place. Used by GradFns.
  void add_grad(const Tensor& g);
  /// A new leaf sharing this variable's data, without gradient history.
  Variable detach() const;

  // Convenience forwards to data().
  const Shape& shape() const { return data().shape(); }
  int64_t size(int dim) const { return data().size(dim); }
  int ndim() const { return data().ndim(); }
  int64_t numel() const { return data().numel(); }
  DType dtype() const { return data().dtype(); }
  Device device() const { return data().device(); }

  /// Identity of the underlying node (two handles to one variable compare equal).
  const void* id() const { return m_impl.get(); }

 private:
  struct Impl;
  std::shared_ptr<Impl> m_impl;
  friend class BackwardEngine;
};

/// Disables graph recording for its scope (like torch.no_grad()); nests; per thread.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool m_previous;
};
/// True unless a NoGradGuard is alive on this thread.
bool grad_mode_enabled();
}  // namespace drcnn
