// Scalar math usable on host and device (std:: on the host, CUDA's overloads on the device).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "drcnn/core/macros.h"

namespace drcnn::hd {
template <typename T> DRCNN_HD T min(T a, T b) { return b < a ? b : a; }
template <typename T> DRCNN_HD T max(T a, T b) { return a < b ? b : a; }
template <typename T> DRCNN_HD T clamp(T v, T lo, T hi) { return v < lo ? lo : (hi < v ? hi : v); }
template <typename T> DRCNN_HD bool isnan(T v) { return v != v; }  // false for integers
template <typename T> DRCNN_HD bool isfinite(T v) { return v - v == T(0); }  // inf - inf and NaN are NaN
DRCNN_HD float exp(float x) { return ::expf(x); }
DRCNN_HD double exp(double x) { return ::exp(x); }
DRCNN_HD float log(float x) { return ::logf(x); }
DRCNN_HD double log(double x) { return ::log(x); }
DRCNN_HD float sqrt(float x) { return ::sqrtf(x); }
DRCNN_HD double sqrt(double x) { return ::sqrt(x); }
DRCNN_HD float pow(float x, float y) { return ::powf(x, y); }
DRCNN_HD double pow(double x, double y) { return ::pow(x, y); }
DRCNN_HD float log1p(float x) { return ::log1pf(x); }
DRCNN_HD double log1p(double x) { return ::log1p(x); }
DRCNN_HD float cos(float x) { return ::cosf(x); }
DRCNN_HD double cos(double x) { return ::cos(x); }
/// a + b * c with two roundings on every backend: nvcc would otherwise contract it into one
/// FMA (--fmad=true) while the host compiler does not, and CPU/CUDA results would differ.
DRCNN_HD double add_mul_rn(double a, double b, double c) {
#if DRCNN_ON_DEVICE
  return __dadd_rn(a, __dmul_rn(b, c));
#else
  return a + b * c;
#endif
}
template <typename T> DRCNN_HD T abs(T x) { return x < T(0) ? -x : x; }
// Floating abs clears the sign bit (IEEE): abs(-0.0) is +0.0, which "x < 0 ? -x : x" missed.
DRCNN_HD float abs(float x) { return ::fabsf(x); }
DRCNN_HD double abs(double x) { return ::fabs(x); }
}  // namespace drcnn::hd
