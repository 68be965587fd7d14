// Dispatcher of conv2d (include/drcnn/ops/conv.h): checks, makes operands contiguous,
// allocates, and runs the CPU path (kernels/cpu/conv.cpp) or cuDNN (kernels/cudnn/conv.cpp).
#include "drcnn/ops/conv.h"

#include "dispatch.h"

namespace drcnn::ops {

int64_t conv2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  const int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  // Floor division (span may be negative for a too-small input).
  const int64_t q = span >= 0 ? span / stride : -((-span + stride - 1) / stride);
  return q + 1;
}

Conv2dGeometry conv2d_geometry(const Shape& input, const Shape& weight, const Conv2dParams& p, const char* op) {
  DRCNN_CHECK(p.layout == ConvLayout::NCHW, op, ": only the NCHW layout is implemented, got NHWC");
  DRCNN_CHECK(input.ndim() == 4, op, ": input must be 4-D [N, Cin, H, W], got shape ", input);
  DRCNN_CHECK(weight.ndim() == 4, op, ": weight must be 4-D [Cout, Cin / groups, kh, kw], got shape ", weight);
  DRCNN_CHECK(p.groups >= 1, op, ": groups must be >= 1, got ", p.groups);
  for (int a = 0; a < 2; ++a) {
    const char* axis = a == 0 ? "height" : "width";
    DRCNN_CHECK(p.stride[a] >= 1, op, ": stride must be >= 1, got ", p.stride[a], " for the ", axis);
    DRCNN_CHECK(p.dilation[a] >= 1, op, ": dilation must be >= 1, got ", p.dilation[a], " for the ", axis);
    DRCNN_CHECK(p.padding[a] >= 0, op, ": padding must be >= 0, got ", p.padding[a], " for the ", axis);
  }
  Conv2dGeometry g;
  g.n = input[0];
  g.c_in = input[1];
  g.h = input[2];
  g.w = input[3];
  g.c_out = weight[0];
  g.kh = weight[2];
  g.kw = weight[3];
  g.groups = p.groups;
  g.sh = p.stride[0];
  g.sw = p.stride[1];
  g.ph = p.padding[0];
  g.pw = p.padding[1];
  g.dh = p.dilation[0];
  g.dw = p.dilation[1];
  DRCNN_CHECK(g.c_in >= 1 && g.c_out >= 1, op, ": channels must be >= 1, got input ", input, " and weight ", weight);
  DRCNN_CHECK(g.kh >= 1 && g.kw >= 1, op, ": kernel size must be >= 1, got weight ", weight);
  DRCNN_CHECK(g.c_in % g.groups == 0, op, ": groups (", g.groups, ") must divide the input channels (", g.c_in, ")");
  DRCNN_CHECK(g.c_out % g.groups == 0, op, ": groups (", g.groups, ") must divide the output channels (", g.c_out,
              ")");
  DRCNN_CHECK(weight[1] * g.groups == g.c_in, op, ": weight ", weight, " expects ", weight[1] * g.groups,
              " input channels (", weight[1], " per group x ", g.groups, " groups), but input ", input, " has ",
              g.c_in);
  g.ho = conv2d_output_size(g.h, g.kh, g.sh, g.ph, g.dh);
  g.wo = conv2d_output_size(g.w, g.kw, g.sw, g.pw, g.dw);
  DRCNN_CHECK(g.ho >= 1 && g.wo >= 1, op, ": output size ", g.ho, "x", g.wo, " is not positive for input ", input,
              ", kernel ", g.kh, "x", g.kw, ", stride (", g.sh, ", ", g.sw, "), padding (", g.ph, ", ", g.pw,
              "), dilation (", g.dh, ", ", g.dw, ")");
  return g;
}

namespace {
void check_float(const char* op, const Tensor& t, const char* name) {
  runtime::check_defined(op, t, name);
  DRCNN_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", name,
              " must be float32 or float64, got ", t.dtype());
}

void check_operand(const char* op, const Tensor& ref, const Tensor& t, const char* name) {
  check_float(op, t, name);
  DRCNN_CHECK(t.dtype() == ref.dtype(), op, ": ", name, " has dtype ", t.dtype(), " but input has ", ref.dtype());
  DRCNN_CHECK(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but input is on ", ref.device());
}

Conv2dGeometry check_conv(const char* op, const Tensor& input, const Tensor& weight, const Tensor* bias,
                          const Conv2dParams& p) {
  check_float(op, input, "input");
  check_operand(op, input, weight, "weight");
  const Conv2dGeometry g = conv2d_geometry(input.shape(), weight.shape(), p, op);
  if (bias && bias->defined()) {
    check_operand(op, input, *bias, "bias");
    DRCNN_CHECK(bias->ndim() == 1 && bias->size(0) == g.c_out, op, ": bias must have shape [", g.c_out,
                "] (Cout), got shape ", bias->shape());
  }
  return g;
}
}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  return conv2d(input, weight, bias, p, nullptr);
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p,
              Conv2dSaved* saved) {
  const char* op = "conv2d";
  if (saved) saved->reset();
  const Conv2dGeometry g = check_conv(op, input, weight, &bias, p);
  const Tensor x = input.contiguous(), w = weight.contiguous();
  const Tensor b = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = Tensor::empty({g.n, g.c_out, g.ho, g.wo}, input.dtype(), input.device());
  if (out.numel() == 0) return out;
  dispatch_floating(input.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Conv2dForwardLaunch<T> l;
    l.g = g;
    l.input = x.data<T>();
    l.weight = w.data<T>();
    l.bias = b.defined() ? b.data<T>() : nullptr;
    l.out = out.data<T>();
    l.save = saved;
    runtime::on_device(
        input.device(), op, [&] { cpu::conv2d_forward<T>(l); }, [&](auto s) { cuda::conv2d_forward<T>(s, l); });
  });
  return out;
}

Conv2dGrads conv2d_backward(const Tensor& grad_out, const Tensor& input, const Tensor& weight, const Conv2dParams& p,
                            Conv2dGradMask which, const Conv2dSaved& saved) {
  const char* op = "conv2d_backward";
  const Conv2dGeometry g = check_conv(op, input, weight, nullptr, p);
  check_operand(op, input, grad_out, "grad_out");
  DRCNN_CHECK(grad_out.shape() == Shape({g.n, g.c_out, g.ho, g.wo}), op, ": grad_out must have the output's shape [",
              g.n, ", ", g.c_out, ", ", g.ho, ", ", g.wo, "], got ", grad_out.shape());
  // input's values are read only for grad_weight and weight's only for grad_input (a caller
  // may pass an expanded stand-in of the right shape for the one it does not need).
  const Tensor go = grad_out.contiguous();
  const Tensor x = which.weight ? input.contiguous() : Tensor(), w = which.input ? weight.contiguous() : Tensor();
  Conv2dGrads r;
  const DType dt = input.dtype();
  const Device dev = input.device();
  if (which.input) r.input = Tensor::empty(input.shape(), dt, dev);
  if (which.weight) r.weight = Tensor::empty(weight.shape(), dt, dev);
  if (which.bias) r.bias = Tensor::empty({g.c_out}, dt, dev);
  if (!which.input && !which.weight && !which.bias) return r;
  dispatch_floating(dt, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Conv2dBackwardLaunch<T> l;
    l.g = g;
    l.grad_out = go.data<T>();
    l.input = which.weight ? x.data<T>() : nullptr;
    l.weight = which.input ? w.data<T>() : nullptr;
    l.grad_input = which.input ? r.input.data<T>() : nullptr;
    l.grad_weight = which.weight ? r.weight.data<T>() : nullptr;
    l.grad_bias = which.bias ? r.bias.data<T>() : nullptr;
    l.saved = which.weight ? saved.get() : nullptr;
    runtime::on_device(
        dev, op, [&] { cpu::conv2d_backward<T>(l); }, [&](auto s) { cuda::conv2d_backward<T>(s, l); });
  });
  return r;
}
}  // namespace drcnn::ops
