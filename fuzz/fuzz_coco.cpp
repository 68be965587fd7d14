// libFuzzer target: COCO annotation JSON. Any input must either parse or raise drcnn::Error;
// a parsed file must then build a CocoDataset (both presets) whose records are readable.
// Anything else (another exception, a sanitizer report, a hang) is a bug. scripts/fuzz.sh runs it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "drcnn/core/error.h"
#include "drcnn/data/coco.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drcnn::data;
  CocoFile file;
  try {
    file = parse_coco(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  } catch (const drcnn::Error&) {
    return 0;
  }
  // Touch every raw span (the offsets must stay inside their buffers).
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < file.annotations.size(); ++i)
    bytes += file.annotations.segmentation(i).size() + file.annotations.extra(i).size();
  if (bytes > file.annotations.segmentation_json.size() + file.annotations.extra_json.size()) __builtin_trap();
  for (const CocoDatasetOptions& options : {CocoDatasetOptions{}, CocoDatasetOptions::evaluation("root")}) {
    const CocoDataset ds(file, options);  // parse_coco validated every id: must not throw
    for (std::size_t i = 0; i < ds.size(); ++i) {
      const DetectionRecord r = ds.record(i);
      if (r.boxes.size() != r.labels.size() || r.labels.size() != r.ignore.size()) __builtin_trap();
      for (const int64_t label : r.labels)
        if (ds.category_id_to_label(ds.label_to_category_id(label)) != label) __builtin_trap();
    }
  }
  return 0;
}
