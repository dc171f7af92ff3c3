// GGUF <-> HF layout conversion of a real model (stories260K, ../shared/fixtures): the HF-layout
// store (HF names, q/k rows moved to rotate-half order, config.json) must compute the same logits as
// the GGUF file under our forward pass — whose NORM and NEOX paths are each checked against
// llama.cpp and PyTorch elsewhere — and converting back must give the original bytes.
// Tolerance 1e-4: the same float32 math in a different row order of q/k.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/model.h"
#include "test_support.h"

using namespace ss;

namespace {

std::vector<float> logits_of(std::shared_ptr<const TensorStore> store, const std::vector<int32_t>& ids) {
  auto m = LlamaModel::load(store);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  if (!m.ok()) return {};
  KvCache cache = m->new_cache(static_cast<int64_t>(ids.size()));
  std::vector<float> logits(ids.size() * m->config().vocab_size);
  Status st = m->forward(ids.data(), static_cast<int64_t>(ids.size()), cache, logits.data(), true);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return logits;
}

}  // namespace

TEST(LlamaLayout, NamesTranslateBothWays) {
  EXPECT_EQ(llama_gguf_name("model.layers.12.self_attn.q_proj.weight").value(), "blk.12.attn_q.weight");
  EXPECT_EQ(llama_hf_name("blk.3.ffn_down.weight").value(), "model.layers.3.mlp.down_proj.weight");
  EXPECT_EQ(llama_hf_name("output.weight").value(), "lm_head.weight");
  EXPECT_EQ(llama_gguf_name("blk.0.attn_k.bias").value(), "blk.0.attn_k.bias");
  EXPECT_FALSE(llama_gguf_name("blk.x.attn_q.weight").has_value());
  EXPECT_FALSE(llama_gguf_name("model.layers..mlp.up_proj.weight").has_value());
  EXPECT_FALSE(llama_hf_name("vision_tower.weight").has_value());
}

TEST(LlamaLayout, PermutationMatchesTheHfConverterStatement) {
  // The HF->GGUF permutation as convert_hf_to_gguf states it for one head of 8 rows:
  // w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2): GGUF row 2i = HF row i, 2i+1 = HF row i+hd/2.
  auto t = Tensor::zeros("q", DType::F32, {8, 1});
  ASSERT_TRUE(t.ok());
  float* v = t->mutable_data_as<float>();
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(i);
  auto norm = permute_rope_rows(*t, 1, RopeOrder::NEOX, RopeOrder::NORM);
  ASSERT_TRUE(norm.ok());
  const float expect[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(norm->data_as<float>()[i], expect[i]) << i;
  auto back = permute_rope_rows(*norm, 1, RopeOrder::NORM, RopeOrder::NEOX);
  ASSERT_TRUE(back.ok());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(back->data_as<float>()[i], static_cast<float>(i));
  EXPECT_FALSE(permute_rope_rows(*t, 3, RopeOrder::NEOX, RopeOrder::NORM).ok());
}

TEST(LlamaLayout, StoriesInHfLayoutComputesTheSameLogitsAndConvertsBackBitExact) {
  SS_REQUIRE_SHARED();
  for (const char* variant : {"f32", "q8_0"}) {
    SCOPED_TRACE(variant);
    auto gguf = read_gguf(test::fixtures_dir() + "/stories260K/stories260K-" + std::string(variant) + ".gguf");
    ASSERT_TRUE(gguf.ok()) << gguf.status().to_string();
    auto hf = llama_to_hf_layout(*gguf);
    ASSERT_TRUE(hf.ok()) << hf.status().to_string();
    ASSERT_NE(hf->find("model.layers.0.self_attn.q_proj.weight"), nullptr);
    ASSERT_TRUE(hf->meta.get_string("hf.config_json").has_value());
    auto cfg = llama_config_from_store(*hf);
    ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
    EXPECT_EQ(cfg->rope_order, RopeOrder::NEOX);

    const std::vector<int32_t> ids = {1, 403, 407, 261, 378, 300, 429, 262, 307, 270, 280, 341};
    auto a = logits_of(std::make_shared<const TensorStore>(*gguf), ids);
    auto b = logits_of(std::make_shared<const TensorStore>(*hf), ids);
    ASSERT_EQ(a.size(), b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
    EXPECT_LT(worst, 1e-4);

    auto again = llama_to_gguf_layout(*hf);
    ASSERT_TRUE(again.ok()) << again.status().to_string();
    ASSERT_EQ(again->tensors.size(), gguf->tensors.size());
    for (const Tensor& t : gguf->tensors) {
      const Tensor* u = again->find(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      ASSERT_EQ(u->nbytes, t.nbytes) << t.name;
      EXPECT_EQ(std::memcmp(u->data(), t.data(), t.nbytes), 0) << t.name;
    }
    auto cfg2 = llama_config_from_store(*again);
    ASSERT_TRUE(cfg2.ok()) << cfg2.status().to_string();
    EXPECT_EQ(cfg2->summary(), llama_config_from_store(*gguf)->summary());
  }
}
