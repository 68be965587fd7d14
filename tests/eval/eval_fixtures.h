// Helpers shared by the COCO evaluation tests: paths of the goldens in tests/data/eval/
// (written by tools/golden_cocoeval.py) and whole-file reads.
#pragma once
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/source_dir.h"

namespace drcnn_eval_test {

inline std::string data_path(const std::string& name) { return (drcnn::test::data_dir() / "eval" / name).string(); }

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace drcnn_eval_test
