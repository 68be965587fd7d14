// drcnn::detail::fail: builds the "what, where" message of every drcnn::Error.
#include "drcnn/core/error.h"

#include <cstring>

namespace drcnn::detail {

namespace {
const char* short_path(const char* file) {
  // Keep the path from the project's top folders on, so messages read "kernels/cpu/x.cpp:12".
  for (const char* key : {"include/drcnn/", "kernels/", "tests/", "examples/"}) {
    if (const char* p = std::strstr(file, key)) return p;
  }
  return file;
}
}  // namespace

void fail(const char* file, int line, const char* func, const char* cond, const std::string& message) {
  std::string what = "drcnn: " + message;
  if (cond) what += fmt::format(" (check failed: {})", cond);
  what += fmt::format(" [at {}:{} in {}]", short_path(file), line, func);
  throw Error(what);
}
}  // namespace drcnn::detail
