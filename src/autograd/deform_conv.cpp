// Variable deform_conv2d (include/drcnn/autograd/deform_conv.h): forward through
// ops::deform_conv2d, backward through one ops::deform_conv2d_backward call with a mask of the
// gradients needed. The graph keeps the input, offset, mask and weight tensors (every gradient
// but the bias's reads the sampling positions).
#include "drcnn/autograd/deform_conv.h"

namespace drcnn {

Variable deform_conv2d(const Variable& input, const Variable& offset, const Variable& mask, const Variable& weight,
                       const Variable& bias, const ops::DeformConv2dParams& p) {
  DRCNN_CHECK(input.defined(), "deform_conv2d: argument 'input' is an undefined Variable");
  DRCNN_CHECK(offset.defined(), "deform_conv2d: argument 'offset' is an undefined Variable");
  DRCNN_CHECK(weight.defined(), "deform_conv2d: argument 'weight' is an undefined Variable");
  const Tensor xd = input.data(), od = offset.data(), wd = weight.data();
  const Tensor md = mask.defined() ? mask.data() : Tensor();
  Tensor out = ops::deform_conv2d(xd, od, md, wd, bias.defined() ? bias.data() : Tensor(), p);
  // Inputs: input, offset, weight, then mask and bias where given.
  std::vector<Variable> inputs{input, offset, weight};
  const int mask_at = mask.defined() ? int(inputs.size()) : -1;
  if (mask.defined()) inputs.push_back(mask);
  const int bias_at = bias.defined() ? int(inputs.size()) : -1;
  if (bias.defined()) inputs.push_back(bias);
  return Variable::make(
      std::move(out), std::move(inputs),
      [xd, od, md, wd, p, mask_at, bias_at](std::vector<Variable>& in, const Tensor& g) {
        ops::DeformConv2dGradMask m;
        m.input = in[0].requires_grad();
        m.offset = in[1].requires_grad();
        m.weight = in[2].requires_grad();
        m.mask = mask_at >= 0 && in[size_t(mask_at)].requires_grad();
        m.bias = bias_at >= 0 && in[size_t(bias_at)].requires_grad();
        if (!m.input && !m.offset && !m.weight && !m.mask && !m.bias) return;
        const ops::DeformConv2dGrads r = ops::deform_conv2d_backward(g, xd, od, md, wd, p, m);
        if (m.input) in[0].add_grad(r.input);
        if (m.offset) in[1].add_grad(r.offset);
        if (m.weight) in[2].add_grad(r.weight);
        if (m.mask) in[size_t(mask_at)].add_grad(r.mask);
        if (m.bias) in[size_t(bias_at)].add_grad(r.bias);
      },
      "deform_conv2d");
}
}  // namespace drcnn
