// Dispatcher of deform_conv2d (include/drcnn/ops/deform_conv.h): checks, then per chunk of
// images the deformable im2col / col2im steps of ops/detail/deform_conv_body.h on the input's
// device and the GEMMs through ops::matmul (Eigen / cuBLAS), one per weight group.
#include "drcnn/ops/deform_conv.h"

#include <algorithm>
#include <vector>

#include "dispatch.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/detail/deform_conv_body.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/matmul.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"

namespace drcnn::ops {

namespace {
// Column-matrix elements per chunk of images (32 MiB in float32), as conv2d's CPU path.
constexpr int64_t kColBudget = int64_t(1) << 23;

void check_operand(const char* op, const Tensor& ref, const Tensor& t, const char* name) {
  runtime::check_defined(op, t, name);
  DRCNN_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", name,
              " must be float32 or float64, got ", t.dtype());
  DRCNN_CHECK(t.dtype() == ref.dtype(), op, ": ", name, " has dtype ", t.dtype(), " but input has ", ref.dtype());
  DRCNN_CHECK(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but input is on ", ref.device());
}

Conv2dGeometry check_deform(const char* op, const Tensor& input, const Tensor& offset, const Tensor& mask,
                            const Tensor& weight, const Tensor* bias, const DeformConv2dParams& p) {
  check_operand(op, input, input, "input");
  check_operand(op, input, weight, "weight");
  check_operand(op, input, offset, "offset");
  if (mask.defined()) check_operand(op, input, mask, "mask");
  Conv2dParams cp;
  cp.stride = p.stride;
  cp.padding = p.padding;
  cp.dilation = p.dilation;
  cp.groups = p.groups;
  const Conv2dGeometry g = conv2d_geometry(input.shape(), weight.shape(), cp, op);
  DRCNN_CHECK(p.offset_groups >= 1 && g.c_in % p.offset_groups == 0, op, ": offset_groups (", p.offset_groups,
              ") must be >= 1 and divide the input channels (input ", input.shape(), ")");
  const int64_t taps = g.kh * g.kw;
  const Shape want_offset{g.n, 2 * p.offset_groups * taps, g.ho, g.wo};
  DRCNN_CHECK(offset.shape() == want_offset, op, ": offset must have shape [N, 2 * offset_groups * kh * kw, Ho, Wo] = ",
              want_offset, " for input ", input.shape(), ", weight ", weight.shape(), " and offset_groups ",
              p.offset_groups, ", got ", offset.shape());
  if (mask.defined()) {
    const Shape want_mask{g.n, p.offset_groups * taps, g.ho, g.wo};
    DRCNN_CHECK(mask.shape() == want_mask, op, ": mask must have shape [N, offset_groups * kh * kw, Ho, Wo] = ",
                want_mask, " for input ", input.shape(), ", weight ", weight.shape(), " and offset_groups ",
                p.offset_groups, ", got ", mask.shape());
  }
  if (bias && bias->defined()) {
    check_operand(op, input, *bias, "bias");
    DRCNN_CHECK(bias->ndim() == 1 && bias->size(0) == g.c_out, op, ": bias must have shape [", g.c_out,
                "] (Cout of weight ", weight.shape(), "), got shape ", bias->shape());
  }
  return g;
}

int64_t chunk_images(const Conv2dGeometry& g) {
  return std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, g.k_all() * g.p()), 1, std::max<int64_t>(g.n, 1));
}

/// The launch of images [n0, n0 + nb): pointers into contiguous operands (null where undefined).
template <typename T>
DeformConvLaunch<T> chunk_launch(const Conv2dGeometry& g, const DeformConv2dParams& p, int64_t n0, int64_t nb,
                                 const Tensor& x, const Tensor& off, const Tensor& m) {
  DeformConvLaunch<T> l;
  l.g = g;
  l.batch = nb;
  l.offset_groups = p.offset_groups;
  l.input = x.defined() ? x.data<T>() + n0 * g.c_in * g.h * g.w : nullptr;
  l.offset = off.data<T>() + n0 * off.size(1) * g.p();
  l.mask = m.defined() ? m.data<T>() + n0 * m.size(1) * g.p() : nullptr;
  return l;
}

/// The deformable column matrix [nb, K, P] of images [n0, n0 + nb).
Tensor deform_columns(const char* op, const Conv2dGeometry& g, const DeformConv2dParams& p, int64_t n0, int64_t nb,
                      const Tensor& x, const Tensor& off, const Tensor& m) {
  Tensor col = Tensor::empty({nb, g.k_all(), g.p()}, x.dtype(), x.device());
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    DeformConvLaunch<T> l = chunk_launch<T>(g, p, n0, nb, x, off, m);
    l.col = col.data<T>();
    runtime::on_device(
        x.device(), op, [&] { cpu::deform_im2col<T>(l); }, [&](auto s) { cuda::deform_im2col<T>(s, l); });
  });
  return col;
}

/// Concatenates per-group results along dim (no copy for one group).
Tensor join(std::vector<Tensor> parts, int dim) { return parts.size() == 1 ? parts[0] : concat(parts, dim); }
}  // namespace

Tensor deform_conv2d(const Tensor& input, const Tensor& offset, const Tensor& mask, const Tensor& weight,
                     const Tensor& bias, std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                     std::array<int64_t, 2> dilation, int64_t groups, int64_t offset_groups) {
  DeformConv2dParams p;
  p.stride = stride;
  p.padding = padding;
  p.dilation = dilation;
  p.groups = groups;
  p.offset_groups = offset_groups;
  return deform_conv2d(input, offset, mask, weight, bias, p);
}

Tensor deform_conv2d(const Tensor& input, const Tensor& offset, const Tensor& mask, const Tensor& weight,
                     const Tensor& bias, const DeformConv2dParams& p) {
  const char* op = "deform_conv2d";
  const Conv2dGeometry g = check_deform(op, input, offset, mask, weight, &bias, p);
  const Tensor x = input.contiguous(), off = offset.contiguous(), m = mask.defined() ? mask.contiguous() : Tensor();
  const int64_t G = g.groups, cog = g.cout_g(), kg = g.k_g();
  if (g.n == 0) return Tensor::zeros({0, g.c_out, g.ho, g.wo}, input.dtype(), input.device());
  const Tensor w = weight.contiguous().reshape({G, cog, kg});
  std::vector<Tensor> chunks;
  const int64_t chunk = chunk_images(g);
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, g.n - n0);
    const Tensor col = deform_columns(op, g, p, n0, nb, x, off, m);
    std::vector<Tensor> parts;  // per group: [nb, cog, P] = w[grp] @ col[:, grp rows]
    for (int64_t grp = 0; grp < G; ++grp)
      parts.push_back(matmul(w.narrow(0, grp, 1), col.narrow(1, grp * kg, kg)));
    chunks.push_back(join(std::move(parts), 1));
  }
  Tensor out = join(std::move(chunks), 0).reshape({g.n, g.c_out, g.ho, g.wo});
  if (bias.defined()) out = add(out, bias.reshape({1, g.c_out, 1, 1}));
  return out.contiguous();
}

DeformConv2dGrads deform_conv2d_backward(const Tensor& grad_out, const Tensor& input, const Tensor& offset,
                                         const Tensor& mask, const Tensor& weight, const DeformConv2dParams& p,
                                         DeformConv2dGradMask which) {
  const char* op = "deform_conv2d_backward";
  const Conv2dGeometry g = check_deform(op, input, offset, mask, weight, nullptr, p);
  check_operand(op, input, grad_out, "grad_out");
  DRCNN_CHECK(grad_out.shape() == Shape({g.n, g.c_out, g.ho, g.wo}), op, ": grad_out must have the output's shape [",
              g.n, ", ", g.c_out, ", ", g.ho, ", ", g.wo, "], got ", grad_out.shape());
  which.mask = which.mask && mask.defined();
  const Tensor x = input.contiguous(), off = offset.contiguous(), m = mask.defined() ? mask.contiguous() : Tensor();
  const int64_t G = g.groups, cog = g.cout_g(), kg = g.k_g(), P = g.p();
  const DType dt = input.dtype();
  const Device dev = input.device();
  const Tensor go = grad_out.contiguous().reshape({g.n, g.c_out, P});
  DeformConv2dGrads r;
  if (which.bias) r.bias = g.n == 0 ? Tensor::zeros({g.c_out}, dt, dev) : sum(sum(go, 2), 0);
  if (which.weight) r.weight = Tensor::zeros({g.c_out, kg}, dt, dev);
  if (which.input) r.input = Tensor::zeros(input.shape(), dt, dev);
  const bool coord = which.offset || which.mask;
  // The coord body writes both; an unrequested one lands in a buffer that is dropped.
  Tensor g_off = coord ? Tensor::empty(offset.shape(), dt, dev) : Tensor();
  Tensor g_mask = coord && m.defined() ? Tensor::empty(mask.shape(), dt, dev) : Tensor();
  const Tensor w = weight.contiguous().reshape({G, cog, kg});
  const int64_t chunk = chunk_images(g);
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, g.n - n0);
    const Tensor goc = go.narrow(0, n0, nb);
    if (which.weight) {
      // grad_weight[grp] += sum_b go[b, grp] [cog, P] @ col[b, grp]^T [P, kg], images in order.
      const Tensor col = deform_columns(op, g, p, n0, nb, x, off, m);
      std::vector<Tensor> parts;
      for (int64_t grp = 0; grp < G; ++grp)
        parts.push_back(sum(matmul(goc.narrow(1, grp * cog, cog), col.narrow(1, grp * kg, kg).transpose(1, 2)), 0));
      r.weight = add(r.weight, join(std::move(parts), 0));
    }
    if (!which.input && !coord) continue;
    // grad_col[b, grp rows] [kg, P] = w[grp]^T [kg, cog] @ go[b, grp] [cog, P].
    std::vector<Tensor> parts;
    for (int64_t grp = 0; grp < G; ++grp)
      parts.push_back(matmul(w.narrow(0, grp, 1).transpose(1, 2), goc.narrow(1, grp * cog, cog)));
    const Tensor gcol = join(std::move(parts), 1).contiguous();
    dispatch_floating(dt, op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      DeformConvLaunch<T> l = chunk_launch<T>(g, p, n0, nb, x, off, m);
      l.grad_col = gcol.data<T>();
      if (which.input) l.grad_input = r.input.data<T>() + n0 * g.c_in * g.h * g.w;
      if (coord) l.grad_offset = g_off.data<T>() + n0 * off.size(1) * P;
      if (coord && m.defined()) l.grad_mask = g_mask.data<T>() + n0 * m.size(1) * P;
      runtime::on_device(
          dev, op,
          [&] {
            if (which.input) cpu::deform_col2im<T>(l);
            if (coord) cpu::deform_col2im_coord<T>(l);
          },
          [&](auto s) {
            if (which.input) cuda::deform_col2im<T>(s, l);
            if (coord) cuda::deform_col2im_coord<T>(s, l);
          });
    });
  }
  if (which.offset) r.offset = g_off.defined() ? g_off : Tensor::zeros(offset.shape(), dt, dev);
  if (which.mask) r.mask = g_mask;
  if (which.weight) r.weight = r.weight.reshape(weight.shape());
  if (g.n == 0 && which.mask) r.mask = Tensor::zeros(mask.shape(), dt, dev);
  return r;
}
}  // namespace drcnn::ops
