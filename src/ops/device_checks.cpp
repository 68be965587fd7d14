// Deferred device error flags (include/drcnn/ops/device_checks.h).
#include "drcnn/ops/device_checks.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "drcnn/config.h"
#include "drcnn/ops/shape_ops.h"

namespace drcnn::ops {
namespace {
constexpr size_t kMaxPending = 1024;

struct PendingCheck {
  Tensor flag;
  std::function<void()> raise;
};
thread_local std::vector<PendingCheck> t_pending;

std::atomic<bool>& eager_flag() {
  static std::atomic<bool> flag = [] {
#if DRCNN_SYNC_DEBUG || !defined(NDEBUG)
    return true;
#else
    const char* env = std::getenv("DRCNN_EAGER_CHECKS");
    return env != nullptr && std::strcmp(env, "1") == 0;
#endif
  }();
  return flag;
}
}  // namespace

void set_eager_device_checks(bool on) { eager_flag().store(on); }
bool eager_device_checks() { return eager_flag().load(); }

void check_device_errors() {
  if (t_pending.empty()) return;
  // Taken out first: the copies below go through Tensor::to(cpu), which calls back here.
  std::vector<PendingCheck> pending = std::move(t_pending);
  t_pending.clear();
  // One copy per device: the flags side by side, read in one transfer.
  std::vector<int32_t> values(pending.size(), 0);
  std::vector<bool> done(pending.size(), false);
  for (size_t i = 0; i < pending.size(); ++i) {
    if (done[i]) continue;
    const Device dev = pending[i].flag.device();
    std::vector<size_t> members;
    std::vector<Tensor> flags;
    for (size_t j = i; j < pending.size(); ++j)
      if (!done[j] && pending[j].flag.device() == dev) {
        members.push_back(j);
        flags.push_back(pending[j].flag.reshape({1}));
        done[j] = true;
      }
    const std::vector<int32_t> v = (flags.size() == 1 ? flags[0] : concat(flags, 0)).to_vector<int32_t>();
    for (size_t k = 0; k < members.size(); ++k) values[members[k]] = v[k];
  }
  for (size_t i = 0; i < pending.size(); ++i)
    if (values[i] != 0) pending[i].raise();
}

namespace detail {
void check_flag(const Tensor& flag, std::function<void()> raise) {
  if (flag.device().is_cpu() || eager_device_checks()) {
    if (flag.item<int32_t>() != 0) raise();
    return;
  }
  defer_flag(flag, std::move(raise));
}
void defer_flag(const Tensor& flag, std::function<void()> raise) {
  t_pending.push_back(PendingCheck{flag, std::move(raise)});
  if (t_pending.size() >= kMaxPending) check_device_errors();
}
size_t pending_device_checks() { return t_pending.size(); }
}  // namespace detail
}  // namespace drcnn::ops
