// Structured pruning on the stories260K fixture: removing heads, FFN channels or layers must give
// exactly the model one gets by zeroing their contribution in the original (the W_o columns of the
// removed heads, the W_down columns of the removed channels, W_o and W_down of a removed layer,
// whose residual then passes unchanged). Reference: the original model's forward with those
// weights zeroed, which this test builds itself (choosing what to remove from its own scores);
// tolerance 1e-4 of the largest logit (float32 sums in a different order). The pruned stores also
// go through the GGUF writer and reader, load in LlamaModel with the rewritten config, and generate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "safeshrink/formats.h"
#include "safeshrink/generate.h"
#include "safeshrink/kernels.h"
#include "safeshrink/model.h"
#include "safeshrink/model_config.h"
#include "safeshrink/prune.h"
#include "test_support.h"

namespace {

std::shared_ptr<ss::TensorStore> fixture() {
  auto s = ss::read_gguf(ss::test::fixtures_dir() + "/stories260K/stories260K-f32.gguf");
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? std::make_shared<ss::TensorStore>(std::move(*s)) : nullptr;
}

std::vector<float> f32(const ss::TensorStore& s, const std::string& name) {
  auto v = ss::kernels::dequantize(*s.find(name));
  EXPECT_TRUE(v.ok());
  return *v;
}

// Zeroes the listed columns of a (rows x cols) matrix in store S.
void zero_cols(ss::TensorStore& s, const std::string& name, const std::vector<int64_t>& cols_to_zero) {
  for (auto& t : s.tensors) {
    if (t.name != name) continue;
    std::vector<float> v = f32(s, name);
    for (int64_t r = 0; r < t.rows(); ++r)
      for (int64_t c : cols_to_zero) v[r * t.cols() + c] = 0.0f;
    auto z = ss::Tensor::from_bytes(name, ss::DType::F32, t.shape, v.data(), v.size() * sizeof(float));
    ASSERT_TRUE(z.ok());
    t = *z;
  }
}

// Smallest `k` of `score`, ties to the lower index.
std::vector<int64_t> smallest(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[a] < score[b]; });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

std::vector<float> logits(const ss::TensorStore& store) {
  auto m = ss::LlamaModel::load(std::make_shared<const ss::TensorStore>(store));
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  if (!m.ok()) return {};
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 426, 271, 1 + 300, 89, 417};
  auto cache = m->new_cache(32);
  std::vector<float> out(prompt.size() * static_cast<size_t>(m->config().vocab_size));
  EXPECT_TRUE(m->forward(prompt.data(), static_cast<int64_t>(prompt.size()), cache, out.data(), true).ok());
  return out;
}

void expect_same_logits(const ss::TensorStore& pruned, const ss::TensorStore& zeroed) {
  const auto a = logits(pruned), b = logits(zeroed);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(b[i])));
  }
  std::printf("max |pruned - zeroed| = %.3g (max |logit| %.3g)\n", max_diff, max_abs);
  EXPECT_LE(max_diff, 1e-4 * max_abs);
}

// Writes the store as GGUF, reads it back, loads it and generates a few tokens.
void expect_roundtrip_generates(const ss::TensorStore& pruned, const std::string& tag) {
  const std::string path = ss::test::temp_dir("prune_" + tag) + "/out.gguf";
  ASSERT_TRUE(ss::write_gguf(pruned, path).ok());
  auto back = ss::read_gguf(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  auto m = ss::LlamaModel::load(std::make_shared<const ss::TensorStore>(std::move(*back)));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ss::SamplingConfig sc;
  sc.max_new_tokens = 12;
  auto gen = ss::generate(*m, {{1, 403, 407}}, sc);
  ASSERT_TRUE(gen.ok()) << gen.status().to_string();
  EXPECT_FALSE((*gen)[0].tokens.empty());
}

TEST(PruneStructured, HeadsEqualZeroedWoColumns) {
  SS_REQUIRE_SHARED();
  auto in = fixture();
  ASSERT_TRUE(in);
  auto cfg = ss::llama_config_from_store(*in);
  ASSERT_TRUE(cfg.ok());
  const int64_t hd = cfg->head_dim, group = cfg->n_heads / cfg->n_kv_heads;
  auto out = ss::prune_heads(*in, 0.25);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const int64_t remove = static_cast<int64_t>(std::nearbyint(0.25 * cfg->n_kv_heads));
  ss::TensorStore zeroed = *in;
  for (int64_t l = 0; l < cfg->n_layers; ++l) {
    const std::string o = "blk." + std::to_string(l) + ".attn_output.weight";
    const auto wo = f32(*in, o);
    const int64_t cols = cfg->n_heads * hd;
    std::vector<double> score(static_cast<size_t>(cfg->n_kv_heads), 0.0);
    for (int64_t h = 0; h < cfg->n_heads; ++h) {
      double ss = 0;
      for (int64_t r = 0; r < cfg->hidden_size; ++r)
        for (int64_t c = h * hd; c < (h + 1) * hd; ++c) ss += double(wo[r * cols + c]) * wo[r * cols + c];
      score[h / group] += std::sqrt(ss);
    }
    std::vector<int64_t> zero;
    for (int64_t kv : smallest(score, remove))
      for (int64_t c = kv * group * hd; c < (kv + 1) * group * hd; ++c) zero.push_back(c);
    zero_cols(zeroed, o, zero);
    EXPECT_EQ(out->store.find("blk." + std::to_string(l) + ".attn_q.weight")->rows(), (cfg->n_heads - remove * group) * hd);
    EXPECT_EQ(out->store.find("blk." + std::to_string(l) + ".attn_k.weight")->rows(), (cfg->n_kv_heads - remove) * hd);
    EXPECT_EQ(out->store.find(o)->cols(), (cfg->n_heads - remove * group) * hd);
  }
  auto cfg2 = ss::llama_config_from_store(out->store);
  ASSERT_TRUE(cfg2.ok()) << cfg2.status().to_string();
  EXPECT_EQ(cfg2->n_heads, cfg->n_heads - remove * group);
  EXPECT_EQ(cfg2->n_kv_heads, cfg->n_kv_heads - remove);
  EXPECT_EQ(cfg2->head_dim, hd);
  expect_same_logits(out->store, zeroed);
  expect_roundtrip_generates(out->store, "heads");
}

TEST(PruneStructured, ChannelsEqualZeroedDownColumns) {
  SS_REQUIRE_SHARED();
  auto in = fixture();
  ASSERT_TRUE(in);
  auto cfg = ss::llama_config_from_store(*in);
  ASSERT_TRUE(cfg.ok());
  const int64_t ff = cfg->intermediate_size, d = cfg->hidden_size;
  auto out = ss::prune_channels(*in, 0.25);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const int64_t remove = static_cast<int64_t>(std::nearbyint(0.25 * ff));
  ss::TensorStore zeroed = *in;
  for (int64_t l = 0; l < cfg->n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const auto up = f32(*in, p + "ffn_up.weight"), down = f32(*in, p + "ffn_down.weight");
    std::vector<double> score(static_cast<size_t>(ff));
    for (int64_t j = 0; j < ff; ++j) {
      double su = 0, sd = 0;
      for (int64_t c = 0; c < d; ++c) su += double(up[j * d + c]) * up[j * d + c];
      for (int64_t r = 0; r < d; ++r) sd += double(down[r * ff + j]) * down[r * ff + j];
      score[j] = std::sqrt(su) * std::sqrt(sd);
    }
    zero_cols(zeroed, p + "ffn_down.weight", smallest(score, remove));
    EXPECT_EQ(out->store.find(p + "ffn_gate.weight")->rows(), ff - remove);
    EXPECT_EQ(out->store.find(p + "ffn_down.weight")->cols(), ff - remove);
  }
  auto cfg2 = ss::llama_config_from_store(out->store);
  ASSERT_TRUE(cfg2.ok());
  EXPECT_EQ(cfg2->intermediate_size, ff - remove);
  expect_same_logits(out->store, zeroed);
  expect_roundtrip_generates(out->store, "channels");
}

TEST(PruneStructured, LayerRemovalEqualsZeroedResidualWrites) {
  SS_REQUIRE_SHARED();
  auto in = fixture();
  ASSERT_TRUE(in);
  auto cfg = ss::llama_config_from_store(*in);
  ASSERT_TRUE(cfg.ok());
  std::vector<double> score(static_cast<size_t>(cfg->n_layers));
  for (int64_t l = 0; l < cfg->n_layers; ++l)
    for (const char* t : {".attn_output.weight", ".ffn_down.weight"}) {
      double ss = 0;
      for (float v : f32(*in, "blk." + std::to_string(l) + t)) ss += double(v) * v;
      score[l] += std::sqrt(ss);
    }
  const int64_t removed = smallest(score, 1)[0];
  auto out = ss::prune_layers(*in, 1);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ss::TensorStore zeroed = *in;
  for (const char* t : {".attn_output.weight", ".ffn_down.weight"}) {
    const std::string name = "blk." + std::to_string(removed) + t;
    std::vector<int64_t> all(static_cast<size_t>(zeroed.find(name)->cols()));
    std::iota(all.begin(), all.end(), 0);
    zero_cols(zeroed, name, all);
  }
  auto cfg2 = ss::llama_config_from_store(out->store);
  ASSERT_TRUE(cfg2.ok());
  EXPECT_EQ(cfg2->n_layers, cfg->n_layers - 1);
  EXPECT_EQ(out->store.find("blk." + std::to_string(cfg->n_layers - 1) + ".attn_q.weight"), nullptr);
  expect_same_logits(out->store, zeroed);
  expect_roundtrip_generates(out->store, "layers");
}

TEST(PruneStructured, RefusesToRemoveEverything) {
  SS_REQUIRE_SHARED();
  auto in = fixture();
  ASSERT_TRUE(in);
  EXPECT_FALSE(ss::prune_heads(*in, 1.0).ok());
  EXPECT_FALSE(ss::prune_channels(*in, 1.0).ok());
  EXPECT_FALSE(ss::prune_layers(*in, 5).ok());
  EXPECT_FALSE(ss::prune_layers(*in, -1).ok());
}

}  // namespace
