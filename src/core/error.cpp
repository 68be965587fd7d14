// drcnn::detail::fail: builds the "what, where" message of every drcnn::Error.
#include "drcnn/core/error.h"

#include <cstring>

namespace drcnn::detail {

namespace {
const char* short_path(const char* file) {
  // Keep the path from the project's top folders on, so messages read "kernels/cpu/x.cpp:12",
  // whether the compiler saw it absolute ("/home/me/src/drcnn/src/...") or relative to the build
  // folder ("../../src/...", ccache's base_dir). The rightmost key that starts a path component
  // counts: no project path holds two keys, so folders above the checkout named like one
  // (~/src/drcnn, ~/tests/drcnn, ~/kernels/drcnn) are passed over.
  const char* best = nullptr;
  for (const char* key : {"include/drcnn/", "kernels/", "tests/", "examples/", "src/"}) {
    for (const char* p = std::strstr(file, key); p; p = std::strstr(p + 1, key)) {
      if ((p == file || p[-1] == '/') && (!best || p > best)) best = p;
    }
  }
  return best ? best : file;
}
}  // namespace

void fail(const char* file, int line, const char* func, const char* cond, const std::string& message) {
  std::string what = "drcnn: " + message;
  if (cond) what += fmt::format(" (check failed: {})", cond);
  what += fmt::format(" [at {}:{} in {}]", short_path(file), line, func);
  throw Error(what);
}
}  // namespace drcnn::detail
