// The GGUF reader and writer against llama.cpp-made files in ../shared/fixtures (stories260K,
// kquants, tokenizers). References, none of them our own output: the fixture README (tensor counts,
// shapes, model dimensions, vocabulary sizes), llama-quantize's logs (the type and ne[] of every
// tensor), an independent Python reader written from the spec (tests/py/gguf_dump.py: every KV's
// key, type and scalar value, every tensor info, the data section start), and the original bytes
// (read -> write must give the file back byte for byte). Not here: malformed files
// (tests/unit/test_gguf.cpp). To cover one more fixture, drop it into one of the folders below.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "safeshrink/formats.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace ss {
namespace {

std::vector<std::string> fixture_ggufs() {
  std::vector<std::string> out;
  for (const char* dir : {"stories260K", "kquants", "tokenizers"})
    for (const auto& e : fs::directory_iterator(fs::path(test::fixtures_dir()) / dir))
      if (e.path().extension() == ".gguf") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string temp_file(const std::string& name) {
  static const std::string dir = test::temp_dir("gguf-fixtures");
  return dir + "/" + name;
}

// ne[] as GGUF writes it: the reverse of our row-major shape.
std::vector<int64_t> ne_of(const Tensor& t) { return std::vector<int64_t>(t.shape.rbegin(), t.shape.rend()); }

void expect_same_store(const TensorStore& a, const TensorStore& b, const std::string& file) {
  ASSERT_EQ(a.meta.size(), b.meta.size()) << file;
  for (size_t k = 0; k < a.meta.size(); ++k) {
    EXPECT_EQ(a.meta.entries()[k].first, b.meta.entries()[k].first) << file;
    EXPECT_TRUE(a.meta.entries()[k].second == b.meta.entries()[k].second) << file << " " << a.meta.entries()[k].first;
  }
  ASSERT_EQ(a.tensors.size(), b.tensors.size()) << file;
  for (size_t k = 0; k < a.tensors.size(); ++k) {
    const Tensor& x = a.tensors[k];
    const Tensor& y = b.tensors[k];
    EXPECT_EQ(x.name, y.name) << file;
    EXPECT_EQ(x.dtype, y.dtype) << file << " " << x.name;
    EXPECT_EQ(x.shape, y.shape) << file << " " << x.name;
    ASSERT_EQ(x.nbytes, y.nbytes) << file << " " << x.name;
    EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.nbytes)) << file << " " << x.name;
  }
}

TEST(GgufFixtures, AllFilesReadAndAgreeWithAnIndependentReader) {
  SS_REQUIRE_SHARED();
  SS_REQUIRE_PYTHON("json", "struct");
  const std::vector<std::string> files = fixture_ggufs();
  ASSERT_EQ(files.size(), 5u + 11u + 12u) << "README: 5 stories260K, 11 kquants, 12 vocabulary GGUFs";
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    Result<TensorStore> r = read_gguf(file);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(*read_gguf_version(file), 3u);
    std::string out;
    ASSERT_EQ(test::run_python("py/gguf_dump.py", file, &out), 0) << out;
    const nlohmann::json ref = nlohmann::json::parse(out);

    const auto& kvs = ref["kv"];
    ASSERT_EQ(r->meta.size(), kvs.size());
    for (size_t k = 0; k < kvs.size(); ++k) {
      const auto& [key, v] = r->meta.entries()[k];
      const auto& want = kvs[k];
      ASSERT_EQ(key, want["key"].get<std::string>());
      ASSERT_EQ(static_cast<int>(v.type), want["type"].get<int>()) << key;
      if (v.type == MetaType::ARRAY) {
        EXPECT_EQ(static_cast<int>(v.elem), want["elem"].get<int>()) << key;
        EXPECT_EQ(v.count, want["count"].get<uint64_t>()) << key;
      } else if (v.type == MetaType::STRING) {
        std::string hex;
        for (unsigned char c : v.s) {
          static const char* kDigits = "0123456789abcdef";
          hex += kDigits[c >> 4];
          hex += kDigits[c & 15];
        }
        EXPECT_EQ(hex, want["hex"].get<std::string>()) << key;
      } else if (v.type == MetaType::F32 || v.type == MetaType::F64) {
        EXPECT_EQ(v.f, std::stod(want["value"].get<std::string>())) << key;  // repr round-trips exactly
      } else if (v.type == MetaType::I8 || v.type == MetaType::I16 || v.type == MetaType::I32 ||
                 v.type == MetaType::I64) {
        EXPECT_EQ(v.i, want["value"].get<int64_t>()) << key;
      } else {
        EXPECT_EQ(v.u, want["value"].get<uint64_t>()) << key;
      }
    }

    const auto& tis = ref["tensors"];
    const uint64_t data_start = ref["data_start"].get<uint64_t>();
    ASSERT_EQ(r->tensors.size(), tis.size());
    for (size_t k = 0; k < tis.size(); ++k) {
      const Tensor& t = r->tensors[k];
      EXPECT_EQ(t.name, tis[k]["name"].get<std::string>());
      EXPECT_EQ(ne_of(t), tis[k]["ne"].get<std::vector<int64_t>>()) << t.name;
      EXPECT_EQ(dtype_info(t.dtype).ggml_type, tis[k]["ggml_type"].get<int>()) << t.name;
      EXPECT_EQ(t.offset, data_start + tis[k]["offset"].get<uint64_t>()) << t.name;
      EXPECT_EQ(t.buffer->size(), ref["file_size"].get<uint64_t>());
    }
  }
}

TEST(GgufFixtures, KquantsModelMatchesTheReadme) {
  SS_REQUIRE_SHARED();
  // README section 3: n_embd 256, n_ff 768, 4 layers, 8/4 heads, vocab 512, numpy (rows, cols) is
  // ne [cols, rows]; --pure puts the base type on all 30 matrices, the 9 norms stay f32.
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"token_embd.weight", {512, 256}}, {"output.weight", {512, 256}}, {"output_norm.weight", {256}},
      {"attn_norm.weight", {256}},       {"ffn_norm.weight", {256}},    {"attn_q.weight", {256, 256}},
      {"attn_k.weight", {128, 256}},     {"attn_v.weight", {128, 256}}, {"attn_output.weight", {256, 256}},
      {"ffn_gate.weight", {768, 256}},   {"ffn_up.weight", {768, 256}}, {"ffn_down.weight", {256, 768}},
  };
  const std::map<std::string, DType> base = {
      {"f32", DType::F32},  {"q2_k", DType::Q2_K}, {"q3_k_m", DType::Q3_K}, {"q4_0", DType::Q4_0},
      {"q4_1", DType::Q4_1}, {"q4_k", DType::Q4_K}, {"q5_0", DType::Q5_0},   {"q5_1", DType::Q5_1},
      {"q5_k", DType::Q5_K}, {"q6_k", DType::Q6_K}, {"q8_0", DType::Q8_0},
  };
  for (const auto& [suffix, dtype] : base) {
    const std::string file = test::fixtures_dir() + "/kquants/random-llama-" + suffix + ".gguf";
    SCOPED_TRACE(file);
    Result<TensorStore> r = read_gguf(file);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_EQ(r->tensors.size(), 39u);  // 4 layers x 9 + token_embd + output_norm + output
    int matrices = 0, norms = 0;
    for (const Tensor& t : r->tensors) {
      std::string role = t.name;
      if (role.rfind("blk.", 0) == 0) role = role.substr(role.find('.', 4) + 1);
      ASSERT_TRUE(shapes.count(role)) << t.name;
      EXPECT_EQ(t.shape, shapes.at(role)) << t.name;
      const bool is_norm = t.shape.size() == 1;
      (is_norm ? norms : matrices)++;
      EXPECT_EQ(t.dtype, is_norm ? DType::F32 : dtype) << t.name;
    }
    EXPECT_EQ(matrices, 30);
    EXPECT_EQ(norms, 9);
    const Metadata& m = r->meta;
    EXPECT_EQ(m.get_string("general.architecture"), "llama");
    EXPECT_EQ(m.get_int("llama.embedding_length"), 256);
    EXPECT_EQ(m.get_int("llama.feed_forward_length"), 768);
    EXPECT_EQ(m.get_int("llama.block_count"), 4);
    EXPECT_EQ(m.get_int("llama.attention.head_count"), 8);
    EXPECT_EQ(m.get_int("llama.attention.head_count_kv"), 4);
    EXPECT_EQ(m.get_int("llama.rope.dimension_count"), 32);
    EXPECT_EQ(m.get_int("llama.context_length"), 512);
    EXPECT_EQ(m.get_double("llama.rope.freq_base"), 10000.0);
    EXPECT_EQ(m.get_double("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));
    ASSERT_NE(m.find("tokenizer.ggml.tokens"), nullptr);
    EXPECT_EQ(m.find("tokenizer.ggml.tokens")->count, 512u);
    EXPECT_EQ(m.find("tokenizer.ggml.tokens")->strings.size(), 512u);
  }
}

TEST(GgufFixtures, Stories260KMatchesTheReadme) {
  SS_REQUIRE_SHARED();
  // README section 2: dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads, vocab 512; the converter
  // writes context_length 128.
  for (const char* v : {"f32", "f16", "q8_0", "q4_0", "q4_k_m"}) {
    const std::string file = test::fixtures_dir() + "/stories260K/stories260K-" + v + ".gguf";
    SCOPED_TRACE(file);
    Result<TensorStore> r = read_gguf(file);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->tensors.size(), 48u);  // 5 layers x 9 + token_embd + output_norm + output
    const Metadata& m = r->meta;
    EXPECT_EQ(m.get_int("llama.embedding_length"), 64);
    EXPECT_EQ(m.get_int("llama.feed_forward_length"), 172);
    EXPECT_EQ(m.get_int("llama.block_count"), 5);
    EXPECT_EQ(m.get_int("llama.attention.head_count"), 8);
    EXPECT_EQ(m.get_int("llama.attention.head_count_kv"), 4);
    EXPECT_EQ(m.get_int("llama.context_length"), 128);
    ASSERT_NE(m.find("tokenizer.ggml.tokens"), nullptr);
    EXPECT_EQ(m.find("tokenizer.ggml.tokens")->count, 512u);
    ASSERT_NE(r->find("blk.4.ffn_down.weight"), nullptr);
    EXPECT_EQ(r->find("blk.4.ffn_down.weight")->shape, (std::vector<int64_t>{64, 172}));
    EXPECT_EQ(r->find("blk.0.attn_k.weight")->shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(r->find("token_embd.weight")->shape, (std::vector<int64_t>{512, 64}));
  }
}

// One tensor line of a trimmed llama-quantize log:
// [   9/  48] blk.0.ffn_down.weight - [   172,    64,      1,      1], type =    f32, converting to f16 .. size = ...
struct LoggedTensor {
  std::vector<int64_t> ne;  // trailing 1s dropped
  std::string from, to;     // `to` is `from` when the line has no "converting to"
};

std::map<std::string, LoggedTensor> parse_quantize_log(const std::string& path, size_t* declared_total) {
  static const std::regex kLine(
      R"(^\[\s*\d+/\s*(\d+)\]\s+(\S+)\s+-\s+\[([^\]]*)\],\s+type\s+=\s+(\S+?),(?:\s+converting to\s+(\S+))?)");
  std::map<std::string, LoggedTensor> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, kLine)) continue;
    *declared_total = std::stoul(m[1].str());
    LoggedTensor t;
    std::string dims = m[3].str();
    for (size_t p = 0; p < dims.size();) {
      size_t q = dims.find(',', p);
      if (q == std::string::npos) q = dims.size();
      t.ne.push_back(std::stoll(dims.substr(p, q - p)));
      p = q + 1;
    }
    while (t.ne.size() > 1 && t.ne.back() == 1) t.ne.pop_back();
    t.from = m[4].str();
    t.to = m[5].matched ? m[5].str() : t.from;
    out[m[2].str()] = t;
  }
  return out;
}

TEST(GgufFixtures, TypesAndShapesMatchTheQuantizeLogs) {
  SS_REQUIRE_SHARED();
  int files = 0;
  for (const char* dir : {"stories260K", "kquants"}) {
    for (const auto& e : fs::directory_iterator(fs::path(test::fixtures_dir()) / dir / "quantize-logs")) {
      const std::string log = e.path().string();
      SCOPED_TRACE(log);
      const std::string stem = e.path().filename().string();
      const std::string gguf = (fs::path(test::fixtures_dir()) / dir /
                                (stem.substr(0, stem.find(".quantize-types.txt")) + ".gguf")).string();
      const std::string source =
          (fs::path(test::fixtures_dir()) / dir / (std::string(dir) == "kquants" ? "random-llama-f32.gguf"
                                                                                 : "stories260K-f32.gguf")).string();
      size_t total = 0;
      const std::map<std::string, LoggedTensor> logged = parse_quantize_log(log, &total);
      ASSERT_FALSE(logged.empty());
      ASSERT_EQ(logged.size(), total) << "every [i/N] line was parsed";
      for (const auto& [file, use_to] : {std::pair{gguf, true}, std::pair{source, false}}) {
        Result<TensorStore> r = read_gguf(file);
        ASSERT_TRUE(r.ok()) << r.status().to_string();
        ASSERT_EQ(r->tensors.size(), logged.size()) << file;
        for (const Tensor& t : r->tensors) {
          auto it = logged.find(t.name);
          ASSERT_NE(it, logged.end()) << file << ": " << t.name << " is not in the log";
          std::vector<int64_t> ne = ne_of(t);
          while (ne.size() > 1 && ne.back() == 1) ne.pop_back();
          EXPECT_EQ(ne, it->second.ne) << file << ": " << t.name;
          const std::string& want = use_to ? it->second.to : it->second.from;
          EXPECT_EQ(std::optional<DType>(t.dtype), dtype_from_name(want)) << file << ": " << t.name << " log says " << want;
        }
      }
      ++files;
    }
  }
  EXPECT_EQ(files, 4 + 10);
}

TEST(GgufFixtures, TokenizerVocabularySizes) {
  SS_REQUIRE_SHARED();
  // Vocabulary sizes of the public tokenizers these files were made from.
  const std::map<std::string, uint64_t> known = {
      {"ggml-vocab-llama-spm.gguf", 32000}, {"ggml-vocab-gpt-2.gguf", 50257}, {"ggml-vocab-bert-bge.gguf", 30522}};
  for (const auto& [name, n] : known) {
    Result<TensorStore> r = read_gguf(test::fixtures_dir() + "/tokenizers/" + name);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_TRUE(r->tensors.empty()) << name;
    const MetaValue* tokens = r->meta.find("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr) << name;
    EXPECT_EQ(tokens->elem, MetaType::STRING);
    EXPECT_EQ(tokens->strings.size(), n) << name;
  }
  Result<TensorStore> spm = read_gguf(test::fixtures_dir() + "/tokenizers/ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(spm.ok());
  EXPECT_EQ(spm->meta.find("tokenizer.ggml.tokens")->strings[13], "<0x0A>");  // SPM byte tokens start at 3
  EXPECT_EQ(spm->meta.find("tokenizer.ggml.scores")->count, 32000u);
}

TEST(GgufFixtures, ReadWriteGivesTheSameBytes) {
  SS_REQUIRE_SHARED();
  for (const std::string& file : fixture_ggufs()) {
    SCOPED_TRACE(file);
    Result<TensorStore> r = read_gguf(file);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const std::string out = temp_file(fs::path(file).filename().string());
    ASSERT_TRUE(write_gguf(*r, out).ok());
    Result<TensorStore> again = read_gguf(out);
    ASSERT_TRUE(again.ok()) << again.status().to_string();
    expect_same_store(*r, *again, file);
    EXPECT_TRUE(test::read_bytes(out) == test::read_bytes(file)) << "written file differs from the original";
    fs::remove(out);
  }
}

TEST(GgufFixtures, ReadTimeOfTheKquantsF32File) {
  SS_REQUIRE_SHARED();
  const std::string file = test::fixtures_dir() + "/kquants/random-llama-f32.gguf";
  constexpr int kRuns = 20;
  const auto start = std::chrono::steady_clock::now();
  uint64_t bytes = 0;
  for (int k = 0; k < kRuns; ++k) {
    Result<TensorStore> r = read_gguf(file);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    bytes = r->total_bytes();
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / kRuns;
  // The README's model in f32: embeddings and output 512x256, a norm of 256, and per layer two
  // norms, q and o 256x256, k and v 128x256, gate, up and down 768x256.
  EXPECT_EQ(bytes, 4u * (2 * 512 * 256 + 256 + 4 * (2 * 256 + 2 * 256 * 256 + 2 * 128 * 256 + 3 * 768 * 256)));
  RecordProperty("read_ms", std::to_string(ms));
  std::printf("read_gguf(random-llama-f32.gguf, 13.6 MB): %.3f ms per read (mean of %d)\n", ms, kRuns);
}

}  // namespace
}  // namespace ss
