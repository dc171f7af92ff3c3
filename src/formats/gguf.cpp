// GGUF v2/v3 reader and writer (spec: github.com/ggml-org/ggml docs/gguf.md). The reader walks the
// header, the typed KVs and the tensor infos of a mapped file with a bounds-checked cursor and
// builds Tensors that point into the mapping; every count, length and offset is checked against the
// bytes left and against ParseLimits before it is used, and every failure names the byte offset of
// the field that is wrong. The writer streams the same layout back, in store order, so a file made
// by llama.cpp comes back byte for byte. This file is not a model loader (what the KVs and tensor
// names mean is model/'s business) and it does not convert dtypes. To support one more value type,
// extend MetaType (metadata.h) and the two switches marked "one case per MetaType"; one more tensor
// type is one row in the dtype table (src/core/dtype.cpp).
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "safeshrink/formats.h"

namespace ss {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

constexpr uint8_t kGgufMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint64_t kMaxWrittenDims = 4;  // GGML_MAX_DIMS: llama.cpp refuses files with more
constexpr std::string_view kAlignmentKey = "general.alignment";
// Smallest encodings, used to refuse a count before anything is allocated for it:
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;               // empty key, type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;   // empty name, n_dims 0, type, offset
constexpr uint64_t kMinStringBytes = 8;                    // an empty string is its length
constexpr uint64_t kMinNestedArrayBytes = 4 + 8;           // element type and count of an empty array
// Arrays inside arrays, counted over the whole file. Each costs a MetaValue (~150 bytes) for 12
// bytes of file, so without a budget a 1 GB file could ask for 12 GB. llama.cpp reads none.
constexpr uint64_t kMaxNestedArraysPerFile = 1u << 20;

std::string hex_bytes(const uint8_t* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

// Index of the first byte that breaks UTF-8 (overlong forms, surrogates and code points past
// U+10FFFF are broken too), or npos when the text is valid.
size_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

// 'name' for messages: at most 80 bytes, cut on a character boundary.
std::string quoted(std::string_view name) {
  constexpr size_t kMax = 80;
  if (name.size() <= kMax) return "'" + std::string(name) + "'";
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
  return "'" + std::string(name.substr(0, cut)) + "...'";
}

uint32_t byte_swapped(uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
}

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Rounds up to a multiple of a power of two; false when the result does not fit 64 bits.
bool align_up(uint64_t v, uint64_t alignment, uint64_t* out) {
  const uint64_t mask = alignment - 1;
  if (v > std::numeric_limits<uint64_t>::max() - mask) return false;
  *out = (v + mask) & ~mask;
  return true;
}

// A read position over untrusted bytes. Every read checks the bytes left first; errors name the
// file and the offset where the field starts.
class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, uint64_t size, const std::string& file) : data_(data), size_(size), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& file() const { return file_; }

  Status need(uint64_t n, std::string_view what) const {
    if (n <= remaining()) return ok_status();
    return corrupt(file_, pos_, what, std::to_string(n) + " bytes",
                   "only " + std::to_string(remaining()) + " bytes before the end of the file");
  }

  template <class T>
  Status read(std::string_view what, T* out) {
    SS_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return ok_status();
  }

  // Takes n bytes (already known to be there or checked here) and returns where they start.
  Status take(uint64_t n, std::string_view what, const uint8_t** out) {
    SS_RETURN_IF_ERROR(need(n, what));
    *out = data_ + pos_;
    pos_ += n;
    return ok_status();
  }

  // A GGUF string: u64 length, then that many bytes (no terminator). The field is named
  // WHAT, or WHAT[INDEX] when INDEX >= 0 (built only on error: vocabularies have 10^5 strings).
  Status read_string(std::string_view what, int64_t index, uint64_t max_len, bool require_utf8, std::string* out) {
    auto label = [&](std::string_view suffix) {
      std::string l(what);
      if (index >= 0) l.append("[").append(std::to_string(index)).append("]");
      return l.append(suffix);
    };
    const uint64_t start = pos_;
    uint64_t len = 0;
    if (remaining() < sizeof len) return need(sizeof len, label(" length"));
    std::memcpy(&len, data_ + pos_, sizeof len);
    if (len > max_len)
      return corrupt(file_, start, label(" length"), "<= " + std::to_string(max_len) + " bytes", std::to_string(len));
    pos_ += sizeof len;
    if (len > remaining()) {
      const uint64_t left = remaining();
      pos_ = start;
      return corrupt(file_, start, label(" length"), "<= " + std::to_string(left) + " (the bytes left after it)",
                     std::to_string(len));
    }
    const char* p = reinterpret_cast<const char*>(data_ + pos_);
    if (require_utf8) {
      const size_t bad = first_invalid_utf8(std::string_view(p, len));
      if (bad != std::string_view::npos) {
        const size_t show = std::min<size_t>(4, len - bad);
        return corrupt(file_, pos_, label(""), "valid UTF-8",
                       "byte " + hex_bytes(reinterpret_cast<const uint8_t*>(p) + bad, show) + " at index " +
                           std::to_string(bad));
      }
    }
    out->assign(p, len);
    pos_ += len;
    return ok_status();
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& file_;
};

// ---- reading KV values ----

// What a parse may still spend, over the whole file.
struct ParseBudget {
  uint64_t nested_arrays = kMaxNestedArraysPerFile;
};

Status read_array(ByteCursor& c, int depth, const ParseLimits& limits, ParseBudget& budget, const std::string& what,
                  MetaValue* out);

// A scalar of file type T, widened into the MetaValue field that holds it.
template <class T, class Field>
Status read_scalar(ByteCursor& c, const std::string& what, Field* field) {
  T v{};
  SS_RETURN_IF_ERROR(c.read(what, &v));
  *field = static_cast<Field>(v);
  return ok_status();
}

// One scalar or string or array of type `type` (one case per MetaType).
Status read_value(ByteCursor& c, MetaType type, int depth, const ParseLimits& limits, ParseBudget& budget,
                  const std::string& what, MetaValue* out) {
  out->type = type;
  switch (type) {
    case MetaType::U8: return read_scalar<uint8_t>(c, what, &out->u);
    case MetaType::BOOL: return read_scalar<uint8_t>(c, what, &out->u);
    case MetaType::I8: return read_scalar<int8_t>(c, what, &out->i);
    case MetaType::U16: return read_scalar<uint16_t>(c, what, &out->u);
    case MetaType::I16: return read_scalar<int16_t>(c, what, &out->i);
    case MetaType::U32: return read_scalar<uint32_t>(c, what, &out->u);
    case MetaType::I32: return read_scalar<int32_t>(c, what, &out->i);
    case MetaType::F32: return read_scalar<float>(c, what, &out->f);
    case MetaType::U64: return read_scalar<uint64_t>(c, what, &out->u);
    case MetaType::I64: return read_scalar<int64_t>(c, what, &out->i);
    case MetaType::F64: return read_scalar<double>(c, what, &out->f);
    case MetaType::STRING: return c.read_string(what, -1, limits.max_string, /*require_utf8=*/false, &out->s);
    case MetaType::ARRAY: return read_array(c, depth + 1, limits, budget, what, out);
  }
  return internal_error("read_value: unhandled MetaType");
}

// An array body: u32 element type, u64 count, elements. `depth` is 1 for an array that is a KV's
// value, 2 for an array inside it, ...
Status read_array(ByteCursor& c, int depth, const ParseLimits& limits, ParseBudget& budget, const std::string& what,
                  MetaValue* out) {
  if (depth > limits.max_nesting)
    return corrupt(c.file(), c.pos(), what + ": array nesting",
                   "<= " + std::to_string(limits.max_nesting) + " levels", std::to_string(depth));
  out->type = MetaType::ARRAY;
  const uint64_t elem_pos = c.pos();
  uint32_t elem_raw = 0;
  SS_RETURN_IF_ERROR(c.read(what + ": array element type", &elem_raw));
  if (!meta_type_valid(elem_raw))
    return corrupt(c.file(), elem_pos, what + ": array element type", "a GGUF value type 0..12",
                   std::to_string(elem_raw));
  const auto elem = static_cast<MetaType>(elem_raw);
  out->elem = elem;
  const uint64_t count_pos = c.pos();
  uint64_t count = 0;
  SS_RETURN_IF_ERROR(c.read(what + ": array count", &count));
  if (count > limits.max_array)
    return corrupt(c.file(), count_pos, what + ": array count", "<= " + std::to_string(limits.max_array),
                   std::to_string(count));
  const uint64_t elem_size = meta_type_size(elem);
  const uint64_t min_elem_bytes =
      elem == MetaType::STRING ? kMinStringBytes : elem == MetaType::ARRAY ? kMinNestedArrayBytes : elem_size;
  if (count > c.remaining() / min_elem_bytes)
    return corrupt(c.file(), count_pos, what + ": array count",
                   "<= " + std::to_string(c.remaining() / min_elem_bytes) + " (" + meta_type_name(elem) +
                       " elements that fit in the " + std::to_string(c.remaining()) + " bytes left)",
                   std::to_string(count));
  out->count = count;
  if (elem == MetaType::STRING) {
    out->strings.resize(count);
    for (uint64_t k = 0; k < count; ++k)
      SS_RETURN_IF_ERROR(c.read_string(what, static_cast<int64_t>(k), limits.max_string, /*require_utf8=*/false,
                                       &out->strings[k]));
  } else if (elem == MetaType::ARRAY) {
    if (count > budget.nested_arrays)
      return corrupt(c.file(), count_pos, what + ": array count",
                     "<= " + std::to_string(budget.nested_arrays) + " (arrays inside arrays left of the " +
                         std::to_string(kMaxNestedArraysPerFile) + " a file may hold)",
                     std::to_string(count));
    budget.nested_arrays -= count;
    out->nested.resize(count);
    for (uint64_t k = 0; k < count; ++k)
      SS_RETURN_IF_ERROR(
          read_array(c, depth + 1, limits, budget, what + "[" + std::to_string(k) + "]", &out->nested[k]));
  } else {
    const uint8_t* p = nullptr;
    SS_RETURN_IF_ERROR(c.take(count * elem_size, what + ": array elements", &p));
    out->packed.assign(p, p + count * elem_size);
  }
  return ok_status();
}

// ---- reading tensor infos ----

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major (reverse of ne)
  uint64_t offset = 0;         // relative to the data section
  uint64_t nbytes = 0;
  uint64_t offset_field_pos = 0;  // where the offset field is in the file, for errors
};

Status read_tensor_info(ByteCursor& c, const ParseLimits& limits, uint64_t alignment, TensorInfo* info) {
  const std::string& file = c.file();
  SS_RETURN_IF_ERROR(c.read_string("tensor name", -1, limits.max_string, /*require_utf8=*/true, &info->name));
  const std::string who = "tensor " + quoted(info->name);

  const uint64_t dims_pos = c.pos();
  uint32_t n_dims = 0;
  SS_RETURN_IF_ERROR(c.read(who + ": n_dims", &n_dims));
  if (n_dims > limits.max_dims)
    return corrupt(file, dims_pos, who + ": n_dims", "<= " + std::to_string(limits.max_dims), std::to_string(n_dims));
  if (n_dims > c.remaining() / sizeof(uint64_t))
    return corrupt(file, dims_pos, who + ": n_dims",
                   "<= " + std::to_string(c.remaining() / sizeof(uint64_t)) + " (ne[] that fit in the bytes left)",
                   std::to_string(n_dims));

  const uint64_t ne_pos = c.pos();
  std::vector<int64_t> ne(n_dims);
  int64_t numel = 1;
  for (uint32_t j = 0; j < n_dims; ++j) {
    const uint64_t pos = c.pos();
    uint64_t v = 0;
    SS_RETURN_IF_ERROR(c.read(who + ": ne[" + std::to_string(j) + "]", &v));
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return corrupt(file, pos, who + ": ne[" + std::to_string(j) + "]", "<= 2^63-1", std::to_string(v));
    ne[j] = static_cast<int64_t>(v);
    if (ne[j] != 0 && numel > std::numeric_limits<int64_t>::max() / ne[j])
      return corrupt(file, pos, who + ": element count", "a product of ne[] that fits 63 bits",
                     "an overflow at ne[" + std::to_string(j) + "] = " + std::to_string(v));
    numel *= ne[j];
  }

  const uint64_t type_pos = c.pos();
  uint32_t ggml_type = 0;
  SS_RETURN_IF_ERROR(c.read(who + ": ggml type", &ggml_type));
  const std::optional<DType> dtype = dtype_from_ggml(ggml_type);
  if (!dtype)
    return Status(StatusCode::UNSUPPORTED,
                  corrupt(file, type_pos, who + ": ggml type", "a type id this build knows (see the dtype table)",
                          "unknown type id " + std::to_string(ggml_type))
                      .message());
  info->dtype = *dtype;

  info->offset_field_pos = c.pos();
  SS_RETURN_IF_ERROR(c.read(who + ": data offset", &info->offset));
  if (info->offset % alignment != 0)
    return corrupt(file, info->offset_field_pos, who + ": data offset",
                   "a multiple of the alignment " + std::to_string(alignment), std::to_string(info->offset));

  info->shape.assign(ne.rbegin(), ne.rend());
  const DTypeInfo& ti = dtype_info(info->dtype);
  const int64_t ne0 = n_dims == 0 ? 1 : ne[0];
  if (ne0 % ti.block_size != 0)
    return corrupt(file, ne_pos, who + ": ne[0]",
                   std::string("a multiple of the ") + ti.name + " block size " + std::to_string(ti.block_size),
                   std::to_string(ne0));
  Result<uint64_t> nbytes = tensor_nbytes(info->dtype, info->shape);
  if (!nbytes.ok())
    return corrupt(file, ne_pos, who + ": shape", std::string("a byte size of ") + ti.name + " x shape that fits 64 bits",
                   nbytes.status().message());
  info->nbytes = *nbytes;
  return ok_status();
}

// The one parser: BYTES is the whole file.
Result<TensorStore> parse_gguf(std::shared_ptr<const Buffer> bytes, const std::string& file, const ParseLimits& limits) {
  ByteCursor c(bytes->data(), bytes->size(), file);

  const uint8_t* magic = nullptr;
  SS_RETURN_IF_ERROR(c.take(4, "GGUF magic", &magic));
  if (std::memcmp(magic, kGgufMagic, 4) != 0)
    return corrupt(file, 0, "GGUF magic", "47 47 55 46 (\"GGUF\")", hex_bytes(magic, 4));

  uint32_t version = 0;
  SS_RETURN_IF_ERROR(c.read("GGUF version", &version));
  if (version == 1)
    return corrupt(file, 4, "GGUF version", "2 or 3", "1 (GGUF v1 used 32-bit counts and is not supported)");
  if (byte_swapped(version) == 2 || byte_swapped(version) == 3)
    return Status(StatusCode::UNSUPPORTED,
                  corrupt(file, 4, "GGUF version", "2 or 3 little-endian",
                          "big-endian GGUF v" + std::to_string(byte_swapped(version)) + " (not supported)")
                      .message());
  if (version != 2 && version != 3)
    return corrupt(file, 4, "GGUF version", "2 or 3", std::to_string(version));

  const uint64_t n_tensors_pos = c.pos();
  uint64_t n_tensors = 0, n_kv = 0;
  SS_RETURN_IF_ERROR(c.read("tensor count", &n_tensors));
  const uint64_t n_kv_pos = c.pos();
  SS_RETURN_IF_ERROR(c.read("KV count", &n_kv));
  if (n_tensors > limits.max_tensors)
    return corrupt(file, n_tensors_pos, "tensor count", "<= " + std::to_string(limits.max_tensors),
                   std::to_string(n_tensors));
  if (n_kv > limits.max_kv)
    return corrupt(file, n_kv_pos, "KV count", "<= " + std::to_string(limits.max_kv), std::to_string(n_kv));
  if (n_kv > c.remaining() / kMinKvBytes)
    return corrupt(file, n_kv_pos, "KV count",
                   "<= " + std::to_string(c.remaining() / kMinKvBytes) + " (KVs that fit in the " +
                       std::to_string(c.remaining()) + " bytes left)",
                   std::to_string(n_kv));

  TensorStore store;
  store.format = "gguf";
  std::unordered_set<std::string> keys;
  keys.reserve(n_kv);
  uint64_t alignment = kDefaultAlignment;
  ParseBudget budget;
  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t key_pos = c.pos();
    std::string key;
    SS_RETURN_IF_ERROR(c.read_string("key of KV", static_cast<int64_t>(k), limits.max_string, /*require_utf8=*/true, &key));
    if (!keys.insert(key).second)
      return corrupt(file, key_pos, "key of KV[" + std::to_string(k) + "]", "unique keys", "a second " + quoted(key));
    const std::string who = "KV " + quoted(key);
    const uint64_t type_pos = c.pos();
    uint32_t type_raw = 0;
    SS_RETURN_IF_ERROR(c.read(who + ": value type", &type_raw));
    if (!meta_type_valid(type_raw))
      return corrupt(file, type_pos, who + ": value type", "a GGUF value type 0..12", std::to_string(type_raw));
    const uint64_t value_pos = c.pos();
    MetaValue value;
    SS_RETURN_IF_ERROR(read_value(c, static_cast<MetaType>(type_raw), 0, limits, budget, who, &value));
    if (key == kAlignmentKey) {
      if (value.type != MetaType::U32)
        return corrupt(file, type_pos, who + ": value type", "u32", meta_type_name(value.type));
      if (!is_power_of_two(value.u))
        return corrupt(file, value_pos, who, "a nonzero power of two", std::to_string(value.u));
      alignment = value.u;
    }
    store.meta.append_new(std::move(key), std::move(value));
  }

  if (n_tensors > c.remaining() / kMinTensorInfoBytes)
    return corrupt(file, n_tensors_pos, "tensor count",
                   "<= " + std::to_string(c.remaining() / kMinTensorInfoBytes) + " (tensor infos that fit in the " +
                       std::to_string(c.remaining()) + " bytes left after the KVs)",
                   std::to_string(n_tensors));
  std::vector<TensorInfo> infos(n_tensors);
  std::unordered_map<std::string_view, uint64_t> seen;
  seen.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const uint64_t name_pos = c.pos();
    SS_RETURN_IF_ERROR(read_tensor_info(c, limits, alignment, &infos[k]));
    if (!seen.emplace(infos[k].name, k).second)
      return corrupt(file, name_pos, "tensor name", "unique tensor names",
                     "a second tensor named " + quoted(infos[k].name) + " (first is tensor " +
                         std::to_string(seen[infos[k].name]) + ")");
  }

  uint64_t data_start = 0;
  if (!align_up(c.pos(), alignment, &data_start))
    return corrupt(file, c.pos(), "data section start", "an aligned offset that fits 64 bits", "an overflow");
  const uint64_t file_size = bytes->size();
  const uint64_t data_bytes = file_size > data_start ? file_size - data_start : 0;
  for (const TensorInfo& t : infos)
    if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset)
      return corrupt(file, t.offset_field_pos, "tensor " + quoted(t.name) + ": data",
                     "offset + " + std::to_string(t.nbytes) + " bytes <= " + std::to_string(data_bytes) +
                         " (the data section from byte " + std::to_string(data_start) + " to the end of the file)",
                     "offset " + std::to_string(t.offset));

  // No two tensors share a byte: sort by offset and keep the furthest end seen so far.
  std::vector<uint64_t> order(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](uint64_t a, uint64_t b) {
    return infos[a].offset != infos[b].offset ? infos[a].offset < infos[b].offset : a < b;
  });
  uint64_t furthest_end = 0, furthest = 0;
  for (uint64_t k : order) {
    const TensorInfo& t = infos[k];
    if (t.nbytes == 0) continue;
    if (t.offset < furthest_end)
      return corrupt(file, t.offset_field_pos, "tensor " + quoted(t.name) + ": data offset",
                     ">= " + std::to_string(furthest_end) + " (the end of tensor " + quoted(infos[furthest].name) +
                         ", no overlap)",
                     std::to_string(t.offset));
    furthest_end = t.offset + t.nbytes;
    furthest = k;
  }

  store.tensors.reserve(n_tensors);
  for (TensorInfo& info : infos) {
    Tensor t;
    t.name = std::move(info.name);
    t.dtype = info.dtype;
    t.shape = std::move(info.shape);
    t.buffer = bytes;
    t.offset = data_start + info.offset;
    t.nbytes = info.nbytes;
    SS_RETURN_IF_ERROR(store.add(std::move(t)));
  }
  return store;
}

// ---- writing ----

// A FILE* with a large stdio buffer and a sticky error: small writes are buffered, large ones
// pass through, and the first failure is reported once at the end.
class StreamingFile {
 public:
  explicit StreamingFile(std::string path) : path_(std::move(path)) {}
  ~StreamingFile() {
    if (f_) std::fclose(f_);
  }
  StreamingFile(const StreamingFile&) = delete;
  StreamingFile& operator=(const StreamingFile&) = delete;

  Status open() {
    f_ = std::fopen(path_.c_str(), "wb");
    if (!f_) return io_error(path_ + ": open for writing: " + std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, 1u << 20);
    return ok_status();
  }
  void put(const void* p, size_t n) {
    if (failed_ || n == 0) return;
    if (std::fwrite(p, 1, n, f_) != n) failed_ = true;
    written_ += n;
  }
  template <class T>
  void put_le(T v) { put(&v, sizeof v); }
  void put_string(std::string_view s) {
    put_le<uint64_t>(s.size());
    put(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t kZeros[256] = {};
    uint64_t target = 0;
    align_up(written_, alignment, &target);
    while (written_ < target) put(kZeros, static_cast<size_t>(std::min<uint64_t>(target - written_, sizeof kZeros)));
  }
  uint64_t written() const { return written_; }
  Status close() {
    const bool close_failed = std::fclose(f_) != 0;
    f_ = nullptr;
    if (failed_ || close_failed) return io_error(path_ + ": write failed: " + std::strerror(errno));
    return ok_status();
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  bool failed_ = false;
  uint64_t written_ = 0;
};

// Checks that a MetaValue's parts agree with its type before anything is written.
Status check_meta_value(const MetaValue& v, const std::string& who, int depth) {
  const auto raw = static_cast<uint32_t>(v.type);
  if (!meta_type_valid(raw)) return invalid_argument(who + ": value type " + std::to_string(raw) + " is not a GGUF type");
  auto out_of_range = [&](const std::string& value) {
    return invalid_argument(who + ": " + value + " does not fit " + meta_type_name(v.type));
  };
  switch (v.type) {
    case MetaType::U8: case MetaType::BOOL: if (v.u > 0xFF) return out_of_range(std::to_string(v.u)); break;
    case MetaType::U16: if (v.u > 0xFFFF) return out_of_range(std::to_string(v.u)); break;
    case MetaType::U32: if (v.u > 0xFFFFFFFFull) return out_of_range(std::to_string(v.u)); break;
    case MetaType::I8: if (v.i < -128 || v.i > 127) return out_of_range(std::to_string(v.i)); break;
    case MetaType::I16: if (v.i < -32768 || v.i > 32767) return out_of_range(std::to_string(v.i)); break;
    case MetaType::I32:
      if (v.i < std::numeric_limits<int32_t>::min() || v.i > std::numeric_limits<int32_t>::max())
        return out_of_range(std::to_string(v.i));
      break;
    case MetaType::ARRAY: {
      if (depth + 1 > ParseLimits{}.max_nesting)
        return invalid_argument(who + ": arrays nested deeper than " + std::to_string(ParseLimits{}.max_nesting) +
                                " levels (readers refuse them)");
      const auto elem_raw = static_cast<uint32_t>(v.elem);
      if (!meta_type_valid(elem_raw))
        return invalid_argument(who + ": array element type " + std::to_string(elem_raw) + " is not a GGUF type");
      if (v.elem == MetaType::STRING) {
        if (v.strings.size() != v.count)
          return invalid_argument(who + ": count " + std::to_string(v.count) + " but " +
                                  std::to_string(v.strings.size()) + " strings");
      } else if (v.elem == MetaType::ARRAY) {
        if (v.nested.size() != v.count)
          return invalid_argument(who + ": count " + std::to_string(v.count) + " but " +
                                  std::to_string(v.nested.size()) + " nested arrays");
        for (size_t k = 0; k < v.nested.size(); ++k) {
          const std::string sub = who + "[" + std::to_string(k) + "]";
          if (v.nested[k].type != MetaType::ARRAY)
            return invalid_argument(sub + ": an element of an array of arrays is not an array");
          SS_RETURN_IF_ERROR(check_meta_value(v.nested[k], sub, depth + 1));
        }
      } else {
        const uint64_t size = meta_type_size(v.elem);
        if (v.count > std::numeric_limits<uint64_t>::max() / size || v.packed.size() != v.count * size)
          return invalid_argument(who + ": count " + std::to_string(v.count) + " of " + meta_type_name(v.elem) +
                                  " but " + std::to_string(v.packed.size()) + " packed bytes");
      }
      break;
    }
    default: break;
  }
  return ok_status();
}

void write_array_body(StreamingFile& w, const MetaValue& v);

// One case per MetaType.
void write_value(StreamingFile& w, const MetaValue& v) {
  switch (v.type) {
    case MetaType::U8: w.put_le(static_cast<uint8_t>(v.u)); return;
    case MetaType::BOOL: w.put_le(static_cast<uint8_t>(v.u)); return;
    case MetaType::I8: w.put_le(static_cast<int8_t>(v.i)); return;
    case MetaType::U16: w.put_le(static_cast<uint16_t>(v.u)); return;
    case MetaType::I16: w.put_le(static_cast<int16_t>(v.i)); return;
    case MetaType::U32: w.put_le(static_cast<uint32_t>(v.u)); return;
    case MetaType::I32: w.put_le(static_cast<int32_t>(v.i)); return;
    case MetaType::F32: w.put_le(static_cast<float>(v.f)); return;
    case MetaType::U64: w.put_le(static_cast<uint64_t>(v.u)); return;
    case MetaType::I64: w.put_le(static_cast<int64_t>(v.i)); return;
    case MetaType::F64: w.put_le(static_cast<double>(v.f)); return;
    case MetaType::STRING: w.put_string(v.s); return;
    case MetaType::ARRAY: write_array_body(w, v); return;
  }
}

void write_array_body(StreamingFile& w, const MetaValue& v) {
  w.put_le(static_cast<uint32_t>(v.elem));
  w.put_le<uint64_t>(v.count);
  if (v.elem == MetaType::STRING) {
    for (const std::string& s : v.strings) w.put_string(s);
  } else if (v.elem == MetaType::ARRAY) {
    for (const MetaValue& sub : v.nested) write_array_body(w, sub);
  } else {
    w.put(v.packed.data(), v.packed.size());
  }
}

// The alignment to write with, from the options, else meta, else 32.
Result<uint32_t> resolve_alignment(const TensorStore& store, const GgufWriteOptions& opts) {
  if (opts.alignment != 0) {
    if (!is_power_of_two(opts.alignment))
      return invalid_argument("GGUF alignment " + std::to_string(opts.alignment) + " is not a power of two");
    return opts.alignment;
  }
  if (const MetaValue* v = store.meta.find(kAlignmentKey)) {
    if (v->type != MetaType::U32)
      return invalid_argument(std::string(kAlignmentKey) + " is " + meta_type_name(v->type) + ", GGUF wants u32");
    if (!is_power_of_two(v->u))
      return invalid_argument(std::string(kAlignmentKey) + " = " + std::to_string(v->u) + " is not a power of two");
    return static_cast<uint32_t>(v->u);
  }
  return kDefaultAlignment;
}

Status check_tensor_for_gguf(const Tensor& t) {
  const std::string who = "tensor " + quoted(t.name);
  if (first_invalid_utf8(t.name) != std::string_view::npos) return invalid_argument(who + ": name is not valid UTF-8");
  if (dtype_info(t.dtype).ggml_type < 0)
    return invalid_argument(who + ": dtype " + dtype_name(t.dtype) + " has no GGUF type");
  if (t.shape.size() > kMaxWrittenDims)
    return invalid_argument(who + ": " + std::to_string(t.shape.size()) + " dimensions, GGUF allows " +
                            std::to_string(kMaxWrittenDims));
  Result<uint64_t> need = tensor_nbytes(t.dtype, t.shape);
  if (!need.ok()) return invalid_argument(who + ": " + need.status().message());
  if (*need != t.nbytes)
    return invalid_argument(who + ": " + std::to_string(t.nbytes) + " bytes, but " + dtype_name(t.dtype) + " x " +
                            t.shape_string() + " needs " + std::to_string(*need));
  if (t.nbytes > 0) {
    if (!t.buffer) return invalid_argument(who + ": no bytes");
    const uint64_t size = t.buffer->size();
    if (t.offset > size || t.nbytes > size - t.offset)
      return invalid_argument(who + ": bytes [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                              ") past the end of its " + std::to_string(size) + "-byte buffer");
  }
  return ok_status();
}

}  // namespace

Result<TensorStore> read_gguf_memory(std::shared_ptr<const Buffer> bytes, const std::string& name,
                                     const ParseLimits& limits) {
  if (!bytes) return invalid_argument(name + ": no bytes");
  return parse_gguf(std::move(bytes), name, limits);
}

Result<TensorStore> read_gguf(const std::string& path, const ParseLimits& limits) {
  SS_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  SS_ASSIGN_OR_RETURN(TensorStore store, parse_gguf(std::move(file), path, limits));
  store.path = path;
  return store;
}

Result<uint32_t> read_gguf_version(const std::string& path) {
  SS_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  ByteCursor c(file->data(), file->size(), path);
  const uint8_t* magic = nullptr;
  SS_RETURN_IF_ERROR(c.take(4, "GGUF magic", &magic));
  if (std::memcmp(magic, kGgufMagic, 4) != 0)
    return corrupt(path, 0, "GGUF magic", "47 47 55 46 (\"GGUF\")", hex_bytes(magic, 4));
  uint32_t version = 0;
  SS_RETURN_IF_ERROR(c.read("GGUF version", &version));
  return version;
}

Status write_gguf(const TensorStore& store, const std::string& path, const GgufWriteOptions& opts) {
  if (opts.version != 2 && opts.version != 3)
    return invalid_argument("GGUF version " + std::to_string(opts.version) + ": this writer writes 2 or 3");
  SS_ASSIGN_OR_RETURN(const uint32_t alignment, resolve_alignment(store, opts));

  // Check everything before the first byte goes out.
  std::unordered_set<std::string_view> keys;
  for (const auto& [key, value] : store.meta.entries()) {
    const std::string who = "KV " + quoted(key);
    if (first_invalid_utf8(key) != std::string_view::npos) return invalid_argument(who + ": key is not valid UTF-8");
    if (!keys.insert(key).second) return invalid_argument(who + ": duplicate key");
    SS_RETURN_IF_ERROR(check_meta_value(value, who, 0));
  }
  std::unordered_set<std::string_view> names;
  for (const Tensor& t : store.tensors) {
    SS_RETURN_IF_ERROR(check_tensor_for_gguf(t));
    if (!names.insert(t.name).second) return invalid_argument("tensor " + quoted(t.name) + ": duplicate name");
  }
  const bool meta_has_alignment = store.meta.find(kAlignmentKey) != nullptr;
  const bool append_alignment = !meta_has_alignment && alignment != kDefaultAlignment;

  const std::string tmp = path + ".tmp";
  StreamingFile w(tmp);
  SS_RETURN_IF_ERROR(w.open());
  w.put(kGgufMagic, 4);
  w.put_le<uint32_t>(opts.version);
  w.put_le<uint64_t>(store.tensors.size());
  w.put_le<uint64_t>(store.meta.size() + (append_alignment ? 1 : 0));
  for (const auto& [key, value] : store.meta.entries()) {
    w.put_string(key);
    w.put_le(static_cast<uint32_t>(value.type));
    if (key == kAlignmentKey)
      w.put_le<uint32_t>(alignment);  // the alignment the data below follows
    else
      write_value(w, value);
  }
  if (append_alignment) {
    w.put_string(kAlignmentKey);
    w.put_le(static_cast<uint32_t>(MetaType::U32));
    w.put_le<uint32_t>(alignment);
  }
  uint64_t offset = 0;
  for (const Tensor& t : store.tensors) {
    w.put_string(t.name);
    w.put_le<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) w.put_le<uint64_t>(static_cast<uint64_t>(*it));
    w.put_le<uint32_t>(static_cast<uint32_t>(dtype_info(t.dtype).ggml_type));
    w.put_le<uint64_t>(offset);
    if (!align_up(offset + t.nbytes, alignment, &offset)) {
      std::remove(tmp.c_str());
      return invalid_argument("tensor " + quoted(t.name) + ": data section larger than 2^64 bytes");
    }
  }
  // llama.cpp's writers pad the data section start only when there is data (gguf-py writes a
  // tensor-less vocabulary file without it), and pad after every tensor, the last one included.
  if (!store.tensors.empty()) w.pad_to(alignment);
  for (const Tensor& t : store.tensors) {
    w.put(t.data(), static_cast<size_t>(t.nbytes));
    w.pad_to(alignment);
  }
  Status st = w.close();
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return st;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return io_error(path + ": rename from " + tmp + ": " + std::strerror(e));
  }
  return ok_status();
}

}  // namespace ss
