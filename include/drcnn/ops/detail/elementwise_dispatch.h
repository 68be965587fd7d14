// Maps (op kind, dtype) to a body and hands it to a backend launcher. Included only by the
// kernel translation units (kernels/cpu/elementwise.cpp, kernels/cuda/elementwise.cu), so each
// body is instantiated once per backend and both backends run the identical switch.
// Launcher: any callable `launch(int64_t n, const Body& body)`.
#pragma once
#include "drcnn/core/error.h"
#include "drcnn/ops/detail/elementwise_body.h"
#include "drcnn/ops/launch.h"

namespace drcnn::ops::detail {

template <int K>
OffsetCalc<K> take_operands(const OffsetCalc<4>& src, int first = 0) {
  OffsetCalc<K> oc{};
  oc.ndim = src.ndim;
  for (int d = 0; d < src.ndim; ++d) {
    oc.size[d] = src.size[d];
    for (int k = 0; k < K; ++k) oc.stride[k][d] = src.stride[first + k][d];
  }
  return oc;
}

template <typename T, typename Op, typename Launch>
void launch_unary_as(const ElementwiseLaunch& l, Op op, Launch& launch) {
  T* out = static_cast<T*>(l.ptr[0]);
  const T* in = static_cast<const T*>(l.ptr[1]);
  if (l.oc.ndim == 0) return launch(l.n, FlatUnaryBody<T, T, Op>{out, in, op});
  launch(l.n, UnaryBody<T, T, Op>{take_operands<2>(l.oc), out, in, op});
}

template <typename Launch>
void run_unary(UnaryKind kind, DType dtype, const ElementwiseLaunch& l, Launch&& launch) {
  auto with_type = [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (kind) {
      case UnaryKind::Neg: return launch_unary_as<T>(l, NegOp{}, launch);
      case UnaryKind::Abs: return launch_unary_as<T>(l, AbsOp{}, launch);
      case UnaryKind::Relu: return launch_unary_as<T>(l, ReluOp{}, launch);
      case UnaryKind::AddScalar: return launch_unary_as<T>(l, AddScalarOp{l.scalar[0]}, launch);
      case UnaryKind::MulScalar: return launch_unary_as<T>(l, MulScalarOp{l.scalar[0]}, launch);
      case UnaryKind::Clamp: return launch_unary_as<T>(l, ClampOp{l.scalar[0], l.scalar[1]}, launch);
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (kind) {
        case UnaryKind::Exp: return launch_unary_as<T>(l, ExpOp{}, launch);
        case UnaryKind::Log: return launch_unary_as<T>(l, LogOp{}, launch);
        case UnaryKind::Sqrt: return launch_unary_as<T>(l, SqrtOp{}, launch);
        case UnaryKind::Sigmoid: return launch_unary_as<T>(l, SigmoidOp{}, launch);
        case UnaryKind::PowScalar: return launch_unary_as<T>(l, PowScalarOp{l.scalar[0]}, launch);
        default: break;
      }
    }
    DRCNN_FAIL("elementwise: unary op ", int(kind), " has no ", dtype_name(dtype_of_v<T>), " kernel");
  };
  dispatch_arithmetic(dtype, "elementwise unary", with_type);
}

template <typename T, typename Tout, typename Op, typename Launch>
void launch_binary_as(const ElementwiseLaunch& l, Op op, Launch& launch) {
  Tout* out = static_cast<Tout*>(l.ptr[0]);
  const T* a = static_cast<const T*>(l.ptr[1]);
  const T* b = static_cast<const T*>(l.ptr[2]);
  if (l.oc.ndim == 0) return launch(l.n, FlatBinaryBody<Tout, T, Op>{out, a, b, op});
  launch(l.n, BinaryBody<Tout, T, Op>{take_operands<3>(l.oc), out, a, b, op});
}

template <typename Launch>
void run_binary(BinaryKind kind, DType dtype, const ElementwiseLaunch& l, Launch&& launch) {
  auto with_type = [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (kind) {
      case BinaryKind::Add: return launch_binary_as<T, T>(l, AddOp{}, launch);
      case BinaryKind::Sub: return launch_binary_as<T, T>(l, SubOp{}, launch);
      case BinaryKind::Mul: return launch_binary_as<T, T>(l, MulOp{}, launch);
      case BinaryKind::Maximum: return launch_binary_as<T, T>(l, MaximumOp{}, launch);
      case BinaryKind::Minimum: return launch_binary_as<T, T>(l, MinimumOp{}, launch);
      case BinaryKind::Eq: return launch_binary_as<T, bool>(l, EqOp{}, launch);
      case BinaryKind::Ne: return launch_binary_as<T, bool>(l, NeOp{}, launch);
      case BinaryKind::Lt: return launch_binary_as<T, bool>(l, LtOp{}, launch);
      case BinaryKind::Le: return launch_binary_as<T, bool>(l, LeOp{}, launch);
      case BinaryKind::Gt: return launch_binary_as<T, bool>(l, GtOp{}, launch);
      case BinaryKind::Ge: return launch_binary_as<T, bool>(l, GeOp{}, launch);
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (kind) {
        case BinaryKind::Div: return launch_binary_as<T, T>(l, DivOp{}, launch);
        case BinaryKind::Pow: return launch_binary_as<T, T>(l, PowOp{}, launch);
        case BinaryKind::ReluBackward: return launch_binary_as<T, T>(l, ReluBackwardOp{}, launch);
        case BinaryKind::SigmoidBackward: return launch_binary_as<T, T>(l, SigmoidBackwardOp{}, launch);
        default: break;
      }
    }
    DRCNN_FAIL("elementwise: binary op ", int(kind), " has no ", dtype_name(dtype_of_v<T>), " kernel");
  };
  dispatch_arithmetic(dtype, "elementwise binary", with_type);
}

template <typename Launch>
void run_where(DType dtype, const ElementwiseLaunch& l, Launch&& launch) {
  dispatch_all(dtype, "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(l.n, WhereBody<T>{l.oc, static_cast<T*>(l.ptr[0]), static_cast<const bool*>(l.ptr[1]),
                             static_cast<const T*>(l.ptr[2]), static_cast<const T*>(l.ptr[3])});
  });
}

template <typename Launch>
void run_fill(DType dtype, const ElementwiseLaunch& l, Launch&& launch) {
  dispatch_all(dtype, "fill", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(l.n, FillBody<T>{take_operands<1>(l.oc), static_cast<T*>(l.ptr[0]), convert<T>(l.scalar[0])});
  });
}

template <typename Launch>
void run_copy(size_t element_size, const ElementwiseLaunch& l, Launch&& launch) {
  auto go = [&](auto tag) {
    using U = typename decltype(tag)::type;
    launch(l.n, CopyBody<U>{take_operands<2>(l.oc), static_cast<U*>(l.ptr[0]), static_cast<const U*>(l.ptr[1])});
  };
  switch (element_size) {
    case 1: return go(TypeTag<uint8_t>{});
    case 2: return go(TypeTag<uint16_t>{});
    case 4: return go(TypeTag<uint32_t>{});
    case 8: return go(TypeTag<uint64_t>{});
    default: DRCNN_FAIL("copy: unsupported element size ", element_size);
  }
}

template <typename Launch>
void run_cast(DType out, DType in, const ElementwiseLaunch& l, Launch&& launch) {
  dispatch_all(out, "cast", [&](auto out_tag) {
    using To = typename decltype(out_tag)::type;
    dispatch_all(in, "cast", [&](auto in_tag) {
      using From = typename decltype(in_tag)::type;
      launch(l.n, CastBody<To, From>{take_operands<2>(l.oc), static_cast<To*>(l.ptr[0]),
                                     static_cast<const From*>(l.ptr[1])});
    });
  });
}

template <typename Launch>
void run_arange(DType dtype, int64_t n, void* out, double start, double step, Launch&& launch) {
  dispatch_all(dtype, "arange", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(n, ArangeBody<T>{static_cast<T*>(out), start, step});
  });
}
}  // namespace drcnn::ops::detail
