// Module registry, modes and state dicts (include/drcnn/layers/module.h).
#include "drcnn/layers/module.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "drcnn/core/error.h"

namespace drcnn {

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
}  // namespace

void Module::check_new_name(const std::string& name) const {
  DRCNN_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module: a parameter, buffer or child name ",
              "must be non-empty and contain no '.', got '", name, "'");
  const auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  DRCNN_CHECK(!taken(m_parameters) && !taken(m_buffers) && !taken(m_children), "Module: the name '", name,
              "' is already registered");
}

Variable Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_new_name(name);
  DRCNN_CHECK(value.defined(), "Module: parameter '", name, "' is undefined");
  DRCNN_CHECK(is_floating(value.dtype()), "Module: parameter '", name, "' must be floating-point, got ",
              value.dtype());
  Variable v(std::move(value), requires_grad);
  m_parameters.emplace_back(name, v);
  return v;
}

Variable Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  DRCNN_CHECK(value.defined(), "Module: buffer '", name, "' is undefined");
  Variable v(std::move(value), false);
  m_buffers.emplace_back(name, v);
  return v;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  DRCNN_CHECK(child != nullptr, "Module: child '", name, "' is null");
  DRCNN_CHECK(child.get() != this, "Module: a module cannot be its own child ('", name, "')");
  m_children.emplace_back(name, std::move(child));
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& params,
                     std::vector<std::pair<std::string, Variable>>* buffers) const {
  for (const auto& [name, v] : m_parameters) params.emplace_back(join(prefix, name), v);
  if (buffers)
    for (const auto& [name, v] : m_buffers) buffers->emplace_back(join(prefix, name), v);
  for (const auto& [name, child] : m_children) child->collect(join(prefix, name), params, buffers);
}

void Module::collect_modules(const std::string& prefix, std::map<std::string, const Module*>& out) const {
  out.emplace(prefix, this);
  for (const auto& [name, child] : m_children) child->collect_modules(join(prefix, name), out);
}

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  collect("", out, nullptr);
  return out;
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& [name, v] : named_parameters())
    if (v.requires_grad()) out.push_back(v);
  return out;
}

std::vector<std::pair<std::string, Variable>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Variable>> params, buffers;
  collect("", params, &buffers);
  return buffers;
}

void Module::train(bool on) {
  m_training = on;
  for (auto& [name, child] : m_children) child->train(on);
}

void Module::freeze() {
  for (auto& [name, v] : m_parameters) v.set_requires_grad(false);
  for (auto& [name, child] : m_children) child->freeze();
}

NamedTensors Module::state_dict() const {
  std::vector<std::pair<std::string, Variable>> params, buffers;
  collect("", params, &buffers);
  NamedTensors out;
  out.reserve(params.size() + buffers.size());
  for (auto& [name, v] : params) out.emplace_back(name, v.data());
  for (auto& [name, v] : buffers) out.emplace_back(name, v.data());
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::vector<std::pair<std::string, Variable>> params, buffers;
  collect("", params, &buffers);
  std::map<std::string, Variable> slots;
  for (auto& e : params) slots.emplace(e);
  for (auto& e : buffers) slots.emplace(e);

  std::map<std::string, const Module*> modules;
  collect_modules("", modules);
  const auto ignored_by_owner = [&](const std::string& key) {
    const size_t dot = key.rfind('.');
    const std::string prefix = dot == std::string::npos ? std::string() : key.substr(0, dot);
    const auto owner = modules.find(prefix);
    return owner != modules.end() && owner->second->ignores_state_key(key.substr(dot == std::string::npos ? 0 : dot + 1));
  };
  std::vector<std::string> unexpected, mismatched, duplicated;
  std::set<std::string> seen;
  std::vector<std::pair<Variable, const Tensor*>> writes;
  for (const auto& [name, t] : state) {
    if (!seen.insert(name).second) {
      duplicated.push_back(name);
      continue;
    }
    auto it = slots.find(name);
    if (it == slots.end()) {
      if (!ignored_by_owner(name)) unexpected.push_back(name);
      continue;
    }
    const Tensor& dst = it->second.data();
    if (!t.defined() || t.shape() != dst.shape() || t.dtype() != dst.dtype()) {
      mismatched.push_back(t.defined() ? detail::concat(name, ": expected ", dst.dtype(), " ", dst.shape(), ", got ",
                                                        t.dtype(), " ", t.shape())
                                       : detail::concat(name, ": expected ", dst.dtype(), " ", dst.shape(),
                                                        ", got an undefined tensor"));
      continue;
    }
    writes.emplace_back(it->second, &t);
  }
  std::vector<std::string> missing;
  for (const auto& [name, v] : params)
    if (!seen.count(name)) missing.push_back(name);
  for (const auto& [name, v] : buffers)
    if (!seen.count(name)) missing.push_back(name);

  const bool bad_keys = strict && (!missing.empty() || !unexpected.empty());
  if (bad_keys || !mismatched.empty() || !duplicated.empty()) {
    std::ostringstream s;
    s << "load_state_dict: the state does not fit the module";
    const auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      s << "\n  " << what << " (" << names.size() << "):";
      for (const auto& n : names) s << "\n    " << n;
    };
    if (strict) {
      list("missing keys", missing);
      list("unexpected keys", unexpected);
    }
    list("shape or dtype mismatches", mismatched);
    list("duplicated keys", duplicated);
    DRCNN_FAIL(s.str());
  }
  for (auto& [slot, src] : writes) slot.mutable_data().copy_(*src);
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  load_state_dict(NamedTensors(state.begin(), state.end()), strict);
}

void Module::to(Device device) {
  for (auto& [name, v] : m_parameters) v.mutable_data() = v.data().to(device);
  for (auto& [name, v] : m_buffers) v.mutable_data() = v.data().to(device);
  for (auto& [name, child] : m_children) child->to(device);
}

}  // namespace drcnn
