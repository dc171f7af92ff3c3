// Unit tests of the GGUF reader and writer (src/formats/gguf.cpp). The reference is the GGUF spec
// itself: GgufBuilder below lays out bytes field by field from the spec (not from our writer), so
// "writer output == hand-built bytes" and "reader on hand-built bytes" check both sides against it;
// round trips then cover every KV type and several dtypes, and the corruption tests feed one broken
// field at a time, asserting the status code and the exact offset of the broken field.
// Not here: llama.cpp-made files (tests/reference/test_gguf_fixtures.cpp).
// To add a corruption case: build a TinyFile, break one field, call expect_corrupt with its offset.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "safeshrink/formats.h"
#include "test_support.h"

namespace ss {
namespace {

// ---- GGUF bytes by hand, from the spec ----

class GgufBuilder {
 public:
  std::vector<uint8_t> bytes;
  uint64_t pos() const { return bytes.size(); }
  template <class T>
  GgufBuilder& le(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // the test host is little-endian, as GGUF
    bytes.insert(bytes.end(), b, b + sizeof(T));
    return *this;
  }
  GgufBuilder& u32(uint32_t v) { return le(v); }
  GgufBuilder& u64(uint64_t v) { return le(v); }
  GgufBuilder& raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
    return *this;
  }
  GgufBuilder& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  GgufBuilder& pad_to(uint64_t a) {
    while (bytes.size() % a) bytes.push_back(0);
    return *this;
  }
  GgufBuilder& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    raw("GGUF", 4);
    return u32(version).u64(n_tensors).u64(n_kv);
  }
};

std::shared_ptr<const Buffer> as_buffer(const std::vector<uint8_t>& b) { return std::make_shared<OwnedBuffer>(b); }

Result<TensorStore> parse(const std::vector<uint8_t>& b, const ParseLimits& limits = {}) {
  return read_gguf_memory(as_buffer(b), "tiny.gguf", limits);
}

// Asserts a CORRUPT (or `code`) status whose message names the file, the offset of the broken
// field and what was expected.
void expect_corrupt(const Result<TensorStore>& r, uint64_t offset, const std::string& what_part,
                    StatusCode code = StatusCode::CORRUPT) {
  ASSERT_FALSE(r.ok()) << "parsed a broken file";
  const Status st = r.status();
  EXPECT_EQ(st.code(), code) << st.to_string();
  EXPECT_NE(st.message().find("tiny.gguf: offset " + std::to_string(offset) + ":"), std::string::npos)
      << st.to_string();
  EXPECT_NE(st.message().find("expected"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find(what_part), std::string::npos) << st.to_string();
}

// A small valid file, built by hand, whose fields can be broken one at a time. build() records
// where each field starts in `at`.
struct TinyTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t ggml_type;
  uint64_t offset;
};

struct TinyFile {
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors_in_header, n_kv_in_header;
  std::vector<std::vector<uint8_t>> kvs;  // each fully encoded: key, type, value
  std::vector<TinyTensor> tensors;
  uint64_t alignment = 32;
  uint64_t data_bytes = 64;
  std::map<std::string, uint64_t> at;

  TinyFile() {
    kvs.push_back(kv_string("general.architecture", "llama"));
    kvs.push_back(kv_u32("tiny.count", 7));
    GgufBuilder b;
    b.str("tiny.list").u32(9).u32(8).u64(2).str("a").str("");
    kvs.push_back(b.bytes);
    tensors.push_back({"a.weight", {4, 2}, 0, 0});   // f32 [2, 4]: 32 bytes
    tensors.push_back({"b.weight", {32, 1}, 2, 32});  // q4_0 [1, 32]: 18 bytes
  }
  static std::vector<uint8_t> kv_string(std::string_view key, std::string_view value) {
    GgufBuilder b;
    b.str(key).u32(8).str(value);
    return b.bytes;
  }
  static std::vector<uint8_t> kv_u32(std::string_view key, uint32_t v) {
    GgufBuilder b;
    b.str(key).u32(4).u32(v);
    return b.bytes;
  }
  std::vector<uint8_t> build() {
    GgufBuilder b;
    b.header(version, n_tensors_in_header.value_or(tensors.size()), n_kv_in_header.value_or(kvs.size()));
    at["n_tensors"] = 8;
    at["n_kv"] = 16;
    for (size_t k = 0; k < kvs.size(); ++k) {
      at[std::string("kv").append(std::to_string(k))] = b.pos();
      b.raw(kvs[k].data(), kvs[k].size());
    }
    for (size_t k = 0; k < tensors.size(); ++k) {
      std::string t = "t";
      t += std::to_string(k);
      at[t + ".name"] = b.pos();
      b.str(tensors[k].name);
      at[t + ".n_dims"] = b.pos();
      b.u32(static_cast<uint32_t>(tensors[k].ne.size()));
      at[t + ".ne"] = b.pos();
      for (uint64_t v : tensors[k].ne) b.u64(v);
      at[t + ".type"] = b.pos();
      b.u32(tensors[k].ggml_type);
      at[t + ".offset"] = b.pos();
      b.u64(tensors[k].offset);
    }
    b.pad_to(alignment);
    at["data"] = b.pos();
    for (uint64_t k = 0; k < data_bytes; ++k) b.bytes.push_back(static_cast<uint8_t>(k * 7 + 1));
    return b.bytes;
  }
};

// ---- stores in memory ----

MetaValue scalar(MetaType t, uint64_t u, int64_t i, double f) {
  MetaValue m;
  m.type = t;
  m.u = u;
  m.i = i;
  m.f = f;
  return m;
}

MetaValue nested_array(std::vector<MetaValue> inner) {
  MetaValue m;
  m.type = MetaType::ARRAY;
  m.elem = MetaType::ARRAY;
  m.count = inner.size();
  m.nested = std::move(inner);
  return m;
}

Tensor random_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  Result<Tensor> t = Tensor::zeros(name, dtype, std::move(shape));
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  std::mt19937 rng(seed);
  uint8_t* p = t->mutable_data();
  for (uint64_t k = 0; k < t->nbytes; ++k) p[k] = static_cast<uint8_t>(rng());
  return *t;
}

// Every GGUF value type, arrays of every element type, empty strings and arrays, nested arrays.
TensorStore rich_store() {
  TensorStore s;
  Metadata& m = s.meta;
  m.set("general.architecture", MetaValue::of_string("llama"));
  m.set("t.u8", scalar(MetaType::U8, 200, 0, 0));
  m.set("t.i8", scalar(MetaType::I8, 0, -100, 0));
  m.set("t.u16", scalar(MetaType::U16, 65535, 0, 0));
  m.set("t.i16", scalar(MetaType::I16, 0, -32768, 0));
  m.set("t.u32", MetaValue::of_u32(4000000000u));
  m.set("t.i32", MetaValue::of_i32(-2000000000));
  m.set("t.f32", MetaValue::of_f32(1e-5f));
  m.set("t.bool", MetaValue::of_bool(true));
  m.set("t.string", MetaValue::of_string("héllo ☕\n"));
  m.set("t.empty_string", MetaValue::of_string(""));
  m.set("t.u64", MetaValue::of_u64(0xFEDCBA9876543210ull));
  m.set("t.i64", scalar(MetaType::I64, 0, -0x7000000000000000ll, 0));
  m.set("t.f64", scalar(MetaType::F64, 0, 0, -3.141592653589793));
  m.set("t.arr_u8", MetaValue::of_array<uint8_t>(MetaType::U8, {0, 1, 255}));
  m.set("t.arr_i8", MetaValue::of_array<int8_t>(MetaType::I8, {-128, 127}));
  m.set("t.arr_u16", MetaValue::of_array<uint16_t>(MetaType::U16, {1, 65535}));
  m.set("t.arr_i16", MetaValue::of_array<int16_t>(MetaType::I16, {-5, 5, 7}));
  m.set("t.arr_u32", MetaValue::of_array<uint32_t>(MetaType::U32, {1, 2, 3, 4}));
  m.set("t.arr_i32", MetaValue::of_array<int32_t>(MetaType::I32, {-1, 0, 1}));
  m.set("t.arr_f32", MetaValue::of_array<float>(MetaType::F32, {0.5f, -0.0f, 1e30f}));
  m.set("t.arr_bool", MetaValue::of_array<uint8_t>(MetaType::BOOL, {1, 0, 1}));
  m.set("t.arr_u64", MetaValue::of_array<uint64_t>(MetaType::U64, {~0ull}));
  m.set("t.arr_i64", MetaValue::of_array<int64_t>(MetaType::I64, {-1, 1ll << 62}));
  m.set("t.arr_f64", MetaValue::of_array<double>(MetaType::F64, {1.0 / 3}));
  m.set("t.arr_str", MetaValue::of_strings({"a", "", "ünïcode", std::string("nul\0inside", 10)}));
  m.set("t.arr_empty", MetaValue::of_array<uint32_t>(MetaType::U32, {}));
  m.set("t.arr_str_empty", MetaValue::of_strings({}));
  m.set("t.arr_arr", nested_array({MetaValue::of_array<int32_t>(MetaType::I32, {1, 2}),
                                   MetaValue::of_array<int32_t>(MetaType::I32, {}),
                                   MetaValue::of_strings({"x", ""})}));
  m.set("t.arr_arr_arr", nested_array({nested_array({MetaValue::of_array<uint8_t>(MetaType::U8, {9})}),
                                       nested_array({})}));
  m.set("t.arr_arr_empty", nested_array({}));
  EXPECT_TRUE(s.add(random_tensor("f32.weight", DType::F32, {3, 5}, 1)).ok());
  EXPECT_TRUE(s.add(random_tensor("f16.weight", DType::F16, {2, 64}, 2)).ok());
  EXPECT_TRUE(s.add(random_tensor("q4_0.weight", DType::Q4_0, {4, 64}, 3)).ok());
  EXPECT_TRUE(s.add(random_tensor("q6_K.weight", DType::Q6_K, {2, 256}, 4)).ok());
  EXPECT_TRUE(s.add(random_tensor("bf16.3d", DType::BF16, {2, 3, 4}, 5)).ok());
  EXPECT_TRUE(s.add(random_tensor("i8.vec", DType::I8, {7}, 6)).ok());  // 7 bytes: the file ends with padding
  return s;
}

void expect_same_store(const TensorStore& a, const TensorStore& b) {
  ASSERT_EQ(a.meta.size(), b.meta.size());
  for (size_t k = 0; k < a.meta.size(); ++k) {
    EXPECT_EQ(a.meta.entries()[k].first, b.meta.entries()[k].first) << "KV " << k;
    EXPECT_TRUE(a.meta.entries()[k].second == b.meta.entries()[k].second) << a.meta.entries()[k].first;
  }
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t k = 0; k < a.tensors.size(); ++k) {
    const Tensor& x = a.tensors[k];
    const Tensor& y = b.tensors[k];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dtype, y.dtype) << x.name;
    EXPECT_EQ(x.shape, y.shape) << x.name;
    ASSERT_EQ(x.nbytes, y.nbytes) << x.name;
    EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.nbytes)) << x.name;
  }
}

std::string temp_file(const std::string& name) {
  static const std::string dir = test::temp_dir("gguf");
  return dir + "/" + name;
}

// ---- round trips ----

TEST(Gguf, RoundTripEveryKvTypeAndDtype) {
  const TensorStore s = rich_store();
  const std::string path = temp_file("rich.gguf");
  ASSERT_TRUE(write_gguf(s, path).ok());
  Result<TensorStore> r = read_gguf(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->format, "gguf");
  EXPECT_EQ(r->path, path);
  expect_same_store(s, *r);
  // Every tensor starts on a 32-byte boundary of the file and the file ends padded.
  for (const Tensor& t : r->tensors) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  EXPECT_EQ(test::read_bytes(path).size() % 32, 0u);
  // Writing what was read gives the same bytes.
  const std::string again = temp_file("rich2.gguf");
  ASSERT_TRUE(write_gguf(*r, again).ok());
  EXPECT_EQ(test::read_bytes(path), test::read_bytes(again));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Gguf, WriterMatchesBytesLaidOutFromTheSpec) {
  TensorStore s;
  s.meta.set("general.architecture", MetaValue::of_string("llama"));
  s.meta.set("x.n", MetaValue::of_u32(7));
  s.meta.set("x.arr", MetaValue::of_array<int16_t>(MetaType::I16, {-1, 2, 3}));
  s.meta.set("x.nested", nested_array({MetaValue::of_array<uint8_t>(MetaType::U8, {1, 2}),
                                       MetaValue::of_strings({"z"})}));
  const std::vector<float> values = {1, 2, 3, 4, 5, -6};
  ASSERT_TRUE(s.add(*Tensor::from_bytes("w", DType::F32, {2, 3}, values.data(), 24)).ok());
  std::vector<uint8_t> q8(34);
  for (size_t k = 0; k < q8.size(); ++k) q8[k] = static_cast<uint8_t>(k + 100);
  ASSERT_TRUE(s.add(*Tensor::from_bytes("q", DType::Q8_0, {1, 32}, q8.data(), 34)).ok());

  GgufBuilder b;
  b.header(3, 2, 4);
  b.str("general.architecture").u32(8).str("llama");
  b.str("x.n").u32(4).u32(7);
  b.str("x.arr").u32(9).u32(3).u64(3).le<int16_t>(-1).le<int16_t>(2).le<int16_t>(3);
  b.str("x.nested").u32(9).u32(9).u64(2);
  b.u32(0).u64(2).le<uint8_t>(1).le<uint8_t>(2);
  b.u32(8).u64(1).str("z");
  b.str("w").u32(2).u64(3).u64(2).u32(0).u64(0);     // ne = [3, 2], GGML_TYPE_F32, offset 0
  b.str("q").u32(2).u64(32).u64(1).u32(8).u64(32);   // GGML_TYPE_Q8_0 at 24 rounded up to 32
  b.pad_to(32);
  b.raw(values.data(), 24).pad_to(32);
  b.raw(q8.data(), 34).pad_to(32);

  const std::string path = temp_file("spec.gguf");
  ASSERT_TRUE(write_gguf(s, path).ok());
  EXPECT_EQ(test::read_bytes(path), b.bytes);

  Result<TensorStore> r = parse(b.bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_store(s, *r);
  EXPECT_EQ(r->tensors[0].data_as<float>()[5], -6.0f);
}

TEST(Gguf, ReadsVersion2AndCustomAlignment) {
  GgufBuilder b;
  b.header(2, 2, 1);
  b.str("general.alignment").u32(4).u32(64);
  b.str("a").u32(1).u64(8).u32(0).u64(0);     // 32 bytes at 0
  b.str("b").u32(1).u64(4).u32(26).u64(64);   // i32 x 4 at 64 (the next multiple of 64)
  b.pad_to(64);
  const uint64_t data_start = b.pos();
  for (int k = 0; k < 8; ++k) b.le<float>(static_cast<float>(k));
  b.pad_to(64);
  for (int k = 0; k < 4; ++k) b.le<int32_t>(-k);
  Result<TensorStore> r = parse(b.bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(data_start % 64, 0u);
  EXPECT_EQ(r->tensors[0].offset, data_start);
  EXPECT_EQ(r->tensors[1].offset, data_start + 64);
  EXPECT_EQ(r->tensors[1].dtype, DType::I32);
  EXPECT_EQ(r->tensors[0].data_as<float>()[7], 7.0f);
  EXPECT_EQ(r->tensors[1].data_as<int32_t>()[3], -3);
  ASSERT_EQ(r->meta.size(), 1u);  // no reader facts added
}

TEST(Gguf, WriterAlignmentOptionAndVersion) {
  TensorStore s = rich_store();
  const std::string path = temp_file("a128.gguf");
  GgufWriteOptions opts;
  opts.alignment = 128;
  opts.version = 2;
  ASSERT_TRUE(write_gguf(s, path, opts).ok());
  const std::vector<uint8_t> bytes = test::read_bytes(path);
  uint32_t version = 0;
  std::memcpy(&version, bytes.data() + 4, 4);
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(*read_gguf_version(path), 2u);
  Result<TensorStore> r = read_gguf(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  for (const Tensor& t : r->tensors) EXPECT_EQ(t.offset % 128, 0u) << t.name;
  EXPECT_EQ(bytes.size() % 128, 0u);
  // The KV that tells readers the alignment was appended, as u32.
  ASSERT_EQ(r->meta.size(), s.meta.size() + 1);
  EXPECT_EQ(r->meta.entries().back().first, "general.alignment");
  EXPECT_TRUE(r->meta.entries().back().second == MetaValue::of_u32(128));
  // Written again without options, the meta alignment is kept.
  const std::string again = temp_file("a128b.gguf");
  ASSERT_TRUE(write_gguf(*r, again, GgufWriteOptions{2, 0}).ok());
  EXPECT_EQ(test::read_bytes(again), bytes);
}

TEST(Gguf, TensorlessFileHasNoDataPadding) {
  // gguf-py writes vocabulary-only files without padding after the KVs; so does our writer.
  TensorStore s;
  s.meta.set("tokenizer.ggml.model", MetaValue::of_string("gpt2"));
  const std::string path = temp_file("vocab.gguf");
  ASSERT_TRUE(write_gguf(s, path).ok());
  GgufBuilder b;
  b.header(3, 0, 1).str("tokenizer.ggml.model").u32(8).str("gpt2");
  EXPECT_EQ(test::read_bytes(path), b.bytes);
  Result<TensorStore> r = read_gguf(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->tensors.empty());
}

TEST(Gguf, WriterRefusesWhatGgufCannotHold) {
  auto refused = [](const TensorStore& s, const std::string& name_part) {
    const std::string path = temp_file("refused.gguf");
    const Status st = write_gguf(s, path);
    EXPECT_EQ(st.code(), StatusCode::INVALID_ARGUMENT) << st.to_string();
    EXPECT_NE(st.message().find(name_part), std::string::npos) << st.to_string();
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  };
  for (DType d : {DType::U8, DType::BOOL}) {
    TensorStore s;
    ASSERT_TRUE(s.add(*Tensor::zeros("mask.weight", d, {4})).ok());
    refused(s, "mask.weight");
  }
  {
    TensorStore s;
    ASSERT_TRUE(s.add(*Tensor::zeros("five.d", DType::F32, {1, 1, 1, 1, 2})).ok());
    refused(s, "five.d");
  }
  {
    TensorStore s;
    Tensor t = *Tensor::zeros("short.bytes", DType::F32, {4});
    t.nbytes = 12;
    ASSERT_TRUE(s.add(t).ok());
    refused(s, "short.bytes");
  }
  {
    TensorStore s;
    MetaValue bad = MetaValue::of_array<uint32_t>(MetaType::U32, {1, 2});
    bad.count = 3;
    s.meta.set("bad.count", bad);
    refused(s, "bad.count");
  }
  {
    TensorStore s;
    s.meta.set("general.alignment", MetaValue::of_u32(48));
    refused(s, "general.alignment");
  }
  {
    TensorStore s;
    s.meta.set("bad\xC3\x28key", MetaValue::of_u32(1));
    refused(s, "UTF-8");
  }
  EXPECT_EQ(write_gguf(TensorStore{}, temp_file("v1.gguf"), GgufWriteOptions{1, 0}).code(),
            StatusCode::INVALID_ARGUMENT);
}

// ---- corruption: one broken field at a time ----

TEST(GgufCorrupt, TinyFileIsValid) {
  TinyFile f;
  Result<TensorStore> r = parse(f.build());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->tensors.size(), 2u);
  EXPECT_EQ(r->tensors[1].dtype, DType::Q4_0);
  EXPECT_EQ(r->tensors[1].offset, f.at["data"] + 32);
  EXPECT_EQ(r->tensors[0].shape, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(*r->meta.get_string("general.architecture"), "llama");
}

TEST(GgufCorrupt, EveryPrefixFailsCleanly) {
  // The tiny hand-built file and the rich written one: every cut before the end of the last
  // tensor's bytes is refused as CORRUPT; cuts that only lose trailing padding still read.
  TinyFile tiny;
  std::vector<std::vector<uint8_t>> files = {tiny.build()};
  const std::string path = temp_file("prefix.gguf");
  ASSERT_TRUE(write_gguf(rich_store(), path).ok());
  files.push_back(test::read_bytes(path));
  for (const auto& full : files) {
    Result<TensorStore> whole = parse(full);
    ASSERT_TRUE(whole.ok()) << whole.status().to_string();
    uint64_t end_of_data = 0;
    for (const Tensor& t : whole->tensors) end_of_data = std::max(end_of_data, t.offset + t.nbytes);
    ASSERT_LT(end_of_data, full.size());  // there is trailing padding to cut
    for (size_t n = 0; n < full.size(); ++n) {
      std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      Result<TensorStore> r = parse(cut);
      if (n < end_of_data) {
        ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
        EXPECT_EQ(r.status().code(), StatusCode::CORRUPT) << r.status().to_string();
        EXPECT_NE(r.status().message().find("tiny.gguf: offset "), std::string::npos) << r.status().to_string();
        EXPECT_NE(r.status().message().find("expected"), std::string::npos) << r.status().to_string();
      } else {
        EXPECT_TRUE(r.ok()) << n << ": " << r.status().to_string();
      }
    }
  }
  // An empty file on disk, through the mmap path.
  const std::string empty = temp_file("empty.gguf");
  test::write_bytes(empty, {});
  EXPECT_EQ(read_gguf(empty).status().code(), StatusCode::CORRUPT);
}

TEST(GgufCorrupt, BadMagic) {
  TinyFile f;
  std::vector<uint8_t> b = f.build();
  b[3] = 'X';
  expect_corrupt(parse(b), 0, "magic");
}

TEST(GgufCorrupt, Version1And4) {
  for (uint32_t v : {1u, 4u, 0u}) {
    TinyFile f;
    f.version = v;
    expect_corrupt(parse(f.build()), 4, "version");
  }
  TinyFile f;
  f.version = 1;
  const std::string path = temp_file("v1.gguf");
  test::write_bytes(path, f.build());
  EXPECT_EQ(*read_gguf_version(path), 1u);
  EXPECT_NE(read_gguf(path).status().message().find("v1"), std::string::npos);
}

TEST(GgufCorrupt, HugeCountsAreRefusedBeforeAllocating) {
  {
    TinyFile f;
    f.n_tensors_in_header = 1ull << 62;
    expect_corrupt(parse(f.build()), 8, "tensor count");
  }
  {
    TinyFile f;
    f.n_kv_in_header = 1ull << 62;
    expect_corrupt(parse(f.build()), 16, "KV count");
  }
  {
    // Under the caps, but more than the bytes left could hold.
    TinyFile f;
    f.n_tensors_in_header = 1000;
    expect_corrupt(parse(f.build()), 8, "tensor count");
    TinyFile g;
    g.n_kv_in_header = 1000;
    expect_corrupt(parse(g.build()), 16, "KV count");
  }
  {
    TinyFile f;
    GgufBuilder kv;
    kv.u64(1ull << 62).raw("key", 3);  // a key whose length field says 2^62
    f.kvs[1] = kv.bytes;
    std::vector<uint8_t> b = f.build();
    expect_corrupt(parse(b), f.at["kv1"], "length");
  }
  {
    TinyFile f;
    GgufBuilder kv;
    kv.str("s").u32(8).u64(1ull << 62);  // a string value of length 2^62
    f.kvs[1] = kv.bytes;
    std::vector<uint8_t> b = f.build();
    expect_corrupt(parse(b), f.at["kv1"] + 8 + 1 + 4, "length");
  }
  {
    TinyFile f;
    GgufBuilder kv;
    kv.str("arr").u32(9).u32(4).u64(1ull << 62);  // u32 array of 2^62 elements
    f.kvs[1] = kv.bytes;
    std::vector<uint8_t> b = f.build();
    expect_corrupt(parse(b), f.at["kv1"] + 8 + 3 + 4 + 4, "array count");
  }
  {
    TinyFile f;
    GgufBuilder kv;
    kv.str("arr").u32(9).u32(8).u64(1000000);  // a million strings in a few bytes
    f.kvs[1] = kv.bytes;
    std::vector<uint8_t> b = f.build();
    expect_corrupt(parse(b), f.at["kv1"] + 8 + 3 + 4 + 4, "array count");
  }
}

TEST(GgufCorrupt, CapsFromParseLimits) {
  TinyFile f;
  const std::vector<uint8_t> b = f.build();
  ParseLimits small;
  small.max_string = 4;  // "general.architecture" is longer
  expect_corrupt(parse(b, small), f.at["kv0"], "<= 4 bytes");
  ParseLimits few;
  few.max_tensors = 1;
  expect_corrupt(parse(b, few), 8, "tensor count");
  ParseLimits short_arrays;
  short_arrays.max_array = 1;  // tiny.list has 2 strings
  expect_corrupt(parse(b, short_arrays), f.at["kv2"] + 8 + 9 + 4 + 4, "array count");
}

TEST(GgufCorrupt, NDims9) {
  TinyFile f;
  f.tensors[0].ne = {4, 2, 1, 1, 1, 1, 1, 1, 1};
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t0.n_dims"], "n_dims");
  // Within the cap of 8 it reads (GGUF writes at most 4; ParseLimits decides).
  TinyFile g;
  g.tensors[0].ne = {4, 2, 1, 1, 1, 1, 1, 1};
  Result<TensorStore> r = parse(g.build());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->tensors[0].shape.size(), 8u);
}

TEST(GgufCorrupt, TensorOffsetPastEndOfFile) {
  TinyFile f;
  f.tensors[1].offset = 1ull << 40;
  std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t1.offset"], "data");
  // Offset in range but the bytes run past the end.
  TinyFile g;
  g.data_bytes = 40;  // b.weight needs [32, 50)
  b = g.build();
  expect_corrupt(parse(b), g.at["t1.offset"], "data");
  // Offset near 2^64: offset + nbytes must not wrap around.
  TinyFile h;
  h.tensors[1].offset = ~0ull - 31;
  b = h.build();
  expect_corrupt(parse(b), h.at["t1.offset"], "data");
}

TEST(GgufCorrupt, MisalignedOffset) {
  TinyFile f;
  f.tensors[1].offset = 36;
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t1.offset"], "multiple of the alignment 32");
}

TEST(GgufCorrupt, OverlappingTensors) {
  TinyFile f;
  f.tensors[1].offset = 0;  // b.weight over a.weight
  std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t1.offset"], "overlap");
  // The later tensor in the file may come first in the data; still refused.
  TinyFile g;
  g.tensors[0].offset = 32;
  g.tensors[1].offset = 0;
  g.tensors[0].ne = {16, 2};  // 128 bytes at 32 > ... no overlap with b at [0, 18)
  g.data_bytes = 160;
  ASSERT_TRUE(parse(g.build()).ok());
  g.tensors[1].offset = 64;  // now b sits inside a
  b = g.build();
  expect_corrupt(parse(b), g.at["t1.offset"], "overlap");
}

TEST(GgufCorrupt, DuplicateTensorNames) {
  TinyFile f;
  f.tensors[1].name = "a.weight";
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t1.name"], "a second tensor named 'a.weight'");
}

TEST(GgufCorrupt, DuplicateKeys) {
  TinyFile f;
  f.kvs[1] = TinyFile::kv_u32("general.architecture", 1);
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["kv1"], "unique keys");
}

TEST(GgufCorrupt, RowNotAMultipleOfTheBlockSize) {
  TinyFile f;
  f.tensors[1].ne = {20, 1};  // q4_0 blocks hold 32
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t1.ne"], "block size 32");
}

TEST(GgufCorrupt, ElementCountOverflow) {
  TinyFile f;
  f.tensors[0].ne = {1ull << 32, 1ull << 32};
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t0.ne"] + 8, "element count");
  TinyFile g;
  g.tensors[0].ne = {1ull << 63, 1};
  const std::vector<uint8_t> c = g.build();
  expect_corrupt(parse(c), g.at["t0.ne"], "ne[0]");
}

TEST(GgufCorrupt, InvalidUtf8KeyAndTensorName) {
  for (std::string bad : {std::string("bad\xC3\x28"), std::string("over\xC0\xAFlong"), std::string("sur\xED\xA0\x80"),
                          std::string("cut\xE2\x98")}) {
    TinyFile f;
    f.kvs[1] = TinyFile::kv_u32(bad, 1);
    std::vector<uint8_t> b = f.build();
    expect_corrupt(parse(b), f.at["kv1"] + 8, "UTF-8");
    TinyFile g;
    g.tensors[0].name = bad;
    b = g.build();
    expect_corrupt(parse(b), g.at["t0.name"] + 8, "UTF-8");
  }
  TinyFile ok;
  ok.tensors[0].name = "ünï☕😀";
  EXPECT_TRUE(parse(ok.build()).ok());
}

TEST(GgufCorrupt, UnknownGgmlType99IsUnsupported) {
  TinyFile f;
  f.tensors[0].ggml_type = 99;
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["t0.type"], "unknown type id 99", StatusCode::UNSUPPORTED);
}

TEST(GgufCorrupt, UnknownKvType13) {
  TinyFile f;
  GgufBuilder kv;
  kv.str("k").u32(13).u32(0);
  f.kvs[1] = kv.bytes;
  std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["kv1"] + 9, "value type");
  TinyFile g;
  GgufBuilder arr;
  arr.str("k").u32(9).u32(13).u64(0);  // array of an unknown element type
  g.kvs[1] = arr.bytes;
  b = g.build();
  expect_corrupt(parse(b), g.at["kv1"] + 13, "element type");
}

TEST(GgufCorrupt, AlignmentZeroOrNotAPowerOfTwo) {
  for (uint32_t a : {0u, 48u, 3u}) {
    TinyFile f;
    f.kvs[1] = TinyFile::kv_u32("general.alignment", a);
    const std::vector<uint8_t> b = f.build();
    expect_corrupt(parse(b), f.at["kv1"] + 8 + 17 + 4, "power of two");
  }
  TinyFile f;
  GgufBuilder kv;
  kv.str("general.alignment").u32(10).u64(32);  // right value, wrong type
  f.kvs[1] = kv.bytes;
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["kv1"] + 8 + 17, "u32");
}

TEST(GgufCorrupt, NestingDeeperThanTheCap) {
  // depth arrays of arrays: the KV value is depth 1, each inner level adds one.
  auto nested_kv = [](int depth) {
    GgufBuilder kv;
    kv.str("deep").u32(9);
    for (int d = 1; d < depth; ++d) kv.u32(9).u64(1);
    kv.u32(4).u64(0);
    return kv.bytes;
  };
  TinyFile ok;
  ok.kvs[1] = nested_kv(8);
  Result<TensorStore> r = parse(ok.build());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  TinyFile deep;
  deep.kvs[1] = nested_kv(9);
  const std::vector<uint8_t> b = deep.build();
  // The ninth array body starts after key (8+4), type (4) and eight (elem type, count) pairs.
  expect_corrupt(parse(b), deep.at["kv1"] + 12 + 4 + 8 * 12, "nesting");
}

TEST(GgufCorrupt, NestedArraysOverTheFileBudget) {
  // 2^20 + 1 empty arrays inside one array: every byte is there (12 per empty array), but each
  // would cost a MetaValue, so the reader refuses before building any.
  const uint64_t n = (1u << 20) + 1;
  TinyFile f;
  GgufBuilder kv;
  kv.str("many").u32(9).u32(9).u64(n);
  kv.bytes.resize(kv.bytes.size() + n * 12, 0);  // each: element type u8 (0), count 0
  f.kvs[1] = kv.bytes;
  const std::vector<uint8_t> b = f.build();
  expect_corrupt(parse(b), f.at["kv1"] + 8 + 4 + 4 + 4, "arrays inside arrays");
}

TEST(GgufCorrupt, FlippedBytesNeverEscapeTheBuffer) {
  // Not a pass/fail oracle on its own: every successful parse must keep its tensors inside the
  // buffer, and a failure must be a proper status (under ASan this also catches any stray read).
  const std::string path = temp_file("flip.gguf");
  ASSERT_TRUE(write_gguf(rich_store(), path).ok());
  const std::vector<uint8_t> full = test::read_bytes(path);
  Result<TensorStore> whole = parse(full);
  ASSERT_TRUE(whole.ok());
  const uint64_t header_end = whole->tensors.front().offset;
  std::mt19937 rng(7);
  int failures = 0;
  for (uint64_t pos = 0; pos < header_end; ++pos) {
    for (uint8_t x : {uint8_t(0xFF), uint8_t(0x80), static_cast<uint8_t>(rng() | 1)}) {
      std::vector<uint8_t> b = full;
      b[pos] ^= x;
      Result<TensorStore> r = parse(b);
      if (!r.ok()) {
        ++failures;
        EXPECT_NE(r.status().code(), StatusCode::OK);
        EXPECT_NE(r.status().message().find("offset"), std::string::npos) << r.status().to_string();
        continue;
      }
      for (const Tensor& t : r->tensors) ASSERT_LE(t.offset + t.nbytes, b.size()) << "flip at " << pos;
    }
  }
  EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace ss
