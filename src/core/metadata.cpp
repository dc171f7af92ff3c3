// Metadata values: typed access and summaries.
#include "safeshrink/metadata.h"

#include <cstdio>

namespace ss {

const char* meta_type_name(MetaType t) {
  switch (t) {
    case MetaType::U8: return "u8";
    case MetaType::I8: return "i8";
    case MetaType::U16: return "u16";
    case MetaType::I16: return "i16";
    case MetaType::U32: return "u32";
    case MetaType::I32: return "i32";
    case MetaType::F32: return "f32";
    case MetaType::BOOL: return "bool";
    case MetaType::STRING: return "str";
    case MetaType::ARRAY: return "arr";
    case MetaType::U64: return "u64";
    case MetaType::I64: return "i64";
    case MetaType::F64: return "f64";
  }
  return "?";
}

size_t meta_type_size(MetaType t) {
  switch (t) {
    case MetaType::U8: case MetaType::I8: case MetaType::BOOL: return 1;
    case MetaType::U16: case MetaType::I16: return 2;
    case MetaType::U32: case MetaType::I32: case MetaType::F32: return 4;
    case MetaType::U64: case MetaType::I64: case MetaType::F64: return 8;
    case MetaType::STRING: case MetaType::ARRAY: return 0;
  }
  return 0;
}

bool meta_type_valid(uint32_t raw) { return raw <= static_cast<uint32_t>(MetaType::F64); }

MetaValue MetaValue::of_strings(std::vector<std::string> v) {
  MetaValue m;
  m.type = MetaType::ARRAY;
  m.elem = MetaType::STRING;
  m.count = v.size();
  m.strings = std::move(v);
  return m;
}

bool MetaValue::is_integer() const {
  switch (type) {
    case MetaType::U8: case MetaType::I8: case MetaType::U16: case MetaType::I16: case MetaType::U32:
    case MetaType::I32: case MetaType::U64: case MetaType::I64: case MetaType::BOOL: return true;
    default: return false;
  }
}

bool MetaValue::is_number() const { return is_integer() || type == MetaType::F32 || type == MetaType::F64; }

std::optional<int64_t> MetaValue::as_int() const {
  switch (type) {
    case MetaType::U8: case MetaType::U16: case MetaType::U32: case MetaType::U64: case MetaType::BOOL:
      return static_cast<int64_t>(u);
    case MetaType::I8: case MetaType::I16: case MetaType::I32: case MetaType::I64: return i;
    case MetaType::F32: case MetaType::F64: return static_cast<int64_t>(f);
    default: return std::nullopt;
  }
}

std::optional<double> MetaValue::as_double() const {
  if (type == MetaType::F32 || type == MetaType::F64) return f;
  auto v = as_int();
  if (!v) return std::nullopt;
  if (type == MetaType::U64) return static_cast<double>(u);
  return static_cast<double>(*v);
}

namespace {
template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
}  // namespace

std::optional<double> MetaValue::element_double(uint64_t k) const {
  if (type != MetaType::ARRAY || k >= count) return std::nullopt;
  const size_t sz = meta_type_size(elem);
  if (sz == 0 || packed.size() < (k + 1) * sz) return std::nullopt;
  const uint8_t* p = packed.data() + k * sz;
  switch (elem) {
    case MetaType::U8: case MetaType::BOOL: return load<uint8_t>(p);
    case MetaType::I8: return load<int8_t>(p);
    case MetaType::U16: return load<uint16_t>(p);
    case MetaType::I16: return load<int16_t>(p);
    case MetaType::U32: return load<uint32_t>(p);
    case MetaType::I32: return load<int32_t>(p);
    case MetaType::F32: return load<float>(p);
    case MetaType::U64: return static_cast<double>(load<uint64_t>(p));
    case MetaType::I64: return static_cast<double>(load<int64_t>(p));
    case MetaType::F64: return load<double>(p);
    default: return std::nullopt;
  }
}

std::optional<int64_t> MetaValue::element_int(uint64_t k) const {
  if (type != MetaType::ARRAY || k >= count) return std::nullopt;
  const size_t sz = meta_type_size(elem);
  if (sz == 0 || packed.size() < (k + 1) * sz) return std::nullopt;
  const uint8_t* p = packed.data() + k * sz;
  switch (elem) {
    case MetaType::U64: return static_cast<int64_t>(load<uint64_t>(p));
    case MetaType::I64: return load<int64_t>(p);
    default: {
      auto d = element_double(k);
      if (!d) return std::nullopt;
      return static_cast<int64_t>(*d);
    }
  }
}

std::string MetaValue::summary(size_t max_chars) const {
  std::string out;
  switch (type) {
    case MetaType::STRING: {
      out = s.size() > max_chars ? s.substr(0, max_chars) + "…" : s;
      for (char& c : out)
        if (c == '\n') c = ' ';
      return out;
    }
    case MetaType::ARRAY:
      return std::string("[") + meta_type_name(elem) + " x " + std::to_string(count) + "]";
    case MetaType::F32: case MetaType::F64: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", f);
      return buf;
    }
    case MetaType::BOOL: return u ? "true" : "false";
    case MetaType::I8: case MetaType::I16: case MetaType::I32: case MetaType::I64: return std::to_string(i);
    default: return std::to_string(u);
  }
}

bool MetaValue::operator==(const MetaValue& o) const {
  if (type != o.type) return false;
  switch (type) {
    case MetaType::STRING: return s == o.s;
    case MetaType::ARRAY:
      return elem == o.elem && count == o.count && packed == o.packed && strings == o.strings && nested == o.nested;
    case MetaType::F32: case MetaType::F64: return f == o.f || (f != f && o.f != o.f);
    case MetaType::I8: case MetaType::I16: case MetaType::I32: case MetaType::I64: return i == o.i;
    default: return u == o.u;
  }
}

void Metadata::set(std::string key, MetaValue value) {
  for (auto& kv : entries_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  entries_.emplace_back(std::move(key), std::move(value));
}

const MetaValue* Metadata::find(std::string_view key) const {
  for (const auto& kv : entries_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

bool Metadata::erase(std::string_view key) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->first == key) {
      entries_.erase(it);
      return true;
    }
  return false;
}

std::optional<std::string> Metadata::get_string(std::string_view key) const {
  const MetaValue* v = find(key);
  if (!v || v->type != MetaType::STRING) return std::nullopt;
  return v->s;
}
std::optional<int64_t> Metadata::get_int(std::string_view key) const {
  const MetaValue* v = find(key);
  return v ? v->as_int() : std::nullopt;
}
std::optional<double> Metadata::get_double(std::string_view key) const {
  const MetaValue* v = find(key);
  return v ? v->as_double() : std::nullopt;
}
std::optional<bool> Metadata::get_bool(std::string_view key) const {
  const MetaValue* v = find(key);
  if (!v || v->type != MetaType::BOOL) return std::nullopt;
  return v->u != 0;
}

}  // namespace ss
