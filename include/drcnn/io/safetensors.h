// safetensors files (https://github.com/huggingface/safetensors): read and write named tensors.
//
// Layout: 8-byte little-endian u64 N, then N bytes of UTF-8 JSON (starting with '{', padded
// with spaces), then the data section. The JSON maps each tensor name to
// {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data
// section) and may hold "__metadata__": {string: string}. Data is C-order, little-endian.
// docs/io.md lists every validation rule and what is accepted or rejected.
//
// The JSON parser (nlohmann-json) is private to src/io/safetensors.cpp: this header needs none.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "drcnn/core/device.h"
#include "drcnn/core/tensor.h"

namespace drcnn::io {

/// The contents of a safetensors file: tensors by name, and the optional "__metadata__".
struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;

  /// True when a tensor called `name` exists.
  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
  /// The tensor called `name`. Throws drcnn::Error naming `name` and listing the tensors
  /// present when there is none.
  const Tensor& at(const std::string& name) const;
};

/// Reads a safetensors file in one pass and returns its tensors (contiguous, on `device`).
/// dtypes: F64, F32, F16, BF16, I64, I32, U8, BOOL. Other valid safetensors dtypes (I8, I16,
/// U16, U32, U64, F8_*, C64, ...) and unknown ones are errors naming the tensor and the dtype.
/// Requires: a well-formed file: header length in [2, 100 MB] and within the file; a JSON
///           object; every entry with a known dtype, a shape of non-negative integers, and
///           data_offsets [begin, end] with end - begin == numel * dtype size; the entries
///           tiling the data section exactly (no gaps, no overlap, nothing after the last);
///           no duplicate keys; "__metadata__", when present, an object of strings; BOOL
///           bytes 0 or 1. Anything else throws drcnn::Error naming the file, the tensor (if
///           any) and what was expected vs found; nothing is read outside the file.
/// Ensures:  every tensor is contiguous on `device` (CUDA tensors are copied from the CPU).
SafetensorsFile load_safetensors(const std::filesystem::path& path, Device device = Device::cpu());

/// Writes `tensors` (any device, any strides: copied to a contiguous CPU buffer as needed)
/// and `metadata` to `path`, as the reference writer does: tensors ordered by dtype (widest
/// first in the reference's dtype order) then by name, data offsets contiguous from 0, the
/// compact JSON header padded with spaces to a multiple of 8 bytes, "__metadata__" first and
/// only when `metadata` is not empty.
/// Atomic: the file is written to a temporary file in the same directory, fsync'ed, then
/// renamed over `path`, so an existing file is either replaced whole or left untouched.
/// Requires: every tensor defined, of a dtype listed for load_safetensors; no tensor named
///           "__metadata__"; names and metadata valid UTF-8.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The safetensors dtype string for `dtype` ("F32", "BF16", "BOOL", ...).
const char* safetensors_dtype_name(DType dtype);

}  // namespace drcnn::io
