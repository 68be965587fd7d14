// safetensors reader and writer (include/drcnn/io/safetensors.h; rules in docs/io.md).
//
// Reading is one sequential pass: 8-byte length, the header, then each tensor's bytes straight
// into its own storage, in offset order. Every number from the header is checked against the
// file size before anything is allocated or read, so a hostile file costs at most its own size
// in memory and never makes us read outside it. The validation follows the reference
// implementation (huggingface/safetensors, safetensors/src/tensor.rs): 100 MB header cap,
// checked shape products, offsets that tile the data section exactly.
// Writing mirrors the reference writer's byte layout (order, compact JSON, space padding), so
// a file we write from the same tensors is byte-identical to the official one
// (tests/io/test_safetensors.cpp checks this against a file from the official package).
#include "drcnn/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

namespace drcnn::io {
namespace fs = std::filesystem;

// The data section is little-endian; we copy it verbatim into tensors. A big-endian port
// would need a byte swap per element here and in the writer.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

/// The reference's cap on the header (MAX_HEADER_SIZE): stops JSON denial of service.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  std::string_view name;
  DType dtype;
  size_t size;
  int rank;  // position in the reference's `enum Dtype` (the writer sorts by it, descending)
};
// Ranks follow the reference's declaration order (BOOL, U8, I8, F8_*, I16, U16, F16, BF16, I32,
// U32, F32, C64, F64, I64, U64): only the relative order of our eight types matters.
constexpr DtypeInfo kDtypes[] = {
    {"BOOL", DType::Bool, 1, 0},       {"U8", DType::UInt8, 1, 1},   {"F16", DType::Float16, 2, 10},
    {"BF16", DType::BFloat16, 2, 11},  {"I32", DType::Int32, 4, 12}, {"F32", DType::Float32, 4, 14},
    {"F64", DType::Float64, 8, 16},    {"I64", DType::Int64, 8, 17},
};
// Valid safetensors dtypes that drcnn's Tensor cannot hold.
constexpr std::string_view kUnsupportedDtypes[] = {"I8",  "I16", "U16", "U32", "U64", "C64",
                                                   "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
                                                   "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2"};
constexpr std::string_view kSupportedList = "F64, F32, F16, BF16, I64, I32, U8, BOOL";

const DtypeInfo* find_dtype(std::string_view name) {
  for (const auto& d : kDtypes)
    if (d.name == name) return &d;
  return nullptr;
}
const DtypeInfo* find_dtype(DType dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return &d;
  return nullptr;
}

std::string errno_text(int err) { return std::string(std::strerror(err)); }

/// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : m_fd(fd) {}
  ~Fd() {
    if (m_fd >= 0) ::close(m_fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return m_fd; }
  void reset(int fd) {
    close_now();
    m_fd = fd;
  }
  /// Closes now and reports close()'s error (0 when fine); later calls do nothing.
  int close_now() {
    const int fd = m_fd;
    m_fd = -1;
    return fd >= 0 && ::close(fd) != 0 ? errno : 0;
  }

 private:
  int m_fd;
};

// ---------------------------------------------------------------------------------- reader

/// Everything the reader reports goes through here: "load_safetensors: <file>[: tensor 'x']: what".
class Reader {
 public:
  explicit Reader(const fs::path& path) : m_path(path) {}

  /// An error about the file as a whole.
  template <typename... Args>
  [[noreturn]] void fail_file(const Args&... what) const {
    DRCNN_FAIL("load_safetensors: ", m_path.string(), ": ", what...);
  }
  /// An error about one tensor (the empty string is a valid tensor name).
  template <typename... Args>
  [[noreturn]] void fail(std::string_view tensor, const Args&... what) const {
    DRCNN_FAIL("load_safetensors: ", m_path.string(), ": tensor '", tensor, "': ", what...);
  }

  /// Reads exactly `n` bytes at the current position.
  void read_exact(int fd, void* dst, uint64_t n, std::string_view what) const {
    auto* p = static_cast<char*>(dst);
    uint64_t done = 0;
    while (done < n) {
      const size_t chunk = size_t(std::min<uint64_t>(n - done, uint64_t(1) << 30));
      const ssize_t r = ::read(fd, p + done, chunk);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail_file("read error while reading ", what, ": ", errno_text(errno));
      if (r == 0)
        fail_file("file ended after ", done, " of the ", n, " bytes of ", what,
             " (was it changed while being read?)");
      done += uint64_t(r);
    }
  }

 private:
  fs::path m_path;
};

struct Entry {
  std::string name;
  const DtypeInfo* dtype = nullptr;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

/// A non-negative JSON integer, or an error saying what `field` held instead.
uint64_t json_uint(const Reader& rd, const std::string& tensor, const json& v, std::string_view field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) rd.fail(tensor, field, ": expected a non-negative integer, found ", v.dump());
  if (v.is_number_float())
    rd.fail(tensor, field, ": expected a non-negative integer, found the non-integer ", v.dump());
  rd.fail(tensor, field, ": expected a non-negative integer, found a JSON ", v.type_name());
}

Entry parse_entry(const Reader& rd, const std::string& name, const json& v, uint64_t data_bytes) {
  if (!v.is_object())
    rd.fail(name, "expected an object {\"dtype\", \"shape\", \"data_offsets\"}, found a JSON ", v.type_name());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field)) rd.fail(name, "missing \"", field, "\" (found ", v.dump(), ")");
  Entry e;
  e.name = name;

  const json& dt = v.at("dtype");
  if (!dt.is_string()) rd.fail(name, "dtype: expected a string such as \"F32\", found ", dt.dump());
  const auto& dts = dt.get_ref<const std::string&>();
  e.dtype = find_dtype(dts);
  if (e.dtype == nullptr) {
    for (auto u : kUnsupportedDtypes)
      if (u == dts)
        rd.fail(name, "dtype ", dts, " is a safetensors dtype that drcnn cannot hold (supported: ",
                kSupportedList, ")");
    rd.fail(name, "unknown dtype \"", dts, "\" (supported: ", kSupportedList, ")");
  }

  const json& sh = v.at("shape");
  if (!sh.is_array()) rd.fail(name, "shape: expected an array of non-negative integers, found ", sh.dump());
  if (sh.size() > size_t(kMaxDims))
    rd.fail(name, "shape ", sh.dump(), " has ", sh.size(), " dimensions; drcnn supports at most ", kMaxDims);
  // numel with checked multiplication (as the reference): a product that overflows is an
  // error even when a later extent is 0, so Shape::numel() can never overflow either.
  uint64_t numel = 1;
  for (const json& d : sh) {
    const uint64_t extent = json_uint(rd, name, d, "shape");
    if (extent > uint64_t(std::numeric_limits<int64_t>::max()))
      rd.fail(name, "shape ", sh.dump(), ": extent ", extent, " does not fit in int64");
    if (__builtin_mul_overflow(numel, extent, &numel) || numel > uint64_t(std::numeric_limits<int64_t>::max()))
      rd.fail(name, "shape ", sh.dump(), ": the number of elements overflows 64 bits");
    e.shape.push_back(int64_t(extent));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, uint64_t(e.dtype->size), &nbytes))
    rd.fail(name, "shape ", sh.dump(), " with dtype ", dts, ": the byte size overflows 64 bits");

  const json& off = v.at("data_offsets");
  if (!off.is_array() || off.size() != 2)
    rd.fail(name, "data_offsets: expected [begin, end], found ", off.dump());
  e.begin = json_uint(rd, name, off[0], "data_offsets");
  e.end = json_uint(rd, name, off[1], "data_offsets");
  if (e.begin > e.end) rd.fail(name, "data_offsets ", off.dump(), ": begin > end");
  if (e.end > data_bytes)
    rd.fail(name, "data_offsets ", off.dump(), " reach outside the data section [0, ", data_bytes, ")");
  if (e.end - e.begin != nbytes)
    rd.fail(name, "data_offsets ", off.dump(), " span ", e.end - e.begin, " bytes, but shape ", sh.dump(),
            " of ", dts, " needs ", numel, " x ", e.dtype->size, " = ", nbytes, " bytes");
  return e;
}

/// Parses the header text; duplicate keys (at any depth) are errors, not "last one wins".
json parse_header(const Reader& rd, const std::string& text) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::optional<std::string> duplicate;
  bool duplicate_top = false;
  const json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    if (ev == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (ev == json::parse_event_t::key && !keys.empty() && !duplicate) {
      auto k = parsed.get<std::string>();
      if (!keys.back().insert(k).second) {
        duplicate = std::move(k);
        duplicate_top = keys.size() == 1;
      }
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb);
  } catch (const json::exception& e) {
    rd.fail_file("header is not valid JSON: ", e.what());
  }
  if (duplicate) {
    if (duplicate_top) rd.fail(*duplicate, "the name appears more than once in the header");
    rd.fail_file("key \"", *duplicate, "\" appears twice in the same object of the header");
  }
  if (!j.is_object()) rd.fail_file("header: expected a JSON object, found a JSON ", j.type_name());
  return j;
}

}  // namespace

const Tensor& SafetensorsFile::at(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it != tensors.end()) return it->second;
  std::string names;
  for (const auto& [n, t] : tensors) names += (names.empty() ? "'" : ", '") + n + "'";
  DRCNN_FAIL("SafetensorsFile::at: no tensor named '", name, "'; the file has ", tensors.size(),
             " tensors: ", names.empty() ? std::string("(none)") : names);
}

const char* safetensors_dtype_name(DType dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  DRCNN_CHECK(d != nullptr, "safetensors_dtype_name: dtype ", dtype, " has no safetensors name");
  return d->name.data();  // the string_views view NUL-terminated literals
}

SafetensorsFile load_safetensors(const fs::path& path, Device device) {
  const Reader rd(path);
  if (device.is_cuda() && cuda::device_count() == 0)  // say so before reading a large file
    rd.fail_file("cannot load onto ", device, ": ", cuda::unavailable_reason());
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) rd.fail_file("cannot open: ", errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) rd.fail_file("cannot stat: ", errno_text(errno));
  if (!S_ISREG(st.st_mode)) rd.fail_file("not a regular file");
  const auto file_bytes = uint64_t(st.st_size);

  if (file_bytes < 8) rd.fail_file("file has ", file_bytes, " bytes; a safetensors file has at least 8 (the header length)");
  unsigned char len_bytes[8];
  rd.read_exact(fd.get(), len_bytes, 8, "the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];  // little-endian u64
  if (n > kMaxHeaderBytes)
    rd.fail_file("header length ", n, " is larger than the 100 MB limit (", kMaxHeaderBytes, " bytes)");
  if (n > file_bytes - 8)
    rd.fail_file("header length ", n, " is larger than the ", file_bytes - 8, " bytes after the length field");
  if (n < 2) rd.fail_file("header length is ", n, "; expected at least 2 (the smallest header is \"{}\")");

  std::string text(size_t(n), '\0');
  rd.read_exact(fd.get(), text.data(), n, "the header");
  if (text[0] != '{')
    rd.fail_file("header must start with '{', found byte 0x", fmt::format("{:02x}", uint8_t(text[0])));
  // nlohmann's lexer takes a NUL byte for the end of input, so "{...}\0<anything>" would parse.
  // A NUL is never valid in JSON text (the reference rejects it too): refuse it here.
  if (const auto nul = text.find('\0'); nul != std::string::npos)
    rd.fail_file("header is not valid JSON: NUL byte at header offset ", nul, " (padding must be spaces)");
  const json header = parse_header(rd, text);
  const uint64_t data_bytes = file_bytes - 8 - n;

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        rd.fail_file("__metadata__: expected an object of string values, found a JSON ", value.type_name());
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          rd.fail_file("__metadata__: value of \"", mk, "\": expected a string, found ", mv.dump());
        out.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    entries.push_back(parse_entry(rd, key, value, data_bytes));
  }

  // The entries must tile [0, data_bytes) in offset order: no overlap, no hole, nothing after
  // the last (the reference's rule; it keeps a file from hiding unindexed bytes). Zero-byte
  // tensors sort before a tensor starting at the same offset.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  uint64_t expected = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < expected)
      rd.fail(e.name, "data_offsets [", e.begin, ", ", e.end, "] overlap tensor '", prev->name, "' at [",
              prev->begin, ", ", prev->end, "]");
    if (e.begin > expected)
      rd.fail(e.name, "data_offsets [", e.begin, ", ", e.end, "] leave bytes [", expected, ", ", e.begin,
              ") of the data section unused; expected begin ", expected, " (tensors must be contiguous)");
    expected = e.end;
    prev = &e;
  }
  if (expected != data_bytes)
    rd.fail_file("the data section has ", data_bytes, " bytes but the tensors cover only [0, ", expected,
            "); expected the last tensor to end at ", data_bytes);

  // One pass over the data section, in offset order, straight into each tensor's storage.
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype->dtype, Device::cpu());
    const uint64_t bytes = e.end - e.begin;
    if (bytes > 0) rd.read_exact(fd.get(), t.data_ptr(), bytes, fmt::format("tensor '{}'", e.name));
    if (e.dtype->dtype == DType::Bool) {
      // Any other byte is not a valid C++ bool (undefined behaviour to read as one).
      const auto* p = static_cast<const uint8_t*>(t.data_ptr());
      for (uint64_t i = 0; i < bytes; ++i)
        if (p[i] > 1) rd.fail(e.name, "BOOL element ", i, " is byte ", int(p[i]), "; expected 0 or 1");
    }
    out.tensors.emplace(e.name, device.is_cpu() ? std::move(t) : t.to(device));
  }
  return out;
}

// ---------------------------------------------------------------------------------- writer
namespace {

/// A temporary file next to `target`, renamed over it by commit(); removed if never committed.
class AtomicFile {
 public:
  explicit AtomicFile(const fs::path& target) : m_target(target), m_fd(-1) {
    m_dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; attempt < 100; ++attempt) {
      m_tmp = m_dir / fmt::format(".{}.tmp.{}.{}", target.filename().string(), ::getpid(), counter++);
      // 0666 and the process umask: the same permissions as a plainly created file.
      const int fd = ::open(m_tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) {
        m_fd.reset(fd);
        return;
      }
      if (errno != EEXIST)
        fail("cannot create a temporary file in ", m_dir.string(), ": ", errno_text(errno));
    }
    fail("cannot create a temporary file in ", m_dir.string(), ": too many name collisions");
  }
  ~AtomicFile() {
    if (!m_committed) {
      m_fd.close_now();
      ::unlink(m_tmp.c_str());  // best effort; nothing to report from a destructor
    }
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, uint64_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(m_fd.get(), p, size_t(std::min<uint64_t>(n, uint64_t(1) << 30)));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("write to ", m_tmp.string(), " failed: ", errno_text(errno));
      p += w;
      n -= uint64_t(w);
    }
  }

  /// fsync, close, rename over the target, then fsync the directory so the rename is durable.
  void commit() {
    if (::fsync(m_fd.get()) != 0) fail("fsync of ", m_tmp.string(), " failed: ", errno_text(errno));
    if (const int err = m_fd.close_now(); err != 0) fail("close of ", m_tmp.string(), " failed: ", errno_text(err));
    if (::rename(m_tmp.c_str(), m_target.c_str()) != 0)
      fail("cannot rename ", m_tmp.string(), " to it: ", errno_text(errno));
    m_committed = true;
    Fd dir(::open(m_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() >= 0) ::fsync(dir.get());  // some filesystems refuse; the data itself is synced
  }

  template <typename... Args>
  [[noreturn]] void fail(const Args&... what) const {
    DRCNN_FAIL("save_safetensors: ", m_target.string(), ": ", what..., " (the existing file, if any, is unchanged)");
  }

 private:
  fs::path m_target, m_dir, m_tmp;
  Fd m_fd;
  bool m_committed = false;
};

}  // namespace

void save_safetensors(const fs::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    const Tensor* tensor;
    const DtypeInfo* info;
  };
  std::vector<Item> items;
  for (const auto& [name, t] : tensors) {
    DRCNN_CHECK(name != "__metadata__", "save_safetensors: ", path.string(),
                ": \"__metadata__\" is reserved for the metadata and cannot name a tensor");
    DRCNN_CHECK(t.defined(), "save_safetensors: ", path.string(), ": tensor '", name, "' is undefined");
    const DtypeInfo* info = find_dtype(t.dtype());
    DRCNN_CHECK(info != nullptr, "save_safetensors: ", path.string(), ": tensor '", name, "' has dtype ",
                t.dtype(), ", which has no safetensors name");
    items.push_back({&name, &t, info});
  }
  // The reference writer's order: widest dtype first (descending enum order), then by name.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.info->rank != b.info->rank ? a.info->rank > b.info->rank : *a.name < *b.name;
  });

  // Compact JSON in the reference's field order; ordered_json keeps insertion order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const Item& it : items) {
    std::vector<uint64_t> shape;
    for (int64_t d : it.tensor->shape()) shape.push_back(uint64_t(d));
    const uint64_t bytes = uint64_t(it.tensor->numel()) * it.info->size;
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = it.info->name;
    e["shape"] = shape;
    e["data_offsets"] = {offset, offset + bytes};
    header[*it.name] = std::move(e);
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // invalid UTF-8 in a name or value
    DRCNN_FAIL("save_safetensors: ", path.string(), ": a tensor name or metadata entry is not valid UTF-8 (",
               e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  AtomicFile file(path);
  file.write(len_bytes, 8);
  file.write(text.data(), text.size());
  for (const Item& it : items) {
    if (it.tensor->numel() == 0) continue;
    // One tensor at a time on the host: a model on the GPU never needs a second full copy.
    const Tensor host = it.tensor->to(Device::cpu()).contiguous();
    file.write(host.data_ptr(), uint64_t(host.numel()) * it.info->size);
  }
  file.commit();
}

}  // namespace drcnn::io
