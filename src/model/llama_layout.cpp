// Llama-family layouts: GGUF vs Hugging Face names, RoPE row order and config spelling (see
// include/safeshrink/llama_layout.h). One table of names; conversions move rows, never re-round.
// To add a tensor kind: one row in kLlamaTensorNames.
#include "safeshrink/llama_layout.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace ss {
namespace {

struct NamePair {
  const char* gguf;  // "blk.{L}.attn_q.weight"
  const char* hf;    // "model.layers.{L}.self_attn.q_proj.weight"
};
constexpr NamePair kLlamaTensorNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
    {"blk.{L}.attn_norm.weight", "model.layers.{L}.input_layernorm.weight"},
    {"blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight"},
    {"blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight"},
    {"blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight"},
    {"blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight"},
    {"blk.{L}.attn_q.bias", "model.layers.{L}.self_attn.q_proj.bias"},
    {"blk.{L}.attn_k.bias", "model.layers.{L}.self_attn.k_proj.bias"},
    {"blk.{L}.attn_v.bias", "model.layers.{L}.self_attn.v_proj.bias"},
    {"blk.{L}.ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight"},
    {"blk.{L}.ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight"},
    {"blk.{L}.ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight"},
    {"blk.{L}.ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight"},
};

// Matches NAME against PATTERN with one optional "{L}" standing for a decimal layer index.
bool match_pattern(std::string_view pattern, std::string_view name, std::string* layer) {
  const auto pos = pattern.find("{L}");
  if (pos == std::string_view::npos) return pattern == name;
  const std::string_view head = pattern.substr(0, pos), tail = pattern.substr(pos + 3);
  if (name.size() <= head.size() + tail.size()) return false;
  if (name.substr(0, head.size()) != head || name.substr(name.size() - tail.size()) != tail) return false;
  const std::string_view digits = name.substr(head.size(), name.size() - head.size() - tail.size());
  if (digits.empty() || digits.size() > 6) return false;
  for (char c : digits)
    if (c < '0' || c > '9') return false;
  *layer = std::string(digits);
  return true;
}

std::string fill(std::string_view pattern, const std::string& layer) {
  std::string s(pattern);
  const auto pos = s.find("{L}");
  if (pos != std::string::npos) s.replace(pos, 3, layer);
  return s;
}

std::optional<std::string> translate(std::string_view name, bool to_hf) {
  std::string layer;
  for (const auto& p : kLlamaTensorNames) {
    if (match_pattern(p.gguf, name, &layer)) return fill(to_hf ? p.hf : p.gguf, layer);
    if (match_pattern(p.hf, name, &layer)) return fill(to_hf ? p.hf : p.gguf, layer);
  }
  return std::nullopt;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Which q/k heads count a tensor has, or 0 when it is not a RoPE'd projection.
int64_t rope_heads(const std::string& gguf_name, const LlamaConfig& cfg) {
  if (ends_with(gguf_name, ".attn_q.weight") || ends_with(gguf_name, ".attn_q.bias")) return cfg.n_heads;
  if (ends_with(gguf_name, ".attn_k.weight") || ends_with(gguf_name, ".attn_k.bias")) return cfg.n_kv_heads;
  return 0;
}

bool is_architecture_key(const std::string& key, const std::string& arch) {
  return key == "general.architecture" || key.rfind(arch + ".", 0) == 0 || key == "hf.config_json";
}

}  // namespace

std::optional<std::string> llama_gguf_name(std::string_view name) { return translate(name, false); }
std::optional<std::string> llama_hf_name(std::string_view name) { return translate(name, true); }

Result<Tensor> permute_rope_rows(const Tensor& t, int64_t n_heads, RopeOrder from, RopeOrder to) {
  const int64_t rows = t.shape.size() == 1 ? t.shape[0] : t.rows();
  if (n_heads <= 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
    return invalid_argument("tensor '" + t.name + "': " + std::to_string(rows) + " rows do not split into " +
                            std::to_string(n_heads) + " heads of an even size");
  // A bias is a column of per-row scalars: one element per "row".
  const uint64_t row_bytes = rows > 0 ? t.nbytes / static_cast<uint64_t>(rows) : 0;
  SS_ASSIGN_OR_RETURN(Tensor out, Tensor::zeros(t.name, t.dtype, t.shape));
  if (from == to) {
    std::memcpy(out.mutable_data(), t.data(), t.nbytes);
    return out;
  }
  const int64_t hd = rows / n_heads, half = hd / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      // NORM rows (2i, 2i+1) <-> NEOX rows (i, i + half) within head h.
      const int64_t norm_a = h * hd + 2 * i, norm_b = norm_a + 1;
      const int64_t neox_a = h * hd + i, neox_b = neox_a + half;
      const int64_t src_a = from == RopeOrder::NORM ? norm_a : neox_a, src_b = from == RopeOrder::NORM ? norm_b : neox_b;
      const int64_t dst_a = to == RopeOrder::NORM ? norm_a : neox_a, dst_b = to == RopeOrder::NORM ? norm_b : neox_b;
      std::memcpy(out.mutable_data() + dst_a * row_bytes, t.data() + src_a * row_bytes, row_bytes);
      std::memcpy(out.mutable_data() + dst_b * row_bytes, t.data() + src_b * row_bytes, row_bytes);
    }
  }
  return out;
}

Metadata llama_gguf_metadata(const LlamaConfig& c) {
  Metadata m;
  const std::string p = c.arch + ".";
  m.set("general.architecture", MetaValue::of_string(c.arch));
  m.set(p + "context_length", MetaValue::of_u32(static_cast<uint32_t>(c.max_position)));
  m.set(p + "embedding_length", MetaValue::of_u32(static_cast<uint32_t>(c.hidden_size)));
  m.set(p + "block_count", MetaValue::of_u32(static_cast<uint32_t>(c.n_layers)));
  m.set(p + "feed_forward_length", MetaValue::of_u32(static_cast<uint32_t>(c.intermediate_size)));
  m.set(p + "rope.dimension_count", MetaValue::of_u32(static_cast<uint32_t>(c.head_dim)));
  m.set(p + "attention.head_count", MetaValue::of_u32(static_cast<uint32_t>(c.n_heads)));
  m.set(p + "attention.head_count_kv", MetaValue::of_u32(static_cast<uint32_t>(c.n_kv_heads)));
  if (c.n_heads > 0 && c.head_dim != c.hidden_size / c.n_heads) {
    m.set(p + "attention.key_length", MetaValue::of_u32(static_cast<uint32_t>(c.head_dim)));
    m.set(p + "attention.value_length", MetaValue::of_u32(static_cast<uint32_t>(c.head_dim)));
  }
  m.set(p + "attention.layer_norm_rms_epsilon", MetaValue::of_f32(static_cast<float>(c.rms_eps)));
  m.set(p + "rope.freq_base", MetaValue::of_f32(static_cast<float>(c.rope_theta)));
  m.set(p + "vocab_size", MetaValue::of_u32(static_cast<uint32_t>(c.vocab_size)));
  if (c.rope_scaling == RopeScaling::LINEAR) {
    m.set(p + "rope.scaling.type", MetaValue::of_string("linear"));
    m.set(p + "rope.scaling.factor", MetaValue::of_f32(static_cast<float>(c.rope_factor)));
  }
  return m;
}

std::string llama_hf_config_json(const LlamaConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.arch == "qwen2" ? "Qwen2ForCausalLM" : c.arch == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = c.arch;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_eps;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
  if (c.rope_scaling == RopeScaling::LINEAR) j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_factor}};
  if (c.rope_scaling == RopeScaling::LLAMA3)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_factor},
                         {"low_freq_factor", c.rope_low_freq_factor},
                         {"high_freq_factor", c.rope_high_freq_factor},
                         {"original_max_position_embeddings", c.rope_original_max_position}};
  return j.dump(2) + "\n";
}

namespace {

Result<TensorStore> convert_layout(const TensorStore& in, bool to_hf) {
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(in));
  if (cfg.rope_scaling == RopeScaling::LLAMA3 && !to_hf)
    return unsupported(in.path + ": Llama-3 RoPE scaling has no GGUF metadata key (llama.cpp stores a rope_freqs tensor)");
  const RopeOrder target = to_hf ? RopeOrder::NEOX : (cfg.arch == "qwen2" ? RopeOrder::NEOX : RopeOrder::NORM);
  TensorStore out;
  out.format = to_hf ? "safetensors" : "gguf";
  for (const Tensor& t : in.tensors) {
    const auto gguf = llama_gguf_name(t.name);
    if (!gguf) return invalid_argument(in.path + ": tensor '" + t.name + "' is not a Llama-family tensor");
    Tensor moved = t;
    if (const int64_t heads = rope_heads(*gguf, cfg); heads > 0 && cfg.rope_order != target) {
      SS_ASSIGN_OR_RETURN(moved, permute_rope_rows(t, heads, cfg.rope_order, target));
    }
    moved.name = to_hf ? *llama_hf_name(*gguf) : *gguf;
    SS_RETURN_IF_ERROR(out.add(std::move(moved)));
  }
  LlamaConfig written = cfg;
  written.rope_order = target;
  if (to_hf) {
    for (const auto& [key, value] : in.meta.entries())
      if (!is_architecture_key(key, cfg.arch)) out.meta.set(key, value);
    out.meta.set("hf.config_json", MetaValue::of_string(llama_hf_config_json(written)));
  } else {
    out.meta = llama_gguf_metadata(written);
    for (const auto& [key, value] : in.meta.entries())
      if (!is_architecture_key(key, cfg.arch) && !out.meta.find(key)) out.meta.set(key, value);
  }
  return out;
}

}  // namespace

Result<TensorStore> llama_to_gguf_layout(const TensorStore& in) { return convert_layout(in, false); }
Result<TensorStore> llama_to_hf_layout(const TensorStore& in) { return convert_layout(in, true); }

}  // namespace ss
