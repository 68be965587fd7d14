// Private helpers of src/data (not installed).
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>

namespace drcnn::data {

/// Writes `bytes` to a unique temporary file in path's directory, then renames it over `path`
/// (atomic within one file system: readers see the old file or the whole new one, never a part;
/// no fsync). Throws drcnn::Error naming `op` and the path; the temporary is removed on failure.
void write_file_atomically(const std::filesystem::path& path, std::span<const uint8_t> bytes,
                           const char* op);

}  // namespace drcnn::data
