// Training contracts shared by autograd/ (tape, ops, optimizers), model/llama_train (the Llama
// family with gradients) and the training/distillation drivers (train/, CLI `train`, `distill`).
// Parameters are plain F32 arrays with their gradients; a model exposes them by GGUF-style name.
// Not here: the tape and its ops (include/safeshrink/autograd.h), file writing (formats/).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "safeshrink/model_config.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

class ThreadPool;

struct Param {
  std::string name;              // "blk.0.attn_q.weight" (GGUF spelling)
  std::vector<int64_t> shape;    // row-major, e.g. (out, in)
  std::vector<float> value;
  std::vector<float> grad;       // same size as value; accumulated by backward, zeroed by zero_grad
  bool decay = true;             // weight decay applies (false for norms and biases)
  int64_t numel() const;
};

void zero_grad(std::vector<Param>& params);
// Scales all grads so that their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(std::vector<Param>& params, double max_norm);

struct AdamWConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};
// torch.optim.AdamW semantics (decoupled decay: p -= lr*wd*p before the Adam step).
class AdamW {
 public:
  explicit AdamW(AdamWConfig cfg = {}) : cfg_(cfg) {}
  void step(std::vector<Param>& params, double lr);   // lr overrides cfg.lr (schedules)
  int64_t steps() const { return t_; }
  // State for checkpoints: step count and moments, by parameter order.
  int64_t t_ = 0;
  std::vector<std::vector<float>> m_, v_;
  AdamWConfig cfg_;
};

struct SgdConfig { double lr = 1e-2, momentum = 0.0, weight_decay = 0.0; bool nesterov = false; };
// torch.optim.SGD semantics (coupled decay: g += wd*p; buf = mu*buf + g).
class Sgd {
 public:
  explicit Sgd(SgdConfig cfg = {}) : cfg_(cfg) {}
  void step(std::vector<Param>& params, double lr);
  std::vector<std::vector<float>> buf_;
  SgdConfig cfg_;
};

// Learning-rate schedules: linear warmup then cosine (to min_lr) or linear decay.
struct LrSchedule {
  std::string kind = "cosine";  // cosine | linear | constant
  double lr = 1e-3, min_lr = 0.0;
  int64_t warmup_steps = 0, total_steps = 1;
  double at(int64_t step) const;
};

// A batch of token sequences for a causal LM: targets[i] is the token to predict at position i
// (already shifted), -1 = ignore (prompt tokens, padding).
struct TrainBatch {
  int64_t batch = 0, seq = 0;
  std::vector<int32_t> tokens;         // (batch, seq)
  std::vector<int32_t> targets;        // (batch, seq), -1 = ignore
  std::vector<float> sample_weight;    // (batch) or empty (= 1): per-sample loss weight
};

// Loss of one batch. Plain CE when teacher_logits is null; otherwise distillation:
//   alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, targets)
// averaged over counted positions (targets != -1), weighted per sample.
// Per-sample weights multiply a sequence's terms and are not renormalised (weight 2 doubles its pull).
// Gradient accumulation: run forward_backward on k micro-batches with loss_scale = 1/k and no
// zero_grad in between, then one optimizer step and zero_grad; the grads add up to the gradient of
// the mean of the k micro-batch losses (= the big batch's loss when they count equal positions).
struct LossSpec {
  const float* teacher_logits = nullptr;  // (batch, seq, vocab) or null
  double alpha = 0.5, temperature = 2.0;
  double loss_scale = 1.0;                // multiplies the gradients (not the returned loss)
};

// The Llama family with gradients. Parameter names are GGUF spellings whatever the source; RoPE
// follows config().rope_order (NORM = adjacent pairs, the GGUF llama convention; NEOX = rotate-half,
// the HF convention), so a model keeps the convention of the weights it came from. to_store() gives
// a store LlamaModel::load accepts; exporters permute q/k rows when the target file's convention
// differs (GGUF llama wants NORM, HF wants NEOX).
class LlamaTrainModel {
 public:
  // Matrices (embedding, projections, output) ~ N(0, 0.02^2), norms = 1, biases = 0; one ss::Rng
  // stream drawn in params() order, so a seed gives the same weights on every machine.
  // params() order: token_embd, per layer attn_norm, attn_q, attn_k, attn_v, [q/k/v biases],
  // attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down; output_norm; output (unless tied).
  static Result<LlamaTrainModel> init_random(const LlamaConfig& cfg, uint64_t seed);
  // Any store LlamaModel can load (GGUF or HF, quantized types dequantized to F32).
  static Result<LlamaTrainModel> from_store(const TensorStore& store);

  const LlamaConfig& config() const { return cfg_; }
  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }

  // Forward + backward: accumulates gradients into params' grad (allocated on first use); returns
  // the mean loss of LossSpec. pool == nullptr: default_pool(). The tape keeps every op's output
  // until backward has run (activations ~ (14 d + 2 ff + 2 H S) floats per token and layer).
  Result<double> forward_backward(const TrainBatch& batch, const LossSpec& loss, ThreadPool* pool);
  // Forward only: logits (batch, seq, vocab) (teacher logits for distillation, eval).
  Result<std::vector<float>> logits(const TrainBatch& batch, ThreadPool* pool) const;

  // F32 (or F16/BF16) tensors with GGUF names + the llama.* metadata of config().
  Result<TensorStore> to_store(DType dtype = DType::F32) const;

  LlamaConfig cfg_;
  std::vector<Param> params_;
  // Llama-3 GGUF rope_freqs.weight (head_dim/2 divisors of the RoPE frequencies) when the source
  // store had one; empty otherwise. Not a parameter: it is not trained.
  std::vector<float> rope_freq_factors_;
};

}  // namespace ss
