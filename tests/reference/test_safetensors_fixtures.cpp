// safetensors against files we did not write (../shared/fixtures): the dequantization references
// (made with llama.cpp's gguf-py) read by our reader must equal, bit for bit, the raw .f32 dumps
// that ggml's to_float produced independently; and GGUF -> safetensors -> GGUF must give back the
// llama.cpp-made GGUF byte for byte (tensors as U8 + dtype/shape keys, metadata as typed JSON).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "safeshrink/formats.h"
#include "test_support.h"

using namespace ss;
namespace fs = std::filesystem;

namespace {

const char* const kKquantTypes[] = {"q2_k", "q3_k_m", "q4_0", "q4_1", "q4_k", "q5_0", "q5_1", "q5_k", "q6_k", "q8_0"};

}  // namespace

TEST(SafetensorsFixtures, DequantReferencesMatchTheRawDumps) {
  SS_REQUIRE_SHARED();
  const std::string dir = test::fixtures_dir() + "/kquants/reference/dequant/";
  for (const char* type : kKquantTypes) {
    const std::string name = std::string("random-llama-") + type;
    auto store = read_safetensors(dir + name + ".dequant.safetensors");
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    // README section 6: four tensors, row-major shapes of the kquants model (n_embd 256, n_ff 768,
    // 4 KV heads x 32 = 128, vocab 512).
    ASSERT_EQ(store->tensors.size(), 4u) << name;
    const std::pair<const char*, std::vector<int64_t>> shapes[] = {{"token_embd.weight", {512, 256}},
                                                                   {"blk.0.attn_k.weight", {128, 256}},
                                                                   {"blk.1.ffn_down.weight", {256, 768}},
                                                                   {"blk.3.attn_v.weight", {128, 256}}};
    for (const auto& [tensor, shape] : shapes) {
      const Tensor* t = store->find(tensor);
      ASSERT_NE(t, nullptr) << name << " " << tensor;
      EXPECT_EQ(t->dtype, DType::F32);
      EXPECT_EQ(t->shape, shape) << name << " " << tensor;
    }
    // blk.0.attn_k.weight: gguf-py's dequantization (in the safetensors) vs ggml's to_float (the
    // raw dump), both llama.cpp's, bit for bit (README: 0 ULP).
    const auto raw = test::read_bytes(dir + name + ".blk.0.attn_k.weight.f32");
    const Tensor* k = store->find("blk.0.attn_k.weight");
    ASSERT_EQ(raw.size(), k->nbytes) << name;
    EXPECT_EQ(std::memcmp(raw.data(), k->data(), raw.size()), 0) << name;
    // __metadata__: plain strings; "types" is a JSON text naming the GGUF type.
    auto types = store->meta.get_string("types");
    ASSERT_TRUE(types.has_value()) << name;
    EXPECT_NE(types->find("\"blk.0.attn_k.weight\""), std::string::npos) << *types;
    EXPECT_EQ(store->meta.get_string("source_gguf"), name + ".gguf");
  }
}

TEST(SafetensorsFixtures, StoriesDequantFilesHaveEveryTensor) {
  SS_REQUIRE_SHARED();
  // stories260K: 48 tensors (quantize logs), e.g. ffn_down ne [172, 64] -> row-major [64, 172].
  for (const char* v : {"f16", "q8_0", "q4_0", "q4_k_m"}) {
    auto store = read_safetensors(test::fixtures_dir() + "/stories260K/reference/dequant/stories260K-" + v +
                                  ".dequant.safetensors");
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    EXPECT_EQ(store->tensors.size(), 48u) << v;
    const Tensor* down = store->find("blk.4.ffn_down.weight");
    ASSERT_NE(down, nullptr);
    EXPECT_EQ(down->shape, (std::vector<int64_t>{64, 172}));
    const Tensor* k = store->find("blk.0.attn_k.weight");
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->shape, (std::vector<int64_t>{32, 64}));
    // Every weight: the f32 GGUF's data section (1185376 bytes of file, data from 14176 per
    // tests/py/gguf_dump.py; every tensor is a multiple of 32 bytes, so no padding) / 4 bytes.
    EXPECT_EQ(store->total_elements(), (1185376 - 14176) / 4) << v;
  }
}

TEST(SafetensorsFixtures, GgufThroughSafetensorsComesBackByteIdentical) {
  SS_REQUIRE_SHARED();
  const std::string out = test::temp_dir("st-gguf-trip");
  const std::string files[] = {"stories260K/stories260K-q4_k_m.gguf", "stories260K/stories260K-f16.gguf",
                               "kquants/random-llama-q4_k.gguf", "kquants/random-llama-q3_k_m.gguf",
                               "kquants/random-llama-q6_k.gguf"};
  for (const auto& rel : files) {
    const std::string src = test::fixtures_dir() + "/" + rel;
    auto gguf = read_gguf(src);
    ASSERT_TRUE(gguf.ok()) << gguf.status().to_string();
    const std::string st = out + "/trip.safetensors";
    ASSERT_TRUE(write_safetensors(*gguf, st).ok()) << rel;
    auto back = read_safetensors(st);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    ASSERT_EQ(back->tensors.size(), gguf->tensors.size()) << rel;
    for (size_t i = 0; i < gguf->tensors.size(); ++i) {
      const Tensor& a = gguf->tensors[i];
      const Tensor& b = back->tensors[i];
      ASSERT_EQ(b.name, a.name);
      EXPECT_EQ(b.dtype, a.dtype) << a.name;
      EXPECT_EQ(b.shape, a.shape) << a.name;
      ASSERT_EQ(b.nbytes, a.nbytes) << a.name;
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes), 0) << a.name;
    }
    ASSERT_EQ(back->meta.size(), gguf->meta.size()) << rel;
    for (size_t i = 0; i < gguf->meta.size(); ++i) {
      EXPECT_EQ(back->meta.entries()[i].first, gguf->meta.entries()[i].first) << rel;
      EXPECT_TRUE(back->meta.entries()[i].second == gguf->meta.entries()[i].second) << gguf->meta.entries()[i].first;
    }
    // Written back as GGUF: the very bytes llama.cpp wrote.
    const std::string again = out + "/trip.gguf";
    ASSERT_TRUE(write_gguf(*back, again).ok()) << rel;
    EXPECT_TRUE(test::read_bytes(again) == test::read_bytes(src)) << rel << ": GGUF -> safetensors -> GGUF changed bytes";
  }
}
