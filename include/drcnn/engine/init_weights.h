// Initial weights from a file: MMDetection's init_cfg=dict(type='Pretrained', checkpoint=...)
// (the backbone from an ImageNet model) and load_from (a whole detector), detectron2's
// MODEL.WEIGHTS. The file is a safetensors file in drcnn's names: what tools/convert_checkpoint.py
// writes from torchvision, Detectron or MMDetection files, or a drcnn checkpoint.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "drcnn/layers/module.h"

namespace drcnn::engine {

/// What load_pretrained did, by the model's names.
struct PretrainedReport {
  std::string what, path;
  std::vector<std::string> loaded;      ///< copied from the file
  std::vector<std::string> missing;     ///< the model's (under `into`) the file lacks: left as initialised
  std::vector<std::string> unexpected;  ///< the file's with no place in the model: ignored
  int64_t outside = 0;                  ///< the file's tensors outside `into` (a detector file's neck, heads)
  /// "init.backbone FILE: loaded N tensors; missing (M): ...; unexpected (U): ..." (every name).
  std::string summary() const;
};

/// Copies the tensors of the safetensors file `path` into `model`'s parameters and buffers under
/// the name prefix `into` ("backbone." for a backbone; "" for the whole model), by name, as
/// mmdet's load_checkpoint(strict=False): a file whose names start with `into` (a detector's
/// file given for its backbone) is read under them, its other tensors counted in `outside`;
/// otherwise each file name is prefixed with `into` (a trunk in torchvision's names). Missing
/// and unexpected names are reported, not errors. Throws drcnn::Error naming `what` and the file
/// when it cannot be read, when no tensor of it fits a name of the model, and for every shape or
/// dtype mismatch (nothing is written then).
PretrainedReport load_pretrained(Module& model, const std::filesystem::path& path, const std::string& what,
                                 const std::string& into = "");

}  // namespace drcnn::engine
