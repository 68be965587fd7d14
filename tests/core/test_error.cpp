// detail::fail's message: the op's words, the failed condition and where, with the path cut to
// the project's own folders whatever folder the checkout sits in.
#include <catch2/catch.hpp>

#include <string>

#include "drcnn/core/error.h"

namespace {
std::string message_for(const char* file) {
  try {
    drcnn::detail::fail(file, 12, "op", "n > 0", "op: expected n > 0, got 0");
  } catch (const drcnn::Error& e) {
    return e.what();
  }
  return "fail() returned";
}
}  // namespace

TEST_CASE("core/error: message names the condition and the project path", "[core][cpu]") {
  CHECK(message_for("/home/me/drcnn/src/ops/x.cpp") ==
        "drcnn: op: expected n > 0, got 0 (check failed: n > 0) [at src/ops/x.cpp:12 in op]");
  CHECK_THAT(message_for("../../src/ops/x.cpp"), Catch::Contains("[at src/ops/x.cpp:12 in op]"));
  CHECK_THAT(message_for("/w/drcnn/kernels/cpu/conv.cpp"), Catch::Contains("[at kernels/cpu/conv.cpp:12"));
  CHECK_THAT(message_for("/w/drcnn/include/drcnn/core/tensor.h"),
             Catch::Contains("[at include/drcnn/core/tensor.h:12"));
}

TEST_CASE("core/error: folders above the checkout named like project folders are passed over",
          "[core][cpu]") {
  CHECK_THAT(message_for("/home/me/src/drcnn/src/ops/x.cpp"), Catch::Contains("[at src/ops/x.cpp:12"));
  CHECK_THAT(message_for("/home/me/tests/drcnn/src/ops/x.cpp"), Catch::Contains("[at src/ops/x.cpp:12"));
  CHECK_THAT(message_for("/home/me/kernels/drcnn/tests/ops/t.cpp"), Catch::Contains("[at tests/ops/t.cpp:12"));
  CHECK_THAT(message_for("/srv/examples/drcnn/include/drcnn/ops/nms.h"),
             Catch::Contains("[at include/drcnn/ops/nms.h:12"));
  // A key inside a folder name ("mysrc/") is not a project folder.
  CHECK_THAT(message_for("/home/mysrc/drcnn/examples/train.cpp"), Catch::Contains("[at examples/train.cpp:12"));
  // Outside any project folder the path is kept whole.
  CHECK_THAT(message_for("/opt/other/lib.cpp"), Catch::Contains("[at /opt/other/lib.cpp:12"));
}
