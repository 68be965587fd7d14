// The CUDA kernels' own summation orders run on the host, for tests: the block reduction
// (ops/detail/reduce_body.h: ReduceBlockBody, for few long outputs; detail::reduce_block_host)
// and the norms' warp partial sums (ops/detail/nn_body.h: NormPartialBody::lane_sums and
// norm_lane_tree; detail::norm_partial_warp_host). The CPU tests (tests/ops/test_reduce.cpp,
// tests/ops/test_nn.cpp) prove these against float64; the CUDA tests
// (tests/cuda/test_cuda_parity.cpp, tests/cuda/test_cuda_nn.cpp) prove the kernels give
// their bits.
#pragma once
#include <catch2/catch.hpp>

#include "drcnn/core/tensor.h"
#include "drcnn/ops/detail/nn_body.h"
#include "drcnn/ops/detail/reduce_body.h"

namespace drcnn::test {

/// x contiguous [outer, R, inner] on the CPU, reduced over dim 1 into a new [outer, inner].
inline Tensor block_reduce(ops::ReduceKind kind, const Tensor& x) {
  REQUIRE(x.is_contiguous());
  REQUIRE(x.ndim() == 3);
  const bool arg = kind == ops::ReduceKind::ArgMax || kind == ops::ReduceKind::ArgMin;
  Tensor out = Tensor::empty({x.size(0), x.size(2)}, arg ? DType::Int64 : x.dtype());
  ops::ReduceLaunch l;
  l.outer = x.size(0);
  l.R = x.size(1);
  l.last_R = l.R;
  l.inner = x.size(2);
  l.in = x.data_ptr();
  l.out = out.data_ptr();
  l.scale = kind == ops::ReduceKind::Mean ? 1.0 / double(l.R) : 1.0;
  ops::detail::run_reduce_block(kind, x.dtype(), l, [](int64_t n, const auto& body) {
    for (int64_t i = 0; i < n; ++i) ops::detail::reduce_block_host(body, i);
  });
  return out;
}

/// Segments of a norm's partial sums (NnLaunch's NormPartial fields): segment q covers the
/// elements q * seg_stride + (j / seg_inner) * outer_stride + j % seg_inner, j in [0, L).
struct NormSegments {
  int64_t Q, L, seg_stride, seg_inner, outer_stride, m_div;
};
/// The segments of x [N, C, HW]: BN's (Q = C channels of N * HW elements, strided by C * HW)
/// or GN's with 2 groups (Q = N * 2 contiguous blocks of C / 2 * HW).
inline NormSegments norm_segments(int64_t N, int64_t C, int64_t HW, bool bn) {
  return bn ? NormSegments{C, N * HW, HW, HW, C * HW, 1} : NormSegments{N * 2, C / 2 * HW, C / 2 * HW, C / 2 * HW, 0, 1};
}

/// The NormPartial body over x (and g, M, either may be undefined) on the host, CPU tensors:
/// returns [2, Q * K] double partials, in the CUDA warp's order (warp) or the CPU's serial
/// order (!warp).
inline Tensor norm_partials_host(const Tensor& x, const Tensor& g, const Tensor& M, const NormSegments& s, bool warp) {
  const int64_t K = (s.L + ops::kNormChunk - 1) / ops::kNormChunk;
  Tensor out = Tensor::zeros({2, s.Q * K}, DType::Float64);
  double* p0 = static_cast<double*>(out.data_ptr());
  dispatch_floating(x.dtype(), "norm_partials_host", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto ptr = [](const Tensor& t) { return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr; };
    const ops::detail::NormPartialBody<T> body{ptr(x), ptr(g), ptr(M), p0, p0 + s.Q * K, K, s.L,
                                               s.seg_stride, s.seg_inner, s.outer_stride, s.m_div};
    for (int64_t i = 0; i < s.Q * K; ++i) {
      if (warp) ops::detail::norm_partial_warp_host(body, i);
      else body(i);
    }
  });
  return out;
}
}  // namespace drcnn::test
