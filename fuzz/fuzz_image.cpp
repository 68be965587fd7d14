// libFuzzer target: drcnn::data::decode_image on arbitrary bytes (scripts/fuzz.sh builds it with
// ASan + UBSan). Any input must give an image whose buffer matches its size, or a drcnn::Error;
// a crash, a sanitizer report, another exception type or a leak is a bug. The caps are small
// (1024 px per side, 2^20 pixels) so that the fuzzer explores formats, not large allocations.
// Seeds: fuzz/corpus/fuzz_image (tiny PNGs and JPEGs of each colour type).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "drcnn/core/error.h"
#include "drcnn/data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  drcnn::data::DecodeOptions options;
  options.max_dimension = 1024;
  options.max_pixels = int64_t(1) << 20;
  try {
    const drcnn::data::Image image =
        drcnn::data::decode_image(std::span<const uint8_t>(data, size), "fuzz input", options);
    if (image.width <= 0 || image.height <= 0 || image.width > 1024 || image.height > 1024 ||
        image.pixels.size() != size_t(image.width) * size_t(image.height) * 3) {
      std::abort();  // a decoded image must be non-empty, within the caps and consistent
    }
    // Touch every byte so that MSan/ASan would see uninitialised or freed memory.
    unsigned sum = 0;
    for (uint8_t v : image.pixels) sum += v;
    if (sum == 0xFFFFFFFFu) std::abort();
  } catch (const drcnn::Error&) {
    // expected for invalid input
  }
  return 0;
}
