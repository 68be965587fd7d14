// Host-side planning of the cuDNN convolution path (kernels/cudnn/conv.cpp), kept free of
// cuDNN types so that the CPU tests prove it (tests/ops/test_conv_algo.cpp): which of cuDNN's
// candidate algorithms are usable and in which order to try them, the fallback loop that tries
// them until one runs, and the pointer alignment that is part of the algorithm cache key.
// docs/kernels/conv2d.md, "cuDNN path".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "drcnn/core/error.h"

namespace drcnn::ops::detail {

/// One candidate of cuDNN's perf results (heuristics or measured), reduced to what the choice
/// depends on.
struct ConvAlgoCandidate {
  int algo = 0;
  bool supported = true;       // status == CUDNN_STATUS_SUCCESS
  size_t workspace = 0;        // bytes the algorithm needs
  bool tensor_op = false;      // math type allows tensor cores (TF32 / reduced precision)
  bool deterministic = true;   // determinism == CUDNN_DETERMINISTIC
  int math_type = 0;           // cudnnMathType_t to set when running it (opaque here)
  friend bool operator==(const ConvAlgoCandidate&, const ConvAlgoCandidate&) = default;
};

/// The candidates to try, in order: supported, no tensor-op math, workspace <= `workspace_cap`;
/// with `prefer_deterministic` the deterministic ones first. cuDNN's order (fastest or most
/// recommended first) is kept within each group.
inline std::vector<ConvAlgoCandidate> order_conv_algos(const std::vector<ConvAlgoCandidate>& perf,
                                                       bool prefer_deterministic, size_t workspace_cap) {
  std::vector<ConvAlgoCandidate> out;
  for (int pass = prefer_deterministic ? 0 : 1; pass < 2; ++pass)
    for (const ConvAlgoCandidate& c : perf) {
      if (!c.supported || c.tensor_op || c.workspace > workspace_cap) continue;
      if (prefer_deterministic && (pass == 0) != c.deterministic) continue;
      bool seen = false;  // cuDNN lists an algorithm once per math type; keep its first entry
      for (const ConvAlgoCandidate& o : out) seen = seen || o.algo == c.algo;
      if (!seen) out.push_back(c);
    }
  return out;
}

/// Tries `candidates` in order with `attempt(candidate)`, which returns an empty string when the
/// algorithm ran and otherwise why it failed (workspace allocation refused, cuDNN status).
/// Returns the index of the first that ran. When one ran after others failed, it is moved to the
/// front, so that a cached list starts with an algorithm known to work. When none ran, throws
/// drcnn::Error naming `op` and every failure.
template <typename Attempt>
size_t run_first_working(std::vector<ConvAlgoCandidate>& candidates, const char* op, const Attempt& attempt) {
  std::string failures;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::string why = attempt(candidates[i]);
    if (why.empty()) {
      if (i > 0) {
        const ConvAlgoCandidate ok = candidates[i];
        candidates.erase(candidates.begin() + std::ptrdiff_t(i));
        candidates.insert(candidates.begin(), ok);
      }
      return i;
    }
    failures += "; algorithm " + std::to_string(candidates[i].algo) + " (workspace " +
                std::to_string(candidates[i].workspace) + " bytes): " + why;
  }
  DRCNN_FAIL(op, ": no cuDNN algorithm could run (", candidates.size(), " usable candidates",
             candidates.empty() ? "; none is supported without tensor-op math within the workspace limit" : "",
             failures, ")");
}

/// Alignment of `p` in bytes: the largest power of two <= `cap` dividing the address (cuDNN
/// picks kernels with vector loads by alignment, so it is part of the algorithm cache key, as
/// in PyTorch's cuDNN path).
inline int64_t pointer_alignment(const void* p, int64_t cap = 16) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  int64_t a = 1;
  while (a < cap && address % uintptr_t(a * 2) == 0) a *= 2;
  return a;
}
}  // namespace drcnn::ops::detail
