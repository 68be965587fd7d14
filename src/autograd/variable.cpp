// The autograd engine: Variable's node, graph recording, and backward().
//
// A recorded Variable owns its inputs (shared_ptr), so the graph is kept alive by its outputs
// and freed when they go. backward() sorts the nodes reachable from the root by an iterative
// DFS (graphs from a loop can be thousands of nodes deep; recursion would overflow the
// stack), then walks them root-first. Gradients are never updated in place: a GradFn may hand
// the same Tensor to several inputs (add gives grad_output to both sides), so accumulation is
// always `grad = grad + g`.
#include <iterator>
#include <unordered_set>
#include <utility>

#include "drcnn/autograd/variable.h"
#include "drcnn/ops/elementwise.h"

namespace drcnn {

struct Variable::Impl {
  Tensor data;
  Tensor grad;                  // leaves: accumulated across passes; others: one pass only
  bool requires_grad = false;
  bool leaf = true;             // false once produced by a recorded function (never reset)
  bool freed = false;           // a non-leaf whose inputs/grad_fn were released by backward()
  std::vector<Variable> inputs;
  GradFn grad_fn;
  std::string name = "leaf";

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  // Releasing a long chain through nested shared_ptr destructors recurses once per node, so
  // a 10^5-op graph dropped without backward() would overflow the stack. Unlink iteratively:
  // a node whose last owner is this loop gives up its inputs before it dies.
  ~Impl() {
    std::vector<std::shared_ptr<Impl>> pending;
    auto take_inputs = [&pending](Impl& node) {
      for (Variable& v : node.inputs)
        if (v.m_impl) pending.push_back(std::move(v.m_impl));
      node.inputs.clear();
      node.grad_fn = nullptr;  // a GradFn could capture Variables too
    };
    take_inputs(*this);
    while (!pending.empty()) {
      std::shared_ptr<Impl> node = std::move(pending.back());
      pending.pop_back();
      if (node.use_count() == 1) take_inputs(*node);
    }
  }
};

namespace {
thread_local bool t_grad_mode = true;

// A template so that the private Variable::Impl is never named here.
template <typename ImplPtr>
auto& checked(const ImplPtr& impl, const char* op) {
  DRCNN_CHECK(impl != nullptr, op, ": the variable is undefined (default-constructed Variable)");
  return *impl;
}
}  // namespace

// ------------------------------------------------------------------ grad mode
NoGradGuard::NoGradGuard() : m_previous(t_grad_mode) { t_grad_mode = false; }
NoGradGuard::~NoGradGuard() { t_grad_mode = m_previous; }
bool grad_mode_enabled() { return t_grad_mode; }

// ------------------------------------------------------------------ construction
Variable::Variable(Tensor data, bool requires_grad) : m_impl(std::make_shared<Impl>()) {
  DRCNN_CHECK(data.defined(), "Variable: cannot wrap an undefined tensor");
  m_impl->data = std::move(data);
  if (requires_grad) set_requires_grad(true);
}

Variable Variable::make(Tensor data, std::vector<Variable> inputs, GradFn grad_fn, const char* name) {
  DRCNN_CHECK(data.defined(), name, ": produced an undefined tensor");
  bool any_requires_grad = false;
  for (const Variable& v : inputs) any_requires_grad = any_requires_grad || (v.defined() && v.requires_grad());
  Variable out;
  out.m_impl = std::make_shared<Impl>();
  out.m_impl->data = std::move(data);
  if (!t_grad_mode || !any_requires_grad) return out;  // a constant: nothing to record
  DRCNN_CHECK(grad_fn != nullptr, name, ": a differentiable function must pass a grad_fn");
  out.m_impl->requires_grad = true;
  out.m_impl->leaf = false;
  out.m_impl->inputs = std::move(inputs);
  out.m_impl->grad_fn = std::move(grad_fn);
  out.m_impl->name = name;
  return out;
}

// ------------------------------------------------------------------ accessors
const Tensor& Variable::data() const { return checked(m_impl, "Variable::data").data; }
Tensor& Variable::mutable_data() { return checked(m_impl, "Variable::mutable_data").data; }
const Tensor& Variable::grad() const { return checked(m_impl, "Variable::grad").grad; }
bool Variable::has_grad() const { return checked(m_impl, "Variable::has_grad").grad.defined(); }
bool Variable::requires_grad() const { return checked(m_impl, "Variable::requires_grad").requires_grad; }
bool Variable::is_leaf() const { return checked(m_impl, "Variable::is_leaf").leaf; }
std::string Variable::grad_fn_name() const { return checked(m_impl, "Variable::grad_fn_name").name; }

Variable& Variable::set_requires_grad(bool value) {
  Impl& impl = checked(m_impl, "Variable::set_requires_grad");
  DRCNN_CHECK(impl.leaf, "Variable::set_requires_grad: only leaves may change requires_grad, but this variable was ",
              "produced by '", impl.name, "'; use detach() to get a leaf");
  DRCNN_CHECK(!value || is_floating(impl.data.dtype()), "Variable::set_requires_grad: only floating-point ",
              "variables can require gradients, got ", impl.data.dtype(), " of shape ", impl.data.shape());
  impl.requires_grad = value;
  return *this;
}

void Variable::zero_grad() { checked(m_impl, "Variable::zero_grad").grad = Tensor(); }

Variable Variable::detach() const { return Variable(checked(m_impl, "Variable::detach").data, false); }

void Variable::add_grad(const Tensor& g) {
  Impl& impl = checked(m_impl, "Variable::add_grad");
  DRCNN_CHECK(g.defined(), "Variable::add_grad: the gradient for '", impl.name, "' is undefined");
  DRCNN_CHECK(g.shape() == impl.data.shape(), "Variable::add_grad: gradient of shape ", g.shape(),
              " for a variable of shape ", impl.data.shape(), " (from '", impl.name, "'); shapes must match");
  DRCNN_CHECK(g.dtype() == impl.data.dtype(), "Variable::add_grad: gradient of dtype ", g.dtype(),
              " for a variable of dtype ", impl.data.dtype(), " (from '", impl.name, "')");
  DRCNN_CHECK(g.device() == impl.data.device(), "Variable::add_grad: gradient on ", g.device(),
              " for a variable on ", impl.data.device(), " (from '", impl.name, "')");
  if (!impl.grad.defined()) {
    // Leaves keep a contiguous gradient (optimizers read it flat); inner nodes take the
    // tensor as is, often a view of grad_output, since it lives for one step only.
    impl.grad = impl.leaf ? g.contiguous() : g;
  } else {
    impl.grad = ops::add(impl.grad, g);  // out of place: g or grad may be shared
  }
}

// ------------------------------------------------------------------ backward
class BackwardEngine {
 public:
  using Impl = Variable::Impl;

  static void run(const Variable& root, const Tensor& seed, bool retain_graph, const Variable::LeafHook* on_leaf = nullptr) {
    Impl& r = *root.m_impl;
    DRCNN_CHECK(r.requires_grad, "backward: the variable (from '", r.name, "') does not require grad; ",
                "no input of its graph had requires_grad = true, or it was computed under NoGradGuard");
    // Owning pointers: freeing a node's inputs below may drop the last other reference to a
    // node that is still to be processed.
    std::vector<std::shared_ptr<Impl>> order = topological_order(root.m_impl);
    // Clear inner-node gradients even when a GradFn throws, so a later pass starts clean.
    struct Cleanup {
      std::vector<std::shared_ptr<Impl>>& nodes;
      ~Cleanup() {
        for (auto& n : nodes)
          if (n && !n->leaf) n->grad = Tensor();
      }
    } cleanup{order};

    Variable handle = root;
    handle.add_grad(seed);
    for (std::shared_ptr<Impl>& node : order) {  // root first: every consumer runs before its inputs
      if (node->leaf && on_leaf && *on_leaf) {
        // Every consumer of this leaf ran already (topological order): its gradient is final.
        Variable leaf;
        leaf.m_impl = node;
        (*on_leaf)(leaf);
      }
      if (node->leaf || !node->grad.defined()) continue;
      const Tensor grad = std::move(node->grad);  // released after use
      node->grad = Tensor();
      node->grad_fn(node->inputs, grad);
      if (!retain_graph) {
        node->inputs.clear();
        node->grad_fn = nullptr;
        node->freed = true;
        node.reset();  // this node's memory goes now unless something else holds it
      }
    }
  }

 private:
  // Nodes reachable from `root` through inputs that require grad, each listed after every
  // node that consumes it (reverse post-order of an iterative DFS). Fails before anything
  // runs if the walk reaches a node whose graph an earlier backward() already freed.
  static std::vector<std::shared_ptr<Impl>> topological_order(const std::shared_ptr<Impl>& root) {
    std::vector<std::shared_ptr<Impl>> post;
    std::unordered_set<const Impl*> seen{root.get()};
    std::vector<std::pair<std::shared_ptr<Impl>, size_t>> stack{{root, 0}};  // (node, next input to visit)
    while (!stack.empty()) {
      Impl& node = *stack.back().first;
      DRCNN_CHECK(!node.freed, "backward: backward through a graph that was already freed (at '", node.name,
                  "'); pass retain_graph=true to the earlier backward() to run backward through it again");
      const size_t next = stack.back().second++;
      if (next < node.inputs.size()) {
        const std::shared_ptr<Impl>& child = node.inputs[next].m_impl;
        if (child && child->requires_grad && seen.insert(child.get()).second) stack.emplace_back(child, 0);
        continue;
      }
      post.push_back(std::move(stack.back().first));  // all of its inputs are listed already
      stack.pop_back();
    }
    return {std::make_move_iterator(post.rbegin()), std::make_move_iterator(post.rend())};
  }
};

void Variable::backward(bool retain_graph) {
  const Impl& impl = checked(m_impl, "backward");
  DRCNN_CHECK(impl.data.numel() == 1, "backward: called without a gradient on a variable of shape ",
              impl.data.shape(), " (from '", impl.name, "'); the implicit gradient needs exactly 1 element; ",
              "reduce it first (e.g. sum) or pass a gradient of the same shape");
  BackwardEngine::run(*this, Tensor::ones(impl.data.shape(), impl.data.dtype(), impl.data.device()), retain_graph);
}

void Variable::backward(const LeafHook& on_leaf_ready, bool retain_graph) {
  const Impl& impl = checked(m_impl, "backward");
  DRCNN_CHECK(impl.data.numel() == 1, "backward: called without a gradient on a variable of shape ",
              impl.data.shape(), " (from '", impl.name, "'); the implicit gradient needs exactly 1 element");
  BackwardEngine::run(*this, Tensor::ones(impl.data.shape(), impl.data.dtype(), impl.data.device()), retain_graph,
                      &on_leaf_ready);
}

void Variable::backward(const Tensor& grad, bool retain_graph) {
  const Impl& impl = checked(m_impl, "backward");
  DRCNN_CHECK(grad.defined(), "backward: the seed gradient is undefined");
  DRCNN_CHECK(grad.shape() == impl.data.shape() && grad.dtype() == impl.data.dtype() &&
                  grad.device() == impl.data.device(),
              "backward: seed gradient ", grad.shape(), " ", grad.dtype(), " on ", grad.device(),
              " does not match the variable's ", impl.data.shape(), " ", impl.data.dtype(), " on ",
              impl.data.device());
  BackwardEngine::run(*this, grad, retain_graph);
}
}  // namespace drcnn
