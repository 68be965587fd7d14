// Broadcasting and other shape arithmetic.
#include "drcnn/core/shape.h"

namespace drcnn {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int n = a.ndim() > b.ndim() ? a.ndim() : b.ndim();
  Shape out;
  for (int i = 0; i < n; ++i) {
    const int ia = a.ndim() - n + i, ib = b.ndim() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    DRCNN_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
                " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}
}  // namespace drcnn
