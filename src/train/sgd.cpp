// SGD (include/drcnn/train/sgd.h). The step is fused: one launch per (device, dtype) updates
// every parameter (ops/detail/sgd_body.h; kernels/cpu/sgd.cpp, kernels/cuda/sgd.cu), with the
// arithmetic of the former per-parameter sequence of Tensor ops, bit for bit on the CPU
// (tests/train/test_sgd.cpp).
#include "drcnn/train/sgd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "drcnn/config.h"
#include "drcnn/core/error.h"
#include "drcnn/ops/detail/sgd_body.h"
#include "drcnn/ops/device_checks.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"

namespace drcnn::train {

void SgdOptions::validate() const {
  const auto check = [](double v, const char* name) {
    DRCNN_CHECK(std::isfinite(v) && v >= 0, "Sgd: ", name, " must be finite and >= 0, got ", v);
  };
  check(lr, "lr");
  check(momentum, "momentum");
  check(weight_decay, "weight_decay");
  check(dampening, "dampening");
  DRCNN_CHECK(!nesterov || (momentum > 0 && dampening == 0),
              "Sgd: nesterov needs momentum > 0 and dampening 0, got momentum ", momentum, " and dampening ", dampening);
}

Sgd::Sgd(std::vector<Variable> params, const SgdOptions& options) : m_params(std::move(params)), m_opt(options) {
  m_opt.validate();
  for (size_t i = 0; i < m_params.size(); ++i)
    DRCNN_CHECK(m_params[i].defined() && m_params[i].is_leaf(), "Sgd: parameter ", i, " is ",
                m_params[i].defined() ? "not a leaf" : "undefined");
  m_buffers.resize(m_params.size());
}

void Sgd::set_lr(double lr) {
  DRCNN_CHECK(std::isfinite(lr) && lr >= 0, "Sgd::set_lr: lr must be finite and >= 0, got ", lr);
  m_opt.lr = lr;
}

namespace {
/// True when `t` is the only handle to its storage: nothing else (a detached copy, a saved
/// tensor of a retained graph, a checkpoint's or another optimizer's handle) can see an update
/// made in place.
bool sole_owner(const Tensor& t) { return t.defined() && t.is_contiguous() && t.storage().use_count() == 1; }

// The fused step of one (device, dtype) group: every parameter's update in one launch
// (ops/detail/sgd_body.h). On the CPU a parameter or momentum buffer that nothing else holds
// (sole_owner) is updated in place: each element is read before it is written, by one thread,
// so the values are those of the out-of-place step, without writing a fresh ~2x parameter-size
// array per step (the step is memory-bound). Anything shared, and every CUDA parameter (other
// streams may still read it), goes to fresh tensors as the unfused step made.
template <typename T>
void fused_step(const std::vector<size_t>& group, std::vector<Variable>& params, std::vector<Tensor>& buffers,
                const SgdOptions& opt, Device device) {
  using ops::detail::kSgdBlock;
  const bool momentum = opt.momentum != 0;
  std::vector<ops::detail::SgdTensor<T>> tensors;
  std::vector<ops::detail::SgdBlock> blocks;
  std::vector<Tensor> inputs, param_out, buf_out;  // alive until the launch is queued
  for (size_t i : group) {
    // Ownership is read before the local handles below add to the counts.
    const bool own_p = device.is_cpu() && sole_owner(params[i].data());
    const bool own_b = device.is_cpu() && momentum && sole_owner(buffers[i]);
    const Tensor p = params[i].data().contiguous(), g = params[i].grad().contiguous();
    const Tensor b = momentum && buffers[i].defined() ? buffers[i].contiguous() : Tensor();
    // A gradient sharing the parameter's or buffer's storage would be overwritten as it is read.
    const bool aliased = g.storage() == p.storage() || (b.defined() && g.storage() == b.storage());
    param_out.push_back(own_p && !aliased ? p : Tensor::empty(p.shape(), p.dtype(), device));
    buf_out.push_back(!momentum ? Tensor() : own_b && !aliased ? b : Tensor::empty(p.shape(), p.dtype(), device));
    const int64_t n = p.numel();
    for (int64_t off = 0; off < n; off += kSgdBlock) blocks.push_back({int64_t(tensors.size()), off});
    tensors.push_back({p.data<T>(), g.data<T>(), b.defined() ? b.data<T>() : nullptr, param_out.back().data<T>(),
                       momentum ? buf_out.back().data<T>() : nullptr, n});
    inputs.insert(inputs.end(), {p, g, b});
  }
  ops::detail::SgdLaunch<T> l;
  l.num_blocks = int64_t(blocks.size());
  l.hyper = {opt.lr, opt.momentum, opt.weight_decay, opt.dampening, opt.nesterov};
  if (l.num_blocks > 0) {
    if (device.is_cpu()) {
      l.tensors = tensors.data();
      l.blocks = blocks.data();
      ops::detail::cpu::sgd_step<T>(l);
    } else {
#if DRCNN_WITH_CUDA
      // The two tables go to the device with the launch (no wait: pageable host memory is
      // staged by the copy itself, docs/cuda-memory.md).
      const size_t tb = tensors.size() * sizeof(tensors[0]), bb = blocks.size() * sizeof(blocks[0]);
      const Tensor table = Tensor::empty({int64_t(tb + bb)}, DType::UInt8, device);
      detail::copy_host_to(table.narrow(0, 0, int64_t(tb)), tensors.data(), tb);
      detail::copy_host_to(table.narrow(0, int64_t(tb), int64_t(bb)), blocks.data(), bb);
      l.tensors = reinterpret_cast<const ops::detail::SgdTensor<T>*>(table.data_ptr());
      l.blocks = reinterpret_cast<const ops::detail::SgdBlock*>(static_cast<const uint8_t*>(table.data_ptr()) + tb);
      DeviceGuard guard(device);
      ops::detail::cuda::sgd_step<T>(cuda::current_stream(device), l);
#else
      DRCNN_FAIL("Sgd::step: parameters on ", device, " but drcnn was built without CUDA");
#endif
    }
  }
  for (size_t k = 0; k < group.size(); ++k) {
    params[group[k]].mutable_data() = param_out[k];
    if (momentum) buffers[group[k]] = buf_out[k];
  }
}
}  // namespace

void Sgd::step() {
  // Once per step: the deferred kernel error flags of the forward and backward just run
  // (ops/device_checks.h), so a bad index fails the step that produced it.
  ops::check_device_errors();
  // One fused launch per (device, dtype) of the parameters that have a gradient.
  struct Group {
    Device device;
    DType dtype;
    std::vector<size_t> members;
  };
  std::vector<Group> groups;
  for (size_t i = 0; i < m_params.size(); ++i) {
    const Variable& p = m_params[i];
    if (!p.has_grad()) continue;
    const Tensor& x = p.data();
    const Tensor& g = p.grad();
    DRCNN_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, "Sgd::step: parameter ", i, " is ",
                x.dtype(), ", expected float32 or float64");
    DRCNN_CHECK(g.shape() == x.shape() && g.dtype() == x.dtype() && g.device() == x.device(), "Sgd::step: parameter ",
                i, " is ", x.dtype(), " ", x.shape(), " on ", x.device(), " but its gradient is ", g.dtype(), " ",
                g.shape(), " on ", g.device());
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const Group& gr) { return gr.device == x.device() && gr.dtype == x.dtype(); });
    if (it == groups.end()) it = groups.insert(groups.end(), Group{x.device(), x.dtype(), {}});
    it->members.push_back(i);
  }
  for (const Group& gr : groups) {
    if (gr.dtype == DType::Float32) fused_step<float>(gr.members, m_params, m_buffers, m_opt, gr.device);
    else fused_step<double>(gr.members, m_params, m_buffers, m_opt, gr.device);
  }
}

void Sgd::zero_grad() {
  for (Variable& p : m_params) p.zero_grad();
}

void Sgd::set_momentum_buffers(std::vector<Tensor> buffers) {
  DRCNN_CHECK(buffers.size() == m_params.size(), "Sgd::set_momentum_buffers: ", buffers.size(), " buffers for ",
              m_params.size(), " parameters");
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (!buffers[i].defined()) continue;
    const Tensor& p = m_params[i].data();
    DRCNN_CHECK(buffers[i].shape() == p.shape() && buffers[i].dtype() == p.dtype() && buffers[i].device() == p.device(),
                "Sgd::set_momentum_buffers: buffer ", i, " is ", buffers[i].dtype(), " ", buffers[i].shape(),
                ", the parameter ", p.dtype(), " ", p.shape());
  }
  m_buffers = std::move(buffers);
}

double clip_grad_norm(const std::vector<Variable>& params, double max_norm) {
  DRCNN_CHECK(std::isfinite(max_norm) && max_norm > 0, "clip_grad_norm: max_norm must be finite and > 0, got ",
              max_norm);
  // The squared norms are added on the parameters' device in parameter order, each a float64
  // add as the host loop did, and read back once (not once per parameter).
  Tensor sq_sum;
  double sq = 0;
  for (const Variable& p : params) {
    if (!p.has_grad()) continue;
    const Tensor g = p.grad().to(DType::Float64);
    Tensor s = ops::sum(ops::mul(g, g));
    if (sq_sum.defined() && s.device() != sq_sum.device()) {  // parameters on several devices:
      sq = sq_sum.to(Device::cpu()).item<double>();             // carry the running sum over
      sq_sum = ops::add(s, sq);
      continue;
    }
    sq_sum = sq_sum.defined() ? ops::add(sq_sum, s) : s;
  }
  if (sq_sum.defined()) sq = sq_sum.to(Device::cpu()).item<double>();
  const double total = std::sqrt(sq);
  if (!(total > max_norm) || !std::isfinite(total)) return total;
  const double coef = max_norm / (total + 1e-6);
  for (const Variable& p : params) {
    if (!p.has_grad()) continue;
    Variable handle = p;
    const Tensor scaled = ops::mul(p.grad(), coef);
    handle.zero_grad();
    handle.add_grad(scaled);
  }
  return total;
}

}  // namespace drcnn::train
