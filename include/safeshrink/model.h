// LlamaModel: the Llama-family forward pass (llama, mistral, qwen2) bound to a TensorStore.
// One readable path from tokens to logits: embedding -> n_layers x (RMSNorm, attention with RoPE
// and GQA, residual, RMSNorm, SwiGLU FFN, residual) -> RMSNorm -> output projection. Weights stay
// in their file's dtype (mmapped) and go through kernels::matmul; the KV cache is F32.
// Tensor names are bound from GGUF ("blk.0.attn_q.weight") or HF ("model.layers.0.self_attn.
// q_proj.weight") spellings, by the tables in src/model/llama.cpp.
// Thread-safety: a LlamaModel is immutable after load; each sequence owns its KvCache.
// Not here: tokenization (tokenizer/), sampling and batching policy (model/generate).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "safeshrink/model_config.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

// A weight matrix as the kernels see it: rows x cols elements of dtype, row-major, in the store.
struct WeightRef {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;  // (out_features, in_features)
};

struct KvCache {
  int64_t capacity = 0;  // positions
  int64_t n_past = 0;    // positions filled
  // (n_layers, capacity, n_kv_heads * head_dim)
  std::vector<float> k, v;
};

struct LoadOptions {
  // Dequantize every weight to F32 at load ("exact math": no activation quantization in the
  // matmuls, as llama.cpp's *-dequant-f32 reference sets). Costs 4 bytes per weight of memory.
  bool dequantize_weights = false;
};

class LlamaModel {
 public:
  // The model keeps the store alive (weights are views into it).
  static Result<LlamaModel> load(std::shared_ptr<const TensorStore> store, const LoadOptions& opts = {});
  static Result<LlamaModel> load(std::shared_ptr<const TensorStore> store, const LlamaConfig& config,
                                 const LoadOptions& opts = {});

  const LlamaConfig& config() const { return cfg_; }
  KvCache new_cache(int64_t capacity) const;

  // Runs n tokens at positions cache.n_past.. and appends them to the cache. logits: when
  // all_logits, n x vocab; else vocab floats for the last token only. nullptr: no logits.
  Status forward(const int32_t* tokens, int64_t n, KvCache& cache, float* logits, bool all_logits = false) const;

  // Padding-free batch: several sequences, each with its own tokens and cache, run as one set of
  // matmuls over all their tokens (prefill of many prompts, or one decode step of many sequences).
  // Each item behaves exactly as forward() on it alone.
  struct BatchItem {
    const int32_t* tokens = nullptr;
    int64_t n = 0;
    KvCache* cache = nullptr;
    float* logits = nullptr;
    bool all_logits = false;
  };
  Status forward_batch(const std::vector<BatchItem>& items) const;

  // Calibration hook: when set, called before every linear matmul with the store name of its
  // weight and its input rows x (rows x k, row-major F32), from the thread calling forward.
  // Unset (the default) costs one branch per matmul. Setting it makes this model object not
  // thread-safe for concurrent forwards; copy the model first (copies share the weights).
  using LinearObserver = std::function<void(const std::string& weight_name, const float* x, int64_t rows, int64_t k)>;
  void set_linear_observer(LinearObserver observer) { observer_ = std::move(observer); }

  struct Layer {
    std::vector<float> attn_norm, ffn_norm;  // (d)
    WeightRef wq, wk, wv, wo;                // (n_heads*hd, d) (n_kv*hd, d) (n_kv*hd, d) (d, n_heads*hd)
    std::vector<float> bq, bk, bv;           // qwen2 biases, empty otherwise
    WeightRef w_gate, w_up, w_down;          // (ff, d) (ff, d) (d, ff)
  };

 private:
  std::shared_ptr<const TensorStore> store_;
  std::vector<std::shared_ptr<std::vector<float>>> owned_;  // dequantized weights (LoadOptions)
  LlamaConfig cfg_;
  WeightRef tok_embd_;                       // (vocab, d)
  WeightRef output_;                         // (vocab, d), = tok_embd_ when tied
  std::vector<float> output_norm_;           // (d)
  std::vector<Layer> layers_;
  std::vector<float> rope_inv_freq_;         // (head_dim/2), scaling applied
  // (n_layers, 7) store names of q, k, v, o, gate, up, down; and of the output matrix.
  std::vector<std::vector<std::string>> linear_names_;
  std::string output_name_;
  LinearObserver observer_;
  void observe(const std::string& name, const float* x, int64_t rows, int64_t k) const {
    if (observer_) observer_(name, x, rows, k);
  }
};

}  // namespace ss

#include "safeshrink/tokenizer.h"

namespace ss {

// A model file opened for inference: the store, the bound model and its tokenizer (from GGUF
// metadata, or the HF folder's tokenizer.json).
struct LoadedModel {
  std::shared_ptr<const TensorStore> store;
  std::shared_ptr<const LlamaModel> model;
  std::shared_ptr<const Tokenizer> tokenizer;
};
Result<LoadedModel> load_model_with_tokenizer(const std::string& path, const LoadOptions& opts = {});

}  // namespace ss
