// Provenance against llama.cpp: every quantization in ../shared/fixtures made by llama-quantize from
// the fixture F32 models (kquants/: q2_k ... q8_0, stories260K/: q4_0, q8_0, q4_k_m, f16) must be
// CONSISTENT with its F32 base — llama.cpp's quantizers are the independent reference for what an
// honest quantizer leaves. A copy of a file with one block scale of one tensor nudged (edited bytes
// in a temp dir) must be flagged with exactly that tensor; a model pruned here (smallest 50% of
// each weight zeroed, written with our GGUF writer) is CONSISTENT with its pruned fraction counted;
// missing / added / reshaped tensors and a changed chat template are reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>

#include "safeshrink/formats.h"
#include "safeshrink/half.h"
#include "safeshrink/integrity.h"
#include "safeshrink/kernels.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ss;

namespace {

std::string fx(const std::string& rel) { return test::fixtures_dir() + "/" + rel; }

const TensorProvenance* find(const ProvenanceReport& r, const std::string& name) {
  for (const auto& t : r.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<std::string> non_consistent(const ProvenanceReport& r) {
  std::vector<std::string> v;
  for (const auto& t : r.tensors)
    if (t.status != "consistent") v.push_back(t.name + ":" + t.status);
  return v;
}

// Offset of the f16 super-block scale `d` inside a block of type t.
size_t scale_offset(DType t) {
  switch (t) {
    case DType::Q2_K: return offsetof(BlockQ2_K, d);
    case DType::Q3_K: return offsetof(BlockQ3_K, d);
    case DType::Q6_K: return offsetof(BlockQ6_K, d);
    default: return 0;  // Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K start with d
  }
}

}  // namespace

TEST(Provenance, LlamaCppQuantizationsAreConsistent) {
  SS_REQUIRE_SHARED();
  struct Case { const char* base; const char* derived; };
  const Case cases[] = {
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q2_k.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q3_k_m.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q4_0.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q4_1.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q4_k.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q5_0.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q5_1.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q5_k.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q6_k.gguf"},
      {"kquants/random-llama-f32.gguf", "kquants/random-llama-q8_0.gguf"},
      {"stories260K/stories260K-f32.gguf", "stories260K/stories260K-q4_0.gguf"},
      {"stories260K/stories260K-f32.gguf", "stories260K/stories260K-q8_0.gguf"},
      {"stories260K/stories260K-f32.gguf", "stories260K/stories260K-q4_k_m.gguf"},
      {"stories260K/stories260K-f32.gguf", "stories260K/stories260K-f16.gguf"},
  };
  auto base_k = read_gguf(fx(cases[0].base));
  auto base_s = read_gguf(fx(cases[10].base));
  ASSERT_TRUE(base_k.ok() && base_s.ok());
  for (const auto& c : cases) {
    auto d = read_gguf(fx(c.derived));
    ASSERT_TRUE(d.ok()) << c.derived;
    const TensorStore& base = std::string(c.base).find("kquants") != std::string::npos ? *base_k : *base_s;
    auto r = check_provenance(base, *d);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    double worst = 0;
    int64_t pruned = 0;
    for (const auto& t : r->tensors) {
      worst = std::max(worst, t.max_excess);
      pruned += t.pruned;
    }
    // How close llama.cpp comes to our bound: the largest |derived - base| / bound over all weights
    // that were not inside it (0 when every weight is inside).
    EXPECT_TRUE(r->consistent) << c.derived << "\n" << provenance_report_text(*r);
    EXPECT_TRUE(r->metadata.empty()) << c.derived << ": " << (r->metadata.empty() ? "" : r->metadata[0].key);
    std::printf("%-40s %s  max |d-b|/bound %.4f  pruned-looking weights %lld\n", c.derived,
                r->consistent ? "CONSISTENT" : "TAMPERED", worst, static_cast<long long>(pruned));
  }
}

TEST(Provenance, NudgedTensorIsFlaggedAlone) {
  SS_REQUIRE_SHARED();
  const std::string dir = test::temp_dir("provenance");
  auto base = read_gguf(fx("kquants/random-llama-f32.gguf"));
  ASSERT_TRUE(base.ok());
  for (const char* file : {"random-llama-q4_0.gguf", "random-llama-q8_0.gguf", "random-llama-q4_k.gguf",
                           "random-llama-q2_k.gguf", "random-llama-q6_k.gguf", "random-llama-q5_1.gguf"}) {
    const std::string copy = dir + "/" + file;
    fs::copy_file(fx(std::string("kquants/") + file), copy, fs::copy_options::overwrite_existing);
    std::string target;
    uint64_t at = 0;
    DType type = DType::F32;
    {
      auto d = read_gguf(copy);
      ASSERT_TRUE(d.ok());
      for (const auto& t : d->tensors)
        if (t.name.find("blk.1.") == 0 && dtype_is_quantized(t.dtype)) {
          target = t.name;
          at = t.offset;  // file offset: the reader maps the whole file
          type = t.dtype;
          break;
        }
    }
    ASSERT_FALSE(target.empty()) << file;
    auto bytes = test::read_bytes(copy);
    // Scale the f16 scale of the tensor's first block by 1.5: the block's weights move by half
    // their value, many quantization steps for the large ones.
    const size_t pos = at + scale_offset(type);
    uint16_t h;
    std::memcpy(&h, &bytes[pos], 2);
    h = fp32_to_fp16(fp16_to_fp32(h) * 1.5f);
    std::memcpy(&bytes[pos], &h, 2);
    test::write_bytes(copy, bytes);
    auto d = read_gguf(copy);
    ASSERT_TRUE(d.ok());
    auto r = check_provenance(*base, *d);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->consistent) << file;
    const auto bad = non_consistent(*r);
    ASSERT_EQ(bad.size(), 1u) << file << "\n" << provenance_report_text(*r);
    EXPECT_EQ(bad[0], target + ":tampered") << file;
    const TensorProvenance* t = find(*r, target);
    ASSERT_NE(t, nullptr);
    EXPECT_GT(t->outside, 0);
    EXPECT_LE(t->outside, dtype_info(type).block_size);  // only the nudged block
    ASSERT_FALSE(t->worst.empty());
    EXPECT_LT(t->worst[0].index, dtype_info(type).block_size);
  }
}

TEST(Provenance, PrunedModelIsConsistent) {
  SS_REQUIRE_SHARED();
  auto base = read_gguf(fx("kquants/random-llama-f32.gguf"));
  ASSERT_TRUE(base.ok());
  TensorStore pruned;
  pruned.format = "gguf";
  pruned.meta = base->meta;
  int64_t zeroed = 0, total = 0;
  for (const auto& t : base->tensors) {
    auto copy = Tensor::from_bytes(t.name, t.dtype, t.shape, t.data(), t.nbytes);
    ASSERT_TRUE(copy.ok());
    if (t.shape.size() == 2 && t.dtype == DType::F32) {
      float* w = copy->mutable_data_as<float>();
      std::vector<float> mag(w, w + t.numel());
      for (auto& v : mag) v = std::fabs(v);
      std::nth_element(mag.begin(), mag.begin() + mag.size() / 2, mag.end());
      const float cut = mag[mag.size() / 2];
      for (int64_t i = 0; i < t.numel(); ++i)
        if (std::fabs(w[i]) < cut && w[i] != 0) {  // weights already 0 are not "pruned" by us
          w[i] = 0;
          ++zeroed;
        }
      total += t.numel();
    }
    ASSERT_TRUE(pruned.add(*copy).ok());
  }
  const std::string path = test::temp_dir("provenance-pruned") + "/pruned.gguf";
  ASSERT_TRUE(write_gguf(pruned, path).ok());
  auto d = read_gguf(path);
  ASSERT_TRUE(d.ok());
  auto r = check_provenance(*base, *d);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->consistent) << provenance_report_text(*r);
  int64_t counted = 0;
  for (const auto& t : r->tensors) counted += t.pruned;
  EXPECT_EQ(counted, zeroed);
  EXPECT_NEAR(static_cast<double>(zeroed) / total, 0.5, 0.01);
}

TEST(Provenance, StructureAndMetadataDifferences) {
  SS_REQUIRE_SHARED();
  auto base = read_gguf(fx("stories260K/stories260K-f32.gguf"));
  auto derived = read_gguf(fx("stories260K/stories260K-q8_0.gguf"));
  ASSERT_TRUE(base.ok() && derived.ok());
  TensorStore d2;
  d2.format = "gguf";
  d2.meta = derived->meta;
  std::string dropped, renamed, reshaped;
  for (size_t k = 0; k < derived->tensors.size(); ++k) {
    Tensor t = derived->tensors[k];
    if (k == 0) { dropped = t.name; continue; }
    if (k == 1) { renamed = t.name; t.name = "blk.99.extra.weight"; }
    if (k == 2 && t.shape.size() == 2 && t.dtype == DType::F32) { reshaped = t.name; std::swap(t.shape[0], t.shape[1]); }
    ASSERT_TRUE(d2.add(t).ok());
  }
  d2.meta.set("tokenizer.chat_template", MetaValue::of_string("{{ evil }}"));
  auto r = check_provenance(*base, d2);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->consistent);
  ASSERT_NE(find(*r, dropped), nullptr);
  EXPECT_EQ(find(*r, dropped)->status, "missing");
  EXPECT_EQ(find(*r, renamed)->status, "missing");
  EXPECT_EQ(find(*r, "blk.99.extra.weight")->status, "added");
  if (!reshaped.empty()) EXPECT_EQ(find(*r, reshaped)->status, "reshaped");
  bool template_diff = false;
  for (const auto& m : r->metadata) template_diff |= m.key == "tokenizer.chat_template";
  EXPECT_TRUE(template_diff);
}

TEST(Provenance, CliExitCodes) {
  SS_REQUIRE_SHARED();
  if (!fs::exists(test::cli_path())) GTEST_SKIP() << "safeshrink CLI not built";
  const std::string cli = "'" + test::cli_path() + "' provenance --base '" + fx("stories260K/stories260K-f32.gguf") + "' --derived ";
  std::string out;
  EXPECT_EQ(test::run_command(cli + "'" + fx("stories260K/stories260K-q4_0.gguf") + "'", &out), 0) << out;
  EXPECT_NE(out.find("CONSISTENT"), std::string::npos);
  EXPECT_EQ(test::run_command(cli + "'" + fx("kquants/random-llama-q4_0.gguf") + "'", &out), 3);
}
