// Goldens for tests: small safetensors files under tests/data/ (written by tools/*.py from
// PyTorch), read with drcnn's own reader, from the source tree's tests/data (common/source_dir.h),
// so tests find the files from any build directory.
//
//   const auto g = drcnn::test::load_golden("conv2d/stride2");   // tests/data/conv2d/stride2.safetensors
//   const Tensor& x = g["input"];                                 // clear error if missing
//   g.meta("torch_version");                                      // a "__metadata__" entry
//   expect_golden_close("conv2d out", y, g["output"], 1e-10, 1e-10);  // prints the max errors
#pragma once
#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <filesystem>
#include <string>

#include "common/allclose.h"
#include "common/source_dir.h"
#include "drcnn/core/error.h"
#include "drcnn/core/tensor.h"
#include "drcnn/io/safetensors.h"

namespace drcnn::test {

/// tests/data/<name>.safetensors in the source tree.
inline std::filesystem::path golden_path(const std::string& name) {
  return data_dir() / (name + ".safetensors");
}

/// A loaded golden: its tensors by name, with errors that name the golden and list what it has.
struct Golden {
  std::string name;
  std::filesystem::path path;
  io::SafetensorsFile file;

  bool contains(const std::string& tensor) const { return file.contains(tensor); }
  /// The tensor `tensor`; throws drcnn::Error naming the golden file, the tensor and the
  /// tensors it does have.
  const Tensor& operator[](const std::string& tensor) const {
    if (!file.contains(tensor)) {
      std::string have;
      for (const auto& [n, t] : file.tensors) have += (have.empty() ? "" : ", ") + n;
      DRCNN_FAIL("golden '", name, "' (", path.string(), ") has no tensor '", tensor, "'; it has: ",
                 have.empty() ? std::string("(none)") : have);
    }
    return file.tensors.at(tensor);
  }
  /// The "__metadata__" entry `key`; throws naming the golden when it is missing.
  const std::string& meta(const std::string& key) const {
    const auto it = file.metadata.find(key);
    DRCNN_CHECK(it != file.metadata.end(), "golden '", name, "' (", path.string(), ") has no metadata '",
                key, "'");
    return it->second;
  }
};

/// Loads tests/data/<name>.safetensors (name may contain '/'); tensors land on `device`.
/// A missing file is a drcnn::Error saying which file and how goldens are made.
inline Golden load_golden(const std::string& name, Device device = Device::cpu()) {
  Golden g{name, golden_path(name), {}};
  DRCNN_CHECK(std::filesystem::is_regular_file(g.path), "golden '", name, "': file ", g.path.string(),
              " not found (goldens are committed under tests/data/ and written by the tools/*.py scripts)");
  g.file = io::load_safetensors(g.path, device);
  return g;
}

/// Checks `actual` against a golden tensor element by element (|a - e| <= atol + rtol |e|;
/// NaN matches NaN, infinities must be equal); shapes must match, dtypes may differ (an f32
/// result against an f64 golden). Prints "golden <what>: <max abs/rel errors>" so the errors
/// are on record in `ctest -V` output even when the check passes.
inline void expect_golden_close(const std::string& what, const Tensor& actual, const Tensor& expected, double rtol,
                                double atol) {
  INFO("golden " << what << ": actual shape " << fmt::format("{}", actual.shape()) << ", expected "
                 << fmt::format("{}", expected.shape()));
  REQUIRE(actual.shape() == expected.shape());
  const auto r = compare_close(strided_values(actual), strided_values(expected), rtol, atol);
  fmt::print("golden {}: {}\n", what, r.text);
  INFO(what << ": " << r.text);
  CHECK(r.mismatches == 0);
}

}  // namespace drcnn::test
