// CPU vs CUDA parity of the layer ops (include/drcnn/ops/nn.h): same bodies on both sides.
// Runs only where a CUDA device exists; elsewhere the test main exits with 77 and ctest
// reports the tests skipped.
// Tolerances: pooling and upsampling forwards copy values and their backwards sum in the same
// (gather) order on both devices with no multiply-add, so they are compared exactly, indices
// too. The norms sum the same double partials in the same order, but nvcc contracts a * b + c
// into FMAs in the coefficient and elementwise bodies: relative 1e-5 (f32) / 1e-12 (f64) with
// small absolute floors.
#include <catch2/catch.hpp>

#include "common/device_compare.h"
#include "common/gpu_order_emulation.h"
#include "common/random.h"
#include "drcnn/config.h"
#include "drcnn/ops/nn.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_close;
using drcnn::test::require_device_equal;

namespace {
const Device kGpu = Device::cuda(0);
double rtol(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }
double atol(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }
}  // namespace

TEST_CASE("cuda/max_pool2d: forward, indices and backward match the CPU exactly", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    ops::MaxPool2dOptions stem;
    stem.kernel_size = {3, 3};
    stem.stride = {2, 2};
    stem.padding = {1, 1};
    ops::MaxPool2dOptions p6;
    p6.kernel_size = {1, 1};
    p6.stride = {2, 2};
    ops::MaxPool2dOptions odd;
    odd.kernel_size = {3, 2};
    odd.stride = {2, 1};
    odd.padding = {1, 1};
    odd.dilation = {2, 1};
    odd.ceil_mode = true;
    for (const auto& o : {stem, p6, odd}) {
      // Rounded values: many ties, so the first-index rule is compared too.
      const Tensor x = drcnn::test::random_tensor(Shape{2, 3, 37, 29}, 5, dt, -4, 4);
      const Tensor xr = x.to(DType::Int64).to(dt);
      const auto c = ops::max_pool2d_with_indices(xr, o);
      const auto g = ops::max_pool2d_with_indices(xr.to(kGpu), o);
      require_device_equal(g.output, c.output);
      require_device_equal(g.indices, c.indices);
      const Tensor go = drcnn::test::random_tensor(c.output.shape(), 6, dt);
      require_device_equal(ops::max_pool2d_backward(go.to(kGpu), g.indices, xr.shape(), o),
                           ops::max_pool2d_backward(go, c.indices, xr.shape(), o));
    }
  }
}

TEST_CASE("cuda/upsample_nearest2d: odd FPN sizes match the CPU exactly, forward and backward", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64})
    for (auto [h, w, oh, ow] : {std::array<int64_t, 4>{25, 25, 50, 50}, {13, 7, 25, 13}, {7, 13, 13, 25}, {9, 6, 4, 5}}) {
      const Tensor x = drcnn::test::random_tensor(Shape{2, 3, h, w}, 7, dt);
      require_device_equal(ops::upsample_nearest2d(x.to(kGpu), oh, ow), ops::upsample_nearest2d(x, oh, ow));
      const Tensor g = drcnn::test::random_tensor(Shape{2, 3, oh, ow}, 8, dt);
      require_device_equal(ops::upsample_nearest2d_backward(g.to(kGpu), x.shape()),
                           ops::upsample_nearest2d_backward(g, x.shape()));
    }
}

TEST_CASE("cuda/norms: frozen BN, batch norm (train and eval) and group norm match the CPU", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Shape s{3, 8, 45, 37};
    const Tensor x = drcnn::test::random_tensor(s, 10, dt, -2, 3), g = drcnn::test::random_tensor(s, 11, dt);
    const Tensor w = drcnn::test::random_tensor(Shape{8}, 12, dt, 0.5, 2), b = drcnn::test::random_tensor(Shape{8}, 13, dt);
    const Tensor m = drcnn::test::random_tensor(Shape{8}, 14, dt), v = drcnn::test::random_tensor(Shape{8}, 15, dt, 0.1, 2);
    const Tensor xg = x.to(kGpu), gg = g.to(kGpu), wg = w.to(kGpu), bg = b.to(kGpu);
    require_device_close(ops::frozen_batch_norm2d(xg, wg, bg, m.to(kGpu), v.to(kGpu)),
                         ops::frozen_batch_norm2d(x, w, b, m, v), rtol(dt), atol(dt));
    require_device_close(ops::frozen_batch_norm2d_backward(gg, wg, v.to(kGpu), 0.0),
                         ops::frozen_batch_norm2d_backward(g, w, v, 0.0), rtol(dt), atol(dt));
    for (bool training : {true, false}) {
      const Tensor rm = m.clone(), rv = v.clone(), rmg = m.to(kGpu), rvg = v.to(kGpu);
      const auto c = ops::batch_norm2d(x, w, b, rm, rv, training, 0.1, 1e-5);
      const auto d = ops::batch_norm2d(xg, wg, bg, rmg, rvg, training, 0.1, 1e-5);
      require_device_close(d.output, c.output, rtol(dt), atol(dt));
      require_device_close(d.save_mean, c.save_mean, rtol(dt), atol(dt));
      require_device_close(d.save_invstd, c.save_invstd, rtol(dt), atol(dt));
      require_device_close(rmg, rm, rtol(dt), atol(dt));
      require_device_close(rvg, rv, rtol(dt), atol(dt));
      const auto cb = ops::batch_norm2d_backward(g, x, w, c.save_mean, c.save_invstd, training);
      const auto db = ops::batch_norm2d_backward(gg, xg, wg, d.save_mean, d.save_invstd, training);
      require_device_close(db.grad_input, cb.grad_input, rtol(dt), atol(dt));
      require_device_close(db.grad_weight, cb.grad_weight, rtol(dt), atol(dt) * 100);
      require_device_close(db.grad_bias, cb.grad_bias, rtol(dt), atol(dt) * 100);
    }
    for (int64_t G : {1, 4, 8}) {
      const auto c = ops::group_norm(x, G, w, b);
      const auto d = ops::group_norm(xg, G, wg, bg);
      require_device_close(d.output, c.output, rtol(dt), atol(dt));
      require_device_close(d.rstd, c.rstd, rtol(dt), atol(dt));
      const auto cb = ops::group_norm_backward(g, x, c.mean, c.rstd, w, G);
      const auto db = ops::group_norm_backward(gg, xg, d.mean, d.rstd, wg, G);
      require_device_close(db.grad_input, cb.grad_input, rtol(dt), atol(dt));
      require_device_close(db.grad_weight, cb.grad_weight, rtol(dt), atol(dt) * 100);
      require_device_close(db.grad_bias, cb.grad_bias, rtol(dt), atol(dt) * 100);
    }
  }
}

TEST_CASE("cuda/nn: the norms' warp partial sums give the host emulation's bits", "[cuda]") {
#if DRCNN_WITH_CUDA
  // ops::cuda::nn_op(NormPartial) directly: BN-like (strided segments, inner 7 < 32 and 1500)
  // and GN-like (contiguous) geometries, with and without a shift and a gradient.
  for (DType dt : {DType::Float32, DType::Float64}) {
    struct Case {
      int64_t N, C, HW;
      bool bn;
    };
    for (const Case& c : {Case{3, 4, 1500, true}, Case{300, 2, 7, true}, Case{2, 6, 777, false}}) {
      const Tensor x = drcnn::test::random_tensor({c.N, c.C, c.HW}, 51, dt, -3, 5);
      const Tensor g = drcnn::test::random_tensor({c.N, c.C, c.HW}, 52, dt);
      const drcnn::test::NormSegments seg = drcnn::test::norm_segments(c.N, c.C, c.HW, c.bn);
      const Tensor shift = drcnn::test::random_tensor({seg.Q}, 53, dt);
      const int64_t K = (seg.L + ops::kNormChunk - 1) / ops::kNormChunk;
      for (int variant = 0; variant < 3; ++variant) {
        const Tensor M = variant >= 1 ? shift : Tensor(), G = variant == 2 ? g : Tensor();
        const Tensor xg = x.to(kGpu), Mg = M.defined() ? M.to(kGpu) : Tensor(), Gg = G.defined() ? G.to(kGpu) : Tensor();
        Tensor p = Tensor::zeros({2, seg.Q * K}, DType::Float64, kGpu);
        ops::NnLaunch l;
        l.n = seg.Q * K;
        l.x = xg.data_ptr();
        l.g = Gg.defined() ? Gg.data_ptr() : nullptr;
        l.M = Mg.defined() ? Mg.data_ptr() : nullptr;
        l.p0 = static_cast<double*>(p.data_ptr());
        l.p1 = l.p0 + seg.Q * K;
        l.Q = seg.Q;
        l.L = seg.L;
        l.K = K;
        l.seg_stride = seg.seg_stride;
        l.seg_inner = seg.seg_inner;
        l.outer_stride = seg.outer_stride;
        l.m_div = seg.m_div;
        ops::cuda::nn_op(drcnn::cuda::current_stream(kGpu), ops::NnKind::NormPartial, dt, l);
        INFO(drcnn::dtype_name(dt) << " N " << c.N << " C " << c.C << " HW " << c.HW << " variant " << variant);
        require_device_equal(p, drcnn::test::norm_partials_host(x, G, M, seg, true));
      }
    }
  }
#else
  FAIL("drcnn was built without CUDA");
#endif
}
