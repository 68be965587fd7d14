// CPU vs CUDA parity of deform_conv2d (include/drcnn/ops/deform_conv.h): forward and every
// gradient, DCNv2 with groups and offset groups, and DCNv1 with stride and dilation. The
// per-element bodies are shared (ops/detail/deform_conv_body.h); the GEMMs are Eigen vs cuBLAS
// (no TF32) and the CUDA input gradient adds with atomics in a run-dependent order, nvcc
// contracts a*b+c into FMAs: float32 values in [-1, 1] with sums of a few hundred terms differ
// by ~1e-6 relative, so 1e-4 relative + 1e-4 absolute; float64 1e-10. Runs only where a CUDA
// device exists (elsewhere the test main exits with 77 and ctest reports it skipped).
#include <catch2/catch.hpp>

#include "common/device_compare.h"
#include "common/random.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/deform_conv.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_close;

TEST_CASE("cuda/deform_conv2d: forward and every gradient match the CPU", "[cuda]") {
  const Device gpu = Device::cuda(0);
  struct Case {
    ops::DeformConv2dParams p;
    int64_t cin, cout, ho, wo;
    bool mask;
  };
  ops::DeformConv2dParams a;
  a.padding = {1, 1};
  a.groups = 2;
  a.offset_groups = 4;
  ops::DeformConv2dParams b;
  b.stride = {2, 2};
  b.padding = {2, 2};
  b.dilation = {2, 2};
  for (const Case& k : {Case{a, 16, 8, 20, 24, true}, Case{b, 8, 6, 10, 12, false}}) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      const double tol = dt == DType::Float32 ? 1e-4 : 1e-10;
      const int64_t og = k.p.offset_groups;
      const Tensor x = drcnn::test::random_tensor(Shape{2, k.cin, 20, 24}, 1, dt);
      const Tensor off = drcnn::test::random_tensor(Shape{2, 2 * og * 9, k.ho, k.wo}, 2, dt, -4.0, 4.0);
      const Tensor m = k.mask ? drcnn::test::random_tensor(Shape{2, og * 9, k.ho, k.wo}, 3, dt, 0.0, 1.0) : Tensor();
      const Tensor w = drcnn::test::random_tensor(Shape{k.cout, k.cin / k.p.groups, 3, 3}, 4, dt);
      const Tensor bias = drcnn::test::random_tensor(Shape{k.cout}, 5, dt);
      const Tensor go = drcnn::test::random_tensor(Shape{2, k.cout, k.ho, k.wo}, 6, dt);
      const Tensor mg = k.mask ? m.to(gpu) : Tensor();
      require_device_close(ops::deform_conv2d(x.to(gpu), off.to(gpu), mg, w.to(gpu), bias.to(gpu), k.p),
                           ops::deform_conv2d(x, off, m, w, bias, k.p), tol, tol);
      const ops::DeformConv2dGrads c = ops::deform_conv2d_backward(go, x, off, m, w, k.p);
      const ops::DeformConv2dGrads g =
          ops::deform_conv2d_backward(go.to(gpu), x.to(gpu), off.to(gpu), mg, w.to(gpu), k.p);
      require_device_close(g.input, c.input, tol, tol);
      require_device_close(g.offset, c.offset, tol, tol);
      require_device_close(g.weight, c.weight, tol, tol);
      require_device_close(g.bias, c.bias, tol, tol);
      if (k.mask) require_device_close(g.mask, c.mask, tol, tol);
    }
  }
}
