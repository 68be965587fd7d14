// Image decoding and encoding: the one translation unit that compiles stb_image (JPEG and PNG
// only) and stb_image_write (Debian's libstb-dev, v2.27 / v1.16). docs/data-images.md.
#include "drcnn/data/image.h"

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include <unistd.h>

#include "drcnn/core/error.h"
#include "file_util.h"

// stb is third-party C written for C and C++: silence the warnings our flags would raise in it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wcast-qual"
// stb_image 2.27's JPEG bit reader shifts by 32 or more on some corrupt streams (found by
// fuzz/fuzz_image.cpp: "shift exponent 35 is too large" in stbi__grow_buffer_unsafe; upstream
// 2.28 added the checks). The shifted bits are garbage that the decoder then rejects or turns
// into garbage pixels; no memory is touched. So that the fuzzer keeps looking for memory errors
// and other undefined behaviour, only the shift check is switched off, and only inside stb.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("shift"))), apply_to = function)
#endif
// stb_image 2.27 mallocs its decoder state (stbi__jpeg, Huffman tables included) without
// clearing it, and a JPEG whose scan names a Huffman table no DHT defined makes it decode with
// those uninitialised tables: the fuzzer found an index of 2046755078 into a 257-entry array in
// stbi__jpeg_huff_decode (a wild read). With zeroed memory an undefined table is all zeros and
// every lookup stays in bounds, so every stb allocation is zero-filled (the pixel buffers too; a
// memset is cheap next to decoding).
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(p, size) std::realloc(p, size)
#define STBI_FREE(p) std::free(p)
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO             // we read files ourselves (errors name the path)
#define STBI_NO_LINEAR            // no float (HDR) API
#define STBI_MAX_DIMENSIONS 65536 // stb's own backstop; DecodeOptions caps far below it first
#define STB_IMAGE_STATIC          // the stbi_* symbols stay private to this file
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif
#pragma GCC diagnostic pop

// decode_image reads stbi_failure_reason() after a failed call on the same thread; that is only
// thread-safe if stb keeps the reason per thread (it does in C++11 unless told otherwise).
#ifndef STBI_THREAD_LOCAL
#error "stb_image without thread-local failure reason: decode_image would not be thread-safe"
#endif

namespace drcnn::data {

Image::Image(int32_t w, int32_t h) : width(w), height(h) {
  DRCNN_CHECK(w >= 0 && h >= 0, "Image: width and height must be >= 0, got ", w, " x ", h);
  pixels.assign(std::size_t(w) * std::size_t(h) * 3, 0);
}

namespace {

bool starts_with(std::span<const uint8_t> b, std::initializer_list<uint8_t> magic) {
  if (b.size() < magic.size()) return false;
  std::size_t i = 0;
  for (uint8_t m : magic) {
    if (b[i++] != m) return false;
  }
  return true;
}

// True if a JPEG's last two bytes are not its end-of-image marker FFD9 (a hint for the error
// message only: stb_image 2.27 itself rejects JPEGs cut anywhere before that marker).
bool jpeg_lacks_end_marker(std::span<const uint8_t> b) {
  return b.size() < 2 || b[b.size() - 2] != 0xFF || b[b.size() - 1] != 0xD9;
}

// stb_image 2.27 (Debian 12) does not check that a JPEG Huffman table (DHT) lists at most 256
// codes: a table whose 16 code counts sum above 256 writes past stbi__huffman::size[257] and
// values[256] (found by fuzz/fuzz_image.cpp under UBSan; upstream 2.28 added the check). We
// refuse such files before stb sees them. To check every table stb would read without rejecting
// valid files for bytes inside other segments, this follows stb's own parse up to the first
// start-of-scan (segments by their lengths; in the header stb skips stray bytes until a 0xFF),
// and from there on checks every FF C4 pair: stb ends entropy-coded data at any FFxx with
// xx != 0, so every FF C4 after a scan may be read as a DHT.
// Returns false if some table stb could read has more than 256 codes.
bool jpeg_huffman_tables_fit(std::span<const uint8_t> b) {
  const std::size_t n = b.size();
  const auto byte = [&](std::size_t i) -> uint32_t { return i < n ? b[i] : 0u; };  // stb reads 0 past the end
  const auto be16 = [&](std::size_t i) { return (byte(i) << 8) | byte(i + 1); };
  // One DHT segment whose length field starts at i, read the way stb 2.27 reads it.
  const auto dht_fits = [&](std::size_t i) {
    int64_t left = int64_t(be16(i)) - 2;
    i += 2;
    while (left > 0) {
      const uint32_t q = byte(i++);
      if ((q >> 4) > 1 || (q & 15) > 3) return true;  // stb stops with "bad DHT header"
      uint32_t codes = 0;
      for (int k = 0; k < 16; ++k) codes += byte(i++);
      if (codes > 256) return false;
      i += codes;
      left -= 17 + int64_t(codes);
      if (i > n + 17) return true;  // far past the end: stb reads zeros, no overflow
    }
    return true;
  };
  const auto is_sof = [](uint32_t m) { return m == 0xC0 || m == 0xC1 || m == 0xC2; };
  std::size_t i = 2;  // after SOI
  bool header = true;  // before SOF stb skips stray bytes; after it a stray byte is an error
  while (i < n) {
    if (b[i] != 0xFF) {
      if (!header) return true;  // stb: "expected marker"
      ++i;
      continue;
    }
    while (i < n && b[i] == 0xFF) ++i;
    if (i >= n) return true;
    const uint32_t m = b[i++];
    if (m == 0xC4) {
      if (!dht_fits(i)) return false;
    } else if (m == 0xD9) {
      return true;
    } else if (m == 0xDA) {
      i += be16(i);  // scan header
      break;
    } else if (!(is_sof(m) || m == 0xDB || m == 0xDD || (m >= 0xE0 && m <= 0xEF) || m == 0xFE)) {
      return true;  // stb: "unknown marker" (or a second SOF): it stops here
    }
    if (is_sof(m)) header = false;
    i += be16(i);  // every segment stb accepts consumes exactly its length
  }
  for (; i + 1 < n; ++i) {
    if (b[i] == 0xFF && b[i + 1] == 0xC4 && !dht_fits(i + 2)) return false;
  }
  return true;
}

// Two PNG chunk problems that stb_image 2.27 mishandles, both found by the fuzzer; nullptr if
// neither is present, else what is wrong. The walk follows chunk lengths (+ 12 bytes of length,
// type and CRC) the way stb does, up to IEND.
// - An empty first IDAT: stb calls memcpy(NULL, ..., 0) (UBSan: "null pointer passed as
//   argument 1"), after which the compiler may assume the pointer non-null and drop stb's later
//   "no IDAT" check. Encoders do not write an empty first IDAT.
// - An IDAT longer than the bytes left: stb grows its buffer to the declared length (up to 4 GB)
//   before finding the data missing; a 600-byte file made it allocate 2 GB.
const char* png_chunk_problem(std::span<const uint8_t> b) {
  const auto be32 = [&](std::size_t i) {
    return (uint64_t(b[i]) << 24) | (uint64_t(b[i + 1]) << 16) | (uint64_t(b[i + 2]) << 8) | b[i + 3];
  };
  bool data_seen = false;
  std::size_t i = 8;  // after the signature
  while (i + 8 <= b.size()) {
    const uint64_t length = be32(i);
    const bool idat = b[i + 4] == 'I' && b[i + 5] == 'D' && b[i + 6] == 'A' && b[i + 7] == 'T';
    const bool iend = b[i + 4] == 'I' && b[i + 5] == 'E' && b[i + 6] == 'N' && b[i + 7] == 'D';
    if (idat) {
      if (length == 0 && !data_seen) return "its first IDAT chunk is empty";
      if (length > b.size() - (i + 8)) {
        return "an IDAT chunk is longer than the data left (truncated file?)";
      }
      data_seen = data_seen || length > 0;
    }
    if (iend || length > b.size()) return nullptr;
    i += 12 + std::size_t(length);
  }
  return nullptr;
}

// stb returns 0 without setting a reason on a few paths (e.g. an IDAT length overflowing int).
const char* failure_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? reason : "no reason given by stb_image";
}

struct StbiFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

void check_encodable(const Image& image, const char* op) {
  DRCNN_CHECK(image.width > 0 && image.height > 0, op, ": the image is empty (", image.width,
              " x ", image.height, ")");
  DRCNN_CHECK(image.pixels.size() == std::size_t(image.width) * std::size_t(image.height) * 3, op,
              ": pixels has ", image.pixels.size(), " bytes, expected width * height * 3 = ",
              std::size_t(image.width) * std::size_t(image.height) * 3);
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, std::span<const uint8_t> bytes,
                           const char* op) {
  // A unique temporary name in the target's directory (rename is atomic only within one
  // file system): ".<name>.tmp.<pid>.<counter>".
  static std::atomic<uint64_t> counter{0};
  // (Appended piece by piece: GCC 12 gives a false -Wrestrict on "." + std::string.)
  std::string name(1, '.');
  name += path.filename().string();
  name += ".tmp.";
  name += std::to_string(::getpid());
  name += '.';
  name += std::to_string(counter.fetch_add(1));
  const std::filesystem::path tmp = path.parent_path() / name;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DRCNN_CHECK(out.good(), op, ": cannot create the temporary file ", tmp.string(), " for ",
                path.string());
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.close();
    if (!out.good()) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      DRCNN_FAIL(op, ": writing ", bytes.size(), " bytes to ", tmp.string(), " for ",
                 path.string(), " failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    DRCNN_FAIL(op, ": cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message());
  }
}

std::string_view sniff_image_format(std::span<const uint8_t> b) {
  if (starts_with(b, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})) return "PNG";
  if (starts_with(b, {0xFF, 0xD8, 0xFF})) return "JPEG";
  if (starts_with(b, {'G', 'I', 'F', '8'})) return "GIF";
  if (starts_with(b, {'B', 'M'})) return "BMP";
  if (starts_with(b, {'I', 'I', 0x2A, 0x00}) || starts_with(b, {'M', 'M', 0x00, 0x2A})) return "TIFF";
  if (b.size() >= 12 && starts_with(b, {'R', 'I', 'F', 'F'}) && b[8] == 'W' && b[9] == 'E' &&
      b[10] == 'B' && b[11] == 'P') {
    return "WebP";
  }
  if (b.size() >= 12 && b[4] == 'f' && b[5] == 't' && b[6] == 'y' && b[7] == 'p') {
    return "HEIF/AVIF (ISO media)";
  }
  if (starts_with(b, {0x00, 0x00, 0x00, 0x0C, 'j', 'P', ' ', ' '}) ||
      starts_with(b, {0xFF, 0x4F, 0xFF, 0x51})) {
    return "JPEG 2000";
  }
  if (starts_with(b, {'8', 'B', 'P', 'S'})) return "PSD";
  if (starts_with(b, {'#', '?'})) return "Radiance HDR";
  if (starts_with(b, {0x00, 0x00, 0x01, 0x00})) return "ICO";
  if (b.size() >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7') return "PNM";
  return "unknown";
}

Image decode_image(std::span<const uint8_t> bytes, std::string_view source,
                   const DecodeOptions& options) {
  DRCNN_CHECK(options.max_dimension > 0 && options.max_pixels > 0,
              "decode_image: DecodeOptions caps must be positive, got max_dimension ",
              options.max_dimension, " and max_pixels ", options.max_pixels);
  DRCNN_CHECK(!bytes.empty(), "decode_image: ", source, " is empty (0 bytes)");
  const std::string_view format = sniff_image_format(bytes);
  DRCNN_CHECK(format == "PNG" || format == "JPEG", "decode_image: ", source, " is ",
              format == "unknown" ? "not an image format we know" : format,
              format == "unknown" ? "" : " data", "; only JPEG and PNG are supported");
  DRCNN_CHECK(bytes.size() <= std::size_t(INT_MAX), "decode_image: ", source, " has ",
              bytes.size(), " bytes, more than stb_image accepts (2^31 - 1)");
  const int len = int(bytes.size());

  DRCNN_CHECK(format != "JPEG" || jpeg_huffman_tables_fit(bytes), "decode_image: ", source,
              " is a corrupt JPEG: a Huffman table (DHT) lists more than 256 codes");
  if (format == "PNG") {
    const char* problem = png_chunk_problem(bytes);
    DRCNN_CHECK(problem == nullptr, "decode_image: ", source, " is a corrupt PNG: ",
                problem ? problem : "");
  }
  // (before stbi_info_from_memory, which parses the JPEG header's tables too)
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(bytes.data(), len, &w, &h, &channels)) {
    DRCNN_FAIL("decode_image: cannot read the ", format, " header of ", source, ": ",
               failure_reason());
  }
  DRCNN_CHECK(w > 0 && h > 0 && w <= options.max_dimension && h <= options.max_dimension,
              "decode_image: ", source, " is ", w, " x ", h, " (", format,
              "), larger than the cap of ", options.max_dimension, " pixels per side");
  DRCNN_CHECK(int64_t(w) * h <= options.max_pixels, "decode_image: ", source, " is ", w, " x ", h,
              " = ", int64_t(w) * h, " pixels, above the cap of ", options.max_pixels);
  int dw = 0, dh = 0, file_channels = 0;
  // Asking for 3 channels makes stb convert grey (copied to RGB), grey+alpha and RGBA (alpha
  // dropped) and 16-bit samples (high byte) for us.
  std::unique_ptr<stbi_uc, StbiFree> data(
      stbi_load_from_memory(bytes.data(), len, &dw, &dh, &file_channels, 3));
  if (!data) {
    const bool cut = format == "JPEG" && jpeg_lacks_end_marker(bytes);
    DRCNN_FAIL("decode_image: cannot decode ", format, " ", source, " (", w, " x ", h, ", ",
               bytes.size(), " bytes): ", failure_reason(),
               cut ? " (the data does not end with the JPEG end-of-image marker: truncated?)" : "");
  }
  DRCNN_CHECK(dw == w && dh == h, "decode_image: ", source, " decoded to ", dw, " x ", dh,
              " but its header says ", w, " x ", h);
  Image image;
  image.width = dw;
  image.height = dh;
  image.pixels.assign(data.get(), data.get() + std::size_t(dw) * std::size_t(dh) * 3);
  return image;
}

Image read_image(const std::filesystem::path& path, const DecodeOptions& options) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  DRCNN_CHECK(in.good(), "read_image: cannot open ", path.string());
  const std::streamsize size = in.tellg();
  DRCNN_CHECK(size >= 0, "read_image: cannot get the size of ", path.string());
  std::vector<uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  DRCNN_CHECK(in.good() || (size == 0 && !in.bad()), "read_image: reading ", size, " bytes of ",
              path.string(), " failed");
  return decode_image(bytes, path.string(), options);
}

void check_image_size(const Image& image, int32_t expected_width, int32_t expected_height,
                      std::string_view source) {
  DRCNN_CHECK(image.width == expected_width && image.height == expected_height,
              "check_image_size: ", source, " is ", image.width, " x ", image.height,
              " (width x height) but the annotation file says ", expected_width, " x ",
              expected_height);
}

std::vector<uint8_t> encode_png(const Image& image) {
  check_encodable(image, "encode_png");
  std::vector<uint8_t> out;
  const int ok = stbi_write_png_to_func(append_bytes, &out, image.width, image.height, 3,
                                        image.pixels.data(), image.width * 3);
  DRCNN_CHECK(ok != 0, "encode_png: stb_image_write failed on a ", image.width, " x ",
              image.height, " image");
  return out;
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  check_encodable(image, "encode_jpeg");
  DRCNN_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be in 1..100, got ",
              quality);
  std::vector<uint8_t> out;
  const int ok = stbi_write_jpg_to_func(append_bytes, &out, image.width, image.height, 3,
                                        image.pixels.data(), quality);
  DRCNN_CHECK(ok != 0, "encode_jpeg: stb_image_write failed on a ", image.width, " x ",
              image.height, " image");
  return out;
}

void write_png(const std::filesystem::path& path, const Image& image) {
  DRCNN_CHECK(image.width > 0 && image.height > 0, "write_png: ", path.string(),
              ": the image is empty (", image.width, " x ", image.height, ")");
  write_file_atomically(path, encode_png(image), "write_png");
}

void write_jpeg(const std::filesystem::path& path, const Image& image, int quality) {
  DRCNN_CHECK(image.width > 0 && image.height > 0, "write_jpeg: ", path.string(),
              ": the image is empty (", image.width, " x ", image.height, ")");
  write_file_atomically(path, encode_jpeg(image, quality), "write_jpeg");
}

}  // namespace drcnn::data
