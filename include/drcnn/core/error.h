// Errors: drcnn::Error and its CUDA family, and the checks that raise them.
//
// DRCNN_CHECK(cond, parts...) guards user input in every build; the message parts are
// formatted with fmt and should say which op, what arrived and what was expected.
// DRCNN_ASSERT guards internal invariants in debug builds only. Kernels never throw.
#pragma once
// fmt 9 does not compile under nvcc's front end, so .cu files (which only format error
// messages from strings and numbers) get an iostream-based concat instead.
#if defined(__CUDACC__)
#define DRCNN_HAVE_FMT 0
#include <sstream>
#else
#define DRCNN_HAVE_FMT 1
#include <fmt/format.h>
#endif

#include <stdexcept>
#include <string>

namespace drcnn {

/// Every error drcnn raises. what() reads "drcnn: <message> [at file:line in function]".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// A CUDA runtime call failed (message carries cudaGetErrorString and the call).
class CudaError : public Error {
 public:
  using Error::Error;
};
/// A cuBLAS call failed.
class CublasError : public CudaError {
 public:
  using CudaError::CudaError;
};
/// A cuDNN call failed.
class CudnnError : public CudaError {
 public:
  using CudaError::CudaError;
};

namespace detail {
/// Joins the parts with fmt ("{}" each), so any type with a fmt formatter can appear.
#if DRCNN_HAVE_FMT
template <typename... Args>
std::string concat(const Args&... args) {
  std::string out;
  (fmt::format_to(std::back_inserter(out), "{}", args), ...);
  return out;
}
#else
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
#endif
[[noreturn]] void fail(const char* file, int line, const char* func, const char* cond,
                       const std::string& message);
}  // namespace detail
}  // namespace drcnn

#define DRCNN_CHECK(cond, ...)                                                          \
  do {                                                                                  \
    if (!(cond)) [[unlikely]]                                                           \
      ::drcnn::detail::fail(__FILE__, __LINE__, __func__, #cond,                        \
                            ::drcnn::detail::concat(__VA_ARGS__));                      \
  } while (0)

#define DRCNN_FAIL(...) \
  ::drcnn::detail::fail(__FILE__, __LINE__, __func__, nullptr, ::drcnn::detail::concat(__VA_ARGS__))

#ifdef NDEBUG
#define DRCNN_ASSERT(cond, ...) \
  do {                          \
  } while (0)
#else
#define DRCNN_ASSERT(cond, ...) DRCNN_CHECK(cond, "internal invariant broken: ", __VA_ARGS__)
#endif
