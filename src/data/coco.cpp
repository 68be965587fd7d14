// parse_coco / load_coco: COCO annotation JSON with simdjson On-Demand in one forward pass.
// Keys may come in any order; unknown keys are kept as raw JSON (CocoImage::extra_json, ...).
// Every error names the source, the record and the problem (docs/data.md lists the rules).
#include "drcnn/data/coco.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>

#include "drcnn/core/error.h"

namespace drcnn::data {
namespace {

namespace od = simdjson::ondemand;

/// Which record an error belongs to: "annotations[12] (id 5)", "images[3]", or the top level.
struct Rec {
  const char* list = nullptr;  ///< "images", "annotations", "categories"; nullptr: top level
  std::size_t index = 0;
  bool has_id = false;
  int64_t id = 0;
};

std::string describe(const Rec& r) {
  if (!r.list) return "top level";
  std::string s = fmt::format("{}[{}]", r.list, r.index);
  if (r.has_id) s += fmt::format(" (id {})", r.id);
  return s;
}

const char* type_name(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "an array";
    case od::json_type::object: return "an object";
    case od::json_type::number: return "a number";
    case od::json_type::string: return "a string";
    case od::json_type::boolean: return "a boolean";
    case od::json_type::null: return "null";
  }
  return "an unknown value";
}

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

class CocoParser {
 public:
  CocoParser(std::string_view source, const CocoParseOptions& options, const char* buf, std::size_t len)
      : source_(source), options_(options), buf_(buf), len_(len) {}

  CocoFile run() {
    out_.source = std::string(source_);
    od::document doc;
    const simdjson::error_code e = parser_.iterate(buf_, len_, len_ + simdjson::SIMDJSON_PADDING).get(doc);
    if (e) malformed(Rec{}, e, "");
    doc_ = &doc;
    od::json_type t;
    check(doc.type().get(t), Rec{}, "");
    if (t != od::json_type::object)
      fail(Rec{}, fmt::format("the top-level value must be an object, found {}", type_name(t)));
    od::object top;
    check(doc.get_object().get(top), Rec{}, "");
    unsigned seen = 0;
    for (auto f : top) {
      od::field field;
      check(std::move(f).get(field), Rec{}, "");
      std::string_view key;
      check(field.unescaped_key().get(key), Rec{}, "");
      od::value v = field.value();
      const auto once = [&](unsigned bit) {
        if (seen & bit) fail(Rec{}, fmt::format("duplicate key \"{}\"", key));
        seen |= bit;
      };
      if (key == "images") {
        once(1);
        parse_images(v);
      } else if (key == "annotations") {
        once(2);
        parse_annotations(v);
      } else if (key == "categories") {
        once(4);
        parse_categories(v);
      } else if (key == "info") {
        once(8);
        out_.info_json = std::string(raw_value(v, Rec{}, key));
      } else if (key == "licenses") {
        once(16);
        out_.licenses_json = std::string(raw_value(v, Rec{}, key));
      }
      // Other top-level keys (e.g. "type" in old files) are skipped.
    }
    // Anything left after the top-level object (current_location() fails only at the end).
    const char* rest = nullptr;
    if (!doc.current_location().get(rest)) malformed(Rec{}, simdjson::TRAILING_CONTENT, "");
    if (!(seen & 1)) fail(Rec{}, "missing field \"images\"");
    if (!(seen & 4)) fail(Rec{}, "missing field \"categories\"");
    validate();
    doc_ = nullptr;
    return std::move(out_);
  }

 private:
  // ---------------------------------------------------------------- errors
  [[noreturn]] void fail(const Rec& r, std::string_view what) const {
    DRCNN_FAIL("parse_coco: ", source_, ": ", describe(r), ": ", what);
  }

  [[noreturn]] void malformed(const Rec& r, simdjson::error_code e, std::string_view field) const {
    std::string where;
    const char* loc = nullptr;
    if (doc_ && !doc_->current_location().get(loc) && loc >= buf_ && loc <= buf_ + len_) {
      const std::size_t off = std::size_t(loc - buf_);
      std::size_t line = 1, col = 1;
      for (std::size_t i = 0; i < off; ++i) {
        if (buf_[i] == '\n') {
          ++line;
          col = 1;
        } else {
          ++col;
        }
      }
      where = fmt::format(" at byte {} (line {}, column {})", off, line, col);
    }
    std::string in = field.empty() ? std::string() : fmt::format(" in \"{}\"", field);
    DRCNN_FAIL("parse_coco: ", source_, ": malformed JSON", where, " while reading ", describe(r), in,
               ": ", simdjson::error_message(e));
  }

  void check(simdjson::error_code e, const Rec& r, std::string_view field) const {
    if (e) [[unlikely]]
      malformed(r, e, field);
  }

  od::json_type expect(od::value& v, od::json_type want, const Rec& r, std::string_view field,
                       const char* want_name) const {
    od::json_type t;
    check(v.type().get(t), r, field);
    if (t != want) {
      // type() looks at the first byte only: "tru" would pass for a boolean. Malformed beats
      // wrong type.
      if (t != od::json_type::array && t != od::json_type::object) validate_scalar(v, t, r, field);
      fail(r, fmt::format("\"{}\" must be {}, found {}", field, want_name, type_name(t)));
    }
    return t;
  }

  void validate_scalar(od::value& v, od::json_type t, const Rec& r, std::string_view field) const {
    if (t == od::json_type::number) {
      double d;
      check(v.get_double().get(d), r, field);
    } else if (t == od::json_type::string) {
      std::string_view str;
      check(v.get_string().get(str), r, field);
    } else if (t == od::json_type::boolean) {
      bool b;
      check(v.get_bool().get(b), r, field);
    } else {
      bool null = false;
      check(v.is_null().get(null), r, field);
      if (!null) malformed(r, simdjson::N_ATOM_ERROR, field);
    }
  }

  // ---------------------------------------------------------------- scalars
  double number(od::value& v, const Rec& r, std::string_view field) const {
    expect(v, od::json_type::number, r, field, "a number");
    double d;
    check(v.get_double().get(d), r, field);
    if (!std::isfinite(d)) fail(r, fmt::format("\"{}\" is not a finite number", field));
    return d;
  }

  int64_t integer(od::value& v, const Rec& r, std::string_view field) const {
    expect(v, od::json_type::number, r, field, "an integer");
    od::number n;
    check(v.get_number().get(n), r, field);
    if (n.is_int64()) return n.get_int64();
    if (n.is_uint64())
      fail(r, fmt::format("\"{}\" = {} does not fit in a signed 64-bit integer", field, n.get_uint64()));
    const double d = n.get_double();
    // An integral float (3.0) is accepted: Python compares it equal to 3.
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.2e18) return int64_t(d);
    fail(r, fmt::format("\"{}\" must be an integer, found {}", field, d));
  }

  std::string string(od::value& v, const Rec& r, std::string_view field) const {
    expect(v, od::json_type::string, r, field, "a string");
    std::string_view s;
    check(v.get_string().get(s), r, field);
    return std::string(s);
  }

  int32_t image_dim(od::value& v, const Rec& r, std::string_view field) const {
    const int64_t x = integer(v, r, field);
    if (x < 0) fail(r, fmt::format("negative image {} {}", field, x));
    if (x > INT32_MAX) fail(r, fmt::format("image {} {} is too large", field, x));
    return int32_t(x);
  }

  /// Reads (validates) any value, depth first: raw_json() alone would skip nested values
  /// without checking them.
  void walk(od::value& v, const Rec& r, std::string_view field) const {
    od::json_type t;
    check(v.type().get(t), r, field);
    if (t == od::json_type::array) {
      od::array a;
      check(v.get_array().get(a), r, field);
      for (auto elem : a) {
        od::value ev;
        check(std::move(elem).get(ev), r, field);
        walk(ev, r, field);
      }
    } else if (t == od::json_type::object) {
      od::object o;
      check(v.get_object().get(o), r, field);
      for (auto f : o) {
        od::field fl;
        check(std::move(f).get(fl), r, field);
        std::string_view key;
        check(fl.unescaped_key().get(key), r, field);
        walk(fl.value(), r, field);
      }
    } else {
      validate_scalar(v, t, r, field);
    }
  }

  /// The text of the value the iterator stood on when `start` was taken, up to where it stands
  /// now (the next ',', '}' or ']'), without trailing whitespace.
  std::string_view span_from(std::string_view start, const Rec& r, std::string_view field) const {
    const char* end = nullptr;
    check(doc_->current_location().get(end), r, field);
    return rtrim(std::string_view(start.data(), std::size_t(end - start.data())));
  }

  /// The raw JSON text of any value (validated and consumed).
  std::string_view raw_value(od::value& v, const Rec& r, std::string_view field) const {
    const std::string_view start = v.raw_json_token();
    walk(v, r, field);
    return span_from(start, r, field);
  }

  /// Appends `"key": value` (as written) to `extra`, after a comma unless it is the record's
  /// first (the record's text starts at extra[begin]). `key_start` points at the key's quote.
  void append_extra(std::string& extra, std::size_t begin, const char* key_start, od::value& v,
                    const Rec& r, std::string_view field) const {
    const std::string_view raw = raw_value(v, r, field);
    if (extra.size() != begin) extra += ',';
    extra.append(key_start, std::size_t(raw.data() + raw.size() - key_start));
  }

  /// Iterates an array of objects, calling fn(object, index) for each.
  template <typename Fn>
  void for_each_object(od::value& v, const char* list, Fn&& fn) {
    const Rec top{};
    expect(v, od::json_type::array, top, list, "an array");
    od::array arr;
    check(v.get_array().get(arr), top, list);
    std::size_t i = 0;
    for (auto elem : arr) {
      Rec r{list, i, false, 0};
      od::value ev;
      check(std::move(elem).get(ev), r, "");
      od::json_type t;
      check(ev.type().get(t), r, "");
      if (t != od::json_type::object) fail(r, fmt::format("must be an object, found {}", type_name(t)));
      od::object obj;
      check(ev.get_object().get(obj), r, "");
      fn(obj, r);
      ++i;
    }
  }

  /// Iterates an object's members: fn(key, key_start, value) returns the key's bit among the
  /// known keys (0 for others); a known key given twice is an error. Returns the bits seen.
  template <typename Fn>
  unsigned for_each_field(od::object& obj, const Rec& r, Fn&& fn) const {
    unsigned seen = 0;
    for (auto f : obj) {
      od::field field;
      check(std::move(f).get(field), r, "");
      const char* key_start = field.key().raw() - 1;  // the opening quote
      std::string_view key;
      check(field.unescaped_key().get(key), r, "");
      const unsigned bit = fn(key, key_start, field.value());
      if (seen & bit) fail(r, fmt::format("duplicate key \"{}\"", key));
      seen |= bit;
    }
    return seen;
  }

  void require(unsigned seen, std::initializer_list<const char*> names, const Rec& r) const {
    unsigned bit = 1;
    for (const char* name : names) {
      if (!(seen & bit)) fail(r, fmt::format("missing field \"{}\"", name));
      bit <<= 1;
    }
  }

  void set_id(Rec& r, int64_t id) const {
    r.has_id = true;
    r.id = id;
  }

  // ---------------------------------------------------------------- records
  void parse_images(od::value& v) {
    for_each_object(v, "images", [&](od::object& obj, Rec& r) {
      CocoImage im;
      const unsigned seen = for_each_field(obj, r, [&](std::string_view key, const char* key_start, od::value& fv) {
        if (key == "id") {
          set_id(r, im.id = integer(fv, r, key));
          return 1u;
        }
        if (key == "width") {
          im.width = image_dim(fv, r, key);
          return 2u;
        }
        if (key == "height") {
          im.height = image_dim(fv, r, key);
          return 4u;
        }
        if (key == "file_name") {
          im.file_name = string(fv, r, key);
          return 8u;
        }
        append_extra(im.extra_json, 0, key_start, fv, r, key);
        return 0u;
      });
      require(seen, {"id", "width", "height", "file_name"}, r);
      out_.images.push_back(std::move(im));
    });
  }

  void parse_categories(od::value& v) {
    for_each_object(v, "categories", [&](od::object& obj, Rec& r) {
      CocoCategory c;
      const unsigned seen = for_each_field(obj, r, [&](std::string_view key, const char* key_start, od::value& fv) {
        if (key == "id") {
          set_id(r, c.id = integer(fv, r, key));
          return 1u;
        }
        if (key == "name") {
          c.name = string(fv, r, key);
          return 2u;
        }
        if (key == "supercategory") {
          c.supercategory = string(fv, r, key);
          return 4u;
        }
        append_extra(c.extra_json, 0, key_start, fv, r, key);
        return 0u;
      });
      require(seen, {"id", "name"}, r);
      out_.categories.push_back(std::move(c));
    });
  }

  void parse_bbox(od::value& v, const Rec& r, std::array<double, 4>& box) const {
    expect(v, od::json_type::array, r, "bbox", "an array of 4 numbers");
    od::array arr;
    check(v.get_array().get(arr), r, "bbox");
    std::size_t n = 0;
    for (auto elem : arr) {
      od::value ev;
      check(std::move(elem).get(ev), r, "bbox");
      if (n >= 4) fail(r, "\"bbox\" has more than 4 numbers");
      box[n++] = number(ev, r, "bbox");
    }
    if (n != 4) fail(r, fmt::format("\"bbox\" has {} numbers, expected 4 (x, y, width, height)", n));
  }

  /// Validates a segmentation (list of polygons of numbers, or an RLE object with "counts" and
  /// "size") while reading it, and returns its raw text.
  std::string_view parse_segmentation(od::value& v, const Rec& r) const {
    static constexpr std::string_view field = "segmentation";
    const std::string_view start_tok = v.raw_json_token();
    od::json_type t;
    check(v.type().get(t), r, field);
    if (t == od::json_type::array) {
      od::array polys;
      check(v.get_array().get(polys), r, field);
      for (auto p : polys) {
        od::value pv;
        check(std::move(p).get(pv), r, field);
        expect(pv, od::json_type::array, r, field, "a list of polygons (arrays of numbers)");
        od::array poly;
        check(pv.get_array().get(poly), r, field);
        for (auto x : poly) {
          // The hot loop of a COCO file (most of its numbers): one get_double, and the typed
          // error only when it fails.
          od::value xv;
          check(std::move(x).get(xv), r, field);
          double d;
          const simdjson::error_code e = xv.get_double().get(d);
          if (e == simdjson::INCORRECT_TYPE) number(xv, r, field);
          check(e, r, field);
        }
      }
    } else if (t == od::json_type::object) {
      od::object rle;
      check(v.get_object().get(rle), r, field);
      bool has_counts = false, has_size = false;
      for (auto f : rle) {
        od::field fl;
        check(std::move(f).get(fl), r, field);
        std::string_view key;
        check(fl.unescaped_key().get(key), r, field);
        od::value fv = fl.value();
        if (key == "counts") {
          has_counts = true;
          od::json_type ct;
          check(fv.type().get(ct), r, field);
          if (ct == od::json_type::string) {
            std::string_view s;
            check(fv.get_string().get(s), r, field);
          } else if (ct == od::json_type::array) {
            od::array counts;
            check(fv.get_array().get(counts), r, field);
            for (auto c : counts) {
              od::value cv;
              check(std::move(c).get(cv), r, field);
              if (integer(cv, r, "segmentation.counts") < 0)
                fail(r, "\"segmentation.counts\" has a negative run length");
            }
          } else {
            fail(r, fmt::format("\"segmentation.counts\" must be a string or an array of integers, found {}",
                                type_name(ct)));
          }
        } else if (key == "size") {
          has_size = true;
          expect(fv, od::json_type::array, r, "segmentation.size", "an array [height, width]");
          od::array sz;
          check(fv.get_array().get(sz), r, field);
          std::size_t n = 0;
          for (auto s : sz) {
            od::value sv;
            check(std::move(s).get(sv), r, field);
            if (integer(sv, r, "segmentation.size") < 0) fail(r, "\"segmentation.size\" is negative");
            ++n;
          }
          if (n != 2) fail(r, fmt::format("\"segmentation.size\" has {} numbers, expected 2", n));
        } else {
          walk(fv, r, field);
        }
      }
      if (!has_counts || !has_size)
        fail(r, "\"segmentation\" RLE object needs \"counts\" and \"size\"");
    } else {
      fail(r, fmt::format("\"segmentation\" must be a list of polygons or an RLE object, found {}",
                          type_name(t)));
    }
    return span_from(start_tok, r, field);
  }

  void parse_annotations(od::value& v) {
    CocoAnnotations& a = out_.annotations;
    // The segmentation text is most of a COCO file: reserve the input's size once instead of
    // letting the string double (each doubling copies it, and the old and new buffers coexist).
    // Pages never written stay virtual, so the unused tail costs no resident memory.
    a.segmentation_json.reserve(a.segmentation_json.size() + len_);
    a.segmentation_offsets.push_back(0);
    a.extra_offsets.push_back(0);
    for_each_object(v, "annotations", [&](od::object& obj, Rec& r) {
      int64_t id = 0, image_id = 0, category_id = 0;
      std::array<double, 4> box{};
      double area = 0;
      uint8_t crowd = 0;
      const std::size_t extra_begin = a.extra_json.size();
      const unsigned seen = for_each_field(obj, r, [&](std::string_view key, const char* key_start, od::value& fv) {
        if (key == "id") {
          set_id(r, id = integer(fv, r, key));
          return 1u;
        }
        if (key == "image_id") {
          image_id = integer(fv, r, key);
          return 2u;
        }
        if (key == "category_id") {
          category_id = integer(fv, r, key);
          return 4u;
        }
        if (key == "bbox") {
          parse_bbox(fv, r, box);
          return 8u;
        }
        if (key == "area") {
          area = number(fv, r, key);
          return 16u;
        }
        if (key == "iscrowd") {
          crowd = parse_iscrowd(fv, r);
          return 32u;
        }
        if (key == "segmentation") {
          a.segmentation_json.append(parse_segmentation(fv, r));
          return 64u;
        }
        append_extra(a.extra_json, extra_begin, key_start, fv, r, key);
        return 0u;
      });
      require(seen, {"id", "image_id", "category_id", "bbox"}, r);
      if (!(seen & 16)) {
        if (options_.require_area)
          fail(r, "missing field \"area\" (pycocotools' COCOeval needs it; CocoParseOptions::require_area "
                  "= false computes w * h instead)");
        area = box[2] * box[3];
      }
      a.id.push_back(id);
      a.image_id.push_back(image_id);
      a.category_id.push_back(category_id);
      a.bbox.push_back(box);
      a.area.push_back(area);
      a.iscrowd.push_back(crowd);
      a.segmentation_offsets.push_back(a.segmentation_json.size());
      a.extra_offsets.push_back(a.extra_json.size());
    });
    if (a.id.empty()) {
      a.segmentation_offsets.clear();
      a.extra_offsets.clear();
    }
  }

  uint8_t parse_iscrowd(od::value& v, const Rec& r) const {
    od::json_type t;
    check(v.type().get(t), r, "iscrowd");
    if (t == od::json_type::boolean) {
      bool b;
      check(v.get_bool().get(b), r, "iscrowd");
      return b ? 1 : 0;
    }
    if (t != od::json_type::number)
      fail(r, fmt::format("\"iscrowd\" must be 0 or 1, found {}", type_name(t)));
    const int64_t x = integer(v, r, "iscrowd");
    if (x != 0 && x != 1) fail(r, fmt::format("\"iscrowd\" must be 0 or 1, found {}", x));
    return uint8_t(x);
  }

  // ---------------------------------------------------------------- cross-record checks
  void validate() const {
    std::unordered_map<int64_t, std::size_t> images;
    images.reserve(out_.images.size());
    for (std::size_t i = 0; i < out_.images.size(); ++i) {
      const auto [it, fresh] = images.emplace(out_.images[i].id, i);
      if (!fresh)
        fail(Rec{"images", i, true, out_.images[i].id},
             fmt::format("duplicate image id (also images[{}])", it->second));
    }
    std::unordered_map<int64_t, std::size_t> cats;
    for (std::size_t i = 0; i < out_.categories.size(); ++i) {
      const auto [it, fresh] = cats.emplace(out_.categories[i].id, i);
      if (!fresh)
        fail(Rec{"categories", i, true, out_.categories[i].id},
             fmt::format("duplicate category id (also categories[{}])", it->second));
    }
    const CocoAnnotations& a = out_.annotations;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!images.count(a.image_id[i]))
        fail(Rec{"annotations", i, true, a.id[i]},
             fmt::format("unknown image_id {} (not in \"images\")", a.image_id[i]));
      if (!cats.count(a.category_id[i]))
        fail(Rec{"annotations", i, true, a.id[i]},
             fmt::format("unknown category_id {} (not in \"categories\")", a.category_id[i]));
    }
    // Duplicate annotation ids: files usually list them in increasing order (one linear check);
    // otherwise sort (id, index) pairs.
    if (std::adjacent_find(a.id.begin(), a.id.end(), std::greater_equal<int64_t>()) != a.id.end()) {
      std::vector<std::pair<int64_t, std::size_t>> order(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) order[i] = {a.id[i], i};
      std::sort(order.begin(), order.end());
      for (std::size_t k = 1; k < order.size(); ++k)
        if (order[k].first == order[k - 1].first)
          fail(Rec{"annotations", order[k].second, true, order[k].first},
               fmt::format("duplicate annotation id (also annotations[{}])", order[k - 1].second));
    }
  }

  std::string_view source_;
  const CocoParseOptions& options_;
  const char* buf_;
  std::size_t len_;
  od::parser parser_;
  od::document* doc_ = nullptr;
  CocoFile out_;
};

}  // namespace

CocoFile parse_coco(std::string_view json, std::string_view source, const CocoParseOptions& options) {
  const simdjson::padded_string padded(json);
  return CocoParser(source, options, padded.data(), padded.size()).run();
}

CocoFile load_coco(const std::filesystem::path& path, const CocoParseOptions& options) {
  simdjson::padded_string padded;
  const simdjson::error_code e = simdjson::padded_string::load(path.string()).get(padded);
  if (e) DRCNN_FAIL("load_coco: cannot read ", path.string(), ": ", simdjson::error_message(e));
  const std::string source = path.string();
  return CocoParser(source, options, padded.data(), padded.size()).run();
}

}  // namespace drcnn::data
