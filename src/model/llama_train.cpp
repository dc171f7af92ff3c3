// LlamaTrainModel (include/safeshrink/train.h): the Llama family with gradients, written on the
// autograd tape. One forward serves training, logits and distillation teachers:
//   tokens (B, S) -> embedding (B S, d) -> n_layers x [ rms_norm -> q, k, v (+ bias) -> rope ->
//   causal GQA attention -> o -> residual -> rms_norm -> swiglu(gate, up) -> down -> residual ]
//   -> rms_norm -> output (B S, V) -> cross entropy / KD loss.
// Parameters keep GGUF names whatever the source; weights from HF keep the HF RoPE order (NEOX).
// Not here: the ops (autograd/), optimizers (autograd/optimizers.cpp), file writers (formats/).
// To add a tensor kind: a parameter in make_layout(), its use in forward(), and a name in kHfToGguf.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "safeshrink/autograd.h"
#include "safeshrink/half.h"
#include "safeshrink/kernels.h"
#include "safeshrink/rng.h"
#include "safeshrink/train.h"

namespace ss {
namespace {

std::string blk(int64_t l, const char* what) { return "blk." + std::to_string(l) + "." + what; }

// The parameter list of a config, in the order of params(): names, shapes, decay, init.
enum class Init { NORMAL, ONES, ZEROS };
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  Init init;
};
std::vector<ParamSpec> make_layout(const LlamaConfig& c) {
  const int64_t d = c.hidden_size, ff = c.intermediate_size, q_dim = c.n_heads * c.head_dim,
                kv_dim = c.n_kv_heads * c.head_dim;
  std::vector<ParamSpec> s;
  s.push_back({"token_embd.weight", {c.vocab_size, d}, Init::NORMAL});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    s.push_back({blk(l, "attn_norm.weight"), {d}, Init::ONES});
    s.push_back({blk(l, "attn_q.weight"), {q_dim, d}, Init::NORMAL});
    s.push_back({blk(l, "attn_k.weight"), {kv_dim, d}, Init::NORMAL});
    s.push_back({blk(l, "attn_v.weight"), {kv_dim, d}, Init::NORMAL});
    if (c.attention_bias) {
      s.push_back({blk(l, "attn_q.bias"), {q_dim}, Init::ZEROS});
      s.push_back({blk(l, "attn_k.bias"), {kv_dim}, Init::ZEROS});
      s.push_back({blk(l, "attn_v.bias"), {kv_dim}, Init::ZEROS});
    }
    s.push_back({blk(l, "attn_output.weight"), {d, q_dim}, Init::NORMAL});
    s.push_back({blk(l, "ffn_norm.weight"), {d}, Init::ONES});
    s.push_back({blk(l, "ffn_gate.weight"), {ff, d}, Init::NORMAL});
    s.push_back({blk(l, "ffn_up.weight"), {ff, d}, Init::NORMAL});
    s.push_back({blk(l, "ffn_down.weight"), {d, ff}, Init::NORMAL});
  }
  s.push_back({"output_norm.weight", {d}, Init::ONES});
  if (!c.tie_embeddings) s.push_back({"output.weight", {c.vocab_size, d}, Init::NORMAL});
  return s;
}

// HF spellings of the same tensors ({L} = layer).
struct NamePair { const char* gguf; const char* hf; };
constexpr NamePair kHfToGguf[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
    {"attn_norm.weight", "model.layers.{L}.input_layernorm.weight"},
    {"attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight"},
    {"attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight"},
    {"attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight"},
    {"attn_q.bias", "model.layers.{L}.self_attn.q_proj.bias"},
    {"attn_k.bias", "model.layers.{L}.self_attn.k_proj.bias"},
    {"attn_v.bias", "model.layers.{L}.self_attn.v_proj.bias"},
    {"attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight"},
    {"ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight"},
    {"ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight"},
    {"ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight"},
    {"ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight"},
};

// The HF name of a GGUF parameter name ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight").
std::string hf_name(const std::string& gguf) {
  std::string layer, rest = gguf;
  if (gguf.rfind("blk.", 0) == 0) {
    const size_t dot = gguf.find('.', 4);
    layer = gguf.substr(4, dot - 4);
    rest = gguf.substr(dot + 1);
  }
  for (const NamePair& p : kHfToGguf)
    if (rest == p.gguf) {
      std::string s = p.hf;
      const size_t at = s.find("{L}");
      if (at != std::string::npos) s.replace(at, 3, layer);
      return s;
    }
  return gguf;
}

// Inverse frequency of each rotary pair with the config's scaling, as src/model/llama.cpp computes
// it (float, so both give the same angles). factors: llama3 GGUF rope_freqs.weight, or empty.
std::vector<float> rope_inv_freq(const LlamaConfig& c, const std::vector<float>& factors) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    double freq = std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
    if (!factors.empty()) {
      freq /= factors[i];
    } else if (c.rope_scaling == RopeScaling::LINEAR) {
      freq /= c.rope_factor;
    } else if (c.rope_scaling == RopeScaling::LLAMA3) {
      const double wavelen = 6.283185307179586 / freq;
      const double low_wl = c.rope_original_max_position / c.rope_low_freq_factor;
      const double high_wl = c.rope_original_max_position / c.rope_high_freq_factor;
      if (wavelen > low_wl) {
        freq /= c.rope_factor;
      } else if (wavelen >= high_wl) {
        const double smooth = (c.rope_original_max_position / wavelen - c.rope_low_freq_factor) /
                              (c.rope_high_freq_factor - c.rope_low_freq_factor);
        freq = (1 - smooth) * freq / c.rope_factor + smooth * freq;
      }
    }
    inv[i] = static_cast<float>(freq);
  }
  return inv;
}

// Moves q/k rows (n_heads heads of head_dim rows of `cols` floats) from one RoPE order to the other:
// NORM rows 2i, 2i+1 of a head are NEOX rows i, i + head_dim/2.
std::vector<float> permute_rope(const std::vector<float>& v, int64_t n_heads, int64_t head_dim, int64_t cols,
                                RopeOrder from, RopeOrder to) {
  if (from == to) return v;
  std::vector<float> out(v.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t pair = 0; pair < 2; ++pair) {
        const int64_t norm_row = h * head_dim + 2 * i + pair, neox_row = h * head_dim + i + pair * half;
        const int64_t src = from == RopeOrder::NORM ? norm_row : neox_row;
        const int64_t dst = from == RopeOrder::NORM ? neox_row : norm_row;
        std::memcpy(&out[dst * cols], &v[src * cols], cols * sizeof(float));
      }
  return out;
}

// The RoPE order a GGUF file of this architecture stores (model_config.cpp's top comment).
RopeOrder gguf_rope_order(const LlamaConfig& c) { return c.arch == "qwen2" ? RopeOrder::NEOX : RopeOrder::NORM; }

Status check_batch(const LlamaConfig& c, const TrainBatch& b) {
  if (b.batch <= 0 || b.seq <= 0) return invalid_argument("train batch: batch and seq must be positive");
  const size_t n = static_cast<size_t>(b.batch * b.seq);
  if (b.tokens.size() != n) return invalid_argument("train batch: " + std::to_string(b.tokens.size()) + " tokens for " + std::to_string(n) + " positions");
  if (!b.targets.empty() && b.targets.size() != n)
    return invalid_argument("train batch: " + std::to_string(b.targets.size()) + " targets for " + std::to_string(n) + " positions");
  if (!b.sample_weight.empty() && b.sample_weight.size() != static_cast<size_t>(b.batch))
    return invalid_argument("train batch: sample_weight must have one weight per sequence");
  for (int32_t t : b.tokens)
    if (t < 0 || t >= c.vocab_size) return invalid_argument("train batch: token " + std::to_string(t) + " outside the vocabulary");
  for (int32_t t : b.targets)
    if (t < -1 || t >= c.vocab_size) return invalid_argument("train batch: target " + std::to_string(t) + " outside [-1, vocab)");
  return ok_status();
}

}  // namespace

// The tape of one forward: params as leaves (grads when `train`), logits (B S, V) as the result.
struct LlamaForward {
  ag::Tape<float> tape;
  std::vector<ag::Var> leaves;  // one per params()
  ag::Var logits;
  explicit LlamaForward(ThreadPool* pool) : tape(pool) {}
};

static Status run_forward(const LlamaTrainModel& m, const TrainBatch& batch, bool train, LlamaForward& f) {
  const LlamaConfig& c = m.cfg_;
  SS_RETURN_IF_ERROR(check_batch(c, batch));
  ag::Tape<float>& t = f.tape;
  for (const Param& p : m.params_) f.leaves.push_back(t.leaf(p.shape, p.value, train));
  std::vector<float> factors;
  if (!m.rope_freq_factors_.empty()) factors = m.rope_freq_factors_;
  const std::vector<float> inv_freq = rope_inv_freq(c, factors);
  const int64_t B = batch.batch, S = batch.seq, hd = c.head_dim;
  size_t k = 0;
  auto next = [&]() { return f.leaves[k++]; };
  const ag::Var embd = next();
  ag::Var x = ag::embedding(t, embd, batch.tokens);  // (B S, d)
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const ag::Var attn_norm = next(), wq = next(), wk = next(), wv = next();
    ag::Var bq, bk, bv;
    if (c.attention_bias) { bq = next(); bk = next(); bv = next(); }
    const ag::Var wo = next(), ffn_norm = next(), wg = next(), wu = next(), wd = next();
    ag::Var xn = ag::rms_norm(t, x, attn_norm, c.rms_eps);                                        // (B S, d)
    ag::Var q = ag::reshape(t, ag::linear(t, xn, wq, bq), {B, S, c.n_heads, hd});                // (B, S, H, hd)
    ag::Var kk = ag::reshape(t, ag::linear(t, xn, wk, bk), {B, S, c.n_kv_heads, hd});            // (B, S, KV, hd)
    ag::Var v = ag::reshape(t, ag::linear(t, xn, wv, bv), {B, S, c.n_kv_heads, hd});             // (B, S, KV, hd)
    q = ag::rope(t, q, inv_freq, c.rope_order);
    kk = ag::rope(t, kk, inv_freq, c.rope_order);
    ag::Var att = ag::reshape(t, ag::attention(t, q, kk, v), {B * S, c.n_heads * hd});           // (B S, H hd)
    x = ag::add(t, x, ag::linear(t, att, wo));                                                    // (B S, d)
    xn = ag::rms_norm(t, x, ffn_norm, c.rms_eps);
    ag::Var h = ag::swiglu(t, ag::linear(t, xn, wg), ag::linear(t, xn, wu));                     // (B S, ff)
    x = ag::add(t, x, ag::linear(t, h, wd));
  }
  const ag::Var out_norm = next();
  const ag::Var out_w = c.tie_embeddings ? embd : next();
  f.logits = ag::linear(t, ag::rms_norm(t, x, out_norm, c.rms_eps), out_w);                       // (B S, V)
  return t.status();
}

Result<LlamaTrainModel> LlamaTrainModel::init_random(const LlamaConfig& cfg, uint64_t seed) {
  SS_RETURN_IF_ERROR(cfg.validate());
  LlamaTrainModel m;
  m.cfg_ = cfg;
  Rng rng(seed);
  for (ParamSpec& s : make_layout(cfg)) {
    Param p;
    p.name = std::move(s.name);
    p.shape = std::move(s.shape);
    p.decay = s.init == Init::NORMAL;  // matrices decay; norms and biases do not
    p.value.resize(static_cast<size_t>(p.numel()));
    for (float& v : p.value)
      v = s.init == Init::NORMAL ? static_cast<float>(0.02 * rng.normal()) : s.init == Init::ONES ? 1.0f : 0.0f;
    m.params_.push_back(std::move(p));
  }
  return m;
}

Result<LlamaTrainModel> LlamaTrainModel::from_store(const TensorStore& store) {
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(store));
  SS_RETURN_IF_ERROR(cfg.validate());
  LlamaTrainModel m;
  m.cfg_ = cfg;
  const bool gguf = store.find("token_embd.weight") != nullptr;
  for (ParamSpec& s : make_layout(cfg)) {
    const std::string name = gguf ? s.name : hf_name(s.name);
    const Tensor* t = store.find(name);
    if (!t) return not_found("LlamaTrainModel::from_store: tensor '" + name + "' is missing");
    Param p;
    p.name = std::move(s.name);
    p.shape = std::move(s.shape);
    p.decay = s.init == Init::NORMAL;
    if (t->numel() != p.numel())
      return invalid_argument("LlamaTrainModel::from_store: tensor '" + name + "' has shape " + t->shape_string() +
                              ", expected " + std::to_string(p.numel()) + " elements");
    SS_ASSIGN_OR_RETURN(p.value, kernels::dequantize(*t));
    m.params_.push_back(std::move(p));
  }
  if (const Tensor* f = store.find("rope_freqs.weight"); f && f->numel() == cfg.head_dim / 2) {
    SS_ASSIGN_OR_RETURN(m.rope_freq_factors_, kernels::dequantize(*f));
  }
  return m;
}

Result<double> LlamaTrainModel::forward_backward(const TrainBatch& batch, const LossSpec& loss, ThreadPool* pool) {
  LlamaForward f(pool);
  SS_RETURN_IF_ERROR(run_forward(*this, batch, true, f));
  ag::Tape<float>& t = f.tape;
  const int64_t n = batch.batch * batch.seq;
  std::vector<int32_t> targets = batch.targets;
  if (targets.empty()) return invalid_argument("forward_backward: the batch has no targets");
  std::vector<float> weights;
  if (!batch.sample_weight.empty()) {
    weights.resize(n);
    for (int64_t i = 0; i < n; ++i) weights[i] = batch.sample_weight[i / batch.seq];
  }
  ag::Var l;
  if (loss.teacher_logits) {
    const std::vector<float> teacher(loss.teacher_logits, loss.teacher_logits + n * cfg_.vocab_size);
    l = ag::kd_loss(t, f.logits, teacher, targets, weights, loss.alpha, loss.temperature);
  } else {
    l = ag::cross_entropy(t, f.logits, targets, weights);
  }
  const double mean_loss = t.status().ok() ? static_cast<double>(t.value(l)[0]) : 0.0;
  if (loss.loss_scale != 1.0) l = ag::scale(t, l, loss.loss_scale);
  SS_RETURN_IF_ERROR(t.backward(l));
  for (size_t k = 0; k < params_.size(); ++k) {
    const std::vector<float>& g = t.grad(f.leaves[k]);
    Param& p = params_[k];
    if (p.grad.size() != p.value.size()) p.grad.assign(p.value.size(), 0.0f);
    for (size_t i = 0; i < g.size(); ++i) p.grad[i] += g[i];
  }
  return mean_loss;
}

Result<std::vector<float>> LlamaTrainModel::logits(const TrainBatch& batch, ThreadPool* pool) const {
  LlamaForward f(pool);
  SS_RETURN_IF_ERROR(run_forward(*this, batch, false, f));
  return f.tape.value(f.logits);
}

Result<TensorStore> LlamaTrainModel::to_store(DType dtype) const {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    return invalid_argument(std::string("LlamaTrainModel::to_store: dtype must be F32, F16 or BF16, got ") + dtype_info(dtype).name);
  const LlamaConfig& c = cfg_;
  TensorStore s;
  s.format = "gguf";
  const std::string p = c.arch + ".";
  Metadata& m = s.meta;
  m.set("general.architecture", MetaValue::of_string(c.arch));
  m.set(p + "context_length", MetaValue::of_u32(static_cast<uint32_t>(std::min<int64_t>(c.max_position, UINT32_MAX))));
  m.set(p + "embedding_length", MetaValue::of_u32(static_cast<uint32_t>(c.hidden_size)));
  m.set(p + "block_count", MetaValue::of_u32(static_cast<uint32_t>(c.n_layers)));
  m.set(p + "feed_forward_length", MetaValue::of_u32(static_cast<uint32_t>(c.intermediate_size)));
  m.set(p + "attention.head_count", MetaValue::of_u32(static_cast<uint32_t>(c.n_heads)));
  m.set(p + "attention.head_count_kv", MetaValue::of_u32(static_cast<uint32_t>(c.n_kv_heads)));
  m.set(p + "attention.key_length", MetaValue::of_u32(static_cast<uint32_t>(c.head_dim)));
  m.set(p + "attention.value_length", MetaValue::of_u32(static_cast<uint32_t>(c.head_dim)));
  m.set(p + "rope.dimension_count", MetaValue::of_u32(static_cast<uint32_t>(c.head_dim)));
  m.set(p + "rope.freq_base", MetaValue::of_f32(static_cast<float>(c.rope_theta)));
  m.set(p + "attention.layer_norm_rms_epsilon", MetaValue::of_f32(static_cast<float>(c.rms_eps)));
  m.set(p + "vocab_size", MetaValue::of_u32(static_cast<uint32_t>(c.vocab_size)));
  if (c.rope_scaling == RopeScaling::LINEAR) {
    m.set(p + "rope.scaling.type", MetaValue::of_string("linear"));
    m.set(p + "rope.scaling.factor", MetaValue::of_f32(static_cast<float>(c.rope_factor)));
  }
  if (c.bos_token_id >= 0) m.set("tokenizer.ggml.bos_token_id", MetaValue::of_u32(static_cast<uint32_t>(c.bos_token_id)));
  if (c.eos_token_id >= 0) m.set("tokenizer.ggml.eos_token_id", MetaValue::of_u32(static_cast<uint32_t>(c.eos_token_id)));

  const RopeOrder file_order = gguf_rope_order(c);
  for (const Param& prm : params_) {
    std::vector<float> v = prm.value;
    const bool is_q = prm.name.find(".attn_q.") != std::string::npos;
    const bool is_k = prm.name.find(".attn_k.") != std::string::npos;
    if (is_q || is_k) {
      const int64_t cols = prm.shape.size() == 2 ? prm.shape[1] : 1;
      v = permute_rope(v, is_q ? c.n_heads : c.n_kv_heads, c.head_dim, cols, c.rope_order, file_order);
    }
    const DType dt = prm.shape.size() == 2 ? dtype : DType::F32;  // norms and biases stay F32
    std::vector<uint8_t> bytes;
    if (dt == DType::F32) {
      bytes.resize(v.size() * 4);
      std::memcpy(bytes.data(), v.data(), bytes.size());
    } else {
      bytes.resize(v.size() * 2);
      for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = dt == DType::F16 ? fp32_to_fp16(v[i]) : fp32_to_bf16(v[i]);
        std::memcpy(&bytes[i * 2], &h, 2);
      }
    }
    SS_ASSIGN_OR_RETURN(Tensor t, Tensor::from_bytes(prm.name, dt, prm.shape, bytes.data(), bytes.size()));
    SS_RETURN_IF_ERROR(s.add(std::move(t)));
  }
  // Llama-3 frequency scaling has no GGUF metadata key: llama.cpp stores it as per-pair divisors.
  std::vector<float> factors = rope_freq_factors_;
  if (factors.empty() && c.rope_scaling == RopeScaling::LLAMA3) {
    LlamaConfig plain = c;
    plain.rope_scaling = RopeScaling::NONE;
    const std::vector<float> base = rope_inv_freq(plain, {}), scaled = rope_inv_freq(c, {});
    factors.resize(base.size());
    for (size_t i = 0; i < base.size(); ++i) factors[i] = base[i] / scaled[i];
  }
  if (!factors.empty()) {
    SS_ASSIGN_OR_RETURN(Tensor t, Tensor::from_bytes("rope_freqs.weight", DType::F32, {static_cast<int64_t>(factors.size())},
                                                     factors.data(), factors.size() * 4));
    SS_RETURN_IF_ERROR(s.add(std::move(t)));
  }
  return s;
}

}  // namespace ss
