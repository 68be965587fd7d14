// Indexing bodies for gather/index_select and scatter_add/index_add, seen as [slices, J]:
// slice s covers every coordinate except the indexed dim, j runs along it.
// Gather:  out(s, j) = in(s, index(s, j))          one invocation per (s, j).
// Scatter: self(s, index(s, j)) += src(s, j)       the CPU runs j serially inside each s
//          (no two threads touch one element: deterministic); CUDA uses atomics.
#pragma once
#include <cstdint>
#include <type_traits>

#include "drcnn/ops/detail/atomic.h"
#include "drcnn/ops/launch.h"

namespace drcnn::ops::detail {

template <typename T>
struct IndexGatherBody {
  IndexLaunch l;
  DRCNN_HD void operator()(int64_t s, int64_t j) const {
    int64_t o[3];
    l.slice_oc.offsets(s, o);
    const int64_t idx = l.index[o[2] + j * l.j_stride[2]];
    // Written as !(in range): negative or too large indices never touch memory (torch rejects
    // negative gather indices too).
    if (!(idx >= 0 && idx < l.dim_size)) {
      raise_flag(l.error);
      return;
    }
    static_cast<T*>(l.out)[o[0] + j * l.j_stride[0]] = static_cast<const T*>(l.in)[o[1] + idx * l.self_dim_stride];
  }
};

template <typename T>
struct IndexScatterAddBody {
  IndexLaunch l;
  DRCNN_HD void operator()(int64_t s, int64_t j) const {
    int64_t o[3];
    l.slice_oc.offsets(s, o);
    const int64_t idx = l.index[o[2] + j * l.j_stride[2]];
    if (!(idx >= 0 && idx < l.dim_size)) {
      raise_flag(l.error);
      return;
    }
    atomic_add(static_cast<T*>(l.out) + o[0] + idx * l.self_dim_stride,
               static_cast<const T*>(l.in)[o[1] + j * l.j_stride[1]]);
  }
};
/// Adapts a (slice, j) body to the flat index space [slices * J] of a generic launcher.
template <typename Body>
struct FlatSliceJ {
  Body body;
  int64_t J;
  DRCNN_HD void operator()(int64_t i) const { body(i / J, i % J); }
};
}  // namespace drcnn::ops::detail
