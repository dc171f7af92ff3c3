// Metadata: ordered key -> typed value pairs, the GGUF KV model (which safetensors' string-only
// __metadata__ is a special case of). Types are kept exactly so a GGUF round-trips byte for byte.
// Numeric arrays are kept packed (little-endian, element type `elem`) so a 150k-entry vocabulary
// array costs its bytes, not 150k objects. Not here: what the keys mean (formats/, model/).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ss {

// Numbering follows GGUF's gguf_type so readers and writers map 1:1.
enum class MetaType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* meta_type_name(MetaType t);
// Bytes of one numeric/bool element; 0 for STRING and ARRAY.
size_t meta_type_size(MetaType t);
bool meta_type_valid(uint32_t raw);

struct MetaValue {
  MetaType type = MetaType::U32;
  // scalars (exactly one is meaningful, by type)
  uint64_t u = 0;       // U8 U16 U32 U64 BOOL
  int64_t i = 0;        // I8 I16 I32 I64
  double f = 0;         // F32 F64
  std::string s;        // STRING
  // arrays
  MetaType elem = MetaType::U8;       // element type when type == ARRAY
  uint64_t count = 0;                 // elements in the array
  std::vector<uint8_t> packed;        // numeric/bool elements, little-endian
  std::vector<std::string> strings;   // STRING elements
  std::vector<MetaValue> nested;      // ARRAY elements (arrays of arrays)

  static MetaValue of_u32(uint32_t v) { MetaValue m; m.type = MetaType::U32; m.u = v; return m; }
  static MetaValue of_u64(uint64_t v) { MetaValue m; m.type = MetaType::U64; m.u = v; return m; }
  static MetaValue of_i32(int32_t v) { MetaValue m; m.type = MetaType::I32; m.i = v; return m; }
  static MetaValue of_f32(float v) { MetaValue m; m.type = MetaType::F32; m.f = v; return m; }
  static MetaValue of_bool(bool v) { MetaValue m; m.type = MetaType::BOOL; m.u = v ? 1 : 0; return m; }
  static MetaValue of_string(std::string v) { MetaValue m; m.type = MetaType::STRING; m.s = std::move(v); return m; }
  static MetaValue of_strings(std::vector<std::string> v);
  template <class T>
  static MetaValue of_array(MetaType elem, const std::vector<T>& v) {
    MetaValue m;
    m.type = MetaType::ARRAY;
    m.elem = elem;
    m.count = v.size();
    m.packed.resize(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(m.packed.data(), v.data(), m.packed.size());
    return m;
  }

  bool is_integer() const;
  bool is_number() const;
  // Numeric scalar as a wider type (nullopt for strings/arrays).
  std::optional<int64_t> as_int() const;
  std::optional<double> as_double() const;
  // Element k of a numeric array as double / int (nullopt when not numeric or out of range).
  std::optional<double> element_double(uint64_t k) const;
  std::optional<int64_t> element_int(uint64_t k) const;
  // Human-readable, short: arrays print as "[f32 x 512]".
  std::string summary(size_t max_chars = 80) const;
  bool operator==(const MetaValue& o) const;
};

class Metadata {
 public:
  // Replaces an existing key in place (keeps its position) or appends.
  void set(std::string key, MetaValue value);
  // Appends without looking for the key, for parsers that have already refused duplicate keys
  // (set() is linear, so a million set() calls on a hostile file would cost 10^12 comparisons).
  void append_new(std::string key, MetaValue value) { entries_.emplace_back(std::move(key), std::move(value)); }
  const MetaValue* find(std::string_view key) const;
  bool erase(std::string_view key);
  const std::vector<std::pair<std::string, MetaValue>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_double(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;

 private:
  std::vector<std::pair<std::string, MetaValue>> entries_;
};

}  // namespace ss
