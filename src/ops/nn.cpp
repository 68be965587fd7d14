// Dispatchers of the layer ops (include/drcnn/ops/nn.h): check, make contiguous, allocate, and
// run the shared bodies of ops/detail/nn_body.h on the input's device. The norms are short
// sequences of launches (partial sums -> per-channel coefficients -> one elementwise pass);
// their double partials and coefficients live in small workspace tensors on the device.
#include "drcnn/ops/nn.h"

#include <cmath>
#include <string>

#include "dispatch.h"
#include "drcnn/ops/detail/nn_body.h"

namespace drcnn::ops {

namespace {
void run(const char* op, NnKind kind, const Tensor& like, const NnLaunch& l) {
  if (l.n == 0) return;
  runtime::on_device(
      like.device(), op, [&] { cpu::nn_op(kind, like.dtype(), l); },
      [&](auto s) { cuda::nn_op(s, kind, like.dtype(), l); });
}

void check_float(const char* op, const Tensor& t, const char* name) {
  runtime::check_defined(op, t, name);
  DRCNN_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", name,
              " must be float32 or float64, got ", t.dtype());
}

void check_nchw(const char* op, const Tensor& t, const char* name) {
  check_float(op, t, name);
  DRCNN_CHECK(t.ndim() == 4, op, ": ", name, " must be 4-D [N, C, H, W], got shape ", t.shape());
}

/// x [N, C, *] (ndim >= 2) for the norms.
void check_nc(const char* op, const Tensor& x) {
  check_float(op, x, "input");
  DRCNN_CHECK(x.ndim() >= 2, op, ": input must have shape [N, C, *] (at least 2-D), got shape ", x.shape());
}

/// p is undefined (when optional) or a [C] tensor of x's dtype and device.
void check_param(const char* op, const Tensor& p, const char* name, const Tensor& x, bool optional,
                 bool contiguous = false) {
  if (!p.defined()) {
    DRCNN_CHECK(optional, op, ": ", name, " must be defined");
    return;
  }
  runtime::check_same_device(op, {&x, &p});
  DRCNN_CHECK(p.dtype() == x.dtype(), op, ": ", name, " must have the input's dtype ", x.dtype(), ", got ", p.dtype());
  DRCNN_CHECK(p.ndim() == 1 && p.size(0) == x.size(1), op, ": ", name, " must have shape [", x.size(1),
              "] (one value per channel), got shape ", p.shape());
  DRCNN_CHECK(!contiguous || p.is_contiguous(), op, ": ", name,
              " must be contiguous (it is updated in place), got strides ", p.strides());
}

void check_eps(const char* op, double eps) {
  DRCNN_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
}

const void* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

/// Spatial size (product of dims 2..) of a [N, C, *] tensor.
int64_t spatial(const Shape& s) {
  int64_t hw = 1;
  for (int d = 2; d < s.ndim(); ++d) hw *= s[d];
  return hw;
}

/// Double partial sums (NormPartial) of Q segments of length L; returns the workspace [2, Q * K].
Tensor partial_sums(const char* op, const Tensor& x, const Tensor& g, const Tensor& shift, int64_t Q, int64_t L,
                    int64_t seg_stride, int64_t seg_inner, int64_t outer_stride, int64_t m_div, NnLaunch& l) {
  l.K = (L + kNormChunk - 1) / kNormChunk;
  Tensor ws = Tensor::empty({2, Q * l.K}, DType::Float64, x.device());
  l.p0 = ws.data<double>();
  l.p1 = l.p0 + Q * l.K;
  NnLaunch p = l;
  p.n = Q * l.K;
  p.x = x.data_ptr();
  p.g = ptr_or_null(g);
  p.M = shift.defined() ? shift.data_ptr() : nullptr;
  p.Q = Q;
  p.L = L;
  p.seg_stride = seg_stride;
  p.seg_inner = seg_inner;
  p.outer_stride = outer_stride;
  p.m_div = m_div;
  run(op, NnKind::NormPartial, x, p);
  return ws;
}

// ---------------------------------------------------------------------------- max pool
struct Pool {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t pad, int64_t d, bool ceil_mode) {
  // aten pooling_output_shape: floor or ceil division, then drop a last window that would
  // start in the padding.
  const int64_t num = in + 2 * pad - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad) --out;
  return out;
}

Pool check_pool(const char* op, const MaxPool2dOptions& o) {
  Pool p{o.kernel_size[0], o.kernel_size[1], o.stride[0], o.stride[1],
         o.padding[0],     o.padding[1],     o.dilation[0], o.dilation[1]};
  if (o.stride[0] == 0 && o.stride[1] == 0) {
    p.sh = p.kh;
    p.sw = p.kw;
  }
  DRCNN_CHECK(p.kh > 0 && p.kw > 0, op, ": kernel_size must be > 0, got (", p.kh, ", ", p.kw, ")");
  DRCNN_CHECK(p.sh > 0 && p.sw > 0, op, ": stride must be > 0 (or (0, 0) for the kernel size), got (", o.stride[0],
              ", ", o.stride[1], ")");
  DRCNN_CHECK(p.dh > 0 && p.dw > 0, op, ": dilation must be > 0, got (", p.dh, ", ", p.dw, ")");
  DRCNN_CHECK(p.ph >= 0 && p.pw >= 0 && p.ph <= p.kh / 2 && p.pw <= p.kw / 2, op,
              ": padding must be >= 0 and at most half the kernel size, got padding (", p.ph, ", ", p.pw,
              ") for kernel (", p.kh, ", ", p.kw, ")");
  return p;
}

PoolGeometry pool_geometry(const char* op, const Pool& p, int64_t H, int64_t W, bool ceil_mode) {
  PoolGeometry g;
  g.H = H;
  g.W = W;
  g.OH = pool_out(H, p.kh, p.sh, p.ph, p.dh, ceil_mode);
  g.OW = pool_out(W, p.kw, p.sw, p.pw, p.dw, ceil_mode);
  DRCNN_CHECK(g.OH >= 1 && g.OW >= 1, op, ": input of spatial size (", H, ", ", W,
              ") is too small for the pooling window: the output would be (", g.OH, ", ", g.OW, ")");
  g.kh = p.kh, g.kw = p.kw, g.sh = p.sh, g.sw = p.sw, g.ph = p.ph, g.pw = p.pw, g.dh = p.dh, g.dw = p.dw;
  return g;
}
}  // namespace

MaxPool2dResult max_pool2d_with_indices(const Tensor& x, const MaxPool2dOptions& o) {
  const char* op = "max_pool2d";
  check_nchw(op, x, "input");
  const Pool p = check_pool(op, o);
  const PoolGeometry geo = pool_geometry(op, p, x.size(2), x.size(3), o.ceil_mode);
  const Tensor cx = x.contiguous();
  MaxPool2dResult r;
  r.output = Tensor::empty({x.size(0), x.size(1), geo.OH, geo.OW}, x.dtype(), x.device());
  r.indices = Tensor::empty(r.output.shape(), DType::Int64, x.device());
  NnLaunch l;
  l.n = r.output.numel();
  l.geo = geo;
  l.x = cx.data_ptr();
  l.y = r.output.data_ptr();
  l.idx = r.indices.data<int64_t>();
  run(op, NnKind::MaxPoolForward, x, l);
  return r;
}

Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& o) { return max_pool2d_with_indices(x, o).output; }

Tensor max_pool2d_backward(const Tensor& grad_output, const Tensor& indices, const Shape& input_shape,
                           const MaxPool2dOptions& o) {
  const char* op = "max_pool2d_backward";
  check_nchw(op, grad_output, "grad_output");
  runtime::check_defined(op, indices, "indices");
  runtime::check_same_device(op, {&grad_output, &indices});
  DRCNN_CHECK(indices.dtype() == DType::Int64, op, ": indices must be int64, got ", indices.dtype());
  DRCNN_CHECK(input_shape.ndim() == 4, op, ": input_shape must be 4-D [N, C, H, W], got ", input_shape);
  const Pool p = check_pool(op, o);
  const PoolGeometry geo = pool_geometry(op, p, input_shape[2], input_shape[3], o.ceil_mode);
  const Shape expect{input_shape[0], input_shape[1], geo.OH, geo.OW};
  DRCNN_CHECK(grad_output.shape() == expect && indices.shape() == expect, op, ": grad_output and indices must have shape ",
              expect, " for input shape ", input_shape, ", got ", grad_output.shape(), " and ", indices.shape());
  const Tensor cg = grad_output.contiguous(), ci = indices.contiguous();
  Tensor dx = Tensor::empty(input_shape, grad_output.dtype(), grad_output.device());
  NnLaunch l;
  l.n = dx.numel();
  l.geo = geo;
  l.g = cg.data_ptr();
  l.cidx = ci.data<int64_t>();
  l.y = dx.data_ptr();
  run(op, NnKind::MaxPoolBackward, grad_output, l);
  return dx;
}

// ---------------------------------------------------------------------------- upsample
Tensor upsample_nearest2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* op = "upsample_nearest2d";
  check_nchw(op, x, "input");
  DRCNN_CHECK(x.size(2) > 0 && x.size(3) > 0, op, ": input spatial size must be >= 1, got shape ", x.shape());
  DRCNN_CHECK(out_h > 0 && out_w > 0, op, ": output size must be >= 1, got (", out_h, ", ", out_w, ")");
  const Tensor cx = x.contiguous();
  Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  NnLaunch l;
  l.n = y.numel();
  l.geo.H = x.size(2), l.geo.W = x.size(3), l.geo.OH = out_h, l.geo.OW = out_w;
  l.x = cx.data_ptr();
  l.y = y.data_ptr();
  run(op, NnKind::UpsampleForward, x, l);
  return y;
}

Tensor upsample_nearest2d_backward(const Tensor& grad_output, const Shape& input_shape) {
  const char* op = "upsample_nearest2d_backward";
  check_nchw(op, grad_output, "grad_output");
  DRCNN_CHECK(input_shape.ndim() == 4 && input_shape[2] > 0 && input_shape[3] > 0 &&
                  input_shape[0] == grad_output.size(0) && input_shape[1] == grad_output.size(1) &&
                  grad_output.size(2) > 0 && grad_output.size(3) > 0,
              op, ": input_shape must be [N, C, H, W] with H, W >= 1 and N, C of grad_output ", grad_output.shape(),
              ", got ", input_shape);
  const Tensor cg = grad_output.contiguous();
  Tensor dx = Tensor::empty(input_shape, grad_output.dtype(), grad_output.device());
  NnLaunch l;
  l.n = dx.numel();
  l.geo.H = input_shape[2], l.geo.W = input_shape[3], l.geo.OH = grad_output.size(2), l.geo.OW = grad_output.size(3);
  l.g = cg.data_ptr();
  l.y = dx.data_ptr();
  run(op, NnKind::UpsampleBackward, grad_output, l);
  return dx;
}

// ---------------------------------------------------------------------------- frozen BN
namespace {
/// Per-channel scale A and shift B of y = x A + B from (weight, bias, mean, var, eps); also
/// writes invstd (and a copy of mean) when save is given. Returns [2, C].
Tensor affine_coefficients(const char* op, const Tensor& like, const Tensor& w, const Tensor& b, const Tensor& mean,
                           const Tensor& var, double eps, Tensor* save_mean, Tensor* save_invstd) {
  const int64_t C = like.size(1);
  Tensor coef = Tensor::empty({2, C}, like.dtype(), like.device());
  const Tensor cw = w.defined() ? w.contiguous() : w, cb = b.defined() ? b.contiguous() : b;
  const Tensor cm = mean.contiguous(), cv = var.contiguous();
  NnLaunch l;
  l.n = C;
  l.weight = ptr_or_null(cw);
  l.bias = ptr_or_null(cb);
  l.M = cm.data_ptr();
  l.running_var = cv.data_ptr();
  l.A = coef.data_ptr();
  l.B = static_cast<char*>(coef.data_ptr()) + C * coef.element_size();
  l.eps = eps;
  if (save_mean) {
    *save_mean = Tensor::empty({C}, like.dtype(), like.device());
    *save_invstd = Tensor::empty({C}, like.dtype(), like.device());
    l.save_mean = save_mean->data_ptr();
    l.save_invstd = save_invstd->data_ptr();
  }
  run(op, NnKind::AffineCoef, like, l);
  return coef;
}

/// y = x * A[s] + B[s] (B may be null), s = (i / inner) % mod, over contiguous x.
Tensor channel_affine(const char* op, const Tensor& x, const void* A, const void* B, int64_t inner, int64_t mod) {
  const Tensor cx = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  NnLaunch l;
  l.n = x.numel();
  l.x = cx.data_ptr();
  l.y = y.data_ptr();
  l.A = const_cast<void*>(A);
  l.B = const_cast<void*>(B);
  l.inner = inner;
  l.mod = mod;
  run(op, NnKind::ChannelAffine, x, l);
  return y;
}

/// dx = g A[s] + (x - M[s]) B[s] + C[s] with the coefficients of `coef` (A, B, C pointers),
/// s = (i / inner) % mod; g and x contiguous.
Tensor norm_backward_input(const char* op, const Tensor& g, const Tensor& x, const NnLaunch& coef, const Tensor& M,
                           int64_t inner, int64_t mod) {
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  NnLaunch e;
  e.n = x.numel();
  e.g = g.data_ptr();
  e.x = x.data_ptr();
  e.y = dx.data_ptr();
  e.A = coef.A, e.B = coef.B, e.C = coef.C;
  e.M = M.data_ptr();
  e.inner = inner;
  e.mod = mod;
  run(op, NnKind::NormBackward, x, e);
  return dx;
}

void* row(const Tensor& coef, int64_t r) {
  return static_cast<char*>(coef.data_ptr()) + r * coef.size(1) * int64_t(coef.element_size());
}
}  // namespace

Tensor frozen_batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                           const Tensor& running_var, double eps) {
  const char* op = "frozen_batch_norm2d";
  check_nc(op, x);
  check_param(op, weight, "weight", x, false);
  check_param(op, bias, "bias", x, false);
  check_param(op, running_mean, "running_mean", x, false);
  check_param(op, running_var, "running_var", x, false);
  check_eps(op, eps);
  if (x.numel() == 0) return Tensor::empty(x.shape(), x.dtype(), x.device());
  const Tensor coef = affine_coefficients(op, x, weight, bias, running_mean, running_var, eps, nullptr, nullptr);
  return channel_affine(op, x, row(coef, 0), row(coef, 1), spatial(x.shape()), x.size(1));
}

Tensor frozen_batch_norm2d_backward(const Tensor& grad_output, const Tensor& weight, const Tensor& running_var,
                                    double eps) {
  const char* op = "frozen_batch_norm2d_backward";
  check_nc(op, grad_output);
  check_param(op, weight, "weight", grad_output, false);
  check_param(op, running_var, "running_var", grad_output, false);
  check_eps(op, eps);
  if (grad_output.numel() == 0) return Tensor::empty(grad_output.shape(), grad_output.dtype(), grad_output.device());
  // The scale only: a zero mean gives it without a second body.
  const Tensor zero = Tensor::zeros({grad_output.size(1)}, grad_output.dtype(), grad_output.device());
  const Tensor coef = affine_coefficients(op, grad_output, weight, Tensor(), zero, running_var, eps, nullptr, nullptr);
  return channel_affine(op, grad_output, row(coef, 0), nullptr, spatial(grad_output.shape()), grad_output.size(1));
}

// ---------------------------------------------------------------------------- batch norm
BatchNormResult batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                             const Tensor& running_var, bool training, double momentum, double eps) {
  const char* op = "batch_norm2d";
  check_nc(op, x);
  check_param(op, weight, "weight", x, true);
  check_param(op, bias, "bias", x, true);
  check_param(op, running_mean, "running_mean", x, training, true);
  check_param(op, running_var, "running_var", x, training, true);
  DRCNN_CHECK(running_mean.defined() == running_var.defined(), op,
              ": running_mean and running_var must both be defined or both undefined");
  check_eps(op, eps);
  DRCNN_CHECK(std::isfinite(momentum) && momentum >= 0 && momentum <= 1, op, ": momentum must be in [0, 1], got ",
              momentum);
  const int64_t N = x.size(0), C = x.size(1), HW = spatial(x.shape()), count = N * HW;
  BatchNormResult r;
  if (!training) {
    const Tensor coef = affine_coefficients(op, x, weight, bias, running_mean, running_var, eps, &r.save_mean,
                                            &r.save_invstd);
    r.output = x.numel() == 0 ? Tensor::empty(x.shape(), x.dtype(), x.device())
                              : channel_affine(op, x, row(coef, 0), row(coef, 1), HW, C);
    return r;
  }
  DRCNN_CHECK(count > 1, op, ": expected more than 1 value per channel when training, got input shape ", x.shape());
  const Tensor cx = x.contiguous();
  const Tensor cw = weight.defined() ? weight.contiguous() : weight, cb = bias.defined() ? bias.contiguous() : bias;
  r.save_mean = Tensor::empty({C}, x.dtype(), x.device());
  r.save_invstd = Tensor::empty({C}, x.dtype(), x.device());
  Tensor coef = Tensor::empty({2, C}, x.dtype(), x.device());
  // Pass 1: mean. Channel c covers n * C * HW + c * HW + s.
  NnLaunch l;
  l.L = count;
  Tensor ws = partial_sums(op, cx, Tensor(), Tensor(), C, count, HW, HW, C * HW, 1, l);
  l.n = C;
  l.M = r.save_mean.data_ptr();
  run(op, NnKind::BnTrainMean, x, l);
  // Pass 2: sums of (x - mean) and its square -> variance, coefficients, running stats.
  ws = partial_sums(op, cx, Tensor(), r.save_mean, C, count, HW, HW, C * HW, 1, l);
  l.n = C;
  l.weight = ptr_or_null(cw);
  l.bias = ptr_or_null(cb);
  l.save_invstd = r.save_invstd.data_ptr();
  l.A = row(coef, 0);
  l.B = row(coef, 1);
  l.running_mean = running_mean.defined() ? running_mean.data_ptr() : nullptr;
  l.running_var = running_var.defined() ? running_var.data_ptr() : nullptr;
  l.eps = eps;
  l.momentum = momentum;
  run(op, NnKind::BnTrainStats, x, l);
  r.output = channel_affine(op, cx, row(coef, 0), row(coef, 1), HW, C);
  return r;
}

NormGrads batch_norm2d_backward(const Tensor& grad_output, const Tensor& x, const Tensor& weight,
                                const Tensor& save_mean, const Tensor& save_invstd, bool training) {
  const char* op = "batch_norm2d_backward";
  check_nc(op, x);
  check_float(op, grad_output, "grad_output");
  runtime::check_same_device(op, {&x, &grad_output});
  DRCNN_CHECK(grad_output.shape() == x.shape() && grad_output.dtype() == x.dtype(), op,
              ": grad_output must match the input (shape ", x.shape(), ", ", x.dtype(), "), got shape ",
              grad_output.shape(), ", ", grad_output.dtype());
  check_param(op, weight, "weight", x, true);
  check_param(op, save_mean, "save_mean", x, false);
  check_param(op, save_invstd, "save_invstd", x, false);
  const int64_t N = x.size(0), C = x.size(1), HW = spatial(x.shape()), count = N * HW;
  NormGrads r;
  if (weight.defined()) {
    r.grad_weight = Tensor::zeros({C}, x.dtype(), x.device());
    r.grad_bias = Tensor::zeros({C}, x.dtype(), x.device());
  }
  if (x.numel() == 0) {
    r.grad_input = Tensor::empty(x.shape(), x.dtype(), x.device());
    return r;
  }
  const Tensor cx = x.contiguous(), cg = grad_output.contiguous();
  const Tensor cw = weight.defined() ? weight.contiguous() : weight;
  const Tensor cm = save_mean.contiguous(), ci = save_invstd.contiguous();
  NnLaunch l;
  l.L = count;
  const Tensor ws = partial_sums(op, cx, cg, cm, C, count, HW, HW, C * HW, 1, l);
  Tensor coef = Tensor::empty({3, C}, x.dtype(), x.device());
  l.n = C;
  l.weight = ptr_or_null(cw);
  l.save_invstd = ci.data_ptr();
  l.A = row(coef, 0);
  l.B = row(coef, 1);
  l.C = row(coef, 2);
  l.dweight = weight.defined() ? r.grad_weight.data_ptr() : nullptr;
  l.dbias = weight.defined() ? r.grad_bias.data_ptr() : nullptr;
  l.training = training;
  run(op, NnKind::BnBackwardCoef, x, l);
  r.grad_input = norm_backward_input(op, cg, cx, l, cm, HW, C);
  return r;
}

// ---------------------------------------------------------------------------- group norm
namespace {
void check_groups(const char* op, const Tensor& x, int64_t groups) {
  DRCNN_CHECK(groups > 0 && x.size(1) % groups == 0, op, ": groups must be > 0 and divide the ", x.size(1),
              " channels, got ", groups);
}
}  // namespace

GroupNormResult group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "group_norm";
  check_nc(op, x);
  check_groups(op, x, groups);
  check_param(op, weight, "weight", x, true);
  check_param(op, bias, "bias", x, true);
  check_eps(op, eps);
  const int64_t N = x.size(0), C = x.size(1), G = groups, HW = spatial(x.shape()), D = C / G * HW;
  GroupNormResult r;
  r.mean = Tensor::empty({N, G}, x.dtype(), x.device());
  r.rstd = Tensor::empty({N, G}, x.dtype(), x.device());
  if (x.numel() == 0) {
    // Empty groups (HW == 0): PyTorch gives mean 0 and rstd 1 / sqrt(eps); only the shapes matter here.
    r.mean.fill_(0.0);
    r.rstd.fill_(1.0 / std::sqrt(eps));
    r.output = Tensor::empty(x.shape(), x.dtype(), x.device());
    return r;
  }
  const Tensor cx = x.contiguous();
  const Tensor cw = weight.defined() ? weight.contiguous() : weight, cb = bias.defined() ? bias.contiguous() : bias;
  // Group q = (n, g) is the contiguous block of D elements starting at q * D.
  NnLaunch l;
  l.L = D;
  Tensor ws = partial_sums(op, cx, Tensor(), Tensor(), N * G, D, D, D, 0, 1, l);
  l.n = N * G;
  l.M = r.mean.data_ptr();
  run(op, NnKind::GnMean, x, l);
  ws = partial_sums(op, cx, Tensor(), r.mean, N * G, D, D, D, 0, 1, l);
  l.save_invstd = r.rstd.data_ptr();
  l.eps = eps;
  run(op, NnKind::GnRstd, x, l);
  Tensor coef = Tensor::empty({2, N * C}, x.dtype(), x.device());
  NnLaunch c;
  c.n = N * C;
  c.weight = ptr_or_null(cw);
  c.bias = ptr_or_null(cb);
  c.M = r.mean.data_ptr();
  c.save_invstd = r.rstd.data_ptr();
  c.A = row(coef, 0);
  c.B = row(coef, 1);
  c.Cn = C;
  c.G = G;
  run(op, NnKind::GnForwardCoef, x, c);
  r.output = channel_affine(op, cx, c.A, c.B, HW, N * C);
  return r;
}

NormGrads group_norm_backward(const Tensor& grad_output, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                              const Tensor& weight, int64_t groups) {
  const char* op = "group_norm_backward";
  check_nc(op, x);
  check_groups(op, x, groups);
  check_float(op, grad_output, "grad_output");
  runtime::check_same_device(op, {&x, &grad_output, &mean, &rstd});
  DRCNN_CHECK(grad_output.shape() == x.shape() && grad_output.dtype() == x.dtype(), op,
              ": grad_output must match the input (shape ", x.shape(), ", ", x.dtype(), "), got shape ",
              grad_output.shape(), ", ", grad_output.dtype());
  check_param(op, weight, "weight", x, true);
  const int64_t N = x.size(0), C = x.size(1), G = groups, HW = spatial(x.shape()), D = C / G * HW;
  const Shape ng{N, G};
  DRCNN_CHECK(mean.shape() == ng && rstd.shape() == ng && mean.dtype() == x.dtype() && rstd.dtype() == x.dtype(), op,
              ": mean and rstd must be [N, G] = ", ng, " of the input's dtype, got ", mean.shape(), " and ", rstd.shape());
  NormGrads r;
  if (weight.defined()) {
    r.grad_weight = Tensor::zeros({C}, x.dtype(), x.device());
    r.grad_bias = Tensor::zeros({C}, x.dtype(), x.device());
  }
  if (x.numel() == 0) {
    r.grad_input = Tensor::empty(x.shape(), x.dtype(), x.device());
    return r;
  }
  const Tensor cx = x.contiguous(), cg = grad_output.contiguous(), cm = mean.contiguous(), cr = rstd.contiguous();
  const Tensor cw = weight.defined() ? weight.contiguous() : weight;
  // Per (n, c): sums of g and g (x - mean[n, g]) over the HW contiguous elements.
  NnLaunch l;
  l.L = HW;
  const Tensor ws = partial_sums(op, cx, cg, cm, N * C, HW, HW, HW, 0, C / G, l);
  Tensor coef = Tensor::empty({3, N * C}, x.dtype(), x.device());
  l.n = N * C;
  l.weight = ptr_or_null(cw);
  l.save_invstd = cr.data_ptr();
  l.A = row(coef, 0);
  l.B = row(coef, 1);
  l.C = row(coef, 2);
  l.Cn = C;
  l.G = G;
  l.N = N;
  l.L = D;
  run(op, NnKind::GnBackwardCoef, x, l);
  if (weight.defined()) {
    NnLaunch wl = l;
    wl.n = C;
    wl.dweight = r.grad_weight.data_ptr();
    wl.dbias = r.grad_bias.data_ptr();
    run(op, NnKind::GnWeightGrad, x, wl);
  }
  // dx's shift is the group mean, indexed per (n, c): expand [N, G] to [N, C] once (tiny).
  const Tensor m_nc = cm.reshape({N, G, 1}).expand({N, G, C / G}).contiguous();
  r.grad_input = norm_backward_input(op, cg, cx, l, m_nc, HW, N * C);
  return r;
}
}  // namespace drcnn::ops
