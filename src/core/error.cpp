// drcnn::detail::fail: builds the "what, where" message of every drcnn::Error.
#include "drcnn/core/error.h"

#include <cstring>

namespace drcnn::detail {

namespace {
const char* short_path(const char* file) {
  // Keep the path from the project's top folders on, so messages read "kernels/cpu/x.cpp:12",
  // whether the compiler saw it absolute ("/home/me/src/drcnn/src/...") or relative to the build
  // folder ("../../src/...", ccache's base_dir). A key's last match counts, and src/ is tried
  // last, so a checkout under a folder named src/ (~/src/drcnn) still reads from the project's
  // own folders on; project folders never nest inside one another.
  for (const char* key : {"include/drcnn/", "kernels/", "tests/", "examples/", "src/"}) {
    const char* last = nullptr;
    for (const char* p = std::strstr(file, key); p; p = std::strstr(p + 1, key)) last = p;
    if (last) return last;
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
