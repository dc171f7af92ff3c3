// Scanners for weight formats that hold no code, safetensors and GGUF, and for chat templates.
// Each walks the file with its own bounds-checked cursor and lists EVERY problem it sees (where
// the readers in src/formats stop at the first), then runs the reader itself so that anything it
// refuses is reported too. GGUF chat templates go through scan_chat_template, which flags Jinja
// constructs that reach Python internals (CVE-2024-34359, llama-cpp-python's template RCE); it
// matches text and never evaluates a template. Not here: pickle and zip (scan_pickle.cpp,
// scan_zip.cpp). To add one more check: one more add() where the fact is known.
#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "safeshrink/formats.h"
#include "safeshrink/integrity.h"

namespace ss {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxMetadataBytes = 1u << 20;   // safetensors __metadata__ above this is flagged
constexpr uint64_t kMaxTemplateBytes = 1u << 20;   // a chat template larger than this is flagged

struct Sink {
  std::vector<Finding>* out;
  std::string file;
  void add(Severity s, std::string rule, uint64_t offset, std::string message) {
    out->push_back({s, std::move(rule), file, offset, std::move(message)});
  }
};

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

void reader_verdict(Sink& sink, const Status& s, bool had_high) {
  if (s.ok() || had_high) return;
  sink.add(Severity::HIGH, "format.reader_refused", 0, s.message());
}

bool any_high(const std::vector<Finding>& f, size_t from) {
  for (size_t k = from; k < f.size(); ++k)
    if (f[k].severity >= Severity::HIGH) return true;
  return false;
}

// The caller's bytes, for running a reader on them without a copy (lives only during the call).
class BorrowedBytes final : public Buffer {
 public:
  BorrowedBytes(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  const uint8_t* data() const override { return p_; }
  size_t size() const override { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

bool is_ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

// ---- chat templates ----
std::vector<Finding> scan_chat_template(std::string_view text, const std::string& where) {
  std::vector<Finding> out;
  Sink sink{&out, where};
  if (text.size() > kMaxTemplateBytes)
    sink.add(Severity::MEDIUM, "template.size", 0, "chat template of " + std::to_string(text.size()) + " bytes");
  // Identifiers that only an exploit needs inside a Jinja expression or statement.
  static const std::set<std::string> kCriticalIdents = {"os", "popen", "subprocess", "system", "eval", "exec",
                                                         "import", "builtins", "globals", "getattr", "func_globals",
                                                         "mro", "subclasses", "lipsum", "cycler", "joiner", "config",
                                                         "request", "self", "application", "url_for", "get_flashed_messages"};
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find('{', pos);
    if (open == std::string_view::npos || open + 1 >= text.size()) break;
    char kind = text[open + 1];
    if (kind != '{' && kind != '%' && kind != '#') {
      pos = open + 1;
      continue;
    }
    const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t end = text.find(close, open + 2);
    if (end == std::string_view::npos) end = text.size();
    pos = end + 2;
    if (kind == '#') continue;  // a comment
    std::string_view block = text.substr(open + 2, end - open - 2);
    // Walk the block: string literals and identifiers.
    for (size_t i = 0; i < block.size();) {
      char c = block[i];
      if (c == '\'' || c == '"') {
        size_t j = i + 1;
        std::string lit;
        while (j < block.size() && block[j] != c) {
          if (block[j] == '\\' && j + 1 < block.size()) { lit += block[j]; ++j; }
          lit += block[j++];
        }
        if (lit.find("__") != std::string::npos)
          sink.add(Severity::CRITICAL, "template.python_internals", open + 2 + i, "string literal with a dunder: '" + lit + "'");
        if (lit.find("\\x5f") != std::string::npos || lit.find("\\u005f") != std::string::npos ||
            lit.find("\\x5F") != std::string::npos || lit.find("\\137") != std::string::npos)
          sink.add(Severity::CRITICAL, "template.obfuscated_underscore", open + 2 + i, "escaped underscore in '" + lit + "'");
        i = j + 1;
        continue;
      }
      if (is_ident_char(c) && !std::isdigit(static_cast<unsigned char>(c))) {
        size_t j = i;
        while (j < block.size() && is_ident_char(block[j])) ++j;
        std::string ident(block.substr(i, j - i));
        const bool attribute = i > 0 && block[i - 1] == '.';
        if (ident.size() > 4 && ident.rfind("__", 0) == 0) {
          sink.add(Severity::CRITICAL, "template.python_internals", open + 2 + i, "reaches Python internals: " + ident);
        } else if (kCriticalIdents.count(ident) && (attribute || ident != "system")) {
          // "system" is a role name used everywhere as a string; as an identifier only os.system matters.
          sink.add(Severity::CRITICAL, "template.python_internals", open + 2 + i, "identifier " + ident + " inside a Jinja block");
        } else if (ident == "attr" && j < block.size() && block[j] == '(') {
          sink.add(Severity::HIGH, "template.attr_filter", open + 2 + i, "|attr() filter (used to reach attributes by name)");
        }
        i = j;
        continue;
      }
      ++i;
    }
  }
  return out;
}

// ---- safetensors ----
std::vector<Finding> scan_safetensors_bytes(const uint8_t* data, size_t n, const std::string& name) {
  std::vector<Finding> out;
  Sink sink{&out, name};
  ParseLimits limits;
  if (n < 8) {
    sink.add(Severity::HIGH, "safetensors.truncated", 0, "file shorter than its 8-byte header length");
    return out;
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > limits.max_header)
    sink.add(Severity::HIGH, "safetensors.header_size", 0, "header of " + std::to_string(header_len) + " bytes > cap " + std::to_string(limits.max_header));
  if (header_len > n - 8) {
    sink.add(Severity::HIGH, "safetensors.header_bounds", 0, "header of " + std::to_string(header_len) + " bytes past the end of the file");
    return out;
  }
  if (header_len > limits.max_header) return out;
  const std::string_view header(reinterpret_cast<const char*>(data + 8), header_len);
  const uint64_t data_start = 8 + header_len, data_size = n - data_start;
  std::map<std::string, int> key_count;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) ++key_count[parsed.get<std::string>()];
    return true;
  };
  json h = json::parse(header.begin(), header.end(), cb, false);
  if (h.is_discarded() || !h.is_object()) {
    sink.add(Severity::HIGH, "safetensors.header_json", 8, "header is not a JSON object");
    return out;
  }
  for (const auto& [key, count] : key_count)
    if (count > 1) sink.add(Severity::HIGH, "safetensors.duplicate_name", 8, key + " appears " + std::to_string(count) + " times");
  struct Range { uint64_t begin, end; std::string name; };
  std::vector<Range> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& tname = it.key();
    const json& v = it.value();
    if (tname == "__metadata__") {
      if (!v.is_object()) {
        sink.add(Severity::HIGH, "safetensors.metadata", 8, "__metadata__ is not an object");
        continue;
      }
      uint64_t bytes = 0;
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) sink.add(Severity::MEDIUM, "safetensors.metadata", 8, "__metadata__." + m.key() + " is not a string");
        else bytes += m.key().size() + m.value().get_ref<const std::string&>().size();
      }
      if (bytes > kMaxMetadataBytes)
        sink.add(Severity::MEDIUM, "safetensors.metadata_size", 8, "__metadata__ holds " + std::to_string(bytes) + " bytes");
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() || !v.contains("shape") || !v["shape"].is_array() ||
        !v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2) {
      sink.add(Severity::HIGH, "safetensors.tensor_entry", 8, tname + ": needs dtype, shape and data_offsets [begin, end]");
      continue;
    }
    auto dt = dtype_from_safetensors(v["dtype"].get<std::string>());
    uint64_t elem = 0;
    if (!dt) {
      const std::string d = v["dtype"];
      // Types safetensors defines that our DType table has no row for.
      if (d == "U16" || d == "F8_E4M3" || d == "F8_E5M2") elem = d == "U16" ? 2 : 1;
      else if (d == "U32") elem = 4;
      else if (d == "U64") elem = 8;
      else {
        sink.add(Severity::HIGH, "safetensors.dtype", 8, tname + ": unknown dtype " + d);
        continue;
      }
    } else {
      elem = static_cast<uint64_t>(dtype_info(*dt).type_size);
    }
    uint64_t numel = 1;
    bool shape_ok = v["shape"].size() <= limits.max_dims;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned() || mul_overflows(numel, d.get<uint64_t>(), &numel)) shape_ok = false;
    }
    if (!shape_ok) {
      sink.add(Severity::HIGH, "safetensors.shape", 8, tname + ": shape is not a list of at most " + std::to_string(limits.max_dims) + " non-negative sizes");
      continue;
    }
    const json& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      sink.add(Severity::HIGH, "safetensors.offsets", 8, tname + ": data_offsets are not non-negative integers");
      continue;
    }
    const uint64_t b = off[0], e = off[1];
    if (b > e || e > data_size) {
      sink.add(Severity::HIGH, "safetensors.offsets", data_start + std::min(b, data_size),
               tname + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + ") outside the " + std::to_string(data_size) + " data bytes");
      continue;
    }
    uint64_t want = 0;
    if (mul_overflows(numel, elem, &want) || want != e - b)
      sink.add(Severity::HIGH, "safetensors.size", data_start + b,
               tname + ": dtype x shape needs " + std::to_string(want) + " bytes, data_offsets give " + std::to_string(e - b));
    ranges.push_back({b, e, tname});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  uint64_t cursor = 0;
  for (const Range& r : ranges) {
    if (r.begin < cursor) sink.add(Severity::HIGH, "safetensors.overlap", data_start + r.begin, r.name + " overlaps the tensor before it");
    else if (r.begin > cursor) sink.add(Severity::MEDIUM, "safetensors.gap", data_start + cursor, std::to_string(r.begin - cursor) + " unused bytes before " + r.name);
    cursor = std::max(cursor, r.end);
  }
  if (cursor < data_size)
    sink.add(Severity::MEDIUM, "safetensors.trailing_bytes", data_start + cursor, std::to_string(data_size - cursor) + " bytes after the last tensor");
  reader_verdict(sink, read_safetensors_memory(std::make_shared<BorrowedBytes>(data, n), name).status(), any_high(out, 0));
  return out;
}

// ---- GGUF ----
namespace {
std::vector<Finding> walk_gguf(const uint8_t* data, size_t n, const std::string& name);
}  // namespace

std::vector<Finding> scan_gguf_bytes(const uint8_t* data, size_t n, const std::string& name) {
  std::vector<Finding> out = walk_gguf(data, n, name);
  Sink sink{&out, name};
  reader_verdict(sink, read_gguf_memory(std::make_shared<BorrowedBytes>(data, n), name).status(), any_high(out, 0));
  return out;
}

namespace {
std::vector<Finding> walk_gguf(const uint8_t* data, size_t n, const std::string& name) {
  std::vector<Finding> out;
  Sink sink{&out, name};
  ParseLimits limits;
  uint64_t pos = 0;
  auto need = [&](uint64_t k, const char* what) {
    if (k > n - pos) {
      sink.add(Severity::HIGH, "gguf.truncated", pos, std::string(what) + " needs " + std::to_string(k) + " bytes, " + std::to_string(n - pos) + " left");
      return false;
    }
    return true;
  };
  auto u32 = [&]() { uint32_t v; std::memcpy(&v, data + pos, 4); pos += 4; return v; };
  auto u64 = [&]() { uint64_t v; std::memcpy(&v, data + pos, 8); pos += 8; return v; };
  auto str = [&](const char* what, std::string* s) {
    if (!need(8, what)) return false;
    uint64_t at = pos, len = u64();
    if (len > limits.max_string || len > n - pos) {
      sink.add(Severity::HIGH, "gguf.string_length", at, std::string(what) + ": length " + std::to_string(len) + " past the end or over the cap");
      return false;
    }
    if (s) s->assign(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
    return true;
  };
  if (!need(24, "header")) return out;
  if (std::memcmp(data, "GGUF", 4) != 0) {
    sink.add(Severity::HIGH, "gguf.magic", 0, "not GGUF magic");
    return out;
  }
  pos = 4;
  const uint32_t version = u32();
  if (version != 2 && version != 3) sink.add(Severity::HIGH, "gguf.version", 4, "version " + std::to_string(version) + " (2 or 3 expected)");
  const uint64_t n_tensors = u64(), n_kv = u64();
  if (n_tensors > limits.max_tensors || n_tensors > (n - pos) / 24)
    sink.add(Severity::HIGH, "gguf.tensor_count", 8, std::to_string(n_tensors) + " tensors cannot fit in the file");
  if (n_kv > limits.max_kv || n_kv > (n - pos) / 13)
    sink.add(Severity::HIGH, "gguf.kv_count", 16, std::to_string(n_kv) + " metadata pairs cannot fit in the file");
  if (any_high(out, 0)) return out;
  std::map<std::string, int> keys;
  uint64_t alignment = 32;
  // Skips one value of TYPE; collects strings when `strings` is set.
  std::function<bool(uint32_t, int, std::string*)> skip_value = [&](uint32_t type, int depth, std::string* s) -> bool {
    static const uint64_t kSize[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type > 12) {
      sink.add(Severity::HIGH, "gguf.value_type", pos, "value type " + std::to_string(type));
      return false;
    }
    if (type == 8) return str("string value", s);
    if (type != 9) {
      if (!need(kSize[type], "value")) return false;
      pos += kSize[type];
      return true;
    }
    if (depth >= limits.max_nesting) {
      sink.add(Severity::HIGH, "gguf.nesting", pos, "arrays nested deeper than " + std::to_string(limits.max_nesting));
      return false;
    }
    if (!need(12, "array header")) return false;
    const uint64_t at = pos;
    const uint32_t elem = u32();
    const uint64_t count = u64();
    if (elem > 12) {
      sink.add(Severity::HIGH, "gguf.value_type", at, "array element type " + std::to_string(elem));
      return false;
    }
    const uint64_t min_each = elem == 8 ? 8 : elem == 9 ? 12 : kSize[elem];
    if (count > limits.max_array || (min_each > 0 && count > (n - pos) / min_each)) {
      sink.add(Severity::HIGH, "gguf.array_count", at, "array of " + std::to_string(count) + " elements cannot fit in the file");
      return false;
    }
    if (elem != 8 && elem != 9) {
      pos += count * kSize[elem];
      return true;
    }
    for (uint64_t k = 0; k < count; ++k)
      if (!skip_value(elem, depth + 1, nullptr)) return false;
    return true;
  };
  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t at = pos;
    std::string key;
    if (!str("key", &key)) return out;
    if (++keys[key] == 2) sink.add(Severity::HIGH, "gguf.duplicate_key", at, "key " + key + " appears twice");
    if (!need(4, "value type")) return out;
    const uint32_t type = u32();
    const uint64_t value_at = pos;
    std::string s;
    if (!skip_value(type, 0, &s)) return out;
    if (key == "general.alignment") {
      if (type != 4) sink.add(Severity::HIGH, "gguf.alignment", value_at, "general.alignment is not a u32");
      else {
        uint32_t a;
        std::memcpy(&a, data + value_at, 4);
        if (a == 0 || (a & (a - 1))) sink.add(Severity::HIGH, "gguf.alignment", value_at, "alignment " + std::to_string(a) + " is not a power of two");
        else alignment = a;
      }
    }
    if (type == 8 && key.rfind("tokenizer.chat_template", 0) == 0)
      for (auto& f : scan_chat_template(s, name + "!" + key)) out.push_back(std::move(f));
  }
  struct Info { std::string name; uint64_t offset, bytes; };
  std::vector<Info> infos;
  std::map<std::string, int> names;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const uint64_t at = pos;
    Info info;
    if (!str("tensor name", &info.name)) return out;
    if (++names[info.name] == 2) sink.add(Severity::HIGH, "gguf.duplicate_tensor", at, "tensor " + info.name + " appears twice");
    if (!need(4, "n_dims")) return out;
    const uint32_t n_dims = u32();
    if (n_dims > 4) {
      sink.add(Severity::HIGH, "gguf.dims", at, info.name + ": " + std::to_string(n_dims) + " dimensions (GGUF allows 4)");
      if (n_dims > limits.max_dims) return out;
    }
    if (!need(8ull * n_dims + 12, "tensor info")) return out;
    uint64_t numel = 1;
    bool ok = true;
    std::vector<int64_t> shape;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = u64();
      if (ne == 0 || ne > (1ull << 62) || mul_overflows(numel, ne, &numel)) ok = false;
      shape.insert(shape.begin(), static_cast<int64_t>(ne));
    }
    const uint32_t type = u32();
    info.offset = u64();
    if (!ok) {
      sink.add(Severity::HIGH, "gguf.shape", at, info.name + ": a dimension is zero or the element count overflows");
      continue;
    }
    auto dt = dtype_from_ggml(type);
    if (!dt) {
      sink.add(Severity::HIGH, "gguf.tensor_type", at, info.name + ": unknown ggml type " + std::to_string(type));
      continue;
    }
    auto bytes = tensor_nbytes(*dt, shape);
    if (!bytes.ok()) {
      sink.add(Severity::HIGH, "gguf.shape", at, info.name + ": " + bytes.status().message());
      continue;
    }
    info.bytes = *bytes;
    if (info.offset % alignment)
      sink.add(Severity::HIGH, "gguf.tensor_alignment", at, info.name + ": offset " + std::to_string(info.offset) + " not a multiple of " + std::to_string(alignment));
    infos.push_back(info);
  }
  uint64_t data_start = (pos + alignment - 1) / alignment * alignment;
  if (data_start > n) {
    if (!infos.empty()) sink.add(Severity::HIGH, "gguf.truncated", pos, "no room for the tensor data");
    return out;
  }
  const uint64_t data_size = n - data_start;
  std::sort(infos.begin(), infos.end(), [](const Info& a, const Info& b) { return a.offset < b.offset; });
  uint64_t cursor = 0;
  for (const Info& t : infos) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      sink.add(Severity::HIGH, "gguf.tensor_bounds", data_start + std::min(t.offset, data_size),
               t.name + ": [" + std::to_string(t.offset) + ", +" + std::to_string(t.bytes) + ") outside the " + std::to_string(data_size) + " data bytes");
    else if (t.offset < cursor)
      sink.add(Severity::HIGH, "gguf.overlap", data_start + t.offset, t.name + " overlaps the tensor before it");
    cursor = std::max(cursor, t.offset + t.bytes);
  }
  return out;
}
}  // namespace

}  // namespace ss
