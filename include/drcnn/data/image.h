// Images: decoding (stb_image, JPEG and PNG only), encoding (stb_image_write) and the 8-bit RGB
// image type the transforms start from. docs/data-images.md describes the decoder's behaviour.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace drcnn::data {

/// An 8-bit RGB image, row-major HWC: pixel (y, x) channel c is pixels[(y * width + x) * 3 + c].
struct Image {
  int32_t width = 0;
  int32_t height = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int32_t width, int32_t height);  ///< zero-filled; throws on a negative size
  uint8_t* pixel(int32_t y, int32_t x) { return pixels.data() + (int64_t(y) * width + x) * 3; }
  const uint8_t* pixel(int32_t y, int32_t x) const {
    return pixels.data() + (int64_t(y) * width + x) * 3;
  }
  bool empty() const { return width == 0 || height == 0; }
};

struct DecodeOptions {
  /// Largest accepted width or height; larger images are rejected from their header, before any
  /// pixel is decoded.
  int32_t max_dimension = 16384;
  /// Largest accepted width * height (same check, also before decoding): 2^27 pixels is 384 MiB
  /// of RGB, far above any detection dataset and small enough not to exhaust a loader's memory.
  int64_t max_pixels = int64_t(1) << 27;
};

/// The container format named by the first bytes of a file: "PNG", "JPEG", or the name of a
/// format we do not decode ("GIF", "BMP", "TIFF", "WebP", ...) or "unknown".
std::string_view sniff_image_format(std::span<const uint8_t> bytes);

/// Decodes a JPEG or PNG held in memory. Grey, grey+alpha and RGBA become RGB (grey is copied
/// to the three channels; alpha is DROPPED, not blended over any background); 16-bit PNG
/// samples become 8-bit (the high byte). Throws drcnn::Error naming `source_name` on any other
/// format, a corrupt or truncated file (stb_image 2.27 rejects every JPEG or PNG cut short
/// except a PNG missing only IEND's CRC; docs/data-images.md), or a size above the caps. Thread-safe: stb_image's
/// failure reason is thread-local in the build we compile, and no global flag is ever set.
Image decode_image(std::span<const uint8_t> bytes, std::string_view source_name,
                   const DecodeOptions& options = {});
/// Reads and decodes a file (errors name the path).
Image read_image(const std::filesystem::path& path, const DecodeOptions& options = {});

/// Throws drcnn::Error naming `source_name` unless the decoded image is expected_width x
/// expected_height (the size written in the annotation file; detectron2's check_image_size).
void check_image_size(const Image& image, int32_t expected_width, int32_t expected_height,
                      std::string_view source_name);

/// Encodes to PNG / JPEG bytes (JPEG quality 1..100; stb subsamples chroma 4:2:0 at quality
/// <= 90 and keeps it 4:4:4 above).
std::vector<uint8_t> encode_png(const Image& image);
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 95);

/// Writes PNG or JPEG (quality 1..100), atomically: the bytes go to a temporary file in the
/// same directory, which is then renamed over `path`, so a reader never sees a partial file.
/// (No fsync: a power loss may lose the file, never leave a torn one under `path`.)
/// Errors name the path.
void write_png(const std::filesystem::path& path, const Image& image);
void write_jpeg(const std::filesystem::path& path, const Image& image, int quality = 95);

}  // namespace drcnn::data
