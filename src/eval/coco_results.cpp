// COCO results JSON (include/drcnn/eval/coco_eval.h): read with simdjson's DOM parser, written
// with nlohmann-json. Format (cocodataset.org/#format-results): one JSON array of
// {"image_id": int, "category_id": int, "bbox": [x, y, w, h], "score": number}.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "drcnn/core/error.h"
#include "drcnn/eval/coco_eval.h"

namespace drcnn::eval {
namespace {

using simdjson::dom::element;

std::string record_name(std::string_view source, std::size_t index) {
  return detail::concat("results '", source, "' record #", index);
}

element field(const simdjson::dom::object& obj, const char* name, std::string_view source, std::size_t index) {
  element el;
  const auto err = obj[name].get(el);
  DRCNN_CHECK(!err, record_name(source, index), ": missing field \"", name, "\"");
  return el;
}

const char* type_name(const element& el) {
  switch (el.type()) {
    case simdjson::dom::element_type::ARRAY: return "an array";
    case simdjson::dom::element_type::OBJECT: return "an object";
    case simdjson::dom::element_type::INT64: return "an integer";
    case simdjson::dom::element_type::UINT64: return "an integer beyond the signed 64-bit range";
    case simdjson::dom::element_type::DOUBLE: return "a floating-point number";
    case simdjson::dom::element_type::STRING: return "a string";
    case simdjson::dom::element_type::BOOL: return "a boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
  }
  return "an unknown value";
}

int64_t integer_field(const simdjson::dom::object& obj, const char* name, std::string_view source, std::size_t index) {
  const element el = field(obj, name, source, index);
  int64_t v = 0;
  if (el.is_int64() && !el.get_int64().get(v)) return v;
  // An integral float (3.0) is accepted as the integer: pycocotools' set and dict lookups treat
  // 3.0 and 3 as the same key (and drcnn::data::parse_coco accepts it for GT ids likewise).
  double d = 0;
  if (el.type() == simdjson::dom::element_type::DOUBLE && !el.get_double().get(d) && std::isfinite(d) &&
      d == std::trunc(d) && std::abs(d) < 9007199254740992.0)  // 2^53: exact in a double
    return static_cast<int64_t>(d);
  DRCNN_FAIL(record_name(source, index), ": field \"", name, "\" must be an integer, got ",
             el.type() == simdjson::dom::element_type::DOUBLE ? detail::concat("the non-integral number ", d)
                                                              : std::string(type_name(el)));
}

double number(const element& el, bool* ok) {
  double v = 0;
  *ok = el.is_number() && !el.get_double().get(v);
  return v;
}

}  // namespace

namespace {

CocoResults parse_padded(const simdjson::padded_string& padded, std::string_view source) {
  CocoResults out;
  out.source = std::string(source);
  simdjson::dom::parser parser;
  element doc;
  if (const auto err = parser.parse(padded).get(doc); err)
    DRCNN_FAIL("results '", source, "': not valid JSON (", simdjson::error_message(err), ")");
  simdjson::dom::array records;
  DRCNN_CHECK(!doc.get_array().get(records), "results '", source,
              "': the top level must be a JSON array of detections, got ", type_name(doc));
  const std::size_t n = records.size();
  out.image_id.reserve(n);
  out.category_id.reserve(n);
  out.bbox.reserve(n);
  out.score.reserve(n);
  std::size_t index = 0;
  for (element rec : records) {
    simdjson::dom::object obj;
    DRCNN_CHECK(!rec.get_object().get(obj), record_name(source, index), ": must be an object, got ", type_name(rec));
    const int64_t image = integer_field(obj, "image_id", source, index);
    const int64_t category = integer_field(obj, "category_id", source, index);
    const element bbox_el = field(obj, "bbox", source, index);
    simdjson::dom::array bbox_arr;
    DRCNN_CHECK(!bbox_el.get_array().get(bbox_arr), record_name(source, index), " (image_id ", image,
                "): field \"bbox\" must be an array [x, y, w, h], got ", type_name(bbox_el));
    DRCNN_CHECK(bbox_arr.size() == 4, record_name(source, index), " (image_id ", image,
                "): field \"bbox\" must have 4 numbers [x, y, w, h], got ", bbox_arr.size(), " values");
    std::array<double, 4> box{};
    std::size_t c = 0;
    for (element v : bbox_arr) {
      bool ok = false;
      box[c] = number(v, &ok);
      DRCNN_CHECK(ok, record_name(source, index), " (image_id ", image, "): bbox[", c, "] must be a number, got ",
                  type_name(v));
      ++c;
    }
    const element score_el = field(obj, "score", source, index);
    bool ok = false;
    const double score = number(score_el, &ok);
    DRCNN_CHECK(ok, record_name(source, index), " (image_id ", image, "): field \"score\" must be a number, got ",
                type_name(score_el));
    out.push_back(image, category, box, score);
    ++index;
  }
  return out;
}

}  // namespace

CocoResults parse_results(std::string_view json, std::string_view source) {
  return parse_padded(simdjson::padded_string(json.data(), json.size()), source);
}

CocoResults load_results(const std::filesystem::path& path) {
  // Read straight into simdjson's padded buffer (one copy of the file, no stream growth).
  simdjson::padded_string text;
  const auto err = simdjson::padded_string::load(path.string()).get(text);
  DRCNN_CHECK(!err, "results '", path.string(), "': cannot open or read the file (", simdjson::error_message(err), ")");
  return parse_padded(text, path.string());
}

std::string results_to_json(const CocoResults& results) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    nlohmann::ordered_json rec;
    rec["image_id"] = results.image_id[i];
    rec["category_id"] = results.category_id[i];
    const auto& b = results.bbox[i];
    rec["bbox"] = {b[0], b[1], b[2], b[3]};
    rec["score"] = results.score[i];
    arr.push_back(std::move(rec));
  }
  return arr.dump();  // shortest round-trip doubles: pycocotools reads back the same values
}

void save_results(const CocoResults& results, const std::filesystem::path& path) {
  const std::string text = results_to_json(results);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  DRCNN_CHECK(out.good(), "save_results: cannot open '", path.string(), "' for writing");
  out << text << '\n';
  out.close();
  DRCNN_CHECK(!out.fail(), "save_results: write to '", path.string(), "' failed");
}

}  // namespace drcnn::eval
