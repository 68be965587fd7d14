// load_pretrained (include/drcnn/engine/init_weights.h); tests: tests/engine/test_init_weights.cpp.
#include "drcnn/engine/init_weights.h"

#include <set>

#include <fmt/format.h>

#include "drcnn/core/error.h"
#include "drcnn/io/safetensors.h"

namespace drcnn::engine {

namespace {
bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::string name_list(const char* title, const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string s = fmt::format("\n  {} ({}):", title, names.size());
  for (const std::string& n : names) s += "\n    " + n;
  return s;
}
}  // namespace

std::string PretrainedReport::summary() const {
  std::string s = fmt::format("{} {}: loaded {} tensors", what, path, loaded.size());
  if (outside > 0) s += fmt::format(" ({} tensors of the file lie outside and are not used)", outside);
  return s + name_list("missing, left as initialised", missing) + name_list("unexpected, ignored", unexpected);
}

PretrainedReport load_pretrained(Module& model, const std::filesystem::path& path, const std::string& what,
                                 const std::string& into) {
  PretrainedReport r;
  r.what = what;
  r.path = path.string();
  io::SafetensorsFile file;
  try {
    file = io::load_safetensors(path);
  } catch (const std::exception& e) {
    throw Error(fmt::format("{} {}: cannot read the weights: {}", what, r.path, e.what()));
  }
  std::set<std::string> slots;
  for (const auto& [name, t] : model.state_dict())
    if (starts_with(name, into)) slots.insert(name);
  bool prefixed = false;
  for (const auto& [name, t] : file.tensors) prefixed = prefixed || (!into.empty() && starts_with(name, into));

  NamedTensors selected;
  for (const auto& [name, t] : file.tensors) {
    if (prefixed && !starts_with(name, into)) {
      ++r.outside;
      continue;
    }
    const std::string target = prefixed ? name : into + name;
    if (slots.count(target)) {
      selected.emplace_back(target, t);
      r.loaded.push_back(target);
    } else {
      r.unexpected.push_back(target);
    }
  }
  const std::set<std::string> got(r.loaded.begin(), r.loaded.end());
  for (const std::string& s : slots)
    if (!got.count(s)) r.missing.push_back(s);
  DRCNN_CHECK(!r.loaded.empty(), what, " ", r.path, ": none of its ", file.tensors.size(),
              " tensors fits a name of the model", into.empty() ? std::string() : " under '" + into + "'",
              " (the file's first: '", file.tensors.empty() ? std::string("<none>") : file.tensors.begin()->first,
              "', the model's first: '", slots.empty() ? std::string("<none>") : *slots.begin(),
              "'); convert published files with tools/convert_checkpoint.py");
  try {
    model.load_state_dict(selected, /*strict=*/false);
  } catch (const Error& e) {
    throw Error(fmt::format("{} {}: {}", what, r.path, e.what()));
  }
  return r;
}

}  // namespace drcnn::engine
