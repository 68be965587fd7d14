// Where the tests find the source tree's files (tests/data goldens, configs/, docs/), from any
// build directory. The absolute path is compiled into tests/common/source_dir.cpp alone: a
// path in a macro that every test file expands would differ between checkouts and make each of
// those files miss ccache in a fresh clone, base_dir or not (docs/building.md).
#pragma once
#include <filesystem>

namespace drcnn::test {

/// The checkout's top folder (the one holding CMakeLists.txt).
const std::filesystem::path& source_dir();

/// tests/data in the checkout: goldens, converted checkpoints, dataset fixtures.
inline std::filesystem::path data_dir() { return source_dir() / "tests" / "data"; }

}  // namespace drcnn::test
