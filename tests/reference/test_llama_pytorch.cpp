// Llama-family forward pass vs a float64 PyTorch reference written in tests/py/llama_reference.py
// (HF conventions: rotate_half RoPE, repeat_interleave GQA). Random tiny models cover GQA, MQA,
// Qwen2 q/k/v bias, tied embeddings and llama3 RoPE scaling, read from an HF folder (config.json +
// safetensors). Tolerance: 1e-4 relative to the largest |logit| (float32 engine vs float64
// reference over a few layers; measured errors are printed). Also: a padding-free batch of
// prompts of different lengths gives the same logits as one prompt at a time, and batched greedy
// generation equals one-by-one generation token for token.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "safeshrink/formats.h"
#include "safeshrink/generate.h"
#include "safeshrink/model.h"
#include "test_support.h"

using namespace ss;

namespace {

struct RefCase {
  LlamaModel model;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<double>> logits;
};

RefCase make_case(const std::string& name) {
  const std::string dir = test::temp_dir("llref-" + name);
  std::string out;
  EXPECT_EQ(test::run_python("py/llama_reference.py", dir + " " + name, &out), 0) << out;
  auto store = open_model(dir);
  EXPECT_TRUE(store.ok()) << store.status().to_string();
  auto model = LlamaModel::load(std::make_shared<const TensorStore>(std::move(store).value()));
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  RefCase c{std::move(model).value(), {}, {}};
  std::ifstream pf(dir + "/prompts.json");
  c.prompts = nlohmann::json::parse(pf).get<std::vector<std::vector<int32_t>>>();
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    auto b = test::read_bytes(dir + "/logits_" + std::to_string(i) + ".f64");
    std::vector<double> v(b.size() / 8);
    std::memcpy(v.data(), b.data(), v.size() * 8);
    c.logits.push_back(v);
  }
  return c;
}

class LlamaPyTorch : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(LlamaPyTorch, LogitsMatchFloat64ReferenceAloneAndBatched) {
  SS_REQUIRE_PYTHON("torch");
  RefCase c = make_case(GetParam());
  const int64_t V = c.model.config().vocab_size;
  // One prompt at a time.
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    const auto& ids = c.prompts[i];
    KvCache cache = c.model.new_cache(static_cast<int64_t>(ids.size()));
    std::vector<float> got(ids.size() * V);
    ASSERT_TRUE(c.model.forward(ids.data(), static_cast<int64_t>(ids.size()), cache, got.data(), true).ok());
    ASSERT_EQ(got.size(), c.logits[i].size());
    double maxref = 0, maxerr = 0;
    for (size_t j = 0; j < got.size(); ++j) {
      maxref = std::max(maxref, std::fabs(c.logits[i][j]));
      maxerr = std::max(maxerr, std::fabs(c.logits[i][j] - got[j]));
    }
    EXPECT_LT(maxerr, 1e-4 * maxref) << GetParam() << " prompt " << i;
    std::printf("[ %s prompt %zu (%zu tokens) ] max |dlogit| %.3g, max |logit| %.3g\n", GetParam().c_str(), i,
                ids.size(), maxerr, maxref);
  }
  // All prompts in one padding-free batch.
  std::vector<KvCache> caches;
  std::vector<std::vector<float>> outs;
  for (const auto& p : c.prompts) {
    caches.push_back(c.model.new_cache(static_cast<int64_t>(p.size())));
    outs.emplace_back(p.size() * V);
  }
  std::vector<LlamaModel::BatchItem> items;
  for (size_t i = 0; i < c.prompts.size(); ++i)
    items.push_back({c.prompts[i].data(), static_cast<int64_t>(c.prompts[i].size()), &caches[i], outs[i].data(), true});
  ASSERT_TRUE(c.model.forward_batch(items).ok());
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    double maxref = 0, maxerr = 0;
    for (size_t j = 0; j < outs[i].size(); ++j) {
      maxref = std::max(maxref, std::fabs(c.logits[i][j]));
      maxerr = std::max(maxerr, std::fabs(c.logits[i][j] - outs[i][j]));
    }
    EXPECT_LT(maxerr, 1e-4 * maxref) << GetParam() << " batched prompt " << i;
  }
}

TEST_P(LlamaPyTorch, BatchedGenerationEqualsOneByOne) {
  SS_REQUIRE_PYTHON("torch");
  RefCase c = make_case(GetParam());
  for (float temperature : {0.0f, 0.8f}) {
    SamplingConfig cfg;
    cfg.max_new_tokens = 12;
    cfg.temperature = temperature;
    cfg.top_k = 20;
    cfg.top_p = 0.95f;
    cfg.seed = 7;
    cfg.stop_ids = {2};
    auto batched = generate(c.model, c.prompts, cfg, 4);
    ASSERT_TRUE(batched.ok()) << batched.status().to_string();
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      // Alone, but keeping its index so it gets the same RNG stream.
      std::vector<std::vector<int32_t>> alone(i + 1, std::vector<int32_t>{1});
      alone[i] = c.prompts[i];
      auto single = generate(c.model, alone, cfg, 1);
      ASSERT_TRUE(single.ok());
      EXPECT_EQ((*single)[i].tokens, (*batched)[i].tokens) << GetParam() << " prompt " << i << " T=" << temperature;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, LlamaPyTorch, ::testing::Values("gqa", "qwen2", "tied", "llama3", "mistral"));
