// Elementwise kernel bodies (one invocation = one output element) and the per-element ops.
// Shared by kernels/cpu/elementwise.cpp and kernels/cuda/elementwise.cu.
#pragma once
#include <cstdint>
#include <type_traits>

#include "drcnn/core/half.h"
#include "drcnn/ops/detail/math.h"
#include "drcnn/ops/detail/offset_calc.h"

namespace drcnn::ops::detail {

// ---------------------------------------------------------------- unary ops (x -> y)
struct NegOp { template <typename T> DRCNN_HD T operator()(T x) const { return -x; } };
struct AbsOp { template <typename T> DRCNN_HD T operator()(T x) const { return hd::abs(x); } };
struct ExpOp { template <typename T> DRCNN_HD T operator()(T x) const { return hd::exp(x); } };
struct LogOp { template <typename T> DRCNN_HD T operator()(T x) const { return hd::log(x); } };
struct SqrtOp { template <typename T> DRCNN_HD T operator()(T x) const { return hd::sqrt(x); } };
// relu(NaN) = NaN, as torch.relu: written as "x < 0 ? 0 : x" so NaN falls through.
struct ReluOp { template <typename T> DRCNN_HD T operator()(T x) const { return x < T(0) ? T(0) : x; } };
// Stable for large |x|: never exponentiates a positive number.
struct SigmoidOp {
  template <typename T> DRCNN_HD T operator()(T x) const {
    if (x >= T(0)) return T(1) / (T(1) + hd::exp(-x));
    const T e = hd::exp(x);
    return e / (T(1) + e);
  }
};
struct AddScalarOp {
  double s;
  template <typename T> DRCNN_HD T operator()(T x) const { return T(x + T(s)); }
};
struct MulScalarOp {
  double s;
  template <typename T> DRCNN_HD T operator()(T x) const { return T(x * T(s)); }
};
struct PowScalarOp {
  double p;
  template <typename T> DRCNN_HD T operator()(T x) const { return hd::pow(x, T(p)); }
};
// NaN passes through (torch.clamp); lo/hi already converted from double on the host.
struct ClampOp {
  double lo, hi;
  template <typename T> DRCNN_HD T operator()(T x) const {
    return x < T(lo) ? T(lo) : (T(hi) < x ? T(hi) : x);
  }
};

// ---------------------------------------------------------------- binary ops (a, b -> y)
struct AddOp { template <typename T> DRCNN_HD T operator()(T a, T b) const { return a + b; } };
struct SubOp { template <typename T> DRCNN_HD T operator()(T a, T b) const { return a - b; } };
struct MulOp { template <typename T> DRCNN_HD T operator()(T a, T b) const { return a * b; } };
struct DivOp { template <typename T> DRCNN_HD T operator()(T a, T b) const { return a / b; } };
struct PowOp { template <typename T> DRCNN_HD T operator()(T a, T b) const { return hd::pow(a, b); } };
// NaN-propagating, as torch.maximum / torch.minimum.
struct MaximumOp {
  template <typename T> DRCNN_HD T operator()(T a, T b) const {
    return hd::isnan(a) ? a : (hd::isnan(b) ? b : (a < b ? b : a));
  }
};
struct MinimumOp {
  template <typename T> DRCNN_HD T operator()(T a, T b) const {
    return hd::isnan(a) ? a : (hd::isnan(b) ? b : (b < a ? b : a));
  }
};
// Comparisons write bool; NaN compares false except for !=, as IEEE says.
struct EqOp { template <typename T> DRCNN_HD bool operator()(T a, T b) const { return a == b; } };
struct NeOp { template <typename T> DRCNN_HD bool operator()(T a, T b) const { return a != b; } };
struct LtOp { template <typename T> DRCNN_HD bool operator()(T a, T b) const { return a < b; } };
struct LeOp { template <typename T> DRCNN_HD bool operator()(T a, T b) const { return a <= b; } };
struct GtOp { template <typename T> DRCNN_HD bool operator()(T a, T b) const { return a > b; } };
struct GeOp { template <typename T> DRCNN_HD bool operator()(T a, T b) const { return a >= b; } };
// Fused backward helpers: (upstream gradient g, saved forward value).
// relu'(x) is taken as 0 at x == 0 (torch's choice).
struct ReluBackwardOp {
  template <typename T> DRCNN_HD T operator()(T g, T x) const { return x > T(0) ? g : T(0); }
};
// Uses the saved output y = sigmoid(x): dy/dx = y (1 - y).
struct SigmoidBackwardOp {
  template <typename T> DRCNN_HD T operator()(T g, T y) const { return g * y * (T(1) - y); }
};

// ---------------------------------------------------------------- bodies
// The strided bodies split operator()(i) into oc.offsets(i, o) and at(o), the element itself:
// the CPU launcher (kernels/cpu/elementwise.cpp) walks a row of the innermost dimension by
// adding its strides to the offsets instead of dividing the index once per dimension.
/// y[i] = op(x[i]) over a strided/broadcast iteration space. Operand 0 = out, 1 = x.
template <typename Tout, typename Tin, typename Op>
struct UnaryBody {
  OffsetCalc<2> oc;
  Tout* out;
  const Tin* in;
  Op op;
  DRCNN_HD void at(const int64_t (&o)[2]) const { out[o[0]] = op(in[o[1]]); }
  DRCNN_HD void operator()(int64_t i) const {
    int64_t o[2];
    oc.offsets(i, o);
    at(o);
  }
};

/// y[i] = op(a[i], b[i]). Operands: 0 = out, 1 = a, 2 = b.
template <typename Tout, typename Tin, typename Op>
struct BinaryBody {
  OffsetCalc<3> oc;
  Tout* out;
  const Tin* a;
  const Tin* b;
  Op op;
  DRCNN_HD void at(const int64_t (&o)[3]) const { out[o[0]] = op(a[o[1]], b[o[2]]); }
  DRCNN_HD void operator()(int64_t i) const {
    int64_t o[3];
    oc.offsets(i, o);
    at(o);
  }
};

/// The flat case of UnaryBody / BinaryBody (every operand contiguous, unit stride; the host
/// marks it with oc.ndim == 0): the same op on plain indices, a loop compilers vectorise.
template <typename Tout, typename Tin, typename Op>
struct FlatUnaryBody {
  Tout* out;
  const Tin* in;
  Op op;
  DRCNN_HD void operator()(int64_t i) const { out[i] = op(in[i]); }
};
template <typename Tout, typename Tin, typename Op>
struct FlatBinaryBody {
  Tout* out;
  const Tin* a;
  const Tin* b;
  Op op;
  DRCNN_HD void operator()(int64_t i) const { out[i] = op(a[i], b[i]); }
};

/// y[i] = cond[i] ? a[i] : b[i]. Operands: 0 = out, 1 = cond (bool), 2 = a, 3 = b.
template <typename T>
struct WhereBody {
  OffsetCalc<4> oc;
  T* out;
  const bool* cond;
  const T* a;
  const T* b;
  DRCNN_HD void at(const int64_t (&o)[4]) const { out[o[0]] = cond[o[1]] ? a[o[2]] : b[o[3]]; }
  DRCNN_HD void operator()(int64_t i) const {
    int64_t o[4];
    oc.offsets(i, o);
    at(o);
  }
};

/// y[i] = value. Operand 0 = out.
template <typename T>
struct FillBody {
  OffsetCalc<1> oc;
  T* out;
  T value;
  DRCNN_HD void at(const int64_t (&o)[1]) const { out[o[0]] = value; }
  DRCNN_HD void operator()(int64_t i) const {
    int64_t o[1];
    oc.offsets(i, o);
    at(o);
  }
};

/// Same-dtype strided copy, moved as raw words of the element size (U = uint8/16/32/64).
template <typename U>
struct CopyBody {
  OffsetCalc<2> oc;
  U* out;
  const U* in;
  DRCNN_HD void at(const int64_t (&o)[2]) const { out[o[0]] = in[o[1]]; }
  DRCNN_HD void operator()(int64_t i) const {
    int64_t o[2];
    oc.offsets(i, o);
    at(o);
  }
};

// Conversions between element types, static_cast semantics; half types go through float.
template <typename To, typename From>
DRCNN_HD To convert(From v) {
  if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>) {
    return convert<To>(float(v));
  } else if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    return To(float(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else {
    return static_cast<To>(v);
  }
}

/// Strided copy with conversion from Tin to Tout. Operands: 0 = out, 1 = in.
template <typename Tout, typename Tin>
struct CastBody {
  OffsetCalc<2> oc;
  Tout* out;
  const Tin* in;
  DRCNN_HD void at(const int64_t (&o)[2]) const { out[o[0]] = convert<Tout>(in[o[1]]); }
  DRCNN_HD void operator()(int64_t i) const {
    int64_t o[2];
    oc.offsets(i, o);
    at(o);
  }
};

/// out[i] = start + i * step, computed in double (two roundings on both backends) then
/// converted (contiguous out).
template <typename T>
struct ArangeBody {
  T* out;
  double start, step;
  DRCNN_HD void operator()(int64_t i) const { out[i] = convert<T>(hd::add_mul_rn(start, double(i), step)); }
};
}  // namespace drcnn::ops::detail
