// tests/CMakeLists.txt defines DRCNN_SOURCE_DIR on this file only (see source_dir.h).
#include "common/source_dir.h"

#ifndef DRCNN_SOURCE_DIR
#error "DRCNN_SOURCE_DIR must be defined (tests/CMakeLists.txt sets it on tests/common/source_dir.cpp)"
#endif

namespace drcnn::test {

const std::filesystem::path& source_dir() {
  static const std::filesystem::path dir(DRCNN_SOURCE_DIR);
  return dir;
}

}  // namespace drcnn::test
