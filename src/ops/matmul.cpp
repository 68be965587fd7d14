// Dispatchers of matmul and linear: pick transposes from the strides (no copies for
// transposed views), then one batched GEMM.
#include "drcnn/ops/matmul.h"

#include <type_traits>

#include "dispatch.h"
#include "drcnn/ops/cpu_precision.h"
#include "drcnn/ops/elementwise.h"

namespace drcnn::ops {

namespace {
// A 2-D slice usable by GEMM directly: row-major (stride(1) == 1) or transposed
// (stride(0) == 1). Returns false when neither holds (then the caller copies).
bool gemm_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1, bool& trans, int64_t& ld) {
  if (s1 == 1 && (s0 >= cols || rows <= 1)) {
    trans = false;
    ld = std::max<int64_t>(s0, std::max<int64_t>(cols, 1));
    return true;
  }
  if (s0 == 1 && (s1 >= rows || cols <= 1)) {
    trans = true;
    ld = std::max<int64_t>(s1, std::max<int64_t>(rows, 1));
    return true;
  }
  return false;
}
}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  runtime::check_same_device("matmul", {&a_in, &b_in});
  runtime::check_same_dtype("matmul", a_in, b_in);
  DRCNN_CHECK(a_in.dtype() == DType::Float32 || a_in.dtype() == DType::Float64,
              "matmul: expected float32 or float64, got ", a_in.dtype());
  DRCNN_CHECK((a_in.ndim() == 2 || a_in.ndim() == 3) && a_in.ndim() == b_in.ndim(),
              "matmul: expected two 2-D or two 3-D tensors, got shapes ", a_in.shape(), " and ", b_in.shape());
  const bool batched = a_in.ndim() == 3;
  Tensor a = batched ? a_in : a_in.unsqueeze(0);
  Tensor b = batched ? b_in : b_in.unsqueeze(0);
  const int64_t ba = a.size(0), bb = b.size(0);
  DRCNN_CHECK(ba == bb || ba == 1 || bb == 1, "matmul: batch sizes ", ba, " and ", bb, " differ (shapes ",
              a_in.shape(), " and ", b_in.shape(), ")");
  // Broadcast rule: a batch of 1 takes the other's extent, including 0 (max() gave 1 for
  // [1, M, K] @ [0, K, N] and then read the empty operand).
  const int64_t batch = ba == 1 ? bb : ba;
  const int64_t m = a.size(1), k = a.size(2), n = b.size(2);
  DRCNN_CHECK(b.size(1) == k, "matmul: inner extents differ: ", a_in.shape(), " @ ", b_in.shape());
  Tensor c = Tensor::empty({batch, m, n}, a.dtype(), a.device());
  if (c.numel() > 0) {
    bool ta, tb;
    int64_t lda, ldb;
    if (!gemm_layout(m, k, a.stride(1), a.stride(2), ta, lda)) {
      a = a.contiguous();
      gemm_layout(m, k, a.stride(1), a.stride(2), ta, lda);
    }
    if (!gemm_layout(k, n, b.stride(1), b.stride(2), tb, ldb)) {
      b = b.contiguous();
      gemm_layout(k, n, b.stride(1), b.stride(2), tb, ldb);
    }
    dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
      using T = typename decltype(tag)::type;
      GemmLaunch<T> l;
      l.trans_a = ta;
      l.trans_b = tb;
      l.m = m;
      l.n = n;
      l.k = k;
      l.a = static_cast<const T*>(a.data_ptr());
      l.lda = lda;
      l.b = static_cast<const T*>(b.data_ptr());
      l.ldb = ldb;
      l.c = static_cast<T*>(c.data_ptr());
      l.ldc = n;
      l.batch = batch;
      l.stride_a = ba == 1 ? 0 : a.stride(0);
      l.stride_b = bb == 1 ? 0 : b.stride(0);
      l.stride_c = m * n;
      l.bf16 = std::is_same_v<T, float> && a.device().is_cpu() && cpu_precision() == CpuPrecision::BFloat16;
      runtime::on_device(
          a.device(), "matmul", [&] { cpu::gemm<T>(l); }, [&](auto s) { cuda::gemm<T>(s, l); });
    });
  }
  return batched ? c : c.squeeze(0);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  runtime::check_defined("linear", x, "input");
  runtime::check_defined("linear", weight, "weight");
  DRCNN_CHECK(x.ndim() == 2 && weight.ndim() == 2, "linear: expected input [N, in] and weight [out, in], got ",
              x.shape(), " and ", weight.shape());
  DRCNN_CHECK(x.size(1) == weight.size(1), "linear: input has ", x.size(1), " features but weight ",
              weight.shape(), " expects ", weight.size(1));
  Tensor y = matmul(x, weight.transpose(0, 1));
  if (bias.defined()) {
    DRCNN_CHECK(bias.ndim() == 1 && bias.size(0) == weight.size(0), "linear: bias must have shape [",
                weight.size(0), "], got ", bias.shape());
    y = add(y, bias);
  }
  return y;
}
}  // namespace drcnn::ops
