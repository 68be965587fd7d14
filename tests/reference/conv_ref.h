// Direct float64 reference of conv2d and its backward, written from the definition
//   out[n, co, y, x] = b[co] + sum_{ci, i, j} w[co, ci, i, j] * in[n, g * cin_g + ci, y * sh - ph + i * dh,
//                                                                  x * sw - pw + j * dw]
// (g = co / cout_g, zero outside the image) as seven nested loops, and the backward as the
// same loops scattering go[n, co, y, x] * (the other factor) into each gradient. No im2col, no
// code shared with include/drcnn/ops/detail; sums accumulate in long double. Tensors are read
// through their strides (test::strided_values), so any layout works.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "common/allclose.h"
#include "drcnn/core/tensor.h"

namespace drcnn::ref {

struct ConvRefParams {
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
};

struct ConvRefResult {
  std::vector<int64_t> out_shape;  // [N, Cout, Ho, Wo]
  std::vector<double> out;
};
struct ConvRefGrads {
  std::vector<double> input, weight, bias;
};

namespace conv_detail {
struct Dims {
  int64_t n, ci, h, w, co, cig, kh, kw, ho, wo, cog;
};
inline Dims dims(const Tensor& x, const Tensor& w, const ConvRefParams& p) {
  Dims d{};
  d.n = x.size(0);
  d.ci = x.size(1);
  d.h = x.size(2);
  d.w = x.size(3);
  d.co = w.size(0);
  d.cig = w.size(1);
  d.kh = w.size(2);
  d.kw = w.size(3);
  // Output size straight from the definition: the largest y with y * s - p + (k - 1) * d <= H - 1 + p.
  d.ho = 0;
  while (d.ho * p.sh - p.ph + (d.kh - 1) * p.dh <= d.h - 1 + p.ph) ++d.ho;
  d.wo = 0;
  while (d.wo * p.sw - p.pw + (d.kw - 1) * p.dw <= d.w - 1 + p.pw) ++d.wo;
  d.cog = d.co / p.groups;
  return d;
}
}  // namespace conv_detail

/// Forward; bias may be undefined.
inline ConvRefResult conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const ConvRefParams& p) {
  const auto d = conv_detail::dims(input, weight, p);
  const std::vector<double> x = test::strided_values(input), w = test::strided_values(weight);
  const std::vector<double> b = bias.defined() ? test::strided_values(bias) : std::vector<double>(size_t(d.co), 0.0);
  ConvRefResult r;
  r.out_shape = {d.n, d.co, d.ho, d.wo};
  r.out.assign(size_t(d.n * d.co * d.ho * d.wo), 0.0);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t co = 0; co < d.co; ++co) {
      const int64_t grp = co / d.cog;
      for (int64_t y = 0; y < d.ho; ++y)
        for (int64_t xo = 0; xo < d.wo; ++xo) {
          long double s = b[size_t(co)];
          for (int64_t ci = 0; ci < d.cig; ++ci)
            for (int64_t i = 0; i < d.kh; ++i)
              for (int64_t j = 0; j < d.kw; ++j) {
                const int64_t iy = y * p.sh - p.ph + i * p.dh, ix = xo * p.sw - p.pw + j * p.dw;
                if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
                const int64_t c = grp * d.cig + ci;
                s += (long double)w[size_t(((co * d.cig + ci) * d.kh + i) * d.kw + j)] *
                     x[size_t(((n * d.ci + c) * d.h + iy) * d.w + ix)];
              }
          r.out[size_t(((n * d.co + co) * d.ho + y) * d.wo + xo)] = double(s);
        }
    }
  return r;
}

/// Backward for the loss gradient grad_out (the output's shape).
inline ConvRefGrads conv2d_backward(const Tensor& grad_out, const Tensor& input, const Tensor& weight,
                                    const ConvRefParams& p) {
  const auto d = conv_detail::dims(input, weight, p);
  const std::vector<double> x = test::strided_values(input), w = test::strided_values(weight);
  const std::vector<double> go = test::strided_values(grad_out);
  std::vector<long double> gx(x.size(), 0.0L), gw(w.size(), 0.0L), gb(size_t(d.co), 0.0L);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t co = 0; co < d.co; ++co) {
      const int64_t grp = co / d.cog;
      for (int64_t y = 0; y < d.ho; ++y)
        for (int64_t xo = 0; xo < d.wo; ++xo) {
          const long double g = go[size_t(((n * d.co + co) * d.ho + y) * d.wo + xo)];
          gb[size_t(co)] += g;
          for (int64_t ci = 0; ci < d.cig; ++ci)
            for (int64_t i = 0; i < d.kh; ++i)
              for (int64_t j = 0; j < d.kw; ++j) {
                const int64_t iy = y * p.sh - p.ph + i * p.dh, ix = xo * p.sw - p.pw + j * p.dw;
                if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
                const size_t wi = size_t(((co * d.cig + ci) * d.kh + i) * d.kw + j);
                const size_t xi = size_t(((n * d.ci + grp * d.cig + ci) * d.h + iy) * d.w + ix);
                gx[xi] += g * w[wi];
                gw[wi] += g * x[xi];
              }
        }
    }
  ConvRefGrads r;
  r.input.assign(gx.begin(), gx.end());
  r.weight.assign(gw.begin(), gw.end());
  r.bias.assign(gb.begin(), gb.end());
  return r;
}
}  // namespace drcnn::ref
