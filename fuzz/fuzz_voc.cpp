// libFuzzer target: one Pascal VOC XML document. Any input must either parse or raise
// drcnn::Error, and a parsed document must hold what parse_voc_xml promises (positive size,
// ordered box corners). Anything else is a bug. scripts/fuzz.sh runs it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "drcnn/core/error.h"
#include "drcnn/data/voc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drcnn::data;
  VocAnnotation a;
  try {
    a = parse_voc_xml(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.xml");
  } catch (const drcnn::Error&) {
    return 0;
  }
  if (a.width <= 0 || a.height <= 0) __builtin_trap();
  for (const VocObject& o : a.objects)
    if (o.name.empty() || !(o.bndbox[2] >= o.bndbox[0]) || !(o.bndbox[3] >= o.bndbox[1])) __builtin_trap();
  return 0;
}
