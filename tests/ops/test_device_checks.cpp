// Deferred kernel error flags (include/drcnn/ops/device_checks.h), proven on the CPU with CPU
// flags queued through detail::defer_flag (the path CUDA ops take): nothing is thrown until
// check_device_errors(), which throws the first raised flag's error in call order and clears
// the queue; several flags are read together; a full queue checks itself; a device-to-host copy
// does not run it for CPU tensors. The CPU ops themselves still throw at once (tests/ops/
// test_index.cpp, test_roi_align.cpp are unchanged); on a GPU tests/cuda/test_cuda_parity.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "drcnn/core/error.h"
#include "drcnn/ops/device_checks.h"
#include "drcnn/ops/index.h"

namespace ops = drcnn::ops;
using drcnn::DType;
using drcnn::Tensor;

namespace {
Tensor flag(int v) { return Tensor::full({}, double(v), DType::Int32); }
}  // namespace

TEST_CASE("ops/device_checks: queued flags are read at check_device_errors, first error wins", "[ops][cpu]") {
  ops::check_device_errors();  // start from an empty queue
  REQUIRE(ops::detail::pending_device_checks() == 0);
  std::vector<int> raised;
  auto raiser = [&](int id) {
    return [&raised, id] {
      raised.push_back(id);
      DRCNN_FAIL("op", id, ": bad argument");
    };
  };
  ops::detail::defer_flag(flag(0), raiser(1));
  ops::detail::defer_flag(flag(1), raiser(2));
  ops::detail::defer_flag(flag(0), raiser(3));
  ops::detail::defer_flag(flag(7), raiser(4));
  CHECK(ops::detail::pending_device_checks() == 4);
  CHECK(raised.empty());  // nothing checked yet
  REQUIRE_THROWS_WITH(ops::check_device_errors(), Catch::Contains("op2: bad argument"));
  CHECK(raised == std::vector<int>{2});  // only the first raised flag's error
  CHECK(ops::detail::pending_device_checks() == 0);
  CHECK_NOTHROW(ops::check_device_errors());  // the queue was cleared
  // All clear: nothing thrown.
  ops::detail::defer_flag(flag(0), raiser(5));
  ops::detail::defer_flag(flag(0), raiser(6));
  CHECK_NOTHROW(ops::check_device_errors());
  CHECK(raised == std::vector<int>{2});
}

TEST_CASE("ops/device_checks: a single queued flag and a full queue", "[ops][cpu]") {
  ops::check_device_errors();
  ops::detail::defer_flag(flag(1), [] { DRCNN_FAIL("single: raised"); });
  REQUIRE_THROWS_WITH(ops::check_device_errors(), Catch::Contains("single: raised"));
  // The 1024th queued check runs the whole queue.
  int calls = 0;
  for (int i = 0; i < 1023; ++i) ops::detail::defer_flag(flag(0), [&] { ++calls; });
  CHECK(ops::detail::pending_device_checks() == 1023);
  REQUIRE_THROWS_WITH(ops::detail::defer_flag(flag(1), [] { DRCNN_FAIL("last: raised"); }), Catch::Contains("last: raised"));
  CHECK(ops::detail::pending_device_checks() == 0);
  CHECK(calls == 0);
}

TEST_CASE("ops/device_checks: CPU ops still check at once, and the eager setting round-trips", "[ops][cpu]") {
  ops::check_device_errors();
  const Tensor x = Tensor::zeros({4, 2});
  const Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 9}, {2});
  REQUIRE_THROWS_WITH(ops::index_select(x, 0, bad), Catch::Contains("index_select: index 9 is out of range"));
  CHECK(ops::detail::pending_device_checks() == 0);
  const bool before = ops::eager_device_checks();
  ops::set_eager_device_checks(!before);
  CHECK(ops::eager_device_checks() == !before);
  ops::set_eager_device_checks(before);
  // With eager checks, check_flag reads a flag at once whatever the device.
  ops::set_eager_device_checks(true);
  REQUIRE_THROWS_WITH(ops::detail::check_flag(flag(1), [] { DRCNN_FAIL("eager: raised"); }), Catch::Contains("eager: raised"));
  CHECK(ops::detail::pending_device_checks() == 0);
  ops::set_eager_device_checks(before);
}
