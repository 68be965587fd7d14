// safetensors reader and writer (include/drcnn/io/safetensors.h, docs/io.md):
// - byte-exact files spelled out by hand from the format specification (header bytes written
//   out here), read and written;
// - a file written by the official `safetensors` package (tests/data/safetensors/, made by
//   tools/make_safetensors_golden.py): every value checked against constants in this file,
//   and our writer reproduces the file byte for byte;
// - round trips of every dtype, 0-d and empty tensors, strided inputs, metadata;
// - every malformed-file rule, each with the message it must give, plus truncation and
//   byte-flip sweeps that must only ever produce drcnn::Error;
// - atomic save: a failed write leaves the old file whole and no temporary behind.
// Comparisons are exact (bytes or bits): the format stores raw bytes, nothing is computed.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common/golden.h"
#include "common/source_dir.h"
#include "drcnn/io/safetensors.h"

using Catch::Contains;
using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::io::load_safetensors;
using drcnn::io::save_safetensors;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system temp dir, removed (with its contents) at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / ("drcnn_st_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

/// Little-endian u64, as the 8-byte length prefix.
std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(n >> (8 * i)));
  return s;
}
/// A whole file: length prefix, header text (used as given, no padding added), data.
std::string file_bytes(const std::string& header, const std::string& data = {}) {
  return le64(header.size()) + header + data;
}

/// The raw bytes of a tensor (copied to a contiguous host buffer).
std::string tensor_bytes(const Tensor& t) {
  const Tensor h = t.to(Device::cpu()).contiguous();
  return std::string(static_cast<const char*>(h.data_ptr()), size_t(h.numel()) * h.element_size());
}
/// A CPU tensor holding exactly `bytes`.
Tensor tensor_from_bytes(const Shape& shape, DType dtype, const std::string& bytes) {
  Tensor t = Tensor::empty(shape, dtype);
  REQUIRE(bytes.size() == size_t(t.numel()) * t.element_size());
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}
template <typename T>
std::string le_bytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());  // the host is little-endian (static_assert in the reader)
  return s;
}

void require_same(const Tensor& got, const Tensor& want) {
  REQUIRE(got.defined());
  CHECK(got.dtype() == want.dtype());
  CHECK(got.shape() == want.shape());
  CHECK(got.is_contiguous());
  CHECK(tensor_bytes(got) == tensor_bytes(want));
}

}  // namespace

// ------------------------------------------------------------------------- format, by hand

TEST_CASE("safetensors: byte-exact files from the format specification", "[io][safetensors]") {
  TempDir dir;
  SECTION("one F32 tensor: header exactly 64 bytes, no padding needed") {
    // {"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}} is 64 characters.
    const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(header.size() == 64);
    const std::string data = le_bytes<float>({0, 1, 2, 3, 4, 5});
    std::string expected = std::string("\x40\0\0\0\0\0\0\0", 8) + header + data;
    // The data section spelled out: 0.0f = 00 00 00 00, 1.0f = 00 00 80 3f, 5.0f = 00 00 a0 40.
    REQUIRE(expected.substr(72 + 4, 4) == std::string("\x00\x00\x80\x3f", 4));
    REQUIRE(expected.substr(72 + 20, 4) == std::string("\x00\x00\xa0\x40", 4));

    save_safetensors(dir / "a.safetensors",
                     {{"attn.0", Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, Shape{1, 2, 3})}});
    CHECK(read_bytes(dir / "a.safetensors") == expected);

    write_bytes(dir / "b.safetensors", expected);
    const auto f = load_safetensors(dir / "b.safetensors");
    REQUIRE(f.tensors.size() == 1);
    CHECK(f.metadata.empty());
    CHECK(f.at("attn.0").shape() == Shape{1, 2, 3});
    CHECK(f.at("attn.0").to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5});
  }
  SECTION("header padded with spaces to a multiple of 8") {
    // 65 characters -> 7 spaces -> 72.
    const std::string json = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(json.size() == 65);
    const std::string expected = std::string("\x48\0\0\0\0\0\0\0", 8) + json + "       " +
                                 le_bytes<float>({0, 1, 2, 3, 4, 5});
    save_safetensors(dir / "a.safetensors",
                     {{"attn0", Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, Shape{1, 1, 2, 3})}});
    CHECK(read_bytes(dir / "a.safetensors") == expected);
    CHECK(load_safetensors(dir / "a.safetensors").at("attn0").shape() == Shape{1, 1, 2, 3});
  }
  SECTION("no tensors: {} and six spaces") {
    const std::string expected = std::string("\x08\0\0\0\0\0\0\0", 8) + "{}      ";
    save_safetensors(dir / "a.safetensors", {});
    CHECK(read_bytes(dir / "a.safetensors") == expected);
    const auto f = load_safetensors(dir / "a.safetensors");
    CHECK(f.tensors.empty());
    CHECK(f.metadata.empty());
  }
  SECTION("metadata only: __metadata__ first, then padding") {
    const std::string json = R"({"__metadata__":{"framework":"pt"}})";
    REQUIRE(json.size() == 35);
    const std::string expected = std::string("\x28\0\0\0\0\0\0\0", 8) + json + "     ";
    save_safetensors(dir / "a.safetensors", {}, {{"framework", "pt"}});
    CHECK(read_bytes(dir / "a.safetensors") == expected);
    const auto f = load_safetensors(dir / "a.safetensors");
    CHECK(f.tensors.empty());
    CHECK(f.metadata == std::map<std::string, std::string>{{"framework", "pt"}});
  }
  SECTION("writer order: widest dtype first, then by name; offsets contiguous") {
    // I64 before F64 before F32 before I32 before BF16 before F16 before U8 before BOOL, as the
    // reference writer sorts (its dtype enum order, descending).
    save_safetensors(dir / "a.safetensors",
                     {{"b", Tensor::from_vector<bool>({true})},
                      {"z", Tensor::from_vector<int64_t>({7})},
                      {"y", Tensor::from_vector<float>({1.0f})},
                      {"x", Tensor::from_vector<float>({2.0f})}});
    const std::string header =
        R"({"z":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
        R"("x":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
        R"("y":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},)"
        R"("b":{"dtype":"BOOL","shape":[1],"data_offsets":[16,17]}})";
    const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
    const std::string expected = le64(padded.size()) + padded + le_bytes<int64_t>({7}) +
                                 le_bytes<float>({2.0f}) + le_bytes<float>({1.0f}) + std::string("\x01", 1);
    CHECK(read_bytes(dir / "a.safetensors") == expected);
  }
  SECTION("reader accepts tensors listed in any order in the header") {
    const std::string header =
        R"({"second":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
        R"("first":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})";
    write_bytes(dir / "a.safetensors", file_bytes(header, le_bytes<int32_t>({-5}) + "\x07\x09"));
    const auto f = load_safetensors(dir / "a.safetensors");
    CHECK(f.at("first").ndim() == 0);
    CHECK(f.at("first").item<int32_t>() == -5);
    CHECK(f.at("second").to_vector<int>() == std::vector<int>{7, 9});
  }
}

// ------------------------------------------------------------------------- the official writer

TEST_CASE("safetensors: reads the official package's file exactly and rewrites it byte for byte",
          "[io][safetensors][golden]") {
  const auto g = drcnn::test::load_golden("safetensors/official_small");
  CHECK_THAT(g.meta("generator"), Contains("tools/make_safetensors_golden.py") && Contains("safetensors 0.8"));
  REQUIRE(g.file.tensors.size() == 10);

  const double inf = std::numeric_limits<double>::infinity();
  require_same(g["f64"], Tensor::from_vector<double>({1.5, -2.25, 1e300, -inf, 0.0, -0.0}, Shape{2, 3}));
  CHECK(std::signbit(g["f64"].to_vector<double>()[5]));  // -0.0 kept (the byte compare checks it too)
  std::vector<float> f32;
  for (int i = 0; i < 12; ++i) f32.push_back(float(i) * 0.25f - 1.0f);  // exact in binary
  require_same(g["f32"], Tensor::from_vector<float>(f32, Shape{3, 4}));
  // The helper other golden tests use (dtypes may differ): f64 values against the f32 golden.
  std::vector<double> f64_values(f32.begin(), f32.end());
  drcnn::test::expect_golden_close("safetensors f32", Tensor::from_vector<double>(f64_values, Shape{3, 4}), g["f32"], 0, 0);
  // f16 and bf16 by bit pattern: signed zero, max, min normal, min subnormal, infinities, NaN.
  require_same(g["f16"], tensor_from_bytes(Shape{10}, DType::Float16,
                                           le_bytes<uint16_t>({0x0000, 0x8000, 0x3c00, 0xc100, 0x7bff, 0x0400,
                                                               0x0001, 0x7c00, 0xfc00, 0x7e00})));
  require_same(g["bf16"], tensor_from_bytes(Shape{7, 1}, DType::BFloat16,
                                            le_bytes<uint16_t>({0x3f80, 0xbf80, 0x4049, 0x3f00, 0x7f80, 0xff80, 0x7fc0})));
  require_same(g["i64"], Tensor::from_vector<int64_t>({std::numeric_limits<int64_t>::min(), -1, 0,
                                                       std::numeric_limits<int64_t>::max()}));
  require_same(g["i32"], Tensor::from_vector<int32_t>({-3, -2, -1, 0, 1, 2}, Shape{2, 3}));
  require_same(g["u8"], Tensor::from_vector<uint8_t>({0, 1, 127, 128, 255}));
  require_same(g["bool"], Tensor::from_vector<bool>({true, false, true, false, false, true}, Shape{2, 3}));
  require_same(g["scalar_f32"], Tensor::from_vector<float>({3.5f}, Shape{}));
  require_same(g["empty_f32"], Tensor::empty(Shape{0, 3}, DType::Float32));

  // Our writer, given what we read, produces the official file byte for byte (same order,
  // same compact JSON, same padding).
  TempDir dir;
  save_safetensors(dir / "rewrite.safetensors", g.file.tensors, g.file.metadata);
  CHECK(read_bytes(dir / "rewrite.safetensors") == read_bytes(g.path));
}

TEST_CASE("safetensors: golden helper names the file and the missing tensor", "[io][safetensors][golden]") {
  REQUIRE_THROWS_WITH(drcnn::test::load_golden("safetensors/no_such_golden"),
                      Contains("no_such_golden.safetensors") && Contains("not found"));
  const auto g = drcnn::test::load_golden("safetensors/official_small");
  REQUIRE_THROWS_WITH(g["nope"], Contains("official_small") && Contains("'nope'") && Contains("f16"));
  REQUIRE_THROWS_WITH(g.meta("nope"), Contains("official_small") && Contains("'nope'"));
  REQUIRE_THROWS_WITH(g.file.at("nope"), Contains("no tensor named 'nope'") && Contains("'bf16'"));
}

// ------------------------------------------------------------------------- round trips

TEST_CASE("safetensors: round trip of every dtype, 0-d, empty and strided tensors, metadata",
          "[io][safetensors]") {
  TempDir dir;
  std::map<std::string, Tensor> in;
  in["f64"] = Tensor::from_vector<double>({1.0 / 3.0, -0.0, 1e-310, std::nan("")}, Shape{2, 2});
  in["f32"] = Tensor::from_vector<float>({1.0f / 3.0f, -7.25f, 1e-40f}, Shape{3, 1});
  in["f16"] = tensor_from_bytes(Shape{2}, DType::Float16, le_bytes<uint16_t>({0x3555, 0x7e01}));
  in["bf16"] = tensor_from_bytes(Shape{1, 3}, DType::BFloat16, le_bytes<uint16_t>({0x3eab, 0x8001, 0xff81}));
  in["i64"] = Tensor::from_vector<int64_t>({-(int64_t(1) << 40), 3});
  in["i32"] = Tensor::from_vector<int32_t>({std::numeric_limits<int32_t>::min(), 0, 17});
  in["u8"] = Tensor::from_vector<uint8_t>({255, 0, 9}, Shape{1, 1, 3});
  in["bool"] = Tensor::from_vector<bool>({false, true, true});
  in["scalar_i64"] = Tensor::from_vector<int64_t>({42}, Shape{});
  in["scalar_bool"] = Tensor::from_vector<bool>({true}, Shape{});
  in["empty_f64"] = Tensor::empty(Shape{0}, DType::Float64);
  in["empty_bf16"] = Tensor::empty(Shape{4, 0, 2}, DType::BFloat16);
  // Strided: a transposed view is written in C order of its own shape.
  in["transposed"] = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, Shape{2, 3}).transpose(0, 1);
  REQUIRE_FALSE(in["transposed"].is_contiguous());
  // Names with dots, unicode and JSON-escaped characters survive.
  in["layer1.0.conv1.weight"] = Tensor::from_vector<float>({0.5f});
  in["\xc3\xa9t\xc3\xa9 \"quoted\"\\\n"] = Tensor::from_vector<int32_t>({1});
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "caf\xc3\xa9 \"x\"\t"}, {"", ""}};

  save_safetensors(dir / "all.safetensors", in, meta);
  const auto out = load_safetensors(dir / "all.safetensors");
  CHECK(out.metadata == meta);
  REQUIRE(out.tensors.size() == in.size());
  for (const auto& [name, t] : in) {
    INFO("tensor " << name);
    REQUIRE(out.contains(name));
    require_same(out.at(name), t);
  }
  CHECK(out.at("transposed").to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});

  // File size = 8 + padded header + every tensor's bytes, no gaps.
  size_t data = 0;
  for (const auto& [name, t] : in) data += size_t(t.numel()) * t.element_size();
  const std::string raw = read_bytes(dir / "all.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[size_t(i)]);
  CHECK(n % 8 == 0);
  CHECK(raw.size() == 8 + n + data);
  CHECK(raw[8] == '{');

  // Saving what was loaded gives the same bytes again.
  save_safetensors(dir / "again.safetensors", out.tensors, out.metadata);
  CHECK(read_bytes(dir / "again.safetensors") == raw);
}

TEST_CASE("safetensors: save rejects what it cannot write, before touching the file", "[io][safetensors]") {
  TempDir dir;
  const auto path = dir / "x.safetensors";
  write_bytes(path, "old");
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"a", Tensor()}}), Contains("tensor 'a' is undefined"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"__metadata__", Tensor::zeros(Shape{1})}}),
                      Contains("reserved"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"bad\xff", Tensor::zeros(Shape{1})}}), Contains("UTF-8"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {}, {{"k", "bad\xc3"}}), Contains("UTF-8"));
  CHECK(read_bytes(path) == "old");
  CHECK(dir.listing() == std::vector<std::string>{"x.safetensors"});
  CHECK(std::string(drcnn::io::safetensors_dtype_name(DType::BFloat16)) == "BF16");
}

// ------------------------------------------------------------------------- malformed files

namespace {
/// Writes `bytes` to a fresh file and requires load_safetensors to throw a message containing
/// the file's path and every one of `parts`.
void require_rejected(const std::string& bytes, const std::vector<std::string>& parts) {
  TempDir dir;
  const auto path = dir / "bad.safetensors";
  write_bytes(path, bytes);
  std::string message;
  try {
    load_safetensors(path);
  } catch (const drcnn::Error& e) {
    message = e.what();
  }
  INFO("message: " << message);
  REQUIRE_FALSE(message.empty());
  CHECK_THAT(message, Contains("load_safetensors: " + path.string()));
  for (const auto& p : parts) CHECK_THAT(message, Contains(p));
}
/// A one-tensor header {"t": {...}} (not padded; the reader does not require padding).
std::string one(const std::string& entry) { return R"({"t":)" + entry + "}"; }
}  // namespace

TEST_CASE("safetensors: malformed length prefix and header", "[io][safetensors][errors]") {
  SECTION("shorter than 8 bytes") {
    require_rejected("", {"file has 0 bytes", "at least 8"});
    require_rejected(std::string("\x02\0\0\0\0", 5), {"file has 5 bytes"});
  }
  SECTION("header length 0") { require_rejected(le64(0), {"header length is 0", "at least 2"}); }
  SECTION("header length beyond the file") {
    require_rejected(le64(100) + "{}", {"header length 100", "larger than the 2 bytes after the length field"});
    require_rejected(le64(~uint64_t(0)) + "{}", {"100 MB limit"});
  }
  SECTION("absurd header length") { require_rejected(le64(100'000'001) + "{}", {"header length 100000001", "100 MB"}); }
  SECTION("not starting with {") {
    require_rejected(file_bytes("[1, 2]  "), {"must start with '{'", "0x5b"});
    require_rejected(file_bytes(" {}     "), {"must start with '{'", "0x20"});
  }
  SECTION("not valid JSON") {
    require_rejected(file_bytes(R"({"t": )"), {"header is not valid JSON"});
    require_rejected(file_bytes(R"({"t": 1} x)"), {"header is not valid JSON"});
    require_rejected(file_bytes("{\"\xff\": 1}"), {"header is not valid JSON"});  // invalid UTF-8
    require_rejected(file_bytes(std::string("{}\0\0\0\0\0\0", 8)), {"header is not valid JSON", "NUL byte at header offset 2"});
    require_rejected(file_bytes(std::string("{}\0garbage", 10)), {"NUL byte"});
  }
  SECTION("duplicate names and keys") {
    const std::string e = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
    require_rejected(file_bytes(R"({"a":)" + e + R"(,"a":)" + e + "}", "\x01"),
                     {"tensor 'a'", "appears more than once"});
    require_rejected(file_bytes(one(R"({"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]})"), "\x01"),
                     {"key \"dtype\" appears twice"});
    require_rejected(file_bytes(R"({"__metadata__":{"k":"1","k":"2"}})"), {"key \"k\" appears twice"});
  }
  SECTION("__metadata__ must map strings to strings") {
    require_rejected(file_bytes(R"({"__metadata__":"x"})"), {"__metadata__: expected an object", "string"});
    require_rejected(file_bytes(R"({"__metadata__":{"k":1}})"), {"value of \"k\"", "expected a string, found 1"});
    require_rejected(file_bytes(R"({"__metadata__":{"k":null}})"), {"value of \"k\"", "found null"});
  }
}

TEST_CASE("safetensors: malformed tensor entries", "[io][safetensors][errors]") {
  const std::string d4(4, '\0'), d8(8, '\0');
  SECTION("the empty string is a valid name, and named in errors") {
    require_rejected(file_bytes(R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", d4),
                     {"tensor '': data_offsets [0,4] span 4 bytes"});
  }
  SECTION("entry not an object") { require_rejected(file_bytes(one("3")), {"tensor 't'", "expected an object", "number"}); }
  SECTION("missing fields") {
    require_rejected(file_bytes(one(R"({"shape":[1],"data_offsets":[0,4]})"), d4), {"tensor 't'", "missing \"dtype\""});
    require_rejected(file_bytes(one(R"({"dtype":"F32","data_offsets":[0,4]})"), d4), {"tensor 't'", "missing \"shape\""});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[1]})"), d4), {"tensor 't'", "missing \"data_offsets\""});
  }
  SECTION("wrong JSON types") {
    require_rejected(file_bytes(one(R"({"dtype":32,"shape":[1],"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "dtype: expected a string", "found 32"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":1,"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "shape: expected an array"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "non-negative integer", "found a JSON string"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[1],"data_offsets":"0,4"})"), d4),
                     {"tensor 't'", "data_offsets: expected [begin, end]"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})"), d4),
                     {"tensor 't'", "expected [begin, end], found [0]"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})"), d8),
                     {"tensor 't'", "expected [begin, end]"});
  }
  SECTION("negative or non-integer dims and offsets") {
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "shape: expected a non-negative integer, found -1"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "non-integer 1.5"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[1.0],"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "non-integer"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,4]})"), d4),
                     {"tensor 't'", "data_offsets: expected a non-negative integer, found -4"});
  }
  SECTION("shape too large") {
    require_rejected(file_bytes(one(R"({"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]})"), "x"),
                     {"tensor 't'", "9 dimensions", "at most 8"});
    require_rejected(file_bytes(one(R"({"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,1]})"), "x"),
                     {"tensor 't'", "does not fit in int64"});
    // 2^32 * 2^32 overflows before the 0 is reached: rejected, as the reference does.
    require_rejected(file_bytes(one(R"({"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})")),
                     {"tensor 't'", "number of elements overflows"});
    // 2^62 elements fit; 2^62 * 8 bytes do not.
    require_rejected(file_bytes(one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})"), d8),
                     {"tensor 't'", "byte size overflows"});
  }
  SECTION("dtypes") {
    require_rejected(file_bytes(one(R"({"dtype":"F128","shape":[1],"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "unknown dtype \"F128\"", "supported: F64, F32, F16, BF16, I64, I32, U8, BOOL"});
    require_rejected(file_bytes(one(R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})"), d4),
                     {"tensor 't'", "unknown dtype \"f32\""});
    for (const char* dt : {"F8_E4M3", "F8_E5M2", "I8", "I16", "U16", "U32", "U64", "C64"}) {
      INFO(dt);
      require_rejected(
          file_bytes(one(std::string(R"({"dtype":")") + dt + R"(","shape":[0],"data_offsets":[0,0]})")),
          {"tensor 't'", std::string("dtype ") + dt + " is a safetensors dtype that drcnn cannot hold"});
    }
  }
  SECTION("BOOL bytes other than 0 and 1") {
    require_rejected(file_bytes(one(R"({"dtype":"BOOL","shape":[3],"data_offsets":[0,3]})"), std::string("\x01\x00\x02", 3)),
                     {"tensor 't'", "BOOL element 2 is byte 2", "expected 0 or 1"});
  }
}

TEST_CASE("safetensors: offsets must tile the data section", "[io][safetensors][errors]") {
  const auto entry = [](const char* name, int begin, int end) {
    return std::string("\"") + name + R"(":{"dtype":"U8","shape":[)" + std::to_string(end - begin) +
           R"(],"data_offsets":[)" + std::to_string(begin) + "," + std::to_string(end) + "]}";
  };
  SECTION("begin > end") {
    require_rejected(file_bytes(one(R"({"dtype":"U8","shape":[0],"data_offsets":[4,0]})"), std::string(4, 'x')),
                     {"tensor 't'", "data_offsets [4,0]: begin > end"});
  }
  SECTION("outside the data section") {
    require_rejected(file_bytes("{" + entry("t", 0, 9) + "}", std::string(8, 'x')),
                     {"tensor 't'", "data_offsets [0,9] reach outside the data section [0, 8)"});
  }
  SECTION("byte span != numel * dtype size") {
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"), std::string(4, 'x')),
                     {"tensor 't'", "span 4 bytes", "shape [2] of F32 needs 2 x 4 = 8 bytes"});
    require_rejected(file_bytes(one(R"({"dtype":"F32","shape":[],"data_offsets":[0,0]})")),
                     {"tensor 't'", "span 0 bytes", "needs 1 x 4 = 4 bytes"});
  }
  SECTION("overlap") {
    require_rejected(file_bytes("{" + entry("a", 0, 8) + "," + entry("b", 4, 12) + "}", std::string(12, 'x')),
                     {"tensor 'b'", "overlap tensor 'a' at [0, 8]"});
    // A zero-byte tensor inside another one overlaps it too (the reference rejects it as well).
    require_rejected(file_bytes("{" + entry("a", 0, 8) + "," + entry("e", 4, 4) + "}", std::string(8, 'x')),
                     {"tensor 'e'", "overlap tensor 'a'"});
  }
  SECTION("gaps") {
    require_rejected(file_bytes("{" + entry("a", 0, 4) + "," + entry("b", 8, 12) + "}", std::string(12, 'x')),
                     {"tensor 'b'", "leave bytes [4, 8)", "expected begin 4"});
    require_rejected(file_bytes("{" + entry("a", 4, 8) + "}", std::string(8, 'x')),
                     {"tensor 'a'", "leave bytes [0, 4)"});
  }
  SECTION("bytes after the last tensor") {
    require_rejected(file_bytes("{" + entry("a", 0, 4) + "}", std::string(8, 'x')),
                     {"data section has 8 bytes but the tensors cover only [0, 4)"});
    require_rejected(file_bytes("{}", "x"), {"data section has 1 bytes", "cover only [0, 0)"});
  }
  SECTION("zero-byte tensors at a boundary are fine") {
    TempDir dir;
    write_bytes(dir / "ok.safetensors",
                file_bytes("{" + entry("a", 0, 4) + "," + entry("e", 4, 4) + "," + entry("f", 0, 0) + "," +
                               entry("b", 4, 6) + "," + entry("z", 6, 6) + "}",
                           "abcdef"));
    const auto f = load_safetensors(dir / "ok.safetensors");
    CHECK(f.tensors.size() == 5);
    CHECK(tensor_bytes(f.at("a")) == "abcd");
    CHECK(tensor_bytes(f.at("b")) == "ef");
    CHECK(f.at("z").numel() == 0);
  }
}

TEST_CASE("safetensors: missing files and directories", "[io][safetensors][errors]") {
  TempDir dir;
  if (!drcnn::cuda::is_available()) {
    write_bytes(dir / "ok.safetensors", file_bytes("{}"));
    REQUIRE_THROWS_WITH(load_safetensors(dir / "ok.safetensors", Device::cuda(0)),
                        Contains("ok.safetensors") && Contains("cannot load onto cuda:0"));
  }
  REQUIRE_THROWS_WITH(load_safetensors(dir / "absent.safetensors"),
                      Contains("absent.safetensors") && Contains("cannot open"));
  REQUIRE_THROWS_WITH(load_safetensors(dir.path), Contains("not a regular file"));
}

TEST_CASE("safetensors: truncated or corrupted files only ever give drcnn::Error", "[io][safetensors][errors]") {
  // Every prefix of a valid file, and the valid file with each header byte replaced by a few
  // hostile values: each load must either succeed or throw drcnn::Error (never crash, never
  // read past the end, never throw anything else). Most variants must fail.
  TempDir dir;
  const std::string good = read_bytes(drcnn::test::golden_path("safetensors/official_small"));
  REQUIRE(good.size() > 100);
  const auto path = dir / "x.safetensors";
  const auto outcome = [&](const std::string& bytes) {
    // Remove, then create: rewriting with O_TRUNC makes ext4 flush on close (auto_da_alloc),
    // which made this test 40x slower.
    fs::remove(path);
    write_bytes(path, bytes);
    try {
      load_safetensors(path);
      return 0;
    } catch (const drcnn::Error&) {
      return 1;
    } catch (...) {
      return 2;
    }
  };
  int other = 0, rejected = 0;
  for (size_t len = 0; len < good.size(); ++len) {
    const int r = outcome(good.substr(0, len));
    other += r == 2;
    rejected += r == 1;
  }
  CHECK(other == 0);
  CHECK(rejected == int(good.size()));  // every strict prefix is invalid
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(good[size_t(i)]);
  int accepted = 0, variants = 0;
  for (size_t i = 0; i < 8 + n; ++i) {
    for (const char c : {'\0', '9', '"', '}', '\xff'}) {
      if (good[i] == c) continue;
      std::string bad = good;
      bad[i] = c;
      const int r = outcome(bad);
      ++variants;
      other += r == 2;
      accepted += r == 0;
    }
  }
  CHECK(other == 0);
  // Accepted: changes inside a name or a metadata string that keep the JSON valid ('9', '}').
  INFO("accepted " << accepted << " of " << variants << " variants");
  CHECK(accepted * 5 < variants);
}

// ------------------------------------------------------------------------- atomic save

TEST_CASE("safetensors: a failed save leaves the existing file whole", "[io][safetensors][atomic]") {
  TempDir dir;
  const auto path = dir / "model.safetensors";
  save_safetensors(path, {{"w", Tensor::from_vector<float>({1, 2, 3})}});
  const std::string old_bytes = read_bytes(path);
  const Tensor big = Tensor::zeros(Shape{64, 1024}, DType::Float32);  // 256 kB

  SECTION("write fails midway (file size limit)") {
    // RLIMIT_FSIZE makes write() fail with EFBIG once the temp file reaches 4 kB: a real
    // mid-write failure, which works even when the tests run as root. Restored afterwards.
    struct LimitGuard {
      rlimit old{};
      void (*old_handler)(int);
      LimitGuard() : old_handler(::signal(SIGXFSZ, SIG_IGN)) {
        ::getrlimit(RLIMIT_FSIZE, &old);
        rlimit lim = old;
        lim.rlim_cur = 4096;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
      }
      ~LimitGuard() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        ::signal(SIGXFSZ, old_handler);
      }
    };
    std::string message;
    {
      LimitGuard guard;
      try {
        save_safetensors(path, {{"w", big}});
      } catch (const drcnn::Error& e) {
        message = e.what();
      }
    }
    INFO(message);
    CHECK_THAT(message, Contains("save_safetensors: " + path.string()) && Contains("write to") &&
                            Contains("existing file, if any, is unchanged"));
  }
  SECTION("rename fails (target replaced by a directory)") {
    const auto dpath = dir / "is_a_dir.safetensors";
    fs::create_directories(dpath / "child");
    REQUIRE_THROWS_WITH(save_safetensors(dpath, {{"w", big}}), Contains("cannot rename"));
    CHECK(fs::is_directory(dpath / "child"));
    fs::remove_all(dpath);
  }
  SECTION("directory not writable") {
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
    if (::geteuid() == 0) {
      WARN("running as root: permissions do not stop writes, so only the other failure modes are tested");
    } else {
      REQUIRE_THROWS_WITH(save_safetensors(path, {{"w", big}}),
                          Contains("cannot create a temporary file in") && Contains("Permission denied"));
    }
    fs::permissions(dir.path, fs::perms::owner_all, fs::perm_options::replace);
  }
  // Whatever failed, the old file is intact and no temporary file was left behind.
  CHECK(read_bytes(path) == old_bytes);
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors"});
  CHECK(load_safetensors(path).at("w").to_vector<float>() == std::vector<float>{1, 2, 3});

  // And a successful save replaces it whole.
  save_safetensors(path, {{"w", big}});
  CHECK(load_safetensors(path).at("w").shape() == Shape{64, 1024});
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("safetensors: a saved file gets the usual permissions, not a temp file's 0600", "[io][safetensors][atomic]") {
  TempDir dir;
  const mode_t old_mask = ::umask(022);
  save_safetensors(dir / "p.safetensors", {});
  ::umask(old_mask);
  struct stat st {};
  REQUIRE(::stat((dir / "p.safetensors").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
}

TEST_CASE("safetensors: every committed golden under tests/data passes the reader's checks", "[io][safetensors][golden]") {
  // The goldens come from several tools/*.py writers; each must be a valid file by every rule
  // above (so a writer bug shows up here, not as a confusing failure in some op's test).
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(drcnn::test::data_dir())) {
    if (e.path().extension() != ".safetensors") continue;
    INFO(e.path().string());
    drcnn::io::SafetensorsFile f;
    REQUIRE_NOTHROW(f = load_safetensors(e.path()));
    CHECK_FALSE(f.tensors.empty());
    ++files;
  }
  CHECK(files >= 1);
}
