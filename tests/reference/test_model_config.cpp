// LlamaConfig from HF config.json and from GGUF metadata. The HF texts are the published
// config.json files of Llama-3.1-8B, Mistral-7B-v0.1 and Qwen2.5-0.5B (values as released on the
// Hugging Face hub); the GGUF values are those ../shared/fixtures/README.md gives for stories260K
// and the kquants random Llama (and tests/py/gguf_dump.py prints from the files).
#include <gtest/gtest.h>

#include "safeshrink/formats.h"
#include "safeshrink/model_config.h"
#include "test_support.h"

using namespace ss;

namespace {

const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
  "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
  "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";

const char* kQwen25_05B = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

}  // namespace

TEST(ModelConfigHf, Llama31WithLlama3RopeScaling) {
  auto c = llama_config_from_hf_json(kLlama31, "Llama-3.1-8B/config.json");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->arch, "llama");
  EXPECT_EQ(c->vocab_size, 128256);
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->intermediate_size, 14336);
  EXPECT_EQ(c->n_layers, 32);
  EXPECT_EQ(c->n_heads, 32);
  EXPECT_EQ(c->n_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);  // 4096 / 32
  EXPECT_EQ(c->max_position, 131072);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-5);
  EXPECT_FALSE(c->tie_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->rope_order, RopeOrder::NEOX);  // HF weights rotate halves
  EXPECT_EQ(c->rope_scaling, RopeScaling::LLAMA3);
  EXPECT_DOUBLE_EQ(c->rope_factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_original_max_position, 8192);
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_EQ(c->eos_token_id, 128001);  // the first of the list
  EXPECT_EQ(c->summary(), "llama: 32 layers, 4096 embd, 32/8 heads, ff 14336, vocab 128256");
}

TEST(ModelConfigHf, Mistral7B) {
  auto c = llama_config_from_hf_json(kMistral7B, "mistral/config.json");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->arch, "mistral");
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->n_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->max_position, 32768);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->rope_scaling, RopeScaling::NONE);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_id, 2);
}

TEST(ModelConfigHf, Qwen2TiedWithBias) {
  auto c = llama_config_from_hf_json(kQwen25_05B, "qwen/config.json");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->arch, "qwen2");
  EXPECT_EQ(c->hidden_size, 896);
  EXPECT_EQ(c->n_heads, 14);
  EXPECT_EQ(c->n_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);  // 896 / 14
  EXPECT_EQ(c->n_layers, 24);
  EXPECT_TRUE(c->tie_embeddings);
  EXPECT_TRUE(c->attention_bias);  // Qwen2 always has q/k/v biases; its config has no key for it
  EXPECT_EQ(c->rope_order, RopeOrder::NEOX);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-6);
  EXPECT_EQ(c->eos_token_id, 151645);
}

TEST(ModelConfigHf, BadConfigsNameTheField) {
  auto zero_heads = llama_config_from_hf_json(replaced(kLlama31, "\"num_attention_heads\": 32", "\"num_attention_heads\": 0"),
                                              "bad/config.json");
  ASSERT_FALSE(zero_heads.ok());
  EXPECT_EQ(zero_heads.status().code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(zero_heads.status().message().find("num_attention_heads"), std::string::npos) << zero_heads.status().message();
  EXPECT_NE(zero_heads.status().message().find("bad/config.json"), std::string::npos) << zero_heads.status().message();

  auto kv = llama_config_from_hf_json(replaced(kLlama31, "\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"), "x");
  EXPECT_NE(kv.status().message().find("num_key_value_heads"), std::string::npos) << kv.status().message();

  auto missing = llama_config_from_hf_json(replaced(kMistral7B, "\"hidden_size\": 4096,", ""), "x");
  EXPECT_NE(missing.status().message().find("hidden_size"), std::string::npos) << missing.status().message();

  auto wrong_type = llama_config_from_hf_json(replaced(kMistral7B, "\"num_hidden_layers\": 32", "\"num_hidden_layers\": \"32\""), "x");
  EXPECT_NE(wrong_type.status().message().find("num_hidden_layers"), std::string::npos) << wrong_type.status().message();

  auto unknown = llama_config_from_hf_json(replaced(kMistral7B, "\"mistral\"", "\"gemma2\""), "g/config.json");
  EXPECT_EQ(unknown.status().code(), StatusCode::UNSUPPORTED);
  EXPECT_NE(unknown.status().message().find("'gemma2'"), std::string::npos) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("llama, mistral, qwen2"), std::string::npos) << unknown.status().message();

  auto yarn = llama_config_from_hf_json(replaced(kLlama31, "\"llama3\"", "\"yarn\""), "x");
  EXPECT_EQ(yarn.status().code(), StatusCode::UNSUPPORTED);
  EXPECT_NE(yarn.status().message().find("yarn"), std::string::npos);

  auto not_json = llama_config_from_hf_json("{\"model_type\": ", "broken.json");
  EXPECT_EQ(not_json.status().code(), StatusCode::CORRUPT);
  EXPECT_NE(not_json.status().message().find("broken.json"), std::string::npos);

  // Linear scaling spelled with the older "type" key; and head_dim given explicitly (Mistral-Nemo).
  auto linear = llama_config_from_hf_json(
      replaced(kMistral7B, "\"sliding_window\": 4096,", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}, \"head_dim\": 64,"), "x");
  ASSERT_TRUE(linear.ok()) << linear.status().to_string();
  EXPECT_EQ(linear->rope_scaling, RopeScaling::LINEAR);
  EXPECT_DOUBLE_EQ(linear->rope_factor, 2.0);
  EXPECT_EQ(linear->head_dim, 64);
}

TEST(ModelConfigHf, FromAStoreCarryingConfigJson) {
  TensorStore store;
  store.format = "hf-folder";
  store.path = "some/folder";
  store.meta.set("hf.config_json", MetaValue::of_string(kQwen25_05B));
  auto c = llama_config_from_store(store);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->arch, "qwen2");
  TensorStore empty;
  EXPECT_EQ(llama_config_from_store(empty).status().code(), StatusCode::NOT_FOUND);
}

TEST(ModelConfigGguf, SyntheticQwen2StoreIsNeoxTiedWithBias) {
  TensorStore store;
  store.meta.set("general.architecture", MetaValue::of_string("qwen2"));
  store.meta.set("qwen2.embedding_length", MetaValue::of_u32(896));
  store.meta.set("qwen2.feed_forward_length", MetaValue::of_u32(4864));
  store.meta.set("qwen2.block_count", MetaValue::of_u32(24));
  store.meta.set("qwen2.attention.head_count", MetaValue::of_u32(14));
  store.meta.set("qwen2.attention.head_count_kv", MetaValue::of_u32(2));
  store.meta.set("qwen2.rope.freq_base", MetaValue::of_f32(1e6f));
  store.meta.set("qwen2.context_length", MetaValue::of_u32(32768));
  ASSERT_TRUE(store.add(*Tensor::zeros("token_embd.weight", DType::F32, {151936, 1})).ok());
  ASSERT_TRUE(store.add(*Tensor::zeros("blk.0.attn_q.bias", DType::F32, {896})).ok());
  auto c = llama_config_from_store(store);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->rope_order, RopeOrder::NEOX);  // llama.cpp: qwen2 is a NEOX-rope architecture
  EXPECT_TRUE(c->tie_embeddings);             // no output.weight
  EXPECT_TRUE(c->attention_bias);             // blk.0.attn_q.bias
  EXPECT_EQ(c->vocab_size, 151936);           // from token_embd rows when there is no token list
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-5);         // GGUF default when the key is absent
  store.meta.set("qwen2.attention.head_count", MetaValue::of_u32(0));
  auto bad = llama_config_from_gguf(store);
  EXPECT_NE(bad.status().message().find("head_count"), std::string::npos) << bad.status().message();
}

// Needs read_gguf (src/formats/gguf.cpp).
TEST(ModelConfigGguf, FixtureModels) {
  SS_REQUIRE_SHARED();
  auto stories = read_gguf(test::fixtures_dir() + "/stories260K/stories260K-f32.gguf");
  ASSERT_TRUE(stories.ok()) << stories.status().to_string();
  auto s = llama_config_from_store(*stories);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  // README: dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads, vocab 512; context_length 128
  // (the converter's value); no rope.freq_base key -> 10000; eps 1e-5 stored as f32; the file
  // has output.weight (quantize logs list 48 tensors with it) -> not tied in GGUF terms.
  EXPECT_EQ(s->arch, "llama");
  EXPECT_EQ(s->hidden_size, 64);
  EXPECT_EQ(s->intermediate_size, 172);
  EXPECT_EQ(s->n_layers, 5);
  EXPECT_EQ(s->n_heads, 8);
  EXPECT_EQ(s->n_kv_heads, 4);
  EXPECT_EQ(s->head_dim, 8);
  EXPECT_EQ(s->vocab_size, 512);
  EXPECT_EQ(s->max_position, 128);
  EXPECT_DOUBLE_EQ(s->rope_theta, 10000.0);
  EXPECT_NEAR(s->rms_eps, 1e-5, 1e-12);  // f32 1e-5 = 9.99999975e-06
  EXPECT_FALSE(s->tie_embeddings);
  EXPECT_FALSE(s->attention_bias);
  EXPECT_EQ(s->rope_order, RopeOrder::NORM);  // README: run.c agreement proves NORM for this file
  EXPECT_EQ(s->bos_token_id, 1);
  EXPECT_EQ(s->eos_token_id, 2);

  auto kq = read_gguf(test::fixtures_dir() + "/kquants/random-llama-f32.gguf");
  ASSERT_TRUE(kq.ok()) << kq.status().to_string();
  auto k = llama_config_from_store(*kq);
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  // README section 3: n_embd 256, n_ff 768, 4 layers, 8/4 heads, head_dim 32, vocab 512, context 512,
  // freq_base 10000, eps 1e-5, separate output.weight.
  EXPECT_EQ(k->summary(), "llama: 4 layers, 256 embd, 8/4 heads, ff 768, vocab 512");
  EXPECT_EQ(k->head_dim, 32);
  EXPECT_EQ(k->max_position, 512);
  EXPECT_DOUBLE_EQ(k->rope_theta, 10000.0);
  EXPECT_NEAR(k->rms_eps, 1e-5, 1e-12);
  EXPECT_FALSE(k->tie_embeddings);
  EXPECT_EQ(k->bos_token_id, 1);
  EXPECT_EQ(k->eos_token_id, 2);
}
