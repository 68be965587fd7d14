// Float64 references for the layer ops (include/drcnn/ops/nn.h), written from the PyTorch
// definitions. They share no code with include/drcnn/ops/detail/nn_body.h: arrays are flat
// row-major vectors of doubles with the NCHW extents passed alongside; pooling enumerates each
// window's taps, the backward passes are the scatter forms (the definition), the norms use
// long double sums and textbook gradient formulas.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace drcnn::ref {

struct Nchw {
  int64_t N, C, H, W;
  int64_t plane() const { return H * W; }
  int64_t numel() const { return N * C * H * W; }
};

// ------------------------------------------------------------------------------ max pool
struct PoolRef {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool ceil_mode;
};

/// torch's pooling output size: (in + 2 pad - d (k - 1) - 1) / s + 1, rounded down or up; with
/// ceil mode, a last window starting at or beyond in + pad is dropped.
inline int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t pad, int64_t d, bool ceil_mode) {
  const double q = double(in + 2 * pad - d * (k - 1) - 1) / double(s);
  int64_t out = int64_t(ceil_mode ? std::ceil(q) : std::floor(q)) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad) out -= 1;
  return out;
}

struct PoolOut {
  std::vector<double> values;
  std::vector<int64_t> indices;
  int64_t OH = 0, OW = 0;
};

/// For every output: the list of in-range taps in row-major order; result = NaN at the last
/// NaN tap if any, else the largest value at its first tap; all -inf -> the first tap.
inline PoolOut max_pool2d(const std::vector<double>& x, Nchw s, const PoolRef& p) {
  PoolOut r;
  r.OH = pool_out_size(s.H, p.kh, p.sh, p.ph, p.dh, p.ceil_mode);
  r.OW = pool_out_size(s.W, p.kw, p.sw, p.pw, p.dw, p.ceil_mode);
  for (int64_t pl = 0; pl < s.N * s.C; ++pl)
    for (int64_t oh = 0; oh < r.OH; ++oh)
      for (int64_t ow = 0; ow < r.OW; ++ow) {
        std::vector<int64_t> taps;
        for (int64_t i = 0; i < p.kh; ++i)
          for (int64_t j = 0; j < p.kw; ++j) {
            const int64_t h = oh * p.sh - p.ph + i * p.dh, w = ow * p.sw - p.pw + j * p.dw;
            if (h >= 0 && h < s.H && w >= 0 && w < s.W) taps.push_back(h * s.W + w);
          }
        double best = -std::numeric_limits<double>::infinity();
        int64_t at = taps.empty() ? -1 : taps[0];
        int64_t last_nan = -1;
        for (int64_t t : taps) {
          const double v = x[size_t(pl * s.plane() + t)];
          if (std::isnan(v)) last_nan = t;
          else if (v > best) best = v, at = t;
        }
        if (last_nan >= 0) best = std::nan(""), at = last_nan;
        r.values.push_back(best);
        r.indices.push_back(at);
      }
  return r;
}

/// dx[plane, idx] += g for every output (the scatter definition).
inline std::vector<double> max_pool2d_backward(const std::vector<double>& g, const std::vector<int64_t>& idx,
                                               Nchw s, int64_t OH, int64_t OW) {
  std::vector<double> dx(size_t(s.numel()), 0.0);
  for (int64_t pl = 0; pl < s.N * s.C; ++pl)
    for (int64_t o = 0; o < OH * OW; ++o) {
      const size_t k = size_t(pl * OH * OW + o);
      dx[size_t(pl * s.plane() + idx[k])] += g[k];
    }
  return dx;
}

// ------------------------------------------------------------------------------ upsample
/// PyTorch 1.13's rule for F.interpolate(mode='nearest', size=...): the scale in/out is a
/// float, the product dst * scale is a float, floored, clamped to in - 1.
inline int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float pos = static_cast<float>(dst) * scale;
  const int64_t s = static_cast<int64_t>(std::floor(pos));
  return s > in - 1 ? in - 1 : s;
}

inline std::vector<double> upsample_nearest2d(const std::vector<double>& x, Nchw s, int64_t OH, int64_t OW) {
  std::vector<double> y;
  for (int64_t pl = 0; pl < s.N * s.C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        y.push_back(x[size_t(pl * s.plane() + nearest_src(oh, s.H, OH) * s.W + nearest_src(ow, s.W, OW))]);
  return y;
}

inline std::vector<double> upsample_nearest2d_backward(const std::vector<double>& g, Nchw s, int64_t OH, int64_t OW) {
  std::vector<double> dx(size_t(s.numel()), 0.0);
  size_t k = 0;
  for (int64_t pl = 0; pl < s.N * s.C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        dx[size_t(pl * s.plane() + nearest_src(oh, s.H, OH) * s.W + nearest_src(ow, s.W, OW))] += g[k++];
  return dx;
}

// ------------------------------------------------------------------------------ norms
/// [N, C, S] with S = H * W (any spatial rank flattened). w, b empty: 1 and 0.
inline double param(const std::vector<double>& p, int64_t c, double dflt) { return p.empty() ? dflt : p[size_t(c)]; }

/// (x - mean) / sqrt(var + eps) * w + b per channel, with given statistics.
inline std::vector<double> channel_norm(const std::vector<double>& x, Nchw s, const std::vector<double>& mean,
                                        const std::vector<double>& var, const std::vector<double>& w,
                                        const std::vector<double>& b, double eps) {
  std::vector<double> y(x.size());
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const size_t k = size_t((n * s.C + c) * s.plane() + i);
        y[k] = (x[k] - mean[size_t(c)]) / std::sqrt(var[size_t(c)] + eps) * param(w, c, 1) + param(b, c, 0);
      }
  return y;
}

/// Batch mean and BIASED variance per channel (long double, two passes).
inline void batch_stats(const std::vector<double>& x, Nchw s, std::vector<double>& mean, std::vector<double>& var) {
  mean.assign(size_t(s.C), 0);
  var.assign(size_t(s.C), 0);
  const long double n = (long double)(s.N * s.plane());
  for (int64_t c = 0; c < s.C; ++c) {
    long double acc = 0;
    for (int64_t b = 0; b < s.N; ++b)
      for (int64_t i = 0; i < s.plane(); ++i) acc += x[size_t((b * s.C + c) * s.plane() + i)];
    const long double m = acc / n;
    long double sq = 0;
    for (int64_t b = 0; b < s.N; ++b)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const long double d = x[size_t((b * s.C + c) * s.plane() + i)] - m;
        sq += d * d;
      }
    mean[size_t(c)] = double(m);
    var[size_t(c)] = double(sq / n);
  }
}

struct NormGradsRef {
  std::vector<double> dx, dw, db;
};

/// Batch-norm gradients. training: through the batch statistics,
/// dx = w / (n sigma) (n g - sum g - xhat sum(g xhat)); eval: dx = w g / sigma with the given
/// (running) statistics. dw = sum(g xhat), db = sum(g) in both.
inline NormGradsRef batch_norm_backward(const std::vector<double>& g, const std::vector<double>& x, Nchw s,
                                        const std::vector<double>& mean, const std::vector<double>& var,
                                        const std::vector<double>& w, double eps, bool training) {
  NormGradsRef r;
  r.dx.assign(x.size(), 0);
  r.dw.assign(size_t(s.C), 0);
  r.db.assign(size_t(s.C), 0);
  const double n = double(s.N * s.plane());
  for (int64_t c = 0; c < s.C; ++c) {
    const double sigma = std::sqrt(var[size_t(c)] + eps);
    long double sg = 0, sgx = 0;
    for (int64_t b = 0; b < s.N; ++b)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const size_t k = size_t((b * s.C + c) * s.plane() + i);
        sg += g[k];
        sgx += g[k] * (x[k] - mean[size_t(c)]) / sigma;
      }
    r.dw[size_t(c)] = double(sgx);
    r.db[size_t(c)] = double(sg);
    for (int64_t b = 0; b < s.N; ++b)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const size_t k = size_t((b * s.C + c) * s.plane() + i);
        const double xhat = (x[k] - mean[size_t(c)]) / sigma;
        r.dx[k] = training ? param(w, c, 1) / (n * sigma) * (n * g[k] - double(sg) - xhat * double(sgx))
                           : param(w, c, 1) * g[k] / sigma;
      }
  }
  return r;
}

/// Group norm: per sample n and group, mean and biased variance over (C / G) * S elements.
inline std::vector<double> group_norm(const std::vector<double>& x, Nchw s, int64_t G, const std::vector<double>& w,
                                      const std::vector<double>& b, double eps, std::vector<double>* mean_out = nullptr,
                                      std::vector<double>* rstd_out = nullptr) {
  std::vector<double> y(x.size());
  const int64_t D = s.C / G * s.plane();
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      const size_t base = size_t((n * s.C + g * (s.C / G)) * s.plane());
      long double acc = 0, sq = 0;
      for (int64_t j = 0; j < D; ++j) acc += x[base + size_t(j)];
      const long double m = acc / D;
      for (int64_t j = 0; j < D; ++j) sq += (x[base + size_t(j)] - m) * (x[base + size_t(j)] - m);
      const double sigma = std::sqrt(double(sq / D) + eps);
      if (mean_out) mean_out->push_back(double(m));
      if (rstd_out) rstd_out->push_back(1 / sigma);
      for (int64_t j = 0; j < D; ++j) {
        const int64_t c = g * (s.C / G) + j / s.plane();
        y[base + size_t(j)] = (x[base + size_t(j)] - double(m)) / sigma * param(w, c, 1) + param(b, c, 0);
      }
    }
  return y;
}

/// Group-norm gradients: with gh = g w_c and xhat over each group of D elements,
/// dx = (1 / (D sigma)) (D gh - sum gh - xhat sum(gh xhat)); dw = sum_{n, s} g xhat; db = sum g.
inline NormGradsRef group_norm_backward(const std::vector<double>& g, const std::vector<double>& x, Nchw s, int64_t G,
                                        const std::vector<double>& w, double eps) {
  NormGradsRef r;
  r.dx.assign(x.size(), 0);
  r.dw.assign(size_t(s.C), 0);
  r.db.assign(size_t(s.C), 0);
  const int64_t D = s.C / G * s.plane();
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t gr = 0; gr < G; ++gr) {
      const size_t base = size_t((n * s.C + gr * (s.C / G)) * s.plane());
      long double acc = 0, sq = 0;
      for (int64_t j = 0; j < D; ++j) acc += x[base + size_t(j)];
      const double m = double(acc / D);
      for (int64_t j = 0; j < D; ++j) sq += (x[base + size_t(j)] - m) * (x[base + size_t(j)] - m);
      const double sigma = std::sqrt(double(sq / D) + eps);
      long double sgh = 0, sghx = 0;
      for (int64_t j = 0; j < D; ++j) {
        const int64_t c = gr * (s.C / G) + j / s.plane();
        const double gh = g[base + size_t(j)] * param(w, c, 1), xhat = (x[base + size_t(j)] - m) / sigma;
        sgh += gh;
        sghx += gh * xhat;
        r.dw[size_t(c)] += g[base + size_t(j)] * xhat;
        r.db[size_t(c)] += g[base + size_t(j)];
      }
      for (int64_t j = 0; j < D; ++j) {
        const int64_t c = gr * (s.C / G) + j / s.plane();
        const double gh = g[base + size_t(j)] * param(w, c, 1), xhat = (x[base + size_t(j)] - m) / sigma;
        r.dx[base + size_t(j)] = (D * gh - double(sgh) - xhat * double(sghx)) / (D * sigma);
      }
    }
  return r;
}
}  // namespace drcnn::ref
