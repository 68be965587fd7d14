// Element types and the compile-time <-> run-time mapping between them.
#pragma once
#include "drcnn/core/error.h"  // DRCNN_HAVE_FMT
#if DRCNN_HAVE_FMT
#include <fmt/format.h>
#endif

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "drcnn/core/error.h"
#include "drcnn/core/half.h"

namespace drcnn {

/// The element types a Tensor can hold. f16/bf16 are storage + conversion only (for now).
enum class DType : uint8_t { Float32, Float64, Float16, BFloat16, Int32, Int64, UInt8, Bool };

constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}
constexpr size_t dtype_size(DType d) {
  switch (d) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float64: case DType::Int64: return 8;
    case DType::Float16: case DType::BFloat16: return 2;
    case DType::UInt8: case DType::Bool: return 1;
  }
  return 0;
}
constexpr bool is_floating(DType d) {
  return d == DType::Float32 || d == DType::Float64 || d == DType::Float16 || d == DType::BFloat16;
}
constexpr bool is_integral(DType d) { return d == DType::Int32 || d == DType::Int64 || d == DType::UInt8; }

/// C++ type -> DType.
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::Float16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <typename T> inline constexpr DType dtype_of_v = dtype_of<std::remove_const_t<T>>::value;

/// Tag carrying a type through generic lambdas: `[&](auto tag) { using T = typename decltype(tag)::type; }`.
template <typename T> struct TypeTag { using type = T; };

/// Calls f(TypeTag<T>) for f32/f64; anything else is an error naming `op`.
template <typename F>
decltype(auto) dispatch_floating(DType d, std::string_view op, F&& f) {
  switch (d) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    default: DRCNN_FAIL(op, ": expected a float32 or float64 tensor, got ", dtype_name(d));
  }
}
/// Calls f(TypeTag<T>) for the arithmetic types f32/f64/i32/i64.
template <typename F>
decltype(auto) dispatch_arithmetic(DType d, std::string_view op, F&& f) {
  switch (d) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    case DType::Int32: return f(TypeTag<int32_t>{});
    case DType::Int64: return f(TypeTag<int64_t>{});
    default: DRCNN_FAIL(op, ": expected float32, float64, int32 or int64, got ", dtype_name(d));
  }
}
/// Calls f(TypeTag<T>) for every dtype.
template <typename F>
decltype(auto) dispatch_all(DType d, std::string_view op, F&& f) {
  switch (d) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    case DType::Float16: return f(TypeTag<Half>{});
    case DType::BFloat16: return f(TypeTag<BFloat16>{});
    case DType::Int32: return f(TypeTag<int32_t>{});
    case DType::Int64: return f(TypeTag<int64_t>{});
    case DType::UInt8: return f(TypeTag<uint8_t>{});
    case DType::Bool: return f(TypeTag<bool>{});
  }
  DRCNN_FAIL(op, ": unknown dtype ", int(d));
}
}  // namespace drcnn

#if DRCNN_HAVE_FMT
template <>
struct fmt::formatter<drcnn::DType> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(drcnn::DType d, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(drcnn::dtype_name(d), ctx);
  }
};
#else
#include <ostream>
namespace drcnn {
inline std::ostream& operator<<(std::ostream& os, DType d) { return os << dtype_name(d); }
}  // namespace drcnn
#endif
