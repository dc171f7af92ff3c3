// safetensors reader/writer: round trips of every dtype (block types via U8 + metadata), typed
// metadata, a hand-built file read against values written by hand from the spec, sharded
// checkpoints and HF folders, and one corruption test per rule of the spec. Each corruption test
// checks the code and that the message names the file, the exact offset (computed here from the
// bytes we built) and what was expected. Interop with an independent Python writer/reader is in
// tests/reference/test_safetensors_python.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "safeshrink/formats.h"
#include "safeshrink/rng.h"
#include "test_support.h"

using namespace ss;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> le64(uint64_t v) {
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

// A file as the spec lays it out: u64 length, the header text verbatim, then the data bytes.
std::vector<uint8_t> file_of(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Result<TensorStore> parse(const std::vector<uint8_t>& bytes, const ParseLimits& limits = {}) {
  return read_safetensors_memory(std::make_shared<OwnedBuffer>(bytes), "mem.safetensors", limits);
}

// CORRUPT, naming the file, the offset, what was expected and a phrase of the actual problem.
void expect_corrupt(const Status& s, const std::string& file, uint64_t offset, const std::string& phrase) {
  ASSERT_EQ(s.code(), StatusCode::CORRUPT) << s.to_string();
  const std::string& m = s.message();
  EXPECT_NE(m.find(file), std::string::npos) << m;
  EXPECT_NE(m.find("offset " + std::to_string(offset) + ":"), std::string::npos) << "want offset " << offset << ": " << m;
  EXPECT_NE(m.find("expected"), std::string::npos) << m;
  EXPECT_NE(m.find(phrase), std::string::npos) << "want '" << phrase << "': " << m;
}

std::vector<uint8_t> random_bytes(Rng& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng.next_u64());
  return v;
}

Tensor random_tensor(Rng& rng, const std::string& name, DType dtype, std::vector<int64_t> shape) {
  auto nbytes = tensor_nbytes(dtype, shape);
  EXPECT_TRUE(nbytes.ok());
  auto bytes = random_bytes(rng, *nbytes);
  auto t = Tensor::from_bytes(name, dtype, std::move(shape), bytes.data(), bytes.size());
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return *t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes == b.nbytes && (a.nbytes == 0 || std::memcmp(a.data(), b.data(), a.nbytes) == 0);
}

std::string tmp_path(const std::string& tag, const std::string& file) { return test::temp_dir(tag) + "/" + file; }

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

}  // namespace

TEST(Safetensors, RoundTripEveryDtypeAndTypedMetadata) {
  Rng rng(20260101);
  TensorStore store;
  int k = 0;
  auto next_name = [&k](DType t) {  // "t30.q4_0"
    std::string name = "t";
    name += std::to_string(k++);
    name += '.';
    name += dtype_name(t);
    return name;
  };
  for (size_t d = 0; d < static_cast<size_t>(DType::COUNT); ++d) {
    const DType t = static_cast<DType>(d);
    const int64_t block = dtype_info(t).block_size;
    // 2-D, 3-D and 1-D shapes; for block types the last dimension is a whole number of blocks.
    ASSERT_TRUE(store.add(random_tensor(rng, next_name(t), t, {3, 2 * block})).ok());
    ASSERT_TRUE(store.add(random_tensor(rng, next_name(t), t, {2, 1, block})).ok());
    ASSERT_TRUE(store.add(random_tensor(rng, next_name(t), t, {block})).ok());
  }
  ASSERT_TRUE(store.add(random_tensor(rng, "scalar", DType::F32, {})).ok());
  ASSERT_TRUE(store.add(random_tensor(rng, "empty", DType::F16, {0, 4})).ok());
  ASSERT_TRUE(store.add(random_tensor(rng, "caf\xc3\xa9 \"quoted\"", DType::I32, {2})).ok());

  store.meta.set("format", MetaValue::of_string("pt"));
  store.meta.set("general.architecture", MetaValue::of_string("llama"));
  store.meta.set("llama.block_count", MetaValue::of_u32(4));
  store.meta.set("llama.attention.layer_norm_rms_epsilon", MetaValue::of_f32(1e-5f));
  store.meta.set("odd.f32.nan", MetaValue::of_f32(std::nanf("")));
  store.meta.set("odd.i32", MetaValue::of_i32(-7));
  MetaValue big;
  big.type = MetaType::U64;
  big.u = 0xFFFFFFFFFFFFFFFFull;  // does not fit a double: must survive as an integer
  store.meta.set("odd.u64", big);
  store.meta.set("odd.bool", MetaValue::of_bool(true));
  store.meta.set("odd.invalid_utf8", MetaValue::of_string(std::string("a\xff\xfe" "b", 4)));
  store.meta.set("tokenizer.ggml.tokens", MetaValue::of_strings({"<unk>", "<s>", "\xe2\x98\x95", ""}));
  store.meta.set("tokenizer.bytes", MetaValue::of_strings({"ok", std::string("\x80", 1)}));
  store.meta.set("tokenizer.ggml.scores", MetaValue::of_array(MetaType::F32, std::vector<float>{0.f, -1.5f, 3.25f}));
  store.meta.set("tokenizer.ggml.token_type", MetaValue::of_array(MetaType::I32, std::vector<int32_t>{2, 3, 1}));
  MetaValue nested;
  nested.type = MetaType::ARRAY;
  nested.elem = MetaType::ARRAY;
  nested.count = 2;
  nested.nested = {MetaValue::of_array(MetaType::U16, std::vector<uint16_t>{1, 65535}), MetaValue::of_strings({"x"})};
  store.meta.set("odd.nested", nested);
  store.meta.set("hf.tokenizer_json_path", MetaValue::of_string("/somewhere/tokenizer.json"));  // a reader fact

  const std::string path = tmp_path("st-roundtrip", "all.safetensors");
  ASSERT_TRUE(write_safetensors(store, path).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // The layout, checked from the bytes against the spec (not through our reader).
  const auto bytes = test::read_bytes(path);
  ASSERT_GE(bytes.size(), 9u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | bytes[i];
  EXPECT_EQ(n % 8, 0u) << "header padded to a multiple of 8";
  EXPECT_EQ(bytes[8], '{');
  EXPECT_EQ(bytes.size() - 8 - n, store.total_bytes()) << "data buffer = the tensors, back to back";
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + n);
  EXPECT_NE(header.find("\"safeshrink.dtype.t30.q4_0\":\"q4_0\""), std::string::npos) << header.substr(0, 400);
  EXPECT_EQ(header.find("/somewhere"), std::string::npos) << "reader paths are not written";

  auto back = read_safetensors(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->format, "safetensors");
  EXPECT_EQ(back->path, path);
  ASSERT_EQ(back->tensors.size(), store.tensors.size());
  for (size_t i = 0; i < store.tensors.size(); ++i) {
    const Tensor& a = store.tensors[i];
    const Tensor& b = back->tensors[i];
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.dtype, a.dtype) << a.name;
    EXPECT_EQ(b.shape, a.shape) << a.name;
    EXPECT_TRUE(same_bytes(a, b)) << a.name;
    EXPECT_NE(dynamic_cast<const MappedFile*>(b.buffer.get()), nullptr) << "zero copy: a view of the mapped file";
    EXPECT_EQ(b.data(), b.buffer->data() + b.offset);
  }
  // Every metadata entry comes back with its exact type, in order; our own keys are gone.
  std::vector<std::pair<std::string, MetaValue>> want;
  for (const auto& e : store.meta.entries())
    if (e.first != "hf.tokenizer_json_path") want.push_back(e);
  ASSERT_EQ(back->meta.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(back->meta.entries()[i].first, want[i].first);
    EXPECT_TRUE(back->meta.entries()[i].second == want[i].second) << want[i].first << ": " << back->meta.entries()[i].second.summary();
  }
  EXPECT_EQ(back->meta.find("odd.u64")->u, 0xFFFFFFFFFFFFFFFFull);
  EXPECT_EQ(back->meta.find("odd.invalid_utf8")->s, std::string("a\xff\xfe" "b", 4));
}

TEST(Safetensors, ReadsAHandWrittenFile) {
  // Written by hand from the spec: keys in non-data order, the data in a different order again,
  // trailing spaces after the JSON as the reference writer pads.
  const std::string header =
      "{\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]},"
      "\"__metadata__\":{\"format\":\"pt\",\"z\":\"1\",\"a\":\"2\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"c\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[16,18]}}  ";
  std::vector<uint8_t> data = {0x00, 0x00, 0xC0, 0x3F,   // 1.5f
                               0x00, 0x00, 0x00, 0xC0,   // -2.0f
                               0xF9, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,  // -7
                               0x49, 0x40};              // bf16 0x4049 = 3.140625
  auto store = parse(file_of(header, data));
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  ASSERT_EQ(store->tensors.size(), 3u);
  EXPECT_EQ(store->tensors[0].name, "a");  // data order
  EXPECT_EQ(store->tensors[1].name, "b");
  EXPECT_EQ(store->tensors[0].offset, 8 + header.size());
  // The header is not padded to 8 bytes here, so the data is unaligned: copy, never dereference.
  float f[2];
  std::memcpy(f, store->tensors[0].data(), sizeof f);
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_EQ(f[1], -2.0f);
  int64_t v;
  std::memcpy(&v, store->tensors[1].data(), 8);
  EXPECT_EQ(v, -7);
  EXPECT_EQ(store->tensors[2].dtype, DType::BF16);
  EXPECT_EQ(store->tensors[2].shape, (std::vector<int64_t>{1, 1}));
  // __metadata__ in file order, as strings.
  ASSERT_EQ(store->meta.size(), 3u);
  EXPECT_EQ(store->meta.entries()[0].first, "format");
  EXPECT_EQ(store->meta.entries()[1].first, "z");
  EXPECT_EQ(store->meta.get_string("a"), "2");
  // An empty file: "{}" and nothing else is a valid (empty) safetensors file.
  auto empty = parse(file_of("{}", {}));
  ASSERT_TRUE(empty.ok()) << empty.status().to_string();
  EXPECT_TRUE(empty->tensors.empty());
}

TEST(Safetensors, ShardedIndexAndFolders) {
  Rng rng(7);
  TensorStore part1, part2;
  ASSERT_TRUE(part1.add(random_tensor(rng, "model.embed_tokens.weight", DType::BF16, {16, 8})).ok());
  ASSERT_TRUE(part1.add(random_tensor(rng, "model.layers.0.mlp.up_proj.weight", DType::F16, {4, 8})).ok());
  ASSERT_TRUE(part2.add(random_tensor(rng, "lm_head.weight", DType::F32, {16, 8})).ok());
  part1.meta.set("format", MetaValue::of_string("pt"));
  part2.meta.set("format", MetaValue::of_string("pt"));
  const std::string dir = test::temp_dir("st-sharded");
  const std::string s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors";
  ASSERT_TRUE(write_safetensors(part2, dir + "/" + s2).ok());
  ASSERT_TRUE(write_safetensors(part1, dir + "/" + s1).ok());
  write_text(dir + "/model.safetensors.index.json",
             "{\"metadata\": {\"total_size\": 1024},\n \"weight_map\": {\n"
             "  \"lm_head.weight\": \"" + s2 + "\",\n"
             "  \"model.embed_tokens.weight\": \"" + s1 + "\",\n"
             "  \"model.layers.0.mlp.up_proj.weight\": \"" + s1 + "\"}}\n");
  const std::string config = "{\"model_type\": \"llama\", \"hidden_size\": 8}";
  write_text(dir + "/config.json", config);
  write_text(dir + "/tokenizer.json", "{}");

  auto by_index = read_safetensors(dir + "/model.safetensors.index.json");
  ASSERT_TRUE(by_index.ok()) << by_index.status().to_string();
  EXPECT_EQ(by_index->format, "safetensors");
  ASSERT_EQ(by_index->tensors.size(), 3u);
  // Shard order, then data order within a shard.
  EXPECT_EQ(by_index->tensors[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(by_index->tensors[1].name, "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(by_index->tensors[2].name, "lm_head.weight");
  EXPECT_TRUE(same_bytes(by_index->tensors[0], part1.tensors[0]));
  EXPECT_TRUE(same_bytes(by_index->tensors[2], part2.tensors[0]));
  EXPECT_EQ(by_index->meta.get_string("format"), "pt");
  EXPECT_EQ(by_index->meta.size(), 1u);

  auto folder = read_safetensors(dir);
  ASSERT_TRUE(folder.ok()) << folder.status().to_string();
  EXPECT_EQ(folder->format, "hf-folder");
  EXPECT_EQ(folder->path, dir);
  EXPECT_EQ(folder->tensors.size(), 3u);
  EXPECT_EQ(folder->meta.get_string("hf.config_json"), config);
  EXPECT_EQ(folder->meta.get_string("hf.tokenizer_json_path"), dir + "/tokenizer.json");
  EXPECT_FALSE(folder->meta.find("hf.tokenizer_config_path"));

  // A folder with one file of another name; then with two files and no index: ambiguous.
  const std::string single = test::temp_dir("st-single");
  ASSERT_TRUE(write_safetensors(part2, single + "/weights.safetensors").ok());
  auto one = read_safetensors(single);
  ASSERT_TRUE(one.ok()) << one.status().to_string();
  EXPECT_EQ(one->tensors.size(), 1u);
  ASSERT_TRUE(write_safetensors(part1, single + "/other.safetensors").ok());
  auto two = read_safetensors(single);
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("other.safetensors"), std::string::npos) << two.status().to_string();
  // model.safetensors wins over other names.
  ASSERT_TRUE(write_safetensors(part1, single + "/model.safetensors").ok());
  auto named = read_safetensors(single);
  ASSERT_TRUE(named.ok()) << named.status().to_string();
  EXPECT_EQ(named->tensors.size(), 2u);
}

// ---- corruption: one test per rule ----

namespace {
const char* kF32Pair = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
}

TEST(SafetensorsCorrupt, EveryPrefixOfAValidFileFailsCleanly) {
  Rng rng(3);
  TensorStore store;
  ASSERT_TRUE(store.add(random_tensor(rng, "w", DType::F16, {3, 5})).ok());
  ASSERT_TRUE(store.add(random_tensor(rng, "q", DType::Q4_0, {2, 32})).ok());
  ASSERT_TRUE(store.add(random_tensor(rng, "b", DType::I8, {7})).ok());
  store.meta.set("format", MetaValue::of_string("pt"));
  const std::string path = tmp_path("st-prefix", "ok.safetensors");
  ASSERT_TRUE(write_safetensors(store, path).ok());
  const auto bytes = test::read_bytes(path);
  ASSERT_TRUE(parse(bytes).ok());
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto r = parse(std::vector<uint8_t>(bytes.begin(), bytes.begin() + len));
    ASSERT_FALSE(r.ok()) << "prefix of " << len << " bytes parsed";
    ASSERT_EQ(r.status().code(), StatusCode::CORRUPT) << len << ": " << r.status().to_string();
    ASSERT_NE(r.status().message().find("mem.safetensors: offset "), std::string::npos) << r.status().message();
    ASSERT_NE(r.status().message().find("expected"), std::string::npos) << r.status().message();
  }
}

TEST(SafetensorsCorrupt, HeaderLength) {
  std::vector<uint8_t> short_file = {1, 2, 3};
  expect_corrupt(parse(short_file).status(), "mem.safetensors", 0, "8 bytes");
  // Header length one past the end of the file.
  auto f = file_of(kF32Pair, std::vector<uint8_t>(8));
  auto past = f;
  const auto len = le64(f.size() - 8 + 1);
  std::copy(len.begin(), len.end(), past.begin());
  expect_corrupt(parse(past).status(), "mem.safetensors", 0, std::to_string(f.size() - 8 + 1));
  // 2^63: over the cap long before the file size matters.
  auto huge = f;
  const auto len63 = le64(1ull << 63);
  std::copy(len63.begin(), len63.end(), huge.begin());
  expect_corrupt(parse(huge).status(), "mem.safetensors", 0, "9223372036854775808");
  // The JSON must start with '{' right after the length.
  expect_corrupt(parse(file_of(std::string(" ") + kF32Pair, std::vector<uint8_t>(8))).status(), "mem.safetensors", 8,
                 "0x20");
  // A NUL inside the header (nlohmann would stop there and accept the rest unread).
  std::string with_nul = std::string(kF32Pair) + std::string("\0junk", 5);
  expect_corrupt(parse(file_of(with_nul, std::vector<uint8_t>(8))).status(), "mem.safetensors",
                 8 + std::strlen(kF32Pair), "NUL");
  expect_corrupt(parse(file_of("{\"a\":", {})).status(), "mem.safetensors", 8 + 5, "JSON");
  expect_corrupt(parse(file_of("[1,2] ", {})).status(), "mem.safetensors", 8, "0x5b");
}

TEST(SafetensorsCorrupt, OffsetsOverlapsAndHoles) {
  const std::string f32 = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
  // Tensor end past the data.
  std::string h = "{\"a\":" + f32 + "[0,1000]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 8 + 1, "1000");
  // b starts inside a.
  h = "{\"a\":" + f32 + "[0,8]},\"b\":" + f32 + "[4,12]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(12))).status(), "mem.safetensors", 8 + h.size() + 4, "overlap");
  // A hole of 4 bytes between a and b.
  h = "{\"a\":" + f32 + "[0,8]},\"b\":" + f32 + "[12,20]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(20))).status(), "mem.safetensors", 8 + h.size() + 8, "hole of 4");
  // Bytes after the last tensor that nothing covers.
  h = "{\"a\":" + f32 + "[0,8]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(12))).status(), "mem.safetensors", 8 + h.size() + 8, "4 more bytes");
  // begin > end.
  h = "{\"a\":" + f32 + "[8,0]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 8 + 1, "begin <= end");
}

TEST(SafetensorsCorrupt, DTypeShapeAndBytes) {
  // F32 x [3] is 12 bytes, the offsets give 8.
  std::string h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "12 (F32 x [3])");
  // 2^62 elements of U8: fits int64, but not the 8 bytes of data.
  h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4611686018427387904]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "4611686018427387904");
  // 2^62 elements of F32: the byte count overflows 64 bits.
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,8]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "overflows");
  // Element count over 2^63.
  h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "overflows");
  // Negative dimension, float dimension, missing field, wrong JSON types.
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "[-2]");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "non-negative integers");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "data_offsets");
  h = "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "a string");
  h = "{\"a\":[1,2]}";
  expect_corrupt(parse(file_of(h, {})).status(), "mem.safetensors", 9, "an object");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", 9, "two non-negative");
  // Too many dimensions for the cap.
  h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(1))).status(), "mem.safetensors", 9, "got 9");
}

TEST(SafetensorsCorrupt, UnknownDTypeIsUnsupportedAndNamed) {
  for (const char* dt : {"F8_E4M3", "C64", "f32"}) {
    const std::string h = std::string("{\"a\":{\"dtype\":\"") + dt + "\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    auto r = parse(file_of(h, std::vector<uint8_t>(1)));
    ASSERT_EQ(r.status().code(), StatusCode::UNSUPPORTED) << r.status().to_string();
    EXPECT_NE(r.status().message().find(std::string("'") + dt + "'"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("mem.safetensors: offset 9"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("BF16"), std::string::npos) << "lists the known dtypes";
  }
}

TEST(SafetensorsCorrupt, DuplicateNamesAndInvalidUtf8) {
  const std::string e = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
  const std::string h = "{\"a\":" + e + ",\"a\":" + e + "}";
  const uint64_t second = 8 + h.find("\"a\"", 2);
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(8))).status(), "mem.safetensors", second, "twice");
  // Duplicates inside an entry and inside __metadata__ are refused too.
  const std::string h2 = "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  EXPECT_EQ(parse(file_of(h2, std::vector<uint8_t>(8))).status().code(), StatusCode::CORRUPT);
  const std::string h3 = "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}";
  EXPECT_EQ(parse(file_of(h3, {})).status().code(), StatusCode::CORRUPT);
  // A key with a byte that is not UTF-8: offset of that byte.
  const std::string bad = "{\"a\xff\":" + e + "}";
  expect_corrupt(parse(file_of(bad, std::vector<uint8_t>(8))).status(), "mem.safetensors", 8 + 3, "UTF-8");
  // An overlong encoding of '/' and a lone surrogate escape are not UTF-8 either.
  EXPECT_EQ(parse(file_of("{\"\xc0\xaf\":" + e + "}", std::vector<uint8_t>(8))).status().code(), StatusCode::CORRUPT);
  EXPECT_EQ(parse(file_of("{\"\\ud800\":" + e + "}", std::vector<uint8_t>(8))).status().code(), StatusCode::CORRUPT);
}

TEST(SafetensorsCorrupt, MetadataRules) {
  // Values must be strings.
  std::string h = "{\"__metadata__\":{\"k\":1}}";
  expect_corrupt(parse(file_of(h, {})).status(), "mem.safetensors", 8 + h.find("\"k\""), "a string");
  h = "{\"__metadata__\":[\"k\"]}";
  expect_corrupt(parse(file_of(h, {})).status(), "mem.safetensors", 9, "an object of strings");
  // Our dtype/shape keys must describe the stored bytes: q4_0 [1,32] is 18 bytes, not 10.
  h = "{\"__metadata__\":{\"safeshrink.dtype.w\":\"q4_0\",\"safeshrink.shape.w\":\"[1,32]\"},"
      "\"w\":{\"dtype\":\"U8\",\"shape\":[1,10],\"data_offsets\":[0,10]}}";
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(10))).status(), "mem.safetensors",
                 8 + h.find("\"safeshrink.dtype.w\""), "18 bytes");
  // A dtype key for a tensor that does not exist; a shape key without its dtype key.
  h = "{\"__metadata__\":{\"safeshrink.dtype.x\":\"q4_0\",\"safeshrink.shape.x\":\"[1,32]\"}}";
  EXPECT_EQ(parse(file_of(h, {})).status().code(), StatusCode::CORRUPT);
  h = "{\"__metadata__\":{\"safeshrink.shape.w\":\"[1,32]\"},"
      "\"w\":{\"dtype\":\"U8\",\"shape\":[1,18],\"data_offsets\":[0,18]}}";
  EXPECT_EQ(parse(file_of(h, std::vector<uint8_t>(18))).status().code(), StatusCode::CORRUPT);
  // The right byte count is accepted and restored.
  h = "{\"__metadata__\":{\"safeshrink.dtype.w\":\"q4_0\",\"safeshrink.shape.w\":\"[1,32]\"},"
      "\"w\":{\"dtype\":\"U8\",\"shape\":[1,18],\"data_offsets\":[0,18]}}";
  auto ok = parse(file_of(h, std::vector<uint8_t>(18)));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->tensors[0].dtype, DType::Q4_0);
  EXPECT_EQ(ok->tensors[0].shape, (std::vector<int64_t>{1, 32}));
  EXPECT_EQ(ok->meta.size(), 0u);
  // A typed value that lies about its count.
  h = "{\"__metadata__\":{\"safeshrink.gguf.s\":\"{\\\"type\\\":\\\"arr\\\",\\\"elem\\\":\\\"f32\\\",\\\"count\\\":3,\\\"hex\\\":\\\"00000000\\\"}\"}}";
  expect_corrupt(parse(file_of(h, {})).status(), "mem.safetensors", 8 + h.find("\"safeshrink.gguf.s\""), "3 elements");
  // A typed value nested 100000 deep is refused before anything recurses over it.
  h = "{\"__metadata__\":{\"safeshrink.gguf.k\":\"" + std::string(100000, '[') + "\"}}";
  expect_corrupt(parse(file_of(h, {})).status(), "mem.safetensors", 8 + h.find("\"safeshrink.gguf.k\""), "nesting");
}

TEST(SafetensorsCorrupt, CapsAndNesting) {
  const std::string e = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":";
  const std::string h = "{\"a\":" + e + "[0,1]},\"b\":" + e + "[1,2]},\"c\":" + e + "[2,3]}}";
  ParseLimits limits;
  limits.max_tensors = 2;
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(3)), limits).status(), "mem.safetensors", 8, "<= 2");
  ASSERT_TRUE(parse(file_of(h, std::vector<uint8_t>(3))).ok());
  std::string deep = "{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}";
  EXPECT_EQ(parse(file_of(deep, {})).status().code(), StatusCode::CORRUPT);
  limits = {};
  limits.max_header = 16;
  expect_corrupt(parse(file_of(h, std::vector<uint8_t>(3)), limits).status(), "mem.safetensors", 0, "<= 16");
}

TEST(SafetensorsCorrupt, ShardIndexRules) {
  Rng rng(11);
  TensorStore a, ac;
  ASSERT_TRUE(a.add(random_tensor(rng, "a", DType::F32, {2})).ok());
  ASSERT_TRUE(ac.add(random_tensor(rng, "a", DType::F32, {2})).ok());
  ASSERT_TRUE(ac.add(random_tensor(rng, "c", DType::F32, {2})).ok());
  const std::string dir = test::temp_dir("st-index-bad");
  ASSERT_TRUE(write_safetensors(a, dir + "/s1.safetensors").ok());
  ASSERT_TRUE(write_safetensors(ac, dir + "/s2.safetensors").ok());
  const std::string index = dir + "/model.safetensors.index.json";
  // Shard names that leave the folder.
  for (const std::string evil : {"../evil.safetensors", "/etc/passwd", "sub/x.safetensors", "..", "a\\\\b"}) {
    const std::string text = "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"" + evil + "\"}}";
    write_text(index, text);
    auto r = read_safetensors(index);
    expect_corrupt(r.status(), index, text.find("\"c\""), "plain file name");
  }
  // "a" is in both shards.
  write_text(index, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}");
  auto both = read_safetensors(index);
  ASSERT_EQ(both.status().code(), StatusCode::CORRUPT) << both.status().to_string();
  EXPECT_NE(both.status().message().find("two shards"), std::string::npos) << both.status().message();
  EXPECT_NE(both.status().message().find("s2.safetensors"), std::string::npos) << both.status().message();
  EXPECT_NE(both.status().message().find("s1.safetensors"), std::string::npos) << both.status().message();
  // Listed but absent; present but not listed; a duplicate key in the index.
  write_text(index, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}");
  expect_corrupt(read_safetensors(index).status(), index, std::string("{\"weight_map\":{\"a\":\"s1.safetensors\",").size(),
                 "absent");
  const std::string ab = test::temp_dir("st-index-unlisted");
  ASSERT_TRUE(write_safetensors(ac, ab + "/s.safetensors").ok());
  write_text(ab + "/model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s.safetensors\"}}");
  auto unlisted = read_safetensors(ab);
  ASSERT_EQ(unlisted.status().code(), StatusCode::CORRUPT);
  EXPECT_NE(unlisted.status().message().find("'c'"), std::string::npos) << unlisted.status().message();
  write_text(index, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"a\":\"s2.safetensors\"}}");
  EXPECT_EQ(read_safetensors(index).status().code(), StatusCode::CORRUPT);
  // A missing shard file is NOT_FOUND, with the index named.
  write_text(index, "{\"weight_map\":{\"a\":\"gone.safetensors\"}}");
  auto gone = read_safetensors(index);
  EXPECT_EQ(gone.status().code(), StatusCode::NOT_FOUND) << gone.status().to_string();
}

TEST(SafetensorsWriter, RefusesWhatItCannotWriteFaithfully) {
  Rng rng(5);
  const std::string path = tmp_path("st-writer", "x.safetensors");
  TensorStore dup;
  dup.tensors.push_back(random_tensor(rng, "a", DType::F32, {2}));
  dup.tensors.push_back(random_tensor(rng, "a", DType::F32, {2}));
  EXPECT_EQ(write_safetensors(dup, path).code(), StatusCode::INVALID_ARGUMENT);
  TensorStore lying;
  Tensor t = random_tensor(rng, "a", DType::F32, {2});
  t.shape = {3};
  lying.tensors.push_back(t);
  EXPECT_EQ(write_safetensors(lying, path).code(), StatusCode::INVALID_ARGUMENT);
  TensorStore reserved;
  reserved.meta.set("safeshrink.dtype.a", MetaValue::of_string("q4_0"));
  EXPECT_EQ(write_safetensors(reserved, path).code(), StatusCode::INVALID_ARGUMENT);
  TensorStore bad_name;
  bad_name.tensors.push_back(random_tensor(rng, std::string("\xff", 1), DType::F32, {2}));
  EXPECT_EQ(write_safetensors(bad_name, path).code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}
