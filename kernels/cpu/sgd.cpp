// CPU launcher of the fused SGD step (include/drcnn/ops/detail/sgd_body.h): one parallel loop
// over the blocks of every parameter. Each element is written by one block, so the result is
// the same for any thread count. Tests: tests/train/test_sgd.cpp.
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/sgd_body.h"

namespace drcnn::ops::detail::cpu {
template <typename T>
void sgd_step(const SgdLaunch<T>& l) {
  const SgdStepBody<T> body{l};
  // A block is kSgdBlock elements of work: parallel from 8 blocks on.
  parallel_for_cpu(l.num_blocks, [&](int64_t b) { body.block(b); }, 8);
}
template void sgd_step<float>(const SgdLaunch<float>&);
template void sgd_step<double>(const SgdLaunch<double>&);
}  // namespace drcnn::ops::detail::cpu
