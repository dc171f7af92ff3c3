// Architecture facts of a Llama-family model (llama, mistral, qwen2), read either from an HF
// config.json or from GGUF metadata ("<arch>.embedding_length", ...). Plain struct with defaults,
// validated once by validate(), which names the bad field. Not here: the forward pass (model/).
#pragma once

#include <cstdint>
#include <string>

#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

enum class RopeScaling { NONE, LINEAR, LLAMA3 };
enum class RopeOrder { NORM, NEOX };  // NORM: adjacent pairs (llama); NEOX: halves (qwen2 in GGUF)

struct LlamaConfig {
  std::string arch = "llama";        // llama | mistral | qwen2
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;           // n_embd
  int64_t intermediate_size = 0;     // n_ff
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;            // GQA/MQA when < n_heads
  int64_t head_dim = 0;              // hidden_size / n_heads unless given
  int64_t max_position = 2048;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  bool tie_embeddings = false;
  bool attention_bias = false;       // qwen2: q/k/v have biases
  RopeOrder rope_order = RopeOrder::NORM;
  RopeScaling rope_scaling = RopeScaling::NONE;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;   // llama3
  double rope_high_freq_factor = 4.0;  // llama3
  int64_t rope_original_max_position = 8192;  // llama3
  int64_t bos_token_id = -1, eos_token_id = -1;

  Status validate() const;
  std::string summary() const;  // "llama: 4 layers, 256 embd, 8/4 heads, ff 768, vocab 512"
};

// From an HF config.json text (source names the file in errors).
Result<LlamaConfig> llama_config_from_hf_json(const std::string& json_text, const std::string& source);
// From GGUF metadata (general.architecture, <arch>.*); vocab size from the tokenizer or token_embd.
Result<LlamaConfig> llama_config_from_gguf(const TensorStore& store);
// Whichever the store carries: GGUF metadata, or "hf.config_json" (the raw config.json text the
// safetensors folder reader puts in meta).
Result<LlamaConfig> llama_config_from_store(const TensorStore& store);

}  // namespace ss
