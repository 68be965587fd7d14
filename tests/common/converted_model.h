// Test helper: a detector in float type T holding a converted checkpoint's weights
// (tests/data/checkpoints/<file>, written by tools/convert_checkpoint.py), loaded strictly by
// name (every name of the model, no other), in eval mode. Used by the checkpoint tests.
#pragma once
#include <memory>
#include <string>

#include "common/source_dir.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/detector.h"

namespace drcnn::test {

inline std::string checkpoint_path(const std::string& file) {
  return (data_dir() / "checkpoints" / file).string();
}

template <typename T>
std::unique_ptr<models::TwoStageDetector<T>> converted_detector(const models::DetectorConfig& cfg,
                                                                const std::string& file) {
  const DType dtype = sizeof(T) == 8 ? DType::Float64 : DType::Float32;
  const io::SafetensorsFile weights = io::load_safetensors(checkpoint_path(file));
  Generator gen(0);
  auto model = std::make_unique<models::TwoStageDetector<T>>(cfg, gen);
  NamedTensors state;
  for (const auto& [name, t] : weights.tensors) state.emplace_back(name, t.dtype() == DType::Int64 ? t : t.to(dtype));
  model->load_state_dict(state);
  model->eval();
  return model;
}

}  // namespace drcnn::test
