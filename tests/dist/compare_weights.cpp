// compare_weights A.safetensors B.safetensors MAX_ABS MAX_REL: prints the largest absolute and
// relative difference over every tensor (the same names and shapes required), and fails when
// either exceeds its bound (0 0: bitwise equality). For tests/dist/dist_train.sh.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "drcnn/io/safetensors.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    fmt::print(stderr, "usage: compare_weights A.safetensors B.safetensors MAX_ABS MAX_REL\n");
    return 2;
  }
  try {
    const auto a = drcnn::io::load_safetensors(argv[1]);
    const auto b = drcnn::io::load_safetensors(argv[2]);
    const double max_abs = std::atof(argv[3]), max_rel = std::atof(argv[4]);
    if (a.tensors.size() != b.tensors.size()) {
      fmt::print(stderr, "compare_weights: {} tensors in {}, {} in {}\n", a.tensors.size(), argv[1], b.tensors.size(), argv[2]);
      return 1;
    }
    double worst_abs = 0, worst_rel = 0;
    std::string where_abs, where_rel;
    size_t differing = 0;
    for (const auto& [name, ta] : a.tensors) {
      const auto it = b.tensors.find(name);
      if (it == b.tensors.end() || it->second.shape() != ta.shape()) {
        fmt::print(stderr, "compare_weights: {} missing or of another shape in {}\n", name, argv[2]);
        return 1;
      }
      const auto va = ta.to(drcnn::DType::Float64).to_vector<double>();
      const auto vb = it->second.to(drcnn::DType::Float64).to_vector<double>();
      bool differs = false;
      for (size_t i = 0; i < va.size(); ++i) {
        const double d = std::abs(va[i] - vb[i]);
        const double rel = d / std::max({std::abs(va[i]), std::abs(vb[i]), 1e-3});
        differs = differs || d != 0;
        if (d > worst_abs) worst_abs = d, where_abs = name;
        if (rel > worst_rel) worst_rel = rel, where_rel = name;
      }
      differing += differs;
    }
    fmt::print("compare_weights: {} tensors, {} differ; max |a - b| = {:.3g} ({}), max relative = {:.3g} ({}) "
               "(bounds {} and {})\n",
               a.tensors.size(), differing, worst_abs, where_abs.empty() ? "-" : where_abs, worst_rel,
               where_rel.empty() ? "-" : where_rel, max_abs, max_rel);
    return worst_abs <= max_abs && worst_rel <= max_rel ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "compare_weights: {}\n", e.what());
    return 1;
  }
}
