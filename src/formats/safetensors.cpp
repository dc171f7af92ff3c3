// safetensors reader and writer (Hugging Face's format): one .safetensors file, a sharded checkpoint
// described by model.safetensors.index.json, or an HF model folder (config.json + weights +
// tokenizer files). Layout: u64 little-endian header length N, N bytes of JSON (tensor name ->
// {"dtype", "shape", "data_offsets": [begin, end]}, optional "__metadata__": {string: string}), then
// the data buffer, which the tensors must cover exactly (no overlap, no hole, no trailing bytes).
// The reader trusts nothing: duplicate JSON keys, NUL bytes, dtype x shape that disagrees with the
// offsets, overlaps and holes are all CORRUPT and named by file, offset, expected and actual.
// Tensors are zero-copy views into the mapped file; offsets in Tensor are absolute file offsets.
//
// Metadata convention (ours, layered on the string-only __metadata__):
//  - "safeshrink.dtype.<tensor>" / "safeshrink.shape.<tensor>": a block-quantized tensor (no
//    safetensors dtype exists) is stored as U8 [rows, row_bytes]; these keys give its real dtype
//    ("q4_K") and shape ("[4,256]"). The reader restores both (checking the byte count) and drops
//    the keys, so GGUF -> safetensors -> GGUF keeps every tensor bit-exact.
//  - "safeshrink.gguf.<key>": a metadata value that is not a plain UTF-8 string (GGUF numbers,
//    bools, arrays, or a string with invalid UTF-8) as typed JSON: {"type":"u32","value":7},
//    {"type":"f32","value":1e-05} (non-finite floats as "nan"/"inf"/"-inf"), {"type":"str",
//    "hex":...}, {"type":"arr","elem":"f32","count":n,"hex":<packed little-endian bytes>},
//    {"type":"arr","elem":"str","count":n,"values":[...]} (or "hex_values"), {"type":"arr",
//    "elem":"arr","count":n,"values":[<typed>...]}. The reader turns each back into <key> with its
//    exact type, so GGUF metadata round-trips too (NaN payloads excepted).
//  - Plain UTF-8 string values go under their own key, exactly like any other writer.
//  - The folder reader's facts "hf.tokenizer_json_path" / "hf.tokenizer_config_path" (paths on
//    this machine) are never written; "hf.config_json" is, so a single file stays self-describing.
// Not here: what tensor names mean (model/), GGUF (gguf.cpp), sniffing (registry.cpp).
// To accept one more safetensors dtype: give its row in the dtype table (core/dtype.cpp) a
// safetensors_name; nothing here changes.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "safeshrink/formats.h"

namespace ss {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kDTypePrefix = "safeshrink.dtype.";
constexpr std::string_view kShapePrefix = "safeshrink.shape.";
constexpr std::string_view kTypedPrefix = "safeshrink.gguf.";
constexpr std::string_view kIndexFileName = "model.safetensors.index.json";
constexpr std::string_view kSingleFileName = "model.safetensors";
constexpr std::string_view kReaderPathKeys[] = {"hf.tokenizer_json_path", "hf.tokenizer_config_path"};
constexpr uint64_t kHeaderOffset = 8;               // the JSON starts after the u64 length
constexpr uint64_t kHeaderAlignment = 8;            // the reference writer pads N to a multiple of 8
constexpr size_t kWriteBufferBytes = 1u << 20;
// Nesting of a header or an index: root object -> entry object -> shape array (+ a spare level).
constexpr size_t kHeaderDepth = 4;

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A name or value from a file, fit for an error message: quoted, printable ASCII, at most 96 bytes.
std::string shown(std::string_view s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 96; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 96) out += "...";
  return out + "'";
}

std::string hex_of(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

bool bytes_of_hex(std::string_view s, std::vector<uint8_t>* out) {
  if (s.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->resize(s.size() / 2);
  for (size_t i = 0; i < out->size(); ++i) {
    const int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) { len = 2; }
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) { len = 3; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) { len = 4; }
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return false;
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

std::string json_text(const json& j, size_t max_chars = 64) {
  std::string s;
  try {
    s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (...) {
    s = "(unprintable)";
  }
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
  return s;
}

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// ---------------------------------------------------------------------------------------------
// Strict JSON: nlohmann keeps the last of duplicate keys silently; we refuse them (a second
// "weight" entry that shadows the first is exactly what an attacker would hide). A SAX handler
// builds the document itself, refusing a key that its object already holds, refusing nesting
// deeper than a cap, and recording the key order of one child object of the root
// ("__metadata__"), which std::map-backed json would otherwise sort. (nlohmann's parse callback
// could do the same, but it rescans the parent object after every child object: quadratic, and a
// 20 MB header of 200k tensors then takes minutes.)

struct StrictJson {
  json root;
  std::vector<std::string> child_keys;  // keys of root[child] in file order
};

class StrictJsonBuilder final : public json::json_sax_t {
 public:
  StrictJsonBuilder(StrictJson* doc, size_t max_depth, std::string_view child)
      : doc_(doc), max_depth_(max_depth), child_(child) {}

  bool null() override { return put(json(nullptr)) != nullptr; }
  bool boolean(bool v) override { return put(json(v)) != nullptr; }
  bool number_integer(number_integer_t v) override { return put(json(v)) != nullptr; }
  bool number_unsigned(number_unsigned_t v) override { return put(json(v)) != nullptr; }
  bool number_float(number_float_t v, const string_t&) override { return put(json(v)) != nullptr; }
  bool string(string_t& v) override { return put(json(std::move(v))) != nullptr; }
  bool binary(binary_t&) override { return false; }  // JSON text never yields binary values
  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    if (f.node->contains(k)) {
      duplicate = k;
      return false;
    }
    if (stack_.size() == 2 && !child_.empty() && stack_[0].key == child_) doc_->child_keys.push_back(k);
    f.key = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    error_position = position;
    error_message = e.what();
    return false;
  }

  std::string duplicate;
  bool too_deep = false;
  size_t error_position = 0;
  std::string error_message;

 private:
  struct Frame {
    json* node;       // an open object or array
    std::string key;  // the key whose value comes next (objects)
  };

  // Stores a value where the parse is (root, array element or object member); returns it.
  json* put(json&& value) {
    if (stack_.empty()) {
      doc_->root = std::move(value);
      return &doc_->root;
    }
    Frame& f = stack_.back();
    if (f.node->is_array()) {
      f.node->push_back(std::move(value));  // the open child (if any) is always the last element
      return &f.node->back();
    }
    auto [it, fresh] = f.node->emplace(f.key, std::move(value));
    return fresh ? &it.value() : nullptr;
  }
  bool open(json&& container) {
    if (stack_.size() >= max_depth_) {
      too_deep = true;
      return false;
    }
    json* node = put(std::move(container));
    if (!node) return false;
    stack_.push_back({node, {}});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  StrictJson* doc_;
  size_t max_depth_;
  std::string_view child_;
  std::vector<Frame> stack_;
};

// Where KEY (as a quoted JSON string) first/second appears in TEXT; BASE when not found.
uint64_t key_offset(std::string_view text, uint64_t base, std::string_view key, int occurrence = 1) {
  std::string needle;
  try {
    needle = json(std::string(key)).dump();
  } catch (...) {
    return base;
  }
  size_t pos = 0;
  for (int k = 0; k < occurrence; ++k) {
    pos = text.find(needle, k == 0 ? 0 : pos + 1);
    if (pos == std::string_view::npos) return base;
  }
  return base + pos;
}

// MAX_DEPTH caps nested objects/arrays (which also keeps nlohmann's recursive dump() safe).
Result<StrictJson> parse_strict_json(std::string_view text, const std::string& file, uint64_t base, size_t max_depth,
                                     std::string_view child) {
  const void* nul = std::memchr(text.data(), 0, text.size());
  if (nul != nullptr) {
    const uint64_t at = static_cast<uint64_t>(static_cast<const char*>(nul) - text.data());
    return corrupt(file, base + at, "JSON text", "no NUL byte (JSON never holds one)", "a NUL byte");
  }
  StrictJson doc;
  StrictJsonBuilder builder(&doc, max_depth, child);
  bool parsed = false;
  try {
    parsed = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true,
                             /*ignore_comments=*/false);
  } catch (const std::exception& e) {
    return corrupt(file, base, "JSON text", "valid JSON", shown(e.what()));
  }
  if (!builder.duplicate.empty())
    return corrupt(file, key_offset(text, base, builder.duplicate, 2), "JSON object key " + shown(builder.duplicate),
                   "each key once", "the key twice (a later entry would shadow the first)");
  if (builder.too_deep)
    return corrupt(file, base, "JSON nesting", "at most " + std::to_string(max_depth) + " levels", "deeper");
  if (!parsed) {
    const uint64_t at = builder.error_position > 0 ? builder.error_position - 1 : 0;
    std::string what = builder.error_message.empty() ? std::string("a parse error") : builder.error_message;
    const size_t cut = what.find("] ");
    if (cut != std::string::npos) what = what.substr(cut + 2);
    return corrupt(file, base + std::min<uint64_t>(at, text.size()), "JSON text", "valid JSON in UTF-8", shown(what));
  }
  if (!doc.root.is_object())
    return corrupt(file, base, "JSON text", "an object", std::string(doc.root.type_name()));
  return doc;
}

// ---------------------------------------------------------------------------------------------
// Typed metadata (see the file comment): MetaValue <-> JSON.

std::optional<MetaType> meta_type_from_name(std::string_view name) {
  for (uint32_t raw = 0; meta_type_valid(raw); ++raw)
    if (name == meta_type_name(static_cast<MetaType>(raw))) return static_cast<MetaType>(raw);
  return std::nullopt;
}

Result<json> typed_json_of(const MetaValue& v, int depth) {
  if (depth > 64) return invalid_argument("metadata arrays nested deeper than 64 levels");
  json j = json::object();
  j["type"] = meta_type_name(v.type);
  switch (v.type) {
    case MetaType::U8: case MetaType::U16: case MetaType::U32: case MetaType::U64: case MetaType::BOOL:
      j["value"] = v.u;
      break;
    case MetaType::I8: case MetaType::I16: case MetaType::I32: case MetaType::I64:
      j["value"] = v.i;
      break;
    case MetaType::F32: case MetaType::F64:
      if (std::isfinite(v.f)) j["value"] = v.f;
      else j["value"] = std::isnan(v.f) ? "nan" : (v.f > 0 ? "inf" : "-inf");
      break;
    case MetaType::STRING:
      if (valid_utf8(v.s)) j["value"] = v.s;
      else j["hex"] = hex_of(reinterpret_cast<const uint8_t*>(v.s.data()), v.s.size());
      break;
    case MetaType::ARRAY: {
      j["elem"] = meta_type_name(v.elem);
      j["count"] = v.count;
      if (v.elem == MetaType::STRING) {
        if (v.strings.size() != v.count) return invalid_argument("string array count disagrees with its strings");
        const bool all_valid = std::all_of(v.strings.begin(), v.strings.end(), [](const std::string& s) { return valid_utf8(s); });
        json values = json::array();
        for (const auto& s : v.strings)
          values.push_back(all_valid ? s : hex_of(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
        j[all_valid ? "values" : "hex_values"] = std::move(values);
      } else if (v.elem == MetaType::ARRAY) {
        if (v.nested.size() != v.count) return invalid_argument("array of arrays: count disagrees with its elements");
        json values = json::array();
        for (const auto& e : v.nested) {
          SS_ASSIGN_OR_RETURN(json ej, typed_json_of(e, depth + 1));
          values.push_back(std::move(ej));
        }
        j["values"] = std::move(values);
      } else {
        const size_t sz = meta_type_size(v.elem);
        if (sz == 0 || v.packed.size() / sz != v.count || v.packed.size() % sz != 0)
          return invalid_argument("numeric array: count disagrees with its packed bytes");
        j["hex"] = hex_of(v.packed.data(), v.packed.size());
      }
      break;
    }
  }
  return j;
}

// Inverse of typed_json_of; errors are INVALID_ARGUMENT messages that the caller turns into CORRUPT.
Result<MetaValue> meta_of_typed_json(const json& j, int depth, const ParseLimits& limits) {
  if (depth > limits.max_nesting) return invalid_argument("arrays nested deeper than " + std::to_string(limits.max_nesting));
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    return invalid_argument("an object with a \"type\" string");
  const auto type = meta_type_from_name(j["type"].get_ref<const std::string&>());
  if (!type) return invalid_argument("unknown type " + shown(j["type"].get_ref<const std::string&>()));
  MetaValue m;
  m.type = *type;
  const json* value = j.contains("value") ? &j["value"] : nullptr;
  switch (m.type) {
    case MetaType::U8: case MetaType::U16: case MetaType::U32: case MetaType::U64: case MetaType::BOOL: {
      if (!value || !value->is_number_unsigned()) return invalid_argument("an unsigned integer \"value\"");
      m.u = value->get<uint64_t>();
      const size_t bits = 8 * meta_type_size(m.type);
      const uint64_t max = m.type == MetaType::BOOL ? 1 : (bits == 64 ? ~0ull : (1ull << bits) - 1);
      if (m.u > max) return invalid_argument("value " + std::to_string(m.u) + " out of range of " + meta_type_name(m.type));
      return m;
    }
    case MetaType::I8: case MetaType::I16: case MetaType::I32: case MetaType::I64: {
      if (!value || !value->is_number_integer()) return invalid_argument("an integer \"value\"");
      if (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        return invalid_argument("value out of range of i64");
      m.i = value->get<int64_t>();
      const size_t bits = 8 * meta_type_size(m.type);
      if (bits < 64 && (m.i < -(1ll << (bits - 1)) || m.i >= (1ll << (bits - 1))))
        return invalid_argument("value " + std::to_string(m.i) + " out of range of " + meta_type_name(m.type));
      return m;
    }
    case MetaType::F32: case MetaType::F64: {
      if (value && value->is_number()) {
        m.f = value->get<double>();
        if (m.type == MetaType::F32) m.f = static_cast<double>(static_cast<float>(m.f));
        return m;
      }
      if (value && value->is_string()) {
        const std::string& s = value->get_ref<const std::string&>();
        if (s == "nan") m.f = std::numeric_limits<double>::quiet_NaN();
        else if (s == "inf") m.f = std::numeric_limits<double>::infinity();
        else if (s == "-inf") m.f = -std::numeric_limits<double>::infinity();
        else return invalid_argument("a number, \"nan\", \"inf\" or \"-inf\"");
        return m;
      }
      return invalid_argument("a number \"value\"");
    }
    case MetaType::STRING: {
      if (value && value->is_string()) {
        m.s = value->get<std::string>();
        return m;
      }
      std::vector<uint8_t> bytes;
      if (!j.contains("hex") || !j["hex"].is_string() || !bytes_of_hex(j["hex"].get_ref<const std::string&>(), &bytes))
        return invalid_argument("a string \"value\" or \"hex\"");
      m.s.assign(bytes.begin(), bytes.end());
      return m;
    }
    case MetaType::ARRAY: {
      if (!j.contains("elem") || !j["elem"].is_string() || !j.contains("count") || !j["count"].is_number_unsigned())
        return invalid_argument("an array with \"elem\" and \"count\"");
      const auto elem = meta_type_from_name(j["elem"].get_ref<const std::string&>());
      if (!elem) return invalid_argument("unknown element type " + shown(j["elem"].get_ref<const std::string&>()));
      m.elem = *elem;
      m.count = j["count"].get<uint64_t>();
      if (m.count > limits.max_array)
        return invalid_argument("array of " + std::to_string(m.count) + " elements, cap " + std::to_string(limits.max_array));
      if (m.elem == MetaType::STRING) {
        const bool hexed = j.contains("hex_values");
        const char* field = hexed ? "hex_values" : "values";
        if (!j.contains(field) || !j[field].is_array() || j[field].size() != m.count)
          return invalid_argument("\"values\" with \"count\" strings");
        const json& values = j[field];
        m.strings.reserve(values.size());
        for (const auto& e : values) {
          if (!e.is_string()) return invalid_argument("string elements");
          if (!hexed) {
            m.strings.push_back(e.get<std::string>());
            continue;
          }
          std::vector<uint8_t> bytes;
          if (!bytes_of_hex(e.get_ref<const std::string&>(), &bytes)) return invalid_argument("hex string elements");
          m.strings.emplace_back(bytes.begin(), bytes.end());
        }
        return m;
      }
      if (m.elem == MetaType::ARRAY) {
        if (!j.contains("values") || !j["values"].is_array() || j["values"].size() != m.count)
          return invalid_argument("\"values\" with \"count\" arrays");
        for (const auto& e : j["values"]) {
          SS_ASSIGN_OR_RETURN(MetaValue inner, meta_of_typed_json(e, depth + 1, limits));
          if (inner.type != MetaType::ARRAY) return invalid_argument("array elements");
          m.nested.push_back(std::move(inner));
        }
        return m;
      }
      const size_t sz = meta_type_size(m.elem);
      if (!j.contains("hex") || !j["hex"].is_string() || !bytes_of_hex(j["hex"].get_ref<const std::string&>(), &m.packed))
        return invalid_argument("a \"hex\" string of packed elements");
      if (m.packed.size() % sz != 0 || m.packed.size() / sz != m.count)
        return invalid_argument(std::to_string(m.count) + " elements of " + std::to_string(sz) + " bytes, got " +
                                std::to_string(m.packed.size()) + " bytes");
      return m;
    }
  }
  return invalid_argument("unknown type");
}

// ---------------------------------------------------------------------------------------------
// One file's header entries.

struct HeaderEntry {
  std::string name;
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data buffer
};

std::string known_safetensors_dtypes() {
  std::string s;
  for (size_t k = 0; k < static_cast<size_t>(DType::COUNT); ++k) {
    const DTypeInfo& info = dtype_info(static_cast<DType>(k));
    if (!info.safetensors_name) continue;
    if (!s.empty()) s += " ";
    s += info.safetensors_name;
  }
  return s;
}

Result<uint64_t> unsigned_of(const json& j) {
  if (!j.is_number_integer()) return invalid_argument("a non-negative integer, got " + json_text(j));
  if (!j.is_number_unsigned()) return invalid_argument("a non-negative integer, got " + json_text(j));
  return j.get<uint64_t>();
}

Result<HeaderEntry> parse_entry(const std::string& name, const json& j, const std::string& file,
                                std::string_view text, uint64_t data_size, const ParseLimits& limits) {
  const std::string what = "tensor " + shown(name);
  // Where the entry is, looked up only for an error (a lookup per entry would be quadratic).
  const auto at = [&] { return key_offset(text, kHeaderOffset, name); };
  if (!j.is_object()) return corrupt(file, at(), what, "an object", std::string(j.type_name()));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!j.contains(field)) return corrupt(file, at(), what, std::string("a \"") + field + "\" field", "none");
  HeaderEntry e;
  e.name = name;
  const json& dt = j["dtype"];
  if (!dt.is_string()) return corrupt(file, at(), what + " dtype", "a string", json_text(dt));
  const auto dtype = dtype_from_safetensors(dt.get_ref<const std::string&>());
  if (!dtype)
    return unsupported(file + ": offset " + std::to_string(at()) + ": " + what + ": dtype " +
                       shown(dt.get_ref<const std::string&>()) + " is not supported (known: " +
                       known_safetensors_dtypes() + ")");
  e.dtype = *dtype;

  const json& shape = j["shape"];
  if (!shape.is_array()) return corrupt(file, at(), what + " shape", "an array", json_text(shape));
  if (shape.size() > limits.max_dims)
    return corrupt(file, at(), what + " shape", "at most " + std::to_string(limits.max_dims) + " dimensions",
                   std::to_string(shape.size()));
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : shape) {
    if (!d.is_number_integer() || !d.is_number_unsigned())
      return corrupt(file, at(), what + " shape", "non-negative integers", json_text(shape));
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX))
      return corrupt(file, at(), what + " shape", "dimensions < 2^63", std::to_string(v));
    e.shape.push_back(static_cast<int64_t>(v));
    if (__builtin_mul_overflow(numel, v, &numel)) overflow = true;
  }
  if (overflow || numel > static_cast<uint64_t>(INT64_MAX))
    return corrupt(file, at(), what + " shape", "an element count < 2^63", json_text(shape) + " (overflows)");
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_info(e.dtype).type_size), &nbytes))
    return corrupt(file, at(), what + " byte size", "< 2^64 bytes",
                   std::to_string(numel) + " elements of " + dt.get<std::string>() + " (overflows)");

  const json& offs = j["data_offsets"];
  if (!offs.is_array() || offs.size() != 2)
    return corrupt(file, at(), what + " data_offsets", "[begin, end]", json_text(offs));
  auto begin = unsigned_of(offs[0]);
  auto end = unsigned_of(offs[1]);
  if (!begin.ok() || !end.ok())
    return corrupt(file, at(), what + " data_offsets", "two non-negative integers", json_text(offs));
  e.begin = *begin;
  e.end = *end;
  if (e.begin > e.end)
    return corrupt(file, at(), what + " data_offsets", "begin <= end", json_text(offs));
  if (e.end > data_size)
    return corrupt(file, at(), what + " data_offsets end", "<= " + std::to_string(data_size) + " (bytes of data in the file)",
                   std::to_string(e.end));
  if (e.end - e.begin != nbytes)
    return corrupt(file, at(), what + " byte count", std::to_string(nbytes) + " (" + dt.get<std::string>() + " x " +
                   json_text(shape) + ")", std::to_string(e.end - e.begin) + " (data_offsets " + json_text(offs) + ")");
  return e;
}

// Restores a block-quantized tensor stored as U8 from its safeshrink.dtype/shape keys.
Status restore_block_tensor(Tensor* t, const std::string& dtype_text, const std::string& shape_text,
                            const std::string& file, const std::function<uint64_t()>& at,
                            const ParseLimits& limits) {
  const std::string what = "metadata " + shown(std::string(kDTypePrefix) + t->name);
  if (t->dtype != DType::U8) return corrupt(file, at(), what, "a tensor stored as U8", dtype_name(t->dtype));
  const auto dtype = dtype_from_name(dtype_text);
  if (!dtype) return corrupt(file, at(), what, "a dtype name such as \"q4_K\"", shown(dtype_text));
  std::vector<int64_t> shape;
  try {
    const json js = json::parse(shape_text);
    if (!js.is_array() || js.size() > limits.max_dims) throw std::runtime_error("not an array");
    for (const auto& d : js) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        throw std::runtime_error("bad dimension");
      shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
  } catch (...) {
    return corrupt(file, at(), "metadata " + shown(std::string(kShapePrefix) + t->name),
                   "a JSON array of at most " + std::to_string(limits.max_dims) + " non-negative integers",
                   shown(shape_text));
  }
  auto nbytes = tensor_nbytes(*dtype, shape);
  if (!nbytes.ok() || *nbytes != t->nbytes)
    return corrupt(file, at(), what, std::to_string(t->nbytes) + " bytes (the stored U8 tensor)",
                   nbytes.ok() ? std::to_string(*nbytes) + " bytes for " + dtype_text + " " + shape_text
                               : nbytes.status().message());
  t->dtype = *dtype;
  t->shape = std::move(shape);
  return ok_status();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Result<TensorStore> read_safetensors_memory(std::shared_ptr<const Buffer> bytes, const std::string& name,
                                            const ParseLimits& limits) {
  if (!bytes) return invalid_argument(name + ": no bytes");
  const uint8_t* base = bytes->data();
  const uint64_t size = bytes->size();
  if (size < kHeaderOffset)
    return corrupt(name, 0, "header length", "8 bytes (u64 little-endian)", std::to_string(size) + " bytes in the file");
  const uint64_t n = load_le64(base);
  if (n > limits.max_header)
    return corrupt(name, 0, "header length", "<= " + std::to_string(limits.max_header) + " (cap)", std::to_string(n));
  if (n > size - kHeaderOffset)
    return corrupt(name, 0, "header length", "<= " + std::to_string(size - kHeaderOffset) + " (bytes after it)",
                   std::to_string(n));
  if (n == 0 || base[kHeaderOffset] != '{')
    return corrupt(name, kHeaderOffset, "header start", "'{'",
                   n == 0 ? std::string("an empty header") : "0x" + hex_of(base + kHeaderOffset, 1));
  const std::string_view text(reinterpret_cast<const char*>(base + kHeaderOffset), n);
  SS_ASSIGN_OR_RETURN(StrictJson doc, parse_strict_json(text, name, kHeaderOffset, kHeaderDepth, kMetadataKey));
  const uint64_t data_start = kHeaderOffset + n;
  const uint64_t data_size = size - data_start;

  const size_t n_entries = doc.root.size() - (doc.root.contains(kMetadataKey) ? 1 : 0);
  if (n_entries > limits.max_tensors)
    return corrupt(name, kHeaderOffset, "tensor count", "<= " + std::to_string(limits.max_tensors) + " (cap)",
                   std::to_string(n_entries));

  // Entries, then the coverage check in data order.
  std::vector<HeaderEntry> entries;
  entries.reserve(n_entries);
  for (const auto& [key, value] : doc.root.items()) {
    if (key == kMetadataKey) continue;
    SS_ASSIGN_OR_RETURN(HeaderEntry e, parse_entry(key, value, name, text, data_size, limits));
    entries.push_back(std::move(e));
  }
  std::stable_sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const HeaderEntry* previous = nullptr;
  for (const auto& e : entries) {
    if (e.begin < cursor)
      return corrupt(name, data_start + e.begin, "tensor " + shown(e.name) + " data",
                     "to start at " + std::to_string(cursor) + " (end of " + (previous ? shown(previous->name) : "") + ")",
                     "start " + std::to_string(e.begin) + ": the tensors overlap");
    if (e.begin > cursor)
      return corrupt(name, data_start + cursor, "data buffer", "tensors covering every byte",
                     "a hole of " + std::to_string(e.begin - cursor) + " bytes before tensor " + shown(e.name));
    cursor = e.end;
    previous = &e;
  }
  if (cursor != data_size)
    return corrupt(name, data_start + cursor, "data buffer", "to end with the last tensor at " + std::to_string(data_start + cursor),
                   std::to_string(data_size - cursor) + " more bytes that no tensor covers");

  TensorStore store;
  store.format = "safetensors";
  store.tensors.reserve(entries.size());
  std::unordered_map<std::string, size_t> by_name;
  by_name.reserve(entries.size());
  for (auto& e : entries) {
    Tensor t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.buffer = bytes;
    t.offset = data_start + e.begin;
    t.nbytes = e.end - e.begin;
    by_name.emplace(t.name, store.tensors.size());
    store.tensors.push_back(std::move(t));
  }

  // __metadata__: strings only; ours (safeshrink.*) are decoded, the rest kept as STRING values.
  if (doc.root.contains(kMetadataKey)) {
    const json& md = doc.root[std::string(kMetadataKey)];
    const uint64_t md_at = key_offset(text, kHeaderOffset, kMetadataKey);  // once: cheap
    if (!md.is_object()) return corrupt(name, md_at, "__metadata__", "an object of strings", std::string(md.type_name()));
    if (md.size() > limits.max_kv)
      return corrupt(name, md_at, "__metadata__ entries", "<= " + std::to_string(limits.max_kv) + " (cap)",
                     std::to_string(md.size()));
    std::vector<std::string> keys = doc.child_keys;
    if (keys.size() != md.size()) {  // cannot happen with the builder; fall back to sorted order
      keys.clear();
      for (const auto& [k, v] : md.items()) keys.push_back(k);
    }
    std::unordered_map<std::string, std::string> dtype_keys, shape_keys;
    std::unordered_set<std::string> meta_keys;
    for (const auto& key : keys) {
      const json& v = md[key];
      const auto at = [&] { return key_offset(text, kHeaderOffset, key); };
      if (!v.is_string())
        return corrupt(name, at(), "__metadata__ value of " + shown(key), "a string", std::string(v.type_name()));
      const std::string& s = v.get_ref<const std::string&>();
      std::string meta_key = key;
      MetaValue value;
      if (starts_with(key, kDTypePrefix)) {
        dtype_keys.emplace(key.substr(kDTypePrefix.size()), s);
        continue;
      }
      if (starts_with(key, kShapePrefix)) {
        shape_keys.emplace(key.substr(kShapePrefix.size()), s);
        continue;
      }
      if (starts_with(key, kTypedPrefix)) {
        meta_key = key.substr(kTypedPrefix.size());
        // Arrays of arrays nest two JSON levels per level ({"values": [{...}]}).
        auto parsed = parse_strict_json(s, key, 0, 2 * static_cast<size_t>(std::max(limits.max_nesting, 0)) + 2, "");
        if (!parsed.ok()) return corrupt(name, at(), "metadata " + shown(key), "typed JSON", parsed.status().message());
        const json& typed = parsed->root;
        auto decoded = meta_of_typed_json(typed, 0, limits);
        if (!decoded.ok()) return corrupt(name, at(), "metadata " + shown(key), decoded.status().message(), json_text(typed));
        value = std::move(decoded).value();
      } else {
        value = MetaValue::of_string(s);
      }
      if (!meta_keys.insert(meta_key).second)
        return corrupt(name, at(), "metadata " + shown(key), "one value per key", "both a plain and a typed value for " + shown(meta_key));
      store.meta.append_new(std::move(meta_key), std::move(value));
    }
    for (const auto& [tensor, dtype_text] : dtype_keys) {
      const std::string& tensor_key = tensor;  // clang 14 cannot capture a structured binding
      const std::function<uint64_t()> at = [&] {
        return key_offset(text, kHeaderOffset, std::string(kDTypePrefix) + tensor_key);
      };
      auto it = by_name.find(tensor);
      if (it == by_name.end())
        return corrupt(name, at(), "metadata " + shown(std::string(kDTypePrefix) + tensor), "a tensor of that name", "none");
      auto shape = shape_keys.find(tensor);
      if (shape == shape_keys.end())
        return corrupt(name, at(), "metadata " + shown(std::string(kDTypePrefix) + tensor),
                       "a matching " + std::string(kShapePrefix) + " key", "none");
      SS_RETURN_IF_ERROR(restore_block_tensor(&store.tensors[it->second], dtype_text, shape->second, name, at, limits));
    }
    for (const auto& [tensor, shape_text] : shape_keys)
      if (!dtype_keys.count(tensor))
        return corrupt(name, key_offset(text, kHeaderOffset, std::string(kShapePrefix) + tensor),
                       "metadata " + shown(std::string(kShapePrefix) + tensor), "a matching " + std::string(kDTypePrefix) + " key",
                       "none");
  }
  return store;
}

namespace {

Result<TensorStore> read_one_file(const std::string& path, const ParseLimits& limits) {
  SS_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> mapped, MappedFile::open(path));
  SS_ASSIGN_OR_RETURN(TensorStore store, read_safetensors_memory(mapped, path, limits));
  store.path = path;
  return store;
}

// A shard named by an index must be a plain file name in the index's folder.
bool plain_file_name(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

Result<TensorStore> read_index(const std::string& index_path, const ParseLimits& limits) {
  SS_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path, limits.max_header));
  SS_ASSIGN_OR_RETURN(StrictJson doc, parse_strict_json(text, index_path, 0, kHeaderDepth, ""));
  if (!doc.root.contains("weight_map") || !doc.root["weight_map"].is_object())
    return corrupt(index_path, 0, "weight_map", "an object {tensor: shard file}",
                   doc.root.contains("weight_map") ? std::string(doc.root["weight_map"].type_name()) : "none");
  const json& map = doc.root["weight_map"];
  if (map.size() > limits.max_tensors)
    return corrupt(index_path, 0, "weight_map entries", "<= " + std::to_string(limits.max_tensors) + " (cap)",
                   std::to_string(map.size()));
  std::vector<std::string> shards;
  for (const auto& [tensor, shard] : map.items()) {
    const std::string& tensor_key = tensor;  // clang 14 cannot capture a structured binding
    const auto at = [&] { return key_offset(text, 0, tensor_key); };
    if (!shard.is_string())
      return corrupt(index_path, at(), "weight_map entry " + shown(tensor), "a shard file name", json_text(shard));
    const std::string& file = shard.get_ref<const std::string&>();
    if (!plain_file_name(file))
      return corrupt(index_path, at(), "shard of " + shown(tensor),
                     "a plain file name in the index's folder (no '/', '\\', '..')", shown(file));
    shards.push_back(file);
  }
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());

  const fs::path folder = fs::path(index_path).parent_path();
  TensorStore merged;
  merged.format = "safetensors";
  merged.path = index_path;
  std::unordered_map<std::string, std::string> shard_of;  // tensor -> shard that holds it
  std::unordered_set<std::string> meta_keys;
  for (const auto& shard : shards) {
    const std::string shard_path = (folder / shard).string();
    auto read = read_one_file(shard_path, limits);
    if (!read.ok()) return read.status().with_context(index_path + ": shard " + shown(shard));
    TensorStore part = std::move(read).value();
    if (merged.tensors.size() + part.tensors.size() > limits.max_tensors)
      return corrupt(index_path, 0, "tensors over all shards", "<= " + std::to_string(limits.max_tensors) + " (cap)",
                     std::to_string(merged.tensors.size() + part.tensors.size()));
    for (auto& t : part.tensors) {
      auto [it, fresh] = shard_of.emplace(t.name, shard);
      if (!fresh)
        return corrupt(shard_path, t.offset, "tensor " + shown(t.name), "in one shard only",
                       "also in shard " + shown(it->second) + ": the tensor appears in two shards");
      const auto listed = map.find(t.name);
      if (listed == map.end())
        return corrupt(index_path, 0, "weight_map", "an entry for every tensor of every shard",
                       "none for tensor " + shown(t.name) + " of shard " + shown(shard));
      if (listed->get_ref<const std::string&>() != shard)
        return corrupt(index_path, key_offset(text, 0, t.name), "shard of " + shown(t.name),
                       shown(listed->get_ref<const std::string&>()), "the tensor is in " + shown(shard));
      merged.tensors.push_back(std::move(t));
    }
    for (auto& [key, value] : part.meta.entries()) {
      if (meta_keys.insert(key).second) merged.meta.append_new(key, value);
      else merged.meta.set(key, value);  // shards usually repeat {"format": "pt"}
    }
  }
  for (const auto& [tensor, shard] : map.items())
    if (!shard_of.count(tensor))
      return corrupt(index_path, key_offset(text, 0, tensor), "tensor " + shown(tensor),
                     "in shard " + shown(shard.get_ref<const std::string&>()), "absent from it");
  return merged;
}

Result<TensorStore> read_folder(const std::string& folder, const ParseLimits& limits) {
  const fs::path dir(folder);
  std::error_code ec;
  TensorStore store;
  if (fs::is_regular_file(dir / kIndexFileName, ec)) {
    SS_ASSIGN_OR_RETURN(store, read_index((dir / kIndexFileName).string(), limits));
  } else if (fs::is_regular_file(dir / kSingleFileName, ec)) {
    SS_ASSIGN_OR_RETURN(store, read_one_file((dir / kSingleFileName).string(), limits));
  } else {
    std::vector<std::string> found;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_regular_file(ec) && ends_with(it->path().filename().string(), ".safetensors"))
        found.push_back(it->path().filename().string());
    if (ec) return io_error(folder + ": cannot list: " + ec.message());
    if (found.empty())
      return not_found(folder + ": no " + std::string(kIndexFileName) + ", " + std::string(kSingleFileName) +
                       " or other *.safetensors file");
    if (found.size() > 1) {
      std::sort(found.begin(), found.end());
      std::string list;
      for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
      return invalid_argument(folder + ": several *.safetensors files and no " + std::string(kIndexFileName) +
                              " to say how they fit: " + list);
    }
    SS_ASSIGN_OR_RETURN(store, read_one_file((dir / found[0]).string(), limits));
  }
  store.format = "hf-folder";
  store.path = folder;
  if (fs::is_regular_file(dir / "config.json", ec)) {
    SS_ASSIGN_OR_RETURN(std::string config, read_text_file((dir / "config.json").string(), limits.max_header));
    store.meta.set("hf.config_json", MetaValue::of_string(std::move(config)));
  }
  if (fs::is_regular_file(dir / "tokenizer.json", ec))
    store.meta.set("hf.tokenizer_json_path", MetaValue::of_string((dir / "tokenizer.json").string()));
  if (fs::is_regular_file(dir / "tokenizer_config.json", ec))
    store.meta.set("hf.tokenizer_config_path", MetaValue::of_string((dir / "tokenizer_config.json").string()));
  return store;
}

// ---- writer ----

// The JSON text of a string (quotes and escapes); the caller has checked it is valid UTF-8.
std::string json_string(std::string_view s) { return json(std::string(s)).dump(); }

Result<std::string> header_json(const TensorStore& store) {
  std::string md;  // the members of __metadata__, comma separated
  auto add_md = [&md](std::string_view key, std::string_view value) {
    if (!md.empty()) md += ',';
    md += json_string(key);
    md += ':';
    md += json_string(value);
  };
  for (const auto& [key, value] : store.meta.entries()) {
    if (std::find(std::begin(kReaderPathKeys), std::end(kReaderPathKeys), key) != std::end(kReaderPathKeys)) continue;
    if (starts_with(key, kDTypePrefix) || starts_with(key, kShapePrefix) || starts_with(key, kTypedPrefix))
      return invalid_argument("metadata key " + shown(key) + ": the prefixes " + std::string(kDTypePrefix) + ", " +
                              std::string(kShapePrefix) + " and " + std::string(kTypedPrefix) +
                              " are reserved for the writer");
    if (!valid_utf8(key)) return invalid_argument("metadata key " + shown(key) + " is not valid UTF-8");
    if (value.type == MetaType::STRING && valid_utf8(value.s)) {
      add_md(key, value.s);
      continue;
    }
    auto typed = typed_json_of(value, 0);
    if (!typed.ok()) return typed.status().with_context("metadata key " + shown(key));
    add_md(std::string(kTypedPrefix) + key, typed->dump());
  }

  std::string tensors;
  std::unordered_set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& t : store.tensors) {
    const std::string who = "tensor " + shown(t.name);
    if (t.name.empty() || t.name == kMetadataKey) return invalid_argument(who + ": not a usable safetensors name");
    if (!valid_utf8(t.name)) return invalid_argument(who + ": name is not valid UTF-8");
    if (!names.insert(t.name).second) return invalid_argument(who + ": name used twice");
    auto need = tensor_nbytes(t.dtype, t.shape);
    if (!need.ok()) return need.status().with_context(who);
    if (*need != t.nbytes)
      return invalid_argument(who + ": holds " + std::to_string(t.nbytes) + " bytes, " + dtype_name(t.dtype) + " x " +
                              t.shape_string() + " needs " + std::to_string(*need));
    if (t.nbytes > 0 && (!t.buffer || t.offset > t.buffer->size() || t.buffer->size() - t.offset < t.nbytes))
      return invalid_argument(who + ": bytes lie outside its buffer");
    const DTypeInfo& info = dtype_info(t.dtype);
    std::string dtype = info.safetensors_name ? info.safetensors_name : "U8";
    std::vector<int64_t> shape = t.shape;
    if (!info.safetensors_name) {  // a block type: U8 [rows, row_bytes] + our two keys
      shape = {t.rows(), static_cast<int64_t>(t.row_bytes())};
      std::string real_shape = "[";
      for (size_t k = 0; k < t.shape.size(); ++k) real_shape += (k ? "," : "") + std::to_string(t.shape[k]);
      add_md(std::string(kDTypePrefix) + t.name, info.name);
      add_md(std::string(kShapePrefix) + t.name, real_shape + "]");
    }
    if (!tensors.empty()) tensors += ',';
    tensors += json_string(t.name) + ":{\"dtype\":\"" + dtype + "\",\"shape\":[";
    for (size_t k = 0; k < shape.size(); ++k) tensors += (k ? "," : "") + std::to_string(shape[k]);
    tensors += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.nbytes) + "]}";
    offset += t.nbytes;
  }
  std::string header = "{";
  if (!md.empty()) header += "\"__metadata__\":{" + md + "}" + (tensors.empty() ? "" : ",");
  header += tensors + "}";
  header.append((kHeaderAlignment - header.size() % kHeaderAlignment) % kHeaderAlignment, ' ');
  return header;
}

}  // namespace

Result<TensorStore> read_safetensors(const std::string& path, const ParseLimits& limits) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return read_folder(path, limits);
  if (ends_with(path, ".json")) return read_index(path, limits);
  return read_one_file(path, limits);
}

Status write_safetensors(const TensorStore& store, const std::string& path) {
  std::string header;
  try {
    SS_ASSIGN_OR_RETURN(header, header_json(store));
  } catch (const std::exception& e) {  // nlohmann throws on text we failed to validate
    return invalid_argument(path + ": cannot encode the header: " + e.what());
  }
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return io_error(tmp + ": open for writing: " + std::strerror(errno));
  std::vector<char> buffer(kWriteBufferBytes);
  std::setvbuf(f, buffer.data(), _IOFBF, buffer.size());
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  bool ok = std::fwrite(length, 1, 8, f) == 8 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const auto& t : store.tensors) {
    if (!ok) break;
    if (t.nbytes > 0) ok = std::fwrite(t.data(), 1, t.nbytes, f) == t.nbytes;
  }
  const int write_errno = errno;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) {
    std::remove(tmp.c_str());
    return io_error(tmp + ": write failed: " + std::strerror(write_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return io_error(path + ": rename: " + std::strerror(e));
  }
  return ok_status();
}

}  // namespace ss
